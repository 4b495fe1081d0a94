#include "billing/catalog/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

// ---- subscriptions ----------------------------------------------------------------------------------------------

namespace {

// The numbers of a new subscription within their ranges.
Result<void> check_new_subscription(const NewSubscription& n) {
  if (n.plan.empty()) return fail(Errc::invalid_argument, "plan (a plan's code or id) is required");
  for (auto [field, value, min, max] :
       {std::tuple{"seats", n.seats, 1, 1'000'000}, std::tuple{"trial_days", n.trial_days, 0, 730},
        std::tuple{"billing_anchor_day", n.billing_anchor_day, 1, 31}}) {
    if (value && (*value < min || *value > max)) {
      return fail(Errc::invalid_argument,
                  std::string(field) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
  }
  if (n.trial_days.value_or(0) > 0 && n.billing_anchor_day) {
    return fail(Errc::invalid_argument, "billing_anchor_day cannot be combined with a trial (the trial's end anchors)");
  }
  return {};
}

// The plan to subscribe to: active, and priced in the account's currency (an unknown plan is bad input).
Result<Plan> subscribable_plan(Billing::Impl& s, TenantTransaction& tx, const std::string& ref, const Account& acct) {
  auto plan = s.plan_current(Billing::Impl::raw(tx), ref);
  if (!plan) {
    if (plan.error().code == Errc::not_found) return fail(Errc::invalid_argument, plan.error().message);
    return std::unexpected(plan.error());
  }
  if (!plan->active) return fail(Errc::invalid_argument, "plan " + plan->code + " is not available");
  if (plan->price.currency != acct.currency) {
    return fail(Errc::invalid_argument, "plan " + plan->code + " is priced in " + plan->price.currency +
                                            " but the billing account's currency is " + acct.currency);
  }
  return plan;
}

// The moment the subscription starts: its test clock's time (test-mode accounts only), else now.
Result<Instant> start_time(Billing::Impl& s, TenantTransaction& tx, const Account& acct, const NewSubscription& n,
                           Subscription& sub) {
  if (!n.test_clock_id) return s.now();
  if (!acct.test_mode) return fail(Errc::conflict, "test clocks need a billing account in test mode");
  auto c = s.test_clock(tx, *n.test_clock_id);
  if (!c) {
    if (c.error().code == Errc::not_found) return fail(Errc::invalid_argument, c.error().message);
    return std::unexpected(c.error());
  }
  sub.test_clock_id = c->id;
  return c->frozen_time;
}

// Redeems the coupon `code` for `sub` (one redemption counted, within the coupon's limit).
Result<void> redeem_coupon(Billing::Impl& s, TenantTransaction& tx, const Account& acct, const std::string& code,
                           Instant now, Subscription& sub) {
  auto c = s.coupon(Billing::Impl::raw(tx), code);
  if (!c) return std::unexpected(c.error());
  if (!*c || !(*c)->active) return fail(Errc::invalid_argument, "no active coupon '" + code + "'");
  if ((*c)->redeem_by && *(*c)->redeem_by < now) return fail(Errc::invalid_argument, "the coupon has expired");
  if ((*c)->amount_off > 0 && (*c)->currency != acct.currency) {
    return fail(Errc::invalid_argument, "the coupon's currency is not the account's");
  }
  auto redeemed = Billing::Impl::raw(tx).execute(k_coupon_redeem, {Value((*c)->id)});
  if (!redeemed) return std::unexpected(redeemed.error());
  if (redeemed->affected_rows != 1) return fail(Errc::conflict, "the coupon has reached its redemption limit");
  sub.coupon_id = (*c)->id;
  sub.coupon_start = now;
  return {};
}

// The first period: a trial, a period to the requested anchor day (prorated when it is short), or a full period
// from now. Returns the lines to invoice now (none for a trial).
Result<std::vector<Line>> first_period(Subscription& sub, const Plan& plan, const Account& acct, int trial_days,
                                       std::optional<std::int64_t> anchor_day, Instant now) {
  sub.current_period_start = now;
  if (trial_days > 0) {
    sub.status = Status::trial;
    sub.trial_end = now + std::chrono::days(trial_days);
    sub.anchor = *sub.trial_end;
    sub.cycle = 0;
    sub.current_period_end = *sub.trial_end;
    return std::vector<Line>{};
  }
  sub.status = Status::active;
  if (!anchor_day) {
    sub.anchor = now;
    sub.cycle = 1;
    sub.current_period_end = boundary(now, plan.price.interval, 1);
    return Billing::Impl::cycle_lines(plan, sub.seats, now, sub.current_period_end);
  }
  const Instant first_end = next_anchor_day(now, static_cast<int>(*anchor_day));
  std::tie(sub.anchor, sub.cycle) = anchor_keeping_day(first_end, static_cast<int>(*anchor_day), plan.price.interval);
  sub.current_period_end = first_end;
  const Instant full_start = boundary(sub.anchor, plan.price.interval, sub.cycle - 1);
  auto lines = Billing::Impl::cycle_lines(plan, sub.seats, full_start, first_end);
  if (!lines) return lines;
  if (full_start < now) {
    if (auto p = Billing::Impl::prorate_lines(*lines, full_start, first_end, now, acct.proration); !p) {
      return std::unexpected(p.error());
    }
  }
  return lines;
}

Result<void> insert_subscription(TenantTransaction& tx, const Subscription& sub, Instant now) {
  auto ins = tx.execute(k_sub_insert,
                        {Value(sub.id), Value(sub.plan_id), Value(std::int64_t{sub.plan_version}),
                         Value(std::string(status_name(sub.status))), Value(sub.seats), time_value(sub.anchor),
                         Value(sub.cycle), time_value(sub.current_period_start), time_value(sub.current_period_end),
                         opt(sub.trial_end), Value(false), Value(), Value(), opt(sub.coupon_id), opt(sub.coupon_start),
                         Value(std::int64_t{0}), opt(sub.test_clock_id), time_value(now), Value(false)});
  if (!ins) {
    if (ins.error().code == Errc::unique_violation) {
      return fail(Errc::conflict, "this tenant already has a live subscription; change it instead");
    }
    return std::unexpected(ins.error());
  }
  return {};
}

}  // namespace

Result<Subscription> Billing::create_subscription(const std::string& tenant_id, const NewSubscription& input,
                                                  const audit::Context& who) {
  if (auto c = check_new_subscription(input); !c) return std::unexpected(c.error());
  const NewSubscription* n = &input;
  Impl& s = *impl_;
  Subscription sub;
  std::vector<PendingCharge> charges;
  Instant now{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    sub = Subscription{};  // the body may run again after a serialization failure
    auto acct = s.account(tx);
    if (!acct) {
      if (acct.error().code == Errc::not_found) return fail(Errc::conflict, acct.error().message);
      return std::unexpected(acct.error());
    }
    auto plan = subscribable_plan(s, tx, n->plan, *acct);
    if (!plan) return std::unexpected(plan.error());
    auto start = start_time(s, tx, *acct, *n, sub);
    if (!start) return std::unexpected(start.error());
    now = *start;
    sub.tenant_id = tenant_id;
    sub.id = new_uuid_v7(s.clock);
    s.mark_plan_changed(tenant_id);
    sub.plan_id = plan->id;
    sub.plan_version = plan->price.version;
    sub.seats = n->seats.value_or(std::max<std::int64_t>(1, plan->price.included_seats));
    sub.created_at = sub.updated_at = now;
    if (n->coupon) {
      if (auto c = redeem_coupon(s, tx, *acct, *n->coupon, now, sub); !c) return c;
    }
    const int trial_days = static_cast<int>(n->trial_days.value_or(plan->price.trial_days));
    if (trial_days > 0 && n->billing_anchor_day) {
      return fail(Errc::invalid_argument, "billing_anchor_day cannot be combined with a trial (plan " + plan->code +
                                              " has one; send trial_days 0 to start without it)");
    }
    auto lines = first_period(sub, *plan, *acct, trial_days, n->billing_anchor_day, now);
    if (!lines) return std::unexpected(lines.error());
    if (auto ins = insert_subscription(tx, sub, now); !ins) return ins;
    if (auto m = s.record_mrr(tx, sub, now); !m) return m;
    if (!lines->empty()) {
      Impl::IssueOptions o{.reason = "subscription_create",
                           .period_start = sub.current_period_start,
                           .period_end = sub.current_period_end,
                           .cycle_key = sub.id + ":" + std::to_string(unix_seconds(sub.current_period_start)),
                           .with_coupon = true};
      auto inv = s.issue_invoice(tx, *acct, &sub, std::move(*lines), o, now, &charges, true);
      if (!inv) return std::unexpected(inv.error());
      if (auto sv = s.save(tx, sub, now); !sv) return sv;
    }
    if (auto e = s.emit(tx, "subscription.created", {{"subscription", to_json(sub)}}); !e) return e;
    return s.record(tx, &who, "subscription.created", "subscription", sub.id, audit::created_changes(to_json(sub)));
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle_at(charges, tenant_id, now, nullptr); !st) return std::unexpected(st.error());
  return get_subscription(tenant_id, sub.id);
}

Result<std::vector<Subscription>> Billing::list_subscriptions(const std::string& tenant_id) {
  return impl_->tenant_rows(tenant_id, k_sub_list, {}, &read_sub);
}

Result<Subscription> Billing::get_subscription(const std::string& tenant_id, const std::string& id) {
  std::optional<Subscription> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto sub = impl_->subscription(tx, id, false);
                           if (!sub) return std::unexpected(sub.error());
                           out = std::move(*sub);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<Subscription> Billing::pause(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::optional<Subscription> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto now = s.now_for(tx, sub->test_clock_id);
    if (!now) return std::unexpected(now.error());
    const std::string before(status_name(sub->status));
    if (auto t = s.transition(tx, *sub, Status::paused, "requested"); !t) return t;
    sub->paused_at = *now;
    if (auto sv = s.save(tx, *sub, *now); !sv) return sv;
    // Dunning stops while paused.
    auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
    if (!open) return std::unexpected(open.error());
    for (std::size_t i = 0; i < open->rows.size(); ++i) {
      Invoice inv = read_invoice(*open, i);
      auto in_flight = s.payment_in_flight(tx, inv.id);
      if (!in_flight) return std::unexpected(in_flight.error());
      if (*in_flight) continue;  // a charge of unknown outcome is still sent again with its key
      inv.next_payment_attempt.reset();
      if (auto sv = s.save_payment_state(tx, inv, *now); !sv) return sv;
    }
    Json changes = Json::object();
    audit::add_change(changes, "status", before, "paused");
    if (auto a = s.record(tx, &who, "subscription.paused", "subscription", sub->id, changes); !a) return a;
    out = std::move(*sub);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  return *out;
}

Result<Subscription> Billing::resume(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    if (sub->status != Status::paused) return fail(Errc::conflict, "only a paused subscription can resume");
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    auto t = s.now_for(tx, sub->test_clock_id);
    if (!t) return std::unexpected(t.error());
    now = *t;
    sub->paused_at.reset();
    auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
    if (!open) return std::unexpected(open.error());
    bool owes = false;
    for (std::size_t i = 0; i < open->rows.size(); ++i) {
      Invoice inv = read_invoice(*open, i);
      if (inv.amount_remaining <= 0) continue;
      owes = true;
      inv.next_payment_attempt = now;  // dunning resumes with a retry now
      if (auto sv = s.save_payment_state(tx, inv, now); !sv) return sv;
    }
    // The period that ran out while paused is not renewed: its metered usage is invoiced now (unless it was a trial).
    const bool ran_out = now >= sub->current_period_end;
    const bool trial_period = sub->trial_end && *sub->trial_end >= sub->current_period_end;
    const Instant old_start = sub->current_period_start;
    const Instant old_end = sub->current_period_end;
    if (sub->cancel_at_period_end && ran_out) {
      // It was to end with the period that ran out while paused: it ends now instead of starting a new one.
      if (auto tr = s.transition(tx, *sub, Status::cancelled, "period_end"); !tr) return tr;
      sub->cancelled_at = now;
      if (!trial_period) {
        if (auto f = s.final_usage(tx, *sub, old_start, old_end, now, charges); !f) return f;
      }
    } else if (sub->trial_end && *sub->trial_end > now) {
      if (auto tr = s.transition(tx, *sub, Status::trial, "resumed"); !tr) return tr;
    } else {
      if (auto tr = s.transition(tx, *sub, owes ? Status::past_due : Status::active, "resumed"); !tr) return tr;
      if (now >= sub->current_period_end) {
        // The paid period ran out while paused: a new one starts now.
        auto plan = s.plan_version(Impl::raw(tx), sub->plan_id, sub->plan_version);
        if (!plan) return std::unexpected(plan.error());
        sub->trial_end.reset();
        sub->anchor = now;
        sub->cycle = 1;
        sub->current_period_start = now;
        sub->current_period_end = boundary(now, plan->price.interval, 1);
        auto lines = Impl::cycle_lines(*plan, sub->seats, now, sub->current_period_end);
        if (!lines) return std::unexpected(lines.error());
        std::vector<Impl::UsageRecord> usage;
        auto used =
            s.usage_lines(tx, *sub, *plan, old_start, old_end, !trial_period && old_start < old_end, now, usage);
        if (!used) return std::unexpected(used.error());
        lines->insert(lines->end(), used->begin(), used->end());
        Impl::IssueOptions o{.reason = "subscription_resume",
                             .period_start = now,
                             .period_end = sub->current_period_end,
                             .cycle_key = sub->id + ":" + std::to_string(unix_seconds(now)),
                             .with_coupon = true};
        auto inv = s.issue_invoice(tx, *acct, &*sub, std::move(*lines), o, now, &charges, true);
        if (!inv) return std::unexpected(inv.error());
        if (auto u = s.save_usage(tx, sub->id, usage, inv->id, now); !u) return u;
      }
    }
    if (auto sv = s.save(tx, *sub, now); !sv) return sv;
    Json changes = Json::object();
    audit::add_change(changes, "status", "paused", std::string(status_name(sub->status)));
    return s.record(tx, &who, "subscription.resumed", "subscription", sub->id, changes);
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle_at(charges, tenant_id, now, nullptr); !st) return std::unexpected(st.error());
  return get_subscription(tenant_id, id);
}

// Ends a subscription now: no renewal, and its open invoices are not retried (a charge of unknown outcome is still
// sent again with its key).
Result<void> Billing::Impl::cancel_now(TenantTransaction& tx, Subscription& sub, Instant now, std::string_view reason,
                                       std::vector<PendingCharge>& charges) {
  // A trial bills no usage, and an unpaid subscription's periods that passed unpaid are not billed.
  const bool billing_period =
      sub.status == Status::active || sub.status == Status::past_due || sub.status == Status::paused;
  if (auto t = transition(tx, sub, Status::cancelled, reason); !t) return t;
  sub.cancelled_at = now;
  auto open = tx.execute(k_invoice_open_of_sub, {Value(sub.id)});
  if (!open) return std::unexpected(open.error());
  for (std::size_t i = 0; i < open->rows.size(); ++i) {
    Invoice inv = read_invoice(*open, i);
    auto in_flight = payment_in_flight(tx, inv.id);
    if (!in_flight) return std::unexpected(in_flight.error());
    if (*in_flight) continue;
    inv.next_payment_attempt.reset();
    if (auto sv = save_payment_state(tx, inv, now); !sv) return sv;
  }
  if (!billing_period) return {};
  return final_usage(tx, sub, sub.current_period_start, std::min(now, sub.current_period_end), now, charges);
}

Result<Subscription> Billing::cancel(const std::string& tenant_id, const std::string& id, const Cancellation& input,
                                     const audit::Context& who) {
  Impl& s = *impl_;
  std::optional<Subscription> out;
  std::vector<PendingCharge> charges;
  Instant at{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto now = s.now_for(tx, sub->test_clock_id);
    if (!now) return std::unexpected(now.error());
    at = *now;
    const Json before = to_json(*sub);
    if (input.at_period_end) {
      if (sub->status != Status::trial && sub->status != Status::active && sub->status != Status::past_due) {
        return fail(Errc::conflict, "a " + std::string(status_name(sub->status)) +
                                        " subscription cannot be cancelled at period end; cancel it now");
      }
      sub->cancel_at_period_end = true;
      if (auto e = s.emit(tx, "subscription.updated", {{"subscription", to_json(*sub)}}); !e) return e;
    } else if (auto c = s.cancel_now(tx, *sub, *now, "requested", charges); !c) {
      return c;
    }
    if (auto sv = s.save(tx, *sub, *now); !sv) return sv;
    auto changes = changed_fields(before, to_json(*sub));
    if (auto a = s.record(tx, &who, "subscription.cancelled", "subscription", sub->id, changes); !a) return a;
    out = std::move(*sub);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle_at(charges, tenant_id, at, nullptr); !st) return std::unexpected(st.error());
  return *out;
}

Result<std::int64_t> Billing::cancel_all(const std::string& tenant_id, std::string_view reason,
                                         const audit::Context& who) {
  Impl& s = *impl_;
  std::int64_t cancelled = 0;  // set by the body's last run (a retried transaction runs it again)
  std::vector<PendingCharge> charges;
  Instant at{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    cancelled = 0;
    charges.clear();
    auto subs = tx.execute(k_sub_list);
    if (!subs) return std::unexpected(subs.error());
    for (std::size_t i = 0; i < subs->rows.size(); ++i) {
      if (read_sub(*subs, i).status == Status::cancelled) continue;
      auto sub = s.subscription(tx, read_sub(*subs, i).id);  // locked
      if (!sub) return std::unexpected(sub.error());
      if (sub->status == Status::cancelled) continue;
      auto now = s.now_for(tx, sub->test_clock_id);
      if (!now) return std::unexpected(now.error());
      const Json before = to_json(*sub);
      at = std::max(at, *now);
      if (auto c = s.cancel_now(tx, *sub, *now, reason, charges); !c) return c;
      if (auto sv = s.save(tx, *sub, *now); !sv) return sv;
      auto changes = changed_fields(before, to_json(*sub));
      if (auto a = s.record(tx, &who, "subscription.cancelled", "subscription", sub->id, changes); !a) return a;
      ++cancelled;
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (cancelled > 0) s.notify();
  if (auto st = s.settle_at(charges, tenant_id, at, nullptr); !st) return std::unexpected(st.error());
  return cancelled;
}

}  // namespace atrium::billing
