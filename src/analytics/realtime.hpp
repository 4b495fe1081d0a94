#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/time.hpp"

namespace atrium::analytics {

// The seed's RealTimeAnalytics: per tenant and product event type, how many events of each UTC minute arrived, for
// the last `window`, kept in this process (each instance counts what it ingested; docs/analytics.md). Events are
// counted in the minute of their own timestamp; ones outside the window are not counted. Thread-safe.
class Realtime {
 public:
  Realtime(const Clock& clock, std::chrono::minutes window);
  ~Realtime();
  Realtime(const Realtime&) = delete;
  Realtime& operator=(const Realtime&) = delete;

  void record(const std::string& tenant_id, std::string_view type, Instant at, std::int64_t count = 1);

  // The last `minutes` whole minutes up to and including the current one (at most the window): counts[type][i] is
  // minute from + i.
  struct Series {
    Instant from{};
    std::int64_t minutes = 0;
    std::map<std::string, std::vector<std::int64_t>> counts;
  };
  Series last(const std::string& tenant_id, std::int64_t minutes) const;

  std::chrono::minutes window() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::analytics
