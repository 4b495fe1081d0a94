#include "analytics/activity.hpp"

#include <map>
#include <mutex>
#include <unordered_set>

#include "analytics/product_events.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "core/periodic.hpp"
#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::analytics {

namespace {

constexpr std::size_t k_max_pending = 1'000'000;  // marks held for a store that keeps failing; newer ones are dropped

std::int64_t activity_day(Instant t) { return std::chrono::floor<std::chrono::days>(t).time_since_epoch().count(); }

// "user.active:<YYYY-MM-DD>:<user>", with a user id too long for a 255-byte key replaced by its SHA-256.
std::string active_key(const std::string& user_id, Instant at) {
  std::string key = std::string(k_user_active) + ":" + format_rfc3339(at).substr(0, 10) + ":";
  return key + (key.size() + user_id.size() <= metering::k_max_idempotency_key_bytes ? user_id : sha256_hex(user_id));
}

}  // namespace

struct Activity::Impl {
  Store store;
  const Clock& clock;
  std::chrono::milliseconds interval;

  std::mutex mutex;
  std::int64_t today = -1;
  std::unordered_set<std::string> seen_today;           // tenant '\n' user, marked on `today` (kept across flushes)
  std::unordered_set<std::string> pending_keys;         // tenant '\n' key of what `pending` holds
  std::map<std::string, metering::UsageBatch> pending;  // tenant -> events not stored yet
  std::size_t pending_count = 0;

  void add(const std::string& tenant_id, metering::UsageEvent event) {
    if (pending_count >= k_max_pending) return;
    if (!pending_keys.insert(tenant_id + '\n' + event.idempotency_key).second) return;
    pending[tenant_id].push_back(metering::UsageEntry{.event = std::move(event), .unreadable = {}});
    ++pending_count;
  }

  void active_at(const std::string& tenant_id, const std::string& user_id, Instant at) {
    if (user_id.empty()) return;
    const std::int64_t day = activity_day(at);
    std::lock_guard lock(mutex);
    const std::int64_t now_day = activity_day(clock.now());
    if (today != now_day) {
      today = now_day;
      seen_today.clear();
    }
    if (day == today && !seen_today.insert(tenant_id + '\n' + user_id).second) return;
    add(tenant_id, metering::UsageEvent{.idempotency_key = active_key(user_id, at),
                                        .metric = event_metric(k_user_active),
                                        .quantity = 1,
                                        .timestamp = at,
                                        .properties = "{}",
                                        .user_id = user_id});
  }

  Result<void> flush() {
    std::map<std::string, metering::UsageBatch> taken;
    {
      std::lock_guard lock(mutex);
      taken.swap(pending);
      pending_keys.clear();
      pending_count = 0;
    }
    Result<void> first_error;
    for (auto& [tenant_id, events] : taken) {
      Result<void> stored = fail(Errc::internal, "not stored");
      try {
        stored = store(tenant_id, events);
      } catch (const std::exception& e) {
        stored = fail(Errc::internal, std::string("activity store: ") + e.what());
      }
      if (stored) continue;
      if (stored.error().code == Errc::not_found) {  // the tenant is gone (deleted): its marks with it
        log::info("activity of a tenant that is gone dropped",
                  {{"tenant_id", tenant_id}, {"error", stored.error().message}});
        continue;
      }
      if (first_error) first_error = std::unexpected(stored.error());
      std::lock_guard lock(mutex);
      for (auto& entry : events) add(tenant_id, std::move(*entry.event));  // the same keys: never twice
    }
    return first_error;
  }

  Periodic flusher{[this] {
                     if (auto r = flush(); !r) {
                       log::warn("user activity not stored; kept for the next flush", {{"error", r.error().message}});
                     }
                   },
                   interval};
};

Activity::Activity(Store store, const Clock& clock, std::chrono::milliseconds interval)
    : impl_(new Impl{std::move(store), clock, interval}) {}

Activity::~Activity() { stop(); }

void Activity::start() { impl_->flusher.start(); }

void Activity::stop() {
  impl_->flusher.stop();
  if (auto r = impl_->flush(); !r) log::warn("user activity lost at stop", {{"error", r.error().message}});
}

void Activity::active(const std::string& tenant_id, const std::string& user_id) {
  impl_->active_at(tenant_id, user_id, impl_->clock.now());
}

void Activity::active_at(const std::string& tenant_id, const std::string& user_id, Instant at) {
  impl_->active_at(tenant_id, user_id, at);
}

void Activity::signed_in(const std::string& tenant_id, const std::string& user_id, const std::string& token_id) {
  if (user_id.empty() || token_id.empty()) return;
  const Instant now = impl_->clock.now();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->add(tenant_id, metering::UsageEvent{.idempotency_key = std::string(k_user_signed_in) + ":" + token_id,
                                               .metric = event_metric(k_user_signed_in),
                                               .quantity = 1,
                                               .timestamp = now,
                                               .properties = "{}",
                                               .user_id = user_id});
  }
  impl_->active_at(tenant_id, user_id, now);
}

Result<void> Activity::flush() { return impl_->flush(); }

http::Middleware Activity::middleware() {
  return [this](http::Request& req, const http::Next& next) {
    http::Response res = next(req);
    const identity::Principal* who = req.principal.get();
    if (req.tenant && who && who->kind == identity::Principal::Kind::user && who->tenant_id == req.tenant->id) {
      active(req.tenant->id, who->subject);
    }
    return res;
  };
}

}  // namespace atrium::analytics
