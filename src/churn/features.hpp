#pragma once

// The seed's churn features (docs/ml.md, Churn features), point in time: for a cutoff instant, each customer's
// features are computed only from what Atrium knew before it, so a row at a cutoff stays the same whatever happens
// after. A customer at a cutoff is a tenant with a subscription whose last state before the cutoff is trial, active,
// past_due or paused; its label for a horizon is whether a subscription it had at the cutoff became cancelled or
// unpaid within the horizon after it.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "ml/dataset.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::churn {

// In the seed's order. NaN where a value does not exist (no rating to average, no usage history for a trend).
inline constexpr std::array<std::string_view, 11> k_feature_names{
    "avg_daily_api_calls",      "usage_trend",      "days_since_last_login",
    "feature_adoption_rate",    "support_tickets",  "support_satisfaction",
    "payment_failures",         "plan_downgrades",  "subscription_age_days",
    "cancellation_page_visits", "negative_feedback"};
using Features = std::array<float, k_feature_names.size()>;

// How far back each feature looks from the cutoff.
struct Windows {
  std::chrono::days usage{30};      // API calls and their trend, feature adoption, cancellation-page visits
  std::chrono::days support{90};    // tickets, ratings, negative feedback
  std::chrono::days billing{90};    // payment failures, plan downgrades
  std::chrono::days last_seen{90};  // a tenant nobody used for longer counts as this many days
};

// One row of the MRR ledger (billing's subscription_mrr).
struct LedgerRow {
  std::string subscription_id;
  std::int64_t seq = 0;
  Instant effective{};
  std::string status;
  std::int64_t mrr = 0;
  std::string plan_tier;
  Instant recorded{};  // when Atrium wrote it: a row counts at a cutoff only when effective and recorded before it
};

// A customer at a cutoff and its features.
struct Observation {
  std::string tenant_id;
  Instant cutoff{};
  std::string plan_tier;  // of its live subscription
  Features values{};
};

// The MRR ledger, every tenant's, recorded before `known_before`, by tenant.
using Ledger = std::map<std::string, std::vector<LedgerRow>>;
Result<Ledger> load_ledger(tenancy::TenantData& data, Instant known_before);

// Whether a status keeps a customer (trial, active, past_due, paused) or ends it (cancelled, unpaid).
bool live_status(std::string_view status);

// The customers at `cutoff` (or only `tenant_id`, when not empty, customer or not) and their features. `ledger` must
// hold at least what was recorded before the cutoff (later rows are ignored).
Result<std::vector<Observation>> observe(tenancy::TenantData& data, const Ledger& ledger, Instant cutoff,
                                         const Windows& windows = {}, const std::string& tenant_id = "");

// Whether the tenant, a customer at `cutoff`, churned within (cutoff, cutoff + horizon]: one of the subscriptions
// live at the cutoff became cancelled or unpaid. `ledger` must reach past cutoff + horizon.
bool churned(const Ledger& ledger, const std::string& tenant_id, Instant cutoff, std::chrono::days horizon);

struct TrainingSetOptions {
  Instant from{};  // the first cutoff (UTC midnights from here)
  Instant to{};    // labels must be known: the last cutoff is at most to - horizon
  std::chrono::days horizon{90};
  std::chrono::days step{7};
  Windows windows;
};

// Many (tenant, cutoff) rows: the customers at every step's cutoff, labelled. `rows` (when given) receives each
// row's tenant and cutoff. invalid_argument when no cutoff fits in the range.
Result<ml::Dataset> training_set(tenancy::TenantData& data, const TrainingSetOptions& options,
                                 std::vector<Observation>* rows = nullptr);

// The feature names as strings (for ml::Dataset and the registry).
std::vector<std::string> feature_names();

}  // namespace atrium::churn
