#pragma once

// The SQL of billing's invoicing: invoices and their lines, the numbering counters, credit notes and refunds, and the
// usage billed per metered period. Constant text with bind parameters; a TenantStatement binds the tenant as $1.

#include "billing/subscriptions/sql.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

using storage::Statement;
using tenancy::TenantStatement;

constexpr Statement k_next_number{"billing_next_number",
                                  "INSERT INTO billing_counters (name, value) VALUES ($1, 1) ON CONFLICT (name) DO "
                                  "UPDATE SET value = billing_counters.value + 1 RETURNING value"};

#define INVOICE_COLS                                                                                                \
  "tenant_id, id, number, subscription_id, cycle_key, status, billing_reason, currency, period_start, period_end, " \
  "subtotal, discount, discount_label, tax, tax_inclusive, tax_label, total, credit_applied, credit_created, "      \
  "amount_due, amount_paid, amount_remaining, attempt_count, next_payment_attempt, customer, memo, test_clock_id, " \
  "created_at, finalized_at, paid_at, voided_at, updated_at, due_at, dunning_grace_hours"
constexpr TenantStatement k_invoice_insert{
    "billing_invoice_insert",
    "INSERT INTO invoices (" INVOICE_COLS
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, "
    "$23, $24, $25, $26, $27, $28, $29, $30, $31, $28, $32, 0)"};
constexpr TenantStatement k_invoice_get{"billing_invoice_get",
                                        "SELECT " INVOICE_COLS " FROM invoices WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_invoice_get_locked{
    "billing_invoice_get_locked", "SELECT " INVOICE_COLS " FROM invoices WHERE tenant_id = $1 AND id = $2 FOR UPDATE"};
constexpr TenantStatement k_invoice_list{"billing_invoice_list",
                                         "SELECT " INVOICE_COLS
                                         " FROM invoices WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY "
                                         "created_at DESC, id DESC LIMIT 500"};
constexpr TenantStatement k_invoice_open_of_sub{"billing_invoice_open_of_sub",
                                                "SELECT " INVOICE_COLS
                                                " FROM invoices WHERE tenant_id = $1 AND subscription_id = $2 AND "
                                                "status = 'open' ORDER BY created_at, id"};
// Where a subscription's previous period started: the earliest start among its invoices for the period that ended
// where the current one starts (its creation or renewal invoice; a proration invoice starts later). None after a
// trial, which is not invoiced.
constexpr TenantStatement k_invoice_previous_start{"billing_invoice_previous_start",
                                                   "SELECT MIN(period_start) FROM invoices WHERE tenant_id = $1 AND "
                                                   "subscription_id = $2 AND period_end = $3 AND period_start < $3"};
constexpr TenantStatement k_invoice_retry_of_clock{
    "billing_invoice_retry_of_clock",
    "SELECT MIN(next_payment_attempt) FROM invoices WHERE tenant_id = $1 AND test_clock_id = $2 AND status = 'open' "
    "AND next_payment_attempt IS NOT NULL"};
constexpr TenantStatement k_invoice_due_of_clock{
    "billing_invoice_due_of_clock",
    "SELECT id FROM invoices WHERE tenant_id = $1 AND test_clock_id = $2 AND status = 'open' AND "
    "next_payment_attempt IS NOT NULL AND next_payment_attempt <= $3 ORDER BY next_payment_attempt, id"};
constexpr Statement k_invoice_due{"billing_invoice_due",
                                  "SELECT tenant_id, id FROM invoices s WHERE status = 'open' AND next_payment_attempt "
                                  "IS NOT NULL AND test_clock_id IS NULL AND next_payment_attempt <= $1" ACTIVE_TENANT
                                  " ORDER BY next_payment_attempt, id LIMIT $2"};
