#include "identity/jwt.hpp"

#include "core/clock.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>

namespace atrium::identity {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kStart = 1'800'000'000;  // 2027-01-15T08:00:00Z
constexpr char kIssuer[] = "https://auth.atrium.test";
constexpr char kAudience[] = "atrium-api";
constexpr char kBase64UrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// ---- encoding and OpenSSL helpers (the test forges tokens with OpenSSL directly) ----

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

std::string b64(std::string_view bytes, int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes_of(bytes), bytes.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string unb64(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t length = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &length, nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    throw std::runtime_error("test bug: not base64url: " + std::string(text));
  }
  out.resize(length);
  return out;
}

std::vector<std::string> segments(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = token.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(token.substr(start, dot - start));
  }
  parts.push_back(token.substr(start));
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : ".") + parts[i];
  return out;
}

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Pkey read_key(const std::string& pem, bool is_private) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return Pkey(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                         : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
              &EVP_PKEY_free);
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

// RSASSA-PKCS1-v1_5 with SHA-256 over `input`, straight from OpenSSL.
std::string rsa_sign(const SigningKey& key, std::string_view input) {
  Pkey pkey = read_key(key.private_pem, true);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t length = 0;
  if (!pkey || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, bytes_of(input), input.size()) != 1) {
    throw std::runtime_error("test bug: RSA signing failed");
  }
  std::string sig(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &length, bytes_of(input), input.size()) !=
      1) {
    throw std::runtime_error("test bug: RSA signing failed");
  }
  sig.resize(length);
  return sig;
}

std::string hmac_sha256(std::string_view secret, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), bytes_of(input), input.size(), mac, &length);
  return std::string(reinterpret_cast<char*>(mac), length);
}

