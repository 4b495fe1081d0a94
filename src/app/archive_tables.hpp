#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "tenancy/tenant_data.hpp"

namespace atrium::app {

// The control-plane tables that hold a tenant's rows (tenant_id), for a tenant archive (app/tenant_archive.hpp):
// the same columns on both backends, read and written through TenantData::transact_control_plane. The tenant's own
// store is tenancy::tenant_tables(); the tenants row, the users who are members, the data keys and the audit chain
// are carried by their own modules. tests/app/tenant_archive_test.cpp checks that every control-plane table with a
// tenant_id column is here or named there as left out, with its reason.
struct ControlTable {
  std::string_view name;
  tenancy::TenantStatement select;  // every row of the tenant, in key order
  tenancy::TenantStatement insert;  // one row: $2, $3, ... the select's columns in its order
  // Every row of the tenant: an import clears what a purge kept (the bookkeeping records: invoices and their lines,
  // credit notes, payment attempts, MRR history) before it writes the archive's.
  tenancy::TenantStatement clear;
  int key_columns;  // how many of select's first columns are the key
};

std::span<const ControlTable> control_tables();
std::vector<tenancy::TenantStatement> control_table_statements();

}  // namespace atrium::app
