#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "http/dispatcher.hpp"
#include "observability/metrics.hpp"

namespace atrium::http {

// Takes the caller's X-Request-Id when it is 1-128 characters of [A-Za-z0-9._:-], otherwise makes a UUIDv7;
// stores it in request.request_id and echoes it as X-Request-Id on the response.
Middleware request_id_middleware(const Clock& clock);

// One structured log line per request: request id, method, route template, path, status, duration, remote
// address. `clock` must outlive the middleware.
Middleware access_log_middleware(const Clock& clock);

// Headers every answer carries: `X-Content-Type-Options: nosniff`; `Strict-Transport-Security: max-age=<hsts>`
// when the server speaks TLS (`hsts_max_age_s` > 0); `Cache-Control: no-store` on the answer to any request that
// carried credentials (an Authorization header), unless the handler set its own Cache-Control.
Middleware security_headers_middleware(std::int64_t hsts_max_age_s);

// CORS (the Fetch standard) for `origins` ("*": any). A preflight (OPTIONS with Origin and
// Access-Control-Request-Method) from an allowed origin is answered 204 here, with the methods and request headers
// the API takes; any other request from an allowed origin gets Access-Control-Allow-Origin and the response headers
// a client may read. Requests from other origins pass through untouched (the browser keeps their answers from the
// page). Every answer varies by Origin. No-op when `origins` is empty.
// `tenant_allows`, when set, is asked about an origin `origins` does not allow: whether the tenant the request's
// host names lists it (per-tenant CORS origins); its answers carry the origin itself, and vary by Origin too.
Middleware cors_middleware(std::vector<std::string> origins,
                           std::function<bool(const Request&, std::string_view origin)> tenant_allows = {});

// The seed's optional `tenant_id` label on the request metrics (metrics.tenant_label): off, the label is absent; on,
// it carries the tenant's id for the first `limit` tenants seen since start, "other" for any later one and "none"
// for requests acting in no tenant, so series stay under (limit + 2) × the untenanted count, whatever the tenants.
// (http does not know tenants: `tenant_of` names the tenant a request acted in, "" for none.)
struct TenantLabel {
  std::function<std::string(const Request&)> tenant_of;  // empty: the label is off
  std::size_t limit = 100;
};

// The HTTP metrics every request feeds. Created once from a registry.
struct HttpMetrics {
  explicit HttpMetrics(metrics::Registry& registry, TenantLabel tenant_label = {});
  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Gauge& in_flight;

  // Counts one answered request by method, route template (or "unmatched"), status (and tenant, when enabled).
  void record(const Request& request, int status, double seconds);

 private:
  std::function<std::string(const Request&)> tenant_of_;
  std::unique_ptr<metrics::BoundedLabel> tenants_;  // null when the tenant label is off
};

// Counts http_requests_total and observes http_request_duration_seconds by method, route template and status
// (route "unmatched" when no route matched, so labels stay bounded); tracks requests in flight.
Middleware metrics_middleware(HttpMetrics& metrics, const Clock& clock);

}  // namespace atrium::http
