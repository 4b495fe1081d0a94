#include "tenancy/store_writes.hpp"

#include "core/time.hpp"
#include "tenancy/recent_writes.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::tenancy {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

// A concurrent writer's later time is never moved back.
constexpr Statement k_note{
    "tenant_writes_note",
    "INSERT INTO tenant_writes (tenant_id, written_at) VALUES ($1, $2) ON CONFLICT (tenant_id) DO "
    "UPDATE SET written_at = CASE WHEN excluded.written_at > tenant_writes.written_at THEN "
    "excluded.written_at ELSE tenant_writes.written_at END"};
constexpr Statement k_note_pg{
    "tenant_writes_note_pg",
    "INSERT INTO public.tenant_writes AS w (tenant_id, written_at) VALUES ($1, $2) ON CONFLICT "
    "(tenant_id) DO UPDATE SET written_at = GREATEST(w.written_at, excluded.written_at)"};
constexpr Statement k_since_pg{"tenant_writes_since_pg",
                               "SELECT tenant_id::text FROM tenant_writes WHERE written_at >= $1 AND tenant_id > "
                               "$2::uuid ORDER BY tenant_id LIMIT $3"};
constexpr Statement k_since_sqlite{"tenant_writes_since_sqlite",
                                   "SELECT tenant_id FROM tenant_writes WHERE written_at >= $1 AND tenant_id > $2 "
                                   "ORDER BY tenant_id LIMIT $3"};
constexpr std::string_view k_before_any_tenant = "00000000-0000-0000-0000-000000000000";

}  // namespace

struct StoreWrites::Impl {
  storage::Database& app;
  storage::Database& owner;
  const Clock& clock;
  RecentWrites written{k_refresh};  // the times this process wrote
};

StoreWrites::StoreWrites(storage::Database& app, storage::Database& owner, const Clock& clock)
    : impl_(new Impl{app, owner, clock}) {}

StoreWrites::~StoreWrites() = default;

bool StoreWrites::due(const std::string& tenant_id, Instant& now) {
  now = impl_->clock.now();
  return impl_->written.due(tenant_id, now);
}

storage::BoundStatement StoreWrites::statement(const std::string& tenant_id, Instant now,
                                               storage::Backend backend) const {
  return {backend == storage::Backend::postgres ? k_note_pg : k_note, {Value(tenant_id), Value(unix_ms(now))}};
}

void StoreWrites::noted(const std::string& tenant_id, Instant now) { impl_->written.written(tenant_id, now); }

Result<void> StoreWrites::note(const std::string& tenant_id) {
  Impl& s = *impl_;
  Instant now;
  if (!due(tenant_id, now)) return {};
  auto written = s.app.transact([&](Transaction& tx) -> Result<void> {
    if (auto r = scope_to_tenant(tx, tenant_id); !r) return r;
    const auto bound = statement(tenant_id, now, tx.backend());
    if (auto r = tx.execute(bound.statement, bound.params); !r) return std::unexpected(r.error());
    return {};
  });
  if (!written) return written;
  noted(tenant_id, now);
  return {};
}

Result<std::vector<std::string>> StoreWrites::written_since(Instant since, const std::string& after_tenant_id,
                                                            int limit) {
  Impl& s = *impl_;
  std::vector<std::string> out;
  auto r = transact_platform(
      s.owner,
      [&](Transaction& tx) -> Result<void> {
        out.clear();
        const Statement& list = tx.backend() == storage::Backend::postgres ? k_since_pg : k_since_sqlite;
        auto rows =
            tx.execute(list, {Value(unix_ms(since)),
                              Value(after_tenant_id.empty() ? std::string(k_before_any_tenant) : after_tenant_id),
                              Value(std::int64_t{limit})});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(rows->text_at(i, 0).value_or(""));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace atrium::tenancy
