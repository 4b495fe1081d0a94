#include "ml/mlp.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>

namespace atrium::ml {

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Row = Eigen::RowVectorXf;

struct Layer {
  Matrix w;  // in x out
  Row b;     // out
};

struct Adam {
  Matrix mw, vw;
  Row mb, vb;
};

float sigmoid(float z) { return 1.0F / (1.0F + std::exp(-z)); }

}  // namespace

struct Mlp::Impl {
  Row mean, scale;  // standardisation: (x - mean) * scale
  std::vector<Layer> layers;
  int epochs_run = 0;
  int best_epoch = 0;

  // The standardised rows of x (NaN -> 0, the mean).
  Matrix inputs(const float* x, std::size_t rows) const {
    const auto cols = mean.size();
    Matrix m(static_cast<Eigen::Index>(rows), cols);
    for (std::size_t r = 0; r < rows; ++r) {
      for (Eigen::Index c = 0; c < cols; ++c) {
        const float v = x[r * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)];
        m(static_cast<Eigen::Index>(r), c) = std::isnan(v) ? 0.0F : (v - mean(c)) * scale(c);
      }
    }
    return m;
  }

  // The activations of every layer for `in` (acts[0] = in, the last is the output probability).
  void forward(const Matrix& in, std::vector<Matrix>& acts) const {
    acts.resize(layers.size() + 1);
    acts[0] = in;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      Matrix z = acts[l] * layers[l].w;
      z.rowwise() += layers[l].b;
      if (l + 1 < layers.size()) {
        acts[l + 1] = z.cwiseMax(0.0F);
      } else {
        acts[l + 1] = z.unaryExpr([](float v) { return sigmoid(v); });
      }
    }
  }

  std::vector<float> probabilities(const Matrix& in) const {
    std::vector<Matrix> acts;
    forward(in, acts);
    const Matrix& out = acts.back();
    return std::vector<float>(out.data(), out.data() + out.rows());
  }
};

Mlp Mlp::train(const Dataset& train, const Dataset& validation, const MlpOptions& o) {
  auto impl = std::make_shared<Impl>();
  const auto cols = static_cast<Eigen::Index>(train.cols());
  impl->mean = Row::Zero(cols);
  impl->scale = Row::Ones(cols);
  for (Eigen::Index c = 0; c < cols; ++c) {
    double sum = 0, squares = 0, n = 0;
    bool binary = true;
    for (std::size_t r = 0; r < train.rows; ++r) {
      const float v = train.row(r)[c];
      if (std::isnan(v)) continue;
      sum += v;
      squares += static_cast<double>(v) * v;
      n += 1;
      binary = binary && (v == 0.0F || v == 1.0F);
    }
    if (n == 0) continue;
    if (binary) {  // indicators (one-hot levels) stay 0/1: a rare level is not scaled up
      impl->mean(c) = 0.0F;
      impl->scale(c) = 1.0F;
      continue;
    }
    const double m = sum / n;
    const double var = std::max(0.0, squares / n - m * m);
    impl->mean(c) = static_cast<float>(m);
    impl->scale(c) = var > 1e-12 ? static_cast<float>(1.0 / std::sqrt(var)) : 1.0F;
  }

  std::mt19937_64 rng(o.seed);
  std::vector<int> widths{static_cast<int>(cols)};
  widths.insert(widths.end(), o.hidden.begin(), o.hidden.end());
  widths.push_back(1);
  std::vector<Adam> adam;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    // He initialisation for ReLU layers.
    std::normal_distribution<float> normal(0.0F, std::sqrt(2.0F / static_cast<float>(std::max(1, widths[l]))));
    Layer layer{Matrix(widths[l], widths[l + 1]), Row::Zero(widths[l + 1])};
    for (Eigen::Index i = 0; i < layer.w.size(); ++i) layer.w.data()[i] = normal(rng);
    adam.push_back({Matrix::Zero(widths[l], widths[l + 1]), Matrix::Zero(widths[l], widths[l + 1]),
                    Row::Zero(widths[l + 1]), Row::Zero(widths[l + 1])});
    impl->layers.push_back(std::move(layer));
  }

  const Matrix x = impl->inputs(train.x.data(), train.rows);
  const Matrix vx = impl->inputs(validation.x.data(), validation.rows);
  std::vector<std::size_t> order(train.rows);
  std::iota(order.begin(), order.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  std::vector<Layer> best_layers = impl->layers;
  int since_best = 0;
  long step = 0;
  const float b1 = 0.9F, b2 = 0.999F, eps = 1e-8F;
  std::vector<Matrix> acts;
  std::vector<Matrix> grads_w(impl->layers.size());
  std::vector<Row> grads_b(impl->layers.size());
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(o.batch)) {
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(o.batch), order.size() - start);
      Matrix in(static_cast<Eigen::Index>(n), cols);
      Matrix target(static_cast<Eigen::Index>(n), 1);
      for (std::size_t i = 0; i < n; ++i) {
        in.row(static_cast<Eigen::Index>(i)) = x.row(static_cast<Eigen::Index>(order[start + i]));
        target(static_cast<Eigen::Index>(i), 0) = train.y[order[start + i]];
      }
      impl->forward(in, acts);
      // Binary cross-entropy through a sigmoid: dL/dz = p - y (averaged over the batch).
      Matrix delta = (acts.back() - target) / static_cast<float>(n);
      for (std::size_t l = impl->layers.size(); l-- > 0;) {
        grads_w[l] = acts[l].transpose() * delta + static_cast<float>(o.weight_decay) * impl->layers[l].w;
        grads_b[l] = delta.colwise().sum();
        if (l > 0) {
          Matrix back = delta * impl->layers[l].w.transpose();
          delta = back.cwiseProduct(acts[l].unaryExpr([](float v) { return v > 0.0F ? 1.0F : 0.0F; }));
        }
      }
      ++step;
      const float c1 = 1.0F - std::pow(b1, static_cast<float>(step));
      const float c2 = 1.0F - std::pow(b2, static_cast<float>(step));
      const float lr = static_cast<float>(o.learning_rate);
      for (std::size_t l = 0; l < impl->layers.size(); ++l) {
        Adam& a = adam[l];
        a.mw = b1 * a.mw + (1 - b1) * grads_w[l];
        a.vw = b2 * a.vw + (1 - b2) * grads_w[l].cwiseProduct(grads_w[l]);
        a.mb = b1 * a.mb + (1 - b1) * grads_b[l];
        a.vb = b2 * a.vb + (1 - b2) * grads_b[l].cwiseProduct(grads_b[l]);
        impl->layers[l].w.array() -= lr * (a.mw.array() / c1) / ((a.vw.array() / c2).sqrt() + eps);
        impl->layers[l].b.array() -= lr * (a.mb.array() / c1) / ((a.vb.array() / c2).sqrt() + eps);
      }
    }
    impl->epochs_run = epoch;
    if (validation.rows == 0) continue;
    const auto p = impl->probabilities(vx);
    double loss = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double q = std::clamp(static_cast<double>(p[i]), 1e-7, 1 - 1e-7);
      loss -= validation.y[i] > 0.5F ? std::log(q) : std::log(1 - q);
    }
    if (loss < best) {
      best = loss;
      best_layers = impl->layers;
      impl->best_epoch = epoch;
      since_best = 0;
    } else if (++since_best >= o.patience) {
      break;
    }
  }
  if (validation.rows > 0) impl->layers = std::move(best_layers);
  if (impl->best_epoch == 0) impl->best_epoch = impl->epochs_run;
  return Mlp(std::move(impl));
}

