#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/platform.hpp"
#include "api/routes.hpp"
#include "api/security.hpp"
#include "core/json.hpp"
#include "gateway/versioning.hpp"
#include "http/dispatcher.hpp"
#include "http/middleware.hpp"

namespace atrium::test {

struct ApiResponse {
  int status = 0;
  Json body;  // null when the body is empty or not JSON
  http::Headers headers;
  std::string raw_body;
  std::string content_type;
};

// Calls the real router and middleware (request id, API version, security, rate limits) in-process, without
// sockets: the same dispatch the server runs for every request (src/app/commands.cpp; keep the two in step).
class ApiClient {
 public:
  explicit ApiClient(api::Platform& platform) {
    http::Router router;
    api::register_routes(router, platform);
    std::vector<http::Middleware> middleware{http::request_id_middleware(platform.clock()),
                                             gateway::versioning_middleware(platform.config().gateway.version_docs_url),
                                             api::security_middleware(platform), platform.rate_limits->middleware()};
    if (platform.api_calls) middleware.push_back(platform.api_calls->middleware());
    dispatcher_ = std::make_shared<http::Dispatcher>(std::move(router), std::move(middleware), JsonLimits{64});
  }

  ApiResponse call(http::Method method, const std::string& target, const std::optional<Json>& body = std::nullopt,
                   const std::string& bearer = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) const {
    http::Request req;
    req.method = method;
    req.method_text = std::string(http::method_name(method));
    req.target = target;
    const auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    req.remote_address = "127.0.0.1";
    if (body) {
      req.body = body->dump();
      req.headers.add("Content-Type", "application/json");
    }
    if (!bearer.empty()) req.headers.add("Authorization", "Bearer " + bearer);
    for (const auto& [n, v] : headers) req.headers.add(n, v);
    auto prepared = dispatcher_->prepare(req);
    http::Response res = dispatcher_->dispatch(req, prepared);
    ApiResponse out;
    out.status = res.status;
    out.headers = res.headers;
    out.raw_body = res.body;
    out.content_type = std::string(res.headers.get("Content-Type").value_or(""));
    std::string error;
    if (!res.body.empty()) out.body = parse_json(res.body, {}, &error).value_or(Json());
    return out;
  }

  const http::Router& router() const { return dispatcher_->router(); }

 private:
  std::shared_ptr<http::Dispatcher> dispatcher_;
};

}  // namespace atrium::test
