#include "projects/project_service.hpp"

#include "events/outbox.hpp"
#include "tenancy/idempotency.hpp"

namespace atrium::projects {

namespace {

using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr std::string_view k_operation = "POST /v1/projects";

// A hard projects quota on PostgreSQL: creates in one tenant take turns, so the count read after the lock (READ
// COMMITTED: a new snapshot) includes every project committed before it. Reads and writes no rows.
constexpr TenantStatement k_quota_lock{"projects_quota_lock",
                                       "SELECT pg_advisory_xact_lock(hashtextextended('projects:' || $1, 0))"};

// True when the key answered a request before: out holds that answer, or key_reused when it was another request.
Result<bool> replay(TenantTransaction& tx, const CreateOptions& options, CreateOutcome& out) {
  if (!options.idempotency_key) return false;
  auto prior = tenancy::find_answer(tx, *options.idempotency_key);
  if (!prior) return std::unexpected(prior.error());
  if (!*prior) return false;
  if ((*prior)->operation != k_operation || (*prior)->request_hash != options.request_hash) {
    out.key_reused = true;
    return true;
  }
  out.status = (*prior)->status;
  out.body = (*prior)->body;
  out.replayed = true;
  return true;
}

// The count of projects when it reached the hard limit, else none.
Result<std::optional<std::int64_t>> at_limit(TenantTransaction& tx, std::optional<std::int64_t> hard_limit) {
  if (!hard_limit) return std::nullopt;
  if (tx.backend() == storage::Backend::postgres) {
    if (auto locked = tx.execute(k_quota_lock); !locked) return std::unexpected(locked.error());
  }
  auto n = project_store::count(tx);
  if (!n) return std::unexpected(n.error());
  if (*n >= *hard_limit) return *n;
  return std::nullopt;
}

}  // namespace

Result<CreateOutcome> create_project(tenancy::TenantData& data, const tenancy::Tenant& tenant, audit::AuditLog& audit,
                                     const audit::Context& who, const Clock& clock, const NewProject& input,
                                     const CreateOptions& options) {
  CreateOutcome out;
  auto attempt = [&]() {
    return data.transact(tenant, [&](TenantTransaction& tx) -> Result<void> {
      out = CreateOutcome{};  // the body may run again after a serialization failure
      auto replayed = replay(tx, options, out);
      if (!replayed) return std::unexpected(replayed.error());
      if (*replayed) return {};
      auto full = at_limit(tx, options.hard_limit);
      if (!full) return std::unexpected(full.error());
      if (*full) {
        out.over_quota = **full;
        return fail(Errc::forbidden, "quota");  // rolls back; the caller answers from over_quota
      }
      auto project = project_store::create(tx, clock, input.name, input.description);
      if (!project) return std::unexpected(project.error());
      audit::Event event{.action = "project.created", .resource_type = "project", .resource_id = project->id};
      event.changes = audit::created_changes({{"name", project->name}, {"description", project->description}});
      if (auto a = audit.append(tx, who, std::move(event)); !a) return a;
      if (auto e = events::emit(tx, clock, "project.created", to_json(*project)); !e) return std::unexpected(e.error());
      out.body = to_json(*project).dump();
      if (options.idempotency_key) {
        tenancy::IdempotentAnswer answer{std::string(k_operation), options.request_hash, 201, out.body};
        if (auto s = tenancy::store_answer(tx, *options.idempotency_key, answer, clock.now()); !s) return s;
      }
      return {};
    });
  };
  auto r = attempt();
  // A concurrent request with the same key committed first: replay its answer.
  if (!r && r.error().code == Errc::unique_violation && options.idempotency_key) r = attempt();
  if (!r && out.over_quota) return out;
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace atrium::projects
