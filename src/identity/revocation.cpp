#include "identity/revocation.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace atrium::identity {

namespace detail {

Result<void> validate_jti(std::string_view jti) {
  if (jti.empty() || jti.size() > 128) return fail(Errc::invalid_argument, "jti must be 1-128 characters");
  for (const char c : jti) {
    if (c < 0x21 || c > 0x7e) return fail(Errc::invalid_argument, "jti must be printable ASCII without spaces");
  }
  return {};
}

}  // namespace detail

namespace {

using TimePoint = std::chrono::system_clock::time_point;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

class MemoryRevocationStore final : public RevocationStore {
 public:
  MemoryRevocationStore(const Clock& clock, std::size_t max_entries)
      : clock_(clock), max_entries_(std::max<std::size_t>(max_entries, 1)) {}

  Result<void> revoke(std::string_view jti, TimePoint expires_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return valid;
    const TimePoint now = clock_.now();
    if (expires_at <= now) return {};

    std::unique_lock lock(mutex_);
    purge_expired(now);
    if (auto it = entries_.find(jti); it != entries_.end()) {
      by_expiry_.erase(it->second);
      it->second = by_expiry_.emplace(expires_at, std::string_view(it->first));
      return {};
    }
    if (entries_.size() >= max_entries_) forget(by_expiry_.begin());  // the soonest to expire
    auto [it, inserted] = entries_.emplace(std::string(jti), by_expiry_.end());
    it->second = by_expiry_.emplace(expires_at, std::string_view(it->first));
    return {};
  }

  Result<bool> is_revoked(std::string_view jti) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const TimePoint now = clock_.now();
    std::shared_lock lock(mutex_);
    const auto it = entries_.find(jti);
    return it != entries_.end() && it->second->first > now;
  }

 private:
  // Index by expiry; the views point at the keys of entries_ (stable: unordered_map nodes never move).
  using ByExpiry = std::multimap<TimePoint, std::string_view>;

  // Drops an entry from both indexes. Requires the exclusive lock.
  void forget(ByExpiry::iterator position) {
    const auto entry = entries_.find(position->second);
    by_expiry_.erase(position);  // before the key its view points at goes
    entries_.erase(entry);
  }

  void purge_expired(TimePoint now) {
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) forget(by_expiry_.begin());
  }

  const Clock& clock_;
  const std::size_t max_entries_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, ByExpiry::iterator, StringHash, std::equal_to<>> entries_;  // guarded by mutex_
  ByExpiry by_expiry_;                                                                        // guarded by mutex_
};

}  // namespace

std::unique_ptr<RevocationStore> make_memory_revocation_store(const Clock& clock, std::size_t max_entries) {
  return std::make_unique<MemoryRevocationStore>(clock, max_entries);
}

}  // namespace atrium::identity
