// Product analytics through the real router and middleware (docs/analytics.md): POST /v1/events exactly once with
// per-event rejections, who may send and read, the product metrics of a hand-built fixture worked out below, the
// real-time counters, the dashboard, Atrium's own activity marks and sign-ins, and a tenant seeing only its own.
// Every isolation level, both backends; the platform runs on a ManualClock.
#include <gtest/gtest.h>

#include "analytics/analytics.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class AnalyticsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "bravo", GetParam().isolation);
    owner_a_ = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = client_->sign_in("owner@bravo.test", "password-bravo", "bravo");
    auto key = client_->call(Method::post, "/v1/api-keys",
                             Json{{"name", "product backend"}, {"permissions", {"analytics:write"}}}, owner_a_);
    ASSERT_EQ(key.status, 201) << key.raw_body;
    key_a_ = key.body.value("secret", "");
  }

  app::Platform& platform() { return tp_->platform(); }

  ApiResponse send(const Json& body, const std::string& credential) {
    return client_->call(Method::post, "/v1/events", body, credential);
  }

  // One event as the product backend sends it (timestamp and user given).
  static Json event(const std::string& key, const std::string& type, const std::string& user, const char* when,
                    Json properties = Json::object(), std::int64_t value = 1) {
    Json e = {{"idempotency_key", key},
              {"type", type},
              {"timestamp", when},
              {"value", value},
              {"properties", std::move(properties)}};
    if (!user.empty()) e["user_id"] = user;
    return e;
  }

  Json product(const std::string& query, const std::string& token) {
    auto r = client_->call(Method::get, "/v1/analytics/product?" + query, std::nullopt, token);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body;
  }

  // The fixture of ProductMetricsOfAHandBuiltMonth, sent by the product backend's key.
  void send_fixture() {
    const Json events = {
        // u1: first seen Nov 1 10:00, first report 2 h later; active again on Nov 30.
        event("f1", "page.viewed", "u1", "2026-11-01T10:00:00Z", {{"page", "home"}}),
        event("f2", "report.created", "u1", "2026-11-01T12:00:00Z"),
        event("f3", "feature.used", "u1", "2026-11-30T09:00:00Z", {{"feature", "export"}}),
        event("f4", "nps.response", "u1", "2026-11-30T09:05:00Z", Json::object(), 10),
        // u2: first seen Nov 10 08:00, first report two days later; active Nov 12, 28, 29.
        event("f5", "page.viewed", "u2", "2026-11-10T08:00:00Z", {{"page", "home"}}),
        event("f6", "report.created", "u2", "2026-11-12T08:00:00Z"),
        event("f7", "feature.used", "u2", "2026-11-28T14:00:00Z", {{"feature", "export"}}),
        event("f8", "nps.response", "u2", "2026-11-29T16:00:00Z", Json::object(), 8),
        // u3: first seen Nov 25, never reports.
        event("f9", "page.viewed", "u3", "2026-11-25T00:00:00Z", {{"page", "home"}}),
        event("f10", "feature.used", "u3", "2026-11-30T10:00:00Z", {{"feature", "share"}}),
        event("f11", "nps.response", "u3", "2026-11-30T10:01:00Z", Json::object(), 3),
        // u4: first seen Nov 30 11:10:00, reports 10 s later.
        event("f12", "feature.used", "u4", "2026-11-30T11:10:00Z", {{"feature", "export"}}),
        event("f13", "report.created", "u4", "2026-11-30T11:10:10Z"),
        event("f14", "nps.response", "u4", "2026-11-30T11:10:20Z", Json::object(), 9),
        // u5: first seen before the range (Oct 28), active in it on Nov 5.
        event("f15", "page.viewed", "u5", "2026-10-28T10:00:00Z", {{"page", "home"}}),
        event("f16", "report.created", "u5", "2026-11-05T10:00:00Z"),
        // Anonymous: counted as an event, never as a user.
        event("f17", "page.viewed", "", "2026-11-30T11:30:00Z", {{"page", "pricing"}}),
    };
    auto r = send(Json{{"events", events}}, key_a_);
    ASSERT_EQ(r.status, 202) << r.raw_body;
    ASSERT_EQ(r.body.value("accepted", 0), 17) << r.raw_body;
  }

  ManualClock clock_{parse_rfc3339("2026-11-30T12:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
  std::string key_a_;
};

TEST_P(AnalyticsApiTest, EventsAreStoredOnceAndRefusedOneByOne) {
  const Json ok = event("e1", "feature.used", "u1", "2026-11-30T11:00:00Z", {{"feature", "export"}});
  auto first = send(ok, key_a_);
  ASSERT_EQ(first.status, 202) << first.raw_body;
  EXPECT_EQ(first.body.value("accepted", 0), 1);
  auto again = send(ok, key_a_);
  ASSERT_EQ(again.status, 202);
  EXPECT_EQ(again.body.value("accepted", -1), 0);
  EXPECT_EQ(again.body.value("duplicates", 0), 1) << "a retry with the same key is acknowledged, not stored";

  const Json batch = {
      {"events",
       {event("b0", "nps.response", "u1", "2026-11-30T11:00:00Z", Json::object(), 11),
        event("b1", "feature.used", "u1", "2026-11-30T11:00:00Z"),
        event("b2", "user.active", "u1", "2026-11-30T11:00:00Z"), event("b3", "bad type", "u1", "2026-11-30T11:00:00Z"),
        Json{{"idempotency_key", "b4"}, {"type", "x"}, {"unknown", 1}},
        event("b5", "support.rating", "u1", "2026-11-30T11:00:00Z", Json::object(), 5),
        event("b6", "x", "u1", "2026-09-01T00:00:00Z"), Json{{"idempotency_key", "b7"}, {"type", "x"}, {"value", 1.5}},
        Json{{"idempotency_key", "b8"}, {"type", "x"}, {"timestamp", "yesterday"}},
        Json{{"idempotency_key", "b9"}, {"type", "x"}}}}};
  auto r = send(batch, key_a_);
  ASSERT_EQ(r.status, 202) << r.raw_body;
  EXPECT_EQ(r.body.value("accepted", 0), 2) << r.raw_body;  // b5, and b9 (now, about nobody)
  std::map<int, std::string> reasons;
  for (const auto& x : r.body["rejected"]) {
    reasons[x.value("index", -1)] = x.value("reason", "");
    EXPECT_EQ(x.value("idempotency_key", ""), "b" + std::to_string(x.value("index", -1))) << "echoed as sent";
  }
  EXPECT_EQ(reasons, (std::map<int, std::string>{{0, "invalid_value"},
                                                 {1, "invalid_properties"},
                                                 {2, "reserved_type"},
                                                 {3, "invalid_type"},
                                                 {4, "invalid_event"},
                                                 {6, "too_old"},
                                                 {7, "invalid_value"},
                                                 {8, "invalid_timestamp"}}));
  // Bad envelopes change nothing.
  for (const Json& bad : {Json::array(), Json{{"events", Json::array()}}, Json{{"events", 5}}}) {
    auto refused = send(bad, key_a_);
    EXPECT_EQ(refused.status, 400) << bad.dump();
    EXPECT_EQ(refused.content_type, "application/problem+json");
  }
  // A usage event may reuse a product event's key: the two keep their keys apart.
  auto same_key = client_->call(
      Method::post, "/v1/usage",
      Json{{"metric", "api.calls"}, {"quantity", 1}, {"timestamp", "2026-11-30T11:00:00Z"}, {"idempotency_key", "e1"}},
      owner_a_);
  ASSERT_EQ(same_key.status, 202) << same_key.raw_body;
  EXPECT_EQ(same_key.body.value("accepted", 0), 1);
  // Product events are not usage: the usage API refuses their prefix.
  auto usage = client_->call(Method::post, "/v1/usage",
                             Json{{"metric", "event:feature.used"},
                                  {"quantity", 1},
                                  {"timestamp", "2026-11-30T11:00:00Z"},
                                  {"idempotency_key", "u1"}},
                             owner_a_);
  ASSERT_EQ(usage.status, 202) << usage.raw_body;
  ASSERT_EQ(usage.body["rejected"].size(), 1u);
  EXPECT_EQ(usage.body["rejected"][0].value("reason", ""), "invalid_metric");
}

TEST_P(AnalyticsApiTest, WhoMaySendAndRead) {
  const std::string member_id =
      add_test_member(platform(), a_.id, "member@alpha.test", "pw-member", identity::Role::member);
  add_test_member(platform(), a_.id, "viewer@alpha.test", "pw-viewer", identity::Role::viewer);
  const std::string member = client_->sign_in("member@alpha.test", "pw-member", "alpha");
  const std::string viewer = client_->sign_in("viewer@alpha.test", "pw-viewer", "alpha");
  // A member's events are about that member.
  auto own =
      send(Json{{"idempotency_key", "m1"}, {"type", "feature.used"}, {"properties", {{"feature", "x"}}}}, member);
  ASSERT_EQ(own.status, 202) << own.raw_body;
  EXPECT_EQ(own.body.value("accepted", 0), 1);
  auto other = send(Json{{"idempotency_key", "m2"}, {"type", "x"}, {"user_id", "someone-else"}}, member);
  ASSERT_EQ(other.status, 202);
  ASSERT_EQ(other.body["rejected"].size(), 1u);
  EXPECT_EQ(other.body["rejected"][0].value("reason", ""), "invalid_user_id");
  // The viewer (seed: projects:read only) neither sends nor reads.
  EXPECT_EQ(send(Json{{"idempotency_key", "v1"}, {"type", "x"}}, viewer).status, 403);
  for (const char* path :
       {"/v1/analytics/product?from=2026-11-01&to=2026-12-01", "/v1/analytics/realtime", "/v1/analytics/dashboard"}) {
    EXPECT_EQ(client_->call(Method::get, path, std::nullopt, viewer).status, 403) << path;
    EXPECT_EQ(client_->call(Method::get, path, std::nullopt, member).status, 200) << path;
  }
  // A key without analytics:write may not send.
  auto usage_key =
      client_->call(Method::post, "/v1/api-keys", Json{{"name", "meter"}, {"permissions", {"usage:write"}}}, owner_a_);
  ASSERT_EQ(usage_key.status, 201) << usage_key.raw_body;
  EXPECT_EQ(send(Json{{"idempotency_key", "k1"}, {"type", "x"}}, usage_key.body.value("secret", "")).status, 403);
  // The member's event counts them as active today.
  auto today = product("from=2026-11-30&to=2026-12-01", owner_a_);
  EXPECT_EQ(today.value("active_users", 0), 1) << today.dump();
  EXPECT_EQ(today["feature_adoption"][0].value("users", 0), 1);
  (void)member_id;
}

// The fixture (sent above, in send_fixture), over November 2026 (from 2026-11-01, to 2026-12-01); the clock reads
// 2026-11-30T12:00Z. The owner, signed in at 12:00, is active on Nov 30 once Atrium's marks are flushed.
//
// Active users per day: Nov 1 u1; Nov 5 u5; Nov 10 u2; Nov 12 u2; Nov 25 u3; Nov 28 u2; Nov 29 u2;
//   Nov 30 u1, u3, u4, owner = 4; every other day 0.
// active_users in the range: u1..u5 and the owner = 6 (u5's Nov 5 event lies in it; the anonymous one is nobody).
// dau (Nov 30) = 4. wau (Nov 24-30) = u2, u3 (Nov 25) and Nov 30's four = {u1, u2, u3, u4, owner} = 5.
// mau (Nov 1-30) = 6. stickiness = mean DAU over those 30 days / MAU = (7 * 1 + 4) / 30 / 6 = 11 / 180.
// feature adoption: export by u1, u2, u4 = 3 users, 3 / 6 = 0.5; share by u3 = 1, 1 / 6.
// NPS: 10 (u1, promoter), 8 (u2, passive), 3 (u3, detractor), 9 (u4, promoter): 4 responses,
//   100 * (2 - 1) / 4 = 25.0.
// Time to first value (report.created): first seen in the range: u1 (Nov 1 10:00), u2 (Nov 10 08:00), u3 (Nov 25),
//   u4 (Nov 30 11:10:00), the owner (Nov 30 12:00) = 5 users; u5 was first seen on Oct 28. Reached: u1 after
//   7,200 s, u2 after 172,800 s, u4 after 10 s = 3. Sorted [10, 7200, 172800]: median (nearest rank 2) 7,200 s,
//   p90 (rank 3) 172,800 s.
TEST_P(AnalyticsApiTest, ProductMetricsOfAHandBuiltMonth) {
  send_fixture();
  ASSERT_TRUE(platform().analytics->activity().flush());
  const Json m = product("from=2026-11-01&to=2026-12-01&value_event=report.created", owner_a_);
  EXPECT_EQ(m.value("from", ""), "2026-11-01T00:00:00.000Z");
  EXPECT_EQ(m.value("to", ""), "2026-12-01T00:00:00.000Z");
  ASSERT_EQ(m["daily_active_users"].size(), 30u);
  std::map<std::string, std::int64_t> nonzero;
  for (const auto& d : m["daily_active_users"]) {
    if (d.value("users", 0) != 0) nonzero[d.value("date", "")] = d.value("users", 0);
  }
  EXPECT_EQ(nonzero, (std::map<std::string, std::int64_t>{{"2026-11-01", 1},
                                                          {"2026-11-05", 1},
                                                          {"2026-11-10", 1},
                                                          {"2026-11-12", 1},
                                                          {"2026-11-25", 1},
                                                          {"2026-11-28", 1},
                                                          {"2026-11-29", 1},
                                                          {"2026-11-30", 4}}));
  EXPECT_EQ(m.value("active_users", 0), 6);
  EXPECT_EQ(m.value("dau", 0), 4);
  EXPECT_EQ(m.value("wau", 0), 5);
  EXPECT_EQ(m.value("mau", 0), 6);
  EXPECT_DOUBLE_EQ(m["stickiness"].get<double>(), 11.0 / 30.0 / 6.0);
  ASSERT_EQ(m["feature_adoption"].size(), 2u);
  EXPECT_EQ(m["feature_adoption"][0], (Json{{"feature", "export"}, {"users", 3}, {"adoption", 0.5}}));
  EXPECT_EQ(m["feature_adoption"][1].value("feature", ""), "share");
  EXPECT_EQ(m["feature_adoption"][1].value("users", 0), 1);
  EXPECT_DOUBLE_EQ(m["feature_adoption"][1]["adoption"].get<double>(), 1.0 / 6.0);
  EXPECT_EQ(m["nps"], (Json{{"responses", 4}, {"promoters", 2}, {"passives", 1}, {"detractors", 1}, {"score", 25.0}}));
  EXPECT_EQ(m["time_to_first_value"], (Json{{"event", "report.created"},
                                            {"users", 5},
                                            {"reached", 3},
                                            {"median_seconds", 7200},
                                            {"p90_seconds", 172800}}));
  // Retention by first-seen day: Nov 1 (u1, active again on day 29), Nov 10 (u2: days 2, 18, 19), Nov 25 (u3: day
  // 5), Nov 30 (u4 and the owner); each cohort's days run to Nov 30. Day 1 reads the first three cohorts (nobody
  // came back the next day), days 7 and 14 the first two, day 30 none (Nov 1 + 30 is past the range).
  auto days = [](std::size_t size, std::map<std::size_t, std::int64_t> set) {
    std::vector<std::int64_t> v(size, 0);
    for (auto [i, n] : set) v[i] = n;
    return Json(v);
  };
  EXPECT_EQ(m["retention_cohorts"],
            (Json{{{"date", "2026-11-01"}, {"users", 1}, {"retained", days(30, {{0, 1}, {29, 1}})}},
                  {{"date", "2026-11-10"}, {"users", 1}, {"retained", days(21, {{0, 1}, {2, 1}, {18, 1}, {19, 1}})}},
                  {{"date", "2026-11-25"}, {"users", 1}, {"retained", days(6, {{0, 1}, {5, 1}})}},
                  {{"date", "2026-11-30"}, {"users", 2}, {"retained", days(1, {{0, 2}})}}}))
      << m["retention_cohorts"].dump();
  EXPECT_EQ(m["retention"], (Json{{{"day", 1}, {"users", 3}, {"retained", 0}, {"rate", 0.0}},
                                  {{"day", 7}, {"users", 2}, {"retained", 0}, {"rate", 0.0}},
                                  {{"day", 14}, {"users", 2}, {"retained", 0}, {"rate", 0.0}},
                                  {{"day", 30}, {"users", 0}, {"retained", 0}, {"rate", nullptr}}}));
  // Named key features: those alone, zeros included.
  const Json named = product("from=2026-11-01&to=2026-12-01&features=export,chat", owner_a_);
  ASSERT_EQ(named["feature_adoption"].size(), 2u);
  EXPECT_EQ(named["feature_adoption"][0].value("feature", ""), "export");
  EXPECT_EQ(named["feature_adoption"][1], (Json{{"feature", "chat"}, {"users", 0}, {"adoption", 0.0}}));
  EXPECT_TRUE(named["time_to_first_value"].is_null());
  // The same days as CSV.
  auto csv = client_->call(Method::get, "/v1/analytics/product?from=2026-11-29&to=2026-12-01&format=csv", std::nullopt,
                           owner_a_);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(csv.raw_body, "date,active_users\r\n2026-11-29,1\r\n2026-11-30,4\r\n");
  // Bad ranges are 400 problems.
  for (const char* q : {"from=2026-11-01", "from=2026-12-01&to=2026-11-01", "from=2026-11-01T10:00:00Z&to=2026-12-01",
                        "from=2025-01-01&to=2026-12-01", "from=2026-11-01&to=2026-12-01&value_event=no%20such",
                        "from=2026-11-01&to=2026-12-01&format=xml"}) {
    auto r = client_->call(Method::get, std::string("/v1/analytics/product?") + q, std::nullopt, owner_a_);
    EXPECT_EQ(r.status, 400) << q << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << q;
  }
  // Bravo sees none of it: its only active user is its own owner.
  const Json b = product("from=2026-11-01&to=2026-12-01&value_event=report.created", owner_b_);
  EXPECT_EQ(b.value("active_users", 0), 1);
  EXPECT_TRUE(b["feature_adoption"].empty());
  EXPECT_EQ(b["nps"].value("responses", -1), 0);
  EXPECT_EQ(b["time_to_first_value"].value("reached", -1), 0);
}

// N-day retention over Oct 27 - Nov 27 (the last day): r1 active on Oct 27, 28 and Nov 3 (days 0, 1, 7), r2 on Oct
// 27 and Nov 10 (days 0, 14), r4 on Oct 27 and Nov 26 (days 0, 30); r3 first seen Oct 28, back on Oct 29 (days
// 0, 1). Both cohorts reach day 30 (Oct 28 + 30 = Nov 27). Day 1: 4 users, r1 and r3 retained = 0.5; days 7, 14
// and 30: 4 users, one retained each = 0.25.
TEST_P(AnalyticsApiTest, NDayRetentionByFirstSeenDay) {
  const Json events = {
      event("r1a", "app.opened", "r1", "2026-10-27T09:00:00Z"),
      event("r1b", "app.opened", "r1", "2026-10-28T23:59:59Z"),
      event("r1c", "app.opened", "r1", "2026-11-03T00:00:00Z"),
      event("r1d", "app.opened", "r1", "2026-11-03T05:00:00Z"),
      event("r2a", "app.opened", "r2", "2026-10-27T20:00:00Z"),
      event("r2b", "app.opened", "r2", "2026-11-10T10:00:00Z"),
      event("r3a", "app.opened", "r3", "2026-10-28T01:00:00Z"),
      event("r3b", "app.opened", "r3", "2026-10-29T01:00:00Z"),
      event("r4a", "app.opened", "r4", "2026-10-27T12:00:00Z"),
      event("r4b", "app.opened", "r4", "2026-11-26T12:00:00Z"),
  };
  auto sent = send(Json{{"events", events}}, key_a_);
  ASSERT_EQ(sent.status, 202) << sent.raw_body;
  ASSERT_EQ(sent.body.value("accepted", 0), 10) << sent.raw_body;
  const Json m = product("from=2026-10-27&to=2026-11-28", owner_a_);
  std::vector<std::int64_t> first(31, 0);
  first[0] = 3;
  first[1] = first[7] = first[14] = first[30] = 1;
  std::vector<std::int64_t> second(31, 0);
  second[0] = second[1] = 1;
  EXPECT_EQ(m["retention_cohorts"], (Json{{{"date", "2026-10-27"}, {"users", 3}, {"retained", first}},
                                          {{"date", "2026-10-28"}, {"users", 1}, {"retained", second}}}))
      << m["retention_cohorts"].dump();
  EXPECT_EQ(m["retention"], (Json{{{"day", 1}, {"users", 4}, {"retained", 2}, {"rate", 0.5}},
                                  {{"day", 7}, {"users", 4}, {"retained", 1}, {"rate", 0.25}},
                                  {{"day", 14}, {"users", 4}, {"retained", 1}, {"rate", 0.25}},
                                  {{"day", 30}, {"users", 4}, {"retained", 1}, {"rate", 0.25}}}));
  // Another tenant sees none of it.
  const Json b = product("from=2026-10-27&to=2026-11-28", owner_b_);
  EXPECT_TRUE(b["retention_cohorts"].empty());
  EXPECT_EQ(b["retention"][0], (Json{{"day", 1}, {"users", 0}, {"retained", 0}, {"rate", nullptr}}));
}

// Embedded analytics (docs/analytics.md): a member mints a short-lived embed token that reads the tenant's analytics
// and nothing else, optionally for one customer only; it expires, and other tenants' data stays out of reach.
TEST_P(AnalyticsApiTest, EmbedTokensReadOnlyTheirTenantsAnalytics) {
  send_fixture();
  ASSERT_TRUE(platform().analytics->activity().flush());
  auto minted = client_->call(Method::post, "/v1/analytics/embed-tokens", Json{{"ttl_seconds", 300}}, owner_a_);
  ASSERT_EQ(minted.status, 201) << minted.raw_body;
  EXPECT_EQ(minted.body.value("expires_in", 0), 300);
  EXPECT_EQ(minted.body.value("expires_at", ""), "2026-11-30T12:05:00.000Z");
  EXPECT_TRUE(minted.body["customer"].is_null());
  const std::string embed = minted.body.value("token", "");
  const std::string range = "from=2026-11-01&to=2026-12-01";
  // The same metrics as the owner reads.
  EXPECT_EQ(product(range, embed), product(range, owner_a_));
  EXPECT_EQ(client_->call(Method::get, "/v1/analytics/dashboard", std::nullopt, embed).status, 200);
  EXPECT_EQ(client_->call(Method::get, "/v1/analytics/realtime", std::nullopt, embed).status, 200);
  // Nothing else: not the tenant's other reads, not writes, not another token.
  for (const auto& [method, path] : std::vector<std::pair<Method, std::string>>{
           {Method::get, "/v1/projects"},
           {Method::get, "/v1/users"},
           {Method::get, "/v1/usage/summary?metric=api_calls"},
           {Method::post, "/v1/events"},
           {Method::post, "/v1/analytics/embed-tokens"},
           {Method::get, "/v1/admin/analytics/saas?from=2026-11-01&to=2026-12-01"}}) {
    const auto body = method == Method::post ? std::optional<Json>(Json::object()) : std::nullopt;
    auto r = client_->call(method, path, body, embed);
    EXPECT_EQ(r.status, 403) << path << " " << r.raw_body;
  }
  // Another tenant named beside it is refused.
  auto other =
      client_->call(Method::get, "/v1/analytics/product?" + range, std::nullopt, embed, {{"X-Tenant-ID", b_.id}});
  EXPECT_EQ(other.status, 403) << other.raw_body;

  // One customer's token: u1's events alone (active on Nov 1 and Nov 30, a promoter, an exporter).
  auto one = client_->call(Method::post, "/v1/analytics/embed-tokens", Json{{"customer", "u1"}}, owner_a_);
  ASSERT_EQ(one.status, 201) << one.raw_body;
  EXPECT_EQ(one.body.value("expires_in", 0), 600);
  EXPECT_EQ(one.body.value("customer", ""), "u1");
  const Json u1 = product(range, one.body.value("token", ""));
  EXPECT_EQ(u1.value("active_users", 0), 1) << u1.dump();
  EXPECT_EQ(u1["nps"],
            (Json{{"responses", 1}, {"promoters", 1}, {"passives", 0}, {"detractors", 0}, {"score", 100.0}}));
  ASSERT_EQ(u1["feature_adoption"].size(), 1u);
  EXPECT_EQ(u1["feature_adoption"][0], (Json{{"feature", "export"}, {"users", 1}, {"adoption", 1.0}}));
  EXPECT_EQ(client_->call(Method::get, "/v1/analytics/realtime", std::nullopt, one.body.value("token", "")).status,
            403);

  // Bad requests change nothing; viewers (no analytics:view) mint nothing.
  for (const Json& bad : {Json{{"ttl_seconds", 59}}, Json{{"ttl_seconds", 3601}}, Json{{"customer", ""}},
                          Json{{"customer", 7}}, Json{{"scope", "all"}}}) {
    auto r = client_->call(Method::post, "/v1/analytics/embed-tokens", bad, owner_a_);
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.raw_body;
  }
  add_test_member(platform(), a_.id, "viewer@alpha.test", "pw-viewer", identity::Role::viewer);
  const std::string viewer = client_->sign_in("viewer@alpha.test", "pw-viewer", "alpha");
  EXPECT_EQ(client_->call(Method::post, "/v1/analytics/embed-tokens", Json::object(), viewer).status, 403);

  // Short-lived: five minutes on (and the verifier's 30 s of clock-skew leeway), the first token is refused.
  clock_.advance(std::chrono::seconds(300 + 31));
  EXPECT_EQ(client_->call(Method::get, "/v1/analytics/product?" + range, std::nullopt, embed).status, 401);
}

TEST_P(AnalyticsApiTest, RealtimeCountsTheLastMinutesAndTheDashboardSumsUp) {
  send_fixture();
  // The last 60 minutes are 11:01 to 12:00: u4's three events at 11:10 and the anonymous page view at 11:30.
  auto r = client_->call(Method::get, "/v1/analytics/realtime?minutes=60", std::nullopt, owner_a_);
  ASSERT_EQ(r.status, 200) << r.raw_body;
  EXPECT_EQ(r.body.value("from", ""), "2026-11-30T11:01:00.000Z");
  EXPECT_EQ(r.body.value("window_minutes", 0), 180);
  EXPECT_EQ(r.body["totals"],
            (Json{{"feature.used", 1}, {"nps.response", 1}, {"page.viewed", 1}, {"report.created", 1}}));
  EXPECT_EQ(r.body["types"]["feature.used"][9], 1) << "11:10 is the tenth minute";
  EXPECT_EQ(r.body["types"]["page.viewed"][29], 1);
  EXPECT_EQ(client_->call(Method::get, "/v1/analytics/realtime?minutes=181", std::nullopt, owner_a_).status, 400);
  auto other = client_->call(Method::get, "/v1/analytics/realtime", std::nullopt, owner_b_);
  ASSERT_EQ(other.status, 200);
  EXPECT_TRUE(other.body["totals"].empty()) << "bravo's counters hold nothing of alpha's";

  ASSERT_TRUE(platform().analytics->activity().flush());
  auto d = client_->call(Method::get, "/v1/analytics/dashboard", std::nullopt, owner_a_);
  ASSERT_EQ(d.status, 200) << d.raw_body;
  EXPECT_EQ(d.body["summary"].value("dau", 0), 4);
  EXPECT_EQ(d.body["summary"].value("wau", 0), 5);
  EXPECT_EQ(d.body["summary"].value("mau", 0), 6);
  EXPECT_EQ(d.body["summary"]["nps"], 25.0);
  EXPECT_EQ(d.body["historical"].value("from", ""), "2026-11-01T00:00:00.000Z");
  EXPECT_EQ(d.body["realtime"].value("minutes", 0), 60);
  // The flush stored the owner's sign-in and the day's activity marks, counted in real time too.
  EXPECT_EQ(d.body["realtime"]["totals"].value("user.signed_in", 0), 1);
  EXPECT_GE(d.body["summary"].value("events_last_hour", 0), 6);
}

TEST_P(AnalyticsApiTest, SignInsAndRequestsBecomeActivityOncePerDay) {
  const std::string again = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, again).status, 200);
  }
  ASSERT_TRUE(platform().analytics->activity().flush());
  auto summary = [&](const char* metric) {
    auto r = client_->call(Method::get,
                           std::string("/v1/usage/summary?metric=") + metric +
                               "&aggregation=count&from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z",
                           std::nullopt, owner_a_);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body["data"][0].value("value", -1);
  };
  EXPECT_EQ(summary("event:user.signed_in"), 2) << "two sign-ins (set-up and this test's)";
  EXPECT_EQ(summary("event:user.active"), 1) << "one mark for the owner's day, however many requests";
  ASSERT_TRUE(platform().analytics->activity().flush());
  EXPECT_EQ(summary("event:user.active"), 1) << "flushing again stores nothing twice";
  const Json today = product("from=2026-11-30&to=2026-12-01", owner_b_);
  EXPECT_EQ(today.value("active_users", 0), 1) << "bravo's owner only";
}

INSTANTIATE_TEST_SUITE_P(Isolation, AnalyticsApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
