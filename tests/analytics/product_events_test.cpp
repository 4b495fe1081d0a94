// Product events below the API (src/analytics/): the event type grammar and the reserved types' rules, the
// real-time counters by minute, and the activity marks (one per tenant, user and UTC day, kept until stored, and
// kept again when storing fails).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "analytics/activity.hpp"
#include "analytics/product_events.hpp"
#include "analytics/realtime.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "support/test_support.hpp"

namespace atrium::analytics {
namespace {

using namespace std::chrono_literals;

Instant at(const char* text) { return parse_rfc3339(text).value(); }

TEST(ProductEvents, TypesAreMetricNamesUnderTheEventPrefix) {
  EXPECT_TRUE(valid_event_type("feature.used"));
  EXPECT_TRUE(valid_event_type(std::string(58, 't')));
  EXPECT_FALSE(valid_event_type(std::string(59, 't'))) << "event: + 59 is more than a metric's 64";
  EXPECT_FALSE(valid_event_type(""));
  EXPECT_FALSE(valid_event_type(".hidden"));
  EXPECT_FALSE(valid_event_type("with space"));
  EXPECT_EQ(event_metric("nps.response"), "event:nps.response");
  EXPECT_EQ(event_type_of("event:nps.response"), "nps.response");
  EXPECT_EQ(event_type_of("api_calls"), "");
}

TEST(ProductEvents, ReservedTypesKeepTheirRules) {
  const Json none = Json::object();
  EXPECT_FALSE(check_reserved("nps.response", 0, none));
  EXPECT_FALSE(check_reserved("nps.response", 10, none));
  EXPECT_EQ(check_reserved("nps.response", 11, none)->reason, "invalid_value");
  EXPECT_FALSE(check_reserved("support.rating", 1, none));
  EXPECT_EQ(check_reserved("support.rating", 0, none)->reason, "invalid_value");
  EXPECT_EQ(check_reserved("support.rating", 6, none)->reason, "invalid_value");
  EXPECT_FALSE(check_reserved("feature.used", 1, Json{{"feature", "export"}}));
  EXPECT_EQ(check_reserved("feature.used", 1, none)->reason, "invalid_properties");
  EXPECT_EQ(check_reserved("feature.used", 1, Json{{"feature", 5}})->reason, "invalid_properties");
  EXPECT_EQ(check_reserved("feature.used", 1, Json{{"feature", ""}})->reason, "invalid_properties");
  EXPECT_FALSE(check_reserved("page.viewed", 1, Json{{"page", "cancel"}}));
  EXPECT_EQ(check_reserved("page.viewed", 1, none)->reason, "invalid_properties");
  EXPECT_EQ(check_reserved("user.active", 1, none)->reason, "reserved_type");
  EXPECT_EQ(check_reserved("user.signed_in", 1, none)->reason, "reserved_type");
  EXPECT_FALSE(check_reserved("support.ticket_opened", 123, none)) << "any value";
  EXPECT_FALSE(check_reserved("anything.else", 0, none));
}

// The real-time counters in process and in Redis (analytics.redis_url) count the same; in Redis under tenant ids of
// this run's own, so runs sharing a server do not meet.
class RealtimeTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      ATRIUM_MISSING_SERVICE(!test::redis_url(), "ATRIUM_TEST_REDIS_URL");
      endpoint_ = storage::parse_redis_url(*test::redis_url()).value();
    }
  }
  std::unique_ptr<Realtime> make(const Clock& clock, std::chrono::minutes window) {
    RealtimeOptions options;
    if (GetParam()) options.redis = endpoint_;
    return std::make_unique<Realtime>(clock, window, options);
  }
  Realtime::Series last(Realtime& r, const std::string& tenant, std::int64_t minutes) {
    auto s = r.last(tenant, minutes);
    EXPECT_TRUE(s) << s.error().message;
    return s ? *s : Realtime::Series{};
  }
  const std::string run_ = new_uuid_v7(SystemClock::instance());
  std::optional<storage::RedisEndpoint> endpoint_;
};

