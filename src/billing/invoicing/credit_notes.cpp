#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"

namespace atrium::billing {

// ---- credit notes -----------------------------------------------------------------------------------------------

namespace {

Result<void> check_credit_note(const NewCreditNote& n) {
  if (n.invoice_id.empty()) return fail(Errc::invalid_argument, "invoice_id is required");
  if (n.amount < 1 || n.amount > k_max_amount)
    return fail(Errc::invalid_argument, "amount (minor units, > 0) is required");
  const std::string reason = n.reason.value_or("other");
  if (reason != "duplicate" && reason != "fraudulent" && reason != "order_change" &&
      reason != "product_unsatisfactory" && reason != "other") {
    return fail(Errc::invalid_argument,
                "reason must be duplicate, fraudulent, order_change, product_unsatisfactory or other");
  }
  return {};
}

// Method invoice: the open invoice asks `amount` less; paid when nothing is left (its subscription settles).
Result<void> reduce_open_invoice(Billing::Impl& s, TenantTransaction& tx, Invoice& inv, std::int64_t amount,
                                 Instant now) {
  if (inv.status != "open") return fail(Errc::invalid_argument, "method invoice is for open invoices");
  auto in_flight = s.payment_in_flight(tx, inv.id);
  if (!in_flight) return std::unexpected(in_flight.error());
  if (*in_flight) {
    return fail(Errc::conflict, "a payment of this invoice is in flight (its outcome is not known yet); try later");
  }
  if (amount > inv.amount_remaining) return fail(Errc::invalid_argument, "amount exceeds what the invoice still asks");
  inv.amount_remaining -= amount;
  if (inv.amount_remaining == 0) {
    inv.status = "paid";
    inv.paid_at = now;
    inv.next_payment_attempt.reset();
    if (auto e = s.emit(tx, "invoice.paid",
                        {{"invoice_id", inv.id}, {"number", inv.number.value_or("")}, {"by", "credit_note"}});
        !e) {
      return e;
    }
  }
  if (auto sv = s.save_payment_state(tx, inv, now); !sv) return sv;
  if (inv.status == "paid" && inv.subscription_id) {
    if (auto st = s.settle_status(tx, *inv.subscription_id, now, "credit_note"); !st) return st;
  }
  return {};
}

// Method refund: the reference of the charge that paid the invoice, after checking `amount` is within what was
// charged and not refunded yet.
Result<std::string> refundable_charge(TenantTransaction& tx, const Invoice& inv, std::int64_t amount) {
  auto attempts = tx.execute(k_attempt_list, {Value(inv.id)});
  if (!attempts) return std::unexpected(attempts.error());
  std::string charge_reference;
  for (std::size_t i = 0; i < attempts->rows.size(); ++i) {
    auto a = read_attempt(*attempts, i);
    if (a.status == "succeeded") charge_reference = a.reference;
  }
  if (charge_reference.empty()) return fail(Errc::invalid_argument, "the invoice was not paid by a charge");
  auto refunded = tx.execute(k_refund_sum, {Value(inv.id)});
  if (!refunded) return std::unexpected(refunded.error());
  const std::int64_t refundable = inv.amount_paid - refunded->int_at(0, 0).value_or(0);
  if (amount > refundable) {
    return fail(Errc::invalid_argument,
                "amount exceeds what was charged and not yet refunded (" + std::to_string(refundable) + ")");
  }
  return charge_reference;
}

}  // namespace

Result<CreditNote> Billing::create_credit_note(const std::string& tenant_id, const NewCreditNote& input,
                                               const audit::Context& who) {
  if (auto c = check_credit_note(input); !c) return std::unexpected(c.error());
  const NewCreditNote* n = &input;
  Impl& s = *impl_;
  CreditNote note;
  std::string charge_reference;
  std::string currency;
  // First the note (with its number) and its effect on the invoice or balance; a refund goes to the provider
  // after that commits, keyed by the note, and its reference is added then.
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto inv = s.invoice(tx, n->invoice_id, false);
    if (!inv) {
      if (inv.error().code == Errc::not_found) return fail(Errc::invalid_argument, inv.error().message);
      return std::unexpected(inv.error());
    }
    if (inv->status != "open" && inv->status != "paid") {
      return fail(Errc::conflict, "credit notes are for open or paid invoices (this one is " + inv->status + ")");
    }
    auto credited = tx.execute(k_credit_sum, {Value(inv->id)});
    if (!credited) return std::unexpected(credited.error());
    const std::int64_t left = inv->totals.total - credited->int_at(0, 0).value_or(0);
    if (n->amount > left) {
      return fail(Errc::invalid_argument,
                  "amount exceeds what is left to credit on the invoice (" + std::to_string(left) + ")");
    }
    note.method = n->method.value_or(inv->status == "open" ? "invoice" : "credit_balance");
    auto clock_now = s.now_for(tx, inv->test_clock_id);  // a test clock's invoice lives in the clock's time
    if (!clock_now) return std::unexpected(clock_now.error());
    const Instant now = *clock_now;
    if (note.method == "invoice") {
      if (auto red = reduce_open_invoice(s, tx, *inv, n->amount, now); !red) return red;
    } else if (note.method == "credit_balance" || note.method == "refund") {
      if (inv->status != "paid") return fail(Errc::invalid_argument, "refunds and credits are for paid invoices");
      if (note.method == "credit_balance") {
        if (auto b = tx.execute(k_account_balance, {Value(n->amount)}); !b) return std::unexpected(b.error());
      } else {
        auto charge = refundable_charge(tx, *inv, n->amount);
        if (!charge) return std::unexpected(charge.error());
        charge_reference = *charge;
        currency = inv->currency;
      }
    } else {
      return fail(Errc::invalid_argument, "method must be refund, credit_balance or invoice");
    }
    const bool simulated = inv->test_clock_id.has_value();
    auto number = s.next_number(Impl::raw(tx),
                                (simulated ? "test-credit_note:" : "credit_note:") + std::to_string(year_month(now)));
    if (!number) return std::unexpected(number.error());
    note.tenant_id = tenant_id;
    note.id = new_uuid_v7(s.clock);
    note.number = invoice_number(year_month(now), *number, simulated ? "TEST-CN" : "CN");
    note.invoice_id = inv->id;
    note.amount = n->amount;
    note.reason = n->reason.value_or("other");
    note.memo = n->memo;
    note.created_at = now;
    auto ins = tx.execute(k_credit_insert, {Value(note.id), Value(note.number), Value(note.invoice_id),
                                            Value(note.amount), Value(note.method), Value(note.reason),
                                            Value(note.memo), Value(std::string()), time_value(now)});
    if (!ins) return std::unexpected(ins.error());
    if (auto e = s.emit(tx, "credit_note.created", to_json(note)); !e) return e;
    return s.record(tx, &who, "credit_note.created", "credit_note", note.id, audit::created_changes(to_json(note)));
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (note.method == "refund") {
    // A refund the provider did not confirm stays without a reference; the billing run sends it again with the
    // same idempotency key, so a retried request never makes a second note or refund.
    if (auto ref = s.refund(tenant_id, note.id, charge_reference, note.amount, currency); ref) note.reference = *ref;
  }
  return note;
}

Result<std::vector<CreditNote>> Billing::list_credit_notes(const std::string& tenant_id) {
  return impl_->tenant_rows(tenant_id, k_credit_list, {}, &read_credit);
}

}  // namespace atrium::billing