// The raw R||S of an ES256 signature, re-encoded as the DER that OpenSSL (but not JWS) uses.
std::string ecdsa_raw_to_der(std::string_view raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(bytes_of(raw), 32, nullptr), BN_bin2bn(bytes_of(raw) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

// Rebuilds a public key from a JWK with OpenSSL, independently of the code under test.
Pkey key_from_jwk(const Json& jwk) {
  const std::string kty = jwk.at("kty");
  if (kty == "OKP") {
    const std::string x = unb64(jwk.at("x").get<std::string>());
    return Pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(x), x.size()), &EVP_PKEY_free);
  }
  OSSL_PARAM_BLD* build = OSSL_PARAM_BLD_new();
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  std::string point;
  if (kty == "RSA") {
    const std::string n_bytes = unb64(jwk.at("n").get<std::string>());
    const std::string e_bytes = unb64(jwk.at("e").get<std::string>());
    n = BN_bin2bn(bytes_of(n_bytes), static_cast<int>(n_bytes.size()), nullptr);
    e = BN_bin2bn(bytes_of(e_bytes), static_cast<int>(e_bytes.size()), nullptr);
    OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_E, e);
  } else {
    point = "\x04" + unb64(jwk.at("x").get<std::string>()) + unb64(jwk.at("y").get<std::string>());
    OSSL_PARAM_BLD_push_utf8_string(build, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
    OSSL_PARAM_BLD_push_octet_string(build, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(build);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, kty == "RSA" ? "RSA" : "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    key = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(build);
  BN_free(n);
  BN_free(e);
  return Pkey(key, &EVP_PKEY_free);
}

// ---- shared keys (key generation is slow, so once per process) ----

struct Keys {
  SigningKey rsa, rsa_impostor, ec, ed;
};

SigningKey generate(JwtAlgorithm algorithm, const std::string& kid) {
  auto key = generate_signing_key(algorithm, kid);
  if (!key) throw std::runtime_error("key generation failed: " + key.error().message);
  return *key;
}

const Keys& keys() {
  static const Keys k{generate(JwtAlgorithm::rs256, "rsa-1"),
                      generate(JwtAlgorithm::rs256, "rsa-1"),  // an attacker's key claiming the same kid
                      generate(JwtAlgorithm::es256, "ec-1"), generate(JwtAlgorithm::eddsa, "ed-1")};
  return k;
}

VerifyOptions default_options() { return {.issuer = kIssuer, .audience = kAudience}; }

JwtVerifier make_verifier(VerifyOptions options = default_options()) {
  auto v = JwtVerifier::create({keys().rsa.public_key(), keys().ec.public_key(), keys().ed.public_key()},
                               std::move(options));
  if (!v) throw std::runtime_error("verifier: " + v.error().message);
  return *v;
}

std::string sign_with(const SigningKey& key, const AccessClaims& claims) {
  auto signer = JwtSigner::create(key);
  if (!signer) throw std::runtime_error("signer: " + signer.error().message);
  auto token = signer->sign(claims);
  if (!token) throw std::runtime_error("sign: " + token.error().message);
  return *token;
}

// header.payload.signature over the given JSON texts, with a genuine RS256 signature by `key`.
std::string rs256_token(std::string_view header_json, std::string_view payload_json,
                        const SigningKey& key = keys().rsa) {
  const std::string input = b64(header_json) + "." + b64(payload_json);
  return input + "." + b64(rsa_sign(key, input));
}

::testing::AssertionResult Refused(const Result<AccessClaims>& result, std::string_view reason = {}) {
  if (result) return ::testing::AssertionFailure() << "token accepted (sub " << result->sub << ")";
  if (result.error().code != Errc::unauthenticated) {
    return ::testing::AssertionFailure() << "refused as " << errc_name(result.error().code) << ": "
                                         << result.error().message;
  }
  if (!reason.empty() && result.error().message != reason) {
    return ::testing::AssertionFailure() << "refused for '" << result.error().message << "', expected '" << reason
                                         << "'";
  }
  return ::testing::AssertionSuccess();
}

class JwtTest : public ::testing::Test {
 protected:
  std::int64_t now() const { return std::chrono::floor<std::chrono::seconds>(clock_.now().time_since_epoch()).count(); }

  AccessClaims claims() const {
    AccessClaims c;
    c.sub = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    c.tenant_id = "0190a1b2-0000-7000-8000-000000000001";
    c.role = "admin";
    c.permissions = {"users:read", "users:write", "billing:read"};
    c.iss = kIssuer;
    c.aud = kAudience;
    c.jti = "0190a1b2-0000-7000-8000-00000000abcd";
    c.iat = now();
    c.nbf = now();
    c.exp = now() + 300;
    return c;
  }

  Result<AccessClaims> verify(std::string_view token) const { return verifier_.verify(token, clock_.now()); }

  // The header and payload our signer writes, edited, then genuinely signed with the trusted RSA key: whatever is
  // refused is refused for its content, not for its signature.
  std::string resigned(const std::function<void(Json& header, Json& payload)>& edit) const {
    Json header = {{"alg", "RS256"}, {"kid", "rsa-1"}, {"typ", "JWT"}};
    Json payload = Json::parse(unb64(segments(sign_with(keys().rsa, claims()))[1]));
    edit(header, payload);
    return rs256_token(header.dump(), payload.dump());
  }
  std::string with_payload(const std::function<void(Json&)>& edit) const {
    return resigned([&](Json&, Json& payload) { edit(payload); });
  }
  std::string with_header(const std::function<void(Json&)>& edit) const {
    return resigned([&](Json& header, Json&) { edit(header); });
  }

  ManualClock clock_{std::chrono::system_clock::time_point(std::chrono::seconds(kStart))};
  JwtVerifier verifier_ = make_verifier();
};

// ---- algorithms, keys, JWKs ----

TEST(JwtAlgorithmNames, RoundTripAndMatchExactly) {
  for (auto a : {JwtAlgorithm::rs256, JwtAlgorithm::es256, JwtAlgorithm::eddsa}) {
    auto parsed = parse_jwt_alg(jwt_alg_name(a));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, a);
  }
  EXPECT_EQ(jwt_alg_name(JwtAlgorithm::rs256), "RS256");
  EXPECT_EQ(jwt_alg_name(JwtAlgorithm::es256), "ES256");
  EXPECT_EQ(jwt_alg_name(JwtAlgorithm::eddsa), "EdDSA");
  for (const char* bad : {"none", "None", "HS256", "rs256", "RS256 ", "ES384", "EDDSA", "Ed25519", "PS256", ""}) {
    auto parsed = parse_jwt_alg(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
  }
}

TEST(JwtKeys, GeneratedKeysArePkcs8AndSubjectPublicKeyInfo) {
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    EXPECT_TRUE(key->private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n")) << key->kid;
    EXPECT_TRUE(key->public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n")) << key->kid;
    EXPECT_TRUE(read_key(key->private_pem, true)) << key->kid;
    EXPECT_TRUE(read_key(key->public_pem, false)) << key->kid;
  }
  EXPECT_EQ(EVP_PKEY_get_bits(read_key(keys().rsa.public_pem, false).get()), 2048);
  EXPECT_EQ(keys().rsa.algorithm, JwtAlgorithm::rs256);
  EXPECT_EQ(keys().ec.algorithm, JwtAlgorithm::es256);
  EXPECT_EQ(keys().ed.algorithm, JwtAlgorithm::eddsa);
  EXPECT_NE(keys().rsa.public_pem, keys().rsa_impostor.public_pem);
  EXPECT_FALSE(generate_signing_key(JwtAlgorithm::eddsa, ""));
  EXPECT_FALSE(generate_signing_key(JwtAlgorithm::eddsa, "has space"));
}

TEST(JwtKeys, JwksDescribeTheSamePublicKeys) {
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    SCOPED_TRACE(key->kid);
    auto jwk = public_jwk(key->public_key());
    ASSERT_TRUE(jwk) << jwk.error().message;
    EXPECT_EQ(jwk->at("kid"), key->kid);
    EXPECT_EQ(jwk->at("alg"), std::string(jwt_alg_name(key->algorithm)));
    EXPECT_EQ(jwk->at("use"), "sig");
    EXPECT_FALSE(jwk->contains("d"));  // never private material
    for (const auto& [name, value] : jwk->items()) {
      ASSERT_TRUE(value.is_string()) << name;
      EXPECT_EQ(value.get<std::string>().find_first_of("=+/"), std::string::npos) << name;
    }
    Pkey rebuilt = key_from_jwk(*jwk);
    ASSERT_TRUE(rebuilt);
    EXPECT_EQ(EVP_PKEY_eq(rebuilt.get(), read_key(key->public_pem, false).get()), 1);
  }
  auto rsa = *public_jwk(keys().rsa.public_key());
  EXPECT_EQ(rsa.at("kty"), "RSA");
  EXPECT_EQ(rsa.at("e"), "AQAB");  // 65537, no leading zero bytes
  const std::string n = unb64(rsa.at("n").get<std::string>());
  EXPECT_EQ(n.size(), 256u);
  EXPECT_NE(n.front(), '\0');
  auto ec = *public_jwk(keys().ec.public_key());
  EXPECT_EQ(ec.at("kty"), "EC");
  EXPECT_EQ(ec.at("crv"), "P-256");
  EXPECT_EQ(unb64(ec.at("x").get<std::string>()).size(), 32u);
  EXPECT_EQ(unb64(ec.at("y").get<std::string>()).size(), 32u);
  auto ed = *public_jwk(keys().ed.public_key());
  EXPECT_EQ(ed.at("kty"), "OKP");
  EXPECT_EQ(ed.at("crv"), "Ed25519");
  EXPECT_EQ(unb64(ed.at("x").get<std::string>()).size(), 32u);
}

TEST(JwtKeys, Ed25519JwkMatchesRfc8037Example) {
  // RFC 8037 appendix A.1.
  const std::string d = unb64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, bytes_of(d), d.size()), &EVP_PKEY_free);
  ASSERT_TRUE(key);
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), key.get()), 1);
  auto jwk = public_jwk({"rfc8037", JwtAlgorithm::eddsa, bio_text(bio.get())});
  ASSERT_TRUE(jwk) << jwk.error().message;
  EXPECT_EQ(jwk->at("x"), "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
}