std::vector<float> Mlp::predict(const float* x, std::size_t rows) const {
  return impl_->probabilities(impl_->inputs(x, rows));
}

namespace {

Json row_json(const Row& r) { return Json(std::vector<float>(r.data(), r.data() + r.size())); }

std::optional<Row> json_row(const Json& j) {
  if (!j.is_array()) return std::nullopt;
  Row r(static_cast<Eigen::Index>(j.size()));
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number()) return std::nullopt;
    r(static_cast<Eigen::Index>(i)) = j[i].get<float>();
  }
  return r;
}

}  // namespace

Json Mlp::to_json() const {
  Json layers = Json::array();
  for (const Layer& l : impl_->layers) {
    Json w = Json::array();
    for (Eigen::Index i = 0; i < l.w.rows(); ++i) w.push_back(row_json(l.w.row(i)));
    layers.push_back({{"weights", std::move(w)}, {"bias", row_json(l.b)}});
  }
  return {{"mean", row_json(impl_->mean)},
          {"scale", row_json(impl_->scale)},
          {"layers", std::move(layers)},
          {"epochs_run", impl_->epochs_run},
          {"best_epoch", impl_->best_epoch}};
}

Result<Mlp> Mlp::from_json(const Json& doc) {
  auto bad = [](const std::string& what) { return fail(Errc::invalid_argument, "network: " + what); };
  if (!doc.is_object() || !doc.contains("layers") || !doc["layers"].is_array() || doc["layers"].empty()) {
    return bad("no layers");
  }
  auto impl = std::make_shared<Impl>();
  auto mean = json_row(doc.value("mean", Json()));
  auto scale = json_row(doc.value("scale", Json()));
  if (!mean || !scale || mean->size() != scale->size() || mean->size() == 0) return bad("mean and scale");
  impl->mean = std::move(*mean);
  impl->scale = std::move(*scale);
  Eigen::Index width = impl->mean.size();
  for (const Json& l : doc["layers"]) {
    if (!l.is_object() || !l.contains("weights") || !l["weights"].is_array()) return bad("a layer without weights");
    const Json& w = l["weights"];
    if (static_cast<Eigen::Index>(w.size()) != width) return bad("a layer's inputs do not match");
    auto bias = json_row(l.value("bias", Json()));
    if (!bias || bias->size() == 0) return bad("a layer without bias");
    Layer layer{Matrix(width, bias->size()), std::move(*bias)};
    for (std::size_t i = 0; i < w.size(); ++i) {
      auto r = json_row(w[i]);
      if (!r || r->size() != layer.b.size()) return bad("a layer's weights are ragged");
      layer.w.row(static_cast<Eigen::Index>(i)) = *r;
    }
    width = layer.b.size();
    impl->layers.push_back(std::move(layer));
  }
  if (width != 1) return bad("the output layer must have one unit");
  impl->epochs_run = doc.value("epochs_run", 0);
  impl->best_epoch = doc.value("best_epoch", 0);
  return Mlp(std::move(impl));
}

std::size_t Mlp::inputs() const { return static_cast<std::size_t>(impl_->mean.size()); }

int Mlp::epochs_run() const { return impl_->epochs_run; }
int Mlp::best_epoch() const { return impl_->best_epoch; }

}  // namespace atrium::ml
