#include "tenancy/tenant_store.hpp"

#include <fmt/format.h>

#include "core/ids.hpp"

namespace atrium::tenancy {

namespace {

using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_insert{
    "tenants_insert",
    "INSERT INTO tenants (id, slug, name, status, isolation, plan, quotas, created_at, updated_at) "
    "VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $7)"};
constexpr Statement k_by_id{
    "tenants_by_id",
    "SELECT id, slug, name, status, isolation, plan, quotas, created_at, updated_at, settings, move_state, "
    "move_level FROM tenants WHERE id = $1"};
constexpr Statement k_by_slug{
    "tenants_by_slug",
    "SELECT id, slug, name, status, isolation, plan, quotas, created_at, updated_at, settings, move_state, "
    "move_level FROM tenants WHERE slug = $1"};
constexpr Statement k_page{
    "tenants_page",
    "SELECT id, slug, name, status, isolation, plan, quotas, created_at, updated_at, settings, move_state, "
    "move_level FROM tenants WHERE id > $1 ORDER BY id LIMIT $2"};
constexpr Statement k_page_behind{
    "tenants_page_behind",
    "SELECT id, slug, name, status, isolation, plan, quotas, created_at, updated_at, settings, move_state, "
    "move_level FROM tenants "
    "WHERE isolation <> 'shared' AND status <> 'deleted' AND schema_version < $3 AND id > $1 ORDER BY id LIMIT $2"};
constexpr Statement k_record_schema_version{
    "tenants_record_schema_version", "UPDATE tenants SET schema_version = $2 WHERE id = $1 AND schema_version < $2"};
constexpr Statement k_update{
    "tenants_update",
    "UPDATE tenants SET name = $2, plan = $3, quotas = $4, status = $5, updated_at = $6, settings = $7, "
    "deleted_at = CASE WHEN $5 = 'deleted' THEN COALESCE(deleted_at, $6) ELSE NULL END WHERE id = $1"};
constexpr Statement k_update_pg{
    "tenants_update_pg",
    "UPDATE tenants SET name = $2, plan = $3, quotas = $4::jsonb, status = $5, updated_at = $6::timestamptz, "
    "settings = $7::jsonb, "
    "deleted_at = CASE WHEN $5 = 'deleted' THEN COALESCE(deleted_at, $6::timestamptz) ELSE NULL END WHERE id = $1"};
// The plan a tenant's live subscription names (billing keeps it so, in the subscription's transaction).
constexpr Statement k_follow_plan{"tenants_follow_plan",
                                  "UPDATE tenants SET plan = $2, updated_at = $3 WHERE id = $1 AND plan <> $2"};
constexpr Statement k_follow_plan_pg{
    "tenants_follow_plan_pg",
    "UPDATE tenants SET plan = $2, updated_at = $3::timestamptz WHERE id = $1 AND plan <> $2"};
constexpr Statement k_mark_purged{"tenants_mark_purged",
                                  "UPDATE tenants SET purged_at = $2 WHERE id = $1 AND status = 'deleted'"};
constexpr Statement k_mark_purged_pg{"tenants_mark_purged_pg",
                                     "UPDATE tenants SET purged_at = $2::timestamptz WHERE id = $1 AND "
                                     "status = 'deleted'"};
// A tenant import: a purged tenant's row (which its kept bookkeeping records still name) takes the restored values.
constexpr Statement k_restore_state{
    "tenants_restore_state", "SELECT status, CASE WHEN purged_at IS NULL THEN 0 ELSE 1 END FROM tenants WHERE id = $1"};
constexpr Statement k_restore_over{
    "tenants_restore_over",
    "UPDATE tenants SET slug = $2, name = $3, status = $4, isolation = $5, plan = $6, quotas = $7, settings = $8, "
    "created_at = $9, updated_at = $10, deleted_at = NULL, purged_at = NULL, schema_version = 0, move_state = '', "
    "move_level = '' WHERE id = $1 AND purged_at IS NOT NULL"};
constexpr Statement k_restore_insert{
    "tenants_restore_insert",
    "INSERT INTO tenants (id, slug, name, status, isolation, plan, quotas, settings, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"};
constexpr Statement k_release_restored{"tenants_release_restored",
                                       "UPDATE tenants SET status = $2 WHERE id = $1 AND status = 'deleted' AND "
                                       "deleted_at IS NULL AND purged_at IS NULL"};
// A move between isolation levels (tenant.hpp, MoveState): each step a compare-and-set on the step before.
constexpr Statement k_set_move{"tenants_set_move",
                               "UPDATE tenants SET move_state = $3, move_level = $4 WHERE id = $1 AND move_state = $2"};
constexpr Statement k_switch_level{"tenants_switch_level",
                                   "UPDATE tenants SET isolation = $2, move_state = 'switched', move_level = $3, "
                                   "updated_at = $4 WHERE id = $1 AND move_state = 'frozen' AND move_level = $2"};
constexpr Statement k_switch_level_pg{
    "tenants_switch_level_pg",
    "UPDATE tenants SET isolation = $2, move_state = 'switched', move_level = $3, updated_at = $4::timestamptz "
    "WHERE id = $1 AND move_state = 'frozen' AND move_level = $2"};
constexpr Statement k_counts{"tenants_counts",
                             "SELECT status, isolation, COUNT(*) FROM tenants GROUP BY status, isolation"};
constexpr Statement k_members{"tenants_members",
                              "SELECT COUNT(*) FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE "
                              "t.status <> 'deleted'"};
// PostgreSQL: memberships' RLS shows the serving role one tenant's rows; the count of all goes through a function
// owned by the owner (migration 0013).
constexpr Statement k_members_pg{"tenants_members_pg", "SELECT atrium_membership_count()"};
constexpr Statement k_live{"tenants_live", "SELECT COUNT(*) FROM tenants WHERE status <> 'deleted'"};

Result<Tenant> from_row(const ResultSet& rs, std::size_t row) {
  Tenant t;
  t.id = rs.text_at(row, 0).value_or("");
  t.slug = rs.text_at(row, 1).value_or("");
  t.name = rs.text_at(row, 2).value_or("");
  auto status = parse_status(rs.text_at(row, 3).value_or(""));
  auto isolation = parse_isolation(rs.text_at(row, 4).value_or(""));
  if (!status || !isolation) return fail(Errc::internal, "tenant " + t.id + " has an unknown status or isolation");
  t.status = *status;
  t.isolation = *isolation;
  t.plan = rs.text_at(row, 5).value_or("");
  std::string error;
  t.quotas = parse_json(rs.text_at(row, 6).value_or("{}"), {}, &error).value_or(Json::object());
  t.created_at = rs.text_at(row, 7).value_or("");
  t.updated_at = rs.text_at(row, 8).value_or("");
  t.settings = settings_from_json(parse_json(rs.text_at(row, 9).value_or("{}"), {}, &error).value_or(Json::object()));
  auto move = parse_move_state(rs.text_at(row, 10).value_or(""));
  if (!move) return fail(Errc::internal, "tenant " + t.id + " has an unknown move state");
  t.move_state = *move;
  t.move_level = parse_isolation(rs.text_at(row, 11).value_or("")).value_or(Isolation::shared);
  return t;
}

Result<Tenant> one(Result<ResultSet> rs, std::string_view what) {
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, std::string("no tenant ") + std::string(what));
  return from_row(*rs, 0);
}

}  // namespace

