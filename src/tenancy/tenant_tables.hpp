#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tenancy/tenant_data.hpp"

namespace atrium::tenancy {

// The tables of a tenant's store (migrations/tenant), row by row, for moving a tenant between isolation levels: the
// same tables exist at every level, so a row read from one store is written to another as it was (fields sealed at
// rest stay sealed: their associated data names the tenant, table, column and row, never the level).
struct TenantTable {
  std::string_view name;
  TenantStatement select;  // every row of the tenant, in key order; the key's columns first
  TenantStatement insert;  // one row: $2, $3, ... the select's columns in its order
  TenantStatement remove;  // one row by its key: $2, ... the key's columns
  TenantStatement clear;   // every row of the tenant
  int key_columns;         // how many of select's first columns are the key (0: one row per tenant)
  // audit_outbox and event_outbox: carried into the control plane (Platform::flush_audit) before a switch, never
  // copied — a copy would be carried twice.
  bool outbox;
};

// Every tenant table, children before parents. tests/tenancy/tenant_tables_test.cpp checks it names every table
// the tenant migrations create, on both backends.
std::span<const TenantTable> tenant_tables();
std::vector<TenantStatement> tenant_table_statements();

// One table of one store: its rows and a SHA-256 over them in key order (the values with their types).
struct TableDigest {
  std::string table;
  std::int64_t rows = 0;
  std::string sha256;
  bool operator==(const TableDigest&) const = default;
};
// Every table of `tenant`'s store, read in one read-only transaction (a move compares them while the tenant is
// frozen, so no write lands between the tables' reads).
Result<std::vector<TableDigest>> digest_tables(TenantData& data, const Tenant& tenant);

// What sync_tables changed in the target.
struct SyncReport {
  std::int64_t written = 0;    // rows inserted or replaced
  std::int64_t deleted = 0;    // rows only the target had
  std::int64_t unchanged = 0;  // rows already equal
};
// Makes the rows of every table but the outboxes in `to`'s store equal to those in `from`'s (two views of one
// tenant at different levels), table by table: reads both, then writes only the difference in one transaction per
// table. Safe to repeat. `on_table(done, total)` after each table.
Result<SyncReport> sync_tables(TenantData& data, const Tenant& from, const Tenant& to,
                               const std::function<void(int, int)>& on_table = {});

// Whether `tenant`'s outboxes hold no row (what a switch requires of the store it leaves).
Result<bool> outboxes_empty(TenantData& data, const Tenant& tenant);

}  // namespace atrium::tenancy
