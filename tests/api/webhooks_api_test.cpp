// Events, webhooks and reports end to end on every backend and isolation level: the transactional outbox (a
// rolled-back change publishes nothing; a change committed while the relay is down is delivered when it runs),
// signed deliveries to a real HTTP receiver, retries until a receiver that was down comes up, each event once per
// endpoint, disabling an endpoint that keeps failing (and telling the tenant), the audit-log CSV report, and the
// tenant boundary on every webhook and report route.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/ids.hpp"
#include "events/outbox.hpp"
#include "support/api_client.hpp"
#include "support/http_receiver.hpp"
#include "support/isolation_cases.hpp"
#include "support/smtp_receiver.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/idempotency.hpp"
#include "webhooks/signature.hpp"

namespace atrium::test {
namespace {

using namespace std::chrono_literals;
using http::Method;
using storage::Backend;

class WebhooksApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.webhooks.allow_private_targets = true;
    config.webhooks.retry_schedule = "1s,1s,1s,1s,1s,1s,1s,1s";
    config.jobs.poll_interval_ms = 50;
    config.jobs.relay_interval_ms = 100;
    config.jobs.concurrency = "default=1,webhooks=2,email=1,reports=1";
    customize(config);
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = make_tenant("alpha");
    b_ = make_tenant("beta");
    owner_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = sign_in("owner@beta.test", "password-beta", "beta");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }
  virtual void customize(Config&) {}

  app::Platform& platform() { return tp_->platform(); }

  tenancy::Tenant make_tenant(const std::string& slug) {
    return create_test_tenant(platform(), slug, GetParam().isolation);
  }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  // Creates an endpoint; returns {id, secret}.
  std::pair<std::string, std::string> endpoint(const std::string& token, const std::string& url,
                                               const std::vector<std::string>& types) {
    auto r = client_->call(Method::post, "/v1/webhook-endpoints", Json{{"url", url}, {"event_types", types}}, token);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return {r.body.value("id", ""), r.body.value("secret", "")};
  }

  std::string project(const std::string& token, const std::string& name) {
    auto r = client_->call(Method::post, "/v1/projects", Json{{"name", name}}, token);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("id", "");
  }

  Json deliveries(const std::string& token, const std::string& endpoint_id) {
    auto r = client_->call(Method::get, "/v1/webhook-endpoints/" + endpoint_id + "/deliveries", std::nullopt, token);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("data", Json::array());
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
};

TEST_P(WebhooksApiTest, CommittedWhileTheRelayIsDownIsDeliveredSignedWhenItRuns) {
  HttpReceiver receiver;
  auto [id, secret] = endpoint(owner_a_, receiver.url("/hooks"), {"project.created"});
  ASSERT_TRUE(secret.starts_with("whsec_"));
  const std::string p = project(owner_a_, "first");
  project(owner_b_, "another tenant's");  // no endpoint there
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(receiver.requests().empty()) << "nothing runs before the workers start";

  ASSERT_TRUE(platform().workers()->start_workers());
  ASSERT_TRUE(receiver.wait_for(1, 30s));
  ASSERT_TRUE(settled(platform()));
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hooks");
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_TRUE(webhooks::verify(req.header("atrium-signature"), secret, req.body, now));
  EXPECT_FALSE(webhooks::verify(req.header("atrium-signature"), "whsec_wrong", req.body, now));
  Json body = Json::parse(req.body);
  EXPECT_EQ(body["type"], "project.created");
  EXPECT_EQ(body["tenant_id"], a_.id);
  EXPECT_EQ(body["data"]["id"], p);
  EXPECT_EQ(body["data"]["name"], "first");
  EXPECT_EQ(req.header("atrium-event-id"), body["id"]);
  EXPECT_TRUE(body["created"].is_number_integer());
  EXPECT_TRUE(eventually([&] {
    auto d = deliveries(owner_a_, id);
    return d.size() == 1 && d[0]["status"] == "succeeded";
  }));
}

TEST_P(WebhooksApiTest, ARolledBackChangePublishesNothing) {
  HttpReceiver receiver;
  endpoint(owner_a_, receiver.url(), {"*"});
  auto r = platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    auto e = events::emit(tx, platform().clock(), "project.created", {{"id", "never"}});
    if (!e) return std::unexpected(e.error());
    return fail(Errc::conflict, "the change fails after its event was written");
  });
  ASSERT_FALSE(r);
  ASSERT_TRUE(platform().flush_audit(a_));
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "after");  // a committed one, to know when the relay has passed
  ASSERT_TRUE(receiver.wait_for(1, 30s));
  ASSERT_TRUE(settled(platform()));
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Json::parse(requests[0].body)["data"]["name"], "after");
}

