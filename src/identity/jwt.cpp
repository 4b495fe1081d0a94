#include "identity/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>

namespace atrium::identity {

namespace {

constexpr std::size_t kMaxKidBytes = 128;
constexpr int kMinRsaBits = 2048;
constexpr std::size_t kP256CoordinateBytes = 32;
constexpr std::size_t kRawSignatureBytes = 64;  // ES256 R||S and Ed25519
constexpr std::chrono::seconds kMaxLeeway{3600};
// JOSE headers and our claims are flat; nothing legitimate nests deeper.
constexpr JsonLimits kJoseJsonLimits{.max_depth = 8};
constexpr int kBase64Url = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;

// OpenSSL reports failures on a per-thread error queue that TLS code on the same thread also reads. Errors raised
// while a guard lives are dropped when it leaves scope; whatever was queued before stays.
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() { ERR_set_mark(); }
  ~ErrorQueueGuard() { ERR_pop_to_mark(); }
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

std::string openssl_reason() {
  const unsigned long code = ERR_peek_last_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* bytes_of(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// The base64 codecs of libsodium are pure functions and do not need sodium_init().
std::string b64url_encode(std::string_view bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kBase64Url), '\0');  // counts the terminating NUL
  sodium_bin2base64(out.data(), out.size(), bytes_of(bytes), bytes.size(), kBase64Url);
  out.resize(std::strlen(out.c_str()));
  return out;
}

// Strict base64url (RFC 7515 section 2): URL-safe alphabet only, no padding, no whitespace, and the unused bits of
// the last character zero, so every byte string has exactly one accepted encoding.
std::optional<std::string> b64url_decode(std::string_view text) {
  // libsodium 1.0.18 maps some bytes >= 0x80 to alphabet values instead of refusing them (seen: 0x80 decoded as a
  // valid character, so a signature with one byte replaced still verified). Check the alphabet first.
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return std::nullopt;
  }
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t length = 0;
  if (sodium_base642bin(bytes_of(out), out.size(), text.data(), text.size(), /*ignore=*/nullptr, &length,
                        /*b64_end=*/nullptr, kBase64Url) != 0) {
    return std::nullopt;
  }
  out.resize(length);
  return out;
}

std::optional<Json> decode_json_object(std::string_view segment) {
  auto text = b64url_decode(segment);
  if (!text) return std::nullopt;
  auto json = parse_json(*text, kJoseJsonLimits, nullptr);
  if (!json || !json->is_object()) return std::nullopt;
  return json;
}

const Json* member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

bool valid_kid(std::string_view kid) {
  return !kid.empty() && kid.size() <= kMaxKidBytes &&
         std::ranges::all_of(kid, [](char c) { return c > 0x20 && c < 0x7f; });
}

Result<void> check_kid(std::string_view kid) {
  if (valid_kid(kid)) return {};
  return fail(Errc::invalid_argument, "a key id must be 1 to 128 printable ASCII characters without spaces");
}

// Never prompt for a passphrase: an encrypted PEM simply fails to load.
int refuse_passphrase(char*, int, int, void*) { return -1; }

PkeyPtr read_pem(std::string_view pem, bool is_private) {
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) return nullptr;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return PkeyPtr(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr)
                            : PEM_read_bio_PUBKEY(bio.get(), nullptr, refuse_passphrase, nullptr));
}

// Why `key` cannot be used with `algorithm`, or nullopt when it can.
std::optional<std::string> key_mismatch(EVP_PKEY* key, JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::rs256:
      if (EVP_PKEY_is_a(key, "RSA") != 1) return "not an RSA key";
      if (EVP_PKEY_get_bits(key) < kMinRsaBits) return "RSA key shorter than 2048 bits";
      return std::nullopt;
    case JwtAlgorithm::es256: {
      if (EVP_PKEY_is_a(key, "EC") != 1) return "not an EC key";
      char group[80] = {};
      std::size_t length = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof group, &length) != 1) return "EC key without a named curve";
      const std::string_view name(group, length);
      if (name != "prime256v1" && name != "P-256") return "EC key not on P-256";
      return std::nullopt;
    }
    case JwtAlgorithm::eddsa:
      if (EVP_PKEY_is_a(key, "ED25519") != 1) return "not an Ed25519 key";
      return std::nullopt;
  }
  return "unknown algorithm";
}

