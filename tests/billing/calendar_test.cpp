#include "billing/calendar.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace atrium::billing {
namespace {

// Reference conversions through libstdc++'s <chrono> calendar types, independent of calendar.cpp.
Instant utc_at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

// An instant given in Unix seconds.
Instant at_second(std::int64_t s) { return from_unix_seconds(s); }

// add_months computed with <chrono>: move the year_month, clamp the day to that month's last day.
Instant reference_add_months(Instant t, std::int64_t months) {
  using namespace std::chrono;
  const sys_days day_start = floor<days>(t);
  const year_month_day ymd{day_start};
  // Qualified: billing::year_month (a function) would hide the type.
  const std::chrono::year_month moved = std::chrono::year_month{ymd.year(), ymd.month()} + std::chrono::months{months};
  const unsigned last = static_cast<unsigned>(year_month_day_last{moved.year(), month_day_last{moved.month()}}.day());
  const unsigned clamped = std::min(static_cast<unsigned>(ymd.day()), last);
  return sys_days{moved / day{clamped}} + (t - day_start);
}

TEST(Calendar, KnownUnixTimes) {
  EXPECT_EQ(unix_seconds(utc_at(1970, 1, 1)), 0);
  EXPECT_EQ(unix_seconds(utc_at(2026, 4, 1)), 1775001600);
  EXPECT_EQ(unix_seconds(utc_at(2028, 2, 1)), 1832976000);
  // The helper and the implementation agree on a fixed point, so the tests below test add_months, not utc_at().
  EXPECT_EQ(add_months(at_second(1775001600), 1), at_second(1777593600));  // 2026-05-01
}

TEST(Calendar, IntervalNamesRoundTrip) {
  for (const Interval i : {Interval::monthly, Interval::quarterly, Interval::annual}) {
    EXPECT_EQ(parse_interval(interval_name(i)), i);
  }
  EXPECT_EQ(interval_name(Interval::annual), "annual");
  EXPECT_EQ(parse_interval("yearly"), std::nullopt);
  EXPECT_EQ(parse_interval("Monthly"), std::nullopt);
  EXPECT_EQ(parse_interval(""), std::nullopt);
  EXPECT_EQ(interval_months(Interval::monthly), 1);
  EXPECT_EQ(interval_months(Interval::quarterly), 3);
  EXPECT_EQ(interval_months(Interval::annual), 12);
}

TEST(Calendar, DaysInMonthIncludesLeapYears) {
  EXPECT_EQ(days_in_month(2026, 1), 31);
  EXPECT_EQ(days_in_month(2026, 2), 28);
  EXPECT_EQ(days_in_month(2028, 2), 29);
  EXPECT_EQ(days_in_month(1900, 2), 28);  // divisible by 100, not by 400
  EXPECT_EQ(days_in_month(2000, 2), 29);  // divisible by 400
  EXPECT_EQ(days_in_month(2026, 4), 30);
  EXPECT_EQ(days_in_month(2026, 12), 31);
  EXPECT_EQ(days_in_month(2026, 0), 0);
  EXPECT_EQ(days_in_month(2026, 13), 0);
}

TEST(Calendar, YearMonthOfAnInstant) {
  EXPECT_EQ(year_month(utc_at(2026, 11, 15, 12)), 202611);
  EXPECT_EQ(year_month(utc_at(2026, 11, 30, 23, 59, 59)), 202611);
  EXPECT_EQ(year_month(utc_at(2026, 12, 1)), 202612);
  EXPECT_EQ(year_month(at_second(0)), 197001);
  EXPECT_EQ(year_month(at_second(-1)), 196912);  // one second before the epoch
}

TEST(Calendar, WholeDaysRoundDown) {
  EXPECT_EQ(whole_days(at_second(0), at_second(0)), 0);
  EXPECT_EQ(whole_days(at_second(0), at_second(86399)), 0);
  EXPECT_EQ(whole_days(at_second(0), at_second(86400)), 1);
  EXPECT_EQ(whole_days(utc_at(2026, 4, 1), utc_at(2026, 4, 16, 10)), 15);
  EXPECT_EQ(whole_days(utc_at(2028, 1, 1), utc_at(2029, 1, 1)), 366);
  EXPECT_EQ(whole_days(at_second(-86400), at_second(0)), 1);
}

TEST(Boundary, MonthEndAnchorClampsWithoutDrift) {
  const Instant anchor = utc_at(2026, 1, 31, 9, 30);
  EXPECT_EQ(boundary(anchor, Interval::monthly, 0), anchor);
  EXPECT_EQ(boundary(anchor, Interval::monthly, 1), utc_at(2026, 2, 28, 9, 30));
  EXPECT_EQ(boundary(anchor, Interval::monthly, 2), utc_at(2026, 3, 31, 9, 30));  // back to 31, not 28
  EXPECT_EQ(boundary(anchor, Interval::monthly, 3), utc_at(2026, 4, 30, 9, 30));
  EXPECT_EQ(boundary(anchor, Interval::monthly, 25), utc_at(2028, 2, 29, 9, 30));  // leap year
  EXPECT_EQ(boundary(anchor, Interval::monthly, -1), utc_at(2025, 12, 31, 9, 30));
  EXPECT_EQ(boundary(anchor, Interval::monthly, -11), utc_at(2025, 2, 28, 9, 30));
}

TEST(Boundary, QuarterlyAndAnnual) {
  const Instant nov30 = utc_at(2027, 11, 30, 18);
  EXPECT_EQ(boundary(nov30, Interval::quarterly, 1), utc_at(2028, 2, 29, 18));
  EXPECT_EQ(boundary(nov30, Interval::quarterly, 2), utc_at(2028, 5, 30, 18));
  EXPECT_EQ(boundary(nov30, Interval::quarterly, -1), utc_at(2027, 8, 30, 18));
  const Instant leap_day = utc_at(2028, 2, 29, 0, 0, 1);
  EXPECT_EQ(boundary(leap_day, Interval::annual, 1), utc_at(2029, 2, 28, 0, 0, 1));
  EXPECT_EQ(boundary(leap_day, Interval::annual, 4), utc_at(2032, 2, 29, 0, 0, 1));
  EXPECT_EQ(boundary(leap_day, Interval::annual, -1), utc_at(2027, 2, 28, 0, 0, 1));
  EXPECT_EQ(boundary(leap_day, Interval::annual, -28), utc_at(2000, 2, 29, 0, 0, 1));
}

TEST(AddMonths, CrossesYearsBothWays) {
  EXPECT_EQ(add_months(utc_at(2026, 11, 15, 1, 2, 3), 2), utc_at(2027, 1, 15, 1, 2, 3));
  EXPECT_EQ(add_months(utc_at(2026, 1, 15), -1), utc_at(2025, 12, 15));
  EXPECT_EQ(add_months(utc_at(2026, 3, 31), -1), utc_at(2026, 2, 28));
  EXPECT_EQ(add_months(utc_at(2026, 5, 31), 1), utc_at(2026, 6, 30));
  EXPECT_EQ(add_months(utc_at(1969, 12, 31, 23, 59, 59), 2), utc_at(1970, 2, 28, 23, 59, 59));  // before the epoch
  EXPECT_EQ(add_months(utc_at(2026, 5, 31), 0), utc_at(2026, 5, 31));
}

TEST(AddMonths, MatchesChronoOnRandomInstants) {
  const std::uint64_t seed = 0xB111'0001;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // Results stay within what an Instant holds (1678-2261): instants 1800-2150 moved by up to 100 years.
  std::uniform_int_distribution<std::int64_t> instant(unix_seconds(utc_at(1800, 1, 1)),
                                                      unix_seconds(utc_at(2150, 1, 1)));
  std::uniform_int_distribution<std::int64_t> months(-1200, 1200);
  for (int i = 0; i < 20000; ++i) {
    const Instant t = at_second(instant(rng));
    const std::int64_t n = months(rng);
    ASSERT_EQ(add_months(t, n), reference_add_months(t, n)) << "t=" << unix_seconds(t) << " n=" << n;
    ASSERT_EQ(boundary(t, Interval::quarterly, n / 3), reference_add_months(t, (n / 3) * 3)) << "t=" << unix_seconds(t);
    ASSERT_EQ(boundary(t, Interval::annual, n / 12), reference_add_months(t, (n / 12) * 12)) << "t=" << unix_seconds(t);
  }
}

TEST(Boundary, ConsecutiveBoundariesNeverDrift) {
  // Every boundary of a day-31 anchor falls on the last day of short months and on the 31st of long ones.
  const Instant anchor = utc_at(2025, 12, 31, 23, 59, 59);
  for (int n = 0; n < 120; ++n) {
    const Instant b = boundary(anchor, Interval::monthly, n);
    const Instant next = boundary(anchor, Interval::monthly, n + 1);
    ASSERT_LT(b, next);
    const int ym = year_month(b);
    EXPECT_EQ(b, utc_at(ym / 100, static_cast<unsigned>(ym % 100),
                        static_cast<unsigned>(days_in_month(ym / 100, ym % 100)), 23, 59, 59))
        << n;
  }
}

TEST(NextAnchorDay, LaterDayThisMonth) {
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10, 8, 30), 15), utc_at(2026, 1, 15, 8, 30));
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10, 8, 30), 11), utc_at(2026, 1, 11, 8, 30));
}

