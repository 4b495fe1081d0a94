#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

// ---- the billing run --------------------------------------------------------------------------------------------

Result<RunStats> Billing::run(const std::function<void(std::int64_t done, std::int64_t total)>& progress) {
  Impl& s = *impl_;
  RunStats stats;
  const Instant now = s.now();
  const int batch = std::max(1, s.settings.run_batch);
  std::int64_t total = 0;
  auto counted = s.platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto c = ptx.control().execute(k_sub_count_due, {Value(now)});
        if (!c) return std::unexpected(c.error());
        total = c->int_at(0, 0).value_or(0);
        return {};
      },
      {.read_only = true});
  if (!counted) return std::unexpected(counted.error());
  std::int64_t done = 0;
  if (progress) progress(0, total);

  // 0. Refunds of credit notes the provider did not confirm.
  std::vector<std::array<std::string, 4>> refunds;
  std::vector<std::int64_t> refund_amounts;
  auto listed = s.platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto rows = ptx.control().execute(k_refund_pending);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          refunds.push_back({rows->text_at(i, 0).value_or(""), rows->text_at(i, 1).value_or(""),
                             rows->text_at(i, 3).value_or(""), rows->text_at(i, 4).value_or("")});
          refund_amounts.push_back(rows->int_at(i, 2).value_or(0));
        }
        return {};
      },
      {.read_only = true});
  if (!listed) return std::unexpected(listed.error());
  for (std::size_t i = 0; i < refunds.size(); ++i) {
    const auto& [tenant_id, note_id, currency, charge] = refunds[i];
    (void)s.refund(tenant_id, note_id, charge, refund_amounts[i], currency);  // a failure waits for the next run
  }

  // 1. Charges a crashed run (or request) left without an outcome: the same idempotency key again.
  for (;;) {
    std::vector<PendingCharge> charges;
    auto r = s.platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
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
    if (!r) return std::unexpected(r.error());
    if (charges.empty()) break;
    if (auto st = s.settle(
            charges, std::nullopt, [&](const PendingCharge&) { return now; }, &stats);
        !st) {
      return std::unexpected(st.error());
    }
    if (static_cast<int>(charges.size()) < batch) break;
  }

  // 2. Renewals, trial ends and cancellations at period end, a batch per transaction.
  for (;;) {
    std::vector<PendingCharge> charges;
    std::int64_t in_batch = 0;
    auto r = s.platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      charges.clear();
      in_batch = 0;
      auto rows = ptx.control().execute(ptx.backend() == storage::Backend::postgres ? k_sub_due_locked : k_sub_due,
                                        {Value(now), Value(std::int64_t{batch})});
      if (!rows) return std::unexpected(rows.error());
      in_batch = static_cast<std::int64_t>(rows->rows.size());
      std::string account_tenant;
      Account acct;
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        Subscription sub = read_sub(*rows, i);
        TenantTransaction ttx = ptx.tenant(sub.tenant_id);
        if (account_tenant != sub.tenant_id) {
          auto a = s.account(ttx);
          if (!a) return std::unexpected(a.error());
          acct = std::move(*a);
          account_tenant = sub.tenant_id;
        }
        if (auto adv = s.advance_subscription(ttx, sub, acct, now, charges, &stats); !adv) return adv;
      }
      return {};
    });
    if (!r) return std::unexpected(r.error());
    if (in_batch == 0) break;
    s.notify();
    if (auto st = s.settle(
            charges, std::nullopt, [&](const PendingCharge&) { return now; }, &stats);
        !st) {
      return std::unexpected(st.error());
    }
    done += in_batch;
    if (progress) progress(std::min(done, total), total);
  }

  // 3. Metered periods whose grace window ended (with a margin, so an event accepted just before it has committed):
  // measured a last time now, while their raw events are kept; the next renewal bills what that changed. One
  // transaction per period, and a failure is logged and left for the next run: no one period stops the run.
  if (s.usage_meter) {
    std::vector<std::array<std::string, 3>> due;  // tenant, subscription, metric
    std::vector<Instant> due_start;
    auto listed_due = s.platform(
        [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
          due.clear();
          due_start.clear();
          auto rows =
              ptx.control().execute(k_usage_due, {Value(now - k_usage_settle_margin), Value(std::int64_t{batch} * 10)});
          if (!rows) return std::unexpected(rows.error());
          for (std::size_t i = 0; i < rows->rows.size(); ++i) {
            due.push_back(
                {rows->text_at(i, 0).value_or(""), rows->text_at(i, 1).value_or(""), rows->text_at(i, 2).value_or("")});
            due_start.push_back(rows->int_at(i, 3).value_or(0));
          }
          return {};
        },
        {.read_only = true});
    if (!listed_due) return std::unexpected(listed_due.error());
    for (std::size_t i = 0; i < due.size(); ++i) {
      const auto& [tenant_id, subscription_id, metric] = due[i];
      auto settled = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
        auto row = tx.execute(Impl::postgres(tx) ? k_usage_get_locked : k_usage_get,
                              {Value(subscription_id), Value(metric), Value(due_start[i])});
        if (!row) return std::unexpected(row.error());
        if (row->empty()) return {};  // settled meanwhile, or a renewal holds it: the next run
        Impl::UsageRecord u = Impl::read_usage(*row, 0, 0);
        if (auto m = s.remeasure(tx, u, now); !m) return m;
        auto w = tx.execute(k_usage_settle, {Value(subscription_id), Value(metric), Value(u.period_start),
                                             Value(u.quantity), Value(u.amount), Value(now)});
        if (!w) return std::unexpected(w.error());
        return {};
      });
      if (!settled) {
        log::error("metered period not settled; the next billing run tries again",
                   {{"tenant_id", tenant_id},
                    {"subscription_id", subscription_id},
                    {"metric", metric},
                    {"error", settled.error().message}});
      }
    }
  }

  // 4. Dunning retries that fell due.
  const std::int64_t charged_before_retries = stats.charged;
  for (;;) {
    std::vector<PendingCharge> charges;
    std::int64_t in_batch = 0;
    auto r = s.platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      charges.clear();
      auto rows = ptx.control().execute(k_invoice_due, {Value(now), Value(std::int64_t{batch})});
      if (!rows) return std::unexpected(rows.error());
      in_batch = static_cast<std::int64_t>(rows->rows.size());
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        TenantTransaction ttx = ptx.tenant(rows->text_at(i, 0).value_or(""));
        if (auto rt = s.retry_invoice(ttx, rows->text_at(i, 1).value_or(""), now, charges, &stats); !rt) return rt;
      }
      return {};
    });
    if (!r) return std::unexpected(r.error());
    if (in_batch == 0) break;
    s.notify();
    if (auto st = s.settle(
            charges, std::nullopt, [&](const PendingCharge&) { return now; }, &stats);
        !st) {
      return std::unexpected(st.error());
    }
    if (in_batch < batch) break;
  }
  if (progress) progress(total, total);
  // A retry that paid the last invoice of an unpaid subscription whose period had ended started its new period now
  // (settle_status), due at once: it is billed by this run, not the next, so a run leaves nothing due at its moment.
  // Each further pass needs a retry that paid an invoice, so this ends.
  if (stats.charged > charged_before_retries) {
    auto again = run({});
    if (!again) return again;
    stats.renewed += again->renewed;
    stats.invoices += again->invoices;
    stats.charged += again->charged;
    stats.failed += again->failed;
    stats.retried += again->retried;
    stats.cancelled += again->cancelled;
  }
  return stats;
}

Result<std::map<std::string, std::int64_t>> Billing::mrr() {
  Impl& s = *impl_;
  std::map<std::string, std::int64_t> out;
  std::map<std::pair<std::string, int>, std::int64_t> per_interval;  // summed per interval, rounded once
  auto r = s.platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto rows = ptx.control().execute(k_sub_live);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          Subscription sub = read_sub(*rows, i);
          if (sub.test_clock_id) continue;
          auto plan = s.plan_version(ptx.control(), sub.plan_id, sub.plan_version);
          if (!plan) return std::unexpected(plan.error());
          auto amount = period_amount(plan->price, sub.seats);
          if (!amount) return std::unexpected(amount.error());
          auto sum = add(per_interval[{plan->price.currency, interval_months(plan->price.interval)}], *amount);
          if (!sum) return std::unexpected(sum.error());
          per_interval[{plan->price.currency, interval_months(plan->price.interval)}] = *sum;
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  for (const auto& [key, total] : per_interval) out[key.first] += round_div(total, key.second);
  return out;
}

}  // namespace atrium::billing