Result<PkeyPtr> load_key(std::string_view pem, JwtAlgorithm algorithm, bool is_private, std::string_view kid) {
  const std::string what = std::string("key ") + std::string(kid) + ": ";
  PkeyPtr key = read_pem(pem, is_private);
  if (!key) {
    return fail(Errc::invalid_argument,
                what + (is_private ? "private" : "public") + " PEM does not parse (" + openssl_reason() + ")");
  }
  if (auto mismatch = key_mismatch(key.get(), algorithm)) {
    return fail(Errc::invalid_argument, what + *mismatch + " for " + std::string(jwt_alg_name(algorithm)));
  }
  return key;
}

std::optional<std::string> bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  if (length <= 0 || data == nullptr) return std::nullopt;
  return std::string(data, static_cast<std::size_t>(length));
}

// The order n of P-256 and n / 2, read from OpenSSL once. ECDSA signatures are malleable: (r, n - s) verifies
// wherever (r, s) does, so the same token could be presented in two encodings. Only the low-S form (s <= n / 2)
// is issued and accepted. Null when OpenSSL could not provide them (then nothing is signed or verified).
struct P256Order {
  BnPtr n;
  BnPtr half;
};

const P256Order* p256_order() {
  static const std::optional<P256Order> order = []() -> std::optional<P256Order> {
    ErrorQueueGuard guard;
    std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1),
                                                              &EC_GROUP_free);
    if (!group) return std::nullopt;
    const BIGNUM* n = EC_GROUP_get0_order(group.get());
    P256Order o{BnPtr(n != nullptr ? BN_dup(n) : nullptr), BnPtr(BN_new())};
    if (!o.n || !o.half || BN_rshift1(o.half.get(), o.n.get()) != 1) return std::nullopt;
    return o;
  }();
  return order ? &*order : nullptr;
}

// ES256 signatures in JWS are the raw 32-byte big-endian R and S (RFC 7518 section 3.4); OpenSSL speaks DER. S
// is normalised to the low form (n - s when s > n / 2), which verifies the same and is the only form accepted.
std::optional<std::string> ecdsa_der_to_raw(std::string_view der) {
  const P256Order* order = p256_order();
  if (order == nullptr) return std::nullopt;
  const unsigned char* p = bytes_of(der);
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return std::nullopt;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  BnPtr low_s;
  if (BN_cmp(s, order->half.get()) > 0) {
    low_s.reset(BN_new());
    if (!low_s || BN_sub(low_s.get(), order->n.get(), s) != 1) return std::nullopt;
    s = low_s.get();
  }
  std::string raw(kRawSignatureBytes, '\0');
  if (BN_bn2binpad(r, bytes_of(raw), kP256CoordinateBytes) != static_cast<int>(kP256CoordinateBytes) ||
      BN_bn2binpad(s, bytes_of(raw) + kP256CoordinateBytes, kP256CoordinateBytes) !=
          static_cast<int>(kP256CoordinateBytes)) {
    return std::nullopt;
  }
  return raw;
}

// Nullopt for a signature of the wrong length or with a high S (s > n / 2): see P256Order.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw) {
  if (raw.size() != kRawSignatureBytes) return std::nullopt;
  const P256Order* order = p256_order();
  if (order == nullptr) return std::nullopt;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(bytes_of(raw), kP256CoordinateBytes, nullptr));
  BnPtr s(BN_bin2bn(bytes_of(raw) + kP256CoordinateBytes, kP256CoordinateBytes, nullptr));
  if (!sig || !r || !s) return std::nullopt;
  if (BN_cmp(s.get(), order->half.get()) > 0) return std::nullopt;
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  r.release();  // now owned by sig
  s.release();
  const int length = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (length <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(length), '\0');
  unsigned char* out = bytes_of(der);
  if (i2d_ECDSA_SIG(sig.get(), &out) != length) return std::nullopt;
  return der;
}

// RS256: RSASSA-PKCS1-v1_5 with SHA-256. ES256: ECDSA P-256 with SHA-256. EdDSA: pure Ed25519 (no digest).
const EVP_MD* digest_for(JwtAlgorithm algorithm) { return algorithm == JwtAlgorithm::eddsa ? nullptr : EVP_sha256(); }

