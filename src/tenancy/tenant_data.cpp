#include "tenancy/tenant_data.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/log.hpp"
#include "storage/connection_budget.hpp"
#include "storage/migrations.hpp"
#include "tenancy/outbox_marks.hpp"
#include "tenancy/store_writes.hpp"
#include "tenancy/tenant_store.hpp"
#include "tenancy/tenant_tables.hpp"

namespace atrium::tenancy {

namespace {

using storage::Backend;
using storage::Database;
using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_set_tenant{"tenant_scope_set", "SELECT set_config('app.tenant_id', $1, true)"};
// The schema level: the tenant and a search_path of the tenant's schema alone, in one round trip. pg_catalog is
// searched first anyway; public is not searched at all, so a tenant table missing from the schema is an error
// instead of the shared table of the same name.
constexpr Statement k_set_tenant_schema{"tenant_scope_set_schema",
                                        "SELECT set_config('app.tenant_id', $1::text, true), "
                                        "set_config('search_path', public.atrium_tenant_schema($1::text::uuid), true)"};
// A write transaction's scope (migrations/tenant/*/0006_tenant_fences.sql): atrium_write_scope sets the tenant,
// takes its write lock shared and refuses (unavailable) while the level written at is fenced for a move; the schema
// level also gets its search_path, as above. SQLite (one writer at a time): the fence is looked up first.
constexpr Statement k_write_scope{"tenant_write_scope", "SELECT public.atrium_write_scope($1::text, $2)"};
constexpr Statement k_write_scope_schema{
    "tenant_write_scope_schema",
    "SELECT public.atrium_write_scope($1::text, 'schema'), "
    "set_config('search_path', public.atrium_tenant_schema($1::text::uuid), true)"};
constexpr Statement k_fence_lookup{"tenant_fence_lookup",
                                   "SELECT 1 FROM tenant_fences WHERE tenant_id = $1 AND isolation = $2"};
constexpr Statement k_fence_insert{
    "tenant_fence_insert",
    "INSERT INTO tenant_fences (tenant_id, isolation, fenced_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"};
constexpr Statement k_fence_delete{"tenant_fence_delete",
                                   "DELETE FROM tenant_fences WHERE tenant_id = $1 AND isolation = $2"};
// Waits until every write transaction that took the tenant's write lock shared has ended.
constexpr Statement k_fence_wait{"tenant_fence_wait", "SELECT pg_advisory_xact_lock(1096045620, hashtext($1::text))"};
constexpr Statement k_search_path_tenant{
    "tenant_search_path_tenant", "SELECT set_config('search_path', public.atrium_tenant_schema($1::uuid), true)"};
constexpr Statement k_search_path_control{"tenant_search_path_control",
                                          "SELECT set_config('search_path', 'public', true)"};
constexpr Statement k_platform_scope{"platform_scope_set",
                                     "SELECT set_config('app.platform_scope', 'on', true), "
                                     "set_config('plan_cache_mode', 'force_generic_plan', true)"};
// Migrating a tenant schema: unqualified DDL lands in the schema, and the tenant migrations' references to the
// shared tenants table resolve in public.
constexpr Statement k_migration_search_path{
    "tenant_migration_search_path",
    "SELECT set_config('search_path', atrium_tenant_schema($1::uuid) || ', public', true)"};
constexpr Statement k_create_schema{"tenant_create_schema", "SELECT atrium_create_tenant_schema($1::uuid)"};
constexpr Statement k_drop_schema{"tenant_drop_schema", "SELECT atrium_drop_tenant_schema($1::uuid)"};
constexpr Statement k_grant_schema{"tenant_grant_schema",
                                   "SELECT atrium_grant_schema_to(atrium_tenant_schema($1::uuid), $2)"};
constexpr Statement k_grant_public{"tenant_grant_public", "SELECT atrium_grant_schema_to('public', $1)"};
constexpr Statement k_current_user{"tenant_current_user", "SELECT current_user::text"};
constexpr Statement k_database_sessions{"tenant_database_sessions",
                                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1"};
constexpr Statement k_database_exists{"tenant_database_exists", "SELECT COUNT(*) FROM pg_database WHERE datname = $1"};
constexpr Statement k_create_database_command{"tenant_create_database_command",
                                              "SELECT format('CREATE DATABASE %I', $1::text)"};
constexpr Statement k_drop_database_command{"tenant_drop_database_command",
                                            "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)"};
constexpr Statement k_tenant_row_insert_pg{"tenant_row_insert_pg",
                                           "INSERT INTO tenants (id) VALUES ($1::uuid) ON CONFLICT DO NOTHING"};
constexpr Statement k_tenant_row_insert_sqlite{"tenant_row_insert_sqlite",
                                               "INSERT OR IGNORE INTO tenants (id) VALUES ($1)"};

// A tenant's own database or file holds a one-row `tenants` table so the tenant migrations' foreign keys to
// tenants(id) hold there as in the shared database.
constexpr std::string_view k_bootstrap_pg = R"sql(
CREATE TABLE IF NOT EXISTS tenants (id UUID PRIMARY KEY);
CREATE OR REPLACE FUNCTION atrium_grant_schema_to(schema_name TEXT, role_name TEXT) RETURNS VOID
  LANGUAGE plpgsql AS $$
BEGIN
  IF role_name = current_user THEN
    RETURN;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema_name, role_name);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', schema_name, role_name);
END $$;
)sql";
constexpr std::string_view k_bootstrap_sqlite = "CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY);";

// Which file a path names now (device and inode), or nullopt when there is none.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

std::optional<FileIdentity> file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileIdentity{st.st_dev, st.st_ino};
}

