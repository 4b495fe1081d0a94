#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"

namespace atrium::billing {

Result<Invoice> Billing::Impl::invoice(TenantTransaction& tx, const std::string& id, bool with_lines, bool lock) {
  auto r = tx.execute(lock && postgres(tx) ? k_invoice_get_locked : k_invoice_get, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no invoice " + id);
  Invoice v = read_invoice(*r, 0);
  if (auto c = open_customer(tx, v); !c) return std::unexpected(c.error());
  if (with_lines) {
    auto lines = tx.execute(k_line_list, {Value(id)});
    if (!lines) return std::unexpected(lines.error());
    for (std::size_t i = 0; i < lines->rows.size(); ++i) v.lines.push_back(read_line(*lines, i));
  }
  return v;
}

Result<std::int64_t> Billing::Impl::next_number(Transaction& tx, const std::string& counter) {
  auto r = tx.execute(k_next_number, {Value(counter)});
  if (!r) return std::unexpected(r.error());
  auto v = r->int_at(0, 0);
  if (!v) return fail(Errc::internal, "counter " + counter + " returned no value");
  return *v;
}

Result<std::vector<Line>> Billing::Impl::cycle_lines(const Plan& plan, std::int64_t seats, Instant start, Instant end) {
  std::vector<Line> lines;
  Line base;
  base.kind = LineKind::subscription;
  base.description = plan.name + " (" + std::string(interval_name(plan.price.interval)) + ")";
  base.quantity = 1;
  base.unit_amount = plan.price.base_price;
  base.amount = plan.price.base_price;
  base.period_start = start;
  base.period_end = end;
  lines.push_back(base);
  const std::int64_t extra = std::max<std::int64_t>(0, seats - plan.price.included_seats);
  if (extra > 0) {
    auto amount = multiply(extra, plan.price.seat_price);
    if (!amount) return std::unexpected(amount.error());
    Line seat_line;
    seat_line.kind = LineKind::seats;
    seat_line.description = "Additional seats (" + std::to_string(plan.price.included_seats) + " included)";
    seat_line.quantity = extra;
    seat_line.unit_amount = plan.price.seat_price;
    seat_line.amount = *amount;
    seat_line.period_start = start;
    seat_line.period_end = end;
    lines.push_back(seat_line);
  }
  return lines;
}

Result<void> Billing::Impl::prorate_lines(std::vector<Line>& lines, Instant full_start, Instant end, Instant at,
                                          ProrationMode mode) {
  for (auto& l : lines) {
    auto part = prorate_remaining(l.amount, full_start, end, at, mode);
    if (!part) return std::unexpected(part.error());
    l.description += " (partial period)";
    l.quantity = 1;
    l.amount = *part;
    l.unit_amount = *part;
    l.proration = true;
    l.period_start = at;
  }
  return {};
}

Result<std::pair<std::optional<Discount>, std::string>> Billing::Impl::coupon_for(TenantTransaction& tx,
                                                                                  Subscription& sub,
                                                                                  Instant period_start, bool consume) {
  std::pair<std::optional<Discount>, std::string> out;
  if (!sub.coupon_id) return out;
  auto c = coupon(raw(tx), *sub.coupon_id);
  if (!c) return std::unexpected(c.error());
  if (!*c) return out;
  const Coupon& coupon = **c;
  bool applies = false;
  if (coupon.duration == "forever") {
    applies = true;
  } else if (coupon.duration == "once") {
    applies = sub.coupon_uses == 0;
  } else {
    applies = period_start < add_months(sub.coupon_start.value_or(period_start), coupon.duration_months);
  }
  if (!applies) return out;
  Discount d;
  d.percent_off_bps = coupon.percent_off_bps;
  d.amount_off = coupon.amount_off;
  out.first = d;
  out.second =
      coupon.code + (coupon.percent_off_bps > 0 ? " (" + format_decimal(coupon.percent_off_bps, "USD") + "% off)"
                                                : " (" + format_money(coupon.amount_off, coupon.currency) + " off)");
  if (consume) sub.coupon_uses += 1;
  return out;
}

std::string Billing::Impl::tax_label(const TaxRateRow& t) {
  return t.name + " " + format_decimal(t.bps, "USD") + "%" + (t.inclusive ? " (included)" : "");
}

Json Billing::Impl::customer_json(const Account& a) {
  return {{"legal_name", a.legal_name}, {"email", a.email},   {"address", a.address},
          {"country", a.country},       {"region", a.region}, {"tax_ids", a.tax_ids}};
}

Result<Invoice> Billing::Impl::price_invoice(TenantTransaction& tx, const Account& account, Subscription* sub,
                                             std::vector<Line> lines, const IssueOptions& o, Instant now,
                                             bool persist) {
  Invoice inv;
  inv.tenant_id = tx.tenant_id();
  inv.id = new_uuid_v7(clock);
  if (sub) inv.subscription_id = sub->id;
  inv.billing_reason = o.reason;
  inv.currency = account.currency;
  inv.period_start = o.period_start;
  inv.period_end = o.period_end;
  inv.customer = customer_json(account);
  inv.memo = o.memo;
  inv.test_clock_id = sub ? sub->test_clock_id : std::nullopt;
  inv.created_at = now;
  std::optional<Discount> discount;
  if (o.with_coupon && sub) {
    auto c = coupon_for(tx, *sub, o.period_start, persist);
    if (!c) return std::unexpected(c.error());
    discount = c->first;
    inv.discount_label = c->second;
    // with_coupon is set exactly on the invoices that open a period: what changes within it prorate from.
    if (persist) sub->period_discounted = discount.has_value();
  }
  std::optional<TaxRate> tax;
  auto rate = tax_for(raw(tx), account);
  if (!rate) return std::unexpected(rate.error());
  if (*rate) {
    tax = TaxRate{(*rate)->bps, (*rate)->inclusive};
    inv.tax_label = tax_label(**rate);
  }
  auto totals = compute_totals(lines, discount, tax, std::max<std::int64_t>(account.credit_balance, 0));
  if (!totals) return std::unexpected(totals.error());
  inv.totals = *totals;
  inv.lines = std::move(lines);
  inv.amount_remaining = inv.totals.amount_due;
  inv.status = inv.totals.amount_due > 0 ? "open" : "paid";
  inv.finalized_at = now;
  inv.due_at = now + std::chrono::days(settings.days_until_due);
  if (inv.status == "paid") inv.paid_at = now;
  return inv;
}

namespace {

// The invoice row and its lines.
Result<void> insert_invoice(TenantTransaction& tx, const Invoice& inv, const std::optional<std::string>& cycle_key,
                            Instant now) {
  auto customer = seal_customer(tx, inv);
  if (!customer) return std::unexpected(customer.error());
  auto ins = tx.execute(k_invoice_insert, {Value(inv.id),
                                           opt(inv.number),
                                           opt(inv.subscription_id),
                                           opt(cycle_key),
                                           Value(inv.status),
                                           Value(inv.billing_reason),
                                           Value(inv.currency),
                                           time_value(inv.period_start),
                                           time_value(inv.period_end),
                                           Value(inv.totals.subtotal),
                                           Value(inv.totals.discount),
                                           Value(inv.discount_label),
                                           Value(inv.totals.tax),
                                           Value(inv.totals.tax_inclusive),
                                           Value(inv.tax_label),
                                           Value(inv.totals.total),
                                           Value(inv.totals.credit_applied),
                                           Value(inv.totals.credit_created),
                                           Value(inv.totals.amount_due),
                                           Value(std::int64_t{0}),
                                           Value(inv.amount_remaining),
                                           Value(std::int64_t{inv.attempt_count}),
                                           Value(),
                                           Value(*customer),
                                           Value(inv.memo),
                                           opt(inv.test_clock_id),
                                           time_value(now),
                                           time_value(now),
                                           inv.paid_at ? time_value(*inv.paid_at) : Value(),
                                           Value(),
                                           opt(inv.due_at)});
  if (!ins) return std::unexpected(ins.error());
  for (std::size_t i = 0; i < inv.lines.size(); ++i) {
    const Line& l = inv.lines[i];
    auto r = tx.execute(k_line_insert, {Value(inv.id), Value(static_cast<std::int64_t>(i + 1)),
                                        Value(std::string(line_kind_name(l.kind))), Value(l.description),
                                        Value(l.quantity), Value(l.unit_amount), Value(l.amount),
                                        time_value(l.period_start), time_value(l.period_end), Value(l.proration)});
    if (!r) return std::unexpected(r.error());
  }
  return {};
}

}  // namespace

Result<Invoice> Billing::Impl::issue_invoice(TenantTransaction& tx, Account& account, Subscription* sub,
                                             std::vector<Line> lines, const IssueOptions& o, Instant now,
                                             std::vector<PendingCharge>* charges, bool persist) {
  auto priced = price_invoice(tx, account, sub, std::move(lines), o, now, persist);
  if (!priced || !persist) return priced;
  Invoice& inv = *priced;
  // Invoices on a test clock have a sequence (and prefix) of their own, so simulated months never use up the
  // real months' numbers.
  const bool simulated = inv.test_clock_id.has_value();
  auto n = next_number(raw(tx), (simulated ? "test-invoice:" : "invoice:") + std::to_string(year_month(now)));
  if (!n) return std::unexpected(n.error());
  inv.number = invoice_number(year_month(now), *n, simulated ? "TEST-INV" : "INV");
  if (inv.totals.amount_due > 0) inv.attempt_count = 1;
  if (auto w = insert_invoice(tx, inv, o.cycle_key, now); !w) return std::unexpected(w.error());
  if (inv.totals.credit_applied != 0 || inv.totals.credit_created != 0) {
    account.credit_balance = account.credit_balance - inv.totals.credit_applied + inv.totals.credit_created;
    if (auto r = tx.execute(k_account_balance, {Value(inv.totals.credit_created - inv.totals.credit_applied)}); !r)
      return std::unexpected(r.error());
  }
  if (auto e = emit(tx, "invoice.finalized",
                    {{"invoice_id", inv.id},
                     {"number", *inv.number},
                     {"total", inv.totals.total},
                     {"amount_due", inv.totals.amount_due},
                     {"currency", inv.currency},
                     {"billing_reason", inv.billing_reason}});
      !e) {
    return std::unexpected(e.error());
  }
  if (inv.totals.amount_due > 0 && charges) {
    auto a = new_attempt(tx, inv, account, 1, now);
    if (!a) return std::unexpected(a.error());
    charges->push_back(std::move(*a));
  }
  return priced;
}

}  // namespace atrium::billing
