// Bugs the billing property tests (property_test.cpp) found, each pinned by the smallest case that shows it, on
// SQLite and PostgreSQL:
// - a change within the short first period a billing anchor day makes was prorated over that short period at the
//   full price, crediting (and charging) several times what the period cost;
// - a hard decline after the dunning window had ended left the final action to the next billing run, so a run
//   repeated at the same moment still changed things;
// - an unpaid subscription paid by a dunning retry of the billing run had its new period renewed only by the next
//   run, and that renewal billed metered usage for an empty period whose start the next period shares, so every
//   later renewal failed on usage_billings' unique key.
#include <gtest/gtest.h>

#include "api/billing_input.hpp"
#include "billing/billing.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using billing::Instant;
using storage::Backend;

constexpr std::chrono::seconds k_one_day{86400};

Instant at(const char* rfc3339) { return std::chrono::floor<std::chrono::seconds>(*parse_rfc3339(rfc3339)); }

class BillingMoneyRegressionTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = TestPlatform::create(GetParam());
    gateway_ = billing::simulated_gateway(tp_->platform().db(), clock_);
    billing_ =
        std::make_unique<billing::Billing>(tp_->platform().db(), *tp_->platform().tenant_data, *tp_->platform().audit,
                                           clock_, *gateway_, billing::Settings{}, nullptr);
    billing_->set_usage_meter(
        [this](tenancy::TenantTransaction&, const std::string& metric, Instant from,
               Instant to) -> Result<std::int64_t> {
          std::int64_t q = 0;
          for (const auto& [when, quantity] : usage_) {
            if (metric == "calls" && when >= from && when < to) q += quantity;
          }
          return q;
        },
        35 * k_one_day);
  }

  billing::Billing& b() { return *billing_; }

  void set_time(Instant t) {
    const auto now = clock_.now();
    const Instant target = t;
    ASSERT_GE(target, now);
    clock_.advance(target - now);
  }
  Instant now_s() const { return std::chrono::floor<std::chrono::seconds>(clock_.now()); }

  void plan(const Json& body) {
    Json p = body;
    p["name"] = "Plan " + body["code"].get<std::string>();
    p["tier"] = "starter";
    p["currency"] = "USD";
    auto input = api::billing_input::new_plan(p);
    ASSERT_TRUE(input) << input.error().message;
    auto r = b().create_plan(*input, who_);
    ASSERT_TRUE(r) << r.error().message;
  }

  std::string tenant(const std::string& slug, const std::string& method, const std::string& proration = "daily") {
    auto t = create_test_tenant(tp_->platform(), slug, tenancy::Isolation::shared);
    auto a = b().put_account(t.id,
                             {.legal_name = slug,
                              .email = "billing@" + slug + ".test",
                              .currency = "USD",
                              .payment_method = method,
                              .proration = proration},
                             false, who_);
    EXPECT_TRUE(a) << a.error().message;
    return t.id;
  }

  std::vector<billing::Invoice> invoices(const std::string& tenant) {
    auto list = b().list_invoices(tenant, "");
    EXPECT_TRUE(list);
    auto out = list.value_or(std::vector<billing::Invoice>{});
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
    return out;
  }

  static void expect_nothing_done(const billing::RunStats& s) {
    EXPECT_EQ(s.renewed, 0);
    EXPECT_EQ(s.invoices, 0);
    EXPECT_EQ(s.charged, 0);
    EXPECT_EQ(s.failed, 0);
    EXPECT_EQ(s.retried, 0);
    EXPECT_EQ(s.cancelled, 0);
  }

  ManualClock clock_{parse_rfc3339("2027-01-10T00:00:00Z").value()};
  audit::Context who_{.actor_type = audit::ActorType::system, .actor_id = "test"};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<billing::PaymentGateway> gateway_;
  std::unique_ptr<billing::Billing> billing_;
  std::vector<std::pair<Instant, std::int64_t>> usage_;
};