// The JWS signature of `input`, or nullopt when OpenSSL fails. A fresh context per call keeps this thread-safe.
std::optional<std::string> sign_bytes(EVP_PKEY* key, JwtAlgorithm algorithm, std::string_view input) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digest_for(algorithm), nullptr, key) != 1) return std::nullopt;
  std::size_t length = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &length, bytes_of(input), input.size()) != 1) return std::nullopt;
  std::string sig(length, '\0');
  if (EVP_DigestSign(ctx.get(), bytes_of(sig), &length, bytes_of(input), input.size()) != 1) return std::nullopt;
  sig.resize(length);
  if (algorithm == JwtAlgorithm::es256) return ecdsa_der_to_raw(sig);
  return sig;
}

// Whether `sig` is a valid JWS signature of `input` under `key`. Signatures of the wrong length (including DER
// encoded ECDSA signatures) are refused before OpenSSL sees them.
bool verify_bytes(EVP_PKEY* key, JwtAlgorithm algorithm, std::string_view input, std::string_view sig) {
  std::string der;
  switch (algorithm) {
    case JwtAlgorithm::rs256:
      if (sig.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key))) return false;
      break;
    case JwtAlgorithm::es256: {
      auto converted = ecdsa_raw_to_der(sig);
      if (!converted) return false;
      der = std::move(*converted);
      sig = der;
      break;
    }
    case JwtAlgorithm::eddsa:
      if (sig.size() != kRawSignatureBytes) return false;
      break;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(algorithm), nullptr, key) != 1) return false;
  return EVP_DigestVerify(ctx.get(), bytes_of(sig), sig.size(), bytes_of(input), input.size()) == 1;
}

Result<std::string> bn_param(EVP_PKEY* key, const char* name, int fixed_width) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return fail(Errc::invalid_argument, std::string("cannot read key parameter ") + name);
  }
  BnPtr value(raw);
  std::string out(
      fixed_width > 0 ? static_cast<std::size_t>(fixed_width) : static_cast<std::size_t>(BN_num_bytes(value.get())),
      '\0');
  const int written =
      fixed_width > 0 ? BN_bn2binpad(value.get(), bytes_of(out), fixed_width) : BN_bn2bin(value.get(), bytes_of(out));
  if (written != static_cast<int>(out.size())) {
    return fail(Errc::invalid_argument, std::string("key parameter ") + name + " out of range");
  }
  return b64url_encode(out);
}

Json claims_json(const AccessClaims& c) {
  Json j = Json::object();
  j["sub"] = c.sub;
  if (!c.tenant_id.empty()) j["tenant_id"] = c.tenant_id;
  j["role"] = c.role;
  j["permissions"] = c.permissions;
  if (c.super_admin) j["super_admin"] = true;
  j["iss"] = c.iss;
  j["aud"] = c.aud;
  j["jti"] = c.jti;
  j["iat"] = c.iat;
  if (c.iat_ms) j["iat_ms"] = *c.iat_ms;
  j["nbf"] = c.nbf;
  j["exp"] = c.exp;
  if (!c.scope.empty()) j["scope"] = c.scope;
  if (!c.customer.empty()) j["customer"] = c.customer;
  return j;
}

std::unexpected<Error> reject(const char* reason) { return fail(Errc::unauthenticated, reason); }

std::unexpected<Error> bad_claim(const char* name) {
  return fail(Errc::unauthenticated, std::string("missing or invalid claim ") + name);
}

// iat_ms (jwt.hpp) names a millisecond of the second iat names. Floor division: both are non-negative.
bool iat_ms_consistent(const AccessClaims& c) { return !c.iat_ms || (*c.iat_ms >= 0 && *c.iat_ms / 1000 == c.iat); }

bool read_string(const Json& object, const char* name, std::string& out, bool required) {
  const Json* value = member(object, name);
  if (value == nullptr) return !required;
  if (!value->is_string()) return false;
  out = value->get_ref<const std::string&>();
  return true;
}

// NumericDate (RFC 7519 section 2), restricted to the non-negative integers this server issues.
bool read_numeric_date(const Json& object, const char* name, std::int64_t& out, bool required) {
  const Json* value = member(object, name);
  if (value == nullptr) return !required;
  if (value->is_number_unsigned()) {
    const auto u = value->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    out = static_cast<std::int64_t>(u);
    return true;
  }
  if (value->is_number_integer()) {
    const auto i = value->get<std::int64_t>();
    if (i < 0) return false;
    out = i;
    return true;
  }
  return false;  // floats, strings, booleans, null
}

