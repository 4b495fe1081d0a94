#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"

namespace atrium::billing {

Billing::Impl::UsageRecord Billing::Impl::read_usage(const storage::ResultSet& r, std::size_t i, std::size_t first) {
  UsageRecord u;
  u.metric = r.text_at(i, first).value_or("");
  u.period_start = time_at(r, i, first + 1);
  u.period_end = time_at(r, i, first + 2);
  u.quantity = r.int_at(i, first + 3).value_or(0);
  u.included = r.int_at(i, first + 4).value_or(0);
  u.price = r.text_at(i, first + 5).value_or("{}");
  u.amount = r.int_at(i, first + 6).value_or(0);
  u.billed_quantity = r.int_at(i, first + 7).value_or(0);
  u.billed_amount = r.int_at(i, first + 8).value_or(0);
  u.open_until = time_at(r, i, first + 9);
  u.invoice_id = r.text_at(i, first + 10).value_or("");
  u.settled = bool_at(r, i, first + 11);
  return u;
}

Result<void> Billing::Impl::remeasure(TenantTransaction& tx, UsageRecord& u, Instant at) {
  auto price = parse_metered(parse_stored(u.price, Json::object()));
  if (!price) return fail(Errc::internal, "stored usage price: " + price.error().message);
  auto q = usage_meter(tx, u.metric, u.period_start, u.period_end);
  if (!q) return std::unexpected(q.error());
  u.quantity = *q;
  auto amount = price_usage(*price, u.billable(u.quantity));
  if (!amount) {
    // Only an absurd quantity overflows; one tenant's usage must not stop every renewal after its own, so the
    // line is capped at the largest amount a price may have, and the operator is told.
    log::error("metered usage costs more than the largest amount; billed at the cap",
               {{"tenant_id", tx.tenant_id()},
                {"metric", u.metric},
                {"quantity", u.quantity},
                {"error", amount.error().message}});
    amount = k_max_amount;
  }
  u.amount = std::min(*amount, k_max_amount);
  u.settled = at >= u.open_until;
  return {};
}

Line Billing::Impl::usage_line(std::string description, std::int64_t quantity, std::int64_t amount, Instant from,
                               Instant to) {
  Line l;
  l.kind = LineKind::usage;
  l.description = std::move(description);
  l.quantity = quantity;
  // The per-unit price when the amount is uniform over the units; tiered and package prices may not be.
  l.unit_amount = quantity != 0 && amount % quantity == 0 ? amount / quantity : 0;
  l.amount = amount;
  l.period_start = from;
  l.period_end = to;
  return l;
}

Result<std::vector<Line>> Billing::Impl::usage_lines(TenantTransaction& tx, const Subscription& sub, const Plan& plan,
                                                     Instant from, Instant to, bool bill_period, Instant at,
                                                     std::vector<UsageRecord>& records, bool lock) {
  std::vector<Line> lines;
  if (!usage_meter) return lines;
  auto open = tx.execute(lock && postgres(tx) ? k_usage_open_locked : k_usage_open, {Value(sub.id)});
  if (!open) return std::unexpected(open.error());
  for (std::size_t i = 0; i < open->rows.size(); ++i) records.push_back(read_usage(*open, i, 0));
  for (UsageRecord& u : records) {
    // A settled period is not measured again (its raw events may be gone): what its last measure changed is billed.
    if (!u.settled) {
      if (auto m = remeasure(tx, u, at); !m) return std::unexpected(m.error());
    }
    if (u.amount != u.billed_amount) {
      lines.push_back(usage_line(u.metric + ": usage reported late",
                                 u.billable(u.quantity) - u.billable(u.billed_quantity), u.amount - u.billed_amount,
                                 u.period_start, u.period_end));
      u.billed_now = true;
    }
    u.billed_quantity = u.quantity;
    u.billed_amount = u.amount;
  }
  if (!bill_period || plan.price.metered.empty()) return lines;
  auto overrides = load_overrides(tx);
  if (!overrides) return std::unexpected(overrides.error());
  const auto quotas =
      apply_overrides(plan_quotas(plan.price.quotas, plan.price.features, plan.price.limits), *overrides);
  for (const MeteredPrice& m : plan.price.metered) {
    UsageRecord u{.insert = true, .metric = m.metric, .period_start = from, .period_end = to};
    // Several soft quotas on one metric: the largest allowance applies.
    for (const Quota& quota : quotas) {
      if (quota.metric == m.metric && quota.enforcement == Enforcement::soft && quota.limit) {
        u.included = std::max(u.included, *quota.limit);
      }
    }
    u.price = metered_json({m})[0].dump();
    u.open_until = to + usage_grace;
    if (auto r = remeasure(tx, u, at); !r) return std::unexpected(r.error());
    const std::int64_t billable = u.billable(u.quantity);
    if (billable > 0 || u.amount != 0) {
      std::string description = m.metric + " usage";
      if (u.included > 0) description += " beyond the " + std::to_string(u.included) + " included";
      lines.push_back(usage_line(std::move(description), billable, u.amount, from, to));
      u.billed_now = true;
    }
    u.billed_quantity = u.quantity;
    u.billed_amount = u.amount;
    records.push_back(std::move(u));
  }
  return lines;
}

Result<void> Billing::Impl::final_usage(TenantTransaction& tx, Subscription& sub, Instant from, Instant to, Instant at,
                                        std::vector<PendingCharge>& charges) {
  if (!usage_meter) return {};
  auto plan = plan_version(raw(tx), sub.plan_id, sub.plan_version);
  if (!plan) return std::unexpected(plan.error());
  std::vector<UsageRecord> usage;
  auto lines = usage_lines(tx, sub, *plan, from, to, from < to, at, usage);
  if (!lines) return std::unexpected(lines.error());
  std::string invoice_id;
  if (!lines->empty()) {
    auto acct = account(tx);
    if (!acct) return std::unexpected(acct.error());
    IssueOptions o{
        .reason = "subscription_final",
        .period_start = from < to ? from : to,
        .period_end = to,
        .cycle_key = sub.id + ":final:" + std::to_string(unix_seconds(to)) + ":" + std::to_string(unix_seconds(at)),
        .with_coupon = false};
    auto inv = issue_invoice(tx, *acct, &sub, std::move(*lines), o, at, &charges, true);
    if (!inv) return std::unexpected(inv.error());
    invoice_id = inv->id;
  }
  return save_usage(tx, sub.id, usage, invoice_id, at);
}

Result<void> Billing::Impl::save_usage(TenantTransaction& tx, const std::string& subscription_id,
                                       const std::vector<UsageRecord>& records, const std::string& invoice_id,
                                       Instant now) {
  for (const UsageRecord& u : records) {
    const std::string& invoice = u.billed_now || u.invoice_id.empty() ? invoice_id : u.invoice_id;
    auto r =
        u.insert
            ? tx.execute(
                  k_usage_insert,
                  {Value(subscription_id), Value(u.metric), time_value(u.period_start), time_value(u.period_end),
                   Value(u.quantity), Value(u.included), Value(u.price), Value(u.amount), Value(u.billed_quantity),
                   Value(u.billed_amount), time_value(u.open_until), Value(invoice), Value(u.settled), time_value(now)})
            : tx.execute(k_usage_update, {Value(subscription_id), Value(u.metric), time_value(u.period_start),
                                          Value(u.quantity), Value(u.amount), Value(u.billed_quantity),
                                          Value(u.billed_amount), Value(u.settled), Value(invoice), time_value(now)});
    if (!r) return std::unexpected(r.error());
  }
  return {};
}

}  // namespace atrium::billing
