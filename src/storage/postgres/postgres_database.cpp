#include <libpq-fe.h>

#include <charconv>
#include <unordered_set>

#include <fmt/format.h>

#include "storage/pooled_database.hpp"

namespace atrium::storage {

namespace {

// Type OIDs from pg_type.h (stable across versions).
constexpr Oid k_bool = 16;
constexpr Oid k_int8 = 20;
constexpr Oid k_int2 = 21;
constexpr Oid k_int4 = 23;
constexpr Oid k_oid = 26;
constexpr Oid k_float4 = 700;
constexpr Oid k_float8 = 701;
constexpr Oid k_timestamp = 1114;
constexpr Oid k_timestamptz = 1184;

// "2026-11-27 10:15:30.123456+00" (ISO DateStyle, TimeZone UTC, set per connection) -> RFC 3339 with
// milliseconds, the form SQLite stores, so both backends hand out identical text.
std::string rfc3339_from_pg(std::string_view pg) {
  if (pg.size() < 19) return std::string(pg);
  std::string out(pg.substr(0, 10));
  out += 'T';
  out += pg.substr(11, 8);
  std::string fraction = "000";
  if (pg.size() > 19 && pg[19] == '.') {
    std::size_t i = 20;
    std::string digits;
    while (i < pg.size() && pg[i] >= '0' && pg[i] <= '9') digits += pg[i++];
    digits.resize(3, '0');
    fraction = digits.substr(0, 3);
  }
  out += '.';
  out += fraction;
  out += 'Z';
  return out;
}

Errc classify_sqlstate(std::string_view state) {
  if (state == "23505") return Errc::unique_violation;
  if (state == "40001" || state == "40P01") return Errc::serialization_failure;
  if (state == "57014") return Errc::timeout;  // statement_timeout or cancel
  if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return Errc::connection_lost;
  }
  if (state.starts_with("23") || state.starts_with("22") || state.starts_with("42")) return Errc::invalid_argument;
  if (state == "55P03") return Errc::timeout;  // lock_not_available
  return Errc::internal;
}

class PgConnection final : public detail::Connection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }

  Backend backend() const override { return Backend::postgres; }
  bool broken() const override { return broken_ || PQstatus(conn_) != CONNECTION_OK; }

  // BEGIN is not sent on its own: it travels with the transaction's first statement in one pipeline (libpq
  // pipeline mode), which saves a network round trip on every transaction.
  Result<void> begin(const TransactionOptions& options) override {
    if (PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      return fail(Errc::connection_lost, "connection is closed");
    }
    pending_begin_ = "BEGIN";
    if (options.isolation == Isolation::serializable) {
      pending_begin_ =
          options.read_only ? "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY" : "BEGIN ISOLATION LEVEL SERIALIZABLE";
    } else if (options.read_only) {
      pending_begin_ = "BEGIN READ ONLY";
    }
    return {};
  }
  Result<void> commit() override {
    if (!pending_begin_.empty()) {  // nothing was executed: there is no transaction to commit
      pending_begin_.clear();
      return {};
    }
    return command("COMMIT");
  }
  void rollback() override {
    pending_begin_.clear();
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) (void)command("ROLLBACK");
  }

  Result<void> execute_script(std::string_view sql) override {
    if (!pending_begin_.empty()) {
      const std::string begin = std::move(pending_begin_);
      pending_begin_.clear();
      if (auto r = command(begin.c_str()); !r) return r;
    }
    return command(std::string(sql).c_str());
  }

  Result<ResultSet> execute(const Statement& statement, std::span<const Value> params) override {
    // Parameters travel in text format as C strings, so a NUL byte would silently cut the value short there (and
    // PostgreSQL text cannot hold NUL at all): refused before anything is sent.
    if (auto ok = detail::check_no_nul(statement, params); !ok) return std::unexpected(ok.error());
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      if (std::holds_alternative<std::monostate>(v)) continue;
      if (const auto* b = std::get_if<bool>(&v))
        text[i] = *b ? "true" : "false";
      else if (const auto* n = std::get_if<std::int64_t>(&v))
        text[i] = std::to_string(*n);
      else if (const auto* d = std::get_if<double>(&v))
        text[i] = fmt::format("{}", *d);
      else
        text[i] = std::get<std::string>(v);
      values[i] = text[i].c_str();
    }
    const int n = static_cast<int>(params.size());
    if (!pending_begin_.empty()) return execute_first(statement, n, values.data());
    PGresult* res = nullptr;
    if (statement.name.empty()) {
      const std::string sql(statement.sql);
      res = PQexecParams(conn_, sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    } else {
      const std::string name(statement.name);
      if (!prepared_.contains(name)) {
        const std::string sql(statement.sql);
        PGresult* prep = PQprepare(conn_, name.c_str(), sql.c_str(), n, nullptr);
        auto checked = check(prep, name);
        if (!checked) return std::unexpected(checked.error());
        prepared_.insert(name);
      }
      res = PQexecPrepared(conn_, name.c_str(), n, values.data(), nullptr, nullptr, 0);
    }
    auto checked = check(res, statement.name);
    if (!checked) return std::unexpected(checked.error());
    return std::move(*checked);
  }

 private:
  // The transaction's first statement: BEGIN, (PREPARE,) the statement and a sync in one pipeline. When the
  // connection turns out dead (the server restarted while it sat in the pool) nothing has run yet, so it is
  // re-established once and the pipeline sent again.
  Result<ResultSet> execute_first(const Statement& statement, int n, const char* const* values) {
    for (int attempt = 0;; ++attempt) {
      auto r = pipeline_first(statement, n, values);
      if (r || r.error().code != Errc::connection_lost || attempt > 0) return r;
      PQreset(conn_);
      prepared_.clear();
      if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return r;
      }
      broken_ = false;
    }
  }

  Result<ResultSet> pipeline_first(const Statement& statement, int n, const char* const* values) {
    const std::string name(statement.name);
    const std::string sql(statement.sql);
    const bool prepare = !name.empty() && !prepared_.contains(name);
    bool sent = PQenterPipelineMode(conn_) == 1 &&
                PQsendQueryParams(conn_, pending_begin_.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    if (sent && prepare) sent = PQsendPrepare(conn_, name.c_str(), sql.c_str(), n, nullptr) == 1;
    if (sent) {
      sent = name.empty() ? PQsendQueryParams(conn_, sql.c_str(), n, nullptr, values, nullptr, nullptr, 0) == 1
                          : PQsendQueryPrepared(conn_, name.c_str(), n, values, nullptr, nullptr, 0) == 1;
    }
    if (sent) sent = PQpipelineSync(conn_) == 1;
    // One result per query (each followed by a null), then the sync marker; all must be read to leave pipeline
    // mode, whatever failed.
    std::vector<PGresult*> results;
    if (sent) {
      while (true) {
        PGresult* res = PQgetResult(conn_);
        if (res == nullptr) {
          if (PQstatus(conn_) != CONNECTION_OK) break;
          continue;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
          PQclear(res);
          break;
        }
        results.push_back(res);
      }
    }
    PQexitPipelineMode(conn_);
    const std::size_t expected = prepare ? 3 : 2;
    if (!sent || results.size() != expected) {
      for (PGresult* r : results) PQclear(r);
      if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return fail(Errc::connection_lost, std::string(statement.name) + ": " + PQerrorMessage(conn_));
      }
      return fail(Errc::internal, std::string(statement.name) + ": pipeline failed: " + PQerrorMessage(conn_));
    }
    auto begun = check(results[0], pending_begin_);
    pending_begin_.clear();
    if (!begun) {
      for (std::size_t i = 1; i < results.size(); ++i) PQclear(results[i]);
      return std::unexpected(begun.error());
    }
    if (prepare) {
      auto prepared = check(results[1], name);
      if (!prepared) {
        PQclear(results[2]);
        return std::unexpected(prepared.error());
      }
      prepared_.insert(name);
    }
    return check(results.back(), statement.name);
  }

 private:
  Result<void> command(const char* sql) {
    auto r = check(PQexec(conn_, sql), sql);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // Converts a result (taking ownership) into rows or a typed error.
  Result<ResultSet> check(PGresult* res, std::string_view context) {
    struct Clear {
      PGresult* r;
      ~Clear() { PQclear(r); }
    } clear{res};
    const ExecStatusType status = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      ResultSet out;
      const int fields = PQnfields(res);
      const int rows = PQntuples(res);
      for (int f = 0; f < fields; ++f) out.columns.emplace_back(PQfname(res, f));
      out.rows.reserve(static_cast<std::size_t>(rows));
      for (int r = 0; r < rows; ++r) {
        std::vector<Value> row;
        row.reserve(static_cast<std::size_t>(fields));
        for (int f = 0; f < fields; ++f) row.push_back(convert(res, r, f));
        out.rows.push_back(std::move(row));
      }
      const char* affected = PQcmdTuples(res);
      if (affected != nullptr && affected[0] != '\0') out.affected_rows = std::atoll(affected);
      return out;
    }
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string message = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    Errc code = state != nullptr ? classify_sqlstate(state) : Errc::internal;
    if (PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      code = Errc::connection_lost;
    }
    return fail(code, fmt::format("{}: {}{}", context, state != nullptr ? std::string(state) + " " : "", message));
  }

  static Value convert(PGresult* res, int row, int field) {
    if (PQgetisnull(res, row, field)) return std::monostate{};
    const char* text = PQgetvalue(res, row, field);
    const int length = PQgetlength(res, row, field);
    switch (PQftype(res, field)) {
      case k_bool: return text[0] == 't';
      case k_int2:
      case k_int4:
      case k_int8:
      case k_oid: {
        std::int64_t v = 0;
        std::from_chars(text, text + length, v);
        return v;
      }
      case k_float4:
      case k_float8: {
        double v = 0;
        std::from_chars(text, text + length, v);
        return v;
      }
      case k_timestamp:
      case k_timestamptz: return rfc3339_from_pg(std::string_view(text, static_cast<std::size_t>(length)));
      default: return std::string(text, static_cast<std::size_t>(length));
    }
  }

  PGconn* conn_;
  bool broken_ = false;
  std::string pending_begin_;  // set by begin() until the first statement carries it
  std::unordered_set<std::string> prepared_;
};

