#pragma once

// The churn service (docs/ml.md, Churn prediction): trains the seed's ensemble on the platform's own history into a
// versioned model registry, scores tenants with the active model (probability, risk level, the factors behind it,
// what to do, how sure), keeps each day's scores, and applies and records interventions. Super admins only: the
// routes say so; nothing here is reachable from a tenant's own routes.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "churn/features.hpp"
#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "observability/metrics.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::churn {

inline constexpr std::string_view k_model_name = "churn_prediction_v2";  // the seed's name for the active model

// Risk levels by the calibrated probability: low below 0.3, medium below 0.7, high from 0.7 (the seed's
// HighChurnRisk alert line).
inline constexpr double k_medium_risk = 0.3;
inline constexpr double k_high_risk = 0.7;
std::string_view risk_level(double probability);

struct ModelInfo {
  int version = 0;
  std::string name;
  std::string status;  // trained | active | retired
  std::vector<std::string> features;
  Json metrics = Json::object();  // the temporal hold-out's scores, per model and for the ensemble
  Instant data_from{}, data_to{};
  int horizon_days = 0;
  std::int64_t training_rows = 0;
  std::int64_t positives = 0;
  std::string created_by;
  Instant created_at{};
  std::optional<Instant> activated_at;
};
Json to_json(const ModelInfo& m);

struct TrainRequest {
  std::optional<Instant> from;  // default: the ledger's first day
  std::optional<Instant> to;    // default: now
  int horizon_days = 90;        // 30, 60 or 90 (any of 7-365)
  int step_days = 7;            // between cutoffs (1-90)
  bool activate = false;        // make it the active model at once
  bool fit_weights = false;     // fit the ensemble's weights instead of the seed's 0.35 / 0.40 / 0.25
  std::uint64_t seed = 42;
};

struct RiskFactor {
  std::string feature;
  double value = 0;         // NaN as null in JSON
  double contribution = 0;  // to the log-odds (XGBoost's TreeSHAP)
};

struct Recommendation {
  std::string kind;  // see k_interventions
  std::string reason;
};

struct Prediction {
  std::string tenant_id;
  Instant at{};
  int model_version = 0;
  double probability = 0;
  std::string risk_level;
  // 1 - (max - min) of the three models' probabilities: 1 when they agree, lower as they part.
  double confidence = 0;
  std::array<double, 3> models{};  // random forest, xgboost, neural network
  bool customer = true;            // false: no live subscription now (scored all the same)
  std::string plan_tier;
  Features features{};
  std::vector<RiskFactor> factors;  // the features that raise the risk most, largest first (at most 5)
  std::vector<Recommendation> interventions;
};
Json to_json(const Prediction& p);

// A score the batch kept (one per tenant and UTC day).
struct Score {
  std::string tenant_id;
  Instant day{};
  int model_version = 0;
  double probability = 0;
  std::string risk_level;
  double confidence = 0;
  Json factors = Json::array();
  Json features = Json::object();
  std::string plan_tier;
  Instant scored_at{};
};
Json to_json(const Score& s);

// The interventions that can be applied (docs/ml.md has the catalogue and what maps to each).
inline constexpr std::array<std::string_view, 5> k_interventions{
    "card_update_email", "onboarding_email", "success_followup_email", "retention_credit", "dunning_grace"};
bool valid_intervention(std::string_view kind);
// "kind must be one of ..." with the catalogue's kinds.
std::string intervention_kinds_message();
// What is recommended for a prediction: from its factors and risk level.
std::vector<Recommendation> recommend(const Prediction& p);

struct Intervention {
  std::string id;
  std::string tenant_id;
  std::string kind;
  Json parameters = Json::object();
  Json result = Json::object();  // what was done (e.g. the mail's recipients)
  std::optional<double> probability;
  std::string risk_level;
  std::optional<int> model_version;
  std::string created_by;
  Instant created_at{};
  std::optional<std::string> outcome;  // retained | churned | downgraded | unknown
  std::string outcome_note;
  std::optional<Instant> outcome_at;
};
Json to_json(const Intervention& i);
inline constexpr std::array<std::string_view, 4> k_outcomes{"retained", "churned", "downgraded", "unknown"};

// How an intervention reaches the customer: implemented by the platform (the email module's queue). Returns what
// was done, for the record.
class Actions {
 public:
  virtual ~Actions() = default;
  // Queues the catalogue's mail `kind` to the tenant's billing contact (its owners when it has none), with `note`
  // (an operator's words, may be empty), once per `key`. not_found when the tenant has no one to write to.
  virtual Result<Json> send_mail(const std::string& tenant_id, std::string_view kind, const std::string& note,
                                 const std::string& key) = 0;
  // Credits `percent` of the tenant's last paid subscription invoice to its credit balance (a credit note, which the
  // next invoices draw on). conflict when it has no such invoice.
  virtual Result<Json> grant_credit(const std::string& tenant_id, int percent, const std::string& note,
                                    const audit::Context& who) = 0;
  // Gives the tenant's invoices in dunning `days` more before their retries and final action (billing's
  // extend_dunning). conflict when none is in dunning.
  virtual Result<Json> extend_grace(const std::string& tenant_id, int days, const audit::Context& who) = 0;
};

