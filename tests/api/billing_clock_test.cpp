// Billing driven by test clocks through the HTTP API, on SQLite and PostgreSQL: a trial that ends, renews and is
// cancelled by dunning (8 failed attempts at the documented times, each with a webhook event and a dunning mail),
// recovery after the payment method changes, a hard decline that is not retried, a mid-period upgrade and
// downgrade with the per-day proration rule and the credit balance, and the real-clock billing run leaving test
// clocks alone; a charge a crash left pending is settled by the next advance. Every test also checks that invoice
// numbers are TEST-INV-YYYYMM-NNNNNN (test clocks have a sequence of their own) and gap-free per month.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
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

constexpr std::int64_t k_hour = 3600;
constexpr std::int64_t k_day_seconds = 86400;
const std::vector<std::int64_t> k_retry_hours{24, 72, 120, 168, 216, 264, 336};
constexpr const char* k_billing_email = "billing@alpha.test";

// Unix seconds of an RFC 3339 time (-1 when it is not one), as text or a JSON string.
std::int64_t utc(std::string_view text) {
  auto t = parse_rfc3339(text);
  if (!t) return -1;
  return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}
std::int64_t json_seconds(const Json& value) { return value.is_string() ? utc(value.get<std::string>()) : -1; }

// ^TEST-INV-\d{6}-\d{6}$: invoices on a test clock are numbered from a sequence of their own (std::regex trips
// GCC 12's -Wmaybe-uninitialized in this build).
bool is_invoice_number(const std::string& number) {
  if (!number.starts_with("TEST-")) return false;
  const std::string s = number.substr(5);
  if (s.size() != 17 || !s.starts_with("INV-") || s[10] != '-') return false;
  for (std::size_t i = 4; i < s.size(); ++i) {
    if (i != 10 && !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// Decodes a quoted-printable body (soft line breaks and =XX escapes).
std::string decode_quoted_printable(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    if (in.compare(i + 1, 2, "\r\n") == 0) {
      i += 2;
    } else if (i + 1 < in.size() && in[i + 1] == '\n') {
      i += 1;
    } else if (i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

class BillingClockTest : public ::testing::TestWithParam<IsolationCase> {
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
    config.billing.run_cron = "";  // the tests call the billing run themselves
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    auto root =
        client_->call(Method::post, "/v1/auth/token",
                      Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
    ASSERT_EQ(root.status, 200) << root.body.dump();
    root_ = root.body.value("access_token", "");
    auto owner = client_->call(Method::post, "/v1/auth/token",
                               Json{{"grant_type", "password"},
                                    {"email", "owner@alpha.test"},
                                    {"password", "password-alpha"},
                                    {"tenant", "alpha"}});
    ASSERT_EQ(owner.status, 200) << owner.body.dump();
    owner_ = owner.body.value("access_token", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  ApiResponse owner(Method m, const std::string& path, const std::optional<Json>& body = std::nullopt) {
    return client_->call(m, path, body, owner_);
  }
  ApiResponse root(Method m, const std::string& path, const std::optional<Json>& body = std::nullopt) {
    return client_->call(m, path, body, root_, {{"X-Tenant-ID", a_.id}});
  }

  // A monthly USD plan (super admin) with no dunning policy of its own: the default, which the tests here pin
  // (TrialToCancellationByDunning takes it through every attempt).
  std::string create_plan(const std::string& code, std::int64_t base_price, int trial_days,
                          const std::string& interval = "monthly") {
    Json body{{"code", code},         {"name", "Plan " + code},   {"tier", "starter"},       {"currency", "USD"},
              {"interval", interval}, {"base_price", base_price}, {"trial_days", trial_days}};
    auto r = client_->call(Method::post, "/v1/plans", body, root_);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    EXPECT_EQ(r.body["dunning"], (Json{{"retry_schedule_hours", k_retry_hours}, {"final_action", "cancel"}}))
        << "the documented default (docs/billing.md, Dunning: Stripe's 8 tries in 2 weeks)";
    return r.body.value("id", "");
  }

  // The owner creates the billing account; the super admin puts it in test mode.
  void open_account(const std::string& payment_method) {
    auto r = owner(Method::put, "/v1/billing-account",
                   Json{{"legal_name", "Alpha Inc."},
                        {"email", k_billing_email},
                        {"currency", "USD"},
                        {"payment_method", payment_method}});
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_FALSE(r.body["test_mode"].get<bool>());
    auto denied = owner(Method::put, "/v1/billing-account", Json{{"test_mode", true}});
    EXPECT_EQ(denied.status, 403) << "only a super admin may turn test mode on: " << denied.body.dump();
    auto t = root(Method::put, "/v1/billing-account", Json{{"test_mode", true}});
    ASSERT_EQ(t.status, 200) << t.body.dump();
    EXPECT_TRUE(t.body["test_mode"].get<bool>());
    EXPECT_EQ(t.body["payment_method"], payment_method);
  }

  void set_payment_method(const std::string& payment_method) {
    auto r = owner(Method::put, "/v1/billing-account", Json{{"payment_method", payment_method}});
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_EQ(r.body["payment_method"], payment_method);
  }

  std::string create_clock(const std::string& frozen_time) {
    auto r = owner(Method::post, "/v1/test-clocks", Json{{"name", "clock"}, {"frozen_time", frozen_time}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    EXPECT_EQ(json_seconds(r.body["frozen_time"]), utc(frozen_time));
    return r.body.value("id", "");
  }

  void advance(const std::string& clock_id, const std::string& to) {
    auto r = owner(Method::post, "/v1/test-clocks/" + clock_id + "/advance", Json{{"frozen_time", to}});
    ASSERT_EQ(r.status, 200) << "advance to " << to << ": " << r.body.dump();
    EXPECT_EQ(json_seconds(r.body["frozen_time"]), utc(to));
  }

  Json subscribe(const std::string& plan, const std::string& clock_id) {
    auto r = owner(Method::post, "/v1/subscriptions", Json{{"plan", plan}, {"test_clock_id", clock_id}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body;
  }

  // A 50% `once` coupon (HALF), the billing account, a test clock at `at`, and a subscription to `plan` with it.
  void subscribe_with_half_off_once(const std::string& plan, const std::string& at, std::string& sub,
                                    std::string& clock) {
    ASSERT_EQ(client_
                  ->call(Method::post, "/v1/coupons",
                         Json{{"code", "HALF"}, {"percent_off_bps", 5000}, {"duration", "once"}}, root_)
                  .status,
              201);
    ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
    clock = create_clock(at);
    auto created =
        owner(Method::post, "/v1/subscriptions", Json{{"plan", plan}, {"coupon", "HALF"}, {"test_clock_id", clock}});
    ASSERT_EQ(created.status, 201) << created.body.dump();
    sub = created.body.value("id", "");
  }

  Json subscription(const std::string& id) {
    auto r = owner(Method::get, "/v1/subscriptions/" + id);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body;
  }

  // With payment_attempts.
  Json invoice(const std::string& id) {
    auto r = owner(Method::get, "/v1/invoices/" + id);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body;
  }

  // Oldest first.
  std::vector<Json> invoices() {
    auto r = owner(Method::get, "/v1/invoices");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    std::vector<Json> out;
    for (const auto& i : r.body.value("data", Json::array())) out.push_back(i);
    std::sort(out.begin(), out.end(), [](const Json& a, const Json& b) {
      return std::pair(json_seconds(a["created_at"]), a.value("id", "")) <
             std::pair(json_seconds(b["created_at"]), b.value("id", ""));
    });
    return out;
  }

  Json account() {
    auto r = owner(Method::get, "/v1/billing-account");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body;
  }

  // Every finalized invoice is numbered TEST-INV-YYYYMM-NNNNNN (the month it was finalized in, on its clock), and each
  // month's numbers run 1, 2, 3, ... without a gap (this test has a database of its own).
  void expect_gap_free_numbers() {
    std::map<std::string, std::vector<int>> by_month;
    for (const auto& inv : invoices()) {
      ASSERT_TRUE(inv["number"].is_string()) << inv.dump();
      const std::string number = inv["number"].get<std::string>();
      ASSERT_TRUE(is_invoice_number(number)) << number << " does not match ^TEST-INV-\\d{6}-\\d{6}$";
      const std::string month = number.substr(9, 6);
      const std::string finalized = inv.value("finalized_at", "");
      ASSERT_GE(finalized.size(), 7u) << inv.dump();
      EXPECT_EQ(month, finalized.substr(0, 4) + finalized.substr(5, 2)) << number << " was finalized at " << finalized;
      by_month[month].push_back(std::stoi(number.substr(16)));
    }
    for (auto& [month, numbers] : by_month) {
      std::sort(numbers.begin(), numbers.end());
      for (std::size_t i = 0; i < numbers.size(); ++i) {
        EXPECT_EQ(numbers[i], static_cast<int>(i) + 1) << "month " << month << ": numbers are not gap-free";
      }
    }
  }

  // The dunning mails written so far (decoded).
  std::vector<std::string> dunning_mails() {
    std::vector<std::string> out;
    for (const auto& raw : delivered_mails(tp_->config().storage.data_dir)) {
      if (raw.find("Payment failed for invoice") != std::string::npos) out.push_back(decode_quoted_printable(raw));
    }
    return out;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  std::string root_;
  std::string owner_;
};

// The event types an endpoint can get from billing (endpoint event types are exact names, or "*").
const std::vector<std::string> k_billing_events{
    "subscription.created",  "subscription.updated", "subscription.trial",  "subscription.active",
    "subscription.past_due", "subscription.paused",  "subscription.unpaid", "subscription.cancelled",
    "invoice.finalized",     "invoice.paid",         "invoice.void",        "invoice.uncollectible",
    "payment.succeeded",     "payment.failed"};

TEST_P(BillingClockTest, TrialToCancellationByDunning) {
  const std::string plan = create_plan("monthly", 4900, 14);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-01-01T00:00:00Z");
  HttpReceiver receiver;
  auto endpoint = owner(Method::post, "/v1/webhook-endpoints",
                        Json{{"url", receiver.url("/billing")}, {"event_types", k_billing_events}});
  ASSERT_EQ(endpoint.status, 201) << endpoint.body.dump();
  ASSERT_TRUE(platform().workers()->start_workers());

  // The trial: no invoice.
  const Json created = subscribe("monthly", clock);
  const std::string sub = created.value("id", "");
  EXPECT_EQ(created["status"], "trial");
  EXPECT_EQ(created["plan_id"], plan);
  EXPECT_EQ(created["test_clock_id"], clock);
  EXPECT_EQ(json_seconds(created["trial_end"]), utc("2026-01-15T00:00:00Z"));
  EXPECT_TRUE(invoices().empty());

  // The trial ends: the first period is invoiced and paid.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-01-15T12:00:00Z"));
  Json s = subscription(sub);
  EXPECT_EQ(s["status"], "active");
  EXPECT_EQ(json_seconds(s["current_period_start"]), utc("2026-01-15T00:00:00Z"));
  EXPECT_EQ(json_seconds(s["current_period_end"]), utc("2026-02-15T00:00:00Z"));
  auto list = invoices();
  ASSERT_EQ(list.size(), 1u);
  const Json first = invoice(list[0].value("id", ""));
  EXPECT_EQ(first["status"], "paid");
  EXPECT_EQ(first["billing_reason"], "subscription_cycle");
  EXPECT_EQ(first["total"], 4900);
  EXPECT_EQ(first["amount_paid"], 4900);
  EXPECT_EQ(first["amount_remaining"], 0);
  EXPECT_EQ(first["test_clock_id"], clock);
  ASSERT_EQ(first["payment_attempts"].size(), 1u);
  EXPECT_EQ(first["payment_attempts"][0]["status"], "succeeded");
  EXPECT_EQ(first["payment_attempts"][0]["amount"], 4900);

  // The card starts failing; the renewal's charge fails: past due, a retry 24 hours after the first failure.
  ASSERT_NO_FATAL_FAILURE(set_payment_method("pm_card_chargeDeclined"));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-15T12:00:00Z"));
  const std::int64_t renewal_at = utc("2026-02-15T00:00:00Z");
  EXPECT_EQ(subscription(sub)["status"], "past_due");
  list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const std::string renewal_id = list[1].value("id", "");
  Json renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["status"], "open");
  EXPECT_EQ(renewal["billing_reason"], "subscription_cycle");
  EXPECT_EQ(renewal["amount_remaining"], 4900);
  EXPECT_EQ(renewal["attempt_count"], 1);
  EXPECT_EQ(json_seconds(renewal["finalized_at"]), renewal_at);
  EXPECT_EQ(json_seconds(renewal["next_payment_attempt"]), renewal_at + 24 * k_hour) << renewal.dump();
  ASSERT_EQ(renewal["payment_attempts"].size(), 1u);
  EXPECT_EQ(renewal["payment_attempts"][0]["status"], "failed");

  // Two weeks on: 8 attempts in all at the documented times, then the subscription is cancelled.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-03-02T00:00:00Z"));
  renewal = invoice(renewal_id);
  const Json& attempts = renewal["payment_attempts"];
  ASSERT_EQ(attempts.size(), 8u) << renewal.dump();
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const Json& a = attempts[i];
    const std::int64_t expected = i == 0 ? renewal_at : renewal_at + k_retry_hours[i - 1] * k_hour;
    EXPECT_EQ(a["attempt"], static_cast<int>(i) + 1);
    EXPECT_EQ(a["status"], "failed") << a.dump();
    EXPECT_EQ(a["failure_code"], "card_declined");
    EXPECT_EQ(a["decline"], "soft");
    EXPECT_EQ(a["amount"], 4900);
    EXPECT_EQ(a["payment_method"], "pm_card_chargeDeclined");
    EXPECT_EQ(json_seconds(a["created_at"]), expected) << "attempt " << i + 1 << ": " << a.dump();
  }
  std::set<std::string> keys;
  for (const auto& a : attempts) keys.insert(a.value("idempotency_key", ""));
  EXPECT_EQ(keys.size(), 8u) << "each attempt is a charge of its own";
  EXPECT_EQ(renewal["status"], "uncollectible");
  EXPECT_EQ(renewal["attempt_count"], 8);
  EXPECT_EQ(renewal["next_payment_attempt"], nullptr);
  EXPECT_EQ(renewal["amount_paid"], 0);
  s = subscription(sub);
  EXPECT_EQ(s["status"], "cancelled");
  EXPECT_EQ(json_seconds(s["cancelled_at"]), renewal_at + 336 * k_hour);
  EXPECT_EQ(invoices().size(), 2u);

  // Webhooks: every event once, in the order it happened (event ids are time-ordered).
  constexpr std::size_t expected_events = 17;  // created, active, 2 finalized, paid, succeeded, 8 failed, past_due,
                                               // uncollectible, cancelled
  ASSERT_TRUE(receiver.wait_for(expected_events, 60s)) << receiver.requests().size() << " webhook requests";
  std::this_thread::sleep_for(1s);  // would a duplicate follow?
  std::vector<Json> events;
  std::set<std::string> ids;
  for (const auto& req : receiver.requests()) {
    events.push_back(Json::parse(req.body));
    ids.insert(events.back().value("id", ""));
  }
  EXPECT_EQ(events.size(), ids.size()) << "an event was delivered twice";
  EXPECT_EQ(events.size(), expected_events);
  std::sort(events.begin(), events.end(),
            [](const Json& a, const Json& b) { return a.value("id", "") < b.value("id", ""); });
  std::map<std::string, int> count;
  std::vector<std::string> order;  // the types the scenario is about, in order
  std::vector<Json> failures;
  const std::set<std::string> watched{"subscription.active", "payment.succeeded",     "invoice.paid",
                                      "payment.failed",      "subscription.past_due", "subscription.cancelled"};
  for (const auto& e : events) {
    const std::string type = e.value("type", "");
    ++count[type];
    if (watched.contains(type)) order.push_back(type);
    if (type == "payment.failed") failures.push_back(e);
    EXPECT_EQ(e["tenant_id"], a_.id);
  }
  EXPECT_EQ(count["subscription.created"], 1);
  EXPECT_EQ(count["subscription.active"], 1);
  EXPECT_EQ(count["invoice.finalized"], 2);
  EXPECT_EQ(count["invoice.paid"], 1);
  EXPECT_EQ(count["payment.succeeded"], 1);
  EXPECT_EQ(count["payment.failed"], 8);
  EXPECT_EQ(count["subscription.past_due"], 1);
  EXPECT_EQ(count["subscription.cancelled"], 1);
  EXPECT_EQ(count["invoice.uncollectible"], 1);
  std::string order_text;
  for (const auto& t : order) order_text += t + " ";
  ASSERT_EQ(order.size(), 13u) << order_text;
  EXPECT_EQ(order[0], "subscription.active") << order_text;
  // The first invoice is paid (invoice.paid and payment.succeeded, either first), then the renewal fails: the
  // subscription is past due after the first failure, and cancelled after the eighth.
  EXPECT_EQ(std::set<std::string>(order.begin() + 1, order.begin() + 3),
            (std::set<std::string>{"invoice.paid", "payment.succeeded"}))
      << order_text;
  EXPECT_EQ(order[3], "payment.failed") << order_text;
  EXPECT_EQ(order[4], "subscription.past_due") << order_text;
  for (std::size_t i = 5; i < 12; ++i) EXPECT_EQ(order[i], "payment.failed") << order_text;
  EXPECT_EQ(order[12], "subscription.cancelled") << order_text;
  ASSERT_EQ(failures.size(), 8u);
  for (std::size_t i = 0; i < failures.size(); ++i) {
    const Json& d = failures[i]["data"];
    EXPECT_EQ(d["invoice_id"], renewal_id);
    EXPECT_EQ(d["attempt"], static_cast<int>(i) + 1) << d.dump();
    EXPECT_EQ(d["amount"], 4900);
    EXPECT_EQ(d["failure_code"], "card_declined");
    EXPECT_FALSE(d.contains("email")) << "personal data stays out of stored event payloads: " << d.dump();
    const bool last = i + 1 == failures.size();
    EXPECT_EQ(d["final"], last) << d.dump();
    if (last) {
      EXPECT_EQ(d["next_payment_attempt"], nullptr) << d.dump();
    } else {
      EXPECT_EQ(json_seconds(d["next_payment_attempt"]), renewal_at + k_retry_hours[i] * k_hour) << d.dump();
    }
  }
  for (const auto& e : events) {
    if (e["type"] == "subscription.cancelled") {
      EXPECT_EQ(e["data"]["reason"], "payment_failed") << e.dump();
    }
  }

  // Dunning mail: one per failed attempt, to the billing account's address; the last says it was the last.
  std::vector<std::string> mails;
  ASSERT_TRUE(eventually(
      [&] {
        mails = dunning_mails();
        return mails.size() >= 8;
      },
      60s))
      << mails.size() << " dunning mails";
  ASSERT_TRUE(settled(platform(), {"email"}, 60s)) << "mail jobs still queued or running";
  mails = dunning_mails();
  EXPECT_EQ(mails.size(), 8u);
  const std::string number = renewal.value("number", "");
  int last_attempt = 0;
  std::multiset<std::int64_t> retry_times;
  for (const auto& mail : mails) {
    EXPECT_NE(mail.find("To: " + std::string(k_billing_email) + "\r\n"), std::string::npos) << mail;
    EXPECT_NE(mail.find("Subject: Payment failed for invoice " + number), std::string::npos) << mail;
    EXPECT_NE(mail.find("49.00"), std::string::npos) << mail;
    if (mail.find("This was the last attempt") != std::string::npos) {
      ++last_attempt;
      EXPECT_EQ(mail.find("We will try again at"), std::string::npos) << mail;
      continue;
    }
    const auto at = mail.find("We will try again at ");
    ASSERT_NE(at, std::string::npos) << mail;
    retry_times.insert(utc(mail.substr(at + 21, 24)));
  }
  EXPECT_EQ(last_attempt, 1) << "exactly the eighth mail says it was the last attempt";
  std::multiset<std::int64_t> documented;
  for (const auto h : k_retry_hours) documented.insert(renewal_at + h * k_hour);
  EXPECT_EQ(retry_times, documented) << "the other mails announce the documented retry times";

  expect_gap_free_numbers();
}

TEST_P(BillingClockTest, FailureAndRecoveryWhenThePaymentMethodChanges) {
  create_plan("monthly", 4900, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-01-01T00:00:00Z");
  const Json created = subscribe("monthly", clock);
  const std::string sub = created.value("id", "");
  EXPECT_EQ(created["status"], "active");
  auto list = invoices();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["status"], "paid");
  EXPECT_EQ(list[0]["billing_reason"], "subscription_create");

  ASSERT_NO_FATAL_FAILURE(set_payment_method("pm_card_chargeDeclined"));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-01T06:00:00Z"));
  EXPECT_EQ(subscription(sub)["status"], "past_due");
  list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const std::string renewal_id = list[1].value("id", "");
  Json renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["status"], "open");
  EXPECT_EQ(renewal["attempt_count"], 1);
  EXPECT_EQ(json_seconds(renewal["next_payment_attempt"]), utc("2026-02-02T00:00:00Z"));

  // A good card: the next advance, by one second, retries at once and pays.
  ASSERT_NO_FATAL_FAILURE(set_payment_method("pm_card_visa"));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-01T06:00:01Z"));
  renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["status"], "paid") << renewal.dump();
  EXPECT_EQ(renewal["amount_paid"], 4900);
  EXPECT_EQ(renewal["amount_remaining"], 0);
  EXPECT_EQ(renewal["next_payment_attempt"], nullptr);
  ASSERT_EQ(renewal["payment_attempts"].size(), 2u) << renewal.dump();
  EXPECT_EQ(renewal["payment_attempts"][0]["status"], "failed");
  EXPECT_EQ(renewal["payment_attempts"][1]["status"], "succeeded");
  EXPECT_EQ(renewal["payment_attempts"][1]["payment_method"], "pm_card_visa");
  EXPECT_LE(json_seconds(renewal["payment_attempts"][1]["created_at"]), utc("2026-02-01T06:00:01Z"))
      << "the retry is made at once, not at the scheduled time";
  EXPECT_EQ(subscription(sub)["status"], "active");

  // Past the time the next retry would have been: nothing more.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-20T00:00:00Z"));
  renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["payment_attempts"].size(), 2u);
  EXPECT_EQ(renewal["attempt_count"], 2);
  EXPECT_EQ(renewal["status"], "paid");
  EXPECT_EQ(invoices().size(), 2u);

  // The next month renews normally.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-03-01T12:00:00Z"));
  const Json s = subscription(sub);
  EXPECT_EQ(s["status"], "active");
  EXPECT_EQ(json_seconds(s["current_period_end"]), utc("2026-04-01T00:00:00Z"));
  list = invoices();
  ASSERT_EQ(list.size(), 3u);
  const Json march = invoice(list[2].value("id", ""));
  EXPECT_EQ(march["status"], "paid");
  EXPECT_EQ(march["amount_paid"], 4900);
  EXPECT_EQ(json_seconds(march["period_start"]), utc("2026-03-01T00:00:00Z"));
  EXPECT_EQ(march["payment_attempts"].size(), 1u);

  expect_gap_free_numbers();
}

TEST_P(BillingClockTest, AHardDeclineIsNotRetriedAndTheFinalActionWaitsForTheDunningWindow) {
  create_plan("monthly", 4900, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-01-01T00:00:00Z");
  const std::string sub = subscribe("monthly", clock).value("id", "");

  ASSERT_NO_FATAL_FAILURE(set_payment_method("pm_card_chargeDeclinedLostCard"));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-01T01:00:00Z"));
  const std::int64_t renewal_at = utc("2026-02-01T00:00:00Z");
  EXPECT_EQ(subscription(sub)["status"], "past_due");
  auto list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const std::string renewal_id = list[1].value("id", "");
  Json renewal = invoice(renewal_id);
  ASSERT_EQ(renewal["payment_attempts"].size(), 1u);
  EXPECT_EQ(renewal["payment_attempts"][0]["failure_code"], "lost_card");
  EXPECT_EQ(renewal["payment_attempts"][0]["decline"], "hard");

  // 13 days on: still the one attempt.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-14T00:00:00Z"));
  renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["payment_attempts"].size(), 1u) << renewal.dump();
  EXPECT_EQ(renewal["attempt_count"], 1);
  EXPECT_EQ(renewal["status"], "open");
  EXPECT_EQ(subscription(sub)["status"], "past_due");

  // After the dunning window (14 days after the failure): the final action.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-16T00:00:00Z"));
  renewal = invoice(renewal_id);
  EXPECT_EQ(renewal["payment_attempts"].size(), 1u) << renewal.dump();
  EXPECT_EQ(renewal["attempt_count"], 1);
  EXPECT_EQ(renewal["status"], "uncollectible");
  EXPECT_EQ(renewal["next_payment_attempt"], nullptr);
  const Json s = subscription(sub);
  EXPECT_EQ(s["status"], "cancelled");
  EXPECT_EQ(json_seconds(s["cancelled_at"]), renewal_at + 14 * k_day_seconds);

  expect_gap_free_numbers();
}

TEST_P(BillingClockTest, MidPeriodUpgradeAndDowngradeAreProratedByTheDay) {
  create_plan("plan-a", 10000, 0);
  const std::string plan_b = create_plan("plan-b", 20000, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-04-01T00:00:00Z");
  const std::string sub = subscribe("plan-a", clock).value("id", "");
  ASSERT_EQ(invoices().size(), 1u);

  // April 16 at 10:00 of a 30-day period: 14 days and 14 hours remain, 14 whole days (the seed's differenceInDays).
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-04-16T10:00:00Z"));
  auto preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-b");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["credit"], 4667);  // 10000 * 14 / 30
  EXPECT_EQ(preview.body["charge"], 9333);  // 20000 * 14 / 30
  EXPECT_EQ(preview.body["net"], 4666);
  EXPECT_EQ(preview.body["proration_mode"], "daily");
  ASSERT_TRUE(preview.body["invoice"].is_object()) << preview.body.dump();
  EXPECT_EQ(preview.body["invoice"]["total"], 4666);
  EXPECT_EQ(invoices().size(), 1u) << "a preview changes nothing";

  auto changed = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-b"}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  EXPECT_EQ(changed.body["plan_id"], plan_b);
  EXPECT_EQ(changed.body["status"], "active");
  auto list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const Json upgrade = invoice(list[1].value("id", ""));
  EXPECT_EQ(upgrade["billing_reason"], "subscription_update");
  ASSERT_EQ(upgrade["lines"].size(), 2u) << upgrade.dump();
  EXPECT_EQ(list[1]["lines"], upgrade["lines"]) << "the list carries every invoice's lines";
  EXPECT_EQ(list[0]["lines"].size(), 1u);
  EXPECT_EQ(json_seconds(upgrade["due_at"]), utc("2026-04-16T10:00:00Z")) << "billing.days_until_due is 0";
  EXPECT_EQ(upgrade["lines"][0]["amount"], -4667);
  EXPECT_EQ(upgrade["lines"][1]["amount"], 9333);
  EXPECT_TRUE(upgrade["lines"][0]["proration"].get<bool>());
  EXPECT_TRUE(upgrade["lines"][1]["proration"].get<bool>());
  EXPECT_EQ(upgrade["total"], 4666);
  EXPECT_EQ(upgrade["status"], "paid");
  EXPECT_EQ(upgrade["amount_paid"], 4666);
  EXPECT_EQ(json_seconds(upgrade["finalized_at"]), utc("2026-04-16T10:00:00Z"));
  EXPECT_EQ(account()["credit_balance"], 0);

  // A downgrade on day 22 (9 of 30 days remain): 6000 back, 3000 charged, the net 3000 to the credit balance.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-04-22T00:00:00Z"));
  preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-a");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["credit"], 6000);
  EXPECT_EQ(preview.body["charge"], 3000);
  EXPECT_EQ(preview.body["net"], -3000);
  changed = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-a"}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  list = invoices();
  ASSERT_EQ(list.size(), 3u);
  const Json downgrade = invoice(list[2].value("id", ""));
  EXPECT_EQ(downgrade["total"], -3000);
  EXPECT_EQ(downgrade["credit_created"], 3000);
  EXPECT_EQ(downgrade["amount_due"], 0);
  EXPECT_EQ(downgrade["status"], "paid");
  EXPECT_TRUE(downgrade["payment_attempts"].empty()) << "nothing to charge";
  EXPECT_EQ(account()["credit_balance"], 3000);

  // The renewal uses the credit.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-05-01T12:00:00Z"));
  list = invoices();
  ASSERT_EQ(list.size(), 4u);
  const Json may = invoice(list[3].value("id", ""));
  EXPECT_EQ(may["billing_reason"], "subscription_cycle");
  EXPECT_EQ(may["subtotal"], 10000);
  EXPECT_EQ(may["total"], 10000);
  EXPECT_EQ(may["credit_applied"], 3000);
  EXPECT_EQ(may["amount_due"], 7000);
  EXPECT_EQ(may["amount_paid"], 7000);
  EXPECT_EQ(may["status"], "paid");
  ASSERT_EQ(may["payment_attempts"].size(), 1u);
  EXPECT_EQ(may["payment_attempts"][0]["amount"], 7000);
  EXPECT_EQ(account()["credit_balance"], 0);
  EXPECT_EQ(subscription(sub)["status"], "active");

  expect_gap_free_numbers();
}

// Stripe's per-change habits: a preview's proration_date sent back with the change gives the previewed amounts
// however much later the change is made; proration_behavior none changes the plan without invoicing a proration, and
// on an interval change bills the new period without crediting the unused time; create_prorations is refused.
TEST_P(BillingClockTest, ProrationDateAndBehaviorAreChosenPerChange) {
  create_plan("plan-a", 10000, 0);
  const std::string plan_b = create_plan("plan-b", 20000, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-04-01T00:00:00Z");
  const std::string sub = subscribe("plan-a", clock).value("id", "");

  // Previewed on April 16 at 00:00 (15 of 30 days left): credit 5000, charge 10000.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-04-16T00:00:00Z"));
  auto preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-b");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["net"], 5000);
  const std::string date = preview.body["proration_date"];
  EXPECT_EQ(utc(date), utc("2026-04-16T00:00:00Z"));
  // Made three days later with that date: the previewed amounts, not 12 days' worth (4000 net).
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-04-19T00:00:00Z"));
  EXPECT_EQ(owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-b").body["net"], 4000);
  auto again = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-b&proration_date=" + date);
  EXPECT_EQ(again.body["net"], 5000) << again.body.dump();
  EXPECT_EQ(again.body["invoice"]["total"], preview.body["invoice"]["total"]);
  // Outside the period, or in the future: 400, nothing changes.
  for (const char* bad : {"2026-03-31T23:59:59Z", "2026-04-20T00:00:00Z"}) {
    auto r = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-b"}, {"proration_date", bad}});
    EXPECT_EQ(r.status, 400) << bad << " " << r.body.dump();
  }
  auto refused = owner(Method::patch, "/v1/subscriptions/" + sub,
                       Json{{"plan", "plan-b"}, {"proration_behavior", "create_prorations"}});
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.value("detail", "").find("create_prorations"), std::string::npos) << refused.body.dump();
  ASSERT_EQ(invoices().size(), 1u);

  auto changed = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-b"}, {"proration_date", date}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  auto list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const Json upgrade = invoice(list[1].value("id", ""));
  EXPECT_EQ(upgrade["total"], preview.body["invoice"]["total"]);
  EXPECT_EQ(upgrade["lines"][0]["amount"], -5000);
  EXPECT_EQ(upgrade["lines"][1]["amount"], 10000);
  EXPECT_EQ(json_seconds(upgrade["lines"][0]["period_start"]), utc("2026-04-16T00:00:00Z"));

  // Back to plan-a with proration_behavior none: the plan changes, no invoice, no credit.
  auto plain =
      owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-a"}, {"proration_behavior", "none"}});
  ASSERT_EQ(plain.status, 200) << plain.body.dump();
  EXPECT_NE(plain.body["plan_id"], plan_b);
  EXPECT_EQ(invoices().size(), 2u);
  EXPECT_EQ(account()["credit_balance"], 0);

  // An interval change with none: the new annual period in full, no "Unused time" line.
  create_plan("plan-y", 100000, 0, "annual");
  auto yearly = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=plan-y&proration_behavior=none");
  ASSERT_EQ(yearly.status, 200) << yearly.body.dump();
  EXPECT_EQ(yearly.body["credit"], 0);
  EXPECT_EQ(yearly.body["invoice"]["total"], 100000);
  auto to_yearly =
      owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "plan-y"}, {"proration_behavior", "none"}});
  ASSERT_EQ(to_yearly.status, 200) << to_yearly.body.dump();
  list = invoices();
  ASSERT_EQ(list.size(), 3u);
  const Json annual = invoice(list[2].value("id", ""));
  ASSERT_EQ(annual["lines"].size(), 1u) << annual.dump();
  EXPECT_EQ(annual["lines"][0]["kind"], "subscription");
  EXPECT_EQ(annual["total"], 100000);
  EXPECT_EQ(json_seconds(to_yearly.body["current_period_start"]), utc("2026-04-19T00:00:00Z"));

  expect_gap_free_numbers();
}

// Issue 25: a once coupon, and an interval change at the very second of subscribing. The new period is invoiced at
// full price, so changes within it are prorated at full price too: whether the current period's invoice carried
// the coupon is recorded when the period starts, not guessed by comparing the coupon's start with the period's.
TEST_P(BillingClockTest, AOnceCouponDoesNotDiscountANewPeriodStartingInTheSameSecond) {
  create_plan("annual-a", 120000, 0, "annual");
  create_plan("monthly-m", 10000, 0);
  create_plan("monthly-c", 2000, 0);
  std::string sub, clock;
  ASSERT_NO_FATAL_FAILURE(subscribe_with_half_off_once("annual-a", "2027-01-10T00:00:00Z", sub, clock));
  auto list = invoices();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["total"], 60000);
  // Same second: the unused annual period (what was paid, 600.00) back, a full-price month charged.
  auto monthly = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "monthly-m"}});
  ASSERT_EQ(monthly.status, 200) << monthly.body.dump();
  list = invoices();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["total"], -50000) << list[1].dump();

  // 2027-01-26: 15 of the period's 31 days remain, at full price.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2027-01-26T00:00:00Z"));
  auto preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=monthly-c");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["credit"], 4839);
  EXPECT_EQ(preview.body["charge"], 968);
  EXPECT_EQ(preview.body["net"], -3871);
  auto changed = owner(Method::patch, "/v1/subscriptions/" + sub, Json{{"plan", "monthly-c"}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  list = invoices();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2]["total"], -3871) << list[2].dump();
  // The renewal is at full price too.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2027-02-10T00:00:01Z"));
  list = invoices();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[3]["subtotal"], 2000);
  EXPECT_EQ(list[3]["discount"], 0);
  expect_gap_free_numbers();
}

