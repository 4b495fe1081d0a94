// The billing engine against real databases (SQLite and PostgreSQL) with an injected clock: the billing run renews
// each period once with gap-free invoice numbers; a run that crashes after the provider charged but before the
// outcome was recorded is resumed without a second charge; random plans, dates and sequences of changes keep
// every invoice's arithmetic and the account's money balanced against an independent reference.
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <set>
#include <thread>

#include "billing/billing.hpp"
#include "billing/calendar.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using billing::Instant;
using storage::Backend;

Instant instant(const char* rfc3339) { return std::chrono::floor<std::chrono::seconds>(*parse_rfc3339(rfc3339)); }

std::chrono::system_clock::time_point tp(Instant t) { return t; }

// Rounds a / b half away from zero — written here again, independently of billing::round_div.
std::int64_t reference_round(__int128 a, __int128 b) {
  const bool negative = (a < 0) != (b < 0);
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  __int128 q = a / b;
  if ((a % b) * 2 >= b) q += 1;
  return static_cast<std::int64_t>(negative ? -q : q);
}

// A provider that charges and then times out: the money moved but the caller learns nothing (unknown outcome).
class TimingOutGateway final : public billing::PaymentGateway {
 public:
  explicit TimingOutGateway(billing::PaymentGateway& inner) : inner_(inner) {}
  std::string_view name() const override { return inner_.name(); }
  bool accepts(std::string_view m) const override { return inner_.accepts(m); }
  Result<billing::ChargeResult> charge(const billing::ChargeRequest& r) override {
    auto out = inner_.charge(r);
    if (timing_out) return fail(Errc::unavailable, "timed out");
    return out;
  }
  Result<std::string> refund(const billing::RefundRequest& r) override { return inner_.refund(r); }
  bool timing_out = false;

 private:
  billing::PaymentGateway& inner_;
};

// A provider that charges (through the real simulated gateway) and then "crashes" before the caller records the
// outcome, as a process killed at that moment would.
class CrashingGateway final : public billing::PaymentGateway {
 public:
  explicit CrashingGateway(billing::PaymentGateway& inner) : inner_(inner) {}
  std::string_view name() const override { return inner_.name(); }
  bool accepts(std::string_view m) const override { return inner_.accepts(m); }
  Result<billing::ChargeResult> charge(const billing::ChargeRequest& r) override { return inner_.charge(r); }
  std::vector<Result<billing::ChargeResult>> charge_many(std::span<const billing::ChargeRequest> r) override {
    auto out = inner_.charge_many(r);
    if (crash_after_calls >= 0 && ++calls > crash_after_calls) throw std::runtime_error("simulated crash");
    return out;
  }
  Result<std::string> refund(const billing::RefundRequest& r) override { return inner_.refund(r); }
  int crash_after_calls = -1;
  int calls = 0;

 private:
  billing::PaymentGateway& inner_;
};

class BillingServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = TestPlatform::create(GetParam());
    sim_ = billing::simulated_gateway(platform().db(), clock_);
    crashing_ = std::make_unique<CrashingGateway>(*sim_);
    make_billing(500);
  }

  void make_billing(int batch) {
    billing::Settings settings;
    settings.run_batch = batch;
    billing_ = std::make_unique<billing::Billing>(platform().db(), *platform().tenant_data, *platform().audit, clock_,
                                                  *crashing_, settings, nullptr);
  }

  app::Platform& platform() { return tp_->platform(); }
  billing::Billing& b() { return *billing_; }

  Instant now_s() const { return std::chrono::floor<std::chrono::seconds>(clock_.now()); }

  void set_time(Instant t) {
    const auto now = clock_.now();
    ASSERT_GE(tp(t), now);
    clock_.advance(tp(t) - now);
  }

  billing::Plan plan(const std::string& code, std::int64_t price, const std::string& interval = "monthly",
                     std::int64_t included_seats = 1, std::int64_t seat_price = 0) {
    auto p = b().create_plan({.code = code,
                              .name = "Plan " + code,
                              .tier = "starter",
                              .price = {.currency = "USD",
                                        .interval = billing::parse_interval(interval),
                                        .base_price = price,
                                        .included_seats = included_seats,
                                        .seat_price = seat_price}},
                             who_);
    EXPECT_TRUE(p) << p.error().message;
    return p.value_or(billing::Plan{});
  }

  std::string tenant_with_account(const std::string& slug, const std::string& proration = "daily",
                                  const std::string& method = "pm_card_visa") {
    auto t = create_test_tenant(platform(), slug, tenancy::Isolation::shared);
    auto a = b().put_account(t.id,
                             {.legal_name = slug + " GmbH",
                              .email = "billing@" + slug + ".test",
                              .country = "DE",
                              .currency = "USD",
                              .payment_method = method,
                              .proration = proration},
                             false, who_);
    EXPECT_TRUE(a) << a.error().message;
    return t.id;
  }

  std::int64_t count(const char* sql) {
    std::int64_t n = -1;
    // Billing rows are behind RLS: read them in the platform scope.
    auto r = platform().tenant_data->transact_platform([&](tenancy::PlatformTransaction& tx) -> Result<void> {
      auto rows = tx.control().execute(storage::Statement{"", sql});
      if (!rows) return std::unexpected(rows.error());
      n = rows->int_at(0, 0).value_or(-1);
      return {};
    });
    EXPECT_TRUE(r) << r.error().message;
    return n;
  }

  std::vector<billing::Invoice> invoices(const std::string& tenant) {
    auto list = b().list_invoices(tenant, "");
    EXPECT_TRUE(list) << list.error().message;
    std::vector<billing::Invoice> out;
    for (const auto& i : list.value_or(std::vector<billing::Invoice>{})) {
      auto full = b().get_invoice(tenant, i.id);
      EXPECT_TRUE(full);
      if (full) out.push_back(*full);
    }
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
    return out;
  }

  // The invariants every invoice keeps, whatever produced it.
  static void check_arithmetic(const billing::Invoice& inv) {
    SCOPED_TRACE(inv.number.value_or(inv.id));
    std::int64_t sum = 0;
    for (const auto& l : inv.lines) sum += l.amount;
    EXPECT_EQ(sum, inv.totals.subtotal);
    const std::int64_t added_tax = inv.totals.tax_inclusive ? 0 : inv.totals.tax;
    EXPECT_EQ(inv.totals.subtotal - inv.totals.discount + added_tax, inv.totals.total);
    EXPECT_EQ(inv.totals.total, inv.totals.amount_due + inv.totals.credit_applied - inv.totals.credit_created);
    EXPECT_GE(inv.totals.amount_due, 0);
    EXPECT_GE(inv.totals.credit_applied, 0);
    EXPECT_GE(inv.totals.credit_created, 0);
  }

  ManualClock clock_{parse_rfc3339("2026-01-15T09:00:00Z").value()};
  audit::Context who_{.actor_type = audit::ActorType::system, .actor_id = "test"};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<billing::PaymentGateway> sim_;
  std::unique_ptr<CrashingGateway> crashing_;
  std::unique_ptr<billing::Billing> billing_;
};

TEST_P(BillingServiceTest, TheRunRenewsEachPeriodOnceWithGapFreeNumbers) {
  plan("pro", 4900);
  const std::string t = tenant_with_account("renew");
  auto sub = b().create_subscription(t, {.plan = "pro"}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  EXPECT_EQ(sub->status, billing::Status::active);
  EXPECT_EQ(sub->current_period_end, instant("2026-02-15T09:00:00Z"));

  auto nothing = b().run();
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->invoices, 0);

  set_time(instant("2026-02-15T09:00:01Z"));
  auto first = b().run();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->renewed, 1);
  EXPECT_EQ(first->charged, 1);
  auto again = b().run();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->invoices, 0) << "a repeated run bills nothing twice";

  // Two periods missed at once: each is invoiced once, in order.
  set_time(instant("2026-04-20T00:00:00Z"));
  auto late = b().run();
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->renewed, 2);

  auto all = invoices(t);
  ASSERT_EQ(all.size(), 4u);
  std::vector<std::pair<Instant, Instant>> periods;
  for (const auto& inv : all) {
    check_arithmetic(inv);
    EXPECT_EQ(inv.status, "paid");
    EXPECT_EQ(inv.totals.total, 4900);
    periods.emplace_back(inv.period_start, inv.period_end);
  }
  EXPECT_EQ(periods[1], std::make_pair(instant("2026-02-15T09:00:00Z"), instant("2026-03-15T09:00:00Z")));
  EXPECT_EQ(periods[2], std::make_pair(instant("2026-03-15T09:00:00Z"), instant("2026-04-15T09:00:00Z")));
  EXPECT_EQ(periods[3], std::make_pair(instant("2026-04-15T09:00:00Z"), instant("2026-05-15T09:00:00Z")));
  // Numbered at finalization from one sequence per month, without gaps.
  EXPECT_EQ(all[0].number, "INV-202601-000001");
  EXPECT_EQ(all[1].number, "INV-202602-000001");
  EXPECT_EQ(all[2].number, "INV-202603-000001");
  EXPECT_EQ(all[3].number, "INV-202604-000001");
  EXPECT_EQ(count("SELECT COUNT(*) FROM simulated_charges"), 4);
}

