// The SaaS metrics through the real billing and router (docs/analytics.md, SaaS metrics): subscriptions created,
// changed, cancelled, paused and taken again through the API on a ManualClock write the MRR ledger in their own
// transactions, and GET /v1/admin/analytics/saas reads MRR, movements, churn and retention back exactly; only
// super admins may. Every isolation level, both backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "analytics/business_metrics.hpp"
#include "metering/metering.hpp"
#include "observability/metrics.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class SaasMetricsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    for (const char* slug : {"alpha", "bravo", "charlie"}) create_test_tenant(platform(), slug, GetParam().isolation);
  }

  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  // Tokens are signed in afresh at each step: the clock moves by weeks between them.
  std::string owner(const std::string& slug) {
    return client_->sign_in("owner@" + slug + ".test", "password-" + slug, slug);
  }
  std::string root() { return client_->sign_in("root@atrium.test", "root-password"); }

  ApiResponse call(Method m, const std::string& path, const std::optional<Json>& body, const std::string& token) {
    return client_->call(m, path, body, token);
  }

  // Moves the platform's clock to `when` and runs billing there (trial ends, renewals).
  void at(const char* when) {
    const Instant target = parse_rfc3339(when).value();
    ASSERT_GE(target, clock_.now());
    clock_.advance(target - clock_.now());
    auto run = platform().billing->run();
    ASSERT_TRUE(run) << run.error().message;
  }

  void plan(const std::string& code, const std::string& tier, const std::string& interval, std::int64_t price,
            const Json& extra = Json::object()) {
    Json body = {{"code", code},      {"name", "Plan " + code}, {"tier", tier},
                 {"currency", "USD"}, {"interval", interval},   {"base_price", price}};
    body.update(extra);
    auto r = call(Method::post, "/v1/plans", body, root());
    ASSERT_EQ(r.status, 201) << r.raw_body;
  }

  std::string subscribe(const std::string& slug, const Json& body) {
    const std::string token = owner(slug);
    auto account = call(Method::put, "/v1/billing-account",
                        Json{{"legal_name", slug},
                             {"email", "billing@" + slug + ".test"},
                             {"address", Json::array({"1 Main Street"})},
                             {"country", "US"},
                             {"currency", "USD"},
                             {"payment_method", "pm_card_visa"}},
                        token);
    EXPECT_EQ(account.status, 200) << account.raw_body;
    auto r = call(Method::post, "/v1/subscriptions", body, token);
    EXPECT_EQ(r.status, 201) << r.raw_body;
    return r.body.value("id", "");
  }

  void change(const std::string& slug, const std::string& path, Method m, const Json& body) {
    auto r = call(m, path, body, owner(slug));
    EXPECT_EQ(r.status, 200) << path << " " << body.dump() << " -> " << r.raw_body;
  }

  Json saas(const std::string& query) {
    auto r = call(Method::get, "/v1/admin/analytics/saas?" + query, std::nullopt, root());
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body;
  }

  ManualClock clock_{parse_rfc3339("2026-01-01T10:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
};

// The story, in USD cents a month:
//   Jan 1   alpha subscribes to pro (5000 + 500 a seat past the first) with 1 seat: new 5000
//           bravo subscribes to the annual business plan (120000 a year) with a forever 25% coupon:
//           120000 x 0.75 / 12 = new 7500
//           charlie starts a 14-day trial of starter (1000): no revenue
//   Jan 10  alpha goes to 3 seats: 5000 + 2 x 500 = 6000, expansion 1000
//   Jan 15  charlie's trial ends (the billing run at 10:00): new 1000
//   Feb 5   bravo cancels now: churn 7500
//   Feb 20  alpha moves to starter: 6000 -> 1000, contraction 5000
//   Mar 3   bravo subscribes again, to starter: reactivation 1000
//   Mar 10  charlie pauses: churn 1000; Mar 20 it resumes: reactivation 1000
// January ends at 5000 + 1000 + 7500 + 1000 = 14500 (3 customers), February at 2000 (alpha, charlie), March at
// 3000 (all three).
TEST_P(SaasMetricsApiTest, TheLedgerFollowsEveryChangeAndTheMetricsReadItBack) {
  plan("pro", "professional", "monthly", 5000, {{"included_seats", 1}, {"seat_price", 500}});
  plan("annual", "business", "annual", 120000);
  plan("starter", "starter", "monthly", 1000);
  auto coupon = call(Method::post, "/v1/coupons",
                     Json{{"code", "QUARTER"}, {"percent_off_bps", 2500}, {"duration", "forever"}}, root());
  ASSERT_EQ(coupon.status, 201) << coupon.raw_body;

  const std::string alpha = subscribe("alpha", {{"plan", "pro"}, {"seats", 1}});
  const std::string bravo = subscribe("bravo", {{"plan", "annual"}, {"coupon", "QUARTER"}});
  const std::string charlie = subscribe("charlie", {{"plan", "starter"}, {"trial_days", 14}});
  at("2026-01-10T10:00:00Z");
  change("alpha", "/v1/subscriptions/" + alpha, Method::patch, {{"seats", 3}});
  at("2026-01-15T10:00:00Z");
  at("2026-02-01T12:00:00Z");  // renewals change no MRR
  at("2026-02-05T10:00:00Z");
  change("bravo", "/v1/subscriptions/" + bravo + "/cancel", Method::post, {{"at_period_end", false}});
  at("2026-02-20T10:00:00Z");
  change("alpha", "/v1/subscriptions/" + alpha, Method::patch, {{"plan", "starter"}});
  at("2026-03-03T10:00:00Z");
  subscribe("bravo", {{"plan", "starter"}});
  at("2026-03-10T10:00:00Z");
  change("charlie", "/v1/subscriptions/" + charlie + "/pause", Method::post, Json::object());
  at("2026-03-20T10:00:00Z");
  change("charlie", "/v1/subscriptions/" + charlie + "/resume", Method::post, Json::object());
  at("2026-04-02T10:00:00Z");

  const Json m = saas("from=2026-01-01&to=2026-04-01&granularity=month");
  ASSERT_EQ(m["currencies"].size(), 1u) << m.dump();
  const Json& usd = m["currencies"][0];
  EXPECT_EQ(usd.value("currency", ""), "USD");
  const Json& periods = usd["periods"];
  ASSERT_EQ(periods.size(), 3u) << usd.dump();

  const Json& jan = periods[0];
  EXPECT_EQ(jan.value("mrr_start", -1), 0);
  EXPECT_EQ(jan["movements"].value("new", -1), 13500) << jan.dump();  // 5000 + 7500 + 1000
  EXPECT_EQ(jan["movements"].value("new_customers", -1), 3);
  EXPECT_EQ(jan["movements"].value("expansion", -1), 1000);
  EXPECT_EQ(jan.value("mrr_end", -1), 14500);
  EXPECT_EQ(jan.value("customers_end", -1), 3);
  EXPECT_EQ(jan.value("arr", -1), 174000);
  EXPECT_EQ(jan.value("arpu", -1), 4833);  // 14500 / 3 = 4833.33

  const Json& feb = periods[1];
  EXPECT_EQ(feb.value("mrr_start", -1), 14500);
  EXPECT_EQ(feb["movements"].value("churn", -1), 7500) << feb.dump();
  EXPECT_EQ(feb["movements"].value("churned_customers", -1), 1);
  EXPECT_EQ(feb["movements"].value("contraction", -1), 5000);
  EXPECT_EQ(feb.value("mrr_end", -1), 2000);
  EXPECT_DOUBLE_EQ(feb.value("customer_churn_rate", -1.0), 1.0 / 3);
  EXPECT_DOUBLE_EQ(feb.value("gross_revenue_churn", -1.0), 12500.0 / 14500);
  // alpha and charlie stay (6000 -> 1000, 1000 -> 1000), bravo leaves: 2000 of 14500.
  EXPECT_DOUBLE_EQ(feb.value("net_revenue_retention", -1.0), 2000.0 / 14500);

  const Json& mar = periods[2];
  EXPECT_EQ(mar["movements"].value("reactivation", -1), 2000) << mar.dump();  // bravo, then charlie again
  EXPECT_EQ(mar["movements"].value("reactivated_customers", -1), 2);
  EXPECT_EQ(mar["movements"].value("churn", -1), 1000);  // charlie's pause
  EXPECT_EQ(mar.value("mrr_end", -1), 3000);
  EXPECT_EQ(mar.value("customers_end", -1), 3);

  // Tiers at the end: alpha, bravo and charlie on starter.
  EXPECT_EQ(usd["tiers"]["starter"].value("subscriptions", -1), 3) << usd["tiers"].dump();
  EXPECT_EQ(usd["tiers"]["starter"].value("mrr", -1), 3000);
  EXPECT_FALSE(usd["tiers"].contains("business"));
  // Cohorts: all three first paid in January (charlie on Jan 15, after its trial).
  ASSERT_GE(usd["cohorts"].size(), 1u);
  EXPECT_EQ(usd["cohorts"][0].value("month", ""), "2026-01");
  EXPECT_EQ(usd["cohorts"][0].value("customers", -1), 3);
  EXPECT_EQ(usd["cohorts"][0].value("mrr", -1), 14500);

  // Day by day: charlie's trial ended on Jan 15 (the billing run), and that day is when its MRR starts.
  const Json days = saas("from=2026-01-15&to=2026-01-16&granularity=day");
  EXPECT_EQ(days["currencies"][0]["periods"][0]["movements"].value("new", -1), 1000) << days.dump();

  // /v1/admin/metrics and the overview agree with the ledger's end: 3000 now.
  auto overview = call(Method::get, "/v1/admin/analytics/overview", std::nullopt, root());
  ASSERT_EQ(overview.status, 200) << overview.raw_body;
  EXPECT_EQ(overview.body["total_mrr"].value("USD", -1), 3000) << overview.raw_body;
  EXPECT_EQ(overview.body["total_arr"].value("USD", -1), 36000);
  EXPECT_EQ(overview.body.value("total_tenants", -1), 3);

  // CSV of the movements.
  auto csv =
      call(Method::get, "/v1/admin/analytics/saas?from=2026-01-01&to=2026-04-01&format=csv", std::nullopt, root());
  ASSERT_EQ(csv.status, 200);
  EXPECT_NE(csv.raw_body.find("USD,2026-02-01,2026-03-01,14500,0,0,5000,7500,0,2000,3,0,1,0,2\r\n"), std::string::npos)
      << csv.raw_body;
}

TEST_P(SaasMetricsApiTest, OnlySuperAdminsReadThePlatformsMetricsAndBadQueriesAreProblems) {
  for (const char* path : {"/v1/admin/analytics/saas?from=2026-01-01&to=2026-02-01", "/v1/admin/analytics/overview"}) {
    auto r = call(Method::get, path, std::nullopt, owner("alpha"));
    EXPECT_EQ(r.status, 403) << path << " " << r.raw_body;
  }
  for (const char* query :
       {"to=2026-02-01", "from=2026-01-01", "from=2026-02-01&to=2026-01-01",
        "from=2026-01-01&to=2026-02-01&granularity=year", "from=2026-01-01&to=2026-02-01&currency=usd",
        "from=2026-01-01&to=2029-02-01", "from=2026-01-01&to=2026-02-01&format=xml", "from=yesterday&to=2026-02-01"}) {
    auto r = call(Method::get, std::string("/v1/admin/analytics/saas?") + query, std::nullopt, root());
    EXPECT_EQ(r.status, 400) << query << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << query;
  }
  const Json empty = saas("from=2026-01-01&to=2026-02-01");
  EXPECT_TRUE(empty["currencies"].empty()) << empty.dump();
}

// The analytics exports as platform reports (docs/analytics.md#reports): requested by super admins (audited in the
// platform chain), built by the report queue's worker, read back as CSV. The story, in USD cents: alpha pays 5000 a
// month from Jan 1 plus 3 per email sent; it sends 10 in January, so the Feb 1 renewal invoices 5000 + 30. MRR
// stays 5000: the 30 is metered revenue, reported apart.
TEST_P(SaasMetricsApiTest, ExportsAreBackgroundReportsForSuperAdmins) {
  plan("mailer", "starter", "monthly", 5000,
       {{"metered_prices", {{{"metric", "emails"}, {"model", "per_unit"}, {"unit_amount", 3}}}}});
  subscribe("alpha", {{"plan", "mailer"}});
  const std::string alpha = platform().tenants->get_by_slug("alpha").value().id;
  at("2026-01-10T10:00:00Z");
  metering::UsageBatch emails;
  emails.push_back({.event = metering::UsageEvent{.idempotency_key = "mails-1",
                                                  .metric = "emails",
                                                  .quantity = 10,
                                                  .timestamp = parse_rfc3339("2026-01-05T08:00:00Z").value()},
                    .unreadable = {}});
  auto ingested = platform().metering->ingest(alpha, std::move(emails));
  ASSERT_TRUE(ingested);
  ASSERT_EQ(ingested->accepted, 1) << metering::to_json(*ingested).dump();
  at("2026-02-01T12:00:00Z");
  at("2026-03-01T00:00:00Z");

  // The SaaS metrics show it apart from MRR.
  const Json m = saas("from=2026-01-01&to=2026-03-01");
  const Json& periods = m["currencies"][0]["periods"];
  EXPECT_EQ(periods[0].value("metered_revenue", -1), 0) << m.dump();
  EXPECT_EQ(periods[1].value("metered_revenue", -1), 30);
  EXPECT_EQ(periods[1].value("mrr_end", -1), 5000);

  auto request = [&](const Json& body, const std::string& token) {
    return call(Method::post, "/v1/admin/reports", body, token);
  };
  const Json range = {{"from", "2026-01-01"}, {"to", "2026-03-01"}};
  std::map<std::string, std::string> ids;
  for (const char* type : {"mrr_movements", "revenue", "usage", "cohorts"}) {
    Json body = range;
    body["type"] = type;
    auto r = request(body, root());
    ASSERT_EQ(r.status, 202) << type << " " << r.raw_body;
    EXPECT_EQ(r.body.value("status", ""), "pending");
    EXPECT_EQ(r.body["parameters"],
              (Json{{"from", "2026-01-01"}, {"to", "2026-03-01"}, {"granularity", "month"}, {"currency", nullptr}}));
    ids[type] = r.body.value("id", "");
    EXPECT_EQ(r.headers.get("Location").value_or(""), "/v1/admin/reports/" + ids[type]);
  }
  // Not built yet: the CSV is a conflict.
  EXPECT_EQ(call(Method::get, "/v1/admin/reports/" + ids["revenue"] + "?format=csv", std::nullopt, root()).status, 409);
  ASSERT_TRUE(platform().workers()->start_workers());
  ASSERT_TRUE(settled(platform(), {"reports"}));
  auto csv_of = [&](const std::string& type) {
    auto got = call(Method::get, "/v1/admin/reports/" + ids[type], std::nullopt, root());
    EXPECT_EQ(got.status, 200) << got.raw_body;
    EXPECT_EQ(got.body.value("status", ""), "ready") << got.raw_body;
    EXPECT_EQ(got.body.value("download_url", ""), "/v1/admin/reports/" + ids[type] + "?format=csv");
    auto csv = call(Method::get, "/v1/admin/reports/" + ids[type] + "?format=csv", std::nullopt, root());
    EXPECT_EQ(csv.status, 200) << csv.raw_body;
    EXPECT_EQ(csv.content_type, "text/csv; charset=utf-8");
    EXPECT_EQ(got.body.value("row_count", -1),
              static_cast<std::int64_t>(std::count(csv.raw_body.begin(), csv.raw_body.end(), '\n')) - 1);
    return csv.raw_body;
  };
  EXPECT_EQ(csv_of("mrr_movements"),
            "currency,start,end,mrr_start,new,expansion,contraction,churn,reactivation,mrr_end,customers_start,"
            "new_customers,churned_customers,reactivated_customers,customers_end\r\n"
            "USD,2026-01-01,2026-02-01,0,5000,0,0,0,0,5000,0,1,0,0,1\r\n"
            "USD,2026-02-01,2026-03-01,5000,0,0,0,0,0,5000,1,0,0,0,1\r\n");
  EXPECT_EQ(csv_of("revenue"),
            "period_start,tenant_id,tenant_slug,currency,invoiced,metered,collected,refunded,credited\r\n"
            "2026-01-01," +
                alpha +
                ",alpha,USD,5000,0,5000,0,0\r\n"
                "2026-02-01," +
                alpha + ",alpha,USD,5030,30,5030,0,0\r\n");
  const std::string usage = csv_of("usage");
  EXPECT_EQ(usage.substr(0, usage.find('\n') + 1), "period_start,tenant_id,tenant_slug,metric,quantity,events\r\n");
  EXPECT_NE(usage.find("2026-01-01," + alpha + ",alpha,emails,10,1\r\n"), std::string::npos) << usage;
  EXPECT_EQ(usage.find("event:"), std::string::npos) << "product events are not usage";
  EXPECT_EQ(csv_of("cohorts"),
            "currency,cohort,cohort_customers,cohort_mrr,month_offset,customers,mrr,logo_retention,"
            "net_revenue_retention,gross_revenue_retention\r\n"
            "USD,2026-01,1,5000,0,1,5000,1.000000,1.000000,1.000000\r\n"
            "USD,2026-01,1,5000,1,1,5000,1.000000,1.000000,1.000000\r\n");

  // The request is in the platform chain.
  auto audit =
      call(Method::get, "/v1/admin/audit-logs?tenant_id=platform&action=report.requested", std::nullopt, root());
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  int requested = 0;
  for (const Json& e : audit.body["data"]) {
    if (e.value("action", "") == "report.requested" && e["resource"].value("type", "") == "platform_report")
      ++requested;
  }
  EXPECT_EQ(requested, 4) << audit.raw_body;

  // Tenants may neither request nor read them; bad requests are problems; unknown ids are 404.
  Json movements = range;
  movements["type"] = "mrr_movements";
  EXPECT_EQ(request(movements, owner("alpha")).status, 403);
  EXPECT_EQ(call(Method::get, "/v1/admin/reports/" + ids["revenue"], std::nullopt, owner("alpha")).status, 403);
  for (const Json& bad :
       {Json{{"type", "everything"}, {"from", "2026-01-01"}, {"to", "2026-03-01"}},
        Json{{"type", "revenue"}, {"from", "2026-03-01"}, {"to", "2026-01-01"}},
        Json{{"type", "revenue"}, {"from", "2026-01-01"}},
        Json{{"type", "revenue"}, {"from", "2026-01-01"}, {"to", "2026-03-01"}, {"granularity", "hour"}},
        Json{{"type", "revenue"}, {"from", "2026-01-01"}, {"to", "2026-03-01"}, {"currency", "usd"}},
        Json{{"type", "revenue"}, {"from", "2026-01-01"}, {"to", "2026-03-01"}, {"extra", 1}}}) {
    auto r = request(bad, root());
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(call(Method::get, "/v1/admin/reports/00000000-0000-7000-8000-000000000000", std::nullopt, root()).status,
            404);
  EXPECT_EQ(call(Method::get, "/v1/admin/reports/not-an-id?format=csv", std::nullopt, root()).status, 404);
}

// Sales and marketing spend: set per month, channel and currency by super admins only (audited in the platform
// chain), listed, and read by the SaaS metrics as CAC.
TEST_P(SaasMetricsApiTest, SpendIsSetBySuperAdminsAuditedAndGivesCac) {
  plan("starter", "starter", "monthly", 1000);
  subscribe("alpha", {{"plan", "starter"}});
  subscribe("bravo", {{"plan", "starter"}});
  const Json jan_ads = {{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 5000}};
  auto put = call(Method::put, "/v1/admin/analytics/spend", jan_ads, root());
  ASSERT_EQ(put.status, 200) << put.raw_body;
  EXPECT_EQ(put.body.value("amount", -1), 5000);
  // Setting it again replaces it (a PUT is idempotent); another channel adds to the month.
  put = call(Method::put, "/v1/admin/analytics/spend",
             Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 6000}}, root());
  ASSERT_EQ(put.status, 200) << put.raw_body;
  put = call(Method::put, "/v1/admin/analytics/spend",
             Json{{"month", "2026-01"}, {"channel", "events"}, {"currency", "USD"}, {"amount", 2000}}, root());
  ASSERT_EQ(put.status, 200) << put.raw_body;

  auto listed = call(Method::get, "/v1/admin/analytics/spend?from=2026-01&to=2026-12", std::nullopt, root());
  ASSERT_EQ(listed.status, 200) << listed.raw_body;
  ASSERT_EQ(listed.body["data"].size(), 2u) << listed.raw_body;
  EXPECT_EQ(listed.body["data"][0].value("amount", -1), 6000);
  EXPECT_EQ(listed.body["data"][1].value("channel", ""), "events");

  // 8000 for two new customers of 1000 each: CAC 4000, paid back in 8000 / 2000 = 4 months.
  at("2026-02-01T00:00:00Z");
  const Json m = saas("from=2026-01-01&to=2026-02-01");
  const Json& jan = m["currencies"][0]["summary"];
  EXPECT_EQ(jan.value("spend", -1), 8000) << jan.dump();
  EXPECT_EQ(jan.value("cac", -1), 4000);
  EXPECT_DOUBLE_EQ(jan.value("cac_payback_months", -1.0), 4.0);

  // The platform chain holds each change with its amount before and after.
  auto audit = call(Method::get, "/v1/admin/audit-logs?tenant_id=platform", std::nullopt, root());
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  int recorded = 0;
  for (const Json& e : audit.body["data"]) {
    if (e.value("action", "") != "analytics.spend_recorded") continue;
    ++recorded;
    if (e.value("resource_id", "") == "2026-01/ads/USD" && e["changes"]["amount"].value("after", -1) == 6000) {
      EXPECT_EQ(e["changes"]["amount"].value("before", -1), 5000) << e.dump();
    }
  }
  EXPECT_EQ(recorded, 3) << audit.raw_body;

  // Tenants may not; bad input is a problem and changes nothing.
  EXPECT_EQ(call(Method::put, "/v1/admin/analytics/spend", jan_ads, owner("alpha")).status, 403);
  EXPECT_EQ(call(Method::get, "/v1/admin/analytics/spend?from=2026-01&to=2026-12", std::nullopt, owner("alpha")).status,
            403);
  for (const Json& bad :
       {Json{{"month", "2026-13"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 1}},
        Json{{"month", "2026-01"}, {"channel", "Ads!"}, {"currency", "USD"}, {"amount", 1}},
        Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "usd"}, {"amount", 1}},
        Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", -1}},
        Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}},
        Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 1}, {"note", "x"}}}) {
    auto r = call(Method::put, "/v1/admin/analytics/spend", bad, root());
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.raw_body;
  }
  EXPECT_EQ(call(Method::get, "/v1/admin/analytics/spend?from=2026&to=2026-12", std::nullopt, root()).status, 400);
  listed = call(Method::get, "/v1/admin/analytics/spend?from=2026-01&to=2026-12", std::nullopt, root());
  EXPECT_EQ(listed.body["data"][0].value("amount", -1), 6000) << "refused input changed nothing";
}

