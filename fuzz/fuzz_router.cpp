// Fuzzes request routing (src/http/router.cpp), which every request goes through before any check: Atrium's own
// route table (the paths of docs/openapi.yaml, each with GET, POST and DELETE), and patterns taken from the input.
// Input: a method byte, then the path; after a NUL byte, patterns to add, one per line (malformed ones must be
// refused with std::invalid_argument, nothing else). A found route's pattern, with the captured parameters put
// back, must spell the requested path exactly; a parameter never captures an empty segment or a '/'; a literal
// route wins over a parameter; "method not allowed" always names the methods that are allowed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "check.hpp"
#include "http/router.hpp"

namespace {

using namespace atrium::http;

using atrium::fuzz::check;

constexpr std::string_view k_patterns[] = {
    "/health",
    "/ready",
    "/metrics",
    "/problems/{slug}",
    "/openapi.json",
    "/v1/auth/token",
    "/v1/auth/revoke",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/v1/projects",
    "/v1/projects/{id}",
    "/v1/users",
    "/v1/invitations",
    "/v1/invitations/{id}",
    "/v1/invitations/accept",
    "/v1/users/{id}",
    "/v1/api-keys",
    "/v1/api-keys/{id}",
    "/v1/audit-logs",
    "/v1/webhook-endpoints",
    "/v1/webhook-endpoints/{id}",
    "/v1/webhook-endpoints/{id}/deliveries",
    "/v1/webhook-endpoints/{id}/enable",
    "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver",
    "/v1/email-settings",
    "/v1/settings",
    "/v1/domains",
    "/v1/domains/{id}",
    "/v1/domains/{id}/verify",
    "/v1/domains/{id}/certificate",
    "/v1/reports",
    "/v1/reports/{id}",
    "/v1/plans",
    "/v1/plans/{id}",
    "/v1/coupons",
    "/v1/coupons/{id}",
    "/v1/tax-rates",
    "/v1/usage",
    "/v1/usage/summary",
    "/v1/entitlements",
    "/v1/entitlements/{name}",
    "/v1/meters",
    "/v1/billing-account",
    "/v1/subscriptions",
    "/v1/subscriptions/{id}",
    "/v1/subscriptions/{id}/preview",
    "/v1/subscriptions/{id}/pause",
    "/v1/subscriptions/{id}/resume",
    "/v1/subscriptions/{id}/cancel",
    "/v1/invoices",
    "/v1/invoices/{id}",
    "/v1/invoices/{id}/finalize",
    "/v1/invoices/{id}/pay",
    "/v1/invoices/{id}/void",
    "/v1/invoices/{id}/mark-uncollectible",
    "/v1/invoices/{id}/download",
    "/v1/credit-notes",
    "/v1/test-clocks",
    "/v1/test-clocks/{id}",
    "/v1/test-clocks/{id}/advance",
    "/v1/admin/tenants",
    "/v1/admin/tenants/{id}",
    "/v1/admin/metrics",
    "/v1/admin/audit-logs",
    "/v1/admin/jobs",
    "/v1/admin/jobs/{id}",
    "/v1/admin/billing/run",
    "/v1/admin/jobs/{id}/retry",
};

constexpr std::array<Method, 6> k_methods = {Method::get, Method::head,  Method::post,
                                             Method::put, Method::patch, Method::delete_};

Router atrium_routes() {
  Router router;
  for (auto pattern : k_patterns) {
    for (Method m : {Method::get, Method::post, Method::delete_}) {
      router.add(m, pattern, [](Request&) { return Response{}; });
    }
  }
  return router;
}

// The pattern with each {parameter} replaced by the captured value, in order.
std::string spelled(std::string_view pattern, const Router::Match& match) {
  std::string out;
  std::size_t next = 0;
  while (!pattern.empty()) {
    pattern.remove_prefix(1);  // '/'
    const auto slash = pattern.find('/');
    const std::string_view segment = pattern.substr(0, slash);
    out += '/';
    if (segment.size() > 2 && segment.front() == '{' && segment.back() == '}') {
      check(next < match.params.size(), "one captured value per parameter");
      check(match.params[next].first == segment.substr(1, segment.size() - 2), "values carry their parameter's name");
      out += match.params[next++].second;
    } else {
      out += segment;
    }
    pattern = slash == std::string_view::npos ? std::string_view{} : pattern.substr(slash);
  }
  check(next == match.params.size(), "no value without a parameter");
  return out;
}

void check_match(const Router& router, Method method, std::string_view path) {
  const auto match = router.match(method, path);
  switch (match.outcome) {
    case Router::Outcome::found:
      check(match.route != nullptr, "a found route is named");
      check(match.route->method == method || (method == Method::head && match.route->method == Method::get),
            "the route answers the method (HEAD falls back to GET)");
      check(spelled(match.route->pattern, match) == path, "the pattern with its values spells the path");
      for (const auto& [name, value] : match.params) {
        check(!value.empty() && value.find('/') == std::string::npos, "a value is one non-empty segment");
      }
      for (const auto& route : router.routes()) {
        if (route->pattern == path && route->pattern.find('{') == std::string::npos && route->method == method) {
          check(match.route == route.get(), "a literal route wins");
        }
      }
      break;
    case Router::Outcome::method_not_allowed:
      check(match.route == nullptr && !match.allow.empty(), "the allowed methods are named");
      check(match.allow.find(method_name(method)) == std::string::npos, "the refused method is not allowed");
      break;
    case Router::Outcome::not_found: check(match.route == nullptr && match.params.empty(), "nothing found"); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const Router routes = atrium_routes();
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Method method = k_methods[data[0] % k_methods.size()];
  const auto nul = input.find('\0');
  const std::string_view path = input.substr(0, nul);
  check_match(routes, method, path);
  if (nul == std::string_view::npos) return 0;

  Router own;
  std::string_view patterns = input.substr(nul + 1);
  while (!patterns.empty()) {
    const auto end = patterns.find('\n');
    const std::string_view pattern = patterns.substr(0, end);
    try {
      own.add(k_methods[pattern.size() % k_methods.size()], pattern, [](Request&) { return Response{}; });
    } catch (const std::invalid_argument&) {
    }
    patterns = end == std::string_view::npos ? std::string_view{} : patterns.substr(end + 1);
  }
  check_match(own, method, path);
  return 0;
}
