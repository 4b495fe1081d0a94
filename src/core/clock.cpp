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

}  // namespace atrium