TEST_P(WebhooksApiTest, AReceiverThatWasDownGetsTheEventOnceFromTheRetries) {
  HttpReceiver receiver;
  const std::uint16_t port = receiver.port();
  receiver.stop();
  auto [id, secret] = endpoint(owner_a_, "http://127.0.0.1:" + std::to_string(port) + "/in", {"project.created"});
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "while down");
  ASSERT_TRUE(eventually([&] {
    auto d = deliveries(owner_a_, id);
    return d.size() == 1 && d[0]["attempts"].get<int>() >= 1;
  })) << "the first attempt did not happen";
  EXPECT_EQ(deliveries(owner_a_, id)[0]["status"], "pending");
  ASSERT_TRUE(receiver.start());
  ASSERT_TRUE(receiver.wait_for(1, 30s));
  ASSERT_TRUE(eventually([&] { return deliveries(owner_a_, id)[0]["status"] == "succeeded"; }));
  ASSERT_TRUE(settled(platform()));
  ASSERT_EQ(receiver.requests().size(), 1u);
  const Json d = deliveries(owner_a_, id)[0];
  EXPECT_GE(d["attempts"].get<int>(), 2);
  EXPECT_EQ(d["last_status_code"], 200);
}

TEST_P(WebhooksApiTest, EachEventReachesEachEndpointOnceEvenWhenPublishedTwice) {
  HttpReceiver one, two;
  endpoint(owner_a_, one.url(), {"project.created", "project.deleted"});
  endpoint(owner_a_, two.url(), {"*"});
  for (int i = 0; i < 5; ++i) project(owner_a_, "p" + std::to_string(i));
  // A relay that crashed after publishing but before removing the events publishes them again.
  std::vector<events::Event> pending;
  events::Relay spy(
      platform().tenant_data->platform_database(),
      platform().clock(),  // the relay is platform work (RLS on pending_events)
      [&](const events::Event& e) {
        if (e.type == "project.created") pending.push_back(e);
        return platform().workers()->publish(e);
      },
      1s);
  ASSERT_TRUE(spy.run_once());
  ASSERT_EQ(pending.size(), 5u);
  for (const auto& e : pending) ASSERT_TRUE(platform().workers()->publish(e));
  ASSERT_TRUE(platform().workers()->start_workers());
  ASSERT_TRUE(one.wait_for(5, 30s));
  ASSERT_TRUE(two.wait_for(5, 30s));
  ASSERT_TRUE(settled(platform()));
  for (const auto* r : {&one, &two}) {
    std::set<std::string> ids;
    for (const auto& req : r->requests()) ids.insert(Json::parse(req.body)["id"].get<std::string>());
    EXPECT_EQ(r->requests().size(), 5u);
    EXPECT_EQ(ids.size(), 5u);
  }
}

// Retries a fifth of a second apart: the whole schedule is run through, so it is kept short.
class FailingEndpointTest : public WebhooksApiTest {
  void customize(Config& config) override {
    config.webhooks.retry_schedule = "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms";
  }
};

