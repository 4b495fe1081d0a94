#pragma once

// The SQL of product metrics: reads of product events (usage_events rows with metric "event:<type>", written by
// metering's ingestion) in a control-plane transaction scoped to the tenant. Times are Unix milliseconds; a UTC
// day is ts / 86400000 (integer division on both backends).

#include "tenancy/tenant_data.hpp"

namespace atrium::analytics::sql {

using tenancy::TenantStatement;

// Every statement of the product metrics takes, as its last parameter, one user to keep ('' for every user): an
// embed token limited to one of the tenant's customers reads that customer's events only.
#define ONLY_USER(n) " AND ($" #n " = '' OR user_id = $" #n ")"

// Active users per UTC day of [$2, $3): rows (day, users).
constexpr TenantStatement k_daily_active{
    "analytics_daily_active",
    "SELECT ts / 86400000, COUNT(DISTINCT user_id) FROM usage_events WHERE tenant_id = $1 AND user_id IS NOT NULL "
    "AND ts >= $2 AND ts < $3" ONLY_USER(4) " GROUP BY ts / 86400000 ORDER BY 1"};
// Distinct users with any product event in [$2, $3).
constexpr TenantStatement k_active_users{"analytics_active_users",
                                         "SELECT COUNT(DISTINCT user_id) FROM usage_events WHERE tenant_id = $1 AND "
                                         "user_id IS NOT NULL AND ts >= $2 AND ts < $3" ONLY_USER(4)};
// The users, properties and keys of one type's events in [$3, $4) ($2: the metric).
constexpr TenantStatement k_user_properties{
    "analytics_user_properties",
    "SELECT user_id, properties, idempotency_key FROM usage_events WHERE tenant_id = $1 AND "
    "metric = $2 AND user_id IS NOT NULL AND ts >= $3 AND ts < $4" ONLY_USER(5)};
// How many events of one type carried each value in [$3, $4): rows (value, events).
constexpr TenantStatement k_value_counts{"analytics_value_counts",
                                         "SELECT quantity, COUNT(*) FROM usage_events WHERE tenant_id = $1 AND "
                                         "metric = $2 AND ts >= $3 AND ts < $4" ONLY_USER(5) " GROUP BY quantity"};
// Users first seen (their earliest product event still kept) in [$2, $3): rows (user, first ts).
constexpr TenantStatement k_first_seen{
    "analytics_first_seen",
    "SELECT user_id, MIN(ts) FROM usage_events WHERE tenant_id = $1 AND user_id IS "
    "NOT NULL" ONLY_USER(4) " GROUP BY user_id HAVING MIN(ts) >= $2 AND MIN(ts) < $3"};
// The days each user was active in [$2, $3): rows (user, day), for retention.
constexpr TenantStatement k_user_days{"analytics_user_days",
                                      "SELECT user_id, ts / 86400000 FROM usage_events WHERE tenant_id = $1 AND "
                                      "user_id IS NOT NULL AND ts >= $2 AND ts < $3" ONLY_USER(4) " GROUP BY user_id, "
                                      "ts / 86400000"};
// Each user's first event of one type ($2: the metric): rows (user, first ts).
constexpr TenantStatement k_first_of{"analytics_first_of",
                                     "SELECT user_id, MIN(ts) FROM usage_events WHERE tenant_id = $1 AND metric = $2 "
                                     "AND user_id IS NOT NULL" ONLY_USER(3) " GROUP BY user_id"};

#undef ONLY_USER

inline constexpr TenantStatement k_all[] = {k_daily_active, k_active_users, k_user_properties, k_value_counts,
                                            k_first_seen,   k_first_of,     k_user_days};

// The MRR ledger (billing's subscription_mrr, platform scope: every tenant's rows) with each row's plan tier, changes
// effective before $1 (Unix seconds), in time order and, within a subscription, in its own order.
constexpr storage::Statement k_mrr_ledger{
    "analytics_mrr_ledger",
    "SELECT m.tenant_id, m.subscription_id, m.effective_at, m.currency, m.mrr, p.tier FROM subscription_mrr m "
    "JOIN plans p ON p.id = m.plan_id WHERE m.effective_at < $1 ORDER BY m.effective_at, m.tenant_id, "
    "m.subscription_id, m.seq"};

// Sales and marketing spend (spend.cpp): one (month, channel, currency), set, and the months [$1, $2].
constexpr storage::Statement k_spend_get{"analytics_spend_get",
                                         "SELECT month, channel, currency, amount, created_at, updated_at FROM "
                                         "marketing_spend WHERE month = $1 AND channel = $2 AND currency = $3"};
constexpr storage::Statement k_spend_upsert{
    "analytics_spend_upsert",
    "INSERT INTO marketing_spend (month, channel, currency, amount, created_at, updated_at) VALUES ($1, $2, $3, $4, "
    "$5, $5) ON CONFLICT (month, channel, currency) DO UPDATE SET amount = excluded.amount, updated_at = "
    "excluded.updated_at"};
constexpr storage::Statement k_spend_range{
    "analytics_spend_range",
    "SELECT month, channel, currency, amount, created_at, updated_at FROM marketing_spend WHERE month >= $1 AND "
    "month <= $2 ORDER BY month, channel, currency"};

// The business metrics of /metrics (business_metrics.cpp), platform scope: paying subscriptions per plan tier, and
// succeeded payments per tier (NULL: an invoice of no subscription, or of a purged tenant's) and currency.
constexpr storage::Statement k_active_subscriptions{
    "analytics_active_subscriptions",
    "SELECT p.tier, COUNT(*) FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.status IN ('active', "
    "'past_due') AND s.test_clock_id IS NULL GROUP BY p.tier"};
constexpr storage::Statement k_revenue_collected{
    "analytics_revenue_collected",
    "SELECT p.tier, a.currency, CAST(SUM(a.amount) AS BIGINT) FROM payment_attempts a JOIN invoices i ON "
    "i.tenant_id = a.tenant_id AND i.id = a.invoice_id LEFT JOIN subscriptions s ON s.tenant_id = i.tenant_id AND "
    "s.id = i.subscription_id LEFT JOIN plans p ON p.id = s.plan_id WHERE a.status = 'succeeded' AND "
    "i.test_clock_id IS NULL GROUP BY p.tier, a.currency"};

// The analytics exports (exports.cpp), platform scope, amounts per tenant, currency and UTC day of [$1, $2) (Unix
// seconds; usage: milliseconds), test clocks left out. Invoiced: invoice totals by finalization; metered: their
// usage lines (also the SaaS metrics' metered revenue); collected: payments that succeeded; credit notes by method
// (refund | credit_balance | invoice).
constexpr storage::Statement k_export_invoiced{
    "analytics_export_invoiced",
    "SELECT tenant_id, currency, finalized_at / 86400, CAST(SUM(total) AS BIGINT) FROM invoices WHERE finalized_at >= "
    "$1 AND finalized_at < $2 AND status <> 'void' AND status <> 'draft' AND test_clock_id IS NULL GROUP BY "
    "tenant_id, currency, finalized_at / 86400"};
constexpr storage::Statement k_export_metered{
    "analytics_export_metered",
    "SELECT i.tenant_id, i.currency, i.finalized_at / 86400, CAST(SUM(l.amount) AS BIGINT) FROM invoices i JOIN "
    "invoice_lines l ON l.tenant_id = i.tenant_id AND l.invoice_id = i.id WHERE l.kind = 'usage' AND i.finalized_at "
    ">= $1 AND i.finalized_at < $2 AND i.status <> 'void' AND i.status <> 'draft' AND i.test_clock_id IS NULL GROUP "
    "BY i.tenant_id, i.currency, i.finalized_at / 86400"};
constexpr storage::Statement k_export_collected{
    "analytics_export_collected",
    "SELECT a.tenant_id, a.currency, a.completed_at / 86400, CAST(SUM(a.amount) AS BIGINT) FROM payment_attempts a "
    "JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id WHERE a.status = 'succeeded' AND "
    "a.completed_at >= $1 AND a.completed_at < $2 AND i.test_clock_id IS NULL GROUP BY a.tenant_id, a.currency, "
    "a.completed_at / 86400"};
constexpr storage::Statement k_export_credit_notes{
    "analytics_export_credit_notes",
    "SELECT c.tenant_id, i.currency, c.created_at / 86400, c.method, CAST(SUM(c.amount) AS BIGINT) FROM credit_notes "
    "c JOIN invoices i ON i.tenant_id = c.tenant_id AND i.id = c.invoice_id WHERE c.created_at >= $1 AND "
    "c.created_at < $2 AND i.test_clock_id IS NULL GROUP BY c.tenant_id, i.currency, c.created_at / 86400, c.method"};
constexpr storage::Statement k_export_usage{
    "analytics_export_usage",
    "SELECT tenant_id, metric, hour / 86400000, CAST(SUM(quantity_sum) AS BIGINT), CAST(SUM(event_count) AS BIGINT) "
    "FROM usage_rollups WHERE hour >= $1 AND hour < $2 AND metric NOT LIKE 'event:%' GROUP BY tenant_id, metric, "
    "hour / 86400000"};
constexpr storage::Statement k_export_tenant_slugs{"analytics_export_tenant_slugs", "SELECT id, slug FROM tenants"};

}  // namespace atrium::analytics::sql
