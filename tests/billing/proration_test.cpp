#include "billing/proration.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "billing/calendar.hpp"

namespace atrium::billing {
namespace {

Instant utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

// A whole second drawn uniformly from [from, to].
Instant random_second(std::mt19937_64& rng, Instant from, Instant to) {
  return from_unix_seconds(std::uniform_int_distribution<std::int64_t>(unix_seconds(from), unix_seconds(to))(rng));
}

Proration must_prorate(std::int64_t old_amount, std::int64_t new_amount, Instant start, Instant end, Instant at,
                       ProrationMode mode) {
  const auto p = prorate(old_amount, new_amount, start, end, at, mode);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
  return p.value_or(Proration{});
}

// The proration rule written out independently of money.cpp: x = n / d (d > 0) rounded half away from zero as
// floor((2|n| + d) / 2d) with the sign of n.
std::int64_t round_half_away(__int128 n, __int128 d) {
  const __int128 magnitude = n < 0 ? -n : n;
  const auto rounded = static_cast<std::int64_t>((2 * magnitude + d) / (2 * d));
  return n < 0 ? -rounded : rounded;
}

// R and D exactly as proration.hpp documents them.
struct ReferenceFraction {
  std::int64_t remaining;
  std::int64_t total;
};
ReferenceFraction reference_fraction(Instant start, Instant end, Instant at, ProrationMode mode) {
  const std::int64_t s = unix_seconds(start);
  const std::int64_t e = unix_seconds(end);
  const std::int64_t a = unix_seconds(at);
  if (mode == ProrationMode::per_second) return {e - a, e - s};
  return {(e - a) / 86400, (e - s) / 86400};
}

// ---- The seed's daily rule ------------------------------------------------------------------------------------

const Instant kApril = utc(2026, 4, 1);
const Instant kMay = utc(2026, 5, 1);

TEST(DailyProration, SeedExampleUpgradeOnAprilSixteenthAtNoon) {
  // $100 -> $200 monthly, period 2026-04-01..2026-05-01, change 2026-04-16T12:00Z. The seed's calculateProration:
  // remainingDays = differenceInDays(periodEnd, changeDate) = 14 (14.5 days, truncated) of totalDays = 30. The half
  // day left of April 16 is not a remaining day.
  const Proration p = must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 16, 12), ProrationMode::daily);
  EXPECT_EQ(p.total, 30);
  EXPECT_EQ(p.remaining, 14);
  EXPECT_EQ(p.credit, 4667);  // 4666.67
  EXPECT_EQ(p.charge, 9333);  // 9333.33
  EXPECT_EQ(p.net, 4666);
}

TEST(DailyProration, ChangeAtThePeriodStartIsTheWholePeriod) {
  const Proration p = must_prorate(10000, 20000, kApril, kMay, kApril, ProrationMode::daily);
  EXPECT_EQ(p.remaining, 30);
  EXPECT_EQ(p.credit, 10000);
  EXPECT_EQ(p.charge, 20000);
  EXPECT_EQ(p.net, 10000);
  // A second into the period, 29 whole days and 86,399 seconds remain: 29 days.
  EXPECT_EQ(must_prorate(10000, 20000, kApril, kMay, kApril + std::chrono::seconds(1), ProrationMode::daily).remaining,
            29);
  EXPECT_EQ(must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 1, 23, 59, 59), ProrationMode::daily).remaining, 29);
}

TEST(DailyProration, TheLastDayCountsOnlyWhenWhole) {
  const Proration whole = must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 30), ProrationMode::daily);
  EXPECT_EQ(whole.remaining, 1);
  EXPECT_EQ(whole.credit, 333);  // 333.33
  EXPECT_EQ(whole.charge, 667);  // 666.67
  EXPECT_EQ(whole.net, 334);
  for (const Instant at : {utc(2026, 4, 30, 0, 0, 1), utc(2026, 4, 30, 12), kMay - std::chrono::seconds(1)}) {
    const Proration p = must_prorate(10000, 20000, kApril, kMay, at, ProrationMode::daily);
    EXPECT_EQ(p.remaining, 0);
    EXPECT_EQ(p.credit, 0);
    EXPECT_EQ(p.charge, 0);
    EXPECT_EQ(p.net, 0);
  }
}

