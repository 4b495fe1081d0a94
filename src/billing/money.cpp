#include "billing/money.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace atrium::billing {

namespace {

struct CurrencyInfo {
  std::string_view code;
  int exponent;
};

// ISO 4217 list one (SIX, published 2026-01-01): every active currency and fund code with its minor unit, sorted
// by code. Left out on purpose: codes without a minor unit or that are not money (XAU XAG XPD XPT precious metals,
// XBA-XBD bond market units, XDR, XSU, XUA, XAD units of account, XTS testing, XXX no currency) and withdrawn codes
// (ANG 2025, BGN 2026, CUC, HRK 2023, SLL, ZWL).
constexpr auto kCurrencies = std::to_array<CurrencyInfo>({
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2}, {"AWG", 2}, {"AZN", 2},
    {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2}, {"BOB", 2}, {"BOV", 2},
    {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2}, {"CHE", 2},
    {"CHF", 2}, {"CHW", 2}, {"CLF", 4}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"COU", 2}, {"CRC", 2}, {"CUP", 2},
    {"CVE", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2},
    {"EUR", 2}, {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0},
    {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2},
    {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3}, {"JPY", 0}, {"KES", 2}, {"KGS", 2}, {"KHR", 2},
    {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3}, {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2},
    {"LRD", 2}, {"LSL", 2}, {"LYD", 3}, {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2},
    {"MOP", 2}, {"MRU", 2}, {"MUR", 2}, {"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MXV", 2}, {"MYR", 2}, {"MZN", 2},
    {"NAD", 2}, {"NGN", 2}, {"NIO", 2}, {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2},
    {"PGK", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2},
    {"RWF", 0}, {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2},
    {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2},
    {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2}, {"UAH", 2}, {"UGX", 0},
    {"USD", 2}, {"USN", 2}, {"UYI", 0}, {"UYU", 2}, {"UYW", 4}, {"UZS", 2}, {"VED", 2}, {"VES", 2}, {"VND", 0},
    {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0}, {"XPF", 0}, {"YER", 2}, {"ZAR", 2},
    {"ZMW", 2}, {"ZWG", 2},
});
static_assert(std::ranges::adjacent_find(kCurrencies, std::ranges::greater_equal{}, &CurrencyInfo::code) ==
                  kCurrencies.end(),
              "kCurrencies must be sorted by code without duplicates (binary search)");

using u128 = unsigned __int128;

u128 magnitude(__int128 v) { return v < 0 ? u128(0) - static_cast<u128>(v) : static_cast<u128>(v); }

// The one rounding rule of billing: a / b rounded half away from zero, on unsigned magnitudes so that no
// intermediate overflows. nullopt when b == 0 or the rounded quotient does not fit int64.
std::optional<std::int64_t> rounded_quotient(__int128 a, __int128 b) {
  if (b == 0) return std::nullopt;
  const u128 n = magnitude(a);
  const u128 d = magnitude(b);
  u128 q = n / d;
  const u128 r = n % d;
  if (r >= d - r) ++q;  // the remainder is at least half the divisor (2r >= d without overflowing 2r)
  constexpr u128 kMax = static_cast<u128>(std::numeric_limits<std::int64_t>::max());
  if ((a < 0) != (b < 0)) {
    if (q > kMax + 1) return std::nullopt;
    return static_cast<std::int64_t>(-static_cast<__int128>(q));
  }
  if (q > kMax) return std::nullopt;
  return static_cast<std::int64_t>(q);
}

std::string digits(std::uint64_t v) {
  std::string out;
  do {
    out.push_back(static_cast<char>('0' + v % 10));
    v /= 10;
  } while (v != 0);
  std::reverse(out.begin(), out.end());
  return out;
}

// Sign, integer digits and fraction digits of `amount` in `currency`'s minor units (2 for an unknown currency).
struct DecimalParts {
  bool negative = false;
  std::string integer;
  std::string fraction;
};

DecimalParts split_decimal(std::int64_t amount, std::string_view currency) {
  const auto exponent = static_cast<std::size_t>(currency_exponent(currency).value_or(2));
  const std::uint64_t abs =
      amount < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(amount) : static_cast<std::uint64_t>(amount);
  std::string all = digits(abs);
  if (all.size() < exponent + 1) all.insert(0, exponent + 1 - all.size(), '0');
  DecimalParts parts;
  parts.negative = amount < 0;
  parts.integer = all.substr(0, all.size() - exponent);
  parts.fraction = all.substr(all.size() - exponent);
  return parts;
}

}  // namespace

std::optional<int> currency_exponent(std::string_view code) {
  const auto it = std::ranges::lower_bound(kCurrencies, code, {}, &CurrencyInfo::code);
  if (it == kCurrencies.end() || it->code != code) return std::nullopt;
  return it->exponent;
}

bool valid_currency(std::string_view code) { return currency_exponent(code).has_value(); }

std::int64_t round_div(__int128 a, __int128 b) {
  const auto q = rounded_quotient(a, b);
  if (!q) {
    // A broken precondition (b == 0 or a quotient beyond int64) is a bug in the caller, never bad input: stop.
    std::fputs("atrium: billing::round_div called with a zero divisor or an out-of-range quotient\n", stderr);
    std::abort();
  }
  return *q;
}

Result<std::int64_t> mul_div(std::int64_t a, std::int64_t b, std::int64_t c) {
  if (c == 0) return fail(Errc::invalid_argument, "division by zero");
  const auto q = rounded_quotient(static_cast<__int128>(a) * b, c);
  if (!q) return fail(Errc::invalid_argument, "amount overflow");
  return *q;
}

Result<std::int64_t> apply_bps(std::int64_t amount, std::int64_t bps) { return mul_div(amount, bps, 10000); }

Result<std::int64_t> add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return fail(Errc::invalid_argument, "amount overflow");
  return out;
}

Result<std::int64_t> multiply(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return fail(Errc::invalid_argument, "amount overflow");
  return out;
}

std::string format_decimal(std::int64_t amount, std::string_view currency) {
  const DecimalParts parts = split_decimal(amount, currency);
  std::string out = parts.negative ? "-" : "";
  out += parts.integer;
  if (!parts.fraction.empty()) out += "." + parts.fraction;
  return out;
}

std::string format_money(std::int64_t amount, std::string_view currency) {
  const DecimalParts parts = split_decimal(amount, currency);
  std::string out = parts.negative ? "-" : "";
  for (std::size_t i = 0; i < parts.integer.size(); ++i) {
    if (i != 0 && (parts.integer.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(parts.integer[i]);
  }
  if (!parts.fraction.empty()) out += "." + parts.fraction;
  out += " ";
  out += currency;
  return out;
}

}  // namespace atrium::billing