TEST_P(BillingServiceTest, ARunThatCrashedAfterChargingIsResumedWithoutChargingTwice) {
  plan("team", 1000);
  const int tenants = 12;
  std::vector<std::string> ids;
  for (int i = 0; i < tenants; ++i) {
    ids.push_back(tenant_with_account("crash" + std::to_string(i)));
    ASSERT_TRUE(b().create_subscription(ids.back(), {.plan = "team"}, who_));
  }
  ASSERT_EQ(count("SELECT COUNT(*) FROM simulated_charges"), tenants);
  make_billing(5);  // three batches of renewals
  set_time(instant("2026-02-16T00:00:00Z"));
  crashing_->crash_after_calls = 1;  // the second batch's charges go through, then the process "dies"
  crashing_->calls = 0;
  EXPECT_THROW((void)b().run(), std::runtime_error);
  EXPECT_EQ(count("SELECT COUNT(*) FROM simulated_charges"), tenants + 10);
  EXPECT_EQ(count("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'"), 5);

  crashing_->crash_after_calls = -1;
  auto resumed = b().run();
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_EQ(resumed->renewed, 2) << "only the batch that never started is renewed now";
  auto again = b().run();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->invoices, 0);

  // One charge per invoice at the provider, every invoice paid, one renewal invoice per subscription.
  EXPECT_EQ(count("SELECT COUNT(*) FROM simulated_charges"), 2 * tenants);
  EXPECT_EQ(count("SELECT COUNT(*) FROM invoices"), 2 * tenants);
  EXPECT_EQ(count("SELECT COUNT(*) FROM invoices WHERE status = 'paid'"), 2 * tenants);
  EXPECT_EQ(count("SELECT COUNT(*) FROM payment_attempts WHERE status = 'succeeded'"), 2 * tenants);
  EXPECT_EQ(count("SELECT COUNT(*) FROM payment_attempts"), 2 * tenants);
  // Gap-free: February's numbers are exactly 1..tenants.
  EXPECT_EQ(count("SELECT COUNT(DISTINCT number) FROM invoices WHERE number LIKE 'INV-202602-%'"), tenants);
  EXPECT_EQ(count("SELECT MAX(value) FROM billing_counters WHERE name = 'invoice:202602'"), tenants);
}

TEST_P(BillingServiceTest, StripesPerSecondExampleThroughTheService) {
  // Stripe's documented example (docs.stripe.com/billing/subscriptions/prorations): 10 USD -> 20 USD halfway
  // through the month credits 5 USD of unused time and charges 10 USD for the rest.
  set_time(instant("2026-04-01T00:00:00Z"));
  plan("ten", 1000);
  plan("twenty", 2000);
  const std::string t = tenant_with_account("stripe", "per_second");
  auto sub = b().create_subscription(t, {.plan = "ten"}, who_);
  ASSERT_TRUE(sub);
  set_time(instant("2026-04-16T00:00:00Z"));  // 15 of 30 days: exactly half the seconds
  auto preview = b().preview_change(t, sub->id, {.plan = "twenty"});
  ASSERT_TRUE(preview) << preview.error().message;
  EXPECT_EQ((*preview)["credit"], 500);
  EXPECT_EQ((*preview)["charge"], 1000);
  EXPECT_EQ((*preview)["net"], 500);
  ASSERT_TRUE(b().change_subscription(t, sub->id, {.plan = "twenty"}, who_));
  auto all = invoices(t);
  ASSERT_EQ(all.size(), 2u);
  ASSERT_EQ(all[1].lines.size(), 2u);
  EXPECT_EQ(all[1].lines[0].amount, -500);
  EXPECT_EQ(all[1].lines[1].amount, 1000);
  EXPECT_EQ(all[1].totals.total, 500);
  EXPECT_EQ(all[1].status, "paid");
}

