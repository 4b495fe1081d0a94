#pragma once

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

// The HTTP metrics every request feeds. Created once from a registry.
struct HttpMetrics {
  explicit HttpMetrics(metrics::Registry& registry);
  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Gauge& in_flight;
};

// Counts http_requests_total and observes http_request_duration_seconds by method, route template and status
// (route "unmatched" when no route matched, so labels stay bounded); tracks requests in flight.
Middleware metrics_middleware(HttpMetrics& metrics, const Clock& clock);

}  // namespace atrium::http
