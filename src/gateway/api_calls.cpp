#include "gateway/api_calls.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::gateway {

namespace {

constexpr std::size_t k_shards = 16;

struct Shard {
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
  std::array<Shard, k_shards> shards;

  std::mutex thread_mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  Shard& shard_of(const std::string& tenant_id) { return shards[std::hash<std::string>{}(tenant_id) % k_shards]; }

  void add(const std::string& tenant_id, std::int64_t calls) {
    Shard& s = shard_of(tenant_id);
    std::lock_guard lock(s.mutex);
    s.calls[tenant_id] += calls;
  }

  Result<void> report_all() {
    Result<void> first_error;
    const std::int64_t at_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch()).count();
    for (Shard& s : shards) {
      std::unordered_map<std::string, std::int64_t> taken;
      {
        std::lock_guard lock(s.mutex);
        taken.swap(s.calls);
      }
      for (const auto& [tenant_id, calls] : taken) {
        const std::string key = "atrium.api_calls:" + instance + ":" + std::to_string(sequence.fetch_add(1));
        auto r = report(tenant_id, calls, at_ms, key);
        if (!r) {
          add(tenant_id, calls);  // counted again next time, under a new key (this one stored nothing)
          if (first_error) first_error = std::unexpected(r.error());
        }
      }
    }
    return first_error;
  }

  void run() {
    std::unique_lock lock(thread_mutex);
    while (!stopping) {
      wake.wait_for(lock, interval, [&] { return stopping; });
      if (stopping) break;
      lock.unlock();
      if (auto r = report_all(); !r) {
        log::warn("API call counts not reported; kept for the next report", {{"error", r.error().message}});
      }
      lock.lock();
    }
  }
};

ApiCallCounter::ApiCallCounter(Report report, const Clock& clock, std::chrono::milliseconds interval)
    : impl_(new Impl{std::move(report), clock, interval, new_uuid_v7(clock)}) {}

ApiCallCounter::~ApiCallCounter() { stop(); }

void ApiCallCounter::start() {
  std::lock_guard lock(impl_->thread_mutex);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void ApiCallCounter::stop() {
  {
    std::lock_guard lock(impl_->thread_mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
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
