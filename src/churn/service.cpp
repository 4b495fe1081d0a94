#include "churn/service.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "churn/sql.hpp"
#include "core/ids.hpp"
#include "core/time.hpp"
#include "ml/ensemble.hpp"

namespace atrium::churn {

namespace {

using std::chrono::days;
using storage::Value;

Json number_or_null(double v) { return std::isnan(v) ? Json(nullptr) : Json(v); }

Json scores_json(const ml::Scores& s) {
  return {{"roc_auc", s.roc_auc}, {"pr_auc", s.pr_auc}, {"brier", s.brier}, {"log_loss", s.log_loss}};
}

Json features_json(const Features& f) {
  Json out = Json::object();
  for (std::size_t i = 0; i < f.size(); ++i) out[std::string(k_feature_names[i])] = number_or_null(f[i]);
  return out;
}

std::optional<double> opt_double(const storage::ResultSet& rs, std::size_t row, std::size_t col) {
  if (rs.is_null(row, col)) return std::nullopt;
  const auto& v = rs.rows[row][col];
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return std::nullopt;
}

Json parse_or(const std::string& text, Json fallback) {
  std::string error;
  auto doc = parse_json(text, {}, &error);
  return doc ? std::move(*doc) : std::move(fallback);
}

ModelInfo read_model(const storage::ResultSet& rs, std::size_t i) {
  ModelInfo m;
  m.version = static_cast<int>(rs.int_at(i, 0).value_or(0));
  m.name = rs.text_at(i, 1).value_or("");
  m.status = rs.text_at(i, 2).value_or("");
  const Json features = parse_or(rs.text_at(i, 3).value_or("[]"), Json::array());
  for (const auto& f : features) {
    if (f.is_string()) m.features.push_back(f.get<std::string>());
  }
  m.metrics = parse_or(rs.text_at(i, 4).value_or("{}"), Json::object());
  m.data_from = from_unix_seconds(rs.int_at(i, 5).value_or(0));
  m.data_to = from_unix_seconds(rs.int_at(i, 6).value_or(0));
  m.horizon_days = static_cast<int>(rs.int_at(i, 7).value_or(0));
  m.training_rows = rs.int_at(i, 8).value_or(0);
  m.positives = rs.int_at(i, 9).value_or(0);
  m.created_by = rs.text_at(i, 10).value_or("");
  m.created_at = from_unix_seconds(rs.int_at(i, 11).value_or(0));
  if (auto a = rs.int_at(i, 12)) m.activated_at = from_unix_seconds(*a);
  return m;
}

Score read_score(const storage::ResultSet& rs, std::size_t i) {
  Score s;
  s.tenant_id = rs.text_at(i, 0).value_or("");
  s.day = from_unix_seconds(rs.int_at(i, 1).value_or(0));
  s.model_version = static_cast<int>(rs.int_at(i, 2).value_or(0));
  s.probability = opt_double(rs, i, 3).value_or(0);
  s.risk_level = rs.text_at(i, 4).value_or("");
  s.confidence = opt_double(rs, i, 5).value_or(0);
  s.factors = parse_or(rs.text_at(i, 6).value_or("[]"), Json::array());
  s.features = parse_or(rs.text_at(i, 7).value_or("{}"), Json::object());
  s.plan_tier = rs.text_at(i, 8).value_or("");
  s.scored_at = from_unix_seconds(rs.int_at(i, 9).value_or(0));
  return s;
}

Intervention read_intervention(const storage::ResultSet& rs, std::size_t i, const std::string& tenant_id) {
  Intervention v;
  v.tenant_id = tenant_id;
  v.id = rs.text_at(i, 0).value_or("");
  v.kind = rs.text_at(i, 1).value_or("");
  v.parameters = parse_or(rs.text_at(i, 2).value_or("{}"), Json::object());
  v.result = parse_or(rs.text_at(i, 3).value_or("{}"), Json::object());
  v.probability = opt_double(rs, i, 4);
  v.risk_level = rs.text_at(i, 5).value_or("");
  if (auto m = rs.int_at(i, 6)) v.model_version = static_cast<int>(*m);
  v.created_by = rs.text_at(i, 7).value_or("");
  v.created_at = from_unix_seconds(rs.int_at(i, 8).value_or(0));
  v.outcome = rs.text_at(i, 9);
  v.outcome_note = rs.text_at(i, 10).value_or("");
  if (auto a = rs.int_at(i, 11)) v.outcome_at = from_unix_seconds(*a);
  return v;
}

// A trained model ready to score.
struct Loaded {
  ModelInfo info;
  ml::Ensemble ensemble;
};

}  // namespace

std::string_view risk_level(double p) {
  if (p >= k_high_risk) return "high";
  if (p >= k_medium_risk) return "medium";
  return "low";
}

bool valid_intervention(std::string_view kind) {
  return std::find(k_interventions.begin(), k_interventions.end(), kind) != k_interventions.end();
}

std::string intervention_kinds_message() {
  std::string out = "kind must be one of ";
  for (std::size_t i = 0; i < k_interventions.size(); ++i) {
    out += (i == 0 ? "" : ", ") + std::string(k_interventions[i]);
  }
  return out;
}

std::vector<Recommendation> recommend(const Prediction& p) {
  std::vector<Recommendation> out;
  auto add = [&](std::string_view kind, std::string reason) {
    for (const auto& r : out) {
      if (r.kind == kind) return;
    }
    out.push_back({std::string(kind), std::move(reason)});
  };
  if (p.risk_level == "low") return out;
  for (const RiskFactor& f : p.factors) {
    if (f.feature == "payment_failures") {
      add("card_update_email", "failed payments: ask for a working payment method before dunning ends");
      add("dunning_grace", "failed payments: more time before the final retry cancels or stops the subscription");
    } else if (f.feature == "usage_trend" || f.feature == "avg_daily_api_calls" ||
               f.feature == "feature_adoption_rate" || f.feature == "days_since_last_login") {
      add("onboarding_email", "falling or low use: show what the product does for them (" + f.feature + ")");
    } else if (f.feature == "plan_downgrades" || f.feature == "cancellation_page_visits") {
      add("retention_credit", "about to pay less or leave: a credit on the next invoices (" + f.feature + ")");
    } else if (f.feature == "support_satisfaction" || f.feature == "support_tickets" ||
               f.feature == "negative_feedback") {
      add("success_followup_email", "a customer-success follow-up (" + f.feature + ")");
    }
  }
  // High risk without a specific lead still gets a person's attention.
  if (p.risk_level == "high" && out.empty()) add("success_followup_email", "high risk");
  return out;
}

Json to_json(const ModelInfo& m) {
  Json out{{"version", m.version},
           {"name", m.name},
           {"status", m.status},
           {"features", m.features},
           {"metrics", m.metrics},
           {"dataFrom", format_rfc3339(m.data_from)},
           {"dataTo", format_rfc3339(m.data_to)},
           {"horizonDays", m.horizon_days},
           {"trainingRows", m.training_rows},
           {"positives", m.positives},
           {"createdBy", m.created_by},
           {"createdAt", format_rfc3339(m.created_at)},
           {"activatedAt", m.activated_at ? Json(format_rfc3339(*m.activated_at)) : Json(nullptr)}};
  return out;
}

Json to_json(const Prediction& p) {
  Json factors = Json::array();
  for (const RiskFactor& f : p.factors) {
    factors.push_back({{"feature", f.feature},
                       {"value", number_or_null(f.value)},
                       {"contribution", f.contribution},
                       {"direction", f.contribution > 0 ? "increases_risk" : "decreases_risk"}});
  }
  Json interventions = Json::array();
  for (const Recommendation& r : p.interventions) interventions.push_back({{"kind", r.kind}, {"reason", r.reason}});
  return {{"tenantId", p.tenant_id},
          {"at", format_rfc3339(p.at)},
          {"churnProbability", p.probability},
          {"riskLevel", p.risk_level},
          {"confidenceScore", p.confidence},
          {"models", {{"random_forest", p.models[0]}, {"xgboost", p.models[1]}, {"neural_network", p.models[2]}}},
          {"model", {{"name", k_model_name}, {"version", p.model_version}}},
          {"customer", p.customer},
          {"planTier", p.plan_tier},
          {"features", features_json(p.features)},
          {"topRiskFactors", std::move(factors)},
          {"recommendedInterventions", std::move(interventions)}};
}

Json to_json(const Score& s) {
  return {{"tenantId", s.tenant_id},         {"day", format_rfc3339(s.day).substr(0, 10)},
          {"modelVersion", s.model_version}, {"churnProbability", s.probability},
          {"riskLevel", s.risk_level},       {"confidenceScore", s.confidence},
          {"topRiskFactors", s.factors},     {"features", s.features},
          {"planTier", s.plan_tier},         {"scoredAt", format_rfc3339(s.scored_at)}};
}

Json to_json(const Intervention& i) {
  return {{"id", i.id},
          {"tenantId", i.tenant_id},
          {"kind", i.kind},
          {"parameters", i.parameters},
          {"result", i.result},
          {"churnProbability", i.probability ? Json(*i.probability) : Json(nullptr)},
          {"riskLevel", i.risk_level.empty() ? Json(nullptr) : Json(i.risk_level)},
          {"modelVersion", i.model_version ? Json(*i.model_version) : Json(nullptr)},
          {"createdBy", i.created_by},
          {"createdAt", format_rfc3339(i.created_at)},
          {"outcome", i.outcome ? Json(*i.outcome) : Json(nullptr)},
          {"outcomeNote", i.outcome_note},
          {"outcomeAt", i.outcome_at ? Json(format_rfc3339(*i.outcome_at)) : Json(nullptr)}};
}

struct Service::Impl {
  tenancy::TenantData& data;
  const Clock& clock;
  int threads;
  std::mutex mutex;
  std::shared_ptr<const Loaded> active;  // the active model as last loaded
  metrics::Family<metrics::Gauge>* risk = nullptr;
  metrics::Family<metrics::Gauge>* high = nullptr;

