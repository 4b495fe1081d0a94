#include "billing/proration.hpp"

#include "billing/money.hpp"

namespace atrium::billing {

namespace {

struct Fraction {
  std::int64_t remaining = 0;  // R
  std::int64_t total = 0;      // D > 0
};

// R and D for a change at `at` within [start, end), in the mode's unit.
Result<Fraction> remaining_fraction(Instant start, Instant end, Instant at, ProrationMode mode) {
  if (start >= end) return fail(Errc::invalid_argument, "proration period must have start < end");
  if (at < start || at >= end) return fail(Errc::invalid_argument, "proration instant outside the period [start, end)");
  std::int64_t length = 0;
  if (__builtin_sub_overflow(unix_seconds(end), unix_seconds(start), &length)) {
    return fail(Errc::invalid_argument, "proration period too long");
  }
  switch (mode) {
    case ProrationMode::per_second: return Fraction{unix_seconds(end) - unix_seconds(at), length};
    case ProrationMode::daily: {
      const std::int64_t days = whole_days(start, end);
      if (days == 0) return fail(Errc::invalid_argument, "daily proration needs a period of at least one whole day");
      return Fraction{whole_days(at, end), days};
    }
  }
  return fail(Errc::invalid_argument, "unknown proration mode");
}

}  // namespace

std::string_view proration_mode_name(ProrationMode m) {
  switch (m) {
    case ProrationMode::daily: return "daily";
    case ProrationMode::per_second: return "per_second";
  }
  return "daily";
}

std::optional<ProrationMode> parse_proration_mode(std::string_view text) {
  for (const ProrationMode m : {ProrationMode::daily, ProrationMode::per_second}) {
    if (proration_mode_name(m) == text) return m;
  }
  return std::nullopt;
}

Result<Proration> prorate(std::int64_t old_amount, std::int64_t new_amount, Instant start, Instant end, Instant at,
                          ProrationMode mode) {
  const auto fraction = remaining_fraction(start, end, at, mode);
  if (!fraction) return std::unexpected(fraction.error());
  const auto credit = mul_div(old_amount, fraction->remaining, fraction->total);
  if (!credit) return std::unexpected(credit.error());
  const auto charge = mul_div(new_amount, fraction->remaining, fraction->total);
  if (!charge) return std::unexpected(charge.error());
  std::int64_t net = 0;
  if (__builtin_sub_overflow(*charge, *credit, &net)) return fail(Errc::invalid_argument, "amount overflow");
  return Proration{*credit, *charge, net, fraction->remaining, fraction->total};
}

Result<std::int64_t> prorate_remaining(std::int64_t amount, Instant start, Instant end, Instant at,
                                       ProrationMode mode) {
  const auto fraction = remaining_fraction(start, end, at, mode);
  if (!fraction) return std::unexpected(fraction.error());
  return mul_div(amount, fraction->remaining, fraction->total);
}

}  // namespace atrium::billing
