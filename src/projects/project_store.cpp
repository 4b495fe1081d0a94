#include "projects/project_store.hpp"

#include "core/ids.hpp"

namespace atrium::projects {

namespace {

using storage::ResultSet;
using storage::Value;
using tenancy::TenantStatement;

constexpr TenantStatement k_insert{"projects_insert",
                                   "INSERT INTO projects (tenant_id, id, name, description, created_at, updated_at) "
                                   "VALUES ($1, $2, $3, $4, $5, $5)"};
constexpr TenantStatement k_get{"projects_get",
                                "SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = "
                                "$1 AND id = $2"};
constexpr TenantStatement k_page{"projects_page",
                                 "SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id "
                                 "= $1 AND id > $2 ORDER BY id LIMIT $3"};
constexpr TenantStatement k_update{"projects_update",
                                   "UPDATE projects SET name = $3, description = $4, updated_at = $5 WHERE tenant_id "
                                   "= $1 AND id = $2"};
constexpr TenantStatement k_delete{"projects_delete", "DELETE FROM projects WHERE tenant_id = $1 AND id = $2"};

constexpr TenantStatement k_count{"projects_count", "SELECT COUNT(*) FROM projects WHERE tenant_id = $1"};

constexpr TenantStatement k_all[] = {k_insert, k_get, k_page, k_update, k_delete, k_count};

constexpr std::string_view k_min_id = "00000000-0000-0000-0000-000000000000";

Project from_row(const ResultSet& rs, std::size_t row) {
  return {rs.text_at(row, 0).value_or(""), rs.text_at(row, 1).value_or(""), rs.text_at(row, 2).value_or(""),
          rs.text_at(row, 3).value_or(""), rs.text_at(row, 4).value_or("")};
}

Result<void> validate(const std::string& name, const std::string& description) {
  if (name.empty() || name.size() > 200) return fail(Errc::invalid_argument, "name must be 1-200 characters");
  if (description.size() > 2000) return fail(Errc::invalid_argument, "description must be at most 2000 characters");
  return {};
}

}  // namespace

Json to_json(const Project& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"description", p.description},
          {"created_at", p.created_at},
          {"updated_at", p.updated_at}};
}

namespace project_store {

std::span<const TenantStatement> statements() { return k_all; }

Result<Project> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& name,
                       const std::string& description) {
  if (auto ok = validate(name, description); !ok) return std::unexpected(ok.error());
  const std::string id = new_uuid_v7(clock);
  auto r = tx.execute(k_insert, {Value(id), Value(name), Value(description), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get(tx, id);
}

Result<Project> get(tenancy::TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such project");
  auto rs = tx.execute(k_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such project");
  return from_row(*rs, 0);
}

Result<ProjectPage> list(tenancy::TenantData& data, const tenancy::Tenant& tenant,
                         const std::optional<std::string>& after, int limit) {
  if (after && !is_uuid(*after)) return fail(Errc::invalid_argument, "cursor is not valid");
  const tenancy::TenantBoundStatement page_query{
      k_page, {Value(after.value_or(std::string(k_min_id))), Value(std::int64_t{limit + 1})}};
  auto results = data.run(tenant, std::span(&page_query, 1), {.read_only = true});
  if (!results) return std::unexpected(results.error());
  const ResultSet& rs = results->front();
  ProjectPage page;
  for (std::size_t i = 0; i < rs.rows.size() && static_cast<int>(i) < limit; ++i) {
    page.projects.push_back(from_row(rs, i));
  }
  if (static_cast<int>(rs.rows.size()) > limit && !page.projects.empty()) page.next_cursor = page.projects.back().id;
  return page;
}

Result<Project> update(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                       const ProjectPatch& patch) {
  auto current = get(tx, id);
  if (!current) return current;
  Project p = std::move(*current);
  if (patch.name) p.name = *patch.name;
  if (patch.description) p.description = *patch.description;
  if (auto ok = validate(p.name, p.description); !ok) return std::unexpected(ok.error());
  auto r = tx.execute(k_update, {Value(id), Value(p.name), Value(p.description), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get(tx, id);
}

Result<std::int64_t> count(tenancy::TenantTransaction& tx) {
  auto r = tx.execute(k_count);
  if (!r) return std::unexpected(r.error());
  return r->empty() ? 0 : r->int_at(0, 0).value_or(0);
}

Result<void> remove(tenancy::TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such project");
  auto r = tx.execute(k_delete, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no such project");
  return {};
}

}  // namespace project_store

}  // namespace atrium::projects
