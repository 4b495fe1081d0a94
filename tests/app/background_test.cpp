// The platform's background work as configured (src/app/background.cpp): jobs.concurrency is read as
// "<queue>=<0-256>" pairs, and the errors name the key and the item.
#include "app/background.hpp"

#include <gtest/gtest.h>

namespace atrium::app {
namespace {

TEST(BackgroundConcurrency, PairsOfQueueAndThreadCount) {
  auto parsed = parse_concurrency("default=4,webhooks=2,email=0,reports=256");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, (std::map<std::string, int>{{"default", 4}, {"webhooks", 2}, {"email", 0}, {"reports", 256}}));
  auto empty = parse_concurrency("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto last_wins = parse_concurrency("default=1,default=3");
  ASSERT_TRUE(last_wins);
  EXPECT_EQ(last_wins->at("default"), 3);
}

TEST(BackgroundConcurrency, AnythingElseIsRefusedNamingTheKeyAndTheItem) {
  for (const std::string bad : {"default", "default=", "=4", "default=-1", "default=257", "default=4x", "Bad Queue=1",
                                "default=1,,webhooks=2", "default=99999999999"}) {
    auto r = parse_concurrency(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
    EXPECT_NE(r.error().message.find("jobs.concurrency"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace atrium::app
