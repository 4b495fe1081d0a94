#pragma once

// The SQL of billing's subscriptions: subscriptions, their periods and state, and the test clocks they may follow.
// Constant text with bind parameters; a TenantStatement binds the tenant as $1.

#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

using storage::Statement;
using tenancy::TenantStatement;

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
// The MRR ledger (subscriptions/mrr.cpp): a subscription's last row, and a new one ($3 seq, $4 effective_at).
constexpr TenantStatement k_mrr_last{
    "billing_mrr_last",
    "SELECT seq, effective_at, status, plan_id, plan_version, seats, currency, mrr FROM "
    "subscription_mrr WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY seq DESC "
    "LIMIT 1"};
constexpr TenantStatement k_mrr_insert{
    "billing_mrr_insert",
    "INSERT INTO subscription_mrr (tenant_id, subscription_id, seq, effective_at, status, plan_id, plan_version, "
    "seats, currency, mrr, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"};
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

}  // namespace atrium::billing
