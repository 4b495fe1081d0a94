#include "billing/detail/state.hpp"

namespace atrium::billing {

namespace {

// A plan or seat change, computed once for the preview and the change itself.
struct Change {
  Plan from;
  Plan to;
  std::int64_t seats = 1;
  bool interval_change = false;
  Proration proration;      // credit / charge / net of the change
  std::vector<Line> lines;  // what is invoiced now (empty: nothing)
  Instant new_anchor{};     // for an interval change: the new period
  Instant new_period_end{};
  bool new_period_discounted = false;  // the coupon discounts the new period
};

// The change asked for: the plan it moves from (the subscription's version) and to (the current version of the plan
// named, or the same), and the seats. Nothing is priced yet.
Result<Change> change_target(Billing::Impl& s, TenantTransaction& tx, const Subscription& sub, const Account& acct,
                             const PlanChange& input) {
  const auto& plan_ref = input.plan;
  const auto& seats = input.seats;
  if (!plan_ref && !seats) return fail(Errc::invalid_argument, "give plan, seats or both");
  if (seats && (*seats < 1 || *seats > 1'000'000)) {
    return fail(Errc::invalid_argument, "seats must be between 1 and 1000000");
  }
  if (sub.status != Status::trial && sub.status != Status::active && sub.status != Status::past_due) {
    return fail(Errc::conflict, "a " + std::string(status_name(sub.status)) + " subscription cannot change");
  }
  Change c;
  auto from = s.plan_version(Billing::Impl::raw(tx), sub.plan_id, sub.plan_version);
  if (!from) return std::unexpected(from.error());
  c.from = *from;
  c.to = *from;
  if (plan_ref) {
    auto to = s.plan_current(Billing::Impl::raw(tx), *plan_ref);
    if (!to) {
      if (to.error().code == Errc::not_found) return fail(Errc::invalid_argument, to.error().message);
      return std::unexpected(to.error());
    }
    if (!to->active) return fail(Errc::invalid_argument, "plan " + to->code + " is not available");
    if (to->price.currency != acct.currency) {
      return fail(Errc::invalid_argument, "plan " + to->code + " is priced in " + to->price.currency);
    }
    c.to = *to;
  }
  c.seats = seats.value_or(sub.seats);
  return c;
}

// The subscription's coupon as a change prorates with it: what the customer pays is the discounted price.
struct CouponTerms {
  std::optional<Coupon> coupon;
  const Subscription& sub;

  // Whether the coupon discounts a period starting at `period_start` (not the current one: see compute_change).
  bool applies_from(Instant period_start) const {
    if (!coupon) return false;
    if (coupon->duration == "forever") return true;
    if (coupon->duration == "once") return false;  // used by the first invoice, never by a later period
    return period_start < add_months(sub.coupon_start.value_or(period_start), coupon->duration_months);
  }

