#include "billing/reference_model.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <tuple>

#include <fmt/format.h>

namespace atrium::test::billing_model {

namespace {

constexpr std::int64_t k_day = 86400;
constexpr std::int64_t k_hour = 3600;
constexpr std::int64_t k_max_amount = 1'000'000'000'000'000;  // the largest price (docs/billing.md, metered usage)
const std::vector<std::int64_t> k_default_retry_hours{24, 72, 120, 168, 216, 264, 336};

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string interval_word(int months) { return months == 1 ? "monthly" : months == 3 ? "quarterly" : "annual"; }
std::string plan_name(const Plan& p) { return "Plan " + p.code; }

}  // namespace

// ---- arithmetic and calendar ------------------------------------------------------------------------------------

std::int64_t round_half_away(__int128 numerator, __int128 denominator) {
  const bool negative = (numerator < 0) != (denominator < 0);
  const __int128 n = numerator < 0 ? -numerator : numerator;
  const __int128 d = denominator < 0 ? -denominator : denominator;
  __int128 q = n / d;
  if (2 * (n % d) >= d) q += 1;  // half (or more) of the divisor left over: away from zero
  return static_cast<std::int64_t>(negative ? -q : q);
}

std::int64_t bps_of(std::int64_t amount, std::int64_t bps) {
  return round_half_away(static_cast<__int128>(amount) * bps, 10000);
}

Civil civil(Instant t) {
  using namespace std::chrono;
  const sys_seconds tp{seconds{t}};
  const sys_days date = floor<days>(tp);
  const year_month_day ymd{date};
  return {static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())), (tp - sys_seconds{date}).count()};
}

Instant instant(const Civil& c) {
  using namespace std::chrono;
  const sys_days date =
      year{static_cast<int>(c.year)} / month{static_cast<unsigned>(c.month)} / day{static_cast<unsigned>(c.day)};
  return sys_seconds{date}.time_since_epoch().count() + c.second_of_day;
}

int month_length(std::int64_t year, int month) {
  using namespace std::chrono;
  const year_month_day_last last{std::chrono::year{static_cast<int>(year)},
                                 month_day_last{std::chrono::month{static_cast<unsigned>(month)}}};
  return static_cast<int>(static_cast<unsigned>(last.day()));
}

Instant add_months(Instant t, std::int64_t months) {
  const Civil c = civil(t);
  const std::int64_t index = c.year * 12 + (c.month - 1) + months;
  const std::int64_t year = floor_div(index, 12);
  const int month = static_cast<int>(index - year * 12) + 1;
  return instant({year, month, std::min(c.day, month_length(year, month)), c.second_of_day});
}

Instant next_day_of_month(Instant t, int day) {
  const Civil c = civil(t);
  const int here = std::min(day, month_length(c.year, c.month));
  if (here > c.day) return instant({c.year, c.month, here, c.second_of_day});
  const std::int64_t year = c.month == 12 ? c.year + 1 : c.year;
  const int month = c.month == 12 ? 1 : c.month + 1;
  return instant({year, month, std::min(day, month_length(year, month)), c.second_of_day});
}

int year_month(Instant t) {
  const Civil c = civil(t);
  return static_cast<int>(c.year * 100 + c.month);
}

std::string rfc3339(Instant t) {
  const Civil c = civil(t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.second_of_day / 3600,
                     c.second_of_day / 60 % 60, c.second_of_day % 60);
}

Fraction remaining_fraction(Instant start, Instant end, Instant at, Proration mode) {
  if (mode == Proration::per_second) return {end - at, end - start};
  const std::int64_t days = (end - start) / k_day;
  return {(end - at) / k_day, days};  // the seed: differenceInDays(periodEnd, changeDate)
}

std::int64_t price_usage(const MeteredPrice& price, std::int64_t quantity) {
  if (quantity <= 0) return 0;
  __int128 amount = 0;
  switch (price.model) {
    case PriceModel::per_unit: amount = static_cast<__int128>(quantity) * price.unit_amount; break;
    case PriceModel::package:
      amount = static_cast<__int128>((quantity + price.package_size - 1) / price.package_size) * price.unit_amount;
      break;
    case PriceModel::graduated: {
      std::int64_t floor = 0;  // units priced by the tiers before
      for (const Tier& t : price.tiers) {
        const std::int64_t top = t.up_to.value_or(quantity);
        const std::int64_t units = std::min(quantity, top) - floor;
        if (units <= 0) break;
        amount += static_cast<__int128>(units) * t.unit_amount + t.flat_amount;
        floor = top;
        if (quantity <= top) break;
      }
      break;
    }
    case PriceModel::volume:
      for (const Tier& t : price.tiers) {
        if (!t.up_to || quantity <= *t.up_to) {
          amount = static_cast<__int128>(quantity) * t.unit_amount + t.flat_amount;
          break;
        }
      }
      break;
  }
  return amount > k_max_amount ? k_max_amount : static_cast<std::int64_t>(amount);
}

