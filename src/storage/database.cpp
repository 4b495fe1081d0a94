#include "storage/database.hpp"

namespace atrium::storage {

std::string_view backend_name(Backend b) { return b == Backend::sqlite ? "sqlite" : "postgres"; }

std::optional<std::int64_t> ResultSet::int_at(std::size_t row, std::size_t column) const {
  const Value& v = rows.at(row).at(column);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  return std::nullopt;
}

std::optional<std::string> ResultSet::text_at(std::size_t row, std::size_t column) const {
  const Value& v = rows.at(row).at(column);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return std::nullopt;
}

std::optional<bool> ResultSet::bool_at(std::size_t row, std::size_t column) const {
  const Value& v = rows.at(row).at(column);
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i != 0;  // SQLite stores booleans as integers
  return std::nullopt;
}

bool ResultSet::is_null(std::size_t row, std::size_t column) const {
  return std::holds_alternative<std::monostate>(rows.at(row).at(column));
}

Result<std::unique_ptr<Database>> open_database(const DatabaseOptions& options) {
  const std::string& url = options.url;
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) return open_postgres(options);
  std::string path = url.rfind("sqlite:", 0) == 0 ? url.substr(7) : url;
  if (path.rfind("//", 0) == 0) path = path.substr(2);  // sqlite:///abs/path
  if (path.empty()) return fail(Errc::invalid_argument, "database url names no SQLite file");
  return open_sqlite(options, path);
}

Result<std::vector<ResultSet>> execute_all(Transaction& tx, std::span<const BoundStatement> statements) {
  std::vector<ResultSet> out;
  for (const BoundStatement& s : statements) {
    auto rs = tx.execute(s.statement, std::span<const Value>(s.params));
    if (!rs) return std::unexpected(rs.error());
    out.push_back(std::move(*rs));
  }
  return out;
}

Result<std::vector<ResultSet>> Database::run(std::span<const BoundStatement> statements,
                                             const TransactionOptions& options) {
  return transact_value<std::vector<ResultSet>>(
      *this, [&](Transaction& tx) { return execute_all(tx, statements); }, options);
}

PoolStats& PoolStats::operator+=(const PoolStats& other) {
  in_use += other.in_use;
  idle += other.idle;
  max += other.max;
  waiting += other.waiting;
  return *this;
}

}  // namespace atrium::storage
