// /v1/projects: the first tenant resource. Every handler runs in a tenant-scoped transaction.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "core/ids.hpp"
#include "core/json_writer.hpp"
#include "events/outbox.hpp"
#include "gateway/versioning.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "core/hash.hpp"
#include "projects/project_store.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr TenantStatement k_idempotency_get{
    "idempotency_get",
    "SELECT operation, request_hash, status, response_body FROM idempotency_keys WHERE tenant_id = $1 AND "
    "idempotency_key = $2"};
constexpr TenantStatement k_idempotency_put{
    "idempotency_put",
    "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status, response_body, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"};

// A hard projects quota on PostgreSQL: creates in one tenant take turns, so the count read after the lock (READ
// COMMITTED: a new snapshot) includes every project committed before it. Reads and writes no rows.
constexpr TenantStatement k_projects_quota_lock{"projects_quota_lock",
                                                "SELECT pg_advisory_xact_lock(hashtextextended('projects:' || $1, 0))"};

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

// The hottest read: streamed without a DOM (the same bytes as projects::to_json, keys in the same order).
// Atrium-Version 2026-06-01 named the page's array "items"; later versions call it "data" like every list.
http::Response list_response(const projects::ProjectPage& page, std::string_view api_version) {
  JsonWriter w(256 + page.projects.size() * 256);
  w.begin_object().key(api_version == gateway::k_version_2026_06_01 ? "items" : "data").begin_array();
  for (const auto& p : page.projects) {
    w.begin_object();
    w.key("created_at").string(p.created_at);
    w.key("description").string(p.description);
    w.key("id").string(p.id);
    w.key("name").string(p.name);
    w.key("updated_at").string(p.updated_at);
    w.end_object();
  }
  w.end_array().key("next_cursor");
  if (page.next_cursor) {
    w.string(*page.next_cursor);
  } else {
    w.null();
  }
  return http::Response::text(200, w.end_object().take(), "application/json");
}

}  // namespace