// The seed's Prometheus metrics, read from the database by the background refresher: paying subscriptions per
// tier (a gauge, zeros included) and collected payments per tier and currency (a counter that only moves up).
TEST_P(SaasMetricsApiTest, ActiveSubscriptionsAndRevenueForPrometheus) {
  plan("starter", "starter", "monthly", 1000);
  plan("annual", "business", "annual", 120000);
  auto coupon = call(Method::post, "/v1/coupons",
                     Json{{"code", "QUARTER"}, {"percent_off_bps", 2500}, {"duration", "forever"}}, root());
  ASSERT_EQ(coupon.status, 201) << coupon.raw_body;
  subscribe("alpha", {{"plan", "starter"}});                        // pays 1000 now
  subscribe("bravo", {{"plan", "annual"}, {"coupon", "QUARTER"}});  // pays 90000 now
  subscribe("charlie", {{"plan", "starter"}, {"trial_days", 30}});  // a trial: not active, nothing paid

  metrics::Registry registry;
  analytics::BusinessMetrics business(*platform().tenant_data, registry, std::chrono::hours(1));
  ASSERT_TRUE(business.refresh());
  std::string text = registry.render();
  EXPECT_NE(text.find("active_subscriptions_total{plan_tier=\"starter\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("active_subscriptions_total{plan_tier=\"business\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("active_subscriptions_total{plan_tier=\"enterprise\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("revenue_total{plan_tier=\"starter\",currency=\"USD\"} 1000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("revenue_total{plan_tier=\"business\",currency=\"USD\"} 90000\n"), std::string::npos) << text;

  // A month on: alpha renews (another 1000), charlie's trial ended on Jan 31 and it paid 1000.
  at("2026-02-01T12:00:00Z");
  ASSERT_TRUE(business.refresh());
  text = registry.render();
  EXPECT_NE(text.find("active_subscriptions_total{plan_tier=\"starter\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("revenue_total{plan_tier=\"starter\",currency=\"USD\"} 3000\n"), std::string::npos) << text;
}

INSTANTIATE_TEST_SUITE_P(Isolation, SaasMetricsApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
