// Usage metering through the real router and middleware, on every backend and
// isolation level: exactly-once ingestion (a batch sent twice, a retry after a
// lost response, keys repeated within a batch, the same batch from two clients
// at once), per-event rejections with reasons, bad envelopes (400 problem+json,
// nothing stored), the tenant boundary, permissions (API keys ingest with
// usage:write), and summaries that equal a reference computed here from the raw
// event list for every aggregation and window, with and without group_by and
// filters.
#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/usage_input.hpp"
#include "metering/metering.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 24 * kHour;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::instance().now().time_since_epoch())
      .count();
}
std::string rfc(std::int64_t ms) {
  return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

class UsageApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    // Events spread over months for the property tests.
    config.metering.retain_events_days = 400;
    config.metering.max_event_age_hours = 24 * 200;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    owner_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = sign_in("owner@beta.test", "password-beta", "beta");
    auto root =
        client_->call(Method::post, "/v1/auth/token",
                      Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
    ASSERT_EQ(root.status, 200) << root.raw_body;
    root_ = root.body.value("access_token", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  ApiResponse post(const Json& body, const std::string& token) {
    return client_->call(Method::post, "/v1/usage", body, token);
  }

  static Json event(const std::string& key, const std::string& metric, std::int64_t quantity, std::int64_t ts,
                    const Json& properties = Json::object()) {
    Json e = {{"idempotency_key", key}, {"metric", metric}, {"quantity", quantity}, {"timestamp", rfc(ts)}};
    if (!properties.empty()) e["properties"] = properties;
    return e;
  }

  // GET /v1/usage/summary; 200 expected.
  Json summary(const std::string& token, const std::string& query) {
    auto r = client_->call(Method::get, "/v1/usage/summary?" + query, std::nullopt, token);
    EXPECT_EQ(r.status, 200) << query << " " << r.raw_body;
    return r.body;
  }

  // sum and count of `metric` over the last 40 days, for the exactly-once
  // checks.
  std::pair<std::int64_t, std::int64_t> totals(const std::string& token, const std::string& metric) {
    const std::int64_t now = now_ms();
    auto range = "metric=" + metric + "&from=" + rfc(now - 40 * kDay) + "&to=" + rfc(now + kHour);
    auto s = summary(token, range + "&aggregation=sum");
    auto c = summary(token, range + "&aggregation=count");
    if (s["data"].size() != 1 || c["data"].size() != 1) return {-1, -1};
    return {s["data"][0].value("value", std::int64_t{-1}), c["data"][0].value("value", std::int64_t{-1})};
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
  std::string root_;
};

Json batch_of(const std::vector<Json>& events) { return Json{{"events", events}}; }

TEST_P(UsageApiTest, ABatchSentTwiceCountsOnce) {
  const std::int64_t now = now_ms();
  std::vector<Json> events;
  for (int i = 0; i < 50; ++i) events.push_back(event("k-" + std::to_string(i), "api.calls", i + 1, now - i * kHour));
  auto first = post(batch_of(events), owner_a_);
  ASSERT_EQ(first.status, 202) << first.raw_body;
  EXPECT_EQ(first.body["accepted"], 50);
  EXPECT_EQ(first.body["duplicates"], 0);
  EXPECT_TRUE(first.body["rejected"].empty());
  auto second = post(batch_of(events), owner_a_);
  ASSERT_EQ(second.status, 202) << second.raw_body;
  EXPECT_EQ(second.body["accepted"], 0);
  EXPECT_EQ(second.body["duplicates"], 50);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{50 * 51 / 2}, std::int64_t{50}));
}

TEST_P(UsageApiTest, ABatchRetriedAfterItsResponseWasLostCountsOnce) {
  const std::int64_t now = now_ms();
  std::vector<Json> events;
  for (int i = 0; i < 20; ++i) events.push_back(event("r-" + std::to_string(i), "api.calls", 10, now - i * 60'000));
  // The first attempt committed but its answer never reached the client.
  auto batch = api::usage_input::usage_batch(batch_of(events), 10'000);
  ASSERT_TRUE(batch);
  ASSERT_TRUE(platform().metering->ingest(a_.id, *batch));
  // The client retries the same keys (re-serialized, with a new event
  // appended).
  std::vector<Json> retry = events;
  retry.push_back(event("r-new", "api.calls", 10, now));
  auto r = post(batch_of(retry), owner_a_);
  ASSERT_EQ(r.status, 202) << r.raw_body;
  EXPECT_EQ(r.body["accepted"], 1);
  EXPECT_EQ(r.body["duplicates"], 20);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{210}, std::int64_t{21}));
}

TEST_P(UsageApiTest, AKeyRepeatedWithinABatchCountsOnce) {
  const std::int64_t now = now_ms();
  auto r = post(batch_of({event("same", "api.calls", 5, now), event("other", "api.calls", 7, now),
                          event("same", "api.calls", 100, now - kHour)}),
                owner_a_);
  ASSERT_EQ(r.status, 202) << r.raw_body;
  EXPECT_EQ(r.body["accepted"], 2);
  EXPECT_EQ(r.body["duplicates"], 1);
  // The first occurrence is the one counted.
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{12}, std::int64_t{2}));
}

