#include "domains/certificates.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <string>

#include <fmt/format.h>

namespace atrium::domains {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

Owned<BIO> memory(std::string_view pem) {
  return Owned<BIO>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// A passphrase callback that refuses: an encrypted key is an error, never a prompt on the server's terminal.
int no_passphrase(char*, int, int, void*) { return -1; }

}  // namespace

Result<CertificateInfo> check_certificate(std::string_view chain_pem, std::string_view key_pem,
                                          std::string_view hostname, Instant now) {
  if (chain_pem.size() > 64 * 1024 || key_pem.size() > 16 * 1024) {
    return fail(Errc::invalid_argument, "certificate must be at most 64 KiB and private_key at most 16 KiB");
  }
  auto chain = memory(chain_pem);
  Owned<X509> leaf(PEM_read_bio_X509(chain.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) return fail(Errc::invalid_argument, "certificate is not a PEM certificate");
  int intermediates = 0;
  while (Owned<X509> more{PEM_read_bio_X509(chain.get(), nullptr, no_passphrase, nullptr)}) {
    if (++intermediates > 10) return fail(Errc::invalid_argument, "certificate holds more than 11 certificates");
  }
  auto key_bio = memory(key_pem);
  Owned<EVP_PKEY> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) return fail(Errc::invalid_argument, "private_key is not an unencrypted PEM private key");
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    return fail(Errc::invalid_argument, "private_key does not belong to the certificate");
  }
  const std::string host(hostname);
  if (X509_check_host(leaf.get(), host.c_str(), host.size(), 0, nullptr) != 1) {
    return fail(Errc::invalid_argument, "the certificate does not name " + host);
  }
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  if (X509_cmp_time(X509_get0_notAfter(leaf.get()), const_cast<std::time_t*>(&t)) <= 0) {
    return fail(Errc::invalid_argument, "the certificate has expired");
  }
  std::tm not_after{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &not_after) != 1) {
    return fail(Errc::invalid_argument, "the certificate's notAfter cannot be read");
  }
  CertificateInfo info;
  info.not_after = std::chrono::system_clock::from_time_t(timegm(&not_after));
  Owned<BIO> out(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(out.get(), X509_get_subject_name(leaf.get()), 0, XN_FLAG_RFC2253);
  char* text = nullptr;
  const long n = BIO_get_mem_data(out.get(), &text);
  info.subject.assign(text, static_cast<std::size_t>(n));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(leaf.get(), EVP_sha256(), digest, &length);
  for (unsigned i = 0; i < length; ++i) info.fingerprint_sha256 += fmt::format("{:02x}", digest[i]);
  return info;
}

}  // namespace atrium::domains
