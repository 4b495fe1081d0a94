#pragma once

#include <span>

#include "tenancy/tenant_data.hpp"

namespace atrium::identity {

// What purging a tenant deletes of identity's control-plane rows: its memberships, API keys, refresh tokens and
// pending invitations (the accounts stay: they are their owners', and may belong to other tenants). Each statement
// deletes by `tenant_id = $1`; run them in the tenant's control-plane transaction.
std::span<const tenancy::TenantStatement> purge_statements();

}  // namespace atrium::identity
