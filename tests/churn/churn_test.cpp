// Churn prediction (docs/ml.md, Churn prediction) on a platform with a made-up but consistent history, written
// through the real billing and ingestion on a ManualClock: customers who stay use the product steadily and rate
// support well; customers who leave use it less each week, open tickets, rate support badly, visit the
// cancellation page, then cancel. The features are point in time; the model is trained, registered, activated,
// rolled back and exported; predictions rank the leavers first; the batch keeps history, sets the gauges and emits
// the platform event on a crossing into high risk; interventions mail the customer, are recorded and audited in the
// platform chain; only super admins reach any of it. Every isolation level, both backends.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "churn/features.hpp"
#include "churn/service.hpp"
#include "events/outbox.hpp"
#include "ml/boosted.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using std::chrono::days;
using std::chrono::hours;
using storage::Backend;

constexpr int k_weeks = 16;
constexpr std::array<const char*, 5> k_product_features{"export", "share", "reports", "alerts", "chat"};

struct Customer {
  tenancy::Tenant tenant;
  std::string subscription;
  int leaves_in_week = -1;  // -1: stays
};

class ChurnTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.webhooks.platform_url = "https://hooks.example.com/atrium";
    config.webhooks.platform_secret = "whsec_platform-secret-for-tests";
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    billing::NewPlan plan{.code = "pro", .name = "Pro", .tier = "professional", .active = true, .price = {}};
    plan.price.currency = "USD";
    plan.price.interval = billing::Interval::monthly;
    plan.price.base_price = 9900;
    plan.price.trial_days = 0;
    ASSERT_TRUE(platform().billing->create_plan(plan, who_));
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }
  std::string root() { return client_->sign_in("root@atrium.test", "root-password"); }
  ApiResponse call(Method m, const std::string& path, const std::optional<Json>& body = {},
                   const std::string& token = "") {
    return client_->call(m, path, body, token.empty() ? root() : token);
  }

  // Six customers at the parameter's level: three stay, three leave in weeks 6, 9 and 12.
  void sign_up() {
    for (int i = 0; i < 6; ++i) {
      Customer c;
      c.tenant = create_test_tenant(platform(), "cust-" + std::to_string(i), GetParam().isolation);
      billing::AccountUpdate account;
      account.legal_name = "Customer " + std::to_string(i);
      account.email = "billing@cust-" + std::to_string(i) + ".test";
      account.address = std::vector<std::string>{"1 Main Street"};
      account.country = "US";
      account.currency = "USD";
      account.payment_method = "pm_card_visa";
      ASSERT_TRUE(platform().billing->put_account(c.tenant.id, account, true, who_));
      auto sub = platform().billing->create_subscription(
          c.tenant.id,
          {.plan = "pro", .seats = 1, .trial_days = 0, .billing_anchor_day = {}, .coupon = {}, .test_clock_id = {}},
          who_);
      ASSERT_TRUE(sub) << sub.error().message;
      c.subscription = sub->id;
      customers_.push_back(std::move(c));
    }
    // Leavers: weeks 6, 9, 12.
    customers_[1].leaves_in_week = 6;
    customers_[3].leaves_in_week = 9;
    customers_[5].leaves_in_week = 12;
  }

  // One week of a customer's product use, stamped on the week's days and sent at its end (`week_start` + 7 days).
  void week_of_use(const Customer& c, int week, Instant week_start) {
    const bool leaving = c.leaves_in_week >= 0;
    // A leaver's use falls week by week towards its departure.
    const double level =
        leaving ? std::max(0.05, 1.0 - static_cast<double>(week) / static_cast<double>(c.leaves_in_week)) : 1.0;
    metering::UsageBatch usage, product;
    for (int d = 0; d < 7; ++d) {
      const Instant day = week_start + days(d);
      const std::string key = c.tenant.slug + ":" + std::to_string(week) + ":" + std::to_string(d);
      auto add = [&](metering::UsageBatch& batch, const std::string& metric, std::int64_t q, Json props,
                     const std::string& user, const std::string& suffix) {
        metering::UsageEvent e;
        e.idempotency_key = key + ":" + suffix;
        e.metric = metric;
        e.quantity = q;
        e.timestamp = day + hours(10);
        e.properties = props.dump();
        e.user_id = user;
        batch.push_back({.event = std::move(e), .unreadable = {}});
      };
      add(usage, "api_calls", static_cast<std::int64_t>(1000 * level), Json::object(), "", "api");
      if (!leaving || d % 3 == 0 || level >= 0.7) {  // fewer active days as it fades
        add(product, "event:page.viewed", 1, {{"page", "home"}}, "u1", "home");
        const int used = leaving ? std::max(1, static_cast<int>(5 * level)) : 5;
        for (int f = 0; f < used; ++f) {
          add(product, "event:feature.used", 1, {{"feature", k_product_features[static_cast<std::size_t>(f)]}}, "u1",
              std::string("f") + k_product_features[static_cast<std::size_t>(f)]);
        }
      }
      if (d == 2) add(product, "event:support.rating", leaving ? 1 : 5, Json::object(), "u1", "rating");
      if (leaving && d == 3) add(product, "event:support.ticket_opened", 1, Json::object(), "u1", "ticket");
      if (leaving && d == 4 && week % 2 == 0) add(product, "event:feedback.negative", 1, Json::object(), "u1", "neg");
      if (leaving && d == 5 && week + 2 >= c.leaves_in_week) {
        add(product, "event:page.viewed", 1, {{"page", "cancel"}}, "u1", "cancel");
      }
    }
    auto u = platform().metering->ingest(c.tenant.id, std::move(usage));
    ASSERT_TRUE(u) << u.error().message;
    auto p = platform().analytics->ingest(c.tenant.id, std::move(product));
    ASSERT_TRUE(p) << p.error().message;
  }

  // Weeks `from` to `to` (exclusive) of history: each week's use, then the clock at its end, the billing run, and
  // the leavers of that week cancelling.
  void grow(int from, int to) {
    for (int w = from; w < to; ++w) {
      const Instant week_start = start_ + days(7 * w);
      clock_.advance(week_start + days(7) - clock_.now());
      for (const Customer& c : customers_) {
        if (c.leaves_in_week >= 0 && w >= c.leaves_in_week) continue;
        week_of_use(c, w, week_start);
      }
      ASSERT_TRUE(platform().billing->run());
      for (const Customer& c : customers_) {
        if (c.leaves_in_week == w) {
          auto r = platform().billing->cancel(c.tenant.id, c.subscription, {.at_period_end = false}, who_);
          ASSERT_TRUE(r) << r.error().message;
        }
      }
    }
  }

  // The platform chain's entries of `action`.
  std::size_t entries(const std::string& action) {
    auto r = call(Method::get, "/v1/admin/audit-logs?tenant_id=platform&limit=100&action=" + action);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body.value("data", Json::array()).size();
  }

  Json train(const Json& body) {
    auto r = call(Method::post, "/v1/admin/churn/models", body);
    EXPECT_EQ(r.status, 201) << r.raw_body;
    return r.body;
  }

  const Instant start_ = parse_rfc3339("2025-01-06T00:00:00Z").value();
  ManualClock clock_{parse_rfc3339("2025-01-06T00:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  std::vector<Customer> customers_;
  audit::Context who_{.actor_type = audit::ActorType::system, .actor_id = "test"};
};

bool same(const churn::Features& a, const churn::Features& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return false;
    if (!std::isnan(a[i]) && a[i] != b[i]) return false;
  }
  return true;
}

