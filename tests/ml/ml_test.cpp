// The machine-learning core (src/ml/): reading any CSV into features, the scores, and the three models and their
// ensemble on data whose answer is known.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <numeric>
#include <random>

#include "ml/dataset.hpp"
#include "ml/ensemble.hpp"
#include "ml/metrics.hpp"

namespace atrium::ml {
namespace {

TEST(MlCsv, NumericAndCategoricalColumnsWithMissingValuesAndQuotes) {
  const std::string csv =
      "id,plan,\"spend, monthly\",note,churn\r\n"
      "1,pro,10.5,\"said \"\"bye\"\"\",yes\n"
      "2,free,NA,\"two\nlines\",no\n"
      "3,pro,,x,no\n"
      "4,?,7,y,\n"
      "5,team,-3e2,z,yes\n";
  CsvSummary s;
  auto d = parse_csv(csv, {.label = "churn", .positive = "yes", .max_levels = 2}, &s);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(s.rows, 4u);
  EXPECT_EQ(s.dropped_rows, 1u);  // row 4 has no label
  EXPECT_EQ(s.positives, 2u);
  EXPECT_EQ(s.numeric_columns, 2u);      // id, spend
  EXPECT_EQ(s.categorical_columns, 2u);  // plan, note
  // plan: pro (2) kept, then free/team (1 each, ties by name) -> free kept, team "(other)"; note: 4 levels, 2 kept.
  ASSERT_EQ(d->features, (std::vector<std::string>{"id", "plan=pro", "plan=free", "plan=(other)", "spend, monthly",
                                                   "note=said \"bye\"", "note=two\nlines", "note=(other)"}));
  EXPECT_EQ(d->y, (std::vector<float>{1, 0, 0, 1}));
  const float* r0 = d->row(0);
  EXPECT_EQ(r0[0], 1);
  EXPECT_EQ(r0[1], 1);
  EXPECT_EQ(r0[2], 0);
  EXPECT_FLOAT_EQ(r0[4], 10.5F);
  EXPECT_EQ(r0[5], 1);
  EXPECT_TRUE(std::isnan(d->row(1)[4]));  // NA
  EXPECT_TRUE(std::isnan(d->row(2)[4]));  // empty
  EXPECT_EQ(d->row(3)[3], 1);             // team -> (other)
  EXPECT_FLOAT_EQ(d->row(3)[4], -300.0F);
}

TEST(MlCsv, BadFilesAreRefusedNamingTheProblem) {
  EXPECT_NE(parse_csv("a,b\n1,2\n", {.label = "c", .positive = "1"}).error().message.find("no column named c"),
            std::string::npos);
  EXPECT_NE(parse_csv("a,b\n1,2\n3\n", {.label = "b", .positive = "2"}).error().message.find("record 3 has 1"),
            std::string::npos);
  EXPECT_NE(parse_csv("a,b\n1,no\n", {.label = "b", .positive = "yes"}).error().message.find("no row has"),
            std::string::npos);
  EXPECT_NE(parse_csv("a,b\n1,yes\n", {.label = "b", .positive = "yes"}).error().message.find("every row"),
            std::string::npos);
  EXPECT_FALSE(parse_csv("a,b\n\"1,yes\n", {.label = "b", .positive = "yes"}));
}

TEST(MlMetrics, KnownValues) {
  const std::vector<float> y{0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.1F, 0.4F, 0.35F, 0.8F}, y), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.5F, 0.5F, 0.5F, 0.5F}, y), 0.5);  // ties count half
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.9F, 0.8F, 0.1F, 0.2F}, y), 0.0);
  const auto s = score(std::vector<float>{0.1F, 0.4F, 0.35F, 0.8F}, y);
  // By descending score: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): precisions at the positives 1 and 2/3.
  EXPECT_NEAR(s.pr_auc, (1.0 + 2.0 / 3.0) / 2.0, 1e-12);
  EXPECT_NEAR(s.brier, (0.01 + 0.16 + 0.4225 + 0.04) / 4.0, 1e-6);
  EXPECT_NEAR(s.log_loss, -(std::log(0.9) + std::log(0.6) + std::log(0.35) + std::log(0.8)) / 4.0, 1e-6);
}

// y = 1 when x0 + x1 * x2 > 0 plus noise: learnable by trees and by the network, not by chance.
Dataset synthetic(std::size_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0, 1);
  Dataset d;
  d.features = {"x0", "x1", "x2", "noise"};
  d.rows = rows;
  for (std::size_t i = 0; i < rows; ++i) {
    const float x0 = n(rng), x1 = n(rng), x2 = n(rng), noise = n(rng);
    d.x.insert(d.x.end(), {x0, x1, i % 17 == 0 ? std::nanf("") : x2, noise});
    d.y.push_back(x0 + x1 * x2 + 0.3F * n(rng) > 0 ? 1.0F : 0.0F);
  }
  return d;
}

TEST(MlEnsemble, EveryModelLearnsAndTheEnsembleIsCalibrated) {
  const Dataset data = synthetic(2000, 7);
  EnsembleOptions o;
  o.forest_trees = 50;
  o.boosting_rounds = 50;
  o.network.epochs = 30;
  auto cv = cross_validate(data, 3, o);
  ASSERT_TRUE(cv) << cv.error().message;
  for (std::size_t m = 0; m < 4; ++m) {
    EXPECT_GT(cv->pooled[m].roc_auc, 0.85) << k_model_names[m];
    EXPECT_EQ(cv->fold_roc_auc[m].size(), 3u);
  }
  EXPECT_GE(cv->pooled[3].roc_auc, cv->pooled[2].roc_auc - 0.02);
  // Calibrated: the mean probability is near the positive rate, and the Brier score beats always saying the rate.
  double rate = 0;
  for (float v : data.y) rate += v / static_cast<double>(data.rows);
  EXPECT_LT(cv->pooled[3].brier, rate * (1 - rate) * 0.6);
  EXPECT_EQ(cv->weights, (std::array<double, 3>{0.35, 0.40, 0.25}));

  // The same seed gives the same answer.
  auto again = cross_validate(data, 3, o);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->pooled[3].roc_auc, cv->pooled[3].roc_auc);
}

