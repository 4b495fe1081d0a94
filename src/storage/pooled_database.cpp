#include "storage/pooled_database.hpp"

#include <thread>

#include <fmt/format.h>

#include "core/failpoint.hpp"

namespace atrium::storage::detail {

namespace {
constexpr Statement k_ping{"atrium_ping", "SELECT 1"};
}

Result<void> check_no_nul(const Statement& statement, std::span<const Value> params) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto* text = std::get_if<std::string>(&params[i]);
    if (text != nullptr && text->find('\0') != std::string::npos) {
      return fail(Errc::invalid_argument, fmt::format("{}: parameter ${} contains a NUL byte", statement.name, i + 1));
    }
  }
  return {};
}

PooledDatabase::PooledDatabase(std::size_t max_connections, std::chrono::milliseconds acquire_timeout)
    : max_connections_(std::max<std::size_t>(1, max_connections)), acquire_timeout_(acquire_timeout) {}

PooledDatabase::~PooledDatabase() = default;

void PooledDatabase::close_idle() {
  std::deque<std::unique_ptr<Connection>> doomed;
  {
    std::lock_guard lock(mutex_);
    doomed.swap(idle_);
    open_ -= doomed.size();
  }
}

Result<std::unique_ptr<Connection>> PooledDatabase::acquire() {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
  while (idle_.empty() && open_ >= max_connections_) {
    ++waiting_;
    const bool timed_out = available_.wait_until(lock, deadline) == std::cv_status::timeout;
    --waiting_;
    if (timed_out && idle_.empty() && open_ >= max_connections_) {
      return fail(Errc::timeout, "no database connection became free in time");
    }
  }
  if (!idle_.empty()) {
    auto c = std::move(idle_.front());
    idle_.pop_front();
    return c;
  }
  ++open_;
  lock.unlock();
  auto c = connect();
  if (!c) {
    lock.lock();
    --open_;
    available_.notify_one();
  }
  return c;
}

PoolStats PooledDatabase::pool_stats() {
  std::lock_guard lock(mutex_);
  return {.in_use = open_ - idle_.size(), .idle = idle_.size(), .max = max_connections_, .waiting = waiting_};
}

void PooledDatabase::release(std::unique_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  if (connection->broken()) {
    --open_;
    connection.reset();
  } else {
    idle_.push_back(std::move(connection));
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