  Impl(tenancy::TenantData& d, const Clock& c, int t, metrics::Registry* registry) : data(d), clock(c), threads(t) {
    if (registry == nullptr) return;
    risk = &registry->gauge("churn_risk_score",
                            "Mean churn probability of the latest daily batch's tenants, by plan tier", {"plan_tier"});
    high = &registry->gauge("churn_high_risk_tenants",
                            "Tenants at high churn risk (probability >= 0.7) in the latest daily batch, by plan tier",
                            {"plan_tier"});
  }

  // The latest batch's scores by plan tier; tiers seen before and absent now go to 0.
  void set_gauges(const std::vector<Score>& latest) {
    if (risk == nullptr) return;
    Instant last{};
    for (const Score& s : latest) last = std::max(last, s.day);
    std::map<std::string, std::pair<double, int>> by_tier;
    std::map<std::string, int> high_by_tier;
    for (const Score& s : latest) {
      if (s.day != last) continue;
      const std::string tier = s.plan_tier.empty() ? "none" : s.plan_tier;
      by_tier[tier].first += s.probability;
      by_tier[tier].second += 1;
      high_by_tier[tier] += s.risk_level == "high" ? 1 : 0;
    }
    risk->for_each([&](const metrics::Labels& labels, metrics::Gauge& g) {
      if (!by_tier.contains(labels[0])) g.set(0);
    });
    high->for_each([&](const metrics::Labels& labels, metrics::Gauge& g) {
      if (!by_tier.contains(labels[0])) g.set(0);
    });
    for (const auto& [tier, sum] : by_tier) {
      risk->with({tier}).set(sum.first / sum.second);
      high->with({tier}).set(high_by_tier[tier]);
    }
  }