TEST(MlEnsemble, CrossValidationGivesTheSameAnswerOnOneThreadOrManyAndReportsEveryStepOnce) {
  // The folds' models train as parallel tasks; which worker runs which, and in what order, must not change a
  // number. Progress comes from several threads: each step once, counting up to folds x 4.
  const Dataset data = synthetic(900, 3);
  EnsembleOptions o;
  o.forest_trees = 20;
  o.boosting_rounds = 20;
  o.network.epochs = 8;
  o.threads = 1;
  auto one = cross_validate(data, 4, o);
  ASSERT_TRUE(one) << one.error().message;
  for (int threads : {2, 5}) {
    o.threads = threads;
    std::mutex m;
    std::vector<int> seen;
    auto many = cross_validate(data, 4, o, [&](int done, int total, std::string_view) {
      std::lock_guard lock(m);
      EXPECT_EQ(total, 16);
      seen.push_back(done);
    });
    ASSERT_TRUE(many) << many.error().message;
    for (std::size_t m = 0; m < 4; ++m) {
      EXPECT_EQ(many->pooled[m].roc_auc, one->pooled[m].roc_auc) << threads << " threads, " << k_model_names[m];
      EXPECT_EQ(many->fold_roc_auc[m], one->fold_roc_auc[m]) << threads << " threads, " << k_model_names[m];
    }
    std::vector<int> expected(16);
    std::iota(expected.begin(), expected.end(), 1);
    EXPECT_EQ(seen, expected) << threads << " threads";
  }
}

TEST(MlEnsemble, FittedWeightsSumToOneAndTheBoosterRoundTripsThroughXgboostJson) {
  const Dataset data = synthetic(1200, 11);
  EnsembleOptions o;
  o.forest_trees = 20;
  o.boosting_rounds = 30;
  o.network.epochs = 10;
  o.fit_weights = true;
  auto e = Ensemble::train(data, o);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_NEAR(e->weights()[0] + e->weights()[1] + e->weights()[2], 1.0, 1e-12);
  auto json = e->boosting().to_json();
  ASSERT_TRUE(json);
  EXPECT_NE(json->find("\"learner\""), std::string::npos);
  auto loaded = Booster::from_json(*json, 1);
  ASSERT_TRUE(loaded) << loaded.error().message;
  auto a = e->boosting().predict(data.x.data(), 100, data.cols());
  auto b = loaded->predict(data.x.data(), 100, data.cols());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  // SHAP contributions: per row, the features' and the bias sum to the margin.
  auto c = e->boosting().contributions(data.x.data(), 5, data.cols());
  ASSERT_TRUE(c);
  ASSERT_EQ(c->size(), 5 * (data.cols() + 1));
  for (std::size_t r = 0; r < 5; ++r) {
    double margin = 0;
    for (std::size_t k = 0; k <= data.cols(); ++k) margin += (*c)[r * (data.cols() + 1) + k];
    EXPECT_NEAR(1 / (1 + std::exp(-margin)), (*a)[r], 1e-4);
  }
}

TEST(MlEnsemble, TheWholeEnsembleRoundTripsThroughJsonWithTheSamePredictions) {
  const Dataset data = synthetic(800, 5);
  EnsembleOptions o;
  o.forest_trees = 10;
  o.boosting_rounds = 20;
  o.network.epochs = 5;
  auto e = Ensemble::train(data, o);
  ASSERT_TRUE(e) << e.error().message;
  auto doc = e->to_json();
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ((*doc)["format"], "atrium-ensemble/1");
  // Through text, as the registry stores it.
  std::string error;
  auto parsed = parse_json(doc->dump(), {.max_depth = 128}, &error);
  ASSERT_TRUE(parsed) << error;
  auto back = Ensemble::from_json(*parsed, 1);
  ASSERT_TRUE(back) << back.error().message;
  auto a = e->predict(data.x.data(), data.rows, data.cols());
  auto b = back->predict(data.x.data(), data.rows, data.cols());
  ASSERT_TRUE(a && b);
  for (std::size_t m = 0; m < 4; ++m) EXPECT_EQ(a->of(m), b->of(m)) << k_model_names[m];
  EXPECT_EQ(back->weights(), e->weights());
  EXPECT_EQ(back->calibration_a(), e->calibration_a());

  // What is not an ensemble is refused, naming what is wrong.
  Json broken = *parsed;
  broken["neural_network"]["layers"][0]["bias"] = Json::array();
  EXPECT_EQ(Ensemble::from_json(broken, 1).error().code, Errc::invalid_argument);
  broken = *parsed;
  broken["neural_network"]["layers"][1]["weights"].erase(0);
  EXPECT_EQ(Ensemble::from_json(broken, 1).error().code, Errc::invalid_argument);
  broken = *parsed;
  broken.erase("calibration");
  EXPECT_EQ(Ensemble::from_json(broken, 1).error().code, Errc::invalid_argument);
  EXPECT_EQ(Ensemble::from_json(Json{{"format", "other"}}, 1).error().code, Errc::invalid_argument);
  broken = *parsed;
  broken["xgboost"] = Json{{"learner", 1}};
  EXPECT_FALSE(Ensemble::from_json(broken, 1));
}

}  // namespace
}  // namespace atrium::ml
