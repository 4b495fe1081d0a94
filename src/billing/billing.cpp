#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

namespace {

constexpr std::array k_tenant_statements{
    k_account_get,
    k_account_insert,
    k_account_update,
    k_account_balance,
    k_account_get_locked,
    k_sub_insert,
    k_sub_update,
    k_sub_get,
    k_sub_get_locked,
    k_sub_of_clock_locked,
    k_clock_open_invoices,
    k_invoice_get_locked,
    k_clock_get_locked,
    k_sub_list,
    k_sub_of_clock,
    k_invoice_insert,
    k_invoice_get,
    k_invoice_list,
    k_invoice_open_of_sub,
    k_invoice_retry_of_clock,
    k_invoice_due_of_clock,
    k_invoice_finalize,
    k_invoice_payment,
    k_invoice_retry_now,
    k_line_insert,
    k_line_list,
    k_line_list_of_page,
    k_attempt_insert,
    k_attempt_get,
    k_attempt_list,
    k_attempt_last,
    k_attempt_complete,
    k_attempt_pending_of_clock,
    k_attempt_unknown,
    k_credit_insert,
    k_credit_list,
    k_credit_sum,
    k_refund_sum,
    k_credit_reference,
    k_clock_insert,
    k_clock_get,
    k_clock_list,
    k_clock_set,
    k_clock_delete,
    k_clock_in_use,
    k_usage_open,
    k_usage_insert,
    k_usage_update,
    k_invoice_previous_start,
    k_usage_open_locked,
    k_usage_get,
    k_usage_get_locked,
    k_usage_settle,
    k_mrr_last,
    k_mrr_insert,
};

}  // namespace

Billing::Billing(storage::Database& control, tenancy::TenantData& data, audit::AuditLog& audit, const Clock& clock,
                 PaymentGateway& gateway, Settings settings, std::function<void()> events_committed)
    : impl_(new Impl{
          control, data, audit, clock, gateway, std::move(settings), std::move(events_committed), {}, {}, {}, {}, {}}) {
}

Billing::~Billing() = default;

void Billing::on_plan_changed(std::function<void(const std::string& tenant_id)> changed) {
  impl_->plan_changed = std::move(changed);
}

Result<PlanInForce> Billing::plan_in_force(const tenancy::Tenant& tenant) {
  std::optional<PlanInForce> out;
  auto r = impl_->tenant(tenant.id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto in_force = plan_in_force(tx, tenant.plan);
                           if (!in_force) return std::unexpected(in_force.error());
                           out = std::move(*in_force);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return std::move(*out);
}

void Billing::set_usage_meter(UsageMeter meter, std::chrono::seconds grace) {
  impl_->usage_meter = std::move(meter);
  impl_->usage_grace = grace;
}

Result<PlanInForce> Billing::plan_in_force(TenantTransaction& tx, const std::string& fallback_plan) {
  return impl_->plan_in_force(tx, fallback_plan);
}

std::vector<tenancy::TenantStatement> Billing::tenant_statements() {
  return {k_tenant_statements.begin(), k_tenant_statements.end()};
}

namespace {

constexpr std::array k_purge_statements{
    TenantStatement{"billing_purge_usage_billings", "DELETE FROM usage_billings WHERE tenant_id = $1"},
    TenantStatement{"billing_purge_quota_notices", "DELETE FROM quota_notices WHERE tenant_id = $1"},
    TenantStatement{"billing_purge_quota_overrides", "DELETE FROM quota_overrides WHERE tenant_id = $1"},
    TenantStatement{"billing_purge_subscriptions", "DELETE FROM subscriptions WHERE tenant_id = $1"},
    TenantStatement{"billing_purge_test_clocks", "DELETE FROM test_clocks WHERE tenant_id = $1"},
    TenantStatement{"billing_purge_account", "DELETE FROM billing_accounts WHERE tenant_id = $1"},
};
// After billing.retain_invoices_years: the bookkeeping records themselves (the MRR ledger among them: a purged
// tenant's past revenue stays in the SaaS metrics until then).
constexpr std::array k_retention_statements{
    TenantStatement{"billing_retention_mrr", "DELETE FROM subscription_mrr WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_credit_notes", "DELETE FROM credit_notes WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_attempts", "DELETE FROM payment_attempts WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_lines", "DELETE FROM invoice_lines WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_invoices", "DELETE FROM invoices WHERE tenant_id = $1"},
};
constexpr Statement k_purged_before{
    "billing_purged_before", "SELECT id FROM tenants WHERE purged_at IS NOT NULL AND purged_at < $1 ORDER BY id"};

}  // namespace

std::vector<tenancy::SealedColumn> Billing::sealed_columns() {
  std::vector<tenancy::SealedColumn> out(k_account_sealed_statements.begin(), k_account_sealed_statements.end());
  out.push_back(
      {.field = k_invoice_customer,
       .select = {"billing_invoice_customer_select", "SELECT id, customer FROM invoices WHERE tenant_id = $1"},
       .update = {"billing_invoice_customer_update",
                  "UPDATE invoices SET customer = $3 WHERE tenant_id = $1 AND id = $2 AND customer = $4"},
       .control_plane = true});
  return out;
}

std::vector<tenancy::TenantStatement> Billing::purge_statements() {
  return {k_purge_statements.begin(), k_purge_statements.end()};
}

Result<std::int64_t> Billing::apply_retention(std::chrono::system_clock::time_point cutoff) {
  Impl& s = *impl_;
  std::vector<std::string> purged;
  auto listed = s.catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_purged_before, {Value(format_rfc3339(cutoff))});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) purged.push_back(rows->text_at(i, 0).value_or(""));
        return {};
      },
      {.read_only = true});
  if (!listed) return std::unexpected(listed.error());
  std::int64_t invoices = 0;
  for (const auto& id : purged) {
    std::int64_t deleted = 0;  // set by the body's last run (a retried transaction runs it again)
    auto r = s.tenant(id, [&](TenantTransaction& tx) -> Result<void> {
      for (const auto& statement : k_retention_statements) {
        auto d = tx.execute(statement);
        if (!d) return std::unexpected(d.error());
        deleted = d->affected_rows;  // the last statement: invoices
      }
      return {};
    });
    if (!r) return std::unexpected(r.error());
    invoices += deleted;
  }
  return invoices;
}

}  // namespace atrium::billing
