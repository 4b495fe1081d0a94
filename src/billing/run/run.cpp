#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

// ---- the billing run --------------------------------------------------------------------------------------------
// Each phase works in batches of settings.run_batch, a platform-scope transaction per batch; charges go to the
// provider after the transaction that created their attempts committed (settle).

namespace {

void add_stats(RunStats& to, const RunStats& more) {
  to.renewed += more.renewed;
  to.invoices += more.invoices;
  to.charged += more.charged;
  to.failed += more.failed;
  to.retried += more.retried;
  to.cancelled += more.cancelled;
}

}  // namespace

Result<std::int64_t> Billing::Impl::count_due(Instant now) {
  std::int64_t total = 0;
  auto counted = platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto c = ptx.control().execute(k_sub_count_due, {time_value(now)});
        if (!c) return std::unexpected(c.error());
        total = c->int_at(0, 0).value_or(0);
        return {};
      },
      {.read_only = true});
  if (!counted) return std::unexpected(counted.error());
  return total;
}

Result<void> Billing::Impl::settle_at(std::vector<PendingCharge>& charges, const std::optional<std::string>& tenant_id,
                                      Instant now, RunStats* stats) {
  return settle(
      charges, tenant_id, [now](const PendingCharge&) { return now; }, stats);
}

Result<void> Billing::Impl::retry_refunds() {
  struct Pending {
    std::string tenant_id, note_id, currency, charge;
    std::int64_t amount = 0;
  };
  std::vector<Pending> refunds;
  auto listed = platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        refunds.clear();
        auto rows = ptx.control().execute(k_refund_pending);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          refunds.push_back({rows->text_at(i, 0).value_or(""), rows->text_at(i, 1).value_or(""),
                             rows->text_at(i, 3).value_or(""), rows->text_at(i, 4).value_or(""),
                             rows->int_at(i, 2).value_or(0)});
        }
        return {};
      },
      {.read_only = true});
  if (!listed) return listed;
  for (const auto& r : refunds) {
    (void)refund(r.tenant_id, r.note_id, r.charge, r.amount, r.currency);  // a failure waits for the next run
  }
  return {};
}

Result<void> Billing::Impl::resend_pending_charges(Instant now, int batch, RunStats& stats) {
  for (;;) {
    std::vector<PendingCharge> charges;
    auto r = platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      charges.clear();
      auto rows = ptx.control().execute(k_attempt_pending, {Value(std::int64_t{batch})});
      if (!rows) return std::unexpected(rows.error());
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        TenantTransaction ttx = ptx.tenant(rows->text_at(i, 0).value_or(""));
        auto a = ttx.execute(k_attempt_get, {Value(rows->text_at(i, 1).value_or(""))});
        if (!a) return std::unexpected(a.error());
        PaymentAttempt attempt = read_attempt(*a, 0);
        charges.push_back(PendingCharge{ttx.tenant_id(), attempt.id,
                                        ChargeRequest{attempt.idempotency_key, attempt.payment_method, attempt.amount,
                                                      attempt.currency, attempt.invoice_id}});
      }
      return {};
    });
    if (!r) return r;
    if (charges.empty()) return {};
    if (auto st = settle_at(charges, std::nullopt, now, &stats); !st) return st;
    if (static_cast<int>(charges.size()) < batch) return {};
  }
}

Result<void> Billing::Impl::renew_due(Instant now, int batch, RunStats& stats,
                                      const std::function<void(std::int64_t renewed_in_batch)>& progress) {
  for (;;) {
    std::vector<PendingCharge> charges;
    std::int64_t in_batch = 0;
    auto r = platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      charges.clear();
      in_batch = 0;
      auto rows = ptx.control().execute(ptx.backend() == storage::Backend::postgres ? k_sub_due_locked : k_sub_due,
                                        {time_value(now), Value(std::int64_t{batch})});
      if (!rows) return std::unexpected(rows.error());
      in_batch = static_cast<std::int64_t>(rows->rows.size());
      std::string account_tenant;
      Account acct;
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        Subscription sub = read_sub(*rows, i);
        TenantTransaction ttx = ptx.tenant(sub.tenant_id);
        if (account_tenant != sub.tenant_id) {
          auto a = account(ttx);
          if (!a) return std::unexpected(a.error());
          acct = std::move(*a);
          account_tenant = sub.tenant_id;
        }
        if (auto adv = advance_subscription(ttx, sub, acct, now, charges, &stats); !adv) return adv;
      }
      return {};
    });
    if (!r) return r;
    if (in_batch == 0) return {};
    notify();
    if (auto st = settle_at(charges, std::nullopt, now, &stats); !st) return st;
    progress(in_batch);
  }
}

