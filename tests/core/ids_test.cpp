#include "core/ids.hpp"

#include <gtest/gtest.h>

#include <set>

namespace atrium {
namespace {

TEST(UuidV7, HasVersionVariantAndClockTimestamp) {
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(0x0123456789AB)));
  const std::string id = new_uuid_v7(clock);
  ASSERT_TRUE(is_uuid(id)) << id;
  EXPECT_EQ(id.substr(0, 13), "01234567-89ab");
  EXPECT_EQ(id[14], '7');
  EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
}

TEST(UuidV7, IdsAreUniqueAndSortByTime) {
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000)));
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    clock.advance(std::chrono::milliseconds(1));
    const std::string id = new_uuid_v7(clock);
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_LT(previous, id);
    previous = id;
  }
}

TEST(IsUuid, RejectsNearMisses) {
  EXPECT_TRUE(is_uuid("0190f5a2-7b3c-7def-8123-456789abcdef"));
  EXPECT_FALSE(is_uuid("0190f5a2-7b3c-7def-8123-456789abcde"));
  EXPECT_FALSE(is_uuid("0190f5a2x7b3c-7def-8123-456789abcdef"));
  EXPECT_FALSE(is_uuid("0190f5a2-7b3c-7def-8123-456789abcdeg"));
  EXPECT_FALSE(is_uuid(""));
}

TEST(Rfc3339, FormatsMillisecondsInUtc) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'795'000'000'123));
  EXPECT_EQ(format_rfc3339(t), "2026-11-18T11:06:40.123Z");
}

}  // namespace
}  // namespace atrium