TEST_P(RealtimeTest, CountsByMinuteWithinTheWindowPerTenantAndType) {
  ManualClock clock(at("2026-11-30T12:00:30Z"));
  auto realtime = make(clock, 10min);
  const std::string a = run_ + "-a";
  const std::string b = run_ + "-b";
  realtime->record(a, "feature.used", at("2026-11-30T12:00:05Z"), 2);
  realtime->record(a, "feature.used", at("2026-11-30T11:58:59Z"));
  realtime->record(a, "nps.response", at("2026-11-30T11:51:00Z"));  // the oldest minute of the window
  realtime->record(a, "nps.response", at("2026-11-30T11:50:59Z"));  // just outside
  realtime->record(a, "nps.response", at("2026-11-30T12:01:00Z"));  // the future
  realtime->record(b, "feature.used", at("2026-11-30T12:00:00Z"), 7);
  // Buffered (with Redis) and then flushed, the counts read the same.
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "buffered" : "flushed");
    const auto series = last(*realtime, a, 10);
    EXPECT_EQ(series.from, at("2026-11-30T11:51:00Z"));
    EXPECT_EQ(series.minutes, 10);
    ASSERT_EQ(series.counts.size(), 2u);
    EXPECT_EQ(series.counts.at("feature.used"), (std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 0, 1, 0, 2}));
    EXPECT_EQ(series.counts.at("nps.response"), (std::vector<std::int64_t>{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    const auto short_series = last(*realtime, a, 2);
    EXPECT_EQ(short_series.counts.at("feature.used"), (std::vector<std::int64_t>{0, 2})) << "11:58:59 is minute 11:58";
    EXPECT_FALSE(short_series.counts.contains("nps.response")) << "a type without counts in the range is left out";
    EXPECT_EQ(last(*realtime, b, 1).counts.at("feature.used"), std::vector<std::int64_t>{7});
    EXPECT_TRUE(last(*realtime, run_ + "-nobody", 10).counts.empty());
    EXPECT_EQ(last(*realtime, a, 1000).minutes, 10) << "never beyond the window";
    ASSERT_TRUE(realtime->flush());
  }
  clock.advance(10min);
  EXPECT_TRUE(last(*realtime, a, 10).counts.empty()) << "everything has left the window";
}

INSTANTIATE_TEST_SUITE_P(InProcessAndRedis, RealtimeTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("Redis") : std::string("InProcess"); });

// In Redis, every instance reads what all of them counted; a tenant's buffer goes out at the seed's 100 events
// (the periodic flush is not started here), and a Redis that does not answer makes reads fail, not lie.
class SharedRealtimeTest : public RealtimeTest {};

TEST_P(SharedRealtimeTest, InstancesShareTheCountsAndFlushAtAHundredEvents) {
  ManualClock clock(at("2026-11-30T12:00:30Z"));
  auto one = make(clock, 60min);
  auto two = make(clock, 60min);
  EXPECT_TRUE(one->shared());
  const std::string t = run_ + "-t";
  for (int i = 0; i < 99; ++i) one->record(t, "page.viewed", at("2026-11-30T12:00:00Z"));
  EXPECT_TRUE(last(*two, t, 1).counts.empty()) << "99 events stay in the first instance's buffer";
  EXPECT_EQ(last(*one, t, 1).counts.at("page.viewed"), std::vector<std::int64_t>{99}) << "but it reads its own";
  one->record(t, "page.viewed", at("2026-11-30T11:59:00Z"));
  EXPECT_EQ(last(*two, t, 2).counts.at("page.viewed"), (std::vector<std::int64_t>{1, 99})) << "the 100th flushed";
  two->record(t, "page.viewed", at("2026-11-30T12:00:10Z"), 5);
  two->record(t, "nps.response", at("2026-11-30T12:00:10Z"));
  ASSERT_TRUE(two->flush());
  for (Realtime* r : {one.get(), two.get()}) {
    const auto s = last(*r, t, 2);
    EXPECT_EQ(s.counts.at("page.viewed"), (std::vector<std::int64_t>{1, 104}));
    EXPECT_EQ(s.counts.at("nps.response"), (std::vector<std::int64_t>{0, 1}));
  }
  // Nothing listens on port 1.
  RealtimeOptions away;
  away.redis = storage::RedisEndpoint{.host = "127.0.0.1", .port = 1};
  Realtime gone(clock, 60min, away);
  gone.record(t, "page.viewed", at("2026-11-30T12:00:00Z"));
  EXPECT_EQ(gone.last(t, 5).error().code, Errc::unavailable);
  EXPECT_EQ(gone.flush().error().code, Errc::unavailable);
}

INSTANTIATE_TEST_SUITE_P(Redis, SharedRealtimeTest, ::testing::Values(true),
                         [](const auto&) { return std::string("Redis"); });