Result<AccessClaims> read_claims(const Json& payload, const VerifyOptions& options, std::int64_t now) {
  AccessClaims c;
  // Shape first: a claim of the wrong type makes the token unusable whatever its value.
  if (!read_string(payload, "sub", c.sub, true) || c.sub.empty()) return bad_claim("sub");
  if (!read_string(payload, "jti", c.jti, true) || c.jti.empty()) return bad_claim("jti");
  if (!read_string(payload, "iss", c.iss, true)) return bad_claim("iss");
  if (!read_string(payload, "tenant_id", c.tenant_id, false)) return bad_claim("tenant_id");
  if (!read_string(payload, "role", c.role, true)) return bad_claim("role");
  if (!read_numeric_date(payload, "iat", c.iat, true)) return bad_claim("iat");
  if (member(payload, "iat_ms") != nullptr) {
    std::int64_t iat_ms = 0;
    if (!read_numeric_date(payload, "iat_ms", iat_ms, true)) return bad_claim("iat_ms");
    c.iat_ms = iat_ms;
    if (!iat_ms_consistent(c)) return bad_claim("iat_ms");
  }
  if (!read_numeric_date(payload, "nbf", c.nbf, false)) return bad_claim("nbf");
  if (!read_numeric_date(payload, "exp", c.exp, true)) return bad_claim("exp");
  if (!read_string(payload, "scope", c.scope, false)) return bad_claim("scope");
  if (!read_string(payload, "customer", c.customer, false)) return bad_claim("customer");
  if (const Json* admin = member(payload, "super_admin")) {
    if (!admin->is_boolean()) return bad_claim("super_admin");
    c.super_admin = admin->get<bool>();
  }
  const Json* permissions = member(payload, "permissions");
  if (permissions == nullptr || !permissions->is_array()) return bad_claim("permissions");
  c.permissions.reserve(permissions->size());
  for (const Json& p : *permissions) {
    if (!p.is_string()) return bad_claim("permissions");
    c.permissions.push_back(p.get_ref<const std::string&>());
  }
  const Json* aud = member(payload, "aud");
  bool audience_matches = false;
  if (aud != nullptr && aud->is_string()) {
    audience_matches = aud->get_ref<const std::string&>() == options.audience;
  } else if (aud != nullptr && aud->is_array()) {
    for (const Json& a : *aud) {
      if (!a.is_string()) return bad_claim("aud");
      if (a.get_ref<const std::string&>() == options.audience) audience_matches = true;
    }
  } else {
    return bad_claim("aud");
  }

  if (c.iss != options.issuer) return reject("wrong issuer");
  if (!audience_matches) return reject("wrong audience");
  c.aud = options.audience;
  const std::int64_t leeway = options.leeway.count();
  if (c.exp <= now - leeway) return reject("token expired");
  if (c.nbf > now + leeway) return reject("token not yet valid");
  if (c.iat > now + leeway) return reject("token issued in the future");
  return c;
}

}  // namespace

std::string_view jwt_alg_name(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::rs256: return "RS256";
    case JwtAlgorithm::es256: return "ES256";
    case JwtAlgorithm::eddsa: return "EdDSA";
  }
  return "RS256";
}

Result<JwtAlgorithm> parse_jwt_alg(std::string_view name) {
  for (auto algorithm : {JwtAlgorithm::rs256, JwtAlgorithm::es256, JwtAlgorithm::eddsa}) {
    if (name == jwt_alg_name(algorithm)) return algorithm;
  }
  return fail(Errc::invalid_argument, "unsupported JWT algorithm (use RS256, ES256 or EdDSA)");
}

JwtAlgorithm configured_jwt_alg(std::string_view name) { return parse_jwt_alg(name).value_or(JwtAlgorithm::rs256); }

Result<SigningKey> generate_signing_key(JwtAlgorithm algorithm, std::string kid) {
  if (auto ok = check_kid(kid); !ok) return std::unexpected(std::move(ok.error()));
  ErrorQueueGuard guard;
  PkeyPtr key;
  switch (algorithm) {
    case JwtAlgorithm::rs256:
      key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(kMinRsaBits)));  // e = 65537
      break;
    case JwtAlgorithm::es256: key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); break;
    case JwtAlgorithm::eddsa: key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")); break;
  }
  if (!key) return fail(Errc::internal, "key generation failed: " + openssl_reason());

  BioPtr private_bio(BIO_new(BIO_s_mem()));
  BioPtr public_bio(BIO_new(BIO_s_mem()));
  if (!private_bio || !public_bio ||
      PEM_write_bio_PKCS8PrivateKey(private_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(public_bio.get(), key.get()) != 1) {
    return fail(Errc::internal, "key encoding failed: " + openssl_reason());
  }
  auto private_pem = bio_text(private_bio.get());
  auto public_pem = bio_text(public_bio.get());
  if (!private_pem || !public_pem) return fail(Errc::internal, "key encoding failed");
  return SigningKey{std::move(kid), algorithm, std::move(*private_pem), std::move(*public_pem)};
}

