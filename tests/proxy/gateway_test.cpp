// The gateway's policy in process: the routes file's parser and its refusals, route matching, target rewriting,
// and Gateway::admit (edge decision, placement, identity headers, balancing, circuit breakers). The bytes are
// streamed by the server, tested end to end in tests/e2e/gateway_test.py.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "http/problem.hpp"
#include "identity/jwt.hpp"
#include "identity/principal.hpp"
#include "observability/metrics.hpp"
#include "proxy/gateway.hpp"
#include "proxy/table.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::proxy {
namespace {

constexpr std::string_view k_routes = R"(
[clusters.main]
endpoints = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
[clusters.main.circuit_breaker]
consecutive_failures = 2
open_ms = 50

[clusters.least]
endpoints = ["127.0.0.1:9101", "127.0.0.1:9102"]
balance = "least_request"

[clusters.silo]
endpoints = ["[::1]:9201"]

[[routes]]
name = "shop"
hosts = ["*.shop.test"]
path_prefix = "/"
cluster = "main"
access = "open"

[[routes]]
name = "orders-v2"
path_prefix = "/orders"
min_version = "2026-11-01"
cluster = "main"
rewrite = "/v2/orders"
permission = "projects:read"
[[routes.placements]]
plans = ["enterprise"]
cluster = "silo"
[[routes.placements]]
isolation = ["database"]
tenants = ["bigco"]
cluster = "least"

[[routes]]
name = "orders"
path_prefix = "/orders"
cluster = "main"

[[routes]]
name = "item"
path = "/items/{id}/parts/{part}"
methods = ["GET", "PUT"]
cluster = "least"
rewrite = "/internal/{part}/of/{id}"
[routes.query]
rename = { "q" = "query" }
remove = ["secret"]
add = { "via" = "edge gateway" }
[routes.request_headers]
add = { "X-Product" = "shop" }
remove = ["Cookie"]
rename = { "X-Old" = "X-New" }
)";

std::shared_ptr<const Table> table() {
  auto parsed = parse_table(k_routes, "routes.toml");
  EXPECT_TRUE(parsed) << parsed.error().message;
  return *parsed;
}

http::RequestHead head(http::Method m, std::string_view path, std::string_view host = "api.test",
                       std::string_view version = "") {
  return {m, path, host, version};
}

TEST(ProxyTable, ParsesClustersAndRoutes) {
  auto t = table();
  ASSERT_EQ(t->clusters.size(), 3u);
  const auto& main = t->clusters.at("main");
  ASSERT_EQ(main.endpoints.size(), 3u);
  EXPECT_EQ(main.endpoints[1].host, "127.0.0.1");
  EXPECT_EQ(main.endpoints[1].port, 9002);
  EXPECT_EQ(main.endpoints[1].name, "127.0.0.1:9002");
  EXPECT_EQ(main.breaker.consecutive_failures, 2);
  EXPECT_EQ(t->clusters.at("silo").endpoints[0].host, "::1");
  EXPECT_EQ(t->clusters.at("least").balance, Balance::least_request);
  ASSERT_EQ(t->routes.size(), 4u);
  EXPECT_EQ(t->routes[1].options.permission, "projects:read");
  EXPECT_EQ(t->routes[1].options.access, http::Access::tenant);
  EXPECT_EQ(t->routes[0].options.access, http::Access::open);
}

