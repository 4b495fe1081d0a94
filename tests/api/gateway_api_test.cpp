// The gateway through the real router and middleware chain (tests/support/api_client.hpp): rate limits per tenant
// and per API key, in-process and in Redis, and dated API versions, on both backends. Platforms run on a ManualClock,
// so every count is exact; the Redis limiter then takes its time from that clock instead of Redis's TIME.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "billing/billing.hpp"
#include "gateway/versioning.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using namespace std::chrono_literals;
using http::Method;

enum class Limiter { memory, redis };

const audit::Context k_test{.actor_type = audit::ActorType::system, .actor_id = "test"};

class GatewayApiTest : public ::testing::TestWithParam<storage::Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == storage::Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
  }

  // A platform with the given gateway settings on the ManualClock, tenant "acme" and its owner's token.
  void start(Limiter limiter, GatewayConfig gateway = {}, const std::string& tenant_plan = "free") {
    Config config;
    config.gateway = std::move(gateway);
    if (limiter == Limiter::redis) {
      const auto url = redis_url();
      ATRIUM_MISSING_SERVICE(!url, "ATRIUM_TEST_REDIS_URL");
      config.gateway.redis_url = *url;
      config.gateway.redis_timeout_ms = 2000;
    }
    tp_ = TestPlatform::create(GetParam(), config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    app::Platform::NewTenantRequest r;
    r.tenant.slug = "acme";
    r.tenant.name = "Acme";
    r.tenant.plan = tenant_plan;
    r.owner_email = "owner@acme.test";
    r.owner_password = "owner-password";
    auto t = platform().create_tenant(r, {});
    ASSERT_TRUE(t) << t.error().message;
    tenant_ = *t;
    owner_ = token("owner@acme.test", "owner-password", "acme");
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string token(const std::string& email, const std::string& password, const std::string& tenant) {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    auto r = client_->call(Method::post, "/v1/auth/token", body);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("access_token", "");
  }

  std::string api_key(const std::string& name) {
    auto r =
        client_->call(Method::post, "/v1/api-keys", Json{{"name", name}, {"permissions", {"projects:read"}}}, owner_);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("secret", "");
  }

  // `n` GET /v1/projects from 4 threads at once (the clock stands still), by status.
  std::map<int, std::vector<ApiResponse>> burst(const ApiClient& client, const std::string& bearer, int n) {
    std::mutex mutex;
    std::map<int, std::vector<ApiResponse>> by_status;
    std::atomic<int> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        while (next++ < n) {
          auto r = client.call(Method::get, "/v1/projects", std::nullopt, bearer);
          std::lock_guard lock(mutex);
          by_status[r.status].push_back(std::move(r));
        }
      });
    }
    for (auto& t : threads) t.join();
    return by_status;
  }

  void expect_hundred_at_once_gives_twenty() {
    const auto by_status = burst(*client_, owner_, 100);
    ASSERT_EQ(by_status.size(), 2u) << "statuses other than 200 and 429";
    ASSERT_EQ(by_status.at(200).size(), 20u);
    ASSERT_EQ(by_status.at(429).size(), 80u);
    std::set<std::string> states;
    for (const auto& r : by_status.at(200)) {
      EXPECT_EQ(r.headers.get("RateLimit-Policy").value_or(""), "\"tenant\";q=20;w=2");
      states.insert(std::string(r.headers.get("RateLimit").value_or("")));
    }
    // Each request that passed spent one unit: the remaining counts 19, 18, ..., 0 each appear once.
    for (int left = 0; left < 20; ++left) {
      const int seconds_to_full = (20 - left + 9) / 10;  // (20 - left) units at 100 ms, rounded up
      EXPECT_TRUE(states.contains("\"tenant\";r=" + std::to_string(left) + ";t=" + std::to_string(seconds_to_full)))
          << left;
    }
    for (const auto& r : by_status.at(429)) {
      EXPECT_EQ(r.content_type, "application/problem+json");
      EXPECT_EQ(r.body.value("type", ""), "/problems/rate-limited");
      EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "1");  // the next unit is back in 100 ms
      EXPECT_EQ(r.headers.get("RateLimit-Policy").value_or(""), "\"tenant\";q=20;w=2");
      EXPECT_EQ(r.headers.get("RateLimit").value_or(""), "\"tenant\";r=0;t=2");
    }
    // Retry-After told the truth: a second later ten more pass.
    clock_.advance(1s);
    EXPECT_EQ(burst(*client_, owner_, 30).at(200).size(), 10u);
  }

  ManualClock clock_{std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant tenant_;
  std::string owner_;
};

