#include "gateway/rate_limits.hpp"

#include <array>
#include <atomic>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "core/log.hpp"
#include "http/problem.hpp"
#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::gateway {

namespace {

enum class Scope { api_key, tenant };
enum class Outcome { allowed, limited, error_open, error_closed };

constexpr std::string_view scope_name(Scope s) { return s == Scope::api_key ? "api_key" : "tenant"; }

constexpr std::int64_t k_log_interval_ns = 10'000'000'000;  // one line per kind of failure per 10 s

// Lets one log line through per k_log_interval_ns and counts the ones it held back. Thread-safe.
class LogThrottle {
 public:
  // True when a line may be written now; `held_back` is then how many were not since the last one.
  bool allow(std::int64_t now_ns, std::int64_t* held_back) {
    std::int64_t due = next_ns_.load(std::memory_order_relaxed);
    if (now_ns < due || !next_ns_.compare_exchange_strong(due, now_ns + k_log_interval_ns)) {
      held_back_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    *held_back = held_back_.exchange(0);
    return true;
  }

 private:
  std::atomic<std::int64_t> next_ns_{std::numeric_limits<std::int64_t>::min()};
  std::atomic<std::int64_t> held_back_{0};
};

std::int64_t ceil_seconds(std::chrono::nanoseconds d) {
  const std::int64_t ns = d.count();
  return ns <= 0 ? 0 : (ns + 999'999'999) / 1'000'000'000;
}

// One limit that applies to a request.
struct Policy {
  Scope scope = Scope::tenant;
  Limit limit;
  std::string key;
  std::optional<Decision> decision;
};

std::string policy_header(const Policy* policies, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const Policy& p = policies[i];
    const std::int64_t interval_ns = std::max<std::int64_t>(1, 1'000'000'000 / p.limit.rate);
    const std::int64_t window =
        std::max<std::int64_t>(1, ceil_seconds(std::chrono::nanoseconds(p.limit.burst * interval_ns)));
    if (!out.empty()) out += ", ";
    out += fmt::format("\"{}\";q={};w={}", scope_name(p.scope), p.limit.burst, window);
  }
  return out;
}

std::string state_header(const Policy* policies, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const Policy& p = policies[i];
    if (!p.decision) continue;
    if (!out.empty()) out += ", ";
    out += fmt::format("\"{}\";r={};t={}", scope_name(p.scope), p.decision->remaining,
                       ceil_seconds(p.decision->reset_after));
  }
  return out;
}

void set_headers(http::Response& res, const Policy* policies, std::size_t n) {
  res.headers.set("RateLimit-Policy", policy_header(policies, n));
  if (auto state = state_header(policies, n); !state.empty()) res.headers.set("RateLimit", std::move(state));
}

std::optional<std::int64_t> positive_or_unlimited(const Json& limits, std::string_view name, bool* unlimited) {
  auto it = limits.find(name);
  if (it == limits.end()) return std::nullopt;
  if (it->is_string() && it->get<std::string>() == "unlimited") {
    *unlimited = true;
    return std::nullopt;
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return std::nullopt;
}

}  // namespace

std::function<int(const http::Request&)> weight_by_body_size(std::size_t bytes_per_unit) {
  bytes_per_unit = std::max<std::size_t>(1, bytes_per_unit);
  return [bytes_per_unit](const http::Request& req) {
    const std::size_t units = (req.body.size() + bytes_per_unit - 1) / bytes_per_unit;
    return static_cast<int>(std::clamp<std::size_t>(units, 1, static_cast<std::size_t>(k_max_limit)));
  };
}

std::optional<Limit> limit_from_plan(const Json& plan_limits, const RateLimitSettings& settings) {
  const Json& limits = plan_limits.is_object() ? plan_limits : Json::object();
  bool rate_unlimited = false;
  bool burst_unlimited = false;
  std::int64_t rate = settings.default_rate;
  if (auto r = positive_or_unlimited(limits, "requestsPerSecond", &rate_unlimited)) rate = *r;
  if (rate_unlimited || rate <= 0) return std::nullopt;
  std::int64_t burst = settings.default_burst;
  if (auto b = positive_or_unlimited(limits, "burst", &burst_unlimited); b && *b > 0) burst = *b;
  if (burst_unlimited) burst = k_max_limit;
  if (burst <= 0) burst = rate;
  return Limit{.rate = std::clamp<std::int64_t>(rate, 1, k_max_limit),
               .burst = std::clamp<std::int64_t>(burst, 1, k_max_limit)};
}

struct RateLimits::Impl {
  struct CachedLimit {
    std::optional<Limit> limit;
    std::int64_t fetched_ns = 0;
  };

  std::unique_ptr<RateLimiter> limiter;
  RateLimitSettings settings;
  PlanLimitsLookup lookup;
  const Clock& clock;
  // [scope][outcome], resolved once so a decision never looks labels up.
  std::array<std::array<metrics::Counter*, 4>, 2> counters{};

  std::shared_mutex mutex;
  std::unordered_map<std::string, CachedLimit> cache;  // guarded by mutex; by tenant id

  LogThrottle limiter_log;
  LogThrottle plan_log;