class PostgresDatabase final : public detail::PooledDatabase {
 public:
  explicit PostgresDatabase(const DatabaseOptions& options)
      : PooledDatabase(static_cast<std::size_t>(options.pool_size), options.connect_timeout), options_(options) {}
  ~PostgresDatabase() override { close_idle(); }

  Backend backend() const override { return Backend::postgres; }

  Result<std::unique_ptr<detail::Connection>> connect() override {
    const std::string timeout = std::to_string(std::max<std::int64_t>(1, options_.connect_timeout.count() / 1000));
    const std::string server_options =
        fmt::format("-c statement_timeout={} -c TimeZone=UTC -c DateStyle=ISO", options_.statement_timeout.count());
    const char* keywords[] = {"dbname", "connect_timeout", "options", "application_name", nullptr};
    const char* values[] = {options_.url.c_str(), timeout.c_str(), server_options.c_str(), "atrium", nullptr};
    PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn == nullptr) return fail(Errc::unavailable, "PostgreSQL: out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn);
      while (!message.empty() && message.back() == '\n') message.pop_back();
      PQfinish(conn);
      return fail(Errc::unavailable, "PostgreSQL connect: " + message);
    }
    return std::unique_ptr<detail::Connection>(std::make_unique<PgConnection>(conn));
  }

 private:
  DatabaseOptions options_;
};

}  // namespace

Result<std::unique_ptr<Database>> open_postgres(const DatabaseOptions& options) {
  auto db = std::make_unique<PostgresDatabase>(options);
  if (auto r = db->ping(); !r) return std::unexpected(r.error());
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace atrium::storage
