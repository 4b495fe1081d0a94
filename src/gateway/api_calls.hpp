#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "http/dispatcher.hpp"

namespace atrium::gateway {

// Counts each tenant's API requests in the gateway and reports them as usage, so quotas and metered prices on the
// metric `api_calls` (the plan's features.apiCalls) see the gateway's own count. Counts are kept in memory and
// reported every `interval` as one event per tenant whose idempotency key is unique to this process and report;
// stop() reports what is left. A crash loses at most one interval's counts; a report that fails is sent again with
// the same key and count (so one stored despite the error is not counted twice), except when it fails with
// `not_found`: the tenant is gone (deleted), and its counts with it. Thread-safe.
class ApiCallCounter {
 public:
  // Reports `calls` for a tenant as of `at` under `key` (metering::Metering::ingest, installed by the platform).
  using Report =
      std::function<Result<void>(const std::string& tenant_id, std::int64_t calls, Instant at, const std::string& key)>;

  // `clock` stamps the reports; `interval` paces the reporting thread (started by start()).
  ApiCallCounter(Report report, const Clock& clock, std::chrono::milliseconds interval);
  ~ApiCallCounter();  // stop()
  ApiCallCounter(const ApiCallCounter&) = delete;
  ApiCallCounter& operator=(const ApiCallCounter&) = delete;

  void start();
  // Stops the reporting thread, then reports what is counted. Safe to call repeatedly.
  void stop();

  void count(const std::string& tenant_id, std::int64_t calls = 1);
  // Reports every tenant's count now; the first error, with the failed counts kept.
  Result<void> report_now();

  // Place after the rate limits: counts each request in a tenant by its members and API keys (super admins acting
  // in a tenant are not counted, nor requests the rate limits refused).
  http::Middleware middleware();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::gateway