Result<Tenant> TenantStore::create(const NewTenant& request, const audit::Recorder& audit) {
  if (id_shaped(request.slug)) {
    // Ids and slugs have disjoint forms, so no text names one tenant by id and another by slug.
    return fail(Errc::invalid_argument, "slug must not have the form of a tenant id (a UUID, with or without dashes)");
  }
  if (!valid_slug(request.slug)) {
    return fail(Errc::invalid_argument, "slug must be a DNS label: 1-63 characters of a-z, 0-9 and '-'");
  }
  if (request.name.empty() || request.name.size() > 200) {
    return fail(Errc::invalid_argument, "name must be 1-200 characters");
  }
  if (!request.quotas.is_object()) return fail(Errc::invalid_argument, "quotas must be an object");
  const std::string id = new_uuid_v7(clock_);
  const std::string now = format_rfc3339(clock_.now());
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    auto inserted = tx.execute(k_insert, {Value(id), Value(request.slug), Value(request.name),
                                          Value(std::string(isolation_name(request.isolation))), Value(request.plan),
                                          Value(request.quotas.dump()), Value(now)});
    if (!inserted) return std::unexpected(inserted.error());
    audit::Event event{.action = "tenant.created", .resource_type = "tenant", .resource_id = id, .tenant_id = id};
    event.changes = audit::created_changes({{"slug", request.slug},
                                            {"name", request.name},
                                            {"isolation", std::string(isolation_name(request.isolation))},
                                            {"plan", request.plan},
                                            {"quotas", request.quotas}});
    return audit::record(audit, tx, event);
  });
  if (!r) {
    if (r.error().code == Errc::unique_violation) return fail(Errc::unique_violation, "slug is taken");
    return std::unexpected(r.error());
  }
  return get(id);
}