TEST(JwtKeys, PublicJwkRefusesAKeyOfAnotherAlgorithm) {
  auto jwk = public_jwk({"rsa-1", JwtAlgorithm::es256, keys().rsa.public_pem});
  ASSERT_FALSE(jwk);
  EXPECT_EQ(jwk.error().code, Errc::invalid_argument);
  EXPECT_FALSE(public_jwk({"x", JwtAlgorithm::rs256, "not a pem"}));
}

TEST(JwtFactories, RefuseBadConfiguration) {
  const auto rsa = keys().rsa.public_key();
  auto refused = [](const Result<JwtVerifier>& r) { return !r && r.error().code == Errc::invalid_argument; };
  EXPECT_TRUE(refused(JwtVerifier::create({}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa, rsa}, default_options())));  // duplicate kid
  EXPECT_TRUE(refused(JwtVerifier::create({{"k", JwtAlgorithm::rs256, "garbage"}}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({{"k", JwtAlgorithm::es256, rsa.public_pem}}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({{"k", JwtAlgorithm::eddsa, keys().ec.public_pem}}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({{"k", JwtAlgorithm::rs256, keys().rsa.private_pem}}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({{"", JwtAlgorithm::rs256, rsa.public_pem}}, default_options())));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa}, {.issuer = "", .audience = kAudience})));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa}, {.issuer = kIssuer, .audience = ""})));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa}, {.issuer = kIssuer, .audience = kAudience, .leeway = -1s})));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa}, {.issuer = kIssuer, .audience = kAudience, .leeway = 2h})));
  EXPECT_TRUE(refused(JwtVerifier::create({rsa}, {.issuer = kIssuer, .audience = kAudience, .max_token_bytes = 0})));
  EXPECT_TRUE(JwtVerifier::create({rsa}, default_options()));

  // A 1024-bit RSA key is too short.
  Pkey small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024)), &EVP_PKEY_free);
  Bio small_bio(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(small_bio.get(), small.get()), 1);
  EXPECT_TRUE(
      refused(JwtVerifier::create({{"small", JwtAlgorithm::rs256, bio_text(small_bio.get())}}, default_options())));

  auto signer_refused = [](const SigningKey& key) {
    auto s = JwtSigner::create(key);
    return !s && s.error().code == Errc::invalid_argument;
  };
  SigningKey key = keys().rsa;
  key.private_pem = keys().rsa.public_pem;  // a public key is not a private key
  EXPECT_TRUE(signer_refused(key));
  key = keys().rsa;
  key.algorithm = JwtAlgorithm::es256;
  EXPECT_TRUE(signer_refused(key));
  key = keys().rsa;
  key.public_pem = keys().rsa_impostor.public_pem;  // the published half must match
  EXPECT_TRUE(signer_refused(key));
  key = keys().rsa;
  key.kid = "bad kid";
  EXPECT_TRUE(signer_refused(key));

  // An encrypted PEM is refused without prompting for a passphrase.
  Pkey rsa_key = read_key(keys().rsa.private_pem, true);
  Bio encrypted(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(
      PEM_write_bio_PKCS8PrivateKey(encrypted.get(), rsa_key.get(), EVP_aes_256_cbc(), "secret", 6, nullptr, nullptr),
      1);
  key = keys().rsa;
  key.private_pem = bio_text(encrypted.get());
  EXPECT_TRUE(signer_refused(key));
  ERR_clear_error();
}

// ---- round trips ----

TEST_F(JwtTest, RoundTripForEachAlgorithm) {
  AccessClaims c = claims();
  c.permissions.push_back("caf\u00e9:read \"quoted\"");
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    SCOPED_TRACE(key->kid);
    const std::string token = sign_with(*key, c);
    const auto parts = segments(token);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(Json::parse(unb64(parts[0])),
              Json({{"alg", std::string(jwt_alg_name(key->algorithm))}, {"kid", key->kid}, {"typ", "JWT"}}));
    auto verified = verify(token);
    ASSERT_TRUE(verified) << verified.error().message;
    EXPECT_EQ(*verified, c);
  }
  const auto sizes =
      std::array{segments(sign_with(keys().ec, c))[2].size(), segments(sign_with(keys().ed, c))[2].size()};
  EXPECT_EQ(sizes[0], 86u);  // 64 raw bytes, no padding
  EXPECT_EQ(sizes[1], 86u);
}

TEST_F(JwtTest, SuperAdminWithoutTenantRoundTrips) {
  AccessClaims c = claims();
  c.tenant_id.clear();
  c.super_admin = true;
  c.permissions.clear();
  const std::string token = sign_with(keys().rsa, c);
  const Json payload = Json::parse(unb64(segments(token)[1]));
  EXPECT_FALSE(payload.contains("tenant_id"));
  EXPECT_EQ(payload.at("super_admin"), true);
  EXPECT_EQ(payload.at("permissions"), Json::array());
  auto verified = verify(token);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(*verified, c);

  const Json plain = Json::parse(unb64(segments(sign_with(keys().rsa, claims()))[1]));
  EXPECT_FALSE(plain.contains("super_admin"));
  EXPECT_EQ(plain.at("tenant_id"), claims().tenant_id);
  for (const char* name : {"sub", "role", "iss", "aud", "jti"}) EXPECT_TRUE(plain.at(name).is_string()) << name;
  for (const char* name : {"iat", "nbf", "exp"}) EXPECT_TRUE(plain.at(name).is_number_integer()) << name;
}

