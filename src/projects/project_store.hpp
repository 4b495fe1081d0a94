#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::projects {

struct Project {
  std::string id;
  std::string name;
  std::string description;
  std::string created_at;
  std::string updated_at;
};

struct ProjectPage {
  std::vector<Project> projects;
  std::optional<std::string> next_cursor;
};

struct ProjectPatch {
  std::optional<std::string> name;
  std::optional<std::string> description;
};

Json to_json(const Project& p);

// The seed's first tenant resource. Every function runs inside the caller's tenant-scoped transaction, so the
// tenant is never a parameter that could be wrong; list, a read of one statement, is a tenant transaction of its
// own (TenantData::run binds the tenant as $1 the same way). Input is validated (invalid_argument); another tenant's
// project, or none, is not_found.
namespace project_store {

Result<Project> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& name,
                       const std::string& description);
Result<Project> get(tenancy::TenantTransaction& tx, const std::string& id);
// In creation order (ids are UUIDv7); `after` is the cursor of the previous page. A transaction of its own, scoped
// to `tenant` (TenantData::run: one round trip on PostgreSQL).
Result<ProjectPage> list(tenancy::TenantData& data, const tenancy::Tenant& tenant,
                         const std::optional<std::string>& after, int limit);
Result<Project> update(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                       const ProjectPatch& patch);
Result<void> remove(tenancy::TenantTransaction& tx, const std::string& id);
// How many projects the tenant has (the projects quota).
Result<std::int64_t> count(tenancy::TenantTransaction& tx);

// Every statement above, for the test that checks their names are unique.
std::span<const tenancy::TenantStatement> statements();

}  // namespace project_store

}  // namespace atrium::projects
