#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::metrics {

// A monotonically increasing value. Lock-free; thread-safe.
class Counter {
 public:
  void inc(double by = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down. Lock-free; thread-safe.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Cumulative histogram with fixed upper bounds (seconds, bytes, ...). Lock-free; thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts; the last entry is +Inf.
  std::vector<std::uint64_t> bucket_counts() const;
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

using Labels = std::vector<std::string>;  // values, in the order of the family's label names

// A named metric with a fixed set of label names; children are created on first use and live as long as the
// family. Callers must keep label values bounded (route templates, not raw paths). Thread-safe.
template <class Metric>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), make_(std::move(make)) {}

  Metric& with(const Labels& values) {
    {
      std::shared_lock lock(mutex_);
      if (auto it = children_.find(values); it != children_.end()) return *it->second;
    }
    std::unique_lock lock(mutex_);
    auto& slot = children_[values];
    if (!slot) slot = make_();
    return *slot;
  }

  template <class Fn>
  void for_each(Fn&& fn) const {
    std::shared_lock lock(mutex_);
    for (const auto& [labels, metric] : children_) fn(labels, *metric);
  }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::shared_mutex mutex_;
  std::map<Labels, std::unique_ptr<Metric>> children_;
};

// Owns every metric and renders the Prometheus text exposition format (version 0.0.4). Families are registered
// at start-up; references to them stay valid for the registry's lifetime. Thread-safe.
class Registry {
 public:
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                               std::vector<double> bounds);

  // A callback run at every scrape that appends complete exposition text (HELP, TYPE, samples), for values read
  // from elsewhere (process statistics, pools).
  void add_collector(std::function<void(std::string&)> collector);

  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Keeps one label's values bounded whatever the traffic: the first `limit` distinct values pass as they are, every
// later one becomes `overflow`. For labels whose values come from data (tenant ids), so series stay bounded.
// Thread-safe.
class BoundedLabel {
 public:
  BoundedLabel(std::size_t limit, std::string overflow) : limit_(limit), overflow_(std::move(overflow)) {}
  std::string admit(std::string_view value);
  std::size_t admitted() const;

 private:
  const std::size_t limit_;
  const std::string overflow_;
  mutable std::shared_mutex mutex_;
  std::set<std::string, std::less<>> values_;  // guarded by mutex_
};

// Escapes a label value for the exposition format (backslash, double quote, newline).
std::string escape_label_value(std::string_view value);

// Appends "# HELP name help" (help escaped) and "# TYPE name type" lines, for collectors writing their own families.
void append_family_header(std::string& out, std::string_view name, std::string_view help, std::string_view type);

// Appends "name{a="x",b="y"} value\n".
void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                   const Labels& label_values, double value);

// Adds process_* metrics (CPU seconds, resident and virtual memory, open and max fds, start time) read from
// /proc/self at scrape time.
void register_process_collector(Registry& registry);

}  // namespace atrium::metrics