TEST_F(JwtTest, SignRefusesClaimsWithoutSubOrJti) {
  auto signer = *JwtSigner::create(keys().rsa);
  AccessClaims c = claims();
  c.sub.clear();
  ASSERT_FALSE(signer.sign(c));
  EXPECT_EQ(signer.sign(c).error().code, Errc::invalid_argument);
  c = claims();
  c.jti.clear();
  EXPECT_FALSE(signer.sign(c));
  c = claims();
  c.role = "\xff";  // not UTF-8
  EXPECT_FALSE(signer.sign(c));
}

TEST_F(JwtTest, ResignedTokenWithoutEditsIsAccepted) {
  // Guards the forgery tests below: their tokens fail only because of the edit.
  EXPECT_TRUE(verify(resigned([](Json&, Json&) {})));
  EXPECT_TRUE(verify(with_header([](Json& h) { h["x-unknown"] = {{"nested", 1}}; })));  // ignored, not crit
}

// ---- algorithm and key confusion ----

TEST_F(JwtTest, RefusesAlgNone) {
  const std::string payload = b64(Json::parse(unb64(segments(sign_with(keys().rsa, claims()))[1])).dump());
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    const std::string header = b64(Json({{"alg", alg}, {"kid", "rsa-1"}, {"typ", "JWT"}}).dump());
    EXPECT_TRUE(Refused(verify(header + "." + payload + "."))) << alg;
    EXPECT_TRUE(Refused(verify(header + "." + payload + ".AAAA"), "algorithm not allowed")) << alg;
  }
}

TEST_F(JwtTest, RefusesHs256SignedWithTheRsaPublicKey) {
  // The classic key confusion: HMAC keyed with the verifier's own public key bytes.
  for (const char* alg : {"HS256", "hs256"}) {
    const std::string header = b64(Json({{"alg", alg}, {"kid", "rsa-1"}, {"typ", "JWT"}}).dump());
    const std::string payload = b64(Json::parse(unb64(segments(sign_with(keys().rsa, claims()))[1])).dump());
    const std::string input = header + "." + payload;
    const std::string& pem = keys().rsa.public_pem;
    for (const std::string& secret : {pem, pem.substr(0, pem.size() - 1)}) {
      EXPECT_TRUE(Refused(verify(input + "." + b64(hmac_sha256(secret, input))), "algorithm not allowed")) << alg;
    }
  }
}

TEST_F(JwtTest, RefusesAlgorithmCaseVariantsEvenWhenGenuinelySigned) {
  for (const char* alg : {"rs256", "Rs256", "RS256 ", " RS256", "RS384", "PS256"}) {
    EXPECT_TRUE(Refused(verify(with_header([&](Json& h) { h["alg"] = alg; })), "algorithm not allowed")) << alg;
  }
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["alg"] = 256; }))));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h.erase("alg"); }))));
}

TEST_F(JwtTest, RefusesAnotherAlgorithmForTheRsaKeyId) {
  // Header says ES256 with the RSA key's kid: refused whatever the signature.
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["alg"] = "ES256"; })), "algorithm not allowed for this key"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["alg"] = "EdDSA"; })), "algorithm not allowed for this key"));
  // Even a genuine ES256 signature by a trusted EC key does not pass under the RSA key's kid.
  SigningKey ec_as_rsa = keys().ec;
  ec_as_rsa.kid = "rsa-1";
  EXPECT_TRUE(Refused(verify(sign_with(ec_as_rsa, claims())), "algorithm not allowed for this key"));
  SigningKey ed_as_ec = keys().ed;
  ed_as_ec.kid = "ec-1";
  EXPECT_TRUE(Refused(verify(sign_with(ed_as_ec, claims())), "algorithm not allowed for this key"));
}

TEST_F(JwtTest, RefusesUnknownOrMissingKeyId) {
  SigningKey renamed = keys().rsa;
  renamed.kid = "rsa-2";
  EXPECT_TRUE(Refused(verify(sign_with(renamed, claims())), "unknown key id"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h.erase("kid"); })), "missing key id"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["kid"] = 1; })), "missing key id"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["kid"] = "RSA-1"; })), "unknown key id"));
}

TEST_F(JwtTest, RefusesASignatureByAnotherKeyWithTheSameKid) {
  EXPECT_TRUE(Refused(verify(sign_with(keys().rsa_impostor, claims())), "bad signature"));
  // An embedded key in the header changes nothing: only trusted keys verify.
  const Json impostor_jwk = *public_jwk(keys().rsa_impostor.public_key());
  Json header = {{"alg", "RS256"}, {"kid", "rsa-1"}, {"typ", "JWT"}, {"jwk", impostor_jwk}};
  const std::string payload = unb64(segments(sign_with(keys().rsa, claims()))[1]);
  EXPECT_TRUE(Refused(verify(rs256_token(header.dump(), payload, keys().rsa_impostor)), "bad signature"));
}

// ---- time ----

