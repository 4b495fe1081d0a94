#include "ml/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace atrium::ml {

namespace {

std::vector<std::size_t> by_score_descending(std::span<const float> p) {
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
  return order;
}

}  // namespace

double roc_auc(std::span<const float> p, std::span<const float> y) {
  // Mann-Whitney: the positives' rank sum, tied scores sharing their mean rank.
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  double positives = 0;
  double rank_sum = 0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && p[order[j]] == p[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j - 1)) / 2.0 + 1.0;
    for (std::size_t k = i; k < j; ++k) {
      if (y[order[k]] > 0.5F) {
        positives += 1;
        rank_sum += mean_rank;
      }
    }
    i = j;
  }
  const double negatives = static_cast<double>(p.size()) - positives;
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives);
}

Scores score(std::span<const float> p, std::span<const float> y) {
  Scores s;
  s.roc_auc = roc_auc(p, y);
  const auto order = by_score_descending(p);
  double positives = 0;
  for (float v : y) positives += v > 0.5F ? 1 : 0;
  double seen = 0;
  double hits = 0;
  double precision_sum = 0;
  for (std::size_t i = 0; i < order.size();) {
    // Tied scores form one threshold: their positives share its precision.
    std::size_t j = i;
    double tied_hits = 0;
    while (j < order.size() && p[order[j]] == p[order[i]]) tied_hits += y[order[j++]] > 0.5F ? 1 : 0;
    seen += static_cast<double>(j - i);
    hits += tied_hits;
    precision_sum += tied_hits * (hits / seen);
    i = j;
  }
  s.pr_auc = positives > 0 ? precision_sum / positives : 0;
  double brier = 0;
  double loss = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(static_cast<double>(p[i]), 1e-15, 1 - 1e-15);
    brier += (p[i] - y[i]) * (p[i] - y[i]);
    loss -= y[i] > 0.5F ? std::log(q) : std::log(1 - q);
  }
  const double n = static_cast<double>(std::max<std::size_t>(1, p.size()));
  s.brier = brier / n;
  s.log_loss = loss / n;
  return s;
}

}  // namespace atrium::ml
