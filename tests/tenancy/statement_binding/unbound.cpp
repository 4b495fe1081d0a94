// Must not compile (tests/tenancy/statement_binding_test.py): each statement below fails to bind the tenant, and
// the build names the check. The test compiles this file once per -DCASE.
#include "tenancy/tenant_data.hpp"

using atrium::tenancy::TenantStatement;
#if CASE == 1  // no tenant filter at all
constexpr TenantStatement k_bad{"bad", "SELECT id FROM projects WHERE id = $2"};
#elif CASE == 2  // the tenant compared with the tenth parameter, not the first
constexpr TenantStatement k_bad{"bad", "SELECT id FROM projects WHERE tenant_id = $10"};
#elif CASE == 3  // an INSERT that sets tenant_id from another parameter
constexpr TenantStatement k_bad{"bad", "INSERT INTO projects (tenant_id, id) VALUES ($2, $1)"};
#elif CASE == 4  // a statement made at run time does not compile either (consteval)
void f(std::string_view text) {
  TenantStatement s{"bad", text};
  (void)s;
}
#elif CASE == 5  // no table, but not the tenant either
constexpr TenantStatement k_bad{"bad", "SELECT pg_advisory_xact_lock(hashtextextended('projects:' || $2, 0))"};
#elif CASE == 6  // a subquery's table without the tenant filter
constexpr TenantStatement k_bad{"bad", "SELECT $1, (SELECT COUNT(*) FROM projects)"};
#elif CASE == 7  // an INSERT ... SELECT that sets tenant_id from another parameter
constexpr TenantStatement k_bad{"bad",
                                "INSERT INTO projects (tenant_id, id) SELECT $2, e.id FROM jsonb_to_recordset($1)"};
#endif

int main() {}
