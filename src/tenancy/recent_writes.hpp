#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/clock.hpp"

namespace atrium::tenancy {

// Which tenants this process wrote a control-plane mark for, and when, so that a mark refreshed by every write
// transaction (OutboxMarks, StoreWrites) costs one statement per tenant per `refresh`, not one per transaction.
// Bounded: beyond `limit` entries the stale ones are dropped (each is a few dozen bytes). Thread-safe.
class RecentWrites {
 public:
  explicit RecentWrites(std::chrono::minutes refresh, std::size_t limit = 100'000) : refresh_(refresh), limit_(limit) {}

  // Whether the tenant's mark is to be written again at `now` (none written by this process for `refresh`).
  bool due(const std::string& tenant_id, Instant now) const {
    std::lock_guard lock(mutex_);
    auto it = written_.find(tenant_id);
    return it == written_.end() || now - it->second >= refresh_;
  }
  // The mark was written (committed) at `now`.
  void written(const std::string& tenant_id, Instant now) {
    std::lock_guard lock(mutex_);
    if (written_.size() >= limit_) {
      std::erase_if(written_, [&](const auto& entry) { return now - entry.second >= refresh_; });
    }
    written_[tenant_id] = now;
  }
  // The mark went: the next write transaction writes it again.
  void forget(const std::string& tenant_id) {
    std::lock_guard lock(mutex_);
    written_.erase(tenant_id);
  }

 private:
  std::chrono::minutes refresh_;
  std::size_t limit_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Instant> written_;
};

}  // namespace atrium::tenancy
