#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>

#include "core/time.hpp"

namespace atrium {

// Source of time. Everything that reads time takes a Clock so tests (and, later, billing test clocks) can
// control it. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for timestamps that are stored or shown: the one instant type (core/time.hpp).
  virtual Instant now() const = 0;
  // Monotonic time, for measuring durations and deadlines.
  virtual std::chrono::steady_clock::time_point monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
  // The process-wide instance.
  static const SystemClock& instance();
};

// A clock that only moves when told to. Both readings advance together.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point start) : wall_(start.time_since_epoch().count()) {}
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(wall_.load()));
  }
  std::chrono::steady_clock::time_point monotonic() const override {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(mono_.load()));
  }
  void advance(std::chrono::nanoseconds by) {
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(by).count();
    mono_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(by).count();
  }

 private:
  std::atomic<std::chrono::system_clock::rep> wall_;
  std::atomic<std::chrono::steady_clock::rep> mono_{0};
};

// RFC 3339 UTC with millisecond precision, e.g. 2026-11-27T10:15:30.123Z.
std::string format_rfc3339(Instant t);
// Parses an RFC 3339 date-time ("2026-11-27T10:15:30Z", fractions and numeric offsets allowed; sub-millisecond
// digits are truncated). nullopt when malformed or outside the years 1678-2261.
std::optional<Instant> parse_rfc3339(std::string_view text);

}  // namespace atrium
