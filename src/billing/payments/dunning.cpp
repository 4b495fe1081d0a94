#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"

namespace atrium::billing {

Result<PendingCharge> Billing::Impl::new_attempt(TenantTransaction& tx, const Invoice& inv, const Account& account,
                                                 int number, Instant now) {
  PendingCharge c;
  c.tenant_id = tx.tenant_id();
  c.attempt_id = new_uuid_v7(clock);
  c.request.idempotency_key = "invoice:" + inv.id + ":" + std::to_string(number);
  c.request.payment_method = account.payment_method;
  c.request.amount = inv.amount_remaining;
  c.request.currency = inv.currency;
  c.request.description = inv.number.value_or(inv.id);
  auto r = tx.execute(k_attempt_insert, {Value(c.attempt_id), Value(inv.id), Value(std::int64_t{number}),
                                         Value(c.request.idempotency_key), Value(c.request.amount),
                                         Value(c.request.currency), Value(c.request.payment_method), time_value(now)});
  if (!r) return std::unexpected(r.error());
  return c;
}

Result<DunningPolicy> Billing::Impl::policy_for(TenantTransaction& tx, const Invoice& inv) {
  if (!inv.subscription_id) return DunningPolicy{};
  auto sub = subscription(tx, *inv.subscription_id);
  if (!sub) return std::unexpected(sub.error());
  auto plan = plan_version(raw(tx), sub->plan_id, sub->plan_version);
  if (!plan) return std::unexpected(plan.error());
  return plan->price.dunning;
}

Result<void> Billing::Impl::final_action(TenantTransaction& tx, Invoice& inv, const DunningPolicy& policy, Instant now,
                                         RunStats* stats) {
  inv.next_payment_attempt.reset();
  if (!inv.subscription_id) return {};
  auto sub = subscription(tx, *inv.subscription_id);
  if (!sub) return std::unexpected(sub.error());
  if (policy.final_action == FinalAction::cancel) {
    inv.status = "uncollectible";
    if (auto e = emit(tx, "invoice.uncollectible",
                      {{"invoice_id", inv.id}, {"number", inv.number.value_or("")}, {"reason", "payment_failed"}});
        !e) {
      return e;
    }
    if (sub->status != Status::cancelled) {
      if (auto t = transition(tx, *sub, Status::cancelled, "payment_failed"); !t) return t;
      sub->cancelled_at = now;
      if (stats) stats->cancelled += 1;
    }
  } else if (sub->status == Status::past_due || sub->status == Status::active) {
    if (sub->status == Status::active) {
      if (auto t = transition(tx, *sub, Status::past_due, "payment_failed"); !t) return t;
    }
    if (auto t = transition(tx, *sub, Status::unpaid, "payment_failed"); !t) return t;
  }
  return save(tx, *sub, now);
}

Result<void> Billing::Impl::save_payment_state(TenantTransaction& tx, const Invoice& inv, Instant now) {
  auto r = tx.execute(k_invoice_payment,
                      {Value(inv.id), Value(inv.status), Value(inv.amount_paid), Value(inv.amount_remaining),
                       Value(std::int64_t{inv.attempt_count}), opt(inv.next_payment_attempt), opt(inv.paid_at),
                       opt(inv.voided_at), time_value(now)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> Billing::Impl::settle_status(TenantTransaction& tx, const std::string& sub_id, Instant now,
                                          std::string_view reason) {
  auto sub = subscription(tx, sub_id);
  if (!sub) return std::unexpected(sub.error());
  if (sub->status != Status::past_due && sub->status != Status::unpaid) return {};
  auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
  if (!open) return std::unexpected(open.error());
  for (std::size_t i = 0; i < open->rows.size(); ++i) {
    if (read_invoice(*open, i).amount_remaining > 0) return {};
  }
  const bool was_unpaid = sub->status == Status::unpaid;
  if (auto t = transition(tx, *sub, Status::active, reason); !t) return t;
  if (was_unpaid && sub->current_period_end <= now) {
    sub->anchor = now;
    sub->cycle = 0;
    sub->current_period_start = now;
    sub->current_period_end = now;
    sub->period_discounted = false;  // an empty period, renewed (and invoiced) at once
  }
  return save(tx, *sub, now);
}

Result<void> Billing::Impl::record_outcome(TenantTransaction& tx, const PendingCharge& c,
                                           const Result<ChargeResult>& result, Instant now, RunStats* stats) {
  auto ar = tx.execute(k_attempt_get, {Value(c.attempt_id)});
  if (!ar) return std::unexpected(ar.error());
  if (ar->empty()) return fail(Errc::internal, "payment attempt " + c.attempt_id + " vanished");
  PaymentAttempt attempt = read_attempt(*ar, 0);
  if (attempt.status != "pending") return {};
  if (!result) return outcome_unknown(tx, attempt, result.error().message, now, stats);
  const bool ok = result->succeeded;
  const std::string decline(decline_name(result->decline));
  auto done = tx.execute(k_attempt_complete, {Value(attempt.id), Value(std::string(ok ? "succeeded" : "failed")),
                                              Value(result->failure_code), Value(decline), Value(result->message),
                                              Value(result->reference), time_value(now)});
  if (!done) return std::unexpected(done.error());
  if (done->affected_rows != 1) return {};  // a concurrent settle recorded it first
  if (ok) return payment_succeeded(tx, attempt, *result, now, stats);
  return payment_failed(tx, attempt, *result, now, stats);
}

Result<void> Billing::Impl::outcome_unknown(TenantTransaction& tx, const PaymentAttempt& attempt,
                                            const std::string& message, Instant now, RunStats* stats) {
  // The attempt stays pending, to be sent again with the same idempotency key at the next dunning time, so a
  // charge that did go through is never made twice.
  auto noted = tx.execute(k_attempt_unknown, {Value(attempt.id), Value(message)});
  if (!noted) return std::unexpected(noted.error());
  if (noted->affected_rows != 1) return {};
  // Nothing is known to have failed: no status change and no payment.failed; the same attempt is sent again in an
  // hour (whatever the invoice's state, so money the provider may hold is always accounted for).
  auto inv = invoice(tx, attempt.invoice_id, false);
  if (!inv) return std::unexpected(inv.error());
  inv->next_payment_attempt = now + k_hour;
  if (stats) stats->failed += 1;
  return save_payment_state(tx, *inv, now);
}

namespace {

Json payment_json(const Invoice& inv, const PaymentAttempt& attempt, const std::string& reference) {
  return {{"invoice_id", inv.id},       {"number", inv.number.value_or("")},
          {"amount", attempt.amount},   {"currency", attempt.currency},
          {"attempt", attempt.attempt}, {"payment_method", attempt.payment_method},
          {"reference", reference}};
}

}  // namespace

Result<void> Billing::Impl::payment_succeeded(TenantTransaction& tx, const PaymentAttempt& attempt,
                                              const ChargeResult& result, Instant now, RunStats* stats) {
  auto inv = invoice(tx, attempt.invoice_id, false);
  if (!inv) return std::unexpected(inv.error());
  Json payment = payment_json(*inv, attempt, result.reference);
  if (stats) stats->charged += 1;
  // What the invoice still asks is paid; anything above it (a credit note reduced the invoice, or it was closed,
  // while the charge was in flight) goes to the account's credit balance: collected money is never lost.
  const std::int64_t applied =
      inv->status == "open" ? std::min(attempt.amount, std::max<std::int64_t>(inv->amount_remaining, 0)) : 0;
  const std::int64_t excess = attempt.amount - applied;
  if (inv->status == "open") {
    inv->amount_paid += applied;
    inv->amount_remaining -= applied;
    inv->next_payment_attempt.reset();
    if (inv->amount_remaining == 0) {
      inv->status = "paid";
      inv->paid_at = now;
    }
    if (auto s = save_payment_state(tx, *inv, now); !s) return s;
    if (inv->status == "paid") {
      if (auto e = emit(tx, "invoice.paid", {{"invoice_id", inv->id}, {"number", inv->number.value_or("")}}); !e) {
        return e;
      }
    }
  }
  if (excess > 0) {
    if (auto b = tx.execute(k_account_balance, {Value(excess)}); !b) return std::unexpected(b.error());
    payment["credited_to_balance"] = excess;
  }
  if (auto e = emit(tx, "payment.succeeded", payment); !e) return e;
  if (inv->subscription_id) return settle_status(tx, *inv->subscription_id, now, "payment_succeeded");
  return {};
}

Result<void> Billing::Impl::payment_failed(TenantTransaction& tx, const PaymentAttempt& attempt,
                                           const ChargeResult& result, Instant now, RunStats* stats) {
  auto inv = invoice(tx, attempt.invoice_id, false);
  if (!inv) return std::unexpected(inv.error());
  Json payment = payment_json(*inv, attempt, result.reference);
  const std::string decline(decline_name(result.decline));
  if (stats) stats->failed += 1;
  auto policy = policy_for(tx, *inv);
  if (!policy) return std::unexpected(policy.error());
  // The schedule counts from finalization, later by the grace extend_dunning gave.
  const Instant first = inv->finalized_at.value_or(now) + inv->dunning_grace_hours * k_hour;
  const std::size_t retries_done = inv->attempt_count > 0 ? static_cast<std::size_t>(inv->attempt_count - 1) : 0;
  const bool hard = decline == "hard";
  bool final = false;
  if (inv->status != "open") {
    inv->next_payment_attempt.reset();
  } else if (hard) {
    // Not retried with the same card: the final action waits for the end of the dunning window, unless the payment
    // method changes before (which retries at once). A window that has already ended (a payment asked for late, or
    // the last retry) ends now, not at the next run.
    const std::int64_t last = policy->retry_hours.empty() ? 0 : policy->retry_hours.back();
    inv->next_payment_attempt = std::max(first + last * k_hour, now);
    if (first + last * k_hour <= now) final = true;
  } else if (retries_done < policy->retry_hours.size()) {
    inv->next_payment_attempt =
        std::max(first + policy->retry_hours[retries_done] * k_hour, now + std::chrono::seconds(1));
  } else {
    final = true;
  }
  payment["failure_code"] = result.failure_code;
  payment["decline"] = decline;
  payment["message"] = result.message;
  payment["next_payment_attempt"] = final || hard ? Json(nullptr) : time_json(inv->next_payment_attempt);
  // After a hard decline nothing is retried with this payment method; the final action waits until then.
  payment["deadline"] = hard && !final ? time_json(inv->next_payment_attempt) : Json(nullptr);
  payment["final"] = final;
  // No billing email in the event: its payload is stored (pending_events, webhook deliveries) in the clear, and the
  // email is personal data encrypted at rest. The dunning mail reads the account's address when it is sent.
  if (auto e = emit(tx, "payment.failed", payment); !e) return e;
  if (inv->subscription_id && inv->status == "open") {
    auto sub = subscription(tx, *inv->subscription_id);
    if (!sub) return std::unexpected(sub.error());
    if (sub->status == Status::active || sub->status == Status::trial) {
      if (auto t = transition(tx, *sub, Status::past_due, "payment_failed"); !t) return t;
      if (auto s = save(tx, *sub, now); !s) return s;
    }
  }
  if (final) {
    if (auto f = final_action(tx, *inv, *policy, now, stats); !f) return f;
  }
  return save_payment_state(tx, *inv, now);
}

Result<bool> Billing::Impl::payment_in_flight(TenantTransaction& tx, const std::string& invoice_id) {
  auto last = tx.execute(k_attempt_last, {Value(invoice_id)});
  if (!last) return std::unexpected(last.error());
  return !last->empty() && read_attempt(*last, 0).status == "pending";
}

Result<void> Billing::Impl::retry_invoice(TenantTransaction& tx, const std::string& invoice_id, Instant now,
                                          std::vector<PendingCharge>& charges, RunStats* stats) {
  auto inv = invoice(tx, invoice_id, false);
  if (!inv) return std::unexpected(inv.error());
  if (inv->status != "open" || !inv->next_payment_attempt || *inv->next_payment_attempt > now) return {};
  auto last = tx.execute(k_attempt_last, {Value(inv->id)});
  if (!last) return std::unexpected(last.error());
  if (!last->empty() && read_attempt(*last, 0).status == "pending") {
    // Its outcome is unknown: the same attempt again, with the same idempotency key.
    PaymentAttempt prev = read_attempt(*last, 0);
    inv->next_payment_attempt.reset();
    if (auto s = save_payment_state(tx, *inv, now); !s) return s;
    charges.push_back(PendingCharge{tx.tenant_id(), prev.id,
                                    ChargeRequest{prev.idempotency_key, prev.payment_method, prev.amount, prev.currency,
                                                  inv->number.value_or(inv->id)}});
    if (stats) stats->retried += 1;
    return {};
  }
  auto account_result = account(tx);
  if (!account_result) return std::unexpected(account_result.error());
  Account acct = std::move(*account_result);
  if (inv->subscription_id) {
    auto sub = subscription(tx, *inv->subscription_id);
    if (!sub) return std::unexpected(sub.error());
    if (sub->status == Status::paused || sub->status == Status::cancelled) {
      inv->next_payment_attempt.reset();
      return save_payment_state(tx, *inv, now);
    }
  }
  if (!last->empty()) {
    PaymentAttempt prev = read_attempt(*last, 0);
    if (prev.decline == "hard" && prev.payment_method == acct.payment_method) {
      auto policy = policy_for(tx, *inv);
      if (!policy) return std::unexpected(policy.error());
      if (auto f = final_action(tx, *inv, *policy, now, stats); !f) return f;
      return save_payment_state(tx, *inv, now);
    }
  }
  inv->attempt_count += 1;
  inv->next_payment_attempt.reset();
  if (auto s = save_payment_state(tx, *inv, now); !s) return s;
  auto c = new_attempt(tx, *inv, acct, inv->attempt_count, now);
  if (!c) return std::unexpected(c.error());
  charges.push_back(std::move(*c));
  if (stats) stats->retried += 1;
  return {};
}

Result<std::vector<Invoice>> Billing::extend_dunning(const std::string& tenant_id, std::int64_t hours,
                                                     const audit::Context& who) {
  if (hours < 1 || hours > 2160) return fail(Errc::invalid_argument, "hours must be between 1 and 2160 (90 days)");
  std::vector<Invoice> out;
  auto r = impl_->tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    out.clear();
    auto ids = tx.execute(k_invoice_in_dunning);
    if (!ids) return std::unexpected(ids.error());
    for (std::size_t i = 0; i < ids->rows.size(); ++i) {
      auto inv = impl_->invoice(tx, ids->text_at(i, 0).value_or(""), false, true);
      if (!inv) return std::unexpected(inv.error());
      if (inv->status != "open" || !inv->next_payment_attempt) continue;  // settled since the list was read
      auto in_flight = impl_->payment_in_flight(tx, inv->id);
      if (!in_flight) return std::unexpected(in_flight.error());
      auto clock_now = impl_->now_for(tx, inv->test_clock_id);
      if (!clock_now) return std::unexpected(clock_now.error());
      const std::int64_t before = inv->dunning_grace_hours;
      inv->dunning_grace_hours += hours;
      // A charge whose outcome is unknown is still sent again when it was to be: money the provider may hold is
      // accounted for first; the grace applies to what its outcome schedules.
      if (!*in_flight) *inv->next_payment_attempt += hours * k_hour;
      auto u = tx.execute(k_invoice_dunning_grace, {Value(inv->id), Value(inv->dunning_grace_hours),
                                                    time_value(*inv->next_payment_attempt), time_value(*clock_now)});
      if (!u) return std::unexpected(u.error());
      Json changes = Json::object();
      audit::add_change(changes, "dunning_grace_hours", before, inv->dunning_grace_hours);
      changes["next_payment_attempt"] = time_json(inv->next_payment_attempt);
      if (auto a = impl_->record(tx, &who, "invoice.dunning_extended", "invoice", inv->id, changes); !a) return a;
      out.push_back(std::move(*inv));
    }
    if (out.empty()) return fail(Errc::conflict, "the tenant has no open invoice in dunning");
    return {};
  });
  if (!r) return std::unexpected(r.error());
  impl_->notify();
  return out;
}

Result<std::string> Billing::Impl::refund(const std::string& tenant_id, const std::string& note_id,
                                          const std::string& charge_reference, std::int64_t amount,
                                          const std::string& currency) {
  auto r = gateway.refund(RefundRequest{"credit_note:" + note_id, charge_reference, amount, currency});
  if (!r) {
    log::warn("refund not confirmed; the billing run retries it",
              {{"tenant_id", tenant_id}, {"credit_note_id", note_id}, {"error", r.error().message}});
    return r;
  }
  auto saved = tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto u = tx.execute(k_credit_reference, {Value(note_id), Value(*r)});
    if (!u) return std::unexpected(u.error());
    return {};
  });
  if (!saved) return std::unexpected(saved.error());
  return r;
}

