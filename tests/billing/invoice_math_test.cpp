#include "billing/invoice_math.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace atrium::billing {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

Line line(std::int64_t amount, LineKind kind = LineKind::subscription) {
  Line l;
  l.kind = kind;
  l.unit_amount = amount;
  l.amount = amount;
  l.proration = kind == LineKind::proration;
  return l;
}

Discount percent_off(std::int64_t bps) { return Discount{bps, 0}; }
Discount amount_off(std::int64_t amount) { return Discount{0, amount}; }
TaxRate exclusive(std::int64_t bps) { return TaxRate{bps, false}; }
TaxRate inclusive(std::int64_t bps) { return TaxRate{bps, true}; }

Totals must_total(const std::vector<Line>& lines, const std::optional<Discount>& discount,
                  const std::optional<TaxRate>& tax, std::int64_t credit_available = 0) {
  const auto totals = compute_totals(lines, discount, tax, credit_available);
  EXPECT_TRUE(totals.has_value()) << (totals ? "" : totals.error().message);
  return totals.value_or(Totals{});
}

std::string error_of(const Result<Totals>& r) { return r ? "(no error)" : r.error().message; }

// ---- compute_totals: golden cases ------------------------------------------------------------------------------

TEST(ComputeTotals, NoLinesIsAllZero) {
  const Totals t = must_total({}, std::nullopt, std::nullopt, 500);
  EXPECT_EQ(t.subtotal, 0);
  EXPECT_EQ(t.total, 0);
  EXPECT_EQ(t.credit_applied, 0);
  EXPECT_EQ(t.amount_due, 0);
  EXPECT_EQ(t.credit_created, 0);
}

TEST(ComputeTotals, PercentDiscount) {
  const Totals t = must_total({line(10000), line(2500, LineKind::seats)}, percent_off(2000), std::nullopt);
  EXPECT_EQ(t.subtotal, 12500);
  EXPECT_EQ(t.discount, 2500);
  EXPECT_EQ(t.tax, 0);
  EXPECT_EQ(t.total, 10000);
  EXPECT_EQ(t.amount_due, 10000);
}

TEST(ComputeTotals, PercentDiscountRoundsHalfAwayFromZero) {
  const Totals t = must_total({line(12345)}, percent_off(1000), std::nullopt);  // 1234.5
  EXPECT_EQ(t.discount, 1235);
  EXPECT_EQ(t.total, 11110);
  EXPECT_EQ(must_total({line(12345)}, percent_off(1250), std::nullopt).discount, 1543);  // 1543.125
  EXPECT_EQ(must_total({line(999)}, percent_off(10000), std::nullopt).total, 0);         // 100% off
}

TEST(ComputeTotals, AmountDiscount) {
  const Totals t = must_total({line(10000), line(2500)}, amount_off(1500), std::nullopt);
  EXPECT_EQ(t.discount, 1500);
  EXPECT_EQ(t.total, 11000);
}

TEST(ComputeTotals, AmountDiscountIsCappedAtTheSubtotal) {
  const Totals t = must_total({line(3000)}, amount_off(5000), std::nullopt);
  EXPECT_EQ(t.discount, 3000);
  EXPECT_EQ(t.total, 0);
  EXPECT_EQ(t.amount_due, 0);
  EXPECT_EQ(t.credit_created, 0);  // a discount never creates credit
}

TEST(ComputeTotals, ExclusiveTaxOnTheDiscountedAmount) {
  const Totals t = must_total({line(10000)}, percent_off(1000), exclusive(2000));
  EXPECT_EQ(t.discount, 1000);
  EXPECT_EQ(t.tax, 1800);  // 20% of 9000
  EXPECT_FALSE(t.tax_inclusive);
  EXPECT_EQ(t.total, 10800);
  EXPECT_EQ(t.amount_due, 10800);
}

TEST(ComputeTotals, ExclusiveTaxRounds) {
  const Totals t = must_total({line(12345)}, std::nullopt, exclusive(825));  // 8.25%: 1018.4625
  EXPECT_EQ(t.tax, 1018);
  EXPECT_EQ(t.total, 13363);
  EXPECT_EQ(must_total({line(10)}, std::nullopt, exclusive(500)).tax, 1);  // 0.5
  EXPECT_EQ(must_total({line(10000)}, std::nullopt, exclusive(0)).tax, 0);
}

