#pragma once

// The SQL of billing's payments: payment attempts: charges sent to the provider and their outcomes. Constant text with
// bind parameters; a TenantStatement binds the tenant as $1.

#include "billing/invoicing/sql.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

using storage::Statement;
using tenancy::TenantStatement;

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

}  // namespace atrium::billing
