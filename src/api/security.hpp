#pragma once

#include <optional>

#include "api/services.hpp"
#include "http/dispatcher.hpp"
#include "tenancy/tenant_ref.hpp"

namespace atrium::api {

// Authentication, tenant resolution and authorization, driven by each route's RouteOptions::access:
//  - credentials: `Authorization: Bearer <JWT>` or `Bearer atr_...` (API key); missing or invalid -> 401.
//  - tenant (Access::tenant): from the token's tenant_id claim (or the API key's tenant), the X-Tenant-ID header
//    (id or slug; on its own honoured only for super admins), and the host (host_tenant below). Sources
//    that disagree -> 403; unknown, suspended or deleted tenant -> 403 "Invalid tenant". Each source is looked up
//    as the kind it carries only (claim: id; header: id or slug by its form; host: slug; tenancy/tenant_ref.hpp),
//    ids and slugs having disjoint forms. A super admin in a
//    tenant holds the owner's permissions there.
//  - Access::tenant_super_admin: as tenant, but only a super admin's token passes (anyone else -> 403): operator
//    actions on one tenant's data.
//  - permission: the route's permission must be among the caller's -> else 403.
// Sets request.principal and request.tenant for the handler.
http::Middleware security_middleware(Services& services);

// The tenant the request's Host names: <slug>.<tenancy.base_domain> (a slug), or a tenant's verified custom domain
// (its id). nullopt for any other host.
std::optional<tenancy::TenantRef> host_tenant(Services& services, const http::Request& req);

}  // namespace atrium::api
