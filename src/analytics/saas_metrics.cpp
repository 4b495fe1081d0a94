#include "analytics/saas_metrics.hpp"

#include <algorithm>
#include <chrono>

#include "analytics/days.hpp"
#include "analytics/exports.hpp"
#include "analytics/sql.hpp"
#include "core/clock.hpp"

namespace atrium::analytics {

namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

std::int64_t day_number(Instant t) {
  const std::int64_t s = unix_seconds(t);
  return s >= 0 ? s / k_day_seconds : -((-s + k_day_seconds - 1) / k_day_seconds);
}
sys_days sys_day(std::int64_t day) { return sys_days{days{day}}; }
std::int64_t day_number(sys_days d) { return d.time_since_epoch().count(); }

// The first day of the bucket holding `day`.
std::int64_t bucket_start(std::int64_t day, Granularity g) {
  switch (g) {
    case Granularity::day: return day;
    case Granularity::week: {
      const std::chrono::weekday wd{sys_day(day)};
      return day - static_cast<std::int64_t>(wd.iso_encoding() - 1);
    }
    case Granularity::month: {
      const year_month_day ymd{sys_day(day)};
      return day_number(sys_days{ymd.year() / ymd.month() / 1});
    }
  }
  return day;
}
std::int64_t next_bucket(std::int64_t start, Granularity g) {
  switch (g) {
    case Granularity::day: return start + 1;
    case Granularity::week: return start + 7;
    case Granularity::month: {
      const year_month_day ymd{sys_day(start)};
      return day_number(sys_days{(ymd.year() / ymd.month() + std::chrono::months{1}) / 1});
    }
  }
  return start + 1;
}

std::string month_text(std::int64_t day) {
  const year_month_day ymd{sys_day(day)};
  const unsigned m = static_cast<unsigned>(ymd.month());
  return std::to_string(static_cast<int>(ymd.year())) + (m < 10 ? "-0" : "-") + std::to_string(m);
}

// a / b rounded half away from zero, both non-negative, b > 0.
std::int64_t rounded(__int128 a, __int128 b) { return static_cast<std::int64_t>((2 * a + b) / (2 * b)); }
std::optional<double> ratio(std::int64_t a, std::int64_t b) {
  if (b == 0) return std::nullopt;
  return static_cast<double>(a) / static_cast<double>(b);
}

// One customer (tenant) in one currency: its MRR at the end of every day from the range's eve to its last day.
struct Customer {
  std::int64_t first_paid_day = INT64_MAX;  // the first day it ended paying, over its whole history
  std::vector<std::int64_t> values;         // values[i]: MRR at the end of day (from_day - 1 + i)
};

struct Span {
  std::int64_t from_day = 0;
  std::int64_t to_day = 0;  // exclusive
  std::int64_t value_at(const Customer& c, std::int64_t day) const { return c.values[day - (from_day - 1)]; }
};

// Sums the MRR of the customer's subscriptions along its changes (sorted by time), day by day.
Customer follow(const std::vector<const MrrChange*>& changes, const Span& span) {
  Customer c;
  c.values.assign(static_cast<std::size_t>(span.to_day - span.from_day + 1), 0);
  std::map<std::string, std::int64_t> subs;
  std::int64_t total = 0;
  std::size_t i = 0;
  // Applies the changes of the next day that has some, if it is before `until`; false when none is left.
  auto next_day = [&](std::int64_t until) {
    if (i == changes.size()) return false;
    const std::int64_t day = day_number(changes[i]->at);
    if (day >= until) return false;
    for (; i < changes.size() && day_number(changes[i]->at) == day; ++i) {
      std::int64_t& sub = subs[changes[i]->subscription_id];
      total += changes[i]->mrr - sub;
      sub = changes[i]->mrr;
    }
    if (total > 0) c.first_paid_day = std::min(c.first_paid_day, day);
    return true;
  };
  while (next_day(span.from_day)) {
  }
  c.values[0] = total;
  for (std::int64_t d = span.from_day; d < span.to_day; ++d) {
    next_day(d + 1);
    c.values[static_cast<std::size_t>(d - span.from_day + 1)] = total;
  }
  return c;
}

// Amounts by the day they are dated on: spend (the first day of its month) and metered revenue.
using ByDay = std::map<std::int64_t, std::int64_t>;
struct Dated {
  ByDay spend;
  ByDay metered;
};
std::int64_t sum_of(const ByDay& amounts, std::int64_t start, std::int64_t end) {
  std::int64_t sum = 0;
  for (auto it = amounts.lower_bound(start); it != amounts.end() && it->first < end; ++it) sum += it->second;
  return sum;
}

SaasPeriod measure(const std::vector<Customer>& customers, const Dated& dated, const Span& span, std::int64_t start,
                   std::int64_t end) {
  SaasPeriod p;
  p.spend = sum_of(dated.spend, start, end);
  p.metered_revenue = sum_of(dated.metered, start, end);
  p.start = day_start(start);
  p.end = day_start(end);
  std::int64_t kept = 0;
  std::int64_t kept_capped = 0;
  for (const Customer& c : customers) {
    const std::int64_t s = span.value_at(c, start - 1);
    const std::int64_t e = span.value_at(c, end - 1);
    p.mrr_start += s;
    p.mrr_end += e;
    p.customers_start += s > 0 ? 1 : 0;
    p.customers_end += e > 0 ? 1 : 0;
    if (s > 0) {
      kept += e;
      kept_capped += std::min(e, s);
    }
    Movements& m = p.movements;
    for (std::int64_t d = start; d < end; ++d) {
      const std::int64_t before = span.value_at(c, d - 1);
      const std::int64_t after = span.value_at(c, d);
      if (before == after) continue;
      if (before == 0) {
        if (c.first_paid_day < d) {
          m.reactivation += after;
          m.reactivated_customers += 1;
        } else {
          m.new_mrr += after;
          m.new_customers += 1;
        }
      } else if (after == 0) {
        m.churn += before;
        m.churned_customers += 1;
      } else if (after > before) {
        m.expansion += after - before;
      } else {
        m.contraction += before - after;
      }
    }
  }
  const Movements& m = p.movements;
  p.arr = p.mrr_end * 12;
  if (p.customers_end > 0) p.arpu = rounded(p.mrr_end, p.customers_end);
  p.customer_churn_rate = ratio(m.churned_customers, p.customers_start);
  p.gross_revenue_churn = ratio(m.churn + m.contraction, p.mrr_start);
  p.net_revenue_churn = ratio(m.churn + m.contraction - m.expansion - m.reactivation, p.mrr_start);
  p.quick_ratio = ratio(m.new_mrr + m.expansion + m.reactivation, m.churn + m.contraction);
  p.net_revenue_retention = ratio(kept, p.mrr_start);
  p.gross_revenue_retention = ratio(kept_capped, p.mrr_start);
  if (m.new_customers > 0) p.cac = rounded(p.spend, m.new_customers);
  p.cac_payback_months = ratio(p.spend, m.new_mrr);
  return p;
}

std::vector<Cohort> cohorts(const std::vector<Customer>& customers, const Span& span) {
  std::vector<Cohort> out;
  const std::int64_t last_day = span.to_day - 1;
  for (std::int64_t month = bucket_start(span.from_day, Granularity::month); month <= last_day;
       month = next_bucket(month, Granularity::month)) {
    const std::int64_t month_end = next_bucket(month, Granularity::month);
    std::vector<const Customer*> members;
    for (const Customer& c : customers) {
      if (c.first_paid_day >= month && c.first_paid_day < month_end) members.push_back(&c);
    }
    if (members.empty()) continue;
    Cohort cohort;
    cohort.month = month_text(month);
    cohort.customers = static_cast<std::int64_t>(members.size());
    const std::int64_t base_day = std::min(month_end, span.to_day) - 1;
    for (const Customer* c : members) cohort.mrr += span.value_at(*c, base_day);
    int offset = 0;
    for (std::int64_t m = month; m <= last_day; m = next_bucket(m, Granularity::month), ++offset) {
      const std::int64_t day = std::min(next_bucket(m, Granularity::month), span.to_day) - 1;
      CohortMonth cm;
      cm.offset = offset;
      std::int64_t capped = 0;
      for (const Customer* c : members) {
        const std::int64_t v = span.value_at(*c, day);
        cm.customers += v > 0 ? 1 : 0;
        cm.mrr += v;
        capped += std::min(v, span.value_at(*c, base_day));
      }
      cm.logo_retention = static_cast<double>(cm.customers) / static_cast<double>(cohort.customers);
      cm.net_revenue_retention = ratio(cm.mrr, cohort.mrr);
      cm.gross_revenue_retention = ratio(capped, cohort.mrr);
      cohort.months.push_back(cm);
    }
    out.push_back(std::move(cohort));
  }
  return out;
}

// One measure per bucket of the granularity, clipped to the range.
std::vector<SaasPeriod> periods(const std::vector<Customer>& customers, const Dated& dated, const Span& span,
                                Granularity g) {
  std::vector<SaasPeriod> out;
  for (std::int64_t b = bucket_start(span.from_day, g); b < span.to_day; b = next_bucket(b, g)) {
    out.push_back(
        measure(customers, dated, span, std::max(b, span.from_day), std::min(next_bucket(b, g), span.to_day)));
  }
  return out;
}

CurrencyMetrics currency_metrics(const std::string& currency, const std::vector<const MrrChange*>& changes,
                                 const Dated& dated, const SaasQuery& q, const Span& span) {
  CurrencyMetrics out;
  out.currency = currency;
  std::map<std::string, std::vector<const MrrChange*>> by_tenant;
  for (const MrrChange* c : changes) by_tenant[c->tenant_id].push_back(c);
  std::vector<Customer> customers;
  customers.reserve(by_tenant.size());
  for (const auto& [tenant, own] : by_tenant) {
    customers.push_back(follow(own, span));
    out.tenant_mrr[tenant] = customers.back().values.back();
  }

  out.periods = periods(customers, dated, span, q.granularity);
  out.range = measure(customers, dated, span, span.from_day, span.to_day);

  // The monthly churn rate reads calendar months: the periods themselves when they are months.
  const std::vector<SaasPeriod> by_month = q.granularity == Granularity::month
                                               ? std::vector<SaasPeriod>{}
                                               : periods(customers, {}, span, Granularity::month);
  const std::vector<SaasPeriod>& months = q.granularity == Granularity::month ? out.periods : by_month;
  std::int64_t lost = 0;
  std::int64_t at_risk = 0;
  for (const SaasPeriod& month : months) {
    lost += month.movements.churned_customers;
    at_risk += month.customers_start;
  }
  out.monthly_churn_rate = ratio(lost, at_risk);
  if (lost > 0 && out.range.arpu) out.ltv = rounded(static_cast<__int128>(*out.range.arpu) * at_risk, lost);

  std::map<std::string, const MrrChange*> last_of_sub;  // changes are in time order
  for (const MrrChange* c : changes) {
    if (day_number(c->at) < span.to_day) last_of_sub[c->subscription_id] = c;
  }
  for (const auto& [id, c] : last_of_sub) {
    if (c->mrr <= 0) continue;
    TierSnapshot& t = out.tiers[c->plan_tier];
    t.subscriptions += 1;
    t.mrr += c->mrr;
  }
  out.cohorts = cohorts(customers, span);
  return out;
}

Json optional_json(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
Json optional_json(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(nullptr); }

Json period_json(const SaasPeriod& p) {
  const Movements& m = p.movements;
  return {{"start", date_of(p.start)},
          {"end", date_of(p.end)},
          {"mrr_start", p.mrr_start},
          {"mrr_end", p.mrr_end},
          {"arr", p.arr},
          {"customers_start", p.customers_start},
          {"customers_end", p.customers_end},
          {"movements",
           {{"new", m.new_mrr},
            {"expansion", m.expansion},
            {"contraction", m.contraction},
            {"churn", m.churn},
            {"reactivation", m.reactivation},
            {"net", m.net()},
            {"new_customers", m.new_customers},
            {"churned_customers", m.churned_customers},
            {"reactivated_customers", m.reactivated_customers}}},
          {"arpu", optional_json(p.arpu)},
          {"arpa", optional_json(p.arpu)},
          {"customer_churn_rate", optional_json(p.customer_churn_rate)},
          {"gross_revenue_churn", optional_json(p.gross_revenue_churn)},
          {"net_revenue_churn", optional_json(p.net_revenue_churn)},
          {"quick_ratio", optional_json(p.quick_ratio)},
          {"net_revenue_retention", optional_json(p.net_revenue_retention)},
          {"gross_revenue_retention", optional_json(p.gross_revenue_retention)},
          {"spend", p.spend},
          {"cac", optional_json(p.cac)},
          {"cac_payback_months", optional_json(p.cac_payback_months)},
          {"metered_revenue", p.metered_revenue}};
}

}  // namespace

Instant period_start(Instant day, Granularity g) { return day_start(bucket_start(day_number(day), g)); }

std::optional<Granularity> parse_granularity(std::string_view text) {
  if (text == "day") return Granularity::day;
  if (text == "week") return Granularity::week;
  if (text == "month") return Granularity::month;
  return std::nullopt;
}

Result<void> check(const SaasQuery& q) {
  const std::int64_t from_s = unix_seconds(q.from);
  const std::int64_t to_s = unix_seconds(q.to);
  if (from_s % k_day_seconds != 0 || to_s % k_day_seconds != 0) {
    return fail(Errc::invalid_argument, "from and to must be dates (midnight UTC)");
  }
  if (to_s <= from_s) return fail(Errc::invalid_argument, "to must be after from");
  if ((to_s - from_s) / k_day_seconds > k_max_saas_days) {
    return fail(Errc::invalid_argument, "the range is at most " + std::to_string(k_max_saas_days) + " days");
  }
  return {};
}

std::pair<std::string, std::string> spend_months(const SaasQuery& q) {
  return {month_text(day_number(q.from)), month_text(day_number(q.to) - 1)};
}

Result<SaasMetrics> saas_metrics(std::span<const MrrChange> ledger, std::span<const Spend> spend,
                                 std::span<const DailyAmount> metered, const SaasQuery& q) {
  if (auto c = check(q); !c) return std::unexpected(c.error());
  const std::int64_t from_s = unix_seconds(q.from);
  const std::int64_t to_s = unix_seconds(q.to);
  const Span span{.from_day = from_s / k_day_seconds, .to_day = to_s / k_day_seconds};
  std::map<std::string, std::vector<const MrrChange*>> by_currency;
  for (const MrrChange& c : ledger) {
    if (q.currency && c.currency != *q.currency) continue;
    by_currency[c.currency].push_back(&c);
  }
  std::map<std::string, Dated> dated;
  for (const Spend& s : spend) {
    if (q.currency && s.currency != *q.currency) continue;
    if (!valid_month(s.month) || s.amount == 0) continue;
    const int year = std::stoi(s.month.substr(0, 4));
    const unsigned month = static_cast<unsigned>(std::stoi(s.month.substr(5)));
    dated[s.currency].spend[day_number(sys_days{std::chrono::year{year} / std::chrono::month{month} / 1})] += s.amount;
    by_currency[s.currency];
  }
  for (const DailyAmount& a : metered) {
    if ((q.currency && a.currency != *q.currency) || a.amount == 0) continue;
    dated[a.currency].metered[day_number(a.day)] += a.amount;
    by_currency[a.currency];
  }
  SaasMetrics out{.from = q.from, .to = q.to, .granularity = q.granularity, .currencies = {}};
  for (auto& [currency, changes] : by_currency) {
    std::stable_sort(changes.begin(), changes.end(),
                     [](const MrrChange* a, const MrrChange* b) { return a->at < b->at; });
    out.currencies.push_back(currency_metrics(currency, changes, dated[currency], q, span));
  }
  return out;
}

Result<std::vector<MrrChange>> load_mrr_ledger(tenancy::TenantData& data, Instant before) {
  std::vector<MrrChange> out;
  auto r = data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        auto rows = ptx.control().execute(sql::k_mrr_ledger, {storage::Value(unix_seconds(before))});
        if (!rows) return std::unexpected(rows.error());
        out.reserve(rows->rows.size());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          out.push_back({.tenant_id = rows->text_at(i, 0).value_or(""),
                         .subscription_id = rows->text_at(i, 1).value_or(""),
                         .at = from_unix_seconds(rows->int_at(i, 2).value_or(0)),
                         .currency = rows->text_at(i, 3).value_or(""),
                         .mrr = rows->int_at(i, 4).value_or(0),
                         .plan_tier = rows->text_at(i, 5).value_or("")});
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<DailyAmount>> load_metered_revenue(tenancy::TenantData& data, Instant from, Instant to) {
  std::vector<DailyAmount> out;
  auto r = data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        // The revenue export's rows (tenant, currency, day, amount): the metrics sum them over tenants.
        auto rows = ptx.control().execute(sql::k_export_metered,
                                          {storage::Value(unix_seconds(from)), storage::Value(unix_seconds(to))});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          out.push_back({.day = day_start(rows->int_at(i, 2).value_or(0)),
                         .currency = rows->text_at(i, 1).value_or(""),
                         .amount = rows->int_at(i, 3).value_or(0)});
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Json to_json(const SaasMetrics& m) {
  Json currencies = Json::array();
  for (const CurrencyMetrics& c : m.currencies) {
    Json periods = Json::array();
    for (const SaasPeriod& p : c.periods) periods.push_back(period_json(p));
    Json tiers = Json::object();
    for (const auto& [tier, t] : c.tiers) tiers[tier] = {{"subscriptions", t.subscriptions}, {"mrr", t.mrr}};
    Json tenants = Json::array();
    for (const auto& [tenant, mrr] : c.tenant_mrr) tenants.push_back({{"tenant_id", tenant}, {"mrr", mrr}});
    Json cohorts = Json::array();
    for (const Cohort& co : c.cohorts) {
      Json months = Json::array();
      for (const CohortMonth& cm : co.months) {
        months.push_back({{"offset", cm.offset},
                          {"customers", cm.customers},
                          {"mrr", cm.mrr},
                          {"logo_retention", cm.logo_retention},
                          {"net_revenue_retention", optional_json(cm.net_revenue_retention)},
                          {"gross_revenue_retention", optional_json(cm.gross_revenue_retention)}});
      }
      cohorts.push_back(
          {{"month", co.month}, {"customers", co.customers}, {"mrr", co.mrr}, {"months", std::move(months)}});
    }
    currencies.push_back({{"currency", c.currency},
                          {"summary", period_json(c.range)},
                          {"monthly_churn_rate", optional_json(c.monthly_churn_rate)},
                          {"ltv", optional_json(c.ltv)},
                          {"tiers", std::move(tiers)},
                          {"tenants", std::move(tenants)},
                          {"periods", std::move(periods)},
                          {"cohorts", std::move(cohorts)}});
  }
  return {{"from", date_of(m.from)},
          {"to", date_of(m.to)},
          {"granularity", granularity_name(m.granularity)},
          {"currencies", std::move(currencies)}};
}

std::string movements_csv(const SaasMetrics& m) {
  std::string out =
      "currency,start,end,mrr_start,new,expansion,contraction,churn,reactivation,mrr_end,customers_start,"
      "new_customers,churned_customers,reactivated_customers,customers_end\r\n";
  for (const CurrencyMetrics& c : m.currencies) {
    for (const SaasPeriod& p : c.periods) {
      const Movements& mv = p.movements;
      for (const std::string& field :
           {c.currency, date_of(p.start), date_of(p.end), std::to_string(p.mrr_start), std::to_string(mv.new_mrr),
            std::to_string(mv.expansion), std::to_string(mv.contraction), std::to_string(mv.churn),
            std::to_string(mv.reactivation), std::to_string(p.mrr_end), std::to_string(p.customers_start),
            std::to_string(mv.new_customers), std::to_string(mv.churned_customers),
            std::to_string(mv.reactivated_customers), std::to_string(p.customers_end)}) {
        out += field;
        out += ',';
      }
      out.back() = '\r';
      out += '\n';
    }
  }
  return out;
}

}  // namespace atrium::analytics
