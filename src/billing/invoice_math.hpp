#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "billing/calendar.hpp"
#include "core/error.hpp"

namespace atrium::billing {

enum class LineKind { subscription, seats, proration, usage, one_off };
std::string_view line_kind_name(LineKind k);
std::optional<LineKind> parse_line_kind(std::string_view text);

// One invoice line. amount = quantity * unit_amount for priced lines; proration lines carry their own rounded
// amount (negative for credits) with quantity 1 and unit_amount = amount.
struct Line {
  LineKind kind = LineKind::subscription;
  std::string description;
  std::int64_t quantity = 1;
  std::int64_t unit_amount = 0;
  std::int64_t amount = 0;
  Instant period_start{};
  Instant period_end{};
  bool proration = false;
};

// A discount applied to an invoice: percent (basis points, 1-10000) or a fixed amount (> 0) in the invoice's currency.
struct Discount {
  std::int64_t percent_off_bps = 0;  // exactly one of the two is set (non-zero)
  std::int64_t amount_off = 0;
};

// A tax rate in basis points (2000 = 20%, 0-10000). Exclusive: added on top. Inclusive: contained in the prices.
struct TaxRate {
  std::int64_t bps = 0;
  bool inclusive = false;
};

// An invoice's totals, computed once by compute_totals and stored; the rules, all amounts in minor units:
//   subtotal      = sum of line amounts (may be negative when proration credits outweigh charges)
//   discount      = percent: round(max(subtotal, 0) * bps / 10000); amount: min(amount_off, max(subtotal, 0))
//   taxable       = subtotal - discount
//   tax           exclusive: round(taxable * bps / 10000), added;
//                 inclusive: taxable - round(taxable * 10000 / (10000 + bps)), contained
//                 (signed: a negative taxable amount, a net credit, gives back the tax it carries)
//   total         = subtotal - discount + (exclusive ? tax : 0)
//   credit_applied = min(credit_available, max(total, 0)): the account's credit balance used
//   amount_due    = max(total, 0) - credit_applied
//   credit_created = max(-total, 0): a negative total goes to the account's credit balance
// so subtotal - discount + tax_added == total, and total == amount_due + credit_applied - credit_created.
struct Totals {
  std::int64_t subtotal = 0;
  std::int64_t discount = 0;
  std::int64_t tax = 0;
  bool tax_inclusive = false;
  std::int64_t total = 0;
  std::int64_t credit_applied = 0;
  std::int64_t amount_due = 0;
  std::int64_t credit_created = 0;
};
// invalid_argument on overflow, a negative credit_available, or a discount/tax out of range.
Result<Totals> compute_totals(const std::vector<Line>& lines, const std::optional<Discount>& discount,
                              const std::optional<TaxRate>& tax, std::int64_t credit_available);

// Metered prices (per unit, graduated tiers, volume tiers, packages), for usage lines. A tier covers quantities up
// to `up_to` (inclusive; nullopt = no limit, last tier only), at `unit_amount` per unit plus `flat_amount` once.
struct Tier {
  std::optional<std::int64_t> up_to;
  std::int64_t unit_amount = 0;
  std::int64_t flat_amount = 0;
};
enum class PriceModel { per_unit, graduated, volume, package };
std::string_view price_model_name(PriceModel m);
std::optional<PriceModel> parse_price_model(std::string_view text);
struct MeteredPrice {
  std::string metric;
  PriceModel model = PriceModel::per_unit;
  std::int64_t unit_amount = 0;   // per_unit; package: price of one package
  std::int64_t package_size = 1;  // package: units per package, partial packages round up
  std::vector<Tier> tiers;        // graduated / volume: ascending up_to, the last one unbounded
};
// Checks tiers ascending, last unbounded, amounts >= 0, package_size >= 1; the message names the problem. Tiers
// belong to graduated and volume prices only (at least one; up_to >= 1, strictly ascending).
Result<void> validate(const MeteredPrice& price);
// The charge for `quantity` (>= 0) units in one period:
//   per_unit   quantity * unit_amount
//   graduated  each tier prices the units that fall in it (+ its flat amount when any unit falls in it)
//   volume     all units at the tier the total quantity falls in (+ that tier's flat amount)
//   package    ceil(quantity / package_size) * unit_amount
// A quantity of 0 costs 0 in every model (no tier's flat amount applies). invalid_argument for a negative quantity,
// an invalid price (validate) or overflow.
Result<std::int64_t> price_usage(const MeteredPrice& price, std::int64_t quantity);

}  // namespace atrium::billing
