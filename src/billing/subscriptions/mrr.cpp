// The MRR ledger (migrations 0012/0017, docs/analytics.md): a subscription's monthly recurring revenue recorded in
// the transaction that changes it, whenever it or the status differs from the last row recorded.
#include "billing/detail/state.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

namespace detail {

Result<std::int64_t> recurring_mrr(const PlanPrice& price, const Subscription& sub,
                                   const std::optional<Coupon>& coupon) {
  if (sub.status != Status::active && sub.status != Status::past_due) return 0;
  auto amount = period_amount(price, sub.seats);
  if (!amount) return amount;
  std::int64_t discount = 0;
  if (coupon) {
    // A coupon in force for the current period, by the rules coupon_for applies; a once coupon is a one-off
    // reduction of one invoice, not recurring revenue, so it is left out like one-off charges.
    const bool recurring = coupon->duration == "forever" ||
                           (coupon->duration == "repeating" &&
                            sub.current_period_start < add_months(sub.coupon_start.value_or(sub.current_period_start),
                                                                  coupon->duration_months));
    if (recurring) {
      discount = coupon->percent_off_bps > 0
                     ? round_div(static_cast<__int128>(*amount) * coupon->percent_off_bps, 10000)
                     : std::min(coupon->amount_off, *amount);
    }
  }
  return round_div(*amount - discount, interval_months(price.interval));
}

}  // namespace detail

Result<void> Billing::Impl::record_mrr(TenantTransaction& tx, const Subscription& sub, Instant at) {
  if (sub.test_clock_id) return {};
  auto plan = plan_version(raw(tx), sub.plan_id, sub.plan_version);
  if (!plan) return std::unexpected(plan.error());
  std::optional<Coupon> applied;
  if (sub.coupon_id) {
    auto c = coupon(raw(tx), *sub.coupon_id);
    if (!c) return std::unexpected(c.error());
    applied = *c;
  }
  auto mrr = recurring_mrr(plan->price, sub, applied);
  if (!mrr) return std::unexpected(mrr.error());
  const std::string status(status_name(sub.status));
  auto last = tx.execute(k_mrr_last, {Value(sub.id)});
  if (!last) return std::unexpected(last.error());
  std::int64_t seq = 1;
  std::int64_t effective = unix_seconds(at);
  if (!last->empty()) {
    const storage::ResultSet& r = *last;
    if (r.text_at(0, 2) == status && r.text_at(0, 3) == sub.plan_id && r.int_at(0, 4) == sub.plan_version &&
        r.int_at(0, 5) == sub.seats && r.text_at(0, 6) == plan->price.currency && r.int_at(0, 7) == *mrr) {
      return {};
    }
    seq = r.int_at(0, 0).value_or(0) + 1;
    effective = std::max(effective, r.int_at(0, 1).value_or(0));
  }
  auto ins = tx.execute(k_mrr_insert, {Value(sub.id), Value(seq), Value(effective), Value(status), Value(sub.plan_id),
                                       Value(std::int64_t{sub.plan_version}), Value(sub.seats),
                                       Value(plan->price.currency), Value(*mrr), time_value(clock.now())});
  if (!ins) return std::unexpected(ins.error());
  return {};
}

}  // namespace atrium::billing