Result<Tenant> TenantStore::get(Transaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no tenant " + id);
  return one(tx.execute(k_by_id, {Value(id)}), id);
}

Result<bool> TenantStore::follow_plan(Transaction& tx, const std::string& id, const std::string& plan,
                                      std::chrono::system_clock::time_point now) {
  auto r = tx.execute(tx.backend() == storage::Backend::postgres ? k_follow_plan_pg : k_follow_plan,
                      {Value(id), Value(plan), Value(format_rfc3339(now))});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows > 0;
}

Result<Tenant> TenantStore::get(const std::string& id) {
  return storage::transact_value<Tenant>(db_, [&](Transaction& tx) { return get(tx, id); }, {.read_only = true});
}

Result<Tenant> TenantStore::get_by_slug(const std::string& slug) {
  // valid_slug refuses id-shaped text, so a slug stored before that rule (one with the form of an id) is never
  // matched: such a tenant is reachable by its id only.
  if (!valid_slug(slug)) return fail(Errc::not_found, "no tenant " + slug);
  return storage::transact_value<Tenant>(
      db_, [&](Transaction& tx) { return one(tx.execute(k_by_slug, {Value(slug)}), slug); }, {.read_only = true});
}

namespace {

// One page of tenants by id after `after`: `statement` takes the cursor as $1, the limit (plus one, to know whether
// more follow) as $2, and `extra` from $3 on.
Result<TenantPage> tenant_page(storage::Database& db, const Statement& statement,
                               const std::optional<std::string>& after, int limit, std::vector<Value> extra = {}) {
  if (after && !is_uuid(*after)) return fail(Errc::invalid_argument, "cursor is not valid");
  std::vector<Value> params{Value(after.value_or("00000000-0000-0000-0000-000000000000")),
                            Value(std::int64_t{limit + 1})};
  for (auto& v : extra) params.push_back(std::move(v));
  const auto read = [&](Transaction& tx) -> Result<TenantPage> {
    auto rs = tx.execute(statement, params);
    if (!rs) return std::unexpected(rs.error());
    TenantPage page;
    for (std::size_t i = 0; i < rs->rows.size() && static_cast<int>(i) < limit; ++i) {
      auto t = from_row(*rs, i);
      if (!t) return std::unexpected(t.error());
      page.tenants.push_back(std::move(*t));
    }
    if (static_cast<int>(rs->rows.size()) > limit && !page.tenants.empty()) page.next_cursor = page.tenants.back().id;
    return page;
  };
  return storage::transact_value<TenantPage>(db, read, {.read_only = true});
}

}  // namespace

Result<TenantPage> TenantStore::list(const std::optional<std::string>& after, int limit) {
  return tenant_page(db_, k_page, after, limit);
}

Result<TenantPage> TenantStore::list_behind(int version, const std::optional<std::string>& after, int limit) {
  return tenant_page(db_, k_page_behind, after, limit, {Value(std::int64_t{version})});
}

Result<void> TenantStore::record_schema_version(Transaction& tx, const std::string& id, int version) {
  if (auto r = tx.execute(k_record_schema_version, {Value(id), Value(std::int64_t{version})}); !r) {
    return std::unexpected(r.error());
  }
  return {};
}

