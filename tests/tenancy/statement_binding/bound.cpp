// Compiles: every form of tenant binding TenantStatement accepts (tests/tenancy/statement_binding_test.py).
#include "tenancy/tenant_data.hpp"

using atrium::tenancy::TenantStatement;
constexpr TenantStatement k_filter{"filter", "SELECT id FROM projects WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_alias{"alias", "UPDATE projects p SET name = $2 WHERE p.tenant_id = $1"};
constexpr TenantStatement k_last{"last", "DELETE FROM projects WHERE id = $2 AND tenant_id = $1"};
constexpr TenantStatement k_lock{"lock", "SELECT pg_advisory_xact_lock(hashtextextended('projects:' || $1, 0))"};
constexpr TenantStatement k_insert{"insert", "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, $3)"};
constexpr TenantStatement k_insert_rows{
    "insert_rows",
    "INSERT INTO projects (tenant_id, id) SELECT $1::uuid, e.id FROM jsonb_to_recordset($2) AS e(id TEXT)"};

int main() {
  return static_cast<int>(k_filter.sql.size() + k_alias.sql.size() + k_last.sql.size() + k_lock.sql.size() +
                          k_insert.sql.size() + k_insert_rows.sql.size()) == 0;
}
