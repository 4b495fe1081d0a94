#include "ml/ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace atrium::ml {

namespace {

double logit(double p) {
  const double q = std::clamp(p, 1e-6, 1 - 1e-6);
  return std::log(q / (1 - q));
}

double log_loss(const std::vector<double>& p, const std::vector<float>& y) {
  double loss = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(p[i], 1e-15, 1 - 1e-15);
    loss -= y[i] > 0.5F ? std::log(q) : std::log(1 - q);
  }
  return loss / static_cast<double>(std::max<std::size_t>(1, p.size()));
}

// Platt scaling: the logistic regression of y on logit(p), by Newton's method (with Platt's smoothed targets).
std::pair<double, double> platt(const std::vector<double>& p, const std::vector<float>& y) {
  double positives = 0;
  for (float v : y) positives += v > 0.5F ? 1 : 0;
  const double negatives = static_cast<double>(y.size()) - positives;
  const double hi = (positives + 1) / (positives + 2);
  const double lo = 1 / (negatives + 2);
  double a = 1, b = 0;
  for (int it = 0; it < 50; ++it) {
    double g0 = 0, g1 = 0, h00 = 1e-9, h01 = 0, h11 = 1e-9;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double x = logit(p[i]);
      const double t = y[i] > 0.5F ? hi : lo;
      const double q = 1 / (1 + std::exp(-(a * x + b)));
      const double w = q * (1 - q);
      g0 += (q - t) * x;
      g1 += q - t;
      h00 += w * x * x;
      h01 += w * x;
      h11 += w;
    }
    const double det = h00 * h11 - h01 * h01;
    if (std::abs(det) < 1e-12) break;
    const double da = (h11 * g0 - h01 * g1) / det;
    const double db = (h00 * g1 - h01 * g0) / det;
    a -= da;
    b -= db;
    if (std::abs(da) + std::abs(db) < 1e-9) break;
  }
  return {a, b};
}

// The weighted mean of the models' log-odds, as a probability (a weighted geometric mean of their odds). The models
// speak on different scales — a forest's averaged leaves crowd the middle, boosting reaches the extremes — and the
// mean of log-odds keeps a confident model's ranking where the mean of probabilities would flatten it (on
// mlc_churn: ROC AUC 0.9241 against 0.9213).
std::vector<double> mix(const std::array<const std::vector<float>*, 3>& models, const std::array<double, 3>& w) {
  std::vector<double> out(models[0]->size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double z = w[0] * logit((*models[0])[i]) + w[1] * logit((*models[1])[i]) + w[2] * logit((*models[2])[i]);
    out[i] = 1 / (1 + std::exp(-z));
  }
  return out;
}

}  // namespace

const std::vector<float>& Predictions::of(std::size_t model) const {
  switch (model) {
    case 0: return forest;
    case 1: return boosting;
    case 2: return network;
    default: return ensemble;
  }
}

std::vector<int> stratified_folds(const std::vector<float>& y, int folds, std::uint64_t seed) {
  std::vector<int> fold(y.size(), 0);
  std::mt19937_64 rng(seed);
  for (const float cls : {0.0F, 1.0F}) {
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < y.size(); ++i) {
      if ((y[i] > 0.5F) == (cls > 0.5F)) rows.push_back(i);
    }
    std::shuffle(rows.begin(), rows.end(), rng);
    for (std::size_t k = 0; k < rows.size(); ++k) fold[rows[k]] = static_cast<int>(k % static_cast<std::size_t>(folds));
  }
  return fold;
}

Result<Ensemble> Ensemble::train(const Dataset& data, const EnsembleOptions& o, const Progress& progress, int step,
                                 int steps) {
  // The held-out rows: a stratified share, the same for every model.
  const int parts = std::max(2, static_cast<int>(std::lround(1.0 / std::clamp(o.holdout, 0.05, 0.5))));
  const auto part = stratified_folds(data.y, parts, o.seed ^ 0x9e3779b97f4a7c15ULL);
  std::vector<std::size_t> fit_rows, held_rows;
  for (std::size_t i = 0; i < data.rows; ++i) (part[i] == 0 ? held_rows : fit_rows).push_back(i);
  const Dataset fit = data.subset(fit_rows);
  const Dataset held = data.subset(held_rows);

  auto say = [&](int done, std::string_view what) {
    if (progress) progress(step + done, steps, what);
  };
  say(0, "random forest");
  auto forest = Booster::train(fit, Booster::random_forest(o.forest_trees, data.cols(), o.seed, o.threads));
  if (!forest) return std::unexpected(forest.error());
  say(1, "xgboost");
  auto boosting = Booster::train(fit, Booster::gradient_boosting(o.boosting_rounds, o.seed, o.threads));
  if (!boosting) return std::unexpected(boosting.error());
  say(2, "neural network");
  MlpOptions net = o.network;
  net.seed = o.seed;
  Mlp network = Mlp::train(fit, held, net);
  say(3, "calibration");

  Ensemble e(std::move(*forest), std::move(*boosting), std::move(network));
  e.weights_ = o.weights;
  auto f = e.forest_.predict(held.x.data(), held.rows, held.cols());
  if (!f) return std::unexpected(f.error());
  auto b = e.boosting_.predict(held.x.data(), held.rows, held.cols());
  if (!b) return std::unexpected(b.error());
  const auto n = e.network_.predict(held.x.data(), held.rows);
  const std::array<const std::vector<float>*, 3> models{&*f, &*b, &n};
  if (o.fit_weights) {
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i <= 20; ++i) {
      for (int j = 0; i + j <= 20; ++j) {
        const std::array<double, 3> w{i / 20.0, j / 20.0, (20 - i - j) / 20.0};
        const double loss = log_loss(mix(models, w), held.y);
        if (loss < best) {
          best = loss;
          e.weights_ = w;
        }
      }
    }
  }
  const double total = e.weights_[0] + e.weights_[1] + e.weights_[2];
  for (double& w : e.weights_) w /= total;
  std::tie(e.a_, e.b_) = platt(mix(models, e.weights_), held.y);
  say(4, "done");
  return e;
}

