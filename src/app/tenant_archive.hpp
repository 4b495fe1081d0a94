#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "protection/archive_file.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::app {

class Platform;

// A tenant's export and restore (`atrium tenant export` / `atrium tenant import`; docs/data-protection.md, "Tenant
// export and restore"). The archive holds everything of one tenant:
//   the tenants row; the accounts of its members (address, name, password hash; re-sealed and re-indexed under the
//   importing platform's keys); its data keys (in the clear inside the archive, wrapped again by the importing
//   platform's key service); its audit chain, entry by entry as stored (so it verifies anywhere); every row of its
//   control-plane tables (app/archive_tables.hpp) and of its own store (tenancy::tenant_tables), fields sealed at
//   rest kept as ciphertext (they open with the carried data keys: same tenant id, table, column and row);
//   invitation addresses and custom-domain certificate keys, sealed under the master key, carried opened; and the
//   plans and coupons its subscriptions name (the platform's catalog rows, added where missing).
// And a manifest: per table its rows and a SHA-256 over them. The file is encrypted and authenticated under an
// archive key the operator holds (protection/archive_file.hpp). Ids are kept: an import restores the same tenant
// (same id, slug, users, objects) — into the Atrium it came from after a purge, or into another one on the same
// backend where neither its id nor its slug is taken.
struct ArchiveTable {
  std::string plane;  // "control" | "store"
  std::string table;
  std::int64_t rows = 0;
  std::string sha256;
  bool operator==(const ArchiveTable&) const = default;
};

struct ArchiveReport {
  std::string tenant_id;
  std::string slug;
  tenancy::Isolation isolation = tenancy::Isolation::shared;
  std::int64_t users = 0;          // accounts carried (import: restored; the others existed already)
  std::int64_t users_present = 0;  // import: accounts already here under the same id, kept as they are
  std::int64_t data_keys = 0;
  std::int64_t catalog_added = 0;    // import: plans and coupons its subscriptions name, added because missing here
  std::int64_t audit_entries = 0;    // export: in the chain; import: inserted (the others were still here)
  std::vector<ArchiveTable> tables;  // import: read back after the import, equal to the archive's manifest
  // export: both planes read in one transaction (the tenant's data shares the control plane's database), else in two
  bool one_instant = false;
  std::uint64_t bytes = 0;         // the archive's size
  bool is_signed = false;          // the archive ends with a signature (export: signed with the given private key)
  bool signature_checked = false;  // import: the signature verified with the given public key
};

using ArchiveProgress = std::function<void(std::string_view step, int done, int total)>;

// Writes `tenant_id`'s archive to `path` (mode 0600, replaced only when complete) under `key` (32 bytes). When the
// tenant's data shares the control plane's database (the shared level; PostgreSQL's schema level) every table is
// read in one read-only transaction, at one instant; a tenant with a database or file of its own has its store read
// in one and the control plane in another right after (docs/data-protection.md says what may fall between them).
// Errors: not_found; conflict for a tenant being moved.
// With `signer` (an Ed25519 private key) the archive ends with its signature.
Result<ArchiveReport> export_tenant(Platform& platform, const std::string& tenant_id, const std::string& path,
                                    const std::string& key, const ArchiveProgress& progress = {},
                                    const std::optional<protection::ArchiveSigningKey>& signer = std::nullopt);

struct ImportOptions {
  std::optional<tenancy::Isolation> isolation;  // default: the level it had when exported
  ArchiveProgress progress;
  // An Ed25519 public key: the archive must carry a signature by its private key (unauthenticated otherwise). None:
  // a signature, if any, is not checked.
  std::optional<protection::ArchiveSigningKey> verifier;
};

// Restores the archive at `path`. The whole file is read and checked first (authenticity under `key`, every
// table's digest against the manifest, the columns against this build's), and nothing is written unless it is
// intact. Then: the audit chain, the accounts, the tenants row (recorded as tenant.imported), the data keys, the
// store at the chosen level and every table; finally every table is read back and compared with the manifest.
// Errors: unauthenticated (another key, or the file altered or cut off), invalid_argument (not an archive, another
// backend, other columns), conflict (the tenant exists and is not purged, or its audit chain here differs),
// unique_violation (its slug, or an account's address, is taken here). A failure after the tenant's row was written
// deletes and purges what was written.
Result<ArchiveReport> import_tenant(Platform& platform, const std::string& path, const std::string& key,
                                    const ImportOptions& options = {});

}  // namespace atrium::app
