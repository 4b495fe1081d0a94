#pragma once

// Internal to storage/: the connection pool and the transaction loop both backends share.

#include <condition_variable>
#include <deque>
#include <mutex>

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

// A capped pool with a transaction loop on top. Backends supply connect().
class PooledDatabase : public Database {
 public:
  PooledDatabase(std::size_t max_connections, std::chrono::milliseconds acquire_timeout);
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
  const std::size_t max_connections_;
  const std::chrono::milliseconds acquire_timeout_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::deque<std::unique_ptr<Connection>> idle_;  // guarded by mutex_
  std::size_t open_ = 0;                          // guarded by mutex_: idle plus handed out
  std::size_t waiting_ = 0;                       // guarded by mutex_: callers in acquire() waiting for a connection
};

}  // namespace atrium::storage::detail