  template <class T, class Body>
  Result<T> platform(Body&& body, bool read_only) {
    std::optional<T> out;
    auto r = data.transact_platform(
        [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
          auto v = body(ptx);
          if (!v) return std::unexpected(v.error());
          out = std::move(*v);
          return {};
        },
        {.read_only = read_only});
    if (!r) return std::unexpected(r.error());
    return std::move(*out);
  }

  Result<std::shared_ptr<const Loaded>> load(const storage::Statement& statement, std::vector<Value> params) {
    auto rows = platform<storage::ResultSet>(
        [&](tenancy::PlatformTransaction& ptx) { return ptx.control().execute(statement, params); }, true);
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty()) return fail(Errc::not_found, "no such model");
    ModelInfo info = read_model(*rows, 0);
    {
      std::lock_guard lock(mutex);
      if (active && active->info.version == info.version && active->info.status == info.status) return active;
    }
    std::string error;
    auto doc = parse_json(rows->text_at(0, 13).value_or(""), {.max_depth = 128}, &error);
    if (!doc) return fail(Errc::internal, "model " + std::to_string(info.version) + " is not JSON: " + error);
    auto ensemble = ml::Ensemble::from_json(*doc, threads);
    if (!ensemble) return std::unexpected(ensemble.error());
    return std::make_shared<const Loaded>(Loaded{std::move(info), std::move(*ensemble)});
  }

  Result<std::shared_ptr<const Loaded>> active_model() {
    auto m = load(sql::k_model_active, {});
    if (!m && m.error().code == Errc::not_found) {
      return fail(Errc::conflict, "no churn model is active: train one (POST /v1/admin/churn/models)");
    }
    if (!m) return m;
    std::lock_guard lock(mutex);
    active = *m;
    return *m;
  }