// Random plans, start dates, proration modes and sequences of plan/seat changes within a period, then the
// renewal: every invoice adds up; each change's invoice is charge - credit of an independently computed proration;
// the account's credit balance is exactly what invoices created minus what they used; and over the cycle the
// customer is billed the initial price plus the sum of the changes' nets — no money appears or disappears.
TEST_P(BillingServiceTest, RandomChangeSequencesKeepTheMoneyBalanced) {
  const std::uint64_t seed = 20261127;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto uniform = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  const int scenarios = GetParam() == Backend::postgres ? 8 : 12;
  for (int s = 0; s < scenarios; ++s) {
    SCOPED_TRACE("scenario " + std::to_string(s));
    const std::string interval = std::array{"monthly", "quarterly", "annual"}[uniform(0, 2)];
    const std::string mode = uniform(0, 1) ? "daily" : "per_second";
    std::vector<billing::Plan> plans;
    for (int p = 0; p < 3; ++p) {
      plans.push_back(plan("s" + std::to_string(s) + "p" + std::to_string(p), uniform(0, 250'000), interval,
                           uniform(1, 3), uniform(0, 9'000)));
    }
    set_time(now_s() + std::chrono::seconds(uniform(1, 40 * 86400)));
    const std::string t = tenant_with_account("rnd" + std::to_string(s), mode);
    auto period_amount = [&](const billing::Plan& p, std::int64_t seats) {
      return p.price.base_price + std::max<std::int64_t>(0, seats - p.price.included_seats) * p.price.seat_price;
    };
    std::int64_t seats = uniform(1, 6);
    std::size_t current = 0;
    auto sub = b().create_subscription(t, {.plan = plans[0].code, .seats = seats}, who_);
    ASSERT_TRUE(sub) << sub.error().message;
    const Instant start = sub->current_period_start;
    const Instant end = sub->current_period_end;
    std::int64_t expected_subtotals = period_amount(plans[0], seats);
    // Changes at increasing random moments of the period.
    Instant now = start;
    const int changes = static_cast<int>(uniform(1, 4));
    for (int c = 0; c < changes; ++c) {
      const std::int64_t length = unix_seconds(end) - unix_seconds(start);
      now = std::min(end - std::chrono::seconds(1), now + std::chrono::seconds(uniform(1, length / (changes + 1))));
      set_time(now);
      const std::size_t next_plan = static_cast<std::size_t>(uniform(0, 2));
      const std::int64_t next_seats = uniform(1, 6);
      const std::int64_t before = period_amount(plans[current], seats);
      const std::int64_t after = period_amount(plans[next_plan], next_seats);
      std::int64_t remaining = 0, total = 0;
      if (mode == "daily") {
        total = length / 86400;
        remaining =
            (unix_seconds(end) - unix_seconds(now)) / 86400;  // the seed: differenceInDays(periodEnd, changeDate)
      } else {
        total = length;
        remaining = unix_seconds(end) - unix_seconds(now);
      }
      const std::int64_t credit = reference_round(static_cast<__int128>(before) * remaining, total);
      const std::int64_t charge = reference_round(static_cast<__int128>(after) * remaining, total);
      auto preview = b().preview_change(t, sub->id, {.plan = plans[next_plan].code, .seats = next_seats});
      ASSERT_TRUE(preview) << preview.error().message;
      EXPECT_EQ((*preview)["credit"], credit);
      EXPECT_EQ((*preview)["charge"], charge);
      EXPECT_EQ((*preview)["net"].get<std::int64_t>(), charge - credit);
      auto changed = b().change_subscription(t, sub->id, {.plan = plans[next_plan].code, .seats = next_seats}, who_);
      ASSERT_TRUE(changed) << changed.error().message;
      EXPECT_EQ(changed->current_period_end, end) << "a change in the same interval keeps the period";
      expected_subtotals += charge - credit;
      current = next_plan;
      seats = next_seats;
    }
    set_time(end + std::chrono::seconds(1));
    auto run = b().run();
    ASSERT_TRUE(run) << run.error().message;
    EXPECT_EQ(run->renewed, 1);

    auto all = invoices(t);
    std::int64_t cycle_subtotals = 0, created = 0, applied = 0;
    bool renewal_seen = false;
    for (const auto& inv : all) {
      check_arithmetic(inv);
      created += inv.totals.credit_created;
      applied += inv.totals.credit_applied;
      if (inv.billing_reason == "subscription_cycle") {
        renewal_seen = true;
        EXPECT_EQ(inv.totals.subtotal, period_amount(plans[current], seats)) << "the renewal bills the last config";
        EXPECT_EQ(inv.period_start, end);
      } else {
        cycle_subtotals += inv.totals.subtotal;
      }
    }
    EXPECT_TRUE(renewal_seen);
    EXPECT_EQ(cycle_subtotals, expected_subtotals);
    auto account = b().get_account(t);
    ASSERT_TRUE(account);
    EXPECT_EQ(account->credit_balance, created - applied);
    EXPECT_GE(account->credit_balance, 0);
    ASSERT_TRUE(b().cancel(t, sub->id, {}, who_));
  }
}

TEST_P(BillingServiceTest, ABillingAnchorDayStartsWithAProratedShortPeriodAndNeverDrifts) {
  plan("anchored", 4900);
  const std::string t = tenant_with_account("anchor");
  // Subscribed on January 15th, billed on the 31st of each month (clamped to the month's last day).
  auto sub = b().create_subscription(t, {.plan = "anchored", .billing_anchor_day = 31}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  EXPECT_EQ(sub->current_period_start, instant("2026-01-15T09:00:00Z"));
  EXPECT_EQ(sub->current_period_end, instant("2026-01-31T09:00:00Z"));
  auto first = invoices(t);
  ASSERT_EQ(first.size(), 1u);
  // The short period is the part of the full period Dec 31 - Jan 31 (31 days) from Jan 15: 16 days (per day).
  EXPECT_EQ(first[0].totals.total, reference_round(4900 * 16, 31));
  EXPECT_TRUE(first[0].lines[0].proration);
  std::vector<Instant> ends;
  for (const char* when : {"2026-01-31T09:00:01Z", "2026-02-28T09:00:01Z", "2026-03-31T09:00:01Z"}) {
    set_time(instant(when));
    ASSERT_TRUE(b().run());
    auto s = b().get_subscription(t, sub->id);
    ASSERT_TRUE(s);
    ends.push_back(s->current_period_end);
  }
  EXPECT_EQ(ends, (std::vector<Instant>{instant("2026-02-28T09:00:00Z"), instant("2026-03-31T09:00:00Z"),
                                        instant("2026-04-30T09:00:00Z")}));
  auto all = invoices(t);
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i].totals.total, 4900) << "full periods after the first";
}

TEST_P(BillingServiceTest, IllegalTransitionsAreRefusedAndLegalOnesRecorded) {
  plan("basic", 2500);
  const std::string t = tenant_with_account("life");
  auto sub = b().create_subscription(t, {.plan = "basic", .trial_days = 7}, who_);
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->status, billing::Status::trial);
  EXPECT_TRUE(invoices(t).empty()) << "nothing is billed during a trial";
  auto resumed = b().resume(t, sub->id, who_);
  ASSERT_FALSE(resumed);
  EXPECT_EQ(resumed.error().code, Errc::conflict);
  auto paused = b().pause(t, sub->id, who_);
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, billing::Status::paused);
  // While paused, nothing renews.
  set_time(instant("2026-03-01T00:00:00Z"));
  auto run = b().run();
  ASSERT_TRUE(run);
  EXPECT_EQ(run->invoices, 0);
  // Resumed after the trial ran out: a new period starts now and is invoiced.
  auto back = b().resume(t, sub->id, who_);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->status, billing::Status::active);
  EXPECT_EQ(back->current_period_start, instant("2026-03-01T00:00:00Z"));
  EXPECT_EQ(back->current_period_end, instant("2026-04-01T00:00:00Z"));
  ASSERT_EQ(invoices(t).size(), 1u);
  auto cancelled = b().cancel(t, sub->id, {.at_period_end = true}, who_);
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, billing::Status::active);
  set_time(instant("2026-04-01T00:00:01Z"));
  ASSERT_TRUE(b().run());
  auto ended = b().get_subscription(t, sub->id);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->status, billing::Status::cancelled);
  EXPECT_EQ(invoices(t).size(), 1u) << "a subscription cancelled at period end is not renewed";
  auto again = b().pause(t, sub->id, who_);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::conflict);
  // Each transition was recorded as an event in the outbox (no relay runs here, so they are all still there).
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_events WHERE type = 'subscription.paused'"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_events WHERE type = 'subscription.active'"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_events WHERE type = 'subscription.cancelled'"), 1);
}

