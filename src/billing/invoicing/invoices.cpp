#include <map>

#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"

namespace atrium::billing {

// ---- invoices ---------------------------------------------------------------------------------------------------

Result<std::vector<Invoice>> Billing::list_invoices(const std::string& tenant_id, const std::string& status) {
  std::vector<Invoice> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           out.clear();
                           auto rows = tx.execute(k_invoice_list, {Value(status)});
                           if (!rows) return std::unexpected(rows.error());
                           std::map<std::string, std::size_t> index;
                           for (std::size_t i = 0; i < rows->rows.size(); ++i) {
                             out.push_back(read_invoice(*rows, i));
                             if (auto c = open_customer(tx, out.back()); !c) return c;
                             index[out.back().id] = i;
                           }
                           auto lines = tx.execute(k_line_list_of_page, {Value(status)});
                           if (!lines) return std::unexpected(lines.error());
                           for (std::size_t i = 0; i < lines->rows.size(); ++i) {
                             const auto it = index.find(lines->text_at(i, 0).value_or(""));
                             if (it != index.end()) out[it->second].lines.push_back(read_line(*lines, i));
                           }
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Invoice> Billing::get_invoice(const std::string& tenant_id, const std::string& id) {
  std::optional<Invoice> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto inv = impl_->invoice(tx, id, true, false);
                           if (!inv) return std::unexpected(inv.error());
                           out = std::move(*inv);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<std::vector<PaymentAttempt>> Billing::list_attempts(const std::string& tenant_id,
                                                           const std::string& invoice_id) {
  std::vector<PaymentAttempt> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           if (auto inv = impl_->invoice(tx, invoice_id, false, false); !inv)
                             return std::unexpected(inv.error());
                           auto rows = tx.execute(k_attempt_list, {Value(invoice_id)});
                           if (!rows) return std::unexpected(rows.error());
                           for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_attempt(*rows, i));
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

namespace {

// A one-off invoice's lines (quantity x unit amount).
Result<std::vector<Line>> manual_lines(const ManualInvoice& input) {
  if (input.lines.empty() || input.lines.size() > 500) {
    return fail(Errc::invalid_argument, "lines must be an array of 1-500 lines");
  }
  std::vector<Line> lines;
  for (const auto& l : input.lines) {
    if (l.description.empty()) return fail(Errc::invalid_argument, "lines[].description is required");
    if (l.quantity < 1 || l.quantity > 1'000'000) {
      return fail(Errc::invalid_argument, "lines[].quantity must be between 1 and 1000000");
    }
    if (l.unit_amount < -k_max_amount || l.unit_amount > k_max_amount) {
      return fail(Errc::invalid_argument, "lines[].unit_amount is out of range");
    }
    auto amount = multiply(l.quantity, l.unit_amount);
    if (!amount) return std::unexpected(amount.error());
    lines.push_back(
        Line{LineKind::one_off, l.description, l.quantity, l.unit_amount, *amount, Instant{}, Instant{}, false});
  }
  return lines;
}

// A draft: no number, nothing due or credited yet (finalization settles those), its lines dated `now`.
Result<void> insert_draft(TenantTransaction& tx, const Invoice& inv, Instant now) {
  auto customer = seal_customer(tx, inv);
  if (!customer) return std::unexpected(customer.error());
  auto ins = tx.execute(k_invoice_insert, {Value(inv.id),
                                           Value(),
                                           Value(),
                                           Value(),
                                           Value(std::string("draft")),
                                           Value(inv.billing_reason),
                                           Value(inv.currency),
                                           time_value(now),
                                           time_value(now),
                                           Value(inv.totals.subtotal),
                                           Value(inv.totals.discount),
                                           Value(std::string()),
                                           Value(inv.totals.tax),
                                           Value(inv.totals.tax_inclusive),
                                           Value(inv.tax_label),
                                           Value(inv.totals.total),
                                           Value(std::int64_t{0}),
                                           Value(std::int64_t{0}),
                                           Value(std::int64_t{0}),
                                           Value(std::int64_t{0}),
                                           Value(std::int64_t{0}),
                                           Value(std::int64_t{0}),
                                           Value(),
                                           Value(*customer),
                                           Value(inv.memo),
                                           Value(),
                                           time_value(now),
                                           Value(),
                                           Value(),
                                           Value(),
                                           Value()});
  if (!ins) return std::unexpected(ins.error());
  for (std::size_t i = 0; i < inv.lines.size(); ++i) {
    const Line& l = inv.lines[i];
    auto lr = tx.execute(k_line_insert,
                         {Value(inv.id), Value(static_cast<std::int64_t>(i + 1)),
                          Value(std::string(line_kind_name(l.kind))), Value(l.description), Value(l.quantity),
                          Value(l.unit_amount), Value(l.amount), time_value(now), time_value(now), Value(false)});
    if (!lr) return std::unexpected(lr.error());
  }
  return {};
}

}  // namespace

Result<Invoice> Billing::create_invoice(const std::string& tenant_id, const ManualInvoice& input,
                                        const audit::Context& who) {
  auto manual = manual_lines(input);
  if (!manual) return std::unexpected(manual.error());
  auto& lines = *manual;
  const std::string& memo = input.memo;
  Impl& s = *impl_;
  std::optional<Invoice> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    const Instant now = s.now();
    auto inv = s.issue_invoice(tx, *acct, nullptr, lines, {.reason = "manual", .memo = memo}, now, nullptr, false);
    if (!inv) return std::unexpected(inv.error());
    inv->status = "draft";
    inv->finalized_at.reset();
    inv->paid_at.reset();
    inv->amount_remaining = 0;
    // Credit and what is due are settled at finalization; the draft stores (and shows) none.
    inv->totals.credit_applied = 0;
    inv->totals.credit_created = 0;
    inv->totals.amount_due = 0;
    if (auto d = insert_draft(tx, *inv, now); !d) return d;
    inv->period_start = inv->period_end = now;
    if (auto a = s.record(tx, &who, "invoice.created", "invoice", inv->id,
                          audit::created_changes({{"total", inv->totals.total}, {"memo", inv->memo}}));
        !a) {
      return a;
    }
    out = std::move(*inv);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<Invoice> Billing::finalize_invoice(const std::string& tenant_id, const std::string& id,
                                          const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto draft = s.invoice(tx, id, true);
    if (!draft) return std::unexpected(draft.error());
    if (draft->status != "draft") return fail(Errc::conflict, "only a draft invoice can be finalized");
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    now = s.now();
    auto inv = s.issue_invoice(tx, *acct, nullptr, draft->lines, {.reason = "manual", .memo = draft->memo}, now,
                               nullptr, false);
    if (!inv) return std::unexpected(inv.error());
    auto n = s.next_number(Impl::raw(tx), "invoice:" + std::to_string(year_month(now)));
    if (!n) return std::unexpected(n.error());
    inv->id = draft->id;
    inv->number = invoice_number(year_month(now), *n, "INV");
    auto customer = seal_customer(tx, *inv);
    if (!customer) return std::unexpected(customer.error());
    auto up = tx.execute(
        k_invoice_finalize,
        {Value(inv->id), opt(inv->number), Value(inv->status), Value(inv->totals.subtotal), Value(inv->totals.discount),
         Value(inv->discount_label), Value(inv->totals.tax), Value(inv->totals.tax_inclusive), Value(inv->tax_label),
         Value(inv->totals.total), Value(inv->totals.credit_applied), Value(inv->totals.credit_created),
         Value(inv->totals.amount_due), Value(std::int64_t{0}), Value(inv->amount_remaining), Value(*customer),
         time_value(now), opt(inv->paid_at), opt(inv->due_at)});
    if (!up) return std::unexpected(up.error());
    if (up->affected_rows != 1) return fail(Errc::conflict, "only a draft invoice can be finalized");
    if (inv->totals.credit_applied != 0 || inv->totals.credit_created != 0) {
      acct->credit_balance = acct->credit_balance - inv->totals.credit_applied + inv->totals.credit_created;
      if (auto b = tx.execute(k_account_balance, {Value(inv->totals.credit_created - inv->totals.credit_applied)});
          !b) {
        return std::unexpected(b.error());
      }
    }
    if (inv->totals.amount_due > 0) {
      inv->attempt_count = 1;
      if (auto sv = s.save_payment_state(tx, *inv, now); !sv) return sv;
      auto a = s.new_attempt(tx, *inv, *acct, 1, now);
      if (!a) return std::unexpected(a.error());
      charges.push_back(std::move(*a));
    }
    if (auto e = s.emit(tx, "invoice.finalized",
                        {{"invoice_id", inv->id},
                         {"number", *inv->number},
                         {"total", inv->totals.total},
                         {"currency", inv->currency}});
        !e) {
      return e;
    }
    Json changes = Json::object();
    audit::add_change(changes, "status", "draft", inv->status);
    audit::add_change(changes, "number", nullptr, *inv->number);
    return s.record(tx, &who, "invoice.finalized", "invoice", inv->id, changes);
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle_at(charges, tenant_id, now, nullptr); !st) return std::unexpected(st.error());
  return get_invoice(tenant_id, id);
}

Result<Invoice> Billing::pay_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now{};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto inv = s.invoice(tx, id, false);
    if (!inv) return std::unexpected(inv.error());
    if (inv->status != "open" || inv->amount_remaining <= 0) {
      return fail(Errc::conflict,
                  "only an open invoice with an amount due can be paid (this one is " + inv->status + ")");
    }
    auto pending = tx.execute(k_attempt_last, {Value(id)});
    if (!pending) return std::unexpected(pending.error());
    if (!pending->empty() && read_attempt(*pending, 0).status == "pending") {
      return fail(Errc::conflict, "a payment of this invoice is in progress");
    }
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    auto t = s.now_for(tx, inv->test_clock_id);
    if (!t) return std::unexpected(t.error());
    now = *t;
    inv->attempt_count += 1;
    if (auto sv = s.save_payment_state(tx, *inv, now); !sv) return sv;
    auto a = s.new_attempt(tx, *inv, *acct, inv->attempt_count, now);
    if (!a) return std::unexpected(a.error());
    charges.push_back(std::move(*a));
    return s.record(tx, &who, "invoice.payment_requested", "invoice", id, Json::object());
  });
  if (!r) return std::unexpected(r.error());
  if (auto st = s.settle_at(charges, tenant_id, now, nullptr); !st) return std::unexpected(st.error());
  return get_invoice(tenant_id, id);
}

