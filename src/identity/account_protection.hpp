#pragma once

// User accounts at rest (docs/data-protection.md, "User accounts"). Users are platform-wide (one account, many
// tenants), so their personal fields are sealed under a platform key rather than a tenant's: `users.email` and
// `users.name` as AES-256-GCM ciphertexts bound to their column and user id, and the address found through a keyed
// blind index (`users.email_index`, HMAC-SHA-256 of the normalised address), so sign-in by email needs no
// plaintext. An invitation's address (`invitations.email`, `invitations.email_index`) is a user's address to be. Both
// keys are derived from the master key (identity.key_encryption_key), which never enters the database. Immutable;
// thread-safe.

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::identity {

// The fields sealed under the account key: their names are part of each ciphertext's associated data.
inline constexpr std::string_view k_users_email = "users.email";
inline constexpr std::string_view k_users_name = "users.name";
inline constexpr std::string_view k_invitations_email = "invitations.email";

class AccountProtection {
 public:
  // Keys derived from the 32-byte master key (HKDF-Expand, RFC 5869, with the master key as the pseudorandom key
  // and one info string per key). `seal` false: new values are stored as given (protection.encrypt_fields = false);
  // the index is kept either way, so turning sealing on or off never loses an account.
  AccountProtection(std::string_view master_key, bool seal);

  // The blind index of an address (already normalised): "h1:" + base64url of its HMAC.
  std::string email_index(std::string_view normalized_email) const;
  // The stored form of `field` (one of the k_..._email / k_..._name above) of the row `row` (its id):
  // "enc1:m1:<base64url(nonce || ciphertext || tag)>", or the value itself when sealing is off.
  std::string seal(std::string_view field, std::string_view row, std::string_view value) const;
  // The value of a stored form; one not sealed (written before sealing was on) is returned as it is.
  // unauthenticated when it was sealed for another field or row, changed, or under another master key.
  Result<std::string> open(std::string_view field, std::string_view row, std::string_view stored) const;
  bool sealing() const { return seal_; }

 private:
  std::string seal_key_;
  std::string index_key_;
  bool seal_;
};

}  // namespace atrium::identity