Result<void> Billing::Impl::settle_usage_periods(Instant now, int batch) {
  struct Due {
    std::string tenant_id, subscription_id, metric;
    Instant period_start{};
  };
  std::vector<Due> due;
  auto listed = platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        due.clear();
        auto rows = ptx.control().execute(k_usage_due,
                                          {time_value(now - k_usage_settle_margin), Value(std::int64_t{batch} * 10)});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          due.push_back({rows->text_at(i, 0).value_or(""), rows->text_at(i, 1).value_or(""),
                         rows->text_at(i, 2).value_or(""), time_at(*rows, i, 3)});
        }
        return {};
      },
      {.read_only = true});
  if (!listed) return listed;
  for (const auto& d : due) {
    std::vector<PendingCharge> charges;
    auto settled = tenant(d.tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      charges.clear();
      auto row = tx.execute(postgres(tx) ? k_usage_get_locked : k_usage_get,
                            {Value(d.subscription_id), Value(d.metric), time_value(d.period_start)});
      if (!row) return std::unexpected(row.error());
      if (row->empty()) return {};  // settled meanwhile, or a renewal holds it: the next run
      UsageRecord u = read_usage(*row, 0, 0);
      if (auto m = remeasure(tx, u, now); !m) return m;
      auto w = tx.execute(k_usage_settle, {Value(d.subscription_id), Value(d.metric), time_value(u.period_start),
                                           Value(u.quantity), Value(u.amount), time_value(now)});
      if (!w) return std::unexpected(w.error());
      // A cancelled subscription has no next renewal to bill what the last measure changed: it is invoiced now.
      if (u.amount == u.billed_amount) return {};
      auto sub = subscription(tx, d.subscription_id);
      if (!sub) return std::unexpected(sub.error());
      if (sub->status != Status::cancelled) return {};
      return final_usage(tx, *sub, now, now, now, charges);
    });
    if (settled && !charges.empty()) settled = settle_at(charges, d.tenant_id, now, nullptr);
    if (!settled) {
      log::error("metered period not settled; the next billing run tries again",
                 {{"tenant_id", d.tenant_id},
                  {"subscription_id", d.subscription_id},
                  {"metric", d.metric},
                  {"error", settled.error().message}});
    }
  }
  return {};
}

Result<void> Billing::Impl::retry_due_invoices(Instant now, int batch, RunStats& stats) {
  for (;;) {
    std::vector<PendingCharge> charges;
    std::int64_t in_batch = 0;
    auto r = platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      charges.clear();
      auto rows = ptx.control().execute(k_invoice_due, {time_value(now), Value(std::int64_t{batch})});
      if (!rows) return std::unexpected(rows.error());
      in_batch = static_cast<std::int64_t>(rows->rows.size());
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        TenantTransaction ttx = ptx.tenant(rows->text_at(i, 0).value_or(""));
        if (auto rt = retry_invoice(ttx, rows->text_at(i, 1).value_or(""), now, charges, &stats); !rt) return rt;
      }
      return {};
    });
    if (!r) return r;
    if (in_batch == 0) return {};
    notify();
    if (auto st = settle_at(charges, std::nullopt, now, &stats); !st) return st;
    if (in_batch < batch) return {};
  }
}

Result<RunStats> Billing::run(const std::function<void(std::int64_t done, std::int64_t total)>& progress) {
  Impl& s = *impl_;
  RunStats stats;
  const Instant now = s.now();
  const int batch = std::max(1, s.settings.run_batch);
  auto total = s.count_due(now);
  if (!total) return std::unexpected(total.error());
  std::int64_t done = 0;
  if (progress) progress(0, *total);

  // 0. Refunds of credit notes the provider did not confirm.
  if (auto r = s.retry_refunds(); !r) return std::unexpected(r.error());
  // 1. Charges a crashed run (or request) left without an outcome: the same idempotency key again.
  if (auto r = s.resend_pending_charges(now, batch, stats); !r) return std::unexpected(r.error());
  // 2. Renewals, trial ends and cancellations at period end.
  auto renewed = s.renew_due(now, batch, stats, [&](std::int64_t in_batch) {
    done += in_batch;
    if (progress) progress(std::min(done, *total), *total);
  });
  if (!renewed) return std::unexpected(renewed.error());
  // 3. Metered periods whose grace window ended (with a margin, so an event accepted just before it has committed):
  // measured a last time now, while their raw events are kept; the next renewal bills what that changed. One
  // transaction per period, and a failure is logged and left for the next run: no one period stops the run.
  if (s.usage_meter) {
    if (auto r = s.settle_usage_periods(now, batch); !r) return std::unexpected(r.error());
  }
  // 4. Dunning retries that fell due.
  const std::int64_t charged_before_retries = stats.charged;
  if (auto r = s.retry_due_invoices(now, batch, stats); !r) return std::unexpected(r.error());
  if (progress) progress(*total, *total);
  // A retry that paid the last invoice of an unpaid subscription whose period had ended started its new period now
  // (settle_status), due at once: it is billed by this run, not the next, so a run leaves nothing due at its moment.
  // Each further pass needs a retry that paid an invoice, so this ends.
  if (stats.charged > charged_before_retries) {
    auto again = run({});
    if (!again) return again;
    add_stats(stats, *again);
  }
  return stats;
}

Result<std::map<std::string, std::int64_t>> Billing::mrr() {
  Impl& s = *impl_;
  std::map<std::string, std::int64_t> out;
  auto r = s.platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        auto rows = ptx.control().execute(k_sub_live);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          Subscription sub = read_sub(*rows, i);
          if (sub.test_clock_id) continue;
          auto plan = s.plan_version(ptx.control(), sub.plan_id, sub.plan_version);
          if (!plan) return std::unexpected(plan.error());
          std::optional<Coupon> applied;
          if (sub.coupon_id) {
            auto c = s.coupon(ptx.control(), *sub.coupon_id);
            if (!c) return std::unexpected(c.error());
            applied = *c;
          }
          auto amount = recurring_mrr(plan->price, sub, applied);
          if (!amount) return std::unexpected(amount.error());
          auto sum = add(out[plan->price.currency], *amount);
          if (!sum) return std::unexpected(sum.error());
          out[plan->price.currency] = *sum;
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace atrium::billing
