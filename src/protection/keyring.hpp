#pragma once

// Envelope encryption of fields at rest (docs/data-protection.md). Each tenant has data keys (AES-256-GCM, one
// active version that seals, older versions that still open until re-encryption leaves nothing under them), kept in
// the data_keys table wrapped by the tenant's key-encryption key in the key service (protection/key_service.hpp).
// Unwrapped data keys stay in memory only, cached per tenant.
//
// The stored form of a field: "enc1:<data key version>:<base64url(nonce || ciphertext || tag)>", the associated data
// binding the tenant, table, column and row, so a value moved anywhere else fails to open.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "storage/database.hpp"
#include "tenancy/sealed_field.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::metrics {
class Registry;
}

namespace atrium::protection {

class KeyService;

struct KeyringOptions {
  bool encrypt = true;                          // protection.encrypt_fields: false stores new values as given
  std::chrono::milliseconds cache_ttl{60'000};  // protection.key_cache_ttl_ms: how long a cached active version holds
  std::size_t cache_tenants = 10'000;  // protection.key_cache_tenants: tenants kept, least recently used leave first
};

// A data key in the clear, for a tenant archive (app/tenant_archive.hpp), which carries it sealed under the
// archive's own key.
struct PlainDataKey {
  int version = 0;
  std::string state;  // active | retired
  std::string key;    // 32 bytes
  std::int64_t created_at_ms = 0;
  std::optional<std::int64_t> retired_at_ms;
};

struct DataKeyInfo {
  int version = 0;
  std::string state;  // active | retired
  int kek_version = 0;
  Instant created_at;
  std::optional<Instant> retired_at;
};

// Thread-safe.
class Keyring final : public tenancy::FieldSealer {
 public:
  // `db` holds data_keys: on PostgreSQL the control plane (migration 0021) on a small pool of its own, so that a key
  // loaded inside a request's transaction never waits for that transaction's pool; on SQLite a file of its own
  // (prepare() creates the table), because SQLite runs one writer per file. `registry` may be null.
  Keyring(storage::Database& db, KeyService& keys, const Clock& clock, KeyringOptions options,
          metrics::Registry* registry);
  ~Keyring() override;

  // SQLite: creates the data_keys table in the keyring's own file. Nothing on PostgreSQL.
  static Result<void> prepare(storage::Database& db);

  Result<std::string> seal(const std::string& tenant_id, tenancy::SealedField field, std::string_view row,
                           std::string_view plaintext) override;
  Result<std::string> open(const std::string& tenant_id, tenancy::SealedField field, std::string_view row,
                           std::string_view stored) override;

  // The tenant's data keys, oldest first.
  Result<std::vector<DataKeyInfo>> keys(const std::string& tenant_id);
  // The active data key's version (created when the tenant has none).
  Result<int> active_version(const std::string& tenant_id);

  // KEK rotation: a new version of the tenant's key-encryption key, every data key re-wrapped under it, then the
  // older versions dropped from the key service. The data keys themselves do not change, so nothing is re-encrypted
  // and running instances keep their caches. Returns the new KEK version.
  Result<int> rotate_kek(const std::string& tenant_id);
  // Data-key rotation: a new active data key; the previous one retires (it still opens). Returns its version.
  Result<int> rotate_data_key(const std::string& tenant_id);
  // Deletes the retired data keys — only once re-encryption found no value under them and every instance has
  // stopped sealing with them (cache_ttl after their retirement; too_early before). Returns how many.
  Result<int> drop_retired(const std::string& tenant_id);

  // Crypto-shredding: destroys the tenant's key-encryption key in the key service (so every copy of its data keys,
  // in backups too, stays wrapped for ever), then deletes its data_keys rows and forgets the cached keys.
  Result<void> shred(const std::string& tenant_id);

  // Every data key of the tenant, unwrapped (a tenant export). Handle with care: they open every sealed field.
  Result<std::vector<PlainDataKey>> export_keys(const std::string& tenant_id);
  // Restores keys exported elsewhere (a tenant import): each wrapped under the tenant's key-encryption key here (a
  // new one when it was destroyed by a purge) and stored with its version and state. conflict when the tenant has
  // data keys already.
  Result<void> import_keys(const std::string& tenant_id, const std::vector<PlainDataKey>& keys);

  // Forgets cached keys (tests; after a rotation made by another process it happens by itself after cache_ttl).
  void forget(const std::string& tenant_id);
  // How many tenants' keys are in memory (at most KeyringOptions::cache_tenants).
  std::size_t cached_tenants() const;

  std::chrono::milliseconds cache_ttl() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The version of a stored value's data key; 0 for a value not in the sealed form.
int sealed_version(std::string_view stored);

// Re-encryption, the second half of a data-key rotation (and how rows written before encryption get sealed): every
// value of `columns` for `tenant` that is not sealed under the active data key is opened and sealed again, each row
// updated only if it still holds what was read. Idempotent and resumable: a rerun skips what is done. `progress`
// gets (values looked at, values re-sealed) per column.
struct ReencryptSummary {
  std::int64_t examined = 0;
  std::int64_t resealed = 0;
  std::int64_t old_versions_left = 0;  // values under another version after the pass (concurrent writers)
};
Result<ReencryptSummary> reencrypt(tenancy::TenantData& data, Keyring& keyring, const tenancy::Tenant& tenant,
                                   std::span<const tenancy::SealedColumn> columns,
                                   const std::function<void(const ReencryptSummary&)>& progress = {});

}  // namespace atrium::protection