Result<Json> public_jwk(const PublicKey& key) {
  if (auto ok = check_kid(key.kid); !ok) return std::unexpected(std::move(ok.error()));
  ErrorQueueGuard guard;
  auto loaded = load_key(key.public_pem, key.algorithm, /*is_private=*/false, key.kid);
  if (!loaded) return std::unexpected(std::move(loaded.error()));
  EVP_PKEY* pkey = loaded->get();

  Json jwk = Json::object();
  switch (key.algorithm) {
    case JwtAlgorithm::rs256: {
      auto n = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0);  // minimal big-endian: no leading zero bytes
      auto e = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
      if (!n) return std::unexpected(std::move(n.error()));
      if (!e) return std::unexpected(std::move(e.error()));
      jwk["kty"] = "RSA";
      jwk["n"] = std::move(*n);
      jwk["e"] = std::move(*e);
      break;
    }
    case JwtAlgorithm::es256: {
      auto x = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, kP256CoordinateBytes);
      auto y = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, kP256CoordinateBytes);
      if (!x) return std::unexpected(std::move(x.error()));
      if (!y) return std::unexpected(std::move(y.error()));
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] = std::move(*x);
      jwk["y"] = std::move(*y);
      break;
    }
    case JwtAlgorithm::eddsa: {
      std::string raw(32, '\0');
      std::size_t length = raw.size();
      if (EVP_PKEY_get_raw_public_key(pkey, bytes_of(raw), &length) != 1 || length != raw.size()) {
        return fail(Errc::invalid_argument, "cannot read the Ed25519 public key");
      }
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = b64url_encode(raw);
      break;
    }
  }
  jwk["kid"] = key.kid;
  jwk["alg"] = std::string(jwt_alg_name(key.algorithm));
  jwk["use"] = "sig";
  return jwk;
}

// ---- JwtSigner ----

struct JwtSigner::Impl {
  std::string kid;
  JwtAlgorithm algorithm;
  PkeyPtr key;
  std::string encoded_header;  // base64url of {"alg","kid","typ"}, the same for every token
};

Result<JwtSigner> JwtSigner::create(const SigningKey& key) {
  if (auto ok = check_kid(key.kid); !ok) return std::unexpected(std::move(ok.error()));
  ErrorQueueGuard guard;
  auto loaded = load_key(key.private_pem, key.algorithm, /*is_private=*/true, key.kid);
  if (!loaded) return std::unexpected(std::move(loaded.error()));
  if (!key.public_pem.empty()) {
    auto public_key = load_key(key.public_pem, key.algorithm, /*is_private=*/false, key.kid);
    if (!public_key) return std::unexpected(std::move(public_key.error()));
    if (EVP_PKEY_eq(loaded->get(), public_key->get()) != 1) {
      return fail(Errc::invalid_argument, "key " + key.kid + ": public PEM does not match the private key");
    }
  }
  const Json header = {{"alg", std::string(jwt_alg_name(key.algorithm))}, {"kid", key.kid}, {"typ", "JWT"}};
  auto impl = std::make_shared<Impl>(Impl{key.kid, key.algorithm, std::move(*loaded), b64url_encode(header.dump())});
  return JwtSigner(std::move(impl));
}

const std::string& JwtSigner::kid() const { return impl_->kid; }
JwtAlgorithm JwtSigner::algorithm() const { return impl_->algorithm; }

Result<std::string> JwtSigner::sign(const AccessClaims& claims) const {
  if (claims.sub.empty() || claims.jti.empty()) {
    return fail(Errc::invalid_argument, "access token claims need a non-empty sub and jti");
  }
  if (!iat_ms_consistent(claims)) return fail(Errc::invalid_argument, "iat_ms must lie within the second of iat");
  std::string payload;
  try {
    payload = claims_json(claims).dump();
  } catch (const Json::exception&) {  // dump() refuses strings that are not UTF-8
    return fail(Errc::invalid_argument, "access token claims must be UTF-8");
  }
  std::string token = impl_->encoded_header;
  token += '.';
  token += b64url_encode(payload);
  ErrorQueueGuard guard;
  auto sig = sign_bytes(impl_->key.get(), impl_->algorithm, token);
  if (!sig) return fail(Errc::internal, "signing the access token failed: " + openssl_reason());
  token += '.';
  token += b64url_encode(*sig);
  return token;
}

