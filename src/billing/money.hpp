#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::billing {

// Money is an int64 count of the currency's minor units (cents for USD, yen for JPY, fils for BHD) plus an ISO 4217
// code, never floating point. Every rounding in billing goes through round_div/mul_div below: half away from zero,
// on the exact (128-bit) intermediate product.

// Minor-unit digits of an ISO 4217 currency (upper case: "USD" -> 2, "JPY" -> 0, "KWD" -> 3); nullopt when the
// code is not a known active currency.
std::optional<int> currency_exponent(std::string_view code);
bool valid_currency(std::string_view code);

// a / b rounded half away from zero. b != 0 and the quotient fits int64: a broken precondition is a bug and aborts.
std::int64_t round_div(__int128 a, __int128 b);
// a * b / c rounded half away from zero, exact on the 128-bit product. invalid_argument when c == 0 or the
// result does not fit in int64.
Result<std::int64_t> mul_div(std::int64_t a, std::int64_t b, std::int64_t c);
// amount * bps / 10000 (basis points: 2000 = 20%), rounded as above.
Result<std::int64_t> apply_bps(std::int64_t amount, std::int64_t bps);
// Checked a + b and a * b (invalid_argument "amount overflow" instead of undefined behaviour).
Result<std::int64_t> add(std::int64_t a, std::int64_t b);
Result<std::int64_t> multiply(std::int64_t a, std::int64_t b);

// "1234.50" for (123450, "USD"), "-0.05" for (-5, "EUR"), "1500" for (1500, "JPY"), "1.234" for (1234, "KWD").
// A code that is not a known currency formats with 2 decimals.
std::string format_decimal(std::int64_t amount, std::string_view currency);
// For documents: "1,234.50 USD", "-0.05 EUR".
std::string format_money(std::int64_t amount, std::string_view currency);

}  // namespace atrium::billing