std::string hex_id(const std::string& tenant_id) {
  std::string out;
  for (char c : tenant_id) {
    if (c != '-') out.push_back(c);
  }
  return out;
}

// Replaces the database name in a libpq URI: postgresql://user@host:port/NAME?params
std::string with_database(const std::string& url, const std::string& database) {
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) {
    const auto q = url.find('?');
    return q == std::string::npos ? url + "/" + database : url.substr(0, q) + "/" + database + url.substr(q);
  }
  const auto q = url.find('?', slash);
  return url.substr(0, slash + 1) + database + (q == std::string::npos ? "" : url.substr(q));
}

}  // namespace

// The PostgreSQL schema level's search_path inside one tenant transaction: the tenant's schema alone while tenant
// statements run, public alone while control-plane statements (TenantTransaction::control_plane) run. The
// transaction starts in the tenant's schema; a switch is one set_config, made only when the kind changes.
class SchemaSearchPath final : public Transaction {
 public:
  SchemaSearchPath(Transaction& tx, std::string tenant_id) : tx_(tx), tenant_id_(std::move(tenant_id)) {}

  Result<void> for_tenant() { return use(false); }

  Result<storage::ResultSet> execute(const Statement& statement, std::span<const Value> params) override {
    if (auto r = use(true); !r) return std::unexpected(r.error());
    return tx_.execute(statement, params);
  }
  Result<void> execute_script(std::string_view sql) override {
    if (auto r = use(true); !r) return r;
    return tx_.execute_script(sql);
  }
  Backend backend() const override { return tx_.backend(); }

 private:
  Result<void> use(bool control) {
    if (control == control_) return {};
    auto r = control ? tx_.execute(k_search_path_control) : tx_.execute(k_search_path_tenant, {Value(tenant_id_)});
    if (!r) return std::unexpected(r.error());
    control_ = control;
    return {};
  }

  Transaction& tx_;
  std::string tenant_id_;
  bool control_ = false;
};

namespace {

// TenantData::platform_database: the owner's pool, each transaction entering the platform scope first.
class PlatformDatabase final : public Database {
 public:
  explicit PlatformDatabase(Database& owner) : owner_(owner) {}
  Backend backend() const override { return owner_.backend(); }
  Result<void> transact(const std::function<Result<void>(Transaction&)>& body,
                        const storage::TransactionOptions& options) override {
    return transact_platform(owner_, body, options);
  }
  // The scope travels in the same pipeline as the statements (one round trip on PostgreSQL).
  Result<std::vector<storage::ResultSet>> run(std::span<const storage::BoundStatement> statements,
                                              const storage::TransactionOptions& options) override {
    if (owner_.backend() != Backend::postgres) return owner_.run(statements, options);
    std::vector<storage::BoundStatement> scoped{{k_platform_scope, {}}};
    scoped.insert(scoped.end(), statements.begin(), statements.end());
    auto results = owner_.run(scoped, options);
    if (results) results->erase(results->begin());
    return results;
  }
  Result<void> ping() override { return owner_.ping(); }
  Result<void> execute_unscoped(std::string_view command) override { return owner_.execute_unscoped(command); }