  Impl(std::unique_ptr<RateLimiter> l, RateLimitSettings s, PlanLimitsLookup f, const Clock& c,
       metrics::Registry& registry)
      : limiter(std::move(l)), settings(s), lookup(std::move(f)), clock(c) {
    auto& family = registry.counter("atrium_rate_limit_decisions_total",
                                    "Rate-limit decisions in the gateway, by outcome (allowed, limited, "
                                    "error_open, error_closed: the limiter failed and the request was let through "
                                    "or refused) and scope (tenant, api_key).",
                                    {"outcome", "scope"});
    static constexpr std::string_view outcomes[] = {"allowed", "limited", "error_open", "error_closed"};
    for (Scope scope : {Scope::api_key, Scope::tenant}) {
      for (std::size_t o = 0; o < 4; ++o) {
        counters[static_cast<std::size_t>(scope)][o] =
            &family.with({std::string(outcomes[o]), std::string(scope_name(scope))});
      }
    }
  }

  std::int64_t now_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.monotonic().time_since_epoch()).count();
  }

  void count(Scope scope, Outcome outcome) {
    counters[static_cast<std::size_t>(scope)][static_cast<std::size_t>(outcome)]->inc();
  }

  void log_failure(const Error& error) {
    std::int64_t held_back = 0;
    if (!limiter_log.allow(now_ns(), &held_back)) return;
    log::warn("rate limiter unavailable",
              {{"error", error.message}, {"fail_open", settings.fail_open}, {"errors_not_logged", held_back}});
  }

  std::optional<Limit> tenant_limit(const tenancy::Tenant& tenant) {
    const std::int64_t now = now_ns();
    const std::int64_t ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(settings.plan_cache_ttl).count();
    {
      std::shared_lock lock(mutex);
      if (auto it = cache.find(tenant.id); it != cache.end() && now - it->second.fetched_ns < ttl_ns) {
        return it->second.limit;
      }
    }
    auto plan_limits = lookup ? lookup(tenant) : Result<Json>(Json());
    if (!plan_limits) {
      // The defaults apply until the plan can be read; not cached, so the next request tries again.
      std::int64_t held_back = 0;
      if (plan_log.allow(now, &held_back)) {
        log::warn("plan limits unavailable; the default rate limit applies",
                  {{"tenant_id", tenant.id}, {"error", plan_limits.error().message}, {"errors_not_logged", held_back}});
      }
      return limit_from_plan(Json(), settings);
    }
    const std::optional<Limit> limit = limit_from_plan(*plan_limits, settings);
    std::unique_lock lock(mutex);
    if (cache.size() >= settings.max_cached_tenants) cache.clear();
    cache[tenant.id] = CachedLimit{limit, now};
    return limit;
  }

  http::Response handle(http::Request& req, const http::Next& next) {
    if (req.options == nullptr || !req.tenant || !req.principal || req.principal->super_admin) return next(req);
    const int cost = req.options->weight ? req.options->weight(req) : req.options->cost;
    if (cost <= 0) return next(req);

    std::array<Policy, 2> policies;
    std::size_t n = 0;
    if (req.principal->kind == identity::Principal::Kind::api_key && settings.api_key_rate > 0) {
      const std::int64_t rate = std::min(settings.api_key_rate, k_max_limit);
      const std::int64_t burst = settings.api_key_burst > 0 ? settings.api_key_burst : rate;
      policies[n++] = Policy{.scope = Scope::api_key,
                             .limit = {.rate = rate, .burst = std::clamp<std::int64_t>(burst, 1, k_max_limit)},
                             .key = "k:" + req.principal->subject};
    }
    if (auto limit = tenant_limit(*req.tenant)) {
      policies[n++] = Policy{.scope = Scope::tenant, .limit = *limit, .key = "t:" + req.tenant->id};
    }
    if (n == 0) return next(req);

    for (std::size_t i = 0; i < n; ++i) {
      Policy& p = policies[i];
      auto decided = limiter->decide(p.key, p.limit, cost);
      if (!decided) {
        count(p.scope, settings.fail_open ? Outcome::error_open : Outcome::error_closed);
        log_failure(decided.error());
        if (settings.fail_open) continue;
        http::Response res = http::problem(503, "unavailable", "Service Unavailable",
                                           "The rate limiter cannot be reached; try again shortly.", req);
        res.headers.set("Retry-After", "1");
        set_headers(res, policies.data(), n);
        return res;
      }
      p.decision = *decided;
      if (!decided->allowed) {
        count(p.scope, Outcome::limited);
        const std::int64_t retry = std::max<std::int64_t>(1, ceil_seconds(decided->retry_after));
        http::Response res = http::problem(
            429, "rate-limited", "Too Many Requests",
            fmt::format("The {} rate limit ({} per second, bursts of {}) is exhausted; retry in {} s.",
                        p.scope == Scope::tenant ? "tenant's" : "API key's", p.limit.rate, p.limit.burst, retry),
            req, {{"policy", scope_name(p.scope)}});
        res.headers.set("Retry-After", std::to_string(retry));
        set_headers(res, policies.data(), n);
        return res;
      }
      count(p.scope, Outcome::allowed);
    }
    http::Response res = next(req);
    set_headers(res, policies.data(), n);
    return res;
  }
};

RateLimits::RateLimits(std::unique_ptr<RateLimiter> limiter, RateLimitSettings settings, PlanLimitsLookup lookup,
                       const Clock& clock, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(limiter), settings, std::move(lookup), clock, registry)) {}

RateLimits::~RateLimits() = default;

http::Middleware RateLimits::middleware() {
  return [impl = impl_.get()](http::Request& req, const http::Next& next) { return impl->handle(req, next); };
}

std::optional<Limit> RateLimits::tenant_limit(const tenancy::Tenant& tenant) { return impl_->tenant_limit(tenant); }

void RateLimits::forget(const std::string& tenant_id) {
  std::unique_lock lock(impl_->mutex);
  impl_->cache.erase(tenant_id);
}

}  // namespace atrium::gateway
