#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::audit {

// The chain of entries without a tenant.
inline constexpr std::string_view k_platform_chain = "platform";

// One stored entry, as read back.
struct Entry {
  std::string id;
  std::string chain_id;
  std::int64_t seq = 0;
  std::string occurred_at;  // RFC 3339 UTC, milliseconds
  std::string tenant_id;    // "" for the platform chain
  std::string actor_type;
  std::string actor_id;
  std::string actor_ip;
  std::string action;
  std::string resource_type;
  std::string resource_id;
  std::string changes;  // JSON text, hashed as stored
  std::string user_agent;
  std::string request_id;
  std::string session_id;
  std::string prev_hash;
  std::string hash;
};

// JSON text that never throws: invalid UTF-8 (a header's raw bytes) becomes U+FFFD.
std::string safe_dump(const Json& j);
// The API's (and the SIEM export's) JSON shape of an entry.
Json to_json(const Entry& entry);
// SHA-256 (hex) over the entry's canonical content: every field but `hash` (`prev_hash` included) in a fixed
// order, each as "<byte length>:<bytes>" (seq in decimal; tenant_id "" for the platform chain).
std::string entry_hash(const Entry& entry);

struct Query {
  std::optional<std::string> chain_id;  // a tenant id or "platform"; nullopt: every chain (super admins)
  std::optional<std::string> actor_id;
  std::optional<std::string> action;
  std::optional<std::string> resource_type;
  std::optional<std::string> resource_id;
  std::optional<std::string> from;    // inclusive, RFC 3339 as stored (milliseconds, Z)
  std::optional<std::string> to;      // exclusive
  std::optional<std::string> cursor;  // next_cursor of the previous page
  int limit = 50;
};

struct Page {
  std::vector<Entry> entries;  // newest first: by seq within a chain; by id (UUIDv7, time-ordered) across chains
  std::optional<std::string> next_cursor;
};

// The first problem found in a chain.
struct Finding {
  std::string chain_id;
  std::int64_t seq = 0;
  std::string entry_id;  // "" when the entry itself is missing
  std::string problem;
};

struct VerifyReport {
  std::int64_t chains = 0;
  std::int64_t entries = 0;
  std::vector<Finding> findings;  // empty: every chain verified
};

// The head of every chain at one time; a later verify proves the log was not rewritten before it.
struct ChainHead {
  std::string chain_id;
  std::int64_t seq = 0;
  std::string hash;
};

// The append-only, hash-chained audit log in the control-plane database. Entries are written in the transaction of
// the change they describe; each chain (a tenant's, or the platform's) is numbered and hashed in commit order, the
// chain's head row serialising appends. Thread-safe.
class AuditLog {
 public:
  // `db` is the control-plane database (the serving role); `owner` the same database as the owner role
  // (storage.admin_database_url; `db` again with one URL), for the reads across chains, which run in the platform
  // scope (docs/security.md). Both must outlive this object. With `enabled` false nothing is recorded (for
  // benchmarks; docs/configuration.md warns against it).
  AuditLog(storage::Database& db, storage::Database& owner, const Clock& clock, bool enabled);

  bool enabled() const { return enabled_; }
  storage::Database& database() { return db_; }
  // The owner role's pool: platform work on the log's own tables (the exporter's cursors), in the platform scope.
  storage::Database& owner_database() { return owner_; }

  // Appends inside `tx`, a transaction on the control-plane database.
  Result<void> append(storage::Transaction& tx, const Context& context, const Event& event);
  // A Recorder bound to `context`, for the stores.
  Recorder recorder(Context context);

  // Appends inside a tenant transaction: into the chain at once when the tenant's data shares the control plane's
  // database, else into the tenant's own audit_outbox, which relay() moves into the chain.
  Result<void> append(tenancy::TenantTransaction& tx, const Context& context, Event event);
  // Moves a tenant's outbox entries into its chain, each exactly once (safe to repeat after a crash). Returns
  // how many moved.
  Result<int> relay(tenancy::TenantData& data, const tenancy::Tenant& tenant);

  // One tenant's chain is read in that tenant's scope; the platform chain and every chain at once (super admins)
  // in the platform scope.
  Result<Page> list(const Query& query);

  // Walks the chains (one, or all) and reports the first entry of each that was altered, removed or reordered.
  Result<VerifyReport> verify(const std::optional<std::string>& chain_id);
  // The current head of every chain.
  Result<std::vector<ChainHead>> heads();
  // Checks that each checkpointed head is still in its chain with the same hash.
  Result<VerifyReport> verify_checkpoint(const std::vector<ChainHead>& checkpoint);

  // Deletes the chains of tenants purged before `cutoff`, through `admin` (the owner role), and records what
  // went in the platform chain. Returns the number of entries deleted.
  Result<std::int64_t> apply_retention(storage::Database& admin, std::chrono::system_clock::time_point cutoff);

  // A tenant import (app/tenant_archive.hpp): puts back entries of one chain as they were read elsewhere, oldest
  // first and contiguous. An entry already present must be the same one (its hash; else conflict), the missing ones
  // are inserted as they are (so the chain verifies as before), and the head moves to the last of them when it was
  // behind. Through the owner, in the platform scope, in one transaction. Returns how many were inserted.
  Result<std::int64_t> restore_chain(const std::vector<Entry>& entries);

  // Committed entries of `chain_id` after `after_seq`, oldest first (the SIEM exporter). Like verify, heads and
  // verify_checkpoint, in the platform scope.
  Result<std::vector<Entry>> read_chain(const std::string& chain_id, std::int64_t after_seq, int limit);

 private:
  Result<void> append_entry(storage::Transaction& tx, Entry entry);
  Entry make_entry(const Context& context, const Event& event) const;
  template <class T>
  Result<T> read_platform(const std::function<Result<T>(storage::Transaction&)>& body);

  storage::Database& db_;
  storage::Database& owner_;
  const Clock& clock_;
  bool enabled_;
};

// A change of a field encrypted at rest (tenancy/sealed_field.hpp) for an entry's `changes` under the field's column
// name: recorded only when the plaintext changed, and then as values sealed for the field (`before` absent: null).
// So the entry holds no personal data in the clear, and the hash chain, which covers the ciphertext, still verifies
// after the tenant's keys are shredded, when nothing can read those values any more.
Result<void> add_sealed_change(const tenancy::TenantTransaction& tx, Json& changes, tenancy::SealedField field,
                               std::string_view row, const std::optional<std::string>& before,
                               const std::string& after);

}  // namespace atrium::audit
