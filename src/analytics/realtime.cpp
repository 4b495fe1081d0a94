#include "analytics/realtime.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <unordered_map>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/periodic.hpp"

namespace atrium::analytics {

namespace {

using storage::RedisReply;

std::int64_t minute_of(Instant t) { return std::chrono::floor<std::chrono::minutes>(t).time_since_epoch().count(); }
constexpr std::int64_t k_minute_ms = 60'000;

// type -> minute (since the epoch) -> count
using Counts = std::map<std::string, std::map<std::int64_t, std::int64_t>, std::less<>>;

void add(Counts& counts, std::string_view type, std::int64_t minute, std::int64_t n) {
  auto it = counts.find(type);
  if (it == counts.end()) it = counts.emplace(std::string(type), std::map<std::int64_t, std::int64_t>{}).first;
  it->second[minute] += n;
}

// Adds the counts of minutes [first, last] to `series` (minute first at index 0).
void add_to(const Counts& counts, std::int64_t first, std::int64_t last, Realtime::Series& series) {
  for (const auto& [type, by_minute] : counts) {
    for (auto it = by_minute.lower_bound(first); it != by_minute.end() && it->first <= last; ++it) {
      auto& v = series.counts[type];
      v.resize(static_cast<std::size_t>(series.minutes), 0);
      v[static_cast<std::size_t>(it->first - first)] += it->second;
    }
  }
}

std::optional<std::int64_t> leading_integer(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{}) return std::nullopt;
  return v;
}

Result<void> expect_ok(const Result<RedisReply>& reply) {
  if (!reply) return std::unexpected(reply.error());
  if (reply->type == RedisReply::Type::error) return fail(Errc::unavailable, "redis: " + reply->text);
  return {};
}

}  // namespace

struct Realtime::Impl {
  Impl(const Clock& c, std::chrono::minutes w, RealtimeOptions o) : clock(c), window(w), options(std::move(o)) {}

  const Clock& clock;
  std::chrono::minutes window;
  RealtimeOptions options;
  mutable std::mutex mutex;
  std::int64_t last_trim = 0;                      // the minute of the last trim
  std::unordered_map<std::string, Counts> counts;  // in process: tenant -> its counts
  // Redis: what is buffered per tenant, and how many events that is.
  struct Pending {
    Counts counts;
    std::int64_t events = 0;
  };
  std::unordered_map<std::string, Pending> pending;
  std::unique_ptr<storage::RedisClient> redis;
  std::string instance;
  std::atomic<std::uint64_t> seq{0};
  std::unique_ptr<Periodic> timer;

  std::int64_t oldest(std::int64_t now) const { return now - window.count() + 1; }

  // Drops what fell out of the window (every tenant's, so idle tenants do not keep memory).
  void trim(std::int64_t oldest_minute) {
    for (auto tenant = counts.begin(); tenant != counts.end();) {
      for (auto type = tenant->second.begin(); type != tenant->second.end();) {
        auto& minutes = type->second;
        minutes.erase(minutes.begin(), minutes.lower_bound(oldest_minute));
        type = minutes.empty() ? tenant->second.erase(type) : std::next(type);
      }
      tenant = tenant->second.empty() ? counts.erase(tenant) : std::next(tenant);
    }
  }

  // One tenant's buffered counts into Redis.
  Result<void> write(const std::string& tenant, const Counts& buffered) {
    const std::int64_t now = minute_of(clock.now());
    const std::string floor = "(" + std::to_string(oldest(now) * k_minute_ms);
    const std::string ttl = std::to_string((window.count() + 1) * k_minute_ms);
    const std::string index = "events:" + tenant;
    for (const auto& [type, by_minute] : buffered) {
      const std::string key = index + ":" + type;
      std::int64_t latest = 0;
      for (const auto& [minute, n] : by_minute) {
        const std::string score = std::to_string(minute * k_minute_ms);
        const std::string member = score + ":" + std::to_string(n) + ":" + instance + ":" + std::to_string(++seq);
        if (auto r = expect_ok(redis->command({"ZADD", key, score, member})); !r) return r;
        latest = std::max(latest, minute);
      }
      if (auto r = expect_ok(redis->command({"ZREMRANGEBYSCORE", key, "-inf", floor})); !r) return r;
      if (auto r = expect_ok(redis->command({"PEXPIRE", key, ttl})); !r) return r;
      if (auto r = expect_ok(redis->command({"ZADD", index, "GT", std::to_string(latest * k_minute_ms), type})); !r) {
        return r;
      }
    }
    if (auto r = expect_ok(redis->command({"ZREMRANGEBYSCORE", index, "-inf", floor})); !r) return r;
    return expect_ok(redis->command({"PEXPIRE", index, ttl}));
  }

