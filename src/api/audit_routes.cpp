// /v1/audit-logs (a tenant's own chain) and /v1/admin/audit-logs (every chain, for super admins).
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "core/ids.hpp"
#include "identity/permissions.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;

// The filters shared by both routes: ?actor_id, action, resource_type, resource_id, from, to (RFC 3339), limit
// (1-100, default 20), cursor.
Result<audit::Query> audit_query(const http::Request& req) {
  auto page = page_params(req);
  if (!page) return std::unexpected(page.error());
  audit::Query q;
  q.limit = page->limit;
  q.cursor = page->cursor;  // checked by AuditLog::list
  q.actor_id = req.query_param("actor_id");
  q.action = req.query_param("action");
  q.resource_type = req.query_param("resource_type");
  q.resource_id = req.query_param("resource_id");
  for (auto [name, field] : {std::pair{"from", &q.from}, std::pair{"to", &q.to}}) {
    auto text = req.query_param(name);
    if (!text) continue;
    auto t = parse_rfc3339(*text);
    if (!t) return fail(Errc::invalid_argument, std::string(name) + " must be an RFC 3339 date-time");
    *field = format_rfc3339(*t);  // the stored form, so text comparison orders by time
  }
  return q;
}

http::Response page_response(const audit::Page& page) {
  Json data = Json::array();
  for (const auto& e : page.entries) data.push_back(audit::to_json(e));
  return http::Response::json(200,
                              {{"data", data}, {"next_cursor", page.next_cursor ? Json(*page.next_cursor) : Json()}});
}

}  // namespace

void register_audit_routes(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/audit-logs",
             [&services](http::Request& req) -> http::Response {
               auto q = audit_query(req);
               if (!q) return error_response(q.error(), req);
               q->chain_id = req.tenant->id;
               auto page = services.audit->list(*q);
               if (!page) return error_response(page.error(), req);
               return page_response(*page);
             },
             {.access = Access::tenant, .permission = identity::perm::audit_read});

  router.add(http::Method::get, "/v1/admin/audit-logs",
             [&services](http::Request& req) -> http::Response {
               auto q = audit_query(req);
               if (!q) return error_response(q.error(), req);
               if (auto tenant = req.query_param("tenant_id")) {
                 if (*tenant != audit::k_platform_chain && !is_uuid(*tenant)) {
                   return error_response({Errc::invalid_argument, "tenant_id must be a tenant id or 'platform'"}, req);
                 }
                 q->chain_id = *tenant;
               }
               auto page = services.audit->list(*q);
               if (!page) return error_response(page.error(), req);
               return page_response(*page);
             },
             {.access = Access::super_admin});
}

}  // namespace atrium::api
