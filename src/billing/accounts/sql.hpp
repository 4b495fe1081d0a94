#pragma once

// The SQL of billing's accounts: billing accounts, one per tenant, and their credit balance. Constant text with bind
// parameters; a TenantStatement binds the tenant as $1.

#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

using storage::Statement;
using tenancy::TenantStatement;

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

}  // namespace atrium::billing