 private:
  Database& owner_;
};

}  // namespace

storage::Transaction* TenantTransaction::control_plane() {
  if (!in_control_plane_) return nullptr;
  if (search_path_ != nullptr) return search_path_;
  return &tx_;
}

std::optional<TenantTransaction> TenantTransaction::control_plane_rows() {
  storage::Transaction* control = control_plane();
  if (control == nullptr) return std::nullopt;
  return TenantTransaction(*control, tenant_id_, true, sealer_);
}

std::string tenant_schema_name(const std::string& tenant_id) { return "tenant_" + hex_id(tenant_id); }
std::string tenant_database_name(const std::string& tenant_id) { return "atrium_t_" + hex_id(tenant_id); }

Result<storage::ResultSet> TenantTransaction::execute(const TenantStatement& statement,
                                                      std::initializer_list<Value> params) {
  return execute(statement, std::span<const Value>(params.begin(), params.size()));
}

Result<storage::ResultSet> TenantTransaction::execute(const TenantStatement& statement, std::span<const Value> params) {
  std::vector<Value> bound;
  bound.reserve(params.size() + 1);
  bound.emplace_back(tenant_id_);
  bound.insert(bound.end(), params.begin(), params.end());
  if (search_path_ != nullptr) {
    if (auto r = search_path_->for_tenant(); !r) return std::unexpected(r.error());
  }
  return tx_.execute(Statement{statement.name, statement.sql}, std::span<const Value>(bound));
}

Result<std::string> TenantTransaction::seal(SealedField field, std::string_view row, std::string_view plaintext) const {
  if (sealer_ == nullptr) return std::string(plaintext);
  return sealer_->seal(tenant_id_, field, row, plaintext);
}

Result<std::string> TenantTransaction::open(SealedField field, std::string_view row, std::string_view stored) const {
  if (sealer_ != nullptr) return sealer_->open(tenant_id_, field, row, stored);
  if (is_sealed(stored)) {
    return fail(Errc::unavailable, std::string("the encrypted field ") + std::string(field.table) + "." +
                                       std::string(field.column) + " cannot be read: no key service is configured");
  }
  return std::string(stored);
}

struct TenantData::Impl {
  Database& app;
  Database& admin;
  TenantDataOptions options;
  const Clock& clock;

  // Open pools of tenants with their own database or file, least recently used first.
  struct OwnPool {
    std::shared_ptr<Database> db;
    std::list<std::string>::iterator lru;
    std::optional<FileIdentity> file;  // SQLite: the file it opened
    std::chrono::steady_clock::time_point used;
  };
  std::mutex mutex;
  std::list<std::string> lru;  // tenant ids
  std::unordered_map<std::string, OwnPool> pools;
  // The places every serving pool's connections take (max_tenant_connections); null without that cap.
  std::shared_ptr<storage::ConnectionBudget> connections;

  bool postgres() const { return app.backend() == Backend::postgres; }
  bool own_store(const Tenant& t) const {
    return t.isolation == Isolation::database || (!postgres() && t.isolation == Isolation::schema);
  }

  std::string sqlite_path(const Tenant& t) const {
    return (std::filesystem::path(options.data_dir) / "tenants" / (t.id + ".db")).string();
  }

  Result<std::shared_ptr<Database>> open_own(const Tenant& t, bool as_admin) {
    std::optional<FileIdentity> file;
    if (!as_admin && !postgres()) {
      // A serving pool never creates a tenant's file, and follows it when another process replaced it (a move
      // away and back): a pool on a removed file would read and write rows nobody else sees.
      file = file_identity(sqlite_path(t));
      if (!file) {
        forget(t.id);
        return fail(Errc::unavailable, "the store of tenant " + t.id + " is not there (moved or purged)");
      }
    }
    if (!as_admin) {
      std::lock_guard lock(mutex);
      if (auto it = pools.find(t.id); it != pools.end()) {
        if (it->second.file == file) {
          lru.splice(lru.end(), lru, it->second.lru);
          it->second.used = std::chrono::steady_clock::now();
          return it->second.db;
        }
        lru.erase(it->second.lru);
        pools.erase(it);
      }
    }
    storage::DatabaseOptions o = options.pool_template;
    o.pool_size = as_admin ? 1 : options.tenant_pool_size;
    if (!as_admin) o.connection_budget = connections;
    if (postgres()) {
      o.url = with_database(as_admin ? options.admin_url : options.app_url, tenant_database_name(t.id));
    } else {
      o.url = "sqlite:" + sqlite_path(t);
    }
    auto opened = storage::open_database(o);
    if (!opened) return std::unexpected(opened.error());
    std::shared_ptr<Database> db(std::move(*opened));
    if (as_admin) return db;
    {
      std::lock_guard lock(mutex);
      if (auto it = pools.find(t.id); it != pools.end()) return it->second.db;  // another thread won
      lru.push_back(t.id);
      pools.emplace(t.id, OwnPool{db, std::prev(lru.end()), file, std::chrono::steady_clock::now()});
      while (static_cast<int>(pools.size()) > std::max(1, options.max_open_tenant_pools)) {
        // In-flight users hold their own shared_ptr; the pool closes when the last one finishes.
        pools.erase(lru.front());
        lru.pop_front();
      }
    }
    return db;
  }

