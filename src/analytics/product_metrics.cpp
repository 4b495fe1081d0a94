#include "analytics/product_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "analytics/days.hpp"
#include "analytics/product_events.hpp"
#include "analytics/sql.hpp"
#include "core/clock.hpp"
#include "metering/metering.hpp"

namespace atrium::analytics {

namespace {

using storage::Value;
using tenancy::TenantTransaction;

// Distinct users with a product event in [from_ms, to_ms).
Result<std::int64_t> active_users(TenantTransaction& tx, std::int64_t from_ms, std::int64_t to_ms,
                                  const std::string& user) {
  auto rs = tx.execute(sql::k_active_users, {Value(from_ms), Value(to_ms), Value(user)});
  if (!rs) return std::unexpected(rs.error());
  return rs->empty() ? 0 : rs->int_at(0, 0).value_or(0);
}

// Active users per day of [from_ms, to_ms), every day present.
Result<std::vector<DailyActive>> daily_active(TenantTransaction& tx, std::int64_t from_ms, std::int64_t to_ms,
                                              const std::string& user) {
  auto rs = tx.execute(sql::k_daily_active, {Value(from_ms), Value(to_ms), Value(user)});
  if (!rs) return std::unexpected(rs.error());
  std::map<std::int64_t, std::int64_t> by_day;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) by_day[rs->int_at(i, 0).value_or(0)] = rs->int_at(i, 1).value_or(0);
  std::vector<DailyActive> out;
  for (std::int64_t day = from_ms / k_day_ms; day < to_ms / k_day_ms; ++day) {
    auto it = by_day.find(day);
    out.push_back({from_unix_ms(day * k_day_ms), it == by_day.end() ? 0 : it->second});
  }
  return out;
}

Result<std::vector<FeatureAdoption>> adoption(TenantTransaction& tx, const ProductQuery& q, std::int64_t active) {
  auto rs = tx.execute(sql::k_user_properties, {Value(event_metric(k_feature_used)), Value(unix_ms(q.from)),
                                                Value(unix_ms(q.to)), Value(q.user)});
  if (!rs) return std::unexpected(rs.error());
  std::map<std::string, std::set<std::string>> users;
  for (const std::string& f : q.features) users[f];
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    auto text = metering::open_properties(tx, rs->text_at(i, 2).value_or(""), rs->text_at(i, 1).value_or("{}"));
    if (!text) return std::unexpected(text.error());
    std::string error;
    auto properties = parse_json(*text, JsonLimits{}, &error);
    if (!properties || !properties->is_object()) continue;
    auto feature = properties->find("feature");
    if (feature == properties->end() || !feature->is_string()) continue;
    const auto& name = feature->get_ref<const std::string&>();
    if (!q.features.empty() && !users.contains(name)) continue;
    users[name].insert(rs->text_at(i, 0).value_or(""));
  }
  std::vector<FeatureAdoption> out;
  for (const auto& [feature, who] : users) {
    const auto n = static_cast<std::int64_t>(who.size());
    out.push_back({feature, n, active > 0 ? static_cast<double>(n) / static_cast<double>(active) : 0.0});
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.users > b.users; });
  return out;
}

Result<Nps> nps(TenantTransaction& tx, const ProductQuery& q) {
  auto rs = tx.execute(sql::k_value_counts, {Value(event_metric(k_nps_response)), Value(unix_ms(q.from)),
                                             Value(unix_ms(q.to)), Value(q.user)});
  if (!rs) return std::unexpected(rs.error());
  Nps out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    const std::int64_t value = rs->int_at(i, 0).value_or(-1);
    const std::int64_t n = rs->int_at(i, 1).value_or(0);
    if (value < 0 || value > 10) continue;  // ingestion refuses these; stored ones predate nothing
    out.responses += n;
    (value >= 9 ? out.promoters : value >= 7 ? out.passives : out.detractors) += n;
  }
  if (out.responses > 0) {
    out.score =
        std::round(1000.0 * static_cast<double>(out.promoters - out.detractors) / static_cast<double>(out.responses)) /
        10.0;
  }
  return out;
}

// The nearest-rank percentile p (0-1] of sorted values.
std::int64_t nearest_rank(const std::vector<std::int64_t>& sorted, double p) {
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::max<std::size_t>(rank, 1) - 1];
}