TEST_P(BillingServiceTest, AnUnknownOutcomeIsSentAgainWithTheSameKeyAndNeverChargedTwice) {
  plan("unknown", 3000);
  const std::string t = tenant_with_account("unknown");
  auto sub = b().create_subscription(t, {.plan = "unknown"}, who_);
  ASSERT_TRUE(sub);
  TimingOutGateway timing_out(*sim_);
  billing::Billing flaky(platform().db(), *platform().tenant_data, *platform().audit, clock_, timing_out, {}, nullptr);
  timing_out.timing_out = true;
  set_time(instant("2026-02-15T09:00:01Z"));
  auto run = flaky.run();
  ASSERT_TRUE(run) << run.error().message;
  auto renewal = invoices(t).back();
  EXPECT_EQ(renewal.status, "open");
  auto s1 = b().get_subscription(t, sub->id);
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->status, billing::Status::active) << "nothing is known to have failed";
  EXPECT_EQ(count("SELECT COUNT(*) FROM pending_events WHERE type = 'payment.failed'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'"), 1);
  // The invoice cannot be voided while a charge of unknown outcome may hold the money.
  auto voided = b().void_invoice(t, renewal.id, who_);
  ASSERT_FALSE(voided);
  EXPECT_EQ(voided.error().code, Errc::conflict);
  // An hour later the same attempt is sent again with its key: the provider answers with the first charge.
  timing_out.timing_out = false;
  set_time(instant("2026-02-15T10:00:02Z"));
  ASSERT_TRUE(flaky.run());
  auto settled = b().get_invoice(t, renewal.id);
  ASSERT_TRUE(settled);
  EXPECT_EQ(settled->status, "paid");
  EXPECT_EQ(settled->attempt_count, 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM simulated_charges"), 2) << "one charge per invoice at the provider";
  EXPECT_EQ(count("SELECT COUNT(*) FROM payment_attempts"), 2);
}