// ---- JwtVerifier ----

struct JwtVerifier::Impl {
  struct TrustedKey {
    JwtAlgorithm algorithm;
    PkeyPtr key;
  };
  std::map<std::string, TrustedKey, std::less<>> keys;
  VerifyOptions options;
};

Result<JwtVerifier> JwtVerifier::create(std::vector<PublicKey> keys, VerifyOptions options) {
  if (keys.empty()) return fail(Errc::invalid_argument, "a JWT verifier needs at least one key");
  if (options.issuer.empty() || options.audience.empty()) {
    return fail(Errc::invalid_argument, "a JWT verifier needs an issuer and an audience");
  }
  if (options.leeway < std::chrono::seconds::zero() || options.leeway > kMaxLeeway) {
    return fail(Errc::invalid_argument, "JWT leeway must be between 0 and 3600 seconds");
  }
  if (options.max_token_bytes == 0) return fail(Errc::invalid_argument, "max_token_bytes must be positive");

  ErrorQueueGuard guard;
  auto impl = std::make_shared<Impl>();
  for (const PublicKey& key : keys) {
    if (auto ok = check_kid(key.kid); !ok) return std::unexpected(std::move(ok.error()));
    auto loaded = load_key(key.public_pem, key.algorithm, /*is_private=*/false, key.kid);
    if (!loaded) return std::unexpected(std::move(loaded.error()));
    if (!impl->keys.emplace(key.kid, Impl::TrustedKey{key.algorithm, std::move(*loaded)}).second) {
      return fail(Errc::invalid_argument, "duplicate key id " + key.kid);
    }
  }
  impl->options = std::move(options);
  return JwtVerifier(std::move(impl));
}

Result<AccessClaims> JwtVerifier::verify(std::string_view token, std::chrono::system_clock::time_point now) const {
  const VerifyOptions& options = impl_->options;
  if (token.size() > options.max_token_bytes) return reject("token too large");

  // Exactly three non-empty segments: header.payload.signature.
  const auto first_dot = token.find('.');
  if (first_dot == std::string_view::npos) return reject("malformed token");
  const auto second_dot = token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos) {
    return reject("malformed token");
  }
  const std::string_view header_segment = token.substr(0, first_dot);
  const std::string_view payload_segment = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_segment = token.substr(second_dot + 1);
  if (header_segment.empty() || payload_segment.empty()) return reject("malformed token");
  if (signature_segment.empty()) return reject("missing signature");

  const auto header = decode_json_object(header_segment);
  if (!header) return reject("malformed token");
  if (const Json* typ = member(*header, "typ")) {
    if (!typ->is_string()) return reject("unsupported token type");
    const auto& type = typ->get_ref<const std::string&>();
    if (!ascii_iequals(type, "JWT") && !ascii_iequals(type, "at+jwt")) return reject("unsupported token type");
  }
  // This verifier understands no extension header, so any "crit" list names one it must not ignore.
  if (member(*header, "crit") != nullptr) return reject("unsupported critical header");
  const Json* alg = member(*header, "alg");
  if (alg == nullptr || !alg->is_string()) return reject("malformed token");
  const auto algorithm = parse_jwt_alg(alg->get_ref<const std::string&>());
  if (!algorithm) return reject("algorithm not allowed");
  const Json* kid = member(*header, "kid");
  if (kid == nullptr || !kid->is_string()) return reject("missing key id");
  const auto trusted = impl_->keys.find(kid->get_ref<const std::string&>());
  if (trusted == impl_->keys.end()) return reject("unknown key id");
  // The key decides the algorithm; the header may only agree with it (RFC 8725 section 3.1).
  if (trusted->second.algorithm != *algorithm) return reject("algorithm not allowed for this key");

  const auto signature = b64url_decode(signature_segment);
  if (!signature) return reject("malformed token");
  {
    ErrorQueueGuard guard;
    if (!verify_bytes(trusted->second.key.get(), trusted->second.algorithm, token.substr(0, second_dot), *signature)) {
      return reject("bad signature");
    }
  }

  const auto payload = decode_json_object(payload_segment);
  if (!payload) return reject("malformed token");
  const std::int64_t now_seconds = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  return read_claims(*payload, options, now_seconds);
}

}  // namespace atrium::identity