TEST_F(JwtTest, ExpiryAllowsTheLeewayAndNoMore) {
  const std::string token = sign_with(keys().rsa, claims());  // exp = now + 300
  clock_.advance(300s + 29s);
  EXPECT_TRUE(verify(token));  // expired 29 s ago, within the 30 s leeway
  clock_.advance(999ms);
  EXPECT_TRUE(verify(token));
  clock_.advance(1ms);
  EXPECT_TRUE(Refused(verify(token), "token expired"));
  clock_.advance(24h);
  EXPECT_TRUE(Refused(verify(token), "token expired"));

  auto strict = make_verifier({.issuer = kIssuer, .audience = kAudience, .leeway = 0s});
  const auto exp = std::chrono::system_clock::time_point(std::chrono::seconds(kStart + 300));
  EXPECT_TRUE(strict.verify(token, exp - 1s));
  EXPECT_TRUE(Refused(strict.verify(token, exp), "token expired"));
}

TEST_F(JwtTest, RefusesNotBeforeInTheFuture) {
  EXPECT_TRUE(verify(with_payload([&](Json& p) { p["nbf"] = now() + 30; })));
  EXPECT_TRUE(Refused(verify(with_payload([&](Json& p) { p["nbf"] = now() + 31; })), "token not yet valid"));
  const std::string later = with_payload([&](Json& p) { p["nbf"] = now() + 120; });
  EXPECT_TRUE(Refused(verify(later), "token not yet valid"));
  clock_.advance(90s);
  EXPECT_TRUE(verify(later));
  // nbf is optional.
  auto without = verify(with_payload([](Json& p) { p.erase("nbf"); }));
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_EQ(without->nbf, 0);
}

TEST_F(JwtTest, RefusesIssuedAtInTheFuture) {
  EXPECT_TRUE(verify(with_payload([&](Json& p) { p["iat"] = now() + 30; })));
  EXPECT_TRUE(Refused(verify(with_payload([&](Json& p) { p["iat"] = now() + 31; })), "token issued in the future"));
  EXPECT_TRUE(Refused(verify(with_payload([&](Json& p) { p["iat"] = now() + 3600; })), "token issued in the future"));
}

TEST_F(JwtTest, IssuedAtMillisecondsRoundTripAndMustLieWithinIat) {
  AccessClaims c = claims();
  c.iat_ms = c.iat * 1000 + 999;
  const std::string token = sign_with(keys().rsa, c);
  EXPECT_EQ(Json::parse(unb64(segments(token)[1])).at("iat_ms"), c.iat * 1000 + 999);
  auto verified = verify(token);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(*verified, c);
  // Optional: tokens signed without it verify, and say so.
  const std::string plain = sign_with(keys().rsa, claims());
  EXPECT_FALSE(Json::parse(unb64(segments(plain)[1])).contains("iat_ms"));
  auto without = verify(plain);
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_FALSE(without->iat_ms.has_value());

  // A non-negative integer within the second iat names; anything else is refused.
  const std::int64_t first = now() * 1000;
  for (const std::int64_t ms : {first, first + 1, first + 999}) {
    auto ok = verify(with_payload([&](Json& p) { p["iat_ms"] = ms; }));
    ASSERT_TRUE(ok) << ms << ": " << ok.error().message;
    EXPECT_EQ(ok->iat_ms, ms);
  }
  const std::vector<std::pair<std::string, std::function<void(Json&)>>> refused = {
      {"just before iat's second", [&](Json& p) { p["iat_ms"] = first - 1; }},
      {"just after iat's second", [&](Json& p) { p["iat_ms"] = first + 1000; }},
      {"zero", [](Json& p) { p["iat_ms"] = 0; }},
      {"negative", [](Json& p) { p["iat_ms"] = -1; }},
      {"beyond int64", [](Json& p) { p["iat_ms"] = std::numeric_limits<std::uint64_t>::max(); }},
      {"int64 max", [](Json& p) { p["iat_ms"] = std::numeric_limits<std::int64_t>::max(); }},
      {"as string", [&](Json& p) { p["iat_ms"] = std::to_string(first); }},
      {"as float", [&](Json& p) { p["iat_ms"] = static_cast<double>(first) + 0.5; }},
      {"as whole float", [&](Json& p) { p["iat_ms"] = static_cast<double>(first); }},
      {"as bool", [](Json& p) { p["iat_ms"] = true; }},
      {"null", [](Json& p) { p["iat_ms"] = nullptr; }},
      {"in seconds", [&](Json& p) { p["iat_ms"] = now(); }},
  };
  for (const auto& [name, edit] : refused) {
    EXPECT_TRUE(Refused(verify(with_payload(edit)), "missing or invalid claim iat_ms")) << name;
  }

  // The signer refuses to write what the verifier would refuse.
  auto signer = *JwtSigner::create(keys().rsa);
  for (const std::int64_t ms : {c.iat * 1000 - 1, c.iat * 1000 + 1000, std::int64_t{-1}}) {
    AccessClaims bad = claims();
    bad.iat_ms = ms;
    const auto signed_token = signer.sign(bad);
    ASSERT_FALSE(signed_token) << ms;
    EXPECT_EQ(signed_token.error().code, Errc::invalid_argument);
  }
}

// ---- issuer and audience ----

TEST_F(JwtTest, RefusesWrongIssuerOrAudience) {
  AccessClaims c = claims();
  c.iss = "https://evil.test";
  EXPECT_TRUE(Refused(verify(sign_with(keys().rsa, c)), "wrong issuer"));
  c = claims();
  c.aud = "other-api";
  EXPECT_TRUE(Refused(verify(sign_with(keys().ed, c)), "wrong audience"));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["iss"] = std::string(kIssuer) + "/"; })), "wrong issuer"));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["aud"] = "ATRIUM-API"; })), "wrong audience"));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p.erase("aud"); }))));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p.erase("iss"); }))));
}

