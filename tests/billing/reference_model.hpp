#pragma once

// An independent reference model of Atrium's billing, written for the property tests (property_test.cpp) from the
// contract in docs/billing.md: it never calls src/billing. Given the same operations it predicts every amount,
// line, status, attempt and date the billing engine must produce, so the tests can compare them one by one.
//
// Scope: one billing account with at most one subscription at a time, on a test clock ("clock" mode: time moves
// by advancing the clock, which processes every due moment in order) or on the real clock ("real" mode: time moves
// by setting the clock and running the billing run). The simulated gateway's test cards decide each charge; a
// network error (unknown outcome) is not modelled.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace atrium::test::billing_model {

using Instant = std::int64_t;

// ---- arithmetic and calendar, written again (not calling src/billing) -------------------------------------------

// numerator / denominator rounded half away from zero; denominator != 0.
std::int64_t round_half_away(__int128 numerator, __int128 denominator);
// round(amount * bps / 10000).
std::int64_t bps_of(std::int64_t amount, std::int64_t bps);

struct Civil {
  std::int64_t year = 1970;
  int month = 1;  // 1-12
  int day = 1;    // 1-31
  std::int64_t second_of_day = 0;
};
Civil civil(Instant t);
Instant instant(const Civil& c);
int month_length(std::int64_t year, int month);
// t moved by `months` calendar months (negative: back), the day clamped to the target month's length.
Instant add_months(Instant t, std::int64_t months);
// The first instant strictly after t on day `day` (clamped) of a month at t's time of day.
Instant next_day_of_month(Instant t, int day);
int year_month(Instant t);  // 202701
std::string rfc3339(Instant t);

enum class Proration { daily, per_second };
// R and D of a change at `at` in the period [start, end): daily counts whole days (the day of the change counts as
// remaining), per_second counts seconds.
struct Fraction {
  std::int64_t remaining = 0;
  std::int64_t total = 0;
};
Fraction remaining_fraction(Instant start, Instant end, Instant at, Proration mode);

// ---- catalog ----------------------------------------------------------------------------------------------------

struct Tier {
  std::optional<std::int64_t> up_to;
  std::int64_t unit_amount = 0;
  std::int64_t flat_amount = 0;
};
enum class PriceModel { per_unit, graduated, volume, package };
struct MeteredPrice {
  std::string metric;
  PriceModel model = PriceModel::per_unit;
  std::int64_t unit_amount = 0;
  std::int64_t package_size = 1;
  std::vector<Tier> tiers;
  std::int64_t included = 0;  // the allowance: the plan's soft quota on the metric (0 without one)
};
std::int64_t price_usage(const MeteredPrice& price, std::int64_t quantity);

struct PlanVersion {
  int months = 1;  // 1, 3 or 12
  std::int64_t base_price = 0;
  std::int64_t included_seats = 1;
  std::int64_t seat_price = 0;
  int trial_days = 0;
  std::vector<std::int64_t> retry_hours{24, 72, 120, 168, 216, 264, 336};
  bool final_unpaid = false;  // the dunning policy's final action: unpaid (else cancel)
  std::vector<MeteredPrice> metered;
};
struct Plan {
  std::string code;
  std::vector<PlanVersion> versions;  // version n is versions[n - 1]; the last is current
};
std::int64_t period_amount(const PlanVersion& v, std::int64_t seats);

enum class CouponDuration { once, repeating, forever };
struct Coupon {
  std::string code;
  std::int64_t percent_off_bps = 0;  // exactly one of the two
  std::int64_t amount_off = 0;
  CouponDuration duration = CouponDuration::once;
  int months = 0;  // repeating
};
// What the coupon leaves of `amount`: percent: amount - round(amount * bps / 10000); amount: max(0, amount - off).
std::int64_t net_of(const Coupon& c, std::int64_t amount);

struct TaxRate {
  std::int64_t bps = 0;
  bool inclusive = false;
};

// ---- invoices ---------------------------------------------------------------------------------------------------

struct Line {
  std::string kind;  // subscription | seats | proration | usage | one_off
  std::string description;
  std::int64_t quantity = 1;
  std::int64_t unit_amount = 0;
  std::int64_t amount = 0;
  Instant period_start = 0;
  Instant period_end = 0;
  bool proration = false;
};