TEST(DailyProration, TwentyEightDayFebruary) {
  // 2027-02-01..2027-03-01, change 2027-02-20T15:00: 8 days 9 hours left, R = 8 of 28.
  const Proration p =
      must_prorate(10000, 20000, utc(2027, 2, 1), utc(2027, 3, 1), utc(2027, 2, 20, 15), ProrationMode::daily);
  EXPECT_EQ(p.total, 28);
  EXPECT_EQ(p.remaining, 8);
  EXPECT_EQ(p.credit, 2857);  // 2857.14
  EXPECT_EQ(p.charge, 5714);  // 5714.29
  EXPECT_EQ(p.net, 2857);
}

TEST(DailyProration, TwentyNineDayLeapFebruary) {
  // 2028-02-01..2028-03-01, change 2028-02-10T08:00: 19 days 16 hours left, R = 19 of 29.
  const Proration p =
      must_prorate(10000, 20000, utc(2028, 2, 1), utc(2028, 3, 1), utc(2028, 2, 10, 8), ProrationMode::daily);
  EXPECT_EQ(p.total, 29);
  EXPECT_EQ(p.remaining, 19);
  EXPECT_EQ(p.credit, 6552);   // 6551.72
  EXPECT_EQ(p.charge, 13103);  // 13103.45
  EXPECT_EQ(p.net, 6551);
}

TEST(DailyProration, ThirtyDayApril) {
  // 2026-04-11: 10 days used, R = 20 of 30.
  const Proration p = must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 11), ProrationMode::daily);
  EXPECT_EQ(p.remaining, 20);
  EXPECT_EQ(p.credit, 6667);   // 6666.67
  EXPECT_EQ(p.charge, 13333);  // 13333.33
  EXPECT_EQ(p.net, 6666);
}

TEST(DailyProration, ThirtyOneDayJanuary) {
  // 2026-01-01..2026-02-01, change 2026-01-11T06:00: 20 days 18 hours left, R = 20 of 31.
  const Proration p =
      must_prorate(10000, 20000, utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 1, 11, 6), ProrationMode::daily);
  EXPECT_EQ(p.total, 31);
  EXPECT_EQ(p.remaining, 20);
  EXPECT_EQ(p.credit, 6452);   // 6451.61
  EXPECT_EQ(p.charge, 12903);  // 12903.23
  EXPECT_EQ(p.net, 6451);
}

TEST(DailyProration, AnnualPeriodInALeapYear) {
  // $1,200 -> $2,400 a year, 2028-01-01..2029-01-01 (366 days), change 2028-07-01: 182 days used, R = 184.
  const Proration p =
      must_prorate(120000, 240000, utc(2028, 1, 1), utc(2029, 1, 1), utc(2028, 7, 1), ProrationMode::daily);
  EXPECT_EQ(p.total, 366);
  EXPECT_EQ(p.remaining, 184);
  EXPECT_EQ(p.credit, 60328);   // 60327.87
  EXPECT_EQ(p.charge, 120656);  // 120655.74
  EXPECT_EQ(p.net, 60328);
}