TEST_P(BillingServiceTest, DunningGraceMovesTheRemainingRetriesAndTheFinalActionLater) {
  auto p = b().create_plan({.code = "grace",
                            .name = "Grace",
                            .tier = "starter",
                            .price = {.currency = "USD",
                                      .interval = billing::Interval::monthly,
                                      .base_price = 2500,
                                      .dunning = billing::DunningPolicy{.retry_hours = {24, 72}}}},
                           who_);
  ASSERT_TRUE(p) << p.error().message;
  const std::string t = tenant_with_account("grace", "daily", "pm_card_chargeDeclined");
  auto sub = b().create_subscription(t, {.plan = "grace"}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  // Nothing is in dunning yet (the first invoice failed at creation, but an invalid grace changes nothing either).
  for (std::int64_t hours : {0, -5, 2161}) {
    auto bad = b().extend_dunning(t, hours, who_);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument) << hours;
  }
  auto first = invoices(t).front();
  ASSERT_EQ(first.status, "open");
  ASSERT_TRUE(first.finalized_at);
  const Instant finalized = *first.finalized_at;
  EXPECT_EQ(first.next_payment_attempt, finalized + std::chrono::hours(24));

  auto extended = b().extend_dunning(t, 48, who_);
  ASSERT_TRUE(extended) << extended.error().message;
  ASSERT_EQ(extended->size(), 1u);
  EXPECT_EQ(extended->front().id, first.id);
  EXPECT_EQ(extended->front().dunning_grace_hours, 48);
  EXPECT_EQ(extended->front().next_payment_attempt, finalized + std::chrono::hours(24 + 48));
  auto stored = b().get_invoice(t, first.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->dunning_grace_hours, 48);
  EXPECT_EQ(stored->next_payment_attempt, finalized + std::chrono::hours(72));
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_logs WHERE action = 'invoice.dunning_extended'"), 1);

  // At the retry it had before, nothing is charged.
  set_time(finalized + std::chrono::hours(24) + std::chrono::seconds(1));
  ASSERT_TRUE(b().run());
  EXPECT_EQ(b().get_invoice(t, first.id)->attempt_count, 1);
  // At the new time it is retried, fails again, and the next retry is 72 + 48 hours after finalization.
  set_time(finalized + std::chrono::hours(72) + std::chrono::seconds(1));
  ASSERT_TRUE(b().run());
  auto second = b().get_invoice(t, first.id);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->attempt_count, 2);
  EXPECT_EQ(second->next_payment_attempt, finalized + std::chrono::hours(120));
  // Where the policy alone would have cancelled (72 hours), the subscription is still past due; the last retry
  // fails at 120 hours and the final action cancels then.
  auto waiting = b().get_subscription(t, sub->id);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->status, billing::Status::past_due);
  set_time(finalized + std::chrono::hours(120) + std::chrono::seconds(1));
  ASSERT_TRUE(b().run());
  auto last = b().get_invoice(t, first.id);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->attempt_count, 3);
  EXPECT_EQ(last->status, "uncollectible");
  EXPECT_FALSE(last->next_payment_attempt);
  auto cancelled = b().get_subscription(t, sub->id);
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, billing::Status::cancelled);
  // Nothing is in dunning any more: conflict, and nothing more is audited.
  auto none = b().extend_dunning(t, 24, who_);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::conflict);
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_logs WHERE action = 'invoice.dunning_extended'"), 1);
}