TEST_F(JwtTest, AcceptsAnAudienceArrayContainingTheAudience) {
  auto verified = verify(with_payload([](Json& p) { p["aud"] = {"billing-api", kAudience}; }));
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->aud, kAudience);
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["aud"] = {"billing-api", "other"}; })), "wrong audience"));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["aud"] = Json::array(); })), "wrong audience"));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["aud"] = {kAudience, 1}; }))));
  EXPECT_TRUE(Refused(verify(with_payload([](Json& p) { p["aud"] = {{"aud", kAudience}}; }))));
}

// ---- tampering ----

TEST_F(JwtTest, RefusesAnAlteredPayloadUnderTheOriginalSignature) {
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    SCOPED_TRACE(key->kid);
    auto parts = segments(sign_with(*key, claims()));
    Json payload = Json::parse(unb64(parts[1]));
    payload["super_admin"] = true;
    payload["role"] = "owner";
    parts[1] = b64(payload.dump());
    EXPECT_TRUE(Refused(verify(join(parts)), "bad signature"));
    // Even a change that keeps the JSON equivalent (whitespace) breaks the signature.
    parts[1] = b64(Json::parse(unb64(segments(sign_with(*key, claims()))[1])).dump(1));
    EXPECT_TRUE(Refused(verify(join(parts)), "bad signature"));
  }
}

TEST_F(JwtTest, RefusesAStrippedSignature) {
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    const auto parts = segments(sign_with(*key, claims()));
    EXPECT_TRUE(Refused(verify(parts[0] + "." + parts[1] + "."), "missing signature")) << key->kid;
    EXPECT_TRUE(Refused(verify(parts[0] + "." + parts[1]), "malformed token")) << key->kid;
  }
}

TEST_F(JwtTest, Es256RefusesDerEncodedAndWrongLengthSignatures) {
  auto parts = segments(sign_with(keys().ec, claims()));
  const std::string raw = unb64(parts[2]);
  ASSERT_EQ(raw.size(), 64u);
  ASSERT_TRUE(verify(join(parts)));
  for (const std::string& sig : {ecdsa_raw_to_der(raw), raw + '\0', raw.substr(0, 63), '\0' + raw.substr(0, 63),
                                 std::string(64, '\0'), raw.substr(32) + raw.substr(0, 32)}) {
    parts[2] = b64(sig);
    EXPECT_TRUE(Refused(verify(join(parts)), "bad signature")) << sig.size();
  }
}

// The order n of P-256, from OpenSSL (independently of the code under test).
using Bn = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
Bn p256_order() {
  std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1),
                                                            &EC_GROUP_free);
  return Bn(BN_dup(EC_GROUP_get0_order(group.get())), &BN_free);
}

// Whether OpenSSL itself accepts the raw R||S `sig` over `input` under the EC key: the ECDSA maths, without the
// verifier's policy.
bool openssl_es256_valid(std::string_view input, std::string_view raw) {
  Pkey pkey = read_key(keys().ec.public_pem, false);
  const std::string der = ecdsa_raw_to_der(raw);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), bytes_of(der), der.size(), bytes_of(input), input.size()) == 1;
}

TEST_F(JwtTest, Es256SignsAndAcceptsOnlyLowS) {
  const Bn n = p256_order();
  ASSERT_TRUE(n);
  Bn half(BN_new(), &BN_free);
  ASSERT_EQ(BN_rshift1(half.get(), n.get()), 1);
  auto signer = *JwtSigner::create(keys().ec);
  for (int i = 0; i < 200; ++i) {
    AccessClaims c = claims();
    c.jti = "jti-" + std::to_string(i);
    auto token = signer.sign(c);
    ASSERT_TRUE(token) << token.error().message;
    ASSERT_TRUE(verify(*token)) << i;
    auto parts = segments(*token);
    const std::string raw = unb64(parts[2]);
    ASSERT_EQ(raw.size(), 64u);
    Bn s(BN_bin2bn(bytes_of(raw) + 32, 32, nullptr), &BN_free);
    // Half of all ECDSA signatures come out of OpenSSL with a high S; every one of ours has been normalised.
    ASSERT_LE(BN_cmp(s.get(), half.get()), 0) << "token " << i << " has a high S";

    // The same signature with s' = n - s: valid ECDSA (OpenSSL accepts it), refused by the verifier.
    Bn high(BN_new(), &BN_free);
    ASSERT_EQ(BN_sub(high.get(), n.get(), s.get()), 1);
    std::string flipped = raw.substr(0, 32) + std::string(32, '\0');
    ASSERT_EQ(BN_bn2binpad(high.get(), reinterpret_cast<unsigned char*>(flipped.data()) + 32, 32), 32);
    const std::string input = parts[0] + "." + parts[1];
    ASSERT_TRUE(openssl_es256_valid(input, raw));
    ASSERT_TRUE(openssl_es256_valid(input, flipped)) << "test bug: the flipped signature is not valid ECDSA";
    parts[2] = b64(flipped);
    EXPECT_TRUE(Refused(verify(join(parts)), "bad signature")) << i;
  }
  ERR_clear_error();
}

TEST_F(JwtTest, EdDsaAndRs256RefuseWrongLengthSignatures) {
  for (const SigningKey* key : {&keys().ed, &keys().rsa}) {
    auto parts = segments(sign_with(*key, claims()));
    const std::string sig = unb64(parts[2]);
    for (const std::string& bad : {sig + '\0', sig.substr(1), '\0' + sig, std::string(sig.size(), '\0')}) {
      parts[2] = b64(bad);
      EXPECT_TRUE(Refused(verify(join(parts)), "bad signature")) << key->kid << " " << bad.size();
    }
  }
}

