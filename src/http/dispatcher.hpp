#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/json.hpp"
#include "http/message.hpp"
#include "http/router.hpp"

namespace atrium::http {

using Next = std::function<Response(Request&)>;

// The status a terminal answers to admit a request for forwarding (Dispatcher::guard, http/forwarding.hpp): the
// middleware lets it through; the access log and the HTTP metrics skip it (the forwarder records the real answer).
inline constexpr int k_forward_status = 0;
// A step around every request: may act before and after `next`, or answer without calling it.
using Middleware = std::function<Response(Request&, const Next& next)>;

// Turns a parsed request into a response: route lookup, the middleware pipeline, 404/405, JSON body decoding,
// and a guard that turns an escaped exception into a logged 500. Immutable after construction; thread-safe.
class Dispatcher {
 public:
  Dispatcher(Router router, std::vector<Middleware> middleware, JsonLimits json_limits);

  // The route lookup, kept between prepare() and dispatch() so the server can decide where to run the handler.
  struct Prepared {
    Router::Match match;
    Execution execution = Execution::io;
  };

  // Looks up the route and fills request.route and request.params.
  Prepared prepare(Request& request) const;

  // Runs the pipeline and the handler (or the 404/405 answer). Never throws.
  Response dispatch(Request& request, const Prepared& prepared) const;

  // The middleware pipeline around `terminal`, for a request matched elsewhere (a forwarding route: the caller sets
  // request.route and request.options). Never throws.
  Response guard(Request& request, const Next& terminal) const { return run(request, terminal); }

  // Answers a request the server refused before routing (413, 431, 400 on a malformed message) through the same
  // pipeline, so it is logged and counted like any other.
  Response reject(Request& request, int status, std::string_view type_slug, std::string_view title,
                  std::string_view detail) const;

  const Router& router() const { return router_; }

 private:
  Response run(Request& request, const Next& terminal) const;
  // Conditional requests (RFC 9110 section 13) on the entity tag of the target's GET answer: a 200 GET gets ETag
  // and becomes 304 when If-None-Match lists it; a change (POST, PUT, PATCH, DELETE) with If-Match or
  // If-None-Match is refused 412 before its handler runs when the precondition does not hold.
  void conditional_get(const Request& request, Response& response) const;
  std::optional<Response> check_preconditions(const Request& request) const;
  // Decodes the body of a json_body route into request.json; the refusal when it cannot.
  std::optional<Response> decode_body(Request& request, const RouteOptions& options) const;

  Router router_;
  std::vector<Middleware> middleware_;
  JsonLimits json_limits_;
};

}  // namespace atrium::http