  // The serving pool of a tenant with its own database or file (held for the caller's transaction); null for one
  // whose data lives in the main database (`app`).
  Result<std::shared_ptr<Database>> serving_pool(const Tenant& t) {
    if (!own_store(t)) return std::shared_ptr<Database>();
    return open_own(t, /*as_admin=*/false);
  }

  // Whether the tenant's own pool is open and holds a connection (taken from the budget's shedding or not yet).
  bool holds_connection(const std::string& tenant_id) {
    std::shared_ptr<Database> db;
    {
      std::lock_guard lock(mutex);
      if (auto it = pools.find(tenant_id); it != pools.end()) db = it->second.db;
    }
    if (!db) return false;
    const auto stats = db->pool_stats();  // outside the lock: the pool takes its own
    return stats.in_use + stats.idle > 0;
  }

  void forget(const std::string& tenant_id) {
    std::lock_guard lock(mutex);
    if (auto it = pools.find(tenant_id); it != pools.end()) {
      lru.erase(it->second.lru);
      pools.erase(it);
    }
  }

  // The tenant's scope at the start of its transaction; a write's also checks the level's fence.
  Result<void> scope(Transaction& tx, const Tenant& t, bool write) const {
    write = write && !t.passes_fence;
    const bool schema = t.isolation == Isolation::schema;
    const Value level(std::string(isolation_name(t.isolation)));
    if (!postgres()) {
      if (!write) return {};
      auto fenced = tx.execute(k_fence_lookup, {Value(t.id), level});
      if (!fenced) return std::unexpected(fenced.error());
      if (!fenced->empty()) return fenced_error(t);
      return {};
    }
    auto r = !write   ? tx.execute(schema ? k_set_tenant_schema : k_set_tenant, {Value(t.id)})
             : schema ? tx.execute(k_write_scope_schema, {Value(t.id)})
                      : tx.execute(k_write_scope, {Value(t.id), level});
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // The first statement of a pipelined transaction (run()) on PostgreSQL: scope() as one bound statement.
  storage::BoundStatement scope_statement(const Tenant& t, bool write) const {
    write = write && !t.passes_fence;
    const bool schema = t.isolation == Isolation::schema;
    if (!write) return {schema ? k_set_tenant_schema : k_set_tenant, {Value(t.id)}};
    if (schema) return {k_write_scope_schema, {Value(t.id)}};
    return {k_write_scope, {Value(t.id), Value(std::string(isolation_name(t.isolation)))}};
  }

  static std::unexpected<Error> fenced_error(const Tenant& t) {
    return fail(Errc::unavailable, "tenant " + t.id + " is moving away from the " +
                                       std::string(isolation_name(t.isolation)) + " level; writes resume shortly");
  }

  // The serving role never changes while the process runs: asked once, not once per migrated tenant.
  Result<std::string> serving_role() {
    {
      std::lock_guard lock(mutex);
      if (!role_name.empty()) return role_name;
    }
    auto role = storage::transact_value<std::string>(app, [](Transaction& tx) -> Result<std::string> {
      auto r = tx.execute(k_current_user);
      if (!r) return std::unexpected(r.error());
      return r->text_at(0, 0).value_or("");
    });
    if (role) {
      std::lock_guard lock(mutex);
      role_name = *role;
    }
    return role;
  }

  std::string role_name;  // guarded by mutex; empty until first asked
  std::unique_ptr<PlatformDatabase> platform_database;
  OutboxMarks marks{app, admin, clock};  // the control plane's: the serving pool and the owner's
  StoreWrites writes{app, admin, clock};
};

TenantData::TenantData(Database& app, Database& admin, TenantDataOptions options, const Clock& clock)
    : impl_(new Impl{
          app, admin, std::move(options), clock, {}, {}, {}, {}, {}, std::make_unique<PlatformDatabase>(admin)}) {
  if (impl_->options.max_tenant_connections > 0) {
    impl_->connections =
        std::make_shared<storage::ConnectionBudget>(static_cast<std::size_t>(impl_->options.max_tenant_connections));
  }
}

storage::Database& TenantData::platform_database() { return *impl_->platform_database; }

OutboxMarks& TenantData::outbox_marks() { return impl_->marks; }
StoreWrites& TenantData::store_writes() { return impl_->writes; }

TenantData::~TenantData() = default;

Result<std::string> TenantData::serving_role() { return impl_->serving_role(); }

void TenantData::in_passing(const Tenant& tenant, const std::function<void()>& work) {
  auto& s = *impl_;
  const bool held = !s.own_store(tenant) || s.holds_connection(tenant.id);
  work();
  if (!held) s.forget(tenant.id);
}

TenantData::OwnPools TenantData::own_pools() {
  std::vector<std::shared_ptr<Database>> open;
  {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [id, entry] : impl_->pools) open.push_back(entry.db);
  }
  OwnPools out{.open = open.size()};
  for (const auto& db : open) out.summed += db->pool_stats();  // outside the lock: each pool takes its own
  return out;
}

