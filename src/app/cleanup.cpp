#include "app/cleanup.hpp"

#include <algorithm>
#include <optional>

#include "app/platform.hpp"
#include "core/log.hpp"
#include "jobs/sql_queue.hpp"
#include "metering/metering.hpp"
#include "reports/reports.hpp"
#include "storage/database.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/store_writes.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_store.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::app {

namespace {

using storage::Statement;
using storage::Value;
using tenancy::TenantTransaction;

// How far each part of the cleanup has gone (Unix milliseconds): "stores", the time of the last completed pass over
// the tenant stores; "usage_events", the cutoff of the last completed expiry of raw usage events.
constexpr Statement k_state_get{"cleanup_state_get", "SELECT through FROM cleanup_state WHERE name = $1"};
constexpr Statement k_state_set{"cleanup_state_set",
                                "INSERT INTO cleanup_state (name, through) VALUES ($1, $2) ON CONFLICT (name) DO "
                                "UPDATE SET through = excluded.through"};
constexpr int k_page = 100;

Result<std::optional<std::int64_t>> state(Platform& p, const char* name) {
  std::optional<std::int64_t> out;
  auto r = p.db().transact(
      [&](storage::Transaction& tx) -> Result<void> {
        auto rs = tx.execute(k_state_get, {Value(std::string(name))});
        if (!rs) return std::unexpected(rs.error());
        out = rs->empty() ? std::nullopt : rs->int_at(0, 0);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<void> set_state(Platform& p, const char* name, std::int64_t through) {
  return p.db().transact([&](storage::Transaction& tx) -> Result<void> {
    auto rs = tx.execute(k_state_set, {Value(std::string(name)), Value(through)});
    if (!rs) return std::unexpected(rs.error());
    return {};
  });
}

// The tenant stores written since the last pass less the longest retention: their expired Idempotency-Key
// answers, reports and delivery log entries.
Result<void> clean_stores(Platform& p, Instant now, CleanupSummary& out) {
  const auto& config = p.config();
  const auto key_cutoff = now - std::chrono::hours(config.jobs.idempotency_key_hours);
  const auto report_cutoff = now - std::chrono::hours(24 * config.jobs.retain_reports_days);
  const auto delivery_cutoff = now - std::chrono::hours(24 * config.webhooks.retain_deliveries_days);
  // A store last written before this had every row past its retention removed by the last pass (its rows are at
  // most StoreWrites::k_refresh younger than its written_at).
  auto last = state(p, "stores");
  if (!last) return std::unexpected(last.error());
  Instant since{};
  if (*last) {
    since = from_unix_ms(**last) - (now - std::min({key_cutoff, report_cutoff, delivery_cutoff})) -
            tenancy::StoreWrites::k_refresh;
  }
  std::string after;
  bool complete = true;
  while (true) {
    auto page = p.tenant_data->store_writes().written_since(since, after, k_page);
    if (!page) return std::unexpected(page.error());
    for (const std::string& id : *page) {
      auto t = p.tenants->get(id);
      if (!t) {
        if (t.error().code == Errc::not_found) continue;
        return std::unexpected(t.error());
      }
      if (t->status == tenancy::TenantStatus::deleted) continue;
      ++out.tenants_visited;
      auto r = p.tenant_data->transact_removal(*t, [&](TenantTransaction& tx) -> Result<void> {
        auto keys = tenancy::expire_answers(tx, key_cutoff);
        if (!keys) return std::unexpected(keys.error());
        auto reports = reports::store::expire(tx, report_cutoff);
        if (!reports) return std::unexpected(reports.error());
        auto deliveries = webhooks::store::expire_deliveries(tx, delivery_cutoff);
        if (!deliveries) return std::unexpected(deliveries.error());
        out.idempotency_keys += *keys;
        out.reports_and_deliveries += *reports + *deliveries;
        return {};
      });
      // One tenant whose store is unreachable keeps the pass from completing (so the next run looks as far back
      // again), not the others from being cleaned.
      if (!r) {
        log::warn("tenant store not cleaned", {{"tenant_id", t->id}, {"error", r.error().message}});
        complete = false;
      }
    }
    if (std::ssize(*page) < k_page) break;
    after = page->back();
  }
  if (!complete) return fail(Errc::unavailable, "the pass over the tenant stores did not complete");
  return set_state(p, "stores", unix_ms(now));
}

// Raw usage events past metering.retain_events_days, for the tenants with usage since the last run's cutoff.
Result<void> clean_usage(Platform& p, Instant now, CleanupSummary& out) {
  const Instant cutoff = now - p.metering->settings().retain_events;
  auto last = state(p, "usage_events");
  if (!last) return std::unexpected(last.error());
  // Roll-ups are hourly: the hour holding the last cutoff may still hold events after it.
  const Instant from = *last ? from_unix_ms(**last) - std::chrono::hours(1) : Instant{};
  auto tenants = p.metering->tenants_with_usage(from, cutoff);
  if (!tenants) return std::unexpected(tenants.error());
  bool complete = true;
  for (const std::string& id : *tenants) {
    auto n = p.metering->expire(id);
    if (!n) {
      log::warn("usage events not expired", {{"tenant_id", id}, {"error", n.error().message}});
      complete = false;
      continue;
    }
    ++out.usage_tenants;
    out.usage_events += *n;
  }
  if (!complete) return fail(Errc::unavailable, "the expiry of raw usage events did not complete");
  return set_state(p, "usage_events", unix_ms(cutoff));
}

}  // namespace

Result<CleanupSummary> clean_up(Platform& p, const Clock& clock) {
  const Instant now = clock.now();
  CleanupSummary out;
  auto n = jobs::delete_settled(p.tenant_data->platform_database(),
                                now - std::chrono::hours(p.config().jobs.retain_done_hours),
                                now - std::chrono::hours(24 * p.config().jobs.retain_dead_days));
  if (!n) return std::unexpected(n.error());
  out.job_rows = *n;
  const auto key_cutoff = now - std::chrono::hours(p.config().jobs.idempotency_key_hours);
  auto expired = p.db().transact([&](storage::Transaction& tx) -> Result<void> {
    auto r = tenancy::expire_platform_answers(tx, key_cutoff);
    if (!r) return std::unexpected(r.error());
    out.platform_idempotency_keys = *r;
    return {};
  });
  if (!expired) log::warn("platform idempotency keys not expired", {{"error", expired.error().message}});
  auto stores = clean_stores(p, now, out);
  if (!stores) log::warn("tenant stores not cleaned", {{"error", stores.error().message}});
  auto usage = clean_usage(p, now, out);
  if (!usage) log::warn("usage events not expired", {{"error", usage.error().message}});
  auto platform_reports =
      reports::platform_store::expire(p.db(), now - std::chrono::hours(24 * p.config().jobs.retain_reports_days));
  if (platform_reports) {
    out.reports_and_deliveries += *platform_reports;
  } else {
    log::warn("platform reports not expired", {{"error", platform_reports.error().message}});
  }
  log::info("cleanup done", {{"job_rows", out.job_rows},
                             {"idempotency_keys", out.idempotency_keys},
                             {"platform_idempotency_keys", out.platform_idempotency_keys},
                             {"reports_and_deliveries", out.reports_and_deliveries},
                             {"tenants_visited", out.tenants_visited},
                             {"usage_tenants", out.usage_tenants},
                             {"usage_events", out.usage_events}});
  if (!stores) return std::unexpected(stores.error());
  if (!usage) return std::unexpected(usage.error());
  return out;
}

}  // namespace atrium::app