std::int64_t period_amount(const PlanVersion& v, std::int64_t seats) {
  return v.base_price + std::max<std::int64_t>(0, seats - v.included_seats) * v.seat_price;
}

std::int64_t net_of(const Coupon& c, std::int64_t amount) {
  if (c.percent_off_bps > 0) return amount - bps_of(amount, c.percent_off_bps);
  return std::max<std::int64_t>(0, amount - c.amount_off);
}

Totals compute_totals(const std::vector<Line>& lines, const Coupon* discount, const std::optional<TaxRate>& tax,
                      std::int64_t credit_available) {
  Totals t;
  for (const Line& l : lines) t.subtotal += l.amount;
  const std::int64_t positive = std::max<std::int64_t>(t.subtotal, 0);
  if (discount != nullptr) {
    t.discount = discount->percent_off_bps > 0 ? bps_of(positive, discount->percent_off_bps)
                                               : std::min(discount->amount_off, positive);
  }
  const std::int64_t taxable = t.subtotal - t.discount;
  t.total = taxable;
  if (tax) {
    t.tax_inclusive = tax->inclusive;
    if (tax->inclusive) {
      t.tax = taxable - round_half_away(static_cast<__int128>(taxable) * 10000, 10000 + tax->bps);
    } else {
      t.tax = bps_of(taxable, tax->bps);
      t.total += t.tax;
    }
  }
  const std::int64_t payable = std::max<std::int64_t>(t.total, 0);
  t.credit_applied = std::min(std::max<std::int64_t>(credit_available, 0), payable);
  t.amount_due = payable - t.credit_applied;
  t.credit_created = std::max<std::int64_t>(-t.total, 0);
  return t;
}

std::string status_name(Status s) {
  switch (s) {
    case Status::trial: return "trial";
    case Status::active: return "active";
    case Status::past_due: return "past_due";
    case Status::paused: return "paused";
    case Status::cancelled: return "cancelled";
    case Status::unpaid: return "unpaid";
  }
  return "?";
}

std::string card_outcome(const std::string& payment_method) {
  if (payment_method == "pm_card_visa" || payment_method == "pm_card_mastercard") return "succeeded";
  if (payment_method == "pm_card_chargeDeclined" || payment_method == "pm_card_chargeDeclinedInsufficientFunds") {
    return "soft";
  }
  return "hard";  // lost or expired card, or no payment method at all
}

// ---- the model --------------------------------------------------------------------------------------------------

namespace {

bool live(Status s) { return s == Status::trial || s == Status::active || s == Status::past_due; }

// The latest instant on day `day` of a month a whole number of intervals before `first_end`, and that number.
std::pair<Instant, std::int64_t> anchor_for_day(Instant first_end, int day, int months) {
  const Civil end = civil(first_end);
  for (std::int64_t k = 0; k <= 8; ++k) {
    const std::int64_t index = end.year * 12 + (end.month - 1) - k * months;
    const std::int64_t year = floor_div(index, 12);
    const int month = static_cast<int>(index - year * 12) + 1;
    if (month_length(year, month) >= day) return {instant({year, month, day, end.second_of_day}), k};
  }
  return {first_end, 0};
}

}  // namespace

std::vector<Line> Model::cycle_lines(const PlanVersion& v, std::int64_t seats, Instant start, Instant end) const {
  std::vector<Line> lines;
  const Plan* plan = nullptr;
  for (const Plan& p : plans) {
    for (const PlanVersion& pv : p.versions) {
      if (&pv == &v) plan = &p;
    }
  }
  const std::string name = plan ? plan_name(*plan) : "?";
  lines.push_back(Line{"subscription", name + " (" + interval_word(v.months) + ")", 1, v.base_price, v.base_price,
                       start, end, false});
  const std::int64_t extra = std::max<std::int64_t>(0, seats - v.included_seats);
  if (extra > 0) {
    lines.push_back(Line{"seats", "Additional seats (" + std::to_string(v.included_seats) + " included)", extra,
                         v.seat_price, extra * v.seat_price, start, end, false});
  }
  return lines;
}

Instant Model::full_period_start(const Subscription& s) const {
  return add_months(s.anchor, (s.cycle - 1) * version_of(s).months);
}

bool Model::coupon_applies_from(const Subscription& s, Instant period_start) const {
  if (!s.coupon || !coupon) return false;
  switch (coupon->duration) {
    case CouponDuration::forever: return true;
    case CouponDuration::once: return false;
    case CouponDuration::repeating: return period_start < add_months(s.coupon_start, coupon->months);
  }
  return false;
}