bool TenantData::shares_control_plane(const Tenant& tenant) const { return !impl_->own_store(tenant); }

Result<void> TenantData::fence(const Tenant& tenant, bool fenced) {
  Impl& s = *impl_;
  auto own = s.serving_pool(tenant);
  if (!own) return std::unexpected(own.error());
  Database* db = *own ? own->get() : &s.app;
  const Value level(std::string(isolation_name(tenant.isolation)));
  auto r = db->transact([&](Transaction& tx) -> Result<void> {
    if (auto scoped = scope_to_tenant(tx, tenant.id); !scoped) return scoped;
    auto w = fenced ? tx.execute(k_fence_insert, {Value(tenant.id), level, Value(format_rfc3339(s.clock.now()))})
                    : tx.execute(k_fence_delete, {Value(tenant.id), level});
    if (!w) return std::unexpected(w.error());
    return {};
  });
  if (!r || !fenced || !s.postgres()) return r;
  // PostgreSQL: wait out the writes that took the tenant's lock before the fence was there (SQLite's writers are
  // one at a time: the fence's own transaction waited for them).
  return db->transact([&](Transaction& tx) -> Result<void> {
    auto w = tx.execute(k_fence_wait, {Value(tenant.id)});
    if (!w) return std::unexpected(w.error());
    return {};
  });
}

std::size_t TenantData::close_idle_pools(std::chrono::milliseconds idle) {
  Impl& s = *impl_;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<Database>> closing;  // closed outside the lock
  std::lock_guard lock(s.mutex);
  for (auto it = s.pools.begin(); it != s.pools.end();) {
    if (now - it->second.used < idle) {
      ++it;
      continue;
    }
    closing.push_back(std::move(it->second.db));
    s.lru.erase(it->second.lru);
    it = s.pools.erase(it);
  }
  return closing.size();
}

bool TenantData::same_store(const Tenant& a, const Tenant& b) const {
  if (a.id != b.id) return false;
  if (a.isolation == b.isolation) return true;
  // SQLite keeps both the schema and the database level in the tenant's own file.
  return !impl_->postgres() && a.isolation != Isolation::shared && b.isolation != Isolation::shared;
}

Result<bool> TenantData::own_store_exists(const Tenant& tenant) {
  Impl& s = *impl_;
  if (!s.own_store(tenant)) return false;
  if (!s.postgres()) return std::filesystem::exists(s.sqlite_path(tenant));
  auto n = storage::transact_value<std::int64_t>(s.admin, [&](Transaction& tx) -> Result<std::int64_t> {
    auto r = tx.execute(k_database_exists, {Value(tenant_database_name(tenant.id))});
    if (!r) return std::unexpected(r.error());
    return r->int_at(0, 0).value_or(0);
  });
  if (!n) return std::unexpected(n.error());
  return *n > 0;
}