const GatewayConfig k_ten_per_second = [] {
  GatewayConfig g;
  g.default_requests_per_second = 10;
  g.default_burst = 20;
  return g;
}();

TEST_P(GatewayApiTest, HundredRequestsAtOnceGetTwentyThroughAndEightyTooManyRequests) {
  start(Limiter::memory, k_ten_per_second);
  expect_hundred_at_once_gives_twenty();
}

TEST_P(GatewayApiTest, HundredRequestsAtOnceGetTwentyThroughInRedisToo) {
  start(Limiter::redis, k_ten_per_second);
  if (IsSkipped() || HasFatalFailure()) return;
  expect_hundred_at_once_gives_twenty();
}

TEST_P(GatewayApiTest, TwoInstancesOnOneRedisShareTheLimit) {
  start(Limiter::redis, k_ten_per_second);
  if (IsSkipped() || HasFatalFailure()) return;
  // A second Atrium instance: another platform on the same database and Redis, with its own middleware chain.
  app::Platform::Options options;
  options.background = false;
  options.rate_limits_use_redis_time = false;
  auto second = app::Platform::open(tp_->config(), clock_, options);
  ASSERT_TRUE(second) << second.error().message;
  ApiClient other(**second);
  int passed = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = (i % 2 == 0 ? *client_ : other).call(Method::get, "/v1/projects", std::nullopt, owner_);
    ASSERT_TRUE(r.status == 200 || r.status == 429) << r.status;
    passed += r.status == 200 ? 1 : 0;
  }
  EXPECT_EQ(passed, 20);
}

TEST_P(GatewayApiTest, TheSameTwoInstancesWithoutRedisLimitEachOnTheirOwn) {
  start(Limiter::memory, k_ten_per_second);
  app::Platform::Options options;
  options.background = false;
  auto second = app::Platform::open(tp_->config(), clock_, options);
  ASSERT_TRUE(second) << second.error().message;
  ApiClient other(**second);
  int passed = 0;
  for (int i = 0; i < 60; ++i) {
    passed += (i % 2 == 0 ? *client_ : other).call(Method::get, "/v1/projects", std::nullopt, owner_).status == 200;
  }
  EXPECT_EQ(passed, 40);
}

TEST_P(GatewayApiTest, EachApiKeyHasItsOwnLimitWithinTheTenants) {
  GatewayConfig g = k_ten_per_second;
  g.api_key_requests_per_second = 2;
  g.api_key_burst = 5;
  start(Limiter::memory, g);
  const std::string a = api_key("a");
  const std::string b = api_key("b");
  clock_.advance(10s);  // creating the keys spent units of the tenant's limit; let it fill up again
  const auto by_key_a = burst(*client_, a, 20);
  EXPECT_EQ(by_key_a.at(200).size(), 5u);
  for (const auto& r : by_key_a.at(429)) {
    EXPECT_EQ(r.body.value("policy", ""), "api_key");
    EXPECT_EQ(r.headers.get("RateLimit-Policy").value_or(""), "\"api_key\";q=5;w=3, \"tenant\";q=20;w=2");
  }
  EXPECT_EQ(burst(*client_, b, 20).at(200).size(), 5u);
  // The users' requests meet only the tenant's limit, ten units of which the keys spent.
  EXPECT_EQ(burst(*client_, owner_, 30).at(200).size(), 10u);
}