Result<void> Billing::Impl::settle(std::vector<PendingCharge>& charges, const std::optional<std::string>& tenant_id,
                                   const std::function<Instant(const PendingCharge&)>& at, RunStats* stats) {
  if (charges.empty()) return {};
  std::vector<ChargeRequest> requests;
  requests.reserve(charges.size());
  for (const auto& c : charges) requests.push_back(c.request);
  auto results = gateway.charge_many(requests);
  failpoint("billing.after_charge");  // crash tests: the provider charged, the outcome is not recorded yet
  Result<void> r;
  if (tenant_id) {
    r = tenant(*tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      for (std::size_t i = 0; i < charges.size(); ++i) {
        if (charges[i].tenant_id != tx.tenant_id()) return fail(Errc::internal, "a charge of another tenant");
        if (auto o = record_outcome(tx, charges[i], results[i], at(charges[i]), stats); !o) return o;
      }
      return {};
    });
  } else {
    r = platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      for (std::size_t i = 0; i < charges.size(); ++i) {
        TenantTransaction tx = ptx.tenant(charges[i].tenant_id);
        if (auto o = record_outcome(tx, charges[i], results[i], at(charges[i]), stats); !o) return o;
      }
      return {};
    });
  }
  if (!r) return r;
  notify();
  return {};
}

}  // namespace atrium::billing
