// Micro-benchmarks of the request path's pure-CPU parts, each beside a named baseline measured in the same run:
//   router:  Router::match vs. the obvious alternative, a linear scan of std::regex per route;
//   JSON:    parse_json (bounded SAX builder) vs. nlohmann::json::parse (unbounded, may throw);
//   metrics: the per-request metrics update vs. a plain relaxed atomic increment;
//   rate limits: in-process GCRA decisions (gateway::make_memory_rate_limiter, the system clock as in production)
//     from 1 and 2 threads on 16 hot keys and on 100,000 keys vs. the same GCRA step and clock read on an
//     unsynchronized std::unordered_map (with 2 threads, one map per thread: nothing shared, so the most two cores
//     could do).
#include <benchmark/benchmark.h>

#include <regex>
#include <unordered_map>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "gateway/rate_limiter.hpp"
#include "gateway/rate_limits.hpp"
#include "http/router.hpp"
#include "observability/metrics.hpp"

namespace {

using atrium::http::Method;

const std::vector<std::string>& patterns() {
  static const std::vector<std::string> p = {"/health",
                                             "/ready",
                                             "/metrics",
                                             "/openapi.json",
                                             "/v1/projects",
                                             "/v1/projects/{id}",
                                             "/v1/users",
                                             "/v1/users/{id}",
                                             "/v1/api-keys",
                                             "/v1/api-keys/{id}",
                                             "/v1/admin/tenants",
                                             "/v1/admin/tenants/{id}",
                                             "/v1/admin/metrics",
                                             "/v1/audit-logs",
                                             "/v1/webhook-endpoints",
                                             "/v1/webhook-endpoints/{id}",
                                             "/v1/webhook-endpoints/{id}/deliveries",
                                             "/v1/usage",
                                             "/v1/usage/summary",
                                             "/v1/entitlements"};
  return p;
}

void BM_RouterMatch(benchmark::State& state) {
  atrium::http::Router router;
  for (const auto& p : patterns())
    router.add(Method::get, p, [](atrium::http::Request&) { return atrium::http::Response{}; });
  for (auto _ : state) {
    auto m = router.match(Method::get, "/v1/webhook-endpoints/0190f5a2-7b3c-7def-8123-456789abcdef/deliveries");
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_RouterMatch);

void BM_Baseline_RegexRouterMatch(benchmark::State& state) {
  std::vector<std::regex> routes;
  for (const auto& p : patterns()) routes.emplace_back(std::regex_replace(p, std::regex(R"(\{[a-z]+\})"), "([^/]+)"));
  const std::string path = "/v1/webhook-endpoints/0190f5a2-7b3c-7def-8123-456789abcdef/deliveries";
  for (auto _ : state) {
    std::smatch m;
    for (const auto& r : routes) {
      if (std::regex_match(path, m, r)) break;
    }
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_Baseline_RegexRouterMatch);

const std::string& sample_json() {
  static const std::string s = [] {
    std::string out = R"({"events":[)";
    for (int i = 0; i < 100; ++i) {
      if (i > 0) out += ',';
      out += R"({"metric":"api_calls","quantity":)" + std::to_string(i) +
             R"(,"timestamp":"2026-11-27T10:00:00Z","idempotency_key":"k-)" + std::to_string(i) +
             R"(","properties":{"region":"eu","plan":"pro"}})";
    }
    return out + "]}";
  }();
  return s;
}

void BM_ParseJsonBounded(benchmark::State& state) {
  std::string error;
  for (auto _ : state) benchmark::DoNotOptimize(atrium::parse_json(sample_json(), {}, &error));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * sample_json().size()));
}
BENCHMARK(BM_ParseJsonBounded);

void BM_Baseline_NlohmannParse(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(sample_json(), nullptr, false));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * sample_json().size()));
}
BENCHMARK(BM_Baseline_NlohmannParse);

