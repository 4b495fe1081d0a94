#pragma once

// UTC days as the analytics code counts them, for its .cpp files: a day is a number since 1970-01-01 (Unix seconds
// / 86,400, Unix ms / 86,400,000), written YYYY-MM-DD.

#include <cstdint>
#include <string>

#include "analytics/saas_metrics.hpp"
#include "core/clock.hpp"

namespace atrium::analytics {

inline constexpr std::int64_t k_day_seconds = 86'400;
inline constexpr std::int64_t k_day_ms = 86'400'000;

// Midnight UTC of day number `day`.
inline Instant day_start(std::int64_t day) { return from_unix_seconds(day * k_day_seconds); }
// YYYY-MM-DD of the UTC day holding `t`.
inline std::string date_of(Instant t) { return format_rfc3339(t).substr(0, 10); }

inline const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::day: return "day";
    case Granularity::week: return "week";
    case Granularity::month: return "month";
  }
  return "month";
}

}  // namespace atrium::analytics