// Users first seen in the range: user -> first event's ts.
using FirstSeen = std::map<std::string, std::int64_t>;
Result<FirstSeen> first_seen(TenantTransaction& tx, const ProductQuery& q) {
  auto rs = tx.execute(sql::k_first_seen, {Value(unix_ms(q.from)), Value(unix_ms(q.to)), Value(q.user)});
  if (!rs) return std::unexpected(rs.error());
  FirstSeen out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) out[rs->text_at(i, 0).value_or("")] = rs->int_at(i, 1).value_or(0);
  return out;
}

Result<void> retention(TenantTransaction& tx, const ProductQuery& q, const FirstSeen& seen, ProductMetrics& out) {
  const std::int64_t from_day = unix_ms(q.from) / k_day_ms;
  const std::int64_t last_day = unix_ms(q.to) / k_day_ms - 1;
  auto rs = tx.execute(sql::k_user_days, {Value(unix_ms(q.from)), Value(unix_ms(q.to)), Value(q.user)});
  if (!rs) return std::unexpected(rs.error());
  std::map<std::int64_t, RetentionCohort> cohorts;  // by first day
  for (const auto& [user, ts] : seen) {
    const std::int64_t day = ts / k_day_ms;
    RetentionCohort& c = cohorts[day];
    if (c.users == 0) {
      c.day = from_unix_ms(day * k_day_ms);
      c.retained.assign(static_cast<std::size_t>(std::min<std::int64_t>(k_max_retention_day, last_day - day) + 1), 0);
    }
    ++c.users;
  }
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    auto who = seen.find(rs->text_at(i, 0).value_or(""));
    if (who == seen.end()) continue;
    const std::int64_t first = who->second / k_day_ms;
    const std::int64_t n = rs->int_at(i, 1).value_or(from_day) - first;
    RetentionCohort& c = cohorts[first];
    if (n >= 0 && n < static_cast<std::int64_t>(c.retained.size())) ++c.retained[static_cast<std::size_t>(n)];
  }
  for (int n : {1, 7, 14, 30}) {
    NDayRetention r{.day = n};
    for (const auto& [day, c] : cohorts) {
      if (n >= static_cast<int>(c.retained.size())) continue;
      r.users += c.users;
      r.retained += c.retained[static_cast<std::size_t>(n)];
    }
    if (r.users > 0) r.rate = static_cast<double>(r.retained) / static_cast<double>(r.users);
    out.retention.push_back(r);
  }
  for (auto& [day, c] : cohorts) out.retention_cohorts.push_back(std::move(c));
  return {};
}

Result<TimeToFirstValue> time_to_first_value(TenantTransaction& tx, const ProductQuery& q, const FirstSeen& seen) {
  auto reached = tx.execute(sql::k_first_of, {Value(event_metric(q.value_event)), Value(q.user)});
  if (!reached) return std::unexpected(reached.error());
  std::map<std::string, std::int64_t> value_at;
  for (std::size_t i = 0; i < reached->rows.size(); ++i) {
    value_at[reached->text_at(i, 0).value_or("")] = reached->int_at(i, 1).value_or(0);
  }
  TimeToFirstValue out{.event = q.value_event};
  std::vector<std::int64_t> seconds;
  for (const auto& [user, first] : seen) {
    ++out.users;
    auto it = value_at.find(user);
    if (it == value_at.end()) continue;
    seconds.push_back((it->second - first) / 1000);
  }
  out.reached = static_cast<std::int64_t>(seconds.size());
  if (!seconds.empty()) {
    std::sort(seconds.begin(), seconds.end());
    out.median_seconds = nearest_rank(seconds, 0.5);
    out.p90_seconds = nearest_rank(seconds, 0.9);
  }
  return out;
}

Result<void> check(const ProductQuery& q) {
  const std::int64_t from = unix_ms(q.from);
  const std::int64_t to = unix_ms(q.to);
  if (from % k_day_ms != 0 || to % k_day_ms != 0) {
    return fail(Errc::invalid_argument, "from and to must be whole UTC days (midnight)");
  }
  if (to <= from) return fail(Errc::invalid_argument, "to must be after from");
  if (to - from > 366 * k_day_ms) return fail(Errc::invalid_argument, "the range is at most 366 days");
  if (!q.value_event.empty() && !valid_event_type(q.value_event)) {
    return fail(Errc::invalid_argument, "value_event must be an event type");
  }
  for (const auto& f : q.features) {
    if (f.empty() || f.size() > 128) return fail(Errc::invalid_argument, "features are names of 1-128 bytes");
  }
  return {};
}

