#pragma once

// The warehouse's SQL: reads of the control plane (platform scope: every tenant's rows) and writes of the warehouse
// (migrations/warehouse/). Constant text with bind parameters. Source times: tenants' text RFC 3339, billing's
// Unix seconds, usage's Unix milliseconds; warehouse days are date keys YYYYMMDD.

#include "storage/database.hpp"

namespace atrium::warehouse::sql {

using storage::Statement;

// ---- source (control plane, platform scope) ---------------------------------------------------------------------

constexpr Statement k_src_tenants{
    "wh_src_tenants", "SELECT id, slug, name, isolation, status, plan, created_at FROM tenants ORDER BY id"};
constexpr Statement k_src_plans{
    "wh_src_plans",
    "SELECT p.id, v.version, p.code, p.name, p.tier, v.currency, v.billing_interval, v.base_price, v.included_seats, "
    "v.seat_price, v.created_at FROM plans p JOIN plan_versions v ON v.plan_id = p.id ORDER BY p.id, v.version"};
// The first second any fact source has (NULL when all are empty).
constexpr Statement k_src_first{
    "wh_src_first",
    "SELECT MIN(t) FROM (SELECT MIN(effective_at) AS t FROM subscription_mrr UNION ALL SELECT MIN(hour) / 1000 FROM "
    "usage_rollups UNION ALL SELECT MIN(ts) / 1000 FROM usage_events WHERE metric LIKE 'event:%' UNION ALL SELECT "
    "MIN(finalized_at) FROM invoices WHERE finalized_at IS NOT NULL UNION ALL SELECT MIN(created_at) FROM "
    "credit_notes) x"};
// The MRR ledger before $1 (seconds), in order, with each row's plan tier.
constexpr Statement k_src_ledger{
    "wh_src_ledger",
    "SELECT m.tenant_id, m.subscription_id, m.effective_at, m.plan_id, m.plan_version, p.tier, m.currency, m.mrr "
    "FROM subscription_mrr m JOIN plans p ON p.id = m.plan_id WHERE m.effective_at < $1 ORDER BY m.effective_at, "
    "m.tenant_id, m.subscription_id, m.seq"};
// Usage per tenant, metric and day of [$1, $2) (ms), from the hourly roll-ups; product events are apart.
constexpr Statement k_src_usage{
    "wh_src_usage",
    "SELECT tenant_id, metric, hour / 86400000, CAST(SUM(quantity_sum) AS BIGINT), CAST(SUM(event_count) AS BIGINT) "
    "FROM usage_rollups WHERE hour >= "
    "$1 AND hour < $2 AND metric NOT LIKE 'event:%' GROUP BY tenant_id, metric, hour / 86400000"};
// Product events per tenant, type, user and day of [$1, $2) (ms).
constexpr Statement k_src_events{
    "wh_src_events",
    "SELECT tenant_id, metric, COALESCE(user_id, ''), ts / 86400000, COUNT(*), CAST(SUM(quantity) AS BIGINT) FROM "
    "usage_events WHERE "
    "ts >= $1 AND ts < $2 AND metric LIKE 'event:%' GROUP BY tenant_id, metric, COALESCE(user_id, ''), ts / 86400000"};
// Revenue documents of [$1, $2) (seconds), test clocks left out: lines of invoices finalized then (not void),
// payments that succeeded then, credit notes issued then.
constexpr Statement k_src_invoice_lines{
    "wh_src_invoice_lines",
    "SELECT i.tenant_id, i.id, l.line_no, l.kind, i.currency, l.amount, i.finalized_at FROM invoices i JOIN "
    "invoice_lines l ON l.tenant_id = i.tenant_id AND l.invoice_id = i.id WHERE i.finalized_at >= $1 AND "
    "i.finalized_at < $2 AND i.status <> 'void' AND i.status <> 'draft' AND i.test_clock_id IS NULL"};
constexpr Statement k_src_payments{
    "wh_src_payments",
    "SELECT a.tenant_id, a.id, a.currency, a.amount, a.completed_at FROM payment_attempts a JOIN invoices i ON "
    "i.tenant_id = a.tenant_id AND i.id = a.invoice_id WHERE a.status = 'succeeded' AND a.completed_at >= $1 AND "
    "a.completed_at < $2 AND i.test_clock_id IS NULL"};
constexpr Statement k_src_credit_notes{
    "wh_src_credit_notes",
    "SELECT c.tenant_id, c.id, c.method, i.currency, c.amount, c.created_at FROM credit_notes c JOIN invoices i ON "
    "i.tenant_id = c.tenant_id AND i.id = c.invoice_id WHERE c.created_at >= $1 AND c.created_at < $2 AND "
    "i.test_clock_id IS NULL"};

// ---- warehouse ----------------------------------------------------------------------------------------------------

constexpr Statement k_lock{"wh_lock", "SELECT pg_advisory_xact_lock(7291839202)"};
constexpr Statement k_state_get{"wh_state_get", "SELECT next_day, first_day FROM etl_state WHERE name = 'facts'"};
// The watermark ($1) and the first day ever loaded ($2: kept at the earliest).
constexpr Statement k_state_set{
    "wh_state_set",
    "INSERT INTO etl_state (name, next_day, first_day, updated_at) VALUES ('facts', $1, $2, $3) ON CONFLICT (name) DO "
    "UPDATE SET next_day = excluded.next_day, first_day = CASE WHEN excluded.first_day < etl_state.first_day THEN "
    "excluded.first_day ELSE etl_state.first_day END, updated_at = excluded.updated_at"};
constexpr Statement k_run_insert{"wh_run_insert",
                                 "INSERT INTO etl_runs (id, started_at, finished_at, from_day, to_day, source_rows, "
                                 "status) VALUES ($1, $2, NULL, $3, $4, 0, 'running')"};
constexpr Statement k_run_finish{"wh_run_finish",
                                 "UPDATE etl_runs SET finished_at = $2, source_rows = $3, status = $4 WHERE id = $1"};

constexpr Statement k_date_upsert{
    "wh_date_upsert",
    "INSERT INTO dim_date (date_key, date, year, quarter, month, day, iso_year, iso_week, weekday, week_start, "
    "month_start) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (date_key) DO NOTHING"};
constexpr Statement k_tenant_upsert{
    "wh_tenant_upsert",
    "INSERT INTO dim_tenant (tenant_id, slug, name, isolation, status, plan, created_at) VALUES ($1, $2, $3, $4, $5, "
    "$6, $7) ON CONFLICT (tenant_id) DO UPDATE SET slug = excluded.slug, name = excluded.name, isolation = "
    "excluded.isolation, status = excluded.status, plan = excluded.plan"};
// Every tenant's current state (one read per run, not one per tenant).
constexpr Statement k_history_current{
    "wh_history_current", "SELECT tenant_id, valid_from, plan, status FROM dim_tenant_history WHERE valid_to IS NULL"};
constexpr Statement k_history_close{
    "wh_history_close",
    "UPDATE dim_tenant_history SET valid_to = $3 WHERE tenant_id = $1 AND valid_from = $2 AND valid_to IS NULL"};
constexpr Statement k_history_replace{
    "wh_history_replace",
    "UPDATE dim_tenant_history SET plan = $3, status = $4 WHERE tenant_id = $1 AND valid_from = $2"};
constexpr Statement k_history_open{
    "wh_history_open",
    "INSERT INTO dim_tenant_history (tenant_id, valid_from, valid_to, plan, status) VALUES ($1, $2, NULL, $3, $4)"};
constexpr Statement k_plan_upsert{
    "wh_plan_upsert",
    "INSERT INTO dim_plan (plan_id, version, code, name, tier, currency, billing_interval, base_price, "
    "included_seats, seat_price, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT "
    "(plan_id, version) DO UPDATE SET code = excluded.code, name = excluded.name, tier = excluded.tier"};

// One chunk of days [$1, $2) (date keys) replaced.
constexpr Statement k_clear_mrr{"wh_clear_mrr", "DELETE FROM fact_mrr_daily WHERE date_key >= $1 AND date_key < $2"};
constexpr Statement k_clear_revenue{"wh_clear_revenue",
                                    "DELETE FROM fact_revenue WHERE date_key >= $1 AND date_key < $2"};
constexpr Statement k_clear_usage{"wh_clear_usage",
                                  "DELETE FROM fact_usage_daily WHERE date_key >= $1 AND date_key < $2"};
constexpr Statement k_clear_events{"wh_clear_events",
                                   "DELETE FROM fact_product_events_daily WHERE date_key >= $1 AND date_key < $2"};
constexpr Statement k_clear_metrics{"wh_clear_metrics",
                                    "DELETE FROM tenant_metrics WHERE date_key >= $1 AND date_key < $2"};
constexpr Statement k_mrr_insert{"wh_mrr_insert",
                                 "INSERT INTO fact_mrr_daily (date_key, tenant_id, subscription_id, plan_id, "
                                 "plan_version, plan_tier, currency, mrr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"};
constexpr Statement k_revenue_insert{
    "wh_revenue_insert",
    "INSERT INTO fact_revenue (date_key, tenant_id, kind, document_id, line_no, line_kind, currency, amount) VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8)"};
constexpr Statement k_usage_insert{
    "wh_usage_insert",
    "INSERT INTO fact_usage_daily (date_key, tenant_id, metric, quantity, events) VALUES ($1, $2, $3, $4, $5)"};
constexpr Statement k_events_insert{"wh_events_insert",
                                    "INSERT INTO fact_product_events_daily (date_key, tenant_id, event_type, user_id, "
                                    "events, value_sum) VALUES ($1, $2, $3, $4, $5, $6)"};
// The users the chunk's events name: first and last seen widened.
constexpr Statement k_users_upsert{
    "wh_users_upsert",
    "INSERT INTO dim_user (tenant_id, user_id, first_seen, last_seen) SELECT tenant_id, user_id, MIN(date_key), "
    "MAX(date_key) FROM fact_product_events_daily WHERE date_key >= $1 AND date_key < $2 AND user_id <> '' GROUP BY "
    "tenant_id, user_id ON CONFLICT (tenant_id, user_id) DO UPDATE SET first_seen = CASE WHEN excluded.first_seen < "
    "dim_user.first_seen THEN excluded.first_seen ELSE dim_user.first_seen END, last_seen = CASE WHEN "
    "excluded.last_seen > dim_user.last_seen THEN excluded.last_seen ELSE dim_user.last_seen END"};
// The seed's tenant_metrics of the chunk's days, from the facts just written: every tenant and day with MRR,
// usage, product events or revenue, each fact table read once (grouped, then combined).
constexpr Statement k_metrics_insert{
    "wh_metrics_insert",
    "INSERT INTO tenant_metrics (date_key, tenant_id, currency, mrr, user_count, active_users, api_calls, events, "
    "revenue) SELECT k.date_key, k.tenant_id, COALESCE(MIN(k.currency), ''), SUM(k.mrr), (SELECT COUNT(*) FROM "
    "dim_user u WHERE u.tenant_id = k.tenant_id AND u.first_seen <= k.date_key), SUM(k.active), SUM(k.api), "
    "SUM(k.events), SUM(k.revenue) FROM (SELECT date_key, tenant_id, MIN(currency) AS currency, SUM(mrr) AS mrr, 0 "
    "AS active, 0 AS api, 0 AS events, 0 AS revenue FROM fact_mrr_daily WHERE date_key >= $1 AND date_key < $2 GROUP "
    "BY date_key, tenant_id UNION ALL SELECT date_key, tenant_id, NULL, 0, 0, SUM(CASE WHEN metric = 'api_calls' THEN "
    "quantity ELSE 0 END), 0, 0 FROM fact_usage_daily WHERE date_key >= $1 AND date_key < $2 GROUP BY date_key, "
    "tenant_id UNION ALL SELECT date_key, tenant_id, NULL, 0, COUNT(DISTINCT CASE WHEN user_id <> '' THEN user_id "
    "END), 0, SUM(events), 0 FROM fact_product_events_daily WHERE date_key >= $1 AND date_key < $2 GROUP BY "
    "date_key, tenant_id UNION ALL SELECT date_key, tenant_id, MIN(currency), 0, 0, 0, 0, SUM(CASE WHEN kind = "
    "'payment' THEN amount ELSE 0 END) FROM fact_revenue WHERE date_key >= $1 AND date_key < $2 GROUP BY date_key, "
    "tenant_id) k GROUP BY k.date_key, k.tenant_id"};
constexpr Statement k_grant_reader{"wh_grant_reader", "SELECT atrium_warehouse_grant_reader($1)"};

}  // namespace atrium::warehouse::sql
