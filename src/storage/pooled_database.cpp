#include "storage/pooled_database.hpp"

#include <thread>

#include <fmt/format.h>

#include "core/failpoint.hpp"

namespace atrium::storage::detail {

namespace {
constexpr Statement k_ping{"atrium_ping", "SELECT 1"};
// How long a pool's extra connection stays idle before another pool of its budget that has connections of its own
// may close it to grow: opening a connection costs a backend start, waiting for one's own a transaction.
constexpr std::chrono::seconds k_surplus_after{1};
}  // namespace

Result<void> check_no_nul(const Statement& statement, std::span<const Value> params) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto* text = std::get_if<std::string>(&params[i]);
    if (text != nullptr && text->find('\0') != std::string::npos) {
      return fail(Errc::invalid_argument, fmt::format("{}: parameter ${} contains a NUL byte", statement.name, i + 1));
    }
  }
  return {};
}

PooledDatabase::PooledDatabase(std::size_t max_connections, std::chrono::milliseconds acquire_timeout,
                               std::shared_ptr<ConnectionBudget> budget)
    : max_connections_(std::max<std::size_t>(1, max_connections)),
      acquire_timeout_(acquire_timeout),
      budget_(std::move(budget)),
      member_(budget_ ? budget_->join(this) : nullptr) {}

PooledDatabase::~PooledDatabase() {
  leave_budget();
  // Connections the derived class left (it should have closed its idle ones) go with the members below.
  if (budget_) budget_->give_back(open_);
}

void PooledDatabase::leave_budget() {
  if (!member_) return;
  std::lock_guard lock(member_->mutex);  // waits for a member asking this pool now
  member_->pool = nullptr;
  budget_->idle_changed(*member_, 0);
}

void PooledDatabase::note_idle() {
  if (!member_) return;
  budget_->idle_changed(*member_, idle_.size());
  member_->last_used.store(idle_.back().since.time_since_epoch().count(), std::memory_order_relaxed);
}

void PooledDatabase::close_idle() {
  leave_budget();
  std::deque<Idle> doomed;
  {
    std::lock_guard lock(mutex_);
    doomed.swap(idle_);
    open_ -= doomed.size();
  }
  if (budget_) budget_->give_back(doomed.size());
}

bool PooledDatabase::close_one_idle(Spare spare) {
  std::unique_ptr<Connection> doomed;
  {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return false;
    if (spare != Spare::any && open_ < 2) return false;
    // Not the last connection of a pool whose own callers wait for it: they would take another's in turn.
    if (spare == Spare::any && open_ < 2 && waiting_ > 0) return false;
    if (spare == Spare::surplus && std::chrono::steady_clock::now() - idle_.front().since < k_surplus_after) {
      return false;
    }
    doomed = std::move(idle_.front().connection);
    idle_.pop_front();
    --open_;
    budget_->idle_changed(*member_, idle_.size());
  }
  return true;
}

Result<std::unique_ptr<Connection>> PooledDatabase::acquire() {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
  bool starving = false;  // told the budget this pool waits with no connection
  struct StopStarving {
    ConnectionBudget* budget;
    bool& on;
    ~StopStarving() {
      if (on) budget->starving(-1);
    }
  } stop_starving{budget_.get(), starving};
  for (;;) {
    if (!idle_.empty()) {
      // The most recently used: the others stay idle, and become the surplus another pool may close.
      auto c = std::move(idle_.back().connection);
      idle_.pop_back();
      if (member_) budget_->idle_changed(*member_, idle_.size());
      return c;
    }
    bool no_place = false;
    if (open_ + opening_ < max_connections_) {
      ++opening_;                                         // counted in open_ once it is made
      const bool has_connections = open_ + opening_ > 1;  // beside the one this call opens
      lock.unlock();
      const bool placed = !budget_ || budget_->take(*member_, /*surplus_only=*/has_connections);
      Result<std::unique_ptr<Connection>> c = fail(Errc::timeout, "no place in the connection budget");
      if (placed) {
        c = connect();
        if (!c && budget_) budget_->give_back(1);
      }
      lock.lock();
      --opening_;
      if (c) {
        ++open_;
        return c;
      }
      available_.notify_one();
      if (placed) return c;
      no_place = true;
      if (open_ + opening_ == 0 && !starving) {
        starving = true;
        budget_->starving(+1);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return fail(Errc::timeout, no_place ? "no database connection became free in time: the pools sharing its "
                                            "connection budget hold every place it has, none of them idle"
                                          : "no database connection became free in time");
    }
    // Without a place, one may free in another pool (nothing here would wake this one): look again soon.
    ++waiting_;
    available_.wait_until(lock, no_place ? std::min(deadline, now + std::chrono::milliseconds(2)) : deadline);
    --waiting_;
  }
}

PoolStats PooledDatabase::pool_stats() {
  std::lock_guard lock(mutex_);
  return {.in_use = open_ - idle_.size(), .idle = idle_.size(), .max = max_connections_, .waiting = waiting_};
}

void PooledDatabase::release(std::unique_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  // A spare connection goes back to the budget at once while a pool with none waits for a place.
  if (connection->broken() || (budget_ && open_ >= 2 && budget_->anyone_starving())) {
    --open_;
    connection.reset();
    if (budget_) budget_->give_back(1);
  } else {
    idle_.push_back({std::move(connection), std::chrono::steady_clock::now()});
    note_idle();
  }
  available_.notify_one();
}

Result<void> PooledDatabase::transact(const std::function<Result<void>(Transaction&)>& body,
                                      const TransactionOptions& options) {
  const int max_attempts = std::max(1, options.max_attempts);
  // Dead connections found at BEGIN (the server restarted) are replaced without counting as attempts.
  int stale_connections = 0;
  for (int attempt = 1;;) {
    auto acquired = acquire();
    if (!acquired) return std::unexpected(acquired.error());
    std::unique_ptr<Connection> conn = std::move(*acquired);
    if (auto begun = conn->begin(options); !begun) {
      const bool lost = conn->broken() || begun.error().code == Errc::connection_lost;
      release(std::move(conn));
      if (lost && stale_connections++ <= static_cast<int>(max_connections_)) continue;
      return std::unexpected(begun.error());
    }
    Result<void> outcome = fail(Errc::internal, "transaction body threw");
    try {
      outcome = body(*conn);
    } catch (const std::exception& e) {
      // The connection goes back to the pool rolled back instead of leaking with an open transaction.
      outcome = fail(Errc::internal, std::string("transaction body threw: ") + e.what());
    } catch (...) {
    }
    if (outcome && !options.read_only && failing("storage.commit")) {
      outcome = fail(Errc::unavailable, "failpoint storage.commit: the transaction was not committed");
    }
    if (outcome) outcome = conn->commit();
    if (!outcome) conn->rollback();
    release(std::move(conn));
    if (outcome) return outcome;
    if (outcome.error().code != Errc::serialization_failure || attempt >= max_attempts) return outcome;
    ++attempt;
    // Short, growing pause so the competing transaction can finish.
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * attempt));
  }
}

Result<void> PooledDatabase::execute_unscoped(std::string_view command) {
  auto acquired = acquire();
  if (!acquired) return std::unexpected(acquired.error());
  std::unique_ptr<Connection> conn = std::move(*acquired);
  auto r = conn->execute_script(command);
  release(std::move(conn));
  return r;
}

Result<void> PooledDatabase::ping() {
  return transact(
      [](Transaction& tx) -> Result<void> {
        auto r = tx.execute(k_ping);
        if (!r) return std::unexpected(r.error());
        return {};
      },
      TransactionOptions{.read_only = true});
}

}  // namespace atrium::storage::detail
