#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/clock.hpp"
#include "storage/database.hpp"
#include "tenancy/sealed_field.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::tenancy {

namespace detail {
// Whether `text` holds `needle` not followed by a digit (so "$1" is not "$10").
constexpr bool contains_whole(std::string_view text, std::string_view needle) {
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) {
    const auto next = at + needle.size();
    if (next == text.size() || text[next] < '0' || text[next] > '9') return true;
  }
  return false;
}
// Whether `sql` filters `tenant_id = $1`, is an INSERT whose column list starts with tenant_id and whose VALUES (or
// SELECT, for rows given as a parameter: such a SELECT must read no tenant table) start with $1, or touches no table
// at all (no FROM, INTO, UPDATE or DELETE: a tenant's advisory lock) and uses $1.
constexpr bool binds_tenant(std::string_view sql) {
  if (contains_whole(sql, "tenant_id = $1")) return true;
  if (sql.starts_with("INSERT INTO")) {
    return sql.find("(tenant_id,") != std::string_view::npos &&
           (sql.find("VALUES ($1,") != std::string_view::npos || sql.find("SELECT $1,") != std::string_view::npos ||
            sql.find("SELECT $1::uuid,") != std::string_view::npos);
  }
  const bool tables = sql.find("FROM") != std::string_view::npos || sql.find("INTO") != std::string_view::npos ||
                      sql.find("UPDATE") != std::string_view::npos || sql.find("DELETE") != std::string_view::npos;
  return !tables && contains_whole(sql, "$1");
}
// Never defined: a TenantStatement whose SQL does not bind the tenant calls it at compile time, so the build fails
// naming it.
void a_tenant_statement_must_bind_tenant_id_to_1();
}  // namespace detail

// SQL on a tenant table. `$1` is always the tenant id, bound by TenantTransaction itself; the statement's own
// parameters are $2, $3, ... Every tenant statement must filter (or, for INSERT, set) tenant_id with $1 — that
// is how SQLite's shared level, which has no row-level security, stays isolated (a statement on no table, such as a
// tenant's advisory lock, needs only to use $1). The constructor checks it at compile time (consteval): a statement
// that does not is a build error, wherever it is declared.
struct TenantStatement {
  consteval TenantStatement(std::string_view statement_name, std::string_view statement_sql)
      : name(statement_name), sql(statement_sql) {
    if (!detail::binds_tenant(sql)) detail::a_tenant_statement_must_bind_tenant_id_to_1();
  }
  std::string_view name;
  std::string_view sql;
};

// A tenant statement with its own parameters ($2, $3, ...), for TenantData::run.
struct TenantBoundStatement {
  TenantStatement statement;
  std::vector<storage::Value> params;
};

// A column encrypted at rest, for re-encryption (data-key rotation; sealing rows written before encryption): `select`
// returns (row, stored value) of every row of the tenant; `update` sets $3 where the row is $2 and the value is
// still $4 (a compare-and-set, so a concurrent write wins). `control_plane`: the table is a control-plane one
// (TenantData::transact_control_plane), else the tenant's own store (TenantData::transact).
struct SealedColumn {
  SealedField field;
  TenantStatement select;
  TenantStatement update;
  bool control_plane = false;
  // 0: `select` reads every row at once. N > 0 (tables that grow with use): `select` reads the next N rows after
  // row $2 in row order ($3 = N), each page in a transaction of its own.
  std::int64_t page_rows = 0;
  // Null: every value is sealed. Else a value still in plaintext is sealed only for tenants this says yes to (a
  // field the tenant opts into encrypting); sealed values are re-sealed under the active key either way.
  bool (*opted_in)(const Tenant&) = nullptr;
};

class OutboxMarks;       // outbox_marks.hpp
class StoreWrites;       // store_writes.hpp
class SchemaSearchPath;  // tenant_data.cpp: the PostgreSQL schema level's search_path, switched per statement kind