TEST_P(ChurnTest, FeaturesAtACutoffIgnoreEverythingRecordedAfterIt) {
  sign_up();
  grow(0, 5);
  // Mid-week 4: week 3's use has arrived, week 4's not yet.
  const Instant cutoff = start_ + days(7 * 4 + 3);
  auto ledger = churn::load_ledger(*platform().tenant_data, clock_.now());
  ASSERT_TRUE(ledger);
  auto before = churn::observe(*platform().tenant_data, *ledger, cutoff);
  ASSERT_TRUE(before) << before.error().message;
  ASSERT_EQ(before->size(), 6u);
  const churn::Observation* leaver = nullptr;
  for (const auto& o : *before) {
    if (o.tenant_id == customers_[1].tenant.id) leaver = &o;
  }
  ASSERT_NE(leaver, nullptr);
  // What it read: 30 days of calls (its first day included), its rating of 1, a week's ticket.
  EXPECT_GT(leaver->values[0], 0.0F);
  EXPECT_FLOAT_EQ(leaver->values[5], 1.0F);   // support_satisfaction
  EXPECT_GE(leaver->values[4], 3.0F);         // support_tickets (weeks 0-3)
  EXPECT_FLOAT_EQ(leaver->values[10], 2.0F);  // negative_feedback (weeks 0 and 2)

  // Later: events stamped before the cutoff but sent after it, a failed payment, the leaver's cancellation, more
  // weeks of use.
  metering::UsageBatch late;
  metering::UsageEvent e;
  e.idempotency_key = "late";
  e.metric = "event:support.ticket_opened";
  e.quantity = 1;
  e.timestamp = cutoff - hours(1);
  e.properties = "{}";
  e.user_id = "u1";
  late.push_back({.event = std::move(e), .unreadable = {}});
  ASSERT_TRUE(platform().analytics->ingest(customers_[1].tenant.id, std::move(late)));
  grow(5, 8);
  auto ledger_after = churn::load_ledger(*platform().tenant_data, clock_.now());
  ASSERT_TRUE(ledger_after);
  auto after = churn::observe(*platform().tenant_data, *ledger_after, cutoff);
  ASSERT_TRUE(after) << after.error().message;
  ASSERT_EQ(after->size(), before->size());
  for (std::size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].tenant_id, (*before)[i].tenant_id);
    EXPECT_TRUE(same((*after)[i].values, (*before)[i].values)) << (*after)[i].tenant_id;
  }
  // And a later cutoff does see them: the late ticket and the leaver's departure.
  auto later = churn::observe(*platform().tenant_data, *ledger_after, clock_.now());
  ASSERT_TRUE(later);
  std::set<std::string> live;
  for (const auto& o : *later) live.insert(o.tenant_id);
  EXPECT_FALSE(live.contains(customers_[1].tenant.id));  // cancelled in week 6
  EXPECT_EQ(live.size(), 5u);
  EXPECT_TRUE(churn::churned(*ledger_after, customers_[1].tenant.id, cutoff, days(30)));
  EXPECT_FALSE(churn::churned(*ledger_after, customers_[1].tenant.id, cutoff, days(7)));
  EXPECT_FALSE(churn::churned(*ledger_after, customers_[0].tenant.id, cutoff, days(90)));
}

