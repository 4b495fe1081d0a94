// /console: the web console's files (web/, compiled in; console/assets.hpp). The console is a client of the public
// API like any other: these routes serve files only, and every figure it shows comes from /v1.
#include "api/routes.hpp"
#include "console/assets.hpp"
#include "http/problem.hpp"
#include "tenancy/settings.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_directory.hpp"
#include "tenancy/tenant_ref.hpp"

namespace atrium::api {

namespace {

// Scripts and styles from the console's own files only (no inline script, no eval), data from the API of the same
// origin, no plugins, no <base>, no form posts elsewhere. `frame-ancestors` is appended per page.
constexpr std::string_view k_csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'";

// Whether the client takes gzip: a gzip (or *) coding in Accept-Encoding whose q is not 0 (RFC 9110 section 12.5.3).
bool accepts_gzip(const http::Request& req) {
  const auto header = req.headers.list("Accept-Encoding");
  if (!header) return false;
  std::string_view rest = *header;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const auto semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (!http::iequals(coding, "gzip") && coding != "*") continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    const auto q = params.find("q=");
    if (q == std::string_view::npos) return true;
    const auto value = params.substr(q + 2);
    return !(value.starts_with("0") && value.find_first_of("123456789") == std::string_view::npos);
  }
  return false;
}

http::Response file(const console::Asset& asset, const http::Request& req) {
  const bool packed = !asset.gzip.empty() && accepts_gzip(req);
  auto res = http::Response::text(200, std::string(packed ? asset.gzip : asset.body), std::string(asset.content_type));
  if (packed) res.headers.set("Content-Encoding", "gzip");
  if (!asset.gzip.empty()) res.headers.set("Vary", "Accept-Encoding");
  res.headers.set("Cache-Control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  return res;
}

http::Response not_built(const http::Request& req) {
  return http::problem(404, "not-found", "Not Found",
                       "This binary was built without the web console (ATRIUM_CONSOLE=OFF).", req);
}

// The console's page with its policy: `frame_ancestors` is the CSP source list of pages that may frame it.
http::Response page(const http::Request& req, const std::string& frame_ancestors) {
  const auto* index = console::find_asset("index.html");
  if (index == nullptr) return not_built(req);
  auto res = file(*index, req);
  res.headers.set("Content-Security-Policy", std::string(k_csp) + "; frame-ancestors " + frame_ancestors);
  res.headers.set("Referrer-Policy", "no-referrer");
  res.headers.set("Cross-Origin-Opener-Policy", "same-origin");
  if (frame_ancestors == "'none'") res.headers.set("X-Frame-Options", "DENY");
  return res;
}

}  // namespace

void register_console_routes(http::Router& router, Services& services) {
  router.add(http::Method::get, "/console", [](http::Request& req) { return page(req, "'none'"); },
             {.execution = http::Execution::io, .cost = 0});
  router.add(http::Method::get, "/console/assets/{file}",
             [](http::Request& req) -> http::Response {
               const auto* asset = console::find_asset("assets/" + std::string(req.param("file")));
               if (asset == nullptr) {
                 if (console::assets().empty()) return not_built(req);
                 return http::problem(404, "not-found", "Not Found", "The console has no file " + req.path + ".", req);
               }
               return file(*asset, req);
             },
             {.execution = http::Execution::io, .cost = 0});
  // A dashboard embedded in the tenant's own product: the same page, framable by the origins the tenant lists in
  // its settings (embed_frame_ancestors). It reads the embed token from the URL's fragment, never sent here.
  router.add(http::Method::get, "/console/embed/{tenant}", [&services](http::Request& req) -> http::Response {
    auto tenant = services.directory->resolve(tenancy::parse_tenant_ref(req.param("tenant")));
    if (!tenant || !*tenant || (*tenant)->status != tenancy::TenantStatus::active) {
      return http::problem(404, "not-found", "Not Found", "No active tenant is named " + req.path + ".", req);
    }
    std::string ancestors;
    for (const auto& origin : (*tenant)->settings.embed_frame_ancestors) {
      ancestors += (ancestors.empty() ? "" : " ") + origin;
    }
    return page(req, ancestors.empty() ? "'none'" : ancestors);
  });
}

}  // namespace atrium::api
