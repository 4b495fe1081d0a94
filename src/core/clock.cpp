#include "core/clock.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <string>

namespace atrium {

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - seconds).count();
  if (ms < 0) ms += 1000;  // before 1970: keep the fraction positive
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, ms);
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view t) {
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > t.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || t.size() < 20 || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                                        std::chrono::day(static_cast<unsigned>(*day))};
  // system_clock counts nanoseconds in 64 bits: about 1678 to 2261.
  if (!ymd.ok() || *year < 1678 || *year > 2261 || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  std::size_t i = 19;
  std::int64_t ms = 0;
  if (i < t.size() && t[i] == '.') {
    std::size_t n = 0;
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++n) {
      if (n < 3) ms = ms * 10 + (t[i] - '0');
    }
    if (n == 0) return std::nullopt;
    for (; n < 3; ++n) ms *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
    if (!oh || !om || i + 6 != t.size() || t[i + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_minutes = (t[i] == '+' ? 1 : -1) * (*oh * 60 + *om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  const auto day_point = std::chrono::sys_days(ymd);
  return std::chrono::system_clock::time_point(day_point) + std::chrono::hours(*hour) +
         std::chrono::minutes(*minute - offset_minutes) + std::chrono::seconds(*second) + std::chrono::milliseconds(ms);
}

}  // namespace atrium