namespace {

template <class Impl>
Result<Invoice> close_invoice(Impl& s, const std::string& tenant_id, const std::string& id, const std::string& to,
                              const audit::Context& who) {
  std::optional<Invoice> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto inv = s.invoice(tx, id, true);
    if (!inv) return std::unexpected(inv.error());
    const bool voidable = inv->status == "open" || inv->status == "draft";
    if (to == "void" ? !voidable : inv->status != "open") {
      return fail(Errc::conflict, "a " + inv->status + " invoice cannot become " + to);
    }
    auto in_flight = s.payment_in_flight(tx, inv->id);
    if (!in_flight) return std::unexpected(in_flight.error());
    if (*in_flight) {
      return fail(Errc::conflict, "a payment of this invoice is in flight (its outcome is not known yet); try later");
    }
    auto clock_now = s.now_for(tx, inv->test_clock_id);
    if (!clock_now) return std::unexpected(clock_now.error());
    const Instant now = *clock_now;
    const std::string before = inv->status;
    if (to == "void" && inv->status == "open" && inv->totals.credit_applied > 0) {
      // The account's credit used on the invoice goes back to the account.
      if (auto b = tx.execute(k_account_balance, {Value(inv->totals.credit_applied)}); !b) {
        return std::unexpected(b.error());
      }
    }
    inv->status = to;
    inv->next_payment_attempt.reset();
    if (to == "void") {
      inv->voided_at = now;
      inv->amount_remaining = 0;
    }
    if (auto sv = s.save_payment_state(tx, *inv, now); !sv) return sv;
    if (auto e = s.emit(tx, "invoice." + to, {{"invoice_id", inv->id}, {"number", inv->number.value_or("")}}); !e) {
      return e;
    }
    if (inv->subscription_id) {
      if (auto st = s.settle_status(tx, *inv->subscription_id, now, "invoice_" + to); !st) return st;
    }
    Json changes = Json::object();
    audit::add_change(changes, "status", before, to);
    if (auto a = s.record(tx, &who, to == "void" ? "invoice.voided" : "invoice.marked_uncollectible", "invoice", id,
                          changes);
        !a) {
      return a;
    }
    out = std::move(*inv);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  return *out;
}

}  // namespace