Invoice Model::price(std::vector<Line> lines, const std::string& reason, Instant period_start, Instant period_end,
                     bool with_coupon, Instant at, bool subscription, Subscription* s, bool persist) const {
  Invoice inv;
  inv.subscription = subscription;
  inv.on_clock = subscription && on_clock;
  inv.reason = reason;
  inv.period_start = period_start;
  inv.period_end = period_end;
  inv.created_at = at;
  const Coupon* discount = nullptr;
  if (with_coupon && s != nullptr) {
    bool applies = false;
    if (s->coupon && coupon) {
      switch (coupon->duration) {
        case CouponDuration::forever: applies = true; break;
        case CouponDuration::once: applies = s->coupon_uses == 0; break;
        case CouponDuration::repeating: applies = period_start < add_months(s->coupon_start, coupon->months); break;
      }
    }
    if (applies) {
      discount = &*coupon;
      inv.discount_code = coupon->code;
    }
    if (persist) {
      if (applies) s->coupon_uses += 1;
      s->period_discounted = applies;
    }
  }
  inv.totals = compute_totals(lines, discount, tax, credit_balance);
  inv.lines = std::move(lines);
  inv.amount_remaining = inv.totals.amount_due;
  inv.status = inv.totals.amount_due > 0 ? "open" : "paid";
  inv.finalized_at = at;
  if (inv.status == "paid") inv.paid_at = at;
  return inv;
}

std::size_t Model::issue(std::vector<Line> lines, const std::string& reason, Instant period_start, Instant period_end,
                         bool with_coupon, Instant at, std::vector<Charge>* charges, bool subscription) {
  Invoice inv = price(std::move(lines), reason, period_start, period_end, with_coupon, at, subscription,
                      sub ? &*sub : nullptr, true);
  credit_balance += inv.totals.credit_created - inv.totals.credit_applied;
  invoices.push_back(std::move(inv));
  const std::size_t k = invoices.size() - 1;
  if (invoices[k].totals.amount_due > 0 && charges != nullptr) {
    invoices[k].attempt_count = 1;
    new_attempt(k, at, *charges);
  }
  return k;
}

void Model::new_attempt(std::size_t k, Instant at, std::vector<Charge>& charges) {
  Invoice& inv = invoices[k];
  inv.attempts.push_back(Attempt{inv.amount_remaining, payment_method, "pending", "", at});
  charges.push_back(Charge{k});
}

int Model::settle(const std::vector<Charge>& charges, Instant at) {
  int paid = 0;
  for (const Charge& c : charges) {
    record(c.invoice, at);
    if (invoices[c.invoice].attempts.back().status == "succeeded") ++paid;
  }
  return paid;
}

void Model::record(std::size_t k, Instant at) {
  Invoice& inv = invoices[k];
  Attempt& attempt = inv.attempts.back();
  const std::string outcome = card_outcome(attempt.payment_method);
  if (outcome == "succeeded") {
    attempt.status = "succeeded";
    std::int64_t applied = 0;
    if (inv.status == "open") {
      applied = std::min(attempt.amount, std::max<std::int64_t>(inv.amount_remaining, 0));
      inv.amount_paid += applied;
      inv.amount_remaining -= applied;
      inv.next_payment_attempt.reset();
      if (inv.amount_remaining == 0) {
        inv.status = "paid";
        inv.paid_at = at;
      }
    }
    credit_balance += attempt.amount - applied;
    if (inv.subscription) settle_status(at);
    return;
  }
  attempt.status = "failed";
  attempt.decline = outcome;
  const PlanVersion* policy = inv.subscription && sub ? &version_of(*sub) : nullptr;
  const std::vector<std::int64_t>& hours = policy ? policy->retry_hours : k_default_retry_hours;
  const Instant first = inv.finalized_at.value_or(at);
  const std::size_t retries_done = inv.attempt_count > 0 ? static_cast<std::size_t>(inv.attempt_count - 1) : 0;
  bool final = false;
  if (inv.status != "open") {
    inv.next_payment_attempt.reset();
  } else if (outcome == "hard") {
    // Not retried with this card: the final action comes at the end of the dunning window, or now when the window
    // has already ended.
    const std::int64_t last = hours.empty() ? 0 : hours.back();
    inv.next_payment_attempt = std::max(first + last * k_hour, at);
    if (first + last * k_hour <= at) final = true;
  } else if (retries_done < hours.size()) {
    inv.next_payment_attempt = std::max(first + hours[retries_done] * k_hour, at + 1);
  } else {
    final = true;
  }
  if (inv.subscription && inv.status == "open" && sub &&
      (sub->status == Status::active || sub->status == Status::trial)) {
    sub->status = Status::past_due;
  }
  if (final) final_action(inv, at);
}

void Model::final_action(Invoice& inv, Instant at) {
  inv.next_payment_attempt.reset();
  if (!inv.subscription || !sub) return;
  if (!version_of(*sub).final_unpaid) {
    inv.status = "uncollectible";
    if (sub->status != Status::cancelled) {
      sub->status = Status::cancelled;
      sub->cancelled_at = at;
    }
  } else if (sub->status == Status::past_due || sub->status == Status::active) {
    sub->status = Status::unpaid;
  }
}

bool Model::owes() const {
  return std::any_of(invoices.begin(), invoices.end(),
                     [](const Invoice& i) { return i.subscription && i.status == "open" && i.amount_remaining > 0; });
}

