#include "app/dispatch.hpp"

#include <algorithm>
#include <vector>

#include "analytics/analytics.hpp"
#include "api/idempotency.hpp"
#include "api/routes.hpp"
#include "api/security.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "core/config.hpp"
#include "gateway/api_calls.hpp"
#include "gateway/rate_limits.hpp"
#include "gateway/versioning.hpp"
#include "http/dispatcher.hpp"
#include "http/middleware.hpp"
#include "identity/jwt.hpp"
#include "identity/key_store.hpp"
#include "proxy/gateway.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_directory.hpp"

namespace atrium::app {

std::shared_ptr<const http::Dispatcher> make_dispatcher(api::Services& services, const DispatchOptions& options) {
  const Config& config = services.config();
  const Clock& clock = services.clock();
  http::Router router;
  api::register_routes(router, services);
  const bool tls = !config.server.tls_cert.empty();
  // Per-tenant CORS origins apply on the tenant's own hosts: its subdomain of tenancy.base_domain and its verified
  // custom domains.
  auto tenant_allows = [&services](const http::Request& req, std::string_view origin) {
    auto ref = api::host_tenant(services, req);
    if (!ref) return false;
    auto tenant = services.directory->resolve(*ref);
    if (!tenant || (*tenant)->status != tenancy::TenantStatus::active) return false;
    const auto& listed = (*tenant)->settings.cors_origins;
    return std::find(listed.begin(), listed.end(), origin) != listed.end();
  };
  std::vector<http::Middleware> middleware{
      http::request_id_middleware(clock), http::security_headers_middleware(tls ? 31'536'000 : 0),
      http::cors_middleware(parse_cors_origins(config.server.cors_origins).value_or(std::vector<std::string>{}),
                            std::move(tenant_allows))};
  if (options.access_log) middleware.push_back(http::access_log_middleware(clock));
  if (options.metrics != nullptr) middleware.push_back(http::metrics_middleware(*options.metrics, clock));
  middleware.push_back(gateway::versioning_middleware(config.gateway.version_docs_url));
  middleware.push_back(api::security_middleware(services));
  middleware.push_back(services.rate_limits->middleware());
  if (services.api_calls) middleware.push_back(services.api_calls->middleware());
  if (services.analytics) middleware.push_back(services.analytics->activity().middleware());
  middleware.push_back(api::idempotency_middleware(services));
  return std::make_shared<const http::Dispatcher>(std::move(router), std::move(middleware),
                                                  JsonLimits{static_cast<int>(config.server.max_json_depth)});
}

std::shared_ptr<proxy::Gateway> make_gateway(api::Services& services, const Config& config,
                                             std::shared_ptr<const http::Dispatcher> dispatcher,
                                             http::HttpMetrics& http_metrics) {
  proxy::Hooks hooks;
  hooks.guard = [dispatcher](http::Request& request, const http::Next& terminal) {
    return dispatcher->guard(request, terminal);
  };
  const auto algorithm = identity::configured_jwt_alg(config.identity.jwt_algorithm);
  hooks.sign = [&services, algorithm](const identity::AccessClaims& claims) -> Result<std::string> {
    auto keys = services.keys->ensure(algorithm);
    if (!keys) return fail(Errc::unavailable, "no signing key is loaded");
    return keys->signer->sign(claims);
  };
  hooks.audit = [&services](const http::Request& request, const Json& changes) -> Result<void> {
    audit::Event event{.action = "proxy.request",
                       .resource_type = "route",
                       .resource_id = request.route,
                       .tenant_id = request.tenant->id};
    event.changes = changes;
    return services.db().transact(
        [&](storage::Transaction& tx) { return services.audit->append(tx, api::audit_context(request), event); });
  };
  hooks.http_metrics = &http_metrics;
  hooks.access_log = config.log.access_log;
  proxy::Options options{.routes_file = config.proxy.routes_file,
                         .issuer = config.identity.issuer,
                         .token_audience = config.proxy.token_audience,
                         .token_ttl = std::chrono::seconds(config.proxy.token_ttl_s),
                         .tls = !config.server.tls_cert.empty()};
  auto gateway =
      std::make_shared<proxy::Gateway>(std::move(options), std::move(hooks), services.clock(), services.registry);
  gateway->max_idle_per_endpoint = static_cast<std::size_t>(config.proxy.max_idle_per_endpoint);
  gateway->pool_idle_timeout = std::chrono::milliseconds(config.proxy.pool_idle_timeout_ms);
  return gateway;
}

}  // namespace atrium::app