TEST(ProxyTable, RefusesWhatItCannotUseNamingWhere) {
  const std::string cluster = "[clusters.c]\nendpoints = [\"127.0.0.1:1\"]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\ntimeout = 1\n", "unknown key"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"nope\"\n", "not defined"},
      {"[clusters.c]\nendpoints = [\"127.0.0.1:99999\"]\n", "no valid port"},
      {"[clusters.c]\nendpoints = []\n", "at least one"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\npath = \"/b\"\ncluster = \"c\"\n", "exactly one"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\npermission = \"root:all\"\n",
       "not one of Atrium's"},
      {cluster + "[[routes]]\nname = \"r\"\npath = \"/a/{id}\"\ncluster = \"c\"\nrewrite = \"/b/{other}\"\n",
       "which path does not have"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes.placements]]\ncluster = "
                 "\"c\"\n",
       "at least one of plans"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\naccess = \"open\"\naudit = true\n",
       "audit needs"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes]]\nname = \"r\"\n"
                 "path_prefix = \"/b\"\ncluster = \"c\"\n",
       "used twice"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\nmethods = [\"get\"]\n", "methods"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[routes.request_headers]\n"
                 "add = { \"Bad Name\" = \"x\" }\n",
       "not a valid name"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes.versions]]\n"
                 "since = \"2026-13\"\nadded = [\"x\"]\n",
       "since must be a date"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes.versions]]\n"
                 "since = \"2026-13-45\"\nadded = [\"x\"]\n",
       "since must be a date"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes.versions]]\n"
                 "since = \"2026-11-01\"\nrename = { \"data\" = \"old.items\" }\n",
       "rename"},
      {cluster + "[[routes]]\nname = \"r\"\npath_prefix = \"/a\"\ncluster = \"c\"\n[[routes.versions]]\n"
                 "since = \"2026-11-01\"\n",
       "at least one rename"},
      {"[[routes]\n", "TOML"},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = parse_table(text, "routes.toml");
    ASSERT_FALSE(parsed) << text;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos) << parsed.error().message;
    EXPECT_TRUE(parsed.error().message.starts_with("routes.toml: ")) << parsed.error().message;
  }
}

// Version changes (docs/gateway.md, "Versions"): a client pinned before a change gets it undone — in answers the
// newer names renamed back (members before their parents, into every element of arrays) and added members removed;
// in requests its older names renamed forward (parents first). Each change names paths in the shape right after it
// (before later changes). Current clients, and bodies that are not JSON objects or arrays, pass unchanged.
TEST(ProxyVersions, AnswersAndRequestsAreRewrittenForClientsPinnedBeforeEachChange) {
  auto parsed = parse_table(R"([clusters.c]
endpoints = ["127.0.0.1:1"]
[[routes]]
name = "orders"
path_prefix = "/orders"
cluster = "c"
[[routes.versions]]
since = "2026-11-01"
rename = { "data" = "items", "data.amount_cents" = "amount" }
added = ["total_count"]
[[routes.versions]]
since = "2026-09-01"
rename = { "items.currency" = "cur" }
)",
                            "routes.toml");
  ASSERT_TRUE(parsed) << parsed.error().message;
  const auto& changes = (*parsed)->routes.at(0).versions;
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_TRUE(changes_for(changes, "").empty());
  EXPECT_TRUE(changes_for(changes, "2026-11-01").empty());
  EXPECT_EQ(changes_for(changes, "2026-10-01").size(), 1u);
  const auto oldest = changes_for(changes, "2026-06-01");
  ASSERT_EQ(oldest.size(), 2u);
  EXPECT_EQ(oldest[0]->since, "2026-11-01");  // newest first

  const std::string answer =
      R"({"data":[{"id":1,"amount_cents":5,"currency":"EUR"},{"id":2,"amount_cents":7,"currency":"USD"}],"total_count":2})";
  EXPECT_EQ(parse_json(*answer_for_client(oldest, answer), {}, nullptr),
            Json::parse(R"({"items":[{"id":1,"amount":5,"cur":"EUR"},{"id":2,"amount":7,"cur":"USD"}]})"));
  EXPECT_EQ(parse_json(*answer_for_client(changes_for(changes, "2026-10-01"), answer), {}, nullptr),
            Json::parse(R"({"items":[{"id":1,"amount":5,"currency":"EUR"},{"id":2,"amount":7,"currency":"USD"}]})"));
  const std::string request = R"({"items":[{"amount":3,"cur":"EUR"}],"note":"x"})";
  EXPECT_EQ(parse_json(*request_for_upstream(oldest, request), {}, nullptr),
            Json::parse(R"({"data":[{"amount_cents":3,"currency":"EUR"}],"note":"x"})"));
  EXPECT_FALSE(answer_for_client(oldest, "not json"));
  EXPECT_FALSE(answer_for_client(oldest, "42"));
  EXPECT_FALSE(request_for_upstream(oldest, ""));
}

