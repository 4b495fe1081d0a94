#include "core/time.hpp"

#include <gtest/gtest.h>

#include "core/clock.hpp"

namespace atrium {
namespace {

using namespace std::chrono_literals;

TEST(Time, UnixConversionsRoundTrip) {
  EXPECT_EQ(unix_seconds(from_unix_seconds(1'775'001'600)), 1'775'001'600);
  EXPECT_EQ(unix_ms(from_unix_ms(1'775'001'600'123)), 1'775'001'600'123);
  EXPECT_EQ(unix_ms(from_unix_seconds(2)), 2000);
  EXPECT_EQ(from_unix_ms(1500) - from_unix_seconds(1), 500ms);
}

TEST(Time, IntegersRoundDownBeforeTheEpochToo) {
  // One millisecond before 1970 lies in second -1 and millisecond -1, not in second 0.
  const Instant before = from_unix_ms(-1);
  EXPECT_EQ(unix_seconds(before), -1);
  EXPECT_EQ(unix_ms(before), -1);
  const Instant fraction = from_unix_ms(1999) + 999us;
  EXPECT_EQ(unix_seconds(fraction), 1);
  EXPECT_EQ(unix_ms(fraction), 1999);
}

TEST(Time, ClockReadingsAreInstantsAndRfc3339KeepsMilliseconds) {
  ManualClock clock(from_unix_ms(1'775'001'600'123) + 456us);
  const Instant now = clock.now();
  EXPECT_EQ(format_rfc3339(now), "2026-04-01T00:00:00.123Z");
  EXPECT_EQ(parse_rfc3339("2026-04-01T00:00:00.123Z"), from_unix_ms(1'775'001'600'123));
  // Whole seconds, as billing keeps them.
  EXPECT_EQ(std::chrono::floor<std::chrono::seconds>(now), from_unix_seconds(1'775'001'600));
}

}  // namespace
}  // namespace atrium
