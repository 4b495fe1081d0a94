#pragma once

#include "api/services.hpp"
#include "http/router.hpp"

namespace atrium::api {

// Registers every route Atrium serves. The OpenAPI document lists exactly these (tests/api/openapi_test.cpp).
void register_routes(http::Router& router, Services& services);

// Whether this instance can serve (what GET /ready answers): not draining, the database answers, and its schema is at
// this build's latest migration or newer. The control plane's schema version, or `unavailable` with the reason.
Result<int> readiness(Services& services);

// Per-module registration, called by register_routes.
void register_ops_routes(http::Router& router, Services& services);
void register_auth_routes(http::Router& router, Services& services);
void register_project_routes(http::Router& router, Services& services);
void register_user_routes(http::Router& router, Services& services);
void register_admin_routes(http::Router& router, Services& services);
void register_audit_routes(http::Router& router, Services& services);
void register_job_routes(http::Router& router, Services& services);
void register_billing_routes(http::Router& router, Services& services);
void register_usage_routes(http::Router& router, Services& services);
void register_analytics_routes(http::Router& router, Services& services);
void register_tenant_routes(http::Router& router, Services& services);
void register_console_routes(http::Router& router, Services& services);
void register_churn_routes(http::Router& router, Services& services);
void register_privacy_routes(http::Router& router, Services& services);

}  // namespace atrium::api
