#include "identity/account_protection.hpp"

#include "protection/aead.hpp"

namespace atrium::identity {

namespace {

constexpr std::string_view k_account_sealed = "enc1:m1:";  // sealed under the master key's account key, version 1
constexpr std::string_view k_account_index = "h1:";

// HKDF-Expand (RFC 5869 2.3) for one SHA-256 block: T(1) = HMAC(PRK, info || 0x01).
std::string derive_key(std::string_view prk, std::string_view info) {
  std::string message(info);
  message.push_back('\x01');
  return protection::hmac_sha256(prk, message);
}

std::string account_context(std::string_view field, std::string_view row) {
  std::string out = "atrium-account:1|";
  out += field;
  out += '|';
  out += row;
  return out;
}

}  // namespace

AccountProtection::AccountProtection(std::string_view master_key, bool seal)
    : seal_key_(derive_key(master_key, "atrium users seal v1")),
      index_key_(derive_key(master_key, "atrium users.email index v1")),
      seal_(seal) {}

std::string AccountProtection::email_index(std::string_view normalized_email) const {
  return std::string(k_account_index) + protection::base64url(protection::hmac_sha256(index_key_, normalized_email));
}

std::string AccountProtection::seal(std::string_view field, std::string_view row, std::string_view value) const {
  if (!seal_) return std::string(value);
  return std::string(k_account_sealed) +
         protection::base64url(protection::aead_seal(seal_key_, value, account_context(field, row)));
}

Result<std::string> AccountProtection::open(std::string_view field, std::string_view row,
                                            std::string_view stored) const {
  if (!stored.starts_with(k_account_sealed)) return std::string(stored);
  const std::string what = std::string(field) + " of " + std::string(row);
  auto bytes = protection::from_base64url(stored.substr(k_account_sealed.size()));
  if (!bytes) return fail(Errc::unauthenticated, what + " is not a well-formed sealed value");
  auto plain = protection::aead_open(seal_key_, *bytes, account_context(field, row));
  if (!plain) {
    return fail(Errc::unauthenticated,
                what +
                    " does not open: it belongs to another row or field, was changed, or was sealed under "
                    "another master key");
  }
  return plain;
}

}  // namespace atrium::identity
