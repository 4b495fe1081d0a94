// /v1/users (members of the caller's tenant) and /v1/api-keys.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;

// The caller's own role in the tenant, for "never grant above yourself". A super admin acting in a tenant carries
// the owner role. An API key has no role: it may manage members up to admin, never make owners, so an admin cannot
// escalate through a key it created.
identity::Role caller_role(const identity::Principal& p) {
  if (p.kind == identity::Principal::Kind::api_key) return identity::Role::admin;
  return identity::parse_role(p.role).value_or(identity::Role::viewer);
}

Result<std::optional<identity::Role>> role_member(const Json& body) {
  auto text = string_member(body, "role", false);
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::optional<identity::Role>();
  auto role = identity::parse_role(**text);
  if (!role) return fail(Errc::invalid_argument, "role must be owner, admin, member or viewer");
  return std::optional<identity::Role>(*role);
}

http::Response no_content() {
  http::Response r;
  r.status = 204;
  return r;
}

}  // namespace

void register_user_routes(http::Router& router, Platform& platform) {
  namespace perm = identity::perm;

  router.add(http::Method::get, "/v1/users",
             [&platform](http::Request& req) -> http::Response {
               auto params = page_params(req);
               if (!params) return error_response(params.error(), req);
               auto page = platform.users->list_members(req.tenant->id, params->cursor, params->limit);
               if (!page) return error_response(page.error(), req);
               Json data = Json::array();
               for (const auto& m : page->members) data.push_back(identity::to_json(m));
               return http::Response::json(
                   200, {{"data", data}, {"next_cursor", page->next_cursor ? Json(*page->next_cursor) : Json()}});
             },
             {.access = Access::tenant, .permission = perm::users_read});

  router.add(http::Method::post, "/v1/users",
             [&platform](http::Request& req) -> http::Response {
               auto body = body_object(req, {"email", "name", "password", "role"});
               if (!body) return error_response(body.error(), req);
               auto email = string_member(**body, "email", true);
               if (!email) return error_response(email.error(), req);
               auto name = string_member(**body, "name", false);
               if (!name) return error_response(name.error(), req);
               auto password = string_member(**body, "password", false);
               if (!password) return error_response(password.error(), req);
               auto role = role_member(**body);
               if (!role) return error_response(role.error(), req);
               const identity::Role wanted = role->value_or(identity::Role::member);
               if (!identity::may_assign(caller_role(*req.principal), wanted)) {
                 return error_response({Errc::forbidden, "cannot grant a role above your own"}, req);
               }
               auto member = platform.users->add_member(req.tenant->id, **email, name->value_or(""), *password, wanted,
                                                        platform.audit->recorder(audit_context(req)));
               if (!member) return error_response(member.error(), req);
               return http::Response::json(201, identity::to_json(*member));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::users_manage});

  router.add(http::Method::patch, "/v1/users/{id}",
             [&platform](http::Request& req) -> http::Response {
               auto body = body_object(req, {"name", "role"});
               if (!body) return error_response(body.error(), req);
               auto name = string_member(**body, "name", false);
               if (!name) return error_response(name.error(), req);
               auto role = role_member(**body);
               if (!role) return error_response(role.error(), req);
               const std::string id(req.param("id"));
               if (*role) {
                 auto current = platform.users->get_member(req.tenant->id, id);
                 if (!current) return error_response(current.error(), req);
                 const auto mine = caller_role(*req.principal);
                 if (!identity::may_assign(mine, **role) || !identity::may_assign(mine, current->role)) {
                   return error_response({Errc::forbidden, "cannot change a role above your own"}, req);
                 }
               }
               auto member = platform.users->update_member(req.tenant->id, id, *role, *name,
                                                           platform.audit->recorder(audit_context(req)));
               if (!member) return error_response(member.error(), req);
               return http::Response::json(200, identity::to_json(*member));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::users_manage});

  router.add(
      http::Method::delete_, "/v1/users/{id}",
      [&platform](http::Request& req) -> http::Response {
        const std::string id(req.param("id"));
        auto current = platform.users->get_member(req.tenant->id, id);
        if (!current) return error_response(current.error(), req);
        if (!identity::may_assign(caller_role(*req.principal), current->role)) {
          return error_response({Errc::forbidden, "cannot remove a member above your own role"}, req);
        }
        if (auto r = platform.users->remove_member(req.tenant->id, id, platform.audit->recorder(audit_context(req)));
            !r)
          return error_response(r.error(), req);
        return no_content();
      },
      {.access = Access::tenant, .permission = perm::users_manage});

  router.add(http::Method::get, "/v1/api-keys",
             [&platform](http::Request& req) -> http::Response {
               auto keys = platform.api_keys->list(req.tenant->id);
               if (!keys) return error_response(keys.error(), req);
               Json data = Json::array();
               for (const auto& k : *keys) data.push_back(identity::to_json(k));
               return http::Response::json(200, {{"data", data}});
             },
             {.access = Access::tenant, .permission = perm::api_keys_read});

  router.add(
      http::Method::post, "/v1/api-keys",
      [&platform](http::Request& req) -> http::Response {
        auto body = body_object(req, {"name", "permissions"});
        if (!body) return error_response(body.error(), req);
        auto name = string_member(**body, "name", true);
        if (!name) return error_response(name.error(), req);
        std::vector<std::string> permissions;
        auto it = (*body)->find("permissions");
        if (it == (*body)->end() || !it->is_array()) {
          return error_response({Errc::invalid_argument, "permissions must be an array of permission names"}, req);
        }
        for (const auto& p : *it) {
          if (!p.is_string()) return error_response({Errc::invalid_argument, "permissions must be strings"}, req);
          permissions.push_back(p.get<std::string>());
        }
        auto created = platform.api_keys->create(req.tenant->id, **name, permissions, *req.principal,
                                                 platform.audit->recorder(audit_context(req)));
        if (!created) return error_response(created.error(), req);
        Json out = identity::to_json(created->key);
        out["secret"] = created->secret;
        http::Response r = http::Response::json(201, out);
        r.headers.set("Cache-Control", "no-store");
        return r;
      },
      {.json_body = true, .access = Access::tenant, .permission = perm::api_keys_manage});

  router.add(http::Method::delete_, "/v1/api-keys/{id}",
             [&platform](http::Request& req) -> http::Response {
               if (auto r = platform.api_keys->revoke(req.tenant->id, std::string(req.param("id")),
                                                      platform.audit->recorder(audit_context(req)));
                   !r) {
                 return error_response(r.error(), req);
               }
               return no_content();
             },
             {.access = Access::tenant, .permission = perm::api_keys_manage});
}

}  // namespace atrium::api
