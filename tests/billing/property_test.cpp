// Property-based tests of billing's money: seeded random scenarios (plans with seats, intervals and price versions;
// daily and per-second proration; exclusive, inclusive and country-fallback tax; percent and amount coupons of
// every duration; test clocks at month ends, Feb 29, period boundaries and random seconds; trials, billing anchor
// days, changes, pause and resume, cancellations, declines and dunning with the simulated gateway's test cards,
// payments, credit notes, voids, one-off invoices, metered usage with late events, downgrade credit off, renewals)
// are driven through the real service and compared, amount by amount, with an independent reference model
// (reference_model.hpp), plus invariants that hold whatever the model says: every invoice adds up, nothing due is
// negative, the credit balance is exactly what invoices and credit notes created minus what invoices used, money
// charged is money the invoices record, one invoice per period, gap-free numbers, and a billing run repeated at
// the same moment changes nothing.
//
// Two drivers run the same scenarios: the domain (billing::Billing, the bulk: a Billing of its own per scenario
// with an injected clock, so scenarios may also live on the real clock and the billing run) and the HTTP API
// (ApiClient: every request through the router, security and versioning middleware; test clocks only). A failing
// scenario prints its seed, index, driver and operations; ATRIUM_BILLING_PROPERTY_INDEX runs that one alone.
// docs/billing.md ("Property tests") has the variables and the long-run command.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <type_traits>

#include "api/billing_input.hpp"
#include "billing/billing.hpp"
#include "billing/reference_model.hpp"
#include "core/clock.hpp"
#include "support/api_client.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

namespace bm = billing_model;
namespace input = api::billing_input;
using bm::Instant;
using http::Method;
using storage::Backend;

constexpr std::int64_t k_day = 86400;
constexpr std::int64_t k_grace = 35 * k_day;  // the usage grace the domain driver's Billing is given
// The real clock of the API driver's platform: fixed, so the model knows it.
constexpr Instant k_api_real_now = 1'781'524'800;  // 2026-06-15T12:00:00Z

// ---- settings from the environment --------------------------------------------------------------------------------

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::uint64_t seed_setting() {
  if (auto s = env("ATRIUM_BILLING_PROPERTY_SEED")) return std::stoull(*s);
  return 20270125;
}

// ATRIUM_BILLING_PROPERTY_SCENARIOS (domain scenarios per backend; the API driver runs a tenth of them) or the
// CI default; ATRIUM_BILLING_PROPERTY_INDEX runs one scenario.
std::int64_t scenario_count(std::int64_t ci_default) {
  if (auto s = env("ATRIUM_BILLING_PROPERTY_SCENARIOS")) return std::max<std::int64_t>(1, std::stoll(*s));
  return ci_default;
}

bool backend_enabled(Backend b) {
  const std::string wanted = env("ATRIUM_BILLING_PROPERTY_BACKEND").value_or("all");
  if (wanted == "all") return true;
  return wanted == storage::backend_name(b);
}

std::optional<Instant> seconds_of(const Json& j) {
  if (!j.is_string()) return std::nullopt;
  auto t = parse_rfc3339(j.get_ref<const std::string&>());
  if (!t) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

std::string iso(Instant t) { return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(t))); }

std::string base36(std::uint64_t v) {
  std::string out;
  do {
    out.insert(out.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
    v /= 36;
  } while (v != 0);
  return out;
}

// ---- drivers ------------------------------------------------------------------------------------------------------

struct Reply {
  int status = 0;
  Json body;
  bool ok() const { return status >= 200 && status < 300; }
};

int http_status(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return 400;
    case Errc::forbidden: return 403;
    case Errc::not_found: return 404;
    case Errc::conflict:
    case Errc::unique_violation: return 409;
    default: return 500;
  }
}

// The service as a scenario sees it. Each method is one request (or the domain call behind it).
class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  virtual bool domain() const = 0;
  // A tenant of its own for the scenario; `real_now` is the real clock's time while it runs (the domain driver's
  // clock for the scenario; the API driver's is fixed), `events` the usage its meter reports (domain driver).
  virtual void begin(const std::string& slug, bool downgrade_credit, Instant real_now,
                     const std::vector<bm::UsageEvent>* events) = 0;
  // The scenario is over: `events` (from begin) is about to go away.
  virtual void end() {}
  virtual Reply create_plan(const Json& body) = 0;
  virtual Reply update_plan(const std::string& id, const Json& body) = 0;
  virtual Reply create_coupon(const Json& body) = 0;
  virtual Reply put_tax_rate(const Json& body) = 0;
  virtual Reply put_account(const Json& body, bool super_admin) = 0;
  virtual Reply get_account() = 0;
  virtual Reply create_clock(const Json& body) = 0;
  virtual Reply advance(const std::string& clock, Instant to) = 0;
  virtual Reply subscribe(const Json& body) = 0;
  virtual Reply subscription(const std::string& id) = 0;
  virtual Reply preview(const std::string& id, const Json& change) = 0;
  virtual Reply change(const std::string& id, const Json& change) = 0;
  virtual Reply pause(const std::string& id) = 0;
  virtual Reply resume(const std::string& id) = 0;
  virtual Reply cancel(const std::string& id, const Json& body) = 0;
  virtual Reply invoices() = 0;
  virtual Reply invoice(const std::string& id) = 0;  // with payment_attempts
  virtual Reply create_invoice(const Json& body) = 0;
  virtual Reply finalize(const std::string& id) = 0;
  virtual Reply pay(const std::string& id) = 0;
  virtual Reply void_invoice(const std::string& id) = 0;
  virtual Reply mark_uncollectible(const std::string& id) = 0;
  virtual Reply credit_note(const Json& body) = 0;
  virtual Reply credit_notes() = 0;
  // Moves the real clock to `to` (domain driver only).
  virtual void set_real_time(Instant to) = 0;
  // The billing run; its stats as JSON.
  virtual Reply run() = 0;
};

Json run_stats(const billing::RunStats& s) {
  return {{"renewed", s.renewed}, {"invoices", s.invoices}, {"charged", s.charged},
          {"failed", s.failed},   {"retried", s.retried},   {"cancelled", s.cancelled}};
}

// The real clock of the domain driver's platform, set by each scenario (and moved back between them): the platform,
// the gateway and the scenario's Billing all read it, so the ids they make (UUIDv7) follow the order things were
// made in within a scenario, as with one real clock. (Invoices due at the same second are retried in id order.)
class SettableClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds_.load()));
  }
  std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
  void set(Instant t) { seconds_ = t; }

 private:
  std::atomic<Instant> seconds_{k_api_real_now};
};

class DomainDriver final : public Driver {
 public:
  DomainDriver(app::Platform& platform, SettableClock& clock)
      : platform_(platform), clock_(clock), gateway_(billing::simulated_gateway(platform.db(), clock)) {}

  std::string name() const override { return "domain"; }
  bool domain() const override { return true; }

  void begin(const std::string& slug, bool downgrade_credit, Instant real_now,
             const std::vector<bm::UsageEvent>* events) override {
    billing_.reset();
    clock_.set(real_now);
    billing::Settings settings;
    settings.downgrade_credit = downgrade_credit;
    billing_ = std::make_unique<billing::Billing>(platform_.db(), *platform_.tenant_data, *platform_.audit, clock_,
                                                  *gateway_, settings, nullptr);
    events_ = events;
    billing_->set_usage_meter(
        [this](tenancy::TenantTransaction& tx, const std::string& metric, atrium::Instant from,
               atrium::Instant to) -> Result<std::int64_t> {
          const std::vector<bm::UsageEvent>* events = events_;
          if (tx.tenant_id() != tenant_) {
            auto it = finished_events_.find(tx.tenant_id());
            if (it == finished_events_.end()) return 0;
            events = &it->second;
          }
          std::int64_t q = 0;
          for (const auto& e : *events) {
            if (e.metric == metric && from_unix_seconds(e.at) >= from && from_unix_seconds(e.at) < to) q += e.quantity;
          }
          return q;
        },
        std::chrono::seconds(k_grace));
    app::Platform::NewTenantRequest r;
    r.tenant.slug = slug;
    r.tenant.name = slug;
    auto t = platform_.create_tenant(r, who_);
    if (!t) throw std::runtime_error("tenant: " + t.error().message);
    tenant_ = t->id;
  }

  // The run is platform-wide: it settles the final periods earlier scenarios' cancellations left open. Each
  // tenant's usage is measured from its own scenario's events, kept when the scenario ends.
  void end() override {
    if (tenant_.empty() || events_ == nullptr) return;
    finished_events_[tenant_] = *events_;
    events_ = &finished_events_[tenant_];
  }

  template <class T>
  static Reply reply(const Result<T>& r, int status = 200) {
    if (!r) return {http_status(r.error().code), Json{{"detail", r.error().message}}};
    return {status, billing::to_json(*r)};
  }
  template <class T>
  static Reply list(const Result<std::vector<T>>& r) {
    if (!r) return {http_status(r.error().code), Json{{"detail", r.error().message}}};
    Json data = Json::array();
    for (const auto& e : *r) data.push_back(billing::to_json(e));
    return {200, Json{{"data", data}}};
  }

  // The body decoded as the API decodes it (api/billing_input.hpp), then `call` on the command.
  template <class Decode, class Call>
  static Reply decoded(const Json& body, Decode decode, Call call, int status = 200) {
    auto in = decode(body);
    if (!in) return {http_status(in.error().code), Json{{"detail", in.error().message}}};
    return reply(call(*in), status);
  }