TEST(DailyProration, AnnualToMonthlyCreditsTheUnusedYear) {
  // $1,200/year (2026-01-01..2027-01-01, 365 days) switched on 2026-03-15 to $120/month. The interval changes, so
  // the monthly price starts a period of its own at the change ([Mar 15, Apr 15), billed in full); the annual
  // price is credited for R = 291 days (291 days 15 hours are left).
  const Instant at = utc(2026, 3, 15, 9);
  const auto credit = prorate_remaining(120000, utc(2026, 1, 1), utc(2027, 1, 1), at, ProrationMode::daily);
  ASSERT_TRUE(credit.has_value());
  EXPECT_EQ(*credit, 95671);  // 120000 * 291 / 365 = 95671.23
  const Proration p = must_prorate(120000, 0, utc(2026, 1, 1), utc(2027, 1, 1), at, ProrationMode::daily);
  EXPECT_EQ(p.credit, 95671);
  EXPECT_EQ(p.charge, 0);
  EXPECT_EQ(p.net, -95671);
  const std::int64_t first_monthly_invoice = 12000 - *credit;
  EXPECT_EQ(first_monthly_invoice, -83671);  // the customer keeps $836.71 of credit
  EXPECT_EQ(add_months(at, 1), utc(2026, 4, 15, 9));
}

TEST(DailyProration, SeatChange) {
  // Base $100 plus $15 a seat: 3 seats -> 5 seats on 2026-04-11 (R = 20 of 30).
  const std::int64_t old_amount = 10000 + 3 * 1500;
  const std::int64_t new_amount = 10000 + 5 * 1500;
  const Proration p = must_prorate(old_amount, new_amount, kApril, kMay, utc(2026, 4, 11), ProrationMode::daily);
  EXPECT_EQ(p.credit, 9667);   // 14500 * 20 / 30 = 9666.67
  EXPECT_EQ(p.charge, 11667);  // 17500 * 20 / 30 = 11666.67
  EXPECT_EQ(p.net, 2000);      // two seats for two thirds of the month
}

TEST(DailyProration, DowngradeCreditsTheDifference) {
  // R = 14 of 30 (14 days 14 hours left).
  const Proration p = must_prorate(20000, 10000, kApril, kMay, utc(2026, 4, 16, 10), ProrationMode::daily);
  EXPECT_EQ(p.credit, 9333);  // 9333.33
  EXPECT_EQ(p.charge, 4667);  // 4666.67
  EXPECT_EQ(p.net, -4666);
}

TEST(DailyProration, ChainOfChangesInOnePeriod) {
  // A = $100 for the period, paid up front; A -> B ($200) on 2026-04-11 (R = 20); B -> C ($50) on 2026-04-21
  // (R = 10). By hand: step 1 credits 6666.67 -> 6667 and charges 13333.33 -> 13333 (net 6666); step 2 credits
  // 6666.67 -> 6667 and charges 1666.67 -> 1667 (net -5000). The customer pays 10000 + 6666 - 5000 = 11666 for
  // 10 days of each price (3333.33 + 6666.67 + 1666.67 = 11666.67 exactly).
  const Proration first = must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 11), ProrationMode::daily);
  const Proration second = must_prorate(20000, 5000, kApril, kMay, utc(2026, 4, 21), ProrationMode::daily);
  EXPECT_EQ(first.credit, 6667);
  EXPECT_EQ(first.charge, 13333);
  EXPECT_EQ(second.credit, 6667);
  EXPECT_EQ(second.charge, 1667);
  const std::int64_t charges = first.charge + second.charge;
  const std::int64_t credits = first.credit + second.credit;
  EXPECT_EQ(charges - credits, first.net + second.net);
  EXPECT_EQ(10000 + charges - credits, 11666);
}

TEST(DailyProration, RoundsHalvesAwayFromZero) {
  // 1 * 15 / 30 = 0.5 -> 1; -1 * 15 / 30 = -0.5 -> -1 (a negative price: a recurring discount line).
  const Proration p = must_prorate(-1, 1, kApril, kMay, utc(2026, 4, 16), ProrationMode::daily);
  EXPECT_EQ(p.credit, -1);
  EXPECT_EQ(p.charge, 1);
  EXPECT_EQ(p.net, 2);
}

