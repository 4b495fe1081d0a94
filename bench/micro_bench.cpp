// Micro-benchmarks of the request path's pure-CPU parts, each beside a named baseline measured in the same run:
//   router:  Router::match vs. the obvious alternative, a linear scan of std::regex per route;
//   JSON:    parse_json (bounded SAX builder) vs. nlohmann::json::parse (unbounded, may throw);
//   metrics: the per-request metrics update vs. a plain relaxed atomic increment.
#include <benchmark/benchmark.h>

#include <regex>

#include "core/json.hpp"
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

}  // namespace