// Subscribed on 2027-01-10 with billing_anchor_day 15: the first period runs to Jan 15 and is invoiced as 5 of the
// 31 days of Dec 15 - Jan 15 (16.13). A change on Jan 12 is prorated over that same full period (3 of 31 days
// left): 9.68 back, 1.94 charged. Measured over the short period itself (3 of 5 days) it credited 60.00.
TEST_P(BillingMoneyRegressionTest, AChangeInAShortFirstPeriodIsProratedOverTheFullPeriodItWasInvoicedFrom) {
  for (const std::string mode : {"daily", "per_second"}) {
    SCOPED_TRACE(mode);
    // Jan 10 and Feb 10: both 5 days before the 15th of a 31-day period.
    set_time(at(mode == "daily" ? "2027-01-10T00:00:00Z" : "2027-02-10T00:00:00Z"));
    plan({{"code", "a-" + mode}, {"interval", "monthly"}, {"base_price", 10000}});
    plan({{"code", "c-" + mode}, {"interval", "monthly"}, {"base_price", 2000}});
    plan({{"code", "y-" + mode}, {"interval", "annual"}, {"base_price", 50000}});
    const std::string t = tenant(mode == "daily" ? "anchor-daily" : "anchor-seconds", "pm_card_visa", mode);
    const Instant start = now_s();
    auto sub = b().create_subscription(t, {.plan = "a-" + mode, .billing_anchor_day = 15}, who_);
    ASSERT_TRUE(sub) << sub.error().message;
    EXPECT_EQ(sub->current_period_end, start + 5 * k_one_day);
    auto first = invoices(t);
    ASSERT_EQ(first.size(), 1u);
    ASSERT_EQ(first[0].totals.total, 1613) << "10000 x 5 / 31";

    set_time(start + 2 * k_one_day);
    auto preview = b().preview_change(t, sub->id, {.plan = "c-" + mode});
    ASSERT_TRUE(preview) << preview.error().message;
    EXPECT_EQ((*preview)["credit"], 968) << "10000 x 3 / 31, not 10000 x 3 / 5";
    EXPECT_EQ((*preview)["charge"], 194) << "2000 x 3 / 31";
    EXPECT_EQ((*preview)["net"], -774);
    EXPECT_LE((*preview)["credit"].get<std::int64_t>(), first[0].totals.total) << "never more back than was paid";
    // Another interval: the same unused part is credited, and a new annual period starts now.
    auto yearly = b().preview_change(t, sub->id, {.plan = "y-" + mode});
    ASSERT_TRUE(yearly) << yearly.error().message;
    EXPECT_EQ((*yearly)["credit"], 968);
    EXPECT_EQ((*yearly)["charge"], 50000);
    ASSERT_TRUE(b().change_subscription(t, sub->id, {.plan = "c-" + mode}, who_));
    auto all = invoices(t);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].totals.total, -774);
    auto account = b().get_account(t);
    ASSERT_TRUE(account);
    EXPECT_EQ(account->credit_balance, 774);
    ASSERT_TRUE(b().cancel(t, sub->id, {}, who_));
  }
}

// The card fails softly at subscribing (a retry is due a day later); the run comes two days later, after the card
// was replaced by one reported lost: the retry is declined hard and the one-day window has ended, so the final
// action (cancel) is taken in that run. A second run at the same moment finds nothing to do.
TEST_P(BillingMoneyRegressionTest, AHardDeclineAfterTheDunningWindowEndsItInTheSameRun) {
  plan({{"code", "d"},
        {"interval", "monthly"},
        {"base_price", 4900},
        {"dunning", {{"retry_schedule_hours", {24}}, {"final_action", "cancel"}}}});
  const std::string t = tenant("hard", "pm_card_chargeDeclined");
  auto sub = b().create_subscription(t, {.plan = "d"}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  auto first = invoices(t);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].status, "open");
  ASSERT_EQ(first[0].next_payment_attempt, now_s() + std::chrono::hours(24));
  set_time(now_s() + 2 * k_one_day);
  ASSERT_TRUE(b().put_account(t, {.payment_method = "pm_card_chargeDeclinedLostCard"}, false, who_));

  auto run = b().run();
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_EQ(run->retried, 1);
  EXPECT_EQ(run->failed, 1);
  EXPECT_EQ(run->cancelled, 1) << "the final action is not left for the next run";
  auto inv = b().get_invoice(t, first[0].id);
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->status, "uncollectible");
  EXPECT_FALSE(inv->next_payment_attempt.has_value());
  auto s = b().get_subscription(t, sub->id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, billing::Status::cancelled);
  EXPECT_EQ(s->cancelled_at, now_s());

  auto again = b().run();
  ASSERT_TRUE(again) << again.error().message;
  expect_nothing_done(*again);
}

