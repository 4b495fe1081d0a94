// The SaaS metrics below the API (src/analytics/saas_metrics.*, docs/analytics.md, SaaS metrics): a hand-built MRR
// ledger of twelve tenants over four months, every number worked out by hand in the comments, reproduced exactly
// (money to the cent); then granularities, the currency filter, ordering and the range checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "analytics/saas_metrics.hpp"
#include "core/clock.hpp"

namespace atrium::analytics {
namespace {

Instant instant(const char* text) { return parse_rfc3339(text).value(); }

MrrChange change(const char* tenant, const char* sub, const char* when, std::int64_t mrr, const char* tier,
                 const char* currency = "USD") {
  return {.tenant_id = tenant,
          .subscription_id = sub,
          .at = instant(when),
          .currency = currency,
          .mrr = mrr,
          .plan_tier = tier};
}

// The ledger. Values are USD cents a month unless stated; "end of day" is what a day counts.
//   T1  starter       10000 since 2025-12-10, unchanged (and leaves on 2026-05-03, after the range)
//   T2  professional   5000 since 2025-12-15; 8000 from Feb 10 (expansion 3000)
//   T3  business      20000 since 2025-11-01; 15000 from Mar 5 (contraction 5000)
//   T4  starter        3000 since 2025-12-01; cancelled Jan 20 (churn 3000)
//   T5  starter        7000 from Jan 5 (new)
//   T6  starter        a trial from Jan 15 (0: not revenue); 4000 from Feb 15 (new in February, not January)
//   T7  professional   6000 from 2025-10-01, cancelled 2025-12-20; a new subscription at 6500 from Mar 10
//                      (reactivation: it had paid before)
//   T8  professional   9000 from Feb 1 (new); cancelled Apr 10 (churn 9000)
//   T9  enterprise    12000 since 2025-12-05; paused Apr 1 (churn 12000), resumed Apr 20 (reactivation 12000)
//   T10 starter        2500 at 09:00 on Mar 1, 3000 at 15:00 the same day: one new customer at 3000
//   T11 starter       10000 EUR since 2025-12-01, unchanged (another currency: never added to USD)
//   T12 starter        1000 from Apr 30 (new on the range's last day)
std::vector<MrrChange> fixture() {
  return {
      change("t01", "s1", "2025-12-10T10:00:00Z", 10000, "starter"),
      change("t01", "s1", "2026-05-03T10:00:00Z", 0, "starter"),
      change("t02", "s2", "2025-12-15T10:00:00Z", 5000, "professional"),
      change("t02", "s2", "2026-02-10T10:00:00Z", 8000, "professional"),
      change("t03", "s3", "2025-11-01T10:00:00Z", 20000, "business"),
      change("t03", "s3", "2026-03-05T10:00:00Z", 15000, "business"),
      change("t04", "s4", "2025-12-01T10:00:00Z", 3000, "starter"),
      change("t04", "s4", "2026-01-20T10:00:00Z", 0, "starter"),
      change("t05", "s5", "2026-01-05T10:00:00Z", 7000, "starter"),
      change("t06", "s6", "2026-01-15T10:00:00Z", 0, "starter"),
      change("t06", "s6", "2026-02-15T10:00:00Z", 4000, "starter"),
      change("t07", "s7", "2025-10-01T10:00:00Z", 6000, "professional"),
      change("t07", "s7", "2025-12-20T10:00:00Z", 0, "professional"),
      change("t07", "s7b", "2026-03-10T10:00:00Z", 6500, "professional"),
      change("t08", "s8", "2026-02-01T10:00:00Z", 9000, "professional"),
      change("t08", "s8", "2026-04-10T10:00:00Z", 0, "professional"),
      change("t09", "s9", "2025-12-05T10:00:00Z", 12000, "enterprise"),
      change("t09", "s9", "2026-04-01T08:00:00Z", 0, "enterprise"),
      change("t09", "s9", "2026-04-20T08:00:00Z", 12000, "enterprise"),
      change("t10", "s10", "2026-03-01T09:00:00Z", 2500, "starter"),
      change("t10", "s10", "2026-03-01T15:00:00Z", 3000, "starter"),
      change("t11", "s11", "2025-12-01T10:00:00Z", 10000, "starter", "EUR"),
      change("t12", "s12", "2026-04-30T23:00:00Z", 1000, "starter"),
  };
}

SaasQuery months_of_2026_jan_to_apr() {
  return {.from = instant("2026-01-01T00:00:00Z"),
          .to = instant("2026-05-01T00:00:00Z"),
          .granularity = Granularity::month};
}

const CurrencyMetrics& currency(const SaasMetrics& m, const std::string& code) {
  for (const auto& c : m.currencies) {
    if (c.currency == code) return c;
  }
  ADD_FAILURE() << "no " << code;
  static const CurrencyMetrics none;
  return none;
}

void expect_movements(const Movements& m, std::int64_t new_mrr, std::int64_t expansion, std::int64_t contraction,
                      std::int64_t churn, std::int64_t reactivation, std::int64_t new_customers,
                      std::int64_t churned_customers, std::int64_t reactivated_customers) {
  EXPECT_EQ(m.new_mrr, new_mrr);
  EXPECT_EQ(m.expansion, expansion);
  EXPECT_EQ(m.contraction, contraction);
  EXPECT_EQ(m.churn, churn);
  EXPECT_EQ(m.reactivation, reactivation);
  EXPECT_EQ(m.new_customers, new_customers);
  EXPECT_EQ(m.churned_customers, churned_customers);
  EXPECT_EQ(m.reactivated_customers, reactivated_customers);
}

TEST(SaasMetrics, TheHandBuiltLedgerMonthByMonth) {
  const auto ledger = fixture();
  auto m = saas_metrics(ledger, {}, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_EQ(m->currencies.size(), 2u);
  const CurrencyMetrics& usd = currency(*m, "USD");
  ASSERT_EQ(usd.periods.size(), 4u);

  // January. At the end of Dec 31: T1 10000 + T2 5000 + T3 20000 + T4 3000 + T9 12000 = 50000, 5 customers
  // (T7 left on Dec 20). T4 churns 3000, T5 is new at 7000; T6's trial is no revenue. End: 54000, 5 customers.
  const SaasPeriod& jan = usd.periods[0];
  EXPECT_EQ(format_rfc3339(jan.start), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(jan.end), "2026-02-01T00:00:00.000Z");
  EXPECT_EQ(jan.mrr_start, 50000);
  EXPECT_EQ(jan.customers_start, 5);
  expect_movements(jan.movements, 7000, 0, 0, 3000, 0, 1, 1, 0);
  EXPECT_EQ(jan.mrr_end, 54000);
  EXPECT_EQ(jan.customers_end, 5);
  EXPECT_EQ(jan.arr, 648000);                                   // 54000 x 12
  EXPECT_EQ(jan.arpu, 10800);                                   // 54000 / 5
  EXPECT_DOUBLE_EQ(jan.customer_churn_rate.value(), 1.0 / 5);   // T4 of the 5 at the start
  EXPECT_DOUBLE_EQ(jan.gross_revenue_churn.value(), 0.06);      // 3000 / 50000
  EXPECT_DOUBLE_EQ(jan.net_revenue_churn.value(), 0.06);        // (3000 + 0 - 0 - 0) / 50000
  EXPECT_DOUBLE_EQ(jan.quick_ratio.value(), 7000.0 / 3000);     // (7000 + 0 + 0) / (3000 + 0)
  EXPECT_DOUBLE_EQ(jan.net_revenue_retention.value(), 0.94);    // the five at the start end at 47000 of 50000
  EXPECT_DOUBLE_EQ(jan.gross_revenue_retention.value(), 0.94);  // none of them grew

  // February. Start 54000 (T1, T2, T3, T5, T9). T2 +3000; T8 new at 9000 (Feb 1); T6 new at 4000 (Feb 15, its
  // first paid day). End 54000 + 3000 + 9000 + 4000 = 70000, 7 customers.
  const SaasPeriod& feb = usd.periods[1];
  EXPECT_EQ(feb.mrr_start, 54000);
  EXPECT_EQ(feb.customers_start, 5);
  expect_movements(feb.movements, 13000, 3000, 0, 0, 0, 2, 0, 0);
  EXPECT_EQ(feb.mrr_end, 70000);
  EXPECT_EQ(feb.customers_end, 7);
  EXPECT_EQ(feb.arpu, 10000);  // 70000 / 7
  EXPECT_DOUBLE_EQ(feb.customer_churn_rate.value(), 0.0);
  EXPECT_DOUBLE_EQ(feb.gross_revenue_churn.value(), 0.0);
  EXPECT_DOUBLE_EQ(feb.net_revenue_churn.value(), -3000.0 / 54000);  // expansion outweighs losses
  EXPECT_FALSE(feb.quick_ratio.has_value()) << "no MRR lost: the ratio is undefined";
  EXPECT_DOUBLE_EQ(feb.net_revenue_retention.value(), 57000.0 / 54000);  // T2 at 8000 instead of 5000
  EXPECT_DOUBLE_EQ(feb.gross_revenue_retention.value(), 1.0);            // T2 capped at its 5000

  // March. Start 70000, 7. T3 -5000; T7 back at 6500 (it paid in 2025: reactivation); T10 new at 3000 (its two
  // changes fall on one day: the day's end counts). End 70000 - 5000 + 6500 + 3000 = 74500, 9 customers.
  const SaasPeriod& mar = usd.periods[2];
  EXPECT_EQ(mar.mrr_start, 70000);
  EXPECT_EQ(mar.customers_start, 7);
  expect_movements(mar.movements, 3000, 0, 5000, 0, 6500, 1, 0, 1);
  EXPECT_EQ(mar.mrr_end, 74500);
  EXPECT_EQ(mar.customers_end, 9);
  EXPECT_EQ(mar.arr, 894000);
  EXPECT_EQ(mar.arpu, 8278);  // 74500 / 9 = 8277.78, rounded
  EXPECT_DOUBLE_EQ(mar.gross_revenue_churn.value(), 5000.0 / 70000);
  EXPECT_DOUBLE_EQ(mar.net_revenue_churn.value(), -1500.0 / 70000);  // (5000 - 6500) / 70000
  EXPECT_DOUBLE_EQ(mar.quick_ratio.value(), 1.9);                    // (3000 + 0 + 6500) / 5000
  EXPECT_DOUBLE_EQ(mar.net_revenue_retention.value(), 65000.0 / 70000);

  // April. Start 74500, 9. T9 pauses on Apr 1 (churn 12000) and resumes on Apr 20 (reactivation 12000); T8
  // cancels (churn 9000); T12 is new at 1000 on the 30th. End 74500 - 21000 + 12000 + 1000 = 66500, 9 customers.
  const SaasPeriod& apr = usd.periods[3];
  EXPECT_EQ(apr.mrr_start, 74500);
  EXPECT_EQ(apr.customers_start, 9);
  expect_movements(apr.movements, 1000, 0, 0, 21000, 12000, 1, 2, 1);
  EXPECT_EQ(apr.mrr_end, 66500);
  EXPECT_EQ(apr.customers_end, 9);
  EXPECT_EQ(apr.arpu, 7389);  // 66500 / 9 = 7388.89
  EXPECT_DOUBLE_EQ(apr.customer_churn_rate.value(), 2.0 / 9);
  EXPECT_DOUBLE_EQ(apr.gross_revenue_churn.value(), 21000.0 / 74500);
  EXPECT_DOUBLE_EQ(apr.net_revenue_churn.value(), 9000.0 / 74500);
  EXPECT_DOUBLE_EQ(apr.quick_ratio.value(), 13000.0 / 21000);
  // The nine at the start end at 65500: T8's 9000 is gone, T9 is back at what it paid.
  EXPECT_DOUBLE_EQ(apr.net_revenue_retention.value(), 65500.0 / 74500);
  EXPECT_DOUBLE_EQ(apr.gross_revenue_retention.value(), 65500.0 / 74500);

  for (std::size_t i = 0; i < usd.periods.size(); ++i) {
    const SaasPeriod& p = usd.periods[i];
    EXPECT_EQ(p.mrr_end, p.mrr_start + p.movements.net()) << "period " << i;
    if (i > 0) {
      EXPECT_EQ(p.mrr_start, usd.periods[i - 1].mrr_end) << "period " << i;
    }
  }
}

TEST(SaasMetrics, TheHandBuiltLedgerOverTheWholeRange) {
  const auto ledger = fixture();
  auto m = saas_metrics(ledger, {}, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m) << m.error().message;
  const CurrencyMetrics& usd = currency(*m, "USD");
  const SaasPeriod& r = usd.range;
  // Start 50000 (5), end 66500 (9). New 7000 + 13000 + 3000 + 1000 = 24000 (5 customers); expansion 3000;
  // contraction 5000; churn 3000 + 21000 = 24000 (T4, T8, T9); reactivation 6500 + 12000 = 18500 (T7, T9).
  EXPECT_EQ(r.mrr_start, 50000);
  EXPECT_EQ(r.customers_start, 5);
  expect_movements(r.movements, 24000, 3000, 5000, 24000, 18500, 5, 3, 2);
  EXPECT_EQ(r.mrr_end, 66500);
  EXPECT_EQ(r.customers_end, 9);
  EXPECT_EQ(r.arr, 798000);
  EXPECT_EQ(r.arpu, 7389);
  EXPECT_DOUBLE_EQ(r.customer_churn_rate.value(), 3.0 / 5);
  EXPECT_DOUBLE_EQ(r.gross_revenue_churn.value(), 29000.0 / 50000);  // (24000 + 5000) / 50000
  EXPECT_DOUBLE_EQ(r.net_revenue_churn.value(), 0.15);               // (24000 + 5000 - 3000 - 18500) / 50000
  EXPECT_DOUBLE_EQ(r.quick_ratio.value(), 45500.0 / 29000);          // (24000 + 3000 + 18500) / 29000
  // T1, T2, T3, T4, T9 paid 50000 at the start; at the end 10000 + 8000 + 15000 + 0 + 12000 = 45000 (NRR 0.9);
  // capped at what each paid at the start: 10000 + 5000 + 15000 + 0 + 12000 = 42000 (GRR 0.84).
  EXPECT_DOUBLE_EQ(r.net_revenue_retention.value(), 0.9);
  EXPECT_DOUBLE_EQ(r.gross_revenue_retention.value(), 0.84);

  // Monthly churn: 1 + 0 + 0 + 2 customers lost over 5 + 5 + 7 + 9 started with = 3 / 26. LTV = ARPU 7389 / (3/26)
  // = 7389 x 26 / 3 = 64038 exactly.
  EXPECT_DOUBLE_EQ(usd.monthly_churn_rate.value(), 3.0 / 26);
  EXPECT_EQ(usd.ltv, 64038);

  // Paying subscriptions at the end, by plan tier: starter T1 10000, T5 7000, T6 4000, T10 3000, T12 1000;
  // professional T2 8000, T7's second subscription 6500; business T3 15000; enterprise T9 12000.
  ASSERT_EQ(usd.tiers.size(), 4u);
  EXPECT_EQ(usd.tiers.at("starter").subscriptions, 5);
  EXPECT_EQ(usd.tiers.at("starter").mrr, 25000);
  EXPECT_EQ(usd.tiers.at("professional").subscriptions, 2);
  EXPECT_EQ(usd.tiers.at("professional").mrr, 14500);
  EXPECT_EQ(usd.tiers.at("business").mrr, 15000);
  EXPECT_EQ(usd.tiers.at("enterprise").mrr, 12000);

  // EUR is apart: T11's 10000 all along, nobody lost, so no LTV (a lifetime without churn is unbounded).
  const CurrencyMetrics& eur = currency(*m, "EUR");
  EXPECT_EQ(eur.range.mrr_start, 10000);
  EXPECT_EQ(eur.range.mrr_end, 10000);
  EXPECT_EQ(eur.range.arpu, 10000);
  expect_movements(eur.range.movements, 0, 0, 0, 0, 0, 0, 0, 0);
  EXPECT_DOUBLE_EQ(eur.monthly_churn_rate.value(), 0.0);
  EXPECT_FALSE(eur.ltv.has_value());
  EXPECT_DOUBLE_EQ(eur.range.net_revenue_retention.value(), 1.0);
}

TEST(SaasMetrics, CohortsBySignUpMonth) {
  const auto ledger = fixture();
  auto m = saas_metrics(ledger, {}, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m) << m.error().message;
  const CurrencyMetrics& usd = currency(*m, "USD");
  // A cohort is the customers whose first paid day falls in the month; T7 first paid in 2025, so it is in none.
  // 2026-01: T5 (7000). 2026-02: T8 (Feb 1) and T6 (Feb 15, after its trial): 13000. 2026-03: T10 (3000).
  // 2026-04: T12 (1000).
  ASSERT_EQ(usd.cohorts.size(), 4u);
  const Cohort& jan = usd.cohorts[0];
  EXPECT_EQ(jan.month, "2026-01");
  EXPECT_EQ(jan.customers, 1);
  EXPECT_EQ(jan.mrr, 7000);
  ASSERT_EQ(jan.months.size(), 4u);  // January to April
  EXPECT_EQ(jan.months[3].customers, 1);
  EXPECT_DOUBLE_EQ(jan.months[3].net_revenue_retention.value(), 1.0);

  const Cohort& feb = usd.cohorts[1];
  EXPECT_EQ(feb.month, "2026-02");
  EXPECT_EQ(feb.customers, 2);
  EXPECT_EQ(feb.mrr, 13000);
  ASSERT_EQ(feb.months.size(), 3u);
  EXPECT_EQ(feb.months[1].customers, 2);  // March: both still paying
  EXPECT_EQ(feb.months[1].mrr, 13000);
  // April: T8 left, T6 pays 4000: half the logos, 4000 / 13000 of the revenue.
  EXPECT_EQ(feb.months[2].offset, 2);
  EXPECT_EQ(feb.months[2].customers, 1);
  EXPECT_EQ(feb.months[2].mrr, 4000);
  EXPECT_DOUBLE_EQ(feb.months[2].logo_retention, 0.5);
  EXPECT_DOUBLE_EQ(feb.months[2].net_revenue_retention.value(), 4000.0 / 13000);
  EXPECT_DOUBLE_EQ(feb.months[2].gross_revenue_retention.value(), 4000.0 / 13000);

  EXPECT_EQ(usd.cohorts[2].month, "2026-03");
  EXPECT_EQ(usd.cohorts[2].mrr, 3000);
  EXPECT_EQ(usd.cohorts[3].month, "2026-04");
  EXPECT_EQ(usd.cohorts[3].customers, 1);
  EXPECT_EQ(usd.cohorts[3].mrr, 1000);
  ASSERT_EQ(usd.cohorts[3].months.size(), 1u);
}

TEST(SaasMetrics, DaysAndIsoWeeksAddUpToTheRange) {
  const auto ledger = fixture();
  SaasQuery q = months_of_2026_jan_to_apr();
  q.granularity = Granularity::day;
  auto days = saas_metrics(ledger, {}, {}, q);
  ASSERT_TRUE(days) << days.error().message;
  const CurrencyMetrics& usd = currency(*days, "USD");
  ASSERT_EQ(usd.periods.size(), 120u);  // 31 + 28 + 31 + 30
  Movements sum;
  for (const SaasPeriod& p : usd.periods) {
    sum.new_mrr += p.movements.new_mrr;
    sum.churn += p.movements.churn;
    sum.reactivation += p.movements.reactivation;
  }
  EXPECT_EQ(sum.new_mrr, 24000);
  EXPECT_EQ(sum.churn, 24000);
  EXPECT_EQ(sum.reactivation, 18500);
  // April 1 (index 90): T9's pause is that day's churn.
  EXPECT_EQ(format_rfc3339(usd.periods[90].start), "2026-04-01T00:00:00.000Z");
  EXPECT_EQ(usd.periods[90].movements.churn, 12000);
  EXPECT_EQ(usd.periods[90].mrr_end, 62500);  // 74500 - 12000

  q.granularity = Granularity::week;
  auto weeks = saas_metrics(ledger, {}, {}, q);
  ASSERT_TRUE(weeks) << weeks.error().message;
  const CurrencyMetrics& w = currency(*weeks, "USD");
  // 2026-01-01 is a Thursday: the first ISO week is clipped to Jan 1-4, the next starts on Monday Jan 5.
  EXPECT_EQ(format_rfc3339(w.periods.front().start), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(w.periods.front().end), "2026-01-05T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(w.periods.back().end), "2026-05-01T00:00:00.000Z");
  EXPECT_EQ(w.periods[1].movements.new_mrr, 7000) << "T5 on Monday Jan 5";
  EXPECT_EQ(w.periods.back().mrr_end, 66500);
}

TEST(SaasMetrics, OneCurrencyAndAnyOrderOfTheLedger) {
  auto ledger = fixture();
  std::mt19937 rng(7);
  std::shuffle(ledger.begin(), ledger.end(), rng);
  SaasQuery q = months_of_2026_jan_to_apr();
  auto shuffled = saas_metrics(ledger, {}, {}, q);
  ASSERT_TRUE(shuffled);
  EXPECT_EQ(currency(*shuffled, "USD").range.mrr_end, 66500);
  EXPECT_EQ(currency(*shuffled, "USD").ltv, 64038);
  q.currency = "EUR";
  auto eur = saas_metrics(ledger, {}, {}, q);
  ASSERT_TRUE(eur);
  ASSERT_EQ(eur->currencies.size(), 1u);
  EXPECT_EQ(eur->currencies[0].currency, "EUR");
  q.currency = "GBP";
  auto none = saas_metrics(ledger, {}, {}, q);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->currencies.empty());
}

TEST(SaasMetrics, RangesAreWholeDaysForwardAndBounded) {
  const std::vector<MrrChange> none;
  SaasQuery q = months_of_2026_jan_to_apr();
  q.to = instant("2026-05-01T12:00:00Z");
  EXPECT_EQ(saas_metrics(none, {}, {}, q).error().code, Errc::invalid_argument);
  q.to = q.from;
  EXPECT_EQ(saas_metrics(none, {}, {}, q).error().code, Errc::invalid_argument);
  q.to = q.from + std::chrono::days(k_max_saas_days + 1);
  EXPECT_EQ(saas_metrics(none, {}, {}, q).error().code, Errc::invalid_argument);
  q.to = q.from + std::chrono::days(k_max_saas_days);
  EXPECT_TRUE(saas_metrics(none, {}, {}, q));
}

// CAC (the seed: sales and marketing spend / new customers) and its payback (spend / new MRR, in months), spend
// dated on the first day of its month.
TEST(SaasMetrics, CacFromTheRecordedSpend) {
  const auto ledger = fixture();
  const std::vector<Spend> spend = {
      {.month = "2025-12", .channel = "ads", .currency = "USD", .amount = 99000},  // before the range
      {.month = "2026-01", .channel = "ads", .currency = "USD", .amount = 35000},
      {.month = "2026-01", .channel = "seo", .currency = "USD", .amount = 7000},
      {.month = "2026-02", .channel = "ads", .currency = "USD", .amount = 26000},
      {.month = "2026-03", .channel = "ads", .currency = "EUR", .amount = 5000},
  };
  auto m = saas_metrics(ledger, spend, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m) << m.error().message;
  const CurrencyMetrics& usd = currency(*m, "USD");
  // January: 42000 for one new customer (T5 at 7000): CAC 42000, paid back in 42000 / 7000 = 6 months.
  EXPECT_EQ(usd.periods[0].spend, 42000);
  EXPECT_EQ(usd.periods[0].cac, 42000);
  EXPECT_DOUBLE_EQ(usd.periods[0].cac_payback_months.value(), 6.0);
  // February: 26000 for T8 and T6 (13000 of new MRR): CAC 13000, payback 2 months.
  EXPECT_EQ(usd.periods[1].cac, 13000);
  EXPECT_DOUBLE_EQ(usd.periods[1].cac_payback_months.value(), 2.0);
  // March: no spend, one new customer: CAC 0.
  EXPECT_EQ(usd.periods[2].cac, 0);
  // The range: 68000 for 5 new customers (24000 of new MRR): CAC 13600, payback 68000 / 24000 months.
  EXPECT_EQ(usd.range.spend, 68000);
  EXPECT_EQ(usd.range.cac, 13600);
  EXPECT_DOUBLE_EQ(usd.range.cac_payback_months.value(), 68000.0 / 24000);
  // EUR spent 5000 in March and won nobody: no CAC, no payback.
  const CurrencyMetrics& eur = currency(*m, "EUR");
  EXPECT_EQ(eur.range.spend, 5000);
  EXPECT_FALSE(eur.range.cac.has_value());
  EXPECT_FALSE(eur.range.cac_payback_months.has_value());
  // Spend in a currency nobody pays in still shows.
  const std::vector<Spend> gbp = {{.month = "2026-02", .channel = "ads", .currency = "GBP", .amount = 100}};
  auto only = saas_metrics(ledger, gbp, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(only);
  EXPECT_EQ(currency(*only, "GBP").range.spend, 100);
  EXPECT_EQ(spend_months(months_of_2026_jan_to_apr()), (std::pair<std::string, std::string>{"2026-01", "2026-04"}));
}

// Metered revenue stays out of MRR and is summed apart, by the day its invoice was finalized.
TEST(SaasMetrics, MeteredRevenueIsReportedApartFromMrr) {
  const auto ledger = fixture();
  const std::vector<DailyAmount> metered = {
      {.day = instant("2025-12-31T00:00:00Z"), .currency = "USD", .amount = 999},  // before the range
      {.day = instant("2026-01-01T00:00:00Z"), .currency = "USD", .amount = 1250},
      {.day = instant("2026-01-31T00:00:00Z"), .currency = "USD", .amount = 50},
      {.day = instant("2026-03-15T00:00:00Z"), .currency = "USD", .amount = 700},
      {.day = instant("2026-03-15T00:00:00Z"), .currency = "EUR", .amount = 30},
      {.day = instant("2026-05-01T00:00:00Z"), .currency = "USD", .amount = 999},  // after it
      {.day = instant("2026-02-10T00:00:00Z"), .currency = "JPY", .amount = 400},  // a currency with no MRR
  };
  auto m = saas_metrics(ledger, {}, metered, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m);
  auto plain = saas_metrics(ledger, {}, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(plain);
  const CurrencyMetrics& usd = currency(*m, "USD");
  EXPECT_EQ(usd.periods[0].metered_revenue, 1300);
  EXPECT_EQ(usd.periods[1].metered_revenue, 0);
  EXPECT_EQ(usd.periods[2].metered_revenue, 700);
  EXPECT_EQ(usd.range.metered_revenue, 2000);
  // MRR is untouched by it.
  EXPECT_EQ(usd.range.mrr_end, currency(*plain, "USD").range.mrr_end);
  EXPECT_EQ(usd.range.movements.net(), currency(*plain, "USD").range.movements.net());
  EXPECT_EQ(currency(*m, "EUR").range.metered_revenue, 30);
  EXPECT_EQ(currency(*m, "JPY").range.metered_revenue, 400);
  EXPECT_EQ(currency(*m, "JPY").range.mrr_end, 0);
  SaasQuery only_eur = months_of_2026_jan_to_apr();
  only_eur.currency = "EUR";
  auto eur = saas_metrics(ledger, {}, metered, only_eur);
  ASSERT_TRUE(eur);
  ASSERT_EQ(eur->currencies.size(), 1u);
  EXPECT_EQ(eur->currencies[0].range.metered_revenue, 30);
}

TEST(SaasMetrics, MovementsCsvHasOneRowPerCurrencyAndPeriod) {
  const auto ledger = fixture();
  auto m = saas_metrics(ledger, {}, {}, months_of_2026_jan_to_apr());
  ASSERT_TRUE(m);
  const std::string csv = movements_csv(*m);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 4 + 4);
  EXPECT_NE(csv.find("USD,2026-04-01,2026-05-01,74500,1000,0,0,21000,12000,66500,9,1,2,1,9\r\n"), std::string::npos)
      << csv;
  EXPECT_NE(csv.find("EUR,2026-01-01,2026-02-01,10000,0,0,0,0,0,10000,1,0,0,0,1\r\n"), std::string::npos) << csv;
}

}  // namespace
}  // namespace atrium::analytics