  // Predictions for observations with one model, with each one's factors and recommendations.
  Result<std::vector<Prediction>> predict(const Loaded& model, const std::vector<Observation>& seen, Instant at,
                                          const std::set<std::string>& customers) {
    std::vector<float> x;
    for (const auto& o : seen) x.insert(x.end(), o.values.begin(), o.values.end());
    const std::size_t cols = k_feature_names.size();
    auto p = model.ensemble.predict(x.data(), seen.size(), cols);
    if (!p) return std::unexpected(p.error());
    auto shap = model.ensemble.boosting().contributions(x.data(), seen.size(), cols);
    if (!shap) return std::unexpected(shap.error());
    std::vector<Prediction> out;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      Prediction pr;
      pr.tenant_id = seen[i].tenant_id;
      pr.at = at;
      pr.model_version = model.info.version;
      pr.probability = p->ensemble[i];
      pr.risk_level = std::string(risk_level(pr.probability));
      pr.models = {p->forest[i], p->boosting[i], p->network[i]};
      pr.confidence = 1.0 - (*std::max_element(pr.models.begin(), pr.models.end()) -
                             *std::min_element(pr.models.begin(), pr.models.end()));
      pr.customer = customers.contains(pr.tenant_id);
      pr.plan_tier = seen[i].plan_tier;
      pr.features = seen[i].values;
      std::vector<RiskFactor> factors;
      for (std::size_t c = 0; c < cols; ++c) {
        const float contribution = (*shap)[i * (cols + 1) + c];
        if (contribution > 0) {
          factors.push_back({std::string(k_feature_names[c]), seen[i].values[c], contribution});
        }
      }
      std::sort(factors.begin(), factors.end(),
                [](const RiskFactor& a, const RiskFactor& b) { return a.contribution > b.contribution; });
      if (factors.size() > 5) factors.resize(5);
      pr.factors = std::move(factors);
      pr.interventions = recommend(pr);
      out.push_back(std::move(pr));
    }
    return out;
  }

  Result<std::vector<Prediction>> predict_now(const std::string& tenant_id) {
    auto model = active_model();
    if (!model) return std::unexpected(model.error());
    const Instant now = clock.now();
    auto ledger = load_ledger(data, now + std::chrono::seconds(1));
    if (!ledger) return std::unexpected(ledger.error());
    auto customers = observe(data, *ledger, now);
    if (!customers) return std::unexpected(customers.error());
    std::set<std::string> live;
    for (const auto& o : *customers) live.insert(o.tenant_id);
    if (tenant_id.empty()) return predict(**model, *customers, now, live);
    auto one = observe(data, *ledger, now, {}, tenant_id);
    if (!one) return std::unexpected(one.error());
    return predict(**model, *one, now, live);
  }
};

Service::Service(tenancy::TenantData& data, const Clock& clock, int threads, metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(data, clock, threads, registry)) {}
Service::~Service() = default;