TEST(DailyProration, PeriodNotAWholeNumberOfDays) {
  // 2.5 days: D = 2; a change in the final half day leaves R = 0 whole days.
  const Instant start = utc(2026, 4, 1);
  const Instant end = utc(2026, 4, 3, 12);
  EXPECT_EQ(must_prorate(1000, 2000, start, end, utc(2026, 4, 1, 5), ProrationMode::daily).remaining, 2);
  const Proration late = must_prorate(1000, 2000, start, end, utc(2026, 4, 3, 6), ProrationMode::daily);
  EXPECT_EQ(late.remaining, 0);
  EXPECT_EQ(late.credit, 0);
  EXPECT_EQ(late.charge, 0);
}

// ---- Stripe's per-second rule ----------------------------------------------------------------------------------

TEST(PerSecondProration, StripeDocumentedExample) {
  // https://docs.stripe.com/billing/subscriptions/prorations ("How prorations work"): a customer upgrades from a
  // 10 USD monthly plan to a 20 USD one halfway through the billing period and is billed an additional 5 USD:
  // -5 USD unused time on the original plan (credit), +10 USD remaining time on the new plan. Stripe gives no dates;
  // "halfway" is the period's middle second here, in a 30-day and in a 31-day month.
  const Proration april = must_prorate(1000, 2000, kApril, kMay, utc(2026, 4, 16), ProrationMode::per_second);
  EXPECT_EQ(april.total, 30 * 86400);
  EXPECT_EQ(april.remaining, 15 * 86400);
  EXPECT_EQ(april.credit, 500);
  EXPECT_EQ(april.charge, 1000);
  EXPECT_EQ(april.net, 500);
  const Proration january =
      must_prorate(1000, 2000, utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 1, 16, 12), ProrationMode::per_second);
  EXPECT_EQ(january.remaining * 2, january.total);
  EXPECT_EQ(january.credit, 500);
  EXPECT_EQ(january.charge, 1000);
  EXPECT_EQ(january.net, 500);
}

TEST(PerSecondProration, SeedChangeTimeMeasuredToTheSecond) {
  // The seed's change (2026-04-16T10:00Z) under Stripe's rule: R = 14 days 14 hours = 1,260,000 s of 2,592,000 s.
  const Proration p = must_prorate(10000, 20000, kApril, kMay, utc(2026, 4, 16, 10), ProrationMode::per_second);
  EXPECT_EQ(p.remaining, 1260000);
  EXPECT_EQ(p.total, 2592000);
  EXPECT_EQ(p.credit, 4861);  // 4861.11
  EXPECT_EQ(p.charge, 9722);  // 9722.22
  EXPECT_EQ(p.net, 4861);
}

TEST(PerSecondProration, FirstAndLastSecond) {
  const Proration first = must_prorate(10000, 20000, kApril, kMay, kApril, ProrationMode::per_second);
  EXPECT_EQ(first.remaining, first.total);
  EXPECT_EQ(first.credit, 10000);
  EXPECT_EQ(first.charge, 20000);
  const Proration last =
      must_prorate(10000, 20000, kApril, kMay, kMay - std::chrono::seconds(1), ProrationMode::per_second);
  EXPECT_EQ(last.remaining, 1);
  EXPECT_EQ(last.credit, 0);
  EXPECT_EQ(last.charge, 0);
}

// ---- Errors and names ------------------------------------------------------------------------------------------

TEST(Proration, RejectsInstantsOutsideThePeriod) {
  for (const ProrationMode mode : {ProrationMode::daily, ProrationMode::per_second}) {
    EXPECT_FALSE(prorate(1, 2, kApril, kMay, kMay, mode).has_value());  // the end is not in [start, end)
    EXPECT_FALSE(prorate(1, 2, kApril, kMay, kApril - std::chrono::seconds(1), mode).has_value());
    EXPECT_FALSE(prorate(1, 2, kMay, kApril, kApril, mode).has_value());
    EXPECT_FALSE(prorate(1, 2, kApril, kApril, kApril, mode).has_value());
    EXPECT_FALSE(prorate_remaining(1, kApril, kMay, kMay, mode).has_value());
    const auto error = prorate(1, 2, kApril, kMay, kMay, mode);
    EXPECT_EQ(error.error().code, Errc::invalid_argument);
  }
}

