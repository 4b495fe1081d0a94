// Rate-limit decisions per second through Redis (bench/ratelimit_redis.sh runs it beside redis-benchmark): THREADS
// threads share one gateway Redis limiter (so one pooled connection each) and decide on keys of a KEYS-key set in
// turn for SECONDS, timing every decision. Prints one line of key=value pairs. With --print-script, prints the Lua
// script the limiter runs (for redis-benchmark's EVALSHA) and exits.
//
// Usage: atrium_ratelimit_bench --redis-url URL [--threads 8] [--seconds 5] [--keys 10000]
//        atrium_ratelimit_bench --print-script
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gateway/rate_limiter.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct ThreadResult {
  std::int64_t allowed = 0;
  std::int64_t limited = 0;
  std::int64_t errors = 0;
  std::vector<std::int64_t> latencies_ns;
};

int usage() {
  std::fprintf(stderr,
               "usage: atrium_ratelimit_bench --redis-url URL [--threads N] [--seconds S] [--keys K]\n"
               "       atrium_ratelimit_bench --print-script\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  int threads = 8;
  int seconds = 5;
  int keys = 10'000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--print-script") {
      std::fwrite(atrium::gateway::detail::redis_rate_limit_script().data(), 1,
                  atrium::gateway::detail::redis_rate_limit_script().size(), stdout);
      return 0;
    }
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (arg == "--redis-url") {
      url = value;
    } else if (arg == "--threads") {
      threads = std::atoi(value.c_str());
    } else if (arg == "--seconds") {
      seconds = std::atoi(value.c_str());
    } else if (arg == "--keys") {
      keys = std::atoi(value.c_str());
    } else {
      return usage();
    }
  }
  if (url.empty() || threads < 1 || seconds < 1 || keys < 1) return usage();

  auto limiter = atrium::gateway::make_redis_rate_limiter(
      url, {.timeout = std::chrono::milliseconds(1000), .key_prefix = "atrium-bench:rl:"});
  if (!limiter) {
    std::fprintf(stderr, "atrium_ratelimit_bench: %s\n", limiter.error().message.c_str());
    return 1;
  }
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(keys));
  for (int k = 0; k < keys; ++k) names.push_back("t:bench-tenant-" + std::to_string(k));
  // Like tenants within their plans: mostly allowed, some limited.
  const atrium::gateway::Limit limit{.rate = 1000, .burst = 2000};

  // Warm-up: connections made, script loaded.
  for (int k = 0; k < threads * 10; ++k) (void)(*limiter)->decide(names[static_cast<std::size_t>(k % keys)], limit, 1);

  std::atomic<bool> stop{false};
  std::vector<ThreadResult> results(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ThreadResult& r = results[static_cast<std::size_t>(t)];
      r.latencies_ns.reserve(1 << 20);
      std::size_t i = static_cast<std::size_t>(t) * 7919;
      while (!stop.load(std::memory_order_relaxed)) {
        const auto before = Clock::now();
        auto d = (*limiter)->decide(names[i++ % names.size()], limit, 1);
        r.latencies_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - before).count());
        if (!d) {
          ++r.errors;
        } else if (d->allowed) {
          ++r.allowed;
        } else {
          ++r.limited;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  ThreadResult total;
  for (auto& r : results) {
    total.allowed += r.allowed;
    total.limited += r.limited;
    total.errors += r.errors;
    total.latencies_ns.insert(total.latencies_ns.end(), r.latencies_ns.begin(), r.latencies_ns.end());
  }
  std::sort(total.latencies_ns.begin(), total.latencies_ns.end());
  auto percentile = [&](double p) {
    if (total.latencies_ns.empty()) return 0.0;
    const auto index = static_cast<std::size_t>(p * static_cast<double>(total.latencies_ns.size() - 1));
    return static_cast<double>(total.latencies_ns[index]) / 1000.0;
  };
  const auto decisions = static_cast<double>(total.latencies_ns.size());
  std::printf("decisions_per_s=%.0f decisions=%.0f allowed=%lld limited=%lld errors=%lld p50_us=%.1f p99_us=%.1f\n",
              decisions / elapsed, decisions, static_cast<long long>(total.allowed),
              static_cast<long long>(total.limited), static_cast<long long>(total.errors), percentile(0.50),
              percentile(0.99));
  return total.errors == 0 ? 0 : 1;
}