TEST(ComputeTotals, InclusiveTaxIsContainedInTheTotal) {
  const Totals exact = must_total({line(12000)}, std::nullopt, inclusive(2000));
  EXPECT_EQ(exact.tax, 2000);  // 12000 - 12000 / 1.2
  EXPECT_TRUE(exact.tax_inclusive);
  EXPECT_EQ(exact.total, 12000);
  const Totals rounded = must_total({line(10000)}, std::nullopt, inclusive(2000));
  EXPECT_EQ(rounded.tax, 1667);  // 10000 - round(8333.33)
  EXPECT_EQ(rounded.total, 10000);
  EXPECT_EQ(rounded.amount_due, 10000);
}

TEST(ComputeTotals, InclusiveTaxAfterADiscount) {
  const Totals t = must_total({line(12000)}, percent_off(2500), inclusive(2000));
  EXPECT_EQ(t.discount, 3000);
  EXPECT_EQ(t.tax, 1500);  // 9000 - 7500
  EXPECT_EQ(t.total, 9000);
}

TEST(ComputeTotals, CreditBalanceIsApplied) {
  const Totals partial = must_total({line(10000)}, std::nullopt, exclusive(800), 5000);
  EXPECT_EQ(partial.total, 10800);
  EXPECT_EQ(partial.credit_applied, 5000);
  EXPECT_EQ(partial.amount_due, 5800);
  const Totals covered = must_total({line(10000)}, std::nullopt, exclusive(800), 20000);
  EXPECT_EQ(covered.credit_applied, 10800);
  EXPECT_EQ(covered.amount_due, 0);
  EXPECT_EQ(covered.credit_created, 0);
}

TEST(ComputeTotals, NegativeTotalCreatesCredit) {
  // A downgrade's proration credit outweighs the new charges: nothing is due and the rest goes to the balance.
  const std::vector<Line> lines{line(5000), line(-8000, LineKind::proration)};
  const Totals t = must_total(lines, percent_off(2000), exclusive(2000), 5000);
  EXPECT_EQ(t.subtotal, -3000);
  EXPECT_EQ(t.discount, 0);
  EXPECT_EQ(t.tax, -600) << "the credit gives back the 20% tax its charge carried";
  EXPECT_EQ(t.total, -3600);
  EXPECT_EQ(t.credit_applied, 0);
  EXPECT_EQ(t.amount_due, 0);
  EXPECT_EQ(t.credit_created, 3600);
  const Totals included = must_total(lines, amount_off(1000), inclusive(2000));
  EXPECT_EQ(included.credit_created, 3000) << "inclusive tax is inside the credit";
  EXPECT_EQ(included.tax, -500);
}

TEST(ComputeTotals, ProrationLinesNetAgainstCharges) {
  const std::vector<Line> lines{line(20000), line(-6667, LineKind::proration), line(13333, LineKind::proration)};
  const Totals t = must_total(lines, std::nullopt, exclusive(1000), 0);
  EXPECT_EQ(t.subtotal, 26666);
  EXPECT_EQ(t.tax, 2667);  // 2666.6
  EXPECT_EQ(t.total, 29333);
}

TEST(ComputeTotals, RejectsInvalidDiscountTaxAndCredit) {
  const std::vector<Line> lines{line(1000)};
  EXPECT_NE(error_of(compute_totals(lines, Discount{1000, 500}, std::nullopt, 0)).find("not both"), std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, Discount{0, 0}, std::nullopt, 0)).find("neither"), std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, percent_off(10001), std::nullopt, 0)).find("percent_off_bps"),
            std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, percent_off(-5), std::nullopt, 0)).find("percent_off_bps"),
            std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, amount_off(-1), std::nullopt, 0)).find("amount_off"), std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, std::nullopt, exclusive(-1), 0)).find("tax"), std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, std::nullopt, inclusive(10001), 0)).find("tax"), std::string::npos);
  EXPECT_NE(error_of(compute_totals(lines, std::nullopt, std::nullopt, -1)).find("credit_available"),
            std::string::npos);
  EXPECT_EQ(compute_totals(lines, amount_off(-1), std::nullopt, 0).error().code, Errc::invalid_argument);
}

