// /v1/settings and /v1/domains: what a tenant configures about itself (docs/tenants.md).
#include "api/routes.hpp"
#include "api/support.hpp"
#include "billing/entitlements.hpp"
#include "billing/quotas.hpp"
#include "domains/domains.hpp"
#include "gateway/versioning.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "tenancy/settings.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

namespace perm = identity::perm;

using http::Access;

// GET and PATCH /v1/settings. Every member of the tenant reads them (a product's pages need its branding, locale and
// time zone); tenant:manage changes them.
void register_settings(http::Router& router, Services& services) {
  router.add(
      http::Method::get, "/v1/settings",
      [](http::Request& req) -> http::Response { return http::Response::json(200, to_json(req.tenant->settings)); },
      {.access = Access::tenant});

  router.add(http::Method::patch, "/v1/settings",
             [&services](http::Request& req) -> http::Response {
               auto patched = tenancy::patch_settings(req.tenant->settings, *req.json);
               if (!patched) return error_response(patched.error(), req);
               if (!patched->api_version.empty() && gateway::find_api_version(patched->api_version) == nullptr) {
                 return error_response({Errc::invalid_argument,
                                        "api_version must be a known Atrium-Version (see "
                                        "/problems/unsupported-api-version), or null"},
                                       req);
               }
               auto updated =
                   services.update_tenant(req.tenant->id, {.settings = std::move(*patched)}, audit_context(req));
               if (!updated) return error_response(updated.error(), req);
               return http::Response::json(200, to_json(updated->settings));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::tenant_manage});
}

// The collection: claim a domain, list them.
void register_domain_collection(http::Router& router, Services& services) {
  router.add(http::Method::post, "/v1/domains",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(req, {"hostname"});
               if (!body) return error_response(body.error(), req);
               auto hostname = string_member(**body, "hostname", true);
               if (!hostname) return error_response(hostname.error(), req);
               // A claimed domain counts against limits.customDomains, pending or verified.
               const auto quota = billing::k_custom_domains_quota;
               auto turn = services.entitlements->serialize(req.tenant->id, quota);
               auto refused = services.entitlements->admit(req.tenant->id, quota);
               if (!refused) return error_response(refused.error(), req);
               if (*refused) return quota_exceeded(quota, (*refused)->limit, (*refused)->used, req);
               auto added = services.domains->add(req.tenant->id, **hostname, services.recorder(audit_context(req)));
               if (!added) return error_response(added.error(), req);
               turn.unlock();
               services.entitlements->resources_changed(req.tenant->id, quota);
               http::Response r = http::Response::json(201, domains::to_json(*added));
               r.headers.set("Location", "/v1/domains/" + added->id);
               return r;
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::tenant_manage});

  router.add(http::Method::get, "/v1/domains",
             [&services](http::Request& req) -> http::Response {
               auto list = services.domains->list(req.tenant->id);
               if (!list) return error_response(list.error(), req);
               Json data = Json::array();
               for (const auto& d : *list) data.push_back(domains::to_json(d));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::tenant, .permission = perm::tenant_read});
}

// One domain: read, verify, give it a certificate, remove it.
void register_domain_item(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/domains/{id}",
             [&services](http::Request& req) -> http::Response {
               auto d = services.domains->get(req.tenant->id, std::string(req.param("id")));
               if (!d) return error_response(d.error(), req);
               return http::Response::json(200, domains::to_json(*d));
             },
             {.access = Access::tenant, .permission = perm::tenant_read});

  router.add(http::Method::post, "/v1/domains/{id}/verify",
             [&services](http::Request& req) -> http::Response {
               auto d = services.domains->verify(req.tenant->id, std::string(req.param("id")),
                                                 services.recorder(audit_context(req)));
               if (!d && d.error().code == Errc::conflict) {
                 return http::problem(409, "domain-not-verified", "Domain Not Verified", d.error().message, req);
               }
               if (!d) return error_response(d.error(), req);
               return http::Response::json(200, domains::to_json(*d));
             },
             {.access = Access::tenant, .permission = perm::tenant_manage});

  router.add(http::Method::put, "/v1/domains/{id}/certificate",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(req, {"certificate", "private_key"});
               if (!body) return error_response(body.error(), req);
               auto chain = string_member(**body, "certificate", true);
               if (!chain) return error_response(chain.error(), req);
               auto key = string_member(**body, "private_key", true);
               if (!key) return error_response(key.error(), req);
               auto d = services.domains->set_certificate(req.tenant->id, std::string(req.param("id")), **chain, **key,
                                                          services.recorder(audit_context(req)));
               if (!d) return error_response(d.error(), req);
               return http::Response::json(200, domains::to_json(*d));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::tenant_manage});

  router.add(http::Method::delete_, "/v1/domains/{id}",
             [&services](http::Request& req) -> http::Response {
               auto r = services.domains->remove(req.tenant->id, std::string(req.param("id")),
                                                 services.recorder(audit_context(req)));
               if (!r) return error_response(r.error(), req);
               services.entitlements->resources_changed(req.tenant->id, billing::k_custom_domains_quota);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = Access::tenant, .permission = perm::tenant_manage});
}

}  // namespace

void register_tenant_routes(http::Router& router, Services& services) {
  register_settings(router, services);
  register_domain_collection(router, services);
  register_domain_item(router, services);
}

}  // namespace atrium::api
