#pragma once

// The SQL of churn prediction (docs/ml.md). The features read the control plane in the platform scope (every
// tenant's rows): usage and product events (usage_events; ts and received_at are Unix milliseconds), the MRR ledger
// and payment attempts (Unix seconds). Each read of events is bounded by the cutoff twice — what happened before it
// (ts) and what Atrium had been told before it (received_at) — so a row at a cutoff never changes once the cutoff
// has passed. Product events are read by type: their properties are parsed in C++, as the product metrics do.

#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::churn::sql {

using storage::Statement;
using tenancy::TenantStatement;

// The MRR ledger recorded before $1 (Unix seconds), each subscription's rows in order, with the plan's tier.
constexpr Statement k_ledger{
    "churn_ledger",
    "SELECT m.tenant_id, m.subscription_id, m.seq, m.effective_at, m.status, m.mrr, p.tier, m.recorded_at FROM "
    "subscription_mrr m "
    "JOIN plans p ON p.id = m.plan_id WHERE m.recorded_at < $1 ORDER BY m.tenant_id, m.subscription_id, m.seq"};
// API calls per tenant and UTC day of [$1, $2) (ms), as known at $2.
constexpr Statement k_api_calls{"churn_api_calls",
                                "SELECT tenant_id, ts / 86400000, CAST(SUM(quantity) AS BIGINT) FROM usage_events "
                                "WHERE metric = 'api_calls' AND ts >= $1 AND ts < $2 AND received_at < $2 GROUP BY "
                                "tenant_id, ts / 86400000"};
// Support tickets, ratings and negative feedback per tenant in [$1, $2): rows (tenant, metric, events, value sum).
constexpr Statement k_support{
    "churn_support",
    "SELECT tenant_id, metric, COUNT(*), CAST(SUM(quantity) AS BIGINT) FROM usage_events WHERE metric IN "
    "('event:support.ticket_opened', 'event:support.rating', 'event:feedback.negative') AND ts >= $1 AND ts < $2 "
    "AND received_at < $2 GROUP BY tenant_id, metric"};
// Page views that may be of the cancellation page in [$1, $2) (the properties are checked in C++; encrypted ones,
// "enc1:...", are opened first): rows (tenant, properties, idempotency key).
constexpr Statement k_cancel_views{"churn_cancel_views",
                                   "SELECT tenant_id, properties, idempotency_key FROM usage_events WHERE metric = "
                                   "'event:page.viewed' AND (properties LIKE '%cancel%' OR properties LIKE 'enc1:%') "
                                   "AND ts >= $1 AND ts < $2 AND received_at < $2"};
// The distinct properties of feature.used events per tenant in [$1, $2): rows (tenant, properties, idempotency key
// of an encrypted one, else NULL, so plaintext properties stay distinct per tenant).
constexpr Statement k_features_used{
    "churn_features_used",
    "SELECT DISTINCT tenant_id, properties, CASE WHEN properties LIKE 'enc1:%' THEN idempotency_key END FROM "
    "usage_events WHERE metric = 'event:feature.used' AND ts >= $1 AND ts < $2 AND received_at < $2"};
// Each tenant's last event naming a user (a sign-in, an activity mark, any product event about a user) in [$1, $2).
constexpr Statement k_last_seen{"churn_last_seen",
                                "SELECT tenant_id, MAX(ts) FROM usage_events WHERE user_id IS NOT NULL AND ts >= $1 "
                                "AND ts < $2 AND received_at < $2 GROUP BY tenant_id"};
// Failed payment attempts per tenant that ended in [$1, $2) (Unix seconds).
constexpr Statement k_payment_failures{"churn_payment_failures",
                                       "SELECT tenant_id, COUNT(*) FROM payment_attempts WHERE status = 'failed' AND "
                                       "completed_at >= $1 AND completed_at < $2 GROUP BY tenant_id"};

// The model registry (platform rows).
#define MODEL_COLS                                                                                         \
  "version, name, status, features, metrics, data_from, data_to, horizon_days, training_rows, positives, " \
  "created_by, created_at, activated_at"
