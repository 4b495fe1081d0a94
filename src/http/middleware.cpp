#include "http/middleware.hpp"

#include <algorithm>
#include <chrono>

#include "core/ids.hpp"
#include "core/log.hpp"

namespace atrium::http {

namespace {

bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

double seconds_since(const Clock& clock, std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(clock.monotonic() - start).count();
}

std::string_view method_label(const Request& r) {
  // Unknown methods share one label so clients cannot mint new series.
  return r.method == Method::other ? std::string_view("OTHER") : method_name(r.method);
}

}  // namespace

Middleware request_id_middleware(const Clock& clock) {
  return [&clock](Request& req, const Next& next) {
    const auto inbound = req.headers.get("X-Request-Id");
    req.request_id = inbound && acceptable_request_id(*inbound) ? std::string(*inbound) : new_uuid_v7(clock);
    Response res = next(req);
    res.headers.set("X-Request-Id", req.request_id);
    return res;
  };
}

Middleware security_headers_middleware(std::int64_t hsts_max_age_s) {
  std::string hsts = hsts_max_age_s > 0 ? "max-age=" + std::to_string(hsts_max_age_s) : std::string();
  return [hsts = std::move(hsts)](Request& req, const Next& next) {
    Response res = next(req);
    res.headers.set("X-Content-Type-Options", "nosniff");
    if (!hsts.empty()) res.headers.set("Strict-Transport-Security", hsts);
    if (req.headers.get("Authorization") && !res.headers.get("Cache-Control")) {
      res.headers.set("Cache-Control", "no-store");
    }
    return res;
  };
}

Middleware cors_middleware(std::vector<std::string> origins,
                           std::function<bool(const Request&, std::string_view origin)> tenant_allows) {
  const bool any = origins.size() == 1 && origins.front() == "*";
  return [origins = std::move(origins), any, tenant_allows = std::move(tenant_allows)](Request& req, const Next& next) {
    const auto origin = req.headers.get("Origin");
    const bool global = origin && (any || std::find(origins.begin(), origins.end(), *origin) != origins.end());
    const bool by_tenant = origin && !global && tenant_allows && tenant_allows(req, *origin);
    if (origins.empty() && !by_tenant) return next(req);
    const bool allowed = global || by_tenant;
    const std::string allow_origin = allowed ? (any && !by_tenant ? std::string("*") : std::string(*origin)) : "";
    if (allowed && req.method == Method::options && req.headers.get("Access-Control-Request-Method")) {
      Response res;
      res.status = 204;
      res.headers.set("Access-Control-Allow-Origin", allow_origin);
      res.headers.set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE");
      res.headers.set("Access-Control-Allow-Headers",
                      "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, Atrium-Version, "
                      "X-Tenant-ID, X-Request-Id");
      res.headers.set("Access-Control-Max-Age", "600");
      res.headers.set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
      return res;
    }
    Response res = next(req);
    if (allowed) {
      res.headers.set("Access-Control-Allow-Origin", allow_origin);
      res.headers.set("Access-Control-Expose-Headers",
                      "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id, Idempotent-Replayed, "
                      "Atrium-Version, Deprecation, Sunset, Link, WWW-Authenticate");
    }
    res.headers.set("Vary", "Origin");
    return res;
  };
}

Middleware access_log_middleware(const Clock& clock) {
  return [&clock](Request& req, const Next& next) {
    const auto start = clock.monotonic();
    Response res = next(req);
    if (res.status != k_forward_status && log::enabled(log::Level::info)) {
      log::info("request", {{"request_id", req.request_id},
                            {"method", req.method_text},
                            {"route", req.route},
                            {"path", req.path},
                            {"status", res.status},
                            {"duration_ms", seconds_since(clock, start) * 1000.0},
                            {"bytes", res.body.size()},
                            {"remote", req.remote_address}});
    }
    return res;
  };
}

namespace {

std::vector<std::string> request_label_names(const TenantLabel& tenant_label) {
  std::vector<std::string> names{"method", "route", "status"};
  if (tenant_label.tenant_of) names.emplace_back("tenant_id");
  return names;
}

}  // namespace

HttpMetrics::HttpMetrics(metrics::Registry& registry, TenantLabel tenant_label)
    : requests(registry.counter("http_requests_total", "HTTP requests answered, by method, route and status.",
                                request_label_names(tenant_label))),
      duration(registry.histogram(
          "http_request_duration_seconds", "Time from a parsed request to its response, by method, route and status.",
          request_label_names(tenant_label),
          {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      in_flight(registry.gauge("http_requests_in_flight", "HTTP requests being handled now.").with({})),
      tenant_of_(tenant_label.tenant_of),
      tenants_(tenant_of_ ? std::make_unique<metrics::BoundedLabel>(tenant_label.limit, "other") : nullptr) {}

void HttpMetrics::record(const Request& req, int status, double seconds) {
  metrics::Labels labels{std::string(method_label(req)), req.route.empty() ? "unmatched" : req.route,
                         std::to_string(status)};
  if (tenants_) {
    const std::string tenant = tenant_of_(req);
    labels.push_back(tenant.empty() ? "none" : tenants_->admit(tenant));
  }
  requests.with(labels).inc();
  duration.with(labels).observe(seconds);
}

Middleware metrics_middleware(HttpMetrics& m, const Clock& clock) {
  return [&m, &clock](Request& req, const Next& next) {
    const auto start = clock.monotonic();
    struct InFlight {
      metrics::Gauge& g;
      explicit InFlight(metrics::Gauge& gauge) : g(gauge) { g.add(1); }
      ~InFlight() { g.add(-1); }
    } in_flight(m.in_flight);
    Response res = next(req);
    if (res.status != k_forward_status) m.record(req, res.status, seconds_since(clock, start));
    return res;
  };
}

}  // namespace atrium::http
