// Operations endpoints: liveness, readiness, metrics, the API description.
#include <map>
#include <string>
#include <vector>

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

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// The problem types of the API description's table ("| status | /problems/<slug> | when |"), by slug: each row's
// status and explanation. Read once from the embedded document, so the pages and the document cannot disagree.
const std::map<std::string, std::vector<std::pair<std::string, std::string>>>& problem_types() {
  static const auto types = [] {
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> out;
    const Json doc = Json::parse(openapi_json(), nullptr, false);
    const std::string description = doc.is_object() ? doc["info"].value("description", "") : "";
    std::string_view rest = description;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      // | 404 | /problems/not-found | no route matches ... |
      if (!line.starts_with("| ")) continue;
      const auto a = line.find(" | /problems/");
      if (a == std::string_view::npos) continue;
      const auto b = line.find(" | ", a + 3);
      if (b == std::string_view::npos) continue;
      const std::string status(line.substr(2, a - 2));
      const std::string slug(line.substr(a + 13, b - (a + 13)));
      std::string_view when = line.substr(b + 3);
      if (when.ends_with(" |")) when.remove_suffix(2);
      out[slug].emplace_back(status, std::string(when));
    }
    return out;
  }();
  return types;
}

}  // namespace

Result<int> readiness(Services& services) {
  if (services.draining.load()) return fail(Errc::unavailable, "The server is shutting down.");
  storage::Database& db = services.db();
  if (auto ping = db.ping(); !ping)
    return fail(Errc::unavailable, "The database does not answer: " + ping.error().message);
  int version = 0;
  for (auto set : {storage::MigrationSet::control_plane, storage::MigrationSet::tenant}) {
    auto status = storage::migration_status(db, storage::builtin_migrations(db.backend(), set), set);
    if (!status) return fail(Errc::unavailable, "Cannot read the schema version: " + status.error().message);
    // A schema ahead of this build is served: migrations only add (never drop or rename), so the release before
    // keeps working while a rollout replaces it, and after a rollback (docs/operations.md, "Migrations, rollouts
    // and rollbacks").
    if (status->current < status->latest) {
      return fail(Errc::unavailable, "Database schema is at version " + std::to_string(status->current) +
                                         ", this build needs " + std::to_string(status->latest) +
                                         "; run `atrium migrate`.");
    }
    if (set == storage::MigrationSet::control_plane) version = status->current;
  }
  return version;
}

void register_ops_routes(http::Router& router, Services& services) {
  router.add(http::Method::get, "/health",
             [](http::Request&) {
               http::Response r = http::Response::json(200, {{"status", "ok"}});
               r.headers.set("Cache-Control", "no-store");
               return r;
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/ready", [&services](http::Request& req) {
    auto ready = readiness(services);
    if (!ready) return not_ready(req, ready.error().message);
    http::Response r = http::Response::json(200, {{"status", "ready"},
                                                  {"database", storage::backend_name(services.db().backend())},
                                                  {"schema_version", *ready}});
    r.headers.set("Cache-Control", "no-store");
    return r;
  });

  router.add(http::Method::get, "/metrics",
             [&services](http::Request&) {
               return http::Response::text(200, services.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
             },
             {.execution = http::Execution::io});

  // The page a problem's `type` URI names (RFC 9457 section 3.1.1: when dereferenced, documentation for humans).
  router.add(http::Method::get, "/problems/{slug}",
             [](http::Request& req) {
               const auto& types = problem_types();
               const auto it = types.find(std::string(req.param("slug")));
               if (it == types.end()) {
                 return http::problem(404, "not-found", "Not Found", "No problem type is named " + req.path + ".", req);
               }
               const std::string name = html_escape("/problems/" + it->first);
               std::string page = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + name +
                                  "</title></head>\n<body>\n<h1>" + name + "</h1>\n<dl>\n";
               for (const auto& [status, when] : it->second) {
                 page += "<dt>HTTP " + html_escape(status) + "</dt><dd>" + html_escape(when) + "</dd>\n";
               }
               page +=
                   "</dl>\n<p>Answers of this type are <code>application/problem+json</code> (RFC 9457); the full API "
                   "description is <a href=\"/openapi.json\">/openapi.json</a>.</p>\n</body></html>\n";
               http::Response r = http::Response::text(200, std::move(page), "text/html; charset=utf-8");
               r.headers.set("Content-Security-Policy", "default-src 'none'");
               r.headers.set("Cache-Control", "public, max-age=86400");
               return r;
             },
             {.execution = http::Execution::io});

  router.add(http::Method::get, "/openapi.json",
             [](http::Request&) { return http::Response::text(200, std::string(openapi_json()), "application/json"); },
             {.execution = http::Execution::io});
}

void register_routes(http::Router& router, Services& services) {
  register_ops_routes(router, services);
  register_auth_routes(router, services);
  register_project_routes(router, services);
  register_user_routes(router, services);
  register_admin_routes(router, services);
  register_audit_routes(router, services);
  register_job_routes(router, services);
  register_billing_routes(router, services);
  register_usage_routes(router, services);
  register_analytics_routes(router, services);
  register_tenant_routes(router, services);
  register_console_routes(router, services);
  register_churn_routes(router, services);
  register_privacy_routes(router, services);
}

}  // namespace atrium::api
