// The rate-limit middleware on its own: a stand-in for the security middleware names the tenant and the caller,
// and the in-process limiter runs on a ManualClock, so every count is exact.
#include "gateway/rate_limits.hpp"

#include <gtest/gtest.h>

#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::gateway {
namespace {

using namespace std::chrono_literals;
using http::Method;

// A limiter whose backend is down.
class BrokenLimiter final : public RateLimiter {
 public:
  Result<Decision> decide(std::string_view, const Limit&, std::int64_t) override {
    return fail(Errc::unavailable, "redis connect to 127.0.0.1:1: Connection refused");
  }
};

class RateLimitsTest : public ::testing::Test {
 protected:
  // Builds the pipeline: the stand-in security step, then the rate limits, then the routes.
  void start(RateLimitSettings settings, std::unique_ptr<RateLimiter> limiter = nullptr) {
    if (!limiter) limiter = make_memory_rate_limiter(clock_);
    limits_ = std::make_unique<RateLimits>(
        std::move(limiter), settings,
        [this](const tenancy::Tenant& t) -> Result<Json> {
          ++lookups_;
          if (!plan_error_.empty()) return fail(Errc::unavailable, plan_error_);
          return plans_.value(t.id, Json());
        },
        clock_, registry_);
    http::Router router;
    auto ok = [](http::Request&) { return http::Response::text(200, "ok"); };
    router.add(Method::get, "/one", ok);
    router.add(Method::post, "/heavy", ok, {.cost = 5});
    router.add(Method::get, "/free", ok, {.cost = 0});
    router.add(Method::post, "/batch", ok,
               {.weight = [](const http::Request& r) { return static_cast<int>((r.body.size() + 99) / 100); }});
    http::Middleware security = [](http::Request& req, const http::Next& next) {
      auto tenant = std::make_shared<tenancy::Tenant>();
      tenant->id = std::string(req.headers.get("X-Tenant").value_or("t1"));
      req.tenant = std::move(tenant);
      auto who = std::make_shared<identity::Principal>();
      if (auto key = req.headers.get("X-Key")) {
        who->kind = identity::Principal::Kind::api_key;
        who->subject = std::string(*key);
      } else {
        who->subject = "user-1";
      }
      who->super_admin = req.headers.get("X-Super").has_value();
      req.principal = std::move(who);
      return next(req);
    };
    dispatcher_ = std::make_unique<http::Dispatcher>(
        std::move(router), std::vector<http::Middleware>{security, limits_->middleware()}, JsonLimits{});
  }

  http::Response call(Method method, const std::string& path, std::vector<std::pair<std::string, std::string>> h = {},
                      std::string body = "") {
    http::Request req;
    req.method = method;
    req.path = path;
    req.body = std::move(body);
    for (auto& [n, v] : h) req.headers.add(n, v);
    auto prepared = dispatcher_->prepare(req);
    return dispatcher_->dispatch(req, prepared);
  }

  int passes(Method method, const std::string& path, int n, std::vector<std::pair<std::string, std::string>> h = {},
             std::string body = "") {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += call(method, path, h, body).status == 200 ? 1 : 0;
    return ok;
  }

  std::string header(const http::Response& r, std::string_view name) {
    return std::string(r.headers.get(name).value_or("<none>"));
  }