constexpr TenantStatement k_invoice_finalize{
    "billing_invoice_finalize",
    "UPDATE invoices SET number = $3, status = $4, subtotal = $5, discount = $6, discount_label = $7, tax = $8, "
    "tax_inclusive = $9, tax_label = $10, total = $11, credit_applied = $12, credit_created = $13, amount_due = $14, "
    "amount_paid = $15, amount_remaining = $16, customer = $17, finalized_at = $18, paid_at = $19, updated_at = $18, "
    "due_at = $20 "
    "WHERE tenant_id = $1 AND id = $2 AND status = 'draft'"};
constexpr TenantStatement k_invoice_payment{
    "billing_invoice_payment",
    "UPDATE invoices SET status = $3, amount_paid = $4, amount_remaining = $5, attempt_count = $6, "
    "next_payment_attempt = $7, paid_at = $8, voided_at = $9, updated_at = $10 WHERE tenant_id = $1 AND id = $2"};
// The tenant's open subscription invoices with a retry or a final action ahead (in dunning).
constexpr TenantStatement k_invoice_in_dunning{
    "billing_invoice_in_dunning",
    "SELECT id FROM invoices WHERE tenant_id = $1 AND status = 'open' AND subscription_id IS NOT NULL AND "
    "next_payment_attempt IS NOT NULL AND attempt_count > 0 ORDER BY created_at, id"};
constexpr TenantStatement k_invoice_dunning_grace{
    "billing_invoice_dunning_grace",
    "UPDATE invoices SET dunning_grace_hours = $3, next_payment_attempt = $4, updated_at = $5 WHERE tenant_id = $1 "
    "AND id = $2"};
constexpr TenantStatement k_invoice_retry_now{
    "billing_invoice_retry_now",
    "UPDATE invoices SET next_payment_attempt = $2 WHERE tenant_id = $1 AND status = 'open' AND amount_remaining > 0 "
    "AND subscription_id IS NOT NULL"};

#define LINE_COLS \
  "invoice_id, line_no, kind, description, quantity, unit_amount, amount, period_start, period_end, proration"