TEST_P(ChurnTest, TrainedRegisteredActivatedRolledBackAndRankingTheLeaversFirst) {
  sign_up();
  grow(0, k_weeks);
  // Not before a model is active; refused calls leave no entry.
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/tenants").status, 409);
  EXPECT_EQ(call(Method::post, "/v1/admin/churn/score").status, 409);
  EXPECT_EQ(call(Method::post, "/v1/admin/churn/models/1/activate").status, 404);
  for (const Json& bad : {Json{{"horizonDays", 5}}, Json{{"stepDays", 0}}, Json{{"activate", "yes"}},
                          Json{{"from", "2025-03-01T00:00:00Z"}, {"to", "2025-02-01T00:00:00Z"}}, Json{{"x", 1}},
                          Json{{"from", "2025-04-01T00:00:00Z"}, {"to", "2025-04-20T00:00:00Z"}}}) {
    auto r = call(Method::post, "/v1/admin/churn/models", bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " -> " << r.raw_body;
  }
  EXPECT_EQ(entries("churn.model_trained") + entries("churn.model_activated") + entries("churn.batch_scored"), 0u);
  const Json first = train({{"horizonDays", 28}, {"stepDays", 7}, {"activate", true}});
  ASSERT_EQ(first.value("version", 0), 1) << first.dump();
  EXPECT_EQ(first["name"], "churn_prediction_v2");
  EXPECT_EQ(first["status"], "active");
  EXPECT_EQ(first["features"].size(), 11u);
  EXPECT_EQ(first["features"][0], "avg_daily_api_calls");
  EXPECT_GT(first.value("trainingRows", 0), 40);
  EXPECT_GE(first.value("positives", 0), 6);
  EXPECT_EQ(first["horizonDays"], 28);

  const Json second = train({{"horizonDays", 28}, {"stepDays", 7}});
  ASSERT_EQ(second.value("version", 0), 2);
  EXPECT_EQ(second["status"], "trained");
  auto activated = call(Method::post, "/v1/admin/churn/models/2/activate");
  ASSERT_EQ(activated.status, 200) << activated.raw_body;
  EXPECT_EQ(activated.body["status"], "active");
  auto models = call(Method::get, "/v1/admin/churn/models");
  ASSERT_EQ(models.status, 200);
  ASSERT_EQ(models.body["data"].size(), 2u);
  EXPECT_EQ(models.body["data"][0]["status"], "active");
  EXPECT_EQ(models.body["data"][1]["status"], "retired");
  // The rollback: version 1 again.
  ASSERT_EQ(call(Method::post, "/v1/admin/churn/models/1/activate").status, 200);
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/1").body["status"], "active");
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/2").body["status"], "retired");
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/3").status, 404);
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/x1").status, 404);
  auto audit = call(Method::get, "/v1/admin/audit-logs?tenant_id=platform&resource_type=churn_model");
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  std::multiset<std::string> actions;
  for (const auto& entry : audit.body["data"]) actions.insert(entry.value("action", ""));
  EXPECT_EQ(actions.count("churn.model_trained"), 2u);
  EXPECT_EQ(actions.count("churn.model_activated"), 3u);
  EXPECT_EQ(audit.body["data"].size(), 5u);

  // Now only the stayers are customers.
  auto ranked = call(Method::get, "/v1/admin/churn/tenants");
  ASSERT_EQ(ranked.status, 200) << ranked.raw_body;
  ASSERT_EQ(ranked.body["data"].size(), 3u);  // every leaver is gone by week 16
  EXPECT_EQ(ranked.body["model"]["version"], 1);
  for (const auto& p : ranked.body["data"]) {
    const double probability = p.value("churnProbability", -1.0);
    EXPECT_EQ(p.value("riskLevel", ""), probability >= 0.7 ? "high" : probability >= 0.3 ? "medium" : "low");
    EXPECT_GE(p.value("confidenceScore", -1.0), 0.0);
    EXPECT_LE(p.value("confidenceScore", 2.0), 1.0);
  }
  // At a past instant (week 10) the leaver still there is ranked above the stayers: ROC AUC 1 on these six.
  const std::string at = format_rfc3339(start_ + days(7 * 10 + 1));
  auto evaluation = call(Method::get, "/v1/admin/churn/models/1/evaluation?at=" + at + "&horizonDays=28");
  ASSERT_EQ(evaluation.status, 200) << evaluation.raw_body;
  EXPECT_EQ(evaluation.body["customers"], 4);
  EXPECT_EQ(evaluation.body["churned"], 1);
  EXPECT_DOUBLE_EQ(evaluation.body["models"]["ensemble"].value("roc_auc", 0.0), 1.0) << evaluation.body.dump();
}

TEST_P(ChurnTest, APredictionExplainsItselfAndRecommendsWhatToDo) {
  sign_up();
  grow(0, 11);  // the week-12 leaver is still here, fading
  train({{"horizonDays", 28}, {"stepDays", 7}, {"activate", true}, {"to", format_rfc3339(clock_.now())}});
  auto fading = call(Method::get, "/v1/admin/tenants/" + customers_[5].tenant.id + "/churn");
  ASSERT_EQ(fading.status, 200) << fading.raw_body;
  auto steady = call(Method::get, "/v1/admin/tenants/" + customers_[0].tenant.id + "/churn");
  ASSERT_EQ(steady.status, 200) << steady.raw_body;
  EXPECT_GT(fading.body.value("churnProbability", 0.0), steady.body.value("churnProbability", 1.0));
  EXPECT_EQ(fading.body["tenantId"], customers_[5].tenant.id);
  EXPECT_EQ(fading.body["isolation"], std::string(tenancy::isolation_name(GetParam().isolation)));
  EXPECT_EQ(fading.body["model"]["version"], 1);
  EXPECT_EQ(fading.body["customer"], true);
  EXPECT_EQ(fading.body["planTier"], "professional");
  EXPECT_TRUE(fading.body["features"].contains("cancellation_page_visits"));
  const Json& factors = fading.body["topRiskFactors"];
  ASSERT_FALSE(factors.empty()) << fading.body.dump();
  EXPECT_LE(factors.size(), 5u);
  double last = 1e9;
  for (const auto& f : factors) {
    EXPECT_EQ(f["direction"], "increases_risk");
    EXPECT_GT(f.value("contribution", 0.0), 0.0);
    EXPECT_LE(f.value("contribution", 0.0), last);
    last = f.value("contribution", 0.0);
  }
  const std::string level = fading.body.value("riskLevel", "");
  const double p = fading.body.value("churnProbability", 0.0);
  EXPECT_EQ(level, p >= 0.7 ? "high" : p >= 0.3 ? "medium" : "low");
  if (level != "low") {
    EXPECT_FALSE(fading.body["recommendedInterventions"].empty());
  }
  for (const auto& r : fading.body["recommendedInterventions"]) {
    EXPECT_TRUE(churn::valid_intervention(r.value("kind", ""))) << r.dump();
  }
  // The models agree or not: the confidence is 1 - their spread.
  const Json& m = fading.body["models"];
  const double hi = std::max({m.value("random_forest", 0.0), m.value("xgboost", 0.0), m.value("neural_network", 0.0)});
  const double lo = std::min({m.value("random_forest", 0.0), m.value("xgboost", 0.0), m.value("neural_network", 0.0)});
  EXPECT_NEAR(fading.body.value("confidenceScore", 0.0), 1.0 - (hi - lo), 1e-6);

  // The XGBoost model as XGBoost's own JSON: loaded again, the same margins for the same features.
  auto exported = client_->call(Method::get, "/v1/admin/churn/models/1/xgboost", std::nullopt, root());
  ASSERT_EQ(exported.status, 200);
  EXPECT_EQ(exported.content_type, "application/json");
  auto booster = ml::Booster::from_json(exported.raw_body, 1);
  ASSERT_TRUE(booster) << booster.error().message;
  std::vector<float> x;
  for (const auto& name : churn::k_feature_names) {
    const Json& v = fading.body["features"][std::string(name)];
    x.push_back(v.is_null() ? std::nanf("") : v.get<float>());
  }
  auto again = booster->predict(x.data(), 1, x.size());
  ASSERT_TRUE(again);
  EXPECT_NEAR((*again)[0], m.value("xgboost", -1.0), 1e-6);
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/1/xgboost?model=random_forest").status, 200);
  EXPECT_EQ(call(Method::get, "/v1/admin/churn/models/1/xgboost?model=other").status, 400);
}

TEST_P(ChurnTest, TheDailyBatchKeepsHistorySetsTheGaugesAndTellsOfCrossingsOnce) {
  sign_up();
  grow(0, 11);
  train({{"horizonDays", 28}, {"stepDays", 7}, {"activate", true}});
  auto batch = call(Method::post, "/v1/admin/churn/score");
  ASSERT_EQ(batch.status, 200) << batch.raw_body;
  EXPECT_EQ(batch.body["scored"], 4);
  EXPECT_EQ(entries("churn.batch_scored"), 1u);  // the customers now: three stayers and the week-12 leaver
  const std::string text = platform().registry.render();
  EXPECT_NE(text.find("churn_risk_score{plan_tier=\"professional\"}"), std::string::npos) << text;
  EXPECT_NE(text.find("churn_high_risk_tenants{plan_tier=\"professional\"}"), std::string::npos);
  // Again the same day: the day's score replaced, nobody crosses twice.
  auto again = call(Method::post, "/v1/admin/churn/score");
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.body["becameHigh"], Json::array());
  clock_.advance(days(1));
  ASSERT_EQ(call(Method::post, "/v1/admin/churn/score").status, 200);
  auto one = call(Method::get, "/v1/admin/tenants/" + customers_[0].tenant.id + "/churn");
  ASSERT_EQ(one.status, 200);
  ASSERT_EQ(one.body["history"].size(), 2u) << one.body.dump();
  EXPECT_GT(one.body["history"][0].value("day", ""), one.body["history"][1].value("day", ""));
  // The first batch's high-risk tenants crossed into it (nobody was scored before): each had churn.risk_high
  // emitted, which the relay hands to the platform endpoint's delivery job.
  auto ranked = call(Method::get, "/v1/admin/churn/tenants?riskLevel=high");
  ASSERT_EQ(ranked.status, 200);
  std::set<std::string> high;
  for (const auto& p : ranked.body["data"]) high.insert(p.value("tenantId", ""));
  std::set<std::string> crossed;
  for (const auto& id : batch.body["becameHigh"]) crossed.insert(id.get<std::string>());
  EXPECT_EQ(crossed, high);
  EXPECT_EQ(batch.body["high"], static_cast<int>(high.size()));
  events::Relay relay(
      platform().tenant_data->platform_database(), clock_,
      [this](const events::Event& e) { return platform().workers()->publish(e); }, std::chrono::seconds(60));
  auto relayed = relay.run_once();
  ASSERT_TRUE(relayed) << relayed.error().message;
  auto stats = platform().workers()->queue().stats();
  ASSERT_TRUE(stats);
  std::int64_t deliveries = 0;
  if (auto q = stats->counts.find("webhooks"); q != stats->counts.end()) {
    if (auto t = q->second.find("webhook.platform"); t != q->second.end()) {
      for (const auto& [state, n] : t->second) deliveries += n;
    }
  }
  EXPECT_EQ(deliveries, static_cast<std::int64_t>(crossed.size()));
}

