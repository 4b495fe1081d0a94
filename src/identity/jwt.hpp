#pragma once

// Access tokens: JWTs (RFC 7519) in compact JWS form (RFC 7515), signed with RS256 (default), ES256 or EdDSA
// (Ed25519) and validated by the rules of RFC 8725. OpenSSL stays in jwt.cpp.

#include "core/error.hpp"
#include "core/json.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atrium::identity {

enum class JwtAlgorithm { rs256, es256, eddsa };

// The JOSE "alg" name: "RS256", "ES256", "EdDSA".
std::string_view jwt_alg_name(JwtAlgorithm algorithm);
// Exact, case-sensitive inverse of jwt_alg_name. Anything else ("none", "HS256", "rs256") is invalid_argument.
Result<JwtAlgorithm> parse_jwt_alg(std::string_view name);
// identity.jwt_algorithm as configured (the configuration check refuses other names): RS256 when not one.
JwtAlgorithm configured_jwt_alg(std::string_view name);

// The public half of a signing key: what a verifier trusts and a JWKS publishes.
struct PublicKey {
  std::string kid;
  JwtAlgorithm algorithm = JwtAlgorithm::rs256;
  std::string public_pem;  // SubjectPublicKeyInfo
};

// A key pair bound to exactly one algorithm. private_pem (unencrypted PKCS#8) is a secret: never log it.
struct SigningKey {
  std::string kid;
  JwtAlgorithm algorithm = JwtAlgorithm::rs256;
  std::string private_pem;
  std::string public_pem;  // SubjectPublicKeyInfo

  PublicKey public_key() const { return {kid, algorithm, public_pem}; }
};

// A fresh key: RSA 2048 (e = 65537), EC P-256 or Ed25519. Errors: invalid_argument (bad kid, see below),
// internal (OpenSSL failed). A kid is 1 to 128 printable ASCII characters without spaces.
Result<SigningKey> generate_signing_key(JwtAlgorithm algorithm, std::string kid);

// The public JWK (RFC 7517/7518/8037) with "kid", "alg" and "use":"sig"; integers and coordinates are base64url
// without padding. Errors: invalid_argument (bad kid, PEM unparsable or not a key for the algorithm).
Result<Json> public_jwk(const PublicKey& key);

// The claims of an access token. Times are NumericDates (seconds since the epoch, UTC). Serialized as sub,
// tenant_id (omitted when empty), role, permissions, super_admin (only when true), iss, aud, jti, iat, iat_ms (only
// when set), nbf, exp.
//
// iat_ms is a private claim: the issue time in milliseconds since the epoch, so that a token can be told apart from
// a membership change made in the same second (RevocationStore::revoke_member). When present it must be a
// non-negative integer within the second `iat` names (iat_ms / 1000 == iat); sign() and verify() both refuse
// anything else. Tokens without it count as issued at iat * 1000.
struct AccessClaims {
  std::string sub;
  std::string tenant_id;  // empty for a super admin acting without a tenant
  std::string role;
  std::vector<std::string> permissions;
  bool super_admin = false;
  std::string iss;
  std::string aud;
  std::string jti;
  std::int64_t iat = 0;
  std::optional<std::int64_t> iat_ms;  // nullopt: absent
  std::int64_t nbf = 0;                // 0 after verify() when the token carried none
  std::int64_t exp = 0;
  std::string scope;     // "" for an access token; "embed" for an embed token (analytics:view reads only)
  std::string customer;  // an embed token's one customer (a user of the tenant's product); "" for all

  bool operator==(const AccessClaims&) const = default;
};

// Signs access tokens with one key. Immutable after create(): copies share the parsed key and sign() may run on
// any number of threads at once. A moved-from signer may only be destroyed or assigned to.
class JwtSigner {
 public:
  // Parses the private PEM once. Errors: invalid_argument (bad kid, PEM unparsable or encrypted, not a key for
  // key.algorithm, RSA shorter than 2048 bits).
  static Result<JwtSigner> create(const SigningKey& key);

  // A compact JWS, header {"alg","kid","typ":"JWT"}. Errors: invalid_argument (sub or jti empty, iat_ms not within
  // iat's second, a string that is not UTF-8), internal (OpenSSL failed). Signs what it is given: the caller sets
  // iat/nbf/exp from its Clock.
  Result<std::string> sign(const AccessClaims& claims) const;

  const std::string& kid() const;
  JwtAlgorithm algorithm() const;

 private:
  struct Impl;
  explicit JwtSigner(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

struct VerifyOptions {
  std::string issuer;                  // "iss" must equal this
  std::string audience;                // "aud" (a string or an array of strings) must contain this
  std::chrono::seconds leeway{30};     // clock skew allowed for exp, nbf and iat (0 to 1 hour)
  std::size_t max_token_bytes = 8192;  // longer tokens are refused before any parsing
};

// Verifies access tokens against a fixed set of trusted public keys, each bound to one algorithm: a token's "alg"
// must equal its key's algorithm, so "none", HMAC and algorithm substitution are refused. Immutable after
// create(): copies share the parsed keys and verify() may run on any number of threads at once.
class JwtVerifier {
 public:
  // Parses every PEM once. Errors: invalid_argument (no keys, duplicate or bad kid, PEM unparsable or not a key for
  // its algorithm, RSA shorter than 2048 bits, empty issuer or audience, leeway outside 0..1h, max_token_bytes 0).
  static Result<JwtVerifier> create(std::vector<PublicKey> keys, VerifyOptions options);

  // The token's claims when it is well formed, signed by a trusted key with that key's algorithm, and valid at
  // `now`: exp > now - leeway, nbf and iat <= now + leeway, iss and aud match, sub and jti non-empty. NumericDates
  // (and iat_ms, which must lie within iat's second) must be non-negative integers. On a token with an "aud" array, the
  // returned aud is the configured audience. Every failure is unauthenticated with a short reason for logs (not for
  // clients). Never throws on any input.
  Result<AccessClaims> verify(std::string_view token, std::chrono::system_clock::time_point now) const;

 private:
  struct Impl;
  explicit JwtVerifier(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace atrium::identity
