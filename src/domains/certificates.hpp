#pragma once

#include <string_view>

#include "core/error.hpp"
#include "core/time.hpp"
#include "domains/domain.hpp"

namespace atrium::domains {

// Checks an uploaded TLS certificate for a custom domain (OpenSSL): `chain_pem` holds the leaf certificate first,
// then any intermediates (at most 10, 64 KiB in all); `key_pem` the leaf's private key, unencrypted PEM. The key
// must match the leaf, the leaf must name `hostname` (subject alternative names, wildcards as RFC 6125 allows) and
// be valid at `now`. invalid_argument saying which check failed; the leaf's description otherwise.
Result<CertificateInfo> check_certificate(std::string_view chain_pem, std::string_view key_pem,
                                          std::string_view hostname, Instant now);

}  // namespace atrium::domains
