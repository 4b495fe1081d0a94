#include "analytics/business_metrics.hpp"

#include <array>

#include "analytics/sql.hpp"
#include "core/log.hpp"
#include "core/periodic.hpp"

namespace atrium::analytics {

namespace {
constexpr std::array<const char*, 5> k_tiers{"free", "starter", "professional", "business", "enterprise"};
}  // namespace

struct BusinessMetrics::Impl {
  tenancy::TenantData& data;
  metrics::Family<metrics::Gauge>& subscriptions;
  metrics::Family<metrics::Counter>& revenue;
  std::unique_ptr<Periodic> periodic;
};

BusinessMetrics::BusinessMetrics(tenancy::TenantData& data, metrics::Registry& registry,
                                 std::chrono::milliseconds interval)
    : impl_(new Impl{data,
                     registry.gauge("active_subscriptions_total",
                                    "Active and past-due subscriptions not on a test clock, per plan tier (the "
                                    "platform's, read from the database).",
                                    {"plan_tier"}),
                     registry.counter("revenue_total",
                                      "Payments collected, in minor units of the currency, per plan tier (none: "
                                      "invoices of no subscription) and currency (the platform's, read from the "
                                      "database).",
                                      {"plan_tier", "currency"}),
                     nullptr}) {
  impl_->periodic = std::make_unique<Periodic>(
      [this] {
        if (auto r = refresh(); !r) {
          log::warn("business metrics not refreshed", {{"error", r.error().message}});
        }
      },
      interval);
}

BusinessMetrics::~BusinessMetrics() { stop(); }

Result<void> BusinessMetrics::refresh() {
  std::map<std::string, std::int64_t> active;
  std::map<std::pair<std::string, std::string>, std::int64_t> revenue;
  auto r = impl_->data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        active.clear();
        revenue.clear();
        auto subs = ptx.control().execute(sql::k_active_subscriptions);
        if (!subs) return std::unexpected(subs.error());
        for (std::size_t i = 0; i < subs->rows.size(); ++i) {
          active[subs->text_at(i, 0).value_or("")] = subs->int_at(i, 1).value_or(0);
        }
        auto paid = ptx.control().execute(sql::k_revenue_collected);
        if (!paid) return std::unexpected(paid.error());
        for (std::size_t i = 0; i < paid->rows.size(); ++i) {
          revenue[{paid->text_at(i, 0).value_or("none"), paid->text_at(i, 1).value_or("")}] +=
              paid->int_at(i, 2).value_or(0);
        }
        return {};
      },
      {.read_only = true});
  if (!r) return r;
  for (const char* tier : k_tiers) impl_->subscriptions.with({tier}).set(0);
  for (const auto& [tier, n] : active) impl_->subscriptions.with({tier}).set(static_cast<double>(n));
  for (const auto& [key, total] : revenue) {
    metrics::Counter& c = impl_->revenue.with({key.first, key.second});
    const double delta = static_cast<double>(total) - c.value();
    if (delta > 0) c.inc(delta);
  }
  return {};
}

void BusinessMetrics::start() {
  impl_->periodic->start();
  impl_->periodic->wake();
}

void BusinessMetrics::stop() { impl_->periodic->stop(); }

}  // namespace atrium::analytics
