#include "app/archive_tables.hpp"

namespace atrium::app {

namespace {

// Parents before children, as an import writes them (memberships name their users, restored before any table).
constexpr ControlTable k_tables[] = {
    {"memberships",
     {"archive_memberships_select",
      "SELECT user_id, role, created_at FROM memberships WHERE tenant_id = $1 ORDER BY user_id"},
     {"archive_memberships_insert",
      "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)"},
     {"archive_memberships_clear", "DELETE FROM memberships WHERE tenant_id = $1"},
     1},
    {"api_keys",
     {"archive_api_keys_select",
      "SELECT id, name, prefix, secret_hash, permissions, created_at, last_used_at, revoked_at FROM "
      "api_keys WHERE tenant_id = $1 ORDER BY id"},
     {"archive_api_keys_insert",
      "INSERT INTO api_keys (tenant_id, id, name, prefix, secret_hash, permissions, created_at, "
      "last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
     {"archive_api_keys_clear", "DELETE FROM api_keys WHERE tenant_id = $1"},
     1},
    {"invitations",
     {"archive_invitations_select",
      "SELECT id, email, role, token_hash, invited_by, created_at, expires_at, email_index FROM "
      "invitations WHERE tenant_id = $1 ORDER BY id"},
     {"archive_invitations_insert",
      "INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, created_at, "
      "expires_at, email_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
     {"archive_invitations_clear", "DELETE FROM invitations WHERE tenant_id = $1"},
     1},
    {"custom_domains",
     {"archive_custom_domains_select",
      "SELECT id, hostname, status, verification_token, verified_at, certificate_pem, "
      "private_key_sealed, certificate_not_after, certificate_subject, certificate_fingerprint, "
      "created_at, updated_at FROM custom_domains WHERE tenant_id = $1 ORDER BY id"},
     {"archive_custom_domains_insert",
      "INSERT INTO custom_domains (tenant_id, id, hostname, status, verification_token, verified_at, "
      "certificate_pem, private_key_sealed, certificate_not_after, certificate_subject, "
      "certificate_fingerprint, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
      "$10, $11, $12, $13)"},
     {"archive_custom_domains_clear", "DELETE FROM custom_domains WHERE tenant_id = $1"},
     1},
    {"billing_accounts",
     {"archive_billing_accounts_select",
      "SELECT legal_name, email, address, country, region, currency, tax_ids, payment_method, "
      "credit_balance, proration, test_mode, created_at, updated_at FROM billing_accounts WHERE "
      "tenant_id = $1"},
     {"archive_billing_accounts_insert",
      "INSERT INTO billing_accounts (tenant_id, legal_name, email, address, country, region, currency, "
      "tax_ids, payment_method, credit_balance, proration, test_mode, created_at, updated_at) VALUES "
      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"},
     {"archive_billing_accounts_clear", "DELETE FROM billing_accounts WHERE tenant_id = $1"},
     0},
    {"test_clocks",
     {"archive_test_clocks_select",
      "SELECT id, name, frozen_time, created_at FROM test_clocks WHERE tenant_id = $1 ORDER BY id"},
     {"archive_test_clocks_insert",
      "INSERT INTO test_clocks (tenant_id, id, name, frozen_time, created_at) VALUES ($1, $2, $3, $4, "
      "$5)"},
     {"archive_test_clocks_clear", "DELETE FROM test_clocks WHERE tenant_id = $1"},
     1},
    {"subscriptions",
     {"archive_subscriptions_select",
      "SELECT id, plan_id, plan_version, status, seats, anchor, cycle, current_period_start, "
      "current_period_end, trial_end, cancel_at_period_end, cancelled_at, paused_at, coupon_id, "
      "coupon_start, coupon_uses, test_clock_id, created_at, updated_at, period_discounted FROM "
      "subscriptions WHERE tenant_id = $1 ORDER BY id"},
     {"archive_subscriptions_insert",
      "INSERT INTO subscriptions (tenant_id, id, plan_id, plan_version, status, seats, anchor, cycle, "
      "current_period_start, current_period_end, trial_end, cancel_at_period_end, cancelled_at, "
      "paused_at, coupon_id, coupon_start, coupon_uses, test_clock_id, created_at, updated_at, "
      "period_discounted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
      "$16, $17, $18, $19, $20, $21)"},
     {"archive_subscriptions_clear", "DELETE FROM subscriptions WHERE tenant_id = $1"},
     1},
    {"subscription_mrr",
     {"archive_subscription_mrr_select",
      "SELECT subscription_id, seq, effective_at, status, plan_id, plan_version, seats, currency, mrr, "
      "recorded_at FROM subscription_mrr WHERE tenant_id = $1 ORDER BY subscription_id, seq"},
     {"archive_subscription_mrr_insert",
      "INSERT INTO subscription_mrr (tenant_id, subscription_id, seq, effective_at, status, plan_id, "
      "plan_version, seats, currency, mrr, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
      "$10, $11)"},
     {"archive_subscription_mrr_clear", "DELETE FROM subscription_mrr WHERE tenant_id = $1"},
     2},
    {"invoices",
     {"archive_invoices_select",
      "SELECT id, number, subscription_id, cycle_key, status, billing_reason, currency, period_start, "
      "period_end, subtotal, discount, discount_label, tax, tax_inclusive, tax_label, total, "
      "credit_applied, credit_created, amount_due, amount_paid, amount_remaining, attempt_count, "
      "next_payment_attempt, customer, memo, test_clock_id, created_at, finalized_at, paid_at, "
      "voided_at, updated_at, due_at, dunning_grace_hours FROM invoices WHERE tenant_id = $1 ORDER BY "
      "id"},
     {"archive_invoices_insert",
      "INSERT INTO invoices (tenant_id, id, number, subscription_id, cycle_key, status, "
      "billing_reason, currency, period_start, period_end, subtotal, discount, discount_label, tax, "
      "tax_inclusive, tax_label, total, credit_applied, credit_created, amount_due, amount_paid, "
      "amount_remaining, attempt_count, next_payment_attempt, customer, memo, test_clock_id, "
      "created_at, finalized_at, paid_at, voided_at, updated_at, due_at, dunning_grace_hours) VALUES "
      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, "
      "$21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)"},
     {"archive_invoices_clear", "DELETE FROM invoices WHERE tenant_id = $1"},
     1},
    {"invoice_lines",
     {"archive_invoice_lines_select",
      "SELECT invoice_id, line_no, kind, description, quantity, unit_amount, amount, period_start, "
      "period_end, proration FROM invoice_lines WHERE tenant_id = $1 ORDER BY invoice_id, line_no"},
     {"archive_invoice_lines_insert",
      "INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, kind, description, quantity, "
      "unit_amount, amount, period_start, period_end, proration) VALUES ($1, $2, $3, $4, $5, $6, $7, "
      "$8, $9, $10, $11)"},
     {"archive_invoice_lines_clear", "DELETE FROM invoice_lines WHERE tenant_id = $1"},
     2},
    {"credit_notes",
     {"archive_credit_notes_select",
      "SELECT id, number, invoice_id, amount, method, reason, memo, reference, created_at FROM "
      "credit_notes WHERE tenant_id = $1 ORDER BY id"},
     {"archive_credit_notes_insert",
      "INSERT INTO credit_notes (tenant_id, id, number, invoice_id, amount, method, reason, memo, "
      "reference, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
     {"archive_credit_notes_clear", "DELETE FROM credit_notes WHERE tenant_id = $1"},
     1},
    {"payment_attempts",
     {"archive_payment_attempts_select",
      "SELECT id, invoice_id, attempt, idempotency_key, amount, currency, payment_method, status, "
      "failure_code, decline, message, reference, created_at, completed_at FROM payment_attempts WHERE "
      "tenant_id = $1 ORDER BY id"},
     {"archive_payment_attempts_insert",
      "INSERT INTO payment_attempts (tenant_id, id, invoice_id, attempt, idempotency_key, amount, "
      "currency, payment_method, status, failure_code, decline, message, reference, created_at, "
      "completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"},
     {"archive_payment_attempts_clear", "DELETE FROM payment_attempts WHERE tenant_id = $1"},
     1},
    {"usage_billings",
     {"archive_usage_billings_select",
      "SELECT subscription_id, metric, period_start, period_end, quantity, included, price, amount, "
      "billed_quantity, billed_amount, open_until, invoice_id, settled, updated_at FROM usage_billings "
      "WHERE tenant_id = $1 ORDER BY subscription_id, metric, period_start"},
     {"archive_usage_billings_insert",
      "INSERT INTO usage_billings (tenant_id, subscription_id, metric, period_start, period_end, "
      "quantity, included, price, amount, billed_quantity, billed_amount, open_until, invoice_id, "
      "settled, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"},
     {"archive_usage_billings_clear", "DELETE FROM usage_billings WHERE tenant_id = $1"},
     3},
    {"quota_overrides",
     {"archive_quota_overrides_select",
      "SELECT name, metric, limit_value, enforcement, updated_at FROM quota_overrides WHERE tenant_id "
      "= $1 ORDER BY name"},
     {"archive_quota_overrides_insert",
      "INSERT INTO quota_overrides (tenant_id, name, metric, limit_value, enforcement, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6)"},
     {"archive_quota_overrides_clear", "DELETE FROM quota_overrides WHERE tenant_id = $1"},
     1},
    {"quota_notices",
     {"archive_quota_notices_select",
      "SELECT name, period_start, threshold, used, limit_value, created_at FROM quota_notices WHERE "
      "tenant_id = $1 ORDER BY name, period_start, threshold"},
     {"archive_quota_notices_insert",
      "INSERT INTO quota_notices (tenant_id, name, period_start, threshold, used, limit_value, "
      "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"},
     {"archive_quota_notices_clear", "DELETE FROM quota_notices WHERE tenant_id = $1"},
     3},
    {"usage_events",
     {"archive_usage_events_select",
      "SELECT idempotency_key, metric, quantity, ts, properties, received_at, user_id FROM "
      "usage_events WHERE tenant_id = $1 ORDER BY idempotency_key"},
     {"archive_usage_events_insert",
      "INSERT INTO usage_events (tenant_id, idempotency_key, metric, quantity, ts, properties, "
      "received_at, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
     {"archive_usage_events_clear", "DELETE FROM usage_events WHERE tenant_id = $1"},
     1},
    {"usage_rollups",
     {"archive_usage_rollups_select",
      "SELECT metric, hour, event_count, quantity_sum, quantity_max, latest_ts, latest_value FROM "
      "usage_rollups WHERE tenant_id = $1 ORDER BY metric, hour"},
     {"archive_usage_rollups_insert",
      "INSERT INTO usage_rollups (tenant_id, metric, hour, event_count, quantity_sum, quantity_max, "
      "latest_ts, latest_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
     {"archive_usage_rollups_clear", "DELETE FROM usage_rollups WHERE tenant_id = $1"},
     2},
    {"churn_scores",
     {"archive_churn_scores_select",
      "SELECT day, model_version, probability, risk_level, confidence, factors, features, plan_tier, "
      "scored_at FROM churn_scores WHERE tenant_id = $1 ORDER BY day"},
     {"archive_churn_scores_insert",
      "INSERT INTO churn_scores (tenant_id, day, model_version, probability, risk_level, confidence, "
      "factors, features, plan_tier, scored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
     {"archive_churn_scores_clear", "DELETE FROM churn_scores WHERE tenant_id = $1"},
     1},
    {"churn_interventions",
     {"archive_churn_interventions_select",
      "SELECT id, kind, parameters, result, probability, risk_level, model_version, created_by, "
      "created_at, outcome, outcome_note, outcome_at FROM churn_interventions WHERE tenant_id = $1 "
      "ORDER BY id"},
     {"archive_churn_interventions_insert",
      "INSERT INTO churn_interventions (tenant_id, id, kind, parameters, result, probability, "
      "risk_level, model_version, created_by, created_at, outcome, outcome_note, outcome_at) VALUES "
      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"},
     {"archive_churn_interventions_clear", "DELETE FROM churn_interventions WHERE tenant_id = $1"},
     1},
};

}  // namespace

std::span<const ControlTable> control_tables() { return k_tables; }

std::vector<tenancy::TenantStatement> control_table_statements() {
  std::vector<tenancy::TenantStatement> out;
  for (const auto& t : k_tables) {
    out.push_back(t.select);
    out.push_back(t.insert);
    out.push_back(t.clear);
  }
  return out;
}

}  // namespace atrium::app
