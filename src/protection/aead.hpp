#pragma once

// AES-256-GCM (OpenSSL EVP, AES-NI where the CPU has it) with a 96-bit random nonce and a 128-bit tag: the one cipher
// of data protection. 96 bits and not the seed's 16-byte IV: GCM is specified for 96-bit nonces (NIST SP 800-38D
// 8.2); any other length is first hashed with GHASH into the initial counter, which gains nothing and loses the
// direct collision bound. With random 96-bit nonces a key seals at most 2^32 values before the chance of a repeated
// nonce passes 2^-32 (docs/data-protection.md: rotate data keys well before).

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::protection {

inline constexpr std::size_t k_key_bytes = 32;
inline constexpr std::size_t k_nonce_bytes = 12;
inline constexpr std::size_t k_tag_bytes = 16;

// nonce || ciphertext || tag of `plaintext` under `key` (32 bytes), authenticating `aad` too.
std::string aead_seal(std::string_view key, std::string_view plaintext, std::string_view aad);
// The plaintext, or unauthenticated when the key, the associated data or any byte differs.
Result<std::string> aead_open(std::string_view key, std::string_view sealed, std::string_view aad);

// HMAC-SHA-256 of `data` under `key` (32 bytes).
std::string hmac_sha256(std::string_view key, std::string_view data);

// `n` bytes from OpenSSL's CSPRNG.
std::string random_bytes(std::size_t n);

// Base64url without padding, and back (invalid_argument on anything else).
std::string base64url(std::string_view bytes);
Result<std::string> from_base64url(std::string_view text);

}  // namespace atrium::protection