TEST_P(BillingServiceTest, ConcurrentCreditsToOneAccountAllCount) {
  plan("credits", 5000);
  const std::string t = tenant_with_account("credits");
  auto sub = b().create_subscription(t, {.plan = "credits"}, who_);
  ASSERT_TRUE(sub);
  set_time(instant("2026-02-15T09:00:01Z"));
  ASSERT_TRUE(b().run());
  auto all = invoices(t);
  ASSERT_EQ(all.size(), 2u);
  for (int round = 0; round < 5; ++round) {
    std::vector<std::thread> threads;
    for (const auto& inv : all) {
      threads.emplace_back([&, id = inv.id] {
        auto n = b().create_credit_note(t, {.invoice_id = id, .amount = 100, .method = "credit_balance"}, who_);
        EXPECT_TRUE(n) << n.error().message;
      });
    }
    for (auto& th : threads) th.join();
  }
  auto account = b().get_account(t);
  ASSERT_TRUE(account);
  EXPECT_EQ(account->credit_balance, 10 * 100) << "no credit lost to a concurrent write";
}

TEST_P(BillingServiceTest, ProrationIsOnWhatTheCouponLetsTheCustomerPay) {
  set_time(instant("2026-04-01T00:00:00Z"));
  plan("full", 10000);
  plan("none", 0);
  ASSERT_TRUE(b().create_coupon({.code = "HALF", .percent_off_bps = 5000, .duration = "forever"}, who_));
  const std::string t = tenant_with_account("coupon");
  auto sub = b().create_subscription(t, {.plan = "full", .coupon = "HALF"}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  ASSERT_EQ(invoices(t)[0].totals.total, 5000);
  set_time(instant("2026-04-16T00:00:00Z"));  // 15 of 30 days left
  auto preview = b().preview_change(t, sub->id, {.plan = "none"});
  ASSERT_TRUE(preview) << preview.error().message;
  EXPECT_EQ((*preview)["credit"], 2500) << "half of what was paid, not half of the list price";
  ASSERT_TRUE(b().change_subscription(t, sub->id, {.plan = "none"}, who_));
  auto account = b().get_account(t);
  ASSERT_TRUE(account);
  EXPECT_EQ(account->credit_balance, 2500);
}

TEST_P(BillingServiceTest, TheCurrencyCannotChangeUnderACreditBalance) {
  plan("cur", 5000);
  const std::string t = tenant_with_account("currency");
  auto sub = b().create_subscription(t, {.plan = "cur"}, who_);
  ASSERT_TRUE(sub);
  auto inv = invoices(t)[0];
  ASSERT_TRUE(b().create_credit_note(t, {.invoice_id = inv.id, .amount = 1000, .method = "credit_balance"}, who_));
  ASSERT_TRUE(b().cancel(t, sub->id, {}, who_));
  auto changed = b().put_account(t, {.currency = "JPY"}, false, who_);
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().code, Errc::conflict);
  EXPECT_EQ(b().get_account(t)->currency, "USD");
}

TEST_P(BillingServiceTest, AnIntervalChangeAtTheStartAndAChangeAfterThePeriodEndedBothWork) {
  set_time(instant("2026-03-01T00:00:00Z"));
  plan("monthly", 1000);
  plan("annual", 10000, "annual");
  const std::string t = tenant_with_account("interval");
  auto sub = b().create_subscription(t, {.plan = "monthly"}, who_);
  ASSERT_TRUE(sub);
  // The same second as the creation (a frozen test clock does this all the time).
  auto annual = b().change_subscription(t, sub->id, {.plan = "annual"}, who_);
  ASSERT_TRUE(annual) << annual.error().message;
  EXPECT_EQ(annual->current_period_end, instant("2027-03-01T00:00:00Z"));
  // The period ended and no run has renewed it yet: the change renews first, then prorates the new period.
  set_time(instant("2027-03-01T00:00:05Z"));
  auto back = b().change_subscription(t, sub->id, {.plan = "monthly"}, who_);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->current_period_start, instant("2027-03-01T00:00:05Z"));
  bool renewed = false;
  for (const auto& inv : invoices(t)) renewed = renewed || (inv.billing_reason == "subscription_cycle");
  EXPECT_TRUE(renewed);
}

TEST_P(BillingServiceTest, AnAnchorDayClampedInFebruaryKeepsItsDayAfterwards) {
  set_time(instant("2026-02-10T12:00:00Z"));
  plan("day31", 3100);
  const std::string t = tenant_with_account("day31");
  auto sub = b().create_subscription(t, {.plan = "day31", .billing_anchor_day = 31}, who_);
  ASSERT_TRUE(sub) << sub.error().message;
  EXPECT_EQ(sub->current_period_end, instant("2026-02-28T12:00:00Z"));
  set_time(instant("2026-02-28T12:00:01Z"));
  ASSERT_TRUE(b().run());
  auto renewed = b().get_subscription(t, sub->id);
  ASSERT_TRUE(renewed);
  EXPECT_EQ(renewed->current_period_end, instant("2026-03-31T12:00:00Z"));
  // The short first period was a part of Jan 31 - Feb 28 (28 days): 18 days of it, per day.
  EXPECT_EQ(invoices(t)[0].totals.total, reference_round(3100 * 18, 28));
}

