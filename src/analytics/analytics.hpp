#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "analytics/activity.hpp"
#include "analytics/exports.hpp"
#include "analytics/product_metrics.hpp"
#include "analytics/realtime.hpp"
#include "analytics/saas_metrics.hpp"
#include "core/clock.hpp"
#include "metering/metering.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::analytics {

struct Settings {
  std::chrono::milliseconds activity_flush{5000};  // analytics.activity_flush_ms
  std::chrono::minutes realtime_window{180};       // analytics.realtime_minutes
  RealtimeOptions realtime;                        // analytics.redis_url: the counts shared in Redis
};

// Product analytics (docs/analytics.md): product events in through metering's ingestion, the real-time counters,
// Atrium's own activity marks, and the product metrics read back. Thread-safe.
class Analytics {
 public:
  // All must outlive this object.
  // `control`: the control-plane database (the serving role's), for the platform's marketing spend.
  Analytics(metering::Metering& metering, tenancy::TenantData& data, storage::Database& control, const Clock& clock,
            Settings settings);
  ~Analytics();  // stop()
  Analytics(const Analytics&) = delete;
  Analytics& operator=(const Analytics&) = delete;

  // A batch of product events, each entry's metric "event:<type>": stored as Metering::ingest stores usage
  // (durable before this returns, exactly once per idempotency key — kept apart from usage events' keys by
  // k_event_key_prefix — rejections one by one); then the accepted ones
  // are counted in real time, and the users the stored or duplicate ones name are marked active on their day.
  Result<metering::IngestResult> ingest(const std::string& tenant_id, metering::UsageBatch batch);

  Result<ProductMetrics> product_metrics(const std::string& tenant_id, const ProductQuery& query);

  // The platform's SaaS metrics from the MRR ledger (platform scope: for super admins only), with CAC from the
  // recorded spend.
  Result<SaasMetrics> saas_metrics(const SaasQuery& query);
  // Sales and marketing spend (spend.hpp): set one month's, channel's and currency's; list the months [from, to].
  Result<Spend> record_spend(const Spend& spend, const audit::Recorder& audit);
  Result<std::vector<Spend>> spend(const std::string& from, const std::string& to);
  // One of the platform's analytics exports as CSV (exports.hpp), for a platform report.
  Result<reports::Csv> export_csv(const ExportRequest& request);

  Realtime& realtime();
  Activity& activity();

  // Starts and stops the activity flushes and the real-time counts' flushes to Redis (stop flushes what is left).
  void start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::analytics
