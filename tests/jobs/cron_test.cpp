#include "jobs/cron.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace atrium::jobs {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

TimePoint utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  const std::chrono::sys_days day{std::chrono::year{y} / std::chrono::month{mo} / std::chrono::day{d}};
  return TimePoint(day) + hours(h) + minutes(mi) + seconds(s);
}

std::string show(TimePoint t) {
  const auto secs = std::chrono::floor<seconds>(t);
  const auto day = std::chrono::floor<days>(secs);
  const std::chrono::year_month_day ymd{day};
  const long tod = (secs - day).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02ld:%02ld:%02ld", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), tod / 3600, tod / 60 % 60,
                tod % 60);
  std::string out = buf;
  if (t != secs) out += "+frac";
  return out;
}

std::string show(std::optional<TimePoint> t) { return t ? show(*t) : "none"; }

CronSchedule must_parse(std::string_view expression, std::string_view zone = "UTC") {
  auto parsed = CronSchedule::parse(expression, zone);
  if (!parsed) {
    ADD_FAILURE() << "parse(\"" << expression << "\", \"" << zone << "\"): " << parsed.error().message;
    return *CronSchedule::parse("* * * * *");
  }
  return *parsed;
}

// The next `count` slots after `from`, as "YYYY-MM-DD HH:MM:SS" UTC.
std::vector<std::string> next_slots(std::string_view expression, TimePoint from, int count,
                                    std::string_view zone = "UTC") {
  const CronSchedule schedule = must_parse(expression, zone);
  std::vector<std::string> out;
  std::optional<TimePoint> t = from;
  for (int i = 0; i < count && t; ++i) {
    t = schedule.next_after(*t);
    out.push_back(show(t));
  }
  return out;
}

using Slots = std::vector<std::string>;

// ---- syntax ----------------------------------------------------------------------------------------------------

TEST(CronSyntax, StarMatchesEveryMinute) {
  EXPECT_EQ(next_slots("* * * * *", utc(2026, 1, 1, 0, 0, 30), 3),
            (Slots{"2026-01-01 00:01:00", "2026-01-01 00:02:00", "2026-01-01 00:03:00"}));
}

TEST(CronSyntax, SingleValuesInEveryField) {
  EXPECT_EQ(next_slots("7 13 21 5 *", utc(2026, 1, 1), 2), (Slots{"2026-05-21 13:07:00", "2027-05-21 13:07:00"}));
}

TEST(CronSyntax, Lists) {
  EXPECT_EQ(next_slots("5,10 * * * *", utc(2026, 1, 1), 3),
            (Slots{"2026-01-01 00:05:00", "2026-01-01 00:10:00", "2026-01-01 01:05:00"}));
  EXPECT_EQ(next_slots("0 6,18 * * *", utc(2026, 1, 1), 3),
            (Slots{"2026-01-01 06:00:00", "2026-01-01 18:00:00", "2026-01-02 06:00:00"}));
}

TEST(CronSyntax, Ranges) {
  EXPECT_EQ(next_slots("10-12 * * * *", utc(2026, 1, 1), 4),
            (Slots{"2026-01-01 00:10:00", "2026-01-01 00:11:00", "2026-01-01 00:12:00", "2026-01-01 01:10:00"}));
  EXPECT_EQ(next_slots("0 0 * 11-12 *", utc(2026, 1, 1), 2), (Slots{"2026-11-01 00:00:00", "2026-11-02 00:00:00"}));
}

TEST(CronSyntax, Steps) {
  EXPECT_EQ(next_slots("*/15 * * * *", utc(2026, 1, 1, 0, 1), 4),
            (Slots{"2026-01-01 00:15:00", "2026-01-01 00:30:00", "2026-01-01 00:45:00", "2026-01-01 01:00:00"}));
  EXPECT_EQ(next_slots("1-30/10 * * * *", utc(2026, 1, 1), 4),
            (Slots{"2026-01-01 00:01:00", "2026-01-01 00:11:00", "2026-01-01 00:21:00", "2026-01-01 01:01:00"}));
  // "N/S" runs from N to the end of the field.
  EXPECT_EQ(next_slots("50/5 * * * *", utc(2026, 1, 1), 3),
            (Slots{"2026-01-01 00:50:00", "2026-01-01 00:55:00", "2026-01-01 01:50:00"}));
  // A step larger than the range leaves only the start.
  EXPECT_EQ(next_slots("0 3-5/10 * * *", utc(2026, 1, 1), 2), (Slots{"2026-01-01 03:00:00", "2026-01-02 03:00:00"}));
  // Day-of-month steps start at 1.
  EXPECT_EQ(next_slots("0 0 */10 * *", utc(2026, 1, 1, 1), 4),
            (Slots{"2026-01-11 00:00:00", "2026-01-21 00:00:00", "2026-01-31 00:00:00", "2026-02-01 00:00:00"}));
}

TEST(CronSyntax, MixedListOfRangesStepsAndValues) {
  EXPECT_EQ(next_slots("1,5-6,*/30 * * * *", utc(2026, 1, 1, 0, 0, 1), 6),
            (Slots{"2026-01-01 00:01:00", "2026-01-01 00:05:00", "2026-01-01 00:06:00", "2026-01-01 00:30:00",
                   "2026-01-01 01:00:00", "2026-01-01 01:01:00"}));
}

