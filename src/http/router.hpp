#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace atrium::http {

using Handler = std::function<Response(Request&)>;

// Where a route's handler runs. `io` handlers must not block (no database, no files): they run on the I/O
// thread that read the request. `worker` handlers run on the worker pool so database work never stalls I/O.
enum class Execution { io, worker };

// Who may call a route; enforced by the security middleware (api/security.cpp).
enum class Access {
  open,                // anyone
  authenticated,       // any valid credentials (token or API key)
  tenant,              // credentials and an active tenant context, plus `permission`
  super_admin,         // a super admin's token
  tenant_super_admin,  // a super admin's token acting in the tenant it names (X-Tenant-ID): operator actions on
                       // one tenant's data, such as voiding its invoices
};

struct RouteOptions {
  Execution execution = Execution::worker;
  bool json_body = false;  // decode the body as JSON before the handler runs (400 on bad JSON)
  // With json_body, an OAuth 2.0 endpoint (RFC 6749 section 3.2, RFC 7009): application/x-www-form-urlencoded is
  // accepted too and decoded into request.json as an object of strings (a repeated name is 400), and the
  // problems for a body that cannot be read carry `"error": "invalid_request"` (RFC 6749 section 5.2).
  bool oauth_body = false;
  Access access = Access::open;
  std::string_view permission;  // with Access::tenant: the permission the caller must hold
  // Rate-limit units a request spends (gateway::RateLimits): 0 exempts the route; more than the caller's burst
  // is charged as the burst.
  int cost = 1;
  // When set, replaces `cost` per request (e.g. batch ingestion: by body size). It runs after authentication
  // and before the body is decoded (request.json is not set yet); it must not throw and should be cheap.
  std::function<int(const Request&)> weight;
  // The handler reads Idempotency-Key itself (keeping the answer in the transaction of its change, as POST
  // /v1/projects does), or the route forwards it to an upstream: api's idempotency middleware leaves it alone.
  bool own_idempotency = false;
};

struct Route {
  Method method;
  std::string pattern;  // "/v1/projects/{id}": literal segments and {name} parameters
  Handler handler;
  RouteOptions options;
};

// Maps (method, path) to a route. Literal segments win over parameters at the same depth. HEAD falls back to
// GET. Routes are added at start-up; matching is read-only and thread-safe afterwards.
class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Adds a route. Throws std::invalid_argument (start-up only) on a malformed or duplicate pattern.
  void add(Method method, std::string_view pattern, Handler handler, RouteOptions options = {});

  enum class Outcome { found, not_found, method_not_allowed };
  struct Match {
    Outcome outcome = Outcome::not_found;
    const Route* route = nullptr;                             // set when found
    std::vector<std::pair<std::string, std::string>> params;  // when found
    std::string allow;                                        // "GET, HEAD, POST" when method_not_allowed
  };
  Match match(Method method, std::string_view path) const;

  const std::vector<std::unique_ptr<Route>>& routes() const;

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace atrium::http
