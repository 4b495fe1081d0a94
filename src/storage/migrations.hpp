#pragma once

#include <functional>
#include <span>
#include <string_view>

#include "core/clock.hpp"
#include "storage/database.hpp"

namespace atrium::storage {

// One numbered schema change. Versions run 1, 2, 3, ... without gaps (checked at build time for the built-in
// set, embedded from migrations/<backend>/NNNN_name.sql).
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// Three independent series: the control plane (platform tables, once per installation, tracked in
// schema_migrations), the tenant tables (applied to the shared database, each tenant schema and each tenant
// database alike, tracked in tenant_schema_migrations where they are applied) and the analytics warehouse (its own
// database, tracked in warehouse_schema_migrations).
enum class MigrationSet { control_plane, tenant, warehouse };

// The migrations compiled into this binary (migrations/{control,tenant,warehouse}/<backend>/).
std::span<const Migration> builtin_migrations(Backend backend, MigrationSet set = MigrationSet::control_plane);

struct MigrationStatus {
  int current = 0;  // highest applied version (0: none)
  int latest = 0;   // highest version this binary knows
  bool up_to_date() const { return current == latest; }
};

// Reads schema_migrations (missing table: current 0). A database newer than the binary (current > latest) is
// reported as it is; the caller decides.
Result<MigrationStatus> migration_status(Database& db, std::span<const Migration> migrations,
                                         MigrationSet set = MigrationSet::control_plane);
// The same inside a transaction the caller opened (for example one scoped to a tenant schema).
Result<MigrationStatus> migration_status(Transaction& tx, std::span<const Migration> migrations, MigrationSet set);

// Applies every pending migration, each in its own transaction together with its schema_migrations row, so a
// failing migration rolls back completely and stops the run (invalid_argument naming the version). Concurrent
// runners are serialised (PostgreSQL advisory lock; SQLite write lock). A migration that was applied with
// different text is refused (conflict). `on_applied` is called after each commit. Returns how many were applied.
Result<int> migrate(Database& db, std::span<const Migration> migrations, const Clock& clock,
                    const std::function<void(const Migration&)>& on_applied = {},
                    MigrationSet set = MigrationSet::control_plane);

// Runs before every migration transaction of migrate_with(): scopes it (for example sets search_path to a
// tenant schema). Must only change transaction-local state.
using TransactionPrologue = std::function<Result<void>(Transaction&)>;
Result<int> migrate_with(Database& db, std::span<const Migration> migrations, const Clock& clock, MigrationSet set,
                         const TransactionPrologue& prologue, const std::function<void(const Migration&)>& on_applied);

}  // namespace atrium::storage