struct Totals {
  std::int64_t subtotal = 0;
  std::int64_t discount = 0;
  std::int64_t tax = 0;
  bool tax_inclusive = false;
  std::int64_t total = 0;
  std::int64_t credit_applied = 0;
  std::int64_t credit_created = 0;
  std::int64_t amount_due = 0;
};
Totals compute_totals(const std::vector<Line>& lines, const Coupon* discount, const std::optional<TaxRate>& tax,
                      std::int64_t credit_available);

struct Attempt {
  std::int64_t amount = 0;
  std::string payment_method;
  std::string status;   // succeeded | failed
  std::string decline;  // "" | soft | hard
  Instant created_at = 0;
};

struct Invoice {
  bool subscription = false;  // a subscription's (else one-off)
  bool on_clock = false;
  std::string reason;  // subscription_create | subscription_cycle | subscription_update | subscription_resume | manual
  Instant period_start = 0;
  Instant period_end = 0;
  std::vector<Line> lines;
  Totals totals;
  std::string discount_code;  // the coupon whose discount the totals carry
  std::string status;         // draft | open | paid | void | uncollectible
  std::int64_t amount_paid = 0;
  std::int64_t amount_remaining = 0;
  int attempt_count = 0;
  std::optional<Instant> next_payment_attempt;
  Instant created_at = 0;
  std::optional<Instant> finalized_at;
  std::optional<Instant> paid_at;
  std::optional<Instant> voided_at;
  std::vector<Attempt> attempts;
  std::int64_t credited = 0;  // credit notes so far, any method
  std::int64_t refunded = 0;  // refund credit notes
  std::int64_t credited_to_invoice = 0;
};

struct CreditNote {
  std::size_t invoice = 0;
  std::int64_t amount = 0;
  std::string method;
  Instant created_at = 0;
  bool on_clock = false;
};

enum class Status { trial, active, past_due, paused, cancelled, unpaid };
std::string status_name(Status s);

struct Subscription {
  std::size_t plan = 0;
  int version = 1;
  Status status = Status::active;
  std::int64_t seats = 1;
  Instant anchor = 0;
  std::int64_t cycle = 0;
  Instant period_start = 0;
  Instant period_end = 0;
  std::optional<Instant> trial_end;
  bool cancel_at_period_end = false;
  std::optional<Instant> cancelled_at;
  std::optional<Instant> paused_at;
  bool coupon = false;
  Instant coupon_start = 0;
  std::int64_t coupon_uses = 0;
  bool period_discounted = false;
};

// A metered period as usage_billings records it.
struct UsageRecord {
  std::string metric;
  Instant period_start = 0;
  Instant period_end = 0;
  std::int64_t quantity = 0;
  std::int64_t included = 0;
  MeteredPrice price;
  std::int64_t amount = 0;
  std::int64_t billed_quantity = 0;
  std::int64_t billed_amount = 0;
  Instant open_until = 0;
  bool settled = false;
};

struct UsageEvent {
  std::string metric;
  Instant at = 0;  // seconds
  std::int64_t quantity = 0;
};

// The answer the model expects from an operation: a status (200 for success, else 400, 404 or 409).
struct Expect {
  int status = 200;
  bool ok() const { return status < 300; }
};

struct PreviewResult {
  Expect expect;
  std::int64_t credit = 0;
  std::int64_t charge = 0;
  std::int64_t net = 0;
  std::optional<Invoice> invoice;  // what the change would finalize (no id, no number)
};

struct SubscriptionRequest {
  std::size_t plan = 0;
  std::optional<std::int64_t> seats;
  std::optional<int> trial_days;
  std::optional<int> anchor_day;
  bool coupon = false;
};

struct ChangeRequest {
  std::optional<std::size_t> plan;
  std::optional<std::int64_t> seats;
};

class Model {
 public:
  // Scenario settings.
  std::vector<Plan> plans;
  std::optional<Coupon> coupon;
  std::optional<TaxRate> tax;
  std::string payment_method = "pm_card_visa";
  Proration proration = Proration::daily;
  bool downgrade_credit = true;
  bool on_clock = true;          // the subscription lives on a test clock (else the real clock)
  Instant clock_now = 0;         // the test clock's frozen time
  Instant real_now = 0;          // the real clock's
  std::int64_t usage_grace = 0;  // seconds late events are billed after a period's end
  std::int64_t credit_balance = 0;