Result<Predictions> Ensemble::predict(const float* x, std::size_t rows, std::size_t cols) const {
  Predictions p;
  auto f = forest_.predict(x, rows, cols);
  if (!f) return std::unexpected(f.error());
  auto b = boosting_.predict(x, rows, cols);
  if (!b) return std::unexpected(b.error());
  p.forest = std::move(*f);
  p.boosting = std::move(*b);
  p.network = network_.predict(x, rows);
  const auto mixed = mix({&p.forest, &p.boosting, &p.network}, weights_);
  p.ensemble.resize(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    p.ensemble[i] = static_cast<float>(1 / (1 + std::exp(-(a_ * logit(mixed[i]) + b_))));
  }
  return p;
}

Result<Json> Ensemble::to_json() const {
  auto forest = forest_.to_json();
  if (!forest) return std::unexpected(forest.error());
  auto boosting = boosting_.to_json();
  if (!boosting) return std::unexpected(boosting.error());
  std::string error;
  auto forest_doc = parse_json(*forest, {}, &error);
  auto boosting_doc = parse_json(*boosting, {}, &error);
  if (!forest_doc || !boosting_doc) return fail(Errc::internal, "XGBoost wrote a model that is not JSON: " + error);
  return Json{{"format", "atrium-ensemble/1"},
              {"random_forest", std::move(*forest_doc)},
              {"xgboost", std::move(*boosting_doc)},
              {"neural_network", network_.to_json()},
              {"weights", weights_},
              {"calibration", {{"a", a_}, {"b", b_}}}};
}

Result<Ensemble> Ensemble::from_json(const Json& doc, int threads) {
  if (!doc.is_object() || doc.value("format", "") != "atrium-ensemble/1") {
    return fail(Errc::invalid_argument, "not an ensemble of format atrium-ensemble/1");
  }
  for (const char* member : {"random_forest", "xgboost", "neural_network", "weights", "calibration"}) {
    if (!doc.contains(member)) return fail(Errc::invalid_argument, std::string("the ensemble has no ") + member);
  }
  auto forest = Booster::from_json(doc["random_forest"].dump(), threads);
  if (!forest) return std::unexpected(forest.error());
  auto boosting = Booster::from_json(doc["xgboost"].dump(), threads);
  if (!boosting) return std::unexpected(boosting.error());
  auto network = Mlp::from_json(doc["neural_network"]);
  if (!network) return std::unexpected(network.error());
  const Json& w = doc["weights"];
  const Json& c = doc["calibration"];
  if (!w.is_array() || w.size() != 3 || !c.is_object() || !c.value("a", Json()).is_number() ||
      !c.value("b", Json()).is_number()) {
    return fail(Errc::invalid_argument, "the ensemble's weights or calibration are malformed");
  }
  Ensemble e(std::move(*forest), std::move(*boosting), std::move(*network));
  for (std::size_t i = 0; i < 3; ++i) {
    if (!w[i].is_number()) return fail(Errc::invalid_argument, "the ensemble's weights are malformed");
    e.weights_[i] = w[i].get<double>();
  }
  e.a_ = c["a"].get<double>();
  e.b_ = c["b"].get<double>();
  return e;
}

Result<CrossValidation> cross_validate(const Dataset& data, int folds, const EnsembleOptions& o,
                                       const Progress& progress) {
  if (folds < 2) return fail(Errc::invalid_argument, "cross-validation needs at least 2 folds");
  const auto fold = stratified_folds(data.y, folds, o.seed);
  std::array<std::vector<float>, 4> pooled;
  for (auto& p : pooled) p.assign(data.rows, 0.0F);
  CrossValidation cv;
  for (int k = 0; k < folds; ++k) {
    std::vector<std::size_t> train_rows, test_rows;
    for (std::size_t i = 0; i < data.rows; ++i) (fold[i] == k ? test_rows : train_rows).push_back(i);
    const Dataset train = data.subset(train_rows);
    const Dataset test = data.subset(test_rows);
    auto e = Ensemble::train(train, o, progress, k * 4, folds * 4);
    if (!e) return std::unexpected(e.error());
    auto p = e->predict(test.x.data(), test.rows, test.cols());
    if (!p) return std::unexpected(p.error());
    for (std::size_t m = 0; m < 4; ++m) {
      const auto& v = p->of(m);
      for (std::size_t i = 0; i < test_rows.size(); ++i) pooled[m][test_rows[i]] = v[i];
      cv.fold_roc_auc[m].push_back(roc_auc(v, test.y));
    }
    cv.weights = e->weights();
  }
  for (std::size_t m = 0; m < 4; ++m) cv.pooled[m] = score(pooled[m], data.y);
  return cv;
}

}  // namespace atrium::ml