// A transaction scoped to one tenant. The only way to run tenant statements. Valid inside
// TenantData::transact's (or transact_control_plane's) callback, or made by PlatformTransaction::tenant; one thread
// at a time.
class TenantTransaction {
 public:
  const std::string& tenant_id() const { return tenant_id_; }
  storage::Backend backend() const { return tx_.backend(); }
  Result<storage::ResultSet> execute(const TenantStatement& statement,
                                     std::initializer_list<storage::Value> params = {});
  Result<storage::ResultSet> execute(const TenantStatement& statement, std::span<const storage::Value> params);

  // The same transaction as a control-plane one, when the tenant's data shares the control plane's database
  // (shared level; PostgreSQL schema level); null when it lives in its own database or file. For the audit log,
  // whose entries are written in the transaction of the change they describe. At the PostgreSQL schema level its
  // statements resolve names in `public` alone, tenant statements in the tenant's schema alone (each switch of
  // kind costs one set_config).
  storage::Transaction* control_plane();
  // The same, for tenant statements on the tenant's control-plane rows ($1 bound to this tenant, as here): a view of
  // this transaction when control_plane() is non-null, else nullopt. Reading both planes in one transaction reads
  // them at one instant (a tenant export).
  std::optional<TenantTransaction> control_plane_rows();

  // A field encrypted at rest with this tenant's data key (tenancy/sealed_field.hpp): the value to store, and the
  // plaintext of a stored one. `row` identifies the row (its id; the tenant id for a tenant's single row).
  Result<std::string> seal(SealedField field, std::string_view row, std::string_view plaintext) const;
  Result<std::string> open(SealedField field, std::string_view row, std::string_view stored) const;

 private:
  friend class TenantData;
  friend class PlatformTransaction;
  TenantTransaction(storage::Transaction& tx, std::string tenant_id, bool in_control_plane, FieldSealer* sealer,
                    SchemaSearchPath* search_path = nullptr)
      : tx_(tx),
        tenant_id_(std::move(tenant_id)),
        in_control_plane_(in_control_plane),
        sealer_(sealer),
        search_path_(search_path) {}

  storage::Transaction& tx_;
  std::string tenant_id_;
  bool in_control_plane_;
  FieldSealer* sealer_;            // null: fields are stored as given (TenantData built without one)
  SchemaSearchPath* search_path_;  // PostgreSQL schema level only
};

// A transaction of the platform scope: platform-wide work that reads and writes the control-plane rows of every
// tenant (the billing run, MRR). See TenantData::transact_platform. Valid inside its callback; one thread at a time.
class PlatformTransaction {
 public:
  // The transaction itself, for control-plane statements (cross-tenant ones included).
  storage::Transaction& control() { return tx_; }
  storage::Backend backend() const { return tx_.backend(); }
  // Tenant statements on one tenant's control-plane rows inside this transaction: $1 is bound to `tenant_id` as in
  // a tenant-scoped transaction (here it is the only filter: the platform scope's policies admit every tenant).
  TenantTransaction tenant(std::string tenant_id) {
    return TenantTransaction(tx_, std::move(tenant_id), true, sealer_);
  }

 private:
  friend class TenantData;
  PlatformTransaction(storage::Transaction& tx, FieldSealer* sealer) : tx_(tx), sealer_(sealer) {}
  storage::Transaction& tx_;
  FieldSealer* sealer_;
};

struct TenantDataOptions {
  std::string data_dir;      // SQLite: tenant files live in <data_dir>/tenants/<id>.db
  std::string app_url;       // PostgreSQL: the serving role's URL (tenant database URLs are derived from it)
  std::string admin_url;     // PostgreSQL: the owner role's URL for provisioning (may equal app_url)
  int tenant_pool_size = 4;  // connections per tenant database / file
  int max_open_tenant_pools = 64;
  int max_tenant_connections = 0;  // all own pools' connections together, one place each (0: no cap beyond the pools')
  storage::DatabaseOptions pool_template;  // timeouts for tenant pools
  FieldSealer* sealer = nullptr;           // encrypts fields at rest (protection::Keyring); outlives TenantData
};