  Result<void> write_logged(const std::string& tenant, const Counts& buffered) {
    auto r = write(tenant, buffered);
    if (!r) log::warn("real-time counts not written to Redis", {{"tenant_id", tenant}, {"error", r.error().message}});
    return r;
  }

  Result<Series> read(const std::string& tenant, std::int64_t first, std::int64_t last, Series out) const {
    const std::string index = "events:" + tenant;
    const std::string from = std::to_string(first * k_minute_ms);
    const std::string to = std::to_string(last * k_minute_ms);
    auto types = redis->command({"ZRANGEBYSCORE", index, from, "+inf"});
    if (auto r = expect_ok(types); !r) return std::unexpected(r.error());
    for (const RedisReply& type : types->elements) {
      auto members = redis->command({"ZRANGEBYSCORE", index + ":" + type.text, from, to});
      if (auto r = expect_ok(members); !r) return std::unexpected(r.error());
      Counts flushed;
      for (const RedisReply& m : members->elements) {
        const std::string_view text = m.text;
        const auto colon = text.find(':');
        if (colon == std::string_view::npos) continue;
        auto ms = leading_integer(text.substr(0, colon));
        auto n = leading_integer(text.substr(colon + 1));
        if (!ms || !n || *ms % k_minute_ms != 0) continue;
        add(flushed, type.text, *ms / k_minute_ms, *n);
      }
      add_to(flushed, first, last, out);
    }
    return out;
  }
};

Realtime::Realtime(const Clock& clock, std::chrono::minutes window, RealtimeOptions options)
    : impl_(std::make_unique<Impl>(clock, std::max(window, std::chrono::minutes(1)), std::move(options))) {
  if (impl_->options.redis) {
    impl_->redis = std::make_unique<storage::RedisClient>(*impl_->options.redis, impl_->options.redis_timeout);
    impl_->instance = new_uuid_v7(clock);
    impl_->timer = std::make_unique<Periodic>([this] { (void)flush(); }, impl_->options.flush_interval);
  }
}
Realtime::~Realtime() { stop(); }

std::chrono::minutes Realtime::window() const { return impl_->window; }
bool Realtime::shared() const { return impl_->redis != nullptr; }

void Realtime::record(const std::string& tenant_id, std::string_view type, Instant at, std::int64_t count) {
  const std::int64_t now = minute_of(impl_->clock.now());
  const std::int64_t minute = minute_of(at);
  if (count <= 0 || minute < impl_->oldest(now) || minute > now) return;
  std::unique_lock lock(impl_->mutex);
  if (!impl_->redis) {
    add(impl_->counts[tenant_id], type, minute, count);
    // A trim per new minute bounds memory without a timer.
    if (impl_->last_trim != now) {
      impl_->last_trim = now;
      impl_->trim(impl_->oldest(now));
    }
    return;
  }
  auto& buffer = impl_->pending[tenant_id];
  add(buffer.counts, type, minute, count);
  buffer.events += count;
  if (buffer.events < static_cast<std::int64_t>(impl_->options.flush_events)) return;
  Counts full = std::move(buffer.counts);
  impl_->pending.erase(tenant_id);
  lock.unlock();
  (void)impl_->write_logged(tenant_id, full);
}

Result<void> Realtime::flush() {
  if (!impl_->redis) return {};
  std::unordered_map<std::string, Impl::Pending> taken;
  {
    std::lock_guard lock(impl_->mutex);
    taken.swap(impl_->pending);
  }
  Result<void> first;
  for (const auto& [tenant, buffer] : taken) {
    auto r = impl_->write_logged(tenant, buffer.counts);
    if (!r && first) first = r;
  }
  return first;
}

void Realtime::start() {
  if (impl_->timer) impl_->timer->start();
}

void Realtime::stop() {
  if (!impl_->timer) return;
  impl_->timer->stop();
  (void)flush();
}

Result<Realtime::Series> Realtime::last(const std::string& tenant_id, std::int64_t minutes) const {
  minutes = std::clamp<std::int64_t>(minutes, 1, impl_->window.count());
  const std::int64_t now = minute_of(impl_->clock.now());
  const std::int64_t first = now - minutes + 1;
  Series out{.from = Instant(std::chrono::minutes(first)), .minutes = minutes, .counts = {}};
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->redis) {
      auto tenant = impl_->counts.find(tenant_id);
      if (tenant != impl_->counts.end()) add_to(tenant->second, first, now, out);
    } else if (auto buffered = impl_->pending.find(tenant_id); buffered != impl_->pending.end()) {
      add_to(buffered->second.counts, first, now, out);
    }
  }
  if (!impl_->redis) return out;
  return impl_->read(tenant_id, first, now, std::move(out));
}

}  // namespace atrium::analytics