TEST(NextAnchorDay, SameOrEarlierDayGoesToNextMonth) {
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10, 8, 30), 10), utc_at(2026, 2, 10, 8, 30));  // strictly after t
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10, 8, 30), 5), utc_at(2026, 2, 5, 8, 30));
  EXPECT_EQ(next_anchor_day(utc_at(2026, 12, 20), 1), utc_at(2027, 1, 1));
}

TEST(NextAnchorDay, ClampsToShortMonths) {
  EXPECT_EQ(next_anchor_day(utc_at(2026, 2, 10, 12), 31), utc_at(2026, 2, 28, 12));
  EXPECT_EQ(next_anchor_day(utc_at(2028, 2, 1), 31), utc_at(2028, 2, 29));
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 31, 7), 31), utc_at(2026, 2, 28, 7));    // t is on its anchor day already
  EXPECT_EQ(next_anchor_day(utc_at(2026, 2, 28, 10), 30), utc_at(2026, 3, 30, 10));  // Feb 28 is Feb's clamped 30th
  EXPECT_EQ(next_anchor_day(utc_at(2026, 4, 30, 10), 31), utc_at(2026, 5, 31, 10));
}

TEST(NextAnchorDay, ClampsAnchorDayIntoOneToThirtyOne) {
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10), 0), utc_at(2026, 2, 1));
  EXPECT_EQ(next_anchor_day(utc_at(2026, 1, 10), 45), utc_at(2026, 1, 31));
}