namespace {
// A tenant frozen for the switch of a move between levels takes no write into its store; reads go on.
Result<void> writable(const Tenant& tenant) {
  if (!tenant.writes_frozen()) return {};
  return fail(Errc::unavailable,
              "tenant " + tenant.id + " is moving to another isolation level; writes resume shortly");
}
}  // namespace

Result<void> TenantData::transact(const Tenant& tenant, const std::function<Result<void>(TenantTransaction&)>& body,
                                  const storage::TransactionOptions& options) {
  return transact_store(tenant, body, options, !options.read_only);
}

Result<void> TenantData::transact_removal(const Tenant& tenant,
                                          const std::function<Result<void>(TenantTransaction&)>& body) {
  return transact_store(tenant, body, {}, false);
}

Result<void> TenantData::transact_store(const Tenant& tenant,
                                        const std::function<Result<void>(TenantTransaction&)>& body,
                                        const storage::TransactionOptions& options, bool note) {
  Impl& s = *impl_;
  if (!options.read_only) {
    if (auto open = writable(tenant); !open) return open;
  }
  auto own = s.serving_pool(tenant);
  if (!own) return std::unexpected(own.error());
  // The store's last write (StoreWrites): in this transaction where the store shares the control plane's
  // database, else just before in one of its own.
  Instant write_noted{};
  const bool note_inside = note && !*own && s.writes.due(tenant.id, write_noted);
  if (note && *own) {
    if (auto noted = s.writes.note(tenant.id); !noted) return noted;
  }
  if (!options.read_only && *own) {
    if (auto marked = s.marks.ensure(tenant.id); !marked) return marked;
  }
  Database* db = *own ? own->get() : &s.app;
  const bool schema = s.postgres() && tenant.isolation == Isolation::schema;
  auto done = db->transact(
      [&](Transaction& tx) -> Result<void> {
        if (auto scoped = s.scope(tx, tenant, !options.read_only); !scoped) return scoped;
        if (note_inside) {
          const auto note = s.writes.statement(tenant.id, write_noted, tx.backend());
          if (auto r = tx.execute(note.statement, note.params); !r) return std::unexpected(r.error());
        }
        std::optional<SchemaSearchPath> search_path;
        if (schema) search_path.emplace(tx, tenant.id);
        TenantTransaction ttx(tx, tenant.id, *own == nullptr, s.options.sealer, search_path ? &*search_path : nullptr);
        return body(ttx);
      },
      options);
  if (done && note_inside) s.writes.noted(tenant.id, write_noted);
  return done;
}

Result<std::vector<storage::ResultSet>> TenantData::run(const Tenant& tenant,
                                                        std::span<const TenantBoundStatement> statements,
                                                        const storage::TransactionOptions& options) {
  Impl& s = *impl_;
  if (!options.read_only) {
    if (auto open = writable(tenant); !open) return std::unexpected(open.error());
  }
  auto own = s.serving_pool(tenant);
  if (!own) return std::unexpected(own.error());
  Instant write_noted{};
  const bool note_inside = !options.read_only && !*own && s.writes.due(tenant.id, write_noted);
  if (!options.read_only && *own) {
    if (auto noted = s.writes.note(tenant.id); !noted) return std::unexpected(noted.error());
    if (auto marked = s.marks.ensure(tenant.id); !marked) return std::unexpected(marked.error());
  }
  Database* db = *own ? own->get() : &s.app;
  std::vector<storage::BoundStatement> bound;
  bound.reserve(statements.size() + 2);
  // The scope of Impl::scope, as the pipeline's first statement (the schema level's search_path is the tenant's
  // schema alone: every statement here is a tenant statement), then the store's last write where due.
  if (s.postgres()) bound.push_back(s.scope_statement(tenant, !options.read_only));
  if (note_inside) bound.push_back(s.writes.statement(tenant.id, write_noted, s.app.backend()));
  const std::size_t leading = bound.size();  // results of ours, not the caller's
  for (const TenantBoundStatement& t : statements) {
    std::vector<Value> params;
    params.reserve(t.params.size() + 1);
    params.emplace_back(tenant.id);
    params.insert(params.end(), t.params.begin(), t.params.end());
    bound.push_back({Statement{t.statement.name, t.statement.sql}, std::move(params)});
  }
  if (!s.postgres() && !options.read_only) {
    // SQLite has no round trip to save: a write runs as a transaction whose fence check comes first.
    auto results = storage::transact_value<std::vector<storage::ResultSet>>(
        *db,
        [&](Transaction& tx) -> Result<std::vector<storage::ResultSet>> {
          if (auto scoped = s.scope(tx, tenant, true); !scoped) return std::unexpected(scoped.error());
          auto all = storage::execute_all(tx, bound);
          if (all) all->erase(all->begin(), all->begin() + static_cast<std::ptrdiff_t>(leading));
          return all;
        },
        options);
    if (results && note_inside) s.writes.noted(tenant.id, write_noted);
    return results;
  }
  auto results = db->run(bound, options);
  if (results) results->erase(results->begin(), results->begin() + static_cast<std::ptrdiff_t>(leading));
  if (results && note_inside) s.writes.noted(tenant.id, write_noted);
  return results;
}