Result<Tenant> TenantStore::update(const std::string& id, const TenantPatch& patch, const audit::Recorder& audit) {
  if (patch.name && (patch.name->empty() || patch.name->size() > 200)) {
    return fail(Errc::invalid_argument, "name must be 1-200 characters");
  }
  if (patch.quotas && !patch.quotas->is_object()) return fail(Errc::invalid_argument, "quotas must be an object");
  return storage::transact_value<Tenant>(db_, [&](Transaction& tx) -> Result<Tenant> {
    auto current = get(tx, id);
    if (!current) return current;
    const Tenant before = *current;
    Tenant t = std::move(*current);
    if (t.status == TenantStatus::deleted && patch.status && *patch.status != TenantStatus::deleted) {
      return fail(Errc::conflict, "a deleted tenant cannot be reactivated");
    }
    if (patch.name) t.name = *patch.name;
    if (patch.plan) t.plan = *patch.plan;
    if (patch.quotas) t.quotas = *patch.quotas;
    if (patch.status) t.status = *patch.status;
    if (patch.settings) t.settings = *patch.settings;
    const std::string now = format_rfc3339(clock_.now());
    const Statement& sql = tx.backend() == storage::Backend::postgres ? k_update_pg : k_update;
    auto r =
        tx.execute(sql, {Value(id), Value(t.name), Value(t.plan), Value(t.quotas.dump()),
                         Value(std::string(status_name(t.status))), Value(now), Value(to_json(t.settings).dump())});
    if (!r) return std::unexpected(r.error());
    // The stored id, not the caller's spelling of it (PostgreSQL matches UUIDs in any case).
    audit::Event event{
        .action = "tenant.updated", .resource_type = "tenant", .resource_id = before.id, .tenant_id = before.id};
    if (before.status != t.status) {
      event.action = t.status == TenantStatus::deleted     ? "tenant.deleted"
                     : t.status == TenantStatus::suspended ? "tenant.suspended"
                                                           : "tenant.reactivated";
    }
    audit::add_change(event.changes, "name", before.name, t.name);
    audit::add_change(event.changes, "plan", before.plan, t.plan);
    audit::add_change(event.changes, "quotas", before.quotas, t.quotas);
    audit::add_change(event.changes, "settings", to_json(before.settings), to_json(t.settings));
    audit::add_change(event.changes, "status", std::string(status_name(before.status)),
                      std::string(status_name(t.status)));
    if (auto a = audit::record(audit, tx, event); !a) return std::unexpected(a.error());
    return get(tx, id);
  });
}

Result<void> TenantStore::mark_purged(const std::string& id, const audit::Recorder& audit) {
  return db_.transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(tx.backend() == storage::Backend::postgres ? k_mark_purged_pg : k_mark_purged,
                        {Value(id), Value(format_rfc3339(clock_.now()))});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) return fail(Errc::not_found, "no tenant " + id);
    audit::Event event{.action = "tenant.purged", .resource_type = "tenant", .resource_id = id, .tenant_id = id};
    audit::add_change(event.changes, "data", "present", "purged");
    return audit::record(audit, tx, event);
  });
}

Result<Tenant> TenantStore::restore(const Tenant& t, const Json& changes, const audit::Recorder& audit) {
  if (!is_uuid(t.id) || !valid_slug(t.slug) || id_shaped(t.slug) || t.name.empty()) {
    return fail(Errc::invalid_argument, "the tenant to restore is malformed");
  }
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    auto state = tx.execute(k_restore_state, {Value(t.id)});
    if (!state) return std::unexpected(state.error());
    if (!state->empty() && state->int_at(0, 1).value_or(0) == 0) {
      return fail(Errc::conflict, "tenant " + t.id + " exists here; only a purged tenant can be restored over");
    }
    const Value row[] = {Value(t.id),
                         Value(t.slug),
                         Value(t.name),
                         Value(std::string(status_name(TenantStatus::deleted))),  // until release_restored()
                         Value(std::string(isolation_name(t.isolation))),
                         Value(t.plan),
                         Value(t.quotas.dump()),
                         Value(to_json(t.settings).dump()),
                         Value(t.created_at),
                         Value(format_rfc3339(clock_.now()))};
    auto written = tx.execute(state->empty() ? k_restore_insert : k_restore_over, row);
    if (!written) return std::unexpected(written.error());
    audit::Event event{.action = "tenant.imported", .resource_type = "tenant", .resource_id = t.id, .tenant_id = t.id};
    event.changes = changes;
    return audit::record(audit, tx, event);
  });
  if (!r) {
    if (r.error().code == Errc::unique_violation) return fail(Errc::unique_violation, "slug " + t.slug + " is taken");
    return std::unexpected(r.error());
  }
  return get(t.id);
}

