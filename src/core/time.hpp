#pragma once

#include <chrono>
#include <cstdint>

namespace atrium {

// The one type for an instant, in every module: a UTC reading of the system clock, what Clock::now() returns.
// Lengths of time are std::chrono durations, so units never mix at an interface (seconds added to an instant are
// std::chrono::seconds, never a bare number). A module keeps instants as integers only in its store, at the
// precision it documents (billing: Unix seconds; metering and jobs: Unix milliseconds), converting with these
// functions there and nowhere else.
using Instant = std::chrono::system_clock::time_point;

inline Instant from_unix_ms(std::int64_t ms) { return Instant(std::chrono::milliseconds(ms)); }
inline Instant from_unix_seconds(std::int64_t s) { return Instant(std::chrono::seconds(s)); }
// Rounded down (before 1970 too).
inline std::int64_t unix_ms(Instant t) {
  return std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count();
}
inline std::int64_t unix_seconds(Instant t) {
  return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
}

}  // namespace atrium
