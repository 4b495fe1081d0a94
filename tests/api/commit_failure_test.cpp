// "The entry is written in the same transaction as the change", tested under failure: the failpoint storage.commit
// (core/failpoint.hpp) lets a write transaction's body run and then fails it instead of committing. A project
// created, usage ingested and an invoice finalised under it leave nothing (not the change, not its audit entry, not
// its event, not a used invoice number), the request answers 503 problem+json, and the same request once the failure
// is gone applies once, with its entry and event. A webhook attempt whose record fails to commit leaves the delivery
// pending and its job failed, so it is sent again and then recorded. Every isolation level, both backends.
#include <gtest/gtest.h>

#include "core/failpoint.hpp"
#include "events/outbox.hpp"
#include "support/api_client.hpp"
#include "support/http_receiver.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class CommitFailureTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.webhooks.allow_private_targets = true;
    config.billing.run_cron = "";
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    owner_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    root_ = sign_in("root@atrium.test", "root-password", "");
    // Every event of the tenant reaches this endpoint as a delivery: the visible trace of an outbox row.
    auto hook = client_->call(Method::post, "/v1/webhook-endpoints",
                              Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {"*"}}}, owner_);
    ASSERT_EQ(hook.status, 201) << hook.raw_body;
    endpoint_ = hook.body.value("id", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  // Audit entries of the tenant with `action`.
  std::size_t entries(const std::string& action) {
    auto page = platform().audit->list(audit::Query{.chain_id = a_.id, .action = action});
    EXPECT_TRUE(page) << page.error().message;
    return page ? page->entries.size() : 0;
  }

  // The deliveries of events of `type` after relaying everything pending.
  std::size_t events(const std::string& type) {
    events::Relay relay(
        platform().tenant_data->platform_database(), platform().clock(),
        [&](const events::Event& e) { return platform().workers()->publish(e); }, std::chrono::seconds(1));
    EXPECT_TRUE(relay.run_once());
    auto r = client_->call(Method::get, "/v1/webhook-endpoints/" + endpoint_ + "/deliveries", std::nullopt, owner_);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    std::size_t n = 0;
    for (const auto& d : r.body.value("data", Json::array())) n += d.value("event_type", "") == type ? 1 : 0;
    return n;
  }

  static void expect_unavailable(const ApiResponse& r, const std::string& what) {
    EXPECT_EQ(r.status, 503) << what << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << what;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  std::string owner_;
  std::string root_;
  std::string endpoint_;
};

TEST_P(CommitFailureTest, AProjectIsCreatedWithItsEntryAndEventOrNotAtAll) {
  const Json body = {{"name", "p"}};
  const std::vector<std::pair<std::string, std::string>> key{{"Idempotency-Key", "create-p"}};
  {
    ScopedFailure failure("storage.commit");
    expect_unavailable(client_->call(Method::post, "/v1/projects", body, owner_, key), "POST /v1/projects");
  }
  auto listed = client_->call(Method::get, "/v1/projects", std::nullopt, owner_);
  ASSERT_EQ(listed.status, 200) << listed.raw_body;
  EXPECT_TRUE(listed.body["data"].empty());
  EXPECT_EQ(entries("project.created"), 0u);
  EXPECT_EQ(events("project.created"), 0u);

  // The same request again (its Idempotency-Key was not kept either): created once, with both.
  auto created = client_->call(Method::post, "/v1/projects", body, owner_, key);
  ASSERT_EQ(created.status, 201) << created.raw_body;
  EXPECT_FALSE(created.headers.get("Idempotent-Replayed").has_value());
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, owner_).body["data"].size(), 1u);
  EXPECT_EQ(entries("project.created"), 1u);
  EXPECT_EQ(events("project.created"), 1u);
}

TEST_P(CommitFailureTest, UsageIsRecordedOnceOrNotAtAll) {
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const Json batch = {
      {"events",
       {{{"idempotency_key", "u-1"},
         {"metric", "api.calls"},
         {"quantity", 7},
         {"timestamp", format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(now)))}}}}};
  auto total = [&] {
    const std::string range =
        "metric=api.calls&aggregation=sum&from=" +
        format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(now - 3'600'000))) +
        "&to=" + format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(now + 3'600'000)));
    auto r = client_->call(Method::get, "/v1/usage/summary?" + range, std::nullopt, owner_);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    const Json data = r.body.value("data", Json::array());
    return data.empty() ? std::int64_t{0} : data[0].value("value", std::int64_t{-1});
  };
  {
    ScopedFailure failure("storage.commit");
    expect_unavailable(client_->call(Method::post, "/v1/usage", batch, owner_), "POST /v1/usage");
  }
  EXPECT_EQ(total(), 0);
  auto sent = client_->call(Method::post, "/v1/usage", batch, owner_);
  ASSERT_EQ(sent.status, 202) << sent.raw_body;
  EXPECT_EQ(sent.body["accepted"], 1) << "the key of the failed request was kept";
  EXPECT_EQ(total(), 7);
  auto again = client_->call(Method::post, "/v1/usage", batch, owner_);
  ASSERT_EQ(again.status, 202) << again.raw_body;
  EXPECT_EQ(again.body["accepted"], 0);
  EXPECT_EQ(total(), 7);
}

