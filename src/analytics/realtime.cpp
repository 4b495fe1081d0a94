#include "analytics/realtime.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace atrium::analytics {

namespace {

std::int64_t minute_of(Instant t) { return std::chrono::floor<std::chrono::minutes>(t).time_since_epoch().count(); }

}  // namespace

struct Realtime::Impl {
  const Clock& clock;
  std::chrono::minutes window;
  mutable std::mutex mutex;
  std::int64_t last_trim = 0;  // the minute of the last trim
  // tenant -> type -> minute (since the epoch) -> count
  std::unordered_map<std::string, std::map<std::string, std::map<std::int64_t, std::int64_t>, std::less<>>> counts;

  // Drops what fell out of the window (every tenant's, so idle tenants do not keep memory).
  void trim(std::int64_t oldest) {
    for (auto tenant = counts.begin(); tenant != counts.end();) {
      for (auto type = tenant->second.begin(); type != tenant->second.end();) {
        auto& minutes = type->second;
        minutes.erase(minutes.begin(), minutes.lower_bound(oldest));
        type = minutes.empty() ? tenant->second.erase(type) : std::next(type);
      }
      tenant = tenant->second.empty() ? counts.erase(tenant) : std::next(tenant);
    }
  }
};

Realtime::Realtime(const Clock& clock, std::chrono::minutes window)
    : impl_(new Impl{clock, std::max(window, std::chrono::minutes(1)), {}, 0, {}}) {}
Realtime::~Realtime() = default;

std::chrono::minutes Realtime::window() const { return impl_->window; }

void Realtime::record(const std::string& tenant_id, std::string_view type, Instant at, std::int64_t count) {
  const std::int64_t now = minute_of(impl_->clock.now());
  const std::int64_t minute = minute_of(at);
  const std::int64_t oldest = now - impl_->window.count() + 1;
  if (count <= 0 || minute < oldest || minute > now) return;
  std::lock_guard lock(impl_->mutex);
  auto& types = impl_->counts[tenant_id];
  auto it = types.find(type);
  if (it == types.end()) it = types.emplace(std::string(type), std::map<std::int64_t, std::int64_t>{}).first;
  it->second[minute] += count;
  // A trim per new minute bounds memory without a timer.
  if (impl_->last_trim != now) {
    impl_->last_trim = now;
    impl_->trim(oldest);
  }
}

Realtime::Series Realtime::last(const std::string& tenant_id, std::int64_t minutes) const {
  minutes = std::clamp<std::int64_t>(minutes, 1, impl_->window.count());
  const std::int64_t now = minute_of(impl_->clock.now());
  const std::int64_t first = now - minutes + 1;
  Series out{.from = Instant(std::chrono::minutes(first)), .minutes = minutes, .counts = {}};
  std::lock_guard lock(impl_->mutex);
  auto tenant = impl_->counts.find(tenant_id);
  if (tenant == impl_->counts.end()) return out;
  for (const auto& [type, by_minute] : tenant->second) {
    std::vector<std::int64_t> series(static_cast<std::size_t>(minutes), 0);
    bool any = false;
    for (auto it = by_minute.lower_bound(first); it != by_minute.end() && it->first <= now; ++it) {
      series[static_cast<std::size_t>(it->first - first)] = it->second;
      any = true;
    }
    if (any) out.counts.emplace(type, std::move(series));
  }
  return out;
}

}  // namespace atrium::analytics