TEST_P(FailingEndpointTest, AnEndpointThatKeepsFailingIsDisabledAndItsOwnersAreEmailed) {
  HttpReceiver receiver;
  receiver.set_status(500);
  auto [id, secret] = endpoint(owner_a_, receiver.url(), {"project.created"});
  auto settings = client_->call(Method::put, "/v1/email-settings",
                                Json{{"from_name", "Alpha Support"}, {"reply_to", "help@alpha.test"}}, owner_a_);
  ASSERT_EQ(settings.status, 200) << settings.body.dump();
  EXPECT_EQ(client_->call(Method::get, "/v1/email-settings", std::nullopt, owner_b_).body["reply_to"], nullptr)
      << "another tenant's settings are its own";
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "never accepted");
  // 8 retries after the first attempt: 9 attempts.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = client_->call(Method::get, "/v1/webhook-endpoints/" + id, std::nullopt, owner_a_);
        return r.body.value("status", "") == "disabled";
      },
      60s));
  EXPECT_EQ(receiver.requests().size(), 9u);
  EXPECT_EQ(deliveries(owner_a_, id)[0]["status"], "failed");
  const std::string data_dir = tp_->config().storage.data_dir;
  ASSERT_TRUE(eventually([&] { return !delivered_mails(data_dir).empty(); }));
  const std::string mail = delivered_mails(data_dir).back();
  EXPECT_NE(mail.find("owner@alpha.test"), std::string::npos) << mail;
  EXPECT_NE(mail.find("Webhook endpoint disabled"), std::string::npos) << mail;
  EXPECT_NE(mail.find("From: \"Alpha Support\" <no-reply@atrium.localhost>"), std::string::npos) << mail;
  EXPECT_NE(mail.find("Reply-To: help@alpha.test"), std::string::npos) << mail;
  EXPECT_NE(mail.find("X-Atrium-Tenant: " + a_.id), std::string::npos) << mail;
  // Redelivery of a disabled endpoint's delivery is refused.
  const std::string delivery = deliveries(owner_a_, id)[0].value("id", "");
  auto again = client_->call(Method::post, "/v1/webhook-endpoints/" + id + "/deliveries/" + delivery + "/redeliver",
                             std::nullopt, owner_a_);
  EXPECT_EQ(again.status, 409) << again.body.dump();
  // Once the receiver is fixed, the owner enables the endpoint and redelivers what failed.
  receiver.set_status(200);
  auto enabled = client_->call(Method::post, "/v1/webhook-endpoints/" + id + "/enable", std::nullopt, owner_a_);
  ASSERT_EQ(enabled.status, 200) << enabled.body.dump();
  EXPECT_EQ(enabled.body["status"], "enabled");
  EXPECT_EQ(enabled.body["disabled_reason"], nullptr);
  auto redelivered = client_->call(
      Method::post, "/v1/webhook-endpoints/" + id + "/deliveries/" + delivery + "/redeliver", std::nullopt, owner_a_);
  ASSERT_EQ(redelivered.status, 202) << redelivered.body.dump();
  ASSERT_TRUE(receiver.wait_for(10, 30s));
  ASSERT_TRUE(eventually([&] { return deliveries(owner_a_, id)[0]["status"] == "succeeded"; }));
}

TEST_P(WebhooksApiTest, ManualRedeliverySendsTheSameEventAgain) {
  HttpReceiver receiver;
  auto [id, secret] = endpoint(owner_a_, receiver.url(), {"project.created"});
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "p");
  ASSERT_TRUE(receiver.wait_for(1, 30s));
  ASSERT_TRUE(eventually([&] { return deliveries(owner_a_, id)[0]["status"] == "succeeded"; }));
  const std::string delivery = deliveries(owner_a_, id)[0].value("id", "");
  auto r = client_->call(Method::post, "/v1/webhook-endpoints/" + id + "/deliveries/" + delivery + "/redeliver",
                         std::nullopt, owner_a_);
  ASSERT_EQ(r.status, 202) << r.body.dump();
  EXPECT_EQ(r.body["redeliveries"], 1);
  ASSERT_TRUE(receiver.wait_for(2, 30s));
  auto requests = receiver.requests();
  EXPECT_EQ(requests[0].body, requests[1].body) << "a redelivery carries the same event, byte for byte";
}

