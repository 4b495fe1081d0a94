#include "storage/migrations.hpp"

#include <fmt/format.h>

#include "core/hash.hpp"

namespace atrium::storage {

namespace {

// The statements of one migration series; each series tracks itself in its own table.
struct SeriesSql {
  Statement create;
  Statement applied;
  Statement max;
  Statement exists_sqlite;
  Statement exists_pg;
  Statement record;
};

constexpr SeriesSql k_control{
    {"",
     "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
     "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"},
    {"migrations_applied", "SELECT version, checksum FROM schema_migrations ORDER BY version"},
    {"migrations_max", "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"},
    {"migrations_exists_sqlite",
     "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"},
    {"migrations_exists_pg",
     "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_migrations' AND schemaname = "
     "current_schema()"},
    {"migrations_record",
     "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)"},
};

constexpr SeriesSql k_tenant{
    {"",
     "CREATE TABLE IF NOT EXISTS tenant_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
     "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"},
    {"tenant_migrations_applied", "SELECT version, checksum FROM tenant_schema_migrations ORDER BY version"},
    {"tenant_migrations_max", "SELECT COALESCE(MAX(version), 0) FROM tenant_schema_migrations"},
    {"tenant_migrations_exists_sqlite",
     "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'tenant_schema_migrations'"},
    {"tenant_migrations_exists_pg",
     "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'tenant_schema_migrations' AND schemaname = "
     "current_schema()"},
    {"tenant_migrations_record",
     "INSERT INTO tenant_schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)"},
};

constexpr SeriesSql k_warehouse{
    {"",
     "CREATE TABLE IF NOT EXISTS warehouse_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
     "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"},
    {"warehouse_migrations_applied", "SELECT version, checksum FROM warehouse_schema_migrations ORDER BY version"},
    {"warehouse_migrations_max", "SELECT COALESCE(MAX(version), 0) FROM warehouse_schema_migrations"},
    {"warehouse_migrations_exists_sqlite",
     "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'warehouse_schema_migrations'"},
    {"warehouse_migrations_exists_pg",
     "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'warehouse_schema_migrations' AND schemaname = "
     "current_schema()"},
    {"warehouse_migrations_record",
     "INSERT INTO warehouse_schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)"},
};

constexpr Statement k_lock{"migrations_lock", "SELECT pg_advisory_xact_lock(7291839201)"};

const SeriesSql& series(MigrationSet set) {
  switch (set) {
    case MigrationSet::control_plane: return k_control;
    case MigrationSet::tenant: return k_tenant;
    case MigrationSet::warehouse: return k_warehouse;
  }
  return k_control;
}

int latest_version(std::span<const Migration> migrations) {
  int latest = 0;
  for (const auto& m : migrations) latest = std::max(latest, m.version);
  return latest;
}

}  // namespace

Result<MigrationStatus> migration_status(Transaction& tx, std::span<const Migration> migrations, MigrationSet set) {
  const SeriesSql& sql = series(set);
  MigrationStatus status;
  status.latest = latest_version(migrations);
  auto exists = tx.execute(tx.backend() == Backend::sqlite ? sql.exists_sqlite : sql.exists_pg);
  if (!exists) return std::unexpected(exists.error());
  if (exists->int_at(0, 0).value_or(0) == 0) return status;
  auto max = tx.execute(sql.max);
  if (!max) return std::unexpected(max.error());
  status.current = static_cast<int>(max->int_at(0, 0).value_or(0));
  return status;
}

Result<MigrationStatus> migration_status(Database& db, std::span<const Migration> migrations, MigrationSet set) {
  return transact_value<MigrationStatus>(
      db, [&](Transaction& tx) { return migration_status(tx, migrations, set); },
      TransactionOptions{.read_only = true});
}

Result<int> migrate(Database& db, std::span<const Migration> migrations, const Clock& clock,
                    const std::function<void(const Migration&)>& on_applied, MigrationSet set) {
  return migrate_with(db, migrations, clock, set, {}, on_applied);
}

Result<int> migrate_with(Database& db, std::span<const Migration> migrations, const Clock& clock, MigrationSet set,
                         const TransactionPrologue& prologue, const std::function<void(const Migration&)>& on_applied) {
  const SeriesSql& sql = series(set);
  const bool pg = db.backend() == Backend::postgres;
  auto begin = [&](Transaction& tx) -> Result<void> {
    if (pg) {
      if (auto l = tx.execute(k_lock); !l) return std::unexpected(l.error());
    }
    if (prologue) return prologue(tx);
    return {};
  };
  auto created = db.transact([&](Transaction& tx) -> Result<void> {
    if (auto b = begin(tx); !b) return b;
    auto r = tx.execute(sql.create);
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!created) return std::unexpected(created.error());

  int applied_count = 0;
  for (const Migration& m : migrations) {
    const std::string checksum = sha256_hex(m.sql);
    bool applied_now = false;
    auto r = db.transact(
        [&](Transaction& tx) -> Result<void> {
          applied_now = false;
          if (auto b = begin(tx); !b) return b;
          auto applied = tx.execute(sql.applied);
          if (!applied) return std::unexpected(applied.error());
          for (std::size_t i = 0; i < applied->rows.size(); ++i) {
            if (applied->int_at(i, 0).value_or(-1) != m.version) continue;
            if (applied->text_at(i, 1).value_or("") != checksum) {
              return fail(Errc::conflict, fmt::format("migration {} ({}) was applied with different text; "
                                                      "migrations must never change once released",
                                                      m.version, m.name));
            }
            return {};  // already applied
          }
          if (auto s = tx.execute_script(m.sql); !s) {
            return fail(Errc::invalid_argument, fmt::format("migration {} ({}) failed and was rolled back: {}",
                                                            m.version, m.name, s.error().message));
          }
          auto rec = tx.execute(sql.record, {Value(std::int64_t{m.version}), Value(std::string(m.name)),
                                             Value(checksum), Value(format_rfc3339(clock.now()))});
          if (!rec) return std::unexpected(rec.error());
          applied_now = true;
          return {};
        },
        TransactionOptions{.max_attempts = 1});
    if (!r) return std::unexpected(r.error());
    if (applied_now) {
      ++applied_count;
      if (on_applied) on_applied(m);
    }
  }
  return applied_count;
}

}  // namespace atrium::storage