TEST(Proration, DailyModeRejectsAPeriodShorterThanADay) {
  const auto short_period =
      prorate(1000, 2000, kApril, kApril + std::chrono::seconds(3600), kApril, ProrationMode::daily);
  ASSERT_FALSE(short_period.has_value());
  EXPECT_EQ(short_period.error().code, Errc::invalid_argument);
  EXPECT_TRUE(
      prorate(1000, 2000, kApril, kApril + std::chrono::seconds(3600), kApril, ProrationMode::per_second).has_value());
}

TEST(Proration, ExtremeAmountsDoNotOverflowSilently) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const Proration full = must_prorate(kMax, kMax, kApril, kMay, kApril, ProrationMode::per_second);
  EXPECT_EQ(full.credit, kMax);
  EXPECT_EQ(full.net, 0);
  EXPECT_FALSE(prorate(-kMax, kMax, kApril, kMay, kApril, ProrationMode::daily).has_value());  // net = 2 * kMax
}

TEST(Proration, ModeNamesRoundTrip) {
  EXPECT_EQ(proration_mode_name(ProrationMode::daily), "daily");
  EXPECT_EQ(proration_mode_name(ProrationMode::per_second), "per_second");
  EXPECT_EQ(parse_proration_mode("daily"), ProrationMode::daily);
  EXPECT_EQ(parse_proration_mode("per_second"), ProrationMode::per_second);
  EXPECT_EQ(parse_proration_mode("hourly"), std::nullopt);
}

// ---- Properties ------------------------------------------------------------------------------------------------

struct RandomPeriod {
  Instant start;
  Instant end;
};

RandomPeriod random_period(std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int64_t> anchor(unix_seconds(utc(2020, 1, 1)), unix_seconds(utc(2035, 1, 1)));
  std::uniform_int_distribution<int> interval(0, 2);
  const Interval i = std::array{Interval::monthly, Interval::quarterly, Interval::annual}[interval(rng)];
  const Instant start = from_unix_seconds(anchor(rng));
  return {start, boundary(start, i, 1)};
}

std::int64_t random_amount(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 9);
  switch (kind(rng)) {
    case 0: return std::uniform_int_distribution<std::int64_t>(-100000, 0)(rng);  // a negative price
    case 1: return std::uniform_int_distribution<std::int64_t>(0, 100)(rng);      // tiny: rounding dominates
    case 2: return std::uniform_int_distribution<std::int64_t>(0, 1'000'000'000'000)(rng);
    default: return std::uniform_int_distribution<std::int64_t>(0, 10'000'000)(rng);
  }
}

TEST(ProrationProperty, NetIsChargeMinusCreditAndMatchesTheDocumentedFormula) {
  const std::uint64_t seed = 0x5EED'0001;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    const RandomPeriod period = random_period(rng);
    const Instant at = random_second(rng, period.start, period.end - std::chrono::seconds(1));
    const ProrationMode mode = i % 2 == 0 ? ProrationMode::daily : ProrationMode::per_second;
    const std::int64_t old_amount = random_amount(rng);
    const std::int64_t new_amount = random_amount(rng);
    SCOPED_TRACE("iteration " + std::to_string(i));
    const Proration p = must_prorate(old_amount, new_amount, period.start, period.end, at, mode);
    const ReferenceFraction f = reference_fraction(period.start, period.end, at, mode);
    ASSERT_EQ(p.remaining, f.remaining);
    ASSERT_EQ(p.total, f.total);
    ASSERT_GE(p.remaining, 0);  // daily: 0 within the last 24 hours
    ASSERT_LE(p.remaining, p.total);
    ASSERT_EQ(p.credit, round_half_away(static_cast<__int128>(old_amount) * f.remaining, f.total));
    ASSERT_EQ(p.charge, round_half_away(static_cast<__int128>(new_amount) * f.remaining, f.total));
    ASSERT_EQ(p.net, p.charge - p.credit);
    if (old_amount >= 0) {
      ASSERT_GE(p.credit, 0);
      ASSERT_LE(p.credit, old_amount);
    }
    ASSERT_EQ(prorate_remaining(old_amount, period.start, period.end, at, mode), p.credit);
  }
}

