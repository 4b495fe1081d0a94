// One person's data (docs/data-protection.md, "One person's data"): super admins find a user by address, export
// everything Atrium holds about them, and erase it; a signed-in person exports their own.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "identity/principal.hpp"
#include "identity/user_store.hpp"
#include "privacy/personal_data.hpp"

namespace atrium::api {

namespace {

// The user's export, recorded as read by the caller.
http::Response export_response(Services& services, http::Request& req, const std::string& user_id) {
  const audit::Context who = audit_context(req);
  auto exported = services.personal_data->export_user(user_id, services.audit->recorder(who));
  if (!exported) return error_response(exported.error(), req);
  services.audit_committed();
  return http::Response::json(200, *exported);
}

}  // namespace

void register_privacy_routes(http::Router& router, Services& services) {
  using http::Access;
  // ?email=: the account with that address, as {"data": [{"id", "email", "name", "superAdmin", "createdAt"}]} (empty
  // when there is none).
  router.add(http::Method::get, "/v1/admin/users",
             [&services](http::Request& req) -> http::Response {
               auto email = req.query_param("email");
               if (!email || email->empty()) {
                 return error_response({Errc::invalid_argument, "email is required"}, req);
               }
               auto user = services.users->find_by_email(*email);
               if (!user && user.error().code != Errc::not_found) return error_response(user.error(), req);
               Json data = Json::array();
               if (user) {
                 data.push_back({{"id", user->id},
                                 {"email", user->email},
                                 {"name", user->name},
                                 {"superAdmin", user->super_admin},
                                 {"createdAt", user->created_at}});
               }
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/users/{id}/personal-data",
             [&services](http::Request& req) { return export_response(services, req, std::string(req.param("id"))); },
             {.access = Access::super_admin});
  // The signed-in person's own export (a user's token, any tenant; not an API key or an embed token).
  router.add(http::Method::get, "/v1/me/personal-data",
             [&services](http::Request& req) -> http::Response {
               if (req.principal->kind != identity::Principal::Kind::user) {
                 return error_response({Errc::forbidden, "only a person's own sign-in reads their personal data"}, req);
               }
               return export_response(services, req, req.principal->subject);
             },
             {.access = Access::authenticated});
  router.add(http::Method::post, "/v1/admin/users/{id}/erase",
             [&services](http::Request& req) -> http::Response {
               const audit::Context who = audit_context(req);
               auto erased =
                   services.personal_data->erase_user(std::string(req.param("id")), services.audit->recorder(who));
               if (!erased) return error_response(erased.error(), req);
               services.audit_committed();
               return http::Response::json(200, *erased);
             },
             {.access = Access::super_admin});
}

}  // namespace atrium::api
