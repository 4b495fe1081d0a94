#include "http/dispatcher.hpp"

#include <cstdint>
#include <exception>
#include <optional>

#include "core/hash.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
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

// A strong validator for a representation (RFC 9110 section 8.8.3): 128 bits of the SHA-256 of the body.
std::string entity_tag(std::string_view body) { return "\"" + sha256_hex(body).substr(0, 32) + "\""; }

// Whether an If-Match / If-None-Match field value ("*" or a list of entity-tags) lists `tag`. `weak`: the weak
// comparison (If-None-Match: W/"x" matches "x"); otherwise the strong one (If-Match: a weak tag matches nothing).
bool lists_tag(std::string_view field, const std::string& tag, bool weak) {
  std::string_view rest = field;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == "*") return true;
    if (item.starts_with("W/")) {
      if (!weak) continue;
      item.remove_prefix(2);
    }
    if (item == tag) return true;
  }
  return false;
}

bool changes_state(Method m) {
  return m == Method::put || m == Method::patch || m == Method::delete_ || m == Method::post;
}

bool is_form_media_type(std::string_view content_type) {
  const auto semi = content_type.find(';');
  std::string_view type = content_type.substr(0, semi);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return iequals(type, "application/x-www-form-urlencoded");
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
      if (auto refused = decode_body(req, route.options)) return std::move(*refused);
    }
    if (req.method == Method::get || req.method == Method::head) {
      Response res = route.handler(req);
      if (res.status == 200) conditional_get(req, res);
      return res;
    }
    if (changes_state(req.method) && (req.headers.get("If-Match") || req.headers.get("If-None-Match"))) {
      if (auto refused = check_preconditions(req)) return std::move(*refused);
    }
    return route.handler(req);
  });
}

void Dispatcher::conditional_get(const Request& req, Response& res) const {
  const std::string tag = entity_tag(res.body);
  res.headers.set("ETag", tag);
  const auto none_match = req.headers.list("If-None-Match");
  if (none_match && lists_tag(*none_match, tag, true)) {
    // 304: no body; the validator and caching fields stay (RFC 9110 section 15.4.5).
    res.status = 304;
    res.body.clear();
    res.headers.erase("Content-Type");
  }
}

std::optional<Response> Dispatcher::check_preconditions(const Request& req) const {
  // The target's current representation: what its GET route answers now, to this caller.
  std::optional<std::string> current;
  const Router::Match get = router_.match(Method::get, req.path);
  // A caller who may not read the target (another permission, another kind of route) learns nothing about it: for
  // them it has no current representation.
  const bool readable = get.outcome == Router::Outcome::found && (get.route->options.access == Access::open ||
                                                                  (req.may_call && req.may_call(get.route->options)));
  if (readable) {
    Request read = req;
    read.method = Method::get;
    read.method_text = "GET";
    read.params = get.params;
    read.options = &get.route->options;
    read.json.reset();
    read.body.clear();
    const Response answer = get.route->handler(read);
    if (answer.status == 200) current = entity_tag(answer.body);
  }
  // RFC 9110 section 13.2.2: If-Match first, then If-None-Match.
  if (const auto match = req.headers.list("If-Match")) {
    const bool holds = current && lists_tag(*match, *current, false);
    if (!holds) {
      return problem(412, "precondition-failed", "Precondition Failed",
                     current ? "If-Match lists no current entity tag of the resource: it changed since it was read."
                             : "If-Match: the resource has no current representation.",
                     req);
    }
  }
  if (const auto none_match = req.headers.list("If-None-Match")) {
    if (current && lists_tag(*none_match, *current, true)) {
      return problem(412, "precondition-failed", "Precondition Failed",
                     "If-None-Match lists the resource's current entity tag (or *, and the resource exists).", req);
    }
  }
  return std::nullopt;
}

std::optional<Response> Dispatcher::decode_body(Request& req, const RouteOptions& options) const {
  const auto refuse = [&](int status, std::string_view slug, std::string_view title, std::string_view detail) {
    if (!options.oauth_body) return problem(status, slug, title, detail, req);
    return problem(status, slug, title, detail, req, Json{{"error", "invalid_request"}, {"error_description", detail}});
  };
  const auto content_type = req.headers.get("Content-Type");
  if (options.oauth_body && content_type && is_form_media_type(*content_type)) {
    Json object = Json::object();
    for (auto& [name, value] : parse_form(req.body)) {
      if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
        return refuse(400, "validation", "Invalid Request", "body: a parameter holds a NUL character");
      }
      if (!valid_utf8(name) || !valid_utf8(value)) {
        return refuse(400, "validation", "Invalid Request", "body: a parameter is not UTF-8");
      }
      if (object.contains(name)) {
        return refuse(400, "validation", "Invalid Request", "body: parameter " + shown_name(name) + " is repeated");
      }
      object[name] = std::move(value);
    }
    req.json = std::move(object);
    return std::nullopt;
  }
  if (!content_type || !is_json_media_type(*content_type)) {
    return refuse(415, "unsupported-media-type", "Unsupported Media Type",
                  options.oauth_body ? "The request body must be application/x-www-form-urlencoded or application/json."
                                     : "The request body must be application/json.");
  }
  std::string error;
  std::optional<std::string> nul_pointer;
  JsonLimits limits = json_limits_;
  limits.reject_nul = true;  // no string of a request body holds U+0000
  auto parsed = parse_json(req.body, limits, &error, &nul_pointer);
  if (!parsed && nul_pointer) return refuse(400, "validation", "Invalid Request", "body: " + error);
  if (!parsed) return refuse(400, "malformed-json", "Malformed JSON", error);
  req.json = std::move(*parsed);
  return std::nullopt;
}

Response Dispatcher::reject(Request& request, int status, std::string_view type_slug, std::string_view title,
                            std::string_view detail) const {
  return run(request, [&](Request& req) { return problem(status, type_slug, title, detail, req); });
}

}  // namespace atrium::http
