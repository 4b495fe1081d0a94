#include "analytics/analytics.hpp"

#include <map>
#include <set>

#include "analytics/product_events.hpp"

namespace atrium::analytics {

struct Analytics::Impl {
  metering::Metering& metering;
  tenancy::TenantData& data;
  storage::Database& control;
  const Clock& clock;
  Realtime realtime;
  Activity activity;
};

Analytics::Analytics(metering::Metering& metering, tenancy::TenantData& data, storage::Database& control,
                     const Clock& clock, Settings settings)
    : impl_(new Impl{metering, data, control, clock, Realtime(clock, settings.realtime_window, settings.realtime),
                     Activity(
                         [this](const std::string& tenant_id, metering::UsageBatch events) -> Result<void> {
                           auto r = ingest(tenant_id, std::move(events));
                           if (!r) return std::unexpected(r.error());
                           return {};
                         },
                         clock, settings.activity_flush)}) {}

Analytics::~Analytics() { stop(); }

Result<metering::IngestResult> Analytics::ingest(const std::string& tenant_id, metering::UsageBatch batch) {
  // What the real-time counters and the activity marks need of each entry, before the batch is handed over.
  struct Seen {
    std::string type;
    Instant at{};
    std::string user_id;
  };
  std::vector<Seen> seen;
  seen.reserve(batch.size());
  for (auto& entry : batch) {
    if (!entry.event) {
      seen.push_back({});
      continue;
    }
    entry.event->idempotency_key.insert(0, k_event_key_prefix);
    seen.push_back({std::string(event_type_of(entry.event->metric)), entry.event->timestamp, entry.event->user_id});
  }
  auto r = impl_->metering.ingest(tenant_id, std::move(batch));
  if (!r) return r;
  for (auto& rejection : r->rejected) {  // echoed as the client sent it
    if (rejection.idempotency_key.starts_with(k_event_key_prefix)) {
      rejection.idempotency_key.erase(0, k_event_key_prefix.size());
    }
  }
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> per_minute;
  for (std::size_t i : r->accepted_indices) {
    if (i >= seen.size() || seen[i].type.empty()) continue;
    const auto minute = std::chrono::floor<std::chrono::minutes>(seen[i].at).time_since_epoch().count();
    ++per_minute[{seen[i].type, minute}];
  }
  for (const auto& [key, n] : per_minute) {
    impl_->realtime.record(tenant_id, key.first, Instant(std::chrono::minutes(key.second)), n);
  }
  std::set<std::size_t> refused;
  for (const auto& rejection : r->rejected) refused.insert(rejection.index);
  // One mark per user and day of the batch (its earliest event), not one per event.
  std::map<std::pair<std::string_view, std::int64_t>, Instant> first_of_day;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (refused.contains(i) || seen[i].user_id.empty() || seen[i].type == k_user_active) continue;
    const auto day = std::chrono::floor<std::chrono::days>(seen[i].at).time_since_epoch().count();
    auto [it, added] = first_of_day.try_emplace({seen[i].user_id, day}, seen[i].at);
    if (!added && seen[i].at < it->second) it->second = seen[i].at;
  }
  for (const auto& [key, at] : first_of_day) impl_->activity.active_at(tenant_id, std::string(key.first), at);
  return r;
}

Result<ProductMetrics> Analytics::product_metrics(const std::string& tenant_id, const ProductQuery& query) {
  return analytics::product_metrics(impl_->data, tenant_id, query);
}

Result<SaasMetrics> Analytics::saas_metrics(const SaasQuery& query) {
  if (auto c = check(query); !c) return std::unexpected(c.error());
  auto ledger = load_mrr_ledger(impl_->data, query.to);
  if (!ledger) return std::unexpected(ledger.error());
  const auto [first, last] = spend_months(query);
  auto spend = list_spend(impl_->control, first, last);
  if (!spend) return std::unexpected(spend.error());
  auto metered = load_metered_revenue(impl_->data, query.from, query.to);
  if (!metered) return std::unexpected(metered.error());
  return analytics::saas_metrics(*ledger, *spend, *metered, query);
}

Result<Spend> Analytics::record_spend(const Spend& spend, const audit::Recorder& audit) {
  return analytics::record_spend(impl_->control, impl_->clock, spend, audit);
}

Result<std::vector<Spend>> Analytics::spend(const std::string& from, const std::string& to) {
  if (!valid_month(from) || !valid_month(to)) return fail(Errc::invalid_argument, "from and to must be YYYY-MM");
  return list_spend(impl_->control, from, to);
}

Result<reports::Csv> Analytics::export_csv(const ExportRequest& request) {
  return build_export(*this, impl_->data, request);
}

Realtime& Analytics::realtime() { return impl_->realtime; }
Activity& Analytics::activity() { return impl_->activity; }

void Analytics::start() {
  impl_->activity.start();
  impl_->realtime.start();
}
void Analytics::stop() {
  impl_->activity.stop();
  impl_->realtime.stop();
}

}  // namespace atrium::analytics
