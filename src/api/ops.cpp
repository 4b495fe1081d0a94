// Operations endpoints: liveness, readiness, metrics, the API description.
#include "api/openapi.hpp"
#include "api/routes.hpp"
#include "http/problem.hpp"

namespace atrium::api {

namespace {

http::Response not_ready(const http::Request& req, const std::string& reason) {
  http::Response r = http::problem(503, "not-ready", "Service Unavailable", reason, req);
  r.headers.set("Cache-Control", "no-store");
  return r;
}

void register_ops_routes(http::Router& router, ApiContext& ctx) {
  router.add(http::Method::get, "/health",
             [](http::Request&) {
               http::Response r = http::Response::json(200, {{"status", "ok"}});
               r.headers.set("Cache-Control", "no-store");
               return r;
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/ready", [&ctx](http::Request& req) {
    if (ctx.draining.load()) return not_ready(req, "The server is shutting down.");
    if (auto ping = ctx.db.ping(); !ping)
      return not_ready(req, "The database does not answer: " + ping.error().message);
    auto status = storage::migration_status(ctx.db, ctx.migrations);
    if (!status) return not_ready(req, "Cannot read the schema version: " + status.error().message);
    if (!status->up_to_date()) {
      return not_ready(req, "Database schema is at version " + std::to_string(status->current) + ", this build needs " +
                                std::to_string(status->latest) + "; run `atrium migrate`.");
    }
    http::Response r = http::Response::json(200, {{"status", "ready"},
                                                  {"database", storage::backend_name(ctx.db.backend())},
                                                  {"schema_version", status->current}});
    r.headers.set("Cache-Control", "no-store");
    return r;
  });

  router.add(http::Method::get, "/metrics",
             [&ctx](http::Request&) {
               return http::Response::text(200, ctx.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/openapi.json",
             [](http::Request&) { return http::Response::text(200, std::string(openapi_json()), "application/json"); },
             {.execution = http::Execution::io});
}

}  // namespace

void register_routes(http::Router& router, ApiContext& ctx) { register_ops_routes(router, ctx); }

}  // namespace atrium::api
