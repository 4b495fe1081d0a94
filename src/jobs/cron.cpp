#include "jobs/cron.hpp"

// The system tz database (/usr/share/zoneinfo), no downloads. These must match how libdate-tz was built (the CMake
// target date::date-tz defines USE_OS_TZDB=1); defaulted here so a build without the definitions does not silently
// use the other, ABI-incompatible layout of date::time_zone.
#ifndef USE_OS_TZDB
#define USE_OS_TZDB 1
#endif
#ifndef HAS_REMOTE_API
#define HAS_REMOTE_API 0
#endif
#include <date/tz.h>

#include <array>
#include <bit>
#include <cctype>
#include <exception>
#include <initializer_list>
#include <utility>
#include <vector>

namespace atrium::jobs {

namespace {

using std::chrono::seconds;
using SysSeconds = date::sys_seconds;
using LocalSeconds = date::local_seconds;
using LocalDays = date::local_days;

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kWeekdayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

enum class Names { none, months, weekdays };

struct FieldSpec {
  std::string_view name;
  int min;      // smallest value accepted
  int max;      // largest value accepted (7 for day-of-week, an alias of 0)
  int star_hi;  // upper end of '*' and of "N/S"
  int count;    // number of distinct values; the largest step
  Names names;
};

constexpr FieldSpec kSecond{"second", 0, 59, 59, 60, Names::none};
constexpr FieldSpec kMinute{"minute", 0, 59, 59, 60, Names::none};
constexpr FieldSpec kHour{"hour", 0, 23, 23, 24, Names::none};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, 31, 31, Names::none};
constexpr FieldSpec kMonth{"month", 1, 12, 12, 12, Names::months};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, 6, 7, Names::weekdays};

constexpr seconds kHorizon = std::chrono::duration_cast<seconds>(std::chrono::years(5));
// Local days searched: the horizon plus slack for the largest UTC offsets; the horizon is then checked exactly.
constexpr date::days kSearchDays{5 * 366 + 2};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Joins pieces into one message (appending rather than operator+, which trips GCC 12's -Wrestrict at -O3).
std::string concat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (const std::string_view piece : pieces) out.append(piece);
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::unexpected<Error> field_error(const FieldSpec& spec, std::string_view field, std::string_view why) {
  return fail(Errc::invalid_argument,
              concat({"invalid cron expression: ", spec.name, " field \"", field, "\": ", why}));
}

// A number or (in month and day-of-week) a three-letter name; range-checked against the field.
Result<int> parse_value(const FieldSpec& spec, std::string_view field, std::string_view text) {
  if (text.empty()) return field_error(spec, field, "missing value");
  const unsigned char first = static_cast<unsigned char>(text.front());
  if (std::isalpha(first)) {
    const std::string name = lower(text);
    if (spec.names == Names::months) {
      for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
        if (name == kMonthNames[i]) return static_cast<int>(i) + 1;
      }
      return field_error(spec, field, concat({"\"", text, "\" is not a month name (JAN-DEC)"}));
    }
    if (spec.names == Names::weekdays) {
      for (std::size_t i = 0; i < kWeekdayNames.size(); ++i) {
        if (name == kWeekdayNames[i]) return static_cast<int>(i);
      }
      return field_error(spec, field, concat({"\"", text, "\" is not a day name (SUN-SAT)"}));
    }
    return field_error(spec, field, concat({"\"", text, "\" is not a number"}));
  }
  long value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return field_error(spec, field, concat({"\"", text, "\" is not a number"}));
    if (value <= 1'000'000) value = value * 10 + (c - '0');
  }
  if (value < spec.min || value > spec.max) {
    return field_error(spec, field,
                       concat({text, " is out of range ", std::to_string(spec.min), "-", std::to_string(spec.max)}));
  }
  return static_cast<int>(value);
}

struct ParsedField {
  std::uint64_t bits = 0;
  bool star = false;  // starts with '*' (Vixie's DOM_STAR / DOW_STAR)
};