TEST(CronSyntax, MonthNamesAreCaseInsensitive) {
  EXPECT_EQ(next_slots("0 0 1 jan,Mar,DEC *", utc(2026, 1, 2), 3),
            (Slots{"2026-03-01 00:00:00", "2026-12-01 00:00:00", "2027-01-01 00:00:00"}));
  EXPECT_EQ(next_slots("0 0 1 Feb-apr *", utc(2026, 1, 2), 4),
            (Slots{"2026-02-01 00:00:00", "2026-03-01 00:00:00", "2026-04-01 00:00:00", "2027-02-01 00:00:00"}));
}

TEST(CronSyntax, DayNamesAreCaseInsensitive) {
  // 2026-03-02 is a Monday.
  EXPECT_EQ(next_slots("0 9 * * mon-FRI", utc(2026, 3, 5, 10), 3),
            (Slots{"2026-03-06 09:00:00", "2026-03-09 09:00:00", "2026-03-10 09:00:00"}));
  EXPECT_EQ(next_slots("0 9 * * Sat,sun", utc(2026, 3, 2), 3),
            (Slots{"2026-03-07 09:00:00", "2026-03-08 09:00:00", "2026-03-14 09:00:00"}));
}

TEST(CronSyntax, SundayIsZeroAndSeven) {
  const Slots sundays{"2026-03-01 00:00:00", "2026-03-08 00:00:00", "2026-03-15 00:00:00"};
  EXPECT_EQ(next_slots("0 0 * * 0", utc(2026, 2, 28), 3), sundays);
  EXPECT_EQ(next_slots("0 0 * * 7", utc(2026, 2, 28), 3), sundays);
  EXPECT_EQ(next_slots("0 0 * * SUN", utc(2026, 2, 28), 3), sundays);
  // 5-7 is Friday through Sunday.
  EXPECT_EQ(next_slots("0 0 * * 5-7", utc(2026, 3, 2), 4),
            (Slots{"2026-03-06 00:00:00", "2026-03-07 00:00:00", "2026-03-08 00:00:00", "2026-03-13 00:00:00"}));
  // */2 over the week: Sunday, Tuesday, Thursday, Saturday (Sunday once, not twice).
  EXPECT_EQ(next_slots("0 0 * * */2", utc(2026, 3, 1), 4),
            (Slots{"2026-03-03 00:00:00", "2026-03-05 00:00:00", "2026-03-07 00:00:00", "2026-03-08 00:00:00"}));
}

TEST(CronSyntax, OptionalSecondsField) {
  EXPECT_EQ(next_slots("*/20 * * * * *", utc(2026, 1, 1, 0, 0, 5), 4),
            (Slots{"2026-01-01 00:00:20", "2026-01-01 00:00:40", "2026-01-01 00:01:00", "2026-01-01 00:01:20"}));
  EXPECT_EQ(next_slots("30 0 12 * * *", utc(2026, 1, 1), 2), (Slots{"2026-01-01 12:00:30", "2026-01-02 12:00:30"}));
  // Five fields fire at second 0.
  EXPECT_EQ(next_slots("0 12 * * *", utc(2026, 1, 1, 11, 59, 59), 1), (Slots{"2026-01-01 12:00:00"}));
}

TEST(CronSyntax, ExtraWhitespaceIsIgnored) {
  EXPECT_EQ(next_slots("  0\t12   * *  *  ", utc(2026, 1, 1), 1), (Slots{"2026-01-01 12:00:00"}));
}

TEST(CronSyntax, Macros) {
  const TimePoint from = utc(2026, 3, 4, 5, 6, 7);  // a Wednesday
  EXPECT_EQ(next_slots("@yearly", from, 2), (Slots{"2027-01-01 00:00:00", "2028-01-01 00:00:00"}));
  EXPECT_EQ(next_slots("@annually", from, 1), (Slots{"2027-01-01 00:00:00"}));
  EXPECT_EQ(next_slots("@monthly", from, 2), (Slots{"2026-04-01 00:00:00", "2026-05-01 00:00:00"}));
  EXPECT_EQ(next_slots("@weekly", from, 2), (Slots{"2026-03-08 00:00:00", "2026-03-15 00:00:00"}));
  EXPECT_EQ(next_slots("@daily", from, 2), (Slots{"2026-03-05 00:00:00", "2026-03-06 00:00:00"}));
  EXPECT_EQ(next_slots("@midnight", from, 1), (Slots{"2026-03-05 00:00:00"}));
  EXPECT_EQ(next_slots("@hourly", from, 2), (Slots{"2026-03-04 06:00:00", "2026-03-04 07:00:00"}));
  EXPECT_EQ(next_slots("@DAILY", from, 1), (Slots{"2026-03-05 00:00:00"}));
  EXPECT_EQ(next_slots("  @hourly  ", from, 1), (Slots{"2026-03-04 06:00:00"}));
}

TEST(CronSyntax, KeepsExpressionAndZone) {
  const CronSchedule schedule = must_parse("*/5 * * * *", "Europe/Berlin");
  EXPECT_EQ(schedule.expression(), "*/5 * * * *");
  EXPECT_EQ(schedule.time_zone(), "Europe/Berlin");
  EXPECT_EQ(must_parse("@daily").time_zone(), "UTC");
  const CronSchedule copy = schedule;  // copies share nothing mutable
  EXPECT_EQ(show(copy.next_after(utc(2026, 1, 1, 0, 1))), "2026-01-01 00:05:00");
}

// ---- invalid input ---------------------------------------------------------------------------------------------

struct BadCase {
  const char* expression;
  const char* message_part;  // the message names the field and the reason
};