TEST(ComputeTotals, RejectsOverflow) {
  EXPECT_EQ(error_of(compute_totals({line(kMax), line(1)}, std::nullopt, std::nullopt, 0)), "amount overflow");
  EXPECT_EQ(error_of(compute_totals({line(kMax)}, std::nullopt, exclusive(2000), 0)), "amount overflow");
  EXPECT_EQ(error_of(compute_totals({line(-kMax), line(-1)}, std::nullopt, std::nullopt, 0)), "amount overflow");
  // The largest amounts that fit still work.
  EXPECT_EQ(must_total({line(kMax)}, std::nullopt, inclusive(10000)).tax, kMax / 2);  // kMax - round(kMax / 2)
  EXPECT_EQ(must_total({line(-kMax)}, std::nullopt, std::nullopt).credit_created, kMax);
}

TEST(LineKinds, NamesRoundTrip) {
  for (const LineKind k :
       {LineKind::subscription, LineKind::seats, LineKind::proration, LineKind::usage, LineKind::one_off}) {
    EXPECT_EQ(parse_line_kind(line_kind_name(k)), k);
  }
  EXPECT_EQ(line_kind_name(LineKind::one_off), "one_off");
  EXPECT_EQ(parse_line_kind("refund"), std::nullopt);
}

// ---- compute_totals: properties --------------------------------------------------------------------------------

// Independent of money.cpp: n / d (d > 0) rounded half away from zero.
std::int64_t reference_round(__int128 n, __int128 d) {
  const __int128 magnitude = n < 0 ? -n : n;
  const auto rounded = static_cast<std::int64_t>((2 * magnitude + d) / (2 * d));
  return n < 0 ? -rounded : rounded;
}