// Billing checks its rules whoever builds the command (the API decodes bodies; the CLI, tests and benchmarks build
// commands directly): out of range or unknown values are refused, and nothing is written.
TEST_P(BillingServiceTest, TypedCommandsOutsideTheRulesAreRefusedWithNothingWritten) {
  plan("pro", 1000);
  const std::string t = tenant_with_account("typed");
  const auto refused = [](const auto& r) { return !r && r.error().code == Errc::invalid_argument; };
  for (const billing::NewSubscription& bad :
       {billing::NewSubscription{.plan = "pro", .seats = 0}, billing::NewSubscription{.plan = "pro", .trial_days = 731},
        billing::NewSubscription{.plan = "pro", .billing_anchor_day = 32}, billing::NewSubscription{.plan = ""},
        billing::NewSubscription{.plan = "pro", .trial_days = 3, .billing_anchor_day = 1}}) {
    EXPECT_TRUE(refused(b().create_subscription(t, bad, who_)));
  }
  EXPECT_TRUE(b().list_subscriptions(t)->empty());
  const billing::PriceFields usd{.currency = "USD", .base_price = 100};
  EXPECT_TRUE(refused(b().create_plan({.code = "has space", .name = "x", .tier = "starter", .price = usd}, who_)));
  EXPECT_TRUE(refused(b().create_plan({.code = "gold", .name = "x", .tier = "gold", .price = usd}, who_)));
  EXPECT_TRUE(refused(b().create_plan(
      {.code = "neg", .name = "x", .tier = "starter", .price = {.currency = "USD", .base_price = -1}}, who_)));
  EXPECT_TRUE(refused(b().create_plan(
      {.code = "cur", .name = "x", .tier = "starter", .price = {.currency = "usd", .base_price = 1}}, who_)));
  EXPECT_TRUE(refused(b().create_plan({.code = "lim",
                                       .name = "x",
                                       .tier = "starter",
                                       .price = {.currency = "USD", .base_price = 1, .limits = Json{{"x", 1}}}},
                                      who_)));
  EXPECT_EQ(b().list_plans(true)->size(), 1u);
  EXPECT_TRUE(refused(b().create_coupon({.code = "ZERO", .percent_off_bps = 0}, who_)));
  EXPECT_TRUE(refused(b().create_coupon({.code = "MORE", .percent_off_bps = 10001}, who_)));
  EXPECT_TRUE(
      refused(b().create_coupon({.code = "BOTH", .percent_off_bps = 10, .amount_off = 10, .currency = "USD"}, who_)));
  EXPECT_TRUE(refused(b().create_coupon({.code = "REP", .percent_off_bps = 10, .duration = "repeating"}, who_)));
  EXPECT_TRUE(b().list_coupons()->empty());
  EXPECT_TRUE(refused(b().put_tax_rate({.country = "de", .bps = 1900}, who_)));
  EXPECT_TRUE(refused(b().put_tax_rate({.country = "DE", .bps = 10001}, who_)));
  EXPECT_TRUE(b().list_tax_rates()->empty());
  EXPECT_TRUE(refused(b().put_account(t, {.country = "Germany"}, false, who_)));
  EXPECT_TRUE(refused(b().put_account(t, {.proration = "hourly"}, false, who_)));
  EXPECT_EQ(b().get_account(t)->country, "DE");
  EXPECT_TRUE(refused(b().create_invoice(t, {.lines = {{.description = "x", .quantity = 0, .unit_amount = 1}}}, who_)));
  EXPECT_TRUE(refused(b().create_invoice(t, {}, who_)));
  EXPECT_TRUE(refused(b().create_credit_note(t, {.invoice_id = "x", .amount = 0}, who_)));
  EXPECT_TRUE(refused(b().create_credit_note(t, {.invoice_id = "x", .amount = 1, .reason = "bored"}, who_)));
  EXPECT_TRUE(b().list_invoices(t, "")->empty());
  EXPECT_TRUE(refused(b().create_test_clock(t, {.name = "c", .frozen_time = from_unix_seconds(-1)}, who_)));
}

INSTANTIATE_TEST_SUITE_P(Backends, BillingServiceTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return std::string(storage::backend_name(info.param)); });

}  // namespace
}  // namespace atrium::test