TEST_P(WebhooksApiTest, TheAuditLogReportIsACsvOfTheTenantsOwnEntries) {
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "=cmd|' /C calc'!A0");
  project(owner_b_, "beta's project");
  auto created = client_->call(
      Method::post, "/v1/reports",
      Json{{"type", "audit_log"}, {"from", "2000-01-01T00:00:00Z"}, {"to", "2100-01-01T00:00:00Z"}}, owner_a_);
  ASSERT_EQ(created.status, 202) << created.body.dump();
  const std::string id = created.body.value("id", "");
  EXPECT_EQ(created.body["status"], "pending");
  Json report;
  ASSERT_TRUE(eventually([&] {
    report = client_->call(Method::get, "/v1/reports/" + id, std::nullopt, owner_a_).body;
    return report.value("status", "") == "ready";
  })) << report.dump();
  EXPECT_EQ(report["download_url"], "/v1/reports/" + id + "?format=csv");
  auto csv = client_->call(Method::get, "/v1/reports/" + id + "?format=csv", std::nullopt, owner_a_);
  ASSERT_EQ(csv.status, 200);
  const std::string text = csv.raw_body;
  EXPECT_TRUE(text.starts_with("id,seq,occurred_at,actor_type,")) << text;
  EXPECT_NE(text.find("project.created"), std::string::npos);
  EXPECT_NE(text.find("member.added"), std::string::npos);
  EXPECT_EQ(text.find("beta's project"), std::string::npos) << "another tenant's entry is in the report";
  EXPECT_EQ(text.find(",=cmd"), std::string::npos) << "a formula must not start a cell";
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), report["row_count"].get<int>() + 1);

  // Another tenant sees none of it.
  EXPECT_EQ(client_->call(Method::get, "/v1/reports/" + id, std::nullopt, owner_b_).status, 404);
  EXPECT_EQ(client_->call(Method::get, "/v1/reports/" + id + "?format=csv", std::nullopt, owner_b_).status, 404);
}

TEST_P(WebhooksApiTest, AnotherTenantCannotSeeOrTouchTheEndpointsOrDeliveries) {
  HttpReceiver receiver;
  auto [id, secret] = endpoint(owner_a_, receiver.url(), {"project.created"});
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "p");
  ASSERT_TRUE(eventually([&] { return deliveries(owner_a_, id).size() == 1; }));
  const std::string delivery = deliveries(owner_a_, id)[0].value("id", "");

  auto list = client_->call(Method::get, "/v1/webhook-endpoints", std::nullopt, owner_b_);
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(list.body["data"].empty());
  EXPECT_EQ(client_->call(Method::get, "/v1/webhook-endpoints/" + id, std::nullopt, owner_b_).status, 404);
  EXPECT_EQ(client_->call(Method::get, "/v1/webhook-endpoints/" + id + "/deliveries", std::nullopt, owner_b_).status,
            404);
  EXPECT_EQ(client_
                ->call(Method::post, "/v1/webhook-endpoints/" + id + "/deliveries/" + delivery + "/redeliver",
                       std::nullopt, owner_b_)
                .status,
            404);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/webhook-endpoints/" + id, std::nullopt, owner_b_).status, 404);
  // Still there for its owner, and the secret is never listed again.
  auto own = client_->call(Method::get, "/v1/webhook-endpoints/" + id, std::nullopt, owner_a_);
  ASSERT_EQ(own.status, 200);
  EXPECT_FALSE(own.body.contains("secret"));
}

