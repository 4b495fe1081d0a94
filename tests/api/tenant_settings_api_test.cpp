// A tenant's own settings through the real router, on every backend and isolation level: who may read and change
// them, that a change is audited and reaches the next request (a pinned API version, per-tenant CORS origins on the
// tenant's host, the default event types of a new webhook endpoint), that bad input changes nothing, and that one
// tenant's change never reaches another.
#include <gtest/gtest.h>

#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class TenantSettingsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.base_domain = "atrium.test";
    config.webhooks.allow_private_targets = true;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    add_test_member(platform(), a_.id, "member@alpha.test", "member-password", identity::Role::member);
    add_test_member(platform(), a_.id, "admin@alpha.test", "admin-password", identity::Role::admin);
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
    member_a_ = token("member@alpha.test", "member-password", "alpha");
    admin_a_ = token("admin@alpha.test", "admin-password", "alpha");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string token(const std::string& email, const std::string& password, const std::string& tenant) {
    auto r = client_->password_grant(email, password, tenant);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body.value("access_token", "");
  }

  ApiResponse as(const std::string& who, Method m, const std::string& path, const std::optional<Json>& body = {},
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return client_->call(m, path, body, who, headers);
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_, owner_b_, member_a_, admin_a_;
};

TEST_P(TenantSettingsApiTest, MembersReadThemAdminsChangeThemAndTheChangeIsAudited) {
  auto read = as(member_a_, Method::get, "/v1/settings");
  ASSERT_EQ(read.status, 200) << read.raw_body;
  EXPECT_EQ(read.body["timezone"], "UTC");
  EXPECT_EQ(read.body["locale"], "en-US");

  const Json patch = {{"branding", {{"display_name", "Alpha Inc."}, {"primary_color", "#112233"}}},
                      {"timezone", "Europe/Berlin"},
                      {"locale", "de-DE"}};
  auto by_member = as(member_a_, Method::patch, "/v1/settings", patch);
  EXPECT_EQ(by_member.status, 403) << by_member.raw_body;
  auto by_admin = as(admin_a_, Method::patch, "/v1/settings", patch);
  ASSERT_EQ(by_admin.status, 200) << by_admin.raw_body;
  EXPECT_EQ(by_admin.body["branding"]["display_name"], "Alpha Inc.");
  EXPECT_EQ(by_admin.body["timezone"], "Europe/Berlin");

  read = as(member_a_, Method::get, "/v1/settings");
  EXPECT_EQ(read.body, by_admin.body);
  // Another tenant's settings are untouched.
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/settings").body["timezone"], "UTC");

  auto audit = as(owner_a_, Method::get, "/v1/audit-logs?action=tenant.updated");
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  ASSERT_EQ(audit.body["data"].size(), 1u) << audit.raw_body;
  const Json change = audit.body["data"][0]["changes"]["settings"];
  EXPECT_EQ(change["before"]["timezone"], "UTC");
  EXPECT_EQ(change["after"]["timezone"], "Europe/Berlin");
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/audit-logs?action=tenant.updated").body["data"].size(), 0u);
}