TEST(CronInvalid, RejectsWithFieldAndReason) {
  const BadCase cases[] = {
      {"", "empty"},
      {"   \t ", "empty"},
      {"* * * *", "got 4"},
      {"* * * * * * *", "got 7"},
      {"*", "got 1"},
      {"60 * * * *", "minute field \"60\": 60 is out of range 0-59"},
      {"* 24 * * *", "hour field \"24\": 24 is out of range 0-23"},
      {"* * 0 * *", "day-of-month field \"0\": 0 is out of range 1-31"},
      {"* * 32 * *", "day-of-month field \"32\""},
      {"* * * 0 *", "month field \"0\": 0 is out of range 1-12"},
      {"* * * 13 *", "month field \"13\""},
      {"* * * * 8", "day-of-week field \"8\": 8 is out of range 0-7"},
      {"60 * * * * *", "second field \"60\": 60 is out of range 0-59"},
      {"99999999999999999999 * * * *", "minute field \"99999999999999999999\": 99999999999999999999 is out of range"},
      {"*/0 * * * *", "minute field \"*/0\": step 0 is out of range 1-60"},
      {"* */25 * * *", "hour field \"*/25\": step 25 is out of range 1-24"},
      {"* * * */13 *", "month field \"*/13\": step 13"},
      {"1-5/0 * * * *", "step 0"},
      {"*/ * * * *", "minute field \"*/\": missing step"},
      {"*/x * * * *", "step \"x\" is not a number"},
      {"*/2/3 * * * *", "step \"2/3\" is not a number"},
      {"*/-1 * * * *", "step \"-1\" is not a number"},
      {"5-1 * * * *", "minute field \"5-1\": range 5-1 runs backwards"},
      {"* * * * SAT-SUN", "range SAT-SUN runs backwards"},
      {"1- * * * *", "minute field \"1-\": missing value"},
      {"-1 * * * *", "missing value"},
      {"/5 * * * *", "missing value"},
      {"1,,2 * * * *", "minute field \"1,,2\": empty list item"},
      {",1 * * * *", "empty list item"},
      {"1, * * * *", "empty list item"},
      {"a * * * *", "minute field \"a\": \"a\" is not a number"},
      {"JAN * * * *", "\"JAN\" is not a number"},
      {"1.5 * * * *", "\"1.5\" is not a number"},
      {"? * * * *", "is not a number"},
      {"*-5 * * * *", "\"*\" is not a number"},
      {"* * * FOO *", "month field \"FOO\": \"FOO\" is not a month name"},
      {"* * * MON *", "is not a month name"},
      {"* * * JANUARY *", "is not a month name"},
      {"* * * * FOO", "day-of-week field \"FOO\": \"FOO\" is not a day name"},
      {"* * * * JAN", "is not a day name"},
      {"* * L * *", "day-of-month field \"L\""},
      {"hello world foo bar baz", "minute field \"hello\""},
      {"@reboot", "unknown macro @reboot"},
      {"@every 5m", "must be the whole expression"},
      {"@daily 1", "must be the whole expression"},
      {"@", "unknown macro"},
  };
  for (const BadCase& c : cases) {
    const auto parsed = CronSchedule::parse(c.expression);
    ASSERT_FALSE(parsed.has_value()) << "accepted \"" << c.expression << "\"";
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument) << c.expression;
    EXPECT_NE(parsed.error().message.find(c.message_part), std::string::npos)
        << "\"" << c.expression << "\" -> " << parsed.error().message << " (expected to contain \"" << c.message_part
        << "\")";
  }
}

TEST(CronInvalid, AcceptsTheEdgesOfEachRange) {
  for (const char* expression : {"0-59 0-23 1-31 1-12 0-7", "59 23 31 12 7", "0 0 1 1 0", "0-59 * * * * *",
                                 "*/60 */24 */31 */12 */7", "*/1 * * * *"}) {
    EXPECT_TRUE(CronSchedule::parse(expression).has_value()) << expression;
  }
}

TEST(CronInvalid, UnknownTimeZone) {
  for (const char* zone : {"Mars/Olympus", "Europe/Berln", "", "../../etc/passwd", "/usr/share/zoneinfo/UTC"}) {
    const auto parsed = CronSchedule::parse("* * * * *", zone);
    ASSERT_FALSE(parsed.has_value()) << zone;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument) << zone;
    EXPECT_NE(parsed.error().message.find("time zone"), std::string::npos) << parsed.error().message;
  }
  const auto parsed = CronSchedule::parse("* * * * *", "Mars/Olympus");
  EXPECT_NE(parsed.error().message.find("\"Mars/Olympus\""), std::string::npos) << parsed.error().message;
  // The expression is checked first.
  const auto both = CronSchedule::parse("61 * * * *", "Mars/Olympus");
  ASSERT_FALSE(both.has_value());
  EXPECT_NE(both.error().message.find("minute"), std::string::npos) << both.error().message;
  // Zone names other than "UTC" come from the tz database, including its UTC aliases.
  EXPECT_TRUE(CronSchedule::parse("0 0 * * *", "Etc/UTC").has_value());
}

// ---- day matching ----------------------------------------------------------------------------------------------

TEST(CronDays, BothRestrictedMatchesEither) {
  // The 13th (a Monday in April 2026) or any Friday.
  EXPECT_EQ(next_slots("0 0 13 * 5", utc(2026, 4, 1), 6),
            (Slots{"2026-04-03 00:00:00", "2026-04-10 00:00:00", "2026-04-13 00:00:00", "2026-04-17 00:00:00",
                   "2026-04-24 00:00:00", "2026-05-01 00:00:00"}));
  // Days 1-7 or any Monday (2026-03-01 is a Sunday).
  EXPECT_EQ(next_slots("0 0 1-7 * MON", utc(2026, 2, 28), 10),
            (Slots{"2026-03-01 00:00:00", "2026-03-02 00:00:00", "2026-03-03 00:00:00", "2026-03-04 00:00:00",
                   "2026-03-05 00:00:00", "2026-03-06 00:00:00", "2026-03-07 00:00:00", "2026-03-09 00:00:00",
                   "2026-03-16 00:00:00", "2026-03-23 00:00:00"}));
}

