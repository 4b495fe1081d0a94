// Every tenant route with an id in its path, taken from the router itself (not from a list written by hand), called
// by another tenant's owner, its API key and the super admin acting in that other tenant, with the ids of real
// objects of tenant A: 404 problem+json (403 for the owner on the operator's routes; the key: 404, or 403 where keys
// do not reach), and A's objects are the same afterwards.
// A route with an id under a resource this test cannot name fails the test until the resource is added to `ids`
// below, so a new route is never left without a cross-tenant check. On every isolation level and both backends.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "events/outbox.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class CrossTenantRoutesTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.webhooks.allow_private_targets = true;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    owner_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = sign_in("owner@beta.test", "password-beta", "beta");
    root_ = sign_in("root@atrium.test", "root-password", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  // The id of what a call as `token` (in `tenant_id` for the super admin) created.
  std::string created(Method method, const std::string& path, const Json& body, const std::string& token,
                      const std::string& tenant_id = "") {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!tenant_id.empty()) headers.emplace_back("X-Tenant-ID", tenant_id);
    auto r = client_->call(method, path, body, token, headers);
    EXPECT_TRUE(r.status == 200 || r.status == 201 || r.status == 202) << path << " " << r.raw_body;
    return r.body.is_object() ? r.body.value("id", "") : "";
  }

  Json get(const std::string& path) {
    auto r = client_->call(Method::get, path, std::nullopt, owner_a_);
    EXPECT_EQ(r.status, 200) << path << " " << r.raw_body;
    return r.body;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
  std::string root_;
};

