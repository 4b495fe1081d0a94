#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "gateway/rate_limiter.hpp"
#include "http/dispatcher.hpp"
#include "observability/metrics.hpp"

namespace atrium::tenancy {
struct Tenant;
}

namespace atrium::gateway {

// Where the limits come from when a tenant's plan names none, and how failures of the limiter are handled. Built
// from [gateway] (docs/configuration.md).
struct RateLimitSettings {
  std::int64_t default_rate = 100;   // a tenant's requests per second when its plan names none; 0: no limit
  std::int64_t default_burst = 200;  // its burst when its plan names none; 0: equal to the rate
  std::int64_t api_key_rate = 0;     // each API key's own limit on top of its tenant's; 0: none
  std::int64_t api_key_burst = 0;    // 0: equal to api_key_rate
  bool fail_open = true;             // the limiter failed (Redis down): true lets the request through, false 503
  std::chrono::milliseconds plan_cache_ttl{30'000};  // how long a tenant's plan limits are reused
  std::size_t max_cached_tenants = 100'000;          // beyond it the plan cache starts over
};

// A tenant's plan `limits` object (billing: `requestsPerSecond`, `burst`, each a non-negative integer or
// "unlimited"), or null when the tenant has no plan. Errors (storage) make the defaults apply to that request.
using PlanLimitsLookup = std::function<Result<Json>(const tenancy::Tenant&)>;

// Rate limits in the gateway: per tenant and per API key, on routes where the security middleware set a tenant
// (super admins acting in a tenant are exempt). Each request spends its route's cost (RouteOptions::cost or
// ::weight; 0 exempts) from the API key's limit first, when API keys have one, then from the tenant's; a denial
// spends nothing from the limit that denied it. Routes without a tenant (sign-in, /health, /v1/admin/...) are not
// limited here. Thread-safe; the plan cache never makes the hot path touch the database within its TTL.
class RateLimits {
 public:
  // `clock` (monotonic) times the plan cache and the error log; `registry` receives
  // atrium_rate_limit_decisions_total{outcome,scope}. Both must outlive this object.
  RateLimits(std::unique_ptr<RateLimiter> limiter, RateLimitSettings settings, PlanLimitsLookup lookup,
             const Clock& clock, metrics::Registry& registry);
  ~RateLimits();
  RateLimits(const RateLimits&) = delete;
  RateLimits& operator=(const RateLimits&) = delete;

  // Place after the security middleware. Every limited answer, allowed or not, carries
  //   RateLimit-Policy: "api_key";q=<burst>;w=<seconds from empty to full>, "tenant";q=...;w=...
  //   RateLimit: "api_key";r=<units left>;t=<seconds until full>, "tenant";r=...;t=...
  // (draft-ietf-httpapi-ratelimit-headers; RateLimit names the policies that were decided). A denial is 429
  // problem+json (type /problems/rate-limited, `policy` names the limit) with Retry-After in whole seconds,
  // rounded up. A limiter failure lets the request through (fail_open) or answers 503 problem+json
  // (/problems/unavailable, Retry-After: 1), counts it and logs at most one line per 10 s.
  http::Middleware middleware();

  // The tenant's limit from its plan or the defaults (nullopt: unlimited), cached for plan_cache_ttl.
  std::optional<Limit> tenant_limit(const tenancy::Tenant& tenant);
  // Forgets a tenant's cached plan limits (its subscription or plan changed on this instance).
  void forget(const std::string& tenant_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A RouteOptions::weight for batch routes, whose size tracks their work: one unit per started `bytes_per_unit`
// bytes of body, at least 1, without decoding the body a second time. E.g. 10 KiB per unit charges a 1 MiB batch
// of 10,000 ~100-byte events about 100 units (events / 100).
std::function<int(const http::Request&)> weight_by_body_size(std::size_t bytes_per_unit);

// Reads the limit a plan's `limits` object sets, falling back to the settings' defaults (see RateLimitSettings).
// nullopt: no limit ("unlimited" or 0 requests per second).
std::optional<Limit> limit_from_plan(const Json& plan_limits, const RateLimitSettings& settings);

}  // namespace atrium::gateway