void Model::settle_status(Instant at) {
  if (!sub || (sub->status != Status::past_due && sub->status != Status::unpaid)) return;
  if (owes()) return;
  const bool was_unpaid = sub->status == Status::unpaid;
  sub->status = Status::active;
  if (was_unpaid && sub->period_end <= at) {
    // Periods that passed while unpaid are not billed: a new one starts now (renewed at once).
    sub->anchor = at;
    sub->cycle = 0;
    sub->period_start = at;
    sub->period_end = at;
    sub->period_discounted = false;
  }
}

void Model::remeasure(UsageRecord& u, Instant at) const {
  std::int64_t q = 0;
  for (const UsageEvent& e : events) {
    if (e.metric == u.metric && e.at >= u.period_start && e.at < u.period_end) q += e.quantity;
  }
  u.quantity = q;
  u.amount = price_usage(u.price, std::max<std::int64_t>(0, q - u.included));
  u.settled = at >= u.open_until;
}

std::vector<Line> Model::usage_lines(Instant from, Instant to, bool bill_period, Instant at) {
  std::vector<Line> lines;
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < usage.size(); ++i) {
    if (!usage[i].settled || usage[i].amount != usage[i].billed_amount) open.push_back(i);
  }
  std::sort(open.begin(), open.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(usage[a].period_start, usage[a].metric) < std::tie(usage[b].period_start, usage[b].metric);
  });
  for (const std::size_t i : open) {
    UsageRecord& u = usage[i];
    if (!u.settled) remeasure(u, at);
    if (u.amount != u.billed_amount) {
      const std::int64_t qty = std::max<std::int64_t>(0, u.quantity - u.included) -
                               std::max<std::int64_t>(0, u.billed_quantity - u.included);
      const std::int64_t amount = u.amount - u.billed_amount;
      lines.push_back(Line{"usage", u.metric + ": usage reported late", qty,
                           qty != 0 && amount % qty == 0 ? amount / qty : 0, amount, u.period_start, u.period_end,
                           false});
    }
    u.billed_quantity = u.quantity;
    u.billed_amount = u.amount;
  }
  if (!bill_period) return lines;
  for (const MeteredPrice& m : version_of(*sub).metered) {
    UsageRecord u;
    u.metric = m.metric;
    u.period_start = from;
    u.period_end = to;
    u.included = m.included;
    u.price = m;
    u.open_until = to + usage_grace;
    remeasure(u, at);
    const std::int64_t billable = std::max<std::int64_t>(0, u.quantity - u.included);
    if (billable > 0 || u.amount != 0) {
      std::string description = m.metric + " usage";
      if (u.included > 0) description += " beyond the " + std::to_string(u.included) + " included";
      lines.push_back(Line{"usage", description, billable,
                           billable != 0 && u.amount % billable == 0 ? u.amount / billable : 0, u.amount, from, to,
                           false});
    }
    u.billed_quantity = u.quantity;
    u.billed_amount = u.amount;
    usage.push_back(std::move(u));
  }
  return lines;
}

void Model::final_usage(Instant from, Instant to, Instant at, std::vector<Charge>& charges) {
  std::vector<Line> lines = usage_lines(from, to, from < to, at);
  if (lines.empty()) return;
  issue(std::move(lines), "subscription_final", from < to ? from : to, to, false, at, &charges, true);
}

void Model::advance_subscription(Instant at, std::vector<Charge>& charges) {
  if (!sub) return;
  for (int guard = 0; guard < 1200; ++guard) {
    if (!live(sub->status) || sub->period_end > at) break;
    const Instant t = sub->period_end;
    if (sub->cancel_at_period_end) {
      const bool trial = sub->status == Status::trial;
      sub->status = Status::cancelled;
      sub->cancelled_at = t;
      if (!trial) final_usage(sub->period_start, t, t, charges);
      break;
    }
    const bool ended_trial = sub->status == Status::trial;
    const Instant ended_start = sub->period_start;
    if (ended_trial) {
      sub->status = Status::active;
      sub->anchor = t;
      sub->cycle = 0;
    }
    const PlanVersion& v = version_of(*sub);
    sub->cycle += 1;
    sub->period_start = t;
    sub->period_end = add_months(sub->anchor, sub->cycle * v.months);
    std::vector<Line> lines = cycle_lines(v, sub->seats, sub->period_start, sub->period_end);
    std::vector<Line> used = usage_lines(ended_start, t, !ended_trial && ended_start < t, t);
    lines.insert(lines.end(), used.begin(), used.end());
    issue(std::move(lines), "subscription_cycle", sub->period_start, sub->period_end, true, t, &charges, true);
  }
}