  ManualClock clock_{std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  metrics::Registry registry_;
  Json plans_ = Json::object();  // tenant id -> plan limits
  std::string plan_error_;
  int lookups_ = 0;
  std::unique_ptr<RateLimits> limits_;
  std::unique_ptr<http::Dispatcher> dispatcher_;
};

const RateLimitSettings k_ten_per_second{.default_rate = 10, .default_burst = 20};

TEST_F(RateLimitsTest, EveryLimitedAnswerCarriesThePolicyAndItsState) {
  start(k_ten_per_second);
  auto first = call(Method::get, "/one");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(header(first, "RateLimit-Policy"), "\"tenant\";q=20;w=2");
  EXPECT_EQ(header(first, "RateLimit"), "\"tenant\";r=19;t=1");
  EXPECT_EQ(passes(Method::get, "/one", 19), 19);
  auto denied = call(Method::get, "/one");
  EXPECT_EQ(denied.status, 429);
  EXPECT_EQ(header(denied, "Content-Type"), "application/problem+json");
  EXPECT_EQ(header(denied, "Retry-After"), "1");
  EXPECT_EQ(header(denied, "RateLimit-Policy"), "\"tenant\";q=20;w=2");
  EXPECT_EQ(header(denied, "RateLimit"), "\"tenant\";r=0;t=2");
  const Json body = Json::parse(denied.body);
  EXPECT_EQ(body["type"], "/problems/rate-limited");
  EXPECT_EQ(body["policy"], "tenant");
  EXPECT_EQ(body["status"], 429);
}

TEST_F(RateLimitsTest, ARouteCostSpendsThatManyUnits) {
  start(k_ten_per_second);
  EXPECT_EQ(passes(Method::post, "/heavy", 10), 4);  // 4 × 5 = the burst of 20
  auto denied = call(Method::post, "/heavy");
  EXPECT_EQ(header(denied, "Retry-After"), "1");  // five units are back in 500 ms: rounded up to a whole second
  clock_.advance(500ms);
  EXPECT_EQ(passes(Method::post, "/heavy", 10), 1);
  EXPECT_EQ(passes(Method::get, "/one", 10), 0);  // both routes spend from the same tenant
}

TEST_F(RateLimitsTest, AWeightFunctionPricesEachRequest) {
  start(k_ten_per_second);
  const std::string ten_units(1000, 'x');  // 1000 bytes at 100 per unit
  auto first = call(Method::post, "/batch", {}, ten_units);
  EXPECT_EQ(header(first, "RateLimit"), "\"tenant\";r=10;t=1");
  EXPECT_EQ(call(Method::post, "/batch", {}, ten_units).status, 200);
  EXPECT_EQ(call(Method::post, "/batch", {}, ten_units).status, 429);
  EXPECT_EQ(call(Method::post, "/batch", {}, "tiny").status, 429);  // nothing left, not even one unit
  clock_.advance(100ms);
  EXPECT_EQ(call(Method::post, "/batch", {}, "tiny").status, 200);
}

TEST_F(RateLimitsTest, ARequestHeavierThanTheBurstWaitsForAFullBucket) {
  start({.default_rate = 10, .default_burst = 3});
  auto first = call(Method::post, "/heavy");  // costs 5, charged as the whole burst of 3
  EXPECT_EQ(first.status, 200);
  auto second = call(Method::post, "/heavy");
  EXPECT_EQ(second.status, 429);
  clock_.advance(300ms);
  EXPECT_EQ(call(Method::post, "/heavy").status, 200);
}

TEST_F(RateLimitsTest, CostZeroRoutesAreNotLimited) {
  start(k_ten_per_second);
  EXPECT_EQ(passes(Method::get, "/free", 100), 100);
  EXPECT_EQ(header(call(Method::get, "/free"), "RateLimit-Policy"), "<none>");
  EXPECT_EQ(passes(Method::get, "/one", 100), 20);
}

TEST_F(RateLimitsTest, TenantsHaveTheirOwnLimits) {
  start(k_ten_per_second);
  EXPECT_EQ(passes(Method::get, "/one", 50, {{"X-Tenant", "a"}}), 20);
  EXPECT_EQ(passes(Method::get, "/one", 50, {{"X-Tenant", "b"}}), 20);
}

TEST_F(RateLimitsTest, ApiKeysSpendTheirOwnLimitFirstAndTheTenantsToo) {
  start({.default_rate = 10, .default_burst = 20, .api_key_rate = 2, .api_key_burst = 3});
  auto first = call(Method::get, "/one", {{"X-Key", "key-a"}});
  EXPECT_EQ(header(first, "RateLimit-Policy"), "\"api_key\";q=3;w=2, \"tenant\";q=20;w=2");
  EXPECT_EQ(header(first, "RateLimit"), "\"api_key\";r=2;t=1, \"tenant\";r=19;t=1");
  EXPECT_EQ(passes(Method::get, "/one", 10, {{"X-Key", "key-a"}}), 2);
  auto denied = call(Method::get, "/one", {{"X-Key", "key-a"}});
  EXPECT_EQ(denied.status, 429);
  EXPECT_EQ(Json::parse(denied.body)["policy"], "api_key");
  EXPECT_EQ(header(denied, "Retry-After"), "1");
  EXPECT_EQ(header(denied, "RateLimit"), "\"api_key\";r=0;t=2");  // the tenant's limit was not consulted
  // Another key has its own three; users (no key) only meet the tenant's limit, of which 6 units are spent.
  EXPECT_EQ(passes(Method::get, "/one", 10, {{"X-Key", "key-b"}}), 3);
  auto user = call(Method::get, "/one");
  EXPECT_EQ(header(user, "RateLimit"), "\"tenant\";r=13;t=1");
  EXPECT_EQ(passes(Method::get, "/one", 100), 13);
}

TEST_F(RateLimitsTest, SuperAdminsActingInATenantAreNotLimited) {
  start(k_ten_per_second);
  EXPECT_EQ(passes(Method::get, "/one", 50, {{"X-Super", "1"}}), 50);
  EXPECT_EQ(passes(Method::get, "/one", 50), 20);
}

TEST_F(RateLimitsTest, ThePlanDecidesAndIsReadOncePerTtl) {
  plans_["t1"] = {{"requestsPerSecond", 5}, {"burst", 7}, {"projects", 3}};
  start({.default_rate = 10, .default_burst = 20, .plan_cache_ttl = 30s});
  auto first = call(Method::get, "/one");
  EXPECT_EQ(header(first, "RateLimit-Policy"), "\"tenant\";q=7;w=2");
  EXPECT_EQ(passes(Method::get, "/one", 20), 6);
  EXPECT_EQ(lookups_, 1);
  plans_["t1"] = {{"requestsPerSecond", "unlimited"}};
  clock_.advance(29s);
  EXPECT_EQ(header(call(Method::get, "/one"), "RateLimit-Policy"), "\"tenant\";q=7;w=2");
  EXPECT_EQ(lookups_, 1);
  clock_.advance(1s);
  EXPECT_EQ(passes(Method::get, "/one", 100), 100);
  EXPECT_EQ(header(call(Method::get, "/one"), "RateLimit-Policy"), "<none>");
  EXPECT_EQ(lookups_, 2);
  plans_["t1"] = {{"requestsPerSecond", 1}, {"burst", 1}};
  limits_->forget("t1");
  EXPECT_EQ(passes(Method::get, "/one", 5), 1);
  EXPECT_EQ(lookups_, 3);
}

TEST_F(RateLimitsTest, AnUnreadablePlanMeansTheDefaultsAndAnotherTryNextTime) {
  plan_error_ = "database down";
  start(k_ten_per_second);
  EXPECT_EQ(passes(Method::get, "/one", 30), 20);
  EXPECT_EQ(lookups_, 30);
}

TEST_F(RateLimitsTest, ABrokenLimiterFailsOpenWhenToldTo) {
  start({.default_rate = 10, .default_burst = 20, .fail_open = true}, std::make_unique<BrokenLimiter>());
  EXPECT_EQ(passes(Method::get, "/one", 30), 30);
  const std::string text = registry_.render();
  EXPECT_NE(text.find("atrium_rate_limit_decisions_total{outcome=\"error_open\",scope=\"tenant\"} 30"),
            std::string::npos)
      << text;
}

TEST_F(RateLimitsTest, ABrokenLimiterFailsClosedWhenToldTo) {
  start({.default_rate = 10, .default_burst = 20, .fail_open = false}, std::make_unique<BrokenLimiter>());
  auto r = call(Method::get, "/one");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(Json::parse(r.body)["type"], "/problems/unavailable");
  EXPECT_EQ(header(r, "Retry-After"), "1");
  const std::string text = registry_.render();
  EXPECT_NE(text.find("atrium_rate_limit_decisions_total{outcome=\"error_closed\",scope=\"tenant\"} 1"),
            std::string::npos)
      << text;
}

TEST_F(RateLimitsTest, DecisionsAreCountedByOutcomeAndScope) {
  start({.default_rate = 10, .default_burst = 20, .api_key_rate = 1, .api_key_burst = 2});
  passes(Method::get, "/one", 5, {{"X-Key", "k"}});
  passes(Method::get, "/one", 30);
  const std::string text = registry_.render();
  for (const char* line : {"atrium_rate_limit_decisions_total{outcome=\"allowed\",scope=\"api_key\"} 2",
                           "atrium_rate_limit_decisions_total{outcome=\"limited\",scope=\"api_key\"} 3",
                           "atrium_rate_limit_decisions_total{outcome=\"allowed\",scope=\"tenant\"} 20",
                           "atrium_rate_limit_decisions_total{outcome=\"limited\",scope=\"tenant\"} 12"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST(WeightByBodySize, ChargesOneUnitPerStartedBlockAndAtLeastOne) {
  const auto weight = weight_by_body_size(10 * 1024);
  http::Request req;
  EXPECT_EQ(weight(req), 1);
  req.body.assign(10 * 1024, 'x');
  EXPECT_EQ(weight(req), 1);
  req.body.push_back('x');
  EXPECT_EQ(weight(req), 2);
  req.body.assign(1 << 20, 'x');
  EXPECT_EQ(weight(req), 103);
}

TEST(LimitFromPlan, PlanValuesWinAndMissingOnesTakeTheDefaults) {
  const RateLimitSettings d{.default_rate = 100, .default_burst = 200};
  auto limit = [&](const Json& plan) { return limit_from_plan(plan, d); };
  EXPECT_EQ(limit(Json())->rate, 100);
  EXPECT_EQ(limit(Json())->burst, 200);
  EXPECT_EQ(limit({{"requestsPerSecond", 5}})->rate, 5);
  EXPECT_EQ(limit({{"requestsPerSecond", 5}})->burst, 200);
  EXPECT_EQ(limit({{"burst", 7}})->rate, 100);
  EXPECT_EQ(limit({{"burst", 7}})->burst, 7);
  EXPECT_FALSE(limit({{"requestsPerSecond", "unlimited"}}));
  EXPECT_FALSE(limit({{"requestsPerSecond", 0}}));
  EXPECT_EQ(limit({{"requestsPerSecond", 5}, {"burst", "unlimited"}})->burst, k_max_limit);
  EXPECT_EQ(limit({{"requestsPerSecond", 50'000'000}})->rate, k_max_limit);
  EXPECT_FALSE(limit_from_plan(Json(), {.default_rate = 0, .default_burst = 200}));
  EXPECT_EQ(limit_from_plan(Json(), {.default_rate = 30, .default_burst = 0})->burst, 30);
}

}  // namespace
}  // namespace atrium::gateway