TEST_P(GatewayApiTest, ThePlanOfTheLiveSubscriptionSetsTheLimit) {
  start(Limiter::memory, k_ten_per_second);
  billing::Billing& b = *platform().billing;
  for (const auto& [code, limits] : {std::pair<std::string, Json>{"free", {{"requestsPerSecond", 1}, {"burst", 3}}},
                                     std::pair<std::string, Json>{"pro", {{"requestsPerSecond", 5}, {"burst", 7}}}}) {
    auto plan = b.create_plan(
        {.code = code,
         .name = code,
         .tier = "starter",
         .price = {.currency = "USD", .interval = billing::Interval::monthly, .base_price = 1000, .limits = limits}},
        k_test);
    ASSERT_TRUE(plan) << plan.error().message;
  }
  // The tenant's `plan` names "free" (its limit is read at the first request, then cached).
  const auto free = burst(*client_, owner_, 10);
  EXPECT_EQ(free.at(200).size(), 3u);
  EXPECT_EQ(free.at(200).front().headers.get("RateLimit-Policy").value_or(""), "\"tenant\";q=3;w=3");
  // A subscription to "pro" takes over from the next cache refresh.
  ASSERT_TRUE(b.put_account(tenant_.id,
                            {.legal_name = "Acme GmbH",
                             .email = "billing@acme.test",
                             .country = "DE",
                             .currency = "USD",
                             .payment_method = "pm_card_visa"},
                            false, k_test));
  auto subscription = b.create_subscription(tenant_.id, {.plan = "pro"}, k_test);
  ASSERT_TRUE(subscription) << subscription.error().message;
  clock_.advance(std::chrono::milliseconds(platform().config().gateway.plan_cache_ttl_ms));
  const auto pro = burst(*client_, owner_, 20);
  EXPECT_EQ(pro.at(200).size(), 7u);
  EXPECT_EQ(pro.at(200).front().headers.get("RateLimit-Policy").value_or(""), "\"tenant\";q=7;w=2");
}

TEST_P(GatewayApiTest, PlansRefuseMalformedRateLimits) {
  start(Limiter::memory);
  auto plan = platform().billing->create_plan(
      {.code = "odd",
       .name = "odd",
       .tier = "starter",
       .price = {.currency = "USD", .base_price = 1000, .limits = Json{{"requestsPerSecond", -1}}}},
      k_test);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Errc::invalid_argument);
}

TEST_P(GatewayApiTest, RoutesWithoutATenantAndSuperAdminsAreNotLimited) {
  GatewayConfig g;
  g.default_requests_per_second = 1;
  g.default_burst = 1;
  start(Limiter::memory, g);
  for (int i = 0; i < 5; ++i) {
    auto r = client_->call(Method::get, "/.well-known/jwks.json");
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.headers.get("RateLimit-Policy"));
  }
  const std::string root = token("root@atrium.test", "root-password", "");
  for (int i = 0; i < 5; ++i) {
    auto r = client_->call(Method::get, "/v1/projects", std::nullopt, root, {{"X-Tenant-ID", tenant_.id}});
    EXPECT_EQ(r.status, 200) << r.body.dump();
    EXPECT_FALSE(r.headers.get("RateLimit-Policy"));
  }
  EXPECT_EQ(burst(*client_, owner_, 5).at(200).size(), 1u);
}

TEST_P(GatewayApiTest, AnUnreachableRedisFailsOpenByDefault) {
  GatewayConfig g = k_ten_per_second;
  g.redis_url = "redis://127.0.0.1:" + std::to_string(closed_port());
  g.redis_timeout_ms = 200;
  start(Limiter::memory, g);
  for (int i = 0; i < 30; ++i) {
    auto r = client_->call(Method::get, "/v1/projects", std::nullopt, owner_);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.get("RateLimit-Policy").value_or(""), "\"tenant\";q=20;w=2");
    EXPECT_FALSE(r.headers.get("RateLimit"));  // nothing was decided
  }
  const std::string text = platform().registry.render();
  EXPECT_NE(text.find("atrium_rate_limit_decisions_total{outcome=\"error_open\",scope=\"tenant\"} 30"),
            std::string::npos);
}

TEST_P(GatewayApiTest, AnUnreachableRedisFailsClosedWhenConfigured) {
  GatewayConfig g = k_ten_per_second;
  g.redis_url = "redis://127.0.0.1:" + std::to_string(closed_port());
  g.redis_timeout_ms = 200;
  g.rate_limit_fail_open = false;
  start(Limiter::memory, g);
  auto r = client_->call(Method::get, "/v1/projects", std::nullopt, owner_);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body.value("type", ""), "/problems/unavailable");
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "1");
  EXPECT_NE(platform().registry.render().find(
                "atrium_rate_limit_decisions_total{outcome=\"error_closed\",scope=\"tenant\"} 1"),
            std::string::npos);
}