TEST_P(WebhooksApiTest, BadEndpointsAreRefusedWithAProblem) {
  const std::vector<Json> bad = {
      Json{{"url", "ftp://example.com/"}, {"event_types", {"*"}}},
      Json{{"url", "https://user:pw@example.com/"}, {"event_types", {"*"}}},
      Json{{"url", "https://example.com/"}, {"event_types", Json::array()}},
      Json{{"url", "https://example.com/"}, {"event_types", {"Not A Type"}}},
      Json{{"url", "https://example.com/"}, {"event_types", "*"}},
      Json{{"url", 5}, {"event_types", {"*"}}},
      Json{{"url", "https://example.com/"}, {"event_types", {"*"}}, {"extra", 1}},
  };
  for (const auto& body : bad) {
    auto r = client_->call(Method::post, "/v1/webhook-endpoints", body, owner_a_);
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.body.dump();
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  auto list = client_->call(Method::get, "/v1/webhook-endpoints", std::nullopt, owner_a_);
  EXPECT_TRUE(list.body["data"].empty());
}

INSTANTIATE_TEST_SUITE_P(Isolation, WebhooksApiTest, all_isolation_cases(), isolation_case_name);
INSTANTIATE_TEST_SUITE_P(Isolation, FailingEndpointTest, all_isolation_cases(), isolation_case_name);

// Without webhooks.allow_private_targets, a loopback target is refused when it is delivered to (names can
// resolve anywhere later), and the attempt says why.
class PrivateTargetsTest : public WebhooksApiTest {
  void customize(Config& config) override {
    config.webhooks.allow_private_targets = false;
    config.webhooks.retry_schedule = "1s";
  }
};

TEST_P(PrivateTargetsTest, LoopbackTargetsAreNotContacted) {
  HttpReceiver receiver;
  auto [id, secret] = endpoint(owner_a_, receiver.url(), {"project.created"});
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "p");
  ASSERT_TRUE(eventually([&] {
    auto d = deliveries(owner_a_, id);
    return !d.empty() && d[0]["attempts"].get<int>() >= 1;
  }));
  EXPECT_NE(deliveries(owner_a_, id)[0].value("last_error", "").find("address not allowed"), std::string::npos);
  EXPECT_TRUE(receiver.requests().empty());
}

INSTANTIATE_TEST_SUITE_P(Sqlite, PrivateTargetsTest,
                         ::testing::Values(IsolationCase{Backend::sqlite, tenancy::Isolation::shared}),
                         isolation_case_name);

}  // namespace
}  // namespace atrium::test

namespace atrium::test {
namespace {

using CleanupTest = WebhooksApiTest;

TEST_P(CleanupTest, TheCleanupJobExpiresOldIdempotencyKeysOfEveryTenant) {
  constexpr tenancy::TenantStatement put{
      "test_idempotency_put",
      "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status, response_body, "
      "created_at) VALUES ($1, $2, 'POST /v1/projects', 'h', 201, '{}', $3)"};
  constexpr tenancy::TenantStatement count{"test_idempotency_count",
                                           "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1"};
  for (const auto* t : {&a_, &b_}) {
    ASSERT_TRUE(platform().tenant_data->transact(*t, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      for (const auto& [key, at] :
           {std::pair{"old", "2020-01-01T00:00:00.000Z"}, std::pair{"new", "2999-01-01T00:00:00.000Z"}}) {
        auto r = tx.execute(put, {storage::Value(std::string(key)), storage::Value(std::string(at))});
        if (!r) return std::unexpected(r.error());
      }
      return {};
    }));
  }
  // An old report, an old ended delivery and an old pending one (still being attempted: it stays).
  constexpr tenancy::TenantStatement old_report{
      "test_old_report",
      "INSERT INTO reports (tenant_id, id, type, parameters, status, error, content, row_count, created_at) VALUES "
      "($1, $2, 'audit_log', '{}', 'ready', '', 'csv', 0, '2020-01-01T00:00:00.000Z')"};
  constexpr tenancy::TenantStatement old_delivery{
      "test_old_delivery",
      "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, attempts, "
      "last_status_code, last_error, redeliveries, created_at, updated_at) VALUES ($1, $2, $3, $4, 'x.y', '{}', $5, "
      "1, 200, '', 0, '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')"};
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    using storage::Value;
    for (auto r :
         {tx.execute(old_report, {Value(std::string("01900000-0000-7000-8000-0000000000a1"))}),
          tx.execute(old_delivery, {Value(std::string("01900000-0000-7000-8000-0000000000d1")), Value(std::string("e")),
                                    Value(std::string("ev1")), Value(std::string("succeeded"))}),
          tx.execute(old_delivery, {Value(std::string("01900000-0000-7000-8000-0000000000d2")), Value(std::string("e")),
                                    Value(std::string("ev2")), Value(std::string("pending"))})}) {
      if (!r) return std::unexpected(r.error());
    }
    return {};
  }));
  // A platform route's old answer and a recent one (per super admin, in the control plane).
  const auto now = std::chrono::system_clock::now();
  ASSERT_TRUE(platform().db().transact([&](storage::Transaction& tx) -> Result<void> {
    const tenancy::IdempotentAnswer taking{.operation = "POST /v1/plans", .request_hash = "h"};
    if (auto r = tenancy::take_platform_answer(tx, "root", "old", taking, now - std::chrono::hours(24 * 400)); !r) {
      return r;
    }
    return tenancy::take_platform_answer(tx, "root", "new", taking, now);
  }));
  const jobs::Handler* cleanup = platform().workers()->handlers().find("system.cleanup");
  ASSERT_NE(cleanup, nullptr);
  jobs::Job job;
  job.id = "01900000-0000-7000-8000-0000000000c1";
  job.type = "system.cleanup";
  jobs::JobContext ctx(job, platform().db(), platform().clock());
  ASSERT_TRUE((*cleanup)(ctx));
  ASSERT_TRUE(platform().db().transact([&](storage::Transaction& tx) -> Result<void> {
    auto old = tenancy::find_platform_answer(tx, "root", "old");
    auto recent = tenancy::find_platform_answer(tx, "root", "new");
    if (!old || !recent) return fail(Errc::internal, "platform answers unreadable");
    EXPECT_FALSE(*old);
    EXPECT_TRUE(*recent);
    return {};
  }));
  for (const auto* t : {&a_, &b_}) {
    std::int64_t n = -1;
    ASSERT_TRUE(platform().tenant_data->transact(*t, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      auto r = tx.execute(count);
      if (!r) return std::unexpected(r.error());
      n = r->int_at(0, 0).value_or(-1);
      return {};
    }));
    EXPECT_EQ(n, 1) << "only the fresh key stays, for " << t->slug;
  }
  constexpr tenancy::TenantStatement reports_left{"test_reports_left",
                                                  "SELECT count(*) FROM reports WHERE tenant_id = $1"};
  constexpr tenancy::TenantStatement deliveries_left{"test_deliveries_left",
                                                     "SELECT status FROM webhook_deliveries WHERE tenant_id = $1"};
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    auto r = tx.execute(reports_left);
    if (!r) return std::unexpected(r.error());
    EXPECT_EQ(r->int_at(0, 0).value_or(-1), 0) << "the old report went";
    auto d = tx.execute(deliveries_left);
    if (!d) return std::unexpected(d.error());
    EXPECT_EQ(d->rows.size(), 1u) << "the ended delivery went";
    if (!d->empty()) {
      EXPECT_EQ(d->text_at(0, 0).value_or(""), "pending") << "the pending one stays";
    }
    return {};
  }));
}

