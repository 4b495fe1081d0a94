// The worked examples of docs/billing.md ("Money and rounding", "Changing plan or seats", "Coupons"), computed by
// the production functions: if one of these changes, the contract the page states has changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

#include "billing/calendar.hpp"
#include "billing/invoice_math.hpp"
#include "billing/money.hpp"
#include "billing/proration.hpp"
#include "core/clock.hpp"

namespace atrium::billing {
namespace {

Instant at(const char* rfc3339) { return std::chrono::floor<std::chrono::seconds>(*parse_rfc3339(rfc3339)); }

std::int64_t part(std::int64_t amount, Instant start, Instant end, Instant when) {
  auto r = prorate_remaining(amount, start, end, when, ProrationMode::daily);
  EXPECT_TRUE(r) << r.error().message;
  return r.value_or(-1);
}

Proration change(std::int64_t old_amount, std::int64_t new_amount, Instant start, Instant end, Instant when) {
  auto r = prorate(old_amount, new_amount, start, end, when, ProrationMode::daily);
  EXPECT_TRUE(r) << r.error().message;
  return r.value_or(Proration{});
}

Totals totals(std::vector<std::int64_t> amounts, std::optional<Discount> discount, std::optional<TaxRate> tax) {
  std::vector<Line> lines;
  for (const auto a : amounts) {
    Line l;
    l.amount = a;
    l.unit_amount = a;
    lines.push_back(l);
  }
  auto t = compute_totals(lines, discount, tax, 0);
  EXPECT_TRUE(t) << t.error().message;
  return t.value_or(Totals{});
}

// 99.90 with 2 extra seats at 5.00, 5 of the 31 days of Dec 15 - Jan 15: each line rounded on its own.
TEST(BillingDocsExamples, AShortFirstPeriodRoundsEachLine) {
  const Instant start = at("2026-12-15T00:00:00Z"), end = at("2027-01-15T00:00:00Z"), when = at("2027-01-10T00:00:00Z");
  EXPECT_EQ(part(9990, start, end, when), 1611);
  EXPECT_EQ(part(1000, start, end, when), 161);
  EXPECT_EQ(part(10990, start, end, when), 1773) << "what one rounding of the sum would give";
}

TEST(BillingDocsExamples, CreditAndChargeAreEachRoundedOnce) {
  const Proration p =
      change(1000, 2000, at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z"), at("2026-04-30T00:00:00Z"));
  EXPECT_EQ(p.remaining, 1);
  EXPECT_EQ(p.total, 30);
  EXPECT_EQ(p.credit, 33);
  EXPECT_EQ(p.charge, 67);
  EXPECT_EQ(p.net, 34);
  // 100.00 -> 200.00 on April 16.
  const Proration half =
      change(10000, 20000, at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z"), at("2026-04-16T00:00:00Z"));
  EXPECT_EQ(half.net, 5000);
}

TEST(BillingDocsExamples, NetOfTheCouponRoundsTheDiscountFirst) {
  EXPECT_EQ(9999 - apply_bps(9999, 3333).value(), 6666);
  EXPECT_EQ(14999 - apply_bps(14999, 3333).value(), 10000);
  // 15 of 31 days left.
  const Proration p =
      change(6666, 10000, at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z"), at("2027-01-17T00:00:00Z"));
  EXPECT_EQ(p.remaining, 15);
  EXPECT_EQ(p.credit, 3225);
  EXPECT_EQ(p.charge, 4839);
  EXPECT_EQ(p.net, 1614);
  EXPECT_EQ(round_div(static_cast<__int128>(9999) * 6667 * 15, 10000 * 31), 3226) << "one rounding of the whole";
}

TEST(BillingDocsExamples, TheDiscountComesBeforeTheTax) {
  const Totals exclusive = totals({10000}, Discount{2000, 0}, TaxRate{1900, false});
  EXPECT_EQ(exclusive.discount, 2000);
  EXPECT_EQ(exclusive.tax, 1520);
  EXPECT_EQ(exclusive.total, 9520);
  const Totals inclusive = totals({10000}, Discount{2000, 0}, TaxRate{2000, true});
  EXPECT_EQ(inclusive.tax, 1333);
  EXPECT_EQ(inclusive.total, 8000);
}

TEST(BillingDocsExamples, TaxOnANetCreditIsSigned) {
  const Totals exclusive = totals({-4839, 968}, std::nullopt, TaxRate{1900, false});
  EXPECT_EQ(exclusive.subtotal, -3871);
  EXPECT_EQ(exclusive.tax, -735);
  EXPECT_EQ(exclusive.total, -4606);
  EXPECT_EQ(exclusive.credit_created, 4606);
  EXPECT_EQ(exclusive.amount_due, 0);
  const Totals inclusive = totals({-4839, 968}, std::nullopt, TaxRate{2000, true});
  EXPECT_EQ(inclusive.tax, -645);
  EXPECT_EQ(inclusive.total, -3871);
  EXPECT_EQ(inclusive.credit_created, 3871);
}

// 0.01 -> 0.02 a month with 5 of 31 days left: nothing to invoice.
TEST(BillingDocsExamples, CreditAndChargeCanBothRoundToZero) {
  const Proration p = change(1, 2, at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z"), at("2027-01-27T00:00:00Z"));
  EXPECT_EQ(p.remaining, 5);
  EXPECT_EQ(p.credit, 0);
  EXPECT_EQ(p.charge, 0);
}

// A 25% forever coupon, monthly 100.00 -> annual 1,000.00 with 16 of 31 days left.
TEST(BillingDocsExamples, AnIntervalChangeCarriesItsCouponAsALine) {
  const std::int64_t paid = 10000 - apply_bps(10000, 2500).value();
  EXPECT_EQ(paid, 7500);
  EXPECT_EQ(part(paid, at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z"), at("2027-01-16T00:00:00Z")), 3871);
  const std::int64_t discount_line = -apply_bps(100000, 2500).value();
  EXPECT_EQ(discount_line, -25000);
  EXPECT_EQ(totals({-3871, 100000, discount_line}, std::nullopt, std::nullopt).subtotal, 71129);
}

// Redeemed Jan 31 10:00 for 3 months: the limit is Apr 30 10:00, exactly the fourth monthly period's start, which
// is therefore not discounted (periods start strictly before the limit).
TEST(BillingDocsExamples, ARepeatingCouponsLimitIsOutside) {
  const Instant redeemed = at("2027-01-31T10:00:00Z");
  const Instant limit = add_months(redeemed, 3);
  EXPECT_EQ(limit, at("2027-04-30T10:00:00Z"));
  std::vector<Instant> starts;
  for (int n = 0; n < 4; ++n) starts.push_back(boundary(redeemed, Interval::monthly, n));
  EXPECT_EQ(starts, (std::vector<Instant>{redeemed, at("2027-02-28T10:00:00Z"), at("2027-03-31T10:00:00Z"), limit}));
  EXPECT_EQ(std::count_if(starts.begin(), starts.end(), [&](Instant s) { return s < limit; }), 3);
}

// The anchor-day change of "Changing plan or seats": 5 of 31 days invoiced (16.13); on Jan 12, 3 of 31 left.
TEST(BillingDocsExamples, AChangeInAShortFirstPeriodMeasuresTheFullPeriod) {
  const Instant start = at("2026-12-15T00:00:00Z"), end = at("2027-01-15T00:00:00Z");
  EXPECT_EQ(part(10000, start, end, at("2027-01-10T00:00:00Z")), 1613);
  const Proration p = change(10000, 2000, start, end, at("2027-01-12T00:00:00Z"));
  EXPECT_EQ(p.credit, 968);
  EXPECT_EQ(p.charge, 194);
  EXPECT_EQ(p.net, -774);
}

}  // namespace
}  // namespace atrium::billing
