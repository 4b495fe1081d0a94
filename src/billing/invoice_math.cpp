#include "billing/invoice_math.hpp"

#include <algorithm>
#include <limits>

#include "billing/money.hpp"

namespace atrium::billing {

namespace {

constexpr std::int64_t kFullBps = 10000;

Result<void> check_discount(const Discount& d) {
  if (d.percent_off_bps != 0 && d.amount_off != 0) {
    return fail(Errc::invalid_argument, "discount: set percent_off_bps or amount_off, not both");
  }
  if (d.percent_off_bps == 0 && d.amount_off == 0) {
    return fail(Errc::invalid_argument, "discount: neither percent_off_bps nor amount_off is set");
  }
  if (d.percent_off_bps < 0 || d.percent_off_bps > kFullBps) {
    return fail(Errc::invalid_argument, "discount: percent_off_bps must be 1-10000");
  }
  if (d.amount_off < 0) return fail(Errc::invalid_argument, "discount: amount_off must not be negative");
  return {};
}

Result<std::int64_t> discount_amount(std::int64_t subtotal, const Discount& d) {
  const std::int64_t base = std::max<std::int64_t>(subtotal, 0);
  if (d.percent_off_bps != 0) return apply_bps(base, d.percent_off_bps);
  return std::min(d.amount_off, base);
}

std::string tier_problem(std::size_t index, std::string_view problem) {
  return "tier " + std::to_string(index + 1) + ": " + std::string(problem);
}

}  // namespace

std::string_view line_kind_name(LineKind k) {
  switch (k) {
    case LineKind::subscription: return "subscription";
    case LineKind::seats: return "seats";
    case LineKind::proration: return "proration";
    case LineKind::usage: return "usage";
    case LineKind::one_off: return "one_off";
  }
  return "one_off";
}

std::optional<LineKind> parse_line_kind(std::string_view text) {
  for (const LineKind k :
       {LineKind::subscription, LineKind::seats, LineKind::proration, LineKind::usage, LineKind::one_off}) {
    if (line_kind_name(k) == text) return k;
  }
  return std::nullopt;
}

Result<Totals> compute_totals(const std::vector<Line>& lines, const std::optional<Discount>& discount,
                              const std::optional<TaxRate>& tax, std::int64_t credit_available) {
  if (discount) {
    if (auto ok = check_discount(*discount); !ok) return std::unexpected(ok.error());
  }
  if (tax && (tax->bps < 0 || tax->bps > kFullBps)) return fail(Errc::invalid_argument, "tax: bps must be 0-10000");
  if (credit_available < 0) return fail(Errc::invalid_argument, "credit_available must not be negative");

  Totals t;
  for (const Line& line : lines) {
    const auto sum = add(t.subtotal, line.amount);
    if (!sum) return std::unexpected(sum.error());
    t.subtotal = *sum;
  }
  if (discount) {
    const auto amount = discount_amount(t.subtotal, *discount);
    if (!amount) return std::unexpected(amount.error());
    t.discount = *amount;
  }
  // 0 <= discount <= max(subtotal, 0), so this cannot overflow.
  const std::int64_t taxable = t.subtotal - t.discount;
  // Signed: a credit (a downgrade's proration) gives back the tax its charge carried.
  const std::int64_t tax_base = taxable;
  t.total = taxable;
  if (tax) {
    t.tax_inclusive = tax->inclusive;
    if (tax->inclusive) {
      const auto net = mul_div(tax_base, kFullBps, kFullBps + tax->bps);
      if (!net) return std::unexpected(net.error());
      t.tax = tax_base - *net;
    } else {
      const auto amount = apply_bps(tax_base, tax->bps);
      if (!amount) return std::unexpected(amount.error());
      t.tax = *amount;
      const auto total = add(taxable, t.tax);
      if (!total) return std::unexpected(total.error());
      t.total = *total;
    }
  }
  if (t.total == std::numeric_limits<std::int64_t>::min()) return fail(Errc::invalid_argument, "amount overflow");
  const std::int64_t payable = std::max<std::int64_t>(t.total, 0);
  t.credit_applied = std::min(credit_available, payable);
  t.amount_due = payable - t.credit_applied;
  t.credit_created = std::max<std::int64_t>(-t.total, 0);
  return t;
}

std::string_view price_model_name(PriceModel m) {
  switch (m) {
    case PriceModel::per_unit: return "per_unit";
    case PriceModel::graduated: return "graduated";
    case PriceModel::volume: return "volume";
    case PriceModel::package: return "package";
  }
  return "per_unit";
}

std::optional<PriceModel> parse_price_model(std::string_view text) {
  for (const PriceModel m : {PriceModel::per_unit, PriceModel::graduated, PriceModel::volume, PriceModel::package}) {
    if (price_model_name(m) == text) return m;
  }
  return std::nullopt;
}

Result<void> validate(const MeteredPrice& price) {
  if (price.unit_amount < 0) return fail(Errc::invalid_argument, "unit_amount must not be negative");
  if (price.package_size < 1) return fail(Errc::invalid_argument, "package_size must be at least 1");
  const bool tiered = price.model == PriceModel::graduated || price.model == PriceModel::volume;
  if (!tiered) {
    if (!price.tiers.empty()) {
      return fail(Errc::invalid_argument,
                  std::string(price_model_name(price.model)) + " price takes no tiers (only graduated and volume)");
    }
    return {};
  }
  if (price.tiers.empty()) {
    return fail(Errc::invalid_argument, std::string(price_model_name(price.model)) + " price needs at least one tier");
  }
  std::int64_t previous_up_to = 0;
  for (std::size_t i = 0; i < price.tiers.size(); ++i) {
    const Tier& tier = price.tiers[i];
    const bool last = i + 1 == price.tiers.size();
    if (tier.unit_amount < 0) return fail(Errc::invalid_argument, tier_problem(i, "unit_amount must not be negative"));
    if (tier.flat_amount < 0) return fail(Errc::invalid_argument, tier_problem(i, "flat_amount must not be negative"));
    if (last) {
      if (tier.up_to)
        return fail(Errc::invalid_argument, tier_problem(i, "the last tier must be unbounded (no up_to)"));
      break;
    }
    if (!tier.up_to) return fail(Errc::invalid_argument, tier_problem(i, "only the last tier may be unbounded"));
    if (*tier.up_to <= previous_up_to) {
      return fail(Errc::invalid_argument,
                  tier_problem(i, i == 0 ? "up_to must be at least 1" : "up_to must be above the previous tier's"));
    }
    previous_up_to = *tier.up_to;
  }
  return {};
}

Result<std::int64_t> price_usage(const MeteredPrice& price, std::int64_t quantity) {
  if (quantity < 0) return fail(Errc::invalid_argument, "usage quantity must not be negative");
  if (auto ok = validate(price); !ok) return std::unexpected(ok.error());
  if (quantity == 0) return 0;  // no unit falls in any tier, so no flat amount either
  switch (price.model) {
    case PriceModel::per_unit: return multiply(quantity, price.unit_amount);
    case PriceModel::package: {
      const std::int64_t packages = quantity / price.package_size + (quantity % price.package_size != 0 ? 1 : 0);
      return multiply(packages, price.unit_amount);
    }
    case PriceModel::graduated: {
      std::int64_t total = 0;
      std::int64_t below = 0;  // units priced by the earlier tiers
      for (const Tier& tier : price.tiers) {
        if (quantity <= below) break;
        const std::int64_t units = std::min(quantity, tier.up_to.value_or(quantity)) - below;
        const auto cost = multiply(units, tier.unit_amount);
        if (!cost) return cost;
        auto sum = add(total, *cost);
        if (sum) sum = add(*sum, tier.flat_amount);
        if (!sum) return sum;
        total = *sum;
        below += units;
      }
      return total;
    }
    case PriceModel::volume: {
      const auto tier =
          std::ranges::find_if(price.tiers, [&](const Tier& t) { return !t.up_to || quantity <= *t.up_to; });
      const auto cost = multiply(quantity, tier->unit_amount);
      if (!cost) return cost;
      return add(*cost, tier->flat_amount);
    }
  }
  return fail(Errc::invalid_argument, "unknown price model");
}

}  // namespace atrium::billing