// Every metric of `q` into `out`, in one transaction.
Result<void> collect(TenantTransaction& tx, const ProductQuery& q, ProductMetrics& out) {
  const std::int64_t from = unix_ms(q.from);
  const std::int64_t to = unix_ms(q.to);
  // One daily series serves the range, the last day's DAU and the 30 days stickiness averages over.
  auto daily = daily_active(tx, std::min(from, to - 30 * k_day_ms), to, q.user);
  if (!daily) return std::unexpected(daily.error());
  out.daily_active.assign(daily->end() - (to - from) / k_day_ms, daily->end());
  out.dau = daily->back().users;
  auto active = active_users(tx, from, to, q.user);
  if (!active) return std::unexpected(active.error());
  out.active_users = *active;
  for (auto [days, into] : {std::pair{7, &out.wau}, std::pair{30, &out.mau}}) {
    auto n = active_users(tx, to - days * k_day_ms, to, q.user);
    if (!n) return std::unexpected(n.error());
    *into = *n;
  }
  if (out.mau > 0) {
    std::int64_t sum = 0;
    for (auto d = daily->end() - 30; d != daily->end(); ++d) sum += d->users;
    out.stickiness = static_cast<double>(sum) / 30.0 / static_cast<double>(out.mau);
  }
  auto features = adoption(tx, q, out.active_users);
  if (!features) return std::unexpected(features.error());
  out.feature_adoption = std::move(*features);
  auto scores = nps(tx, q);
  if (!scores) return std::unexpected(scores.error());
  out.nps = *scores;
  auto seen = first_seen(tx, q);
  if (!seen) return std::unexpected(seen.error());
  if (auto r = retention(tx, q, *seen, out); !r) return r;
  if (!q.value_event.empty()) {
    auto ttfv = time_to_first_value(tx, q, *seen);
    if (!ttfv) return std::unexpected(ttfv.error());
    out.time_to_first_value = std::move(*ttfv);
  }
  return {};
}

}  // namespace

Result<ProductMetrics> product_metrics(tenancy::TenantData& data, const std::string& tenant_id, const ProductQuery& q) {
  if (auto c = check(q); !c) return std::unexpected(c.error());
  ProductMetrics out{.from = q.from, .to = q.to};
  auto r = data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) { return collect(tx, q, out); },
                                       {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Json to_json(const ProductMetrics& m) {
  Json daily = Json::array();
  for (const auto& d : m.daily_active) daily.push_back({{"date", date_of(d.day)}, {"users", d.users}});
  Json features = Json::array();
  for (const auto& f : m.feature_adoption) {
    features.push_back({{"feature", f.feature}, {"users", f.users}, {"adoption", f.share}});
  }
  Json nps = {{"responses", m.nps.responses},
              {"promoters", m.nps.promoters},
              {"passives", m.nps.passives},
              {"detractors", m.nps.detractors},
              {"score", m.nps.score ? Json(*m.nps.score) : Json(nullptr)}};
  Json retention = Json::array();
  for (const auto& r : m.retention) {
    retention.push_back({{"day", r.day},
                         {"users", r.users},
                         {"retained", r.retained},
                         {"rate", r.rate ? Json(*r.rate) : Json(nullptr)}});
  }
  Json cohorts = Json::array();
  for (const auto& c : m.retention_cohorts) {
    cohorts.push_back({{"date", date_of(c.day)}, {"users", c.users}, {"retained", c.retained}});
  }
  Json out = {{"from", format_rfc3339(m.from)},
              {"to", format_rfc3339(m.to)},
              {"active_users", m.active_users},
              {"daily_active_users", std::move(daily)},
              {"dau", m.dau},
              {"wau", m.wau},
              {"mau", m.mau},
              {"stickiness", m.stickiness ? Json(*m.stickiness) : Json(nullptr)},
              {"feature_adoption", std::move(features)},
              {"nps", std::move(nps)},
              {"time_to_first_value", nullptr},
              {"retention", std::move(retention)},
              {"retention_cohorts", std::move(cohorts)}};
  if (const auto& t = m.time_to_first_value) {
    out["time_to_first_value"] = {{"event", t->event},
                                  {"users", t->users},
                                  {"reached", t->reached},
                                  {"median_seconds", t->median_seconds ? Json(*t->median_seconds) : Json(nullptr)},
                                  {"p90_seconds", t->p90_seconds ? Json(*t->p90_seconds) : Json(nullptr)}};
  }
  return out;
}

std::span<const tenancy::TenantStatement> tenant_statements() { return sql::k_all; }

}  // namespace atrium::analytics
