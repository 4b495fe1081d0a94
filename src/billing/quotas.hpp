#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

// Quotas: limits a plan (or an operator's per-tenant override) sets on what a tenant uses in a billing period.
// A quota either bounds a usage metric (its meter's aggregate over the current period) or a resource Atrium
// counts itself (projects, counted live). Soft quotas allow going over and bill the overage (the metric's metered
// price applies to the units beyond the limit); hard quotas refuse what would go over. docs/quotas.md.

enum class Enforcement { soft, hard };
std::string_view enforcement_name(Enforcement e);

struct Quota {
  std::string name;
  std::string metric;                 // "" = a counted resource, named by `name` (projects, integrations)
  std::optional<std::int64_t> limit;  // nullopt = unlimited
  Enforcement enforcement = Enforcement::soft;
  std::string source = "plan";  // plan | override
};

// The resources Atrium counts itself (quotas without a metric): the tenant's projects, its integrations (webhook
// endpoints and API keys together; the seed's limits.integrations) and its custom domains, pending or verified (the
// seed's limits.customDomains).
inline constexpr std::string_view k_projects_quota = "projects";
inline constexpr std::string_view k_integrations_quota = "integrations";
inline constexpr std::string_view k_custom_domains_quota = "customDomains";
bool is_counted_quota(std::string_view name);

std::optional<Enforcement> parse_enforcement(std::string_view text);

// An operator's override of one quota (PUT /v1/entitlements/{name}, decoded by the API). Unset members keep the
// current quota's (enforcement soft when there is none).
struct QuotaOverride {
  std::optional<std::string> metric;
  std::optional<std::int64_t> limit;  // nullopt: unlimited
  std::optional<Enforcement> enforcement;
};

// A quota from its parts, checked: a valid name; a metric name, or none for a counted resource (projects); a limit
// within range. invalid_argument naming the member (prefixed with `where`).
Result<Quota> make_quota(const std::string& name, const std::string& metric, std::optional<std::int64_t> limit,
                         Enforcement enforcement, const std::string& where);

// A quota body's members, {"metric", "limit" (required), "enforcement"}, read as given: the JSON form plans and
// overrides share. invalid_argument naming the member (prefixed with `where`); make_quota checks the values.
Result<QuotaOverride> parse_quota_members(const Json& body, const std::string& where);

// One quota's body, {"metric", "limit", "enforcement"}: a plan's entry or an override's PUT body. `limit` is a
// non-negative integer or "unlimited"; enforcement defaults to soft; without a metric the name must be a counted
// resource. invalid_argument naming the member (prefixed with `where`).
Result<Quota> parse_quota(const std::string& name, const Json& body, const std::string& where);
// A plan's "quotas": an object of up to 50 name -> body. Names: 1-64 letters, digits, '_', '-', '.'.
Result<std::vector<Quota>> parse_quotas(const Json& j);
bool valid_quota_name(std::string_view name);
// The plan's form: {"name": {"metric" (when set), "limit", "enforcement"}}.
Json quotas_json(const std::vector<Quota>& quotas);
Json limit_json(const std::optional<std::int64_t>& limit);

// A plan version's quotas: the explicit ones, then those the seed's fields give when not named explicitly:
// features.apiCalls (metric api_calls, soft), features.storage (metric storage_gb, soft), limits.projects
// (projects, hard), limits.integrations (hard), limits.customDomains (hard). Values other than integers and "unlimited"
// (support, sla) give none.
std::vector<Quota> plan_quotas(const std::vector<Quota>& explicit_quotas, const Json& features, const Json& limits);
// `quotas` with a tenant's overrides: an override replaces the quota of its name or adds one. Sorted by name.
std::vector<Quota> apply_overrides(std::vector<Quota> quotas, const std::vector<Quota>& overrides);

// The tenant's overrides (quota_overrides), in a control-plane tenant-scoped transaction.
Result<std::vector<Quota>> load_overrides(tenancy::TenantTransaction& tx);
Result<void> save_override(tenancy::TenantTransaction& tx, const Quota& q, std::int64_t now_ms);
// false when the tenant had no override of that name.
Result<bool> delete_override(tenancy::TenantTransaction& tx, const std::string& name);
std::vector<tenancy::TenantStatement> quota_statements();

}  // namespace atrium::billing
