#include "identity/revocation.hpp"

#include <algorithm>
#include <charconv>
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

Result<void> validate_member(std::string_view user_id, std::string_view tenant_id) {
  for (const auto& [name, id] : {std::pair{"user id", user_id}, std::pair{"tenant id", tenant_id}}) {
    bool valid = !id.empty() && id.size() <= 128 && id.find(':') == std::string_view::npos;
    for (const char c : id) valid = valid && c >= 0x21 && c <= 0x7e;
    if (!valid) {
      return fail(Errc::invalid_argument,
                  std::string(name) + " must be 1-128 printable ASCII characters without spaces or ':'");
    }
  }
  return {};
}

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace detail

namespace {

constexpr std::string_view k_member_record = "member:";

}  // namespace

std::string member_revocation_key(std::string_view user_id, std::string_view tenant_id,
                                  std::chrono::system_clock::time_point at) {
  std::string key(k_member_record);
  key.append(user_id).append(":").append(tenant_id).append(":").append(std::to_string(detail::epoch_ms(at)));
  return key;
}

Result<void> restore_revocation(RevocationStore& store, std::string_view key,
                                std::chrono::system_clock::time_point expires_at) {
  if (!key.starts_with(k_member_record)) return store.revoke(key, expires_at);
  key.remove_prefix(k_member_record.size());
  const auto first = key.find(':');
  const auto last = key.rfind(':');
  std::int64_t ms = -1;
  if (first == std::string_view::npos || first == last ||
      std::from_chars(key.data() + last + 1, key.data() + key.size(), ms).ptr != key.data() + key.size() || ms < 0) {
    return fail(Errc::invalid_argument, "malformed member revocation key");
  }
  return store.revoke_member(key.substr(0, first), key.substr(first + 1, last - first - 1),
                             std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)), expires_at);
}

namespace {

using TimePoint = std::chrono::system_clock::time_point;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Entries by key until their expiry, at most `max_entries` of them. Not synchronised: the store's lock guards it.
template <class Value>
class ExpiringTable {
 public:
  explicit ExpiringTable(std::size_t max_entries) : max_entries_(std::max<std::size_t>(max_entries, 1)) {}

  // The value of `key` while it has not expired at `now`, else null.
  const Value* find(std::string_view key, TimePoint now) const {
    const auto it = entries_.find(key);
    return it != entries_.end() && it->second.position->first > now ? &it->second.value : nullptr;
  }

  // Inserts `key`, or lets `update` change the value and expiry of the entry there. Purges what has expired at
  // `now` first; when the table is full, forgets the entry expiring soonest.
  template <class Update>
  void put(std::string_view key, TimePoint now, Value value, TimePoint expires_at, Update update) {
    purge_expired(now);
    if (auto it = entries_.find(key); it != entries_.end()) {
      TimePoint expiry = it->second.position->first;
      update(it->second.value, expiry);
      by_expiry_.erase(it->second.position);
      it->second.position = by_expiry_.emplace(expiry, std::string_view(it->first));
      return;
    }
    if (entries_.size() >= max_entries_) forget(by_expiry_.begin());  // the soonest to expire
    auto [it, inserted] = entries_.emplace(std::string(key), Entry{std::move(value), by_expiry_.end()});
    it->second.position = by_expiry_.emplace(expires_at, std::string_view(it->first));
  }

 private:
  // Index by expiry; the views point at the keys of entries_ (stable: unordered_map nodes never move).
  using ByExpiry = std::multimap<TimePoint, std::string_view>;
  struct Entry {
    Value value;
    typename ByExpiry::iterator position;
  };

  // Drops an entry from both indexes.
  void forget(typename ByExpiry::iterator position) {
    const auto entry = entries_.find(position->second);
    by_expiry_.erase(position);  // before the key its view points at goes
    entries_.erase(entry);
  }

  void purge_expired(TimePoint now) {
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) forget(by_expiry_.begin());
  }

  const std::size_t max_entries_;
  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> entries_;
  ByExpiry by_expiry_;
};

std::string member_key(std::string_view user_id, std::string_view tenant_id) {
  std::string key(user_id);
  key.append(":").append(tenant_id);
  return key;
}

class MemoryRevocationStore final : public RevocationStore {
 public:
  MemoryRevocationStore(const Clock& clock, std::size_t max_entries)
      : clock_(clock), jtis_(max_entries), members_(max_entries) {}

  Result<void> revoke(std::string_view jti, TimePoint expires_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return valid;
    const TimePoint now = clock_.now();
    if (expires_at <= now) return {};
    std::unique_lock lock(mutex_);
    // Revoking again replaces the expiry (callers pass the token's exp, which never changes).
    jtis_.put(jti, now, Unit{}, expires_at, [&](Unit&, TimePoint& expiry) { expiry = expires_at; });
    return {};
  }

  Result<bool> is_revoked(std::string_view jti) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const TimePoint now = clock_.now();
    std::shared_lock lock(mutex_);
    return jtis_.find(jti, now) != nullptr;
  }

  Result<void> revoke_member(std::string_view user_id, std::string_view tenant_id, TimePoint at,
                             TimePoint keep_until) override {
    if (auto valid = detail::validate_member(user_id, tenant_id); !valid) return valid;
    const TimePoint now = clock_.now();
    if (keep_until <= now) return {};
    const std::int64_t epoch = detail::epoch_ms(at);
    std::unique_lock lock(mutex_);
    members_.put(member_key(user_id, tenant_id), now, epoch, keep_until, [&](std::int64_t& current, TimePoint& expiry) {
      current = std::max(current, epoch);
      expiry = std::max(expiry, keep_until);
    });
    return {};
  }

  Result<TokenRevocation> check(std::string_view jti, std::string_view user_id, std::string_view tenant_id,
                                TimePoint issued_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const std::string_view scope = tenant_id.empty() ? k_no_tenant : tenant_id;
    if (auto valid = detail::validate_member(user_id, scope); !valid) return std::unexpected(valid.error());
    const TimePoint now = clock_.now();
    std::shared_lock lock(mutex_);
    if (jtis_.find(jti, now) != nullptr) return TokenRevocation::token;
    const std::int64_t* epoch = members_.find(member_key(user_id, scope), now);
    return epoch != nullptr && detail::epoch_ms(issued_at) < *epoch ? TokenRevocation::member : TokenRevocation::none;
  }

 private:
  struct Unit {};

  const Clock& clock_;
  std::shared_mutex mutex_;
  ExpiringTable<Unit> jtis_;             // guarded by mutex_
  ExpiringTable<std::int64_t> members_;  // guarded by mutex_; epoch in ms, keyed by "<user id>:<tenant id>"
};

}  // namespace

std::unique_ptr<RevocationStore> make_memory_revocation_store(const Clock& clock, std::size_t max_entries) {
  return std::make_unique<MemoryRevocationStore>(clock, max_entries);
}

}  // namespace atrium::identity