void register_project_routes(http::Router& router, Platform& platform) {
  namespace perm = identity::perm;
  const Clock& clock = platform.clock();

  router.add(http::Method::get, "/v1/projects",
             [&platform](http::Request& req) -> http::Response {
               auto page_params = api::page_params(req);
               if (!page_params) return error_response(page_params.error(), req);
               std::optional<projects::ProjectPage> page;
               auto r = platform.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         auto p = projects::project_store::list(tx, page_params->cursor,
                                                                                                page_params->limit);
                                                         if (!p) return std::unexpected(p.error());
                                                         page = std::move(*p);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               return list_response(*page, req.api_version);
             },
             {.access = Access::tenant, .permission = perm::projects_read});

  router.add(
      http::Method::post, "/v1/projects",
      [&platform, &clock](http::Request& req) -> http::Response {
        auto body = body_object(req, {"name", "description"});
        if (!body) return error_response(body.error(), req);
        auto name = string_member(**body, "name", true);
        if (!name) return error_response(name.error(), req);
        auto description = string_member(**body, "description", false);
        if (!description) return error_response(description.error(), req);

        std::optional<std::string> key;
        if (auto header = req.headers.get("Idempotency-Key")) {
          if (!valid_idempotency_key(*header)) {
            return error_response({Errc::invalid_argument, "Idempotency-Key must be 1-255 visible ASCII characters"},
                                  req);
          }
          key = std::string(*header);
        }
        const std::string request_hash = sha256_hex(req.body);
        constexpr std::string_view operation = "POST /v1/projects";
        int status = 201;
        std::string response_body;
        bool replayed = false;
        const audit::Context who = audit_context(req);
        // A hard projects quota refuses a project beyond it (counted in the create's transaction).
        auto quota = platform.entitlements->quota(req.tenant->id, std::string(billing::k_projects_quota));
        if (!quota) return error_response(quota.error(), req);
        std::optional<std::int64_t> over_quota;  // the count that refused the project
        auto attempt = [&]() {
          return platform.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
            replayed = false;
            if (key) {
              auto prior = tx.execute(k_idempotency_get, {Value(*key)});
              if (!prior) return std::unexpected(prior.error());
              if (!prior->empty()) {
                if (prior->text_at(0, 0).value_or("") != operation ||
                    prior->text_at(0, 1).value_or("") != request_hash) {
                  return fail(Errc::conflict, "Idempotency-Key was already used with a different request");
                }
                status = static_cast<int>(prior->int_at(0, 2).value_or(201));
                response_body = prior->text_at(0, 3).value_or("");
                replayed = true;
                return {};
              }
            }
            over_quota.reset();
            if (*quota && (*quota)->metric.empty() && (*quota)->enforcement == billing::Enforcement::hard &&
                (*quota)->limit) {
              if (tx.backend() == storage::Backend::postgres) {
                if (auto locked = tx.execute(k_projects_quota_lock); !locked) return std::unexpected(locked.error());
              }
              auto n = projects::project_store::count(tx);
              if (!n) return std::unexpected(n.error());
              if (*n >= *(*quota)->limit) {
                over_quota = *n;
                return fail(Errc::forbidden, "quota");
              }
            }
            auto project = projects::project_store::create(tx, clock, **name, description->value_or(""));
            if (!project) return std::unexpected(project.error());
            audit::Event event{.action = "project.created", .resource_type = "project", .resource_id = project->id};
            event.changes = audit::created_changes({{"name", project->name}, {"description", project->description}});
            if (auto a = platform.audit->append(tx, who, std::move(event)); !a) return a;
            if (auto e = events::emit(tx, clock, "project.created", projects::to_json(*project)); !e) {
              return std::unexpected(e.error());
            }
            response_body = projects::to_json(*project).dump();
            if (key) {
              auto stored = tx.execute(k_idempotency_put, {Value(*key), Value(std::string(operation)),
                                                           Value(request_hash), Value(std::int64_t{201}),
                                                           Value(response_body), Value(format_rfc3339(clock.now()))});
              if (!stored) return std::unexpected(stored.error());
            }
            return {};
          });
        };
        auto r = attempt();
        // A concurrent request with the same key committed first: replay its answer.
        if (!r && r.error().code == Errc::unique_violation && key) r = attempt();
        if (!r && over_quota) {
          const std::int64_t limit = *(*quota)->limit;
          return http::problem(403, "quota-exceeded", "Quota exceeded",
                               "The hard quota projects allows " + std::to_string(limit) +
                                   " projects; the tenant has " + std::to_string(*over_quota) + ".",
                               req, {{"quota", "projects"}, {"limit", limit}, {"used", *over_quota}});
        }
        if (!r) return error_response(r.error(), req);
        platform.flush_audit_after_commit(*req.tenant);
        if (!replayed && *quota && (*quota)->metric.empty() && (*quota)->limit) {
          platform.entitlements->projects_changed(req.tenant->id);
        }
        http::Response res = http::Response::text(status, response_body, "application/json");
        if (replayed) res.headers.set("Idempotent-Replayed", "true");
        return res;
      },
      {.json_body = true, .access = Access::tenant, .permission = perm::projects_write});

  router.add(http::Method::get, "/v1/projects/{id}",
             [&platform](http::Request& req) -> http::Response {
               std::optional<projects::Project> project;
               auto r = platform.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         auto p = projects::project_store::get(
                                                             tx, std::string(req.param("id")));
                                                         if (!p) return std::unexpected(p.error());
                                                         project = std::move(*p);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, projects::to_json(*project));
             },
             {.access = Access::tenant, .permission = perm::projects_read});

  router.add(http::Method::patch, "/v1/projects/{id}",
             [&platform, &clock](http::Request& req) -> http::Response {
               auto body = body_object(req, {"name", "description"});
               if (!body) return error_response(body.error(), req);
               auto name = string_member(**body, "name", false);
               if (!name) return error_response(name.error(), req);
               auto description = string_member(**body, "description", false);
               if (!description) return error_response(description.error(), req);
               std::optional<projects::Project> project;
               const std::string id(req.param("id"));
               auto r = platform.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = projects::project_store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 auto p = projects::project_store::update(tx, clock, id, {*name, *description});
                 if (!p) return std::unexpected(p.error());
                 audit::Event event{.action = "project.updated", .resource_type = "project", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, p->name);
                 audit::add_change(event.changes, "description", before->description, p->description);
                 if (auto a = platform.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 if (auto e = events::emit(tx, clock, "project.updated", projects::to_json(*p)); !e) {
                   return std::unexpected(e.error());
                 }
                 project = std::move(*p);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               platform.flush_audit_after_commit(*req.tenant);
               return http::Response::json(200, projects::to_json(*project));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::projects_write});

  router.add(http::Method::delete_, "/v1/projects/{id}",
             [&platform](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto r = platform.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = projects::project_store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 if (auto d = projects::project_store::remove(tx, id); !d) return d;
                 audit::Event event{.action = "project.deleted", .resource_type = "project", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, nullptr);
                 audit::add_change(event.changes, "description", before->description, nullptr);
                 if (auto a = platform.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 auto e = events::emit(tx, platform.clock(), "project.deleted", {{"id", id}});
                 if (!e) return std::unexpected(e.error());
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               platform.flush_audit_after_commit(*req.tenant);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = Access::tenant, .permission = perm::projects_delete});
}

}  // namespace atrium::api