TEST(CronDays, UnrestrictedDayOfMonthMeansDayOfWeekOnly) {
  EXPECT_EQ(next_slots("0 0 * * 5", utc(2026, 4, 1), 2), (Slots{"2026-04-03 00:00:00", "2026-04-10 00:00:00"}));
  EXPECT_EQ(next_slots("0 0 13 * *", utc(2026, 4, 1), 2), (Slots{"2026-04-13 00:00:00", "2026-05-13 00:00:00"}));
}

TEST(CronDays, FieldStartingWithStarRequiresBoth) {
  // Vixie cron: "*/2" counts as '*', so odd days that are also Mondays (Mondays in March 2026: 2, 9, 16, 23, 30).
  EXPECT_EQ(next_slots("0 0 */2 * 1", utc(2026, 3, 1), 4),
            (Slots{"2026-03-09 00:00:00", "2026-03-23 00:00:00", "2026-04-13 00:00:00", "2026-04-27 00:00:00"}));
  // The 13th on a Sunday, Tuesday, Thursday or Saturday.
  EXPECT_EQ(next_slots("0 0 13 * */2", utc(2026, 1, 1), 4),
            (Slots{"2026-01-13 00:00:00", "2026-06-13 00:00:00", "2026-08-13 00:00:00", "2026-09-13 00:00:00"}));
}

TEST(CronDays, LeapDay) {
  EXPECT_EQ(next_slots("0 0 29 2 *", utc(2027, 3, 1), 2), (Slots{"2028-02-29 00:00:00", "2032-02-29 00:00:00"}));
  const CronSchedule leap = must_parse("0 0 29 2 *");
  EXPECT_EQ(show(leap.last_at_or_before(utc(2027, 3, 1))), "2024-02-29 00:00:00");
  // 2100 is not a leap year: after 2096 the next is 2104, beyond the 5-year horizon.
  EXPECT_EQ(show(leap.next_after(utc(2096, 3, 1))), "none");
  EXPECT_EQ(show(leap.last_at_or_before(utc(2104, 2, 28))), "none");
}

TEST(CronDays, MonthEnds) {
  EXPECT_EQ(next_slots("0 0 31 * *", utc(2026, 1, 31), 6),
            (Slots{"2026-03-31 00:00:00", "2026-05-31 00:00:00", "2026-07-31 00:00:00", "2026-08-31 00:00:00",
                   "2026-10-31 00:00:00", "2026-12-31 00:00:00"}));
  EXPECT_EQ(next_slots("0 0 30 * *", utc(2026, 1, 30), 2), (Slots{"2026-03-30 00:00:00", "2026-04-30 00:00:00"}));
  EXPECT_EQ(next_slots("59 23 31 12 *", utc(2026, 12, 31, 23, 59), 1), (Slots{"2027-12-31 23:59:00"}));
  EXPECT_EQ(next_slots("0 0 28-31 2 *", utc(2027, 1, 1), 3),
            (Slots{"2027-02-28 00:00:00", "2028-02-28 00:00:00", "2028-02-29 00:00:00"}));
}

TEST(CronDays, ImpossibleDateHasNoSlot) {
  const CronSchedule never = must_parse("0 0 30 2 *");
  EXPECT_EQ(never.next_after(utc(2026, 1, 1)), std::nullopt);
  EXPECT_EQ(never.last_at_or_before(utc(2026, 1, 1)), std::nullopt);
  EXPECT_EQ(must_parse("0 0 31 4,6,9,11 *").next_after(utc(2026, 1, 1)), std::nullopt);
}

// ---- last_at_or_before and time points --------------------------------------------------------------------------

TEST(CronLast, FindsTheMostRecentSlot) {
  const CronSchedule weekdays = must_parse("0 9 * * 1-5");
  // Monday 2026-03-09 08:00 -> Friday 09:00.
  EXPECT_EQ(show(weekdays.last_at_or_before(utc(2026, 3, 9, 8))), "2026-03-06 09:00:00");
  EXPECT_EQ(show(weekdays.last_at_or_before(utc(2026, 3, 9, 9))), "2026-03-09 09:00:00");  // at: included
  EXPECT_EQ(show(weekdays.last_at_or_before(utc(2026, 3, 9, 8, 59, 59))), "2026-03-06 09:00:00");
  EXPECT_EQ(show(must_parse("@yearly").last_at_or_before(utc(2026, 6, 1))), "2026-01-01 00:00:00");
  EXPECT_EQ(show(must_parse("@monthly").last_at_or_before(utc(2026, 1, 1))), "2026-01-01 00:00:00");
  EXPECT_EQ(show(must_parse("0 0 31 * *").last_at_or_before(utc(2026, 3, 30))), "2026-01-31 00:00:00");
  EXPECT_EQ(show(must_parse("*/20 5 * * * *").last_at_or_before(utc(2026, 3, 9, 8, 5, 59))), "2026-03-09 08:05:40");
  EXPECT_EQ(show(must_parse("0 0 1 DEC *").last_at_or_before(utc(2026, 3, 1))), "2025-12-01 00:00:00");
  EXPECT_EQ(show(must_parse("0 12 * 2 *").last_at_or_before(utc(2026, 6, 1))), "2026-02-28 12:00:00");
  EXPECT_EQ(show(must_parse("0 12 * 2,3 *").last_at_or_before(utc(2026, 3, 1, 11))), "2026-02-28 12:00:00");
  // Just inside and just outside the 5-year horizon.
  const CronSchedule rare = must_parse("0 0 1 1 *");
  EXPECT_EQ(show(rare.last_at_or_before(utc(2026, 1, 1) + std::chrono::years(5))), "2031-01-01 00:00:00");
  const CronSchedule leap = must_parse("0 0 29 2 *");
  EXPECT_EQ(show(leap.last_at_or_before(utc(2096, 2, 29) + std::chrono::years(5))), "2096-02-29 00:00:00");
  EXPECT_EQ(show(leap.last_at_or_before(utc(2096, 2, 29) + std::chrono::years(5) + seconds(1))), "none");
}

