// Quotas and entitlements, and metered usage on invoices, through the real router on every backend and isolation
// level, with the platform on a ManualClock: a hard quota refuses usage events and projects with a problem that
// names the quota (a retry of a stored event stays a duplicate), per-tenant overrides (operator only, audited,
// invisible to other tenants), thresholds at 80% and 100% that fire once per period (a webhook and a mail each, and
// again in the next period), and a soft quota whose overage is billed on the next renewal invoice with the plan's
// metered prices, late events billed on the invoice after, within the grace window.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/clock.hpp"
#include "support/api_client.hpp"
#include "support/http_receiver.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using namespace std::chrono_literals;
using http::Method;
using storage::Backend;

std::string rfc3339(std::chrono::system_clock::time_point t) { return format_rfc3339(t); }
std::int64_t epoch_seconds(const Json& value) {
  if (!value.is_string()) return -1;
  auto t = parse_rfc3339(value.get<std::string>());
  return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() : -1;
}

class QuotasApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.webhooks.allow_private_targets = true;
    config.jobs.poll_interval_ms = 50;
    config.jobs.relay_interval_ms = 100;
    config.billing.run_cron = "";  // the tests run billing themselves
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
    root_ = token("root@atrium.test", "root-password", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string token(const std::string& email, const std::string& password, const std::string& tenant) {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    auto r = client_->call(Method::post, "/v1/auth/token", body);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("access_token", "");
  }

  ApiResponse as(const std::string& token, Method m, const std::string& path,
                 const std::optional<Json>& body = std::nullopt) {
    return client_->call(m, path, body, token);
  }
  // The super admin acting in tenant `t`.
  ApiResponse operator_in(const tenancy::Tenant& t, Method m, const std::string& path,
                          const std::optional<Json>& body = std::nullopt) {
    return client_->call(m, path, body, root_, {{"X-Tenant-ID", t.id}});
  }

  void create_plan(const Json& extra) {
    Json body{{"code", "metered"}, {"name", "Metered"},     {"tier", "starter"},
              {"currency", "USD"}, {"interval", "monthly"}, {"base_price", 1000}};
    for (const auto& [k, v] : extra.items()) body[k] = v;
    auto r = client_->call(Method::post, "/v1/plans", body, root_);
    ASSERT_EQ(r.status, 201) << r.body.dump();
  }

  // The tenant's billing account (paid by a card that works) and a subscription to the plan, starting now.
  void subscribe(const std::string& token) {
    auto acct = as(token, Method::put, "/v1/billing-account",
                   Json{{"legal_name", "Alpha Inc."},
                        {"email", "billing@alpha.test"},
                        {"currency", "USD"},
                        {"payment_method", "pm_card_visa"}});
    ASSERT_EQ(acct.status, 200) << acct.body.dump();
    auto sub = as(token, Method::post, "/v1/subscriptions", Json{{"plan", "metered"}});
    ASSERT_EQ(sub.status, 201) << sub.body.dump();
    EXPECT_EQ(epoch_seconds(sub.body["current_period_start"]), now_s());
  }

  // Moves the clock on; access tokens expire meanwhile, so everyone signs in again.
  void advance(std::chrono::seconds by) {
    clock_.advance(by);
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
    root_ = token("root@atrium.test", "root-password", "");
  }

  std::int64_t now_s() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  }

  Json event(const std::string& key, const std::string& metric, std::int64_t quantity,
             std::optional<std::chrono::system_clock::time_point> at = std::nullopt) const {
    return {{"idempotency_key", key},
            {"metric", metric},
            {"quantity", quantity},
            {"timestamp", rfc3339(at.value_or(clock_.now()))}};
  }
  ApiResponse ingest(const std::string& token, const Json& body) { return as(token, Method::post, "/v1/usage", body); }

  // GET /v1/entitlements/{name}; 200 expected.
  Json entitlement(const std::string& token, const std::string& name) {
    auto r = as(token, Method::get, "/v1/entitlements/" + name);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body;
  }

  // The renewal run at the clock's now.
  void run_billing() {
    auto r = platform().billing->run();
    ASSERT_TRUE(r) << r.error().message;
  }

  // The tenant's invoices, oldest first, each with its lines.
  std::vector<Json> invoices(const std::string& token) {
    auto r = as(token, Method::get, "/v1/invoices");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    std::vector<Json> out;
    for (const auto& i : r.body.value("data", Json::array())) {
      auto full = as(token, Method::get, "/v1/invoices/" + i.value("id", ""));
      EXPECT_EQ(full.status, 200);
      out.push_back(full.body);
    }
    std::sort(out.begin(), out.end(),
              [](const Json& x, const Json& y) { return x.value("number", "") < y.value("number", ""); });
    return out;
  }

  static std::vector<Json> usage_lines(const Json& invoice) {
    std::vector<Json> out;
    for (const auto& l : invoice.value("lines", Json::array())) {
      if (l.value("kind", "") == "usage") out.push_back(l);
    }
    std::sort(out.begin(), out.end(),
              [](const Json& x, const Json& y) { return x.value("description", "") < y.value("description", ""); });
    return out;
  }

  // Mails about quota thresholds written so far (their raw text).
  std::vector<std::string> quota_mails() {
    std::vector<std::string> out;
    for (auto& raw : delivered_mails(tp_->config().storage.data_dir)) {
      if (raw.find("of the limit used") != std::string::npos) out.push_back(std::move(raw));
    }
    return out;
  }

  ManualClock clock_{parse_rfc3339("2026-11-27T00:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
  std::string root_;
};

TEST_P(QuotasApiTest, HardQuotasRefuseWithTheQuotaNamed) {
  ASSERT_NO_FATAL_FAILURE(
      create_plan({{"limits", {{"projects", 2}}},
                   {"quotas", {{"emails", {{"metric", "emails_sent"}, {"limit", 100}, {"enforcement", "hard"}}}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));

  // The plan's quotas: explicit, and projects from limits.projects (hard).
  auto list = as(owner_a_, Method::get, "/v1/entitlements");
  ASSERT_EQ(list.status, 200) << list.body.dump();
  EXPECT_EQ(list.body["plan"], "metered");
  EXPECT_EQ(list.body["period"]["source"], "subscription");
  EXPECT_EQ(epoch_seconds(list.body["period"]["start"]), now_s());
  ASSERT_EQ(list.body["data"].size(), 2u) << list.body.dump();
  EXPECT_EQ(list.body["data"][0]["name"], "emails");
  EXPECT_EQ(list.body["data"][0]["enforcement"], "hard");
  EXPECT_EQ(list.body["data"][1]["name"], "projects");
  EXPECT_EQ(list.body["data"][1]["limit"], 2);
  EXPECT_EQ(list.body["data"][1]["metric"], nullptr);

  // Usage up to the limit goes in; one event beyond it is refused as a whole (403, the quota named, nothing stored).
  auto first = ingest(owner_a_, {{"events", {event("e1", "emails_sent", 60), event("e2", "emails_sent", 35)}}});
  ASSERT_EQ(first.status, 202) << first.body.dump();
  EXPECT_EQ(first.body["accepted"], 2);
  auto over = ingest(owner_a_, event("e3", "emails_sent", 6));
  ASSERT_EQ(over.status, 403) << over.body.dump();
  EXPECT_EQ(over.headers.get("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(over.body["type"], "/problems/quota-exceeded");
  EXPECT_EQ(over.body["quota"], "emails");
  EXPECT_NE(over.body.value("detail", "").find("emails"), std::string::npos) << over.body.dump();
  EXPECT_EQ(entitlement(owner_a_, "emails")["used"], 95);

  // In a batch, what fits goes in and the rest is refused one by one; a retry of a stored event is a duplicate.
  auto mixed = ingest(owner_a_, {{"events",
                                  {event("e4", "emails_sent", 5), event("e5", "emails_sent", 1),
                                   event("e1", "emails_sent", 60), event("x1", "other_metric", 1000)}}});
  ASSERT_EQ(mixed.status, 202) << mixed.body.dump();
  EXPECT_EQ(mixed.body["accepted"], 2) << mixed.body.dump();  // e4 and x1
  EXPECT_EQ(mixed.body["duplicates"], 1);                     // e1
  ASSERT_EQ(mixed.body["rejected"].size(), 1u);
  EXPECT_EQ(mixed.body["rejected"][0]["index"], 1);
  EXPECT_EQ(mixed.body["rejected"][0]["reason"], "quota_exceeded");
  EXPECT_EQ(mixed.body["rejected"][0]["quota"], "emails");
  Json emails = entitlement(owner_a_, "emails");
  EXPECT_EQ(emails["used"], 100);
  EXPECT_EQ(emails["remaining"], 0);
  EXPECT_EQ(emails["percent_used"], 100);
  EXPECT_EQ(ingest(owner_a_, event("e6", "emails_sent", 1)).status, 403);
  // A key repeated in a batch is refused with its first occurrence, not reported as a duplicate of nothing.
  auto repeated = ingest(owner_a_, {{"events", {event("e6", "emails_sent", 1), event("e6", "emails_sent", 1)}}});
  ASSERT_EQ(repeated.status, 403) << repeated.body.dump();
  EXPECT_EQ(repeated.body["rejected"].size(), 2u);
  EXPECT_EQ(ingest(owner_a_, event("e7", "emails_sent", 0)).status, 202) << "nothing more is not beyond the limit";

  // Another tenant, without a plan, is not limited by alpha's quota.
  auto beta = ingest(owner_b_, event("e1", "emails_sent", 500));
  ASSERT_EQ(beta.status, 202) << beta.body.dump();
  EXPECT_EQ(beta.body["accepted"], 1);
  auto beta_list = as(owner_b_, Method::get, "/v1/entitlements");
  ASSERT_EQ(beta_list.status, 200);
  EXPECT_TRUE(beta_list.body["data"].empty()) << beta_list.body.dump();
  EXPECT_EQ(beta_list.body["period"]["source"], "calendar_month");
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/entitlements/emails").status, 404);

  // Projects: two fit, the third is refused with the quota, its limit and the count.
  for (const char* name : {"one", "two"}) {
    EXPECT_EQ(as(owner_a_, Method::post, "/v1/projects", Json{{"name", name}}).status, 201);
  }
  auto third = as(owner_a_, Method::post, "/v1/projects", Json{{"name", "three"}});
  ASSERT_EQ(third.status, 403) << third.body.dump();
  EXPECT_EQ(third.body["type"], "/problems/quota-exceeded");
  EXPECT_EQ(third.body["quota"], "projects");
  EXPECT_EQ(third.body["limit"], 2);
  EXPECT_EQ(third.body["used"], 2);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/projects").body["data"].size(), 2u);

  // Overrides are the operator's: the owner may not; bad bodies change nothing.
  EXPECT_EQ(as(owner_a_, Method::put, "/v1/entitlements/projects", Json{{"limit", 10}}).status, 403);
  for (const Json& bad : {Json{{"limit", -1}}, Json{{"limit", "lots"}}, Json{{"limit", 3}, {"enforcement", "maybe"}},
                          Json{{"limit", 3}, {"colour", "red"}}, Json::array(), Json{{"enforcement", "soft"}}}) {
    auto r = operator_in(a_, Method::put, "/v1/entitlements/projects", bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.body.dump();
  }
  EXPECT_EQ(operator_in(a_, Method::put, "/v1/entitlements/widgets", Json{{"limit", 3}}).status, 400)
      << "a quota that is not a counted resource needs a metric";
  EXPECT_EQ(entitlement(owner_a_, "projects")["limit"], 2);
  EXPECT_EQ(entitlement(owner_a_, "projects")["source"], "plan");

  auto raised = operator_in(a_, Method::put, "/v1/entitlements/projects", Json{{"limit", 3}});
  ASSERT_EQ(raised.status, 200) << raised.body.dump();
  EXPECT_EQ(raised.body["limit"], 3);
  EXPECT_EQ(raised.body["source"], "override");
  EXPECT_EQ(raised.body["enforcement"], "hard") << "an override keeps what it does not name";
  EXPECT_EQ(raised.body["used"], 2);
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/projects", Json{{"name", "three"}}).status, 201);
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/projects", Json{{"name", "four"}}).status, 403);

  // The override is alpha's alone; beta's operator cannot delete it.
  EXPECT_EQ(operator_in(b_, Method::delete_, "/v1/entitlements/projects").status, 404);
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/entitlements/projects").status, 404);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/entitlements", std::nullopt).status, 200);
  EXPECT_NE(client_->call(Method::get, "/v1/entitlements", std::nullopt, owner_a_, {{"X-Tenant-ID", b_.id}}).status,
            200)
      << "alpha's owner cannot read beta's entitlements";

  // A soft override on a metric lets usage go beyond the limit.
  auto soft = operator_in(a_, Method::put, "/v1/entitlements/emails", Json{{"limit", 100}, {"enforcement", "soft"}});
  ASSERT_EQ(soft.status, 200) << soft.body.dump();
  EXPECT_EQ(soft.body["metric"], "emails_sent");
  EXPECT_EQ(ingest(owner_a_, event("e8", "emails_sent", 50)).status, 202);
  EXPECT_EQ(entitlement(owner_a_, "emails")["used"], 150);
  EXPECT_EQ(entitlement(owner_a_, "emails")["remaining"], 0);

  // Deleting the override brings the plan's hard limit back.
  EXPECT_EQ(operator_in(a_, Method::delete_, "/v1/entitlements/emails").status, 204);
  EXPECT_EQ(operator_in(a_, Method::delete_, "/v1/entitlements/emails").status, 404);
  EXPECT_EQ(entitlement(owner_a_, "emails")["source"], "plan");
  EXPECT_EQ(ingest(owner_a_, event("e9", "emails_sent", 1)).status, 403);

  // The next period: usage starts from nothing, and late events stamped in the previous period still count against
  // its limit (that period used 150 of 100), so back-dating does not get around a hard limit.
  const auto period_end = std::chrono::system_clock::time_point(
      std::chrono::seconds(epoch_seconds(as(owner_a_, Method::get, "/v1/entitlements").body["period"]["end"])));
  advance(std::chrono::hours(24 * 31));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(entitlement(owner_a_, "emails")["used"], 0);
  auto late = ingest(owner_a_, event("late1", "emails_sent", 1, period_end - 1h));
  ASSERT_EQ(late.status, 403) << late.body.dump();
  EXPECT_EQ(late.body["quota"], "emails");
  auto current = ingest(
      owner_a_, {{"events", {event("now1", "emails_sent", 100), event("late2", "emails_sent", 0, period_end - 2h)}}});
  ASSERT_EQ(current.status, 202) << current.body.dump();
  EXPECT_EQ(current.body["accepted"], 2);
  EXPECT_EQ(entitlement(owner_a_, "emails")["used"], 100);
}

// limits.integrations: webhook endpoints and API keys together, refused one over the limit, room made by removing.
TEST_P(QuotasApiTest, TheIntegrationsLimitCountsEndpointsAndKeysTogether) {
  ASSERT_NO_FATAL_FAILURE(create_plan({{"limits", {{"integrations", 3}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  const auto endpoint = [&](const std::string& token) {
    return as(token, Method::post, "/v1/webhook-endpoints",
              Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {"*"}}});
  };
  const auto key = [&](const std::string& token, const std::string& name) {
    return as(token, Method::post, "/v1/api-keys", Json{{"name", name}, {"permissions", {"projects:read"}}});
  };
  ASSERT_EQ(endpoint(owner_a_).status, 201);
  auto k1 = key(owner_a_, "k1");
  ASSERT_EQ(k1.status, 201) << k1.body.dump();
  ASSERT_EQ(key(owner_a_, "k2").status, 201);
  EXPECT_EQ(entitlement(owner_a_, "integrations")["used"], 3);
  // The fourth, of either kind, is refused; nothing is made.
  for (const ApiResponse& over : {endpoint(owner_a_), key(owner_a_, "k3")}) {
    ASSERT_EQ(over.status, 403) << over.body.dump();
    EXPECT_EQ(over.body["type"], "/problems/quota-exceeded");
    EXPECT_EQ(over.body["quota"], "integrations");
    EXPECT_EQ(over.body["limit"], 3);
    EXPECT_EQ(over.body["used"], 3);
  }
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/webhook-endpoints").body["data"].size(), 1u);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/api-keys").body["data"].size(), 2u);
  // Another tenant (no plan) is not limited, and its integrations do not count here.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(key(owner_b_, "b" + std::to_string(i)).status, 201);
  EXPECT_EQ(entitlement(owner_a_, "integrations")["used"], 3);
  // A revoked key makes room.
  ASSERT_EQ(as(owner_a_, Method::delete_, "/v1/api-keys/" + k1.body.value("id", "")).status, 204);
  EXPECT_EQ(endpoint(owner_a_).status, 201);
  EXPECT_EQ(key(owner_a_, "k4").status, 403);
  // An operator's override raises it.
  ASSERT_EQ(
      operator_in(a_, Method::put, "/v1/entitlements/integrations", Json{{"limit", 4}, {"enforcement", "hard"}}).status,
      200);
  EXPECT_EQ(key(owner_a_, "k5").status, 201);
  EXPECT_EQ(key(owner_a_, "k6").status, 403);
}

TEST_P(QuotasApiTest, ThresholdsFireOncePerPeriod) {
  // features.apiCalls gives a soft quota on api_calls.
  ASSERT_NO_FATAL_FAILURE(create_plan({{"features", {{"apiCalls", 100}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  HttpReceiver receiver;
  auto endpoint = as(owner_a_, Method::post, "/v1/webhook-endpoints",
                     Json{{"url", receiver.url("/quota")}, {"event_types", {"quota.threshold_reached"}}});
  ASSERT_EQ(endpoint.status, 201) << endpoint.body.dump();
  // An endpoint gets the events after it (time-ordered ids): on the frozen clock, events come a second later.
  clock_.advance(1s);
  ASSERT_TRUE(platform().workers()->start_workers());

  const auto notified = [&] { return entitlement(owner_a_, "apiCalls")["notified"]; };
  ASSERT_EQ(ingest(owner_a_, event("k1", "api_calls", 79)).status, 202);
  EXPECT_EQ(notified(), Json::array());
  ASSERT_EQ(ingest(owner_a_, event("k2", "api_calls", 1)).status, 202);
  EXPECT_EQ(notified(), Json::array({80}));
  ASSERT_EQ(ingest(owner_a_, {{"events", {event("k3", "api_calls", 10), event("k4", "api_calls", 10)}}}).status, 202);
  EXPECT_EQ(notified(), Json::array({80, 100}));
  // Soft: beyond the limit is allowed, and announced no more.
  ASSERT_EQ(ingest(owner_a_, event("k5", "api_calls", 50)).status, 202);
  ASSERT_EQ(ingest(owner_a_, event("k2", "api_calls", 1)).status, 202);  // a duplicate
  Json e = entitlement(owner_a_, "apiCalls");
  EXPECT_EQ(e["used"], 150);
  EXPECT_EQ(e["percent_used"], 150);
  EXPECT_EQ(e["notified"], Json::array({80, 100}));

  ASSERT_TRUE(receiver.wait_for(2, 30s));
  std::this_thread::sleep_for(500ms);
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  std::vector<int> thresholds;
  for (const auto& r : requests) {
    auto body = Json::parse(r.body);
    EXPECT_EQ(body["type"], "quota.threshold_reached");
    EXPECT_EQ(body["data"]["quota"], "apiCalls");
    EXPECT_EQ(body["data"]["metric"], "api_calls");
    EXPECT_EQ(body["data"]["limit"], 100);
    EXPECT_EQ(body["data"]["enforcement"], "soft");
    thresholds.push_back(body["data"]["threshold"].get<int>());
  }
  std::sort(thresholds.begin(), thresholds.end());
  EXPECT_EQ(thresholds, (std::vector<int>{80, 100}));
  ASSERT_TRUE(eventually([&] { return quota_mails().size() == 2; })) << quota_mails().size();
  for (const auto& mail : quota_mails()) {
    EXPECT_NE(mail.find("billing@alpha.test"), std::string::npos);
    EXPECT_NE(mail.find("apiCalls"), std::string::npos);
  }

  // The next period: the renewal moves the subscription on, and 80% is announced again, once.
  advance(std::chrono::hours(24 * 31));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(entitlement(owner_a_, "apiCalls")["used"], 0);
  EXPECT_EQ(notified(), Json::array());
  ASSERT_EQ(ingest(owner_a_, event("n1", "api_calls", 85)).status, 202);
  ASSERT_EQ(ingest(owner_a_, event("n2", "api_calls", 5)).status, 202);
  EXPECT_EQ(notified(), Json::array({80}));
  ASSERT_TRUE(receiver.wait_for(3, 30s));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(receiver.requests().size(), 3u);
  EXPECT_TRUE(eventually([&] { return quota_mails().size() == 3; })) << quota_mails().size();
}

TEST_P(QuotasApiTest, SoftOverageAndLateUsageAreOnTheNextInvoices) {
  // api_calls: 100 included (a soft quota), then 2 cents each (per unit). emails: the first 100 free, then 1 cent
  // each (graduated). gb: 1 dollar each up to 10, all at 50 cents beyond (volume). sms: 2.50 per started 100
  // (package).
  ASSERT_NO_FATAL_FAILURE(
      create_plan({{"features", {{"apiCalls", 100}}},
                   {"metered_prices",
                    {{{"metric", "api_calls"}, {"model", "per_unit"}, {"unit_amount", 2}},
                     {{"metric", "emails"},
                      {"model", "graduated"},
                      {"tiers", {{{"up_to", 100}, {"unit_amount", 0}}, {{"up_to", "inf"}, {"unit_amount", 1}}}}},
                     {{"metric", "gb"},
                      {"model", "volume"},
                      {"tiers", {{{"up_to", 10}, {"unit_amount", 100}}, {{"up_to", "inf"}, {"unit_amount", 50}}}}},
                     {{"metric", "sms"}, {"model", "package"}, {"package_size", 100}, {"unit_amount", 250}}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  const auto start = clock_.now();
  const std::int64_t period_start = now_s();

  // Usage before the subscription's period is not billed in it; beta's usage is not alpha's.
  ASSERT_EQ(ingest(owner_a_, {{"events", {event("before", "api_calls", 1000, start - 1h)}}}).status, 202);
  ASSERT_EQ(ingest(owner_b_, event("b1", "api_calls", 5000)).status, 202);
  advance(2h);
  ASSERT_EQ(ingest(owner_a_, {{"events",
                               {event("a1", "api_calls", 100), event("a2", "api_calls", 50), event("m1", "emails", 200),
                                event("m2", "emails", 50), event("g1", "gb", 12), event("s1", "sms", 250)}}})
                .status,
            202);
  ASSERT_EQ(ingest(owner_a_, event("a1", "api_calls", 100)).status, 202);  // a retry: counted once

  // The renewal: next month's base price, and the ended period's usage beyond what the plan includes.
  advance(std::chrono::hours(24 * 30));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  auto list = invoices(owner_a_);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_TRUE(usage_lines(list[0]).empty()) << "the first invoice is the subscription's creation";
  const Json& renewal = list[1];
  EXPECT_EQ(renewal["billing_reason"], "subscription_cycle");
  const std::int64_t period_end = epoch_seconds(renewal["period_start"]);
  auto lines = usage_lines(renewal);
  ASSERT_EQ(lines.size(), 4u) << renewal.dump();
  EXPECT_EQ(lines[0]["description"], "api_calls usage beyond the 100 included");
  EXPECT_EQ(lines[0]["quantity"], 50);
  EXPECT_EQ(lines[0]["unit_amount"], 2);
  EXPECT_EQ(lines[0]["amount"], 100);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), period_start);
  EXPECT_EQ(epoch_seconds(lines[0]["period_end"]), period_end);
  EXPECT_EQ(lines[1]["description"], "emails usage");
  EXPECT_EQ(lines[1]["quantity"], 250);
  EXPECT_EQ(lines[1]["amount"], 150);
  EXPECT_EQ(lines[2]["description"], "gb usage");
  EXPECT_EQ(lines[2]["quantity"], 12);
  EXPECT_EQ(lines[2]["amount"], 12 * 50);
  EXPECT_EQ(lines[3]["description"], "sms usage");
  EXPECT_EQ(lines[3]["quantity"], 250);
  EXPECT_EQ(lines[3]["amount"], 3 * 250);
  EXPECT_EQ(renewal["subtotal"], 1000 + 100 + 150 + 600 + 750);
  EXPECT_EQ(renewal["total"], 2600);
  EXPECT_EQ(renewal["status"], "paid");
  // Run again: nothing more.
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(invoices(owner_a_).size(), 2u);

  // Late events for the invoiced period (within the grace window), and the new period's usage.
  const auto ended = std::chrono::system_clock::time_point(std::chrono::seconds(period_end));
  ASSERT_EQ(ingest(owner_a_, {{"events",
                               {event("late1", "api_calls", 30, ended - 3h), event("late2", "emails", 10, ended - 1s),
                                event("c1", "api_calls", 120)}}})
                .status,
            202);
  advance(std::chrono::hours(24 * 31));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  list = invoices(owner_a_);
  ASSERT_EQ(list.size(), 3u);
  lines = usage_lines(list[2]);
  ASSERT_EQ(lines.size(), 3u) << list[2].dump();
  EXPECT_EQ(lines[0]["description"], "api_calls usage beyond the 100 included");
  EXPECT_EQ(lines[0]["quantity"], 20);
  EXPECT_EQ(lines[0]["amount"], 40);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), period_end);
  EXPECT_EQ(lines[1]["description"], "api_calls: usage reported late");
  EXPECT_EQ(lines[1]["quantity"], 30);
  EXPECT_EQ(lines[1]["amount"], 60);
  EXPECT_EQ(epoch_seconds(lines[1]["period_start"]), period_start);
  EXPECT_EQ(epoch_seconds(lines[1]["period_end"]), period_end);
  EXPECT_EQ(lines[2]["description"], "emails: usage reported late");
  EXPECT_EQ(lines[2]["quantity"], 10);
  EXPECT_EQ(lines[2]["amount"], 10);
  EXPECT_EQ(list[2]["subtotal"], 1000 + 40 + 60 + 10);

  // A last late event for the first period, after its second invoice but within its grace window (35 days).
  advance(std::chrono::hours(24));
  ASSERT_EQ(ingest(owner_a_, event("late3", "api_calls", 7, ended - 2h)).body["accepted"], 1);
  // The grace ends: the run measures the period a last time (no invoice is due), the next renewal bills the change.
  advance(std::chrono::hours(24 * 4));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(invoices(owner_a_).size(), 3u);
  advance(std::chrono::hours(24 * 26));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  list = invoices(owner_a_);
  ASSERT_EQ(list.size(), 4u);
  lines = usage_lines(list[3]);
  ASSERT_EQ(lines.size(), 1u) << list[3].dump();
  EXPECT_EQ(lines[0]["description"], "api_calls: usage reported late");
  EXPECT_EQ(lines[0]["quantity"], 7);
  EXPECT_EQ(lines[0]["amount"], 14);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), period_start);
  EXPECT_EQ(list[3]["subtotal"], 1000 + 14);

  // Both earlier periods are settled now: nothing more is billed for them.
  advance(std::chrono::hours(24 * 31));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  list = invoices(owner_a_);
  ASSERT_EQ(list.size(), 5u);
  EXPECT_TRUE(usage_lines(list[4]).empty()) << list[4].dump();
  EXPECT_EQ(list[4]["subtotal"], 1000);
  // An event for the first period is now too old to be accepted at all.
  auto too_old = ingest(owner_a_, event("ancient", "api_calls", 1, start + 1h));
  ASSERT_EQ(too_old.status, 202);
  ASSERT_EQ(too_old.body["rejected"].size(), 1u);
  EXPECT_EQ(too_old.body["rejected"][0]["reason"], "too_old");
}

TEST_P(QuotasApiTest, NoPeriodEndsWithItsMeteredUsageUnbilled) {
  // 100 api_calls included (soft), then 2 cents each.
  ASSERT_NO_FATAL_FAILURE(
      create_plan({{"features", {{"apiCalls", 100}}},
                   {"metered_prices", {{{"metric", "api_calls"}, {"model", "per_unit"}, {"unit_amount", 2}}}}}));
  ASSERT_NO_FATAL_FAILURE(
      create_plan({{"code", "metered-annual"},
                   {"interval", "annual"},
                   {"base_price", 10000},
                   {"features", {{"apiCalls", 100}}},
                   {"metered_prices", {{{"metric", "api_calls"}, {"model", "per_unit"}, {"unit_amount", 3}}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_b_));
  const std::string sub_a = as(owner_a_, Method::get, "/v1/subscriptions").body["data"][0]["id"];
  const std::string sub_b = as(owner_b_, Method::get, "/v1/subscriptions").body["data"][0]["id"];
  const std::int64_t start = now_s();

  // Alpha: cancelled at the period's end with 150 calls in the period: 50 beyond the allowance, 1.00.
  advance(2h);
  ASSERT_EQ(ingest(owner_a_, event("a1", "api_calls", 150)).status, 202);
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/subscriptions/" + sub_a + "/cancel", Json{{"at_period_end", true}}).status,
            200);
  // Beta: 130 calls, then an interval change 10 days in: the change's invoice bills them (30 beyond, 0.60, at the
  // old version's price), and the new annual period starts counting from zero.
  ASSERT_EQ(ingest(owner_b_, event("b1", "api_calls", 130)).status, 202);
  advance(std::chrono::hours(24 * 10));
  const std::int64_t changed_at = now_s();
  auto change = as(owner_b_, Method::patch, "/v1/subscriptions/" + sub_b, Json{{"plan", "metered-annual"}});
  ASSERT_EQ(change.status, 200) << change.raw_body;
  auto b_list = invoices(owner_b_);
  ASSERT_EQ(b_list.size(), 2u);
  EXPECT_EQ(b_list[1]["billing_reason"], "subscription_update");
  auto lines = usage_lines(b_list[1]);
  ASSERT_EQ(lines.size(), 1u) << b_list[1].dump();
  EXPECT_EQ(lines[0]["description"], "api_calls usage beyond the 100 included");
  EXPECT_EQ(lines[0]["quantity"], 30);
  EXPECT_EQ(lines[0]["amount"], 60);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), start);
  EXPECT_EQ(epoch_seconds(lines[0]["period_end"]), changed_at);
  // Then beta cancels now, 5 days into the annual period, with 250 calls in it: 150 beyond, at 3 cents: 4.50.
  ASSERT_EQ(ingest(owner_b_, event("b2", "api_calls", 250)).status, 202);
  advance(std::chrono::hours(24 * 5));
  ASSERT_EQ(as(owner_b_, Method::post, "/v1/subscriptions/" + sub_b + "/cancel", Json{{"at_period_end", false}}).status,
            200);
  b_list = invoices(owner_b_);
  ASSERT_EQ(b_list.size(), 3u);
  EXPECT_EQ(b_list[2]["billing_reason"], "subscription_final");
  lines = usage_lines(b_list[2]);
  ASSERT_EQ(lines.size(), 1u) << b_list[2].dump();
  EXPECT_EQ(lines[0]["quantity"], 150);
  EXPECT_EQ(lines[0]["amount"], 450);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), changed_at);
  EXPECT_EQ(epoch_seconds(lines[0]["period_end"]), now_s());
  EXPECT_EQ(b_list[2]["total"], 450);
  EXPECT_EQ(b_list[2]["status"], "paid");

  // Alpha's period ends: no renewal, a final invoice for its usage.
  advance(std::chrono::hours(24 * 16));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/subscriptions/" + sub_a).body["status"], "cancelled");
  auto a_list = invoices(owner_a_);
  ASSERT_EQ(a_list.size(), 2u);
  EXPECT_EQ(a_list[1]["billing_reason"], "subscription_final");
  const std::int64_t period_end = epoch_seconds(a_list[1]["period_end"]);
  EXPECT_EQ(epoch_seconds(a_list[1]["period_start"]), start);
  lines = usage_lines(a_list[1]);
  ASSERT_EQ(lines.size(), 1u) << a_list[1].dump();
  EXPECT_EQ(lines[0]["quantity"], 50);
  EXPECT_EQ(lines[0]["amount"], 100);
  EXPECT_EQ(a_list[1]["subtotal"], 100);
  EXPECT_EQ(a_list[1]["status"], "paid");

  // A late event for alpha's last period, within the grace: when the period settles (its end plus 35 days, plus the
  // run's margin), the difference is invoiced at once, there being no renewal to carry it.
  const auto ended = std::chrono::system_clock::time_point(std::chrono::seconds(period_end));
  ASSERT_EQ(ingest(owner_a_, event("late", "api_calls", 20, ended - 1h)).body["accepted"], 1);
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(invoices(owner_a_).size(), 2u) << "billed when the period settles, not before";
  advance(std::chrono::hours(24 * 36));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  a_list = invoices(owner_a_);
  ASSERT_EQ(a_list.size(), 3u);
  EXPECT_EQ(a_list[2]["billing_reason"], "subscription_final");
  lines = usage_lines(a_list[2]);
  ASSERT_EQ(lines.size(), 1u) << a_list[2].dump();
  EXPECT_EQ(lines[0]["description"], "api_calls: usage reported late");
  EXPECT_EQ(lines[0]["quantity"], 20);
  EXPECT_EQ(lines[0]["amount"], 40);
  EXPECT_EQ(epoch_seconds(lines[0]["period_start"]), start);
  EXPECT_EQ(epoch_seconds(lines[0]["period_end"]), period_end);
  // Settled: later runs bill nothing more.
  advance(std::chrono::hours(24));
  ASSERT_NO_FATAL_FAILURE(run_billing());
  EXPECT_EQ(invoices(owner_a_).size(), 3u);
  EXPECT_EQ(invoices(owner_b_).size(), 3u);
}

TEST_P(QuotasApiTest, TheGatewayCountsApiCallsForTheApiCallsQuota) {
  ASSERT_NO_FATAL_FAILURE(create_plan({{"features", {{"apiCalls", 1000}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  ASSERT_TRUE(platform().api_calls) << "gateway.count_api_calls is on by default";
  ASSERT_TRUE(platform().api_calls->report_now());
  const std::int64_t before = entitlement(owner_a_, "apiCalls")["used"].get<std::int64_t>();     // counted: 1
  for (int i = 0; i < 5; ++i) EXPECT_EQ(as(owner_a_, Method::get, "/v1/projects").status, 200);  // 5
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(operator_in(a_, Method::get, "/v1/projects").status, 200);  // super admins are not counted
    EXPECT_EQ(as(owner_b_, Method::get, "/v1/projects").status, 200);     // beta's are beta's
  }
  ASSERT_TRUE(platform().api_calls->report_now());
  ASSERT_TRUE(platform().api_calls->report_now());                   // nothing more to report: no second event
  EXPECT_EQ(entitlement(owner_a_, "apiCalls")["used"], before + 6);  // counted: 1

  // Under a hard quota the count is recorded up to the limit (6 more calls, room for 3).
  auto hard = operator_in(a_, Method::put, "/v1/entitlements/apiCalls",
                          Json{{"limit", before + 6 + 3}, {"enforcement", "hard"}});
  ASSERT_EQ(hard.status, 200) << hard.body.dump();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(as(owner_a_, Method::get, "/v1/projects").status, 200);
  ASSERT_TRUE(platform().api_calls->report_now());
  Json full = entitlement(owner_a_, "apiCalls");
  EXPECT_EQ(full["used"], before + 6 + 3);
  EXPECT_EQ(full["notified"], Json::array({80, 100}));
  auto summary = as(owner_b_, Method::get,
                    "/v1/usage/summary?metric=api_calls&from=" + rfc3339(clock_.now() - 24h) +
                        "&to=" + rfc3339(clock_.now() + 1h) + "&aggregation=sum");
  ASSERT_EQ(summary.status, 200) << summary.body.dump();
  EXPECT_GE(summary.body["data"][0]["value"].get<std::int64_t>(), 3);
}

// The caches of what a plan grants (quotas, rate limits) are dropped whenever the plan in force changes, whichever
// path changed it: here the domain call the CLI and the billing run use, no HTTP route. The clock stands still, so
// no cache expires on its own (gateway.plan_cache_ttl_ms is 30 s).
TEST_P(QuotasApiTest, APlanChangeOutsideTheRoutesReachesQuotasAndRateLimitsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(create_plan({{"limits", {{"projects", 2}, {"requestsPerSecond", 7}, {"burst", 9}}}}));
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  EXPECT_EQ(entitlement(owner_a_, "projects")["limit"], 2);
  const auto cached = platform().rate_limits->tenant_limit(a_);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->rate, 7);
  EXPECT_EQ(cached->burst, 9);

  auto subs = as(owner_a_, Method::get, "/v1/subscriptions");
  ASSERT_EQ(subs.status, 200) << subs.body.dump();
  const std::string sub = subs.body["data"][0].value("id", "");
  auto cancelled = platform().billing->cancel(a_.id, sub, billing::Cancellation{}, {});
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  ASSERT_EQ(cancelled->status, billing::Status::cancelled);

  // No subscription and no catalog plan: no projects quota, the configured default rate limits.
  auto list = as(owner_a_, Method::get, "/v1/entitlements");
  ASSERT_EQ(list.status, 200) << list.body.dump();
  for (const auto& e : list.body.value("data", Json::array())) EXPECT_NE(e.value("name", ""), "projects") << e.dump();
  const auto now_limit = platform().rate_limits->tenant_limit(a_);
  ASSERT_TRUE(now_limit.has_value());
  EXPECT_EQ(now_limit->rate, tp_->config().gateway.default_requests_per_second);
  EXPECT_EQ(now_limit->burst, tp_->config().gateway.default_burst);
  // The other tenant's caches were not touched (nothing to see but that nothing broke).
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/entitlements").status, 200);
}

// tenants.plan follows the subscription on every path, here the billing run (the platform scope): a subscription
// set to end at its period end ends at the first run past it, and the tenant's plan goes back to the default in that
// run's transaction; the other tenant's plan is not touched.
TEST_P(QuotasApiTest, TheTenantsPlanFollowsItsSubscriptionThroughTheBillingRun) {
  ASSERT_NO_FATAL_FAILURE(create_plan({{"limits", {{"projects", 2}}}}));
  auto plan_of = [&](const tenancy::Tenant& t) {
    auto r = platform().tenants->get(t.id);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->plan : std::string();
  };
  EXPECT_EQ(plan_of(a_), "free");
  ASSERT_NO_FATAL_FAILURE(subscribe(owner_a_));
  EXPECT_EQ(plan_of(a_), "metered");
  EXPECT_EQ(plan_of(b_), "free");

  auto subs = as(owner_a_, Method::get, "/v1/subscriptions");
  ASSERT_EQ(subs.status, 200) << subs.body.dump();
  const std::string sub = subs.body["data"][0].value("id", "");
  auto at_end = as(owner_a_, Method::post, "/v1/subscriptions/" + sub + "/cancel", Json{{"at_period_end", true}});
  ASSERT_EQ(at_end.status, 200) << at_end.body.dump();
  EXPECT_EQ(plan_of(a_), "metered") << "still live until its period ends";

  advance(std::chrono::hours(24 * 32));
  auto stats = platform().billing->run();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->cancelled, 1);
  auto ended = as(owner_a_, Method::get, "/v1/subscriptions/" + sub);
  ASSERT_EQ(ended.status, 200) << ended.body.dump();
  EXPECT_EQ(ended.body.value("status", ""), "cancelled");
  EXPECT_EQ(plan_of(a_), "free");
  EXPECT_EQ(plan_of(b_), "free");
  auto list = as(owner_a_, Method::get, "/v1/entitlements");
  ASSERT_EQ(list.status, 200) << list.body.dump();
  for (const auto& e : list.body.value("data", Json::array())) EXPECT_NE(e.value("name", ""), "projects") << e.dump();
}

INSTANTIATE_TEST_SUITE_P(Backends, QuotasApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
