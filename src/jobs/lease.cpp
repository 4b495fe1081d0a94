#include "jobs/lease.hpp"

#include "jobs/sql_queue.hpp"

namespace atrium::jobs {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_take{"leases_take",
                           "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE "
                           "SET holder = excluded.holder, until = excluded.until WHERE leases.holder = excluded.holder "
                           "OR leases.until < $4"};
constexpr Statement k_release_lease{"leases_release", "DELETE FROM leases WHERE name = $1 AND holder = $2"};

}  // namespace

Result<bool> take_lease(storage::Database& db, std::string_view name, const std::string& holder,
                        std::chrono::system_clock::time_point now, std::chrono::milliseconds duration) {
  const std::int64_t at = unix_ms(now);
  auto rs = storage::transact_value<storage::ResultSet>(db, [&](Transaction& tx) {
    return tx.execute(k_take, {Value(std::string(name)), Value(holder),
                               Value(at + static_cast<std::int64_t>(duration.count())), Value(at)});
  });
  if (!rs) return std::unexpected(rs.error());
  return rs->affected_rows > 0;
}

Result<void> release_lease(storage::Database& db, std::string_view name, const std::string& holder) {
  return db.transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(k_release_lease, {Value(std::string(name)), Value(holder)});
    if (!r) return std::unexpected(r.error());
    return {};
  });
}

}  // namespace atrium::jobs