// item := ( '*' | value | value '-' value ) [ '/' step ]; field := item { ',' item }
Result<ParsedField> parse_field(const FieldSpec& spec, std::string_view field) {
  ParsedField out;
  out.star = !field.empty() && field.front() == '*';
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = field.find(',', pos);
    const std::string_view item = field.substr(pos, comma == std::string_view::npos ? field.npos : comma - pos);
    if (item.empty()) return field_error(spec, field, "empty list item");

    std::string_view base = item;
    int step = 1;
    bool has_step = false;
    if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
      base = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      if (step_text.empty()) return field_error(spec, field, "missing step after '/'");
      long value = 0;
      for (const char c : step_text) {
        if (c < '0' || c > '9') {
          return field_error(spec, field, concat({"step \"", step_text, "\" is not a number"}));
        }
        if (value <= 1'000'000) value = value * 10 + (c - '0');
      }
      if (value < 1 || value > spec.count) {
        return field_error(spec, field,
                           concat({"step ", step_text, " is out of range 1-", std::to_string(spec.count)}));
      }
      step = static_cast<int>(value);
      has_step = true;
    }

    int lo = 0;
    int hi = 0;
    if (base == "*") {
      lo = spec.min;
      hi = spec.star_hi;
    } else if (const std::size_t dash = base.find('-'); dash != std::string_view::npos) {
      auto first = parse_value(spec, field, base.substr(0, dash));
      if (!first) return std::unexpected(std::move(first.error()));
      auto last = parse_value(spec, field, base.substr(dash + 1));
      if (!last) return std::unexpected(std::move(last.error()));
      lo = *first;
      hi = *last;
      if (lo > hi) return field_error(spec, field, concat({"range ", base, " runs backwards"}));
    } else {
      auto value = parse_value(spec, field, base);
      if (!value) return std::unexpected(std::move(value.error()));
      lo = *value;
      hi = has_step ? std::max(*value, spec.star_hi) : *value;  // "N/S": from N to the end of the field
    }
    for (int v = lo; v <= hi; v += step) out.bits |= std::uint64_t{1} << (spec.names == Names::weekdays ? v % 7 : v);

    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