INSTANTIATE_TEST_SUITE_P(Isolation, CleanupTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test

namespace atrium::test {
namespace {

// The same flows with RabbitMQ as the job queue (jobs.queue_url), each test on its own exchanges and queues.
class RabbitWebhooksTest : public WebhooksApiTest {
 protected:
  void SetUp() override {
    const char* url = std::getenv("ATRIUM_TEST_AMQP_URL");
    ATRIUM_MISSING_SERVICE(url == nullptr || *url == '\0', "ATRIUM_TEST_AMQP_URL");
    url_ = url;
    WebhooksApiTest::SetUp();
  }
  void customize(Config& config) override {
    config.jobs.queue_url = url_;
    config.jobs.queue_prefix = "wt" + new_uuid_v7(SystemClock::instance()).substr(24);
  }
  std::string url_;
};

TEST_P(RabbitWebhooksTest, DeliveriesAreRetriedThroughRabbitMqUntilTheReceiverIsUp) {
  HttpReceiver receiver;
  const std::uint16_t port = receiver.port();
  receiver.stop();
  auto [id, secret] = endpoint(owner_a_, "http://127.0.0.1:" + std::to_string(port) + "/in", {"project.created"});
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "while down");
  ASSERT_TRUE(eventually([&] {
    auto d = deliveries(owner_a_, id);
    return d.size() == 1 && d[0]["attempts"].get<int>() >= 1;
  }));
  ASSERT_TRUE(receiver.start());
  ASSERT_TRUE(receiver.wait_for(1, 30s));
  ASSERT_TRUE(eventually([&] { return deliveries(owner_a_, id)[0]["status"] == "succeeded"; }));
  ASSERT_TRUE(settled(platform()));
  ASSERT_EQ(receiver.requests().size(), 1u);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_TRUE(
      webhooks::verify(receiver.requests()[0].header("atrium-signature"), secret, receiver.requests()[0].body, now));
}

TEST_P(RabbitWebhooksTest, ReportsAndTheJobsOverviewWorkOnRabbitMq) {
  ASSERT_TRUE(platform().workers()->start_workers());
  auto created = client_->call(
      Method::post, "/v1/reports",
      Json{{"type", "audit_log"}, {"from", "2000-01-01T00:00:00Z"}, {"to", "2100-01-01T00:00:00Z"}}, owner_a_);
  ASSERT_EQ(created.status, 202) << created.body.dump();
  const std::string id = created.body.value("id", "");
  ASSERT_TRUE(eventually([&] {
    return client_->call(Method::get, "/v1/reports/" + id, std::nullopt, owner_a_).body.value("status", "") == "ready";
  }));
  auto root =
      client_->call(Method::post, "/v1/auth/token",
                    Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
  ASSERT_EQ(root.status, 200);
  auto jobs = client_->call(Method::get, "/v1/admin/jobs", std::nullopt, root.body.value("access_token", ""));
  ASSERT_EQ(jobs.status, 200) << jobs.body.dump();
  EXPECT_EQ(jobs.body["backend"], "rabbitmq");
  EXPECT_EQ(jobs.body["dead_total"], 0);
}

INSTANTIATE_TEST_SUITE_P(Rabbit, RabbitWebhooksTest,
                         ::testing::Values(IsolationCase{Backend::sqlite, tenancy::Isolation::shared},
                                           IsolationCase{Backend::postgres, tenancy::Isolation::database}),
                         isolation_case_name);

}  // namespace
}  // namespace atrium::test

namespace atrium::test {
namespace {

// Atrium's own mail through a real SMTP listener on loopback (email.smtp_url), with the tenant's settings, and
// retried while the listener refuses for a while.
class SmtpMailTest : public WebhooksApiTest {
 protected:
  void customize(Config& config) override {
    config.email.smtp_url = smtp_.url();
    config.webhooks.retry_schedule = "200ms";
    config.jobs.backoff_base_ms = 200;
  }
  smtp::Receiver smtp_;
};

TEST_P(SmtpMailTest, TheDisabledEndpointMailReachesTheOwnersOverSmtpOnceTheServerAcceptsIt) {
  HttpReceiver receiver;
  receiver.set_status(503);
  auto [id, secret] = endpoint(owner_a_, receiver.url(), {"project.created"});
  ASSERT_EQ(client_
                ->call(Method::put, "/v1/email-settings",
                       Json{{"from_name", "Alpha Billing"}, {"reply_to", "billing@alpha.test"}}, owner_a_)
                .status,
            200);
  smtp_.set_mode(smtp::Mode::transient);  // 421 at first: the mail job retries
  ASSERT_TRUE(platform().workers()->start_workers());
  project(owner_a_, "p");
  ASSERT_TRUE(eventually([&] {
    return client_->call(Method::get, "/v1/webhook-endpoints/" + id, std::nullopt, owner_a_).body.value("status", "") ==
           "disabled";
  }));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(smtp_.received().empty());
  smtp_.set_mode(smtp::Mode::accept);
  auto mails = smtp_.wait_for(1, 30s);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].mail_from, "no-reply@atrium.localhost");
  EXPECT_EQ(mails[0].recipients, std::vector<std::string>{"owner@alpha.test"});
  EXPECT_NE(mails[0].data.find("\"Alpha Billing\" <no-reply@atrium.localhost>"), std::string::npos) << mails[0].data;
  EXPECT_NE(mails[0].data.find("Reply-To: billing@alpha.test"), std::string::npos) << mails[0].data;
  EXPECT_NE(mails[0].data.find("multipart/alternative"), std::string::npos) << "text and HTML parts";
  ASSERT_TRUE(settled(platform()));
  EXPECT_EQ(smtp_.received().size(), 1u) << "the mail is sent once";
}

INSTANTIATE_TEST_SUITE_P(Isolation, SmtpMailTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
