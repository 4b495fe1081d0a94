#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.hpp"

namespace atrium::identity {
struct Principal;
}
namespace atrium::tenancy {
struct Tenant;
}

namespace atrium::http {

struct RouteOptions;

enum class Method { get, head, post, put, patch, delete_, options, other };

std::string_view method_name(Method m);
Method parse_method(std::string_view text);

// Header fields in arrival order. Lookups are case-insensitive (RFC 9110).
class Headers {
 public:
  std::optional<std::string_view> get(std::string_view name) const;
  // Every field line of that name joined with ", " (RFC 9110 section 5.3: one list); nullopt when there is none.
  std::optional<std::string> list(std::string_view name) const;
  // Replaces every field of that name.
  void set(std::string_view name, std::string value);
  void erase(std::string_view name);
  void add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

bool iequals(std::string_view a, std::string_view b);

// A request as handlers see it; independent of the HTTP library underneath.
struct Request {
  Method method = Method::get;
  std::string method_text;  // as received, for logs
  std::string target;       // path and query as received
  std::string path;         // target up to '?'
  std::string query;        // after '?', not decoded
  Headers headers;
  std::string body;
  std::string remote_address;
  bool keep_alive = true;

  // Filled in by the server and the middleware pipeline.
  std::string request_id;
  std::string route;  // the matched route template, e.g. "/v1/projects/{id}"; empty when nothing matched
  std::vector<std::pair<std::string, std::string>> params;
  std::optional<Json> json;               // the decoded body, for routes that accept JSON
  const RouteOptions* options = nullptr;  // the matched route's options
  // The Atrium-Version the request asked for (or, when it named none, the tenant's pinned one, else the current
  // one), set by the versioning middleware on /v1 paths and by the security middleware for a pinned tenant; ""
  // elsewhere. Dates order as strings. See gateway/versioning.hpp.
  std::string_view api_version;
  bool api_version_named = false;  // the request named its version (Atrium-Version): no pin applies

  // Set by the security middleware on routes that require them.
  std::shared_ptr<const identity::Principal> principal;
  std::shared_ptr<const tenancy::Tenant> tenant;
  // Set by the security middleware with the principal: whether that caller, in this tenant, may call a route with
  // these options. Unset: nobody was authenticated, only open routes may be called.
  std::function<bool(const RouteOptions&)> may_call;

  std::string_view param(std::string_view name) const;
  // The decoded value of a query parameter, or nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
  // Every query parameter, names and values decoded, in order (a name may repeat).
  std::vector<std::pair<std::string, std::string>> query_params() const;
};

// Decodes application/x-www-form-urlencoded text (a query string or a form body): "+" is a space, "%XX" a byte;
// pairs in order, a name may repeat.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  static Response json(int status, const Json& body);
  static Response text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
};

}  // namespace atrium::http
