#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "http/dispatcher.hpp"
#include "metering/metering.hpp"

namespace atrium::analytics {

// Atrium's own product events (docs/analytics.md): "user.active" once per tenant, user and UTC day — for every
// authenticated request of a member, and for every product event that names a user — and "user.signed_in" per
// sign-in. Kept in memory and stored every `interval` through `store` (product event ingestion), never a write per
// request. Their idempotency keys (user.active:<user>:<YYYY-MM-DD>, user.signed_in:<token id>) make them exactly once
// across flushes, retries and instances. A crash loses at most one interval of them (a user's next request that
// day marks the day again). Thread-safe.
class Activity {
 public:
  // Stores one tenant's events (analytics::ingest_product_events, installed by the platform).
  using Store = std::function<Result<void>(const std::string& tenant_id, metering::UsageBatch events)>;

  Activity(Store store, const Clock& clock, std::chrono::milliseconds interval);
  ~Activity();  // stop()
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

  void start();
  // Stops the flushing thread, then flushes what is left. Safe to call repeatedly.
  void stop();

  // `user_id` was active in `tenant_id` at `at` (now when omitted).
  void active(const std::string& tenant_id, const std::string& user_id);
  void active_at(const std::string& tenant_id, const std::string& user_id, Instant at);
  // `user_id` signed in to `tenant_id`; `token_id` (the access token's jti) keys the event.
  void signed_in(const std::string& tenant_id, const std::string& user_id, const std::string& token_id);

  // Stores everything pending now; the first error, with the failed events kept for the next flush (except a
  // tenant's that fail with `not_found`: the tenant is gone, and its marks with it).
  Result<void> flush();

  // Place after the security middleware: marks the members of a tenant active on each request in it (API keys and
  // super admins acting in another tenant are not users of that tenant).
  http::Middleware middleware();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::analytics