Result<ModelInfo> Service::train(const TrainRequest& request, const audit::Context& who, const audit::Recorder& audit,
                                 const Progress& progress) {
  if (request.horizon_days < 7 || request.horizon_days > 365) {
    return fail(Errc::invalid_argument, "horizonDays must be between 7 and 365");
  }
  if (request.step_days < 1 || request.step_days > 90) {
    return fail(Errc::invalid_argument, "stepDays must be between 1 and 90");
  }
  const Instant now = impl_->clock.now();
  const Instant to = std::min(request.to.value_or(now), now);
  Instant from{};
  if (request.from) {
    from = *request.from;
  } else {
    // The ledger's first day, plus the usage window so the first rows have their history.
    auto ledger = load_ledger(impl_->data, to);
    if (!ledger) return std::unexpected(ledger.error());
    Instant first = to;
    for (const auto& [tenant, rows] : *ledger) {
      for (const auto& r : rows) first = std::min(first, r.effective);
    }
    from = first + Windows{}.usage;
  }
  if (progress) progress(0, 4, "features");
  TrainingSetOptions options{
      .from = from, .to = to, .horizon = days(request.horizon_days), .step = days(request.step_days), .windows = {}};
  std::vector<Observation> rows;
  auto set = training_set(impl_->data, options, &rows);
  if (!set) return std::unexpected(set.error());
  std::int64_t positives = 0;
  for (float y : set->y) positives += y > 0.5F ? 1 : 0;
  if (positives < 2 || positives + 2 > static_cast<std::int64_t>(set->rows)) {
    return fail(Errc::invalid_argument, "the range holds " + std::to_string(set->rows) + " customer rows of which " +
                                            std::to_string(positives) +
                                            " churned: training needs at least two of each");
  }
  ml::EnsembleOptions eo;
  eo.seed = request.seed;
  eo.fit_weights = request.fit_weights;
  eo.threads = impl_->threads;

  // The temporal hold-out: the last fifth of the cutoffs, against a model trained on the rows whose labels were
  // known before the first of them.
  std::vector<Instant> cutoffs;
  for (const auto& o : rows) {
    if (cutoffs.empty() || cutoffs.back() != o.cutoff) cutoffs.push_back(o.cutoff);
  }
  Json metrics = Json::object();
  const std::size_t test_from = cutoffs.size() - std::max<std::size_t>(1, cutoffs.size() / 5);
  const Instant split = cutoffs[test_from];
  std::vector<std::size_t> fit_index, test_index;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].cutoff >= split) {
      test_index.push_back(i);
    } else if (rows[i].cutoff + options.horizon <= split) {
      fit_index.push_back(i);
    }
  }
  const ml::Dataset fit = set->subset(fit_index);
  const ml::Dataset test = set->subset(test_index);
  auto both = [](const ml::Dataset& d) {
    const auto pos = std::count_if(d.y.begin(), d.y.end(), [](float v) { return v > 0.5F; });
    return pos >= 2 && pos + 2 <= static_cast<std::ptrdiff_t>(d.rows);
  };
  if (progress) progress(1, 4, "hold-out");
  if (both(fit) && both(test)) {
    auto e = ml::Ensemble::train(fit, eo);
    if (!e) return std::unexpected(e.error());
    auto p = e->predict(test.x.data(), test.rows, test.cols());
    if (!p) return std::unexpected(p.error());
    Json per = Json::object();
    for (std::size_t m = 0; m < ml::k_model_names.size(); ++m) {
      per[std::string(ml::k_model_names[m])] = scores_json(ml::score(p->of(m), test.y));
    }
    metrics = {{"holdout",
                {{"from", format_rfc3339(split)},
                 {"trainingRows", fit.rows},
                 {"rows", test.rows},
                 {"positives", std::count_if(test.y.begin(), test.y.end(), [](float v) { return v > 0.5F; })},
                 {"models", std::move(per)}}}};
  } else {
    metrics = {{"holdout", nullptr},
               {"note",
                "the hold-out was not measured: its part or the rows before it lack churned or retained "
                "customers"}};
  }
  if (progress) progress(2, 4, "ensemble");
  auto ensemble = ml::Ensemble::train(*set, eo);
  if (!ensemble) return std::unexpected(ensemble.error());
  metrics["weights"] = ensemble->weights();
  auto doc = ensemble->to_json();
  if (!doc) return std::unexpected(doc.error());
  const std::string text = doc->dump();
  if (progress) progress(3, 4, "registry");
  auto stored = impl_->platform<ModelInfo>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<ModelInfo> {
        storage::Transaction& tx = ptx.control();
        auto next = tx.execute(sql::k_model_next);
        if (!next) return std::unexpected(next.error());
        const std::int64_t version = next->int_at(0, 0).value_or(1);
        auto ins = tx.execute(sql::k_model_insert,
                              {Value(version), Value(std::string(k_model_name)), Value(Json(feature_names()).dump()),
                               Value(metrics.dump()), Value(unix_seconds(from)), Value(unix_seconds(to)),
                               Value(std::int64_t{request.horizon_days}), Value(static_cast<std::int64_t>(set->rows)),
                               Value(positives), Value(who.actor_id), Value(unix_seconds(now)), Value(text)});
        if (!ins) return std::unexpected(ins.error());
        audit::Event event{
            .action = "churn.model_trained", .resource_type = "churn_model", .resource_id = std::to_string(version)};
        event.changes = audit::created_changes({{"horizonDays", request.horizon_days},
                                                {"trainingRows", set->rows},
                                                {"positives", positives},
                                                {"dataFrom", format_rfc3339(from)},
                                                {"dataTo", format_rfc3339(to)}});
        if (auto a = audit::record(audit, tx, event); !a) return std::unexpected(a.error());
        if (request.activate) {
          if (auto r = tx.execute(sql::k_model_retire); !r) return std::unexpected(r.error());
          if (auto r = tx.execute(sql::k_model_activate, {Value(version), Value(unix_seconds(now))}); !r) {
            return std::unexpected(r.error());
          }
          audit::Event act{.action = "churn.model_activated",
                           .resource_type = "churn_model",
                           .resource_id = std::to_string(version)};
          audit::add_change(act.changes, "status", "trained", "active");
          if (auto a = audit::record(audit, tx, act); !a) return std::unexpected(a.error());
        }
        auto got = tx.execute(sql::k_model_get, {Value(version)});
        if (!got) return std::unexpected(got.error());
        if (got->empty()) return fail(Errc::internal, "the model just stored is not there");
        return read_model(*got, 0);
      },
      false);
  if (progress) progress(4, 4, "done");
  return stored;
}

