// Fuzzes access-token verification (src/identity/jwt.cpp), what every authenticated request goes through. Two
// parts: the whole input as a token must never verify (it carries no signature made with our key); and claims
// built from the input, signed with our key, must verify to the same claims, and fail once a byte of the signed
// header or payload changes.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check.hpp"
#include "identity/jwt.hpp"

namespace {

using namespace atrium::identity;

using atrium::fuzz::check;

struct Keys {
  JwtSigner signer;
  JwtVerifier verifier;
};

const Keys& keys() {
  static const Keys instance = [] {
    auto key = generate_signing_key(JwtAlgorithm::eddsa, "fuzz-key");
    check(key.has_value(), "a key");
    auto signer = JwtSigner::create(*key);
    auto verifier =
        JwtVerifier::create({key->public_key()}, VerifyOptions{.issuer = "https://atrium.test", .audience = "atrium"});
    check(signer && verifier, "a signer and a verifier");
    return Keys{std::move(*signer), std::move(*verifier)};
  }();
  return instance;
}

constexpr std::int64_t k_now = 1'767'225'600;  // 2026-01-01T00:00:00Z

// Splits the input into NUL-separated fields.
std::string_view field(std::string_view& rest) {
  auto end = rest.find('\0');
  std::string_view value = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{k_now}};
  auto forged = keys().verifier.verify(input, now);
  check(!forged, "no token verifies without our signature");
  check(forged.error().code == atrium::Errc::unauthenticated, "a refused token is unauthenticated");

  std::string_view rest = input;
  AccessClaims claims;
  claims.sub = std::string(field(rest));
  claims.tenant_id = std::string(field(rest));
  claims.role = std::string(field(rest));
  claims.jti = std::string(field(rest));
  for (auto permission = field(rest); !permission.empty(); permission = field(rest)) {
    claims.permissions.emplace_back(permission);
  }
  claims.iss = "https://atrium.test";
  claims.aud = "atrium";
  claims.iat = k_now - 10;
  claims.nbf = k_now - 10;
  claims.exp = k_now + 600;
  claims.super_admin = size % 2 == 1;
  auto token = keys().signer.sign(claims);
  if (!token) return 0;  // empty sub or jti, or text that is not UTF-8
  auto verified = keys().verifier.verify(*token, now);
  check(verified.has_value(), "a token we signed verifies");
  check(*verified == claims, "verification returns the claims that were signed");
  check(!keys().verifier.verify(*token, now + std::chrono::seconds{600 + 31}), "an expired token is refused");
  const auto signed_part = token->rfind('.');
  std::string tampered = *token;
  const std::size_t at = size % signed_part;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  check(!keys().verifier.verify(tampered, now), "a changed header or payload is refused");
  return 0;
}