// Smallest set bit >= from, or -1.
int next_bit(std::uint64_t bits, int from) {
  if (from < 0) from = 0;
  if (from >= 64) return -1;
  const std::uint64_t rest = bits & (~std::uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// Largest set bit <= from, or -1.
int prev_bit(std::uint64_t bits, int from) {
  if (from < 0) return -1;
  const std::uint64_t rest = from >= 63 ? bits : bits & ((std::uint64_t{1} << (from + 1)) - 1);
  return rest == 0 ? -1 : 63 - std::countl_zero(rest);
}

}  // namespace

// The search, in local wall-clock time, then mapped to UTC (see the DST rules in the header).
//
// f(local) -> UTC: unique -> itself; in a gap -> the transition; ambiguous -> first occurrence. f never decreases, so
// the answer to next_after(t) is f(first matching local >= L0) where L0 is the least local time with f(L0) > t, and
// last_at_or_before(t) is f(last matching local <= L1) where L1 is the greatest local time with f(L1) <= t.
class CronSearch {
 public:
  explicit CronSearch(const CronSchedule& s) : s_(s), zone_(static_cast<const date::time_zone*>(s.zone_)) {}

  std::optional<SysSeconds> next_after(SysSeconds t) const {
    LocalSeconds from = to_local(t) + seconds(1);
    if (zone_ != nullptr) {
      const date::local_info info = zone_->get_info(from);
      // t lies in the second pass of a fall-back fold: the repeated local times already fired in the first pass.
      if (info.result == date::local_info::ambiguous && t >= info.second.begin) {
        from = LocalSeconds((info.first.end + info.first.offset).time_since_epoch());
      }
    }
    const auto local = next_local(from, date::floor<date::days>(from) + kSearchDays);
    if (!local) return std::nullopt;
    const SysSeconds result = to_sys(*local);
    if (result - t > kHorizon) return std::nullopt;
    return result;
  }

  std::optional<SysSeconds> last_at_or_before(SysSeconds t) const {
    LocalSeconds from = to_local(t);
    if (zone_ != nullptr) {
      const date::local_info info = zone_->get_info(from);
      // In the second pass of a fold every repeated local time maps to its (past) first occurrence.
      if (info.result == date::local_info::ambiguous && t >= info.second.begin) {
        from = LocalSeconds((info.first.end + info.first.offset).time_since_epoch()) - seconds(1);
      }
    }
    const auto local = prev_local(from, date::floor<date::days>(from) - kSearchDays);
    if (!local) return std::nullopt;
    const SysSeconds result = to_sys(*local);
    if (t - result > kHorizon) return std::nullopt;
    return result;
  }

 private:
  LocalSeconds to_local(SysSeconds t) const {
    if (zone_ == nullptr) return LocalSeconds(t.time_since_epoch());
    return LocalSeconds((t + zone_->get_info(t).offset).time_since_epoch());
  }

  SysSeconds to_sys(LocalSeconds local) const {
    if (zone_ == nullptr) return SysSeconds(local.time_since_epoch());
    const date::local_info info = zone_->get_info(local);
    if (info.result == date::local_info::nonexistent) return info.second.begin;  // the first instant after the gap
    return SysSeconds(local.time_since_epoch() - info.first.offset);             // unique, or the first occurrence
  }

  bool day_matches(const date::year_month_day& ymd, date::weekday weekday) const {
    const bool dom = (s_.days_ >> static_cast<unsigned>(ymd.day())) & 1U;
    const bool dow = (s_.weekdays_ >> weekday.c_encoding()) & 1U;
    if (s_.days_star_ || s_.weekdays_star_) return dom && dow;
    return dom || dow;
  }

  bool month_matches(const date::year_month_day& ymd) const {
    return (s_.months_ >> static_cast<unsigned>(ymd.month())) & 1U;
  }

  // Earliest matching second of the day at or after `from` (seconds since midnight).
  std::optional<int> next_time_of_day(int from) const {
    const int hour = from / 3600, minute = from / 60 % 60, second = from % 60;
    for (int h = next_bit(s_.hours_, hour); h >= 0; h = next_bit(s_.hours_, h + 1)) {
      for (int m = next_bit(s_.minutes_, h == hour ? minute : 0); m >= 0; m = next_bit(s_.minutes_, m + 1)) {
        const int sec = next_bit(s_.seconds_, h == hour && m == minute ? second : 0);
        if (sec >= 0) return h * 3600 + m * 60 + sec;
      }
    }
    return std::nullopt;
  }

  // Latest matching second of the day at or before `from`.
  std::optional<int> prev_time_of_day(int from) const {
    const int hour = from / 3600, minute = from / 60 % 60, second = from % 60;
    for (int h = prev_bit(s_.hours_, hour); h >= 0; h = prev_bit(s_.hours_, h - 1)) {
      for (int m = prev_bit(s_.minutes_, h == hour ? minute : 59); m >= 0; m = prev_bit(s_.minutes_, m - 1)) {
        const int sec = prev_bit(s_.seconds_, h == hour && m == minute ? second : 59);
        if (sec >= 0) return h * 3600 + m * 60 + sec;
      }
    }
    return std::nullopt;
  }

  // Earliest matching local time >= from, on a day no later than `last_day`.
  std::optional<LocalSeconds> next_local(LocalSeconds from, LocalDays last_day) const {
    LocalDays day = date::floor<date::days>(from);
    int time_of_day = static_cast<int>((from - day).count());
    while (day <= last_day) {
      const date::year_month_day ymd(day);
      if (!month_matches(ymd)) {  // jump to the first day of the next matching month
        const int month = next_bit(s_.months_, static_cast<int>(static_cast<unsigned>(ymd.month())) + 1);
        day = month >= 0 ? LocalDays(ymd.year() / date::month(static_cast<unsigned>(month)) / 1)
                         : LocalDays((ymd.year() + date::years(1)) /
                                     date::month(static_cast<unsigned>(next_bit(s_.months_, 1))) / 1);
        time_of_day = 0;
        continue;
      }
      if (day_matches(ymd, date::weekday(day))) {
        if (const auto found = next_time_of_day(time_of_day)) return LocalSeconds(day) + seconds(*found);
      }
      day += date::days(1);
      time_of_day = 0;
    }
    return std::nullopt;
  }

  // Latest matching local time <= from, on a day no earlier than `first_day`.
  std::optional<LocalSeconds> prev_local(LocalSeconds from, LocalDays first_day) const {
    constexpr int kLastSecond = 86'399;
    LocalDays day = date::floor<date::days>(from);
    int time_of_day = static_cast<int>((from - day).count());
    while (day >= first_day) {
      const date::year_month_day ymd(day);
      if (!month_matches(ymd)) {  // jump to the last day of the previous matching month
        const int month = prev_bit(s_.months_, static_cast<int>(static_cast<unsigned>(ymd.month())) - 1);
        day = month >= 0 ? LocalDays(ymd.year() / date::month(static_cast<unsigned>(month)) / date::last)
                         : LocalDays((ymd.year() - date::years(1)) /
                                     date::month(static_cast<unsigned>(prev_bit(s_.months_, 12))) / date::last);
        time_of_day = kLastSecond;
        continue;
      }
      if (day_matches(ymd, date::weekday(day))) {
        if (const auto found = prev_time_of_day(time_of_day)) return LocalSeconds(day) + seconds(*found);
      }
      day -= date::days(1);
      time_of_day = kLastSecond;
    }
    return std::nullopt;
  }

  const CronSchedule& s_;
  const date::time_zone* zone_;
};

Result<CronSchedule> CronSchedule::parse(std::string_view expression, std::string_view time_zone) {
  std::vector<std::string_view> fields = split_fields(expression);
  if (fields.empty()) return fail(Errc::invalid_argument, "invalid cron expression: it is empty");

  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kMacros = {{
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  }};
  if (fields.front().starts_with('@')) {
    if (fields.size() != 1) {
      return fail(Errc::invalid_argument,
                  concat({"invalid cron expression: ", fields.front(), " must be the whole expression"}));
    }
    const std::string macro = lower(fields.front());
    std::string_view expansion;
    for (const auto& [name, value] : kMacros) {
      if (macro == name) expansion = value;
    }
    if (expansion.empty()) {
      return fail(Errc::invalid_argument,
                  concat({"invalid cron expression: unknown macro ", fields.front(),
                          " (supported: @yearly @annually @monthly @weekly @daily @midnight @hourly)"}));
    }
    fields = split_fields(expansion);
  }
  if (fields.size() != 5 && fields.size() != 6) {
    return fail(Errc::invalid_argument,
                concat({"invalid cron expression: expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                        "(second first), got ",
                        std::to_string(fields.size())}));
  }

  CronSchedule schedule;
  const std::size_t first = fields.size() == 6 ? 1 : 0;
  if (first == 1) {
    auto seconds_field = parse_field(kSecond, fields[0]);
    if (!seconds_field) return std::unexpected(std::move(seconds_field.error()));
    schedule.seconds_ = seconds_field->bits;
  } else {
    schedule.seconds_ = 1;  // second 0
  }
  auto minutes = parse_field(kMinute, fields[first]);
  if (!minutes) return std::unexpected(std::move(minutes.error()));
  auto hours = parse_field(kHour, fields[first + 1]);
  if (!hours) return std::unexpected(std::move(hours.error()));
  auto days = parse_field(kDayOfMonth, fields[first + 2]);
  if (!days) return std::unexpected(std::move(days.error()));
  auto months = parse_field(kMonth, fields[first + 3]);
  if (!months) return std::unexpected(std::move(months.error()));
  auto weekdays = parse_field(kDayOfWeek, fields[first + 4]);
  if (!weekdays) return std::unexpected(std::move(weekdays.error()));
  schedule.minutes_ = minutes->bits;
  schedule.hours_ = static_cast<std::uint32_t>(hours->bits);
  schedule.days_ = static_cast<std::uint32_t>(days->bits);
  schedule.months_ = static_cast<std::uint32_t>(months->bits);
  schedule.weekdays_ = static_cast<std::uint32_t>(weekdays->bits);
  schedule.days_star_ = days->star;
  schedule.weekdays_star_ = weekdays->star;

  if (time_zone.empty()) return fail(Errc::invalid_argument, "invalid time zone: it is empty");
  if (time_zone != "UTC") {
    try {
      (void)date::get_tzdb();
    } catch (const std::exception& e) {
      return fail(Errc::unavailable, concat({"time zone database not available: ", e.what()}));
    }
    try {
      schedule.zone_ = date::locate_zone(time_zone);
    } catch (const std::exception&) {
      return fail(Errc::invalid_argument, concat({"unknown time zone \"", time_zone, "\""}));
    }
  }
  schedule.expression_ = std::string(expression);
  schedule.time_zone_ = std::string(time_zone);
  return schedule;
}

std::optional<std::chrono::system_clock::time_point> CronSchedule::next_after(
    std::chrono::system_clock::time_point t) const {
  using TimePoint = std::chrono::system_clock::time_point;
  const auto found = CronSearch(*this).next_after(std::chrono::floor<seconds>(t));
  if (!found || *found > std::chrono::floor<seconds>(TimePoint::max())) return std::nullopt;
  return std::chrono::time_point_cast<TimePoint::duration>(*found);
}

std::optional<std::chrono::system_clock::time_point> CronSchedule::last_at_or_before(
    std::chrono::system_clock::time_point t) const {
  using TimePoint = std::chrono::system_clock::time_point;
  const auto found = CronSearch(*this).last_at_or_before(std::chrono::floor<seconds>(t));
  if (!found || *found < std::chrono::ceil<seconds>(TimePoint::min())) return std::nullopt;
  return std::chrono::time_point_cast<TimePoint::duration>(*found);
}

}  // namespace atrium::jobs