class ActivityTest : public ::testing::Test {
 protected:
  Result<void> store(const std::string& tenant_id, metering::UsageBatch events) {
    if (failing_) return fail(Errc::unavailable, "store down");
    if (gone_.contains(tenant_id)) return fail(Errc::not_found, "tenant " + tenant_id + " is deleted");
    for (auto& e : events) stored_[tenant_id].push_back(*e.event);
    return {};
  }
  std::vector<std::string> keys(const std::string& tenant_id) {
    std::vector<std::string> out;
    for (const auto& e : stored_[tenant_id]) out.push_back(e.idempotency_key);
    return out;
  }

  ManualClock clock_{at("2026-11-30T09:00:00Z")};
  bool failing_ = false;
  std::set<std::string> gone_;
  std::map<std::string, std::vector<metering::UsageEvent>> stored_;
  Activity activity_{[this](const std::string& t, metering::UsageBatch e) { return store(t, std::move(e)); }, clock_,
                     std::chrono::hours(1)};
};

TEST_F(ActivityTest, OneMarkPerTenantUserAndDayStoredOnlyWhenFlushed) {
  for (int i = 0; i < 5; ++i) activity_.active("t1", "u1");
  activity_.active("t1", "u2");
  activity_.active("t2", "u1");
  EXPECT_TRUE(stored_.empty()) << "nothing is written per request";
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(keys("t1"), (std::vector<std::string>{"user.active:2026-11-30:u1", "user.active:2026-11-30:u2"}));
  EXPECT_EQ(keys("t2"), std::vector<std::string>{"user.active:2026-11-30:u1"});
  const auto& mark = stored_["t1"][0];
  EXPECT_EQ(mark.metric, "event:user.active");
  EXPECT_EQ(mark.user_id, "u1");
  EXPECT_EQ(mark.timestamp, at("2026-11-30T09:00:00Z"));
  activity_.active("t1", "u1");  // the same day again: already marked
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(stored_["t1"].size(), 2u);
  clock_.advance(std::chrono::hours(16));  // the next UTC day
  activity_.active("t1", "u1");
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(keys("t1").back(), "user.active:2026-12-01:u1");
}

TEST_F(ActivityTest, SignInsAreKeyedByTokenAndMarkTheUserActive) {
  activity_.signed_in("t1", "u1", "jti-1");
  activity_.signed_in("t1", "u1", "jti-2");
  activity_.signed_in("t1", "", "jti-3");  // nobody
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(keys("t1"),
            (std::vector<std::string>{"user.signed_in:jti-1", "user.active:2026-11-30:u1", "user.signed_in:jti-2"}));
  EXPECT_EQ(stored_["t1"][0].metric, "event:user.signed_in");
}

TEST_F(ActivityTest, AFailedStoreKeepsTheMarksWithTheirKeys) {
  activity_.active("t1", "u1");
  activity_.active_at("t1", "u2", at("2026-11-20T10:00:00Z"));  // a late event's day
  failing_ = true;
  EXPECT_FALSE(activity_.flush());
  EXPECT_TRUE(stored_.empty());
  failing_ = false;
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(keys("t1"), (std::vector<std::string>{"user.active:2026-11-30:u1", "user.active:2026-11-20:u2"}));
  ASSERT_TRUE(activity_.flush());
  EXPECT_EQ(stored_["t1"].size(), 2u) << "nothing left over to store twice";
}

TEST_F(ActivityTest, TheMarksOfATenantThatIsGoneAreDroppedNotKept) {
  activity_.active("t1", "u1");
  activity_.active("t2", "u1");
  gone_.insert("t1");
  ASSERT_TRUE(activity_.flush()) << "a tenant that is gone is not an error to report again";
  EXPECT_EQ(keys("t2"), std::vector<std::string>{"user.active:2026-11-30:u1"});
  gone_.clear();  // the tenant comes back (an import): what it had before is not written into it
  ASSERT_TRUE(activity_.flush());
  EXPECT_FALSE(stored_.contains("t1"));
}

TEST_F(ActivityTest, AUserIdTooLongForAKeyIsHashedIntoIt) {
  const std::string long_id(250, 'x');
  activity_.active("t1", long_id);
  ASSERT_TRUE(activity_.flush());
  ASSERT_EQ(stored_["t1"].size(), 1u);
  EXPECT_LE(stored_["t1"][0].idempotency_key.size(), metering::k_max_idempotency_key_bytes);
  EXPECT_EQ(stored_["t1"][0].idempotency_key.size(), std::string("user.active:2026-11-30:").size() + 64);
  EXPECT_EQ(stored_["t1"][0].user_id, long_id);
}

}  // namespace
}  // namespace atrium::analytics