TEST(CronTimePoints, NextIsStrictlyAfterAndWholeSeconds) {
  const CronSchedule hourly = must_parse("@hourly");
  const TimePoint slot = utc(2026, 3, 9, 10);
  EXPECT_EQ(show(hourly.next_after(slot)), "2026-03-09 11:00:00");
  EXPECT_EQ(show(hourly.next_after(slot - std::chrono::nanoseconds(1))), "2026-03-09 10:00:00");
  EXPECT_EQ(show(hourly.next_after(slot + std::chrono::milliseconds(500))), "2026-03-09 11:00:00");
  EXPECT_EQ(show(hourly.last_at_or_before(slot + std::chrono::milliseconds(500))), "2026-03-09 10:00:00");
  EXPECT_EQ(show(hourly.last_at_or_before(slot - std::chrono::nanoseconds(1))), "2026-03-09 09:00:00");
  // Before 1970 too.
  EXPECT_EQ(show(hourly.next_after(utc(1969, 12, 31, 23, 30))), "1970-01-01 00:00:00");
  EXPECT_EQ(show(hourly.last_at_or_before(utc(1969, 12, 31, 23, 30))), "1969-12-31 23:00:00");
}

TEST(CronTimePoints, NextWithinFiveYears) {
  const CronSchedule rare = must_parse("0 0 1 1 *");
  EXPECT_EQ(show(rare.next_after(utc(2025, 12, 31, 23, 59, 59))), "2026-01-01 00:00:00");
  const CronSchedule leap = must_parse("0 0 29 2 *");
  // From 2028-02-29 the next leap day is 2032-02-29, 4 years later; from 2095-02-28 it is 2096-02-29.
  EXPECT_EQ(show(leap.next_after(utc(2028, 2, 29))), "2032-02-29 00:00:00");
  EXPECT_EQ(show(leap.next_after(utc(2095, 2, 28))), "2096-02-29 00:00:00");
  // 2100 is no leap year, so after 2096 comes 2104. Exactly 5 years ahead: found; a second further: not.
  EXPECT_EQ(show(leap.next_after(utc(2104, 2, 29) - std::chrono::years(5))), "2104-02-29 00:00:00");
  EXPECT_EQ(show(leap.next_after(utc(2104, 2, 29) - std::chrono::years(5) - seconds(1))), "none");
}

TEST(CronTimePoints, ExtremesDoNotOverflow) {
  for (const char* zone : {"UTC", "Europe/Berlin"}) {
    const CronSchedule every = must_parse("* * * * *", zone);
    EXPECT_EQ(every.next_after(TimePoint::max()), std::nullopt) << zone;
    EXPECT_EQ(every.last_at_or_before(TimePoint::min()), std::nullopt) << zone;
    EXPECT_TRUE(every.next_after(TimePoint::min()).has_value()) << zone;
    EXPECT_TRUE(every.last_at_or_before(TimePoint::max()).has_value()) << zone;
  }
}

// ---- time zones ------------------------------------------------------------------------------------------------

// Europe/Berlin 2026: CET (+1) until 2026-03-29 01:00 UTC (02:00 local jumps to 03:00), CEST (+2) until
// 2026-10-25 01:00 UTC (03:00 local falls back to 02:00).
TEST(CronZones, BerlinSpringForwardFiresOnceAfterTheGap) {
  EXPECT_EQ(next_slots("30 2 * * *", utc(2026, 3, 27, 12), 4, "Europe/Berlin"),
            (Slots{"2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00", "2026-03-31 00:30:00"}));
  // Every gap slot collapses into the transition; 03:00 local is the same instant.
  EXPECT_EQ(next_slots("*/15 * * * *", utc(2026, 3, 29, 0, 30), 4, "Europe/Berlin"),
            (Slots{"2026-03-29 00:45:00", "2026-03-29 01:00:00", "2026-03-29 01:15:00", "2026-03-29 01:30:00"}));
  EXPECT_EQ(next_slots("0 3 * * *", utc(2026, 3, 28, 12), 2, "Europe/Berlin"),
            (Slots{"2026-03-29 01:00:00", "2026-03-30 01:00:00"}));
  EXPECT_EQ(next_slots("59 1 * * *", utc(2026, 3, 28, 12), 2, "Europe/Berlin"),
            (Slots{"2026-03-29 00:59:00", "2026-03-29 23:59:00"}));
  // One second before the transition, the gap slot is still ahead.
  const CronSchedule gap = must_parse("30 2 * * *", "Europe/Berlin");
  EXPECT_EQ(show(gap.next_after(utc(2026, 3, 29, 0, 59, 59))), "2026-03-29 01:00:00");
  EXPECT_EQ(show(gap.next_after(utc(2026, 3, 29, 1))), "2026-03-30 00:30:00");
}