TEST(ProrationProperty, ChainsOfChangesNeitherCreateNorLoseMoney) {
  // A random chain A0 -> A1 at t1 -> ... -> Ak at tk within one period. A0 was paid for the whole period up front;
  // each change credits the outgoing price and charges the incoming one for what remains. What the customer pays,
  // A0 + sum(charges) - sum(credits), must equal (1) the same total computed independently with the documented
  // per-change rounding, (2) A0 + the sum of each step's net, and (3) the exact time-weighted price within one
  // rounding (at most 1/2 unit) per credit or charge.
  const std::uint64_t seed = 0x5EED'0002;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 5000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const RandomPeriod period = random_period(rng);
    const ProrationMode mode = i % 2 == 0 ? ProrationMode::daily : ProrationMode::per_second;
    const int changes = std::uniform_int_distribution<int>(1, 6)(rng);
    std::vector<Instant> times;
    for (int c = 0; c < changes; ++c) {
      times.push_back(random_second(rng, period.start, period.end - std::chrono::seconds(1)));
    }
    std::sort(times.begin(), times.end());
    std::vector<std::int64_t> prices{random_amount(rng)};
    for (int c = 0; c < changes; ++c) prices.push_back(random_amount(rng));

    std::int64_t credits = 0;
    std::int64_t charges = 0;
    std::int64_t nets = 0;
    std::int64_t reference = prices[0];
    __int128 exact_numerator = 0;  // sum of price * time on that price, over D
    std::int64_t previous_remaining = 0;
    std::int64_t total = 0;
    for (int c = 0; c < changes; ++c) {
      const Proration p = must_prorate(prices[c], prices[c + 1], period.start, period.end, times[c], mode);
      credits += p.credit;
      charges += p.charge;
      nets += p.net;
      const ReferenceFraction f = reference_fraction(period.start, period.end, times[c], mode);
      reference += round_half_away(static_cast<__int128>(prices[c + 1]) * f.remaining, f.total) -
                   round_half_away(static_cast<__int128>(prices[c]) * f.remaining, f.total);
      const std::int64_t used_before = c == 0 ? f.total - f.remaining : previous_remaining - f.remaining;
      exact_numerator += static_cast<__int128>(prices[c]) * used_before;
      previous_remaining = f.remaining;
      total = f.total;
    }
    exact_numerator += static_cast<__int128>(prices[changes]) * previous_remaining;

    const std::int64_t paid = prices[0] + charges - credits;
    ASSERT_EQ(paid, reference);
    ASSERT_EQ(paid, prices[0] + nets);
    const __int128 drift = static_cast<__int128>(paid) * total - exact_numerator;  // (paid - exact) * D
    ASSERT_LE(drift < 0 ? -drift : drift, static_cast<__int128>(changes) * total);
  }
}

TEST(ProrationProperty, LaterChangesCreditLess) {
  const std::uint64_t seed = 0x5EED'0003;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 5000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const RandomPeriod period = random_period(rng);
    const ProrationMode mode = i % 2 == 0 ? ProrationMode::daily : ProrationMode::per_second;
    Instant a = random_second(rng, period.start, period.end - std::chrono::seconds(1));
    Instant b = random_second(rng, period.start, period.end - std::chrono::seconds(1));
    if (a > b) std::swap(a, b);
    const std::int64_t amount = std::uniform_int_distribution<std::int64_t>(0, 10'000'000)(rng);
    const auto earlier = prorate_remaining(amount, period.start, period.end, a, mode);
    const auto later = prorate_remaining(amount, period.start, period.end, b, mode);
    ASSERT_TRUE(earlier && later);
    ASSERT_GE(*earlier, *later);
  }
}

}  // namespace
}  // namespace atrium::billing
