#include "billing/calendar.hpp"

#include <algorithm>

namespace atrium::billing {

namespace {

constexpr std::int64_t kSecondsPerDay = 86400;

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

constexpr bool is_leap(std::int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

constexpr int month_length(std::int64_t year, int month) {
  constexpr int kLengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : kLengths[month - 1];
}

struct CivilDate {
  std::int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar, day 0 = 1970-01-01), from
// "chrono-Compatible Low-Level Date Algorithms".
constexpr std::int64_t days_from_civil(CivilDate date) {
  const std::int64_t y = date.year - (date.month <= 2 ? 1 : 0);
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);  // [0, 399]
  const auto m = static_cast<unsigned>(date.month);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + static_cast<unsigned>(date.day) - 1;  // [0, 365]
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                                          // [0, 146096]
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

constexpr CivilDate civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);                    // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const auto day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);             // [1, 31]
  const auto month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);              // [1, 12]
  const std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

static_assert(days_from_civil({1970, 1, 1}) == 0);
static_assert(days_from_civil({2000, 3, 1}) == 11017);
static_assert(civil_from_days(-1).year == 1969 && civil_from_days(-1).month == 12 && civil_from_days(-1).day == 31);

// An instant split into its UTC civil date and the seconds since that day's midnight.
struct Split {
  CivilDate date;
  std::int64_t second_of_day;
};

Split split(Instant t) {
  const std::int64_t seconds = unix_seconds(t);
  const std::int64_t days = floor_div(seconds, kSecondsPerDay);
  return {civil_from_days(days), seconds - days * kSecondsPerDay};
}

Instant join(CivilDate date, std::int64_t second_of_day) {
  return from_unix_seconds(days_from_civil(date) * kSecondsPerDay + second_of_day);
}

// The month `months` after (year, month), with `day` clamped to that month's length.
CivilDate shift_months(CivilDate date, std::int64_t months, int day) {
  const std::int64_t index = date.year * 12 + (date.month - 1) + months;
  const std::int64_t year = floor_div(index, 12);
  const auto month = static_cast<int>(index - year * 12 + 1);
  return {year, month, std::min(day, month_length(year, month))};
}

}  // namespace

std::string_view interval_name(Interval i) {
  switch (i) {
    case Interval::monthly: return "monthly";
    case Interval::quarterly: return "quarterly";
    case Interval::annual: return "annual";
  }
  return "monthly";
}

std::optional<Interval> parse_interval(std::string_view text) {
  for (const Interval i : {Interval::monthly, Interval::quarterly, Interval::annual}) {
    if (interval_name(i) == text) return i;
  }
  return std::nullopt;
}

int interval_months(Interval i) {
  switch (i) {
    case Interval::monthly: return 1;
    case Interval::quarterly: return 3;
    case Interval::annual: return 12;
  }
  return 1;
}

Instant boundary(Instant anchor, Interval interval, std::int64_t n) {
  // Always from the anchor itself, never from the previous boundary, so Jan 31 -> Feb 28 -> Mar 31 (not Mar 28).
  return add_months(anchor, n * interval_months(interval));
}

Instant add_months(Instant t, std::int64_t months) {
  const Split s = split(t);
  return join(shift_months(s.date, months, s.date.day), s.second_of_day);
}

Instant next_anchor_day(Instant t, int anchor_day) {
  anchor_day = std::clamp(anchor_day, 1, 31);
  const Split s = split(t);
  // Same time of day, so the candidate in t's month is strictly after t exactly when its day is later.
  const CivilDate this_month = shift_months(s.date, 0, anchor_day);
  if (this_month.day > s.date.day) return join(this_month, s.second_of_day);
  return join(shift_months(s.date, 1, anchor_day), s.second_of_day);
}

std::int64_t whole_days(Instant a, Instant b) { return std::chrono::duration_cast<std::chrono::days>(b - a).count(); }

int year_month(Instant t) {
  const CivilDate date = split(t).date;
  return static_cast<int>(date.year * 100 + date.month);
}

int days_in_month(int year, int month) {
  if (month < 1 || month > 12) return 0;
  return month_length(year, month);
}

}  // namespace atrium::billing