TEST(CronZones, BerlinFallBackFiresOnlyTheFirstOccurrence) {
  EXPECT_EQ(next_slots("30 2 * * *", utc(2026, 10, 23, 12), 4, "Europe/Berlin"),
            (Slots{"2026-10-24 00:30:00", "2026-10-25 00:30:00", "2026-10-26 01:30:00", "2026-10-27 01:30:00"}));
  // The repeated hour 02:00-02:59 runs once, in its first (CEST) pass; 03:00 CET follows.
  EXPECT_EQ(next_slots("*/30 * * * *", utc(2026, 10, 24, 23, 15), 5, "Europe/Berlin"),
            (Slots{"2026-10-24 23:30:00", "2026-10-25 00:00:00", "2026-10-25 00:30:00", "2026-10-25 02:00:00",
                   "2026-10-25 02:30:00"}));
  // Asked from inside the second pass.
  const CronSchedule twice = must_parse("30 2 * * *", "Europe/Berlin");
  EXPECT_EQ(show(twice.next_after(utc(2026, 10, 25, 1, 10))), "2026-10-26 01:30:00");
  EXPECT_EQ(show(twice.next_after(utc(2026, 10, 25, 0, 59, 59))), "2026-10-26 01:30:00");
  EXPECT_EQ(show(must_parse("0 3 * * *", "Europe/Berlin").next_after(utc(2026, 10, 25, 1, 10))), "2026-10-25 02:00:00");
  EXPECT_EQ(show(must_parse("15 2 * * *", "Europe/Berlin").next_after(utc(2026, 10, 25, 0, 10))),
            "2026-10-25 00:15:00");
}

TEST(CronZones, BerlinLastAtOrBeforeAcrossTransitions) {
  const CronSchedule schedule = must_parse("30 2 * * *", "Europe/Berlin");
  // Fall back: inside and after the second pass, the first occurrence is the last slot.
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 10, 25, 1, 40))), "2026-10-25 00:30:00");
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 10, 25, 1, 20))), "2026-10-25 00:30:00");
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 10, 25, 0, 20))), "2026-10-24 00:30:00");
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 10, 26, 1, 29))), "2026-10-25 00:30:00");
  // Spring forward: the gap slot fired at the transition.
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 3, 29, 1))), "2026-03-29 01:00:00");
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 3, 29, 0, 59, 59))), "2026-03-28 01:30:00");
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 3, 30, 0, 29))), "2026-03-29 01:00:00");
}

// America/New_York 2026: EST (-5) until 2026-03-08 07:00 UTC (02:00 -> 03:00), EDT (-4) until 2026-11-01 06:00 UTC
// (02:00 -> 01:00).
TEST(CronZones, NewYorkBothTransitions) {
  EXPECT_EQ(next_slots("30 2 * * *", utc(2026, 3, 6, 12), 3, "America/New_York"),
            (Slots{"2026-03-07 07:30:00", "2026-03-08 07:00:00", "2026-03-09 06:30:00"}));
  EXPECT_EQ(next_slots("30 1 * * *", utc(2026, 10, 30, 12), 3, "America/New_York"),
            (Slots{"2026-10-31 05:30:00", "2026-11-01 05:30:00", "2026-11-02 06:30:00"}));
  EXPECT_EQ(next_slots("0 9 * * *", utc(2026, 3, 6, 15), 3, "America/New_York"),
            (Slots{"2026-03-07 14:00:00", "2026-03-08 13:00:00", "2026-03-09 13:00:00"}));
  // Sunday-only job at 02:30: runs at the end of the gap on the transition Sunday.
  EXPECT_EQ(next_slots("30 2 * * SUN", utc(2026, 3, 1, 12), 2, "America/New_York"),
            (Slots{"2026-03-08 07:00:00", "2026-03-15 06:30:00"}));
  const CronSchedule schedule = must_parse("30 1 * * *", "America/New_York");
  EXPECT_EQ(show(schedule.next_after(utc(2026, 11, 1, 6, 10))), "2026-11-02 06:30:00");  // inside the second pass
  EXPECT_EQ(show(schedule.last_at_or_before(utc(2026, 11, 1, 6, 40))), "2026-11-01 05:30:00");
}

TEST(CronZones, LocalDayBoundaries) {
  // Midnight in Berlin is 23:00 / 22:00 UTC the day before; month and weekday are local.
  EXPECT_EQ(next_slots("@monthly", utc(2026, 1, 15), 2, "Europe/Berlin"),
            (Slots{"2026-01-31 23:00:00", "2026-02-28 23:00:00"}));
  EXPECT_EQ(next_slots("@monthly", utc(2026, 5, 15), 1, "Europe/Berlin"), (Slots{"2026-05-31 22:00:00"}));
  // Friday 00:30 in Berlin is Thursday 23:30 UTC in winter.
  EXPECT_EQ(next_slots("30 0 * * FRI", utc(2026, 1, 1), 1, "Europe/Berlin"), (Slots{"2026-01-01 23:30:00"}));
  EXPECT_EQ(next_slots("0 20 * * *", utc(2026, 1, 1), 1, "America/New_York"), (Slots{"2026-01-01 01:00:00"}));
}