void BM_MetricsRequestUpdate(benchmark::State& state) {
  atrium::metrics::Registry registry;
  auto& requests = registry.counter("r_total", "r", {"method", "route", "status"});
  auto& duration = registry.histogram(
      "d_seconds", "d", {"method", "route", "status"},
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  for (auto _ : state) {
    const atrium::metrics::Labels labels{"GET", "/v1/projects/{id}", "200"};
    requests.with(labels).inc();
    duration.with(labels).observe(0.0003);
  }
}
BENCHMARK(BM_MetricsRequestUpdate);

void BM_Baseline_AtomicIncrement(benchmark::State& state) {
  std::atomic<std::uint64_t> n{0};
  for (auto _ : state) benchmark::DoNotOptimize(n.fetch_add(1, std::memory_order_relaxed));
}
BENCHMARK(BM_Baseline_AtomicIncrement);

// Keys shaped like the gateway's ("t:" and a tenant UUID).
std::vector<std::string> make_rate_limit_keys(std::size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  char tail[16];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(tail, sizeof tail, "%012zx", i * 2654435761u % 0xffffffffffffu);
    keys.push_back(std::string("t:0190f5a2-7b3c-7def-8123-") + tail);
  }
  return keys;
}

const std::vector<std::string>& hot_keys() {
  static const auto keys = make_rate_limit_keys(16);
  return keys;
}

const std::vector<std::string>& many_keys() {
  static const auto keys = make_rate_limit_keys(100'000);
  return keys;
}

// One limiter for all threads of a benchmark, with the default capacity (gateway.max_keys = 100,000).
atrium::gateway::RateLimiter& shared_limiter() {
  static const auto limiter = atrium::gateway::make_memory_rate_limiter(atrium::SystemClock::instance());
  return *limiter;
}

// High enough that decisions are mostly "allowed", like a tenant within its plan.
constexpr atrium::gateway::Limit k_bench_limit{.rate = 1'000'000, .burst = 1'000'000};

void rate_limit_decisions(benchmark::State& state, const std::vector<std::string>& keys) {
  auto& limiter = shared_limiter();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * (keys.size() / 2 + 1);
  for (auto _ : state) {
    auto d = limiter.decide(keys[i % keys.size()], k_bench_limit, 1);
    benchmark::DoNotOptimize(d);
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_RateLimitDecisionHotKeys(benchmark::State& state) { rate_limit_decisions(state, hot_keys()); }
BENCHMARK(BM_RateLimitDecisionHotKeys)->Threads(1)->Threads(2)->UseRealTime();

void BM_RateLimitDecision100kKeys(benchmark::State& state) { rate_limit_decisions(state, many_keys()); }
BENCHMARK(BM_RateLimitDecision100kKeys)->Threads(1)->Threads(2)->UseRealTime();

void unsynchronized_gcra(benchmark::State& state, const std::vector<std::string>& keys) {
  std::unordered_map<std::string, std::int64_t> tats;  // per thread
  const atrium::Clock& clock = atrium::SystemClock::instance();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::int64_t now = clock.monotonic().time_since_epoch().count();
    auto [it, inserted] = tats.try_emplace(keys[i % keys.size()], std::numeric_limits<std::int64_t>::min());
    auto d = atrium::gateway::detail::gcra(it->second, now, k_bench_limit, 1, 1'000'000'000, 1);
    benchmark::DoNotOptimize(d);
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_Baseline_UnsyncMapGcraHotKeys(benchmark::State& state) { unsynchronized_gcra(state, hot_keys()); }
BENCHMARK(BM_Baseline_UnsyncMapGcraHotKeys)->Threads(1)->Threads(2)->UseRealTime();

void BM_Baseline_UnsyncMapGcra100kKeys(benchmark::State& state) { unsynchronized_gcra(state, many_keys()); }
BENCHMARK(BM_Baseline_UnsyncMapGcra100kKeys)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
