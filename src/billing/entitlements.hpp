#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit_log.hpp"
#include "billing/billing.hpp"
#include "billing/quotas.hpp"
#include "core/clock.hpp"
#include "metering/metering.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

// One quota as it stands for a tenant in the current period.
struct Entitlement {
  Quota quota;
  std::int64_t used = 0;      // the metric's aggregate over the period, or the resource's count now
  std::vector<int> notified;  // thresholds (80, 100) already announced this period
};

struct EntitlementView {
  Instant period_start{};
  Instant period_end{};
  std::string period_source;  // subscription | calendar_month (no subscription: the UTC month)
  std::optional<std::string> subscription_id;
  std::optional<std::string> plan;  // the plan's code
  std::vector<Entitlement> items;   // by quota name
};
Json to_json(const Entitlement& e);
Json to_json(const EntitlementView& v);

// Quotas and entitlements: which quotas apply to a tenant (its plan in force plus per-tenant overrides), usage
// against them, hard limits (ingestion refuses events, project creation refuses projects) and threshold events.
// At 80% and 100% of a limit a `quota.threshold_reached` event is emitted (webhooks; Background mails the billing
// address) once per tenant, quota, period and threshold: quota_notices' key. Thread-safe.
class Entitlements {
 public:
  // How many of a counted resource (a quota without a metric: projects, integrations) a tenant has; the platform
  // reads it where the resource lives.
  using CountResource = std::function<Result<std::int64_t>(const std::string& tenant_id, std::string_view quota)>;

  // A tenant's quotas and period are cached for `cache_ttl` (0: read every time) and never past the period's end;
  // an override changed here is seen at once. `events_committed` wakes the event relay. All references must
  // outlive this object.
  Entitlements(tenancy::TenantData& data, Billing& billing, metering::Metering& metering, audit::AuditLog& audit,
               const Clock& clock, std::chrono::milliseconds cache_ttl, CountResource count_resource,
               std::function<void()> events_committed);
  ~Entitlements();
  Entitlements(const Entitlements&) = delete;
  Entitlements& operator=(const Entitlements&) = delete;

  // GET /v1/entitlements and /v1/entitlements/{name} (not_found for a quota the tenant does not have).
  Result<EntitlementView> list(const std::string& tenant_id);
  Result<Entitlement> get(const std::string& tenant_id, const std::string& name);

  // An operator's override: it replaces the plan's quota of that name (metric and enforcement default to that
  // quota's) or adds one. invalid_argument naming the member. Audited.
  Result<Entitlement> put_override(const std::string& tenant_id, const std::string& name, const QuotaOverride& input,
                                   const audit::Context& who);
  // not_found when the tenant has no override of that name. Audited.
  Result<void> delete_override(const std::string& tenant_id, const std::string& name, const audit::Context& who);

  // The quota of that name in force for the tenant now (nullopt: none).
  Result<std::optional<Quota>> quota(const std::string& tenant_id, const std::string& name);
  // Drops the tenant's cached quotas and period (its subscription changed).
  void forget(const std::string& tenant_id);
  // After a counted resource changed (projects, integrations): announces that quota's thresholds. Errors are
  // logged.
  void resources_changed(const std::string& tenant_id, std::string_view quota);

  // Creating one more of a counted resource under a hard quota. `admit` answers nullopt when the tenant's quota of
  // that name (if any, and hard) leaves room for one, else the limit and the count found. The count is read before
  // the creation, so callers hold `serialize(tenant, quota)` across admit and create: creations of one tenant's
  // resource take turns in this process (two processes creating at the same instant may each pass the last place).
  struct Refusal {
    std::int64_t limit = 0;
    std::int64_t used = 0;
  };
  Result<std::optional<Refusal>> admit(const std::string& tenant_id, std::string_view quota);
  std::unique_lock<std::mutex> serialize(const std::string& tenant_id, std::string_view quota);

  // Ingestion's hard limits (read in the ingest transaction) and threshold checks after it.
  metering::QuotaHooks metering_hooks();

  // Every tenant statement, for the test that checks their names are unique.
  static std::vector<tenancy::TenantStatement> tenant_statements();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::billing
