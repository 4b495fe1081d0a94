// /v1/projects: the first tenant resource. Every handler runs in a tenant-scoped transaction.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "billing/billing.hpp"
#include "billing/entitlements.hpp"
#include "core/hash.hpp"
#include "core/ids.hpp"
#include "core/json_writer.hpp"
#include "events/outbox.hpp"
#include "gateway/versioning.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "projects/project_service.hpp"
#include "projects/project_store.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::api {

namespace {

namespace perm = identity::perm;

using http::Access;
using tenancy::TenantTransaction;

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

// The collection: list, create.
void register_projects(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::get, "/v1/projects",
             [&services](http::Request& req) -> http::Response {
               auto page_params = api::page_params(req);
               if (!page_params) return error_response(page_params.error(), req);
               auto page = projects::project_store::list(*services.tenant_data, *req.tenant, page_params->cursor,
                                                         page_params->limit);
               if (!page) return error_response(page.error(), req);
               return list_response(*page, req.api_version);
             },
             {.access = Access::tenant, .permission = perm::projects_read});

  router.add(http::Method::post, "/v1/projects",
             [&services, &clock](http::Request& req) -> http::Response {
               auto body = body_object(req, {"name", "description"});
               if (!body) return error_response(body.error(), req);
               auto name = string_member(**body, "name", true);
               if (!name) return error_response(name.error(), req);
               auto description = string_member(**body, "description", false);
               if (!description) return error_response(description.error(), req);
               projects::CreateOptions options{.request_hash = sha256_hex(req.body)};
               auto key = idempotency_key(req);
               if (!key) return error_response(key.error(), req);
               options.idempotency_key = std::move(*key);
               // A hard projects quota refuses a project beyond it (counted in the create's transaction).
               auto quota = services.entitlements->quota(req.tenant->id, std::string(billing::k_projects_quota));
               if (!quota) return error_response(quota.error(), req);
               const bool counted = *quota && (*quota)->metric.empty() && (*quota)->limit;
               if (counted && (*quota)->enforcement == billing::Enforcement::hard) options.hard_limit = (*quota)->limit;

               auto created =
                   projects::create_project(*services.tenant_data, *req.tenant, *services.audit, audit_context(req),
                                            clock, {.name = **name, .description = description->value_or("")}, options);
               if (!created) return error_response(created.error(), req);
               if (created->key_reused) {
                 // draft-ietf-httpapi-idempotency-key-header section 2.7: the key reused for another payload.
                 return http::problem(422, "idempotency-key-reused", "Idempotency-Key Reused",
                                      "This Idempotency-Key was used with a different request.", req);
               }
               if (created->over_quota) {
                 return quota_exceeded(billing::k_projects_quota, *options.hard_limit, *created->over_quota, req);
               }
               services.flush_audit_after_commit(*req.tenant);
               if (!created->replayed && counted)
                 services.entitlements->resources_changed(req.tenant->id, billing::k_projects_quota);
               http::Response res = http::Response::text(created->status, created->body, "application/json");
               if (created->replayed) res.headers.set("Idempotent-Replayed", "true");
               return res;
             },
             {.json_body = true,
              .access = Access::tenant,
              .permission = perm::projects_write,
              .own_idempotency = true});  // the answer is kept in the creation's own transaction
}

// One project: read, change, delete.
void register_project(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::get, "/v1/projects/{id}",
             [&services](http::Request& req) -> http::Response {
               std::optional<projects::Project> project;
               auto r = services.tenant_data->transact(*req.tenant,
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
             [&services, &clock](http::Request& req) -> http::Response {
               auto body = body_object(req, {"name", "description"});
               if (!body) return error_response(body.error(), req);
               auto name = string_member(**body, "name", false);
               if (!name) return error_response(name.error(), req);
               auto description = string_member(**body, "description", false);
               if (!description) return error_response(description.error(), req);
               std::optional<projects::Project> project;
               const std::string id(req.param("id"));
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = projects::project_store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 auto p = projects::project_store::update(tx, clock, id, {*name, *description});
                 if (!p) return std::unexpected(p.error());
                 audit::Event event{.action = "project.updated", .resource_type = "project", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, p->name);
                 audit::add_change(event.changes, "description", before->description, p->description);
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 if (auto e = events::emit(tx, clock, "project.updated", projects::to_json(*p)); !e) {
                   return std::unexpected(e.error());
                 }
                 project = std::move(*p);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               return http::Response::json(200, projects::to_json(*project));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::projects_write});

  router.add(http::Method::delete_, "/v1/projects/{id}",
             [&services](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = projects::project_store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 if (auto d = projects::project_store::remove(tx, id); !d) return d;
                 audit::Event event{.action = "project.deleted", .resource_type = "project", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, nullptr);
                 audit::add_change(event.changes, "description", before->description, nullptr);
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 auto e = events::emit(tx, services.clock(), "project.deleted", {{"id", id}});
                 if (!e) return std::unexpected(e.error());
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = Access::tenant, .permission = perm::projects_delete});
}

}  // namespace

void register_project_routes(http::Router& router, Services& services) {
  register_projects(router, services);
  register_project(router, services);
}

}  // namespace atrium::api