// Where each tenant's data lives and how a transaction is scoped to it, per isolation level and backend:
//   shared   PostgreSQL: the main database; set_config('app.tenant_id', id, true) so RLS (FORCE) applies.
//            SQLite: the main database; TenantTransaction binds tenant_id into every statement.
//   schema   PostgreSQL: schema tenant_<hex> in the main database; app.tenant_id and search_path = tenant_<hex>
//            alone (no public: a table missing from the schema is an error, never the shared table), both with
//            set_config(..., true) per transaction. SQLite: a file per tenant.
//   database PostgreSQL: database atrium_t_<hex> with its own lazily opened, capped pool. SQLite: a file per
//            tenant.
// Thread-safe.
class TenantData {
 public:
  // `app` serves requests; `admin` owns the schema and provisions (the same object when only one URL is
  // configured). Both must outlive this object.
  TenantData(storage::Database& app, storage::Database& admin, TenantDataOptions options, const Clock& clock);
  ~TenantData();

  // Runs `body` in a transaction scoped to `tenant`. A write (not read_only) to a tenant frozen for a move
  // (Tenant::writes_frozen) fails with `unavailable` before it begins, as does run()'s.
  Result<void> transact(const Tenant& tenant, const std::function<Result<void>(TenantTransaction&)>& body,
                        const storage::TransactionOptions& options = {});
  // As transact, for work that only removes expired rows (the daily cleanup): not noted as a write of the store
  // (StoreWrites), so a tenant is not kept on the cleanup's list by the cleanup's own visits.
  Result<void> transact_removal(const Tenant& tenant, const std::function<Result<void>(TenantTransaction&)>& body);

  // A transaction scoped to `tenant` whose statements are all known before it begins (storage::Database::run):
  // the tenant bound as $1 of each, as TenantTransaction binds it; on PostgreSQL the scope, the statements and
  // COMMIT travel in one round trip. Returns the statements' results in order.
  Result<std::vector<storage::ResultSet>> run(const Tenant& tenant, std::span<const TenantBoundStatement> statements,
                                              const storage::TransactionOptions& options = {});

  // Runs `body` in a control-plane transaction scoped to `tenant_id`, for the control-plane tables that carry
  // tenant_id whatever the tenant's isolation level (billing): app.tenant_id is set on PostgreSQL so RLS applies,
  // and statements bind $1 as every TenantStatement does. control_plane() is always non-null inside.
  Result<void> transact_control_plane(const std::string& tenant_id,
                                      const std::function<Result<void>(TenantTransaction&)>& body,
                                      const storage::TransactionOptions& options = {});

  // The platform scope: runs `body` in a control-plane transaction that may read and write every tenant's rows of
  // the control-plane tables carrying tenant_id. The only such scope; for platform-wide work alone (the billing
  // run and MRR), never for a request acting for one tenant. PostgreSQL: the transaction runs on the owner role's
  // pool (`admin`, storage.admin_database_url) and sets app.platform_scope = 'on' transaction-locally, which only
  // the owner's `<table>_platform_scope` policies read (migration 0009); the serving role has no such policy, so
  // setting the variable gives it nothing. Statements also use generic plans (plan_cache_mode): the policies' OR
  // misleads custom plans of the cross-tenant batches. SQLite (no RLS): a plain transaction on the database.
  Result<void> transact_platform(const std::function<Result<void>(PlatformTransaction&)>& body,
                                 const storage::TransactionOptions& options = {});
  // The owner's pool as a Database whose every transaction is in the platform scope, for platform infrastructure
  // written against storage::Database (the SQL job queue and its cleanup). Lives as long as this object.
  storage::Database& platform_database();

  // The tenants with their own database or file that may hold outbox rows not yet carried to the control plane:
  // transact() and run() mark a tenant before a read-write transaction (see OutboxMarks).
  OutboxMarks& outbox_marks();
  // When each tenant's store was last written (every read-write transaction notes it), for the daily cleanup.
  StoreWrites& store_writes();