void Model::retry(std::size_t k, Instant at, std::vector<Charge>& charges) {
  Invoice& inv = invoices[k];
  if (inv.status != "open" || !inv.next_payment_attempt || *inv.next_payment_attempt > at) return;
  if (inv.subscription && sub && (sub->status == Status::paused || sub->status == Status::cancelled)) {
    inv.next_payment_attempt.reset();
    return;
  }
  if (!inv.attempts.empty() && inv.attempts.back().decline == "hard" &&
      inv.attempts.back().payment_method == payment_method) {
    final_action(inv, at);
    return;
  }
  inv.attempt_count += 1;
  inv.next_payment_attempt.reset();
  new_attempt(k, at, charges);
}

Expect Model::create_subscription(const SubscriptionRequest& r) {
  if (r.trial_days.value_or(0) > 0 && r.anchor_day) return {400};
  if (sub && sub->status != Status::cancelled) return {409};
  const Instant at = now();
  const PlanVersion& v = plans[r.plan].versions.back();
  const int trial = r.trial_days.value_or(v.trial_days);
  if (trial > 0 && r.anchor_day) return {400};
  Subscription s;
  s.plan = r.plan;
  s.version = static_cast<int>(plans[r.plan].versions.size());
  s.seats = r.seats.value_or(std::max<std::int64_t>(1, v.included_seats));
  s.coupon = r.coupon && coupon.has_value();
  s.coupon_start = at;
  std::vector<Line> lines;
  if (trial > 0) {
    s.status = Status::trial;
    s.trial_end = at + std::int64_t{trial} * k_day;
    s.anchor = *s.trial_end;
    s.cycle = 0;
    s.period_start = at;
    s.period_end = *s.trial_end;
  } else if (r.anchor_day) {
    const Instant first_end = next_day_of_month(at, *r.anchor_day);
    std::tie(s.anchor, s.cycle) = anchor_for_day(first_end, *r.anchor_day, v.months);
    s.period_start = at;
    s.period_end = first_end;
    const Instant full_start = add_months(s.anchor, (s.cycle - 1) * v.months);
    lines = cycle_lines(v, s.seats, full_start, first_end);
    if (full_start < at) {
      const Fraction f = remaining_fraction(full_start, first_end, at, proration);
      for (Line& l : lines) {
        l.amount = round_half_away(static_cast<__int128>(l.amount) * f.remaining, f.total);
        l.description += " (partial period)";
        l.quantity = 1;
        l.unit_amount = l.amount;
        l.proration = true;
        l.period_start = at;
      }
    }
  } else {
    s.anchor = at;
    s.cycle = 1;
    s.period_start = at;
    s.period_end = add_months(at, v.months);
    lines = cycle_lines(v, s.seats, at, s.period_end);
  }
  sub = s;
  std::vector<Charge> charges;
  if (!lines.empty()) {
    issue(std::move(lines), "subscription_create", s.period_start, s.period_end, true, at, &charges, true);
  }
  settle(charges, at);
  return {201};
}

Model::Change Model::compute_change(const ChangeRequest& r, Instant at) const {
  Change c;
  if (!r.plan && !r.seats) return {.expect = {400}};
  const Subscription& s = *sub;
  if (!live(s.status)) return {.expect = {409}};
  const PlanVersion& from = version_of(s);
  if (r.plan) {
    c.to_plan = *r.plan;
    c.to_version = static_cast<int>(plans[*r.plan].versions.size());
  } else {
    c.to_plan = s.plan;
    c.to_version = s.version;
  }
  c.to = plans[c.to_plan].versions[c.to_version - 1];
  c.seats = r.seats.value_or(s.seats);
  if (s.status == Status::trial) return c;  // nothing is billed during a trial
  const bool current_discounted = s.coupon && coupon && s.period_discounted;
  std::int64_t old_amount = period_amount(from, s.seats);
  std::int64_t new_amount = period_amount(c.to, c.seats);
  if (current_discounted) {
    old_amount = net_of(*coupon, old_amount);
    new_amount = net_of(*coupon, new_amount);
  }
  const std::string old_label = plan_name(plans[s.plan]) + " x " + std::to_string(s.seats) + " seats";
  const std::string new_label = plan_name(plans[c.to_plan]) + " x " + std::to_string(c.seats) + " seats";
  const Fraction f = remaining_fraction(full_period_start(s), s.period_end, at, proration);
  c.interval_change = from.months != c.to.months;
  if (!c.interval_change) {
    c.credit = round_half_away(static_cast<__int128>(old_amount) * f.remaining, f.total);
    c.charge = round_half_away(static_cast<__int128>(new_amount) * f.remaining, f.total);
    c.net = c.charge - c.credit;
    if (c.net < 0 && !downgrade_credit) return c;
    if (c.credit == 0 && c.charge == 0) return c;
    c.lines = {Line{"proration", "Unused time on " + old_label, 1, -c.credit, -c.credit, at, s.period_end, true},
               Line{"proration", "Remaining time on " + new_label, 1, c.charge, c.charge, at, s.period_end, true}};
    return c;
  }
  const std::int64_t credit = round_half_away(static_cast<__int128>(old_amount) * f.remaining, f.total);
  c.new_period_end = add_months(at, c.to.months);
  std::vector<Line> lines = cycle_lines(plans[c.to_plan].versions[c.to_version - 1], c.seats, at, c.new_period_end);
  std::int64_t charge = 0;
  for (const Line& l : lines) charge += l.amount;
  c.new_period_discounted = coupon_applies_from(s, at);
  if (c.new_period_discounted) {
    const std::int64_t discounted = net_of(*coupon, charge);
    if (discounted != charge) {
      lines.push_back(Line{"one_off", "Discount " + coupon->code, 1, discounted - charge, discounted - charge, at,
                           c.new_period_end, false});
      charge = discounted;
    }
  }
  std::int64_t credited = credit;
  if (charge - credited < 0 && !downgrade_credit) credited = charge;
  c.credit = credited;
  c.charge = charge;
  c.net = charge - credited;
  c.lines.push_back(Line{"proration", "Unused time on " + old_label, 1, -credited, -credited, at, s.period_end, true});
  c.lines.insert(c.lines.end(), lines.begin(), lines.end());
  return c;
}

