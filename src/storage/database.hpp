#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"

namespace atrium::storage {

enum class Backend { sqlite, postgres };

std::string_view backend_name(Backend b);

// A bind parameter or a column value. NULL is std::monostate.
using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

// SQL is constant text with bind parameters $1, $2, ... on both backends. `name` identifies the prepared
// statement (unique per SQL text; "" runs it unprepared). Define statements as constants next to the code that
// uses them; never build SQL from input.
struct Statement {
  std::string_view name;
  std::string_view sql;
};

// Rows of one statement. Column values are converted by declared type: integers to int64, booleans to bool,
// floating point to double, NULL to monostate, everything else to text.
struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  std::int64_t affected_rows = 0;  // for INSERT/UPDATE/DELETE

  bool empty() const { return rows.empty(); }
  // Typed accessors; a NULL or a value of another type yields nullopt.
  std::optional<std::int64_t> int_at(std::size_t row, std::size_t column) const;
  std::optional<std::string> text_at(std::size_t row, std::size_t column) const;
  std::optional<bool> bool_at(std::size_t row, std::size_t column) const;
  bool is_null(std::size_t row, std::size_t column) const;
};

enum class Isolation { read_committed, serializable };

struct TransactionOptions {
  bool read_only = false;
  Isolation isolation = Isolation::read_committed;  // SQLite transactions are always serializable
  int max_attempts = 3;                             // runs of the body when it fails with serialization_failure
};

// Statements inside one open transaction on one connection. Only valid inside Database::transact's callback;
// used by one thread at a time.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Errors: unique_violation, serialization_failure, connection_lost, timeout, invalid_argument (a bound value the
  // statement refuses: a constraint other than unique, a bad value for the column's type, a text parameter
  // containing a NUL byte, refused on both backends before anything runs), internal (among others SQL that does
  // not parse or names what does not exist, a privilege or row-level security refusal: statements are constant
  // text, so these are the server's bugs, never a client's 400).
  virtual Result<ResultSet> execute(const Statement& statement, std::span<const Value> params = {}) = 0;
  Result<ResultSet> execute(const Statement& statement, std::initializer_list<Value> params) {
    return execute(statement, std::span<const Value>(params.begin(), params.size()));
  }
  // Runs several ';'-separated statements without parameters (migrations).
  virtual Result<void> execute_script(std::string_view sql) = 0;
  virtual Backend backend() const = 0;
};

// A statement with its parameters, for a transaction whose statements are all known before it begins
// (Database::run).
struct BoundStatement {
  Statement statement;
  std::vector<Value> params;
};

// A pool's occupancy at one instant, for metrics: connections handed out, idle ones, the cap, and callers waiting.
struct PoolStats {
  std::size_t in_use = 0;
  std::size_t idle = 0;
  std::size_t max = 0;
  std::size_t waiting = 0;
  PoolStats& operator+=(const PoolStats& other);
};

// A pool of connections to one database. Thread-safe.
class Database {
 public:
  virtual ~Database() = default;
  virtual Backend backend() const = 0;

  // Runs `body` in a transaction on a pooled connection: commits when it returns a value, rolls back when it
  // returns an error. When the body or the commit fails with serialization_failure the whole body runs again,
  // up to options.max_attempts; a connection lost before the body started is replaced and retried once. A body
  // that throws fails its transaction with `internal` (rolled back; the exception does not propagate). SQLite
  // runs concurrent write transactions as one group commit, each body in its own savepoint, possibly on another
  // caller's thread; opening a write transaction inside another on the same SQLite database fails (`internal`).
  virtual Result<void> transact(const std::function<Result<void>(Transaction&)>& body,
                                const TransactionOptions& options = {}) = 0;

  // A transaction whose statements are all known before it begins (none needs an earlier one's result): runs them
  // in order, all or nothing, and returns their results. The first that fails fails the transaction (nothing
  // commits). On PostgreSQL BEGIN, the statements and COMMIT travel in one pipeline, one network round trip in
  // all (transact takes one per statement and one for COMMIT). Retries and errors as transact; a connection lost
  // after the pipeline was sent is connection_lost and not retried (whether it committed is unknown).
  virtual Result<std::vector<ResultSet>> run(std::span<const BoundStatement> statements,
                                             const TransactionOptions& options = {});

  // Checks that the database answers (a round trip on a pooled connection).
  virtual Result<void> ping() = 0;

  // Runs one command outside any transaction, for DDL that PostgreSQL refuses inside one (CREATE DATABASE,
  // DROP DATABASE). Identifiers cannot be bound, so `command` must be built only from identifiers the caller
  // generated and quoted server-side (format('%I')), never from input. SQLite: runs it as a script.
  virtual Result<void> execute_unscoped(std::string_view command) = 0;

  // The pool's occupancy now (all zero for a database without a pool).
  virtual PoolStats pool_stats() { return {}; }
};

class ConnectionBudget;

struct DatabaseOptions {
  // "postgresql://..." (or "postgres://...") for PostgreSQL; "sqlite:PATH" or a bare path for SQLite.
  std::string url;
  int pool_size = 8;
  std::chrono::milliseconds statement_timeout{30'000};  // 0 = none
  std::chrono::milliseconds busy_timeout{5'000};        // SQLite: wait for the write lock
  std::chrono::milliseconds connect_timeout{5'000};     // PostgreSQL connect, and waiting for a free connection
  // Places shared with other pools, one per open connection (connection_budget.hpp); null: only pool_size caps it.
  std::shared_ptr<ConnectionBudget> connection_budget;
};

// Opens the database the URL names. The first connection is made at once, so a wrong URL fails here with
// unavailable (PostgreSQL) or invalid_argument (SQLite path).
Result<std::unique_ptr<Database>> open_database(const DatabaseOptions& options);

Result<std::unique_ptr<Database>> open_sqlite(const DatabaseOptions& options, const std::string& path);
Result<std::unique_ptr<Database>> open_postgres(const DatabaseOptions& options);

// Executes `statements` in order inside an open transaction; their results, or the first error. Database::run's
// body, for callers that put something of their own before them in the same transaction.
Result<std::vector<ResultSet>> execute_all(Transaction& tx, std::span<const BoundStatement> statements);

// Runs `body` and returns what it produced; see Database::transact.
template <class T, class Body>
Result<T> transact_value(Database& db, Body&& body, const TransactionOptions& options = {}) {
  std::optional<T> out;
  auto r = db.transact(
      [&](Transaction& tx) -> Result<void> {
        auto v = body(tx);
        if (!v) return std::unexpected(v.error());
        out = std::move(*v);
        return {};
      },
      options);
  if (!r) return std::unexpected(r.error());
  return std::move(*out);
}

}  // namespace atrium::storage
