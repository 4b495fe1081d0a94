#include "gateway/rate_limiter.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "storage/redis.hpp"
#include "support/test_support.hpp"

namespace atrium::gateway {
namespace {

using namespace std::chrono_literals;

enum class Kind { memory, redis };

[[maybe_unused]] void PrintTo(Kind kind, std::ostream* os) { *os << (kind == Kind::memory ? "memory" : "redis"); }

// Keys of one test never collide with another test or an earlier run on the same Redis.
std::string unique_prefix() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return "atrium-test:rl:" + std::to_string(::getpid()) + "-" + std::to_string(random()) + "-" +
         std::to_string(counter++) + ":";
}

#define REQUIRE_REDIS(url)            \
  const auto url = test::redis_url(); \
  ATRIUM_MISSING_SERVICE(!url, "ATRIUM_TEST_REDIS_URL");

// Every limiter must pass these, exactly: both read a ManualClock (the in-process one its monotonic time, the
// Redis one its wall time, handed to the script instead of Redis's TIME).
class RateLimiterTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::memory) {
      limiter_ = make_memory_rate_limiter(clock_);
      return;
    }
    REQUIRE_REDIS(url);
    auto limiter = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = unique_prefix(), .clock = &clock_});
    ASSERT_TRUE(limiter) << limiter.error().message;
    limiter_ = std::move(*limiter);
  }

  Decision decide(std::string_view key, Limit limit, std::int64_t cost = 1) {
    auto d = limiter_->decide(key, limit, cost);
    EXPECT_TRUE(d) << d.error().message;
    return d.value_or(Decision{});
  }

  // How many of `n` unit requests pass now.
  int passes(std::string_view key, Limit limit, int n) {
    int allowed = 0;
    for (int i = 0; i < n; ++i) allowed += decide(key, limit).allowed ? 1 : 0;
    return allowed;
  }

  ManualClock clock_{std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  std::unique_ptr<RateLimiter> limiter_;
};

constexpr Limit k_ten_per_second_limit{.rate = 10, .burst = 20};

TEST_P(RateLimiterTest, AFreshKeyTakesExactlyTheBurstAtOnce) {
  for (int i = 0; i < 20; ++i) {
    const Decision d = decide("k", k_ten_per_second_limit);
    ASSERT_TRUE(d.allowed) << "request " << i;
    EXPECT_EQ(d.limit, 20);
    EXPECT_EQ(d.remaining, 19 - i);
    EXPECT_EQ(d.retry_after, 0ns);
    EXPECT_EQ(d.reset_after, 100ms * (i + 1));  // the time until the key holds 20 units again
  }
  const Decision denied = decide("k", k_ten_per_second_limit);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.remaining, 0);
  EXPECT_EQ(denied.retry_after, 100ms);  // one unit comes back every 1/10 s
  EXPECT_EQ(denied.reset_after, 2s);
}

TEST_P(RateLimiterTest, DeniedRequestsSpendNothing) {
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 100), 20);
  clock_.advance(100ms);
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 100), 1);
  clock_.advance(250ms);
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 100), 2);
}

TEST_P(RateLimiterTest, RetryAfterIsExactlyWhenTheSameRequestPasses) {
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 20), 20);
  const Decision denied = decide("k", k_ten_per_second_limit);
  ASSERT_FALSE(denied.allowed);
  // Redis works in microseconds: one microsecond short of the retry time is still too early for both.
  clock_.advance(denied.retry_after - 1us);
  EXPECT_FALSE(decide("k", k_ten_per_second_limit).allowed);
  clock_.advance(1us);
  EXPECT_TRUE(decide("k", k_ten_per_second_limit).allowed);
  EXPECT_FALSE(decide("k", k_ten_per_second_limit).allowed);
}

TEST_P(RateLimiterTest, TheBucketRefillsAtTheRateUpToTheBurst) {
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 20), 20);
  clock_.advance(1s);
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 100), 10);
  clock_.advance(1h);  // idle for long: full again, never more than the burst
  const Decision first = decide("k", k_ten_per_second_limit);
  EXPECT_EQ(first.remaining, 19);
  EXPECT_EQ(passes("k", k_ten_per_second_limit, 100), 19);
}