TEST_P(GatewayApiTest, RequestsWithoutAVersionGetTheCurrentOne) {
  start(Limiter::memory);
  auto r = client_->call(Method::get, "/v1/projects", std::nullopt, owner_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("Atrium-Version").value_or(""), "2026-11-01");
  EXPECT_FALSE(r.headers.get("Deprecation"));
  EXPECT_FALSE(r.headers.get("Sunset"));
  EXPECT_TRUE(r.body.contains("data"));
  EXPECT_FALSE(r.body.contains("items"));
  // Error answers are versioned too, and the current version can be asked for by name.
  auto unauthenticated =
      client_->call(Method::get, "/v1/projects", std::nullopt, "", {{"Atrium-Version", "2026-11-01"}});
  EXPECT_EQ(unauthenticated.status, 401);
  EXPECT_EQ(unauthenticated.headers.get("Atrium-Version").value_or(""), "2026-11-01");
}

TEST_P(GatewayApiTest, TheRetiredVersionKeepsItsShapeAndIsToldItsSunset) {
  start(Limiter::memory);
  ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "one"}}, owner_).status, 201);
  auto r = client_->call(Method::get, "/v1/projects", std::nullopt, owner_, {{"Atrium-Version", "2026-06-01"}});
  ASSERT_EQ(r.status, 200) << r.raw_body;
  EXPECT_EQ(r.headers.get("Atrium-Version").value_or(""), "2026-06-01");
  EXPECT_EQ(r.headers.get("Deprecation").value_or(""), "@1793491200");  // 2026-11-01T00:00:00Z
  EXPECT_EQ(r.headers.get("Sunset").value_or(""), "Sat, 01 May 2027 00:00:00 GMT");
  EXPECT_EQ(r.headers.get("Link").value_or(""), "</openapi.json>; rel=\"deprecation\"");
  ASSERT_TRUE(r.body.contains("items")) << r.raw_body;
  EXPECT_FALSE(r.body.contains("data"));
  EXPECT_EQ(r.body["items"].size(), 1u);
  EXPECT_EQ(r.body["items"][0].value("name", ""), "one");
  EXPECT_TRUE(r.body.contains("next_cursor"));
  // Only the list's shape differs: a single project reads the same under both versions.
  const std::string id = r.body["items"][0].value("id", "");
  auto one_old =
      client_->call(Method::get, "/v1/projects/" + id, std::nullopt, owner_, {{"Atrium-Version", "2026-06-01"}});
  auto one_new = client_->call(Method::get, "/v1/projects/" + id, std::nullopt, owner_);
  EXPECT_EQ(one_old.body, one_new.body);
}

TEST_P(GatewayApiTest, AnUnknownVersionIsRefusedWithTheKnownOnes) {
  start(Limiter::memory);
  for (const char* version : {"2025-01-01", "latest", "", "2026-11-01 "}) {
    auto r = client_->call(Method::get, "/v1/projects", std::nullopt, owner_, {{"Atrium-Version", version}});
    EXPECT_EQ(r.status, 400) << version;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_EQ(r.body.value("type", ""), "/problems/unsupported-api-version");
    EXPECT_EQ(r.body["known_versions"], Json::array({"2026-06-01", "2026-11-01"}));
    EXPECT_FALSE(r.headers.get("Atrium-Version"));
  }
}

TEST_P(GatewayApiTest, PathsOutsideV1AreNotVersioned) {
  start(Limiter::memory);
  auto r = client_->call(Method::get, "/.well-known/jwks.json", std::nullopt, "", {{"Atrium-Version", "1999-01-01"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.headers.get("Atrium-Version"));
}

TEST(ApiVersions, TheTableIsOrderedAndTheCurrentVersionIsNotDeprecated) {
  const auto versions = gateway::api_versions();
  ASSERT_GE(versions.size(), 2u);
  for (std::size_t i = 1; i < versions.size(); ++i) EXPECT_LT(versions[i - 1].name, versions[i].name);
  EXPECT_EQ(gateway::current_api_version().name, versions.back().name);
  EXPECT_FALSE(gateway::current_api_version().deprecated);
  for (const auto& v : versions.first(versions.size() - 1)) {
    EXPECT_TRUE(v.deprecated && v.sunset) << v.name;
    if (v.deprecated && v.sunset) {
      EXPECT_GE(*v.sunset - *v.deprecated, std::chrono::days(180)) << v.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, GatewayApiTest, all_backends(), backend_name);

}  // namespace
}  // namespace atrium::test
