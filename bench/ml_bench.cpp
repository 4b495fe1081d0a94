// Scoring speed of the churn ensemble (docs/performance.md, Machine learning): an ensemble trained once on the CSV
// ATRIUM_ML_DATA (default tests/data/mlc_churn.csv, label churn, positive yes) scores batches of its rows,
// beside the XGBoost model alone (the baseline: one of the three models, the floor of what the ensemble costs).
// Items per second are predictions per second.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <optional>

#include "ml/dataset.hpp"
#include "ml/ensemble.hpp"

namespace {

using namespace atrium::ml;

struct Trained {
  Dataset batch;  // the file's rows repeated up to 10,000
  std::optional<Ensemble> ensemble;
};

const Trained& trained() {
  static const Trained t = [] {
    const char* path = std::getenv("ATRIUM_ML_DATA");
    auto data = load_csv(path != nullptr ? path : ATRIUM_SOURCE_DIR "/tests/data/mlc_churn.csv",
                         {.label = std::getenv("ATRIUM_ML_LABEL") ? std::getenv("ATRIUM_ML_LABEL") : "churn",
                          .positive = std::getenv("ATRIUM_ML_POSITIVE") ? std::getenv("ATRIUM_ML_POSITIVE") : "yes"});
    if (!data) {
      std::fprintf(stderr, "ml_bench: %s\n", data.error().message.c_str());
      std::exit(1);
    }
    Trained out;
    auto e = Ensemble::train(*data, {});
    if (!e) {
      std::fprintf(stderr, "ml_bench: %s\n", e.error().message.c_str());
      std::exit(1);
    }
    out.ensemble.emplace(std::move(*e));
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < 10'000; ++i) rows.push_back(i % data->rows);
    out.batch = data->subset(rows);
    return out;
  }();
  return t;
}

void BM_Ensemble(benchmark::State& state) {
  const auto& t = trained();
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto p = t.ensemble->predict(t.batch.x.data(), n, t.batch.cols());
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Ensemble)->Arg(1)->Arg(100)->Arg(10'000)->UseRealTime();

void BM_XgboostAlone(benchmark::State& state) {
  const auto& t = trained();
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto p = t.ensemble->boosting().predict(t.batch.x.data(), n, t.batch.cols());
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_XgboostAlone)->Arg(1)->Arg(100)->Arg(10'000)->UseRealTime();

}  // namespace
