#pragma once

// Fields encrypted at rest (docs/data-protection.md). A module seals a personal or secret field before it writes it
// and opens it after it reads it, through its TenantTransaction (tx.seal / tx.open), so the tenant whose key is used
// is always the transaction's. The implementation (protection::Keyring) lives above this layer; tenancy only names
// the contract.

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::tenancy {

// Where a sealed value lives: bound into its ciphertext as associated data with the tenant and the row, so a value
// copied to another column, row or tenant fails to open.
struct SealedField {
  std::string_view table;
  std::string_view column;
};

// Encrypts and decrypts field values with the tenant's data keys. Thread-safe.
class FieldSealer {
 public:
  virtual ~FieldSealer() = default;
  // The stored form of `plaintext` (self-describing: format version, key version, nonce, ciphertext, tag), or
  // `plaintext` itself when encryption is turned off.
  virtual Result<std::string> seal(const std::string& tenant_id, SealedField field, std::string_view row,
                                   std::string_view plaintext) = 0;
  // The plaintext of a stored value. A value that is not in the sealed form is returned as it is (rows written before
  // encryption was turned on, until `atrium keys reencrypt` seals them). unauthenticated when the value was sealed
  // for another tenant, field or row, was changed, or its key was destroyed (a purged tenant).
  virtual Result<std::string> open(const std::string& tenant_id, SealedField field, std::string_view row,
                                   std::string_view stored) = 0;
};

// The sealed form: "enc1:<key version>:<base64url of nonce || ciphertext || tag>".
inline constexpr std::string_view k_sealed_prefix = "enc1:";
inline bool is_sealed(std::string_view stored) { return stored.starts_with(k_sealed_prefix); }

}  // namespace atrium::tenancy
