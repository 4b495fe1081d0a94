#include "app/demo.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <string>
#include <vector>

#include "analytics/analytics.hpp"
#include "app/platform.hpp"
#include "billing/billing.hpp"
#include "metering/metering.hpp"

namespace atrium::app {

namespace {

using std::chrono::days;
using std::chrono::hours;

constexpr std::array<const char*, 5> k_features{"export", "share", "reports", "alerts", "chat"};
constexpr const char* k_good_card = "pm_card_visa";
constexpr const char* k_failing_card = "pm_card_chargeDeclinedInsufficientFunds";

enum class Phase { trial_or_active, cancelled };

// One demo customer and what it does.
struct Customer {
  std::string tenant_id;
  std::string subscription_id;
  std::string plan;  // code
  std::int64_t seats = 1;
  int users = 5;
  double engagement = 1.0;  // scales how often its users are active
  bool churn_prone = false;
  bool failing_card = false;
  Phase phase = Phase::trial_or_active;
};

class Demo {
 public:
  Demo(Platform& p, ManualClock& clock, const DemoOptions& o) : p_(p), clock_(clock), o_(o), rng_(o.seed) {}

  Result<DemoStats> run(Instant start, Instant until) {
    if (auto r = catalog(); !r) return std::unexpected(r.error());
    const std::int64_t total = std::chrono::duration_cast<days>(until - start).count();
    // Sign-up days, drawn up front so the same seed signs the same customers up on the same days.
    std::vector<std::int64_t> signups;
    std::uniform_int_distribution<std::int64_t> any_day(0, std::max<std::int64_t>(total - 1, 0));
    for (int i = 0; i < o_.tenants; ++i) signups.push_back(any_day(rng_));
    std::sort(signups.begin(), signups.end());
    std::size_t next_signup = 0;
    for (std::int64_t d = 0; d < total; ++d) {
      const Instant day = start + days(d);
      to(day + hours(9));
      // The starter plan's price goes up halfway: new subscriptions pay the new version.
      if (d == total / 2) {
        if (auto r = raise_starter_price(); !r) return std::unexpected(r.error());
      }
      for (; next_signup < signups.size() && signups[next_signup] == d; ++next_signup) {
        if (auto r = sign_up(static_cast<int>(next_signup)); !r) return std::unexpected(r.error());
      }
      for (Customer& c : customers_) {
        if (auto r = act(c, day); !r) return std::unexpected(r.error());
      }
      to(day + hours(12));
      auto run = p_.billing->run();
      if (!run) return std::unexpected(run.error());
      stats_.billing_runs += 1;
      if (auto f = p_.analytics->activity().flush(); !f) return std::unexpected(f.error());
      if (o_.progress) o_.progress(d + 1, total);
    }
    to(until);
    return stats_;
  }

