// Operations endpoints: liveness, readiness, metrics, the API description.
#include "api/openapi.hpp"
#include "api/routes.hpp"
#include "http/problem.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"

namespace atrium::api {

namespace {

http::Response not_ready(const http::Request& req, const std::string& reason) {
  http::Response r = http::problem(503, "not-ready", "Service Unavailable", reason, req);
  r.headers.set("Cache-Control", "no-store");
  return r;
}

}  // namespace

void register_ops_routes(http::Router& router, Platform& platform) {
  router.add(http::Method::get, "/health",
             [](http::Request&) {
               http::Response r = http::Response::json(200, {{"status", "ok"}});
               r.headers.set("Cache-Control", "no-store");
               return r;
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/ready", [&platform](http::Request& req) {
    if (platform.draining.load()) return not_ready(req, "The server is shutting down.");
    storage::Database& db = platform.db();
    if (auto ping = db.ping(); !ping) return not_ready(req, "The database does not answer: " + ping.error().message);
    int version = 0;
    for (auto set : {storage::MigrationSet::control_plane, storage::MigrationSet::tenant}) {
      auto status = storage::migration_status(db, storage::builtin_migrations(db.backend(), set), set);
      if (!status) return not_ready(req, "Cannot read the schema version: " + status.error().message);
      if (!status->up_to_date()) {
        return not_ready(req, "Database schema is at version " + std::to_string(status->current) +
                                  ", this build needs " + std::to_string(status->latest) + "; run `atrium migrate`.");
      }
      if (set == storage::MigrationSet::control_plane) version = status->current;
    }
    http::Response r = http::Response::json(
        200, {{"status", "ready"}, {"database", storage::backend_name(db.backend())}, {"schema_version", version}});
    r.headers.set("Cache-Control", "no-store");
    return r;
  });

  router.add(http::Method::get, "/metrics",
             [&platform](http::Request&) {
               return http::Response::text(200, platform.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/openapi.json",
             [](http::Request&) { return http::Response::text(200, std::string(openapi_json()), "application/json"); },
             {.execution = http::Execution::io});
}

void register_routes(http::Router& router, Platform& platform) {
  register_ops_routes(router, platform);
  register_auth_routes(router, platform);
  register_project_routes(router, platform);
  register_user_routes(router, platform);
  register_admin_routes(router, platform);
  register_audit_routes(router, platform);
  register_job_routes(router, platform);
  register_billing_routes(router, platform);
  register_usage_routes(router, platform);
}

}  // namespace atrium::api