// A metered plan whose dunning ends in `unpaid`. Once the invoice is paid (a new card, retried by the run) after
// the period ended, the subscription starts a new period at once: the same run invoices it, without usage for the
// empty period it restarted with, and the renewals after it work (they failed on usage_billings' unique key).
TEST_P(BillingMoneyRegressionTest, AnUnpaidSubscriptionPaidByTheRunIsRenewedInThatRunAndAfterwards) {
  plan({{"code", "m"},
        {"interval", "monthly"},
        {"base_price", 1000},
        {"metered_prices", {{{"metric", "calls"}, {"model", "per_unit"}, {"unit_amount", 2}}}},
        {"dunning", {{"retry_schedule_hours", {24}}, {"final_action", "unpaid"}}}});
  const std::string t = tenant("unpaid", "pm_card_chargeDeclined");
  auto sub = b().create_subscription(t, {.plan = "m"}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  set_time(now_s() + std::chrono::hours(25));
  ASSERT_TRUE(b().run());
  auto s = b().get_subscription(t, sub->id);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, billing::Status::unpaid);

  // Past the period's end: no renewal while unpaid. Then a good card: the run retries and is paid.
  set_time(at("2027-02-20T00:00:00Z"));
  auto idle = b().run();
  ASSERT_TRUE(idle);
  expect_nothing_done(*idle);
  ASSERT_TRUE(b().put_account(t, {.payment_method = "pm_card_visa"}, false, who_));
  auto paid = b().run();
  ASSERT_TRUE(paid) << paid.error().message;
  EXPECT_EQ(paid->retried, 1);
  EXPECT_EQ(paid->renewed, 1) << "the new period that starts at the payment is invoiced by the same run";
  EXPECT_EQ(paid->charged, 2);
  auto again = b().run();
  ASSERT_TRUE(again);
  expect_nothing_done(*again);
  s = b().get_subscription(t, sub->id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, billing::Status::active);
  EXPECT_EQ(s->current_period_start, at("2027-02-20T00:00:00Z"));
  EXPECT_EQ(s->current_period_end, at("2027-03-20T00:00:00Z"));

  // Usage in the new period, billed by its renewal; and the one after.
  usage_.emplace_back(at("2027-03-01T00:00:00Z"), 300);
  set_time(at("2027-03-20T00:00:01Z"));
  auto renewed = b().run();
  ASSERT_TRUE(renewed) << renewed.error().message;
  EXPECT_EQ(renewed->renewed, 1);
  set_time(at("2027-04-20T00:00:01Z"));
  auto next = b().run();
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->renewed, 1);
  auto all = invoices(t);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].billing_reason, "subscription_cycle");
  EXPECT_EQ(all[1].totals.subtotal, 1000) << "no usage line for the empty period";
  auto march = b().get_invoice(t, all[2].id);
  ASSERT_TRUE(march);
  ASSERT_EQ(march->lines.size(), 2u);
  EXPECT_EQ(march->lines[1].kind, billing::LineKind::usage);
  EXPECT_EQ(march->lines[1].amount, 600);
  EXPECT_EQ(march->lines[1].period_start, at("2027-02-20T00:00:00Z"));
  EXPECT_EQ(all[3].totals.subtotal, 1000);
}

INSTANTIATE_TEST_SUITE_P(Backends, BillingMoneyRegressionTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(storage::backend_name(info.param));
                         });

}  // namespace
}  // namespace atrium::test