Result<Tenant> TenantStore::release_restored(const std::string& id, TenantStatus status) {
  return storage::transact_value<Tenant>(db_, [&](Transaction& tx) -> Result<Tenant> {
    auto r = tx.execute(k_release_restored, {Value(id), Value(std::string(status_name(status)))});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) return fail(Errc::conflict, "tenant " + id + " is not held back by an import");
    return get(tx, id);
  });
}

Result<Tenant> TenantStore::set_move(const std::string& id, MoveState from, MoveState to, Isolation level) {
  return storage::transact_value<Tenant>(db_, [&](Transaction& tx) -> Result<Tenant> {
    const bool moving = to != MoveState::none;
    auto r = tx.execute(k_set_move,
                        {Value(id), Value(std::string(move_state_name(from))), Value(std::string(move_state_name(to))),
                         Value(moving ? std::string(isolation_name(level)) : std::string())});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) {
      auto current = get(tx, id);
      if (!current) return current;
      return fail(Errc::conflict, fmt::format("tenant {} is not at move step '{}' (it is at '{}')", id,
                                              move_state_name(from), move_state_name(current->move_state)));
    }
    return get(tx, id);
  });
}

Result<Tenant> TenantStore::switch_level(const std::string& id, Isolation to, const audit::Recorder& audit) {
  return storage::transact_value<Tenant>(db_, [&](Transaction& tx) -> Result<Tenant> {
    auto before = get(tx, id);
    if (!before) return before;
    const bool pg = tx.backend() == storage::Backend::postgres;
    auto r = tx.execute(pg ? k_switch_level_pg : k_switch_level,
                        {Value(id), Value(std::string(isolation_name(to))),
                         Value(std::string(isolation_name(before->isolation))), Value(format_rfc3339(clock_.now()))});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) {
      return fail(Errc::conflict, fmt::format("tenant {} is not frozen for a move to {}", id, isolation_name(to)));
    }
    audit::Event event{.action = "tenant.moved", .resource_type = "tenant", .resource_id = id, .tenant_id = id};
    audit::add_change(event.changes, "isolation", std::string(isolation_name(before->isolation)),
                      std::string(isolation_name(to)));
    if (auto a = audit::record(audit, tx, event); !a) return std::unexpected(a.error());
    return get(tx, id);
  });
}

Result<Json> TenantStore::statistics() {
  return storage::transact_value<Json>(
      db_,
      [&](Transaction& tx) -> Result<Json> {
        auto counts = tx.execute(k_counts);
        if (!counts) return std::unexpected(counts.error());
        Json by_status = Json::object();
        Json by_isolation = Json::object();
        for (std::size_t i = 0; i < counts->rows.size(); ++i) {
          const std::string status = counts->text_at(i, 0).value_or("");
          const std::string isolation = counts->text_at(i, 1).value_or("");
          const std::int64_t n = counts->int_at(i, 2).value_or(0);
          by_status[status] = by_status.value(status, std::int64_t{0}) + n;
          if (status != "deleted") by_isolation[isolation] = by_isolation.value(isolation, std::int64_t{0}) + n;
        }
        auto members = tx.execute(tx.backend() == storage::Backend::postgres ? k_members_pg : k_members);
        if (!members) return std::unexpected(members.error());
        auto live = tx.execute(k_live);
        if (!live) return std::unexpected(live.error());
        const auto memberships = members->int_at(0, 0).value_or(0);
        const auto live_tenants = live->int_at(0, 0).value_or(0);
        return Json{{"tenants_by_status", by_status},
                    {"tenants_by_isolation", by_isolation},
                    {"tenants", live_tenants},
                    {"average_users_per_tenant",
                     live_tenants == 0 ? 0.0 : static_cast<double>(memberships) / static_cast<double>(live_tenants)}};
      },
      {.read_only = true});
}

}  // namespace atrium::tenancy
