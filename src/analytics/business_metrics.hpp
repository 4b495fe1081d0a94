#pragma once

// The seed's business metrics in /metrics (docs/analytics.md, Prometheus): active_subscriptions_total{plan_tier}
// (a gauge) and revenue_total{plan_tier,currency} (a counter, minor units), read from the database in the platform
// scope every analytics.business_metrics_ms by a background thread, because /metrics itself never waits on the
// database. Each instance reports the platform's totals: aggregate across instances with max, not sum.

#include <chrono>
#include <memory>

#include "core/error.hpp"
#include "observability/metrics.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::analytics {

class BusinessMetrics {
 public:
  BusinessMetrics(tenancy::TenantData& data, metrics::Registry& registry, std::chrono::milliseconds interval);
  ~BusinessMetrics();  // stop()
  BusinessMetrics(const BusinessMetrics&) = delete;
  BusinessMetrics& operator=(const BusinessMetrics&) = delete;

  // Reads the figures now: active and past-due subscriptions not on a test clock per plan tier (every tier
  // present, 0 included), and the succeeded payments of invoices not on a test clock per tier (`none`: invoices of
  // no subscription, or of one since purged) and currency. The counter only moves up: a total lower than before
  // (payments removed by retention) leaves it.
  Result<void> refresh();

  void start();  // refresh() now and every interval after, in the background; failures are logged
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::analytics
