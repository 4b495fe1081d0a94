#include "storage/connection_budget.hpp"

#include <algorithm>

#include "storage/pooled_database.hpp"

namespace atrium::storage {

ConnectionBudget::ConnectionBudget(std::size_t places) : places_(std::max<std::size_t>(1, places)) {}

std::size_t ConnectionBudget::taken() const {
  std::lock_guard lock(mutex_);
  return taken_;
}

std::shared_ptr<ConnectionBudget::Member> ConnectionBudget::join(detail::PooledDatabase* pool) {
  auto member = std::make_shared<Member>();
  member->pool = pool;
  std::lock_guard lock(mutex_);
  std::erase_if(members_, [](const std::weak_ptr<Member>& m) { return m.expired(); });
  members_.push_back(member);
  return member;
}

bool ConnectionBudget::take(const Member& self, bool surplus_only) {
  std::vector<std::shared_ptr<Member>> holding_idle;
  {
    std::lock_guard lock(mutex_);
    // A pool that has connections leaves free places, and others' surplus, to pools waiting with none.
    if (surplus_only && anyone_starving()) return false;
    if (taken_ < places_) {
      ++taken_;
      return true;
    }
    if (idle_.load(std::memory_order_relaxed) <= 0) return false;
    for (const auto& weak : members_) {
      auto m = weak.lock();
      if (m && m.get() != &self && m->idle.load(std::memory_order_relaxed) > 0) holding_idle.push_back(std::move(m));
    }
  }
  // Asked outside the budget's lock: a pool gives its connection up under its own.
  std::ranges::sort(holding_idle, {}, [](const auto& m) { return m->last_used.load(std::memory_order_relaxed); });
  // A pool with none takes an extra connection first, another pool's last only when there is none: that pool's next
  // request would have to do the same.
  using Spare = detail::PooledDatabase::Spare;
  const auto passes = surplus_only ? std::vector{Spare::surplus} : std::vector{Spare::extra, Spare::any};
  for (const Spare spare : passes) {
    for (const auto& m : holding_idle) {
      std::lock_guard lock(m->mutex);
      // The closed connection's place passes to the caller without ever being free.
      if (m->pool != nullptr && m->pool->close_one_idle(spare)) return true;
    }
  }
  return false;
}

void ConnectionBudget::idle_changed(Member& member, std::size_t idle) {
  const auto before = member.idle.exchange(idle, std::memory_order_relaxed);
  idle_.fetch_add(static_cast<std::int64_t>(idle) - static_cast<std::int64_t>(before), std::memory_order_relaxed);
}

void ConnectionBudget::give_back(std::size_t places) {
  std::lock_guard lock(mutex_);
  taken_ -= std::min(taken_, places);
}

}  // namespace atrium::storage
