#include "gateway/api_calls.hpp"

#include <array>
#include <atomic>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/periodic.hpp"
#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::gateway {

namespace {

constexpr std::size_t k_shards = 16;

struct CounterShard {
  std::mutex mutex;
  std::unordered_map<std::string, std::int64_t> calls;
};

}  // namespace

struct ApiCallCounter::Impl {
  Report report;
  const Clock& clock;
  std::chrono::milliseconds interval;
  std::string instance;  // makes report keys unique to this process
  std::atomic<std::int64_t> sequence{0};
  std::array<CounterShard, k_shards> shards;
  // Reports that failed, with their keys: sent again as they were, so one that was stored although its answer was
  // lost is not counted twice.
  struct Pending {
    std::string tenant_id;
    std::int64_t calls = 0;
    Instant at{};
    std::string key;
  };
  std::mutex pending_mutex;
  std::vector<Pending> pending;

  CounterShard& shard_of(const std::string& tenant_id) {
    return shards[std::hash<std::string>{}(tenant_id) % k_shards];
  }

  void add(const std::string& tenant_id, std::int64_t calls) {
    CounterShard& s = shard_of(tenant_id);
    std::lock_guard lock(s.mutex);
    s.calls[tenant_id] += calls;
  }

  // One report; an exception (the report reaches storage) counts as a failure.
  Result<void> send(const Pending& p) {
    try {
      return report(p.tenant_id, p.calls, p.at, p.key);
    } catch (const std::exception& e) {
      return fail(Errc::internal, std::string("API call report: ") + e.what());
    }
  }

  Result<void> report_all() {
    Result<void> first_error;
    std::vector<Pending> retry;
    {
      std::lock_guard lock(pending_mutex);
      retry.swap(pending);
    }
    const Instant at = clock.now();
    for (CounterShard& s : shards) {
      std::unordered_map<std::string, std::int64_t> taken;
      {
        std::lock_guard lock(s.mutex);
        taken.swap(s.calls);
      }
      for (const auto& [tenant_id, calls] : taken) {
        retry.push_back(
            {tenant_id, calls, at, "atrium.api_calls:" + instance + ":" + std::to_string(sequence.fetch_add(1))});
      }
    }
    std::vector<Pending> failed;
    for (Pending& p : retry) {
      auto r = send(p);
      if (r) continue;
      if (r.error().code == Errc::not_found) {  // the tenant is gone (deleted): nobody to count them for
        log::info("API calls of a tenant that is gone dropped",
                  {{"tenant_id", p.tenant_id}, {"calls", p.calls}, {"error", r.error().message}});
        continue;
      }
      if (first_error) first_error = std::unexpected(r.error());
      failed.push_back(std::move(p));
    }
    if (!failed.empty()) {
      std::lock_guard lock(pending_mutex);
      if (pending.size() < 100'000) pending.insert(pending.end(), failed.begin(), failed.end());
    }
    return first_error;
  }

  void run() {
    if (auto r = report_all(); !r) {
      log::warn("API call counts not reported; kept for the next report", {{"error", r.error().message}});
    }
  }

  Periodic reporter{[this] { run(); }, interval};
};

ApiCallCounter::ApiCallCounter(Report report, const Clock& clock, std::chrono::milliseconds interval)
    : impl_(new Impl{std::move(report), clock, interval, new_uuid_v7(clock)}) {}

ApiCallCounter::~ApiCallCounter() { stop(); }

void ApiCallCounter::start() { impl_->reporter.start(); }

void ApiCallCounter::stop() {
  impl_->reporter.stop();
  if (auto r = impl_->report_all(); !r) {
    log::warn("API call counts lost at stop", {{"error", r.error().message}});
  }
}

void ApiCallCounter::count(const std::string& tenant_id, std::int64_t calls) { impl_->add(tenant_id, calls); }

Result<void> ApiCallCounter::report_now() { return impl_->report_all(); }

http::Middleware ApiCallCounter::middleware() {
  return [this](http::Request& req, const http::Next& next) {
    http::Response res = next(req);
    if (req.tenant && req.principal && !req.principal->super_admin && res.status != 429) count(req.tenant->id);
    return res;
  };
}

}  // namespace atrium::gateway
