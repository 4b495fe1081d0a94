#pragma once

// What billing is asked to do, typed. The API decodes its JSON bodies into these (src/api/billing_input.cpp); the
// CLI, tests and benchmarks build them directly. A member left unset means "not given": the default, or for an
// update, unchanged. Billing checks the rules (codes, currencies, tiers, who may change what) whatever the caller.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "billing/calendar.hpp"
#include "billing/invoice_math.hpp"
#include "billing/quotas.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::billing {

enum class FinalAction { cancel, unpaid };

// Payment retries after a failed charge: offsets in hours from the first failure, then the final action.
// Default: Stripe's recommendation of 8 tries within 2 weeks (the first charge and 7 retries).
struct DunningPolicy {
  std::vector<std::int64_t> retry_hours{24, 72, 120, 168, 216, 264, 336};
  FinalAction final_action = FinalAction::cancel;
};

// A plan's price fields: all the required ones for a new plan (currency, base_price), any for an update (a
// change to one of them makes a new price version).
struct PriceFields {
  std::optional<std::string> currency;  // ISO 4217
  std::optional<Interval> interval;
  std::optional<std::int64_t> base_price;
  std::optional<std::int64_t> included_seats;
  std::optional<std::int64_t> seat_price;
  std::optional<std::int64_t> trial_days;
  std::optional<Json> features;  // apiCalls, storage, support, sla
  std::optional<Json> limits;    // projects, integrations, customDomains, requestsPerSecond, burst
  std::optional<std::vector<MeteredPrice>> metered;
  std::optional<std::vector<Quota>> quotas;
  std::optional<DunningPolicy> dunning;
};

struct NewPlan {
  std::string code;  // 1-64 letters, digits, '-' or '_'
  std::string name;
  std::string tier;  // free | starter | professional | business | enterprise
  std::optional<bool> active;
  PriceFields price;
};

struct PlanUpdate {
  std::optional<std::string> name;
  std::optional<std::string> tier;
  std::optional<bool> active;
  PriceFields price;
};

struct NewCoupon {
  std::string code;
  std::optional<std::string> name;              // default: the code
  std::optional<std::int64_t> percent_off_bps;  // exactly one of percent_off_bps and amount_off
  std::optional<std::int64_t> amount_off;
  std::optional<std::string> currency;          // with amount_off
  std::optional<std::string> duration;          // once (default) | repeating | forever
  std::optional<std::int64_t> duration_months;  // with repeating
  std::optional<std::int64_t> max_redemptions;
  std::optional<Instant> redeem_by;
};

struct TaxRateInput {
  std::string country;  // ISO 3166-1 alpha-2
  std::optional<std::string> region;
  std::optional<std::string> name;
  std::optional<std::int64_t> bps;  // required
  std::optional<bool> inclusive;
};

// Creates the account (legal_name, email and currency required) or changes the fields given.
struct AccountUpdate {
  std::optional<std::string> legal_name;
  std::optional<std::string> email;
  std::optional<std::vector<std::string>> address;
  std::optional<std::string> country;
  std::optional<std::string> region;
  std::optional<std::string> currency;
  std::optional<std::vector<std::string>> tax_ids;
  std::optional<std::string> payment_method;
  std::optional<std::string> proration;  // daily | per_second
  std::optional<bool> test_mode;         // super admins only
};

struct NewSubscription {
  std::string plan;  // code or id
  std::optional<std::int64_t> seats;
  std::optional<std::int64_t> trial_days;  // default: the plan's
  std::optional<std::int64_t> billing_anchor_day;
  std::optional<std::string> coupon;
  std::optional<std::string> test_clock_id;
};

// A plan change: another plan (code or id), other seats, or both.
// How a change prorates (Stripe's proration_behavior; its create_prorations is not offered, docs/billing.md).
enum class ProrationBehavior { always_invoice, none };

struct PlanChange {
  std::optional<std::string> plan;
  std::optional<std::int64_t> seats;
  ProrationBehavior proration_behavior = ProrationBehavior::always_invoice;
  // Prorate as of this instant instead of now (what a preview answered), within the current period and not after now.
  std::optional<Instant> proration_date;
};

struct Cancellation {
  bool at_period_end = false;  // false: now
};

struct ManualLine {
  std::string description;
  std::int64_t quantity = 1;
  std::int64_t unit_amount = 0;  // minor units; negative for a discount line
};

// A one-off draft invoice (super admins).
struct ManualInvoice {
  std::vector<ManualLine> lines;  // 1-500
  std::string memo;
};

struct NewCreditNote {
  std::string invoice_id;
  std::int64_t amount = 0;            // minor units, > 0
  std::optional<std::string> method;  // refund | credit_balance | invoice; by default from the invoice's status
  std::optional<std::string> reason;  // duplicate | fraudulent | order_change | product_unsatisfactory | other
  std::string memo;
};

struct NewTestClock {
  std::string name;
  std::optional<Instant> frozen_time;  // default: now
};

// Billing's JSON forms of its values, as stored and as the API and configuration take them (docs/openapi.yaml):
// invalid_argument naming the member.
// {"retry_schedule_hours": [h, ...], "final_action": "cancel" | "unpaid"}; null gives the default policy.
Result<DunningPolicy> parse_dunning(const Json& value);
// [{"metric", "model", "unit_amount", "package_size", "tiers": [{"up_to", "unit_amount", "flat_amount"}]}]
Result<std::vector<MeteredPrice>> parse_metered_list(const Json& value);

}  // namespace atrium::billing