TEST(ProxyTable, MatchesByHostPathMethodAndVersionInFileOrder) {
  auto t = table();
  const auto name = [&](const http::RequestHead& h) {
    const Route* r = match_route(*t, h, "2026-11-01");
    return r == nullptr ? std::string("-") : r->name;
  };
  EXPECT_EQ(name(head(http::Method::get, "/x", "a.shop.test")), "shop");
  EXPECT_EQ(name(head(http::Method::get, "/x", "shop.test")), "-");  // *.shop.test is a subdomain only
  EXPECT_EQ(name(head(http::Method::get, "/orders")), "orders-v2");  // no Atrium-Version: the current one
  EXPECT_EQ(name(head(http::Method::get, "/orders/7", "api.test", "2026-06-01")), "orders");
  EXPECT_EQ(name(head(http::Method::get, "/ordersx")), "-");  // a prefix ends at a segment
  EXPECT_EQ(name(head(http::Method::get, "/items/1/parts/2")), "item");
  EXPECT_EQ(name(head(http::Method::head, "/items/1/parts/2")), "item");  // HEAD with GET
  EXPECT_EQ(name(head(http::Method::post, "/items/1/parts/2")), "-");
  EXPECT_EQ(name(head(http::Method::get, "/items/1/parts")), "-");
  EXPECT_EQ(name(head(http::Method::get, "/items//parts/2")), "-");
}

TEST(ProxyTable, RewritesPathsAndQueries) {
  auto t = table();
  EXPECT_EQ(upstream_target(t->routes[1], "/orders/7", "a=1"), "/v2/orders/7?a=1");
  EXPECT_EQ(upstream_target(t->routes[1], "/orders", ""), "/v2/orders");
  EXPECT_EQ(upstream_target(t->routes[2], "/orders/7", ""), "/orders/7");
  EXPECT_EQ(upstream_target(t->routes[3], "/items/1/parts/2", "q=shoe&secret=s&page=2&q2=x"),
            "/internal/2/of/1?query=shoe&page=2&q2=x&via=edge%20gateway");
}

