#include "churn/features.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "churn/sql.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "metering/metering.hpp"

namespace atrium::churn {

namespace {

using std::chrono::days;
using storage::Value;

constexpr float k_nan = std::numeric_limits<float>::quiet_NaN();
constexpr std::int64_t k_day_ms = 86'400'000;

enum Feature : std::size_t {
  avg_daily_api_calls,
  usage_trend,
  days_since_last_login,
  feature_adoption_rate,
  support_tickets,
  support_satisfaction,
  payment_failures,
  plan_downgrades,
  subscription_age_days,
  cancellation_page_visits,
  negative_feedback,
};

bool paying(std::string_view status) { return status == "active" || status == "past_due"; }

float days_between(Instant from, Instant to) {
  return static_cast<float>(std::chrono::duration<double, std::ratio<86'400>>(to - from).count());
}

// A property of a product event's properties (JSON text), "" when absent.
std::string property(const std::string& properties, const char* name) {
  std::string error;
  auto doc = parse_json(properties, {.max_depth = 8}, &error);
  if (!doc || !doc->is_object()) return "";
  auto it = doc->find(name);
  return it != doc->end() && it->is_string() ? it->get<std::string>() : "";
}

// The properties of row i of (tenant, properties, idempotency key) rows, opened with the tenant's key when encrypted.
Result<std::string> properties_at(tenancy::PlatformTransaction& ptx, const storage::ResultSet& rs, std::size_t i) {
  tenancy::TenantTransaction tx = ptx.tenant(rs.text_at(i, 0).value_or(""));
  return metering::open_properties(tx, rs.text_at(i, 2).value_or(""), rs.text_at(i, 1).value_or(""));
}

// The state of one tenant's subscriptions at the cutoff, from the ledger rows effective before it.
struct AtCutoff {
  bool live = false;
  Instant live_since{};  // the live subscription's first row
  std::string plan_tier;
  int downgrades = 0;  // MRR contractions while paying, within the billing window
};

AtCutoff state_at(const std::vector<LedgerRow>& rows, Instant cutoff, Instant billing_from) {
  AtCutoff out;
  const LedgerRow* previous = nullptr;
  Instant first{};
  const LedgerRow* last = nullptr;
  for (const LedgerRow& r : rows) {
    if (r.effective >= cutoff || r.recorded >= cutoff) continue;
    if (previous == nullptr || previous->subscription_id != r.subscription_id) {
      // A subscription's rows: remember its first, then walk them; its last row before the cutoff decides.
      if (last != nullptr && live_status(last->status)) {
        out.live = true;
        out.live_since = first;
        out.plan_tier = last->plan_tier;
      }
      first = r.effective;
      previous = nullptr;
    }
    if (previous != nullptr && r.effective >= billing_from && paying(previous->status) && paying(r.status) &&
        r.mrr < previous->mrr) {
      out.downgrades += 1;
    }
    previous = &r;
    last = &r;
  }
  if (last != nullptr && live_status(last->status)) {
    out.live = true;
    out.live_since = first;
    out.plan_tier = last->plan_tier;
  }
  return out;
}

// The least-squares slope of `y` over 0..n-1, relative to its mean and over the whole window (so -1 reads "fell by
// about its mean across the window"); 0 for a flat or empty series.
float relative_trend(const std::vector<double>& y) {
  const auto n = static_cast<double>(y.size());
  if (y.size() < 2) return 0.0F;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const auto x = static_cast<double>(i);
    sx += x;
    sy += y[i];
    sxx += x * x;
    sxy += x * y[i];
  }
  const double mean = sy / n;
  const double den = n * sxx - sx * sx;
  if (mean <= 0 || den == 0) return 0.0F;
  const double slope = (n * sxy - sx * sy) / den;
  return static_cast<float>(std::clamp(slope * n / mean, -10.0, 10.0));
}

Result<storage::ResultSet> read(storage::Transaction& tx, const storage::Statement& s, std::int64_t from,
                                std::int64_t to) {
  return tx.execute(s, {Value(from), Value(to)});
}

}  // namespace

std::vector<std::string> feature_names() { return {k_feature_names.begin(), k_feature_names.end()}; }

bool live_status(std::string_view status) {
  return status == "trial" || status == "active" || status == "past_due" || status == "paused";
}

Result<Ledger> load_ledger(tenancy::TenantData& data, Instant known_before) {
  Ledger out;
  auto r = data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        auto rows = ptx.control().execute(sql::k_ledger, {Value(unix_seconds(known_before))});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          out[rows->text_at(i, 0).value_or("")].push_back(
              LedgerRow{.subscription_id = rows->text_at(i, 1).value_or(""),
                        .seq = rows->int_at(i, 2).value_or(0),
                        .effective = from_unix_seconds(rows->int_at(i, 3).value_or(0)),
                        .status = rows->text_at(i, 4).value_or(""),
                        .mrr = rows->int_at(i, 5).value_or(0),
                        .plan_tier = rows->text_at(i, 6).value_or(""),
                        .recorded = from_unix_seconds(rows->int_at(i, 7).value_or(0))});
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<Observation>> observe(tenancy::TenantData& data, const Ledger& ledger, Instant cutoff,
                                         const Windows& w, const std::string& tenant_id) {
  // Who is a customer at the cutoff, from the ledger.
  std::map<std::string, AtCutoff> customers;
  for (const auto& [tenant, rows] : ledger) {
    if (!tenant_id.empty() && tenant != tenant_id) continue;
    AtCutoff s = state_at(rows, cutoff, cutoff - w.billing);
    if (s.live || !tenant_id.empty()) customers.emplace(tenant, std::move(s));
  }
  if (!tenant_id.empty() && customers.empty()) customers.emplace(tenant_id, AtCutoff{});
  std::vector<Observation> out;
  if (customers.empty()) return out;

  const std::int64_t to_ms = unix_ms(cutoff);
  const std::int64_t usage_from = unix_ms(cutoff - w.usage);
  std::map<std::string, std::map<std::int64_t, double>> calls;  // tenant -> day -> calls
  std::map<std::string, std::array<double, 4>> support;         // tickets, ratings, rating sum, negative feedback
  std::map<std::string, int> cancel_views, failures;
  std::map<std::string, std::set<std::string>> features;
  std::set<std::string> all_features;
  std::map<std::string, std::int64_t> last_seen;
  auto r = data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        storage::Transaction& tx = ptx.control();
        auto api = read(tx, sql::k_api_calls, usage_from, to_ms);
        if (!api) return std::unexpected(api.error());
        for (std::size_t i = 0; i < api->rows.size(); ++i) {
          calls[api->text_at(i, 0).value_or("")][api->int_at(i, 1).value_or(0)] =
              static_cast<double>(api->int_at(i, 2).value_or(0));
        }
        auto sup = read(tx, sql::k_support, unix_ms(cutoff - w.support), to_ms);
        if (!sup) return std::unexpected(sup.error());
        for (std::size_t i = 0; i < sup->rows.size(); ++i) {
          auto& s = support[sup->text_at(i, 0).value_or("")];
          const std::string metric = sup->text_at(i, 1).value_or("");
          const auto count = static_cast<double>(sup->int_at(i, 2).value_or(0));
          if (metric == "event:support.ticket_opened") s[0] += count;
          if (metric == "event:support.rating") {
            s[1] += count;
            s[2] += static_cast<double>(sup->int_at(i, 3).value_or(0));
          }
          if (metric == "event:feedback.negative") s[3] += count;
        }
        auto views = read(tx, sql::k_cancel_views, usage_from, to_ms);
        if (!views) return std::unexpected(views.error());
        for (std::size_t i = 0; i < views->rows.size(); ++i) {
          auto text = properties_at(ptx, *views, i);
          if (!text) return std::unexpected(text.error());
          if (property(*text, "page") == "cancel") cancel_views[views->text_at(i, 0).value_or("")] += 1;
        }
        auto used = read(tx, sql::k_features_used, usage_from, to_ms);
        if (!used) return std::unexpected(used.error());
        for (std::size_t i = 0; i < used->rows.size(); ++i) {
          auto text = properties_at(ptx, *used, i);
          if (!text) return std::unexpected(text.error());
          std::string feature = property(*text, "feature");
          if (feature.empty()) continue;
          all_features.insert(feature);
          features[used->text_at(i, 0).value_or("")].insert(std::move(feature));
        }
        auto seen = read(tx, sql::k_last_seen, unix_ms(cutoff - w.last_seen), to_ms);
        if (!seen) return std::unexpected(seen.error());
        for (std::size_t i = 0; i < seen->rows.size(); ++i) {
          last_seen[seen->text_at(i, 0).value_or("")] = seen->int_at(i, 1).value_or(0);
        }
        auto failed = read(tx, sql::k_payment_failures, unix_seconds(cutoff - w.billing), unix_seconds(cutoff));
        if (!failed) return std::unexpected(failed.error());
        for (std::size_t i = 0; i < failed->rows.size(); ++i) {
          failures[failed->text_at(i, 0).value_or("")] = static_cast<int>(failed->int_at(i, 1).value_or(0));
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());

  const std::int64_t first_day = usage_from / k_day_ms;
  const std::int64_t end_day = to_ms / k_day_ms;  // cutoffs of the training set are midnights: [first, end)
  for (const auto& [tenant, s] : customers) {
    Observation o{.tenant_id = tenant, .cutoff = cutoff, .plan_tier = s.plan_tier, .values = {}};
    o.values.fill(k_nan);
    const float age = s.live ? std::max(0.0F, days_between(s.live_since, cutoff)) : k_nan;
    o.values[subscription_age_days] = age;
    // Daily API calls over the days of the window the subscription existed (at least one).
    std::int64_t from_day = first_day;
    if (s.live) from_day = std::max(from_day, unix_ms(s.live_since) / k_day_ms);
    std::vector<double> series;
    const auto& tenant_calls = calls[tenant];
    for (std::int64_t d = from_day; d < std::max(end_day, from_day + 1); ++d) {
      auto it = tenant_calls.find(d);
      series.push_back(it == tenant_calls.end() ? 0.0 : it->second);
    }
    double sum = 0;
    for (double v : series) sum += v;
    o.values[avg_daily_api_calls] = static_cast<float>(sum / static_cast<double>(series.size()));
    // A trend needs a week of history.
    o.values[usage_trend] = series.size() >= 7 ? relative_trend(series) : k_nan;
    const float window_days = static_cast<float>(w.last_seen.count());
    if (auto it = last_seen.find(tenant); it != last_seen.end()) {
      o.values[days_since_last_login] = days_between(from_unix_ms(it->second), cutoff);
    } else {
      o.values[days_since_last_login] = std::isnan(age) ? window_days : std::min(age, window_days);
    }
    o.values[feature_adoption_rate] =
        all_features.empty() ? k_nan
                             : static_cast<float>(features[tenant].size()) / static_cast<float>(all_features.size());
    const auto& sup = support[tenant];
    o.values[support_tickets] = static_cast<float>(sup[0]);
    o.values[support_satisfaction] = sup[1] > 0 ? static_cast<float>(sup[2] / sup[1]) : k_nan;
    o.values[negative_feedback] = static_cast<float>(sup[3]);
    o.values[payment_failures] = static_cast<float>(failures[tenant]);
    o.values[plan_downgrades] = static_cast<float>(s.downgrades);
    o.values[cancellation_page_visits] = static_cast<float>(cancel_views[tenant]);
    out.push_back(std::move(o));
  }
  return out;
}

bool churned(const Ledger& ledger, const std::string& tenant_id, Instant cutoff, std::chrono::days horizon) {
  auto it = ledger.find(tenant_id);
  if (it == ledger.end()) return false;
  const Instant end = cutoff + horizon;
  // The subscriptions live at the cutoff: their last row effective before it.
  std::set<std::string> live;
  std::map<std::string, const LedgerRow*> last;
  for (const LedgerRow& r : it->second) {
    if (r.effective < cutoff && r.recorded < cutoff) last[r.subscription_id] = &r;
  }
  for (const auto& [id, row] : last) {
    if (live_status(row->status)) live.insert(id);
  }
  for (const LedgerRow& r : it->second) {
    if (live.contains(r.subscription_id) && r.effective >= cutoff && r.effective < end &&
        (r.status == "cancelled" || r.status == "unpaid")) {
      return true;
    }
  }
  return false;
}

Result<ml::Dataset> training_set(tenancy::TenantData& data, const TrainingSetOptions& o,
                                 std::vector<Observation>* rows) {
  const Instant first = std::chrono::ceil<days>(o.from);
  const Instant last = o.to - o.horizon;
  if (o.step.count() < 1) return fail(Errc::invalid_argument, "the step between cutoffs must be at least a day");
  if (first > last) {
    return fail(Errc::invalid_argument, "no cutoff fits: the range must be longer than the horizon (" +
                                            std::to_string(o.horizon.count()) + " days)");
  }
  auto ledger = load_ledger(data, o.to);
  if (!ledger) return std::unexpected(ledger.error());
  ml::Dataset out;
  out.features = feature_names();
  for (Instant cutoff = first; cutoff <= last; cutoff += o.step) {
    // The features see only what was recorded before the cutoff; the label what happened up to `to`.
    Ledger known;
    for (const auto& [tenant, list] : *ledger) {
      auto& dst = known[tenant];
      for (const LedgerRow& r : list) {
        if (r.effective < cutoff && r.recorded < cutoff) dst.push_back(r);
      }
    }
    auto seen = observe(data, known, cutoff, o.windows);
    if (!seen) return std::unexpected(seen.error());
    for (Observation& obs : *seen) {
      out.x.insert(out.x.end(), obs.values.begin(), obs.values.end());
      out.y.push_back(churned(*ledger, obs.tenant_id, cutoff, o.horizon) ? 1.0F : 0.0F);
      out.rows += 1;
      if (rows) rows->push_back(std::move(obs));
    }
  }
  return out;
}

}  // namespace atrium::churn
