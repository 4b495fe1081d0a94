#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/boosted.hpp"
#include "ml/dataset.hpp"
#include "ml/metrics.hpp"
#include "ml/mlp.hpp"

namespace atrium::ml {

// The seed's churn ensemble: a random forest (100 trees), XGBoost (100 rounds) and a neural network (50 epochs),
// combined with weights 0.35 / 0.40 / 0.25 (a weighted mean of their log-odds), then calibrated (Platt scaling).
struct EnsembleOptions {
  int forest_trees = 100;
  int boosting_rounds = 100;
  MlpOptions network;
  std::array<double, 3> weights{0.35, 0.40, 0.25};  // forest, boosting, network
  // Fit the weights instead (on the held-out rows: the simplex in steps of 0.05 with the lowest log loss).
  bool fit_weights = false;
  // The share of the training rows held out (stratified) for the network's early stopping, the calibration and
  // fitted weights; the models learn from the rest.
  double holdout = 0.15;
  std::uint64_t seed = 42;
  // The cores training may use (0: all). The three models train at the same time, each fold's too in
  // cross-validation, at most this many at once; XGBoost gets the cores a model's share leaves (often one).
  int threads = 0;
};

inline constexpr std::array<std::string_view, 4> k_model_names = {"random_forest", "xgboost", "neural_network",
                                                                  "ensemble"};

// Each model's P(positive) per row, and the ensemble's (calibrated).
struct Predictions {
  std::vector<float> forest, boosting, network, ensemble;
  const std::vector<float>& of(std::size_t model) const;
};

// Progress: (steps done, steps in all, what runs now).
using Progress = std::function<void(int, int, std::string_view)>;

class Ensemble {
 public:
  static Result<Ensemble> train(const Dataset& data, const EnsembleOptions& options, const Progress& progress = {});
  Result<Predictions> predict(const float* x, std::size_t rows, std::size_t cols) const;
  // The whole ensemble as one JSON document: both tree models in XGBoost's own JSON model format (members
  // "random_forest" and "xgboost", each loadable by Python's xgboost.Booster), the network, the weights and the
  // calibration. from_json: invalid_argument for anything else.
  Result<Json> to_json() const;
  static Result<Ensemble> from_json(const Json& doc, int threads = 0);
  const std::array<double, 3>& weights() const { return weights_; }
  // Platt scaling: P = sigmoid(a * z + b) of the weighted mean z of the models' log-odds.
  double calibration_a() const { return a_; }
  double calibration_b() const { return b_; }
  const Booster& forest() const { return forest_; }
  const Booster& boosting() const { return boosting_; }
  const Mlp& network() const { return network_; }

 private:
  friend struct Training;
  Ensemble(Booster forest, Booster boosting, Mlp network)
      : forest_(std::move(forest)), boosting_(std::move(boosting)), network_(std::move(network)) {}
  Booster forest_;
  Booster boosting_;
  Mlp network_;
  std::array<double, 3> weights_{};
  double a_ = 1;
  double b_ = 0;
};

// Stratified k-fold cross-validation (folds drawn with options.seed): each model's and the ensemble's scores on the
// pooled out-of-fold predictions, and each fold's ROC AUC.
struct CrossValidation {
  std::array<Scores, 4> pooled;                     // by k_model_names
  std::array<std::vector<double>, 4> fold_roc_auc;  // by k_model_names
  std::array<double, 3> weights{};                  // the last fold's (the fitted ones with fit_weights)
};
Result<CrossValidation> cross_validate(const Dataset& data, int folds, const EnsembleOptions& options,
                                       const Progress& progress = {});

// Stratified folds: fold[i] is the fold of row i, in [0, folds).
std::vector<int> stratified_folds(const std::vector<float>& y, int folds, std::uint64_t seed);

}  // namespace atrium::ml