PreviewResult Model::preview(const ChangeRequest& r) const {
  PreviewResult out;
  const Instant at = now();
  if (at >= sub->period_end && sub->status != Status::paused && sub->status != Status::cancelled &&
      sub->status != Status::unpaid) {
    out.expect = {409};
    return out;
  }
  const Change c = compute_change(r, at);
  out.expect = c.expect;
  if (!c.expect.ok()) return out;
  out.credit = c.credit;
  out.charge = c.charge;
  out.net = c.net;
  std::vector<Line> lines = c.lines;
  if (c.interval_change && sub->status != Status::trial) {
    Model measured = *this;  // measuring writes nothing here either
    std::vector<Line> used = measured.usage_lines(sub->period_start, at, sub->period_start < at, at);
    lines.insert(lines.end(), used.begin(), used.end());
  }
  if (!lines.empty()) {
    out.invoice = price(lines, "subscription_update", at, c.interval_change ? c.new_period_end : sub->period_end, false,
                        at, true, nullptr, false);
  }
  return out;
}

Expect Model::change(const ChangeRequest& r) {
  const Instant at = now();
  // A refused change changes nothing, not even the renewal of an ended period it catches up first (Billing does both
  // in one transaction, rolled back with the refusal; the next run or advance renews).
  const Model before = *this;
  std::vector<Charge> charges;
  advance_subscription(at, charges);
  const Change c = compute_change(r, at);
  if (!c.expect.ok()) {
    *this = before;
    return c.expect;
  }
  const Instant old_end = sub->period_end;
  std::vector<Line> lines = c.lines;
  if (c.interval_change && sub->status != Status::trial) {
    // The period the change cuts short: its usage so far, at the old plan version's prices.
    std::vector<Line> used = usage_lines(sub->period_start, at, sub->period_start < at, at);
    lines.insert(lines.end(), used.begin(), used.end());
  }
  sub->plan = c.to_plan;
  sub->version = c.to_version;
  sub->seats = c.seats;
  if (c.interval_change) {
    sub->anchor = at;
    sub->cycle = 1;
    sub->period_start = at;
    sub->period_end = c.new_period_end;
    sub->period_discounted = c.new_period_discounted;
  }
  if (!lines.empty()) {
    issue(lines, "subscription_update", at, c.interval_change ? c.new_period_end : old_end, false, at, &charges, true);
  }
  settle(charges, at);
  return {200};
}

Expect Model::pause() {
  if (!live(sub->status)) return {409};
  sub->status = Status::paused;
  sub->paused_at = now();
  for (Invoice& inv : invoices) {
    if (inv.subscription && inv.status == "open") inv.next_payment_attempt.reset();
  }
  return {200};
}

Expect Model::resume() {
  if (sub->status != Status::paused) return {409};
  const Instant at = now();
  sub->paused_at.reset();
  bool owed = false;
  for (Invoice& inv : invoices) {
    if (!inv.subscription || inv.status != "open" || inv.amount_remaining <= 0) continue;
    owed = true;
    inv.next_payment_attempt = at;
  }
  std::vector<Charge> charges;
  const bool ran_out = at >= sub->period_end;
  const bool trial_period = sub->trial_end && *sub->trial_end >= sub->period_end;
  const Instant old_start = sub->period_start;
  const Instant old_end = sub->period_end;
  if (sub->cancel_at_period_end && ran_out) {
    sub->status = Status::cancelled;
    sub->cancelled_at = at;
    if (!trial_period) final_usage(old_start, old_end, at, charges);
  } else if (sub->trial_end && *sub->trial_end > at) {
    sub->status = Status::trial;
  } else {
    sub->status = owed ? Status::past_due : Status::active;
    if (at >= sub->period_end) {
      const PlanVersion& v = version_of(*sub);
      sub->trial_end.reset();
      sub->anchor = at;
      sub->cycle = 1;
      sub->period_start = at;
      sub->period_end = add_months(at, v.months);
      std::vector<Line> lines = cycle_lines(v, sub->seats, at, sub->period_end);
      std::vector<Line> used = usage_lines(old_start, old_end, !trial_period && old_start < old_end, at);
      lines.insert(lines.end(), used.begin(), used.end());
      issue(std::move(lines), "subscription_resume", at, sub->period_end, true, at, &charges, true);
    }
  }
  settle(charges, at);
  return {200};
}

