#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ml/dataset.hpp"

namespace atrium::ml {

// A tree ensemble trained by libxgboost (its C API; xgboost/c_api.h stays in boosted.cpp): gradient-boosted trees,
// or a random forest (XGBoost's random-forest mode: one round of num_parallel_tree trees, each on a bootstrap-like
// row sample and a column sample per split, learning rate 1). Missing features (NaN) take XGBoost's learned default
// direction. Not copyable; moves.
class Booster {
 public:
  struct Params {
    std::map<std::string, std::string> values;  // XGBoost parameters (objective, max_depth, eta, ...)
    int rounds = 100;
  };
  // The seed's two tree models: XGBoost with 100 rounds, a random forest of 100 trees.
  static Params gradient_boosting(int rounds, std::uint64_t seed, int threads);
  static Params random_forest(int trees, std::size_t features, std::uint64_t seed, int threads);

  static Result<Booster> train(const Dataset& data, const Params& params);
  // XGBoost's own JSON model format (what Python's xgboost.Booster.load_model reads).
  static Result<Booster> from_json(const std::string& json, int threads);

  Booster(Booster&&) noexcept;
  Booster& operator=(Booster&&) noexcept;
  ~Booster();

  // P(positive) per row of `x` (rows x cols, row-major, NaN = missing).
  Result<std::vector<float>> predict(const float* x, std::size_t rows, std::size_t cols) const;
  // Per row, each feature's contribution to the margin (log-odds; TreeSHAP), then the bias: rows x (cols + 1).
  Result<std::vector<float>> contributions(const float* x, std::size_t rows, std::size_t cols) const;
  Result<std::string> to_json() const;
  // XGBoost's threads for predictions from now on (0: every core).
  void set_threads(int threads);

 private:
  struct Impl;
  explicit Booster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::ml