// The other side of the same comparison: a once coupon first used when a trial ends discounts that first paid
// period, so a change within it is prorated net of the coupon (the comparison took the coupon's start, before the
// trial, for "another period" and prorated at full price).
TEST_P(BillingClockTest, AOnceCouponUsedAtTheEndOfATrialDiscountsChangesWithinThatPeriod) {
  create_plan("trial-t", 10000, 14);
  create_plan("upper-u", 20000, 0);
  std::string sub, clock;
  ASSERT_NO_FATAL_FAILURE(subscribe_with_half_off_once("trial-t", "2027-03-01T00:00:00Z", sub, clock));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2027-03-15T00:00:00Z"));
  auto list = invoices();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["total"], 5000) << "the first paid period carries the once coupon";
  // 2027-03-31: 15 of the period's 31 days remain; the period was paid at half price.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2027-03-31T00:00:00Z"));
  auto preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=upper-u");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["credit"], 2419);
  EXPECT_EQ(preview.body["charge"], 4839);
  EXPECT_EQ(preview.body["net"], 2420);
  // The next period is at full price.
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2027-04-15T00:00:01Z"));
  list = invoices();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["total"], 10000);
  // A second into the 30-day period, 29 whole days remain: credit and charge at full price (half price would
  // credit 4833).
  preview = owner(Method::get, "/v1/subscriptions/" + sub + "/preview?plan=upper-u");
  ASSERT_EQ(preview.status, 200) << preview.body.dump();
  EXPECT_EQ(preview.body["credit"], 9667);   // 10000 * 29 / 30
  EXPECT_EQ(preview.body["charge"], 19333);  // 20000 * 29 / 30
}