Result<Invoice> Billing::void_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  return close_invoice(*impl_, tenant_id, id, "void", who);
}

Result<Invoice> Billing::mark_uncollectible(const std::string& tenant_id, const std::string& id,
                                            const audit::Context& who) {
  return close_invoice(*impl_, tenant_id, id, "uncollectible", who);
}

Result<InvoiceDocument> Billing::document(const std::string& tenant_id, const std::string& id) {
  auto inv = get_invoice(tenant_id, id);
  if (!inv) return std::unexpected(inv.error());
  InvoiceDocument d;
  d.title = "Invoice";
  d.number = inv->number.value_or("DRAFT");
  d.status = inv->status;
  d.currency = inv->currency;
  d.issued_at = inv->finalized_at.value_or(inv->created_at);
  // Invoices finalized before due dates were stored: computed as they were then.
  d.due_at = inv->due_at.value_or(d.issued_at + std::chrono::days(impl_->settings.days_until_due));
  d.period_start = inv->period_start;
  d.period_end = inv->period_end;
  const Json& issuer = impl_->settings.issuer;
  d.issuer.name = issuer.value("name", std::string("Atrium"));
  d.issuer.email = issuer.value("email", std::string());
  d.issuer.country = issuer.value("country", std::string());
  d.issuer.address_lines = string_list(issuer.value("address", Json::array()));
  d.issuer.tax_ids = string_list(issuer.value("tax_ids", Json::array()));
  d.customer.name = inv->customer.value("legal_name", std::string());
  d.customer.email = inv->customer.value("email", std::string());
  d.customer.country = inv->customer.value("country", std::string());
  d.customer.address_lines = string_list(inv->customer.value("address", Json::array()));
  d.customer.tax_ids = string_list(inv->customer.value("tax_ids", Json::array()));
  d.lines = inv->lines;
  d.totals = inv->totals;
  d.discount_label = inv->discount_label;
  d.tax_label = inv->tax_label;
  d.amount_paid = inv->amount_paid;
  d.memo = inv->memo;
  return d;
}

}  // namespace atrium::billing