  Result<std::int64_t> discounted(std::int64_t amount, bool applies) const {
    if (!applies || !coupon) return amount;
    if (coupon->percent_off_bps > 0) {
      auto off = apply_bps(amount, coupon->percent_off_bps);
      if (!off) return off;
      return amount - *off;
    }
    return std::max<std::int64_t>(0, amount - coupon->amount_off);
  }
};

// The same interval: the rest of the current period is credited at the old price and charged at the new one.
void prorate_in_period(Change& c, const Proration& p, const std::string& old_label, const std::string& new_label,
                       Instant now, Instant period_end) {
  c.proration = p;
  Line credit{LineKind::proration, "Unused time on " + old_label, 1, -p.credit, -p.credit, now, period_end, true};
  Line charge{LineKind::proration, "Remaining time on " + new_label, 1, p.charge, p.charge, now, period_end, true};
  c.lines = {credit, charge};
}

// Another interval: the unused time is credited and a new period starts now (Stripe resets the anchor), invoiced in
// full and discounted as its renewal would be.
Result<void> restart_period(Billing::Impl& s, Change& c, const CouponTerms& terms, std::int64_t old_amount,
                            Instant priced_from, const Account& acct, const std::string& old_label, Instant now,
                            bool prorate) {
  const Subscription& sub = terms.sub;
  auto credit = prorate ? prorate_remaining(old_amount, priced_from, sub.current_period_end, now, acct.proration)
                        : Result<std::int64_t>(0);
  if (!credit) return std::unexpected(credit.error());
  c.new_anchor = now;
  c.new_period_end = boundary(now, c.to.price.interval, 1);
  auto lines = Billing::Impl::cycle_lines(c.to, c.seats, now, c.new_period_end);
  if (!lines) return std::unexpected(lines.error());
  std::int64_t charge = 0;
  for (const auto& l : *lines) charge += l.amount;
  c.new_period_discounted = terms.applies_from(now);
  auto new_period = terms.discounted(charge, c.new_period_discounted);
  if (!new_period) return std::unexpected(new_period.error());
  if (*new_period != charge) {
    lines->push_back(Line{LineKind::one_off, "Discount " + terms.coupon->code, 1, *new_period - charge,
                          *new_period - charge, now, c.new_period_end, false});
    charge = *new_period;
  }
  std::int64_t credited = *credit;
  if (charge - credited < 0 && !s.settings.downgrade_credit) credited = charge;
  c.proration = Proration{credited, charge, charge - credited, 0, 0};
  if (prorate) {
    c.lines.push_back(Line{LineKind::proration, "Unused time on " + old_label, 1, -credited, -credited, now,
                           sub.current_period_end, true});
  }
  for (auto& l : *lines) c.lines.push_back(std::move(l));
  return {};
}

// When the change is prorated as of: its proration_date, else now. The date lies within the current period and not
// after now.
Result<Instant> proration_instant(const Subscription& sub, const PlanChange& input, Instant now) {
  if (!input.proration_date) return now;
  const Instant at = *input.proration_date;
  if (at > now) return fail(Errc::invalid_argument, "proration_date must not be in the future");
  if (at < sub.current_period_start || at >= sub.current_period_end) {
    return fail(Errc::invalid_argument, "proration_date must lie within the current period (" +
                                            format_rfc3339(sub.current_period_start) + " to " +
                                            format_rfc3339(sub.current_period_end) + ")");
  }
  return at;
}

// The change prorated as of `now` (proration_instant's answer).
Result<Change> compute_change(Billing::Impl& s, TenantTransaction& tx, const Subscription& sub, const Account& acct,
                              const PlanChange& input, Instant now) {
  auto target = change_target(s, tx, sub, acct, input);
  if (!target) return target;
  Change& c = *target;
  if (sub.status == Status::trial) return target;  // nothing is billed during a trial
  CouponTerms terms{std::nullopt, sub};
  if (sub.coupon_id) {
    auto found = s.coupon(Billing::Impl::raw(tx), *sub.coupon_id);
    if (!found) return std::unexpected(found.error());
    terms.coupon = *found;
  }
  // The current period is prorated at what its invoice charged: whether that invoice carried the coupon is recorded
  // when the period starts. Comparing the coupon's start with the period's start cannot tell the first period from
  // a new one that starts in the same second (an interval change right after subscribing), nor see a once coupon
  // first used at a trial's end. Only rows from before the flag with a repeating or forever coupon lack it
  // (migration 0008 set it for once coupons); their rule depends on the period's start alone.
  const bool current_discounted =
      terms.coupon && sub.period_discounted.value_or(terms.applies_from(sub.current_period_start));
  auto old_gross = period_amount(c.from.price, sub.seats);
  if (!old_gross) return std::unexpected(old_gross.error());
  auto new_gross = period_amount(c.to.price, c.seats);
  if (!new_gross) return std::unexpected(new_gross.error());
  auto old_amount = terms.discounted(*old_gross, current_discounted);
  if (!old_amount) return std::unexpected(old_amount.error());
  auto new_amount = terms.discounted(*new_gross, current_discounted);
  if (!new_amount) return std::unexpected(new_amount.error());
  const std::string old_label = c.from.name + " x " + std::to_string(sub.seats) + " seats";
  const std::string new_label = c.to.name + " x " + std::to_string(c.seats) + " seats";
  c.interval_change = c.from.price.interval != c.to.price.interval;
  // The fraction is of the whole period the price is for: a first period cut short by a billing anchor day starts at
  // `now` but was invoiced as its part of the period from the previous anchor day, so measuring from its own start
  // would credit the full price for a few days' payment. Every other period starts there anyway.
  const Instant priced_from = boundary(sub.anchor, c.from.price.interval, sub.cycle - 1);
  const bool prorating = input.proration_behavior == ProrationBehavior::always_invoice;
  if (c.interval_change) {
    if (auto r = restart_period(s, c, terms, *old_amount, priced_from, acct, old_label, now, prorating); !r) {
      return std::unexpected(r.error());
    }
    return target;
  }
  if (!prorating) return target;  // proration_behavior none: nothing is invoiced, the change applies
  auto p = prorate(*old_amount, *new_amount, priced_from, sub.current_period_end, now, acct.proration);
  if (!p) return std::unexpected(p.error());
  c.proration = *p;
  if (p->net < 0 && !s.settings.downgrade_credit) return target;  // a downgrade gives nothing back
  if (p->credit == 0 && p->charge == 0) return target;
  prorate_in_period(c, *p, old_label, new_label, now, sub.current_period_end);
  return target;
}

}  // namespace

Result<Json> Billing::preview_change(const std::string& tenant_id, const std::string& id, const PlanChange& input) {
  Impl& s = *impl_;
  Json out;
  auto r = s.tenant(
      tenant_id,
      [&](TenantTransaction& tx) -> Result<void> {
        auto sub = s.subscription(tx, id, false);
        if (!sub) return std::unexpected(sub.error());
        auto acct = s.account(tx, false);
        if (!acct) return std::unexpected(acct.error());
        auto now = s.now_for(tx, sub->test_clock_id);
        if (!now) return std::unexpected(now.error());
        if (*now >= sub->current_period_end && sub->status != Status::paused && sub->status != Status::cancelled &&
            sub->status != Status::unpaid) {
          return fail(Errc::conflict, "the current period ended and is being renewed; preview again in a moment");
        }
        auto at = proration_instant(*sub, input, *now);
        if (!at) return std::unexpected(at.error());
        *now = *at;  // the preview is of the change as of that instant
        auto c = compute_change(s, tx, *sub, *acct, input, *now);
        if (!c) return std::unexpected(c.error());
        out = {{"subscription_id", sub->id},
               {"plan_id", c->to.id},
               {"plan_version", c->to.price.version},
               {"seats", c->seats},
               {"currency", acct->currency},
               {"proration_mode", std::string(proration_mode_name(acct->proration))},
               {"proration_date", time_json(*now)},
               {"credit", c->proration.credit},
               {"charge", c->proration.charge},
               {"net", c->proration.net}};
        if (c->interval_change && sub->status != Status::trial) {
          // As the change will: the usage of the period it cuts short (measured, nothing written).
          std::vector<Impl::UsageRecord> usage;
          auto used = s.usage_lines(tx, *sub, c->from, sub->current_period_start, *now,
                                    sub->current_period_start < *now, *now, usage, false);
          if (!used) return std::unexpected(used.error());
          c->lines.insert(c->lines.end(), used->begin(), used->end());
        }
        if (c->lines.empty()) {
          out["invoice"] = nullptr;
          return {};
        }
        Impl::IssueOptions o{.reason = "subscription_update",
                             .period_start = *now,
                             .period_end = c->interval_change ? c->new_period_end : sub->current_period_end};
        auto inv = s.issue_invoice(tx, *acct, &*sub, c->lines, o, *now, nullptr, false);
        if (!inv) return std::unexpected(inv.error());
        Json j = to_json(*inv);
        j["id"] = nullptr;
        j["number"] = nullptr;
        j["status"] = "preview";
        out["invoice"] = j;
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Subscription> Billing::change_subscription(const std::string& tenant_id, const std::string& id,
                                                  const PlanChange& input, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    auto t = s.now_for(tx, sub->test_clock_id);
    if (!t) return std::unexpected(t.error());
    now = *t;
    // A period that ended before the billing run got to it is renewed first, so the change prorates the current one.
    if (auto a = s.advance_subscription(tx, *sub, *acct, now, charges, nullptr); !a) return a;
    auto prorated = proration_instant(*sub, input, now);
    if (!prorated) return std::unexpected(prorated.error());
    const Instant at = *prorated;  // the change takes effect as of it (now unless proration_date says otherwise)
    auto c = compute_change(s, tx, *sub, *acct, input, at);
    if (!c) return std::unexpected(c.error());
    const Json before = to_json(*sub);
    const Instant old_end = sub->current_period_end;
    // An interval change cuts the period short: its metered usage so far is invoiced with the change, at the old
    // plan version's prices (a trial bills none).
    std::vector<Impl::UsageRecord> usage;
    if (c->interval_change && sub->status != Status::trial) {
      auto used =
          s.usage_lines(tx, *sub, c->from, sub->current_period_start, at, sub->current_period_start < at, now, usage);
      if (!used) return std::unexpected(used.error());
      c->lines.insert(c->lines.end(), used->begin(), used->end());
    }
    s.mark_plan_changed(tenant_id);
    sub->plan_id = c->to.id;
    sub->plan_version = c->to.price.version;
    sub->seats = c->seats;
    if (c->interval_change) {
      sub->anchor = c->new_anchor;
      sub->cycle = 1;
      sub->current_period_start = at;
      sub->current_period_end = c->new_period_end;
      sub->period_discounted = c->new_period_discounted;
    }
    if (!c->lines.empty()) {
      Impl::IssueOptions o{.reason = "subscription_update",
                           .period_start = at,
                           .period_end = c->interval_change ? c->new_period_end : old_end,
                           .cycle_key = std::nullopt};  // a change's invoice is not a period's
      auto inv = s.issue_invoice(tx, *acct, &*sub, c->lines, o, now, &charges, true);
      if (!inv) return std::unexpected(inv.error());
      if (auto u = s.save_usage(tx, sub->id, usage, inv->id, now); !u) return u;
    }
    if (auto sv = s.save(tx, *sub, now); !sv) return sv;
    Json after = to_json(*sub);
    const Json changes = changed_fields(before, after);
    if (auto e =
            s.emit(tx, "subscription.updated",
                   {{"subscription", after},
                    {"previous_plan_id", before["plan_id"]},
                    {"previous_seats", before["seats"]},
                    {"proration",
                     {{"credit", c->proration.credit}, {"charge", c->proration.charge}, {"net", c->proration.net}}}});
        !e) {
      return e;
    }
    return s.record(tx, &who, "subscription.updated", "subscription", sub->id, changes);
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle_at(charges, tenant_id, now, nullptr); !st) return std::unexpected(st.error());
  return get_subscription(tenant_id, id);
}

}  // namespace atrium::billing
