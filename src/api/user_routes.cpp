// /v1/users (members of the caller's tenant) and /v1/api-keys.
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "billing/entitlements.hpp"
#include "identity/api_keys.hpp"
#include "identity/invitations.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "identity/token_service.hpp"
#include "identity/user_store.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

namespace perm = identity::perm;

using http::Access;

// Whether the caller may hand out, change or remove `target`. A member never acts above their own role (a super
// admin acting in a tenant carries the owner role). An API key has no role: it may act on a role only when it
// holds every permission that role grants, so a key can never make (or reach through an invitation) an account
// with more rights than the key itself has.
bool may_act_on(const identity::Principal& p, identity::Role target) {
  if (p.kind == identity::Principal::Kind::api_key) {
    for (const auto& perm : identity::permissions_for(target)) {
      if (!p.has(perm)) return false;
    }
    return true;
  }
  return identity::may_assign(identity::parse_role(p.role).value_or(identity::Role::viewer), target);
}

// The last-owner rule, checked before a member's tokens are revoked so that a refused change revokes nothing (the
// store checks it again inside the change's transaction). `next`: the new role, or nullopt for a removal.
Result<void> keeps_an_owner(Services& services, const std::string& tenant_id, identity::Role current,
                            std::optional<identity::Role> next) {
  if (current != identity::Role::owner || next == identity::Role::owner) return {};
  auto owners = services.users->count_owners(tenant_id);
  if (!owners) return std::unexpected(owners.error());
  if (*owners <= 1) return fail(Errc::conflict, "a tenant keeps at least one owner");
  return {};
}

Result<std::optional<identity::Role>> role_member(const Json& body) {
  auto text = string_member(body, "role", false);
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::optional<identity::Role>();
  auto role = identity::parse_role(**text);
  if (!role) return fail(Errc::invalid_argument, "role must be owner, admin, member or viewer");
  return std::optional<identity::Role>(*role);
}

// Adding a person is an invitation mailed to the address, whether or not it has an account (elsewhere): the
// answer is the same either way, so this route tells nothing about other tenants' users.
http::Response invite(Services& services, http::Request& req) {
  auto body = body_object(req, {"email", "role"});
  if (!body) return error_response(body.error(), req);
  auto email = string_member(**body, "email", true);
  if (!email) return error_response(email.error(), req);
  auto role = role_member(**body);
  if (!role) return error_response(role.error(), req);
  const identity::Role wanted = role->value_or(identity::Role::member);
  if (!may_act_on(*req.principal, wanted)) {
    return error_response({Errc::forbidden, "cannot grant a role above your own"}, req);
  }
  if (!services.background) {
    return error_response({Errc::unavailable,
                           "invitations are mailed by background jobs, which are not "
                           "running in this process"},
                          req);
  }
  auto issued = services.invitations->invite(req.tenant->id, **email, wanted, req.principal->subject,
                                             services.audit->recorder(audit_context(req)));
  if (!issued) return error_response(issued.error(), req);
  if (auto sent = services.background->send_invitation(*req.tenant, *issued); !sent) {
    return error_response(sent.error(), req);  // the invitation stays pending; inviting again renews it
  }
  return http::Response::json(202, identity::to_json(issued->invitation));
}

// A member's role is the tenant's; their name is their own account's, which only they change.
http::Response update_member(Services& services, http::Request& req) {
  auto body = body_object(req, {"name", "role"});
  if (!body) return error_response(body.error(), req);
  auto name = string_member(**body, "name", false);
  if (!name) return error_response(name.error(), req);
  auto role = role_member(**body);
  if (!role) return error_response(role.error(), req);
  const std::string id(req.param("id"));
  auto current = services.users->get_member(req.tenant->id, id);
  if (!current) return error_response(current.error(), req);
  const bool self = req.principal->kind == identity::Principal::Kind::user && req.principal->subject == id;
  if (*name && !self && *name != current->user.name) {
    return error_response({Errc::forbidden,
                           "a member's name belongs to their account: only they can "
                           "change it"},
                          req);
  }
  if (*role && (!may_act_on(*req.principal, **role) || !may_act_on(*req.principal, current->role))) {
    return error_response({Errc::forbidden, "cannot change a role above your own"}, req);
  }
  // The member's tokens carry the old role: refused from before the change (503 and no change when
  // that fails) and again once it committed (closing the window a sign-in could read the old role in).
  const bool role_changes = *role && **role != current->role;
  if (role_changes) {
    if (auto r = keeps_an_owner(services, req.tenant->id, current->role, **role); !r)
      return error_response(r.error(), req);
    if (auto r = services.tokens->revoke_member(id, req.tenant->id); !r) return error_response(r.error(), req);
  }
  auto member =
      services.users->update_member(req.tenant->id, id, *role, *name, services.audit->recorder(audit_context(req)));
  if (!member) return error_response(member.error(), req);
  if (role_changes) (void)services.tokens->revoke_member(id, req.tenant->id);  // a failure is logged
  return http::Response::json(200, identity::to_json(*member));
}

// Users.
void register_users(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/users",
             [&services](http::Request& req) -> http::Response {
               auto params = page_params(req);
               if (!params) return error_response(params.error(), req);
               auto page = services.users->list_members(req.tenant->id, params->cursor, params->limit);
               if (!page) return error_response(page.error(), req);
               Json data = Json::array();
               for (const auto& m : page->members) data.push_back(identity::to_json(m));
               return http::Response::json(
                   200, {{"data", data}, {"next_cursor", page->next_cursor ? Json(*page->next_cursor) : Json()}});
             },
             {.access = Access::tenant, .permission = perm::users_read});

  router.add(http::Method::post, "/v1/users", [&services](http::Request& req) { return invite(services, req); },
             {.json_body = true, .access = Access::tenant, .permission = perm::users_manage});

  router.add(http::Method::patch, "/v1/users/{id}",
             [&services](http::Request& req) { return update_member(services, req); },
             {.json_body = true, .access = Access::tenant, .permission = perm::users_manage});
}