TEST_P(ChurnTest, InterventionsMailCreditOrGraceTheCustomerAndAreRecordedAuditedAndKeptApart) {
  sign_up();
  grow(0, 1);  // the first invoices are paid
  const std::string alpha = customers_[0].tenant.id;
  const std::string bravo = customers_[2].tenant.id;
  const std::string path = "/v1/admin/tenants/" + alpha + "/churn/interventions";
  // Bad input changes nothing.
  for (const Json& bad : {Json{{"kind", "free_money"}}, Json::object(), Json{{"kind", 3}},
                          Json{{"kind", "onboarding_email"}, {"note", std::string(2001, 'x')}},
                          Json{{"kind", "onboarding_email"}, {"extra", 1}}}) {
    auto r = call(Method::post, path, bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " -> " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(call(Method::get, path).body["data"].size(), 0u);
  EXPECT_EQ(entries("churn.intervention_applied"), 0u);
  EXPECT_EQ(call(Method::post, "/v1/admin/tenants/0190a000-0000-7000-8000-000000000000/churn/interventions",
                 Json{{"kind", "onboarding_email"}})
                .status,
            404);

  auto made = call(Method::post, path, Json{{"kind", "onboarding_email"}, {"note", "Ana from success"}});
  ASSERT_EQ(made.status, 201) << made.raw_body;
  EXPECT_EQ(made.body["kind"], "onboarding_email");
  EXPECT_EQ(made.body["result"]["to"], Json::array({"billing@cust-0.test"}));
  EXPECT_EQ(made.body["churnProbability"], nullptr);  // no model is active
  EXPECT_EQ(made.body["outcome"], nullptr);
  const std::string id = made.body.value("id", "");
  // The mail is queued for the customer's billing address, with the operator's note.
  auto consumer = platform().background->queue().consumer("email");
  ASSERT_TRUE(consumer);
  bool mailed = false;
  while (!mailed) {
    auto job = (*consumer)->next(std::chrono::seconds(2));
    ASSERT_TRUE(job && *job) << "no onboarding mail was queued";
    const Json payload = (**job).job.payload;
    (void)(*consumer)->complete(**job);
    mailed = payload["to"][0].value("email", "") == "billing@cust-0.test" &&
             payload.value("text", "").find("Ana from success") != std::string::npos;
  }

  // Another tenant's path sees none of it.
  EXPECT_EQ(call(Method::get, "/v1/admin/tenants/" + bravo + "/churn/interventions").body["data"].size(), 0u);
  auto crossed = call(Method::post, "/v1/admin/tenants/" + bravo + "/churn/interventions/" + id + "/outcome",
                      Json{{"outcome", "retained"}});
  EXPECT_EQ(crossed.status, 404) << crossed.raw_body;
  EXPECT_EQ(call(Method::post, path + "/" + id + "/outcome", Json{{"outcome", "saved"}}).status, 400);
  EXPECT_EQ(call(Method::post, path + "/" + id + "x/outcome", Json{{"outcome", "retained"}}).status, 404);
  EXPECT_EQ(entries("churn.intervention_outcome"), 0u);
  auto outcome = call(Method::post, path + "/" + id + "/outcome", Json{{"outcome", "retained"}, {"note", "renewed"}});
  ASSERT_EQ(outcome.status, 200) << outcome.raw_body;
  EXPECT_EQ(outcome.body["outcome"], "retained");
  EXPECT_EQ(outcome.body["outcomeNote"], "renewed");
  auto listed = call(Method::get, path);
  ASSERT_EQ(listed.body["data"].size(), 1u);
  EXPECT_EQ(listed.body["data"][0], outcome.body);

  // A retention credit: 20% of the last paid invoice (9,900 minor units) to the credit balance, as a credit note.
  auto before_credit = platform().billing->get_account(alpha);
  ASSERT_TRUE(before_credit);
  for (const Json& bad :
       {Json{{"kind", "onboarding_email"}, {"percent", 5}}, Json{{"kind", "retention_credit"}, {"percent", 0}},
        Json{{"kind", "retention_credit"}, {"percent", 101}}, Json{{"kind", "retention_credit"}, {"percent", "20"}}}) {
    EXPECT_EQ(call(Method::post, path, bad).status, 400) << bad.dump();
  }
  auto credited =
      call(Method::post, path, Json{{"kind", "retention_credit"}, {"percent", 20}, {"note", "stay with us"}});
  ASSERT_EQ(credited.status, 201) << credited.raw_body;
  EXPECT_EQ(credited.body["result"]["amount"], 1980);
  EXPECT_EQ(credited.body["result"]["currency"], "USD");
  EXPECT_EQ(credited.body["parameters"]["percent"], 20);
  auto after_credit = platform().billing->get_account(alpha);
  ASSERT_TRUE(after_credit);
  EXPECT_EQ(after_credit->credit_balance, before_credit->credit_balance + 1980);
  auto notes = platform().billing->list_credit_notes(alpha);
  ASSERT_TRUE(notes);
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_EQ(notes->front().amount, 1980);
  EXPECT_EQ(notes->front().id, credited.body["result"].value("creditNote", ""));
  // A tenant with nothing paid has nothing to credit: 409, nothing recorded.
  const tenancy::Tenant unpaid = create_test_tenant(platform(), "no-invoice", GetParam().isolation);
  auto refused =
      call(Method::post, "/v1/admin/tenants/" + unpaid.id + "/churn/interventions", Json{{"kind", "retention_credit"}});
  EXPECT_EQ(refused.status, 409) << refused.raw_body;
  EXPECT_EQ(call(Method::get, "/v1/admin/tenants/" + unpaid.id + "/churn/interventions").body["data"].size(), 0u);

  // A dunning grace: refused while nothing is in dunning (alpha's invoices are paid), then given to a customer whose
  // first payment failed: its next retry moves three days later.
  for (const Json& bad : {Json{{"kind", "onboarding_email"}, {"days", 3}}, Json{{"kind", "dunning_grace"}, {"days", 0}},
                          Json{{"kind", "dunning_grace"}, {"days", 31}}}) {
    EXPECT_EQ(call(Method::post, path, bad).status, 400) << bad.dump();
  }
  auto nothing_due = call(Method::post, path, Json{{"kind", "dunning_grace"}, {"days", 3}});
  EXPECT_EQ(nothing_due.status, 409) << nothing_due.raw_body;
  const tenancy::Tenant late = create_test_tenant(platform(), "declined", GetParam().isolation);
  billing::AccountUpdate declined;
  declined.legal_name = "Declined Inc";
  declined.email = "billing@declined.test";
  declined.country = "US";
  declined.currency = "USD";
  declined.payment_method = "pm_card_chargeDeclined";
  ASSERT_TRUE(platform().billing->put_account(late.id, declined, true, who_));
  ASSERT_TRUE(platform().billing->create_subscription(late.id, {.plan = "pro", .seats = 1, .trial_days = 0}, who_));
  auto failed = platform().billing->list_invoices(late.id, "open");
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->size(), 1u);
  ASSERT_TRUE(failed->front().next_payment_attempt);
  const Instant retry_was = *failed->front().next_payment_attempt;
  const std::string late_path = "/v1/admin/tenants/" + late.id + "/churn/interventions";
  auto graced = call(Method::post, late_path, Json{{"kind", "dunning_grace"}, {"days", 3}});
  ASSERT_EQ(graced.status, 201) << graced.raw_body;
  EXPECT_EQ(graced.body["parameters"]["days"], 3);
  ASSERT_EQ(graced.body["result"]["invoices"].size(), 1u);
  EXPECT_EQ(graced.body["result"]["invoices"][0]["invoice"], failed->front().id);
  EXPECT_EQ(graced.body["result"]["invoices"][0]["dunningGraceHours"], 72);
  auto moved = platform().billing->get_invoice(late.id, failed->front().id);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->next_payment_attempt, retry_was + days(3));
  EXPECT_EQ(call(Method::get, late_path).body["data"].size(), 1u);
  EXPECT_EQ(call(Method::get, path).body["data"].size(), 2u) << "alpha's refusal recorded nothing";

  // Audited in the platform chain, which tenants never read; not in the tenant's own.
  auto audit = call(Method::get, "/v1/admin/audit-logs?tenant_id=platform&resource_id=" + alpha);
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  std::vector<std::string> actions;
  for (const auto& e : audit.body["data"]) actions.push_back(e.value("action", ""));
  EXPECT_EQ(actions, (std::vector<std::string>{"churn.intervention_applied", "churn.intervention_outcome",
                                               "churn.intervention_applied"}));
  const std::string owner = client_->sign_in("owner@cust-0.test", "password-cust-0", "cust-0");
  auto own = client_->call(Method::get, "/v1/audit-logs?action=churn.intervention_applied", std::nullopt, owner);
  ASSERT_EQ(own.status, 200);
  EXPECT_EQ(own.body["data"].size(), 0u);
}