TEST_P(UsageApiTest, TheSameBatchFromTwoClientsAtOnceCountsOnce) {
  const std::int64_t now = now_ms();
  std::vector<Json> events;
  for (int i = 0; i < 200; ++i) events.push_back(event("c-" + std::to_string(i), "api.calls", 1, now - i * 1000));
  std::vector<Json> reversed(events.rbegin(), events.rend());
  std::array<ApiResponse, 2> answers;
  std::thread t1([&] { answers[0] = post(batch_of(events), owner_a_); });
  std::thread t2([&] { answers[1] = post(batch_of(reversed), owner_a_); });
  t1.join();
  t2.join();
  ASSERT_EQ(answers[0].status, 202) << answers[0].raw_body;
  ASSERT_EQ(answers[1].status, 202) << answers[1].raw_body;
  EXPECT_EQ(answers[0].body["accepted"].get<int>() + answers[1].body["accepted"].get<int>(), 200);
  EXPECT_EQ(answers[0].body["duplicates"].get<int>() + answers[1].body["duplicates"].get<int>(), 200);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{200}, std::int64_t{200}));
}

TEST_P(UsageApiTest, BadEventsAreRejectedWithAReasonAndTheRestAccepted) {
  const std::int64_t now = now_ms();
  std::vector<Json> events = {
      event("ok-1", "api.calls", 1, now),
      Json("not an object"),
      event("old", "api.calls", 1, now - 201 * kDay),
      event("future", "api.calls", 1, now + 3600'000),
      event("bad-metric", "no spaces allowed", 1, now),
      event("negative", "api.calls", -1, now),
      event("huge", "api.calls", 1'000'000'000'001, now),
      Json{{"metric", "api.calls"}, {"quantity", 1}, {"timestamp", rfc(now)}},
      Json{{"idempotency_key", "fraction"}, {"metric", "api.calls"}, {"quantity", 1.5}, {"timestamp", rfc(now)}},
      Json{{"idempotency_key", "no-time"}, {"metric", "api.calls"}, {"quantity", 1}},
      Json{{"idempotency_key", "bad-time"}, {"metric", "api.calls"}, {"quantity", 1}, {"timestamp", "yesterday"}},
      Json{{"idempotency_key", "props"},
           {"metric", "api.calls"},
           {"quantity", 1},
           {"timestamp", rfc(now)},
           {"properties", Json::array()}},
      Json{{"idempotency_key", "extra"},
           {"metric", "api.calls"},
           {"quantity", 1},
           {"timestamp", rfc(now)},
           {"unit", "ms"}},
      event("ok-2", "api.calls", 2, now - kHour),
  };
  auto r = post(batch_of(events), owner_a_);
  ASSERT_EQ(r.status, 202) << r.raw_body;
  EXPECT_EQ(r.body["accepted"], 2);
  EXPECT_EQ(r.body["duplicates"], 0);
  std::map<int, std::string> reasons;
  for (const auto& x : r.body["rejected"]) reasons[x["index"].get<int>()] = x.value("reason", "");
  const std::map<int, std::string> want = {{1, "invalid_event"},           {2, "too_old"},
                                           {3, "too_far_in_future"},       {4, "invalid_metric"},
                                           {5, "invalid_quantity"},        {6, "invalid_quantity"},
                                           {7, "invalid_idempotency_key"}, {8, "invalid_quantity"},
                                           {9, "invalid_timestamp"},       {10, "invalid_timestamp"},
                                           {11, "invalid_properties"},     {12, "invalid_event"}};
  EXPECT_EQ(reasons, want) << r.raw_body;
  for (const auto& x : r.body["rejected"]) {
    if (x["index"] == 2) {
      EXPECT_EQ(x["idempotency_key"], "old");
    }
  }
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{3}, std::int64_t{2}));
  // The rejections are counted by reason.
  auto metrics = client_->call(Method::get, "/metrics");
  EXPECT_NE(metrics.raw_body.find("atrium_usage_events_total{outcome=\"rejected\",reason=\"too_old\"}"),
            std::string::npos)
      << metrics.raw_body;
  EXPECT_NE(metrics.raw_body.find("atrium_usage_events_total{outcome=\"accepted\",reason=\"\"}"), std::string::npos);
}

