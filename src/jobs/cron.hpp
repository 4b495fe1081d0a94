#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::jobs {

// A cron schedule: "min hour dom month dow", or "sec min hour dom month dow", evaluated in one time zone.
//
// Syntax per field: * | N | N-M | */S | N-M/S | N/S (N to the field's maximum, every S) and comma lists of these.
// Ranges: second 0-59, minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or
// SUN-SAT (0 and 7 are Sunday); names are case-insensitive; a step is 1 to the number of values in the field; a range
// must not run backwards. Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly (second 0).
// Days follow Vixie cron: if day-of-month and day-of-week are both restricted, a day matches when EITHER matches;
// if either field starts with '*' (including "*/2"), a day must match both.
//
// Time zones: "UTC" or an IANA name from the system tz database. Slots are local wall-clock times, mapped to UTC so:
//  - a local time that does not exist (spring-forward gap) fires once, at the first instant after the gap (the
//    transition itself); every slot inside one gap collapses into that single firing;
//  - a local time that occurs twice (fall back) fires only at its first occurrence.
// Beyond the last transition in the system tz data (2037 for "fat" TZif files) the last offset is used.
//
// Results are whole seconds. Instances are immutable; concurrent const calls are safe.
class CronSchedule {
 public:
  // Errors: Errc::invalid_argument naming the wrong field and why, or the unknown time zone; Errc::unavailable when
  // the tz database cannot be read.
  static Result<CronSchedule> parse(std::string_view expression, std::string_view time_zone = "UTC");

  // The first slot strictly after `t`, or nullopt if none within 5 years of `t` (e.g. "0 0 30 2 *").
  std::optional<std::chrono::system_clock::time_point> next_after(std::chrono::system_clock::time_point t) const;
  // The last slot at or before `t`, or nullopt if none within the 5 years before `t`.
  std::optional<std::chrono::system_clock::time_point> last_at_or_before(std::chrono::system_clock::time_point t) const;

  const std::string& expression() const { return expression_; }
  const std::string& time_zone() const { return time_zone_; }

 private:
  CronSchedule() = default;

  std::string expression_;
  std::string time_zone_;
  const void* zone_ = nullptr;  // const date::time_zone*, owned by the process-wide tz database; nullptr is UTC
  std::uint64_t seconds_ = 0;   // bit n: second n
  std::uint64_t minutes_ = 0;   // bit n: minute n
  std::uint32_t hours_ = 0;     // bit n: hour n
  std::uint32_t days_ = 0;      // bit n: day-of-month n (1-31)
  std::uint32_t months_ = 0;    // bit n: month n (1-12)
  std::uint32_t weekdays_ = 0;  // bit n: weekday n (0 = Sunday .. 6)
  bool days_star_ = false;      // day-of-month field starts with '*'
  bool weekdays_star_ = false;  // day-of-week field starts with '*'

  friend class CronSearch;
};

}  // namespace atrium::jobs