TEST_P(BillingClockTest, TheRealClockBillingRunLeavesTestClocksAlone) {
  create_plan("monthly", 4900, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  // Long past in real time: everything on this clock would be due for the real-clock run.
  const std::string clock = create_clock("2020-01-01T00:00:00Z");
  const std::string sub = subscribe("monthly", clock).value("id", "");
  ASSERT_NO_FATAL_FAILURE(set_payment_method("pm_card_chargeDeclined"));
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2020-02-01T01:00:00Z"));
  const Json before = subscription(sub);
  EXPECT_EQ(before["status"], "past_due");
  EXPECT_EQ(json_seconds(before["current_period_end"]), utc("2020-03-01T00:00:00Z"));
  auto list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const std::string open_id = list[1].value("id", "");
  EXPECT_EQ(json_seconds(invoice(open_id)["next_payment_attempt"]), utc("2020-02-02T00:00:00Z"));

  auto stats = platform().billing->run();
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->renewed, 0);
  EXPECT_EQ(stats->invoices, 0);
  EXPECT_EQ(stats->charged, 0);
  EXPECT_EQ(stats->failed, 0);
  EXPECT_EQ(stats->retried, 0);
  EXPECT_EQ(stats->cancelled, 0);

  const Json after = subscription(sub);
  EXPECT_EQ(after["status"], "past_due");
  EXPECT_EQ(after["current_period_start"], before["current_period_start"]);
  EXPECT_EQ(after["current_period_end"], before["current_period_end"]) << "the subscription did not renew";
  EXPECT_EQ(invoices().size(), 2u);
  const Json open = invoice(open_id);
  EXPECT_EQ(open["attempt_count"], 1) << "no dunning retry either";
  EXPECT_EQ(open["payment_attempts"].size(), 1u);
  EXPECT_EQ(json_seconds(open["next_payment_attempt"]), utc("2020-02-02T00:00:00Z"));
  const Json c = owner(Method::get, "/v1/test-clocks/" + clock).body;
  EXPECT_EQ(json_seconds(c["frozen_time"]), utc("2020-02-01T01:00:00Z"));

  expect_gap_free_numbers();
}

