#pragma once

#include <span>

namespace atrium::ml {

// How well probabilities `p` score 0/1 labels `y` (same length, both classes present for the AUCs).
struct Scores {
  double roc_auc = 0;   // area under the ROC curve: the chance a positive is scored above a negative (ties 1/2)
  double pr_auc = 0;    // average precision: the mean of the precision at each positive, by descending score
  double brier = 0;     // mean squared error of p
  double log_loss = 0;  // mean -log likelihood, p clipped to [1e-15, 1 - 1e-15]
};

Scores score(std::span<const float> p, std::span<const float> y);
double roc_auc(std::span<const float> p, std::span<const float> y);

}  // namespace atrium::ml