// What an operator asks for: a kind of the catalogue, the words to put in a mail, for retention_credit the share of
// the last invoice to credit (1-100), and for dunning_grace the days of grace (1-30).
struct InterventionRequest {
  std::string kind;
  std::string note;
  int percent = 20;
  int days = 7;
};

struct BatchResult {
  int scored = 0;
  int high = 0;
  std::vector<std::string> became_high;  // tenants that crossed into high risk with this batch
};

using Progress = std::function<void(int done, int total, std::string_view what)>;
// Called for each tenant that crosses into high risk, inside the batch's transaction (to emit an event).
using HighRiskHook = std::function<Result<void>(storage::Transaction&, const Score&)>;

class Service {
 public:
  // With a registry: churn_risk_score{plan_tier} (the mean probability of the latest batch's tenants of each plan
  // tier) and churn_high_risk_tenants{plan_tier} in /metrics, set by each batch and by refresh_gauges. The label is
  // the plan's tier, so the series are as many as the catalogue's tiers, whatever the number of tenants.
  Service(tenancy::TenantData& data, const Clock& clock, int threads = 0, metrics::Registry* registry = nullptr);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Builds the training set from the platform's history, trains the ensemble, measures it on a temporal hold-out
  // (the last fifth of the cutoffs, trained without them), then trains on every row and stores the next version.
  // invalid_argument: a range without a cutoff, or without churned and retained customers in both parts.
  Result<ModelInfo> train(const TrainRequest& request, const audit::Context& who, const audit::Recorder& audit,
                          const Progress& progress = {});
  Result<std::vector<ModelInfo>> models();
  Result<ModelInfo> model(int version);
  // One of the version's tree models ("random_forest" or "xgboost") in XGBoost's own JSON format.
  Result<std::string> export_booster(int version, std::string_view which);
  // Makes `version` the active model (activating an older one is the rollback); audited.
  Result<ModelInfo> activate(int version, const audit::Context& who, const audit::Recorder& audit);

  // The active model's prediction for one tenant now, customer or not (conflict when no model is active). The
  // caller checks that the tenant exists.
  Result<Prediction> predict(const std::string& tenant_id);
  // Every customer now, highest risk first.
  Result<std::vector<Prediction>> predict_all();
  // The ROC AUC of a model's predictions at `at` against what happened in the `horizon` after it (for tenants that
  // were customers at `at`); rows and positives too. invalid_argument without both classes.
  Result<Json> evaluate(int version, Instant at, std::chrono::days horizon);

  // The daily batch: scores every customer with the active model, keeps today's score, and calls `on_high` for each
  // tenant whose previous score was not high and whose new one is.
  // With `audit`, the batch is recorded (churn.batch_scored, platform chain) in its transaction: for runs an operator
  // asks for; the scheduled job's scores are their own record.
  Result<BatchResult> score_all(const HighRiskHook& on_high = {}, const audit::Recorder& audit = {});
  Result<std::vector<Score>> latest_scores();
  // Sets the gauges from the latest batch's scores (`atrium serve` every analytics.business_metrics_ms, so they follow
  // a batch another process ran).
  Result<void> refresh_gauges();
  Result<std::vector<Score>> history(const std::string& tenant_id, int limit);

  // Applies an intervention (queues its mail, grants the credit or extends the dunning grace), records it with the
  // tenant's risk now, and audits it in the platform chain; invalid_argument for a kind outside the catalogue, a
  // percent outside 1-100 or days outside 1-30. The action comes first, in its own module's transaction (the mail job,
  // the credit note with its tenant-chain entry): should recording it fail afterwards, the error is answered and the
  // action stands, recorded there only.
  Result<Intervention> intervene(const std::string& tenant_id, const InterventionRequest& request, Actions& actions,
                                 const audit::Context& who, const audit::Recorder& audit);
  Result<std::vector<Intervention>> interventions(const std::string& tenant_id);
  // Records what came of an intervention (audited).
  Result<Intervention> record_outcome(const std::string& tenant_id, const std::string& id, const std::string& outcome,
                                      const std::string& note, const audit::Context& who, const audit::Recorder& audit);

  // What purging a tenant deletes (its scores and interventions).
  static std::vector<tenancy::TenantStatement> purge_statements();
  static std::vector<tenancy::TenantStatement> tenant_statements();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::churn
