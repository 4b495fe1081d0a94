#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "domains/domain.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::domains::store {

// The control-plane table custom_domains. Tenant statements run in a control-plane transaction scoped to the tenant
// (TenantData::transact_control_plane); verified() reads every tenant's in the platform scope.

Result<void> insert(tenancy::TenantTransaction& tx, const Domain& d);
Result<std::vector<Domain>> list(tenancy::TenantTransaction& tx);
// not_found when the tenant has no domain with that id.
Result<Domain> get(tenancy::TenantTransaction& tx, const std::string& id);
Result<std::int64_t> count(tenancy::TenantTransaction& tx);
// unique_violation when another tenant verified the host name first.
Result<void> mark_verified(tenancy::TenantTransaction& tx, const std::string& id, Instant at);
Result<void> set_certificate(tenancy::TenantTransaction& tx, const std::string& id, const std::string& chain_pem,
                             const std::string& sealed_key, const CertificateInfo& info, Instant at);
// false when there was no such domain.
Result<bool> remove(tenancy::TenantTransaction& tx, const std::string& id);

// What serving needs of one verified domain.
struct Served {
  std::string hostname;
  std::string tenant_id;
  std::string chain_pem;   // "" without a certificate
  std::string sealed_key;  // "" without a certificate
  std::int64_t updated_at = 0;
};
Result<std::vector<Served>> verified(tenancy::PlatformTransaction& tx);

std::vector<tenancy::TenantStatement> statements();
// Removes the tenant's domains (purging a deleted tenant).
std::vector<tenancy::TenantStatement> purge_statements();

}  // namespace atrium::domains::store