  std::optional<Subscription> sub;
  std::vector<Invoice> invoices;  // in creation order
  std::vector<CreditNote> credit_notes;
  std::vector<UsageRecord> usage;  // in insertion order
  std::vector<UsageEvent> events;

  // The subscription's time.
  Instant now() const { return on_clock ? clock_now : real_now; }
  Instant now_of(const Invoice& inv) const { return inv.on_clock ? clock_now : real_now; }

  Expect create_subscription(const SubscriptionRequest& r);
  PreviewResult preview(const ChangeRequest& r) const;
  Expect change(const ChangeRequest& r);
  Expect pause();
  Expect resume();
  Expect cancel(bool at_period_end);
  // PUT /v1/billing-account with a payment method.
  void set_payment_method(const std::string& method);
  Expect pay(std::size_t invoice);
  Expect void_invoice(std::size_t invoice);
  Expect mark_uncollectible(std::size_t invoice);
  Expect credit_note(std::size_t invoice, std::int64_t amount, const std::optional<std::string>& method);
  // A one-off draft with `lines` (one_off kind), created at real_now.
  void create_draft(const std::vector<Line>& lines);
  Expect finalize(std::size_t invoice);
  // A new version of plan `p` (the catalog's current version changes; subscriptions keep theirs).
  void new_plan_version(std::size_t p, const PlanVersion& v);
  // The test clock moves to `to`, processing every due moment on the way.
  Expect advance_clock(Instant to);
  // The real clock is `to` (>= real_now) and the billing run runs once.
  void run_billing(Instant to);
  void record_usage(const UsageEvent& e) { events.push_back(e); }

  // The largest amount a credit note may have on `invoice` with `method` (nullopt: the default), and whether the
  // invoice takes one at all; for the generator.
  std::int64_t creditable(std::size_t invoice, const std::optional<std::string>& method) const;

 private:
  const PlanVersion& version_of(const Subscription& s) const { return plans[s.plan].versions[s.version - 1]; }
  std::vector<Line> cycle_lines(const PlanVersion& v, std::int64_t seats, Instant start, Instant end) const;
  // Where the current period began had it not been cut short by a billing anchor day: what proration measures.
  Instant full_period_start(const Subscription& s) const;
  bool coupon_applies_from(const Subscription& s, Instant period_start) const;
  struct Charge {
    std::size_t invoice;
  };
  std::size_t issue(std::vector<Line> lines, const std::string& reason, Instant period_start, Instant period_end,
                    bool with_coupon, Instant at, std::vector<Charge>* charges, bool subscription);
  Invoice price(std::vector<Line> lines, const std::string& reason, Instant period_start, Instant period_end,
                bool with_coupon, Instant at, bool subscription, Subscription* s, bool persist) const;
  void new_attempt(std::size_t invoice, Instant at, std::vector<Charge>& charges);
  int settle(const std::vector<Charge>& charges, Instant at);  // how many charges succeeded
  void record(std::size_t invoice, Instant at);
  void final_action(Invoice& inv, Instant at);
  void settle_status(Instant at);
  void advance_subscription(Instant at, std::vector<Charge>& charges);
  void retry(std::size_t invoice, Instant at, std::vector<Charge>& charges);
  std::vector<Line> usage_lines(Instant from, Instant to, bool bill_period, Instant at);
  // A period that ends without a renewal: late differences and, when from < to, the usage of [from, to), on one
  // `subscription_final` invoice (none when there is nothing to bill).
  void final_usage(Instant from, Instant to, Instant at, std::vector<Charge>& charges);
  void remeasure(UsageRecord& u, Instant at) const;
  bool owes() const;  // an open invoice of the subscription still asks for money
  struct Change {
    Expect expect;
    PlanVersion to;
    std::size_t to_plan = 0;
    int to_version = 1;
    std::int64_t seats = 1;
    bool interval_change = false;
    std::int64_t credit = 0, charge = 0, net = 0;
    std::vector<Line> lines;
    Instant new_period_end = 0;
    bool new_period_discounted = false;
  };
  Change compute_change(const ChangeRequest& r, Instant at) const;
};

// The simulated gateway's test cards: "succeeded", or the decline ("soft" / "hard").
std::string card_outcome(const std::string& payment_method);

}  // namespace atrium::test::billing_model