Result<void> TenantData::transact_control_plane(const std::string& tenant_id,
                                                const std::function<Result<void>(TenantTransaction&)>& body,
                                                const storage::TransactionOptions& options) {
  Impl& s = *impl_;
  return s.app.transact(
      [&](Transaction& tx) -> Result<void> {
        if (auto r = scope_to_tenant(tx, tenant_id); !r) return r;
        TenantTransaction ttx(tx, tenant_id, true, s.options.sealer);
        return body(ttx);
      },
      options);
}

Result<void> TenantData::transact_platform(const std::function<Result<void>(PlatformTransaction&)>& body,
                                           const storage::TransactionOptions& options) {
  return tenancy::transact_platform(
      impl_->admin,
      [&](Transaction& tx) -> Result<void> {
        PlatformTransaction ptx(tx, impl_->options.sealer);
        return body(ptx);
      },
      options);
}

Result<void> scope_to_tenant(Transaction& tx, const std::string& tenant_id) {
  if (tx.backend() != Backend::postgres) return {};
  if (auto r = tx.execute(k_set_tenant, {Value(tenant_id)}); !r) return std::unexpected(r.error());
  return {};
}

Result<void> enter_platform_scope(Transaction& tx) {
  if (tx.backend() != Backend::postgres) return {};
  if (auto r = tx.execute(k_platform_scope); !r) return std::unexpected(r.error());
  return {};
}

Result<void> transact_platform(Database& owner, const std::function<Result<void>(Transaction&)>& body,
                               const storage::TransactionOptions& options) {
  return owner.transact(
      [&](Transaction& tx) -> Result<void> {
        if (auto r = enter_platform_scope(tx); !r) return r;
        return body(tx);
      },
      options);
}

Result<int> TenantData::migrate(const Tenant& tenant) {
  Impl& s = *impl_;
  const auto migrations = storage::builtin_migrations(s.app.backend(), storage::MigrationSet::tenant);
  if (tenant.isolation == Isolation::shared) return 0;
  // Once the store is current, the control plane records it, so `atrium migrate` and serve's start visit only the
  // tenants behind (TenantStore::list_behind), not every tenant.
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  auto recorded = [&](Result<int> applied) -> Result<int> {
    if (!applied) return applied;
    auto r =
        s.admin.transact([&](Transaction& tx) { return TenantStore::record_schema_version(tx, tenant.id, latest); });
    if (!r) return std::unexpected(r.error());
    return applied;
  };
  if (s.postgres() && tenant.isolation == Isolation::schema) {
    // The schema must exist before search_path names it, or unqualified DDL would land in public.
    auto created = s.admin.transact([&](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_create_schema, {Value(tenant.id)}); !r) return std::unexpected(r.error());
      return {};
    });
    if (!created) return std::unexpected(created.error());
    auto applied = storage::migrate_with(s.admin, migrations, s.clock, storage::MigrationSet::tenant,
                                         [&](Transaction& tx) -> Result<void> {
                                           if (auto r = tx.execute(k_migration_search_path, {Value(tenant.id)}); !r)
                                             return std::unexpected(r.error());
                                           return {};
                                         },
                                         {});
    if (!applied) return applied;
    auto role = s.serving_role();
    if (!role) return std::unexpected(role.error());
    auto granted = s.admin.transact([&](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_grant_schema, {Value(tenant.id), Value(*role)}); !r) return std::unexpected(r.error());
      return {};
    });
    if (!granted) return std::unexpected(granted.error());
    return recorded(std::move(applied));
  }
  // Own database or file.
  auto admin = s.open_own(tenant, /*as_admin=*/true);
  if (!admin) return std::unexpected(admin.error());
  auto boot = (*admin)->transact([&](Transaction& tx) -> Result<void> {
    if (auto r = tx.execute_script(s.postgres() ? k_bootstrap_pg : k_bootstrap_sqlite); !r) return r;
    auto r = tx.execute(s.postgres() ? k_tenant_row_insert_pg : k_tenant_row_insert_sqlite, {Value(tenant.id)});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!boot) return std::unexpected(boot.error());
  auto applied = storage::migrate(**admin, migrations, s.clock, {}, storage::MigrationSet::tenant);
  if (!applied) return applied;
  if (s.postgres()) {
    auto role = s.serving_role();
    if (!role) return std::unexpected(role.error());
    auto granted = (*admin)->transact([&](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_grant_public, {Value(*role)}); !r) return std::unexpected(r.error());
      return {};
    });
    if (!granted) return std::unexpected(granted.error());
  }
  return recorded(std::move(applied));
}