Result<std::vector<ModelInfo>> Service::models() {
  return impl_->platform<std::vector<ModelInfo>>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<std::vector<ModelInfo>> {
        auto rows = ptx.control().execute(sql::k_model_list);
        if (!rows) return std::unexpected(rows.error());
        std::vector<ModelInfo> out;
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_model(*rows, i));
        return out;
      },
      true);
}

Result<ModelInfo> Service::model(int version) {
  auto m = impl_->load(sql::k_model_get, {Value(std::int64_t{version})});
  if (!m) return std::unexpected(m.error());
  return (*m)->info;
}

Result<std::string> Service::export_booster(int version, std::string_view which) {
  auto m = impl_->load(sql::k_model_get, {Value(std::int64_t{version})});
  if (!m) return std::unexpected(m.error());
  if (which == "random_forest") return (*m)->ensemble.forest().to_json();
  if (which == "xgboost") return (*m)->ensemble.boosting().to_json();
  return fail(Errc::invalid_argument, "the tree models are random_forest and xgboost");
}

Result<ModelInfo> Service::activate(int version, const audit::Context&, const audit::Recorder& audit) {
  const Instant now = impl_->clock.now();
  auto out = impl_->platform<ModelInfo>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<ModelInfo> {
        storage::Transaction& tx = ptx.control();
        auto got = tx.execute(sql::k_model_get, {Value(std::int64_t{version})});
        if (!got) return std::unexpected(got.error());
        if (got->empty()) return fail(Errc::not_found, "no churn model has version " + std::to_string(version));
        const ModelInfo before = read_model(*got, 0);
        if (before.status == "active") return before;
        auto previous = tx.execute(sql::k_model_active);
        if (!previous) return std::unexpected(previous.error());
        if (auto r = tx.execute(sql::k_model_retire); !r) return std::unexpected(r.error());
        if (auto r = tx.execute(sql::k_model_activate, {Value(std::int64_t{version}), Value(unix_seconds(now))}); !r) {
          return std::unexpected(r.error());
        }
        audit::Event event{
            .action = "churn.model_activated", .resource_type = "churn_model", .resource_id = std::to_string(version)};
        audit::add_change(event.changes, "status", before.status, "active");
        if (!previous->empty()) {
          audit::add_change(event.changes, "replaces", nullptr, previous->int_at(0, 0).value_or(0));
        }
        if (auto a = audit::record(audit, tx, event); !a) return std::unexpected(a.error());
        auto after = tx.execute(sql::k_model_get, {Value(std::int64_t{version})});
        if (!after) return std::unexpected(after.error());
        return read_model(*after, 0);
      },
      false);
  return out;
}

Result<Prediction> Service::predict(const std::string& tenant_id) {
  auto p = impl_->predict_now(tenant_id);
  if (!p) return std::unexpected(p.error());
  if (p->empty()) return fail(Errc::not_found, "no such tenant");
  return std::move(p->front());
}

Result<std::vector<Prediction>> Service::predict_all() {
  auto p = impl_->predict_now("");
  if (!p) return std::unexpected(p.error());
  std::stable_sort(p->begin(), p->end(),
                   [](const Prediction& a, const Prediction& b) { return a.probability > b.probability; });
  return p;
}

Result<Json> Service::evaluate(int version, Instant at, std::chrono::days horizon) {
  auto m = impl_->load(sql::k_model_get, {Value(std::int64_t{version})});
  if (!m) return std::unexpected(m.error());
  auto ledger = load_ledger(impl_->data, impl_->clock.now() + std::chrono::seconds(1));
  if (!ledger) return std::unexpected(ledger.error());
  Ledger known;
  for (const auto& [tenant, rows] : *ledger) {
    auto& dst = known[tenant];
    for (const auto& r : rows) {
      if (r.effective < at && r.recorded < at) dst.push_back(r);
    }
  }
  auto seen = observe(impl_->data, known, at);
  if (!seen) return std::unexpected(seen.error());
  std::vector<float> x, y;
  for (const auto& o : *seen) {
    x.insert(x.end(), o.values.begin(), o.values.end());
    y.push_back(churned(*ledger, o.tenant_id, at, horizon) ? 1.0F : 0.0F);
  }
  const auto positives = std::count_if(y.begin(), y.end(), [](float v) { return v > 0.5F; });
  if (positives == 0 || positives == static_cast<std::ptrdiff_t>(y.size())) {
    return fail(Errc::invalid_argument, "the customers at that instant did not both churn and stay within the horizon");
  }
  auto p = (*m)->ensemble.predict(x.data(), seen->size(), k_feature_names.size());
  if (!p) return std::unexpected(p.error());
  Json per = Json::object();
  for (std::size_t k = 0; k < ml::k_model_names.size(); ++k) {
    per[std::string(ml::k_model_names[k])] = scores_json(ml::score(p->of(k), y));
  }
  return Json{{"modelVersion", version}, {"at", format_rfc3339(at)}, {"horizonDays", horizon.count()},
              {"customers", y.size()},   {"churned", positives},     {"models", std::move(per)}};
}

