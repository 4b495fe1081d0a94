#include <libpq-fe.h>
#include <poll.h>

#include <charconv>
#include <deque>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "core/failpoint.hpp"
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

// Parameters in text format as libpq takes them: C strings, nullptr for NULL. Not movable: `values` points into
// `text`.
struct TextParams {
  std::vector<std::string> text;
  std::vector<const char*> values;
  explicit TextParams(std::span<const Value> params) : text(params.size()), values(params.size(), nullptr) {
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
  }
  TextParams(const TextParams&) = delete;
  TextParams& operator=(const TextParams&) = delete;
};

// One statement of a pipeline.
struct Query {
  const Statement& statement;
  std::span<const Value> params;
};

Errc classify_sqlstate(std::string_view state) {
  if (state == "23505") return Errc::unique_violation;
  if (state == "40001" || state == "40P01") return Errc::serialization_failure;
  if (state == "57014") return Errc::timeout;  // statement_timeout or cancel
  if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return Errc::connection_lost;
  }
  // A bound value the statement refuses (22 data exception, 23 integrity constraint) is the caller's; class 42
  // (syntax, undefined object, insufficient privilege, a row-level security refusal) can only be the server's, as
  // every statement is constant text: internal, never a 400 that shows SQL to a client.
  if (state.starts_with("23") || state.starts_with("22")) return Errc::invalid_argument;
  if (state == "55P03") return Errc::timeout;      // lock_not_available
  if (state == "55006") return Errc::unavailable;  // object_in_use: a tenant store fenced for a move (tenant_fences)
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
    if (!pending_begin_.empty()) return execute_first(statement, params);
    const TextParams text(params);
    const auto* values = text.values.data();
    const int n = static_cast<int>(params.size());
    PGresult* res = nullptr;
    if (statement.name.empty()) {
      const std::string sql(statement.sql);
      res = PQexecParams(conn_, sql.c_str(), n, nullptr, values, nullptr, nullptr, 0);
    } else {
      const std::string name(statement.name);
      if (!prepared_.contains(name)) {
        const std::string sql(statement.sql);
        PGresult* prep = PQprepare(conn_, name.c_str(), sql.c_str(), n, nullptr);
        auto checked = check(prep, name);
        if (!checked) return std::unexpected(checked.error());
        prepared_.insert(name);
      }
      res = PQexecPrepared(conn_, name.c_str(), n, values, nullptr, nullptr, 0);
    }
    auto checked = check(res, statement.name);
    if (!checked) return std::unexpected(checked.error());
    return std::move(*checked);
  }

  // A transaction whose statements are all known (Database::run), after begin(): BEGIN, the statements and COMMIT
  // in one pipeline. A connection the server closed while it sat in the pool is re-established first; once the
  // pipeline is sent, a lost connection is not retried, as it may have committed.
  Result<std::vector<ResultSet>> run_and_commit(std::span<const BoundStatement> statements) {
    std::vector<Query> queries;
    queries.reserve(statements.size());
    for (const BoundStatement& s : statements) {
      if (auto ok = detail::check_no_nul(s.statement, s.params); !ok) return std::unexpected(ok.error());
      queries.push_back({s.statement, s.params});
    }
    if (closed_by_server()) {
      PQreset(conn_);
      prepared_.clear();
      if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return fail(Errc::connection_lost, std::string("reconnect: ") + PQerrorMessage(conn_));
      }
    }
    return pipeline(queries, /*commit=*/true);
  }

 private:
  // The transaction's first statement: BEGIN, (PREPARE,) the statement and a sync in one pipeline. When the
  // connection turns out dead (the server restarted while it sat in the pool) nothing has run yet, so it is
  // re-established once and the pipeline sent again.
  Result<ResultSet> execute_first(const Statement& statement, std::span<const Value> params) {
    const std::string begin = pending_begin_;
    const Query query{statement, params};
    for (int attempt = 0;; ++attempt) {
      auto r = pipeline(std::span<const Query>(&query, 1), /*commit=*/false);
      if (r) return std::move(r->front());
      if (r.error().code != Errc::connection_lost || attempt > 0) return std::unexpected(r.error());
      PQreset(conn_);
      prepared_.clear();
      if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return std::unexpected(r.error());
      }
      broken_ = false;
      pending_begin_ = begin;
    }
  }

  // True when the server closed this idle connection (it restarted, or terminated the backend): what it sent
  // before closing is read, and then the end of the stream.
  bool closed_by_server() {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    for (int reads = 0; reads < 8 && ::poll(&p, 1, 0) == 1; ++reads) {
      if (PQconsumeInput(conn_) == 0) return true;
    }
    return PQstatus(conn_) != CONNECTION_OK;
  }

  // The pending BEGIN, each query (with a PREPARE before a named statement's first use on this connection) and,
  // with `commit`, COMMIT: sent as one pipeline with one sync, then every result read, one round trip. Returns the
  // queries' results, or the first error (later commands were skipped; the transaction is left failed for
  // rollback()).
  Result<std::vector<ResultSet>> pipeline(std::span<const Query> queries, bool commit) {
    enum class Step { begin, prepare, query, commit };
    std::vector<std::pair<Step, std::size_t>> steps;
    std::deque<TextParams> params;
    std::unordered_set<std::string_view> preparing;
    const std::string begin = std::move(pending_begin_);
    pending_begin_.clear();
    bool sent = PQenterPipelineMode(conn_) == 1 &&
                PQsendQueryParams(conn_, begin.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    if (sent) steps.emplace_back(Step::begin, 0);
    for (std::size_t i = 0; sent && i < queries.size(); ++i) {
      const Statement& statement = queries[i].statement;
      const auto* values = params.emplace_back(queries[i].params).values.data();
      const int n = static_cast<int>(queries[i].params.size());
      const std::string name(statement.name);
      const std::string sql(statement.sql);
      if (!name.empty() && !prepared_.contains(name) && preparing.insert(statement.name).second) {
        sent = PQsendPrepare(conn_, name.c_str(), sql.c_str(), n, nullptr) == 1;
        if (sent) steps.emplace_back(Step::prepare, i);
      }
      if (sent) {
        sent = name.empty() ? PQsendQueryParams(conn_, sql.c_str(), n, nullptr, values, nullptr, nullptr, 0) == 1
                            : PQsendQueryPrepared(conn_, name.c_str(), n, values, nullptr, nullptr, 0) == 1;
      }
      if (sent) steps.emplace_back(Step::query, i);
    }
    if (sent && commit) {
      sent = PQsendQueryParams(conn_, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
      if (sent) steps.emplace_back(Step::commit, 0);
    }
    if (sent) sent = PQpipelineSync(conn_) == 1;
    // One result per command (each followed by a null), then the sync marker; all must be read to leave pipeline
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
    const std::string_view first = queries.empty() ? std::string_view("pipeline") : queries.front().statement.name;
    if (!sent || results.size() != steps.size()) {
      for (PGresult* r : results) PQclear(r);
      if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return fail(Errc::connection_lost, std::string(first) + ": " + PQerrorMessage(conn_));
      }
      return fail(Errc::internal, std::string(first) + ": pipeline failed: " + PQerrorMessage(conn_));
    }
    std::vector<ResultSet> out;
    out.reserve(queries.size());
    std::optional<Error> error;
    for (std::size_t k = 0; k < results.size(); ++k) {
      const auto [step, i] = steps[k];
      if (error) {  // skipped by the server after the failure (PGRES_PIPELINE_ABORTED)
        PQclear(results[k]);
        continue;
      }
      const std::string_view context = step == Step::begin    ? std::string_view(begin)
                                       : step == Step::commit ? std::string_view("COMMIT")
                                                              : queries[i].statement.name;
      auto r = check(results[k], context);
      if (!r) {
        error = r.error();
        continue;
      }
      if (step == Step::prepare) prepared_.insert(std::string(queries[i].statement.name));
      if (step == Step::query) out.push_back(std::move(*r));
    }
    if (error) return std::unexpected(std::move(*error));
    return out;
  }

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
      : PooledDatabase(static_cast<std::size_t>(options.pool_size), options.connect_timeout, options.connection_budget),
        options_(options) {}
  ~PostgresDatabase() override { close_idle(); }

  Backend backend() const override { return Backend::postgres; }

  Result<std::vector<ResultSet>> run(std::span<const BoundStatement> statements,
                                     const TransactionOptions& options) override {
    // The failpoint of a commit that fails is transact's to check.
    if (!options.read_only && failing("storage.commit")) return Database::run(statements, options);
    const int max_attempts = std::max(1, options.max_attempts);
    for (int attempt = 1;; ++attempt) {
      auto acquired = acquire();
      if (!acquired) return std::unexpected(acquired.error());
      auto& connection = static_cast<PgConnection&>(**acquired);  // connect() makes nothing else
      Result<std::vector<ResultSet>> out = std::vector<ResultSet>{};
      if (auto begun = connection.begin(options); !begun) {
        out = std::unexpected(begun.error());
      } else {
        out = connection.run_and_commit(statements);
      }
      if (!out) connection.rollback();
      release(std::move(*acquired));
      if (out || out.error().code != Errc::serialization_failure || attempt >= max_attempts) return out;
      // Short, growing pause so the competing transaction can finish (as transact).
      std::this_thread::sleep_for(std::chrono::milliseconds(2 * (attempt + 1)));
    }
  }

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
