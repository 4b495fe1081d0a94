#include <sqlite3.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/failpoint.hpp"
#include "storage/pooled_database.hpp"

namespace atrium::storage {

namespace {

Error sqlite_error(sqlite3* db, int rc, std::string_view context) {
  const int primary = rc & 0xFF;
  const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  std::string message = fmt::format("{}: {}", context, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (primary) {
    case SQLITE_CONSTRAINT:
      if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return {Errc::unique_violation, std::move(message)};
      }
      return {Errc::invalid_argument, std::move(message)};
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return {Errc::serialization_failure, std::move(message)};
    case SQLITE_INTERRUPT: return {Errc::timeout, std::move(message)};
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG: return {Errc::invalid_argument, std::move(message)};
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY: return {Errc::unavailable, std::move(message)};
    default: return {Errc::internal, std::move(message)};
  }
}

struct StatementCache {
  sqlite3_stmt* stmt = nullptr;
  std::vector<int> param_index;  // parameter $i+1 -> SQLite index (0 when absent)
};

class SqliteConnection final : public detail::Connection {
 public:
  SqliteConnection(sqlite3* db, std::chrono::milliseconds statement_timeout)
      : db_(db), statement_timeout_(statement_timeout) {
    if (statement_timeout_.count() > 0) sqlite3_progress_handler(db_, 1000, &SqliteConnection::on_progress, this);
  }
  ~SqliteConnection() override {
    for (auto& [_, cached] : cache_) sqlite3_finalize(cached.stmt);
    sqlite3_close_v2(db_);
  }

  Backend backend() const override { return Backend::sqlite; }
  bool broken() const override { return false; }

  Result<void> begin(const TransactionOptions& options) override {
    // Writers take the lock up front so two writers never deadlock upgrading a read lock.
    return exec_plain(options.read_only ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE");
  }
  Result<void> commit() override { return exec_plain("COMMIT"); }
  // One member of a group commit (see SqliteDatabase::transact): its changes are undone alone when it fails.
  Result<void> savepoint() { return exec_plain("SAVEPOINT atrium_member"); }
  // False once SQLite rolled the whole transaction back on its own (after I/O errors, a full disk, ...).
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  Result<void> release_savepoint() { return exec_plain("RELEASE atrium_member"); }
  void rollback_savepoint() {
    (void)exec_plain("ROLLBACK TO atrium_member");
    (void)exec_plain("RELEASE atrium_member");
  }
  void rollback() override {
    if (!sqlite3_get_autocommit(db_)) (void)exec_plain("ROLLBACK");
  }

  Result<void> execute_script(std::string_view sql) override {
    arm_deadline();
    const std::string text(sql);
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
      sqlite3_free(message);
      Error e = sqlite_error(db_, rc, "script");
      e.message = "script: " + detail;
      return std::unexpected(std::move(e));
    }
    return {};
  }

  Result<ResultSet> execute(const Statement& statement, std::span<const Value> params) override {
    // SQLite would store the NUL, but PostgreSQL cannot: both backends refuse it, so they hold the same data.
    if (auto ok = detail::check_no_nul(statement, params); !ok) return std::unexpected(ok.error());
    auto prepared = prepare(statement);
    if (!prepared) return std::unexpected(prepared.error());
    StatementCache& cached = **prepared;
    sqlite3_stmt* stmt = cached.stmt;
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};

    if (params.size() != cached.param_index.size()) {
      return fail(Errc::invalid_argument, fmt::format("statement {} takes {} parameters, {} given", statement.name,
                                                      cached.param_index.size(), params.size()));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = cached.param_index[i];
      if (index == 0) continue;
      int rc = SQLITE_OK;
      const Value& v = params[i];
      if (std::holds_alternative<std::monostate>(v))
        rc = sqlite3_bind_null(stmt, index);
      else if (const auto* b = std::get_if<bool>(&v))
        rc = sqlite3_bind_int64(stmt, index, *b ? 1 : 0);
      else if (const auto* n = std::get_if<std::int64_t>(&v))
        rc = sqlite3_bind_int64(stmt, index, *n);
      else if (const auto* d = std::get_if<double>(&v))
        rc = sqlite3_bind_double(stmt, index, *d);
      else {
        const auto& s = std::get<std::string>(v);
        rc = sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      }
      if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, statement.name));
    }

