#pragma once

// The SaaS metrics (docs/analytics.md, SaaS metrics): MRR, its movements, churn, retention and LTV, computed from
// the platform's own MRR ledger (billing's subscription_mrr) with no export step. A customer is a tenant; its MRR
// in a currency on a UTC day is the sum of its subscriptions' MRR at the day's end. Money is integer minor units of
// one currency, never converted; rates are plain fractions.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analytics/spend.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::analytics {

// One row of the MRR ledger: from `at` on, the subscription's MRR is `mrr` (0: not paying).
struct MrrChange {
  std::string tenant_id;
  std::string subscription_id;
  Instant at{};
  std::string currency;
  std::int64_t mrr = 0;
  std::string plan_tier;  // free | starter | professional | business | enterprise
};

enum class Granularity { day, week, month };  // week: ISO weeks, starting on Monday
std::optional<Granularity> parse_granularity(std::string_view text);

struct SaasQuery {
  Instant from{};  // midnight UTC
  Instant to{};    // midnight UTC, after from, at most k_max_saas_days later
  Granularity granularity = Granularity::month;
  std::optional<std::string> currency;  // one currency; all when absent
};
inline constexpr std::int64_t k_max_saas_days = 1100;

// MRR gained and lost in a period, by kind; amounts are positive (contraction and churn are losses).
struct Movements {
  std::int64_t new_mrr = 0;       // a customer's first paid day
  std::int64_t expansion = 0;     // a paying customer's MRR went up
  std::int64_t contraction = 0;   // ... went down, not to 0
  std::int64_t churn = 0;         // a paying customer's MRR went to 0: what it paid the day before
  std::int64_t reactivation = 0;  // a customer who had paid before pays again
  std::int64_t new_customers = 0;
  std::int64_t churned_customers = 0;
  std::int64_t reactivated_customers = 0;
  std::int64_t net() const { return new_mrr + expansion + reactivation - contraction - churn; }
};

struct SaasPeriod {
  Instant start{};  // [start, end): whole days, a bucket of the granularity clipped to the range
  Instant end{};
  std::int64_t mrr_start = 0;  // at the end of the day before start
  std::int64_t mrr_end = 0;    // at the end of the period's last day
  std::int64_t customers_start = 0;
  std::int64_t customers_end = 0;
  Movements movements;                            // mrr_end == mrr_start + movements.net()
  std::int64_t arr = 0;                           // mrr_end * 12
  std::optional<std::int64_t> arpu;               // mrr_end / customers_end, rounded; none without customers
  std::optional<double> customer_churn_rate;      // churned customers / customers_start
  std::optional<double> gross_revenue_churn;      // (churn + contraction) / mrr_start
  std::optional<double> net_revenue_churn;        // (churn + contraction - expansion - reactivation) / mrr_start
  std::optional<double> quick_ratio;              // (new + expansion + reactivation) / (churn + contraction)
  std::optional<double> net_revenue_retention;    // customers paying at start: their MRR at end / at start
  std::optional<double> gross_revenue_retention;  // the same, each customer's end MRR capped at its start MRR
  // Sales and marketing spend of the months whose first day is in the period; CAC = spend / new customers
  // (rounded); payback in months = spend / new MRR (CAC over a new customer's MRR).
  std::int64_t spend = 0;
  std::optional<std::int64_t> cac;
  std::optional<double> cac_payback_months;
  // Metered revenue, reported apart from MRR: the usage lines of the invoices finalized in the period (not void;
  // before discount and tax, like MRR's list prices net of coupons are not: see docs/analytics.md).
  std::int64_t metered_revenue = 0;
};

struct CohortMonth {
  int offset = 0;              // months after the cohort's month (0: the month itself)
  std::int64_t customers = 0;  // of the cohort, paying at the month's end (or the range's end)
  std::int64_t mrr = 0;
  double logo_retention = 0;                      // customers / the cohort's customers
  std::optional<double> net_revenue_retention;    // mrr / the cohort's MRR at the end of month 0
  std::optional<double> gross_revenue_retention;  // the same, each customer capped at its month-0 MRR
};

// The customers whose first paid day falls in one calendar month of the range.
struct Cohort {
  std::string month;  // YYYY-MM
  std::int64_t customers = 0;
  std::int64_t mrr = 0;  // at the end of month 0
  std::vector<CohortMonth> months;
};

// An amount on one UTC day in one currency (metered revenue by finalization day).
struct DailyAmount {
  Instant day{};  // midnight UTC
  std::string currency;
  std::int64_t amount = 0;
};

struct TierSnapshot {
  std::int64_t subscriptions = 0;  // paying (MRR > 0) at the range's end
  std::int64_t mrr = 0;
};

struct CurrencyMetrics {
  std::string currency;
  std::vector<SaasPeriod> periods;
  SaasPeriod range;  // the whole range as one period
  // Customer churn per month over the range's calendar months (clipped to the range): the customers lost in them
  // over the sum of the customers each started with; LTV = the range's ending ARPU / that rate (the seed's
  // lifetime x ARPU, lifetime = 1 / churn rate), none when nobody churned.
  std::optional<double> monthly_churn_rate;
  std::optional<std::int64_t> ltv;
  std::map<std::string, TierSnapshot> tiers;
  // Each customer's MRR at the end of the range's last day (0: not paying then), by tenant id.
  std::map<std::string, std::int64_t> tenant_mrr;
  std::vector<Cohort> cohorts;
};

struct SaasMetrics {
  Instant from{};
  Instant to{};
  Granularity granularity = Granularity::month;
  std::vector<CurrencyMetrics> currencies;  // by currency code
};

// invalid_argument for a range that is not whole days, is reversed or too long.
Result<void> check(const SaasQuery& query);
// check(query)'s errors; the ledger, the spend and the metered revenue in any order.
Result<SaasMetrics> saas_metrics(std::span<const MrrChange> ledger, std::span<const Spend> spend,
                                 std::span<const DailyAmount> metered, const SaasQuery& query);

// The calendar months [from, to) touches, as YYYY-MM: the spend to read for a query.
std::pair<std::string, std::string> spend_months(const SaasQuery& query);

// The MRR ledger's changes effective before `before`, every tenant's (the platform scope), in time order.
Result<std::vector<MrrChange>> load_mrr_ledger(tenancy::TenantData& data, Instant before);
// The metered revenue of [from, to) by day and currency, every tenant's, test clocks left out.
Result<std::vector<DailyAmount>> load_metered_revenue(tenancy::TenantData& data, Instant from, Instant to);

Json to_json(const SaasMetrics& m);
// The periods' movements as CSV (one row per currency and period).
std::string movements_csv(const SaasMetrics& m);

}  // namespace atrium::analytics