Result<void> TenantData::provision(const Tenant& tenant) {
  Impl& s = *impl_;
  if (tenant.isolation == Isolation::shared) return {};
  if (s.postgres() && tenant.isolation == Isolation::schema) {
    // migrate() creates the schema.
  } else if (s.postgres()) {
    const std::string name = tenant_database_name(tenant.id);
    auto command = storage::transact_value<std::pair<std::int64_t, std::string>>(
        s.admin, [&](Transaction& tx) -> Result<std::pair<std::int64_t, std::string>> {
          auto exists = tx.execute(k_database_exists, {Value(name)});
          if (!exists) return std::unexpected(exists.error());
          auto text = tx.execute(k_create_database_command, {Value(name)});
          if (!text) return std::unexpected(text.error());
          return std::make_pair(exists->int_at(0, 0).value_or(0), text->text_at(0, 0).value_or(""));
        });
    if (!command) return std::unexpected(command.error());
    if (command->first == 0) {
      if (auto r = s.admin.execute_unscoped(command->second); !r && r.error().code != Errc::unique_violation) return r;
    }
  } else {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(s.sqlite_path(tenant)).parent_path(), ec);
    if (ec) return fail(Errc::unavailable, "cannot create the tenant directory: " + ec.message());
  }
  auto migrated = migrate(tenant);
  if (!migrated) return std::unexpected(migrated.error());
  log::info("tenant provisioned", {{"tenant_id", tenant.id}, {"isolation", isolation_name(tenant.isolation)}});
  return {};
}

Result<void> TenantData::purge(const Tenant& tenant) {
  Impl& s = *impl_;
  if (tenant.isolation == Isolation::shared) {
    // Every tenant table's rows (tenant_tables(): children before parents).
    return transact(tenant, [](TenantTransaction& tx) -> Result<void> {
      for (const auto& table : tenant_tables()) {
        if (auto r = tx.execute(table.clear); !r) return std::unexpected(r.error());
      }
      return {};
    });
  }
  s.forget(tenant.id);
  if (s.postgres() && tenant.isolation == Isolation::schema) {
    return s.admin.transact([&](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_drop_schema, {Value(tenant.id)}); !r) return std::unexpected(r.error());
      return {};
    });
  }
  if (s.postgres()) {
    // Our pool's connections are closing; wait (briefly) until their server sessions are gone, since DROP ... WITH
    // (FORCE) may only end sessions of roles the owner is allowed to signal, which the serving role's are not.
    for (int wait = 0; wait < 1000; ++wait) {  // at most about 10 s
      auto sessions = storage::transact_value<std::int64_t>(s.admin, [&](Transaction& tx) -> Result<std::int64_t> {
        auto r = tx.execute(k_database_sessions, {Value(tenant_database_name(tenant.id))});
        if (!r) return std::unexpected(r.error());
        return r->int_at(0, 0).value_or(0);
      });
      if (!sessions || *sessions == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto command = storage::transact_value<std::string>(s.admin, [&](Transaction& tx) -> Result<std::string> {
      auto text = tx.execute(k_drop_database_command, {Value(tenant_database_name(tenant.id))});
      if (!text) return std::unexpected(text.error());
      return text->text_at(0, 0).value_or("");
    });
    if (!command) return std::unexpected(command.error());
    return s.admin.execute_unscoped(*command);
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(s.sqlite_path(tenant) + suffix, ec);
  return {};
}

}  // namespace atrium::tenancy