// A crash between the provider's charge and recording its outcome leaves the attempt pending; on a test clock the
// next advance settles it with the same idempotency key (the real-clock run skips test-clock invoices), so the
// charge the customer already paid is recorded once, and nothing is charged twice.
TEST_P(BillingClockTest, AChargeACrashLeftPendingIsSettledByTheNextAdvance) {
  create_plan("monthly", 4900, 0);
  ASSERT_NO_FATAL_FAILURE(open_account("pm_card_visa"));
  const std::string clock = create_clock("2026-01-01T00:00:00Z");
  const std::string sub = subscribe("monthly", clock).value("id", "");
  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-01T01:00:00Z"));
  auto list = invoices();
  ASSERT_EQ(list.size(), 2u);
  const std::string renewal_id = list[1].value("id", "");
  const Json charged = invoice(renewal_id);
  ASSERT_EQ(charged["status"], "paid");
  ASSERT_EQ(charged["payment_attempts"].size(), 1u);
  const std::string reference = charged["payment_attempts"][0].value("reference", "");
  ASSERT_FALSE(reference.empty());

  // What the renewal's transaction committed before the crash: the open invoice and its pending attempt (the
  // provider's ledger has the charge).
  constexpr tenancy::TenantStatement unrecord_attempt{
      "test_billing_unrecord_attempt",
      "UPDATE payment_attempts SET status = 'pending', failure_code = '', decline = '', message = '', reference = "
      "'', completed_at = NULL WHERE tenant_id = $1 AND invoice_id = $2"};
  constexpr tenancy::TenantStatement reopen_invoice{
      "test_billing_reopen_invoice",
      "UPDATE invoices SET status = 'open', amount_paid = 0, amount_remaining = amount_due, paid_at = NULL, "
      "next_payment_attempt = NULL WHERE tenant_id = $1 AND id = $2"};
  ASSERT_TRUE(
      platform().tenant_data->transact_control_plane(a_.id, [&](tenancy::TenantTransaction& tx) -> Result<void> {
        for (const auto* st : {&unrecord_attempt, &reopen_invoice}) {
          auto r = tx.execute(*st, {storage::Value(renewal_id)});
          if (!r) return std::unexpected(r.error());
          if (r->affected_rows != 1) return fail(Errc::internal, std::string(st->name) + " changed no row");
        }
        return {};
      }));
  const Json pending = invoice(renewal_id);
  ASSERT_EQ(pending["status"], "open");
  ASSERT_EQ(pending["payment_attempts"][0]["status"], "pending");

  ASSERT_NO_FATAL_FAILURE(advance(clock, "2026-02-02T00:00:00Z"));
  const Json settled = invoice(renewal_id);
  EXPECT_EQ(settled["status"], "paid") << settled.dump();
  EXPECT_EQ(settled["amount_paid"], 4900);
  EXPECT_EQ(settled["attempt_count"], 1);
  ASSERT_EQ(settled["payment_attempts"].size(), 1u) << "no second charge";
  EXPECT_EQ(settled["payment_attempts"][0]["status"], "succeeded") << settled.dump();
  EXPECT_EQ(settled["payment_attempts"][0]["reference"], reference) << "the provider's first charge, by its key";
  EXPECT_EQ(subscription(sub)["status"], "active");
  expect_gap_free_numbers();
}

// Every isolation level: billing lives in the control plane, but audit entries, events and webhook deliveries of a
// tenant with its own store take the outbox path, which the shared level never does.
INSTANTIATE_TEST_SUITE_P(Backends, BillingClockTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