TEST_P(RateLimiterTest, CostsAboveOneSpendThatManyUnits) {
  const Limit limit = k_ten_per_second_limit;
  for (int i = 0; i < 4; ++i) {
    const Decision d = decide("k", limit, 5);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 15 - 5 * i);
  }
  const Decision denied = decide("k", limit, 5);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.retry_after, 500ms);  // five units take 5 × 100 ms to come back
  clock_.advance(300ms);                 // three units back: a request of 5 still waits, one of 3 passes
  const Decision still = decide("k", limit, 5);
  EXPECT_FALSE(still.allowed);
  EXPECT_EQ(still.remaining, 3);
  EXPECT_EQ(still.retry_after, 200ms);
  EXPECT_TRUE(decide("k", limit, 3).allowed);
  EXPECT_FALSE(decide("k", limit, 1).allowed);
}

TEST_P(RateLimiterTest, ACostAboveTheBurstIsChargedAsTheBurst) {
  const Decision d = decide("k", k_ten_per_second_limit, 1000);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  const Decision denied = decide("k", k_ten_per_second_limit, 1000);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.retry_after, 2s);  // a full bucket again
  clock_.advance(2s);
  EXPECT_TRUE(decide("k", k_ten_per_second_limit, 1000).allowed);
}

TEST_P(RateLimiterTest, KeysAreIndependent) {
  EXPECT_EQ(passes("tenant-a", k_ten_per_second_limit, 50), 20);
  EXPECT_EQ(passes("tenant-b", k_ten_per_second_limit, 50), 20);
  EXPECT_EQ(passes("tenant-a", k_ten_per_second_limit, 50), 0);
}

TEST_P(RateLimiterTest, RatesThatDoNotDivideASecondStayWithinTheirRate) {
  // 3 per second: a unit every 333,333 µs (333,333,333 ns in-process).
  const Limit limit{.rate = 3, .burst = 1};
  int allowed = 0;
  for (int i = 0; i < 100; ++i) {
    allowed += decide("k", limit).allowed ? 1 : 0;
    clock_.advance(10ms);
  }
  // Tried every 10 ms from 0 to 990 ms: passes at 0, 340 and 680 ms (a unit is back 333.3 ms after the last pass,
  // seen at the next step); the next would be at 1020 ms.
  EXPECT_EQ(allowed, 3);
}

TEST_P(RateLimiterTest, ConcurrentCallersNeverExceedTheBurst) {
  const Limit limit{.rate = 1, .burst = 50};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 40; ++i) {
        auto d = limiter_->decide("shared", limit, 1);
        if (d && d->allowed) ++allowed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 50);
}

INSTANTIATE_TEST_SUITE_P(Limiters, RateLimiterTest, ::testing::Values(Kind::memory, Kind::redis),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return info.param == Kind::memory ? "memory" : "redis";
                         });

TEST(MemoryRateLimiterTest, BusyKeysSurviveWhenTheTableIsFull) {
  ManualClock clock{std::chrono::system_clock::time_point{}};
  auto limiter = make_memory_rate_limiter(clock, {.max_keys = 4, .shards = 1});
  const Limit limit{.rate = 1, .burst = 10};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter->decide("busy", limit, 1)->allowed);
  // A thousand one-off keys pass through a table of four: the keys closest to a full bucket are the ones forgotten.
  for (int i = 0; i < 1000; ++i) {
    auto d = limiter->decide("once-" + std::to_string(i), limit, 1);
    ASSERT_TRUE(d && d->allowed) << i;
    EXPECT_EQ(d->remaining, 9);
  }
  auto busy = limiter->decide("busy", limit, 1);
  ASSERT_TRUE(busy);
  EXPECT_FALSE(busy->allowed) << "the busy key's state was forgotten";
}

TEST(MemoryRateLimiterTest, KeysWithAFullBucketAreDroppedWithoutChangingAnyDecision) {
  ManualClock clock{std::chrono::system_clock::time_point{}};
  auto limiter = make_memory_rate_limiter(clock, {.max_keys = 8, .shards = 1});
  const Limit limit{.rate = 10, .burst = 2};
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < 8; ++k) {
      const std::string key = "r" + std::to_string(round) + "-" + std::to_string(k);
      EXPECT_TRUE(limiter->decide(key, limit, 1)->allowed);
      EXPECT_TRUE(limiter->decide(key, limit, 1)->allowed);
      EXPECT_FALSE(limiter->decide(key, limit, 1)->allowed);
    }
    clock.advance(200ms);  // every key of this round is full again
  }
}