Expect Model::cancel(bool at_period_end) {
  if (at_period_end) {
    if (!live(sub->status)) return {409};
    sub->cancel_at_period_end = true;
    return {200};
  }
  if (sub->status == Status::cancelled) return {409};
  const bool billing_period =
      sub->status == Status::active || sub->status == Status::past_due || sub->status == Status::paused;
  const Instant at = now();
  sub->status = Status::cancelled;
  sub->cancelled_at = at;
  for (Invoice& inv : invoices) {
    if (inv.subscription && inv.status == "open") inv.next_payment_attempt.reset();
  }
  std::vector<Charge> charges;
  if (billing_period) final_usage(sub->period_start, std::min(at, sub->period_end), at, charges);
  settle(charges, at);
  return {200};
}

void Model::set_payment_method(const std::string& method) {
  if (method == payment_method || method.empty()) return;
  payment_method = method;
  // Every open subscription invoice that asks for money is retried at once.
  for (Invoice& inv : invoices) {
    if (inv.subscription && inv.status == "open" && inv.amount_remaining > 0) inv.next_payment_attempt = 0;
  }
}

Expect Model::pay(std::size_t k) {
  Invoice& inv = invoices[k];
  if (inv.status != "open" || inv.amount_remaining <= 0) return {409};
  const Instant at = now_of(inv);
  inv.attempt_count += 1;
  std::vector<Charge> charges;
  new_attempt(k, at, charges);
  settle(charges, at);
  return {200};
}

Expect Model::void_invoice(std::size_t k) {
  Invoice& inv = invoices[k];
  if (inv.status != "open" && inv.status != "draft") return {409};
  const Instant at = now_of(inv);
  if (inv.status == "open" && inv.totals.credit_applied > 0) credit_balance += inv.totals.credit_applied;
  inv.status = "void";
  inv.next_payment_attempt.reset();
  inv.voided_at = at;
  inv.amount_remaining = 0;
  if (inv.subscription) settle_status(at);
  return {200};
}

Expect Model::mark_uncollectible(std::size_t k) {
  Invoice& inv = invoices[k];
  if (inv.status != "open") return {409};
  inv.status = "uncollectible";
  inv.next_payment_attempt.reset();
  if (inv.subscription) settle_status(now_of(inv));
  return {200};
}

std::int64_t Model::creditable(std::size_t k, const std::optional<std::string>& method) const {
  const Invoice& inv = invoices[k];
  if (inv.status != "open" && inv.status != "paid") return 0;
  std::int64_t left = inv.totals.total - inv.credited;
  const std::string m = method.value_or(inv.status == "open" ? "invoice" : "credit_balance");
  if (m == "invoice") {
    if (inv.status != "open") return 0;
    left = std::min(left, inv.amount_remaining);
  } else if (m == "credit_balance") {
    if (inv.status != "paid") return 0;
  } else {
    if (inv.status != "paid") return 0;
    const bool charged =
        std::any_of(inv.attempts.begin(), inv.attempts.end(), [](const Attempt& a) { return a.status == "succeeded"; });
    if (!charged) return 0;
    left = std::min(left, inv.amount_paid - inv.refunded);
  }
  return std::max<std::int64_t>(left, 0);
}

Expect Model::credit_note(std::size_t k, std::int64_t amount, const std::optional<std::string>& method) {
  Invoice& inv = invoices[k];
  if (inv.status != "open" && inv.status != "paid") return {409};
  if (amount > inv.totals.total - inv.credited) return {400};
  const std::string m = method.value_or(inv.status == "open" ? "invoice" : "credit_balance");
  const Instant at = now_of(inv);
  if (m == "invoice") {
    if (inv.status != "open" || amount > inv.amount_remaining) return {400};
    inv.amount_remaining -= amount;
    inv.credited_to_invoice += amount;
    if (inv.amount_remaining == 0) {
      inv.status = "paid";
      inv.paid_at = at;
      inv.next_payment_attempt.reset();
    }
    // Before the subscription's status is settled, which asks whether an invoice still asks for money.
    inv.credited += amount;
    if (inv.status == "paid" && inv.subscription) settle_status(at);
  } else if (m == "credit_balance") {
    if (inv.status != "paid") return {400};
    credit_balance += amount;
    inv.credited += amount;
  } else if (m == "refund") {
    if (inv.status != "paid") return {400};
    const bool charged =
        std::any_of(inv.attempts.begin(), inv.attempts.end(), [](const Attempt& a) { return a.status == "succeeded"; });
    if (!charged || amount > inv.amount_paid - inv.refunded) return {400};
    inv.refunded += amount;
    inv.credited += amount;
  } else {
    return {400};
  }
  credit_notes.push_back(CreditNote{k, amount, m, at, inv.on_clock});
  return {201};
}