TEST(NextAnchorDay, PropertiesOnRandomInstants) {
  const std::uint64_t seed = 0xB111'0002;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> instant(unix_seconds(utc_at(1990, 1, 1)),
                                                      unix_seconds(utc_at(2100, 1, 1)));
  std::uniform_int_distribution<int> anchor(1, 31);
  for (int i = 0; i < 20000; ++i) {
    const Instant t = at_second(instant(rng));
    const int day = anchor(rng);
    const Instant next = next_anchor_day(t, day);
    ASSERT_GT(next, t) << unix_seconds(t) << " " << day;
    ASSERT_LE(next - t, std::chrono::days(31)) << unix_seconds(t) << " " << day;
    ASSERT_EQ((next - t) % std::chrono::days(1), std::chrono::milliseconds(0)) << "keeps the time of day";
    // Its day of month is the clamped anchor day, and no earlier instant after t qualifies.
    using namespace std::chrono;
    const year_month_day ymd{floor<days>(next)};
    const int last =
        static_cast<int>(static_cast<unsigned>(year_month_day_last{ymd.year(), month_day_last{ymd.month()}}.day()));
    ASSERT_EQ(static_cast<int>(static_cast<unsigned>(ymd.day())), std::min(day, last)) << unix_seconds(t) << " " << day;
    for (Instant earlier = next - days(1); earlier > t; earlier -= days(1)) {
      const year_month_day e{floor<days>(earlier)};
      const int e_last =
          static_cast<int>(static_cast<unsigned>(year_month_day_last{e.year(), month_day_last{e.month()}}.day()));
      ASSERT_NE(static_cast<int>(static_cast<unsigned>(e.day())), std::min(day, e_last))
          << unix_seconds(t) << " " << day;
    }
  }
}

}  // namespace
}  // namespace atrium::billing
