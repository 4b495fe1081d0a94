#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/json.hpp"
#include "ml/dataset.hpp"

namespace atrium::ml {

struct MlpOptions {
  std::vector<int> hidden{32, 16};  // ReLU layers; the output is one sigmoid unit
  int epochs = 50;                  // the seed's default
  int batch = 32;
  double learning_rate = 1e-3;  // Adam (beta 0.9 / 0.999)
  double weight_decay = 1e-3;   // L2 on the weights
  int patience = 10;            // epochs without a better validation loss before stopping
  std::uint64_t seed = 42;
};

// A small multilayer perceptron (Eigen; its headers stay in mlp.cpp) for binary classification. Inputs are
// standardised with the training rows' means and deviations, except 0/1 indicator columns (one-hot levels), which
// stay as they are (a rare level is not scaled up); a missing input (NaN) is the training mean. Immutable once
// trained; copies share the weights.
class Mlp {
 public:
  // Trains on `train`, keeping the weights of the epoch with the lowest log loss on `validation` (early stopping;
  // an empty validation set keeps the last epoch's).
  static Mlp train(const Dataset& train, const Dataset& validation, const MlpOptions& options);

  std::vector<float> predict(const float* x, std::size_t rows) const;
  // The trained network as JSON (standardisation, then each layer's weights and biases, floats exactly), and back:
  // invalid_argument for a document that is not one of these or whose shapes do not fit together.
  Json to_json() const;
  static Result<Mlp> from_json(const Json& doc);
  std::size_t inputs() const;
  int epochs_run() const;
  int best_epoch() const;

 private:
  struct Impl;
  explicit Mlp(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace atrium::ml
