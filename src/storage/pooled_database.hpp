#pragma once

// Internal to storage/: the connection pool and the transaction loop both backends share.

#include <condition_variable>
#include <deque>
#include <mutex>

#include "storage/connection_budget.hpp"
#include "storage/database.hpp"

namespace atrium::storage::detail {

// One backend connection. Used by one thread at a time (the pool hands it out exclusively).
class Connection : public Transaction {
 public:
  virtual Result<void> begin(const TransactionOptions& options) = 0;
  virtual Result<void> commit() = 0;
  // Best effort; a failure marks the connection broken.
  virtual void rollback() = 0;
  // True once the connection can no longer be used (the server went away); the pool then drops it.
  virtual bool broken() const = 0;
};

// invalid_argument naming the parameter ($n) when a text parameter contains a NUL byte. Both backends call it before
// binding anything: libpq takes text parameters as C strings (a NUL would cut the value short, so a lookup and a
// throttle keyed by the same input could see different values) and PostgreSQL text cannot hold NUL, so SQLite
// refuses it too and the backends agree. There is no binary parameter type.
Result<void> check_no_nul(const Statement& statement, std::span<const Value> params);

// A capped pool with a transaction loop on top. Backends supply connect(). With a budget, each connection it opens
// also takes one of the budget's places (see connection_budget.hpp).
class PooledDatabase : public Database {
 public:
  PooledDatabase(std::size_t max_connections, std::chrono::milliseconds acquire_timeout,
                 std::shared_ptr<ConnectionBudget> budget = nullptr);
  ~PooledDatabase() override;

  Result<void> transact(const std::function<Result<void>(Transaction&)>& body,
                        const TransactionOptions& options) override;
  Result<void> ping() override;
  Result<void> execute_unscoped(std::string_view command) override;
  PoolStats pool_stats() override;

 protected:
  virtual Result<std::unique_ptr<Connection>> connect() = 0;
  // Drops every idle connection (for destructors of derived classes, before their state goes).
  void close_idle();
  Result<std::unique_ptr<Connection>> acquire();
  void release(std::unique_ptr<Connection> connection);

 private:
  friend class storage::ConnectionBudget;
  // Closes the longest idle connection for another member of the budget, which takes its place; false when none is
  // idle, or when it is not as spare as asked: `extra` never the pool's last, `surplus` also idle long enough that the
  // burst that opened it is over, `any` the last only when no caller of this pool waits for it.
  enum class Spare { surplus, extra, any };
  bool close_one_idle(Spare spare);
  void leave_budget();
  void note_idle();  // under mutex_, after a release: tells the budget's members how many are idle and since when

  const std::size_t max_connections_;
  const std::chrono::milliseconds acquire_timeout_;
  std::mutex mutex_;
  std::condition_variable available_;
  struct Idle {
    std::unique_ptr<Connection> connection;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Idle> idle_;    // guarded by mutex_; the longest idle first, handed out from the back
  std::size_t open_ = 0;     // guarded by mutex_: idle plus handed out
  std::size_t opening_ = 0;  // guarded by mutex_: being connected (not in open_ yet)
  std::size_t waiting_ = 0;  // guarded by mutex_: callers in acquire() waiting for a connection
  const std::shared_ptr<ConnectionBudget> budget_;
  const std::shared_ptr<ConnectionBudget::Member> member_;  // null without a budget
};

}  // namespace atrium::storage::detail