TEST_P(ChurnTest, TenantUsersNeverReachChurnData) {
  sign_up();
  const std::string owner = client_->sign_in("owner@cust-0.test", "password-cust-0", "cust-0");
  const std::string self = customers_[0].tenant.id;
  for (const auto& [m, path] : std::vector<std::pair<Method, std::string>>{
           {Method::get, "/v1/admin/churn/tenants"},
           {Method::get, "/v1/admin/churn/models"},
           {Method::post, "/v1/admin/churn/models"},
           {Method::get, "/v1/admin/churn/models/1"},
           {Method::get, "/v1/admin/churn/models/1/xgboost"},
           {Method::get, "/v1/admin/churn/models/1/evaluation"},
           {Method::post, "/v1/admin/churn/models/1/activate"},
           {Method::post, "/v1/admin/churn/score"},
           {Method::get, "/v1/admin/tenants/" + self + "/churn"},
           {Method::get, "/v1/admin/tenants/" + self + "/churn/interventions"},
           {Method::post, "/v1/admin/tenants/" + self + "/churn/interventions"},
           {Method::post, "/v1/admin/tenants/" + self + "/churn/interventions/x/outcome"}}) {
    const std::optional<Json> body = m == Method::post ? std::optional<Json>(Json::object()) : std::nullopt;
    auto r = client_->call(m, path, body, owner);
    EXPECT_EQ(r.status, 403) << path << " -> " << r.raw_body;
    EXPECT_EQ(client_->call(m, path, body).status, 401) << path;
  }
}

