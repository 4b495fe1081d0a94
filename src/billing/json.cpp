#include "billing/detail/state.hpp"

namespace atrium::billing {

Result<DunningPolicy> parse_dunning(const Json& value) {
  DunningPolicy d;
  if (value.is_null()) return d;
  if (auto r = only_members(value, {"retry_schedule_hours", "final_action"}); !r) return std::unexpected(r.error());
  if (auto it = value.find("retry_schedule_hours"); it != value.end()) {
    if (!it->is_array() || it->size() > 20) {
      return fail(Errc::invalid_argument, "dunning.retry_schedule_hours must be an array of up to 20 hours");
    }
    d.retry_hours.clear();
    std::int64_t last = 0;
    for (const auto& h : *it) {
      if (!h.is_number_integer() || h.get<std::int64_t>() <= last || h.get<std::int64_t>() > 24 * 90) {
        return fail(Errc::invalid_argument,
                    "dunning.retry_schedule_hours must increase, each within 1 and 2160 hours of the first failure");
      }
      last = h.get<std::int64_t>();
      d.retry_hours.push_back(last);
    }
  }
  auto action = text_member(value, "final_action", 20);
  if (!action) return std::unexpected(action.error());
  if (*action) {
    if (**action == "cancel") {
      d.final_action = FinalAction::cancel;
    } else if (**action == "unpaid") {
      d.final_action = FinalAction::unpaid;
    } else {
      return fail(Errc::invalid_argument, "dunning.final_action must be cancel or unpaid");
    }
  }
  return d;
}

std::string_view status_name(Status s) {
  switch (s) {
    case Status::trial: return "trial";
    case Status::active: return "active";
    case Status::past_due: return "past_due";
    case Status::paused: return "paused";
    case Status::cancelled: return "cancelled";
    case Status::unpaid: return "unpaid";
  }
  return "active";
}

std::optional<Status> parse_status(std::string_view text) {
  for (Status s :
       {Status::trial, Status::active, Status::past_due, Status::paused, Status::cancelled, Status::unpaid}) {
    if (status_name(s) == text) return s;
  }
  return std::nullopt;
}

Json to_json(const Plan& p) {
  return {{"id", p.id},
          {"code", p.code},
          {"name", p.name},
          {"tier", p.tier},
          {"active", p.active},
          {"version", p.price.version},
          {"currency", p.price.currency},
          {"interval", std::string(interval_name(p.price.interval))},
          {"base_price", p.price.base_price},
          {"included_seats", p.price.included_seats},
          {"seat_price", p.price.seat_price},
          {"trial_days", p.price.trial_days},
          {"features", p.price.features},
          {"limits", p.price.limits},
          {"metered_prices", metered_json(p.price.metered)},
          {"quotas", quotas_json(p.price.quotas)},
          {"dunning", dunning_json(p.price.dunning)},
          {"created_at", time_json(p.created_at)},
          {"updated_at", time_json(p.updated_at)}};
}

Json to_json(const Coupon& c) {
  return {{"id", c.id},
          {"code", c.code},
          {"name", c.name},
          {"percent_off_bps", c.percent_off_bps},
          {"amount_off", c.amount_off},
          {"currency", c.currency},
          {"duration", c.duration},
          {"duration_months", c.duration_months},
          {"max_redemptions", c.max_redemptions ? Json(*c.max_redemptions) : Json(nullptr)},
          {"times_redeemed", c.times_redeemed},
          {"redeem_by", time_json(c.redeem_by)},
          {"active", c.active},
          {"created_at", time_json(c.created_at)}};
}

Json to_json(const TaxRateRow& t) {
  return {{"id", t.id},
          {"country", t.country},
          {"region", t.region},
          {"name", t.name},
          {"bps", t.bps},
          {"inclusive", t.inclusive},
          {"created_at", time_json(t.created_at)}};
}

Json to_json(const Account& a) {
  return {{"tenant_id", a.tenant_id},
          {"legal_name", a.legal_name},
          {"email", a.email},
          {"address", a.address},
          {"country", a.country},
          {"region", a.region},
          {"currency", a.currency},
          {"tax_ids", a.tax_ids},
          {"payment_method", a.payment_method},
          {"credit_balance", a.credit_balance},
          {"proration", std::string(proration_mode_name(a.proration))},
          {"test_mode", a.test_mode},
          {"created_at", time_json(a.created_at)},
          {"updated_at", time_json(a.updated_at)}};
}

Json to_json(const Subscription& s) {
  return {{"id", s.id},
          {"tenant_id", s.tenant_id},
          {"plan_id", s.plan_id},
          {"plan_version", s.plan_version},
          {"status", std::string(status_name(s.status))},
          {"seats", s.seats},
          {"billing_anchor", time_json(s.anchor)},
          {"current_period_start", time_json(s.current_period_start)},
          {"current_period_end", time_json(s.current_period_end)},
          {"trial_end", time_json(s.trial_end)},
          {"cancel_at_period_end", s.cancel_at_period_end},
          {"cancelled_at", time_json(s.cancelled_at)},
          {"paused_at", time_json(s.paused_at)},
          {"coupon_id", s.coupon_id ? Json(*s.coupon_id) : Json(nullptr)},
          {"test_clock_id", s.test_clock_id ? Json(*s.test_clock_id) : Json(nullptr)},
          {"created_at", time_json(s.created_at)},
          {"updated_at", time_json(s.updated_at)}};
}

Json to_json(const Invoice& i) {
  Json lines = Json::array();
  for (const auto& l : i.lines) {
    lines.push_back({{"kind", std::string(line_kind_name(l.kind))},
                     {"description", l.description},
                     {"quantity", l.quantity},
                     {"unit_amount", l.unit_amount},
                     {"amount", l.amount},
                     {"period_start", time_json(l.period_start)},
                     {"period_end", time_json(l.period_end)},
                     {"proration", l.proration}});
  }
  return {{"id", i.id},
          {"tenant_id", i.tenant_id},
          {"number", i.number ? Json(*i.number) : Json(nullptr)},
          {"subscription_id", i.subscription_id ? Json(*i.subscription_id) : Json(nullptr)},
          {"status", i.status},
          {"billing_reason", i.billing_reason},
          {"currency", i.currency},
          {"period_start", time_json(i.period_start)},
          {"period_end", time_json(i.period_end)},
          {"lines", lines},
          {"subtotal", i.totals.subtotal},
          {"discount", i.totals.discount},
          {"discount_label", i.discount_label},
          {"tax", i.totals.tax},
          {"tax_inclusive", i.totals.tax_inclusive},
          {"tax_label", i.tax_label},
          {"total", i.totals.total},
          {"credit_applied", i.totals.credit_applied},
          {"credit_created", i.totals.credit_created},
          {"amount_due", i.totals.amount_due},
          {"amount_paid", i.amount_paid},
          {"amount_remaining", i.amount_remaining},
          {"attempt_count", i.attempt_count},
          {"next_payment_attempt", time_json(i.next_payment_attempt)},
          {"dunning_grace_hours", i.dunning_grace_hours},
          {"customer", i.customer},
          {"memo", i.memo},
          {"test_clock_id", i.test_clock_id ? Json(*i.test_clock_id) : Json(nullptr)},
          {"created_at", time_json(i.created_at)},
          {"finalized_at", time_json(i.finalized_at)},
          {"due_at", time_json(i.due_at)},
          {"paid_at", time_json(i.paid_at)},
          {"voided_at", time_json(i.voided_at)}};
}

Json to_json(const PaymentAttempt& a) {
  return {{"id", a.id},
          {"invoice_id", a.invoice_id},
          {"attempt", a.attempt},
          {"idempotency_key", a.idempotency_key},
          {"amount", a.amount},
          {"currency", a.currency},
          {"payment_method", a.payment_method},
          {"status", a.status},
          {"failure_code", a.failure_code},
          {"decline", a.decline},
          {"message", a.message},
          {"reference", a.reference},
          {"created_at", time_json(a.created_at)},
          {"completed_at", time_json(a.completed_at)}};
}

Json to_json(const CreditNote& c) {
  return {{"id", c.id},
          {"tenant_id", c.tenant_id},
          {"number", c.number},
          {"invoice_id", c.invoice_id},
          {"amount", c.amount},
          {"method", c.method},
          {"reason", c.reason},
          {"memo", c.memo},
          {"reference", c.reference},
          {"created_at", time_json(c.created_at)}};
}

Json to_json(const TestClock& c) {
  return {{"id", c.id},
          {"name", c.name},
          {"frozen_time", time_json(c.frozen_time)},
          {"created_at", time_json(c.created_at)},
          {"status", "ready"}};
}

}  // namespace atrium::billing