// Invitations.
void register_invitations(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/invitations",
             [&services](http::Request& req) -> http::Response {
               auto list = services.invitations->list(req.tenant->id);
               if (!list) return error_response(list.error(), req);
               Json data = Json::array();
               for (const auto& i : *list) data.push_back(identity::to_json(i));
               return http::Response::json(200, {{"data", data}});
             },
             {.access = Access::tenant, .permission = perm::users_read});

  router.add(http::Method::delete_, "/v1/invitations/{id}",
             [&services](http::Request& req) -> http::Response {
               if (auto r = services.invitations->revoke(req.tenant->id, std::string(req.param("id")),
                                                         services.audit->recorder(audit_context(req)));
                   !r) {
                 return error_response(r.error(), req);
               }
               return no_content();
             },
             {.access = Access::tenant, .permission = perm::users_manage});

  // Redeeming needs no credentials: the token is the proof (it was mailed to the address).
  router.add(http::Method::post, "/v1/invitations/accept",
             [&services](http::Request& req) -> http::Response {
               auto body = body_object(req, {"token", "name", "password"});
               if (!body) return error_response(body.error(), req);
               auto token = string_member(**body, "token", true);
               if (!token) return error_response(token.error(), req);
               auto name = string_member(**body, "name", false);
               if (!name) return error_response(name.error(), req);
               auto password = string_member(**body, "password", false);
               if (!password) return error_response(password.error(), req);
               auto accepted = services.invitations->accept(**token, name->value_or(""), *password,
                                                            services.audit->recorder(audit_context(req)));
               if (!accepted) return error_response(accepted.error(), req);
               Json out = identity::to_json(accepted->member);
               out["tenant_id"] = accepted->tenant_id;
               out["account_created"] = accepted->account_created;
               return http::Response::json(200, out);
             },
             {.json_body = true, .access = Access::open});
}

// Removing a member.
void register_member_removal(http::Router& router, Services& services) {
  router.add(
      http::Method::delete_, "/v1/users/{id}",
      [&services](http::Request& req) -> http::Response {
        const std::string id(req.param("id"));
        auto current = services.users->get_member(req.tenant->id, id);
        if (!current) return error_response(current.error(), req);
        if (!may_act_on(*req.principal, current->role)) {
          return error_response({Errc::forbidden, "cannot remove a member above your own role"}, req);
        }
        // As for a role change (PATCH above): the member's tokens are refused before and after the removal.
        if (auto r = keeps_an_owner(services, req.tenant->id, current->role, std::nullopt); !r) {
          return error_response(r.error(), req);
        }
        if (auto r = services.tokens->revoke_member(id, req.tenant->id); !r) return error_response(r.error(), req);
        if (auto r = services.users->remove_member(req.tenant->id, id, services.audit->recorder(audit_context(req)));
            !r)
          return error_response(r.error(), req);
        (void)services.tokens->revoke_member(id, req.tenant->id);  // a failure is logged
        return no_content();
      },
      {.access = Access::tenant, .permission = perm::users_manage});
}

// API keys.
void register_api_keys(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/api-keys",
             [&services](http::Request& req) -> http::Response {
               auto keys = services.api_keys->list(req.tenant->id);
               if (!keys) return error_response(keys.error(), req);
               Json data = Json::array();
               for (const auto& k : *keys) data.push_back(identity::to_json(k));
               return http::Response::json(200, {{"data", data}});
             },
             {.access = Access::tenant, .permission = perm::api_keys_read});

  router.add(
      http::Method::post, "/v1/api-keys",
      [&services](http::Request& req) -> http::Response {
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
        // A key is one of the tenant's integrations (limits.integrations).
        auto turn = services.entitlements->serialize(req.tenant->id, billing::k_integrations_quota);
        auto refused = services.entitlements->admit(req.tenant->id, billing::k_integrations_quota);
        if (!refused) return error_response(refused.error(), req);
        if (*refused) return quota_exceeded(billing::k_integrations_quota, (*refused)->limit, (*refused)->used, req);
        auto created = services.api_keys->create(req.tenant->id, **name, permissions, *req.principal,
                                                 services.audit->recorder(audit_context(req)));
        if (!created) return error_response(created.error(), req);
        turn.unlock();
        services.entitlements->resources_changed(req.tenant->id, billing::k_integrations_quota);
        Json out = identity::to_json(created->key);
        out["secret"] = created->secret;
        http::Response r = http::Response::json(201, out);
        r.headers.set("Cache-Control", "no-store");
        return r;
      },
      {.json_body = true, .access = Access::tenant, .permission = perm::api_keys_manage});

  router.add(http::Method::delete_, "/v1/api-keys/{id}",
             [&services](http::Request& req) -> http::Response {
               if (auto r = services.api_keys->revoke(req.tenant->id, std::string(req.param("id")),
                                                      services.audit->recorder(audit_context(req)));
                   !r) {
                 return error_response(r.error(), req);
               }
               return no_content();
             },
             {.access = Access::tenant, .permission = perm::api_keys_manage});
}

}  // namespace

void register_user_routes(http::Router& router, Services& services) {
  register_users(router, services);
  register_invitations(router, services);
  register_member_removal(router, services);
  register_api_keys(router, services);
}

}  // namespace atrium::api
