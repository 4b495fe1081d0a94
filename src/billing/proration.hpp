#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "billing/calendar.hpp"
#include "core/error.hpp"

namespace atrium::billing {

// How time is measured when a subscription changes mid-period (a per-tenant setting).
//   daily       the seed's calculateProration: whole days, truncated. D = whole_days(start, end) and
//               R = whole_days(at, end) (differenceInDays(periodEnd, changeDate)): a partly used day is not
//               remaining. Change at the period's start: R = D; within the last 24 hours: R = 0.
//   per_second  Stripe's rule: remaining = end - at seconds of (end - start).
enum class ProrationMode { daily, per_second };
std::string_view proration_mode_name(ProrationMode m);
std::optional<ProrationMode> parse_proration_mode(std::string_view text);

// One configuration's price for a whole period (base price plus seats above the included ones).
struct PeriodPrice {
  std::int64_t amount = 0;  // minor units for the whole period
};

// The unused part of `old_amount` and the remaining part of `new_amount` for a change at `at` within [start, end),
// both over the same remaining fraction and each rounded once (round_div): credit = old * R / D, charge = new * R
// / D; net = charge - credit. invalid_argument when `at` is outside [start, end) or start >= end, and in daily mode
// when the period is shorter than one whole day (D = 0).
struct Proration {
  std::int64_t credit = 0;     // >= 0 for old_amount >= 0: what the customer gets back
  std::int64_t charge = 0;     // >= 0 for new_amount >= 0: what the new configuration costs for the rest
  std::int64_t net = 0;        // charge - credit: > 0 upgrade (invoiced now), < 0 downgrade (credited)
  std::int64_t remaining = 0;  // R: days or seconds
  std::int64_t total = 0;      // D: days or seconds
};
Result<Proration> prorate(std::int64_t old_amount, std::int64_t new_amount, Instant start, Instant end, Instant at,
                          ProrationMode mode);

// The remaining fraction of one amount alone (credit for pausing, a short first period): amount * R / D.
Result<std::int64_t> prorate_remaining(std::int64_t amount, Instant start, Instant end, Instant at, ProrationMode mode);

}  // namespace atrium::billing