TEST_P(UsageApiTest, BadEnvelopesAre400ProblemsAndStoreNothing) {
  const std::int64_t now = now_ms();
  const Json good = event("e1", "api.calls", 1, now);
  std::vector<Json> too_many(10'001, good);
  for (const Json& body : {Json::array({good}), Json{{"events", 5}}, Json{{"events", Json::array()}},
                           Json{{"events", {good}}, {"extra", 1}}, batch_of(too_many)}) {
    auto r = post(body, owner_a_);
    EXPECT_EQ(r.status, 400) << body.dump().substr(0, 200);
    EXPECT_EQ(r.headers.get("Content-Type").value_or(""), "application/problem+json");
  }
  auto r = client_->call(Method::post, "/v1/usage", std::nullopt, owner_a_, {{"Content-Type", "application/json"}});
  EXPECT_GE(r.status, 400);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{0}, std::int64_t{0}));
  // Summary parameters.
  const std::string range = "&from=" + rfc(now - kDay) + "&to=" + rfc(now);
  for (const std::string& q :
       {std::string("from=") + rfc(now - kDay) + "&to=" + rfc(now), "metric=api.calls&to=" + rfc(now),
        "metric=api.calls&from=" + rfc(now) + "&to=" + rfc(now - kDay), "metric=api.calls" + range + "&window=week",
        "metric=api.calls" + range + "&aggregation=median", "metric=api.calls" + range + "&aggregation=unique_count",
        std::string("metric=api.calls&from=2020-01-01T00:00:00Z&to=2023-01-"
                    "01T00:00:00Z&"
                    "window=hour")}) {
    auto s = client_->call(Method::get, "/v1/usage/summary?" + q, std::nullopt, owner_a_);
    EXPECT_EQ(s.status, 400) << q << " " << s.raw_body;
    EXPECT_EQ(s.headers.get("Content-Type").value_or(""), "application/problem+json");
  }
}

TEST_P(UsageApiTest, AnotherTenantNeverSeesOrCountsYourEvents) {
  const std::int64_t now = now_ms();
  ASSERT_EQ(
      post(batch_of({event("shared-key", "api.calls", 5, now), event("k2", "api.calls", 6, now - kDay)}), owner_a_)
          .status,
      202);
  EXPECT_EQ(totals(owner_b_, "api.calls"), std::make_pair(std::int64_t{0}, std::int64_t{0}));
  // Keys are per tenant: B's event with A's key is B's own, and counts for B
  // only.
  auto r = post(batch_of({event("shared-key", "api.calls", 100, now)}), owner_b_);
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(r.body["accepted"], 1);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{11}, std::int64_t{2}));
  EXPECT_EQ(totals(owner_b_, "api.calls"), std::make_pair(std::int64_t{100}, std::int64_t{1}));
  auto b_groups = summary(owner_b_, "metric=api.calls&aggregation=count&group_by=region&from=" + rfc(now - 10 * kDay) +
                                        "&to=" + rfc(now + kHour));
  EXPECT_EQ(b_groups["data"].size(), 1u);
  auto agg = platform().metering->aggregate(b_.id, "api.calls", metering::Aggregation::sum,
                                            from_unix_ms(now - 10 * kDay), from_unix_ms(now + kHour));
  ASSERT_TRUE(agg);
  EXPECT_EQ(*agg, 100);
}