constexpr Statement k_model_next{"churn_model_next", "SELECT COALESCE(MAX(version), 0) + 1 FROM churn_models"};
constexpr Statement k_model_insert{"churn_model_insert",
                                   "INSERT INTO churn_models (" MODEL_COLS
                                   ", model) VALUES ($1, $2, 'trained', $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, "
                                   "$12)"};
constexpr Statement k_model_list{"churn_model_list", "SELECT " MODEL_COLS " FROM churn_models ORDER BY version DESC"};
constexpr Statement k_model_get{"churn_model_get", "SELECT " MODEL_COLS ", model FROM churn_models WHERE version = $1"};
constexpr Statement k_model_active{"churn_model_active",
                                   "SELECT " MODEL_COLS ", model FROM churn_models WHERE status = 'active'"};
constexpr Statement k_model_retire{"churn_model_retire",
                                   "UPDATE churn_models SET status = 'retired' WHERE status = 'active'"};
constexpr Statement k_model_activate{"churn_model_activate",
                                     "UPDATE churn_models SET status = 'active', activated_at = $2 WHERE version = $1"};
#undef MODEL_COLS

// Scores: the batch writes one row per tenant and UTC day (platform scope).
#define SCORE_COLS \
  "tenant_id, day, model_version, probability, risk_level, confidence, factors, features, plan_tier, scored_at"
constexpr Statement k_score_upsert{
    "churn_score_upsert",
    "INSERT INTO churn_scores (" SCORE_COLS
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, day) DO UPDATE SET model_version = "
    "excluded.model_version, probability = excluded.probability, risk_level = excluded.risk_level, confidence = "
    "excluded.confidence, factors = excluded.factors, features = excluded.features, plan_tier = excluded.plan_tier, "
    "scored_at = excluded.scored_at"};
// Each tenant's latest score before day $1 (the level it was at before this batch).
constexpr Statement k_score_previous{
    "churn_score_previous",
    "SELECT s.tenant_id, s.risk_level FROM churn_scores s WHERE s.day = (SELECT MAX(p.day) FROM churn_scores p WHERE "
    "p.tenant_id = s.tenant_id AND p.day < $1)"};
// Each tenant's latest score (for /metrics and the list).
constexpr Statement k_score_latest{"churn_score_latest", "SELECT " SCORE_COLS
                                                         " FROM churn_scores s WHERE s.day = (SELECT MAX(p.day) FROM "
                                                         "churn_scores p WHERE p.tenant_id = s.tenant_id)"};
constexpr TenantStatement k_score_history{"churn_score_history", "SELECT " SCORE_COLS
                                                                 " FROM churn_scores WHERE tenant_id = $1 ORDER BY day "
                                                                 "DESC LIMIT $2"};
#undef SCORE_COLS

// Interventions (a tenant's rows, written in the platform scope with the tenant bound).
#define INTERVENTION_COLS                                                                                   \
  "id, kind, parameters, result, probability, risk_level, model_version, created_by, created_at, outcome, " \
  "outcome_note, outcome_at"
constexpr TenantStatement k_intervention_insert{"churn_intervention_insert",
                                                "INSERT INTO churn_interventions (tenant_id, " INTERVENTION_COLS
                                                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, '', NULL)"};
constexpr TenantStatement k_intervention_list{"churn_intervention_list",
                                              "SELECT " INTERVENTION_COLS
                                              " FROM churn_interventions WHERE tenant_id = $1 ORDER BY created_at "
                                              "DESC, id DESC"};
constexpr TenantStatement k_intervention_get{
    "churn_intervention_get", "SELECT " INTERVENTION_COLS " FROM churn_interventions WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_intervention_outcome{
    "churn_intervention_outcome",
    "UPDATE churn_interventions SET outcome = $3, outcome_note = $4, outcome_at = $5 WHERE tenant_id = $1 AND id = $2"};
#undef INTERVENTION_COLS

// What purging a tenant deletes.
constexpr TenantStatement k_purge_scores{"churn_purge_scores", "DELETE FROM churn_scores WHERE tenant_id = $1"};
constexpr TenantStatement k_purge_interventions{"churn_purge_interventions",
                                                "DELETE FROM churn_interventions WHERE tenant_id = $1"};

}  // namespace atrium::churn::sql
