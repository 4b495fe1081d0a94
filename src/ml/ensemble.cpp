#include "ml/ensemble.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

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

namespace {

// How trainings share the cores: every model of every training running is a task, run by `workers` threads (a
// task at a time each) with XGBoost on `model_threads` threads. On small data XGBoost's threads gain little (a
// tree's levels are too short to split) while separate models on separate cores gain nearly all, so two cores
// train two models at once, one thread each; a few long-lived workers also keep the allocator's memory warm.
struct Plan {
  int model_threads = 1;
  int workers = 1;
};

Plan plan(int threads, int trainings) {
  const int cores = threads > 0 ? threads : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const int tasks = 3 * std::max(1, trainings);
  const int model_threads = std::max(1, cores / tasks);
  return {model_threads, std::clamp(cores / model_threads, 1, tasks)};
}

// Runs every task, each once, on `workers` threads (this one among them).
void run_all(const std::vector<std::function<void()>>& tasks, int workers) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < tasks.size(); i = next++) tasks[i]();
  };
  std::vector<std::jthread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
}

// The steps finished by every training running, reported through one Progress.
class Steps {
 public:
  Steps(int total, const Progress& progress) : total_(total), progress_(progress) {}
  void done(std::string_view what) {
    std::lock_guard lock(mutex_);
    ++done_;
    if (progress_) progress_(done_, total_, what);
  }

 private:
  std::mutex mutex_;
  int done_ = 0;
  int total_;
  const Progress& progress_;
};

// f(), an exception as an error (a worker thread must not end the process).
template <typename T, typename F>
Result<T> guarded(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return fail(Errc::internal, std::string("training failed: ") + e.what());
  }
}

}  // namespace

// One ensemble's training: its three models are independent tasks; finish() calibrates once they are done.
struct Training {
  const EnsembleOptions& o;
  Dataset fit, held;
  std::optional<Result<Booster>> forest, boosting;
  std::optional<Result<Mlp>> network;

  Training(const Dataset& data, const EnsembleOptions& options) : o(options) {
    // The held-out rows: a stratified share, the same for every model.
    const int parts = std::max(2, static_cast<int>(std::lround(1.0 / std::clamp(o.holdout, 0.05, 0.5))));
    const auto part = stratified_folds(data.y, parts, o.seed ^ 0x9e3779b97f4a7c15ULL);
    std::vector<std::size_t> fit_rows, held_rows;
    for (std::size_t i = 0; i < data.rows; ++i) (part[i] == 0 ? held_rows : fit_rows).push_back(i);
    fit = data.subset(fit_rows);
    held = data.subset(held_rows);
  }

  void add_tasks(std::vector<std::function<void()>>& tasks, const Plan& plan, Steps& steps) {
    tasks.emplace_back([this, &plan, &steps] {
      forest = guarded<Booster>([&] {
        return Booster::train(fit, Booster::random_forest(o.forest_trees, fit.cols(), o.seed, plan.model_threads));
      });
      steps.done("random forest");
    });
    tasks.emplace_back([this, &plan, &steps] {
      boosting = guarded<Booster>([&] {
        return Booster::train(fit, Booster::gradient_boosting(o.boosting_rounds, o.seed, plan.model_threads));
      });
      steps.done("xgboost");
    });
    tasks.emplace_back([this, &steps] {
      MlpOptions net = o.network;
      net.seed = o.seed;
      network = guarded<Mlp>([&]() -> Result<Mlp> { return Mlp::train(fit, held, net); });
      steps.done("neural network");
    });
  }

  // The weights (fitted on the held-out rows if asked) and the calibration of the trained models.
  Result<Ensemble> finish(Steps& steps) {
    if (!forest || !boosting || !network) return fail(Errc::internal, "a model of the ensemble did not train");
    if (!*forest) return std::unexpected(forest->error());
    if (!*boosting) return std::unexpected(boosting->error());
    if (!*network) return std::unexpected(network->error());
    Ensemble e(std::move(**forest), std::move(**boosting), std::move(**network));
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
    steps.done("calibration");
    return e;
  }
};

Result<Ensemble> Ensemble::train(const Dataset& data, const EnsembleOptions& o, const Progress& progress) {
  const Plan p = plan(o.threads, 1);
  Steps steps(4, progress);
  Training training(data, o);
  std::vector<std::function<void()>> tasks;
  training.add_tasks(tasks, p, steps);
  run_all(tasks, p.workers);
  auto e = training.finish(steps);
  if (!e) return e;
  // Scoring may use every core it was given.
  e->forest_.set_threads(o.threads);
  e->boosting_.set_threads(o.threads);
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
  // Every fold's models are tasks of one run (Plan), so the cores stay busy to the last model.
  const Plan p = plan(o.threads, folds);
  Steps steps(folds * 4, progress);
  std::vector<std::vector<std::size_t>> test_rows(static_cast<std::size_t>(folds));
  std::vector<std::unique_ptr<Training>> trainings;
  std::vector<std::function<void()>> tasks;
  for (int k = 0; k < folds; ++k) {
    std::vector<std::size_t> train_rows;
    for (std::size_t i = 0; i < data.rows; ++i)
      (fold[i] == k ? test_rows[static_cast<std::size_t>(k)] : train_rows).push_back(i);
    trainings.push_back(std::make_unique<Training>(data.subset(train_rows), o));
    trainings.back()->add_tasks(tasks, p, steps);
  }
  run_all(tasks, p.workers);

  std::array<std::vector<float>, 4> pooled;
  for (auto& v : pooled) v.assign(data.rows, 0.0F);
  CrossValidation cv;
  for (int k = 0; k < folds; ++k) {
    auto e = trainings[static_cast<std::size_t>(k)]->finish(steps);
    if (!e) return std::unexpected(e.error());
    const auto& rows = test_rows[static_cast<std::size_t>(k)];
    const Dataset test = data.subset(rows);
    auto predicted = e->predict(test.x.data(), test.rows, test.cols());
    if (!predicted) return std::unexpected(predicted.error());
    for (std::size_t m = 0; m < 4; ++m) {
      const auto& v = predicted->of(m);
      for (std::size_t i = 0; i < rows.size(); ++i) pooled[m][rows[i]] = v[i];
      cv.fold_roc_auc[m].push_back(roc_auc(v, test.y));
    }
    cv.weights = e->weights();
  }
  for (std::size_t m = 0; m < 4; ++m) cv.pooled[m] = score(pooled[m], data.y);
  return cv;
}

}  // namespace atrium::ml