TEST_P(UsageApiTest, ApiKeysIngestWithUsageWriteOnly) {
  auto make_key = [&](const std::vector<std::string>& permissions) {
    auto r =
        client_->call(Method::post, "/v1/api-keys", Json{{"name", "ingest"}, {"permissions", permissions}}, owner_a_);
    EXPECT_EQ(r.status, 201) << r.raw_body;
    return r.body.value("secret", "");
  };
  const std::string writer = make_key({"usage:write"});
  const std::string reader = make_key({"projects:read"});
  const Json body = batch_of({event("api-key-1", "api.calls", 3, now_ms())});
  EXPECT_EQ(post(body, reader).status, 403);
  auto ok = post(body, writer);
  EXPECT_EQ(ok.status, 202) << ok.raw_body;
  EXPECT_EQ(client_->call(Method::get, "/v1/usage/summary?metric=api.calls", std::nullopt, writer).status, 403);
  EXPECT_EQ(totals(owner_a_, "api.calls"), std::make_pair(std::int64_t{3}, std::int64_t{1}));
}

TEST_P(UsageApiTest, MetersSetTheDefaultAggregationAndFilters) {
  auto bad =
      client_->call(Method::post, "/v1/meters", Json{{"metric", "seats"}, {"aggregation", "unique_count"}}, root_);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(
      client_->call(Method::post, "/v1/meters", Json{{"metric", "seats"}, {"aggregation", "sum"}}, owner_a_).status,
      403);
  auto created = client_->call(
      Method::post, "/v1/meters",
      Json{{"metric", "seats"}, {"aggregation", "unique_count"}, {"property", "user"}, {"filters", {{"plan", "pro"}}}},
      root_);
  ASSERT_EQ(created.status, 201) << created.raw_body;
  EXPECT_EQ(client_->call(Method::post, "/v1/meters", Json{{"metric", "seats"}, {"aggregation", "sum"}}, root_).status,
            409);
  auto list = client_->call(Method::get, "/v1/meters", std::nullopt, owner_a_);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["data"].size(), 1u);
  const std::int64_t now = now_ms();
  ASSERT_EQ(post(batch_of({event("s1", "seats", 1, now, {{"user", "u1"}, {"plan", "pro"}}),
                           event("s2", "seats", 1, now, {{"user", "u1"}, {"plan", "pro"}}),
                           event("s3", "seats", 1, now, {{"user", "u2"}, {"plan", "pro"}}),
                           event("s4", "seats", 1, now, {{"user", "u3"}, {"plan", "free"}})}),
                 owner_a_)
                .status,
            202);
  auto s = summary(owner_a_, "metric=seats&from=" + rfc(now - kDay) + "&to=" + rfc(now + kHour));
  EXPECT_EQ(s["aggregation"], "unique_count");
  ASSERT_EQ(s["data"].size(), 1u);
  EXPECT_EQ(s["data"][0]["value"], 2);
  // An explicit aggregation still counts only the meter's events.
  auto c = summary(owner_a_, "metric=seats&aggregation=count&from=" + rfc(now - kDay) + "&to=" + rfc(now + kHour));
  EXPECT_EQ(c["data"][0]["value"], 3);
}

// ---- the reference
// ----------------------------------------------------------------------------------------------

struct RefEvent {
  std::string metric;
  std::int64_t quantity;
  std::int64_t ts;
  Json properties;
};

