#include "api/security.hpp"

#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "core/ids.hpp"
#include "domains/domain.hpp"
#include "domains/domains.hpp"
#include "gateway/versioning.hpp"
#include "http/problem.hpp"
#include "identity/api_keys.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "identity/token_service.hpp"
#include "identity/user_store.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_directory.hpp"
#include "tenancy/tenant_ref.hpp"

namespace atrium::api {

namespace {

using http::Access;

std::optional<std::string> bearer_token(const http::Request& req) {
  auto header = req.headers.get("Authorization");
  if (!header) return std::nullopt;
  std::string_view v = *header;
  if (v.size() < 8 || !http::iequals(v.substr(0, 7), "bearer ")) return std::string();
  v.remove_prefix(7);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return std::string(v);
}

http::Response invalid_tenant(const http::Request& req) {
  return http::problem(403, "invalid-tenant", "Forbidden", "Invalid tenant", req);
}

// Super admins' reads are audited too (their changes are recorded by the change itself): admin routes in the
// platform chain, reads of a tenant's data in that tenant's chain. A read that cannot be recorded is not answered.
http::Response audited_read(Services& services, const http::Request& req, http::Response response) {
  if (req.method != http::Method::get || response.status >= 400) return response;
  audit::Event event{.action = req.tenant ? "admin.tenant_read" : "admin.read",
                     .resource_type = "route",
                     .resource_id = req.route,
                     .tenant_id = req.tenant ? req.tenant->id : ""};
  event.changes = {{"target", printable_text(req.target, 2048)}};
  auto recorded = services.db().transact(
      [&](storage::Transaction& tx) { return services.audit->append(tx, audit_context(req), event); });
  if (!recorded) return error_response(recorded.error(), req);
  return response;
}

// 1. The principal the bearer token or API key names into `who`; the answer instead when it names none.
std::optional<http::Response> authenticate(Services& services, const http::Request& req,
                                           std::shared_ptr<const identity::Principal>& who) {
  auto token = bearer_token(req);
  if (!token || token->empty()) {
    return error_response({Errc::unauthenticated, "a bearer token or API key is required"}, req);
  }
  Result<std::shared_ptr<const identity::Principal>> principal = fail(Errc::internal, "");
  if (identity::ApiKeyStore::looks_like_api_key(*token)) {
    audit::Context context = audit_context(req);
    context.actor_type = audit::ActorType::api_key;
    auto key = services.api_keys->authenticate(*token, services.audit->recorder(context));
    principal = key ? Result<std::shared_ptr<const identity::Principal>>(
                          std::make_shared<const identity::Principal>(std::move(*key)))
                    : std::unexpected(key.error());
  } else {
    principal = services.tokens->authenticate(*token);
  }
  if (!principal) {
    if (principal.error().code == Errc::unauthenticated || principal.error().code == Errc::invalid_argument) {
      // RFC 6750 section 3.1: credentials were presented and are not good.
      http::Response r = error_response({Errc::unauthenticated, "invalid or expired credentials"}, req);
      r.headers.set("WWW-Authenticate",
                    "Bearer realm=\"atrium\", error=\"invalid_token\", error_description=\"invalid or expired "
                    "credentials\"");
      return r;
    }
    return error_response(principal.error(), req);
  }
  who = std::move(*principal);
  return std::nullopt;
}

// 2. The tenant, from every source present (all must agree), into `tenant`; the answer instead when there is none,
// or they disagree. Each source says which kind of name it carries (tenancy/tenant_ref.hpp): the credential's tenant
// is an id, X-Tenant-ID an id or a slug by its form, the host a slug. Each is looked up as that kind only.
std::optional<http::Response> resolve_tenant(Services& services, const http::Request& req,
                                             const identity::Principal& who,
                                             std::shared_ptr<const tenancy::Tenant>& tenant) {
  auto consider = [&](const tenancy::TenantRef& ref) -> std::optional<http::Response> {
    auto resolved = services.directory->resolve(ref);
    if (!resolved) {
      if (resolved.error().code == Errc::not_found) return invalid_tenant(req);
      return error_response(resolved.error(), req);
    }
    if (tenant && tenant->id != (*resolved)->id) {
      return http::problem(403, "tenant-mismatch", "Forbidden", "The request names more than one tenant.", req);
    }
    tenant = *resolved;
    return std::nullopt;
  };
  if (!who.tenant_id.empty()) {
    if (auto refused = consider(tenancy::id_ref(who.tenant_id))) return refused;
  }
  if (auto header = req.headers.get("X-Tenant-ID"); header && !header->empty()) {
    if (auto refused = consider(tenancy::parse_tenant_ref(*header))) return refused;
  }
  if (auto ref = host_tenant(services, req)) {
    if (auto refused = consider(*ref)) return refused;
  }
  if (!tenant) return http::problem(403, "no-tenant", "Forbidden", "No tenant selected.", req);
  if (tenant->status != tenancy::TenantStatus::active) return invalid_tenant(req);
  return std::nullopt;
}

bool super_admin_user(const identity::Principal& who) {
  return who.super_admin && who.kind == identity::Principal::Kind::user;
}

// An embed token reads its tenant's analytics and nothing else: GET routes that ask for analytics:view.
bool embed_allows(const identity::Principal& who, http::Method method, const http::RouteOptions& o) {
  return who.kind != identity::Principal::Kind::embed ||
         (method == http::Method::get && o.access == Access::tenant && o.permission == identity::perm::analytics_view);
}

// What `who`, acting in a tenant or not, may call: the rule this middleware applies, for the dispatcher's reads on
// the caller's behalf (conditional requests read the target's GET answer). `who` is the request's principal, which
// outlives every use; a pointer and a flag keep the function free of allocation.
std::function<bool(const http::RouteOptions&)> route_rule(const identity::Principal* who, bool in_tenant) {
  return [who, in_tenant](const http::RouteOptions& o) {
    if (!embed_allows(*who, http::Method::get, o)) return false;
    switch (o.access) {
      case Access::open:
      case Access::authenticated: return true;
      case Access::super_admin: return super_admin_user(*who);
      case Access::tenant_super_admin:
        return in_tenant && super_admin_user(*who) && (o.permission.empty() || who->has(o.permission));
      case Access::tenant: return in_tenant && (o.permission.empty() || who->has(o.permission));
    }
    return false;
  };
}

// Authentication, tenant resolution and authorization (see security.hpp), then the handler.
http::Response secured(Services& services, http::Request& req, const http::Next& next) {
  if (req.options == nullptr || req.options->access == Access::open) return next(req);
  std::shared_ptr<const identity::Principal> who;
  if (auto refused = authenticate(services, req, who)) return *refused;
  if (!embed_allows(*who, req.method, *req.options)) {
    return http::problem(403, "forbidden", "Forbidden", "An embed token reads the tenant's analytics only.", req);
  }

  const Access access = req.options->access;
  if (access == Access::super_admin) {
    if (!super_admin_user(*who)) {
      return http::problem(403, "forbidden", "Forbidden", "This operation is for super admins.", req);
    }
    req.may_call = route_rule(who.get(), false);
    req.principal = std::move(who);
    return audited_read(services, req, next(req));
  }
  if (access == Access::tenant_super_admin && !super_admin_user(*who)) {
    return http::problem(403, "forbidden", "Forbidden",
                         "This operation is for super admins (X-Tenant-ID names the tenant).", req);
  }
  if (access == Access::tenant || access == Access::tenant_super_admin) {
    std::shared_ptr<const tenancy::Tenant> tenant;
    if (auto refused = resolve_tenant(services, req, *who, tenant)) return *refused;
    // A super admin without a tenant of its own acts as an owner in the tenant it names.
    if (who->super_admin && who->tenant_id.empty()) {
      auto acting = std::make_shared<identity::Principal>(*who);
      acting->role = std::string(identity::role_name(identity::Role::owner));
      acting->permissions = identity::permissions_for(identity::Role::owner);
      who = std::move(acting);
    }
    // 3. Authorize.
    if (!req.options->permission.empty() && !who->has(req.options->permission)) {
      return http::problem(403, "forbidden", "Forbidden",
                           "Missing permission " + std::string(req.options->permission) + ".", req);
    }
    // A tenant's pinned API version answers the requests that name none (docs/api-versioning.md).
    if (!req.api_version_named && !tenant->settings.api_version.empty()) {
      if (const gateway::ApiVersion* pinned = gateway::find_api_version(tenant->settings.api_version)) {
        req.api_version = pinned->name;
      }
    }
    req.tenant = std::move(tenant);
  }
  req.may_call = route_rule(who.get(), req.tenant != nullptr);
  req.principal = std::move(who);
  if (req.principal->super_admin && req.tenant) return audited_read(services, req, next(req));
  return next(req);
}

}  // namespace

std::optional<tenancy::TenantRef> host_tenant(Services& services, const http::Request& req) {
  auto host = req.headers.get("Host");
  if (!host) return std::nullopt;
  if (auto ref = tenancy::host_ref(*host, services.config().tenancy.base_domain)) return ref;
  if (auto owner = services.domains->tenant_for_host(domains::host_of(*host))) return tenancy::id_ref(*owner);
  return std::nullopt;
}

http::Middleware security_middleware(Services& services) {
  return [&services](http::Request& req, const http::Next& next) -> http::Response {
    http::Response response = secured(services, req, next);
    if (req.method != http::Method::get) services.audit_committed();  // new entries for the SIEM exporter
    return response;
  };
}

}  // namespace atrium::api