// The catalogue's mapping (docs/ml.md, Interventions): each factor's kinds, once each, in the order of the factors;
// nothing at low risk; a person's follow-up for high risk without a lead.
TEST(ChurnRecommendations, FactorsMapToTheDocumentedInterventions) {
  churn::Prediction p;
  p.risk_level = "medium";
  for (const char* f : {"payment_failures", "usage_trend", "plan_downgrades", "support_satisfaction",
                        "days_since_last_login", "cancellation_page_visits", "subscription_age_days"}) {
    p.factors.push_back({.feature = f, .value = 1.0, .contribution = 0.1});
  }
  std::vector<std::string> kinds;
  for (const auto& r : churn::recommend(p)) kinds.push_back(r.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"card_update_email", "dunning_grace", "onboarding_email",
                                             "retention_credit", "success_followup_email"}));
  p.risk_level = "low";
  EXPECT_TRUE(churn::recommend(p).empty());
  p.risk_level = "high";
  p.factors = {{.feature = "subscription_age_days", .value = 1.0, .contribution = 0.1}};
  kinds.clear();
  for (const auto& r : churn::recommend(p)) kinds.push_back(r.kind);
  EXPECT_EQ(kinds, std::vector<std::string>{"success_followup_email"});
}

INSTANTIATE_TEST_SUITE_P(Isolation, ChurnTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