TEST_P(TenantSettingsApiTest, BadInputIs400AndChangesNothing) {
  ASSERT_EQ(as(owner_a_, Method::patch, "/v1/settings", Json{{"locale", "fr-FR"}}).status, 200);
  for (const Json& bad : {Json{{"locale", "fr-FR"}, {"timezone", "Moon/Base"}}, Json{{"api_version", "2020-01-01"}},
                          Json{{"cors_origins", {"*"}}}, Json{{"unknown", true}}, Json::array()}) {
    auto r = as(owner_a_, Method::patch, "/v1/settings", bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  auto read = as(owner_a_, Method::get, "/v1/settings");
  EXPECT_EQ(read.body["locale"], "fr-FR");
  EXPECT_EQ(read.body["timezone"], "UTC");
  EXPECT_TRUE(read.body["api_version"].is_null());
}

TEST_P(TenantSettingsApiTest, APinnedApiVersionAnswersRequestsThatNameNoneAndTheHeaderStillWins) {
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/projects", Json{{"name", "p"}}).status, 201);
  ASSERT_EQ(as(owner_a_, Method::patch, "/v1/settings", Json{{"api_version", "2026-06-01"}}).status, 200);
  // 2026-06-01 named the list's array "items" and is deprecated: its answers say so.
  auto pinned = as(owner_a_, Method::get, "/v1/projects");
  ASSERT_EQ(pinned.status, 200) << pinned.raw_body;
  EXPECT_TRUE(pinned.body.contains("items")) << pinned.raw_body;
  EXPECT_EQ(pinned.headers.get("Atrium-Version").value_or(""), "2026-06-01");
  EXPECT_TRUE(pinned.headers.get("Deprecation").has_value());
  auto named = as(owner_a_, Method::get, "/v1/projects", std::nullopt, {{"Atrium-Version", "2026-11-01"}});
  EXPECT_TRUE(named.body.contains("data")) << named.raw_body;
  EXPECT_EQ(named.headers.get("Atrium-Version").value_or(""), "2026-11-01");
  EXPECT_FALSE(named.headers.get("Deprecation").has_value());
  // Beta is not pinned.
  auto other = as(owner_b_, Method::get, "/v1/projects");
  EXPECT_TRUE(other.body.contains("data")) << other.raw_body;
  // Unpinned again: the current version.
  ASSERT_EQ(as(owner_a_, Method::patch, "/v1/settings", Json{{"api_version", nullptr}}).status, 200);
  EXPECT_TRUE(as(owner_a_, Method::get, "/v1/projects").body.contains("data"));
}

TEST_P(TenantSettingsApiTest, CorsOriginsOfATenantApplyOnItsOwnHostOnly) {
  ASSERT_EQ(as(owner_a_, Method::patch, "/v1/settings", Json{{"cors_origins", {"https://app.alpha.example"}}}).status,
            200);
  auto preflight = [&](const std::string& host, const std::string& origin) {
    return client_->call(Method::options, "/v1/projects", std::nullopt, "",
                         {{"Host", host}, {"Origin", origin}, {"Access-Control-Request-Method", "GET"}});
  };
  auto allowed = preflight("alpha.atrium.test", "https://app.alpha.example");
  EXPECT_EQ(allowed.status, 204);
  EXPECT_EQ(allowed.headers.get("Access-Control-Allow-Origin").value_or(""), "https://app.alpha.example");
  // Beta's host, another origin, or a host that names no tenant: no CORS answer (OPTIONS is 405).
  EXPECT_EQ(preflight("beta.atrium.test", "https://app.alpha.example").status, 405);
  EXPECT_EQ(preflight("alpha.atrium.test", "https://evil.example").status, 405);
  EXPECT_EQ(preflight("localhost", "https://app.alpha.example").status, 405);
  // The actual request from that origin on alpha's host carries the header.
  auto get = client_->call(Method::get, "/v1/projects", std::nullopt, owner_a_,
                           {{"Host", "alpha.atrium.test"}, {"Origin", "https://app.alpha.example"}});
  EXPECT_EQ(get.status, 200) << get.raw_body;
  EXPECT_EQ(get.headers.get("Access-Control-Allow-Origin").value_or(""), "https://app.alpha.example");
  EXPECT_EQ(get.headers.get("Vary").value_or(""), "Origin");
}

TEST_P(TenantSettingsApiTest, ANewWebhookEndpointWithoutEventTypesTakesTheTenantsDefault) {
  auto plain = as(owner_a_, Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/a"}});
  ASSERT_EQ(plain.status, 201) << plain.raw_body;
  EXPECT_EQ(plain.body["event_types"], Json({"*"}));
  ASSERT_EQ(as(owner_a_, Method::patch, "/v1/settings",
               Json{{"webhooks", {{"default_event_types", {"project.created", "invoice.paid"}}}}})
                .status,
            200);
  auto defaulted = as(owner_a_, Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/b"}});
  ASSERT_EQ(defaulted.status, 201) << defaulted.raw_body;
  EXPECT_EQ(defaulted.body["event_types"], Json({"project.created", "invoice.paid"}));
  auto named = as(owner_a_, Method::post, "/v1/webhook-endpoints",
                  Json{{"url", "http://127.0.0.1:9/c"}, {"event_types", {"user.created"}}});
  EXPECT_EQ(named.body["event_types"], Json({"user.created"}));
  auto in_b = as(owner_b_, Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/d"}});
  EXPECT_EQ(in_b.body["event_types"], Json({"*"}));
}

INSTANTIATE_TEST_SUITE_P(Isolation, TenantSettingsApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