  // Creates the tenant's schema, database or file and applies the tenant migrations to it. Idempotent; does
  // nothing for the shared level (its tables come with `atrium migrate`).
  Result<void> provision(const Tenant& tenant);

  // Applies pending tenant migrations to the tenant's own schema, database or file (no-op for shared).
  Result<int> migrate(const Tenant& tenant);

  // Removes the tenant's data: drops its schema or database, deletes its file, or deletes its rows from the
  // shared tables. Irreversible.
  Result<void> purge(const Tenant& tenant);

  // Whether the tenant's data lives in the control plane's database (so one transaction covers both).
  bool shares_control_plane(const Tenant& tenant) const;
  // Fences (or, with fenced = false, unfences) the tenant's store at `tenant.isolation` for a move to another
  // level: once fence returns, every write transaction into that store that began before has ended and every later
  // one fails with `unavailable`, whatever view of the tenant its process holds. Idempotent.
  Result<void> fence(const Tenant& tenant, bool fenced = true);
  // Whether two views of one tenant (at different isolation levels) name the same store: the same level, or on
  // SQLite the schema and database levels (both the tenant's own file).
  bool same_store(const Tenant& a, const Tenant& b) const;
  // For a tenant with its own database or file: whether it exists (false after a purge). Never creates it.
  Result<bool> own_store_exists(const Tenant& tenant);

  // For tests and diagnostics: the name of the PostgreSQL role that serves requests.
  Result<std::string> serving_role();

  // Closes the own pools (database level, SQLite files) unused for `idle` — in-flight transactions keep theirs
  // until they end — so a process holds no connection to a store a tenant left or no longer uses (a move's removal
  // of an old database waits for them). `serve` and `worker` call it every 30 s with one minute. Returns how many.
  std::size_t close_idle_pools(std::chrono::milliseconds idle);

  // For a background pass over many tenants (the outbox sweep): runs `work` and, when the tenant's own pool held no
  // connection before, closes that pool after, so the pass takes a connection place for one tenant at a time
  // instead of pushing the connections of the tenants in use out of tenancy.max_tenant_connections.
  void in_passing(const Tenant& tenant, const std::function<void()>& work);

  // The tenants' own pools open now (database level, SQLite files; at most max_open_tenant_pools, their connections
  // together at most max_tenant_connections), for metrics.
  struct OwnPools {
    std::size_t open = 0;
    storage::PoolStats summed;  // their occupancy added up
  };
  OwnPools own_pools();

 private:
  Result<void> transact_store(const Tenant& tenant, const std::function<Result<void>(TenantTransaction&)>& body,
                              const storage::TransactionOptions& options, bool note);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Scopes an open control-plane transaction to one tenant, for stores that run control-plane statements on one
// tenant's rows outside a TenantTransaction (API keys, the audit log): on PostgreSQL sets app.tenant_id
// transaction-locally, so the tables' tenant policies admit that tenant's rows and no other's; nothing on SQLite.
Result<void> scope_to_tenant(storage::Transaction& tx, const std::string& tenant_id);

// Enters the platform scope in an open transaction on the owner role's connection (PostgreSQL: app.platform_scope
// and generic plans, transaction-local; nothing on SQLite). The one definition of the scope; see
// TenantData::transact_platform. On the serving role's connection it opens nothing (no policy of its reads it).
Result<void> enter_platform_scope(storage::Transaction& tx);

// The platform scope on `owner` (the owner role's pool, storage.admin_database_url): TenantData::transact_platform
// for work that has no TenantData (the audit log's platform-wide reads).
Result<void> transact_platform(storage::Database& owner, const std::function<Result<void>(storage::Transaction&)>& body,
                               const storage::TransactionOptions& options = {});

// The PostgreSQL schema / database names for a tenant (derived from its UUID, safe as identifiers).
std::string tenant_schema_name(const std::string& tenant_id);
std::string tenant_database_name(const std::string& tenant_id);

}  // namespace atrium::tenancy