void Model::create_draft(const std::vector<Line>& lines) {
  Invoice inv;
  inv.reason = "manual";
  inv.status = "draft";
  inv.created_at = real_now;
  inv.period_start = inv.period_end = real_now;
  inv.lines = lines;
  for (Line& l : inv.lines) l.period_start = l.period_end = real_now;
  // A draft shows its totals as they stand; credit and what is due are settled at finalization.
  inv.totals = compute_totals(inv.lines, nullptr, tax, 0);
  inv.totals.amount_due = 0;
  inv.totals.credit_created = 0;
  invoices.push_back(std::move(inv));
}

Expect Model::finalize(std::size_t k) {
  if (invoices[k].status != "draft") return {409};
  const Instant at = real_now;
  Invoice priced = price(invoices[k].lines, "manual", invoices[k].period_start, invoices[k].period_end, false, at,
                         false, nullptr, true);
  Invoice& inv = invoices[k];
  inv.totals = priced.totals;
  inv.status = priced.status;
  inv.finalized_at = at;
  inv.paid_at = priced.paid_at;
  inv.amount_remaining = priced.amount_remaining;
  credit_balance += inv.totals.credit_created - inv.totals.credit_applied;
  std::vector<Charge> charges;
  if (inv.totals.amount_due > 0) {
    inv.attempt_count = 1;
    new_attempt(k, at, charges);
  }
  settle(charges, at);
  return {200};
}

void Model::new_plan_version(std::size_t p, const PlanVersion& v) { plans[p].versions.push_back(v); }

Expect Model::advance_clock(Instant to) {
  if (to <= clock_now || to - clock_now > std::int64_t{5} * 366 * k_day) return {400};
  for (int step = 0; step < 20'000; ++step) {
    Instant next = to;
    if (sub && on_clock && live(sub->status)) next = std::min(next, sub->period_end);
    for (const Invoice& inv : invoices) {
      if (inv.on_clock && inv.status == "open" && inv.next_payment_attempt) {
        next = std::min(next, *inv.next_payment_attempt);
      }
    }
    const Instant at = std::max(next, clock_now);
    clock_now = at;
    std::vector<Charge> charges;
    if (on_clock) advance_subscription(at, charges);
    std::vector<std::size_t> due;
    for (std::size_t k = 0; k < invoices.size(); ++k) {
      const Invoice& inv = invoices[k];
      if (inv.on_clock && inv.status == "open" && inv.next_payment_attempt && *inv.next_payment_attempt <= at) {
        due.push_back(k);
      }
    }
    std::stable_sort(due.begin(), due.end(), [&](std::size_t a, std::size_t b) {
      return *invoices[a].next_payment_attempt < *invoices[b].next_payment_attempt;
    });
    for (const std::size_t k : due) retry(k, at, charges);
    settle(charges, at);
    if (at >= to && charges.empty()) break;
  }
  return {200};
}

void Model::run_billing(Instant to) {
  real_now = std::max(real_now, to);
  const Instant at = real_now;
  if (sub && !on_clock && live(sub->status) && sub->period_end <= at) {
    std::vector<Charge> charges;
    advance_subscription(at, charges);
    settle(charges, at);
  }
  if (!on_clock) {
    std::vector<std::size_t> due;
    for (std::size_t i = 0; i < usage.size(); ++i) {
      if (!usage[i].settled && usage[i].open_until <= at - 300) due.push_back(i);
    }
    for (const std::size_t i : due) {
      if (usage[i].settled) continue;  // a final invoice of this run measured it a last time already
      remeasure(usage[i], at);
      // A cancelled subscription has no next renewal to bill what the last measure changed: it is invoiced now.
      if (sub && sub->status == Status::cancelled && usage[i].amount != usage[i].billed_amount) {
        std::vector<Charge> charges;
        final_usage(at, at, at, charges);
        settle(charges, at);
      }
    }
  }
  std::vector<std::size_t> due;
  for (std::size_t k = 0; k < invoices.size(); ++k) {
    const Invoice& inv = invoices[k];
    if (!inv.on_clock && inv.status == "open" && inv.next_payment_attempt && *inv.next_payment_attempt <= at) {
      due.push_back(k);
    }
  }
  std::stable_sort(due.begin(), due.end(), [&](std::size_t a, std::size_t b) {
    return *invoices[a].next_payment_attempt < *invoices[b].next_payment_attempt;
  });
  std::vector<Charge> charges;
  for (const std::size_t k : due) retry(k, at, charges);
  // A retry that paid an unpaid subscription's last invoice may have started a period due now: the run goes again.
  if (settle(charges, at) > 0) run_billing(at);
}

}  // namespace atrium::test::billing_model
