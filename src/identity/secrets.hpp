#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/hash.hpp"  // sha256_hex, for stored tokens and keys

namespace atrium::identity {

// Password hashing cost (libsodium Argon2id). `interactive` is the production default; `minimum` exists for
// test suites only and is refused nowhere, so never configure it in production.
enum class PasswordCost { minimum, interactive, moderate };
// identity.password_cost as configured: "minimum", "moderate", else interactive.
PasswordCost configured_password_cost(std::string_view name);

// Argon2id hash in the PHC string format ($argon2id$v=19$m=...,t=...,p=1$salt$hash). internal on failure
// (out of memory).
Result<std::string> hash_password(std::string_view password, PasswordCost cost);

// Constant-time check of a password against a stored hash. False for a malformed hash.
bool verify_password(std::string_view password, const std::string& stored_hash);

// 32 random bytes as base64url without padding (43 characters); for refresh tokens, API key secrets.
std::string random_token();

// Seals / opens small secrets (private keys at rest) with XSalsa20-Poly1305 under a 32-byte key.
// The sealed form is base64 of nonce || ciphertext. open_secret fails (unauthenticated) on tampering.
std::string seal_secret(std::string_view plaintext, std::string_view key32);
Result<std::string> open_secret(std::string_view sealed, std::string_view key32);

// Initialises libsodium once; safe to call repeatedly from any thread.
void ensure_sodium();

}  // namespace atrium::identity
