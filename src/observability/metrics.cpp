#include "observability/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace atrium::metrics {

namespace {

void atomic_add(std::atomic<double>& target, double by) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

}  // namespace

void Counter::inc(double by) { atomic_add(value_, by); }
void Gauge::add(double by) { atomic_add(value_, by); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  const auto index = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

std::vector<std::uint64_t> Histogram::bucket_counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::string BoundedLabel::admit(std::string_view value) {
  {
    std::shared_lock lock(mutex_);
    if (values_.contains(value)) return std::string(value);
    if (values_.size() >= limit_) return overflow_;
  }
  std::unique_lock lock(mutex_);
  if (values_.contains(value)) return std::string(value);
  if (values_.size() >= limit_) return overflow_;
  values_.emplace(value);
  return std::string(value);
}

std::size_t BoundedLabel::admitted() const {
  std::shared_lock lock(mutex_);
  return values_.size();
}

void append_family_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                   const Labels& label_values, double value) {
  out += name;
  if (!label_names.empty()) {
    out += '{';
    for (std::size_t i = 0; i < label_names.size(); ++i) {
      if (i > 0) out += ',';
      out += label_names[i];
      out += "=\"";
      out += escape_label_value(i < label_values.size() ? label_values[i] : std::string());
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += format_value(value);
  out += '\n';
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  counters_.push_back(std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(label_names),
                                                        [] { return std::make_unique<Counter>(); }));
  return *counters_.back();
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  gauges_.push_back(std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(label_names),
                                                    [] { return std::make_unique<Gauge>(); }));
  return *gauges_.back();
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> label_names,
                                       std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(label_names),
      [bounds = std::move(bounds)] { return std::make_unique<Histogram>(bounds); }));
  return *histograms_.back();
}

void Registry::add_collector(std::function<void(std::string&)> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(8192);
  for (const auto& family : counters_) {
    append_family_header(out, family->name(), family->help(), "counter");
    family->for_each([&](const Labels& labels, const Counter& c) {
      append_sample(out, family->name(), family->label_names(), labels, c.value());
    });
  }
  for (const auto& family : gauges_) {
    append_family_header(out, family->name(), family->help(), "gauge");
    family->for_each([&](const Labels& labels, const Gauge& g) {
      append_sample(out, family->name(), family->label_names(), labels, g.value());
    });
  }
  for (const auto& family : histograms_) {
    append_family_header(out, family->name(), family->help(), "histogram");
    std::vector<std::string> bucket_names = family->label_names();
    bucket_names.push_back("le");
    const std::string bucket_metric = family->name() + "_bucket";
    const std::string sum_metric = family->name() + "_sum";
    const std::string count_metric = family->name() + "_count";
    family->for_each([&](const Labels& labels, const Histogram& h) {
      const auto counts = h.bucket_counts();
      std::uint64_t cumulative = 0;
      Labels with_le = labels;
      with_le.emplace_back();
      for (std::size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        with_le.back() = i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf";
        append_sample(out, bucket_metric, bucket_names, with_le, static_cast<double>(cumulative));
      }
      append_sample(out, sum_metric, family->label_names(), labels, h.sum());
      // The count is the +Inf bucket, so the exposition stays self-consistent under concurrent observes.
      append_sample(out, count_metric, family->label_names(), labels, static_cast<double>(cumulative));
    });
  }
  for (const auto& collector : collectors_) collector(out);
  return out;
}

}  // namespace atrium::metrics