TEST_P(CommitFailureTest, AnInvoiceIsFinalisedWithItsNumberAndEventOrNotAtAll) {
  const std::vector<std::pair<std::string, std::string>> in_a{{"X-Tenant-ID", a_.id}};
  auto account = client_->call(Method::put, "/v1/billing-account",
                               Json{{"legal_name", "Alpha"},
                                    {"email", "billing@alpha.test"},
                                    {"currency", "USD"},
                                    {"payment_method", "pm_card_visa"}},
                               owner_);
  ASSERT_EQ(account.status, 200) << account.raw_body;
  auto draft = client_->call(Method::post, "/v1/invoices",
                             Json{{"lines", {{{"description", "Onboarding"}, {"quantity", 1}, {"unit_amount", 5000}}}}},
                             root_, in_a);
  ASSERT_EQ(draft.status, 201) << draft.raw_body;
  const std::string id = draft.body.value("id", "");
  const std::string path = "/v1/invoices/" + id;
  {
    ScopedFailure failure("storage.commit");
    expect_unavailable(client_->call(Method::post, path + "/finalize", std::nullopt, root_, in_a), "finalize");
  }
  auto still = client_->call(Method::get, path, std::nullopt, owner_);
  ASSERT_EQ(still.status, 200) << still.raw_body;
  EXPECT_EQ(still.body.value("status", ""), "draft");
  EXPECT_TRUE(still.body["number"].is_null());
  EXPECT_EQ(entries("invoice.finalized"), 0u);
  EXPECT_EQ(events("invoice.finalized"), 0u);

  auto finalized = client_->call(Method::post, path + "/finalize", std::nullopt, root_, in_a);
  ASSERT_EQ(finalized.status, 200) << finalized.raw_body;
  const std::string number = finalized.body.value("number", "");
  EXPECT_TRUE(number.ends_with("-000001")) << number << ": the failed finalisation used up a number";
  EXPECT_EQ(entries("invoice.finalized"), 1u);
  EXPECT_EQ(events("invoice.finalized"), 1u);
}

TEST_P(CommitFailureTest, AWebhookAttemptIsRecordedOrTheDeliveryIsSentAgain) {
  HttpReceiver receiver;
  auto hook = client_->call(Method::post, "/v1/webhook-endpoints",
                            Json{{"url", "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook"},
                                 {"event_types", {"project.created"}}},
                            owner_);
  ASSERT_EQ(hook.status, 201) << hook.raw_body;
  const std::string hooked = hook.body.value("id", "");
  ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "p"}}, owner_).status, 201);
  ASSERT_EQ(events("project.created"), 1u);  // relayed: one delivery to each endpoint, two jobs

  auto delivery = [&] {
    auto r = client_->call(Method::get, "/v1/webhook-endpoints/" + hooked + "/deliveries", std::nullopt, owner_);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body.value("data", Json::array()).empty() ? Json::object() : r.body["data"][0];
  };
  auto consumer = platform().workers()->queue().consumer("webhooks");
  ASSERT_TRUE(consumer) << consumer.error().message;
  const jobs::Handler* deliver = platform().workers()->handlers().find("webhook.deliver");
  ASSERT_NE(deliver, nullptr);
  // Claims this endpoint's job (the other endpoint's goes back) and runs it on this thread, with the failure armed
  // around the handler alone when `failing` (claiming and settling the job are transactions too).
  auto run_hooked_job = [&](bool failing) -> Result<void> {
    std::vector<jobs::Delivery> others;  // held until ours is found, so the queue cannot hand them out again
    Result<void> ran = fail(Errc::not_found, "the endpoint's job was not among the first three");
    for (int i = 0; i < 3; ++i) {
      auto next = (*consumer)->next(std::chrono::seconds(5));
      if (!next || !*next) {
        ran = fail(Errc::not_found, "no webhook job");
        break;
      }
      if ((*next)->job.payload.value("delivery_id", "") != delivery().value("id", "")) {
        others.push_back(std::move(**next));
        continue;
      }
      jobs::JobContext ctx((*next)->job, platform().db(), platform().clock());
      std::optional<ScopedFailure> failure;
      if (failing) failure.emplace("storage.commit");
      ran = (*deliver)(ctx);
      failure.reset();
      EXPECT_TRUE(ran ? (*consumer)->complete(**next)
                      : (*consumer)->retry(**next, std::chrono::milliseconds(0), ran.error().message));
      break;
    }
    for (const auto& other : others) EXPECT_TRUE((*consumer)->release(other));
    return ran;
  };

  auto ran = run_hooked_job(/*failing=*/true);
  ASSERT_FALSE(ran);
  EXPECT_EQ(ran.error().code, Errc::unavailable) << ran.error().message;
  ASSERT_EQ(receiver.requests().size(), 1u);  // the receiver has it; Atrium has no record of the attempt
  EXPECT_EQ(delivery().value("status", ""), "pending");
  EXPECT_EQ(delivery().value("attempts", -1), 0);

  auto again = run_hooked_job(/*failing=*/false);
  ASSERT_TRUE(again) << again.error().message;
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);  // sent again, as the same delivery
  EXPECT_EQ(requests[1].header("Atrium-Delivery-Id"), requests[0].header("Atrium-Delivery-Id"));
  EXPECT_EQ(requests[1].header("Atrium-Delivery-Id"), delivery().value("id", ""));
  EXPECT_EQ(delivery().value("status", ""), "succeeded");
  EXPECT_EQ(delivery().value("attempts", -1), 1);
}

INSTANTIATE_TEST_SUITE_P(Isolation, CommitFailureTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