// ---- size and shape ----

TEST_F(JwtTest, EnforcesTheTokenSizeLimitFirst) {
  const std::string token = sign_with(keys().rsa, claims());
  EXPECT_TRUE(make_verifier({.issuer = kIssuer, .audience = kAudience, .max_token_bytes = token.size()})
                  .verify(token, clock_.now()));
  EXPECT_TRUE(Refused(make_verifier({.issuer = kIssuer, .audience = kAudience, .max_token_bytes = token.size() - 1})
                          .verify(token, clock_.now()),
                      "token too large"));
  AccessClaims big = claims();
  big.permissions.assign(500, "tenant:resource:action");
  const std::string large = sign_with(keys().rsa, big);
  ASSERT_GT(large.size(), 8192u);
  EXPECT_TRUE(Refused(verify(large), "token too large"));
  EXPECT_TRUE(Refused(verify(std::string(1 << 20, '.')), "token too large"));
}

TEST_F(JwtTest, RefusesMalformedSegmentsAndStrayCharacters) {
  const std::string token = sign_with(keys().rsa, claims());
  const auto parts = segments(token);
  std::vector<std::string> bad = {
      "",
      ".",
      "..",
      "...",
      "a.b.c",
      "!!.@@.##",
      token + "." + parts[2],                       // extra segment
      token + ".",                                  // extra empty segment
      "." + parts[1] + "." + parts[2],              // empty header
      parts[0] + ".." + parts[2],                   // empty payload
      parts[0] + "=." + parts[1] + "." + parts[2],  // padding
      parts[0] + "." + parts[1] + "==." + parts[2],
      token + "==",
      token + "=",
      " " + token,
      token + " ",
      token + "\n",
      parts[0] + ". " + parts[1] + "." + parts[2],
      parts[0] + "." + parts[1] + "." + parts[2].substr(0, 100) + "\n" + parts[2].substr(100),
      std::string(token.data(), token.size() - 1) + std::string("\0", 1),
      token.substr(0, token.size() - 1),  // 341 characters cannot be 256 bytes of base64url
  };
  // The standard alphabet ('+' and '/') is not base64url.
  std::string standard = b64(unb64(parts[2]), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  if (standard == parts[2]) standard[0] = '+';
  bad.push_back(parts[0] + "." + parts[1] + "." + standard);
  bad.push_back(parts[0] + "." + parts[1] + "." + b64(unb64(parts[2]), sodium_base64_VARIANT_URLSAFE));
  // Non-zero unused bits in the last character would decode to the same bytes in a lax decoder.
  ASSERT_EQ(unb64(parts[2]).size() % 3, 1u);  // two characters for the last byte: four unused bits
  std::string malleable = parts[2];
  const std::string_view alphabet = kBase64UrlAlphabet;
  malleable.back() = alphabet[alphabet.find(malleable.back()) ^ 1];
  bad.push_back(parts[0] + "." + parts[1] + "." + malleable);
  for (const auto& t : bad) EXPECT_TRUE(Refused(verify(t))) << "'" << t << "'";
  EXPECT_TRUE(Refused(verify(parts[0] + "." + parts[1] + "." + malleable), "malformed token"));
}

TEST_F(JwtTest, RefusesHeadersAndPayloadsThatAreNotJsonObjects) {
  const std::string header = Json({{"alg", "RS256"}, {"kid", "rsa-1"}, {"typ", "JWT"}}).dump();
  const std::string payload = unb64(segments(sign_with(keys().rsa, claims()))[1]);
  for (const char* not_object :
       {"[]", "\"JWT\"", "null", "1", "true", "{", "", "{\"alg\":\"RS256\",}", "{\"alg\":\"RS256\"} {}"}) {
    EXPECT_TRUE(Refused(verify(rs256_token(not_object, payload)), "malformed token")) << not_object;
    EXPECT_TRUE(Refused(verify(rs256_token(header, not_object)), "malformed token")) << not_object;
  }
  const std::string deep = R"({"alg":"RS256","kid":"rsa-1","x":[[[[[[[[[[1]]]]]]]]]]})";
  EXPECT_TRUE(Refused(verify(rs256_token(deep, payload)), "malformed token"));
  EXPECT_TRUE(Refused(verify(rs256_token(header, R"({"sub":"a","x":[[[[[[[[[[1]]]]]]]]]]})")), "malformed token"));
}

TEST_F(JwtTest, RefusesClaimsOfTheWrongType) {
  const std::vector<std::pair<std::string, std::function<void(Json&)>>> edits = {
      {"exp as string", [&](Json& p) { p["exp"] = std::to_string(now() + 300); }},
      {"exp as float", [&](Json& p) { p["exp"] = static_cast<double>(now() + 300) + 0.5; }},
      {"exp as whole float", [&](Json& p) { p["exp"] = static_cast<double>(now() + 300); }},
      {"exp as bool", [](Json& p) { p["exp"] = true; }},
      {"exp null", [](Json& p) { p["exp"] = nullptr; }},
      {"exp negative", [](Json& p) { p["exp"] = -1; }},
      {"exp beyond int64", [](Json& p) { p["exp"] = std::numeric_limits<std::uint64_t>::max(); }},
      {"exp missing", [](Json& p) { p.erase("exp"); }},
      {"iat as string", [&](Json& p) { p["iat"] = std::to_string(now()); }},
      {"iat missing", [](Json& p) { p.erase("iat"); }},
      {"nbf as array", [&](Json& p) { p["nbf"] = {now()}; }},
      {"sub as number", [](Json& p) { p["sub"] = 42; }},
      {"sub empty", [](Json& p) { p["sub"] = ""; }},
      {"sub missing", [](Json& p) { p.erase("sub"); }},
      {"jti missing", [](Json& p) { p.erase("jti"); }},
      {"jti as object", [](Json& p) { p["jti"] = Json::object(); }},
      {"iss as array", [](Json& p) { p["iss"] = {kIssuer}; }},
      {"aud as number", [](Json& p) { p["aud"] = 1; }},
      {"tenant_id as number", [](Json& p) { p["tenant_id"] = 7; }},
      {"role missing", [](Json& p) { p.erase("role"); }},
      {"role as null", [](Json& p) { p["role"] = nullptr; }},
      {"permissions as string", [](Json& p) { p["permissions"] = "users:read"; }},
      {"permissions with a number",
       [](Json& p) {
         p["permissions"] = {"users:read", 1};
       }},
      {"permissions missing", [](Json& p) { p.erase("permissions"); }},
      {"super_admin as string", [](Json& p) { p["super_admin"] = "true"; }},
      {"super_admin as number", [](Json& p) { p["super_admin"] = 1; }},
  };
  for (const auto& [name, edit] : edits) {
    const std::string claim = name.substr(0, name.find(' '));  // each case is named after its claim
    EXPECT_TRUE(Refused(verify(with_payload(edit)), "missing or invalid claim " + claim)) << name;
  }
}

TEST_F(JwtTest, RefusesCriticalHeaderParameters) {
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["crit"] = {"exp"}; })), "unsupported critical header"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) {
                        h["crit"] = {"b64"};
                        h["b64"] = false;
                      })),
                      "unsupported critical header"));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["crit"] = Json::array(); }))));
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["crit"] = nullptr; }))));
}

