#include "billing/money.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace atrium::billing {
namespace {

constexpr std::int64_t kMaxMinor = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

TEST(CurrencyExponent, CommonCurrenciesHaveTwoDigits) {
  for (const char* code : {"USD", "EUR", "GBP", "CHF", "CAD", "AUD", "CNY", "INR", "BRL", "MXN", "SEK", "ZAR"}) {
    EXPECT_EQ(currency_exponent(code), 2) << code;
  }
}

TEST(CurrencyExponent, ZeroDecimalCurrencies) {
  for (const char* code : {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                           "VUV", "XAF", "XOF", "XPF"}) {
    EXPECT_EQ(currency_exponent(code), 0) << code;
  }
}

TEST(CurrencyExponent, ThreeAndFourDecimalCurrencies) {
  for (const char* code : {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
    EXPECT_EQ(currency_exponent(code), 3) << code;
  for (const char* code : {"CLF", "UYW"}) EXPECT_EQ(currency_exponent(code), 4) << code;
}

TEST(CurrencyExponent, RejectsNonCurrenciesWithdrawnCodesAndBadSpelling) {
  for (const char* code : {"XAU", "XAG", "XPD", "XPT", "XXX", "XTS", "XDR", "XBA", "XSU", "XUA", "HRK", "ANG", "usd",
                           "Usd", "", "US", "USDX", "ZZZ"}) {
    EXPECT_EQ(currency_exponent(code), std::nullopt) << code;
    EXPECT_FALSE(valid_currency(code)) << code;
  }
}

TEST(CurrencyExponent, TableCoversTheActiveCurrencies) {
  int known = 0;
  std::string code = "AAA";
  for (char a = 'A'; a <= 'Z'; ++a) {
    for (char b = 'A'; b <= 'Z'; ++b) {
      for (char c = 'A'; c <= 'Z'; ++c) {
        code = {a, b, c};
        if (!valid_currency(code)) continue;
        ++known;
        const int exponent = *currency_exponent(code);
        EXPECT_TRUE(exponent == 0 || exponent == 2 || exponent == 3 || exponent == 4) << code;
      }
    }
  }
  EXPECT_GE(known, 150);
}

TEST(RoundDiv, HalvesRoundAwayFromZero) {
  EXPECT_EQ(round_div(5, 2), 3);
  EXPECT_EQ(round_div(-5, 2), -3);
  EXPECT_EQ(round_div(5, -2), -3);
  EXPECT_EQ(round_div(-5, -2), 3);
  EXPECT_EQ(round_div(7, 2), 4);
  EXPECT_EQ(round_div(-7, 2), -4);
  EXPECT_EQ(round_div(1, 2), 1);
  EXPECT_EQ(round_div(-1, 2), -1);
}

TEST(RoundDiv, BelowAndAboveHalf) {
  EXPECT_EQ(round_div(1, 3), 0);
  EXPECT_EQ(round_div(2, 3), 1);
  EXPECT_EQ(round_div(-1, 3), 0);
  EXPECT_EQ(round_div(-2, 3), -1);
  EXPECT_EQ(round_div(0, 7), 0);
  EXPECT_EQ(round_div(14, 7), 2);
  EXPECT_EQ(round_div(149, 100), 1);
  EXPECT_EQ(round_div(150, 100), 2);
  EXPECT_EQ(round_div(-149, 100), -1);
  EXPECT_EQ(round_div(-150, 100), -2);
}

TEST(RoundDiv, WorksOnWideNumerators) {
  const __int128 wide = static_cast<__int128>(kMaxMinor) * 1000;  // beyond int64 before dividing
  EXPECT_EQ(round_div(wide + 499, 1000), kMaxMinor);              // kMaxMinor + 0.499
  EXPECT_EQ(round_div(wide - 500, 1000), kMaxMinor);              // kMaxMinor - 0.5 rounds away from zero
  EXPECT_EQ(round_div(static_cast<__int128>(kMin) * 3, 3), kMin);
}

TEST(RoundDivDeathTest, ZeroDivisorOrOutOfRangeQuotientAborts) {
  EXPECT_DEATH(round_div(1, 0), "round_div");
  EXPECT_DEATH(round_div(static_cast<__int128>(kMaxMinor) * 1000 + 500, 1000),
               "round_div");  // kMaxMinor + 0.5 -> kMaxMinor + 1
}

TEST(MulDiv, RoundsHalvesAwayFromZero) {
  EXPECT_EQ(mul_div(1, 1, 2), 1);
  EXPECT_EQ(mul_div(-1, 1, 2), -1);
  EXPECT_EQ(mul_div(3, 1, 2), 2);
  EXPECT_EQ(mul_div(-3, 1, 2), -2);
  EXPECT_EQ(mul_div(10, 1, 4), 3);    // 2.5
  EXPECT_EQ(mul_div(10, -1, 4), -3);  // -2.5
  EXPECT_EQ(mul_div(10, 1, -4), -3);
  EXPECT_EQ(mul_div(9, 1, 4), 2);   // 2.25
  EXPECT_EQ(mul_div(11, 1, 4), 3);  // 2.75
  EXPECT_EQ(mul_div(10000, 1, 3), 3333);
  EXPECT_EQ(mul_div(20000, 1, 3), 6667);
}

TEST(MulDiv, ExactOnTheWideProduct) {
  // a * b overflows int64 but the quotient does not.
  EXPECT_EQ(mul_div(kMaxMinor, kMaxMinor, kMaxMinor), kMaxMinor);
  EXPECT_EQ(mul_div(kMin, kMin, kMin), kMin);
  EXPECT_EQ(mul_div(kMaxMinor, 3, 6), kMaxMinor / 2 + 1);  // kMaxMinor is odd: (kMaxMinor / 2) + 0.5 rounds up
  EXPECT_EQ(mul_div(kMin, 1, 1), kMin);
  EXPECT_EQ(mul_div(kMin, -1, -1), kMin);
}

TEST(MulDiv, DetectsOverflowAndZeroDivisor) {
  EXPECT_FALSE(mul_div(kMaxMinor, 2, 1).has_value());
  EXPECT_FALSE(mul_div(kMin, -1, 1).has_value());  // -kMin does not fit
  EXPECT_FALSE(mul_div(kMin, 1, -1).has_value());
  EXPECT_FALSE(mul_div(kMaxMinor, kMaxMinor, 2).has_value());
  const auto zero = mul_div(1, 1, 0);
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().code, Errc::invalid_argument);
  const auto overflow = mul_div(kMaxMinor, 2, 1);
  EXPECT_EQ(overflow.error().code, Errc::invalid_argument);
  EXPECT_EQ(overflow.error().message, "amount overflow");
}

TEST(ApplyBps, BasisPointsRoundHalfAwayFromZero) {
  EXPECT_EQ(apply_bps(10000, 2000), 2000);
  EXPECT_EQ(apply_bps(12345, 1000), 1235);    // 1234.5
  EXPECT_EQ(apply_bps(-12345, 1000), -1235);  // -1234.5
  EXPECT_EQ(apply_bps(12345, 825), 1018);     // 1018.4625
  EXPECT_EQ(apply_bps(1, 4999), 0);           // 0.4999
  EXPECT_EQ(apply_bps(1, 5000), 1);           // 0.5
  EXPECT_EQ(apply_bps(kMaxMinor, 10000), kMaxMinor);
  EXPECT_FALSE(apply_bps(kMaxMinor, 10001).has_value());
}

TEST(CheckedArithmetic, AddAndMultiplyReportOverflow) {
  EXPECT_EQ(add(2, 3), 5);
  EXPECT_EQ(add(kMaxMinor, kMin), -1);
  EXPECT_EQ(add(kMaxMinor - 1, 1), kMaxMinor);
  EXPECT_FALSE(add(kMaxMinor, 1).has_value());
  EXPECT_FALSE(add(kMin, -1).has_value());
  EXPECT_EQ(add(kMaxMinor, 1).error().message, "amount overflow");
  EXPECT_EQ(multiply(-4, 5), -20);
  EXPECT_EQ(multiply(kMaxMinor, 1), kMaxMinor);
  EXPECT_EQ(multiply(kMin, 1), kMin);
  EXPECT_FALSE(multiply(kMaxMinor, 2).has_value());
  EXPECT_FALSE(multiply(kMin, -1).has_value());
  EXPECT_FALSE(multiply(std::int64_t{1} << 32, std::int64_t{1} << 31).has_value());
}

TEST(FormatDecimal, TwoDigitCurrencies) {
  EXPECT_EQ(format_decimal(123450, "USD"), "1234.50");
  EXPECT_EQ(format_decimal(-5, "EUR"), "-0.05");
  EXPECT_EQ(format_decimal(0, "USD"), "0.00");
  EXPECT_EQ(format_decimal(7, "USD"), "0.07");
  EXPECT_EQ(format_decimal(100, "USD"), "1.00");
  EXPECT_EQ(format_decimal(-123456, "GBP"), "-1234.56");
}

TEST(FormatDecimal, ZeroDigitCurrencies) {
  EXPECT_EQ(format_decimal(1500, "JPY"), "1500");
  EXPECT_EQ(format_decimal(0, "JPY"), "0");
  EXPECT_EQ(format_decimal(-42, "KRW"), "-42");
}

TEST(FormatDecimal, ThreeAndFourDigitCurrencies) {
  EXPECT_EQ(format_decimal(1234, "KWD"), "1.234");
  EXPECT_EQ(format_decimal(5, "BHD"), "0.005");
  EXPECT_EQ(format_decimal(-50, "KWD"), "-0.050");
  EXPECT_EQ(format_decimal(12345678, "CLF"), "1234.5678");
}

TEST(FormatDecimal, ExtremesAndUnknownCurrency) {
  EXPECT_EQ(format_decimal(kMin, "USD"), "-92233720368547758.08");
  EXPECT_EQ(format_decimal(kMaxMinor, "USD"), "92233720368547758.07");
  EXPECT_EQ(format_decimal(kMaxMinor, "JPY"), "9223372036854775807");
  EXPECT_EQ(format_decimal(123450, "ABC"), "1234.50");
}

TEST(FormatMoney, ThousandSeparatorsAndCode) {
  EXPECT_EQ(format_money(123450, "USD"), "1,234.50 USD");
  EXPECT_EQ(format_money(-5, "EUR"), "-0.05 EUR");
  EXPECT_EQ(format_money(99999, "USD"), "999.99 USD");
  EXPECT_EQ(format_money(100000, "USD"), "1,000.00 USD");
  EXPECT_EQ(format_money(123456789, "USD"), "1,234,567.89 USD");
  EXPECT_EQ(format_money(0, "USD"), "0.00 USD");
}

TEST(FormatMoney, NegativesAndOtherExponents) {
  EXPECT_EQ(format_money(-123456789, "USD"), "-1,234,567.89 USD");
  EXPECT_EQ(format_money(-100000, "EUR"), "-1,000.00 EUR");
  EXPECT_EQ(format_money(-123456789, "JPY"), "-123,456,789 JPY");
  EXPECT_EQ(format_money(1500, "JPY"), "1,500 JPY");
  EXPECT_EQ(format_money(999, "JPY"), "999 JPY");
  EXPECT_EQ(format_money(1234567, "KWD"), "1,234.567 KWD");
  EXPECT_EQ(format_money(kMin, "USD"), "-92,233,720,368,547,758.08 USD");
}

}  // namespace
}  // namespace atrium::billing
