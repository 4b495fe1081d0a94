#include "tenancy/outbox_marks.hpp"

#include <limits>

#include "tenancy/recent_writes.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::tenancy {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

// A concurrent writer's later mark is never moved back.
constexpr Statement k_mark{"outbox_marks_mark",
                           "INSERT INTO outbox_marks (tenant_id, marked_at) VALUES ($1, $2) ON CONFLICT (tenant_id) DO "
                           "UPDATE SET marked_at = CASE WHEN excluded.marked_at > outbox_marks.marked_at THEN "
                           "excluded.marked_at ELSE outbox_marks.marked_at END"};
constexpr Statement k_list_pg{"outbox_marks_list_pg",
                              "SELECT tenant_id::text, marked_at FROM outbox_marks WHERE tenant_id > $1::uuid ORDER BY "
                              "tenant_id LIMIT $2"};
constexpr Statement k_list_sqlite{
    "outbox_marks_list_sqlite",
    "SELECT tenant_id, marked_at FROM outbox_marks WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2"};
constexpr Statement k_clear{"outbox_marks_clear",
                            "DELETE FROM outbox_marks WHERE tenant_id = $1 AND marked_at = $2 AND marked_at < $3"};
constexpr std::string_view k_first_id = "00000000-0000-0000-0000-000000000000";

std::int64_t ms(Instant t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

struct OutboxMarks::Impl {
  storage::Database& app;
  storage::Database& owner;
  const Clock& clock;
  RecentWrites written{k_refresh};  // the marks this process wrote
};

OutboxMarks::OutboxMarks(storage::Database& app, storage::Database& owner, const Clock& clock)
    : impl_(new Impl{app, owner, clock}) {}

OutboxMarks::~OutboxMarks() = default;

Result<void> OutboxMarks::ensure(const std::string& tenant_id) {
  Impl& s = *impl_;
  const Instant now = s.clock.now();
  if (!s.written.due(tenant_id, now)) return {};
  auto marked = s.app.transact([&](Transaction& tx) -> Result<void> {
    if (auto r = scope_to_tenant(tx, tenant_id); !r) return r;
    if (auto r = tx.execute(k_mark, {Value(tenant_id), Value(ms(now))}); !r) return std::unexpected(r.error());
    return {};
  });
  if (!marked) return marked;
  s.written.written(tenant_id, now);
  return {};
}

Result<std::vector<OutboxMark>> OutboxMarks::list(const std::string& after_tenant_id, int limit) {
  Impl& s = *impl_;
  std::vector<OutboxMark> out;
  auto r = transact_platform(
      s.owner,
      [&](Transaction& tx) -> Result<void> {
        const Statement& list = tx.backend() == storage::Backend::postgres ? k_list_pg : k_list_sqlite;
        auto rows = tx.execute(list, {Value(after_tenant_id.empty() ? std::string(k_first_id) : after_tenant_id),
                                      Value(std::int64_t{limit})});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          out.push_back({rows->text_at(i, 0).value_or(""), rows->int_at(i, 1).value_or(0)});
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<bool> OutboxMarks::clear(const OutboxMark& mark, bool gone) {
  Impl& s = *impl_;
  const std::int64_t before = gone ? std::numeric_limits<std::int64_t>::max() : ms(s.clock.now() - k_hold);
  bool cleared = false;
  auto r = transact_platform(s.owner, [&](Transaction& tx) -> Result<void> {
    auto rs = tx.execute(k_clear, {Value(mark.tenant_id), Value(mark.marked_at_ms), Value(before)});
    if (!rs) return std::unexpected(rs.error());
    cleared = rs->affected_rows > 0;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  if (cleared) {
    s.written.forget(mark.tenant_id);  // this process writes the mark again at the tenant's next change
  }
  return cleared;
}

}  // namespace atrium::tenancy