TEST_F(JwtTest, AcceptsOnlyJwtTokenTypes) {
  for (const char* typ : {"JWT", "jwt", "Jwt", "at+jwt", "AT+JWT"}) {
    EXPECT_TRUE(verify(with_header([&](Json& h) { h["typ"] = typ; }))) << typ;
  }
  EXPECT_TRUE(verify(with_header([](Json& h) { h.erase("typ"); })));
  for (const char* typ : {"JOSE", "JWS", "id+jwt", "application/jwt", "", "JWT "}) {
    EXPECT_TRUE(Refused(verify(with_header([&](Json& h) { h["typ"] = typ; })), "unsupported token type")) << typ;
  }
  EXPECT_TRUE(Refused(verify(with_header([](Json& h) { h["typ"] = 1; })), "unsupported token type"));
}

// ---- robustness ----

TEST_F(JwtTest, RandomCorruptionsAreRefusedWithoutThrowing) {
  std::mt19937 random(20260101);
  const std::string charset = std::string(kBase64UrlAlphabet) + ".=+/ \n\"{}\x80\xff";
  for (const SigningKey* key : {&keys().rsa, &keys().ec, &keys().ed}) {
    const std::string token = sign_with(*key, claims());
    for (int i = 0; i < 300; ++i) {
      std::string t = token;
      while (t == token) {
        const std::size_t pos = std::uniform_int_distribution<std::size_t>(0, t.size() - 1)(random);
        const char c = charset[std::uniform_int_distribution<std::size_t>(0, charset.size() - 1)(random)];
        switch (random() % 4) {
          case 0: t[pos] = c; break;
          case 1: t.insert(pos, 1, c); break;
          case 2: t.erase(pos, 1); break;
          case 3: t.resize(pos); break;
        }
      }
      Result<AccessClaims> result;
      ASSERT_NO_THROW(result = verify(t)) << t;
      EXPECT_TRUE(Refused(result)) << t;
    }
  }
}

TEST_F(JwtTest, NonAsciiBytesInAnySegmentAreRefused) {
  // libsodium's decoder maps some bytes >= 0x80 to alphabet values; each one, at every position, must be refused.
  for (const SigningKey* key : {&keys().rsa, &keys().ec}) {
    const std::string token = sign_with(*key, claims());
    for (std::size_t pos = 0; pos < token.size(); ++pos) {
      if (token[pos] == '.') continue;
      for (const char c : {'\x80', '\xbf', '\xc0', '\xff'}) {
        std::string t = token;
        t[pos] = c;
        EXPECT_TRUE(Refused(verify(t))) << "byte " << static_cast<int>(static_cast<unsigned char>(c)) << " at " << pos;
      }
    }
  }
}

TEST_F(JwtTest, VerifyLeavesTheOpenSslErrorQueueAsItWas) {
  auto parts = segments(sign_with(keys().rsa, claims()));
  parts[1] = b64(R"({"sub":"x"})");
  ERR_clear_error();
  EXPECT_TRUE(Refused(verify(join(parts)), "bad signature"));
  EXPECT_EQ(ERR_peek_error(), 0u);
  ERR_raise(ERR_LIB_USER, 42);  // someone else's pending error survives
  const unsigned long pending = ERR_peek_error();
  EXPECT_TRUE(Refused(verify(join(parts))));
  EXPECT_EQ(ERR_peek_last_error(), pending);
  ERR_clear_error();
}

TEST_F(JwtTest, ConcurrentSignAndVerifyShareOneSignerAndVerifier) {
  const auto signers =
      std::array{*JwtSigner::create(keys().rsa), *JwtSigner::create(keys().ec), *JwtSigner::create(keys().ed)};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        AccessClaims c = claims();
        c.jti = "jti-" + std::to_string(t) + "-" + std::to_string(i);
        auto token = signers[static_cast<std::size_t>(i) % signers.size()].sign(c);
        if (!token) {
          ++failures;
          continue;
        }
        auto verified = verify(*token);
        if (!verified || *verified != c) ++failures;
        if (verify(*token + "x")) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace atrium::identity