// Window boundaries with the C library's calendar (not the code under test's).
std::int64_t ref_next_boundary(std::int64_t ms, const std::string& window) {
  if (window == "hour") return (ms / kHour + 1) * kHour;
  if (window == "day") return (ms / kDay + 1) * kDay;
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_mon += 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

struct RefCell {
  std::int64_t count = 0, sum = 0, max = 0, latest_ts = 0, latest_value = 0;
  std::set<std::string> distinct;
};

// The expected `data` of a summary, built from the raw list.
Json reference(const std::vector<RefEvent>& events, const std::string& metric, const std::string& aggregation,
               const std::string& property, const Json& filters, std::int64_t from, std::int64_t to,
               const std::string& window, const std::string& group_by) {
  std::vector<std::int64_t> starts{from};
  if (!window.empty()) {
    for (std::int64_t b = ref_next_boundary(from, window); b < to; b = ref_next_boundary(b, window))
      starts.push_back(b);
  }
  std::vector<std::map<std::string, std::pair<Json, RefCell>>> cells(starts.size());
  for (const auto& e : events) {
    if (e.metric != metric || e.ts < from || e.ts >= to) continue;
    bool ok = true;
    for (const auto& [k, v] : filters.items()) ok = ok && e.properties.contains(k) && e.properties[k] == v;
    if (!ok) continue;
    std::size_t w = 0;
    while (w + 1 < starts.size() && starts[w + 1] <= e.ts) ++w;
    Json group = nullptr;
    if (!group_by.empty() && e.properties.contains(group_by)) group = e.properties[group_by];
    auto& [gv, c] = cells[w][group_by.empty() ? "" : group.dump()];
    gv = group;
    if (c.count == 0 || e.ts > c.latest_ts || (e.ts == c.latest_ts && e.quantity > c.latest_value)) {
      c.latest_ts = e.ts;
      c.latest_value = e.quantity;
    }
    c.max = c.count == 0 ? e.quantity : std::max(c.max, e.quantity);
    ++c.count;
    c.sum += e.quantity;
    if (e.properties.contains(property) && !e.properties[property].is_null()) {
      c.distinct.insert(e.properties[property].dump());
    }
  }
  auto value = [&](const RefCell& c) -> Json {
    if (aggregation == "sum") return c.sum;
    if (aggregation == "count") return c.count;
    if (aggregation == "unique_count") return c.distinct.size();
    if (c.count == 0) return nullptr;
    return aggregation == "max" ? c.max : c.latest_value;
  };
  Json data = Json::array();
  for (std::size_t w = 0; w < starts.size(); ++w) {
    const std::int64_t end = w + 1 < starts.size() ? starts[w + 1] : to;
    if (group_by.empty()) {
      auto it = cells[w].find("");
      data.push_back({{"start", rfc(starts[w])},
                      {"end", rfc(end)},
                      {"value", value(it == cells[w].end() ? RefCell{} : it->second.second)}});
      continue;
    }
    for (const auto& [_, gc] : cells[w]) {
      data.push_back({{"start", rfc(starts[w])}, {"end", rfc(end)}, {"group", gc.first}, {"value", value(gc.second)}});
    }
  }
  return data;
}

std::string encode(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '+') {
      out += "%2B";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
  return out;
}

TEST_P(UsageApiTest, SummariesEqualAReferenceForEveryAggregationAndWindow) {
  std::mt19937_64 rng(GetParam().backend == Backend::sqlite ? 7 : 11);
  const std::int64_t now = now_ms();
  const std::int64_t oldest = now - 150 * kDay;
  const std::vector<std::string> metrics = {"api.calls", "storage"};
  const std::vector<Json> regions = {"eu", "us", 1, nullptr};  // nullptr: the property is absent
  std::vector<RefEvent> events;
  std::vector<Json> wire;
  for (int i = 0; i < 1200; ++i) {
    RefEvent e;
    e.metric = metrics[rng() % metrics.size()];
    e.quantity = static_cast<std::int64_t>(rng() % 1000);
    // Many on hour boundaries and many sharing a timestamp (latest's tie rule),
    // the rest anywhere.
    std::int64_t ts = oldest + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(now - oldest - kHour));
    if (i % 5 == 0) ts = ts / kHour * kHour;
    if (i % 7 == 0) ts = ts / kDay * kDay;
    e.ts = ts;
    e.properties = Json::object();
    const Json& region = regions[rng() % regions.size()];
    if (!region.is_null()) e.properties["region"] = region;
    if (rng() % 4 != 0) e.properties["user"] = "u" + std::to_string(rng() % 12);
    events.push_back(e);
    wire.push_back(event("p-" + std::to_string(i), e.metric, e.quantity, e.ts, e.properties));
  }
  // A few events of another tenant that must never show up.
  ASSERT_EQ(
      post(batch_of({event("x1", "api.calls", 999, now - kDay), event("x2", "storage", 999, now - 2 * kDay)}), owner_b_)
          .status,
      202);
  for (std::size_t i = 0; i < wire.size(); i += 300) {
    std::vector<Json> part(wire.begin() + static_cast<std::ptrdiff_t>(i),
                           wire.begin() + static_cast<std::ptrdiff_t>(std::min(wire.size(), i + 300)));
    auto r = post(batch_of(part), owner_a_);
    ASSERT_EQ(r.status, 202) << r.raw_body;
    ASSERT_EQ(r.body["accepted"], static_cast<int>(part.size())) << r.raw_body;
  }

  // Ranges that do not start or end on an hour (roll-ups plus raw edges), and
  // one that is hour-aligned.
  const std::int64_t from_long = oldest - 17 * 60'000 - 123;
  const std::int64_t to_long = now - 41 * 60'000;
  const std::int64_t from_short = now - 9 * kDay - 7 * 60'000;
  const std::int64_t to_short = now - 2 * kDay + 13 * 60'000;
  struct Range {
    std::string window;
    std::int64_t from, to;
  };
  const std::vector<Range> ranges = {{"", from_long, to_long},
                                     {"", (now - 30 * kDay) / kHour * kHour, now / kHour * kHour},
                                     {"month", from_long, to_long},
                                     {"day", from_long, to_long},
                                     {"hour", from_short, to_short}};
  int checked = 0;
  for (const auto& metric : metrics) {
    for (const std::string aggregation : {"sum", "count", "max", "unique_count", "latest"}) {
      for (const auto& range : ranges) {
        for (const std::string group_by : {"", "region"}) {
          std::string q = "metric=" + metric + "&aggregation=" + aggregation + "&from=" + encode(rfc(range.from)) +
                          "&to=" + encode(rfc(range.to));
          if (!range.window.empty()) q += "&window=" + range.window;
          if (!group_by.empty()) q += "&group_by=" + group_by;
          if (aggregation == "unique_count") q += "&property=user";
          SCOPED_TRACE(q);
          auto got = summary(owner_a_, q);
          const Json want = reference(events, metric, aggregation, "user", Json::object(), range.from, range.to,
                                      range.window, group_by);
          ASSERT_EQ(got["data"].size(), want.size());
          EXPECT_EQ(got["data"], want);
          ++checked;
        }
        // Filters, through the API billing calls (one window).
        if (range.window.empty()) {
          auto agg = metering::parse_aggregation(aggregation);
          ASSERT_TRUE(agg);
          const Json filters = {{"region", "eu"}};
          auto got = platform().metering->aggregate(a_.id, metric, *agg, from_unix_ms(range.from),
                                                    from_unix_ms(range.to), {{"region", Json("eu")}}, "user");
          ASSERT_TRUE(got) << got.error().message;
          const Json want = reference(events, metric, aggregation, "user", filters, range.from, range.to, "", "");
          EXPECT_EQ(Json(*got), want[0]["value"].is_null() ? Json(0) : want[0]["value"]) << aggregation;
          ++checked;
        }
      }
    }
  }
  EXPECT_GE(checked, 100);
}

INSTANTIATE_TEST_SUITE_P(All, UsageApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
