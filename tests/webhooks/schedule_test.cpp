// The webhook retry schedule: the documented default (docs/configuration.md: ten retries over about three days) is
// what a default configuration parses to, and bad schedules are refused naming the entry at fault. Every other test
// runs with a short schedule of its own, so this is where a change of the default shows.
#include <gtest/gtest.h>

#include <chrono>
#include <numeric>

#include "core/config.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::webhooks {
namespace {

using namespace std::chrono_literals;

TEST(WebhookScheduleTest, TheDefaultIsTenRetriesOverAboutThreeDays) {
  auto schedule = parse_schedule(Config{}.webhooks.retry_schedule);
  ASSERT_TRUE(schedule) << schedule.error().message;
  const std::vector<std::chrono::milliseconds> expected = {30s, 2min, 10min, 30min, 1h, 3h, 6h, 12h, 24h, 24h};
  EXPECT_EQ(*schedule, expected);
  const auto total = std::accumulate(schedule->begin(), schedule->end(), std::chrono::milliseconds{0});
  EXPECT_EQ(total, 70h + 42min + 30s);  // "about three days": the last attempt 2 days 22 h after the first
  EXPECT_GT(total, 48h);
  EXPECT_LT(total, 72h);
}

TEST(WebhookScheduleTest, EveryUnitAndSpacesAroundEntries) {
  auto schedule = parse_schedule(" 5s, 1m ,2h,1d,250ms");
  ASSERT_TRUE(schedule) << schedule.error().message;
  EXPECT_EQ(*schedule, (std::vector<std::chrono::milliseconds>{5s, 1min, 2h, 24h, 250ms}));
}

TEST(WebhookScheduleTest, BadSchedulesAreRefusedNamingTheEntry) {
  for (const auto& [text, named] : std::vector<std::pair<std::string, std::string>>{{"", "\"\""},
                                                                                    {"0s", "\"0s\""},
                                                                                    {"-5s", "\"-5s\""},
                                                                                    {"10", "\"10\""},
                                                                                    {"10x", "\"10x\""},
                                                                                    {"0ms", "\"0ms\""},
                                                                                    {"5 ms", "\"5 ms\""},
                                                                                    {"1s,,2s", "\"\""},
                                                                                    {"1s,2w", "\"2w\""},
                                                                                    {"1000001s", "\"1000001s\""}}) {
    auto r = parse_schedule(text);
    ASSERT_FALSE(r) << "accepted \"" << text << "\"";
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << text;
    EXPECT_NE(r.error().message.find(named), std::string::npos) << text << ": " << r.error().message;
  }
  std::string fifty_one = "1s";
  for (int i = 0; i < 50; ++i) fifty_one += ",1s";
  auto r = parse_schedule(fifty_one);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("1-50 entries"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace atrium::webhooks