  Reply create_plan(const Json& b) override {
    return decoded(
        b, input::new_plan, [&](const auto& in) { return billing_->create_plan(in, who_); }, 201);
  }
  Reply update_plan(const std::string& id, const Json& b) override {
    return decoded(b, input::plan_update, [&](const auto& in) { return billing_->update_plan(id, in, who_); });
  }
  Reply create_coupon(const Json& b) override {
    return decoded(
        b, input::new_coupon, [&](const auto& in) { return billing_->create_coupon(in, who_); }, 201);
  }
  Reply put_tax_rate(const Json& b) override {
    return decoded(b, input::tax_rate, [&](const auto& in) { return billing_->put_tax_rate(in, who_); });
  }
  Reply put_account(const Json& b, bool super_admin) override {
    return decoded(b, input::account_update,
                   [&](const auto& in) { return billing_->put_account(tenant_, in, super_admin, who_); });
  }
  Reply get_account() override { return reply(billing_->get_account(tenant_)); }
  Reply create_clock(const Json& b) override {
    return decoded(
        b, input::new_test_clock, [&](const auto& in) { return billing_->create_test_clock(tenant_, in, who_); }, 201);
  }
  Reply advance(const std::string& clock, Instant to) override {
    return reply(billing_->advance_test_clock(tenant_, clock, from_unix_seconds(to), who_));
  }
  Reply subscribe(const Json& b) override {
    return decoded(
        b, input::new_subscription, [&](const auto& in) { return billing_->create_subscription(tenant_, in, who_); },
        201);
  }
  Reply subscription(const std::string& id) override { return reply(billing_->get_subscription(tenant_, id)); }
  Reply preview(const std::string& id, const Json& c) override {
    auto in = input::plan_change(c);
    if (!in) return {http_status(in.error().code), Json{{"detail", in.error().message}}};
    auto r = billing_->preview_change(tenant_, id, *in);
    if (!r) return {http_status(r.error().code), Json{{"detail", r.error().message}}};
    return {200, *r};
  }
  Reply change(const std::string& id, const Json& c) override {
    return decoded(c, input::plan_change,
                   [&](const auto& in) { return billing_->change_subscription(tenant_, id, in, who_); });
  }
  Reply pause(const std::string& id) override { return reply(billing_->pause(tenant_, id, who_)); }
  Reply resume(const std::string& id) override { return reply(billing_->resume(tenant_, id, who_)); }
  Reply cancel(const std::string& id, const Json& b) override {
    return decoded(b, input::cancellation, [&](const auto& in) { return billing_->cancel(tenant_, id, in, who_); });
  }
  Reply invoices() override { return list(billing_->list_invoices(tenant_, "")); }
  Reply invoice(const std::string& id) override {
    auto inv = billing_->get_invoice(tenant_, id);
    if (!inv) return reply(inv);
    auto attempts = billing_->list_attempts(tenant_, id);
    if (!attempts) return {http_status(attempts.error().code), Json{{"detail", attempts.error().message}}};
    Json j = billing::to_json(*inv);
    j["payment_attempts"] = Json::array();
    for (const auto& a : *attempts) j["payment_attempts"].push_back(billing::to_json(a));
    return {200, j};
  }
  Reply create_invoice(const Json& b) override {
    return decoded(
        b, input::manual_invoice, [&](const auto& in) { return billing_->create_invoice(tenant_, in, who_); }, 201);
  }
  Reply finalize(const std::string& id) override { return reply(billing_->finalize_invoice(tenant_, id, who_)); }
  Reply pay(const std::string& id) override { return reply(billing_->pay_invoice(tenant_, id, who_)); }
  Reply void_invoice(const std::string& id) override { return reply(billing_->void_invoice(tenant_, id, who_)); }
  Reply mark_uncollectible(const std::string& id) override {
    return reply(billing_->mark_uncollectible(tenant_, id, who_));
  }
  Reply credit_note(const Json& b) override {
    return decoded(
        b, input::new_credit_note, [&](const auto& in) { return billing_->create_credit_note(tenant_, in, who_); },
        201);
  }
  Reply credit_notes() override { return list(billing_->list_credit_notes(tenant_)); }
  void set_real_time(Instant to) override { clock_.set(to); }
  Reply run() override {
    auto r = billing_->run();
    if (!r) return {http_status(r.error().code), Json{{"detail", r.error().message}}};
    return {200, run_stats(*r)};
  }

 private:
  app::Platform& platform_;
  SettableClock& clock_;
  std::unique_ptr<billing::PaymentGateway> gateway_;
  std::unique_ptr<billing::Billing> billing_;
  const std::vector<bm::UsageEvent>* events_ = nullptr;
  std::map<std::string, std::vector<bm::UsageEvent>> finished_events_;  // earlier scenarios' tenants
  std::string tenant_;
  audit::Context who_{.actor_type = audit::ActorType::system, .actor_id = "property-test"};
};

class ApiDriver final : public Driver {
 public:
  ApiDriver(app::Platform& platform, ApiClient& client, std::string root_token)
      : platform_(platform), client_(client), root_(std::move(root_token)) {}

  std::string name() const override { return "api"; }
  bool domain() const override { return false; }

  void begin(const std::string& slug, bool, Instant, const std::vector<bm::UsageEvent>*) override {
    app::Platform::NewTenantRequest r;
    r.tenant.slug = slug;
    r.tenant.name = slug;
    auto t = platform_.create_tenant(r, {});
    if (!t) throw std::runtime_error("tenant: " + t.error().message);
    tenant_ = t->id;
  }

  Reply call(Method m, const std::string& path, const std::optional<Json>& body = std::nullopt, bool tenant = true) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (tenant) headers.emplace_back("X-Tenant-ID", tenant_);
    auto r = client_.call(m, path, body, root_, headers);
    return {r.status, r.body};
  }

  Reply create_plan(const Json& b) override { return call(Method::post, "/v1/plans", b, false); }
  Reply update_plan(const std::string& id, const Json& b) override {
    return call(Method::patch, "/v1/plans/" + id, b, false);
  }
  Reply create_coupon(const Json& b) override { return call(Method::post, "/v1/coupons", b, false); }
  Reply put_tax_rate(const Json& b) override { return call(Method::put, "/v1/tax-rates", b, false); }
  Reply put_account(const Json& b, bool) override { return call(Method::put, "/v1/billing-account", b); }
  Reply get_account() override { return call(Method::get, "/v1/billing-account"); }
  Reply create_clock(const Json& b) override { return call(Method::post, "/v1/test-clocks", b); }
  Reply advance(const std::string& clock, Instant to) override {
    return call(Method::post, "/v1/test-clocks/" + clock + "/advance", Json{{"frozen_time", iso(to)}});
  }
  Reply subscribe(const Json& b) override { return call(Method::post, "/v1/subscriptions", b); }
  Reply subscription(const std::string& id) override { return call(Method::get, "/v1/subscriptions/" + id); }
  Reply preview(const std::string& id, const Json& c) override {
    std::string q;
    if (c.contains("plan")) q += "plan=" + c["plan"].get<std::string>();
    if (c.contains("seats")) q += std::string(q.empty() ? "" : "&") + "seats=" + std::to_string(c["seats"].get<int>());
    return call(Method::get, "/v1/subscriptions/" + id + "/preview?" + q);
  }
  Reply change(const std::string& id, const Json& c) override {
    return call(Method::patch, "/v1/subscriptions/" + id, c);
  }
  Reply pause(const std::string& id) override { return call(Method::post, "/v1/subscriptions/" + id + "/pause"); }
  Reply resume(const std::string& id) override { return call(Method::post, "/v1/subscriptions/" + id + "/resume"); }
  Reply cancel(const std::string& id, const Json& b) override {
    return call(Method::post, "/v1/subscriptions/" + id + "/cancel", b);
  }
  Reply invoices() override { return call(Method::get, "/v1/invoices"); }
  Reply invoice(const std::string& id) override { return call(Method::get, "/v1/invoices/" + id); }
  Reply create_invoice(const Json& b) override { return call(Method::post, "/v1/invoices", b); }
  Reply finalize(const std::string& id) override { return call(Method::post, "/v1/invoices/" + id + "/finalize"); }
  Reply pay(const std::string& id) override { return call(Method::post, "/v1/invoices/" + id + "/pay"); }
  Reply void_invoice(const std::string& id) override { return call(Method::post, "/v1/invoices/" + id + "/void"); }
  Reply mark_uncollectible(const std::string& id) override {
    return call(Method::post, "/v1/invoices/" + id + "/mark-uncollectible");
  }
  Reply credit_note(const Json& b) override { return call(Method::post, "/v1/credit-notes", b); }
  Reply credit_notes() override { return call(Method::get, "/v1/credit-notes"); }
  void set_real_time(Instant) override {}
  Reply run() override {
    auto r = platform_.billing->run();
    if (!r) return {http_status(r.error().code), Json{{"detail", r.error().message}}};
    return {200, run_stats(*r)};
  }

 private:
  app::Platform& platform_;
  ApiClient& client_;
  std::string root_;
  std::string tenant_;
};

// ---- scenarios ----------------------------------------------------------------------------------------------------

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed) {}
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(g_);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  std::uint64_t raw() { return g_(); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(v.size()) - 1))];
  }

 private:
  std::mt19937_64 g_;
};

// SplitMix64 over (seed, index): each scenario's own stream, independent of the others.
std::uint64_t scenario_seed(std::uint64_t seed, std::int64_t index) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

enum class OpKind {
  advance,
  change,
  price_version,
  payment_method,
  pause,
  resume,
  cancel_at_end,
  cancel_now,
  pay,
  credit_note,
  void_invoice,
  uncollectible,
  one_off,
  usage,
  run,
};

// One operation, with the randomness it needs; what it acts on is chosen from the model's state when it runs.
struct Op {
  OpKind kind;
  std::uint64_t a = 0, b = 0, c = 0, d = 0;
};

struct TaxSetup {
  std::string country;  // "" = no tax
  std::string region;
  std::optional<bm::TaxRate> country_rate;
  std::optional<bm::TaxRate> region_rate;
};

struct Scenario {
  std::uint64_t seed = 0;
  std::int64_t index = 0;
  std::string tag;  // unique in the run: codes and names
  bool on_clock = true;
  std::string currency = "USD";
  bm::Proration proration = bm::Proration::daily;
  bool downgrade_credit = true;
  TaxSetup tax;
  std::vector<bm::Plan> plans;
  std::optional<bm::Coupon> coupon;
  std::string payment_method = "pm_card_visa";
  Instant start = 0;
  bm::SubscriptionRequest subscription;
  std::vector<Op> ops;
};

const std::vector<std::string> k_cards{"pm_card_visa",
                                       "pm_card_visa",
                                       "pm_card_visa",
                                       "pm_card_mastercard",
                                       "pm_card_chargeDeclined",
                                       "pm_card_chargeDeclinedInsufficientFunds",
                                       "pm_card_chargeDeclinedLostCard",
                                       "pm_card_chargeDeclinedExpiredCard"};

bm::TaxRate random_rate(Rng& r) {
  static const std::vector<std::int64_t> rates{0, 700, 825, 1900, 2000, 2500};
  return {r.chance(0.3) ? r.uniform(1, 3000) : r.pick(rates), r.chance(0.4)};
}