std::vector<Line> random_lines(std::mt19937_64& rng) {
  std::vector<Line> lines;
  const int count = std::uniform_int_distribution<int>(0, 8)(rng);
  for (int i = 0; i < count; ++i) {
    switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
      case 0:  // a proration credit
        lines.push_back(line(-std::uniform_int_distribution<std::int64_t>(1, 5'000'000)(rng), LineKind::proration));
        break;
      case 1:  // a proration charge
        lines.push_back(line(std::uniform_int_distribution<std::int64_t>(1, 5'000'000)(rng), LineKind::proration));
        break;
      case 2: {
        Line seats = line(0, LineKind::seats);
        seats.quantity = std::uniform_int_distribution<std::int64_t>(0, 500)(rng);
        seats.unit_amount = std::uniform_int_distribution<std::int64_t>(0, 10'000)(rng);
        seats.amount = seats.quantity * seats.unit_amount;
        lines.push_back(seats);
        break;
      }
      case 3:  // occasionally huge
        lines.push_back(line(std::uniform_int_distribution<std::int64_t>(0, 1'000'000'000'000'000)(rng)));
        break;
      default: lines.push_back(line(std::uniform_int_distribution<std::int64_t>(0, 1'000'000)(rng)));
    }
  }
  return lines;
}

TEST(ComputeTotalsProperty, TotalsAreConsistentForRandomInvoices) {
  const std::uint64_t seed = 0x1A7E'0001;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::vector<Line> lines = random_lines(rng);
    std::optional<Discount> discount;
    switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
      case 0: discount = percent_off(std::uniform_int_distribution<std::int64_t>(1, 10000)(rng)); break;
      case 1: discount = amount_off(std::uniform_int_distribution<std::int64_t>(1, 20'000'000)(rng)); break;
      default: break;
    }
    std::optional<TaxRate> tax;
    if (std::uniform_int_distribution<int>(0, 2)(rng) != 0) {
      tax = TaxRate{std::uniform_int_distribution<std::int64_t>(0, 10000)(rng), rng() % 2 == 0};
    }
    const std::int64_t credit_available =
        rng() % 3 == 0 ? 0 : std::uniform_int_distribution<std::int64_t>(0, 20'000'000)(rng);

    const Totals t = must_total(lines, discount, tax, credit_available);
    std::int64_t sum = 0;
    for (const Line& l : lines) sum += l.amount;
    const std::int64_t positive_subtotal = std::max<std::int64_t>(sum, 0);
    const std::int64_t taxable = t.subtotal - t.discount;
    const std::int64_t tax_base = taxable;  // signed: a net credit gives back its tax

    ASSERT_EQ(t.subtotal, sum);
    ASSERT_GE(t.discount, 0);
    ASSERT_LE(t.discount, positive_subtotal);
    ASSERT_EQ(t.tax >= 0, tax_base >= 0 || t.tax == 0) << "the tax has the sign of what it is on";
    ASSERT_EQ(t.tax_inclusive, tax && tax->inclusive);
    ASSERT_EQ(t.subtotal - t.discount + (t.tax_inclusive ? 0 : t.tax), t.total);
    if (t.tax_inclusive) {
      ASSERT_LE(std::abs(t.tax), std::abs(tax_base));
    }
    ASSERT_EQ(t.total, t.amount_due + t.credit_applied - t.credit_created);
    ASSERT_GE(t.amount_due, 0);
    ASSERT_GE(t.credit_applied, 0);
    ASSERT_GE(t.credit_created, 0);
    ASSERT_LE(t.credit_applied, credit_available);
    ASSERT_FALSE(t.credit_created > 0 && (t.amount_due > 0 || t.credit_applied > 0));
    if (t.amount_due > 0) {
      ASSERT_EQ(t.credit_applied, credit_available) << "credit is used before anything is due";
    }

    // The documented formulas, computed independently.
    std::int64_t expected_discount = 0;
    if (discount && discount->percent_off_bps != 0) {
      expected_discount = reference_round(static_cast<__int128>(positive_subtotal) * discount->percent_off_bps, 10000);
    } else if (discount) {
      expected_discount = std::min(discount->amount_off, positive_subtotal);
    }
    ASSERT_EQ(t.discount, expected_discount);
    std::int64_t expected_tax = 0;
    if (tax && tax->inclusive) {
      expected_tax = tax_base - reference_round(static_cast<__int128>(tax_base) * 10000, 10000 + tax->bps);
    } else if (tax) {
      expected_tax = reference_round(static_cast<__int128>(tax_base) * tax->bps, 10000);
    }
    ASSERT_EQ(t.tax, expected_tax);
  }
}

// ---- Metered prices --------------------------------------------------------------------------------------------

MeteredPrice tiered(PriceModel model) {
  // 1-10 at 1.00 + 5.00 flat; 11-50 at 0.80 + 10.00 flat; 51+ at 0.50.
  MeteredPrice price;
  price.metric = "api_calls";
  price.model = model;
  price.tiers = {Tier{10, 100, 500}, Tier{50, 80, 1000}, Tier{std::nullopt, 50, 0}};
  return price;
}

std::int64_t must_price(const MeteredPrice& price, std::int64_t quantity) {
  const auto amount = price_usage(price, quantity);
  EXPECT_TRUE(amount.has_value()) << (amount ? "" : amount.error().message);
  return amount.value_or(-1);
}

TEST(PriceUsage, PerUnit) {
  MeteredPrice price;
  price.unit_amount = 250;
  EXPECT_EQ(must_price(price, 7), 1750);
  EXPECT_EQ(must_price(price, 1), 250);
  EXPECT_EQ(must_price(price, 0), 0);
}

TEST(PriceUsage, GraduatedPricesEachTierWithItsFlatAmount) {
  const MeteredPrice price = tiered(PriceModel::graduated);
  EXPECT_EQ(must_price(price, 0), 0);      // no unit in any tier: no flat amount either
  EXPECT_EQ(must_price(price, 1), 600);    // 1 * 100 + 500
  EXPECT_EQ(must_price(price, 5), 1000);   // 5 * 100 + 500
  EXPECT_EQ(must_price(price, 10), 1500);  // the first tier, full
  EXPECT_EQ(must_price(price, 11), 2580);  // 1500 + 1 * 80 + 1000
  EXPECT_EQ(must_price(price, 50), 5700);  // 1500 + 40 * 80 + 1000
  EXPECT_EQ(must_price(price, 51), 5750);  // 5700 + 1 * 50
  EXPECT_EQ(must_price(price, 60), 6200);  // 5700 + 10 * 50
}

TEST(PriceUsage, VolumePricesAllUnitsAtTheReachedTier) {
  const MeteredPrice price = tiered(PriceModel::volume);
  EXPECT_EQ(must_price(price, 0), 0);
  EXPECT_EQ(must_price(price, 1), 600);    // 1 * 100 + 500
  EXPECT_EQ(must_price(price, 10), 1500);  // exactly at up_to: still the first tier
  EXPECT_EQ(must_price(price, 11), 1880);  // 11 * 80 + 1000
  EXPECT_EQ(must_price(price, 50), 5000);  // 50 * 80 + 1000
  EXPECT_EQ(must_price(price, 51), 2550);  // 51 * 50: volume pricing can drop as usage grows
}

TEST(PriceUsage, PackagesRoundUp) {
  MeteredPrice price;
  price.model = PriceModel::package;
  price.unit_amount = 500;
  price.package_size = 100;
  EXPECT_EQ(must_price(price, 0), 0);
  EXPECT_EQ(must_price(price, 1), 500);
  EXPECT_EQ(must_price(price, 100), 500);
  EXPECT_EQ(must_price(price, 101), 1000);
  EXPECT_EQ(must_price(price, 250), 1500);
  price.package_size = 1;
  EXPECT_EQ(must_price(price, 3), 1500);
}

TEST(PriceUsage, RejectsNegativeQuantitiesInvalidPricesAndOverflow) {
  MeteredPrice price;
  price.unit_amount = 2;
  EXPECT_FALSE(price_usage(price, -1).has_value());
  EXPECT_EQ(price_usage(price, kMax).error().message, "amount overflow");
  MeteredPrice broken = tiered(PriceModel::volume);
  broken.tiers.back().up_to = 100;
  EXPECT_FALSE(price_usage(broken, 5).has_value());
  MeteredPrice graduated = tiered(PriceModel::graduated);
  graduated.tiers.back().unit_amount = kMax;
  EXPECT_EQ(price_usage(graduated, 52).error().message, "amount overflow");
}

std::string validation_error(const MeteredPrice& price) {
  const auto ok = validate(price);
  return ok ? "(valid)" : ok.error().message;
}

TEST(ValidatePrice, AcceptsWellFormedPrices) {
  EXPECT_TRUE(validate(MeteredPrice{}).has_value());
  EXPECT_TRUE(validate(tiered(PriceModel::graduated)).has_value());
  EXPECT_TRUE(validate(tiered(PriceModel::volume)).has_value());
  MeteredPrice single = tiered(PriceModel::graduated);
  single.tiers = {Tier{std::nullopt, 10, 0}};
  EXPECT_TRUE(validate(single).has_value());
}

TEST(ValidatePrice, NamesEachProblem) {
  MeteredPrice negative_unit;
  negative_unit.unit_amount = -1;
  EXPECT_EQ(validation_error(negative_unit), "unit_amount must not be negative");

  MeteredPrice no_package;
  no_package.model = PriceModel::package;
  no_package.package_size = 0;
  EXPECT_EQ(validation_error(no_package), "package_size must be at least 1");

  MeteredPrice no_tiers = tiered(PriceModel::volume);
  no_tiers.tiers.clear();
  EXPECT_EQ(validation_error(no_tiers), "volume price needs at least one tier");

  MeteredPrice stray_tiers = tiered(PriceModel::per_unit);
  EXPECT_EQ(validation_error(stray_tiers), "per_unit price takes no tiers (only graduated and volume)");

  MeteredPrice bounded_last = tiered(PriceModel::graduated);
  bounded_last.tiers.back().up_to = 100;
  EXPECT_EQ(validation_error(bounded_last), "tier 3: the last tier must be unbounded (no up_to)");

  MeteredPrice unbounded_middle = tiered(PriceModel::graduated);
  unbounded_middle.tiers[1].up_to = std::nullopt;
  EXPECT_EQ(validation_error(unbounded_middle), "tier 2: only the last tier may be unbounded");

  MeteredPrice descending = tiered(PriceModel::graduated);
  descending.tiers[1].up_to = 10;
  EXPECT_EQ(validation_error(descending), "tier 2: up_to must be above the previous tier's");

  MeteredPrice zero_first = tiered(PriceModel::graduated);
  zero_first.tiers[0].up_to = 0;
  EXPECT_EQ(validation_error(zero_first), "tier 1: up_to must be at least 1");

  MeteredPrice negative_flat = tiered(PriceModel::volume);
  negative_flat.tiers[2].flat_amount = -5;
  EXPECT_EQ(validation_error(negative_flat), "tier 3: flat_amount must not be negative");

  MeteredPrice negative_tier_unit = tiered(PriceModel::volume);
  negative_tier_unit.tiers[0].unit_amount = -5;
  EXPECT_EQ(validation_error(negative_tier_unit), "tier 1: unit_amount must not be negative");
}

TEST(PriceModels, NamesRoundTrip) {
  for (const PriceModel m : {PriceModel::per_unit, PriceModel::graduated, PriceModel::volume, PriceModel::package}) {
    EXPECT_EQ(parse_price_model(price_model_name(m)), m);
  }
  EXPECT_EQ(parse_price_model("tiered"), std::nullopt);
}

}  // namespace
}  // namespace atrium::billing