TEST(MemoryRateLimiterTest, ManyKeysOverManyShardsEachKeepTheirOwnState) {
  ManualClock clock{std::chrono::system_clock::time_point{}};
  auto limiter = make_memory_rate_limiter(clock, {.max_keys = 100'000});
  const Limit limit{.rate = 1, .burst = 2};
  for (int pass = 0; pass < 3; ++pass) {
    for (int k = 0; k < 20'000; ++k) {
      auto d = limiter->decide("key-" + std::to_string(k), limit, 1);
      ASSERT_TRUE(d);
      ASSERT_EQ(d->allowed, pass < 2) << "key " << k << " pass " << pass;
    }
  }
}

class RedisRateLimiterTest : public ::testing::Test {};

TEST_F(RedisRateLimiterTest, TwoLimitersOnOneRedisShareTheLimit) {
  REQUIRE_REDIS(url);
  ManualClock clock{std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  const std::string prefix = unique_prefix();
  auto a = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = prefix, .clock = &clock});
  auto b = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = prefix, .clock = &clock});
  ASSERT_TRUE(a && b);
  int allowed = 0;
  for (int i = 0; i < 50; ++i) {
    auto d = (i % 2 == 0 ? *a : *b)->decide("tenant", k_ten_per_second_limit, 1);
    ASSERT_TRUE(d) << d.error().message;
    allowed += d->allowed ? 1 : 0;
  }
  EXPECT_EQ(allowed, 20);
}

TEST_F(RedisRateLimiterTest, RedissOwnClockDecidesWithoutAnInjectedOne) {
  REQUIRE_REDIS(url);
  auto limiter = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = unique_prefix()});
  ASSERT_TRUE(limiter);
  const Limit limit{.rate = 1, .burst = 5};
  const auto start = std::chrono::steady_clock::now();
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    auto d = (*limiter)->decide("k", limit, 1);
    ASSERT_TRUE(d) << d.error().message;
    allowed += d->allowed ? 1 : 0;
  }
  // Redis's TIME moves on while the loop runs: at most one unit per elapsed second (plus one) may come back.
  const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  EXPECT_GE(allowed, 5);
  EXPECT_LE(allowed, 5 + elapsed.count() + 1);
}

TEST_F(RedisRateLimiterTest, AFlushedScriptCacheFallsBackToEval) {
  REQUIRE_REDIS(url);
  ManualClock clock{std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  auto limiter = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = unique_prefix(), .clock = &clock});
  ASSERT_TRUE(limiter);
  const Limit limit{.rate = 1, .burst = 2};
  ASSERT_TRUE((*limiter)->decide("k", limit, 1)->allowed);
  auto endpoint = storage::parse_redis_url(*url);
  ASSERT_TRUE(endpoint);
  storage::RedisClient admin(*endpoint, 2s);
  auto flushed = admin.command({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(flushed && flushed->type == storage::RedisReply::Type::status);
  auto d = (*limiter)->decide("k", limit, 1);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 0);
  EXPECT_FALSE((*limiter)->decide("k", limit, 1)->allowed);
}

TEST_F(RedisRateLimiterTest, IdleKeysExpireInRedis) {
  REQUIRE_REDIS(url);
  const std::string prefix = unique_prefix();
  auto limiter = make_redis_rate_limiter(*url, {.timeout = 2s, .key_prefix = prefix});
  ASSERT_TRUE(limiter);
  ASSERT_TRUE((*limiter)->decide("k", {.rate = 10, .burst = 20}, 1)->allowed);
  auto endpoint = storage::parse_redis_url(*url);
  storage::RedisClient admin(*endpoint, 2s);
  auto ttl = admin.command({"PTTL", prefix + "k"});
  ASSERT_TRUE(ttl && ttl->type == storage::RedisReply::Type::integer);
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 100);  // the TAT is 100 ms ahead: the key lives until its bucket is full again
}

TEST(RedisRateLimiterFailureTest, AnUnreachableServerIsUnavailableWithinTheTimeout) {
  auto limiter =
      make_redis_rate_limiter("redis://127.0.0.1:" + std::to_string(test::closed_port()), {.timeout = 200ms});
  ASSERT_TRUE(limiter);
  const auto start = std::chrono::steady_clock::now();
  auto d = (*limiter)->decide("k", k_ten_per_second_limit, 1);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(RedisRateLimiterFailureTest, MalformedUrlsAndTimeoutsAreRefused) {
  EXPECT_EQ(make_redis_rate_limiter("http://localhost").error().code, Errc::invalid_argument);
  EXPECT_EQ(make_redis_rate_limiter("redis://:secret@").error().code, Errc::invalid_argument);
  EXPECT_EQ(make_redis_rate_limiter("redis://localhost", {.timeout = 0ms}).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace atrium::gateway