// A Gateway on a routes file, whose pipeline admits as `who` in `tenant` (or refuses with `refusal`).
struct Fixture {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("atrium-proxy-test-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(reinterpret_cast<std::uintptr_t>(this)));
  ManualClock clock{std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))};
  metrics::Registry registry;
  std::shared_ptr<identity::Principal> who = std::make_shared<identity::Principal>();
  std::shared_ptr<tenancy::Tenant> tenant = std::make_shared<tenancy::Tenant>();
  std::optional<http::Response> refusal;
  int signatures = 0;
  bool signing_fails = false;
  std::unique_ptr<Gateway> gateway;

  Fixture() {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "routes.toml") << k_routes;
    who->subject = "user-1";
    who->role = "member";
    who->permissions = {"projects:read", "projects:write"};
    tenant->id = "tenant-1";
    tenant->slug = "acme";
    tenant->plan = "pro";
    Hooks hooks;
    hooks.guard = [this](http::Request& request, const http::Next& terminal) {
      if (refusal) return *refusal;
      request.principal = who;
      request.tenant = tenant;
      http::Response r = terminal(request);
      r.headers.set("RateLimit", "\"default\";r=99;t=0");
      r.headers.set("Cache-Control", "no-store");
      return r;
    };
    hooks.sign = [this](const identity::AccessClaims& claims) -> Result<std::string> {
      ++signatures;
      if (signing_fails) return fail(Errc::unavailable, "no signing key");
      if (claims.aud != "atrium-upstream" || claims.exp - claims.iat != 60) return fail(Errc::internal, "claims");
      return "signed." + claims.sub + "." + claims.tenant_id;
    };
    gateway = std::make_unique<Gateway>(Options{.routes_file = (dir / "routes.toml").string(),
                                                .issuer = "atrium",
                                                .token_audience = "atrium-upstream",
                                                .token_ttl = std::chrono::seconds(60)},
                                        std::move(hooks), clock, registry);
    auto loaded = gateway->load();
    EXPECT_TRUE(loaded) << loaded.error().message;
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  std::variant<http::Response, std::shared_ptr<http::Exchange>> admit(http::Method m, std::string path,
                                                                      http::Headers headers = {}) {
    http::Request request;
    request.method = m;
    request.method_text = std::string(http::method_name(m));
    request.path = path.substr(0, path.find('?'));
    request.query = path.find('?') == std::string::npos ? "" : path.substr(path.find('?') + 1);
    request.target = path;
    request.headers = std::move(headers);
    request.remote_address = "10.0.0.9";
    request.request_id = "req-1";
    auto route = gateway->match({m, request.path, "api.test", ""});
    EXPECT_TRUE(route) << path;
    if (!route) return http::Response{};
    return gateway->admit(request, route);
  }

  std::shared_ptr<http::Exchange> exchange(http::Method m, std::string path, http::Headers headers = {}) {
    auto decided = admit(m, std::move(path), std::move(headers));
    EXPECT_TRUE(std::holds_alternative<std::shared_ptr<http::Exchange>>(decided));
    if (!std::holds_alternative<std::shared_ptr<http::Exchange>>(decided)) return nullptr;
    return std::get<std::shared_ptr<http::Exchange>>(decided);
  }
};

TEST(ProxyGateway, ARefusalOfThePipelineIsTheAnswerAndNothingIsPicked) {
  Fixture f;
  http::Request r;
  f.refusal = http::problem(429, "rate-limited", "Too Many Requests", "slow down", r);
  auto decided = f.admit(http::Method::get, "/orders/1");
  ASSERT_TRUE(std::holds_alternative<http::Response>(decided));
  EXPECT_EQ(std::get<http::Response>(decided).status, 429);
  EXPECT_EQ(f.signatures, 0);
}

