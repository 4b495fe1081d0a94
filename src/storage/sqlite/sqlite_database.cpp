#include <sqlite3.h>

#include <filesystem>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

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
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, fmt::format("prepare {}", statement.name)));
    if (stmt == nullptr) return fail(Errc::invalid_argument, fmt::format("statement {} is empty", statement.name));
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
      : PooledDatabase(static_cast<std::size_t>(options.pool_size), options.busy_timeout + options.connect_timeout),
        options_(options),
        path_(std::move(path)) {}
  ~SqliteDatabase() override { close_idle(); }

  Backend backend() const override { return Backend::sqlite; }

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
  DatabaseOptions options_;
  std::string path_;
};

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