constexpr TenantStatement k_line_insert{"billing_line_insert",
                                        "INSERT INTO invoice_lines (tenant_id, " LINE_COLS
                                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"};
constexpr TenantStatement k_line_list{"billing_line_list",
                                      "SELECT " LINE_COLS
                                      " FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY line_no"};
// The lines of the invoices k_invoice_list answers (same filter and limit), in one statement.
constexpr TenantStatement k_line_list_of_page{
    "billing_line_list_of_page",
    "SELECT " LINE_COLS
    " FROM invoice_lines JOIN (SELECT id FROM invoices WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY "
    "created_at DESC, id DESC LIMIT 500) page ON page.id = invoice_lines.invoice_id WHERE invoice_lines.tenant_id = "
    "$1 ORDER BY invoice_id, line_no"};

#define CREDIT_COLS "tenant_id, id, number, invoice_id, amount, method, reason, memo, reference, created_at"
constexpr TenantStatement k_credit_insert{"billing_credit_insert",
                                          "INSERT INTO credit_notes (" CREDIT_COLS
                                          ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"};
constexpr TenantStatement k_credit_list{
    "billing_credit_list", "SELECT " CREDIT_COLS " FROM credit_notes WHERE tenant_id = $1 ORDER BY created_at, id"};
constexpr TenantStatement k_credit_reference{"billing_credit_reference",
                                             "UPDATE credit_notes SET reference = $3 WHERE tenant_id = $1 AND id = $2"};
// Refunds the provider has not confirmed yet (the billing run sends them again), with the charge they refund.
constexpr Statement k_refund_pending{
    "billing_refund_pending",
    "SELECT c.tenant_id, c.id, c.amount, i.currency, (SELECT a.reference FROM payment_attempts a WHERE a.tenant_id = "
    "c.tenant_id AND a.invoice_id = c.invoice_id AND a.status = 'succeeded' ORDER BY a.attempt DESC LIMIT 1) FROM "
    "credit_notes c JOIN invoices i ON i.tenant_id = c.tenant_id AND i.id = c.invoice_id WHERE c.method = 'refund' "
    "AND c.reference = '' ORDER BY c.created_at LIMIT 1000"};
constexpr TenantStatement k_refund_sum{"billing_refund_sum",
                                       "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_notes WHERE "
                                       "tenant_id = $1 AND invoice_id = $2 AND method = 'refund'"};
constexpr TenantStatement k_credit_sum{
    "billing_credit_sum",
    "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_notes WHERE tenant_id = $1 AND "
    "invoice_id = $2"};

// Metered usage per subscription, metric and period. A renewal reads the rows still open or measured since they
// were last billed.
#define USAGE_COLS                                                                                                    \
  "metric, period_start, period_end, quantity, included, price, amount, billed_quantity, billed_amount, open_until, " \
  "invoice_id, settled"
constexpr TenantStatement k_usage_open{"billing_usage_open",
                                       "SELECT " USAGE_COLS
                                       " FROM usage_billings WHERE tenant_id = $1 AND subscription_id = $2 AND (NOT "
                                       "settled OR amount <> billed_amount) ORDER BY period_start, metric"};
constexpr TenantStatement k_usage_open_locked{"billing_usage_open_locked",
                                              "SELECT " USAGE_COLS
                                              " FROM usage_billings WHERE tenant_id = $1 AND subscription_id = $2 AND "
                                              "(NOT settled OR amount <> billed_amount) ORDER BY period_start, metric "
                                              "FOR UPDATE"};
constexpr TenantStatement k_usage_insert{
    "billing_usage_insert", "INSERT INTO usage_billings (tenant_id, subscription_id, " USAGE_COLS
                            ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"};
constexpr TenantStatement k_usage_update{
    "billing_usage_update",
    "UPDATE usage_billings SET quantity = $5, amount = $6, billed_quantity = $7, billed_amount = $8, settled = $9, "
    "invoice_id = $10, updated_at = $11 WHERE tenant_id = $1 AND subscription_id = $2 AND metric = $3 AND "
    "period_start = $4"};
// The billing run: periods whose grace ended, measured a last time while their raw events are kept (platform
// scope; test clocks settle theirs at their renewals).
constexpr Statement k_usage_due{"billing_usage_due",
                                "SELECT u.tenant_id, u.subscription_id, u.metric, u.period_start FROM usage_billings u "
                                "WHERE NOT u.settled AND u.open_until <= $1 AND EXISTS (SELECT 1 FROM subscriptions s "
                                "WHERE s.tenant_id = u.tenant_id AND s.id = u.subscription_id AND s.test_clock_id IS "
                                "NULL) ORDER BY u.open_until, u.tenant_id, u.subscription_id, u.metric LIMIT $2"};
// One due row, locked (PostgreSQL: a renewal reading it waits, and one that holds it makes this skip it), and the
// final measure, which leaves what was billed to the renewals.
constexpr TenantStatement k_usage_get{"billing_usage_get",
                                      "SELECT " USAGE_COLS
                                      " FROM usage_billings WHERE tenant_id = $1 AND subscription_id = $2 AND metric = "
                                      "$3 AND period_start = $4 AND NOT settled"};
constexpr TenantStatement k_usage_get_locked{
    "billing_usage_get_locked", "SELECT " USAGE_COLS
                                " FROM usage_billings WHERE tenant_id = $1 AND subscription_id = $2 AND "
                                "metric = $3 AND period_start = $4 AND NOT settled FOR UPDATE SKIP LOCKED"};
constexpr TenantStatement k_usage_settle{
    "billing_usage_settle",
    "UPDATE usage_billings SET quantity = $5, amount = $6, settled = TRUE, updated_at = $7 WHERE tenant_id = $1 AND "
    "subscription_id = $2 AND metric = $3 AND period_start = $4 AND NOT settled"};

}  // namespace atrium::billing