Result<BatchResult> Service::score_all(const HighRiskHook& on_high, const audit::Recorder& audit) {
  auto predictions = predict_all();
  if (!predictions) return std::unexpected(predictions.error());
  const Instant now = impl_->clock.now();
  const Instant day = std::chrono::floor<days>(now);
  BatchResult out;
  auto r = impl_->data.transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    out = {};
    storage::Transaction& tx = ptx.control();
    auto previous = tx.execute(sql::k_score_previous, {Value(unix_seconds(day))});
    if (!previous) return std::unexpected(previous.error());
    std::map<std::string, std::string> before;
    for (std::size_t i = 0; i < previous->rows.size(); ++i) {
      before[previous->text_at(i, 0).value_or("")] = previous->text_at(i, 1).value_or("");
    }
    for (const Prediction& p : *predictions) {
      Json pj = to_json(p);
      Score s{.tenant_id = p.tenant_id,
              .day = day,
              .model_version = p.model_version,
              .probability = p.probability,
              .risk_level = p.risk_level,
              .confidence = p.confidence,
              .factors = pj["topRiskFactors"],
              .features = pj["features"],
              .plan_tier = p.plan_tier,
              .scored_at = now};
      auto up = tx.execute(sql::k_score_upsert,
                           {Value(s.tenant_id), Value(unix_seconds(day)), Value(std::int64_t{s.model_version}),
                            Value(s.probability), Value(s.risk_level), Value(s.confidence), Value(s.factors.dump()),
                            Value(s.features.dump()), Value(s.plan_tier), Value(unix_seconds(now))});
      if (!up) return std::unexpected(up.error());
      out.scored += 1;
      if (s.risk_level != "high") continue;
      out.high += 1;
      if (before[s.tenant_id] == "high") continue;
      out.became_high.push_back(s.tenant_id);
      if (on_high) {
        if (auto h = on_high(tx, s); !h) return h;
      }
    }
    audit::Event event{.action = "churn.batch_scored",
                       .resource_type = "churn_batch",
                       .resource_id = format_rfc3339(day).substr(0, 10)};
    event.changes =
        audit::created_changes({{"scored", out.scored}, {"high", out.high}, {"becameHigh", out.became_high.size()}});
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  if (auto g = refresh_gauges(); !g) return std::unexpected(g.error());
  return out;
}

Result<void> Service::refresh_gauges() {
  if (impl_->risk == nullptr) return {};
  auto latest = latest_scores();
  if (!latest) return std::unexpected(latest.error());
  impl_->set_gauges(*latest);
  return {};
}

Result<std::vector<Score>> Service::latest_scores() {
  return impl_->platform<std::vector<Score>>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<std::vector<Score>> {
        auto rows = ptx.control().execute(sql::k_score_latest);
        if (!rows) return std::unexpected(rows.error());
        std::vector<Score> out;
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_score(*rows, i));
        return out;
      },
      true);
}

Result<std::vector<Score>> Service::history(const std::string& tenant_id, int limit) {
  return impl_->platform<std::vector<Score>>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<std::vector<Score>> {
        auto tx = ptx.tenant(tenant_id);
        auto rows = tx.execute(sql::k_score_history, {Value(std::int64_t{limit})});
        if (!rows) return std::unexpected(rows.error());
        std::vector<Score> out;
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_score(*rows, i));
        return out;
      },
      true);
}

