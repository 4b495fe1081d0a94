#include "http/dispatcher.hpp"

#include <exception>

#include "core/log.hpp"
#include "http/problem.hpp"

namespace atrium::http {

namespace {

bool is_json_media_type(std::string_view content_type) {
  const auto semi = content_type.find(';');
  std::string_view type = content_type.substr(0, semi);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  if (iequals(type, "application/json")) return true;
  return type.size() > 5 && iequals(type.substr(type.size() - 5), "+json") &&
         iequals(type.substr(0, 12), "application/");
}

// A name for a detail message: quoted, at most 100 bytes of it.
std::string shown_name(std::string_view name) {
  constexpr std::size_t k_shown = 100;
  std::string out = "\"";
  out += name.substr(0, k_shown);
  if (name.size() > k_shown) out += "...";
  out += '"';
  return out;
}

constexpr std::string_view k_nul = " contains a NUL character (U+0000)";

// Why the request's path or query parameters cannot be used, or nullopt. A NUL byte (%00 once decoded) never
// reaches a handler: C strings and libpq would cut the value short, so a lookup and a check of the same input
// could disagree.
std::optional<std::string> nul_in_parameters(const Request& request) {
  for (const auto& [name, value] : request.params) {
    if (value.find('\0') != std::string::npos) return "path parameter " + shown_name(name) + std::string(k_nul);
  }
  for (const auto& [name, value] : request.query_params()) {
    if (name.find('\0') != std::string::npos) return "a query parameter name" + std::string(k_nul);
    if (value.find('\0') != std::string::npos) return "query parameter " + shown_name(name) + std::string(k_nul);
  }
  return std::nullopt;
}

}  // namespace

Dispatcher::Dispatcher(Router router, std::vector<Middleware> middleware, JsonLimits json_limits)
    : router_(std::move(router)), middleware_(std::move(middleware)), json_limits_(json_limits) {}

Dispatcher::Prepared Dispatcher::prepare(Request& request) const {
  Prepared p;
  p.match = router_.match(request.method, request.path);
  if (p.match.outcome == Router::Outcome::found) {
    request.route = p.match.route->pattern;
    request.params = p.match.params;
    request.options = &p.match.route->options;
    p.execution = p.match.route->options.execution;
  }
  return p;
}

Response Dispatcher::run(Request& request, const Next& terminal) const {
  // A handler that throws is a bug; it must cost one 500, not the process. The guard sits inside the middleware
  // so the 500 still gets its request id, log line and metrics.
  const Next guarded = [&terminal](Request& req) -> Response {
    try {
      return terminal(req);
    } catch (const std::exception& e) {
      log::error("unhandled exception", {{"request_id", req.request_id}, {"route", req.route}, {"error", e.what()}});
    } catch (...) {
      log::error("unhandled exception", {{"request_id", req.request_id}, {"route", req.route}});
    }
    return problem(500, "internal", "Internal Server Error", "The server failed to handle the request.", req);
  };
  // Middleware i receives a callable that runs i+1..n and then the guarded terminal.
  std::function<Response(std::size_t, Request&)> step = [&](std::size_t i, Request& req) -> Response {
    if (i == middleware_.size()) return guarded(req);
    return middleware_[i](req, [&step, i](Request& r) { return step(i + 1, r); });
  };
  try {
    return step(0, request);
  } catch (const std::exception& e) {
    log::error("middleware exception", {{"request_id", request.request_id}, {"error", e.what()}});
  } catch (...) {
    log::error("middleware exception", {{"request_id", request.request_id}});
  }
  return problem(500, "internal", "Internal Server Error", "The server failed to handle the request.", request);
}

Response Dispatcher::dispatch(Request& request, const Prepared& prepared) const {
  const Router::Match& match = prepared.match;
  return run(request, [&](Request& req) -> Response {
    switch (match.outcome) {
      case Router::Outcome::not_found:
        return problem(404, "not-found", "Not Found", "No route matches " + req.path + ".", req);
      case Router::Outcome::method_not_allowed: {
        Response r = problem(
            405, "method-not-allowed", "Method Not Allowed",
            std::string(req.method_text) + " is not allowed on " + req.path + "; allowed: " + match.allow + ".", req);
        r.headers.set("Allow", match.allow);
        return r;
      }
      case Router::Outcome::found: break;
    }
    const Route& route = *match.route;
    if (auto nul = nul_in_parameters(req)) return problem(400, "validation", "Invalid Request", *nul, req);
    if (route.options.json_body) {
      const auto content_type = req.headers.get("Content-Type");
      if (!content_type || !is_json_media_type(*content_type)) {
        return problem(415, "unsupported-media-type", "Unsupported Media Type",
                       "The request body must be application/json.", req);
      }
      std::string error;
      std::optional<std::string> nul_pointer;
      JsonLimits limits = json_limits_;
      limits.reject_nul = true;  // no string of a request body holds U+0000
      auto parsed = parse_json(req.body, limits, &error, &nul_pointer);
      if (!parsed && nul_pointer) return problem(400, "validation", "Invalid Request", "body: " + error, req);
      if (!parsed) return problem(400, "malformed-json", "Malformed JSON", error, req);
      req.json = std::move(*parsed);
    }
    return route.handler(req);
  });
}

Response Dispatcher::reject(Request& request, int status, std::string_view type_slug, std::string_view title,
                            std::string_view detail) const {
  return run(request, [&](Request& req) { return problem(status, type_slug, title, detail, req); });
}

}  // namespace atrium::http
