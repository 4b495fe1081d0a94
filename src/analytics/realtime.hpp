#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "storage/redis.hpp"

namespace atrium::analytics {

struct RealtimeOptions {
  // Where the counts live: absent, in this process (each instance counts what it ingested); else in Redis, shared
  // by every instance: a sorted set events:<tenant>:<type> per type (score: the minute's Unix ms; one member per
  // flushed count, "<minute ms>:<count>:<instance>:<seq>") and events:<tenant> (member: a type, score: its last
  // minute), each trimmed to the window and expiring with it.
  std::optional<storage::RedisEndpoint> redis;
  std::chrono::milliseconds redis_timeout{500};
  // Redis only: a tenant's buffered counts go out when it has `flush_events` events buffered (the seed's 100), and
  // every tenant's each `flush_interval` once start()ed.
  std::size_t flush_events = 100;
  std::chrono::milliseconds flush_interval{1000};
};

// The seed's RealTimeAnalytics: per tenant and product event type, how many events of each UTC minute arrived, for
// the last `window` (docs/analytics.md). Events are counted in the minute of their own timestamp; ones outside the
// window are not counted. Counts are a view, not a record: those of a flush Redis refused are lost (the events
// themselves are stored). Thread-safe.
class Realtime {
 public:
  Realtime(const Clock& clock, std::chrono::minutes window, RealtimeOptions options = {});
  ~Realtime();  // stop()
  Realtime(const Realtime&) = delete;
  Realtime& operator=(const Realtime&) = delete;

  void record(const std::string& tenant_id, std::string_view type, Instant at, std::int64_t count = 1);

  // The last `minutes` whole minutes up to and including the current one (at most the window): counts[type][i] is
  // minute from + i. With Redis: every instance's flushed counts plus this one's buffered ones; unavailable when
  // Redis does not answer.
  struct Series {
    Instant from{};
    std::int64_t minutes = 0;
    std::map<std::string, std::vector<std::int64_t>> counts;
  };
  Result<Series> last(const std::string& tenant_id, std::int64_t minutes) const;

  // Redis: writes every buffered count now (the first error; the counts it could not write are dropped).
  Result<void> flush();
  // Redis: starts and stops the periodic flush (stop flushes what is left). No-ops in process.
  void start();
  void stop();

  std::chrono::minutes window() const;
  bool shared() const;  // counts in Redis

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::analytics