TEST(ProxyGateway, TheUpstreamGetsTheVerifiedIdentityAndNeverTheClientsCopy) {
  Fixture f;
  http::Headers sent;
  sent.add("x-atrium-tenant-id", "someone-else");
  sent.add("X-Atrium-Role", "owner");
  sent.add("X-Atrium-Identity", "forged");
  sent.add("X-Request-Id", "client-id");
  sent.add("Authorization", "Bearer secret");
  sent.add("X-Forwarded-For", "1.2.3.4");
  sent.add("Cookie", "a=b");
  sent.add("X-Old", "v");
  sent.add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  auto ex = f.exchange(http::Method::get, "/items/1/parts/2?q=z", sent);
  ASSERT_TRUE(ex);
  const auto& h = ex->headers;
  EXPECT_EQ(h.get("X-Atrium-Tenant-Id"), "tenant-1");
  EXPECT_EQ(h.get("X-Atrium-Tenant-Slug"), "acme");
  EXPECT_EQ(h.get("X-Atrium-Isolation"), "shared");
  EXPECT_EQ(h.get("X-Atrium-Plan"), "pro");
  EXPECT_EQ(h.get("X-Atrium-Role"), "member");
  EXPECT_EQ(h.get("X-Atrium-Subject"), "user-1");
  EXPECT_EQ(h.get("X-Atrium-Subject-Type"), "user");
  EXPECT_EQ(h.get("X-Atrium-Permissions"), "projects:read,projects:write");
  EXPECT_EQ(h.get("X-Atrium-Identity"), "signed.user-1.tenant-1");
  EXPECT_EQ(h.get("X-Request-Id"), "req-1");
  EXPECT_EQ(h.get("X-Forwarded-For"), "1.2.3.4, 10.0.0.9");
  EXPECT_FALSE(h.get("Authorization"));
  EXPECT_FALSE(h.get("Cookie"));
  EXPECT_FALSE(h.get("X-Old"));
  EXPECT_EQ(h.get("X-New"), "v");
  EXPECT_EQ(h.get("X-Product"), "shop");
  const auto trace = std::string(h.get("traceparent").value_or(""));
  EXPECT_TRUE(trace.starts_with("00-0af7651916cd43dd8448eb211c80319c-")) << trace;
  EXPECT_NE(trace, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  int identity_fields = 0;
  for (const auto& [name, value] : h.fields()) identity_fields += http::iequals(name, "X-Atrium-Role");
  EXPECT_EQ(identity_fields, 1);
  EXPECT_EQ(ex->target, "/internal/2/of/1?query=z&via=edge%20gateway");
  // The edge's answer fields go back, but caching is the upstream's to say.
  EXPECT_TRUE(ex->response_headers.get("RateLimit"));
  EXPECT_FALSE(ex->response_headers.get("Cache-Control"));
  // One signature per caller for half the token's life.
  f.exchange(http::Method::get, "/items/1/parts/2");
  EXPECT_EQ(f.signatures, 1);
}

TEST(ProxyGateway, WithoutASignedIdentityNothingIsForwardedAndTheRefusalKeepsTheEdgesFields) {
  Fixture f;
  f.signing_fails = true;
  auto decided = f.admit(http::Method::get, "/orders/1");
  ASSERT_TRUE(std::holds_alternative<http::Response>(decided));
  const auto& refused = std::get<http::Response>(decided);
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.headers.get("Retry-After"), "1");
  EXPECT_TRUE(refused.headers.get("RateLimit"));
  EXPECT_NE(f.registry.render().find("proxy_refused_total{route=\"orders-v2\",reason=\"identity\"} 1"),
            std::string::npos);
}

TEST(ProxyGateway, ResendsOnlyWhatMayBeAppliedTwice) {
  Fixture f;
  EXPECT_TRUE(f.exchange(http::Method::get, "/orders/1")->may_resend);
  EXPECT_FALSE(f.exchange(http::Method::post, "/orders")->may_resend);
  http::Headers keyed;
  keyed.add("Idempotency-Key", "k");
  EXPECT_TRUE(f.exchange(http::Method::post, "/orders", keyed)->may_resend);
  http::Headers with_body;
  with_body.add("Content-Length", "3");
  EXPECT_FALSE(f.exchange(http::Method::put, "/orders/1", with_body)->may_resend);
}

TEST(ProxyGateway, PlacesTenantsByPlanOrByIsolationAndId) {
  Fixture f;
  EXPECT_EQ(f.exchange(http::Method::get, "/orders/1")->pick(0)->name.substr(0, 9), "127.0.0.1");
  f.tenant->plan = "enterprise";
  EXPECT_EQ(f.exchange(http::Method::get, "/orders/1")->pick(0)->name, "[::1]:9201");
  f.tenant->plan = "pro";
  f.tenant->slug = "bigco";
  f.tenant->isolation = tenancy::Isolation::database;
  EXPECT_EQ(f.exchange(http::Method::get, "/orders/1")->pick(0)->port, 9101);
  f.tenant->isolation = tenancy::Isolation::schema;  // both lists must hold
  EXPECT_EQ(f.exchange(http::Method::get, "/orders/1")->pick(0)->host, "127.0.0.1");
  EXPECT_NE(f.exchange(http::Method::get, "/orders/1")->pick(0)->port, 9201);
}