TEST(CronZones, ConcurrentCallsAgree) {
  const CronSchedule schedule = must_parse("*/7 1-3 * * *", "Australia/Sydney");  // a zone no other test loads
  std::vector<std::vector<std::string>> results(8);
  std::vector<std::thread> threads;
  for (auto& out : results) {
    threads.emplace_back([&schedule, &out] {
      std::optional<TimePoint> t = utc(2026, 3, 30);
      for (int i = 0; i < 300 && t; ++i) {
        t = schedule.next_after(*t);
        out.push_back(show(t));
        out.push_back(show(schedule.last_at_or_before(*t - seconds(1))));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& out : results) EXPECT_EQ(out, results.front());
  // Sydney leaves daylight saving on 2026-04-05: 03:00 AEDT -> 02:00 AEST (16:00 UTC). From inside the repeated
  // hour the next slot is 03:00 AEST.
  EXPECT_EQ(show(schedule.next_after(utc(2026, 4, 4, 16, 1))), "2026-04-04 17:00:00");
}

// Schedules that never or rarely fire answer (a minute-by-minute scan would visit 2.6 million minutes per call
// here). How fast is for a benchmark, not a test: no wall-clock limit under sanitizers and a loaded machine.
TEST(CronSchedule, NeverAndRareSchedulesAnswer) {
  const CronSchedule never = must_parse("0 0 30 2 *", "Europe/Berlin");
  const CronSchedule rare = must_parse("59 23 29 2 *", "America/New_York");
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(never.next_after(utc(2026, 1, 1) + minutes(i)), std::nullopt);
    EXPECT_EQ(never.last_at_or_before(utc(2026, 1, 1) + minutes(i)), std::nullopt);
    EXPECT_TRUE(rare.next_after(utc(2026, 1, 1) + minutes(i)).has_value());
  }
  // 2028 is the next leap year: 23:59 on Feb 29 in New York.
  EXPECT_EQ(show(rare.next_after(utc(2026, 1, 1)).value()), "2028-03-01 04:59:00");
}

// ---- brute-force cross-check -----------------------------------------------------------------------------------

struct Field {
  int min, max, star_hi, count;
  const char* const* names;  // nullptr or names for min..
};

constexpr const char* kMonthNames[] = {"JAN", "feb", "Mar", "APR", "may", "Jun",
                                       "JUL", "aug", "Sep", "OCT", "nov", "Dec"};
constexpr const char* kDayNames[] = {"SUN", "mon", "Tue", "WED", "thu", "Fri", "SAT"};

// A random expression and, built independently, the sets it should match.
struct Expected {
  std::string text;
  std::set<int> second{0}, minute, hour, dom, month, dow;
  bool dom_star = false, dow_star = false;

  bool day(const std::chrono::year_month_day& ymd, unsigned weekday) const {
    if (!month.count(static_cast<int>(static_cast<unsigned>(ymd.month())))) return false;
    const bool d = dom.count(static_cast<int>(static_cast<unsigned>(ymd.day()))) > 0;
    const bool w = dow.count(static_cast<int>(weekday)) > 0;
    return (dom_star || dow_star) ? d && w : d || w;
  }
  bool matches(std::chrono::sys_seconds local) const {
    const auto day_start = std::chrono::floor<days>(local);
    const long tod = (local - day_start).count();
    return day(std::chrono::year_month_day{day_start}, std::chrono::weekday{day_start}.c_encoding()) &&
           hour.count(static_cast<int>(tod / 3600)) && minute.count(static_cast<int>(tod / 60 % 60)) &&
           second.count(static_cast<int>(tod % 60));
  }
};

std::string random_field(std::mt19937& rng, const Field& f, std::set<int>& out, bool& star, int star_weight) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto value_text = [&](int v) {
    if (f.names != nullptr && v - f.min < (f.names == kDayNames ? 7 : 12) && pick(0, 2) == 0) {
      return std::string(f.names[v - f.min]);
    }
    return std::to_string(v);
  };
  auto add = [&](int lo, int hi, int step) {
    for (int v = lo; v <= hi; v += step) out.insert(f.names == kDayNames ? v % 7 : v);
  };
  if (pick(1, 10) <= star_weight) {
    star = true;
    if (pick(0, 3) == 0) {
      const int step = pick(1, f.count);
      add(f.min, f.star_hi, step);
      return "*/" + std::to_string(step);
    }
    add(f.min, f.star_hi, 1);
    return "*";
  }
  std::string text;
  const int items = pick(1, 3);
  for (int i = 0; i < items; ++i) {
    if (i > 0) text += ",";
    const int kind = pick(0, 4);
    const int a = pick(f.min, f.max);
    if (kind <= 1) {
      text += value_text(a);
      add(a, a, 1);
    } else {
      const int b = pick(a, f.max);
      const int step = pick(1, f.count);
      if (kind == 2) {
        text += value_text(a) + "-" + value_text(b);
        add(a, b, 1);
      } else if (kind == 3) {
        text += value_text(a) + "-" + value_text(b) + "/" + std::to_string(step);
        add(a, b, step);
      } else {
        text += std::to_string(a) + "/" + std::to_string(step);
        add(a, std::max(a, f.star_hi), step);
      }
    }
  }
  return text;
}

Expected random_expression(std::mt19937& rng, bool with_seconds) {
  Expected e;
  bool unused = false;
  std::string text;
  if (with_seconds) {
    e.second.clear();
    text += random_field(rng, {0, 59, 59, 60, nullptr}, e.second, unused, 2);
    text += ' ';
  }
  text += random_field(rng, {0, 59, 59, 60, nullptr}, e.minute, unused, 2);
  text += ' ';
  text += random_field(rng, {0, 23, 23, 24, nullptr}, e.hour, unused, 3);
  text += ' ';
  text += random_field(rng, {1, 31, 31, 31, nullptr}, e.dom, e.dom_star, 6);
  text += ' ';
  text += random_field(rng, {1, 12, 12, 12, kMonthNames}, e.month, unused, 8);
  text += ' ';
  text += random_field(rng, {0, 7, 6, 7, kDayNames}, e.dow, e.dow_star, 6);
  e.text = text;
  return e;
}

// Compares next_after and last_at_or_before with a naive scan, step by step over [begin, end). `is_slot` says whether
// a UTC instant is a slot.
template <class IsSlot>
void cross_check(const CronSchedule& schedule, TimePoint begin, TimePoint end, seconds step, IsSlot is_slot,
                 const std::string& label) {
  std::vector<TimePoint> naive;
  for (TimePoint t = begin; t < end; t += step) {
    if (is_slot(std::chrono::sys_seconds(std::chrono::floor<seconds>(t)))) naive.push_back(t);
  }
  // Walking next_after from the start yields exactly the naive slots.
  std::vector<TimePoint> walked;
  for (std::optional<TimePoint> t = schedule.next_after(begin - seconds(1)); t && *t < end;
       t = schedule.next_after(*t)) {
    walked.push_back(*t);
    if (walked.size() > naive.size() + 1) break;
  }
  std::vector<std::string> naive_text, walked_text;
  for (const TimePoint t : naive) naive_text.push_back(show(t));
  for (const TimePoint t : walked) walked_text.push_back(show(t));
  ASSERT_EQ(walked_text, naive_text) << label;
  // From every probed instant, both directions agree with the naive neighbours (when those lie in the window).
  std::size_t next_index = 0;
  for (TimePoint t = begin; t < end; t += step * 7) {
    while (next_index < naive.size() && naive[next_index] <= t) ++next_index;
    if (next_index < naive.size()) {
      ASSERT_EQ(show(schedule.next_after(t)), show(naive[next_index])) << label << " next_after " << show(t);
    }
    if (next_index > 0) {
      ASSERT_EQ(show(schedule.last_at_or_before(t)), show(naive[next_index - 1]))
          << label << " last_at_or_before " << show(t);
    }
  }
}

TEST(CronBruteForce, UtcMinuteByMinute) {
  std::mt19937 rng(20260329);
  for (int i = 0; i < 60; ++i) {
    const Expected e = random_expression(rng, false);
    const CronSchedule schedule = must_parse(e.text);
    // Random 4-week windows in 2023-2030 (leap year 2024 and 2028 included).
    const TimePoint begin = utc(2023, 1, 1) + minutes(std::uniform_int_distribution<int>(0, 8 * 365 * 1440)(rng));
    cross_check(
        schedule, begin, begin + days(28), minutes(1), [&](std::chrono::sys_seconds t) { return e.matches(t); },
        "\"" + e.text + "\" from " + show(begin));
  }
}

TEST(CronBruteForce, UtcSecondBySecond) {
  std::mt19937 rng(4242);
  for (int i = 0; i < 15; ++i) {
    const Expected e = random_expression(rng, true);
    const CronSchedule schedule = must_parse(e.text);
    const TimePoint begin = utc(2026, 2, 27) + seconds(std::uniform_int_distribution<int>(0, 86'400)(rng));
    cross_check(
        schedule, begin, begin + days(2), seconds(1), [&](std::chrono::sys_seconds t) { return e.matches(t); },
        "\"" + e.text + "\" from " + show(begin));
  }
}

// A zone with one spring-forward and one fall-back transition, written out by hand for the naive model.
struct ZoneModel {
  const char* name;
  seconds standard, daylight;
  TimePoint spring, fall;  // UTC instants of the transitions

  seconds offset(TimePoint t) const { return t >= spring && t < fall ? daylight : standard; }
  // Whether UTC instant u is a slot under the documented DST rules.
  bool is_slot(const Expected& e, std::chrono::sys_seconds u) const {
    if (u >= fall && u < fall + (daylight - standard)) return false;  // second pass of the repeated hour
    const std::chrono::sys_seconds local = u + offset(u);
    if (e.matches(local)) return true;
    if (u == spring) {  // any slot in the gap fires at the transition
      for (auto l = local - (daylight - standard); l < local; l += seconds(1)) {
        if (e.matches(l)) return true;
      }
    }
    return false;
  }
};

TEST(CronBruteForce, ZonesAcrossDstTransitions) {
  const ZoneModel zones[] = {
      {"Europe/Berlin", hours(1), hours(2), utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)},
      {"America/New_York", hours(-5), hours(-4), utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)},
  };
  std::mt19937 rng(1025);
  for (const ZoneModel& zone : zones) {
    for (int i = 0; i < 40; ++i) {
      Expected e = random_expression(rng, false);
      if (i % 2 == 0) {  // make the transition hours likely
        const std::string hours_text = i % 4 == 0 ? "1-3" : "*/2";
        e.hour.clear();
        for (int h = i % 4 == 0 ? 1 : 0; h <= (i % 4 == 0 ? 3 : 23); h += i % 4 == 0 ? 1 : 2) e.hour.insert(h);
        const std::size_t a = e.text.find(' ');
        const std::size_t b = e.text.find(' ', a + 1);
        e.text = e.text.substr(0, a + 1) + hours_text + e.text.substr(b);
      }
      const CronSchedule schedule = must_parse(e.text, zone.name);
      for (const TimePoint transition : {zone.spring, zone.fall}) {
        cross_check(
            schedule, transition - days(3), transition + days(3), minutes(1),
            [&](std::chrono::sys_seconds u) { return zone.is_slot(e, u); },
            "\"" + e.text + "\" in " + zone.name + " near " + show(transition));
      }
    }
  }
}

}  // namespace
}  // namespace atrium::jobs
