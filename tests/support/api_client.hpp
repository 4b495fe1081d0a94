#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/dispatch.hpp"
#include "app/platform.hpp"
#include "core/json.hpp"
#include "http/dispatcher.hpp"
#include "support/test_platform.hpp"

namespace atrium::test {

struct ApiResponse {
  int status = 0;
  Json body;  // null when the body is empty or not JSON
  http::Headers headers;
  std::string raw_body;
  std::string content_type;
};

// Calls the real router and middleware in-process, without sockets: the dispatcher `atrium serve` runs
// (app::make_dispatcher), without HTTP metrics and the access log.
class ApiClient {
 public:
  explicit ApiClient(app::Platform& platform) : dispatcher_(app::make_dispatcher(platform)) {}

  ApiResponse call(http::Method method, const std::string& target, const std::optional<Json>& body = std::nullopt,
                   const std::string& bearer = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) const {
    std::vector<std::pair<std::string, std::string>> all;
    if (!bearer.empty()) all.emplace_back("Authorization", "Bearer " + bearer);
    all.insert(all.end(), headers.begin(), headers.end());
    return send(method, target, body ? body->dump() : "", body ? "application/json" : "", all);
  }

  // A request whose body is any text of any media type (`content_type` "": no Content-Type).
  ApiResponse send(http::Method method, const std::string& target, const std::string& body,
                   const std::string& content_type,
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) const {
    http::Request req;
    req.method = method;
    req.method_text = std::string(http::method_name(method));
    req.target = target;
    const auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    req.remote_address = "127.0.0.1";
    req.body = body;
    if (!content_type.empty()) req.headers.add("Content-Type", content_type);
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

  // Signing in as the tests do: the password grant, naming `tenant` (slug or id) when not empty, with `headers`
  // besides (a Host). The answer as it came; its body holds access_token and refresh_token on 200.
  ApiResponse password_grant(const std::string& email, const std::string& password, const std::string& tenant = "",
                             const std::vector<std::pair<std::string, std::string>>& headers = {}) const {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    return call(http::Method::post, "/v1/auth/token", body, "", headers);
  }

  // The access token of a password grant that must succeed; a failure fails the calling test (the token is then "").
  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant = "") const {
    auto r = password_grant(email, password, tenant);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body.value("access_token", "");
  }

 private:
  std::shared_ptr<const http::Dispatcher> dispatcher_;
};

}  // namespace atrium::test
