#include "core/ids.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

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

TEST(UuidV7, IdsIncreaseWithinOneMillisecondAcrossThreads) {
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'000)));
  std::vector<std::vector<std::string>> made(4);
  std::vector<std::thread> threads;
  for (auto& out : made) {
    threads.emplace_back([&clock, &out] {
      for (int i = 0; i < 3000; ++i) out.push_back(new_uuid_v7(clock));  // 12,000 ids: the counter overflows
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& out : made) {
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
    EXPECT_EQ(std::adjacent_find(out.begin(), out.end()), out.end());
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 12'000u);
}

// The random bits are drawn from a per-thread pool: a forked child must not hand out what its parent will (same
// clock, same counter state and the same pool would make the same id in both).
TEST(UuidV7, AForkedChildMakesDifferentIdsThanItsParent) {
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(1'900'000'000'000)));
  (void)new_uuid_v7(clock);  // the pool of this thread is filled before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    const std::string id = new_uuid_v7(clock);
    const bool written = write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
    _exit(written ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent_id = new_uuid_v7(clock);
  std::string child_id(36, '\0');
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10'000), 1) << "the child wrote nothing within 10 s";
  EXPECT_EQ(read(fds[0], child_id.data(), child_id.size()), 36);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(is_uuid(child_id)) << child_id;
  // Same clock and same counter state in both: only the random bits keep them apart.
  EXPECT_NE(child_id, parent_id);
  EXPECT_NE(child_id.substr(19), parent_id.substr(19));
}

// Many ids from one thread use the pool past its refill: still unique.
TEST(UuidV7, IdsStayUniqueAcrossPoolRefills) {
  ManualClock clock(std::chrono::system_clock::time_point(std::chrono::milliseconds(1'950'000'000'000)));
  std::set<std::string> seen;
  for (int i = 0; i < 5000; ++i) EXPECT_TRUE(seen.insert(new_uuid_v7(clock)).second);  // 50 KB of random bytes
}

TEST(Rfc3339, ParsesOffsetsFractionsAndRefusesNonsense) {
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  EXPECT_EQ(parse_rfc3339("2026-11-18T11:06:40.123Z"), system_clock::time_point(milliseconds(1'795'000'000'123)));
  EXPECT_EQ(parse_rfc3339("2026-11-18T12:06:40.1234567+01:00"),
            system_clock::time_point(milliseconds(1'795'000'000'123)));
  EXPECT_EQ(parse_rfc3339("2026-11-18T10:36:40Z"), parse_rfc3339("2026-11-18T11:06:40+00:30"));
  for (const char* bad : {"", "2026-11-18", "2026-11-18T11:06:40", "2026-13-18T11:06:40Z", "2026-02-30T00:00:00Z",
                          "2026-11-18T24:00:00Z", "2026-11-18T11:06:40.Z", "2026-11-18T11:06:40Zjunk",
                          "2026-11-18T11:06:40+1:00", "9999-01-01T00:00:00Z", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
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