TEST_P(CrossTenantRoutesTest, EveryTenantRouteWithAnIdIs404ForAnotherTenantAndChangesNothing) {
  // One of everything in tenant A.
  const std::string project = created(Method::post, "/v1/projects", Json{{"name", "a"}}, owner_a_);
  const std::string member =
      add_test_member(platform(), a_.id, "member@alpha.test", "member-password", identity::Role::member);
  const std::string invitation = created(Method::post, "/v1/users", Json{{"email", "invited@alpha.test"}}, owner_a_);
  const std::string key =
      created(Method::post, "/v1/api-keys", Json{{"name", "k"}, {"permissions", {"projects:read"}}}, owner_a_);
  const std::string endpoint =
      created(Method::post, "/v1/webhook-endpoints",
              Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {"project.created"}}}, owner_a_);
  ASSERT_FALSE(created(Method::post, "/v1/projects", Json{{"name", "fires a webhook"}}, owner_a_).empty());
  events::Relay relay(
      platform().tenant_data->platform_database(), platform().clock(),
      [&](const events::Event& e) { return platform().workers()->publish(e); }, std::chrono::seconds(1));
  ASSERT_TRUE(relay.run_once());
  const Json deliveries = get("/v1/webhook-endpoints/" + endpoint + "/deliveries").value("data", Json::array());
  ASSERT_FALSE(deliveries.empty());
  const std::string delivery = deliveries[0].value("id", "");
  const std::string report =
      created(Method::post, "/v1/reports",
              Json{{"type", "audit_log"}, {"from", "2020-01-01T00:00:00Z"}, {"to", "2100-01-01T00:00:00Z"}}, owner_a_);
  ASSERT_FALSE(created(Method::post, "/v1/plans",
                       Json{{"code", "pro"},
                            {"name", "Pro"},
                            {"tier", "professional"},
                            {"currency", "USD"},
                            {"interval", "monthly"},
                            {"base_price", 5000}},
                       root_)
                   .empty());
  auto account = client_->call(Method::put, "/v1/billing-account",
                               Json{{"legal_name", "Alpha"},
                                    {"email", "billing@alpha.test"},
                                    {"currency", "USD"},
                                    {"payment_method", "pm_card_visa"},
                                    {"test_mode", true}},
                               root_, {{"X-Tenant-ID", a_.id}});
  ASSERT_EQ(account.status, 200) << account.raw_body;
  const std::string clock =
      created(Method::post, "/v1/test-clocks", Json{{"name", "c"}, {"frozen_time", "2026-01-15T00:00:00Z"}}, owner_a_);
  const std::string subscription =
      created(Method::post, "/v1/subscriptions", Json{{"plan", "pro"}, {"test_clock_id", clock}}, owner_a_);
  const std::string domain =
      created(Method::post, "/v1/domains", Json{{"hostname", "app.alpha-customer.test"}}, owner_a_);
  ASSERT_EQ(client_->call(Method::patch, "/v1/settings", Json{{"timezone", "Europe/Paris"}}, owner_a_).status, 200);
  const std::string dashboard = created(Method::post, "/v1/analytics/dashboards", Json{{"name", "a"}}, owner_a_);
  const Json invoices = get("/v1/invoices").value("data", Json::array());
  ASSERT_EQ(invoices.size(), 1u);
  const std::string invoice = invoices[0].value("id", "");
  for (const auto* id : {&project, &member, &invitation, &key, &endpoint, &delivery, &report, &clock, &subscription,
                         &invoice, &domain, &dashboard}) {
    ASSERT_FALSE(id->empty());
  }

  // Tenant B's API key, with every permission a key may hold.
  auto b_key = client_->call(
      Method::post, "/v1/api-keys",
      Json{{"name", "everything"},
           {"permissions",
            {"projects:read", "projects:write", "projects:delete", "users:read", "users:manage", "api_keys:read",
             "api_keys:manage", "tenant:read", "tenant:manage", "billing:view", "billing:manage", "audit:read",
             "webhooks:read", "webhooks:manage", "usage:read", "usage:write", "analytics:view", "dashboards:manage"}}},
      owner_b_);
  ASSERT_EQ(b_key.status, 201) << b_key.raw_body;
  const std::string b_secret = b_key.body.value("secret", "");
  ASSERT_FALSE(b_secret.empty());

  auto snapshot = [&] {
    Json s = Json::object();
    for (const std::string& path : std::vector<std::string>{"/v1/projects",
                                                            "/v1/projects/" + project,
                                                            "/v1/users",
                                                            "/v1/invitations",
                                                            "/v1/api-keys",
                                                            "/v1/webhook-endpoints",
                                                            "/v1/webhook-endpoints/" + endpoint,
                                                            "/v1/webhook-endpoints/" + endpoint + "/deliveries",
                                                            "/v1/reports/" + report,
                                                            "/v1/subscriptions",
                                                            "/v1/subscriptions/" + subscription,
                                                            "/v1/invoices",
                                                            "/v1/invoices/" + invoice,
                                                            "/v1/test-clocks",
                                                            "/v1/test-clocks/" + clock,
                                                            "/v1/billing-account",
                                                            "/v1/domains",
                                                            "/v1/domains/" + domain,
                                                            "/v1/settings",
                                                            "/v1/analytics/dashboards",
                                                            "/v1/analytics/dashboards/" + dashboard}) {
      s[path] = get(path);
    }
    return s;
  };
  const Json before = snapshot();

  // The id of A's object of the resource a route's path names, by its prefix.
  const std::map<std::string, std::string> ids = {
      {"/v1/projects/", project},
      {"/v1/users/", member},
      {"/v1/invitations/", invitation},
      {"/v1/api-keys/", key},
      {"/v1/webhook-endpoints/", endpoint},
      {"/v1/reports/", report},
      {"/v1/subscriptions/", subscription},
      {"/v1/invoices/", invoice},
      {"/v1/test-clocks/", clock},
      {"/v1/domains/", domain},
      {"/v1/analytics/dashboards/", dashboard},
  };
  // Tenant routes whose path parameter is not an object's id: the same names exist in every tenant (B's call
  // reaches B's override of the quota of that name).
  const std::set<std::string> not_ids = {"/v1/entitlements/{name}"};
  // Valid bodies, so the answer is about the id and not the body.
  const std::map<std::string, Json> bodies = {
      {"PATCH /v1/projects/{id}", {{"name", "renamed by B"}}},
      {"PATCH /v1/users/{id}", {{"role", "viewer"}}},
      {"PATCH /v1/subscriptions/{id}", {{"seats", 3}}},
      {"POST /v1/subscriptions/{id}/cancel", {{"at_period_end", false}}},
      {"POST /v1/test-clocks/{id}/advance", {{"frozen_time", "2026-03-15T00:00:00Z"}}},
      {"PUT /v1/domains/{id}/certificate", {{"certificate", "-"}, {"private_key", "-"}}},
      {"PUT /v1/analytics/dashboards/{id}", {{"name", "renamed by B"}}},
  };

  std::set<std::string> covered;
  int key_not_found = 0;
  for (const auto& route : client_->router().routes()) {
    const auto& o = route->options;
    if (o.access != http::Access::tenant && o.access != http::Access::tenant_super_admin) continue;
    if (route->pattern.find('{') == std::string::npos || not_ids.contains(route->pattern)) continue;
    const std::string name = std::string(http::method_name(route->method)) + " " + route->pattern;
    std::string path = route->pattern;
    for (const auto& [prefix, id] : ids) {
      if (path.starts_with(prefix) && path.compare(prefix.size(), 4, "{id}") == 0) {
        path.replace(prefix.size(), 4, id);
      }
    }
    if (const auto at = path.find("{delivery_id}"); at != std::string::npos) path.replace(at, 13, delivery);
    if (path.find('{') != std::string::npos) {
      ADD_FAILURE() << name << ": this test cannot name an object of tenant A for it; add its resource to `ids`";
      continue;
    }
    if (path.ends_with("/preview")) path += "?seats=2";
    std::optional<Json> body;
    if (o.json_body) body = bodies.contains(name) ? bodies.at(name) : Json::object();

    auto by_b = client_->call(route->method, path, body, owner_b_);
    if (o.access == http::Access::tenant_super_admin) {
      EXPECT_EQ(by_b.status, 403) << name << " " << by_b.raw_body;
    } else {
      EXPECT_EQ(by_b.status, 404) << name << " " << by_b.raw_body;
      EXPECT_EQ(by_b.content_type, "application/problem+json") << name;
    }
    // B's API key: not found, or refused where keys do not reach (never A's object).
    auto by_key = client_->call(route->method, path, body, b_secret);
    EXPECT_TRUE(by_key.status == 404 || by_key.status == 403) << "B's API key: " << name << " " << by_key.raw_body;
    if (by_key.status == 404) ++key_not_found;
    auto by_root_in_b = client_->call(route->method, path, body, root_, {{"X-Tenant-ID", b_.id}});
    EXPECT_EQ(by_root_in_b.status, 404) << "super admin in B: " << name << " " << by_root_in_b.raw_body;
    covered.insert(name);
  }
  // The router has them (a wrong filter above would make this test pass on nothing).
  for (const char* expected : {"GET /v1/projects/{id}",
                               "PATCH /v1/projects/{id}",
                               "DELETE /v1/projects/{id}",
                               "PATCH /v1/users/{id}",
                               "DELETE /v1/users/{id}",
                               "DELETE /v1/invitations/{id}",
                               "DELETE /v1/api-keys/{id}",
                               "GET /v1/webhook-endpoints/{id}",
                               "DELETE /v1/webhook-endpoints/{id}",
                               "POST /v1/webhook-endpoints/{id}/enable",
                               "GET /v1/webhook-endpoints/{id}/deliveries",
                               "POST /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver",
                               "GET /v1/reports/{id}",
                               "PATCH /v1/subscriptions/{id}",
                               "POST /v1/subscriptions/{id}/cancel",
                               "GET /v1/invoices/{id}/download",
                               "POST /v1/invoices/{id}/void",
                               "POST /v1/test-clocks/{id}/advance",
                               "DELETE /v1/test-clocks/{id}",
                               "GET /v1/domains/{id}",
                               "POST /v1/domains/{id}/verify",
                               "PUT /v1/domains/{id}/certificate",
                               "DELETE /v1/domains/{id}",
                               "GET /v1/analytics/dashboards/{id}",
                               "PUT /v1/analytics/dashboards/{id}",
                               "DELETE /v1/analytics/dashboards/{id}"}) {
    EXPECT_TRUE(covered.contains(expected)) << expected << " was not among the routes tried";
  }

  // Keys reach most of these routes (the projects, webhooks, reports and billing ones at least).
  EXPECT_GE(key_not_found, 12);

  const Json after = snapshot();
  for (auto it = before.begin(); it != before.end(); ++it) {
    EXPECT_EQ(after[it.key()], it.value()) << "A's " << it.key() << " changed";
  }
}

INSTANTIATE_TEST_SUITE_P(Isolation, CrossTenantRoutesTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