    arm_deadline();
    ResultSet out;
    const int columns = sqlite3_column_count(stmt);
    for (int c = 0; c < columns; ++c) out.columns.emplace_back(sqlite3_column_name(stmt, c));
    while (true) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return std::unexpected(sqlite_error(db_, rc, statement.name));
      std::vector<Value> row;
      row.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
          case SQLITE_INTEGER: row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c))); break;
          case SQLITE_FLOAT: row.emplace_back(sqlite3_column_double(stmt, c)); break;
          default: {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_blob(stmt, c));
            const int size = sqlite3_column_bytes(stmt, c);
            row.emplace_back(std::string(text != nullptr ? text : "", static_cast<std::size_t>(size)));
          }
        }
      }
      out.rows.push_back(std::move(row));
    }
    out.affected_rows = sqlite3_changes64(db_);
    return out;
  }

 private:
  static int on_progress(void* self) {
    auto* c = static_cast<SqliteConnection*>(self);
    return c->deadline_armed_ && std::chrono::steady_clock::now() > c->deadline_ ? 1 : 0;
  }

  void arm_deadline() {
    deadline_armed_ = statement_timeout_.count() > 0;
    deadline_ = std::chrono::steady_clock::now() + statement_timeout_;
  }

  // Transaction control, prepared once per connection (it runs around every request).
  Result<void> exec_plain(const char* sql) {
    deadline_armed_ = false;
    auto prepared = prepare(Statement{sql, sql});
    if (!prepared) return std::unexpected(prepared.error());
    sqlite3_stmt* stmt = (*prepared)->stmt;
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return std::unexpected(sqlite_error(db_, rc, sql));
    return {};
  }

  Result<StatementCache*> prepare(const Statement& statement) {
    const std::string key = statement.name.empty() ? std::string(statement.sql) : std::string(statement.name);
    if (auto it = cache_.find(key); it != cache_.end()) return &it->second;
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v3(db_, statement.sql.data(), static_cast<int>(statement.sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (rc != SQLITE_OK) {
      // Every statement is constant text: one SQLite cannot prepare (a syntax error, an unknown table or column) is
      // the server's bug, not the caller's input.
      auto error = sqlite_error(db_, rc, fmt::format("prepare {}", statement.name));
      if (error.code == Errc::invalid_argument) error.code = Errc::internal;
      return std::unexpected(std::move(error));
    }
    if (stmt == nullptr) return fail(Errc::internal, fmt::format("statement {} is empty", statement.name));
    StatementCache cached{stmt, {}};
    const int count = sqlite3_bind_parameter_count(stmt);
    // Parameters are $1..$n; map each to SQLite's own index (which follows first appearance).
    int highest = 0;
    for (int i = 1; i <= count; ++i) {
      const char* name = sqlite3_bind_parameter_name(stmt, i);
      if (name == nullptr || name[0] != '$') {
        sqlite3_finalize(stmt);
        return fail(Errc::invalid_argument, fmt::format("statement {}: use $1, $2, ... parameters", statement.name));
      }
      highest = std::max(highest, std::atoi(name + 1));
    }
    cached.param_index.resize(static_cast<std::size_t>(highest));
    for (int n = 1; n <= highest; ++n) {
      cached.param_index[static_cast<std::size_t>(n - 1)] =
          sqlite3_bind_parameter_index(stmt, fmt::format("${}", n).c_str());
    }
    return &cache_.emplace(key, std::move(cached)).first->second;
  }

  sqlite3* db_;
  std::chrono::milliseconds statement_timeout_;
  std::chrono::steady_clock::time_point deadline_;
  bool deadline_armed_ = false;
  std::unordered_map<std::string, StatementCache> cache_;
};

class SqliteDatabase final : public detail::PooledDatabase {
 public:
  SqliteDatabase(const DatabaseOptions& options, std::string path)
      : PooledDatabase(static_cast<std::size_t>(options.pool_size), options.busy_timeout + options.connect_timeout,
                       options.connection_budget),
        options_(options),
        path_(std::move(path)) {}
  ~SqliteDatabase() override { close_idle(); }

  Backend backend() const override { return Backend::sqlite; }

  // Group commit. SQLite runs one writer at a time, and in WAL mode each commit appends every page it dirtied as a
  // whole frame, so the cost of a small transaction is mostly its commit. Writers of this process therefore queue:
  // the first becomes the leader, opens one transaction, runs every queued body in it (each inside a savepoint, so a
  // body that fails is undone alone), commits once, and hands each writer its own outcome; a body's changes are
  // durable (as far as synchronous=NORMAL makes them) when its writer returns, exactly as before. Leadership then
  // passes to the next waiting writer. Read-only transactions do not queue.
  Result<void> transact(const std::function<Result<void>(Transaction&)>& body,
                        const TransactionOptions& options) override {
    if (options.read_only) return PooledDatabase::transact(body, options);
    if (t_group_leader == this) {
      return fail(Errc::internal, "a write transaction was opened inside another on the same SQLite database");
    }
    Writer me{&body};
    me.fail_before_commit = failing("storage.commit");  // the caller's thread: the leader may run this body
    std::unique_lock lock(group_mutex_);
    queue_.push_back(&me);
    if (leading_) {
      me.wake.wait(lock, [&] { return me.done || me.lead; });
      if (me.done) return std::move(me.result);
    }
    leading_ = true;
    // Lead until this writer's own outcome is known; then pass the lead on (or end it when nobody waits).
    while (!me.done) {
      std::vector<Writer*> group;
      const std::size_t n = std::min(queue_.size(), k_max_group);
      group.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      lock.unlock();
      run_group(group, options);
      lock.lock();
      for (Writer* w : group) {
        w->done = true;
        if (w != &me) w->wake.notify_one();  // only the writers whose outcome is known wake up
      }
    }
    if (queue_.empty()) {
      leading_ = false;
    } else {
      queue_.front()->lead = true;
      queue_.front()->wake.notify_one();
    }
    return std::move(me.result);
  }

  Result<std::unique_ptr<detail::Connection>> connect() override {
    sqlite3* db = nullptr;
    const int rc =
        sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Error e = sqlite_error(db, rc, fmt::format("open {}", path_));
      sqlite3_close_v2(db);
      return std::unexpected(std::move(e));
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(options_.busy_timeout.count()));
    auto conn = std::make_unique<SqliteConnection>(db, options_.statement_timeout);
    if (auto r = conn->execute_script("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
        !r) {
      return std::unexpected(r.error());
    }
    return std::unique_ptr<detail::Connection>(std::move(conn));
  }

 private:
  struct Writer {
    const std::function<Result<void>(Transaction&)>* body;
    Result<void> result{};
    bool done = false;                // guarded by group_mutex_
    bool lead = false;                // guarded by group_mutex_: this waiting writer is to lead the next group
    bool fail_before_commit = false;  // the failpoint storage.commit was armed on the writer's thread
    std::condition_variable wake;
  };
  static constexpr std::size_t k_max_group = 64;
  static thread_local const SqliteDatabase* t_group_leader;

  // Runs one body inside the group's transaction; an exception is that body's failure, not the group's.
  static Result<void> run_body(Writer& w, Transaction& tx) {
    try {
      return (*w.body)(tx);
    } catch (const std::exception& e) {
      return fail(Errc::internal, std::string("transaction body threw: ") + e.what());
    } catch (...) {
      return fail(Errc::internal, "transaction body threw");
    }
  }

  // Commits `group` in one transaction and sets each writer's result. Called by the leader without group_mutex_;
  // never throws. When SQLite abandons the whole transaction because of one body (an interrupted statement, a full
  // disk), that body fails and the others run again in a new transaction.
  void run_group(std::vector<Writer*> group, const TransactionOptions& options) {
    for (int attempt = 1; !group.empty();) {
      auto acquired = acquire();
      if (!acquired) {
        for (Writer* w : group) w->result = std::unexpected(acquired.error());
        return;
      }
      std::unique_ptr<detail::Connection> conn = std::move(*acquired);
      auto* sqlite = static_cast<SqliteConnection*>(conn.get());
      if (auto begun = sqlite->begin(options); !begun) {
        release(std::move(conn));
        if (begun.error().code == Errc::serialization_failure && attempt++ < std::max(1, options.max_attempts))
          continue;
        for (Writer* w : group) w->result = std::unexpected(begun.error());
        return;
      }
      const SqliteDatabase* outer = t_group_leader;
      t_group_leader = this;
      bool any = false;
      std::optional<std::size_t> culprit;
      for (std::size_t i = 0; i < group.size(); ++i) {
        Writer* w = group[i];
        if (auto sp = sqlite->savepoint(); !sp) {
          w->result = std::unexpected(sp.error());
          continue;
        }
        w->result = run_body(*w, *sqlite);
        if (w->result && w->fail_before_commit) {
          w->result = fail(Errc::unavailable, "failpoint storage.commit: the transaction was not committed");
        }
        if (w->result) w->result = sqlite->release_savepoint();
        if (!sqlite->in_transaction()) {
          if (w->result) w->result = fail(Errc::unavailable, "SQLite rolled the transaction back");
          culprit = i;
          break;
        }
        if (w->result) {
          any = true;
        } else {
          sqlite->rollback_savepoint();
        }
      }
      t_group_leader = outer;
      if (culprit) {
        sqlite->rollback();
        release(std::move(conn));
        group.erase(group.begin() + static_cast<std::ptrdiff_t>(*culprit));  // its result stays its error
        continue;                                                            // everyone else again, without it
      }
      Result<void> committed = any ? sqlite->commit() : Result<void>{};
      if (!any || !committed) sqlite->rollback();
      release(std::move(conn));
      if (!committed) {
        if (committed.error().code == Errc::serialization_failure && attempt++ < std::max(1, options.max_attempts)) {
          continue;  // every body runs again, as PooledDatabase::transact would
        }
        for (Writer* w : group) {
          if (w->result) w->result = std::unexpected(committed.error());
        }
      }
      return;
    }
  }

  DatabaseOptions options_;
  std::string path_;
  std::mutex group_mutex_;
  std::deque<Writer*> queue_;  // guarded by group_mutex_
  bool leading_ = false;       // guarded by group_mutex_: a leader is running groups
};

thread_local const SqliteDatabase* SqliteDatabase::t_group_leader = nullptr;

}  // namespace

Result<std::unique_ptr<Database>> open_sqlite(const DatabaseOptions& options, const std::string& path) {
  // SQLite keeps allocation statistics behind a global mutex by default; Atrium never reads them, and the mutex
  // is taken on every allocation of every connection. Must precede the library's initialisation.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return fail(Errc::invalid_argument, fmt::format("cannot create {}: {}", parent.string(), ec.message()));
  auto db = std::make_unique<SqliteDatabase>(options, path);
  if (auto r = db->ping(); !r) return std::unexpected(r.error());
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace atrium::storage