 private:
  void to(Instant t) {
    if (t > clock_.now()) clock_.advance(t - clock_.now());
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p; }
  int between(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  Result<void> catalog() {
    auto existing = p_.billing->get_plan("demo-starter");
    if (existing) return fail(Errc::conflict, "the demo platform is seeded already (plan demo-starter exists)");
    if (existing.error().code != Errc::not_found) return std::unexpected(existing.error());
    struct PlanSpec {
      const char* code;
      const char* name;
      const char* tier;
      billing::Interval interval;
      std::int64_t price;
      std::int64_t included_seats;
      std::int64_t seat_price;
      std::int64_t trial_days;
    };
    for (const PlanSpec& s :
         {PlanSpec{"demo-starter", "Starter", "starter", billing::Interval::monthly, 2900, 1, 0, 14},
          PlanSpec{"demo-pro", "Pro", "professional", billing::Interval::monthly, 9900, 3, 1500, 14},
          PlanSpec{"demo-business", "Business", "business", billing::Interval::annual, 299000, 10, 12000, 0}}) {
      billing::NewPlan plan{.code = s.code, .name = s.name, .tier = s.tier, .active = true, .price = {}};
      plan.price.currency = "USD";
      plan.price.interval = s.interval;
      plan.price.base_price = s.price;
      plan.price.included_seats = s.included_seats;
      plan.price.seat_price = s.seat_price;
      plan.price.trial_days = s.trial_days;
      if (auto r = p_.billing->create_plan(plan, who_); !r) return std::unexpected(r.error());
    }
    return {};
  }

  Result<void> raise_starter_price() {
    auto plan = p_.billing->get_plan("demo-starter");
    if (!plan) return std::unexpected(plan.error());
    billing::PlanUpdate update;
    update.price.base_price = 3900;
    if (auto r = p_.billing->update_plan(plan->id, update, who_); !r) return std::unexpected(r.error());
    return {};
  }

  Result<void> sign_up(int i) {
    const std::string slug = "demo-" + std::to_string(i + 1);
    api::NewTenantRequest request;
    request.tenant.slug = slug;
    request.tenant.name = "Demo customer " + std::to_string(i + 1);
    request.owner_email = "owner@" + slug + ".demo";
    request.owner_name = "Owner of " + slug;
    request.owner_password = "demo-password";
    auto tenant = p_.create_tenant(request, who_);
    if (!tenant) return std::unexpected(tenant.error());
    Customer c;
    c.tenant_id = tenant->id;
    c.users = between(3, 25);
    c.engagement = 0.3 + 0.7 * std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    c.churn_prone = chance(0.3);
    c.failing_card = chance(0.1);
    const int pick = between(0, 9);
    c.plan = pick < 6 ? "demo-starter" : pick < 9 ? "demo-pro" : "demo-business";
    c.seats = c.plan == "demo-starter" ? 1 : between(3, 12);
    billing::AccountUpdate account;
    account.legal_name = request.tenant.name;
    account.email = "billing@" + slug + ".demo";
    account.address = std::vector<std::string>{std::to_string(i + 1) + " Demo Street", "Springfield"};
    account.country = "US";
    account.currency = "USD";
    account.payment_method = c.failing_card ? k_failing_card : k_good_card;
    if (auto r = p_.billing->put_account(c.tenant_id, account, true, who_); !r) return std::unexpected(r.error());
    if (auto r = subscribe(c, std::nullopt); !r) return r;
    stats_.tenants += 1;
    customers_.push_back(std::move(c));
    return {};
  }

  Result<void> subscribe(Customer& c, std::optional<std::int64_t> trial_days) {
    billing::NewSubscription sub{.plan = c.plan,
                                 .seats = c.seats,
                                 .trial_days = trial_days,
                                 .billing_anchor_day = std::nullopt,
                                 .coupon = std::nullopt,
                                 .test_clock_id = std::nullopt};
    auto created = p_.billing->create_subscription(c.tenant_id, sub, who_);
    if (!created) return std::unexpected(created.error());
    c.subscription_id = created->id;
    c.phase = Phase::trial_or_active;
    stats_.subscriptions += 1;
    return {};
  }

  // A day of one customer: its users' activity, its API usage, and now and then a change of its subscription.
  Result<void> act(Customer& c, Instant day) {
    if (c.phase == Phase::cancelled) {
      if (chance(0.004)) {  // a customer who left comes back after some 250 days on average
        c.plan = "demo-starter";
        c.seats = 1;
        return subscribe(c, std::int64_t{0});
      }
      return {};
    }
    const std::string prefix = "demo:" + std::to_string(unix_seconds(day) / 86'400) + ":";
    metering::UsageBatch product;
    std::int64_t api_calls = 0;
    const bool leaving = c.churn_prone && chance(0.006);
    for (int u = 0; u < c.users; ++u) {
      if (!chance(0.35 * c.engagement * (c.churn_prone ? 0.6 : 1.0))) continue;
      const std::string user = "user-" + std::to_string(u + 1);
      const Instant at = day + hours(between(0, 8)) + std::chrono::minutes(between(0, 59));
      auto event = [&](const std::string& type, std::int64_t value, Json properties) {
        metering::UsageEvent e;
        e.idempotency_key = prefix + user + ":" + type + ":" + std::to_string(product.size());
        e.metric = "event:" + type;
        e.quantity = value;
        e.timestamp = at;
        e.properties = properties.dump();
        e.user_id = user;
        product.push_back({.event = std::move(e), .unreadable = {}});
      };
      event("page.viewed", 1, {{"page", "home"}});
      event("feature.used", 1, {{"feature", k_features[static_cast<std::size_t>(between(0, 4) * c.engagement)]}});
      if (chance(0.02)) event("nps.response", c.churn_prone ? between(0, 7) : between(6, 10), Json::object());
      if (chance(c.churn_prone ? 0.02 : 0.005)) event("support.ticket_opened", 1, Json::object());
      if (chance(0.01)) event("support.rating", c.churn_prone ? between(1, 3) : between(3, 5), Json::object());
      if (c.churn_prone && chance(0.01)) event("feedback.negative", 1, Json::object());
      if (leaving && u == 0) event("page.viewed", 1, {{"page", "cancel"}});
      api_calls += between(20, 400);
    }
    if (!product.empty()) {
      stats_.events += static_cast<std::int64_t>(product.size());
      auto r = p_.analytics->ingest(c.tenant_id, std::move(product));
      if (!r) return std::unexpected(r.error());
    }
    if (api_calls > 0) {
      metering::UsageEvent e;
      e.idempotency_key = prefix + "api_calls";
      e.metric = "api_calls";
      e.quantity = api_calls;
      e.timestamp = day + hours(8);
      metering::UsageBatch usage;
      usage.push_back({.event = std::move(e), .unreadable = {}});
      stats_.events += 1;
      auto r = p_.metering->ingest(c.tenant_id, std::move(usage));
      if (!r) return std::unexpected(r.error());
    }
    auto sub = p_.billing->get_subscription(c.tenant_id, c.subscription_id);
    if (!sub) return std::unexpected(sub.error());
    if (sub->status == billing::Status::cancelled) {  // dunning gave up on it
      c.phase = Phase::cancelled;
      return {};
    }
    if (c.failing_card && sub->status != billing::Status::trial && chance(0.05)) {
      // The customer notices the failed payments and fixes its card; dunning's next retry collects.
      billing::AccountUpdate fix;
      fix.payment_method = k_good_card;
      if (auto r = p_.billing->put_account(c.tenant_id, fix, true, who_); !r) return std::unexpected(r.error());
      c.failing_card = false;
    }
    if (leaving) {
      auto r = p_.billing->cancel(c.tenant_id, c.subscription_id, {.at_period_end = chance(0.5)}, who_);
      if (!r) return std::unexpected(r.error());
      if (r->status == billing::Status::cancelled) c.phase = Phase::cancelled;
      return {};
    }
    if (sub->status != billing::Status::active || sub->cancel_at_period_end) return {};
    billing::PlanChange change;
    if (c.plan == "demo-starter" && !c.churn_prone && chance(0.004)) {
      change.plan = "demo-pro";
      change.seats = between(3, 8);
    } else if (c.plan == "demo-pro" && chance(0.002)) {
      change.plan = c.churn_prone ? "demo-starter" : "demo-business";
      change.seats = c.churn_prone ? 1 : between(10, 20);
    } else if (c.plan == "demo-pro" && chance(0.01)) {
      change.seats = std::max<std::int64_t>(1, c.seats + (chance(0.7) ? 1 : -1));
    } else {
      return {};
    }
    auto changed = p_.billing->change_subscription(c.tenant_id, c.subscription_id, change, who_);
    if (!changed) {
      if (changed.error().code == Errc::conflict || changed.error().code == Errc::invalid_argument) return {};
      return std::unexpected(changed.error());
    }
    c.plan = change.plan.value_or(c.plan);
    c.seats = changed->seats;
    return {};
  }

  Platform& p_;
  ManualClock& clock_;
  const DemoOptions& o_;
  std::mt19937_64 rng_;
  audit::Context who_{.actor_type = audit::ActorType::system,
                      .actor_id = "demo",
                      .actor_ip = "",
                      .user_agent = "",
                      .request_id = "",
                      .session_id = ""};
  std::vector<Customer> customers_;
  DemoStats stats_;
};

}  // namespace

Instant demo_start(Instant until, int months) {
  const auto ymd = std::chrono::year_month_day{std::chrono::floor<days>(until)};
  const auto first = std::chrono::year_month{ymd.year(), ymd.month()} - std::chrono::months{months};
  return std::chrono::sys_days{first / 1};
}

Result<DemoStats> seed_demo(Platform& platform, ManualClock& clock, Instant until, const DemoOptions& options) {
  if (options.tenants < 1 || options.tenants > 10'000) {
    return fail(Errc::invalid_argument, "tenants must be between 1 and 10000");
  }
  if (options.months < 1 || options.months > 36) return fail(Errc::invalid_argument, "months must be between 1 and 36");
  const Instant start = demo_start(until, options.months);
  if (clock.now() > start) return fail(Errc::invalid_argument, "the clock is past the demo's first day");
  clock.advance(start - clock.now());
  Demo demo(platform, clock, options);
  return demo.run(start, until);
}

}  // namespace atrium::app
