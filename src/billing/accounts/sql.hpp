#pragma once

// The SQL of billing's accounts: billing accounts, one per tenant, and their credit balance. Constant text with bind
// parameters; a TenantStatement binds the tenant as $1.

#include <array>

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
// The personal fields of an account, encrypted at rest with the tenant id as their row (tx.seal): legal name, email,
// address and tax ids (each list as its JSON text) and the payment method (the provider's reference). Country, region
// and currency stay in the clear: taxes, prices and the platform's reports are computed from them.
// Their positions in ACCOUNT_COLS.
inline constexpr std::array<std::size_t, 5> k_account_sealed_columns{1, 2, 3, 7, 8};
// Each column with its re-encryption statements (tenancy::SealedColumn).
#define ATRIUM_ACCOUNT_SEALED(column)                                                                              \
  tenancy::SealedColumn {                                                                                          \
    .field = {"billing_accounts", column},                                                                         \
    .select = {"billing_account_" column "_select",                                                                \
               "SELECT CAST(tenant_id AS TEXT), " column " FROM billing_accounts WHERE tenant_id = $1"},           \
    .update = {"billing_account_" column "_update", "UPDATE billing_accounts SET " column                          \
                                                    " = $3 WHERE tenant_id = $1 AND CAST(tenant_id AS TEXT) = $2 " \
                                                    "AND " column " = $4"},                                        \
    .control_plane = true                                                                                          \
  }
inline constexpr std::array<tenancy::SealedColumn, 5> k_account_sealed_statements{
    ATRIUM_ACCOUNT_SEALED("legal_name"), ATRIUM_ACCOUNT_SEALED("email"), ATRIUM_ACCOUNT_SEALED("address"),
    ATRIUM_ACCOUNT_SEALED("tax_ids"), ATRIUM_ACCOUNT_SEALED("payment_method")};
#undef ATRIUM_ACCOUNT_SEALED
// The fields alone, in the same order.
inline constexpr auto k_account_sealed = [] {
  std::array<tenancy::SealedField, k_account_sealed_statements.size()> out{};
  for (std::size_t f = 0; f < out.size(); ++f) out[f] = k_account_sealed_statements[f].field;
  return out;
}();

// The balance changes by a delta (never written as an absolute value read earlier, which a concurrent change would
// lose).
constexpr TenantStatement k_account_balance{
    "billing_account_balance",
    "UPDATE billing_accounts SET credit_balance = credit_balance + $2 WHERE tenant_id = $1 RETURNING credit_balance"};

}  // namespace atrium::billing