std::int64_t random_price(Rng& r) {
  const auto roll = r.uniform(0, 99);
  if (roll < 5) return 0;
  if (roll < 25) return r.uniform(1, 99);
  if (roll < 75) return r.uniform(100, 50'000);
  return r.uniform(50'001, 2'500'000);
}

bm::PlanVersion random_version(Rng& r, int months, bool metered) {
  bm::PlanVersion v;
  v.months = months;
  v.base_price = random_price(r);
  v.included_seats = r.uniform(1, 3);
  const auto seat_roll = r.uniform(0, 9);
  v.seat_price = seat_roll < 4 ? 0 : seat_roll < 6 ? r.uniform(1, 99) : r.uniform(100, 9000);
  v.trial_days = r.chance(0.2) ? static_cast<int>(r.uniform(1, 30)) : 0;
  if (r.chance(0.5)) {
    v.retry_hours.clear();
    const auto n = r.uniform(0, 4);
    std::set<std::int64_t> hours;
    while (static_cast<std::int64_t>(hours.size()) < n) hours.insert(r.uniform(1, 400));
    v.retry_hours.assign(hours.begin(), hours.end());
    v.final_unpaid = r.chance(0.4);
  }
  if (metered) {
    const auto n = r.uniform(1, 2);
    for (int i = 0; i < n; ++i) {
      bm::MeteredPrice m;
      m.metric = "m" + std::to_string(i);
      switch (r.uniform(0, 3)) {
        case 0:
          m.model = bm::PriceModel::per_unit;
          m.unit_amount = r.uniform(0, 500);
          break;
        case 1:
          m.model = bm::PriceModel::package;
          m.package_size = r.uniform(1, 100);
          m.unit_amount = r.uniform(1, 5000);
          break;
        default: {
          m.model = r.chance(0.5) ? bm::PriceModel::graduated : bm::PriceModel::volume;
          const auto tiers = r.uniform(1, 3);
          std::int64_t up = 0;
          for (int t = 0; t < tiers; ++t) {
            bm::Tier tier;
            if (t + 1 < tiers) {
              up += r.uniform(1, 500);
              tier.up_to = up;
            }
            tier.unit_amount = r.uniform(0, 300);
            tier.flat_amount = r.chance(0.3) ? r.uniform(1, 5000) : 0;
            m.tiers.push_back(tier);
          }
        }
      }
      if (r.chance(0.3)) m.included = r.uniform(0, 1000);
      v.metered.push_back(m);
    }
  }
  return v;
}

Instant random_start(Rng& r) {
  const std::int64_t year = r.uniform(2024, 2030);
  const int month = static_cast<int>(r.uniform(1, 12));
  const std::int64_t second = r.chance(0.5) ? 0 : r.uniform(0, k_day - 1);
  switch (r.uniform(0, 9)) {
    case 0:
    case 1: return bm::instant({year, month, bm::month_length(year, month), second});  // a month's last day
    case 2: return bm::instant({r.chance(0.5) ? 2024 : 2028, 2, 29, second});          // Feb 29
    case 3: return bm::instant({year, 1, 31, second});
    case 4: return bm::instant({year, month, 1, 0});
    default: return bm::instant({year, month, static_cast<int>(r.uniform(1, bm::month_length(year, month))), second});
  }
}

Scenario generate(std::uint64_t seed, std::int64_t index, bool domain) {
  Rng r(scenario_seed(seed, index));
  Scenario s;
  s.seed = seed;
  s.index = index;
  s.tag = base36(static_cast<std::uint64_t>(index));
  s.on_clock = !domain || r.chance(0.75);
  const auto currency_roll = r.uniform(0, 99);
  s.currency = currency_roll < 70 ? "USD" : currency_roll < 85 ? "JPY" : "KWD";
  s.proration = r.chance(0.5) ? bm::Proration::daily : bm::Proration::per_second;
  s.downgrade_credit = !domain || !r.chance(0.2);
  static const std::vector<std::string> countries{"DE", "FR", "US", "JP", "NL", "AT"};
  switch (r.uniform(0, 3)) {
    case 0: break;  // no tax
    case 1:         // the country's rate
      s.tax.country = r.pick(countries);
      s.tax.country_rate = random_rate(r);
      break;
    case 2:  // the region has none: the country's rate applies
      s.tax.country = r.pick(countries);
      s.tax.region = "r" + s.tag;
      s.tax.country_rate = random_rate(r);
      break;
    default:  // the region's own rate (the country's differs)
      s.tax.country = r.pick(countries);
      s.tax.region = "r" + s.tag;
      s.tax.region_rate = random_rate(r);
      if (r.chance(0.7)) s.tax.country_rate = random_rate(r);
  }
  const int base_months = std::vector<int>{1, 3, 12}[static_cast<std::size_t>(r.uniform(0, 2))];
  const auto plan_count = r.uniform(2, 4);
  for (int p = 0; p < plan_count; ++p) {
    bm::Plan plan;
    plan.code = "s" + s.tag + "p" + std::to_string(p);
    const int months = p == 0 || r.chance(0.7) ? base_months : std::vector<int>{1, 3, 12}[r.uniform(0, 2)];
    plan.versions.push_back(random_version(r, months, domain && r.chance(0.4)));
    s.plans.push_back(std::move(plan));
  }
  if (r.chance(0.6)) {
    bm::Coupon c;
    c.code = "s" + s.tag + "c";
    if (r.chance(0.6)) {
      static const std::vector<std::int64_t> percents{10000, 5000, 2500, 1, 3333, 1250};
      c.percent_off_bps = r.chance(0.5) ? r.pick(percents) : r.uniform(1, 10000);
    } else {
      c.amount_off = r.chance(0.3) ? r.uniform(1, 99) : r.uniform(100, 100'000);
    }
    const auto d = r.uniform(0, 2);
    c.duration = d == 0   ? bm::CouponDuration::once
                 : d == 1 ? bm::CouponDuration::repeating
                          : bm::CouponDuration::forever;
    if (c.duration == bm::CouponDuration::repeating) c.months = static_cast<int>(r.uniform(1, 14));
    s.coupon = c;
  }
  {
    const auto roll = r.uniform(0, 99);
    s.payment_method = roll < 70   ? "pm_card_visa"
                       : roll < 78 ? "pm_card_mastercard"
                                   : k_cards[static_cast<std::size_t>(r.uniform(4, 7))];
  }
  s.start = random_start(r);
  auto& req = s.subscription;
  req.plan = static_cast<std::size_t>(r.chance(0.7) ? 0 : r.uniform(0, plan_count - 1));
  if (r.chance(0.6)) req.seats = r.uniform(1, 6);
  const bool plan_trial = s.plans[req.plan].versions[0].trial_days > 0;
  const auto trial_roll = r.uniform(0, 99);
  if (trial_roll < 15) {
    req.trial_days = static_cast<int>(r.uniform(1, 30));
  } else if (trial_roll < 35 || (plan_trial && trial_roll < 60)) {
    req.trial_days = 0;
  }
  if (req.trial_days.value_or(plan_trial ? 1 : 0) == 0 && r.chance(0.25)) {
    req.anchor_day = static_cast<int>(r.uniform(1, 31));
  }
  req.coupon = s.coupon && r.chance(0.8);

  const auto count = r.uniform(3, 12);
  const bool metered =
      std::any_of(s.plans.begin(), s.plans.end(), [](const bm::Plan& p) { return !p.versions[0].metered.empty(); });
  for (int i = 0; i < count; ++i) {
    const auto roll = r.uniform(0, 99);
    OpKind k = OpKind::advance;
    if (roll < 33) {
      k = OpKind::advance;
    } else if (roll < 53) {
      k = OpKind::change;
    } else if (roll < 56) {
      k = OpKind::price_version;
    } else if (roll < 63) {
      k = OpKind::payment_method;
    } else if (roll < 67) {
      k = OpKind::pause;
    } else if (roll < 71) {
      k = OpKind::resume;
    } else if (roll < 73) {
      k = OpKind::cancel_at_end;
    } else if (roll < 74) {
      k = OpKind::cancel_now;
    } else if (roll < 78) {
      k = OpKind::pay;
    } else if (roll < 84) {
      k = OpKind::credit_note;
    } else if (roll < 86) {
      k = OpKind::void_invoice;
    } else if (roll < 88) {
      k = OpKind::uncollectible;
    } else if (roll < 92) {
      k = OpKind::one_off;
    } else if (roll < 99) {
      k = metered ? OpKind::usage : OpKind::advance;
    } else {
      k = OpKind::run;
    }
    s.ops.push_back(Op{k, r.raw(), r.raw(), r.raw(), r.raw()});
  }
  // Then renewals: one to three periods on.
  s.ops.push_back(Op{OpKind::advance, 4, r.raw(), r.raw(), r.raw()});
  return s;
}

// ---- running and checking -----------------------------------------------------------------------------------------

struct Mismatch {
  std::string what;
};

// Invoice and credit note numbers: PREFIX-YYYYMM-NNNNNN from one sequence per prefix and month, gap-free.
struct Numbering {
  std::map<std::string, std::int64_t> last;  // "TEST-INV-202701" -> the last number seen

  static std::pair<std::string, std::int64_t> split(const std::string& number) {
    const auto dash = number.rfind('-');
    return {number.substr(0, dash), std::stoll(number.substr(dash + 1))};
  }
};

// Where the time goes (ATRIUM_BILLING_PROPERTY_PROFILE): setup, operations, checks.
struct Profile {
  double setup = 0, ops = 0, checks = 0;
};
Profile g_profile;

struct Stopwatch {
  explicit Stopwatch(double& into) : into_(into), start_(std::chrono::steady_clock::now()) {}
  ~Stopwatch() { into_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  double& into_;
  std::chrono::steady_clock::time_point start_;
};

class ScenarioRun {
 public:
  ScenarioRun(Driver& driver, app::Platform& platform, const Scenario& s, Numbering& numbering)
      : d_(driver), platform_(platform), s_(s), numbering_(numbering) {}

  // The first mismatch, or nothing.
  std::optional<std::string> run() {
    auto failure = checked();
    cleanup();
    return failure;
  }

  // What the scenario exercised, added to `into` (printed after the run: the generator's reach).
  void tally(std::map<std::string, std::int64_t>& into) const {
    into[s_.on_clock ? "test clock" : "real clock + run"] += 1;
    if (!s_.downgrade_credit) into["downgrade credit off"] += 1;
    if (s_.subscription.anchor_day) into["billing anchor day"] += 1;
    if (m_.tax) into[m_.tax->inclusive ? "tax inclusive" : "tax exclusive"] += 1;
    if (s_.tax.region_rate) into["tax by region"] += 1;
    if (!s_.tax.region.empty() && !s_.tax.region_rate) into["tax country fallback"] += 1;
    if (s_.coupon && s_.subscription.coupon) {
      into[std::string("coupon ") + (s_.coupon->duration == bm::CouponDuration::once        ? "once"
                                     : s_.coupon->duration == bm::CouponDuration::repeating ? "repeating"
                                                                                            : "forever")] += 1;
    }
    for (const auto& inv : m_.invoices) {
      into["invoice " + inv.reason] += 1;
      if (inv.totals.total < 0) into["invoice with a net credit"] += 1;
      if (inv.totals.discount > 0) into["invoice discount"] += 1;
      if (inv.status == "uncollectible" || inv.status == "void") into["invoice " + inv.status] += 1;
      for (const auto& l : inv.lines) {
        if (l.description.starts_with("Discount ")) into["line discount (interval change)"] += 1;
        if (l.description.find("usage reported late") != std::string::npos) into["line late usage"] += 1;
        if (l.kind == "usage" && l.description.find("late") == std::string::npos) into["line usage"] += 1;
        if (l.description.find("(partial period)") != std::string::npos) into["line partial period"] += 1;
        if (l.amount == 0) into["line of 0"] += 1;
      }
      for (const auto& a : inv.attempts) {
        into["charge " + (a.decline.empty() ? a.status : a.decline + " decline")] += 1;
      }
    }
    for (const auto& n : m_.credit_notes) into["credit note " + n.method] += 1;
    if (m_.sub) into["ends " + bm::status_name(m_.sub->status)] += 1;
    into["refused operations"] += refused_;
    into["change invoicing nothing"] += nothing_invoiced_;
  }

 private:
  std::optional<std::string> checked() {
    try {
      {
        Stopwatch watch(g_profile.setup);
        setup();
      }
      for (std::size_t i = 0; i < s_.ops.size(); ++i) {
        Stopwatch watch(g_profile.ops);
        step(s_.ops[i]);
      }
      finish();
    } catch (const Mismatch& m) {
      std::ostringstream out;
      out << m.what << "\n";
      if (!sub_id_.empty()) {
        out << "  the subscription: " << d_.subscription(sub_id_).body.dump() << "\n";
        if (m_.sub) {
          const auto& e = *m_.sub;
          out << "  the model's: " << bm::status_name(e.status) << " plan " << e.plan << " v" << e.version << " seats "
              << e.seats << " period " << bm::rfc3339(e.period_start) << " - " << bm::rfc3339(e.period_end)
              << " anchor " << bm::rfc3339(e.anchor) << " cycle " << e.cycle << "\n";
        }
      }
      out << "scenario " << s_.index << " of seed " << s_.seed << " (" << d_.name() << " driver, "
          << (s_.on_clock ? "test clock" : "real clock") << "), operations:\n";
      for (const auto& line : log_) out << "  " << line << "\n";
      return out.str();
    } catch (const std::exception& e) {
      std::ostringstream out;
      out << "exception: " << e.what() << "\nscenario " << s_.index << " of seed " << s_.seed << " (" << d_.name()
          << " driver), operations:\n";
      for (const auto& line : log_) out << "  " << line << "\n";
      return out.str();
    }
    if (env("ATRIUM_BILLING_PROPERTY_VERBOSE")) {
      std::printf("scenario %lld:\n", static_cast<long long>(s_.index));
      for (const auto& line : log_) std::printf("  %s\n", line.c_str());
    }
    return std::nullopt;
  }

  // Leaves nothing for the billing runs of later scenarios (the run is platform-wide), whatever happened.
  void cleanup() {
    try {
      if (!sub_id_.empty()) (void)d_.cancel(sub_id_, Json{{"at_period_end", false}});
      auto listed = d_.invoices();
      if (listed.ok()) {
        for (const auto& i : listed.body["data"]) {
          const std::string status = i.value("status", "");
          if (status == "open" || status == "draft") (void)d_.void_invoice(i.value("id", ""));
        }
      }
    } catch (const std::exception&) {
    }
    d_.end();
  }

  [[noreturn]] void fail(const std::string& what) { throw Mismatch{what}; }

  static std::string show(const Json& j) { return j.dump(); }
  static std::string show(const std::optional<Instant>& t) { return t ? bm::rfc3339(*t) : "null"; }
  static std::string show(const std::string& s) { return "\"" + s + "\""; }
  static std::string show(bool b) { return b ? "true" : "false"; }
  template <class T>
  requires std::is_integral_v<T>
  static std::string show(T v) { return std::to_string(v); }

  // expected == the JSON value `actual`, without building anything unless they differ (this runs for every field
  // of every invoice after every operation).
  template <class T>
  void eq(const T& expected, const Json& actual, const std::string& where, const char* field) {
    bool same = false;
    if constexpr (std::is_same_v<T, bool>) {
      same = actual.is_boolean() && actual.get<bool>() == expected;
    } else if constexpr (std::is_integral_v<T>) {
      same = actual.is_number_integer() && actual.get<std::int64_t>() == static_cast<std::int64_t>(expected);
    } else {
      same = actual.is_string() && actual.get_ref<const std::string&>() == expected;
    }
    if (!same) fail(where + " " + field + ": expected " + show(expected) + ", got " + actual.dump());
  }
  void eq_time(const std::optional<Instant>& expected, const Json& actual, const std::string& where,
               const char* field) {
    const auto got = seconds_of(actual);
    if (got != expected) fail(where + " " + field + ": expected " + show(expected) + ", got " + show(got));
  }

  template <class A, class B>
  void expect_eq(const A& expected, const B& actual, const std::string& what) {
    if (!(expected == actual)) fail(what + ": expected " + show(expected) + ", got " + show(actual));
  }

  void expect_status(int expected, const Reply& r, const std::string& what) {
    if (expected >= 300) ++refused_;
    const bool expected_ok = expected < 300;
    if (expected_ok != r.ok() || (!expected_ok && expected != r.status)) {
      fail(what + ": expected status " + std::to_string(expected) + ", got " + std::to_string(r.status) + " " +
           r.body.dump());
    }
  }

  Reply must(const Reply& r, const std::string& what) {
    if (!r.ok()) fail(what + " failed: " + std::to_string(r.status) + " " + r.body.dump());
    return r;
  }

  static std::string rate_name(const bm::TaxRate& t) { return t.inclusive ? "incl" : "excl"; }

  Json plan_json(const bm::Plan& p) const {
    const bm::PlanVersion& v = p.versions.back();
    Json j{
        {"code", p.code},
        {"name", "Plan " + p.code},
        {"tier", "starter"},
        {"currency", s_.currency},
        {"interval", v.months == 1   ? "monthly"
                     : v.months == 3 ? "quarterly"
                                     : "annual"},
        {"base_price", v.base_price},
        {"included_seats", v.included_seats},
        {"seat_price", v.seat_price},
        {"trial_days", v.trial_days},
        {"dunning", {{"retry_schedule_hours", v.retry_hours}, {"final_action", v.final_unpaid ? "unpaid" : "cancel"}}}};
    if (!v.metered.empty()) {
      Json prices = Json::array();
      Json quotas = Json::object();
      for (const auto& m : v.metered) {
        static const char* models[] = {"per_unit", "graduated", "volume", "package"};
        Json price{{"metric", m.metric}, {"model", models[static_cast<int>(m.model)]}};
        if (m.model == bm::PriceModel::per_unit || m.model == bm::PriceModel::package) {
          price["unit_amount"] = m.unit_amount;
        }
        if (m.model == bm::PriceModel::package) price["package_size"] = m.package_size;
        if (m.model == bm::PriceModel::graduated || m.model == bm::PriceModel::volume) {
          Json tiers = Json::array();
          for (const auto& t : m.tiers) {
            Json tier{{"unit_amount", t.unit_amount}, {"flat_amount", t.flat_amount}};
            if (t.up_to) tier["up_to"] = *t.up_to;
            tiers.push_back(tier);
          }
          price["tiers"] = tiers;
        }
        prices.push_back(price);
        if (m.included > 0) {
          quotas["q" + m.metric] = {{"metric", m.metric}, {"limit", m.included}, {"enforcement", "soft"}};
        }
      }
      j["metered_prices"] = prices;
      if (!quotas.empty()) j["quotas"] = quotas;
    }
    return j;
  }

  void setup() {
    m_.plans = s_.plans;
    m_.coupon = s_.coupon;
    m_.proration = s_.proration;
    m_.downgrade_credit = s_.downgrade_credit;
    m_.on_clock = s_.on_clock;
    m_.clock_now = s_.start;
    m_.real_now = d_.domain() ? s_.start : k_api_real_now;
    m_.usage_grace = k_grace;
    m_.payment_method = s_.payment_method;
    d_.begin("prop-" + s_.tag + "-" + d_.name(), s_.downgrade_credit, m_.real_now, &m_.events);
    log_.push_back("start " + bm::rfc3339(s_.start) + ", " + s_.currency + ", proration " +
                   (s_.proration == bm::Proration::daily ? "daily" : "per_second") +
                   (s_.downgrade_credit ? "" : ", downgrade credit off"));
    for (const auto& p : s_.plans) {
      const auto& v = p.versions[0];
      auto r = must(d_.create_plan(plan_json(p)), "create plan " + p.code);
      plan_ids_.push_back(r.body.value("id", ""));
      log_.push_back("plan " + p.code + ": " + std::to_string(v.months) + " months, base " +
                     std::to_string(v.base_price) + ", " + std::to_string(v.included_seats) + " seats included, seat " +
                     std::to_string(v.seat_price) + ", trial " + std::to_string(v.trial_days) + ", " +
                     std::to_string(v.metered.size()) + " metered prices");
    }
    if (s_.coupon) {
      const auto& c = *s_.coupon;
      Json j{{"code", c.code},
             {"name", c.code},
             {"duration", c.duration == bm::CouponDuration::once        ? "once"
                          : c.duration == bm::CouponDuration::repeating ? "repeating"
                                                                        : "forever"}};
      if (c.percent_off_bps > 0) {
        j["percent_off_bps"] = c.percent_off_bps;
      } else {
        j["amount_off"] = c.amount_off;
        j["currency"] = s_.currency;
      }
      if (c.duration == bm::CouponDuration::repeating) j["duration_months"] = c.months;
      must(d_.create_coupon(j), "create coupon");
      log_.push_back("coupon " + j.dump());
    }
    const auto& tax = s_.tax;
    if (tax.country_rate) {
      must(d_.put_tax_rate({{"country", tax.country},
                            {"region", ""},
                            {"name", "VAT"},
                            {"bps", tax.country_rate->bps},
                            {"inclusive", tax.country_rate->inclusive}}),
           "tax rate");
    }
    if (tax.region_rate) {
      must(d_.put_tax_rate({{"country", tax.country},
                            {"region", tax.region},
                            {"name", "Sales tax"},
                            {"bps", tax.region_rate->bps},
                            {"inclusive", tax.region_rate->inclusive}}),
           "tax rate");
    }
    if (!tax.country.empty()) m_.tax = tax.region_rate ? tax.region_rate : tax.country_rate;
    log_.push_back("account " + (tax.country.empty() ? std::string("without tax") : tax.country + "/" + tax.region) +
                   (m_.tax ? " taxed " + std::to_string(m_.tax->bps) + " bps " + rate_name(*m_.tax) : "") + ", " +
                   s_.payment_method);
    Json account{{"legal_name", "Scenario " + s_.tag},
                 {"email", "billing@s" + s_.tag + ".test"},
                 {"currency", s_.currency},
                 {"payment_method", s_.payment_method},
                 {"proration", s_.proration == bm::Proration::daily ? "daily" : "per_second"}};
    if (!tax.country.empty()) account["country"] = tax.country;
    if (!tax.region.empty()) account["region"] = tax.region;
    must(d_.put_account(account, false), "put account");
    if (s_.on_clock) {
      must(d_.put_account({{"test_mode", true}}, true), "test mode");
      auto c = must(d_.create_clock({{"name", "s" + s_.tag}, {"frozen_time", iso(s_.start)}}), "create clock");
      clock_id_ = c.body.value("id", "");
    }
    read_counters();

    // The subscription.
    const auto& req = s_.subscription;
    Json body{{"plan", s_.plans[req.plan].code}};
    if (req.seats) body["seats"] = *req.seats;
    if (req.trial_days) body["trial_days"] = *req.trial_days;
    if (req.anchor_day) body["billing_anchor_day"] = *req.anchor_day;
    if (req.coupon) body["coupon"] = s_.coupon->code;
    if (s_.on_clock) body["test_clock_id"] = clock_id_;
    log_.push_back("subscribe " + body.dump());
    const bm::Expect e = m_.create_subscription(req);
    auto r = d_.subscribe(body);
    expect_status(e.status, r, "subscribe");
    if (!r.ok()) fail("the scenario's subscription was refused: " + r.body.dump());
    sub_id_ = r.body.value("id", "");
    check();
  }

  void step(const Op& op) {
    switch (op.kind) {
      case OpKind::advance: advance(op); break;
      case OpKind::change: change(op); break;
      case OpKind::price_version: price_version(op); break;
      case OpKind::payment_method: {
        const std::string card = k_cards[op.a % k_cards.size()];
        log_.push_back("payment method " + card);
        must(d_.put_account({{"payment_method", card}}, false), "payment method");
        m_.set_payment_method(card);
        break;
      }
      case OpKind::pause: {
        log_.push_back("pause");
        expect_status(m_.pause().status, d_.pause(sub_id_), "pause");
        break;
      }
      case OpKind::resume: {
        log_.push_back("resume");
        expect_status(m_.resume().status, d_.resume(sub_id_), "resume");
        break;
      }
      case OpKind::cancel_at_end:
      case OpKind::cancel_now: {
        const bool at_end = op.kind == OpKind::cancel_at_end;
        log_.push_back(at_end ? "cancel at period end" : "cancel now");
        expect_status(m_.cancel(at_end).status, d_.cancel(sub_id_, Json{{"at_period_end", at_end}}), "cancel");
        break;
      }
      case OpKind::pay: {
        auto k = pick_invoice(op.a, [](const bm::Invoice& i) { return i.status == "open"; });
        if (!k) return;
        log_.push_back("pay invoice #" + std::to_string(*k));
        expect_status(m_.pay(*k).status, d_.pay(ids_[*k]), "pay");
        break;
      }
      case OpKind::credit_note: credit_note(op); break;
      case OpKind::void_invoice:
      case OpKind::uncollectible: {
        auto k = pick_invoice(op.a, [](const bm::Invoice& i) { return i.status == "open" || i.status == "draft"; });
        if (!k) return;
        const bool v = op.kind == OpKind::void_invoice;
        log_.push_back(std::string(v ? "void" : "mark uncollectible") + " invoice #" + std::to_string(*k));
        const bm::Expect e = v ? m_.void_invoice(*k) : m_.mark_uncollectible(*k);
        expect_status(e.status, v ? d_.void_invoice(ids_[*k]) : d_.mark_uncollectible(ids_[*k]), "void/uncollectible");
        break;
      }
      case OpKind::one_off: one_off(op); break;
      case OpKind::usage: usage(op); break;
      case OpKind::run: {
        log_.push_back("billing run");
        m_.run_billing(m_.real_now);
        auto r = must(d_.run(), "run");
        if (s_.on_clock) expect_eq(Json(0), r.body["invoices"], "a billing run on a test clock scenario: invoices");
        break;
      }
    }
    check();
  }

  // An invoice chosen by `roll` among those `prefer` likes (any when none), or nothing without invoices.
  template <class Pred>
  std::optional<std::size_t> pick_invoice(std::uint64_t roll, Pred prefer) {
    if (m_.invoices.empty()) return std::nullopt;
    std::vector<std::size_t> preferred;
    for (std::size_t k = 0; k < m_.invoices.size(); ++k) {
      if (prefer(m_.invoices[k])) preferred.push_back(k);
    }
    if (!preferred.empty() && roll % 10 != 0) return preferred[(roll / 10) % preferred.size()];
    return (roll / 10) % m_.invoices.size();
  }

  // The moment an advance goes to, from the model's state.
  Instant advance_target(const Op& op) {
    const Instant now = m_.now();
    const Instant end = m_.sub ? m_.sub->period_end : now + 30 * k_day;
    std::optional<Instant> retry;
    for (const auto& inv : m_.invoices) {
      if (inv.status == "open" && inv.next_payment_attempt && *inv.next_payment_attempt > now) {
        retry = retry ? std::min(*retry, *inv.next_payment_attempt) : *inv.next_payment_attempt;
      }
    }
    const std::uint64_t kind = op.a % 20;
    Instant to = now;
    if (op.a == 4) {  // the last operation: renewals
      const int periods = 1 + static_cast<int>(op.b % 3);
      to = std::max(end, now) + (periods - 1) * 31 * k_day + static_cast<Instant>(op.c % k_day) + 1;
    } else if (kind < 3) {
      to = end;
    } else if (kind < 4) {
      to = end - 1;
    } else if (kind < 6) {
      to = end + 1 + static_cast<Instant>(op.b % (3 * k_day));
    } else if (kind < 10) {
      to = now + 1 + static_cast<Instant>(op.b % static_cast<std::uint64_t>(std::max<Instant>(end - now, 1)));
    } else if (kind < 12) {
      to = end + static_cast<Instant>(op.b % 3) * 31 * k_day + static_cast<Instant>(op.c % (5 * k_day));
    } else if (kind < 14 && retry) {
      to = *retry;
    } else if (kind < 15) {
      const bm::Civil c = bm::civil(now);
      to = bm::instant({c.year, c.month, bm::month_length(c.year, c.month), 0});
      if (to <= now) to = bm::add_months(to, 1);
    } else {
      to = now + 1 + static_cast<Instant>(op.b % (100 * k_day));
    }
    if (to <= now) to = now + 1 + static_cast<Instant>(op.c % (10 * k_day));
    return std::min(to, now + 5 * 366 * k_day);
  }

  void advance(const Op& op) {
    const Instant to = advance_target(op);
    // A third of the advances of a paused subscription resume it afterwards (after its period ended, often).
    const bool resume_after = m_.sub && m_.sub->status == bm::Status::paused && op.d % 3 == 0;
    if (s_.on_clock) {
      log_.push_back("advance the clock to " + bm::rfc3339(to));
      expect_status(m_.advance_clock(to).status, d_.advance(clock_id_, to), "advance");
      if (resume_after) {
        check();
        log_.push_back("resume");
        expect_status(m_.resume().status, d_.resume(sub_id_), "resume");
      }
      return;
    }
    log_.push_back("real time " + bm::rfc3339(to) + ", billing run twice");
    d_.set_real_time(to);
    m_.run_billing(to);
    must(d_.run(), "billing run");
    check();
    // The same run again at the same moment: nothing left to do.
    auto again = must(d_.run(), "billing run again");
    for (const char* k : {"renewed", "invoices", "charged", "failed", "retried", "cancelled"}) {
      expect_eq(Json(0), again.body[k], std::string("a second billing run at the same moment: ") + k);
    }
    if (resume_after) {
      check();
      log_.push_back("resume");
      expect_status(m_.resume().status, d_.resume(sub_id_), "resume");
    }
  }

  Json change_body(const Op& op, bm::ChangeRequest& req) const {
    Json body = Json::object();
    const auto roll = op.a % 10;
    if (roll < 7) req.plan = static_cast<std::size_t>(op.b % s_.plans.size());
    if (roll >= 4 || !req.plan) req.seats = 1 + static_cast<std::int64_t>(op.c % 8);
    if (req.plan) body["plan"] = s_.plans[*req.plan].code;
    if (req.seats) body["seats"] = *req.seats;
    return body;
  }

  void change(const Op& op) {
    if (!m_.sub) return;
    bm::ChangeRequest req;
    const Json body = change_body(op, req);
    log_.push_back("preview and change " + body.dump() + " at " + bm::rfc3339(m_.now()));
    const bm::PreviewResult expected = m_.preview(req);
    auto preview = d_.preview(sub_id_, body);
    expect_status(expected.expect.status, preview, "preview");
    if (preview.ok()) {
      expect_eq(Json(expected.credit), preview.body["credit"], "preview credit");
      expect_eq(Json(expected.charge), preview.body["charge"], "preview charge");
      expect_eq(Json(expected.net), preview.body["net"], "preview net");
      if (!expected.invoice) {
        if (m_.sub->status != bm::Status::trial) ++nothing_invoiced_;
        expect_eq(Json(nullptr), preview.body["invoice"], "preview invoice");
      } else {
        if (!preview.body["invoice"].is_object()) fail("preview invoice: expected one, got " + preview.body.dump());
        compare_invoice(*expected.invoice, preview.body["invoice"], "preview invoice", true);
      }
    }
    if (op.d % 8 == 0) return;  // only looked
    const std::size_t before = m_.invoices.size();
    const bm::Expect e = m_.change(req);
    auto r = d_.change(sub_id_, body);
    expect_status(e.status, r, "change");
    // The change's invoice is the one its preview showed.
    if (e.ok() && preview.ok() && expected.invoice && m_.invoices.size() > before) {
      const auto& made = m_.invoices.back();
      expect_eq(expected.invoice->totals.total, made.totals.total, "the change's invoice total (model)");
    }
  }

  void price_version(const Op& op) {
    const std::size_t p = op.a % s_.plans.size();
    bm::PlanVersion v = m_.plans[p].versions.back();
    Json body = Json::object();
    const auto old = v.base_price;
    Rng r(op.b);
    v.base_price = random_price(r);
    if (v.base_price == old) v.base_price += 1;
    body["base_price"] = v.base_price;
    if (op.c % 3 == 0) {
      v.seat_price = r.uniform(0, 9000);
      body["seat_price"] = v.seat_price;
    }
    if (op.c % 10 == 1) {
      v.months = std::vector<int>{1, 3, 12}[op.d % 3];
      body["interval"] = v.months == 1 ? "monthly" : v.months == 3 ? "quarterly" : "annual";
    }
    log_.push_back("new version of " + s_.plans[p].code + ": " + body.dump());
    must(d_.update_plan(plan_ids_[p], body), "new plan version");
    m_.new_plan_version(p, v);
  }

  void credit_note(const Op& op) {
    auto k = pick_invoice(op.a, [](const bm::Invoice& i) { return i.status == "open" || i.status == "paid"; });
    if (!k) return;
    std::optional<std::string> method;
    switch (op.b % 5) {
      case 0: method = "invoice"; break;
      case 1: method = "credit_balance"; break;
      case 2: method = "refund"; break;
      default: break;
    }
    const std::int64_t max = m_.creditable(*k, method);
    std::int64_t amount = 1;
    if (max >= 1 && op.c % 8 != 0) {
      amount = 1 + static_cast<std::int64_t>(op.d % static_cast<std::uint64_t>(max));
    } else {
      amount = max + 1;  // more than is left: refused
    }
    Json body{{"invoice_id", ids_[*k]}, {"amount", amount}};
    if (method) body["method"] = *method;
    log_.push_back("credit note on invoice #" + std::to_string(*k) + " " + body.dump());
    const bm::Expect e = m_.credit_note(*k, amount, method);
    expect_status(e.status, d_.credit_note(body), "credit note");
  }

  void one_off(const Op& op) {
    Rng r(op.a);
    std::vector<bm::Line> lines;
    Json body_lines = Json::array();
    const auto n = r.uniform(1, 3);
    for (int i = 0; i < n; ++i) {
      const std::int64_t quantity = r.uniform(1, 5);
      std::int64_t unit = r.chance(0.25) ? -r.uniform(1, 5000) : r.uniform(1, 50'000);
      const std::string description = "Item " + std::to_string(i + 1);
      lines.push_back(bm::Line{"one_off", description, quantity, unit, quantity * unit, 0, 0, false});
      body_lines.push_back({{"description", description}, {"quantity", quantity}, {"unit_amount", unit}});
    }
    log_.push_back("one-off invoice " + body_lines.dump());
    auto created = must(d_.create_invoice({{"lines", body_lines}, {"memo", "scenario " + s_.tag}}), "draft");
    m_.create_draft(lines);
    ids_.push_back(created.body.value("id", ""));
    if (op.b % 5 != 0) {
      const std::size_t k = m_.invoices.size() - 1;
      log_.push_back("finalize invoice #" + std::to_string(k));
      expect_status(m_.finalize(k).status, d_.finalize(ids_[k]), "finalize");
    }
  }

  void usage(const Op& op) {
    if (!m_.sub) return;
    std::set<std::string> metrics;
    for (const auto& p : m_.plans) {
      for (const auto& v : p.versions) {
        for (const auto& mp : v.metered) metrics.insert(mp.metric);
      }
    }
    if (metrics.empty()) return;
    Rng r(op.a);
    const auto n = r.uniform(1, 3);
    const Instant now = m_.now();
    for (int i = 0; i < n; ++i) {
      bm::UsageEvent e;
      e.metric = *std::next(metrics.begin(), static_cast<long>(r.uniform(0, static_cast<long>(metrics.size()) - 1)));
      e.at = now - r.uniform(0, k_grace - 1);  // what ingestion still accepts
      e.quantity = r.chance(0.1) ? r.uniform(1000, 1'000'000) : r.uniform(1, 1000);
      log_.push_back("usage " + e.metric + " " + std::to_string(e.quantity) + " at " + bm::rfc3339(e.at));
      m_.record_usage(e);
    }
  }

  // ---- comparing with the model ----

  void compare_line(const bm::Line& e, const Json& a, const std::string& where) {
    eq(e.kind, a["kind"], where, "kind");
    eq(e.description, a["description"], where, "description");
    eq(e.quantity, a["quantity"], where, "quantity");
    eq(e.unit_amount, a["unit_amount"], where, "unit_amount");
    eq(e.amount, a["amount"], where, "amount");
    eq_time(e.period_start, a["period_start"], where, "period_start");
    eq_time(e.period_end, a["period_end"], where, "period_end");
    eq(e.proration, a["proration"], where, "proration");
  }

  void compare_invoice(const bm::Invoice& e, const Json& a, const std::string& where, bool with_lines) {
    const bm::Totals& t = e.totals;
    {
      eq(t.subtotal, a["subtotal"], where, "subtotal");
      eq(t.discount, a["discount"], where, "discount");
      eq(t.tax, a["tax"], where, "tax");
      eq(t.tax_inclusive, a["tax_inclusive"], where, "tax_inclusive");
      eq(t.total, a["total"], where, "total");
      eq(t.credit_applied, a["credit_applied"], where, "credit_applied");
      eq(t.credit_created, a["credit_created"], where, "credit_created");
      eq(t.amount_due, a["amount_due"], where, "amount_due");
      expect_eq(e.discount_code.empty(), a.value("discount_label", "").empty(), where + " discount label is empty");
      if (!e.discount_code.empty()) {
        expect_eq(true, a.value("discount_label", "").starts_with(e.discount_code + " ("), where + " discount label");
      }
      expect_eq(!m_.tax.has_value(), a.value("tax_label", "").empty(), where + " tax label is empty");
    }
    eq(e.reason, a["billing_reason"], where, "billing_reason");
    eq_time(e.period_start, a["period_start"], where, "period_start");
    eq_time(e.period_end, a["period_end"], where, "period_end");
    if (with_lines) {
      const Json& lines = a["lines"];
      expect_eq(e.lines.size(), lines.size(), where + " line count");
      for (std::size_t i = 0; i < e.lines.size(); ++i) {
        compare_line(e.lines[i], lines[i], where + " line " + std::to_string(i + 1));
      }
    }
  }

  void compare_state(const bm::Invoice& e, const Json& a, const std::string& where) {
    eq(e.status, a["status"], where, "status");
    eq(e.amount_paid, a["amount_paid"], where, "amount_paid");
    eq(e.amount_remaining, a["amount_remaining"], where, "amount_remaining");
    eq(e.attempt_count, a["attempt_count"], where, "attempt_count");
    eq_time(e.next_payment_attempt, a["next_payment_attempt"], where, "next_payment_attempt");
    eq_time(e.finalized_at, a["finalized_at"], where, "finalized_at");
    eq_time(e.paid_at, a["paid_at"], where, "paid_at");
    eq_time(e.voided_at, a["voided_at"], where, "voided_at");
    expect_eq(e.subscription, a["subscription_id"].is_string(), where + " has a subscription");
    expect_eq(e.on_clock, a["test_clock_id"].is_string(), where + " is on the test clock");
    if (!e.finalized_at) {
      if (!a["number"].is_null()) fail(where + " number: expected null, got " + a["number"].dump());
    } else {
      if (!a["number"].is_string()) fail(where + ": no number: " + a.dump());
      const auto [prefix, n] = Numbering::split(a["number"].get<std::string>());
      expect_eq((e.on_clock ? "TEST-INV-" : "INV-") + std::to_string(bm::year_month(*e.finalized_at)), prefix,
                where + " number's prefix and month");
    }
  }

  void compare_attempts(const bm::Invoice& e, const Json& a, const std::string& where) {
    const Json& attempts = a["payment_attempts"];
    expect_eq(e.attempts.size(), attempts.size(), where + " payment attempts");
    for (std::size_t i = 0; i < e.attempts.size(); ++i) {
      const auto& x = e.attempts[i];
      const Json& y = attempts[i];
      const std::string w = where + " attempt " + std::to_string(i + 1);
      eq(static_cast<int>(i) + 1, y["attempt"], w, "number");
      eq(x.amount, y["amount"], w, "amount");
      eq(x.payment_method, y["payment_method"], w, "payment_method");
      eq(x.status, y["status"], w, "status");
      eq(x.decline, y["decline"], w, "decline");
      eq_time(x.created_at, y["created_at"], w, "created_at");
    }
  }

  // Reads everything and compares it with the model, then checks the invariants.
  void check() {
    Stopwatch watch(g_profile.checks);
    // The account.
    auto account = must(d_.get_account(), "account");
    expect_eq(Json(m_.credit_balance), account.body["credit_balance"], "credit_balance");
    // The subscription.
    if (m_.sub) {
      const auto& e = *m_.sub;
      auto r = must(d_.subscription(sub_id_), "subscription");
      const Json& a = r.body;
      expect_eq(Json(bm::status_name(e.status)), a["status"], "subscription status");
      expect_eq(Json(plan_ids_[e.plan]), a["plan_id"], "subscription plan");
      expect_eq(Json(e.version), a["plan_version"], "subscription plan_version");
      expect_eq(Json(e.seats), a["seats"], "subscription seats");
      expect_eq(std::optional<Instant>(e.anchor), seconds_of(a["billing_anchor"]), "billing_anchor");
      expect_eq(std::optional<Instant>(e.period_start), seconds_of(a["current_period_start"]), "current_period_start");
      expect_eq(std::optional<Instant>(e.period_end), seconds_of(a["current_period_end"]), "current_period_end");
      expect_eq(e.trial_end, seconds_of(a["trial_end"]), "trial_end");
      expect_eq(Json(e.cancel_at_period_end), a["cancel_at_period_end"], "cancel_at_period_end");
      expect_eq(e.cancelled_at, seconds_of(a["cancelled_at"]), "cancelled_at");
      expect_eq(e.paused_at, seconds_of(a["paused_at"]), "paused_at");
    }
    // Invoices in the order they were made: those already known by their ids, then the new ones by the time they
    // were made and their number (one sequence per month; ids are not used for the order: the clocks that make
    // them differ between the scenario, the platform and the gateway).
    auto listed = must(d_.invoices(), "invoices");
    std::map<std::string, Json> by_id;
    for (const auto& i : listed.body["data"]) by_id[i.value("id", "")] = i;
    std::vector<Json> list;
    for (const auto& id : ids_) {
      auto it = by_id.find(id);
      if (it == by_id.end()) fail("invoice " + id + " is missing from the list");
      list.push_back(it->second);
      by_id.erase(it);
    }
    std::vector<Json> fresh;
    for (auto& [id, j] : by_id) fresh.push_back(j);
    std::sort(fresh.begin(), fresh.end(), [](const Json& x, const Json& y) { return made_before(x, y); });
    for (auto& j : fresh) list.push_back(std::move(j));
    if (list.size() != m_.invoices.size()) {
      std::string have;
      for (const auto& i : list)
        have += "\n    " + i.value("billing_reason", "") + " " + std::to_string(i.value("total", 0));
      fail("invoice count: expected " + std::to_string(m_.invoices.size()) + ", got " + std::to_string(list.size()) +
           have);
    }
    std::map<std::string, std::vector<std::int64_t>> new_numbers;
    for (std::size_t k = 0; k < list.size(); ++k) {
      const bm::Invoice& e = m_.invoices[k];
      const Json& a = list[k];
      const std::string where = "invoice #" + std::to_string(k) + " (" + e.reason + ")";
      if (k >= ids_.size()) ids_.push_back(a.value("id", ""));
      expect_eq(ids_[k], a.value("id", ""), where + " id");
      try {
        compare_state(e, a, where);
      } catch (const Mismatch& m) {
        fail(m.what + "\n  the invoice: " + must(d_.invoice(ids_[k]), "invoice").body.dump() +
             "\n  the model's: " + describe(e));
      }
      if (k >= seen_.size()) seen_.resize(k + 1);
      Seen& seen = seen_[k];
      const std::string status = e.status;
      const bool numbered = a["number"].is_string();
      const bool full = !seen.lines_checked || (status != "draft" && !seen.finalized) ||
                        seen.attempts != e.attempts.size() || seen.status != status;
      if (full) {
        auto detail = must(d_.invoice(ids_[k]), "invoice " + ids_[k]);
        compare_invoice(e, detail.body, where, true);
        compare_attempts(e, detail.body, where);
        check_arithmetic(detail.body, where);
        seen.lines_checked = true;
        seen.attempts = e.attempts.size();
        seen.status = status;
      } else {
        compare_invoice(e, a, where, false);
      }
      if (numbered) check_amounts(a, where);
      if (numbered && !seen.finalized) {
        const auto [prefix, n] = Numbering::split(a["number"].get<std::string>());
        new_numbers[prefix].push_back(n);
      }
      seen.finalized = numbered;
    }
    check_numbers(new_numbers, "invoice");
    if (!m_.credit_notes.empty() && m_.credit_notes.size() != notes_seen_) check_credit_notes();
    check_conservation(list, account.body.value("credit_balance", std::int64_t{0}));
    check_periods(list);
  }

  static std::string describe(const bm::Invoice& e) {
    std::ostringstream out;
    out << e.reason << " " << e.status << " total " << e.totals.total << " due " << e.totals.amount_due << " paid "
        << e.amount_paid << " remaining " << e.amount_remaining << " next " << show(e.next_payment_attempt)
        << " attempts";
    for (const auto& a : e.attempts)
      out << " [" << a.amount << " " << a.status << " " << a.decline << " " << bm::rfc3339(a.created_at) << "]";
    return out.str();
  }

  // Whether x was made before y: by creation time, then number (drafts, without one, come last).
  static bool made_before(const Json& x, const Json& y) {
    const auto sequence = [](const Json& j) {
      return j["number"].is_string() ? Numbering::split(j["number"].get<std::string>()).second
                                     : std::numeric_limits<std::int64_t>::max();
    };
    return std::pair(seconds_of(x["created_at"]).value_or(0), sequence(x)) <
           std::pair(seconds_of(y["created_at"]).value_or(0), sequence(y));
  }

  // Σ lines = subtotal; subtotal − discount + added tax = total; total = due + applied − created.
  void check_arithmetic(const Json& inv, const std::string& where) {
    std::int64_t sum = 0;
    for (const auto& l : inv["lines"]) sum += l.value("amount", std::int64_t{0});
    expect_eq(inv.value("subtotal", std::int64_t{0}), sum, where + ": the lines add up to the subtotal");
  }

  void check_amounts(const Json& a, const std::string& where) {
    const auto v = [&](const char* k) { return a.value(k, std::int64_t{0}); };
    const std::int64_t added = a.value("tax_inclusive", false) ? 0 : v("tax");
    expect_eq(v("total"), v("subtotal") - v("discount") + added, where + ": subtotal - discount + added tax = total");
    expect_eq(v("total"), v("amount_due") + v("credit_applied") - v("credit_created"),
              where + ": total = amount_due + credit_applied - credit_created");
    for (const char* k : {"amount_due", "amount_paid", "amount_remaining", "credit_applied", "credit_created"}) {
      if (v(k) < 0) fail(where + ": " + k + " is negative: " + a.dump());
    }
    if (v("discount") < 0 || v("discount") > std::max<std::int64_t>(v("subtotal"), 0)) {
      fail(where + ": the discount is outside [0, max(subtotal, 0)]: " + a.dump());
    }
    const std::int64_t taxable = v("subtotal") - v("discount");
    if ((v("tax") > 0 && taxable < 0) || (v("tax") < 0 && taxable > 0)) {
      fail(where + ": the tax's sign is not the taxable amount's: " + a.dump());
    }
    expect_eq(std::max<std::int64_t>(-v("total"), 0), v("credit_created"), where + ": credit_created = max(-total, 0)");
  }

  // The account's credit balance is what invoices and credit notes created minus what invoices used (a voided
  // invoice gives back what it used), and what an invoice asked for is paid, still due, or credited.
  void check_conservation(const std::vector<Json>& list, std::int64_t balance) {
    std::int64_t created = 0, applied = 0, notes_to_balance = 0;
    std::map<std::string, std::int64_t> noted_on_invoice;
    for (const auto& n : m_.credit_notes) {
      if (n.method == "credit_balance") notes_to_balance += n.amount;
      if (n.method == "invoice") noted_on_invoice[ids_[n.invoice]] += n.amount;
    }
    for (const auto& a : list) {
      const std::string status = a.value("status", "");
      if (!a["number"].is_string()) continue;  // never finalized
      created += a.value("credit_created", std::int64_t{0});
      if (status != "void") applied += a.value("credit_applied", std::int64_t{0});
      const std::int64_t due = a.value("amount_due", std::int64_t{0});
      const std::int64_t paid = a.value("amount_paid", std::int64_t{0});
      const std::int64_t remaining = a.value("amount_remaining", std::int64_t{0});
      const std::int64_t noted = noted_on_invoice[a.value("id", "")];
      if (status == "void") {
        expect_eq(std::int64_t{0}, remaining, "a void invoice asks nothing");
        if (paid + noted > due) fail("a void invoice was paid more than it asked: " + a.dump());
      } else {
        expect_eq(due, paid + remaining + noted,
                  "invoice " + a.value("number", "") + ": amount_due = amount_paid + amount_remaining + credited");
      }
      if (status == "paid") expect_eq(std::int64_t{0}, remaining, "a paid invoice asks nothing");
      if (status == "open" && remaining <= 0) fail("an open invoice asks nothing: " + a.dump());
    }
    expect_eq(created - applied + notes_to_balance, balance,
              "credit conservation: credit_balance = credits created - credits applied + credit notes to the balance");
  }

  // One invoice per period: the subscription's period invoices (create, cycle, resume) start at distinct instants.
  void check_periods(const std::vector<Json>& list) {
    std::set<Instant> starts;
    for (const auto& a : list) {
      const std::string reason = a.value("billing_reason", "");
      if (reason != "subscription_create" && reason != "subscription_cycle" && reason != "subscription_resume")
        continue;
      const auto start = seconds_of(a["period_start"]).value_or(-1);
      if (!starts.insert(start).second) fail("two invoices for the period starting " + bm::rfc3339(start));
    }
  }

  void check_credit_notes() {
    auto r = must(d_.credit_notes(), "credit notes");
    // Known notes by id, then the new one (one per operation).
    std::map<std::string, Json> by_id;
    for (const auto& n : r.body["data"]) by_id[n.value("id", "")] = n;
    std::vector<Json> list;
    for (const auto& id : note_ids_) {
      auto it = by_id.find(id);
      if (it == by_id.end()) fail("credit note " + id + " is missing from the list");
      list.push_back(it->second);
      by_id.erase(it);
    }
    for (auto& [id, n] : by_id) {
      note_ids_.push_back(id);
      list.push_back(n);
    }
    expect_eq(m_.credit_notes.size(), list.size(), "credit note count");
    std::map<std::string, std::vector<std::int64_t>> new_numbers;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto& e = m_.credit_notes[i];
      const Json& a = list[i];
      const std::string where = "credit note " + std::to_string(i + 1);
      eq(ids_[e.invoice], a["invoice_id"], where, "invoice");
      eq(e.amount, a["amount"], where, "amount");
      eq(e.method, a["method"], where, "method");
      eq_time(e.created_at, a["created_at"], where, "created_at");
      const auto [prefix, n] = Numbering::split(a.value("number", "X-0"));
      expect_eq((e.on_clock ? "TEST-CN-" : "CN-") + std::to_string(bm::year_month(e.created_at)), prefix,
                where + " number's prefix and month");
      if (e.method == "refund" && a.value("reference", "").empty()) fail(where + ": the refund has no reference");
      if (i >= notes_seen_) new_numbers[prefix].push_back(n);
    }
    notes_seen_ = list.size();
    check_numbers(new_numbers, "credit note");
  }

  void read_counters() {
    // Other scenarios number from the same sequences: start from where they are.
    numbering_.last.clear();
    auto r = platform_.db().transact(
        [&](storage::Transaction& tx) -> Result<void> {
          auto rows = tx.execute(storage::Statement{"property_counters", "SELECT name, value FROM billing_counters"});
          if (!rows) return std::unexpected(rows.error());
          for (std::size_t i = 0; i < rows->rows.size(); ++i) {
            const std::string name = rows->text_at(i, 0).value_or("");
            const auto colon = name.find(':');
            if (colon == std::string::npos) continue;
            const std::string kind = name.substr(0, colon);
            const std::string prefix = kind == "invoice"            ? "INV"
                                       : kind == "test-invoice"     ? "TEST-INV"
                                       : kind == "credit_note"      ? "CN"
                                       : kind == "test-credit_note" ? "TEST-CN"
                                                                    : "";
            if (!prefix.empty())
              numbering_.last[prefix + "-" + name.substr(colon + 1)] = rows->int_at(i, 1).value_or(0);
          }
          return {};
        },
        {.read_only = true});
    if (!r) fail("billing_counters: " + r.error().message);
  }

  // New numbers continue their sequence without a gap.
  void check_numbers(std::map<std::string, std::vector<std::int64_t>>& fresh, const std::string& what) {
    for (auto& [prefix, numbers] : fresh) {
      std::sort(numbers.begin(), numbers.end());
      std::int64_t& last = numbering_.last[prefix];
      for (const auto n : numbers) {
        if (n != last + 1) {
          fail(what + " numbers are not gap-free: " + prefix + "-" + std::to_string(n) + " follows " +
               std::to_string(last));
        }
        last = n;
      }
    }
  }

  void finish() {
    check();
    check_credit_notes();
    // The provider's ledger: each attempt the invoices record is one charge there, with the same outcome, and
    // what was charged is what the invoices say was paid.
    std::vector<std::pair<std::string, std::int64_t>> keys;  // idempotency key, expected succeeded amount
    std::vector<std::string> refund_keys;
    for (std::size_t k = 0; k < m_.invoices.size(); ++k) {
      const auto& inv = m_.invoices[k];
      std::int64_t collected = 0;
      for (std::size_t i = 0; i < inv.attempts.size(); ++i) {
        keys.emplace_back("invoice:" + ids_[k] + ":" + std::to_string(i + 1),
                          inv.attempts[i].status == "succeeded" ? inv.attempts[i].amount : 0);
        if (inv.attempts[i].status == "succeeded") collected += inv.attempts[i].amount;
      }
      expect_eq(inv.amount_paid, collected, "invoice #" + std::to_string(k) + ": paid = what its charges collected");
    }
    std::int64_t refunded = 0;
    for (const auto& n : m_.credit_notes) {
      if (n.method == "refund") refunded += n.amount;
    }
    std::int64_t ledger_refunds = 0;
    std::vector<std::string> note_ids;
    if (refunded > 0) {
      auto r = must(d_.credit_notes(), "credit notes");
      for (const auto& n : r.body["data"]) {
        if (n.value("method", "") == "refund") note_ids.push_back("credit_note:" + n.value("id", ""));
      }
    }
    auto r = platform_.db().transact(
        [&](storage::Transaction& tx) -> Result<void> {
          for (const auto& [key, amount] : keys) {
            auto rows = tx.execute(
                storage::Statement{"property_ledger",
                                   "SELECT amount, outcome FROM simulated_charges WHERE idempotency_key = $1"},
                {storage::Value(key)});
            if (!rows) return std::unexpected(rows.error());
            if (rows->rows.size() != 1) return atrium::fail(Errc::internal, "no charge " + key + " at the provider");
            const bool ok = rows->text_at(0, 1).value_or("") == "succeeded";
            if ((amount > 0) != ok || (ok && rows->int_at(0, 0).value_or(0) != amount)) {
              return atrium::fail(Errc::internal, "the provider's charge " + key + " is not what the invoice recorded");
            }
          }
          for (const auto& key : note_ids) {
            auto rows =
                tx.execute(storage::Statement{"property_refund",
                                              "SELECT amount FROM simulated_charges WHERE idempotency_key = $1"},
                           {storage::Value(key)});
            if (!rows) return std::unexpected(rows.error());
            if (rows->rows.size() == 1) ledger_refunds += rows->int_at(0, 0).value_or(0);
          }
          return {};
        },
        {.read_only = true});
    if (!r) fail("ledger: " + r.error().message);
    expect_eq(refunded, ledger_refunds, "refunded by credit notes = refunded at the provider");
  }

  struct Seen {
    bool lines_checked = false;
    bool finalized = false;
    std::size_t attempts = 0;
    std::string status;
  };

  Driver& d_;
  app::Platform& platform_;
  const Scenario& s_;
  Numbering& numbering_;
  bm::Model m_;
  std::vector<std::string> log_;
  std::vector<std::string> plan_ids_;
  std::vector<std::string> ids_;  // invoice ids by model index
  std::vector<Seen> seen_;
  std::size_t notes_seen_ = 0;
  std::vector<std::string> note_ids_;
  std::string clock_id_;
  std::string sub_id_;
  std::int64_t refused_ = 0;
  std::int64_t nothing_invoiced_ = 0;
};

// ---- the tests ----------------------------------------------------------------------------------------------------

class BillingPropertyTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!backend_enabled(GetParam())) GTEST_SKIP() << "ATRIUM_BILLING_PROPERTY_BACKEND leaves this backend out";
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
  }

  // Runs `count` scenarios of `seed` (or only ATRIUM_BILLING_PROPERTY_INDEX) through `driver`; stops after a few
  // failures.
  void run_scenarios(Driver& driver, app::Platform& platform, std::int64_t count) {
    const std::uint64_t seed = seed_setting();
    std::int64_t first = 0, last = count;
    if (auto only = env("ATRIUM_BILLING_PROPERTY_INDEX")) {
      first = std::stoll(*only);
      last = first + 1;
    }
    if (auto from = env("ATRIUM_BILLING_PROPERTY_FIRST")) first = std::stoll(*from);
    Numbering numbering;
    std::map<std::string, std::int64_t> coverage;
    int failures = 0;
    const auto started = std::chrono::steady_clock::now();
    std::int64_t ran = 0;
    for (std::int64_t i = first; i < last && failures < 3; ++i, ++ran) {
      const Scenario s = generate(seed, i, driver.domain());
      ScenarioRun run(driver, platform, s, numbering);
      auto failure = run.run();
      run.tally(coverage);
      if (failure) {
        ++failures;
        ADD_FAILURE() << *failure << "reproduce: ATRIUM_BILLING_PROPERTY_SEED=" << seed
                      << " ATRIUM_BILLING_PROPERTY_INDEX=" << i
                      << " ATRIUM_BILLING_PROPERTY_BACKEND=" << storage::backend_name(GetParam())
                      << " atrium_tests --gtest_filter='"
                      << ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() << "."
                      << ::testing::UnitTest::GetInstance()->current_test_info()->name() << "'";
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::string reach;
    for (const auto& [what, n] : coverage) reach += (reach.empty() ? "" : ", ") + what + " " + std::to_string(n);
    std::printf("[ billing property ] exercised: %s\n", reach.c_str());
    if (env("ATRIUM_BILLING_PROPERTY_PROFILE")) {
      std::printf("[ billing property ] setup %.1f s, operations %.1f s (checks %.1f s of the two)\n", g_profile.setup,
                  g_profile.ops, g_profile.checks);
    }
    std::printf("[ billing property ] %s %s: %lld scenarios of seed %llu in %.1f s\n", driver.name().c_str(),
                std::string(storage::backend_name(GetParam())).c_str(), static_cast<long long>(ran),
                static_cast<unsigned long long>(seed), seconds);
  }

  static Config config() {
    Config c;
    c.tenancy.cache_ttl_ms = 0;
    c.billing.run_cron = "";
    c.gateway.default_requests_per_second = 0;
    c.gateway.count_api_calls = false;
    return c;
  }
};

TEST_P(BillingPropertyTest, RandomScenariosThroughTheDomainMatchTheReferenceModel) {
  SettableClock clock;
  auto tp = TestPlatform::create(GetParam(), config(), &clock);
  DomainDriver driver(tp->platform(), clock);
  run_scenarios(driver, tp->platform(), scenario_count(GetParam() == Backend::sqlite ? 300 : 150));
}

TEST_P(BillingPropertyTest, RandomScenariosThroughTheApiMatchTheReferenceModel) {
  ManualClock clock{std::chrono::system_clock::time_point(std::chrono::seconds(k_api_real_now))};
  auto tp = TestPlatform::create(GetParam(), config(), &clock);
  ASSERT_TRUE(tp->platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                                tp->platform().audit->recorder({})));
  ApiClient client(tp->platform());
  auto token =
      client.call(Method::post, "/v1/auth/token",
                  Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
  ASSERT_EQ(token.status, 200) << token.body.dump();
  ApiDriver driver(tp->platform(), client, token.body.value("access_token", ""));
  // A tenth of the domain's scenarios: every request goes through routing, security and JSON.
  const std::int64_t ci = GetParam() == Backend::sqlite ? 500 : 300;
  run_scenarios(driver, tp->platform(), std::max<std::int64_t>(1, scenario_count(ci) / 10));
}

INSTANTIATE_TEST_SUITE_P(Backends, BillingPropertyTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(storage::backend_name(info.param));
                         });

}  // namespace
}  // namespace atrium::test
