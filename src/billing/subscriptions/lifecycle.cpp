#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/subscriptions/sql.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::billing {

Result<Subscription> Billing::Impl::subscription(TenantTransaction& tx, const std::string& id, bool lock) {
  auto r = tx.execute(lock && postgres(tx) ? k_sub_get_locked : k_sub_get, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no subscription " + id);
  return read_sub(*r, 0);
}

Result<TestClock> Billing::Impl::test_clock(TenantTransaction& tx, const std::string& id, bool lock) {
  auto r = tx.execute(lock && postgres(tx) ? k_clock_get_locked : k_clock_get, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no test clock " + id);
  return read_clock(*r, 0);
}

Result<Instant> Billing::Impl::now_for(TenantTransaction& tx, const std::optional<std::string>& clock_id) {
  if (!clock_id) return now();
  auto c = test_clock(tx, *clock_id);
  if (!c) return std::unexpected(c.error());
  return c->frozen_time;
}

bool Billing::Impl::allowed(Status from, Status to) {
  switch (from) {
    case Status::trial:
      return to == Status::active || to == Status::paused || to == Status::cancelled || to == Status::past_due;
    case Status::active: return to == Status::past_due || to == Status::paused || to == Status::cancelled;
    case Status::past_due:
      return to == Status::active || to == Status::paused || to == Status::cancelled || to == Status::unpaid;
    case Status::paused:
      return to == Status::trial || to == Status::active || to == Status::past_due || to == Status::cancelled;
    case Status::unpaid: return to == Status::active || to == Status::cancelled;
    case Status::cancelled: return false;
  }
  return false;
}

Result<void> Billing::Impl::transition(TenantTransaction& tx, Subscription& sub, Status to, std::string_view reason) {
  if (!allowed(sub.status, to)) {
    return fail(Errc::conflict, "a subscription cannot go from " + std::string(status_name(sub.status)) + " to " +
                                    std::string(status_name(to)));
  }
  const Status from = sub.status;
  sub.status = to;
  mark_plan_changed(tx.tenant_id());  // a subscription that is cancelled (or comes back) moves the plan in force
  return emit(tx, "subscription." + std::string(status_name(to)),
              {{"subscription", to_json(sub)},
               {"previous_status", std::string(status_name(from))},
               {"reason", std::string(reason)}});
}

Result<void> Billing::Impl::save(TenantTransaction& tx, const Subscription& s, Instant now,
                                 std::optional<Instant> effective) {
  auto r = tx.execute(k_sub_update,
                      {Value(s.id), Value(s.plan_id), Value(std::int64_t{s.plan_version}),
                       Value(std::string(status_name(s.status))), Value(s.seats), time_value(s.anchor), Value(s.cycle),
                       time_value(s.current_period_start), time_value(s.current_period_end), opt(s.trial_end),
                       Value(s.cancel_at_period_end), opt(s.cancelled_at), opt(s.paused_at), opt(s.coupon_id),
                       opt(s.coupon_start), Value(s.coupon_uses), time_value(now), opt(s.period_discounted)});
  if (!r) return std::unexpected(r.error());
  return record_mrr(tx, s, effective.value_or(now));
}

Result<void> Billing::Impl::advance_subscription(TenantTransaction& tx, Subscription& sub, Account& acct, Instant now,
                                                 std::vector<PendingCharge>& charges, RunStats* stats) {
  bool changed = false;
  Instant last_boundary = now;  // when the periods moved on: the MRR ledger's time of the change
  for (int guard = 0; guard < 1200; ++guard) {
    if (sub.status != Status::trial && sub.status != Status::active && sub.status != Status::past_due) break;
    if (sub.current_period_end > now) break;
    changed = true;
    const Instant t = sub.current_period_end;
    last_boundary = t;
    if (sub.cancel_at_period_end) {
      const bool trial = sub.status == Status::trial;  // a trial bills no usage
      if (auto r = transition(tx, sub, Status::cancelled, "period_end"); !r) return r;
      sub.cancelled_at = t;
      if (stats) stats->cancelled += 1;
      if (!trial) {
        const std::size_t before = charges.size();
        if (auto f = final_usage(tx, sub, sub.current_period_start, t, t, charges); !f) return f;
        if (stats && charges.size() > before) stats->invoices += 1;
      }
      break;
    }
    auto plan = plan_version(raw(tx), sub.plan_id, sub.plan_version);
    if (!plan) return std::unexpected(plan.error());
    const bool ended_trial = sub.status == Status::trial;
    const Instant ended_start = sub.current_period_start;
    if (sub.status == Status::trial) {
      if (auto r = transition(tx, sub, Status::active, "trial_ended"); !r) return r;
      sub.anchor = t;
      sub.cycle = 0;
    }
    sub.cycle += 1;
    sub.current_period_start = t;
    sub.current_period_end = boundary(sub.anchor, plan->price.interval, sub.cycle);
    auto lines = cycle_lines(*plan, sub.seats, sub.current_period_start, sub.current_period_end);
    if (!lines) return std::unexpected(lines.error());
    std::vector<UsageRecord> usage;
    // No usage for a trial, nor for the empty period an unpaid subscription restarts with when it is paid
    // (settle_status): its successor starts at the same instant, and usage is recorded per period start.
    auto used = usage_lines(tx, sub, *plan, ended_start, t, !ended_trial && ended_start < t, t, usage);
    if (!used) return std::unexpected(used.error());
    lines->insert(lines->end(), used->begin(), used->end());
    IssueOptions o{.reason = "subscription_cycle",
                   .period_start = sub.current_period_start,
                   .period_end = sub.current_period_end,
                   .cycle_key = sub.id + ":" + std::to_string(unix_seconds(sub.current_period_start)),
                   .with_coupon = true};
    auto inv = issue_invoice(tx, acct, &sub, std::move(*lines), o, t, &charges, true);
    if (!inv) return std::unexpected(inv.error());
    if (auto u = save_usage(tx, sub.id, usage, inv->id, t); !u) return u;
    if (stats) {
      stats->renewed += 1;
      stats->invoices += 1;
    }
  }
  if (!changed) return {};
  return save(tx, sub, now, last_boundary);
}

Result<PlanInForce> Billing::Impl::plan_in_force(TenantTransaction& tx, const std::string& fallback_plan) {
  PlanInForce out;
  auto subs = tx.execute(k_sub_list);
  if (!subs) return std::unexpected(subs.error());
  for (std::size_t i = subs->rows.size(); i-- > 0;) {
    Subscription sub = read_sub(*subs, i);
    if (sub.status == Status::cancelled) continue;
    auto plan = plan_version(raw(tx), sub.plan_id, sub.plan_version);
    if (!plan) return std::unexpected(plan.error());
    auto previous = tx.execute(k_invoice_previous_start, {Value(sub.id), time_value(sub.current_period_start)});
    if (!previous) return std::unexpected(previous.error());
    if (!previous->empty()) out.previous_period_start = opt_time(*previous, 0, 0);
    out.subscription = std::move(sub);
    out.plan = std::move(*plan);
    return out;
  }
  if (fallback_plan.empty()) return out;
  auto plan = plan_current(raw(tx), fallback_plan);
  if (!plan && plan.error().code != Errc::not_found) return std::unexpected(plan.error());
  if (plan) out.plan = std::move(*plan);
  return out;
}

Result<void> Billing::Impl::follow_plan(TenantTransaction& tx) {
  auto in_force = plan_in_force(tx, "");
  if (!in_force) return std::unexpected(in_force.error());
  const std::string code =
      in_force->subscription && in_force->plan ? in_force->plan->code : std::string(tenancy::k_default_plan);
  auto followed = tenancy::TenantStore::follow_plan(raw(tx), tx.tenant_id(), code, clock.now());
  if (!followed) return std::unexpected(followed.error());
  return {};
}

}  // namespace atrium::billing
