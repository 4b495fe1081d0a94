#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "http/forwarding.hpp"
#include "http/router.hpp"
#include "proxy/transforms.hpp"

namespace atrium::proxy {

// The routes file (proxy.routes_file; docs/gateway.md): upstream clusters and the routes that lead to them.
// Immutable once parsed; a reload parses a new table and swaps it in.

enum class Balance { round_robin, least_request };

struct HealthCheck {
  std::string path;  // "" : no active checks
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{1000};
  int unhealthy_threshold = 2;  // failed checks in a row that take an endpoint out
  int healthy_threshold = 1;    // passed checks in a row that bring it back
};

// Passive health: a circuit breaker per endpoint. After `consecutive_failures` failed attempts in a row (no
// connection, reset, timeout, 5xx) the endpoint is ejected for `open` (doubling up to ten times that while it keeps
// failing its trials); then one trial request at a time decides (half-open).
struct Breaker {
  int consecutive_failures = 5;
  std::chrono::milliseconds open{10'000};
};

struct Cluster {
  std::string name;
  std::vector<http::Endpoint> endpoints;
  Balance balance = Balance::round_robin;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds read_timeout{15'000};
  std::chrono::milliseconds tunnel_idle_timeout{300'000};
  int attempts = 3;           // connection attempts; resends of requests that may be sent twice
  bool retry_on_5xx = false;  // such requests also go elsewhere after a 502, 503 or 504
  int max_requests = 10'000;  // requests in flight to the cluster; more are answered 503 at once
  HealthCheck health;
  Breaker breaker;
};

struct HeaderRules {
  std::vector<std::pair<std::string, std::string>> add;  // set (replacing)
  std::vector<std::string> remove;
  std::vector<std::pair<std::string, std::string>> rename;  // from, to
};

// Tenant-aware routing: the first placement a tenant matches (every list set must contain it) names its cluster.
struct Placement {
  std::vector<std::string> plans;
  std::vector<std::string> isolation;  // "shared", "schema", "database"
  std::vector<std::string> tenants;    // ids or slugs
  std::string cluster;
};

struct Route {
  std::string name;
  std::vector<std::string> hosts;     // "" : any; "api.example.com" or "*.example.com" (any subdomain)
  std::string path_prefix;            // either this ("/orders": /orders and /orders/...)
  std::string path;                   // or a template ("/orders/{id}")
  std::vector<http::Method> methods;  // empty: any
  std::string min_version;            // Atrium-Version bounds (dates order as strings); "" : unbounded
  std::string max_version;
  std::string cluster;
  std::vector<Placement> placements;
  // With path_prefix: replaces the prefix; with path: a template filled from its {names}. "" : the path as sent.
  std::string rewrite;
  std::string host_rewrite;  // "" : the client's Host
  bool forward_authorization = false;
  bool audit = false;
  HeaderRules request_headers;
  HeaderRules response_headers;
  HeaderRules query;
  std::vector<VersionChange> versions;  // JSON body transforms for clients pinned to earlier versions
  http::RouteOptions options;           // access, permission, cost: what the edge checks
  std::string permission;               // options.permission views this
};

struct Table {
  std::map<std::string, Cluster> clusters;
  std::vector<Route> routes;
};

// Parses the routes file's TOML text. Errors: invalid_argument naming `source` and what is wrong.
Result<std::shared_ptr<const Table>> parse_table(std::string_view text, std::string_view source);
Result<std::shared_ptr<const Table>> load_table(const std::string& path);

// The first route a request head matches, or null. `current_version` stands for a request without Atrium-Version.
const Route* match_route(const Table& table, const http::RequestHead& head, std::string_view current_version);

// The path and query sent upstream: the route's rewrite and query rules applied.
std::string upstream_target(const Route& route, std::string_view path, std::string_view query);

}  // namespace atrium::proxy