Result<Intervention> Service::intervene(const std::string& tenant_id, const InterventionRequest& request,
                                        Actions& actions, const audit::Context& who, const audit::Recorder& audit) {
  const std::string& kind = request.kind;
  const std::string& note = request.note;
  if (!valid_intervention(kind)) return fail(Errc::invalid_argument, intervention_kinds_message());
  if (note.size() > 2000) return fail(Errc::invalid_argument, "note must be at most 2000 bytes");
  if (request.percent < 1 || request.percent > 100) {
    return fail(Errc::invalid_argument, "percent must be between 1 and 100");
  }
  if (request.days < 1 || request.days > 30) return fail(Errc::invalid_argument, "days must be between 1 and 30");
  // The risk it answers (when a model is active): recorded with it, so its effect can be measured later.
  std::optional<Prediction> risk;
  if (auto p = predict(tenant_id)) {
    risk = std::move(*p);
  } else if (p.error().code != Errc::conflict) {
    return std::unexpected(p.error());
  }
  Intervention v;
  v.id = new_uuid_v7(impl_->clock);
  auto done = kind == "retention_credit" ? actions.grant_credit(tenant_id, request.percent, note, who)
              : kind == "dunning_grace"  ? actions.extend_grace(tenant_id, request.days, who)
                                         : actions.send_mail(tenant_id, kind, note, "churn:" + v.id);
  if (!done) return std::unexpected(done.error());
  v.tenant_id = tenant_id;
  v.kind = kind;
  v.parameters = {{"note", note}};
  if (kind == "retention_credit") v.parameters["percent"] = request.percent;
  if (kind == "dunning_grace") v.parameters["days"] = request.days;
  v.result = std::move(*done);
  if (risk) {
    v.probability = risk->probability;
    v.risk_level = risk->risk_level;
    v.model_version = risk->model_version;
  }
  v.created_by = who.actor_id;
  v.created_at = impl_->clock.now();
  auto r = impl_->data.transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    auto tx = ptx.tenant(tenant_id);
    auto ins = tx.execute(sql::k_intervention_insert,
                          {Value(v.id), Value(v.kind), Value(v.parameters.dump()), Value(v.result.dump()),
                           v.probability ? Value(*v.probability) : Value(), Value(v.risk_level),
                           v.model_version ? Value(std::int64_t{*v.model_version}) : Value(), Value(v.created_by),
                           Value(unix_seconds(v.created_at))});
    if (!ins) return std::unexpected(ins.error());
    audit::Event event{.action = "churn.intervention_applied", .resource_type = "tenant", .resource_id = tenant_id};
    event.changes = audit::created_changes({{"intervention", v.id},
                                            {"kind", v.kind},
                                            {"churnProbability", v.probability ? Json(*v.probability) : Json()},
                                            {"riskLevel", v.risk_level}});
    return audit::record(audit, ptx.control(), event);
  });
  if (!r) return std::unexpected(r.error());
  return v;
}

Result<std::vector<Intervention>> Service::interventions(const std::string& tenant_id) {
  return impl_->platform<std::vector<Intervention>>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<std::vector<Intervention>> {
        auto tx = ptx.tenant(tenant_id);
        auto rows = tx.execute(sql::k_intervention_list);
        if (!rows) return std::unexpected(rows.error());
        std::vector<Intervention> out;
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_intervention(*rows, i, tenant_id));
        return out;
      },
      true);
}

Result<Intervention> Service::record_outcome(const std::string& tenant_id, const std::string& id,
                                             const std::string& outcome, const std::string& note, const audit::Context&,
                                             const audit::Recorder& audit) {
  if (std::find(k_outcomes.begin(), k_outcomes.end(), outcome) == k_outcomes.end()) {
    return fail(Errc::invalid_argument, "outcome must be one of retained, churned, downgraded, unknown");
  }
  if (note.size() > 2000) return fail(Errc::invalid_argument, "note must be at most 2000 bytes");
  const Instant now = impl_->clock.now();
  return impl_->platform<Intervention>(
      [&](tenancy::PlatformTransaction& ptx) -> Result<Intervention> {
        auto tx = ptx.tenant(tenant_id);
        auto got = tx.execute(sql::k_intervention_get, {Value(id)});
        if (!got) return std::unexpected(got.error());
        if (got->empty()) return fail(Errc::not_found, "no such intervention");
        const Intervention before = read_intervention(*got, 0, tenant_id);
        auto up =
            tx.execute(sql::k_intervention_outcome, {Value(id), Value(outcome), Value(note), Value(unix_seconds(now))});
        if (!up) return std::unexpected(up.error());
        audit::Event event{.action = "churn.intervention_outcome", .resource_type = "tenant", .resource_id = tenant_id};
        audit::add_change(event.changes, "outcome", before.outcome ? Json(*before.outcome) : Json(nullptr), outcome);
        audit::add_change(event.changes, "intervention", nullptr, id);
        if (auto a = audit::record(audit, ptx.control(), event); !a) return std::unexpected(a.error());
        auto after = tx.execute(sql::k_intervention_get, {Value(id)});
        if (!after) return std::unexpected(after.error());
        return read_intervention(*after, 0, tenant_id);
      },
      false);
}

std::vector<tenancy::TenantStatement> Service::purge_statements() {
  return {sql::k_purge_scores, sql::k_purge_interventions};
}

std::vector<tenancy::TenantStatement> Service::tenant_statements() {
  return {sql::k_score_history,        sql::k_intervention_insert, sql::k_intervention_list,  sql::k_intervention_get,
          sql::k_intervention_outcome, sql::k_purge_scores,        sql::k_purge_interventions};
}

}  // namespace atrium::churn
