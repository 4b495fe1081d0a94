#pragma once

// Places for connections, shared by several pools (the tenant pools of one process): every connection a pool opens
// takes a place and gives it back when it closes, so the pools together never hold more connections than there are
// places, however many pools there are and however busy each one gets. A pool that needs a connection when no place
// is free closes an idle connection of another pool and takes its place — the least recently used pool's, an extra
// one before any pool's last, and a last one only when none of that pool's callers waits for it; while the
// asking pool has connections of its own (which it can wait for instead: a new connection costs a backend start, a
// wait a transaction) only a surplus one, idle for a second and not that pool's last — and otherwise waits for one
// of its own to come back or a place to free, up to its acquire timeout. A pool with no connection at all does not
// starve behind busy ones: while it waits, free places are kept for it and pools close their extra connections as
// they release them.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace atrium::storage {

namespace detail {
class PooledDatabase;
}

class ConnectionBudget {
 public:
  explicit ConnectionBudget(std::size_t places);
  ConnectionBudget(const ConnectionBudget&) = delete;
  ConnectionBudget& operator=(const ConnectionBudget&) = delete;

  std::size_t places() const { return places_; }
  std::size_t taken() const;  // connections open in the member pools now

  // A pool's membership: what the others read to choose whom to ask for an idle connection.
  struct Member {
    std::mutex mutex;                        // held while asking the pool; its destructor takes it to leave
    detail::PooledDatabase* pool = nullptr;  // guarded by mutex; null once the pool is closing
    std::atomic<std::size_t> idle{0};        // the pool's idle connections (idle_changed)
    std::atomic<std::int64_t> last_used{0};  // steady clock ticks of its last release
  };

 private:
  friend class detail::PooledDatabase;
  std::shared_ptr<Member> join(detail::PooledDatabase* pool);
  // A place for one new connection of `self`: a free one, or the place of an idle connection the least recently used
  // other member closes for it (with `surplus_only`, which `self` asks when it has connections of its own, only one
  // that member can spare: PooledDatabase::close_one_idle). False when neither could be had.
  bool take(const Member& self, bool surplus_only);
  void give_back(std::size_t places);
  // A member without connections starts (+1) or stops (-1) waiting for a place: meanwhile free places are kept for
  // such members and members with spare connections give them up as they release them.
  void starving(int change) { starving_.fetch_add(change, std::memory_order_relaxed); }
  bool anyone_starving() const { return starving_.load(std::memory_order_relaxed) > 0; }
  // A member's idle connections are `idle` now (called under the pool's lock).
  void idle_changed(Member& member, std::size_t idle);

  const std::size_t places_;
  mutable std::mutex mutex_;
  std::size_t taken_ = 0;                       // guarded by mutex_
  std::vector<std::weak_ptr<Member>> members_;  // guarded by mutex_
  std::atomic<std::int64_t> idle_{0};           // the members' idle connections together: none, nothing to look for
  std::atomic<int> starving_{0};                // members waiting for a place with no connection of their own
};

}  // namespace atrium::storage
