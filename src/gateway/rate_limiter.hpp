#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace atrium::gateway {

// A limit for GCRA, the generic cell rate algorithm (as in redis-cell and Brandur Leach's throttled): a key may
// spend up to `burst` units at once and earns `rate` units back per second, never holding more than `burst`.
// Both are 1..k_max_limit; callers clamp.
struct Limit {
  std::int64_t rate = 1;   // units per second
  std::int64_t burst = 1;  // units at once
};

inline constexpr std::int64_t k_max_limit = 1'000'000;

// One decision, with what the RateLimit and Retry-After headers need.
struct Decision {
  bool allowed = false;
  std::int64_t limit = 0;                   // the burst: the most units the key ever holds
  std::int64_t remaining = 0;               // units the key could spend now, after this decision
  std::chrono::nanoseconds reset_after{0};  // until the key holds `limit` units again
  std::chrono::nanoseconds retry_after{0};  // denied: until this same request would be allowed; allowed: 0
};

// Decides whether a key may spend `cost` units now, and spends them when it may; a denied request spends
// nothing. A key's state is its theoretical arrival time (TAT): the moment it will hold `burst` units again.
// Implementations are thread-safe and never throw (beyond std::bad_alloc).
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // `cost` is clamped to [1, limit.burst] (a request costing more than the burst could never pass; it waits for a
  // full bucket instead). One key is meant to be decided with one limit; a changed limit applies from the next
  // decision on the key's current TAT. Errors: unavailable (Redis unreachable, timed out, or refused the script).
  virtual Result<Decision> decide(std::string_view key, const Limit& limit, std::int64_t cost) = 0;
};

struct MemoryLimiterOptions {
  // Keys held, about: each shard holds its share plus an eighth (keys do not spread evenly). A key whose bucket
  // is full again carries no state and is dropped first; when a shard's busy keys fill it, the quarter closest to
  // a full bucket is forgotten (they start full).
  std::size_t max_keys = 100'000;
  std::size_t shards = 64;  // rounded up to a power of two
};

// Limits held in this process: not shared with other instances, lost on restart. Reads time from
// `clock.monotonic()` (which must outlive the limiter) in integer nanoseconds. Keys are spread over shards, each
// an open-addressing table behind its own spinlock; a decision takes one shard's lock briefly and allocates only
// when a key is new.
std::unique_ptr<RateLimiter> make_memory_rate_limiter(const Clock& clock, MemoryLimiterOptions options = {});

struct RedisLimiterOptions {
  std::chrono::milliseconds timeout{100};  // per decision: connecting and the script share it
  std::string key_prefix = "atrium:rl:";
  // null: the script reads Redis's own TIME, so instances with skewed clocks agree (production). Tests pass a
  // ManualClock to make decisions exact; its wall clock (now()) is used, in microseconds.
  const Clock* clock = nullptr;
};

// Limits in Redis (>= 5; RESP2), shared by every instance on the same server and prefix: one round trip per
// decision, an atomic Lua script run by EVALSHA (EVAL when Redis answers NOSCRIPT, e.g. after a restart) that
// reads and writes the key's TAT in microseconds, with a PX expiry at the TAT so idle keys vanish. `redis_url` is
// redis://[[user]:password@]host[:port][/db]; malformed is invalid_argument. Connections are made on first use
// and pooled.
Result<std::unique_ptr<RateLimiter>> make_redis_rate_limiter(const std::string& redis_url,
                                                             RedisLimiterOptions options = {});

namespace detail {

// One GCRA step in integer time units (nanoseconds in-process, microseconds in Redis's script, which mirrors it):
// `unit_per_second` units make a second. `tat` is the key's TAT (anything <= now for a new key) and is advanced
// when the request is allowed.
inline Decision gcra(std::int64_t& tat, std::int64_t now, const Limit& limit, std::int64_t cost,
                     std::int64_t unit_per_second, std::int64_t unit_ns) {
  const std::int64_t interval = std::max<std::int64_t>(1, unit_per_second / limit.rate);  // one unit's worth
  const std::int64_t window = limit.burst * interval;                                     // from empty to full
  cost = std::clamp<std::int64_t>(cost, 1, limit.burst);
  const std::int64_t base = std::max(tat, now);
  const std::int64_t new_tat = base + cost * interval;
  const std::int64_t allow_at = new_tat - window;  // the earliest moment this request fits
  Decision d;
  d.limit = limit.burst;
  if (now < allow_at) {
    d.remaining = (now + window - base) / interval;
    d.reset_after = std::chrono::nanoseconds((base - now) * unit_ns);
    d.retry_after = std::chrono::nanoseconds((allow_at - now) * unit_ns);
    return d;
  }
  tat = new_tat;
  d.allowed = true;
  d.remaining = (now - allow_at) / interval;
  d.reset_after = std::chrono::nanoseconds((new_tat - now) * unit_ns);
  return d;
}

// The Lua script the Redis limiter runs (for benchmarks that drive it with redis-benchmark).
std::string_view redis_rate_limit_script();

}  // namespace detail

}  // namespace atrium::gateway
