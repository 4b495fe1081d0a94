#include "billing/billing.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>

#include "billing/money.hpp"
#include "core/email_address.hpp"
#include "core/failpoint.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "events/outbox.hpp"

namespace atrium::billing {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr std::int64_t k_hour = 3600;
constexpr int k_max_advance_steps = 20'000;
constexpr std::int64_t k_latest_clock_time = 7'258'118'400;  // 2200-01-01: periods stay far from time_point limits

// ---- statements -------------------------------------------------------------------------------------------------

constexpr Statement k_next_number{"billing_next_number",
                                  "INSERT INTO billing_counters (name, value) VALUES ($1, 1) ON CONFLICT (name) DO "
                                  "UPDATE SET value = billing_counters.value + 1 RETURNING value"};

#define PLAN_COLS                                                                                                   \
  "p.id, p.code, p.name, p.tier, p.active, p.created_at, p.updated_at, v.version, v.currency, v.billing_interval, " \
  "v.base_price, v.included_seats, v.seat_price, v.trial_days, v.features, v.limits, v.metered_prices, v.dunning, " \
  "v.created_at, v.quotas"
constexpr Statement k_plan_get{"billing_plan_get",
                               "SELECT " PLAN_COLS
                               " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                               "COALESCE($2, p.current_version) WHERE p.id = $1 OR p.code = $1"};
constexpr Statement k_plan_get_locked{"billing_plan_get_locked",
                                      "SELECT " PLAN_COLS
                                      " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                                      "p.current_version WHERE p.id = $1 OR p.code = $1 FOR UPDATE OF p"};
constexpr Statement k_plan_list{"billing_plan_list",
                                "SELECT " PLAN_COLS
                                " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                                "p.current_version WHERE p.active OR $1 ORDER BY p.created_at, p.id"};
constexpr Statement k_plan_all_versions{"billing_plan_all_versions",
                                        "SELECT " PLAN_COLS " FROM plans p JOIN plan_versions v ON v.plan_id = p.id"};
constexpr Statement k_plan_insert{"billing_plan_insert",
                                  "INSERT INTO plans (id, code, name, tier, active, current_version, created_at, "
                                  "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"};
constexpr Statement k_plan_update{"billing_plan_update",
                                  "UPDATE plans SET name = $2, tier = $3, active = $4, current_version = $5, "
                                  "updated_at = $6 WHERE id = $1"};
constexpr Statement k_plan_version_insert{
    "billing_plan_version_insert",
    "INSERT INTO plan_versions (plan_id, version, currency, billing_interval, base_price, included_seats, "
    "seat_price, trial_days, features, limits, metered_prices, dunning, created_at, quotas) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"};

#define COUPON_COLS                                                                                     \
  "id, code, name, percent_off_bps, amount_off, currency, duration, duration_months, max_redemptions, " \
  "times_redeemed, redeem_by, active, created_at"
constexpr Statement k_coupon_insert{"billing_coupon_insert",
                                    "INSERT INTO coupons (" COUPON_COLS
                                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12)"};
constexpr Statement k_coupon_get{"billing_coupon_get",
                                 "SELECT " COUPON_COLS " FROM coupons WHERE id = $1 OR code = $1"};
constexpr Statement k_coupon_list{"billing_coupon_list", "SELECT " COUPON_COLS " FROM coupons ORDER BY created_at, id"};
constexpr Statement k_coupon_redeem{"billing_coupon_redeem",
                                    "UPDATE coupons SET times_redeemed = times_redeemed + 1 WHERE id = $1 AND active "
                                    "AND (max_redemptions IS NULL OR times_redeemed < max_redemptions)"};
constexpr Statement k_coupon_deactivate{"billing_coupon_deactivate", "UPDATE coupons SET active = $2 WHERE id = $1"};

#define TAX_COLS "id, country, region, name, bps, inclusive, created_at"
constexpr Statement k_tax_upsert{"billing_tax_upsert",
                                 "INSERT INTO tax_rates (" TAX_COLS
                                 ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (country, region) DO UPDATE SET "
                                 "name = excluded.name, bps = excluded.bps, inclusive = excluded.inclusive"};
constexpr Statement k_tax_get{"billing_tax_get",
                              "SELECT " TAX_COLS " FROM tax_rates WHERE country = $1 AND region = $2"};
constexpr Statement k_tax_list{"billing_tax_list", "SELECT " TAX_COLS " FROM tax_rates ORDER BY country, region"};

#define ACCOUNT_COLS                                                                                            \
  "tenant_id, legal_name, email, address, country, region, currency, tax_ids, payment_method, credit_balance, " \
  "proration, test_mode, created_at, updated_at"
constexpr TenantStatement k_account_get{"billing_account_get",
                                        "SELECT " ACCOUNT_COLS " FROM billing_accounts WHERE tenant_id = $1"};
constexpr TenantStatement k_account_get_locked{
    "billing_account_get_locked", "SELECT " ACCOUNT_COLS " FROM billing_accounts WHERE tenant_id = $1 FOR UPDATE"};
constexpr TenantStatement k_account_insert{"billing_account_insert",
                                           "INSERT INTO billing_accounts (" ACCOUNT_COLS
                                           ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)"};
constexpr TenantStatement k_account_update{
    "billing_account_update",
    "UPDATE billing_accounts SET legal_name = $2, email = $3, address = $4, country = $5, region = $6, currency = $7, "
    "tax_ids = $8, payment_method = $9, proration = $10, test_mode = $11, updated_at = $12 WHERE tenant_id = $1"};
// The balance changes by a delta (never written as an absolute value read earlier, which a concurrent change would
// lose).
constexpr TenantStatement k_account_balance{
    "billing_account_balance",
    "UPDATE billing_accounts SET credit_balance = credit_balance + $2 WHERE tenant_id = $1 RETURNING credit_balance"};

#define SUB_COLS                                                                                                    \
  "tenant_id, id, plan_id, plan_version, status, seats, anchor, cycle, current_period_start, current_period_end, "  \
  "trial_end, cancel_at_period_end, cancelled_at, paused_at, coupon_id, coupon_start, coupon_uses, test_clock_id, " \
  "created_at, updated_at, period_discounted"
constexpr TenantStatement k_sub_insert{"billing_sub_insert",
                                       "INSERT INTO subscriptions (" SUB_COLS
                                       ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                                       "$16, $17, $18, $19, $19, $20)"};
constexpr TenantStatement k_sub_update{
    "billing_sub_update",
    "UPDATE subscriptions SET plan_id = $3, plan_version = $4, status = $5, seats = $6, anchor = $7, cycle = $8, "
    "current_period_start = $9, current_period_end = $10, trial_end = $11, cancel_at_period_end = $12, "
    "cancelled_at = $13, paused_at = $14, coupon_id = $15, coupon_start = $16, coupon_uses = $17, updated_at = $18, "
    "period_discounted = $19 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_sub_get{"billing_sub_get",
                                    "SELECT " SUB_COLS " FROM subscriptions WHERE tenant_id = $1 AND id = $2"};
// Write paths read the rows they change with a row lock on PostgreSQL, so a request and the billing run (or two
// runs) changing one subscription or invoice serialize instead of overwriting each other. SQLite runs one writer.
constexpr TenantStatement k_sub_get_locked{
    "billing_sub_get_locked", "SELECT " SUB_COLS " FROM subscriptions WHERE tenant_id = $1 AND id = $2 FOR UPDATE"};
constexpr TenantStatement k_sub_list{
    "billing_sub_list", "SELECT " SUB_COLS " FROM subscriptions WHERE tenant_id = $1 ORDER BY created_at, id"};
constexpr TenantStatement k_sub_of_clock{"billing_sub_of_clock",
                                         "SELECT " SUB_COLS
                                         " FROM subscriptions WHERE tenant_id = $1 AND test_clock_id = $2 ORDER BY id"};
// The billing run's batch, across tenants (platform scope).
constexpr TenantStatement k_sub_of_clock_locked{"billing_sub_of_clock_locked",
                                                "SELECT " SUB_COLS
                                                " FROM subscriptions WHERE tenant_id = $1 AND test_clock_id = $2 ORDER "
                                                "BY id FOR UPDATE"};
// Suspended and deleted tenants are not renewed, retried or counted. (EXISTS, not IN: with IN, SQLite drives the
// query from the tenant and sorts every due row for each batch instead of reading subscriptions_due in order.)
#define ACTIVE_TENANT " AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = s.tenant_id AND t.status = 'active')"
constexpr Statement k_sub_due{"billing_sub_due",
                              "SELECT " SUB_COLS
                              " FROM subscriptions s WHERE status IN ('trial', 'active', 'past_due') AND test_clock_id "
                              "IS NULL AND current_period_end <= $1" ACTIVE_TENANT
                              " ORDER BY current_period_end, tenant_id, id LIMIT $2"};
constexpr Statement k_sub_due_locked{
    "billing_sub_due_locked", "SELECT " SUB_COLS
                              " FROM subscriptions s WHERE status IN ('trial', 'active', 'past_due') AND "
                              "test_clock_id IS NULL AND current_period_end <= $1" ACTIVE_TENANT
                              " ORDER BY current_period_end, tenant_id, id LIMIT $2 FOR UPDATE OF s SKIP LOCKED"};
constexpr Statement k_sub_count_due{"billing_sub_count_due",
                                    "SELECT COUNT(*) FROM subscriptions s WHERE status IN ('trial', 'active', "
                                    "'past_due') AND test_clock_id IS NULL AND current_period_end <= $1" ACTIVE_TENANT};
constexpr Statement k_sub_live{
    "billing_sub_live",
    "SELECT " SUB_COLS
    " FROM subscriptions s WHERE status IN ('active', 'past_due') AND test_clock_id IS NULL" ACTIVE_TENANT};

#define INVOICE_COLS                                                                                                \
  "tenant_id, id, number, subscription_id, cycle_key, status, billing_reason, currency, period_start, period_end, " \
  "subtotal, discount, discount_label, tax, tax_inclusive, tax_label, total, credit_applied, credit_created, "      \
  "amount_due, amount_paid, amount_remaining, attempt_count, next_payment_attempt, customer, memo, test_clock_id, " \
  "created_at, finalized_at, paid_at, voided_at, updated_at"
constexpr TenantStatement k_invoice_insert{
    "billing_invoice_insert",
    "INSERT INTO invoices (" INVOICE_COLS
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, "
    "$23, $24, $25, $26, $27, $28, $29, $30, $31, $28)"};
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
    "amount_paid = $15, amount_remaining = $16, customer = $17, finalized_at = $18, paid_at = $19, updated_at = $18 "
    "WHERE tenant_id = $1 AND id = $2 AND status = 'draft'"};
constexpr TenantStatement k_invoice_payment{
    "billing_invoice_payment",
    "UPDATE invoices SET status = $3, amount_paid = $4, amount_remaining = $5, attempt_count = $6, "
    "next_payment_attempt = $7, paid_at = $8, voided_at = $9, updated_at = $10 WHERE tenant_id = $1 AND id = $2"};
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

#define ATTEMPT_COLS                                                                                            \
  "id, invoice_id, attempt, idempotency_key, amount, currency, payment_method, status, failure_code, decline, " \
  "message, reference, created_at, completed_at"
constexpr TenantStatement k_attempt_insert{"billing_attempt_insert",
                                           "INSERT INTO payment_attempts (tenant_id, " ATTEMPT_COLS
                                           ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', '', '', '', '', $9, "
                                           "NULL)"};
constexpr TenantStatement k_attempt_get{
    "billing_attempt_get", "SELECT " ATTEMPT_COLS " FROM payment_attempts WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_attempt_list{"billing_attempt_list",
                                         "SELECT " ATTEMPT_COLS
                                         " FROM payment_attempts WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY "
                                         "attempt"};
constexpr TenantStatement k_attempt_last{"billing_attempt_last",
                                         "SELECT " ATTEMPT_COLS
                                         " FROM payment_attempts WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY "
                                         "attempt DESC LIMIT 1"};
constexpr TenantStatement k_attempt_complete{
    "billing_attempt_complete",
    "UPDATE payment_attempts SET status = $3, failure_code = $4, decline = $5, message = $6, reference = $7, "
    "completed_at = $8 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'"};
constexpr TenantStatement k_attempt_unknown{
    "billing_attempt_unknown",
    "UPDATE payment_attempts SET message = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'"};
// Charges a crash left unrecorded (sent, outcome never written: message still empty), of open invoices. Attempts
// whose outcome came back unknown carry a message and are sent again by dunning, not here.
constexpr TenantStatement k_attempt_pending_of_clock{
    "billing_attempt_pending_of_clock",
    "SELECT a.id, a.idempotency_key, a.payment_method, a.amount, a.currency, a.invoice_id FROM payment_attempts a "
    "JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id WHERE a.tenant_id = $1 AND a.status = "
    "'pending' AND a.message = '' AND i.status = 'open' AND i.test_clock_id = $2"};
constexpr Statement k_attempt_pending{"billing_attempt_pending",
                                      "SELECT a.tenant_id, a.id FROM payment_attempts a JOIN invoices i ON "
                                      "i.tenant_id = a.tenant_id AND i.id = a.invoice_id WHERE a.status = 'pending' "
                                      "AND a.message = '' AND i.status = 'open' AND i.test_clock_id IS NULL ORDER BY "
                                      "a.created_at, a.id LIMIT $1"};

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

#define CLOCK_COLS "id, name, frozen_time, created_at"
constexpr TenantStatement k_clock_insert{
    "billing_clock_insert", "INSERT INTO test_clocks (tenant_id, " CLOCK_COLS ") VALUES ($1, $2, $3, $4, $5)"};
constexpr TenantStatement k_clock_get{"billing_clock_get",
                                      "SELECT " CLOCK_COLS " FROM test_clocks WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_clock_get_locked{
    "billing_clock_get_locked", "SELECT " CLOCK_COLS " FROM test_clocks WHERE tenant_id = $1 AND id = $2 FOR UPDATE"};
constexpr TenantStatement k_clock_list{
    "billing_clock_list", "SELECT " CLOCK_COLS " FROM test_clocks WHERE tenant_id = $1 ORDER BY created_at, id"};
constexpr TenantStatement k_clock_set{"billing_clock_set",
                                      "UPDATE test_clocks SET frozen_time = $3 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_clock_open_invoices{
    "billing_clock_open_invoices",
    "SELECT COUNT(*) FROM invoices WHERE tenant_id = $1 AND test_clock_id = $2 AND status IN ('draft', 'open')"};
constexpr TenantStatement k_clock_delete{"billing_clock_delete",
                                         "DELETE FROM test_clocks WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_clock_in_use{"billing_clock_in_use",
                                         "SELECT COUNT(*) FROM subscriptions WHERE tenant_id = $1 AND test_clock_id = "
                                         "$2 AND status <> 'cancelled'"};

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

constexpr std::array k_tenant_statements{
    k_account_get,          k_account_insert,
    k_account_update,       k_account_balance,
    k_account_get_locked,   k_sub_insert,
    k_sub_update,           k_sub_get,
    k_sub_get_locked,       k_sub_of_clock_locked,
    k_clock_open_invoices,  k_invoice_get_locked,
    k_clock_get_locked,     k_sub_list,
    k_sub_of_clock,         k_invoice_insert,
    k_invoice_get,          k_invoice_list,
    k_invoice_open_of_sub,  k_invoice_retry_of_clock,
    k_invoice_due_of_clock, k_invoice_finalize,
    k_invoice_payment,      k_invoice_retry_now,
    k_line_insert,          k_line_list,
    k_attempt_insert,       k_attempt_get,
    k_attempt_list,         k_attempt_last,
    k_attempt_complete,     k_attempt_pending_of_clock,
    k_attempt_unknown,      k_credit_insert,
    k_credit_list,          k_credit_sum,
    k_refund_sum,           k_credit_reference,
    k_clock_insert,         k_clock_get,
    k_clock_list,           k_clock_set,
    k_clock_delete,         k_clock_in_use,
    k_usage_open,           k_usage_insert,
    k_usage_update,         k_invoice_previous_start,
    k_usage_open_locked,    k_usage_get,
    k_usage_get_locked,     k_usage_settle,
};
// ---- values -----------------------------------------------------------------------------------------------------

Value opt(const std::optional<std::int64_t>& v) { return v ? Value(*v) : Value(); }
Value opt(const std::optional<std::string>& v) { return v ? Value(*v) : Value(); }
Value opt(const std::optional<bool>& v) { return v ? Value(*v) : Value(); }
std::optional<std::int64_t> opt_int(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  return r.int_at(row, col);
}
std::optional<std::string> opt_text(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  return r.text_at(row, col);
}
bool bool_at(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  if (auto b = r.bool_at(row, col)) return *b;
  return r.int_at(row, col).value_or(0) != 0;
}
Json parse_stored(const std::string& text, Json fallback) {
  std::string error;
  auto parsed = parse_json(text, {}, &error);
  return parsed ? std::move(*parsed) : std::move(fallback);
}
std::vector<std::string> string_list(const Json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}
Json time_json(std::optional<Instant> t) {
  if (!t) return nullptr;
  return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(*t)));
}
Instant seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Json metered_json(const std::vector<MeteredPrice>& prices) {
  Json out = Json::array();
  for (const auto& p : prices) {
    Json j{{"metric", p.metric}, {"model", std::string(price_model_name(p.model))}};
    if (p.model == PriceModel::per_unit || p.model == PriceModel::package) j["unit_amount"] = p.unit_amount;
    if (p.model == PriceModel::package) j["package_size"] = p.package_size;
    if (p.model == PriceModel::graduated || p.model == PriceModel::volume) {
      Json tiers = Json::array();
      for (const auto& t : p.tiers) {
        tiers.push_back({{"up_to", t.up_to ? Json(*t.up_to) : Json("inf")},
                         {"unit_amount", t.unit_amount},
                         {"flat_amount", t.flat_amount}});
      }
      j["tiers"] = tiers;
    }
    out.push_back(std::move(j));
  }
  return out;
}

Json dunning_json(const DunningPolicy& d) {
  return {{"retry_schedule_hours", d.retry_hours},
          {"final_action", d.final_action == FinalAction::cancel ? "cancel" : "unpaid"}};
}

// ---- input validation -------------------------------------------------------------------------------------------

Result<void> only_members(const Json& input, std::initializer_list<std::string_view> allowed) {
  if (!input.is_object()) return fail(Errc::invalid_argument, "the body must be a JSON object");
  for (auto it = input.begin(); it != input.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      return fail(Errc::invalid_argument, "unknown member '" + it.key() + "'");
    }
  }
  return {};
}

