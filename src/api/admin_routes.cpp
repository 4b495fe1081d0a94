// /v1/admin: cross-tenant operations for super admins.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "billing/billing.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;

Result<std::optional<Json>> quotas_member(const Json& body) {
  auto it = body.find("quotas");
  if (it == body.end() || it->is_null()) return std::optional<Json>();
  if (!it->is_object()) return fail(Errc::invalid_argument, "quotas must be an object");
  return std::optional<Json>(*it);
}

// Admin tenants.
void register_admin_tenants(http::Router& router, Services& services) {
  router.add(http::Method::post, "/v1/admin/tenants",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(
                   req, {"slug", "name", "isolation", "plan", "quotas", "owner_email", "owner_name", "owner_password"});
               if (!body) return error_response(body.error(), req);
               NewTenantRequest request;
               auto slug = string_member(**body, "slug", true);
               auto name = string_member(**body, "name", true);
               auto isolation = string_member(**body, "isolation", false);
               auto plan = string_member(**body, "plan", false);
               auto owner_email = string_member(**body, "owner_email", false);
               auto owner_name = string_member(**body, "owner_name", false);
               auto owner_password = string_member(**body, "owner_password", false);
               for (const auto* r : {&slug, &name, &isolation, &plan, &owner_email, &owner_name, &owner_password}) {
                 if (!*r) return error_response(r->error(), req);
               }
               auto quotas = quotas_member(**body);
               if (!quotas) return error_response(quotas.error(), req);
               request.tenant.slug = **slug;
               request.tenant.name = **name;
               const std::string isolation_text = isolation->value_or(services.config().tenancy.default_isolation);
               auto parsed = tenancy::parse_isolation(isolation_text);
               if (!parsed)
                 return error_response({Errc::invalid_argument, "isolation must be shared, schema or database"}, req);
               request.tenant.isolation = *parsed;
               request.tenant.plan = plan->value_or("free");
               request.tenant.quotas = quotas->value_or(Json::object());
               request.owner_email = *owner_email;
               request.owner_name = *owner_name;
               request.owner_password = *owner_password;
               auto created = services.create_tenant(request, audit_context(req));
               if (!created) return error_response(created.error(), req);
               return http::Response::json(201, tenancy::to_json(*created));
             },
             {.json_body = true, .access = Access::super_admin});

  router.add(http::Method::get, "/v1/admin/tenants",
             [&services](http::Request& req) -> http::Response {
               auto params = page_params(req);
               if (!params) return error_response(params.error(), req);
               auto page = services.tenants->list(params->cursor, params->limit);
               if (!page) return error_response(page.error(), req);
               Json data = Json::array();
               for (const auto& t : page->tenants) data.push_back(tenancy::to_json(t));
               return http::Response::json(
                   200, {{"data", data}, {"next_cursor", page->next_cursor ? Json(*page->next_cursor) : Json()}});
             },
             {.access = Access::super_admin});
}

// One tenant: read, update (suspend, reactivate), delete.
void register_admin_tenant(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/admin/tenants/{id}",
             [&services](http::Request& req) -> http::Response {
               auto t = services.tenants->get(std::string(req.param("id")));
               if (!t) return error_response(t.error(), req);
               return http::Response::json(200, tenancy::to_json(*t));
             },
             {.access = Access::super_admin});

  router.add(http::Method::patch, "/v1/admin/tenants/{id}",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(req, {"name", "plan", "quotas", "status"});
               if (!body) return error_response(body.error(), req);
               tenancy::TenantPatch patch;
               auto name = string_member(**body, "name", false);
               auto plan = string_member(**body, "plan", false);
               auto status = string_member(**body, "status", false);
               for (const auto* r : {&name, &plan, &status}) {
                 if (!*r) return error_response(r->error(), req);
               }
               auto quotas = quotas_member(**body);
               if (!quotas) return error_response(quotas.error(), req);
               patch.name = *name;
               patch.plan = *plan;
               patch.quotas = *quotas;
               if (*status) {
                 auto parsed = tenancy::parse_status(**status);
                 if (!parsed)
                   return error_response({Errc::invalid_argument, "status must be active, suspended or deleted"}, req);
                 patch.status = *parsed;
               }
               auto updated = services.update_tenant(std::string(req.param("id")), patch, audit_context(req));
               if (!updated) return error_response(updated.error(), req);
               return http::Response::json(200, tenancy::to_json(*updated));
             },
             {.json_body = true, .access = Access::super_admin});

  router.add(http::Method::delete_, "/v1/admin/tenants/{id}",
             [&services](http::Request& req) -> http::Response {
               auto updated = services.update_tenant(std::string(req.param("id")),
                                                     tenancy::TenantPatch{.status = tenancy::TenantStatus::deleted},
                                                     audit_context(req));
               if (!updated) return error_response(updated.error(), req);
               if (req.query_param("purge").value_or("") == "true") {
                 if (auto r = services.purge_tenant(updated->id, audit_context(req)); !r)
                   return error_response(r.error(), req);
               }
               http::Response r;
               r.status = 204;
               return r;
             },
             {.access = Access::super_admin});
}

// Tenant statistics with MRR per currency (both /v1/admin/metrics and the seed's getGlobalMetrics read these).
Result<Json> platform_metrics(Services& services) {
  auto stats = services.tenants->statistics();
  if (!stats) return std::unexpected(stats.error());
  auto mrr = services.billing->mrr();
  if (!mrr) return std::unexpected(mrr.error());
  Json out = *stats;
  out["mrr"] = Json::object();
  for (const auto& [currency, amount] : *mrr) out["mrr"][currency] = amount;
  return out;
}

// Admin metrics, and the seed's getGlobalMetrics under its own names.
void register_admin_metrics(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/admin/metrics",
             [&services](http::Request& req) -> http::Response {
               auto m = platform_metrics(services);
               if (!m) return error_response(m.error(), req);
               return http::Response::json(200, *m);
             },
             {.access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/analytics/overview",
             [&services](http::Request& req) -> http::Response {
               auto m = platform_metrics(services);
               if (!m) return error_response(m.error(), req);
               Json arr = Json::object();
               for (const auto& [currency, amount] : (*m)["mrr"].items())
                 arr[currency] = amount.get<std::int64_t>() * 12;
               return http::Response::json(200, {{"total_tenants", (*m)["tenants"]},
                                                 {"total_mrr", (*m)["mrr"]},
                                                 {"total_arr", std::move(arr)},
                                                 {"avg_users_per_tenant", (*m)["average_users_per_tenant"]}});
             },
             {.access = Access::super_admin});
}

}  // namespace

void register_admin_routes(http::Router& router, Services& services) {
  register_admin_tenants(router, services);
  register_admin_tenant(router, services);
  register_admin_metrics(router, services);
}

}  // namespace atrium::api