TEST(ProxyGateway, RoundRobinAndLeastRequestAndNoEndpointTwice) {
  Fixture f;
  std::map<int, int> counts;
  for (int i = 0; i < 30; ++i) {
    auto ex = f.exchange(http::Method::get, "/orders/1");
    auto e = ex->pick(0);
    ++counts[e->port];
    ex->attempt_done(*e, http::AttemptResult::answered);
  }
  EXPECT_EQ(counts, (std::map<int, int>{{9001, 10}, {9002, 10}, {9003, 10}}));
  // Within one request, each endpoint at most once; then none is left.
  auto ex = f.exchange(http::Method::get, "/orders/1");
  std::set<int> tried;
  for (int attempt = 0; attempt < 3; ++attempt) tried.insert(ex->pick(attempt)->port);
  EXPECT_EQ(tried.size(), 3u);
  EXPECT_FALSE(ex->pick(3));
  // Least request: while one request holds 9101, the next goes to 9102, and back once it is done.
  auto first = f.exchange(http::Method::get, "/items/1/parts/2");
  auto held = first->pick(0);
  auto second = f.exchange(http::Method::get, "/items/1/parts/2");
  EXPECT_NE(second->pick(0)->port, held->port);
}

TEST(ProxyGateway, ACircuitOpensAfterConsecutiveFailuresAndATrialClosesIt) {
  Fixture f;
  const auto fail_on = [&](int port) {
    for (int i = 0; i < 3; ++i) {
      auto ex = f.exchange(http::Method::get, "/orders/1");
      auto e = ex->pick(0);
      ex->attempt_done(*e, e->port == port ? http::AttemptResult::connect_failed : http::AttemptResult::answered);
    }
  };
  fail_on(9002);
  fail_on(9002);  // two failures in a row: ejected
  for (int i = 0; i < 12; ++i) {
    auto ex = f.exchange(http::Method::get, "/orders/1");
    auto e = ex->pick(0);
    EXPECT_NE(e->port, 9002);
    ex->attempt_done(*e, http::AttemptResult::answered);
  }
  const auto metrics = f.registry.render();
  EXPECT_NE(metrics.find("proxy_endpoint_circuit_open{cluster=\"main\",endpoint=\"127.0.0.1:9002\"} 1"),
            std::string::npos)
      << metrics;
  std::this_thread::sleep_for(std::chrono::milliseconds(120));  // past open_ms (50): half-open
  // One trial at a time: while it is out, 9002 is not picked again.
  std::shared_ptr<http::Exchange> trial;
  for (int i = 0; i < 3 && !trial; ++i) {
    auto ex = f.exchange(http::Method::get, "/orders/1");
    if (ex->pick(0)->port == 9002) trial = ex;
  }
  ASSERT_TRUE(trial);
  for (int i = 0; i < 6; ++i) {
    auto ex = f.exchange(http::Method::get, "/orders/1");
    EXPECT_NE(ex->pick(0)->port, 9002);
  }
  trial->attempt_done({"127.0.0.1", 9002, "127.0.0.1:9002"}, http::AttemptResult::answered);
  std::set<int> seen;
  for (int i = 0; i < 6; ++i) {
    auto ex = f.exchange(http::Method::get, "/orders/1");
    auto e = ex->pick(0);
    seen.insert(e->port);
    ex->attempt_done(*e, http::AttemptResult::answered);
  }
  EXPECT_TRUE(seen.contains(9002));
}

TEST(ProxyGateway, AReloadThatDoesNotParseKeepsTheRoutesInForce) {
  Fixture f;
  std::ofstream(f.dir / "routes.toml") << "[[routes]]\nname = 1\n";
  EXPECT_FALSE(f.gateway->load());
  EXPECT_TRUE(f.gateway->match({http::Method::get, "/orders/1", "api.test", ""}));
  std::ofstream(f.dir / "routes.toml") << "[clusters.c]\nendpoints = [\"127.0.0.1:1\"]\n";
  ASSERT_TRUE(f.gateway->load());
  EXPECT_FALSE(f.gateway->match({http::Method::get, "/orders/1", "api.test", ""}));
}

}  // namespace
}  // namespace atrium::proxy