Result<std::optional<std::string>> text_member(const Json& input, const char* name, std::size_t max = 200) {
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return fail(Errc::invalid_argument, std::string(name) + " must be a string");
  auto s = it->get<std::string>();
  if (s.size() > max) return fail(Errc::invalid_argument, std::string(name) + " is longer than " + std::to_string(max));
  return s;
}

Result<std::optional<std::int64_t>> int_member(const Json& input, const char* name, std::int64_t min,
                                               std::int64_t max) {
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return fail(Errc::invalid_argument, std::string(name) + " must be an integer");
  std::int64_t v = 0;
  if (it->is_number_unsigned()) {
    if (it->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return fail(Errc::invalid_argument, std::string(name) + " is out of range");
    }
  }
  v = it->get<std::int64_t>();
  if (v < min || v > max) {
    return fail(Errc::invalid_argument,
                std::string(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return v;
}

Result<std::optional<bool>> bool_member(const Json& input, const char* name) {
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return fail(Errc::invalid_argument, std::string(name) + " must be true or false");
  return it->get<bool>();
}

Result<std::optional<Instant>> time_member(const Json& input, const char* name) {
  auto text = text_member(input, name, 64);
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::nullopt;
  auto t = parse_rfc3339(**text);
  if (!t) return fail(Errc::invalid_argument, std::string(name) + " must be an RFC 3339 date-time");
  return seconds(*t);
}

constexpr std::int64_t k_max_amount = 1'000'000'000'000'000;
// Seconds past a period's grace before the run measures it a last time: an event accepted at the end of the grace
// has committed by then.
constexpr std::int64_t k_usage_settle_margin = 300;  // 10^15 minor units: far above any real price

// A quota value: a non-negative integer or "unlimited".
Result<void> check_limit_values(const Json& obj, const char* what, std::initializer_list<std::string_view> known) {
  if (!obj.is_object()) return fail(Errc::invalid_argument, std::string(what) + " must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return fail(Errc::invalid_argument, std::string(what) + "." + it.key() + " is not a known " + what);
    }
    const Json& v = it.value();
    const bool unlimited = v.is_string() && v.get<std::string>() == "unlimited";
    const bool count = v.is_number_integer() && v.get<std::int64_t>() >= 0;
    const bool text_ok =
        v.is_string() && (it.key() == "support" || it.key() == "sla") && v.get<std::string>().size() <= 64;
    if (!unlimited && !count && !text_ok) {
      return fail(Errc::invalid_argument,
                  std::string(what) + "." + it.key() + " must be a non-negative integer or \"unlimited\"");
    }
  }
  return {};
}

Result<MeteredPrice> parse_metered(const Json& j) {
  if (!j.is_object()) return fail(Errc::invalid_argument, "metered_prices entries must be objects");
  if (auto r = only_members(j, {"metric", "model", "unit_amount", "package_size", "tiers"}); !r) {
    return std::unexpected(r.error());
  }
  MeteredPrice p;
  auto metric = text_member(j, "metric", 100);
  if (!metric) return std::unexpected(metric.error());
  if (!*metric || (*metric)->empty()) return fail(Errc::invalid_argument, "metered_prices[].metric is required");
  p.metric = **metric;
  auto model = text_member(j, "model", 20);
  if (!model) return std::unexpected(model.error());
  auto parsed = parse_price_model(model->value_or(""));
  if (!parsed)
    return fail(Errc::invalid_argument, "metered_prices[].model must be per_unit, graduated, volume or package");
  p.model = *parsed;
  auto unit = int_member(j, "unit_amount", 0, k_max_amount);
  if (!unit) return std::unexpected(unit.error());
  p.unit_amount = unit->value_or(0);
  auto size = int_member(j, "package_size", 1, k_max_amount);
  if (!size) return std::unexpected(size.error());
  p.package_size = size->value_or(1);
  if (auto it = j.find("tiers"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 100) return fail(Errc::invalid_argument, "tiers must be an array of up to 100");
    for (const auto& t : *it) {
      if (!t.is_object()) return fail(Errc::invalid_argument, "tiers entries must be objects");
      if (auto r = only_members(t, {"up_to", "unit_amount", "flat_amount"}); !r) return std::unexpected(r.error());
      Tier tier;
      if (auto u = t.find("up_to"); u != t.end() && !(u->is_string() && u->get<std::string>() == "inf")) {
        auto up = int_member(t, "up_to", 1, k_max_amount);
        if (!up) return std::unexpected(up.error());
        tier.up_to = *up;
      }
      auto ua = int_member(t, "unit_amount", 0, k_max_amount);
      if (!ua) return std::unexpected(ua.error());
      auto fa = int_member(t, "flat_amount", 0, k_max_amount);
      if (!fa) return std::unexpected(fa.error());
      tier.unit_amount = ua->value_or(0);
      tier.flat_amount = fa->value_or(0);
      p.tiers.push_back(tier);
    }
  }
  if (auto v = validate(p); !v) return std::unexpected(v.error());
  return p;
}

Result<std::vector<MeteredPrice>> parse_metered_list(const Json& j) {
  std::vector<MeteredPrice> out;
  if (j.is_null()) return out;
  if (!j.is_array() || j.size() > 50)
    return fail(Errc::invalid_argument, "metered_prices must be an array of up to 50");
  for (const auto& e : j) {
    auto p = parse_metered(e);
    if (!p) return std::unexpected(p.error());
    for (const auto& other : out) {
      if (other.metric == p->metric) {
        return fail(Errc::invalid_argument, "metered_prices has two prices for metric " + p->metric);
      }
    }
    out.push_back(std::move(*p));
  }
  return out;
}

}  // namespace

Result<DunningPolicy> parse_dunning(const Json& value) {
  DunningPolicy d;
  if (value.is_null()) return d;
  if (auto r = only_members(value, {"retry_schedule_hours", "final_action"}); !r) return std::unexpected(r.error());
  if (auto it = value.find("retry_schedule_hours"); it != value.end()) {
    if (!it->is_array() || it->size() > 20) {
      return fail(Errc::invalid_argument, "dunning.retry_schedule_hours must be an array of up to 20 hours");
    }
    d.retry_hours.clear();
    std::int64_t last = 0;
    for (const auto& h : *it) {
      if (!h.is_number_integer() || h.get<std::int64_t>() <= last || h.get<std::int64_t>() > 24 * 90) {
        return fail(Errc::invalid_argument,
                    "dunning.retry_schedule_hours must increase, each within 1 and 2160 hours of the first failure");
      }
      last = h.get<std::int64_t>();
      d.retry_hours.push_back(last);
    }
  }
  auto action = text_member(value, "final_action", 20);
  if (!action) return std::unexpected(action.error());
  if (*action) {
    if (**action == "cancel") {
      d.final_action = FinalAction::cancel;
    } else if (**action == "unpaid") {
      d.final_action = FinalAction::unpaid;
    } else {
      return fail(Errc::invalid_argument, "dunning.final_action must be cancel or unpaid");
    }
  }
  return d;
}

std::string_view status_name(Status s) {
  switch (s) {
    case Status::trial: return "trial";
    case Status::active: return "active";
    case Status::past_due: return "past_due";
    case Status::paused: return "paused";
    case Status::cancelled: return "cancelled";
    case Status::unpaid: return "unpaid";
  }
  return "active";
}

std::optional<Status> parse_status(std::string_view text) {
  for (Status s :
       {Status::trial, Status::active, Status::past_due, Status::paused, Status::cancelled, Status::unpaid}) {
    if (status_name(s) == text) return s;
  }
  return std::nullopt;
}

Json to_json(const Plan& p) {
  return {{"id", p.id},
          {"code", p.code},
          {"name", p.name},
          {"tier", p.tier},
          {"active", p.active},
          {"version", p.price.version},
          {"currency", p.price.currency},
          {"interval", std::string(interval_name(p.price.interval))},
          {"base_price", p.price.base_price},
          {"included_seats", p.price.included_seats},
          {"seat_price", p.price.seat_price},
          {"trial_days", p.price.trial_days},
          {"features", p.price.features},
          {"limits", p.price.limits},
          {"metered_prices", metered_json(p.price.metered)},
          {"quotas", quotas_json(p.price.quotas)},
          {"dunning", dunning_json(p.price.dunning)},
          {"created_at", time_json(p.created_at)},
          {"updated_at", time_json(p.updated_at)}};
}

Json to_json(const Coupon& c) {
  return {{"id", c.id},
          {"code", c.code},
          {"name", c.name},
          {"percent_off_bps", c.percent_off_bps},
          {"amount_off", c.amount_off},
          {"currency", c.currency},
          {"duration", c.duration},
          {"duration_months", c.duration_months},
          {"max_redemptions", c.max_redemptions ? Json(*c.max_redemptions) : Json(nullptr)},
          {"times_redeemed", c.times_redeemed},
          {"redeem_by", time_json(c.redeem_by)},
          {"active", c.active},
          {"created_at", time_json(c.created_at)}};
}

Json to_json(const TaxRateRow& t) {
  return {{"id", t.id},
          {"country", t.country},
          {"region", t.region},
          {"name", t.name},
          {"bps", t.bps},
          {"inclusive", t.inclusive},
          {"created_at", time_json(t.created_at)}};
}

Json to_json(const Account& a) {
  return {{"tenant_id", a.tenant_id},
          {"legal_name", a.legal_name},
          {"email", a.email},
          {"address", a.address},
          {"country", a.country},
          {"region", a.region},
          {"currency", a.currency},
          {"tax_ids", a.tax_ids},
          {"payment_method", a.payment_method},
          {"credit_balance", a.credit_balance},
          {"proration", std::string(proration_mode_name(a.proration))},
          {"test_mode", a.test_mode},
          {"created_at", time_json(a.created_at)},
          {"updated_at", time_json(a.updated_at)}};
}

Json to_json(const Subscription& s) {
  return {{"id", s.id},
          {"tenant_id", s.tenant_id},
          {"plan_id", s.plan_id},
          {"plan_version", s.plan_version},
          {"status", std::string(status_name(s.status))},
          {"seats", s.seats},
          {"billing_anchor", time_json(s.anchor)},
          {"current_period_start", time_json(s.current_period_start)},
          {"current_period_end", time_json(s.current_period_end)},
          {"trial_end", time_json(s.trial_end)},
          {"cancel_at_period_end", s.cancel_at_period_end},
          {"cancelled_at", time_json(s.cancelled_at)},
          {"paused_at", time_json(s.paused_at)},
          {"coupon_id", s.coupon_id ? Json(*s.coupon_id) : Json(nullptr)},
          {"test_clock_id", s.test_clock_id ? Json(*s.test_clock_id) : Json(nullptr)},
          {"created_at", time_json(s.created_at)},
          {"updated_at", time_json(s.updated_at)}};
}

Json to_json(const Invoice& i) {
  Json lines = Json::array();
  for (const auto& l : i.lines) {
    lines.push_back({{"kind", std::string(line_kind_name(l.kind))},
                     {"description", l.description},
                     {"quantity", l.quantity},
                     {"unit_amount", l.unit_amount},
                     {"amount", l.amount},
                     {"period_start", time_json(l.period_start)},
                     {"period_end", time_json(l.period_end)},
                     {"proration", l.proration}});
  }
  return {{"id", i.id},
          {"tenant_id", i.tenant_id},
          {"number", i.number ? Json(*i.number) : Json(nullptr)},
          {"subscription_id", i.subscription_id ? Json(*i.subscription_id) : Json(nullptr)},
          {"status", i.status},
          {"billing_reason", i.billing_reason},
          {"currency", i.currency},
          {"period_start", time_json(i.period_start)},
          {"period_end", time_json(i.period_end)},
          {"lines", lines},
          {"subtotal", i.totals.subtotal},
          {"discount", i.totals.discount},
          {"discount_label", i.discount_label},
          {"tax", i.totals.tax},
          {"tax_inclusive", i.totals.tax_inclusive},
          {"tax_label", i.tax_label},
          {"total", i.totals.total},
          {"credit_applied", i.totals.credit_applied},
          {"credit_created", i.totals.credit_created},
          {"amount_due", i.totals.amount_due},
          {"amount_paid", i.amount_paid},
          {"amount_remaining", i.amount_remaining},
          {"attempt_count", i.attempt_count},
          {"next_payment_attempt", time_json(i.next_payment_attempt)},
          {"customer", i.customer},
          {"memo", i.memo},
          {"test_clock_id", i.test_clock_id ? Json(*i.test_clock_id) : Json(nullptr)},
          {"created_at", time_json(i.created_at)},
          {"finalized_at", time_json(i.finalized_at)},
          {"paid_at", time_json(i.paid_at)},
          {"voided_at", time_json(i.voided_at)}};
}

Json to_json(const PaymentAttempt& a) {
  return {{"id", a.id},
          {"invoice_id", a.invoice_id},
          {"attempt", a.attempt},
          {"idempotency_key", a.idempotency_key},
          {"amount", a.amount},
          {"currency", a.currency},
          {"payment_method", a.payment_method},
          {"status", a.status},
          {"failure_code", a.failure_code},
          {"decline", a.decline},
          {"message", a.message},
          {"reference", a.reference},
          {"created_at", time_json(a.created_at)},
          {"completed_at", time_json(a.completed_at)}};
}

Json to_json(const CreditNote& c) {
  return {{"id", c.id},
          {"tenant_id", c.tenant_id},
          {"number", c.number},
          {"invoice_id", c.invoice_id},
          {"amount", c.amount},
          {"method", c.method},
          {"reason", c.reason},
          {"memo", c.memo},
          {"reference", c.reference},
          {"created_at", time_json(c.created_at)}};
}

Json to_json(const TestClock& c) {
  return {{"id", c.id},
          {"name", c.name},
          {"frozen_time", time_json(c.frozen_time)},
          {"created_at", time_json(c.created_at)},
          {"status", "ready"}};
}

namespace {

Result<Plan> read_plan(const storage::ResultSet& r, std::size_t i) {
  Plan p;
  p.id = r.text_at(i, 0).value_or("");
  p.code = r.text_at(i, 1).value_or("");
  p.name = r.text_at(i, 2).value_or("");
  p.tier = r.text_at(i, 3).value_or("");
  p.active = bool_at(r, i, 4);
  p.created_at = r.int_at(i, 5).value_or(0);
  p.updated_at = r.int_at(i, 6).value_or(0);
  p.price.version = static_cast<int>(r.int_at(i, 7).value_or(1));
  p.price.currency = r.text_at(i, 8).value_or("");
  p.price.interval = parse_interval(r.text_at(i, 9).value_or("")).value_or(Interval::monthly);
  p.price.base_price = r.int_at(i, 10).value_or(0);
  p.price.included_seats = r.int_at(i, 11).value_or(0);
  p.price.seat_price = r.int_at(i, 12).value_or(0);
  p.price.trial_days = static_cast<int>(r.int_at(i, 13).value_or(0));
  p.price.features = parse_stored(r.text_at(i, 14).value_or("{}"), Json::object());
  p.price.limits = parse_stored(r.text_at(i, 15).value_or("{}"), Json::object());
  auto metered = parse_metered_list(parse_stored(r.text_at(i, 16).value_or("[]"), Json::array()));
  if (!metered) return fail(Errc::internal, "stored metered prices: " + metered.error().message);
  p.price.metered = std::move(*metered);
  auto dunning = parse_dunning(parse_stored(r.text_at(i, 17).value_or("null"), nullptr));
  if (!dunning) return fail(Errc::internal, "stored dunning policy: " + dunning.error().message);
  p.price.dunning = std::move(*dunning);
  p.price.created_at = r.int_at(i, 18).value_or(0);
  auto quotas = parse_quotas(parse_stored(r.text_at(i, 19).value_or("{}"), Json::object()));
  if (!quotas) return fail(Errc::internal, "stored quotas: " + quotas.error().message);
  p.price.quotas = std::move(*quotas);
  return p;
}

Coupon read_coupon(const storage::ResultSet& r, std::size_t i) {
  Coupon c;
  c.id = r.text_at(i, 0).value_or("");
  c.code = r.text_at(i, 1).value_or("");
  c.name = r.text_at(i, 2).value_or("");
  c.percent_off_bps = r.int_at(i, 3).value_or(0);
  c.amount_off = r.int_at(i, 4).value_or(0);
  c.currency = r.text_at(i, 5).value_or("");
  c.duration = r.text_at(i, 6).value_or("once");
  c.duration_months = static_cast<int>(r.int_at(i, 7).value_or(0));
  c.max_redemptions = opt_int(r, i, 8);
  c.times_redeemed = r.int_at(i, 9).value_or(0);
  c.redeem_by = opt_int(r, i, 10);
  c.active = bool_at(r, i, 11);
  c.created_at = r.int_at(i, 12).value_or(0);
  return c;
}

TaxRateRow read_tax(const storage::ResultSet& r, std::size_t i) {
  TaxRateRow t;
  t.id = r.text_at(i, 0).value_or("");
  t.country = r.text_at(i, 1).value_or("");
  t.region = r.text_at(i, 2).value_or("");
  t.name = r.text_at(i, 3).value_or("");
  t.bps = r.int_at(i, 4).value_or(0);
  t.inclusive = bool_at(r, i, 5);
  t.created_at = r.int_at(i, 6).value_or(0);
  return t;
}

Account read_account(const storage::ResultSet& r, std::size_t i) {
  Account a;
  a.tenant_id = r.text_at(i, 0).value_or("");
  a.legal_name = r.text_at(i, 1).value_or("");
  a.email = r.text_at(i, 2).value_or("");
  a.address = string_list(parse_stored(r.text_at(i, 3).value_or("[]"), Json::array()));
  a.country = r.text_at(i, 4).value_or("");
  a.region = r.text_at(i, 5).value_or("");
  a.currency = r.text_at(i, 6).value_or("");
  a.tax_ids = string_list(parse_stored(r.text_at(i, 7).value_or("[]"), Json::array()));
  a.payment_method = r.text_at(i, 8).value_or("");
  a.credit_balance = r.int_at(i, 9).value_or(0);
  a.proration = parse_proration_mode(r.text_at(i, 10).value_or("daily")).value_or(ProrationMode::daily);
  a.test_mode = bool_at(r, i, 11);
  a.created_at = r.int_at(i, 12).value_or(0);
  a.updated_at = r.int_at(i, 13).value_or(0);
  return a;
}

Subscription read_sub(const storage::ResultSet& r, std::size_t i) {
  Subscription s;
  s.tenant_id = r.text_at(i, 0).value_or("");
  s.id = r.text_at(i, 1).value_or("");
  s.plan_id = r.text_at(i, 2).value_or("");
  s.plan_version = static_cast<int>(r.int_at(i, 3).value_or(1));
  s.status = parse_status(r.text_at(i, 4).value_or("")).value_or(Status::active);
  s.seats = r.int_at(i, 5).value_or(1);
  s.anchor = r.int_at(i, 6).value_or(0);
  s.cycle = r.int_at(i, 7).value_or(0);
  s.current_period_start = r.int_at(i, 8).value_or(0);
  s.current_period_end = r.int_at(i, 9).value_or(0);
  s.trial_end = opt_int(r, i, 10);
  s.cancel_at_period_end = bool_at(r, i, 11);
  s.cancelled_at = opt_int(r, i, 12);
  s.paused_at = opt_int(r, i, 13);
  s.coupon_id = opt_text(r, i, 14);
  s.coupon_start = opt_int(r, i, 15);
  s.coupon_uses = r.int_at(i, 16).value_or(0);
  s.test_clock_id = opt_text(r, i, 17);
  s.created_at = r.int_at(i, 18).value_or(0);
  s.updated_at = r.int_at(i, 19).value_or(0);
  if (!r.is_null(i, 20)) s.period_discounted = bool_at(r, i, 20);
  return s;
}

Invoice read_invoice(const storage::ResultSet& r, std::size_t i) {
  Invoice v;
  v.tenant_id = r.text_at(i, 0).value_or("");
  v.id = r.text_at(i, 1).value_or("");
  v.number = opt_text(r, i, 2);
  v.subscription_id = opt_text(r, i, 3);
  v.status = r.text_at(i, 5).value_or("");
  v.billing_reason = r.text_at(i, 6).value_or("");
  v.currency = r.text_at(i, 7).value_or("");
  v.period_start = r.int_at(i, 8).value_or(0);
  v.period_end = r.int_at(i, 9).value_or(0);
  v.totals.subtotal = r.int_at(i, 10).value_or(0);
  v.totals.discount = r.int_at(i, 11).value_or(0);
  v.discount_label = r.text_at(i, 12).value_or("");
  v.totals.tax = r.int_at(i, 13).value_or(0);
  v.totals.tax_inclusive = bool_at(r, i, 14);
  v.tax_label = r.text_at(i, 15).value_or("");
  v.totals.total = r.int_at(i, 16).value_or(0);
  v.totals.credit_applied = r.int_at(i, 17).value_or(0);
  v.totals.credit_created = r.int_at(i, 18).value_or(0);
  v.totals.amount_due = r.int_at(i, 19).value_or(0);
  v.amount_paid = r.int_at(i, 20).value_or(0);
  v.amount_remaining = r.int_at(i, 21).value_or(0);
  v.attempt_count = static_cast<int>(r.int_at(i, 22).value_or(0));
  v.next_payment_attempt = opt_int(r, i, 23);
  v.customer = parse_stored(r.text_at(i, 24).value_or("{}"), Json::object());
  v.memo = r.text_at(i, 25).value_or("");
  v.test_clock_id = opt_text(r, i, 26);
  v.created_at = r.int_at(i, 27).value_or(0);
  v.finalized_at = opt_int(r, i, 28);
  v.paid_at = opt_int(r, i, 29);
  v.voided_at = opt_int(r, i, 30);
  return v;
}

Line read_line(const storage::ResultSet& r, std::size_t i) {
  Line l;
  l.kind = parse_line_kind(r.text_at(i, 2).value_or("")).value_or(LineKind::one_off);
  l.description = r.text_at(i, 3).value_or("");
  l.quantity = r.int_at(i, 4).value_or(0);
  l.unit_amount = r.int_at(i, 5).value_or(0);
  l.amount = r.int_at(i, 6).value_or(0);
  l.period_start = r.int_at(i, 7).value_or(0);
  l.period_end = r.int_at(i, 8).value_or(0);
  l.proration = bool_at(r, i, 9);
  return l;
}

PaymentAttempt read_attempt(const storage::ResultSet& r, std::size_t i) {
  PaymentAttempt a;
  a.id = r.text_at(i, 0).value_or("");
  a.invoice_id = r.text_at(i, 1).value_or("");
  a.attempt = static_cast<int>(r.int_at(i, 2).value_or(0));
  a.idempotency_key = r.text_at(i, 3).value_or("");
  a.amount = r.int_at(i, 4).value_or(0);
  a.currency = r.text_at(i, 5).value_or("");
  a.payment_method = r.text_at(i, 6).value_or("");
  a.status = r.text_at(i, 7).value_or("");
  a.failure_code = r.text_at(i, 8).value_or("");
  a.decline = r.text_at(i, 9).value_or("");
  a.message = r.text_at(i, 10).value_or("");
  a.reference = r.text_at(i, 11).value_or("");
  a.created_at = r.int_at(i, 12).value_or(0);
  a.completed_at = opt_int(r, i, 13);
  return a;
}

CreditNote read_credit(const storage::ResultSet& r, std::size_t i) {
  CreditNote c;
  c.tenant_id = r.text_at(i, 0).value_or("");
  c.id = r.text_at(i, 1).value_or("");
  c.number = r.text_at(i, 2).value_or("");
  c.invoice_id = r.text_at(i, 3).value_or("");
  c.amount = r.int_at(i, 4).value_or(0);
  c.method = r.text_at(i, 5).value_or("");
  c.reason = r.text_at(i, 6).value_or("");
  c.memo = r.text_at(i, 7).value_or("");
  c.reference = r.text_at(i, 8).value_or("");
  c.created_at = r.int_at(i, 9).value_or(0);
  return c;
}

TestClock read_clock(const storage::ResultSet& r, std::size_t i) {
  return TestClock{r.text_at(i, 0).value_or(""), r.text_at(i, 1).value_or(""), r.int_at(i, 2).value_or(0),
                   r.int_at(i, 3).value_or(0)};
}

// The price of one configuration for a whole period.
Result<std::int64_t> period_amount(const PlanPrice& price, std::int64_t seats) {
  const std::int64_t extra = std::max<std::int64_t>(0, seats - price.included_seats);
  auto seats_amount = multiply(extra, price.seat_price);
  if (!seats_amount) return seats_amount;
  return add(price.base_price, *seats_amount);
}

// A charge to make after the transaction that created its attempt commits.
struct PendingCharge {
  std::string tenant_id;
  std::string attempt_id;
  ChargeRequest request;
};

// A billing anchor that keeps the requested day of month even when the first boundary was clamped (day 31 asked
// in February ends the first period on the 28th; later periods must still end on the 31st where a month has one):
// the latest date on the requested day, a whole number of intervals before `first_end`, and that number of
// intervals (the subscription's cycle), so boundary(anchor, interval, cycle) == first_end.
std::pair<Instant, std::int64_t> anchor_keeping_day(Instant first_end, int day, Interval interval) {
  using namespace std::chrono;
  const sys_seconds tp{std::chrono::seconds{first_end}};
  const auto date = floor<days>(tp);
  const auto time_of_day = tp - date;
  const year_month_day ymd{date};
  const std::chrono::year_month end_month{ymd.year(), ymd.month()};
  for (std::int64_t k = 0; k <= 8; ++k) {
    const std::chrono::year_month ym = end_month - months{k * interval_months(interval)};
    if (static_cast<unsigned>((ym / last).day()) >= static_cast<unsigned>(day)) {
      const sys_seconds anchor = sys_days{ym / std::chrono::day{static_cast<unsigned>(day)}} + time_of_day;
      return {anchor.time_since_epoch().count(), k};
    }
  }
  return {first_end, 0};  // unreachable: every 8 years hold a month of 31 days and a leap February
}

std::string invoice_number(int year_month_value, std::int64_t n, std::string_view prefix) {
  std::string digits = std::to_string(n);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return std::string(prefix) + "-" + std::to_string(year_month_value) + "-" + digits;
}

}  // namespace

struct Billing::Impl {
  storage::Database& db;
  tenancy::TenantData& data;
  audit::AuditLog& audit;
  const Clock& clock;
  PaymentGateway& gateway;
  Settings settings;
  std::function<void()> events_committed;

  std::mutex plan_mutex;
  std::unordered_map<std::string, Plan> plan_versions;   // "<plan id>:<version>": prices never change
  std::unordered_map<std::string, Coupon> coupons;       // by id: only active/times_redeemed change, not read here
  UsageMeter usage_meter;                                // null: plans' metered prices are not billed
  Instant usage_grace = 0;                               // seconds late events are accepted after their period
  std::function<void(const std::string&)> plan_changed;  // see Billing::on_plan_changed

  // Tenants whose plan in force may have changed in this thread's open transaction; told to plan_changed once
  // the outermost transaction committed (a cache refilled before the commit would hold the old plan again).
  struct PlanChanges {
    int depth = 0;
    std::set<std::string> tenants;
  };
  static PlanChanges& plan_changes() {
    thread_local PlanChanges changes;
    return changes;
  }
  void mark_plan_changed(const std::string& tenant_id) { plan_changes().tenants.insert(tenant_id); }

  // Runs one transaction of `run`, then tells plan_changed what it changed, if it committed and is the outermost.
  Result<void> tracking_plan_changes(const std::function<Result<void>()>& run) {
    PlanChanges& changes = plan_changes();
    ++changes.depth;
    Result<void> r = run();
    if (--changes.depth > 0) return r;
    std::set<std::string> changed;
    changed.swap(changes.tenants);
    if (r && plan_changed) {
      for (const auto& tenant_id : changed) plan_changed(tenant_id);
    }
    return r;
  }

  Instant now() const { return seconds(clock.now()); }

  // Platform-wide work on every tenant's billing rows (the run, MRR): the platform scope (docs/security.md).
  Result<void> platform(const std::function<Result<void>(tenancy::PlatformTransaction&)>& body,
                        storage::TransactionOptions o = {}) {
    return tracking_plan_changes([&] { return data.transact_platform(body, o); });
  }

  // The catalog (plans, plan versions, coupons, tax rates) carries no tenant: the serving role's own transaction.
  Result<void> catalog(const std::function<Result<void>(Transaction&)>& body, storage::TransactionOptions o = {}) {
    return db.transact(body, o);
  }

  Result<void> tenant(const std::string& tenant_id, const std::function<Result<void>(TenantTransaction&)>& body,
                      storage::TransactionOptions o = {}) {
    return tracking_plan_changes([&] { return data.transact_control_plane(tenant_id, body, o); });
  }

  // Every row of one read-only tenant statement, each through `read`.
  template <class T>
  Result<std::vector<T>> tenant_rows(const std::string& tenant_id, const TenantStatement& statement,
                                     std::initializer_list<Value> params,
                                     T (*read)(const storage::ResultSet&, std::size_t)) {
    std::vector<T> out;
    auto r = tenant(tenant_id,
                    [&](TenantTransaction& tx) -> Result<void> {
                      auto rows = tx.execute(statement, params);
                      if (!rows) return std::unexpected(rows.error());
                      for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read(*rows, i));
                      return {};
                    },
                    {.read_only = true});
    if (!r) return std::unexpected(r.error());
    return out;
  }

  static Transaction& raw(TenantTransaction& tx) { return *tx.control_plane(); }

  void notify() {
    if (events_committed) events_committed();
  }

  Result<void> emit(TenantTransaction& tx, std::string type, Json payload) {
    auto e = events::emit(raw(tx), clock, tx.tenant_id(), std::move(type), std::move(payload));
    if (!e) return std::unexpected(e.error());
    return {};
  }

  Result<void> record(TenantTransaction& tx, const audit::Context* who, std::string action, std::string type,
                      std::string id, Json changes) {
    if (who == nullptr) return {};
    audit::Event event{.action = std::move(action), .resource_type = std::move(type), .resource_id = std::move(id)};
    event.changes = std::move(changes);
    return audit.append(tx, *who, std::move(event));
  }

  // ---- catalog reads ----

  Result<Plan> plan_version(Transaction& tx, const std::string& plan_id, int version) {
    const std::string key = plan_id + ":" + std::to_string(version);
    {
      std::lock_guard lock(plan_mutex);
      if (auto it = plan_versions.find(key); it != plan_versions.end()) return it->second;
    }
    auto r = tx.execute(k_plan_get, {Value(plan_id), Value(std::int64_t{version})});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "no plan " + plan_id + " version " + std::to_string(version));
    auto plan = read_plan(*r, 0);
    if (!plan) return plan;
    std::lock_guard lock(plan_mutex);
    plan_versions.emplace(key, *plan);
    return plan;
  }

  Result<Plan> plan_current(Transaction& tx, const std::string& id_or_code) {
    auto r = tx.execute(k_plan_get, {Value(id_or_code), Value()});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "no plan '" + id_or_code + "'");
    return read_plan(*r, 0);
  }

  Result<std::optional<Coupon>> coupon(Transaction& tx, const std::string& id) {
    auto r = tx.execute(k_coupon_get, {Value(id)});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return std::optional<Coupon>();
    return std::optional<Coupon>(read_coupon(*r, 0));
  }

  Result<std::optional<TaxRateRow>> tax_for(Transaction& tx, const Account& account) {
    if (account.country.empty()) return std::optional<TaxRateRow>();
    if (!account.region.empty()) {
      auto r = tx.execute(k_tax_get, {Value(account.country), Value(account.region)});
      if (!r) return std::unexpected(r.error());
      if (!r->empty()) return std::optional<TaxRateRow>(read_tax(*r, 0));
    }
    auto r = tx.execute(k_tax_get, {Value(account.country), Value(std::string())});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return std::optional<TaxRateRow>();
    return std::optional<TaxRateRow>(read_tax(*r, 0));
  }

  // Write paths lock the account row on PostgreSQL: invoice totals depend on its credit balance.
  Result<Account> account(TenantTransaction& tx, bool lock = true) {
    auto r = tx.execute(lock && postgres(tx) ? k_account_get_locked : k_account_get);
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "this tenant has no billing account yet (PUT /v1/billing-account)");
    return read_account(*r, 0);
  }

  static bool postgres(TenantTransaction& tx) { return tx.backend() == storage::Backend::postgres; }

  Result<Subscription> subscription(TenantTransaction& tx, const std::string& id, bool lock = true) {
    auto r = tx.execute(lock && postgres(tx) ? k_sub_get_locked : k_sub_get, {Value(id)});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "no subscription " + id);
    return read_sub(*r, 0);
  }

  Result<Invoice> invoice(TenantTransaction& tx, const std::string& id, bool with_lines, bool lock = true) {
    auto r = tx.execute(lock && postgres(tx) ? k_invoice_get_locked : k_invoice_get, {Value(id)});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "no invoice " + id);
    Invoice v = read_invoice(*r, 0);
    if (with_lines) {
      auto lines = tx.execute(k_line_list, {Value(id)});
      if (!lines) return std::unexpected(lines.error());
      for (std::size_t i = 0; i < lines->rows.size(); ++i) v.lines.push_back(read_line(*lines, i));
    }
    return v;
  }

  // `lock`: one advance of a clock at a time (PostgreSQL; SQLite runs one writer).
  Result<TestClock> test_clock(TenantTransaction& tx, const std::string& id, bool lock = false) {
    auto r = tx.execute(lock && postgres(tx) ? k_clock_get_locked : k_clock_get, {Value(id)});
    if (!r) return std::unexpected(r.error());
    if (r->empty()) return fail(Errc::not_found, "no test clock " + id);
    return read_clock(*r, 0);
  }

  // The time a tenant's object lives in: its test clock's, or the real one.
  Result<Instant> now_for(TenantTransaction& tx, const std::optional<std::string>& clock_id) {
    if (!clock_id) return now();
    auto c = test_clock(tx, *clock_id);
    if (!c) return std::unexpected(c.error());
    return c->frozen_time;
  }

  Result<std::int64_t> next_number(Transaction& tx, const std::string& counter) {
    auto r = tx.execute(k_next_number, {Value(counter)});
    if (!r) return std::unexpected(r.error());
    auto v = r->int_at(0, 0);
    if (!v) return fail(Errc::internal, "counter " + counter + " returned no value");
    return *v;
  }

  // ---- subscription state ----

  static bool allowed(Status from, Status to) {
    switch (from) {
      case Status::trial:
        return to == Status::active || to == Status::paused || to == Status::cancelled || to == Status::past_due;
      case Status::active: return to == Status::past_due || to == Status::paused || to == Status::cancelled;
      case Status::past_due:
        return to == Status::active || to == Status::paused || to == Status::cancelled || to == Status::unpaid;
      case Status::paused:
        return to == Status::trial || to == Status::active || to == Status::past_due || to == Status::cancelled;
      case Status::unpaid: return to == Status::active || to == Status::cancelled;
      case Status::cancelled: return false;
    }
    return false;
  }

  // Every status change goes through here: validated, and recorded as a subscription.<status> event.
  Result<void> transition(TenantTransaction& tx, Subscription& sub, Status to, std::string_view reason) {
    if (!allowed(sub.status, to)) {
      return fail(Errc::conflict, "a subscription cannot go from " + std::string(status_name(sub.status)) + " to " +
                                      std::string(status_name(to)));
    }
    const Status from = sub.status;
    sub.status = to;
    mark_plan_changed(tx.tenant_id());  // a subscription that is cancelled (or comes back) moves the plan in force
    return emit(tx, "subscription." + std::string(status_name(to)),
                {{"subscription", to_json(sub)},
                 {"previous_status", std::string(status_name(from))},
                 {"reason", std::string(reason)}});
  }

  Result<void> save(TenantTransaction& tx, const Subscription& s, Instant now) {
    auto r = tx.execute(
        k_sub_update,
        {Value(s.id), Value(s.plan_id), Value(std::int64_t{s.plan_version}), Value(std::string(status_name(s.status))),
         Value(s.seats), Value(s.anchor), Value(s.cycle), Value(s.current_period_start), Value(s.current_period_end),
         opt(s.trial_end), Value(s.cancel_at_period_end), opt(s.cancelled_at), opt(s.paused_at), opt(s.coupon_id),
         opt(s.coupon_start), Value(s.coupon_uses), Value(now), opt(s.period_discounted)});
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // The lines of one full period of `plan` with `seats`.
  static Result<std::vector<Line>> cycle_lines(const Plan& plan, std::int64_t seats, Instant start, Instant end) {
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

  // The part of each line for [at, end) of a period that starts at `full_start` (a short first period).
  static Result<void> prorate_lines(std::vector<Line>& lines, Instant full_start, Instant end, Instant at,
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

  struct IssueOptions {
    std::string reason;
    Instant period_start = 0;
    Instant period_end = 0;
    std::optional<std::string> cycle_key;
    bool with_coupon = false;
    std::string memo;
  };

  Result<std::pair<std::optional<Discount>, std::string>> coupon_for(TenantTransaction& tx, Subscription& sub,
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

  static std::string tax_label(const TaxRateRow& t) {
    return t.name + " " + format_decimal(t.bps, "USD") + "%" + (t.inclusive ? " (included)" : "");
  }

  static Json customer_json(const Account& a) {
    return {{"legal_name", a.legal_name}, {"email", a.email},   {"address", a.address},
            {"country", a.country},       {"region", a.region}, {"tax_ids", a.tax_ids}};
  }

  // Computes an invoice's totals; with `persist`, finalizes it: a number from the gap-free monthly sequence, the
  // account's credit balance used or increased, status paid (nothing due) or open with a first payment attempt.
  Result<Invoice> issue_invoice(TenantTransaction& tx, Account& account, Subscription* sub, std::vector<Line> lines,
                                const IssueOptions& o, Instant now, std::vector<PendingCharge>* charges, bool persist) {
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
    if (inv.status == "paid") inv.paid_at = now;
    if (!persist) return inv;

    // Invoices on a test clock have a sequence (and prefix) of their own, so simulated months never use up the
    // real months' numbers.
    const bool simulated = inv.test_clock_id.has_value();
    auto n = next_number(raw(tx), (simulated ? "test-invoice:" : "invoice:") + std::to_string(year_month(now)));
    if (!n) return std::unexpected(n.error());
    inv.number = invoice_number(year_month(now), *n, simulated ? "TEST-INV" : "INV");
    if (inv.totals.amount_due > 0) inv.attempt_count = 1;
    auto ins = tx.execute(k_invoice_insert, {Value(inv.id),
                                             opt(inv.number),
                                             opt(inv.subscription_id),
                                             opt(o.cycle_key),
                                             Value(inv.status),
                                             Value(inv.billing_reason),
                                             Value(inv.currency),
                                             Value(inv.period_start),
                                             Value(inv.period_end),
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
                                             Value(inv.customer.dump()),
                                             Value(inv.memo),
                                             opt(inv.test_clock_id),
                                             Value(now),
                                             Value(now),
                                             inv.paid_at ? Value(*inv.paid_at) : Value(),
                                             Value()});
    if (!ins) return std::unexpected(ins.error());
    for (std::size_t i = 0; i < inv.lines.size(); ++i) {
      const Line& l = inv.lines[i];
      auto r = tx.execute(k_line_insert, {Value(inv.id), Value(static_cast<std::int64_t>(i + 1)),
                                          Value(std::string(line_kind_name(l.kind))), Value(l.description),
                                          Value(l.quantity), Value(l.unit_amount), Value(l.amount),
                                          Value(l.period_start), Value(l.period_end), Value(l.proration)});
      if (!r) return std::unexpected(r.error());
    }
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
    return inv;
  }

  Result<PendingCharge> new_attempt(TenantTransaction& tx, const Invoice& inv, const Account& account, int number,
                                    Instant now) {
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
                                           Value(c.request.currency), Value(c.request.payment_method), Value(now)});
    if (!r) return std::unexpected(r.error());
    return c;
  }

  Result<DunningPolicy> policy_for(TenantTransaction& tx, const Invoice& inv) {
    if (!inv.subscription_id) return DunningPolicy{};
    auto sub = subscription(tx, *inv.subscription_id);
    if (!sub) return std::unexpected(sub.error());
    auto plan = plan_version(raw(tx), sub->plan_id, sub->plan_version);
    if (!plan) return std::unexpected(plan.error());
    return plan->price.dunning;
  }

  // After the last failure: the subscription is cancelled (the invoice becomes uncollectible) or marked unpaid.
  Result<void> final_action(TenantTransaction& tx, Invoice& inv, const DunningPolicy& policy, Instant now,
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

  Result<void> save_payment_state(TenantTransaction& tx, const Invoice& inv, Instant now) {
    auto r = tx.execute(k_invoice_payment,
                        {Value(inv.id), Value(inv.status), Value(inv.amount_paid), Value(inv.amount_remaining),
                         Value(std::int64_t{inv.attempt_count}), opt(inv.next_payment_attempt), opt(inv.paid_at),
                         opt(inv.voided_at), Value(now)});
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // A past-due or unpaid subscription that no longer owes anything (its invoices were paid, voided or credited)
  // is active again. Periods that passed while unpaid are not billed: a new period starts now (the next run, or the
  // clock's next step, invoices it, as its end is now).
  Result<void> settle_status(TenantTransaction& tx, const std::string& sub_id, Instant now, std::string_view reason) {
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

  // Records a charge's outcome on its attempt, invoice and subscription (once: an attempt no longer pending is
  // left alone, so a repeated settle changes nothing).
  Result<void> record_outcome(TenantTransaction& tx, const PendingCharge& c, const Result<ChargeResult>& result,
                              Instant now, RunStats* stats) {
    auto ar = tx.execute(k_attempt_get, {Value(c.attempt_id)});
    if (!ar) return std::unexpected(ar.error());
    if (ar->empty()) return fail(Errc::internal, "payment attempt " + c.attempt_id + " vanished");
    PaymentAttempt attempt = read_attempt(*ar, 0);
    if (attempt.status != "pending") return {};
    const bool ok = result && result->succeeded;
    std::string code, decline, message, reference;
    if (result) {
      code = result->failure_code;
      decline = std::string(decline_name(result->decline));
      message = result->message;
      reference = result->reference;
      auto done =
          tx.execute(k_attempt_complete, {Value(attempt.id), Value(std::string(ok ? "succeeded" : "failed")),
                                          Value(code), Value(decline), Value(message), Value(reference), Value(now)});
      if (!done) return std::unexpected(done.error());
      if (done->affected_rows != 1) return {};  // a concurrent settle recorded it first
    } else {
      // The outcome is unknown (network, provider down): the attempt stays pending, to be sent again with the
      // same idempotency key at the next dunning time, so a charge that did go through is never made twice.
      code = "network_error";
      decline = "unknown";
      message = result.error().message;
      auto noted = tx.execute(k_attempt_unknown, {Value(attempt.id), Value(message)});
      if (!noted) return std::unexpected(noted.error());
      if (noted->affected_rows != 1) return {};
      // Nothing is known to have failed: no status change and no payment.failed; the same attempt is sent again
      // in an hour (whatever the invoice's state, so money the provider may hold is always accounted for).
      auto inv = invoice(tx, attempt.invoice_id, false);
      if (!inv) return std::unexpected(inv.error());
      inv->next_payment_attempt = now + k_hour;
      if (stats) stats->failed += 1;
      return save_payment_state(tx, *inv, now);
    }
    auto inv = invoice(tx, attempt.invoice_id, false);
    if (!inv) return std::unexpected(inv.error());
    Json payment{{"invoice_id", inv->id},      {"number", inv->number.value_or("")},
                 {"amount", attempt.amount},   {"currency", attempt.currency},
                 {"attempt", attempt.attempt}, {"payment_method", attempt.payment_method},
                 {"reference", reference}};
    if (ok) {
      if (stats) stats->charged += 1;
      // What the invoice still asks is paid; anything above it (a credit note reduced the invoice, or it was
      // closed, while the charge was in flight) goes to the account's credit balance: collected money is never
      // lost.
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

    if (stats) stats->failed += 1;
    auto policy = policy_for(tx, *inv);
    if (!policy) return std::unexpected(policy.error());
    const Instant first = inv->finalized_at.value_or(now);
    const std::size_t retries_done = inv->attempt_count > 0 ? static_cast<std::size_t>(inv->attempt_count - 1) : 0;
    bool final = false;
    if (inv->status != "open") {
      inv->next_payment_attempt.reset();
    } else if (decline == "hard") {
      // Not retried with the same card: the final action waits for the end of the dunning window, unless the
      // payment method changes before (which retries at once). A window that has already ended (a payment asked
      // for late, or the last retry) ends now, not at the next run.
      const std::int64_t last = policy->retry_hours.empty() ? 0 : policy->retry_hours.back();
      inv->next_payment_attempt = std::max(first + last * k_hour, now);
      if (first + last * k_hour <= now) final = true;
    } else if (retries_done < policy->retry_hours.size()) {
      inv->next_payment_attempt = std::max(first + policy->retry_hours[retries_done] * k_hour, now + 1);
    } else {
      final = true;
    }
    payment["failure_code"] = code;
    payment["decline"] = decline;
    payment["message"] = message;
    const bool hard = decline == "hard";
    payment["next_payment_attempt"] = final || hard ? Json(nullptr) : time_json(inv->next_payment_attempt);
    // After a hard decline nothing is retried with this payment method; the final action waits until then.
    payment["deadline"] = hard && !final ? time_json(inv->next_payment_attempt) : Json(nullptr);
    payment["final"] = final;
    auto account_row = tx.execute(k_account_get);
    if (!account_row) return std::unexpected(account_row.error());
    if (!account_row->empty()) payment["email"] = read_account(*account_row, 0).email;
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

  // Whether the invoice's last payment attempt has no known outcome yet (sent, or about to be sent again).
  Result<bool> payment_in_flight(TenantTransaction& tx, const std::string& invoice_id) {
    auto last = tx.execute(k_attempt_last, {Value(invoice_id)});
    if (!last) return std::unexpected(last.error());
    return !last->empty() && read_attempt(*last, 0).status == "pending";
  }

  // A dunning retry of an open invoice that is due at `now`: another attempt, or the final action after a hard
  // decline whose payment method did not change.
  Result<void> retry_invoice(TenantTransaction& tx, const std::string& invoice_id, Instant now,
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
                                      ChargeRequest{prev.idempotency_key, prev.payment_method, prev.amount,
                                                    prev.currency, inv->number.value_or(inv->id)}});
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

  // One metric's usage in one period of a subscription, as usage_billings records it.
  struct UsageRecord {
    bool insert = false;  // not stored yet
    bool billed_now = false;
    std::string metric;
    Instant period_start = 0;
    Instant period_end = 0;
    std::int64_t quantity = 0;  // as last measured
    std::int64_t included = 0;  // the soft quota's allowance when the period was first billed
    std::string price;          // the metered price (JSON) it is billed at
    std::int64_t amount = 0;    // the price of the measured quantity
    std::int64_t billed_quantity = 0;
    std::int64_t billed_amount = 0;  // on invoices so far
    Instant open_until = 0;
    bool settled = false;
    std::string invoice_id;  // the last invoice that billed it

    std::int64_t billable(std::int64_t q) const { return std::max<std::int64_t>(0, q - included); }
  };

  // Columns of USAGE_COLS from `first`.
  static UsageRecord read_usage(const storage::ResultSet& r, std::size_t i, std::size_t first) {
    UsageRecord u;
    u.metric = r.text_at(i, first).value_or("");
    u.period_start = r.int_at(i, first + 1).value_or(0);
    u.period_end = r.int_at(i, first + 2).value_or(0);
    u.quantity = r.int_at(i, first + 3).value_or(0);
    u.included = r.int_at(i, first + 4).value_or(0);
    u.price = r.text_at(i, first + 5).value_or("{}");
    u.amount = r.int_at(i, first + 6).value_or(0);
    u.billed_quantity = r.int_at(i, first + 7).value_or(0);
    u.billed_amount = r.int_at(i, first + 8).value_or(0);
    u.open_until = r.int_at(i, first + 9).value_or(0);
    u.invoice_id = r.text_at(i, first + 10).value_or("");
    u.settled = bool_at(r, i, first + 11);
    return u;
  }

  // Measures a recorded period again at `at` (late events), with the price and allowance recorded for it; it is
  // settled once `at` is past its grace.
  Result<void> remeasure(TenantTransaction& tx, UsageRecord& u, Instant at) {
    auto price = parse_metered(parse_stored(u.price, Json::object()));
    if (!price) return fail(Errc::internal, "stored usage price: " + price.error().message);
    auto q = usage_meter(tx, u.metric, u.period_start * 1000, u.period_end * 1000);
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

  static Line usage_line(std::string description, std::int64_t quantity, std::int64_t amount, Instant from,
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

  // The usage lines of a renewal at `at`: first what late events changed in periods invoiced before (re-measured
  // while open; measured a last time by the run when their grace ended), then, with `bill_period`, the plan's metered
  // prices over the period [from, to) that just ended. A soft quota on a metric includes its limit: only the units
  // beyond it are priced.
  Result<std::vector<Line>> usage_lines(TenantTransaction& tx, const Subscription& sub, const Plan& plan, Instant from,
                                        Instant to, bool bill_period, Instant at, std::vector<UsageRecord>& records) {
    std::vector<Line> lines;
    if (!usage_meter) return lines;
    auto open = tx.execute(postgres(tx) ? k_usage_open_locked : k_usage_open, {Value(sub.id)});
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

  // Writes `records`; those billed now name `invoice_id`.
  Result<void> save_usage(TenantTransaction& tx, const std::string& subscription_id,
                          const std::vector<UsageRecord>& records, const std::string& invoice_id, Instant now) {
    for (const UsageRecord& u : records) {
      const std::string& invoice = u.billed_now || u.invoice_id.empty() ? invoice_id : u.invoice_id;
      auto r =
          u.insert
              ? tx.execute(k_usage_insert, {Value(subscription_id), Value(u.metric), Value(u.period_start),
                                            Value(u.period_end), Value(u.quantity), Value(u.included), Value(u.price),
                                            Value(u.amount), Value(u.billed_quantity), Value(u.billed_amount),
                                            Value(u.open_until), Value(invoice), Value(u.settled), Value(now)})
              : tx.execute(k_usage_update, {Value(subscription_id), Value(u.metric), Value(u.period_start),
                                            Value(u.quantity), Value(u.amount), Value(u.billed_quantity),
                                            Value(u.billed_amount), Value(u.settled), Value(invoice), Value(now)});
      if (!r) return std::unexpected(r.error());
    }
    return {};
  }

  // Everything due on one subscription at `now`: the trial's end, renewals (one invoice per period that ended),
  // cancellation at the period's end.
  Result<void> advance_subscription(TenantTransaction& tx, Subscription& sub, Account& acct, Instant now,
                                    std::vector<PendingCharge>& charges, RunStats* stats) {
    bool changed = false;
    for (int guard = 0; guard < 1200; ++guard) {
      if (sub.status != Status::trial && sub.status != Status::active && sub.status != Status::past_due) break;
      if (sub.current_period_end > now) break;
      changed = true;
      const Instant t = sub.current_period_end;
      if (sub.cancel_at_period_end) {
        if (auto r = transition(tx, sub, Status::cancelled, "period_end"); !r) return r;
        sub.cancelled_at = t;
        if (stats) stats->cancelled += 1;
        break;
      }
      auto plan = plan_version(raw(tx), sub.plan_id, sub.plan_version);
      if (!plan) return std::unexpected(plan.error());
      const bool ended_trial = sub.status == Status::trial;
      const Instant ended_start = sub.current_period_start;
      if (sub.status == Status::trial) {
        if (auto r = transition(tx, sub, Status::active, "trial_ended"); !r) return r;
        sub.anchor = t;
        sub.cycle = 0;
      }
      sub.cycle += 1;
      sub.current_period_start = t;
      sub.current_period_end = boundary(sub.anchor, plan->price.interval, sub.cycle);
      auto lines = cycle_lines(*plan, sub.seats, sub.current_period_start, sub.current_period_end);
      if (!lines) return std::unexpected(lines.error());
      std::vector<UsageRecord> usage;
      // No usage for a trial, nor for the empty period an unpaid subscription restarts with when it is paid
      // (settle_status): its successor starts at the same instant, and usage is recorded per period start.
      auto used = usage_lines(tx, sub, *plan, ended_start, t, !ended_trial && ended_start < t, t, usage);
      if (!used) return std::unexpected(used.error());
      lines->insert(lines->end(), used->begin(), used->end());
      IssueOptions o{.reason = "subscription_cycle",
                     .period_start = sub.current_period_start,
                     .period_end = sub.current_period_end,
                     .cycle_key = sub.id + ":" + std::to_string(sub.current_period_start),
                     .with_coupon = true};
      auto inv = issue_invoice(tx, acct, &sub, std::move(*lines), o, t, &charges, true);
      if (!inv) return std::unexpected(inv.error());
      if (auto u = save_usage(tx, sub.id, usage, inv->id, t); !u) return u;
      if (stats) {
        stats->renewed += 1;
        stats->invoices += 1;
      }
    }
    if (!changed) return {};
    return save(tx, sub, now);
  }

  // Sends a credit note's refund to the provider (idempotent per note) and stores its reference. A failure is
  // logged and left for the next billing run.
  Result<std::string> refund(const std::string& tenant_id, const std::string& note_id,
                             const std::string& charge_reference, std::int64_t amount, const std::string& currency) {
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

  // Charges what was collected (after the transaction that created the attempts committed) and records the
  // outcomes; `at` is the time each outcome is recorded at (a test clock's). One transaction for all, scoped to
  // the tenant when given, else platform-wide.
  Result<void> settle(std::vector<PendingCharge>& charges, const std::optional<std::string>& tenant_id,
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
};
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

void Billing::set_usage_meter(UsageMeter meter, std::int64_t grace_seconds) {
  impl_->usage_meter = std::move(meter);
  impl_->usage_grace = grace_seconds;
}

Result<PlanInForce> Billing::plan_in_force(TenantTransaction& tx, const std::string& fallback_plan) {
  Impl& s = *impl_;
  PlanInForce out;
  auto subs = tx.execute(k_sub_list);
  if (!subs) return std::unexpected(subs.error());
  for (std::size_t i = subs->rows.size(); i-- > 0;) {
    Subscription sub = read_sub(*subs, i);
    if (sub.status == Status::cancelled) continue;
    auto plan = s.plan_version(Impl::raw(tx), sub.plan_id, sub.plan_version);
    if (!plan) return std::unexpected(plan.error());
    auto previous = tx.execute(k_invoice_previous_start, {Value(sub.id), Value(sub.current_period_start)});
    if (!previous) return std::unexpected(previous.error());
    if (!previous->empty()) out.previous_period_start = previous->int_at(0, 0);
    out.subscription = std::move(sub);
    out.plan = std::move(*plan);
    return out;
  }
  if (fallback_plan.empty()) return out;
  auto plan = s.plan_current(Impl::raw(tx), fallback_plan);
  if (!plan && plan.error().code != Errc::not_found) return std::unexpected(plan.error());
  if (plan) out.plan = std::move(*plan);
  return out;
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
// After billing.retain_invoices_years: the bookkeeping records themselves.
constexpr std::array k_retention_statements{
    TenantStatement{"billing_retention_credit_notes", "DELETE FROM credit_notes WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_attempts", "DELETE FROM payment_attempts WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_lines", "DELETE FROM invoice_lines WHERE tenant_id = $1"},
    TenantStatement{"billing_retention_invoices", "DELETE FROM invoices WHERE tenant_id = $1"},
};
constexpr Statement k_purged_before{
    "billing_purged_before", "SELECT id FROM tenants WHERE purged_at IS NOT NULL AND purged_at < $1 ORDER BY id"};

}  // namespace

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

// ---- catalog ----------------------------------------------------------------------------------------------------

namespace {

constexpr std::array<std::string_view, 5> k_tiers{"free", "starter", "professional", "business", "enterprise"};

// Reads the price fields of a plan (all of them for a new plan; the given ones over `base` for an update).
Result<PlanPrice> parse_price(const Json& input, const PlanPrice& base, bool creating) {
  PlanPrice p = base;
  auto currency = text_member(input, "currency", 3);
  if (!currency) return std::unexpected(currency.error());
  if (*currency) {
    if (!valid_currency(**currency))
      return fail(Errc::invalid_argument, "currency must be an ISO 4217 code such as USD");
    p.currency = **currency;
  } else if (creating) {
    return fail(Errc::invalid_argument, "currency is required");
  }
  auto interval = text_member(input, "interval", 20);
  if (!interval) return std::unexpected(interval.error());
  if (*interval) {
    auto i = parse_interval(**interval);
    if (!i) return fail(Errc::invalid_argument, "interval must be monthly, quarterly or annual");
    p.interval = *i;
  }
  auto base_price = int_member(input, "base_price", 0, k_max_amount);
  if (!base_price) return std::unexpected(base_price.error());
  if (*base_price) {
    p.base_price = **base_price;
  } else if (creating) {
    return fail(Errc::invalid_argument, "base_price is required (minor units, e.g. 4900 for 49.00)");
  }
  auto seats = int_member(input, "included_seats", 0, 1'000'000);
  if (!seats) return std::unexpected(seats.error());
  if (*seats) p.included_seats = **seats;
  auto seat_price = int_member(input, "seat_price", 0, k_max_amount);
  if (!seat_price) return std::unexpected(seat_price.error());
  if (*seat_price) p.seat_price = **seat_price;
  auto trial = int_member(input, "trial_days", 0, 730);
  if (!trial) return std::unexpected(trial.error());
  if (*trial) p.trial_days = static_cast<int>(**trial);
  if (auto it = input.find("features"); it != input.end()) {
    if (auto r = check_limit_values(*it, "features", {"apiCalls", "storage", "support", "sla"}); !r) {
      return std::unexpected(r.error());
    }
    p.features = *it;
  }
  if (auto it = input.find("limits"); it != input.end()) {
    if (auto r = check_limit_values(*it, "limits",
                                    {"projects", "integrations", "customDomains", "requestsPerSecond", "burst"});
        !r) {
      return std::unexpected(r.error());
    }
    p.limits = *it;
  }
  if (auto it = input.find("metered_prices"); it != input.end()) {
    auto m = parse_metered_list(*it);
    if (!m) return std::unexpected(m.error());
    p.metered = std::move(*m);
  }
  if (auto it = input.find("quotas"); it != input.end()) {
    auto q = parse_quotas(*it);
    if (!q) return std::unexpected(q.error());
    p.quotas = std::move(*q);
  }
  if (auto it = input.find("dunning"); it != input.end()) {
    auto d = parse_dunning(*it);
    if (!d) return std::unexpected(d.error());
    p.dunning = std::move(*d);
  }
  return p;
}

Result<void> plan_members(const Json& input) {
  return only_members(input, {"code", "name", "tier", "active", "currency", "interval", "base_price", "included_seats",
                              "seat_price", "trial_days", "features", "limits", "metered_prices", "quotas", "dunning"});
}

bool same_price(const PlanPrice& a, const PlanPrice& b) {
  return a.currency == b.currency && a.interval == b.interval && a.base_price == b.base_price &&
         a.included_seats == b.included_seats && a.seat_price == b.seat_price && a.trial_days == b.trial_days &&
         a.features == b.features && a.limits == b.limits && metered_json(a.metered) == metered_json(b.metered) &&
         quotas_json(a.quotas) == quotas_json(b.quotas) && dunning_json(a.dunning) == dunning_json(b.dunning);
}

Result<void> insert_version(Transaction& tx, const std::string& plan_id, const PlanPrice& p) {
  auto r = tx.execute(
      k_plan_version_insert,
      {Value(plan_id), Value(std::int64_t{p.version}), Value(p.currency), Value(std::string(interval_name(p.interval))),
       Value(p.base_price), Value(p.included_seats), Value(p.seat_price), Value(std::int64_t{p.trial_days}),
       Value(p.features.dump()), Value(p.limits.dump()), Value(metered_json(p.metered).dump()),
       Value(dunning_json(p.dunning).dump()), Value(p.created_at), Value(quotas_json(p.quotas).dump())});
  if (!r) return std::unexpected(r.error());
  return {};
}

bool valid_code(std::string_view code) {
  if (code.empty() || code.size() > 64) return false;
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

Result<Plan> Billing::create_plan(const Json& input, const audit::Context& who) {
  if (auto r = plan_members(input); !r) return std::unexpected(r.error());
  auto code = text_member(input, "code", 64);
  if (!code) return std::unexpected(code.error());
  if (!*code || !valid_code(**code)) {
    return fail(Errc::invalid_argument, "code is required: 1-64 letters, digits, '-' or '_'");
  }
  auto name = text_member(input, "name", 200);
  if (!name) return std::unexpected(name.error());
  if (!*name || (*name)->empty()) return fail(Errc::invalid_argument, "name is required");
  auto tier = text_member(input, "tier", 20);
  if (!tier) return std::unexpected(tier.error());
  if (!*tier || std::find(k_tiers.begin(), k_tiers.end(), **tier) == k_tiers.end()) {
    return fail(Errc::invalid_argument, "tier must be free, starter, professional, business or enterprise");
  }
  auto active = bool_member(input, "active");
  if (!active) return std::unexpected(active.error());
  auto price = parse_price(input, PlanPrice{}, true);
  if (!price) return std::unexpected(price.error());
  Plan plan;
  plan.id = new_uuid_v7(impl_->clock);
  plan.code = **code;
  plan.name = **name;
  plan.tier = **tier;
  plan.active = active->value_or(true);
  plan.created_at = plan.updated_at = impl_->now();
  plan.price = *price;
  plan.price.version = 1;
  plan.price.created_at = plan.created_at;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_plan_insert, {Value(plan.id), Value(plan.code), Value(plan.name), Value(plan.tier),
                                          Value(plan.active), Value(std::int64_t{1}), Value(plan.created_at)});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) return fail(Errc::conflict, "a plan with this code exists");
      return std::unexpected(ins.error());
    }
    if (auto v = insert_version(tx, plan.id, plan.price); !v) return v;
    audit::Event e{.action = "plan.created", .resource_type = "plan", .resource_id = plan.id};
    e.changes = audit::created_changes(to_json(plan));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return plan;
}

Result<Plan> Billing::update_plan(const std::string& id, const Json& input, const audit::Context& who) {
  if (auto r = plan_members(input); !r) return std::unexpected(r.error());
  if (input.contains("code")) return fail(Errc::invalid_argument, "code cannot change");
  std::optional<Plan> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    // Locked on PostgreSQL: two concurrent price changes make versions n+1 and n+2, not a duplicate n+1.
    auto locked = tx.backend() == storage::Backend::postgres ? tx.execute(k_plan_get_locked, {Value(id)})
                                                             : tx.execute(k_plan_get, {Value(id), Value()});
    if (!locked) return std::unexpected(locked.error());
    if (locked->empty()) return fail(Errc::not_found, "no plan '" + id + "'");
    auto before = read_plan(*locked, 0);
    if (!before) return std::unexpected(before.error());
    Plan plan = *before;
    auto name = text_member(input, "name", 200);
    if (!name) return std::unexpected(name.error());
    if (*name) {
      if ((*name)->empty()) return fail(Errc::invalid_argument, "name must not be empty");
      plan.name = **name;
    }
    auto tier = text_member(input, "tier", 20);
    if (!tier) return std::unexpected(tier.error());
    if (*tier) {
      if (std::find(k_tiers.begin(), k_tiers.end(), **tier) == k_tiers.end()) {
        return fail(Errc::invalid_argument, "tier must be free, starter, professional, business or enterprise");
      }
      plan.tier = **tier;
    }
    auto active = bool_member(input, "active");
    if (!active) return std::unexpected(active.error());
    if (*active) plan.active = **active;
    auto price = parse_price(input, before->price, false);
    if (!price) return std::unexpected(price.error());
    plan.updated_at = impl_->now();
    if (!same_price(*price, before->price)) {
      plan.price = *price;
      plan.price.version = before->price.version + 1;
      plan.price.created_at = plan.updated_at;
      if (auto v = insert_version(tx, plan.id, plan.price); !v) return v;
    }
    auto up = tx.execute(k_plan_update, {Value(plan.id), Value(plan.name), Value(plan.tier), Value(plan.active),
                                         Value(std::int64_t{plan.price.version}), Value(plan.updated_at)});
    if (!up) return std::unexpected(up.error());
    audit::Event e{.action = "plan.updated", .resource_type = "plan", .resource_id = plan.id};
    Json a = to_json(*before), b = to_json(plan);
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (it.key() != "updated_at") audit::add_change(e.changes, it.key(), a[it.key()], it.value());
    }
    if (auto ap = impl_->audit.append(tx, who, e); !ap) return ap;
    out = std::move(plan);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<std::vector<Plan>> Billing::list_plans(bool include_inactive) {
  std::vector<Plan> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_plan_list, {Value(include_inactive)});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          auto p = read_plan(*rows, i);
          if (!p) return std::unexpected(p.error());
          out.push_back(std::move(*p));
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Plan> Billing::get_plan(const std::string& id_or_code, std::optional<int> version) {
  std::optional<Plan> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_plan_get, {Value(id_or_code), version ? Value(std::int64_t{*version}) : Value()});
        if (!rows) return std::unexpected(rows.error());
        if (rows->empty()) return fail(Errc::not_found, "no plan '" + id_or_code + "'");
        auto p = read_plan(*rows, 0);
        if (!p) return std::unexpected(p.error());
        out = std::move(*p);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<Coupon> Billing::create_coupon(const Json& input, const audit::Context& who) {
  if (auto r = only_members(input, {"code", "name", "percent_off_bps", "amount_off", "currency", "duration",
                                    "duration_months", "max_redemptions", "redeem_by"});
      !r) {
    return std::unexpected(r.error());
  }
  Coupon c;
  auto code = text_member(input, "code", 64);
  if (!code) return std::unexpected(code.error());
  if (!*code || !valid_code(**code))
    return fail(Errc::invalid_argument, "code is required: 1-64 letters, digits, '-' or '_'");
  c.code = **code;
  auto name = text_member(input, "name", 200);
  if (!name) return std::unexpected(name.error());
  c.name = name->value_or(c.code);
  auto pct = int_member(input, "percent_off_bps", 1, 10000);
  if (!pct) return std::unexpected(pct.error());
  auto amount = int_member(input, "amount_off", 1, k_max_amount);
  if (!amount) return std::unexpected(amount.error());
  if (pct->has_value() == amount->has_value()) {
    return fail(Errc::invalid_argument, "give exactly one of percent_off_bps (1-10000) and amount_off");
  }
  c.percent_off_bps = pct->value_or(0);
  c.amount_off = amount->value_or(0);
  auto currency = text_member(input, "currency", 3);
  if (!currency) return std::unexpected(currency.error());
  if (c.amount_off > 0) {
    if (!*currency || !valid_currency(**currency)) {
      return fail(Errc::invalid_argument, "currency (ISO 4217) is required with amount_off");
    }
    c.currency = **currency;
  }
  auto duration = text_member(input, "duration", 20);
  if (!duration) return std::unexpected(duration.error());
  c.duration = duration->value_or("once");
  if (c.duration != "once" && c.duration != "repeating" && c.duration != "forever") {
    return fail(Errc::invalid_argument, "duration must be once, repeating or forever");
  }
  auto months = int_member(input, "duration_months", 1, 120);
  if (!months) return std::unexpected(months.error());
  if (c.duration == "repeating" && !*months) {
    return fail(Errc::invalid_argument, "duration_months (1-120) is required with duration repeating");
  }
  c.duration_months = static_cast<int>(months->value_or(0));
  auto max = int_member(input, "max_redemptions", 1, k_max_amount);
  if (!max) return std::unexpected(max.error());
  c.max_redemptions = *max;
  auto redeem_by = time_member(input, "redeem_by");
  if (!redeem_by) return std::unexpected(redeem_by.error());
  c.redeem_by = *redeem_by;
  c.id = new_uuid_v7(impl_->clock);
  c.created_at = impl_->now();
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_coupon_insert,
                          {Value(c.id), Value(c.code), Value(c.name), Value(c.percent_off_bps), Value(c.amount_off),
                           Value(c.currency), Value(c.duration), Value(std::int64_t{c.duration_months}),
                           opt(c.max_redemptions), opt(c.redeem_by), Value(true), Value(c.created_at)});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) return fail(Errc::conflict, "a coupon with this code exists");
      return std::unexpected(ins.error());
    }
    audit::Event e{.action = "coupon.created", .resource_type = "coupon", .resource_id = c.id};
    e.changes = audit::created_changes(to_json(c));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return c;
}

Result<std::vector<Coupon>> Billing::list_coupons() {
  std::vector<Coupon> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_coupon_list);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_coupon(*rows, i));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Coupon> Billing::deactivate_coupon(const std::string& id, const audit::Context& who) {
  std::optional<Coupon> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto c = impl_->coupon(tx, id);
    if (!c) return std::unexpected(c.error());
    if (!*c) return fail(Errc::not_found, "no coupon " + id);
    auto up = tx.execute(k_coupon_deactivate, {Value((*c)->id), Value(false)});
    if (!up) return std::unexpected(up.error());
    audit::Event e{.action = "coupon.deactivated", .resource_type = "coupon", .resource_id = (*c)->id};
    audit::add_change(e.changes, "active", (*c)->active, false);
    if (auto a = impl_->audit.append(tx, who, e); !a) return a;
    (*c)->active = false;
    out = **c;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<TaxRateRow> Billing::put_tax_rate(const Json& input, const audit::Context& who) {
  if (auto r = only_members(input, {"country", "region", "name", "bps", "inclusive"}); !r) {
    return std::unexpected(r.error());
  }
  TaxRateRow t;
  auto country = text_member(input, "country", 2);
  if (!country) return std::unexpected(country.error());
  if (!*country || (*country)->size() != 2 || !std::isupper(static_cast<unsigned char>((**country)[0])) ||
      !std::isupper(static_cast<unsigned char>((**country)[1]))) {
    return fail(Errc::invalid_argument, "country must be an ISO 3166-1 alpha-2 code such as DE");
  }
  t.country = **country;
  auto region = text_member(input, "region", 10);
  if (!region) return std::unexpected(region.error());
  t.region = region->value_or("");
  auto name = text_member(input, "name", 100);
  if (!name) return std::unexpected(name.error());
  t.name = name->value_or("Tax");
  auto bps = int_member(input, "bps", 0, 10000);
  if (!bps) return std::unexpected(bps.error());
  if (!*bps) return fail(Errc::invalid_argument, "bps is required (basis points: 1900 = 19%)");
  t.bps = **bps;
  auto inclusive = bool_member(input, "inclusive");
  if (!inclusive) return std::unexpected(inclusive.error());
  t.inclusive = inclusive->value_or(false);
  t.id = new_uuid_v7(impl_->clock);
  t.created_at = impl_->now();
  std::optional<TaxRateRow> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_tax_upsert, {Value(t.id), Value(t.country), Value(t.region), Value(t.name), Value(t.bps),
                                         Value(t.inclusive), Value(t.created_at)});
    if (!ins) return std::unexpected(ins.error());
    auto row = tx.execute(k_tax_get, {Value(t.country), Value(t.region)});
    if (!row) return std::unexpected(row.error());
    out = read_tax(*row, 0);
    audit::Event e{.action = "tax_rate.updated", .resource_type = "tax_rate", .resource_id = out->id};
    e.changes = audit::created_changes(to_json(*out));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<std::vector<TaxRateRow>> Billing::list_tax_rates() {
  std::vector<TaxRateRow> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_tax_list);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_tax(*rows, i));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

// ---- account ----------------------------------------------------------------------------------------------------

Result<Account> Billing::get_account(const std::string& tenant_id) {
  std::optional<Account> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto a = impl_->account(tx, false);
                           if (!a) return std::unexpected(a.error());
                           out = std::move(*a);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<Account> Billing::put_account(const std::string& tenant_id, const Json& input, bool super_admin,
                                     const audit::Context& who) {
  if (auto r = only_members(input, {"legal_name", "email", "address", "country", "region", "currency", "tax_ids",
                                    "payment_method", "proration", "test_mode"});
      !r) {
    return std::unexpected(r.error());
  }
  std::optional<Account> out;
  auto r = impl_->tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto existing = tx.execute(Impl::postgres(tx) ? k_account_get_locked : k_account_get);
    if (!existing) return std::unexpected(existing.error());
    const bool creating = existing->empty();
    Account a = creating ? Account{} : read_account(*existing, 0);
    const Account before = a;
    a.tenant_id = tenant_id;
    for (auto [field, target, max] : {std::tuple{"legal_name", &a.legal_name, 200}, std::tuple{"email", &a.email, 254},
                                      std::tuple{"region", &a.region, 10}}) {
      auto v = text_member(input, field, max);
      if (!v) return std::unexpected(v.error());
      if (*v) *target = **v;
    }
    if (a.legal_name.empty()) return fail(Errc::invalid_argument, "legal_name is required");
    if (!valid_email_address(a.email)) {
      return fail(Errc::invalid_argument, "email must be an email address");
    }
    auto country = text_member(input, "country", 2);
    if (!country) return std::unexpected(country.error());
    if (*country) {
      if ((*country)->size() != 2 || !std::isupper(static_cast<unsigned char>((**country)[0])) ||
          !std::isupper(static_cast<unsigned char>((**country)[1]))) {
        return fail(Errc::invalid_argument, "country must be an ISO 3166-1 alpha-2 code such as DE");
      }
      a.country = **country;
    }
    auto currency = text_member(input, "currency", 3);
    if (!currency) return std::unexpected(currency.error());
    if (*currency) {
      if (!valid_currency(**currency)) return fail(Errc::invalid_argument, "currency must be an ISO 4217 code");
      if (!creating && **currency != a.currency) {
        auto subs = tx.execute(k_sub_list);
        if (!subs) return std::unexpected(subs.error());
        for (std::size_t i = 0; i < subs->rows.size(); ++i) {
          if (read_sub(*subs, i).status != Status::cancelled) {
            return fail(Errc::conflict, "the currency cannot change while a subscription is live");
          }
        }
        // Amounts are minor units of the account's currency: a balance or an open invoice would change value.
        if (a.credit_balance != 0) {
          return fail(Errc::conflict, "the currency cannot change while the account has a credit balance");
        }
        auto open = tx.execute(k_invoice_list, {Value(std::string("open"))});
        if (!open) return std::unexpected(open.error());
        if (!open->empty()) return fail(Errc::conflict, "the currency cannot change while an invoice is open");
      }
      a.currency = **currency;
    }
    if (a.currency.empty()) return fail(Errc::invalid_argument, "currency is required");
    for (auto [field, target] : {std::pair{"address", &a.address}, std::pair{"tax_ids", &a.tax_ids}}) {
      if (auto it = input.find(field); it != input.end()) {
        if (!it->is_array() || it->size() > 10) {
          return fail(Errc::invalid_argument, std::string(field) + " must be an array of up to 10 strings");
        }
        target->clear();
        for (const auto& e : *it) {
          if (!e.is_string() || e.get<std::string>().size() > 200) {
            return fail(Errc::invalid_argument, std::string(field) + " entries must be strings of up to 200 bytes");
          }
          target->push_back(e.get<std::string>());
        }
      }
    }
    auto method = text_member(input, "payment_method", 200);
    if (!method) return std::unexpected(method.error());
    if (*method) {
      if (!(*method)->empty() && !impl_->gateway.accepts(**method)) {
        return fail(Errc::invalid_argument,
                    "payment_method is not accepted by the " + std::string(impl_->gateway.name()) + " gateway");
      }
      a.payment_method = **method;
    }
    auto proration = text_member(input, "proration", 20);
    if (!proration) return std::unexpected(proration.error());
    if (*proration) {
      auto m = parse_proration_mode(**proration);
      if (!m) return fail(Errc::invalid_argument, "proration must be daily or per_second");
      a.proration = *m;
    }
    auto test_mode = bool_member(input, "test_mode");
    if (!test_mode) return std::unexpected(test_mode.error());
    if (*test_mode && **test_mode != a.test_mode) {
      if (!super_admin) return fail(Errc::forbidden, "only a super admin may change test_mode");
      a.test_mode = **test_mode;
    }
    const Instant now = impl_->now();
    a.updated_at = now;
    if (creating) {
      a.created_at = now;
      auto ins = tx.execute(
          k_account_insert,
          {Value(a.legal_name), Value(a.email), Value(Json(a.address).dump()), Value(a.country), Value(a.region),
           Value(a.currency), Value(Json(a.tax_ids).dump()), Value(a.payment_method), Value(std::int64_t{0}),
           Value(std::string(proration_mode_name(a.proration))), Value(a.test_mode), Value(now)});
      if (!ins) return std::unexpected(ins.error());
    } else {
      auto up = tx.execute(k_account_update,
                           {Value(a.legal_name), Value(a.email), Value(Json(a.address).dump()), Value(a.country),
                            Value(a.region), Value(a.currency), Value(Json(a.tax_ids).dump()), Value(a.payment_method),
                            Value(std::string(proration_mode_name(a.proration))), Value(a.test_mode), Value(now)});
      if (!up) return std::unexpected(up.error());
      // A new payment method: open invoices are retried at once (also after a hard decline).
      if (a.payment_method != before.payment_method && !a.payment_method.empty()) {
        if (auto rn = tx.execute(k_invoice_retry_now, {Value(std::int64_t{0})}); !rn)
          return std::unexpected(rn.error());
      }
    }
    Json b = creating ? Json::object() : to_json(before);
    Json after = to_json(a);
    audit::Event e{.action = creating ? "billing_account.created" : "billing_account.updated",
                   .resource_type = "billing_account",
                   .resource_id = tenant_id};
    for (auto it = after.begin(); it != after.end(); ++it) {
      if (it.key() == "updated_at" || it.key() == "created_at") continue;
      audit::add_change(e.changes, it.key(), creating ? Json(nullptr) : b[it.key()], it.value());
    }
    if (auto ap = impl_->audit.append(tx, who, std::move(e)); !ap) return ap;
    out = std::move(a);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

// ---- subscriptions ----------------------------------------------------------------------------------------------

Result<Subscription> Billing::create_subscription(const std::string& tenant_id, const Json& input,
                                                  const audit::Context& who) {
  if (auto r = only_members(input, {"plan", "seats", "trial_days", "billing_anchor_day", "coupon", "test_clock_id"});
      !r) {
    return std::unexpected(r.error());
  }
  auto plan_ref = text_member(input, "plan", 64);
  if (!plan_ref) return std::unexpected(plan_ref.error());
  if (!*plan_ref) return fail(Errc::invalid_argument, "plan (a plan's code or id) is required");
  auto seats_in = int_member(input, "seats", 1, 1'000'000);
  if (!seats_in) return std::unexpected(seats_in.error());
  auto trial_in = int_member(input, "trial_days", 0, 730);
  if (!trial_in) return std::unexpected(trial_in.error());
  auto anchor_day = int_member(input, "billing_anchor_day", 1, 31);
  if (!anchor_day) return std::unexpected(anchor_day.error());
  auto coupon_code = text_member(input, "coupon", 64);
  if (!coupon_code) return std::unexpected(coupon_code.error());
  auto clock_id = text_member(input, "test_clock_id", 64);
  if (!clock_id) return std::unexpected(clock_id.error());
  if (trial_in->value_or(0) > 0 && *anchor_day) {
    return fail(Errc::invalid_argument, "billing_anchor_day cannot be combined with a trial (the trial's end anchors)");
  }

  Impl& s = *impl_;
  Subscription sub;
  std::vector<PendingCharge> charges;
  Instant now = 0;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    sub = Subscription{};  // the body may run again after a serialization failure
    auto acct_result = s.account(tx);
    if (!acct_result) {
      if (acct_result.error().code == Errc::not_found) return fail(Errc::conflict, acct_result.error().message);
      return std::unexpected(acct_result.error());
    }
    Account acct = std::move(*acct_result);
    auto plan = s.plan_current(Impl::raw(tx), **plan_ref);
    if (!plan) {
      if (plan.error().code == Errc::not_found) return fail(Errc::invalid_argument, plan.error().message);
      return std::unexpected(plan.error());
    }
    if (!plan->active) return fail(Errc::invalid_argument, "plan " + plan->code + " is not available");
    if (plan->price.currency != acct.currency) {
      return fail(Errc::invalid_argument, "plan " + plan->code + " is priced in " + plan->price.currency +
                                              " but the billing account's currency is " + acct.currency);
    }
    if (*clock_id) {
      if (!acct.test_mode) return fail(Errc::conflict, "test clocks need a billing account in test mode");
      auto c = s.test_clock(tx, **clock_id);
      if (!c) {
        if (c.error().code == Errc::not_found) return fail(Errc::invalid_argument, c.error().message);
        return std::unexpected(c.error());
      }
      now = c->frozen_time;
      sub.test_clock_id = c->id;
    } else {
      now = s.now();
    }
    sub.tenant_id = tenant_id;
    sub.id = new_uuid_v7(s.clock);
    s.mark_plan_changed(tenant_id);
    sub.plan_id = plan->id;
    sub.plan_version = plan->price.version;
    sub.seats = seats_in->value_or(std::max<std::int64_t>(1, plan->price.included_seats));
    sub.created_at = sub.updated_at = now;
    if (*coupon_code) {
      auto c = s.coupon(Impl::raw(tx), **coupon_code);
      if (!c) return std::unexpected(c.error());
      if (!*c || !(*c)->active) return fail(Errc::invalid_argument, "no active coupon '" + **coupon_code + "'");
      if ((*c)->redeem_by && *(*c)->redeem_by < now) return fail(Errc::invalid_argument, "the coupon has expired");
      if ((*c)->amount_off > 0 && (*c)->currency != acct.currency) {
        return fail(Errc::invalid_argument, "the coupon's currency is not the account's");
      }
      auto redeemed = Impl::raw(tx).execute(k_coupon_redeem, {Value((*c)->id)});
      if (!redeemed) return std::unexpected(redeemed.error());
      if (redeemed->affected_rows != 1) return fail(Errc::conflict, "the coupon has reached its redemption limit");
      sub.coupon_id = (*c)->id;
      sub.coupon_start = now;
    }
    const int trial_days = static_cast<int>(trial_in->value_or(plan->price.trial_days));
    if (trial_days > 0 && *anchor_day) {
      return fail(Errc::invalid_argument, "billing_anchor_day cannot be combined with a trial (plan " + plan->code +
                                              " has one; send trial_days 0 to start without it)");
    }
    std::vector<Line> lines;
    if (trial_days > 0) {
      sub.status = Status::trial;
      sub.trial_end = now + std::int64_t{trial_days} * 86400;
      sub.anchor = *sub.trial_end;
      sub.cycle = 0;
      sub.current_period_start = now;
      sub.current_period_end = *sub.trial_end;
    } else {
      sub.status = Status::active;
      if (*anchor_day) {
        const Instant first_end = next_anchor_day(now, static_cast<int>(**anchor_day));
        std::tie(sub.anchor, sub.cycle) =
            anchor_keeping_day(first_end, static_cast<int>(**anchor_day), plan->price.interval);
        sub.current_period_start = now;
        sub.current_period_end = first_end;
        const Instant full_start = boundary(sub.anchor, plan->price.interval, sub.cycle - 1);
        auto l = Impl::cycle_lines(*plan, sub.seats, full_start, first_end);
        if (!l) return std::unexpected(l.error());
        lines = std::move(*l);
        if (full_start < now) {
          if (auto p = Impl::prorate_lines(lines, full_start, first_end, now, acct.proration); !p) return p;
        }
      } else {
        sub.anchor = now;
        sub.cycle = 1;
        sub.current_period_start = now;
        sub.current_period_end = boundary(now, plan->price.interval, 1);
        auto l = Impl::cycle_lines(*plan, sub.seats, now, sub.current_period_end);
        if (!l) return std::unexpected(l.error());
        lines = std::move(*l);
      }
    }
    auto ins = tx.execute(
        k_sub_insert, {Value(sub.id), Value(sub.plan_id), Value(std::int64_t{sub.plan_version}),
                       Value(std::string(status_name(sub.status))), Value(sub.seats), Value(sub.anchor),
                       Value(sub.cycle), Value(sub.current_period_start), Value(sub.current_period_end),
                       opt(sub.trial_end), Value(false), Value(), Value(), opt(sub.coupon_id), opt(sub.coupon_start),
                       Value(std::int64_t{0}), opt(sub.test_clock_id), Value(now), Value(false)});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) {
        return fail(Errc::conflict, "this tenant already has a live subscription; change it instead");
      }
      return std::unexpected(ins.error());
    }
    if (!lines.empty()) {
      Impl::IssueOptions o{.reason = "subscription_create",
                           .period_start = sub.current_period_start,
                           .period_end = sub.current_period_end,
                           .cycle_key = sub.id + ":" + std::to_string(sub.current_period_start),
                           .with_coupon = true};
      auto inv = s.issue_invoice(tx, acct, &sub, std::move(lines), o, now, &charges, true);
      if (!inv) return std::unexpected(inv.error());
      if (auto sv = s.save(tx, sub, now); !sv) return sv;
    }
    if (auto e = s.emit(tx, "subscription.created", {{"subscription", to_json(sub)}}); !e) return e;
    return s.record(tx, &who, "subscription.created", "subscription", sub.id, audit::created_changes(to_json(sub)));
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle(
          charges, tenant_id, [&](const PendingCharge&) { return now; }, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
  return get_subscription(tenant_id, sub.id);
}

Result<std::vector<Subscription>> Billing::list_subscriptions(const std::string& tenant_id) {
  return impl_->tenant_rows(tenant_id, k_sub_list, {}, &read_sub);
}

Result<Subscription> Billing::get_subscription(const std::string& tenant_id, const std::string& id) {
  std::optional<Subscription> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto sub = impl_->subscription(tx, id, false);
                           if (!sub) return std::unexpected(sub.error());
                           out = std::move(*sub);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

namespace {

// A plan or seat change, computed once for the preview and the change itself.
struct Change {
  Plan from;
  Plan to;
  std::int64_t seats = 1;
  bool interval_change = false;
  Proration proration;      // credit / charge / net of the change
  std::vector<Line> lines;  // what is invoiced now (empty: nothing)
  Instant new_anchor = 0;   // for an interval change: the new period
  Instant new_period_end = 0;
  bool new_period_discounted = false;  // the coupon discounts the new period
};

}  // namespace

// A template so it can take Billing's private Impl.
template <class Impl>
Result<Change> compute_change(Impl& s, TenantTransaction& tx, const Subscription& sub, const Account& acct,
                              const Json& input, Instant now) {
  {
    if (auto r = only_members(input, {"plan", "seats"}); !r) return std::unexpected(r.error());
    auto plan_ref = text_member(input, "plan", 64);
    if (!plan_ref) return std::unexpected(plan_ref.error());
    auto seats = int_member(input, "seats", 1, 1'000'000);
    if (!seats) return std::unexpected(seats.error());
    if (!*plan_ref && !*seats) return fail(Errc::invalid_argument, "give plan, seats or both");
    if (sub.status != Status::trial && sub.status != Status::active && sub.status != Status::past_due) {
      return fail(Errc::conflict, "a " + std::string(status_name(sub.status)) + " subscription cannot change");
    }
    Change c;
    auto from = s.plan_version(s.raw(tx), sub.plan_id, sub.plan_version);
    if (!from) return std::unexpected(from.error());
    c.from = *from;
    if (*plan_ref) {
      auto to = s.plan_current(s.raw(tx), **plan_ref);
      if (!to) {
        if (to.error().code == Errc::not_found) return fail(Errc::invalid_argument, to.error().message);
        return std::unexpected(to.error());
      }
      if (!to->active) return fail(Errc::invalid_argument, "plan " + to->code + " is not available");
      if (to->price.currency != acct.currency) {
        return fail(Errc::invalid_argument, "plan " + to->code + " is priced in " + to->price.currency);
      }
      c.to = *to;
    } else {
      c.to = *from;
    }
    c.seats = seats->value_or(sub.seats);
    if (sub.status == Status::trial) return c;  // nothing is billed during a trial
    // Prorate what the customer pays: with a coupon that applies to this period, the discounted price.
    std::optional<Coupon> coupon;
    if (sub.coupon_id) {
      auto found = s.coupon(s.raw(tx), *sub.coupon_id);
      if (!found) return std::unexpected(found.error());
      coupon = *found;
    }
    // Whether the coupon discounts a period starting at `period_start` (not the current one: see below).
    auto applies_from = [&](Instant period_start) {
      if (!coupon) return false;
      if (coupon->duration == "forever") return true;
      if (coupon->duration == "once") return false;  // used by the first invoice, never by a later period
      return period_start < add_months(sub.coupon_start.value_or(period_start), coupon->duration_months);
    };
    auto discounted = [&](std::int64_t amount, bool applies) -> Result<std::int64_t> {
      if (!applies || !coupon) return amount;
      if (coupon->percent_off_bps > 0) {
        auto off = apply_bps(amount, coupon->percent_off_bps);
        if (!off) return off;
        return amount - *off;
      }
      return std::max<std::int64_t>(0, amount - coupon->amount_off);
    };
    // The current period is prorated at what its invoice charged: whether that invoice carried the coupon is
    // recorded when the period starts. Comparing the coupon's start with the period's start cannot tell the first
    // period from a new one that starts in the same second (an interval change right after subscribing), nor see
    // a once coupon first used at a trial's end. Only rows from before the flag with a repeating or forever coupon
    // lack it (migration 0008 set it for once coupons); their rule depends on the period's start alone.
    const bool current_discounted = coupon && sub.period_discounted.value_or(applies_from(sub.current_period_start));
    auto old_gross = period_amount(c.from.price, sub.seats);
    if (!old_gross) return std::unexpected(old_gross.error());
    auto new_gross = period_amount(c.to.price, c.seats);
    if (!new_gross) return std::unexpected(new_gross.error());
    auto old_amount = discounted(*old_gross, current_discounted);
    if (!old_amount) return std::unexpected(old_amount.error());
    auto new_amount = discounted(*new_gross, current_discounted);
    if (!new_amount) return std::unexpected(new_amount.error());
    const std::string old_label = c.from.name + " x " + std::to_string(sub.seats) + " seats";
    const std::string new_label = c.to.name + " x " + std::to_string(c.seats) + " seats";
    c.interval_change = c.from.price.interval != c.to.price.interval;
    // The fraction is of the whole period the price is for: a first period cut short by a billing anchor day starts
    // at `now` but was invoiced as its part of the period from the previous anchor day, so measuring from its own
    // start would credit the full price for a few days' payment. Every other period starts there anyway.
    const Instant priced_from = boundary(sub.anchor, c.from.price.interval, sub.cycle - 1);
    if (!c.interval_change) {
      auto p = prorate(*old_amount, *new_amount, priced_from, sub.current_period_end, now, acct.proration);
      if (!p) return std::unexpected(p.error());
      c.proration = *p;
      if (p->net < 0 && !s.settings.downgrade_credit) return c;  // a downgrade gives nothing back
      if (p->credit == 0 && p->charge == 0) return c;
      Line credit{LineKind::proration,
                  "Unused time on " + old_label,
                  1,
                  -p->credit,
                  -p->credit,
                  now,
                  sub.current_period_end,
                  true};
      Line charge{LineKind::proration,
                  "Remaining time on " + new_label,
                  1,
                  p->charge,
                  p->charge,
                  now,
                  sub.current_period_end,
                  true};
      c.lines = {credit, charge};
      return c;
    }
    // Another interval: the unused time is credited and a new period starts now (Stripe resets the anchor).
    auto credit = prorate_remaining(*old_amount, priced_from, sub.current_period_end, now, acct.proration);
    if (!credit) return std::unexpected(credit.error());
    c.new_anchor = now;
    c.new_period_end = boundary(now, c.to.price.interval, 1);
    auto lines = s.cycle_lines(c.to, c.seats, now, c.new_period_end);
    if (!lines) return std::unexpected(lines.error());
    std::int64_t charge = 0;
    for (const auto& l : *lines) charge += l.amount;
    // The new period is discounted as its renewal would be.
    c.new_period_discounted = applies_from(now);
    auto new_period = discounted(charge, c.new_period_discounted);
    if (!new_period) return std::unexpected(new_period.error());
    if (*new_period != charge) {
      lines->push_back(Line{LineKind::one_off, "Discount " + coupon->code, 1, *new_period - charge,
                            *new_period - charge, now, c.new_period_end, false});
      charge = *new_period;
    }
    std::int64_t credited = *credit;
    if (charge - credited < 0 && !s.settings.downgrade_credit) credited = charge;
    c.proration = Proration{credited, charge, charge - credited, 0, 0};
    c.lines.push_back(Line{LineKind::proration, "Unused time on " + old_label, 1, -credited, -credited, now,
                           sub.current_period_end, true});
    for (auto& l : *lines) c.lines.push_back(std::move(l));
    return c;
  }
}

Result<Json> Billing::preview_change(const std::string& tenant_id, const std::string& id, const Json& input) {
  Impl& s = *impl_;
  Json out;
  auto r = s.tenant(
      tenant_id,
      [&](TenantTransaction& tx) -> Result<void> {
        auto sub = s.subscription(tx, id, false);
        if (!sub) return std::unexpected(sub.error());
        auto acct = s.account(tx, false);
        if (!acct) return std::unexpected(acct.error());
        auto now = s.now_for(tx, sub->test_clock_id);
        if (!now) return std::unexpected(now.error());
        if (*now >= sub->current_period_end && sub->status != Status::paused && sub->status != Status::cancelled &&
            sub->status != Status::unpaid) {
          return fail(Errc::conflict, "the current period ended and is being renewed; preview again in a moment");
        }
        auto c = compute_change(s, tx, *sub, *acct, input, *now);
        if (!c) return std::unexpected(c.error());
        out = {{"subscription_id", sub->id},
               {"plan_id", c->to.id},
               {"plan_version", c->to.price.version},
               {"seats", c->seats},
               {"currency", acct->currency},
               {"proration_mode", std::string(proration_mode_name(acct->proration))},
               {"proration_date", time_json(*now)},
               {"credit", c->proration.credit},
               {"charge", c->proration.charge},
               {"net", c->proration.net}};
        if (c->lines.empty()) {
          out["invoice"] = nullptr;
          return {};
        }
        Impl::IssueOptions o{.reason = "subscription_update",
                             .period_start = *now,
                             .period_end = c->interval_change ? c->new_period_end : sub->current_period_end};
        auto inv = s.issue_invoice(tx, *acct, &*sub, c->lines, o, *now, nullptr, false);
        if (!inv) return std::unexpected(inv.error());
        Json j = to_json(*inv);
        j["id"] = nullptr;
        j["number"] = nullptr;
        j["status"] = "preview";
        out["invoice"] = j;
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Subscription> Billing::change_subscription(const std::string& tenant_id, const std::string& id,
                                                  const Json& input, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now = 0;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    auto t = s.now_for(tx, sub->test_clock_id);
    if (!t) return std::unexpected(t.error());
    now = *t;
    // A period that ended before the billing run got to it is renewed first, so the change prorates the current one.
    if (auto a = s.advance_subscription(tx, *sub, *acct, now, charges, nullptr); !a) return a;
    auto c = compute_change(s, tx, *sub, *acct, input, now);
    if (!c) return std::unexpected(c.error());
    const Json before = to_json(*sub);
    const Instant old_end = sub->current_period_end;
    s.mark_plan_changed(tenant_id);
    sub->plan_id = c->to.id;
    sub->plan_version = c->to.price.version;
    sub->seats = c->seats;
    if (c->interval_change) {
      sub->anchor = c->new_anchor;
      sub->cycle = 1;
      sub->current_period_start = now;
      sub->current_period_end = c->new_period_end;
      sub->period_discounted = c->new_period_discounted;
    }
    if (!c->lines.empty()) {
      Impl::IssueOptions o{.reason = "subscription_update",
                           .period_start = now,
                           .period_end = c->interval_change ? c->new_period_end : old_end,
                           .cycle_key = std::nullopt};  // a change's invoice is not a period's
      auto inv = s.issue_invoice(tx, *acct, &*sub, c->lines, o, now, &charges, true);
      if (!inv) return std::unexpected(inv.error());
    }
    if (auto sv = s.save(tx, *sub, now); !sv) return sv;
    Json after = to_json(*sub);
    Json changes = Json::object();
    for (auto it = after.begin(); it != after.end(); ++it) {
      if (it.key() != "updated_at") audit::add_change(changes, it.key(), before[it.key()], it.value());
    }
    if (auto e =
            s.emit(tx, "subscription.updated",
                   {{"subscription", after},
                    {"previous_plan_id", before["plan_id"]},
                    {"previous_seats", before["seats"]},
                    {"proration",
                     {{"credit", c->proration.credit}, {"charge", c->proration.charge}, {"net", c->proration.net}}}});
        !e) {
      return e;
    }
    return s.record(tx, &who, "subscription.updated", "subscription", sub->id, changes);
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle(
          charges, tenant_id, [&](const PendingCharge&) { return now; }, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
  return get_subscription(tenant_id, id);
}

Result<Subscription> Billing::pause(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::optional<Subscription> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto now = s.now_for(tx, sub->test_clock_id);
    if (!now) return std::unexpected(now.error());
    const std::string before(status_name(sub->status));
    if (auto t = s.transition(tx, *sub, Status::paused, "requested"); !t) return t;
    sub->paused_at = *now;
    if (auto sv = s.save(tx, *sub, *now); !sv) return sv;
    // Dunning stops while paused.
    auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
    if (!open) return std::unexpected(open.error());
    for (std::size_t i = 0; i < open->rows.size(); ++i) {
      Invoice inv = read_invoice(*open, i);
      auto in_flight = s.payment_in_flight(tx, inv.id);
      if (!in_flight) return std::unexpected(in_flight.error());
      if (*in_flight) continue;  // a charge of unknown outcome is still sent again with its key
      inv.next_payment_attempt.reset();
      if (auto sv = s.save_payment_state(tx, inv, *now); !sv) return sv;
    }
    Json changes = Json::object();
    audit::add_change(changes, "status", before, "paused");
    if (auto a = s.record(tx, &who, "subscription.paused", "subscription", sub->id, changes); !a) return a;
    out = std::move(*sub);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  return *out;
}

Result<Subscription> Billing::resume(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now = 0;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    charges.clear();
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    if (sub->status != Status::paused) return fail(Errc::conflict, "only a paused subscription can resume");
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    auto t = s.now_for(tx, sub->test_clock_id);
    if (!t) return std::unexpected(t.error());
    now = *t;
    sub->paused_at.reset();
    auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
    if (!open) return std::unexpected(open.error());
    bool owes = false;
    for (std::size_t i = 0; i < open->rows.size(); ++i) {
      Invoice inv = read_invoice(*open, i);
      if (inv.amount_remaining <= 0) continue;
      owes = true;
      inv.next_payment_attempt = now;  // dunning resumes with a retry now
      if (auto sv = s.save_payment_state(tx, inv, now); !sv) return sv;
    }
    if (sub->cancel_at_period_end && now >= sub->current_period_end) {
      // It was to end with the period that ran out while paused: it ends now instead of starting a new one.
      if (auto tr = s.transition(tx, *sub, Status::cancelled, "period_end"); !tr) return tr;
      sub->cancelled_at = now;
    } else if (sub->trial_end && *sub->trial_end > now) {
      if (auto tr = s.transition(tx, *sub, Status::trial, "resumed"); !tr) return tr;
    } else {
      if (auto tr = s.transition(tx, *sub, owes ? Status::past_due : Status::active, "resumed"); !tr) return tr;
      if (now >= sub->current_period_end) {
        // The paid period ran out while paused: a new one starts now.
        auto plan = s.plan_version(Impl::raw(tx), sub->plan_id, sub->plan_version);
        if (!plan) return std::unexpected(plan.error());
        sub->trial_end.reset();
        sub->anchor = now;
        sub->cycle = 1;
        sub->current_period_start = now;
        sub->current_period_end = boundary(now, plan->price.interval, 1);
        auto lines = Impl::cycle_lines(*plan, sub->seats, now, sub->current_period_end);
        if (!lines) return std::unexpected(lines.error());
        Impl::IssueOptions o{.reason = "subscription_resume",
                             .period_start = now,
                             .period_end = sub->current_period_end,
                             .cycle_key = sub->id + ":" + std::to_string(now),
                             .with_coupon = true};
        auto inv = s.issue_invoice(tx, *acct, &*sub, std::move(*lines), o, now, &charges, true);
        if (!inv) return std::unexpected(inv.error());
      }
    }
    if (auto sv = s.save(tx, *sub, now); !sv) return sv;
    Json changes = Json::object();
    audit::add_change(changes, "status", "paused", std::string(status_name(sub->status)));
    return s.record(tx, &who, "subscription.resumed", "subscription", sub->id, changes);
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  if (auto st = s.settle(
          charges, tenant_id, [&](const PendingCharge&) { return now; }, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
  return get_subscription(tenant_id, id);
}

Result<Subscription> Billing::cancel(const std::string& tenant_id, const std::string& id, const Json& input,
                                     const audit::Context& who) {
  if (auto r = only_members(input, {"at_period_end"}); !r) return std::unexpected(r.error());
  auto at_end = bool_member(input, "at_period_end");
  if (!at_end) return std::unexpected(at_end.error());
  Impl& s = *impl_;
  std::optional<Subscription> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto sub = s.subscription(tx, id);
    if (!sub) return std::unexpected(sub.error());
    auto now = s.now_for(tx, sub->test_clock_id);
    if (!now) return std::unexpected(now.error());
    const Json before = to_json(*sub);
    if (at_end->value_or(false)) {
      if (sub->status != Status::trial && sub->status != Status::active && sub->status != Status::past_due) {
        return fail(Errc::conflict, "a " + std::string(status_name(sub->status)) +
                                        " subscription cannot be cancelled at period end; cancel it now");
      }
      sub->cancel_at_period_end = true;
      if (auto e = s.emit(tx, "subscription.updated", {{"subscription", to_json(*sub)}}); !e) return e;
    } else {
      if (auto t = s.transition(tx, *sub, Status::cancelled, "requested"); !t) return t;
      sub->cancelled_at = *now;
      auto open = tx.execute(k_invoice_open_of_sub, {Value(sub->id)});
      if (!open) return std::unexpected(open.error());
      for (std::size_t i = 0; i < open->rows.size(); ++i) {
        Invoice inv = read_invoice(*open, i);
        auto in_flight = s.payment_in_flight(tx, inv.id);
        if (!in_flight) return std::unexpected(in_flight.error());
        if (*in_flight) continue;  // a charge of unknown outcome is still sent again with its key
        inv.next_payment_attempt.reset();
        if (auto sv = s.save_payment_state(tx, inv, *now); !sv) return sv;
      }
    }
    if (auto sv = s.save(tx, *sub, *now); !sv) return sv;
    Json after = to_json(*sub);
    Json changes = Json::object();
    for (auto it = after.begin(); it != after.end(); ++it) {
      if (it.key() != "updated_at") audit::add_change(changes, it.key(), before[it.key()], it.value());
    }
    if (auto a = s.record(tx, &who, "subscription.cancelled", "subscription", sub->id, changes); !a) return a;
    out = std::move(*sub);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  s.notify();
  return *out;
}

// ---- invoices ---------------------------------------------------------------------------------------------------

Result<std::vector<Invoice>> Billing::list_invoices(const std::string& tenant_id, const std::string& status) {
  return impl_->tenant_rows(tenant_id, k_invoice_list, {Value(status)}, &read_invoice);
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

Result<Invoice> Billing::create_invoice(const std::string& tenant_id, const Json& input, const audit::Context& who) {
  if (auto r = only_members(input, {"lines", "memo"}); !r) return std::unexpected(r.error());
  auto memo = text_member(input, "memo", 2000);
  if (!memo) return std::unexpected(memo.error());
  auto it = input.find("lines");
  if (it == input.end() || !it->is_array() || it->empty() || it->size() > 500) {
    return fail(Errc::invalid_argument, "lines must be an array of 1-500 lines");
  }
  std::vector<Line> lines;
  for (const auto& l : *it) {
    if (auto r = only_members(l, {"description", "quantity", "unit_amount"}); !r) return std::unexpected(r.error());
    auto d = text_member(l, "description", 500);
    if (!d) return std::unexpected(d.error());
    if (!*d || (*d)->empty()) return fail(Errc::invalid_argument, "lines[].description is required");
    auto q = int_member(l, "quantity", 1, 1'000'000);
    if (!q) return std::unexpected(q.error());
    auto u = int_member(l, "unit_amount", -k_max_amount, k_max_amount);
    if (!u) return std::unexpected(u.error());
    if (!*u) return fail(Errc::invalid_argument, "lines[].unit_amount is required (minor units)");
    auto amount = multiply(q->value_or(1), **u);
    if (!amount) return std::unexpected(amount.error());
    lines.push_back(Line{LineKind::one_off, **d, q->value_or(1), **u, *amount, 0, 0, false});
  }
  Impl& s = *impl_;
  std::optional<Invoice> out;
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto acct = s.account(tx);
    if (!acct) return std::unexpected(acct.error());
    const Instant now = s.now();
    auto inv = s.issue_invoice(tx, *acct, nullptr, lines, {.reason = "manual", .memo = memo->value_or("")}, now,
                               nullptr, false);
    if (!inv) return std::unexpected(inv.error());
    inv->status = "draft";
    inv->finalized_at.reset();
    inv->paid_at.reset();
    inv->amount_remaining = 0;
    // Credit and what is due are settled at finalization; the draft stores (and shows) none.
    inv->totals.credit_applied = 0;
    inv->totals.credit_created = 0;
    inv->totals.amount_due = 0;
    auto ins = tx.execute(k_invoice_insert, {Value(inv->id),
                                             Value(),
                                             Value(),
                                             Value(),
                                             Value(std::string("draft")),
                                             Value(inv->billing_reason),
                                             Value(inv->currency),
                                             Value(now),
                                             Value(now),
                                             Value(inv->totals.subtotal),
                                             Value(inv->totals.discount),
                                             Value(std::string()),
                                             Value(inv->totals.tax),
                                             Value(inv->totals.tax_inclusive),
                                             Value(inv->tax_label),
                                             Value(inv->totals.total),
                                             Value(std::int64_t{0}),
                                             Value(std::int64_t{0}),
                                             Value(std::int64_t{0}),
                                             Value(std::int64_t{0}),
                                             Value(std::int64_t{0}),
                                             Value(std::int64_t{0}),
                                             Value(),
                                             Value(inv->customer.dump()),
                                             Value(inv->memo),
                                             Value(),
                                             Value(now),
                                             Value(),
                                             Value(),
                                             Value()});
    if (!ins) return std::unexpected(ins.error());
    for (std::size_t i = 0; i < inv->lines.size(); ++i) {
      const Line& l = inv->lines[i];
      auto lr = tx.execute(k_line_insert,
                           {Value(inv->id), Value(static_cast<std::int64_t>(i + 1)),
                            Value(std::string(line_kind_name(l.kind))), Value(l.description), Value(l.quantity),
                            Value(l.unit_amount), Value(l.amount), Value(now), Value(now), Value(false)});
      if (!lr) return std::unexpected(lr.error());
    }
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
  Instant now = 0;
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
    auto up = tx.execute(
        k_invoice_finalize,
        {Value(inv->id), opt(inv->number), Value(inv->status), Value(inv->totals.subtotal), Value(inv->totals.discount),
         Value(inv->discount_label), Value(inv->totals.tax), Value(inv->totals.tax_inclusive), Value(inv->tax_label),
         Value(inv->totals.total), Value(inv->totals.credit_applied), Value(inv->totals.credit_created),
         Value(inv->totals.amount_due), Value(std::int64_t{0}), Value(inv->amount_remaining),
         Value(inv->customer.dump()), Value(now), opt(inv->paid_at)});
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
  if (auto st = s.settle(
          charges, tenant_id, [&](const PendingCharge&) { return now; }, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
  return get_invoice(tenant_id, id);
}

Result<Invoice> Billing::pay_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who) {
  Impl& s = *impl_;
  std::vector<PendingCharge> charges;
  Instant now = 0;
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
  if (auto st = s.settle(
          charges, tenant_id, [&](const PendingCharge&) { return now; }, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
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
  d.due_at = d.issued_at + impl_->settings.days_until_due * 86400;
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

// ---- credit notes -----------------------------------------------------------------------------------------------

Result<CreditNote> Billing::create_credit_note(const std::string& tenant_id, const Json& input,
                                               const audit::Context& who) {
  if (auto r = only_members(input, {"invoice_id", "amount", "method", "reason", "memo"}); !r) {
    return std::unexpected(r.error());
  }
  auto invoice_id = text_member(input, "invoice_id", 64);
  if (!invoice_id) return std::unexpected(invoice_id.error());
  if (!*invoice_id) return fail(Errc::invalid_argument, "invoice_id is required");
  auto amount = int_member(input, "amount", 1, k_max_amount);
  if (!amount) return std::unexpected(amount.error());
  if (!*amount) return fail(Errc::invalid_argument, "amount (minor units, > 0) is required");
  auto method = text_member(input, "method", 20);
  if (!method) return std::unexpected(method.error());
  auto reason = text_member(input, "reason", 40);
  if (!reason) return std::unexpected(reason.error());
  const std::string why = reason->value_or("other");
  if (why != "duplicate" && why != "fraudulent" && why != "order_change" && why != "product_unsatisfactory" &&
      why != "other") {
    return fail(Errc::invalid_argument,
                "reason must be duplicate, fraudulent, order_change, product_unsatisfactory or other");
  }
  auto memo = text_member(input, "memo", 2000);
  if (!memo) return std::unexpected(memo.error());
  Impl& s = *impl_;
  CreditNote note;
  std::string charge_reference;
  std::string currency;
  // First the note (with its number) and its effect on the invoice or balance; a refund goes to the provider
  // after that commits, keyed by the note, and its reference is added then.
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto inv = s.invoice(tx, **invoice_id, false);
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
    if (**amount > left) {
      return fail(Errc::invalid_argument,
                  "amount exceeds what is left to credit on the invoice (" + std::to_string(left) + ")");
    }
    note.method = method->value_or(inv->status == "open" ? "invoice" : "credit_balance");
    auto clock_now = s.now_for(tx, inv->test_clock_id);  // a test clock's invoice lives in the clock's time
    if (!clock_now) return std::unexpected(clock_now.error());
    const Instant now = *clock_now;
    if (note.method == "invoice") {
      if (inv->status != "open") return fail(Errc::invalid_argument, "method invoice is for open invoices");
      auto in_flight = s.payment_in_flight(tx, inv->id);
      if (!in_flight) return std::unexpected(in_flight.error());
      if (*in_flight) {
        return fail(Errc::conflict, "a payment of this invoice is in flight (its outcome is not known yet); try later");
      }
      if (**amount > inv->amount_remaining) {
        return fail(Errc::invalid_argument, "amount exceeds what the invoice still asks");
      }
      inv->amount_remaining -= **amount;
      if (inv->amount_remaining == 0) {
        inv->status = "paid";
        inv->paid_at = now;
        inv->next_payment_attempt.reset();
        if (auto e = s.emit(tx, "invoice.paid",
                            {{"invoice_id", inv->id}, {"number", inv->number.value_or("")}, {"by", "credit_note"}});
            !e) {
          return e;
        }
      }
      if (auto sv = s.save_payment_state(tx, *inv, now); !sv) return sv;
      if (inv->status == "paid" && inv->subscription_id) {
        if (auto st = s.settle_status(tx, *inv->subscription_id, now, "credit_note"); !st) return st;
      }
    } else if (note.method == "credit_balance" || note.method == "refund") {
      if (inv->status != "paid") return fail(Errc::invalid_argument, "refunds and credits are for paid invoices");
      if (note.method == "credit_balance") {
        if (auto b = tx.execute(k_account_balance, {Value(**amount)}); !b) {
          return std::unexpected(b.error());
        }
      } else {
        auto attempts = tx.execute(k_attempt_list, {Value(inv->id)});
        if (!attempts) return std::unexpected(attempts.error());
        for (std::size_t i = 0; i < attempts->rows.size(); ++i) {
          auto a = read_attempt(*attempts, i);
          if (a.status == "succeeded") charge_reference = a.reference;
        }
        if (charge_reference.empty()) return fail(Errc::invalid_argument, "the invoice was not paid by a charge");
        auto refunded = tx.execute(k_refund_sum, {Value(inv->id)});
        if (!refunded) return std::unexpected(refunded.error());
        const std::int64_t refundable = inv->amount_paid - refunded->int_at(0, 0).value_or(0);
        if (**amount > refundable) {
          return fail(Errc::invalid_argument,
                      "amount exceeds what was charged and not yet refunded (" + std::to_string(refundable) + ")");
        }
        currency = inv->currency;
      }
    } else {
      return fail(Errc::invalid_argument, "method must be refund, credit_balance or invoice");
    }
    const bool simulated = inv->test_clock_id.has_value();
    auto n = s.next_number(Impl::raw(tx),
                           (simulated ? "test-credit_note:" : "credit_note:") + std::to_string(year_month(now)));
    if (!n) return std::unexpected(n.error());
    note.tenant_id = tenant_id;
    note.id = new_uuid_v7(s.clock);
    note.number = invoice_number(year_month(now), *n, simulated ? "TEST-CN" : "CN");
    note.invoice_id = inv->id;
    note.amount = **amount;
    note.reason = why;
    note.memo = memo->value_or("");
    note.created_at = now;
    auto ins = tx.execute(k_credit_insert,
                          {Value(note.id), Value(note.number), Value(note.invoice_id), Value(note.amount),
                           Value(note.method), Value(note.reason), Value(note.memo), Value(std::string()), Value(now)});
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

// ---- test clocks ------------------------------------------------------------------------------------------------

Result<TestClock> Billing::create_test_clock(const std::string& tenant_id, const Json& input,
                                             const audit::Context& who) {
  if (auto r = only_members(input, {"name", "frozen_time"}); !r) return std::unexpected(r.error());
  auto name = text_member(input, "name", 200);
  if (!name) return std::unexpected(name.error());
  auto frozen = time_member(input, "frozen_time");
  if (!frozen) return std::unexpected(frozen.error());
  if (*frozen && (**frozen < 0 || **frozen > k_latest_clock_time)) {
    return fail(Errc::invalid_argument, "frozen_time must be between 1970 and 2200");
  }
  Impl& s = *impl_;
  TestClock c{new_uuid_v7(s.clock), name->value_or(""), frozen->value_or(s.now()), s.now()};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto acct = s.account(tx);
    if (!acct) {
      if (acct.error().code == Errc::not_found) return fail(Errc::conflict, acct.error().message);
      return std::unexpected(acct.error());
    }
    if (!acct->test_mode) return fail(Errc::conflict, "test clocks need a billing account in test mode");
    auto ins = tx.execute(k_clock_insert, {Value(c.id), Value(c.name), Value(c.frozen_time), Value(c.created_at)});
    if (!ins) return std::unexpected(ins.error());
    return s.record(tx, &who, "test_clock.created", "test_clock", c.id, audit::created_changes(to_json(c)));
  });
  if (!r) return std::unexpected(r.error());
  return c;
}

Result<std::vector<TestClock>> Billing::list_test_clocks(const std::string& tenant_id) {
  return impl_->tenant_rows(tenant_id, k_clock_list, {}, &read_clock);
}

Result<TestClock> Billing::get_test_clock(const std::string& tenant_id, const std::string& id) {
  std::optional<TestClock> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto c = impl_->test_clock(tx, id);
                           if (!c) return std::unexpected(c.error());
                           out = *c;
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<TestClock> Billing::advance_test_clock(const std::string& tenant_id, const std::string& id, Instant to,
                                              const audit::Context& who) {
  Impl& s = *impl_;
  auto start = get_test_clock(tenant_id, id);
  if (!start) return start;
  if (to <= start->frozen_time) return fail(Errc::invalid_argument, "frozen_time must be later than the clock's");
  if (to > k_latest_clock_time) return fail(Errc::invalid_argument, "frozen_time must be before 2200");
  if (to - start->frozen_time > std::int64_t{5} * 366 * 86400) {
    return fail(Errc::invalid_argument, "a test clock advances at most 5 years at a time");
  }
  // Step from one due moment to the next, so renewals, retries and dunning happen in the order they would.
  for (int step = 0; step < k_max_advance_steps; ++step) {
    std::vector<PendingCharge> charges;
    Instant at = to;
    bool done = false;
    auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      charges.clear();
      auto clock = s.test_clock(tx, id, true);
      if (!clock) return std::unexpected(clock.error());
      // Charges whose outcome a crash left unrecorded are sent again first, with their idempotency keys.
      auto pending = tx.execute(k_attempt_pending_of_clock, {Value(id)});
      if (!pending) return std::unexpected(pending.error());
      for (std::size_t i = 0; i < pending->rows.size(); ++i) {
        const auto& p = *pending;
        charges.push_back(PendingCharge{
            tenant_id, p.text_at(i, 0).value_or(""),
            ChargeRequest{p.text_at(i, 1).value_or(""), p.text_at(i, 2).value_or(""), p.int_at(i, 3).value_or(0),
                          p.text_at(i, 4).value_or(""), p.text_at(i, 5).value_or("")}});
      }
      auto subs = tx.execute(Impl::postgres(tx) ? k_sub_of_clock_locked : k_sub_of_clock, {Value(id)});
      if (!subs) return std::unexpected(subs.error());
      Instant next = to;
      for (std::size_t i = 0; i < subs->rows.size(); ++i) {
        Subscription sub = read_sub(*subs, i);
        if (sub.status == Status::trial || sub.status == Status::active || sub.status == Status::past_due) {
          next = std::min(next, sub.current_period_end);
        }
      }
      auto retry = tx.execute(k_invoice_retry_of_clock, {Value(id)});
      if (!retry) return std::unexpected(retry.error());
      if (auto t = retry->int_at(0, 0)) next = std::min(next, *t);
      at = std::max(next, clock->frozen_time);
      if (auto u = tx.execute(k_clock_set, {Value(id), Value(at)}); !u) return std::unexpected(u.error());
      auto acct_result = s.account(tx);
      if (!acct_result) return std::unexpected(acct_result.error());
      Account acct = std::move(*acct_result);
      for (std::size_t i = 0; i < subs->rows.size(); ++i) {
        Subscription sub = read_sub(*subs, i);
        if (auto a = s.advance_subscription(tx, sub, acct, at, charges, nullptr); !a) return a;
      }
      auto due = tx.execute(k_invoice_due_of_clock, {Value(id), Value(at)});
      if (!due) return std::unexpected(due.error());
      for (std::size_t i = 0; i < due->rows.size(); ++i) {
        if (auto rt = s.retry_invoice(tx, due->text_at(i, 0).value_or(""), at, charges, nullptr); !rt) return rt;
      }
      done = at >= to && charges.empty();
      return {};
    });
    if (!r) return std::unexpected(r.error());
    s.notify();
    if (auto st = s.settle(
            charges, tenant_id, [&](const PendingCharge&) { return at; }, nullptr);
        !st) {
      return std::unexpected(st.error());
    }
    if (done || (at >= to && charges.empty())) break;
  }
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    Json changes = Json::object();
    audit::add_change(changes, "frozen_time", time_json(start->frozen_time), time_json(to));
    return s.record(tx, &who, "test_clock.advanced", "test_clock", id, changes);
  });
  if (!r) return std::unexpected(r.error());
  return get_test_clock(tenant_id, id);
}

Result<void> Billing::delete_test_clock(const std::string& tenant_id, const std::string& id,
                                        const audit::Context& who) {
  Impl& s = *impl_;
  return s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto c = s.test_clock(tx, id);
    if (!c) return std::unexpected(c.error());
    auto used = tx.execute(k_clock_in_use, {Value(id)});
    if (!used) return std::unexpected(used.error());
    if (used->int_at(0, 0).value_or(0) > 0) {
      return fail(Errc::conflict, "cancel the subscriptions attached to this test clock first");
    }
    auto open = tx.execute(k_clock_open_invoices, {Value(id)});
    if (!open) return std::unexpected(open.error());
    if (open->int_at(0, 0).value_or(0) > 0) {
      return fail(Errc::conflict, "void or settle the open invoices on this test clock first");
    }
    auto d = tx.execute(k_clock_delete, {Value(id)});
    if (!d) return std::unexpected(d.error());
    return s.record(tx, &who, "test_clock.deleted", "test_clock", id, Json::object());
  });
}

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
