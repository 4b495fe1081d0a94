#pragma once

#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "email/mailer.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::email {

// How a tenant's mail looks to its recipients. Mail always leaves from Atrium's own address (email.from), so
// SPF/DKIM stay the operator's; the tenant chooses the display name and where replies go.
struct TenantSettings {
  std::string from_name;  // "" = email.from's name
  std::string reply_to;   // "" = none
  std::string updated_at;
};

Json to_json(const TenantSettings& s);

// Tenant-scoped; every function runs in the caller's tenant transaction.
namespace settings_store {
Result<TenantSettings> get(tenancy::TenantTransaction& tx);
// Validates (from_name at most 100 characters without CR/LF; reply_to a valid address or "") and stores.
Result<TenantSettings> put(tenancy::TenantTransaction& tx, const Clock& clock, const TenantSettings& settings);
std::vector<tenancy::TenantStatement> statements();
// from_name and reply_to are personal data, encrypted at rest (tx.seal) with the tenant id as their row.
inline constexpr tenancy::SealedField k_from_name{"email_settings", "from_name"};
inline constexpr tenancy::SealedField k_reply_to{"email_settings", "reply_to"};
// Their columns, for re-encryption.
std::vector<tenancy::SealedColumn> sealed_columns();
}  // namespace settings_store

// Applies a tenant's settings to a message from Atrium's sender.
void apply(const TenantSettings& s, Message& m);

// Atrium's own mail, rendered with render(): "webhook_endpoint_disabled" (vars: tenant_name, url, endpoint_id,
// error). nullptr for an unknown name.
const Template* builtin_template(std::string_view name);

}  // namespace atrium::email
