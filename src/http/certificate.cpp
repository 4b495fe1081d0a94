#include "http/certificate.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

namespace atrium::http {

Result<std::int64_t> certificate_not_after(const std::string& pem_path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> file(BIO_new_file(pem_path.c_str(), "r"), &BIO_free);
  if (!file) return fail(Errc::invalid_argument, "cannot open the certificate file " + pem_path);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(file.get(), nullptr, nullptr, nullptr),
                                                   &X509_free);
  if (!cert) return fail(Errc::invalid_argument, pem_path + " holds no PEM certificate");
  // Seconds from the Unix epoch to notAfter, through ASN1_TIME_diff against the epoch.
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> epoch(ASN1_TIME_set(nullptr, 0), &ASN1_TIME_free);
  int days = 0;
  int seconds = 0;
  if (!epoch || ASN1_TIME_diff(&days, &seconds, epoch.get(), X509_get0_notAfter(cert.get())) != 1) {
    return fail(Errc::invalid_argument, pem_path + ": the certificate's notAfter cannot be read");
  }
  return static_cast<std::int64_t>(days) * 86'400 + seconds;
}

}  // namespace atrium::http
