// Sign-in, tokens, revocation and the role matrix through the real router and middleware, on both backends.
#include <gtest/gtest.h>

#include <thread>

#include <atomic>

#include <map>
#include <set>

#include "analytics/dashboards.hpp"
#include "app/archive_tables.hpp"
#include "billing/billing.hpp"
#include "billing/entitlements.hpp"
#include "churn/service.hpp"
#include "core/ids.hpp"
#include "email/settings.hpp"
#include "events/outbox.hpp"
#include "identity/jwt.hpp"
#include "identity/permissions.hpp"
#include "metering/metering.hpp"
#include "projects/project_store.hpp"
#include "reports/reports.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/tenant_tables.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

class IdentityApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.identity.max_failed_logins_per_account = 3;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    app::Platform::NewTenantRequest r;
    r.tenant.slug = "acme";
    r.tenant.name = "Acme";
    r.tenant.isolation = GetParam().isolation;
    r.owner_email = "owner@acme.test";
    r.owner_password = "owner-password";
    auto t = platform().create_tenant(r, {});
    ASSERT_TRUE(t) << t.error().message;
    tenant_ = *t;
  }

  app::Platform& platform() { return tp_->platform(); }

  ApiResponse password_grant(const std::string& email, const std::string& password, const std::string& tenant) {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    return client_->call(Method::post, "/v1/auth/token", body);
  }

  std::string token_for(const std::string& email, const std::string& password) {
    auto r = password_grant(email, password, "acme");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("access_token", "");
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant tenant_;
};

TEST_P(IdentityApiTest, PasswordGrantAnswersTheTokenShape) {
  auto r = password_grant("OWNER@acme.test", "owner-password", "acme");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body.value("token_type", ""), "Bearer");
  EXPECT_EQ(r.body.value("expires_in", 0), 3600);
  EXPECT_TRUE(r.body.value("refresh_token", "").starts_with("rt_"));
  const std::string access = r.body.value("access_token", "");
  EXPECT_EQ(std::count(access.begin(), access.end(), '.'), 2);
  EXPECT_EQ(r.headers.get("Cache-Control").value_or(""), "no-store");
}

TEST_P(IdentityApiTest, WrongPasswordUnknownUserAndForeignTenantAllGetTheSameInvalidGrant) {
  app::Platform::NewTenantRequest other;
  other.tenant.slug = "other";
  other.tenant.name = "Other";
  ASSERT_TRUE(platform().create_tenant(other, {}));
  for (const auto& [email, password, tenant] :
       {std::tuple<std::string, std::string, std::string>{"owner@acme.test", "wrong-password", "acme"},
        {"nobody@acme.test", "owner-password", "acme"},
        {"owner@acme.test", "owner-password", "other"},
        {"owner@acme.test", "owner-password", "no-such-tenant"}}) {
    auto r = password_grant(email, password, tenant);
    EXPECT_EQ(r.status, 400) << email << " " << tenant;
    EXPECT_EQ(r.body.value("detail", ""), "invalid email, password or tenant");
    EXPECT_EQ(r.body.value("error", ""), "invalid_grant");
    EXPECT_EQ(r.body.value("error_description", ""), "invalid email, password or tenant");
  }
}

TEST_P(IdentityApiTest, RepeatedFailuresAreThrottledPerAccount) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(password_grant("owner@acme.test", "nope-nope", "acme").status, 400);
  auto throttled = password_grant("owner@acme.test", "owner-password", "acme");
  EXPECT_EQ(throttled.status, 429);
  EXPECT_TRUE(throttled.headers.get("Retry-After").has_value());
}

TEST_P(IdentityApiTest, RefreshRotatesAndReuseRevokesTheFamily) {
  auto first = password_grant("owner@acme.test", "owner-password", "acme");
  ASSERT_EQ(first.status, 200);
  const std::string r1 = first.body.value("refresh_token", "");
  auto second =
      client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "refresh_token"}, {"refresh_token", r1}});
  ASSERT_EQ(second.status, 200) << second.body.dump();
  const std::string r2 = second.body.value("refresh_token", "");
  EXPECT_NE(r1, r2);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, second.body.value("access_token", "")).status,
            200);
  // r1 again: someone kept a copy. The whole family, r2 included, is revoked: invalid_grant (RFC 6749 section 5.2).
  for (const std::string& used : {r1, r2}) {
    auto refused =
        client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "refresh_token"}, {"refresh_token", used}});
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(refused.body.value("error", ""), "invalid_grant");
    EXPECT_EQ(refused.body.value("type", ""), "/problems/invalid-grant");
  }
}

TEST_P(IdentityApiTest, RevokedAccessTokenIsRefusedAtOnce) {
  const std::string token = token_for("owner@acme.test", "owner-password");
  ASSERT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, token).status, 200);  // now cached
  EXPECT_EQ(client_->call(Method::post, "/v1/auth/revoke", Json{{"token", token}}).status, 200);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, token).status, 401);
  // Unknown tokens are accepted and ignored (RFC 7009 section 2.2: 200).
  EXPECT_EQ(client_->call(Method::post, "/v1/auth/revoke", Json{{"token", "garbage"}}).status, 200);
}

TEST_P(IdentityApiTest, RevocationSurvivesARestart) {
  const std::string token = token_for("owner@acme.test", "owner-password");
  ASSERT_EQ(client_->call(Method::post, "/v1/auth/revoke", Json{{"token", token}}).status, 200);
  // A second instance on the same database (an in-process store loads revocations at start).
  auto again = app::Platform::open(tp_->config(), SystemClock::instance(), {});
  ASSERT_TRUE(again) << again.error().message;
  ApiClient second(**again);
  EXPECT_EQ(second.call(Method::get, "/v1/projects", std::nullopt, token).status, 401);
}

TEST_P(IdentityApiTest, ForgedAndMalformedCredentialsGet401) {
  const std::string good = token_for("owner@acme.test", "owner-password");
  auto other = identity::generate_signing_key(identity::JwtAlgorithm::rs256, "attacker");
  ASSERT_TRUE(other);
  auto signer = identity::JwtSigner::create(*other);
  ASSERT_TRUE(signer);
  identity::AccessClaims claims;
  claims.sub = new_uuid_v7(SystemClock::instance());
  claims.tenant_id = tenant_.id;
  claims.role = "owner";
  claims.permissions = identity::permissions_for(identity::Role::owner);
  claims.iss = "atrium";
  claims.aud = "atrium-api";
  claims.jti = "forged";
  claims.iat =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  claims.exp = claims.iat + 600;
  auto forged = signer->sign(claims);
  ASSERT_TRUE(forged);
  std::string tampered = good;
  tampered[tampered.find('.') + 5] ^= 1;
  for (const std::string& bad : {*forged, tampered, good.substr(0, good.rfind('.') + 1), std::string("not-a-token"),
                                 std::string("atr_0123456789_") + std::string(43, 'a')}) {
    auto r = client_->call(Method::get, "/v1/projects", std::nullopt, bad);
    EXPECT_EQ(r.status, 401) << bad;
    // RFC 6750 section 3.1: presented and not good.
    EXPECT_TRUE(
        r.headers.get("WWW-Authenticate").value_or("").starts_with("Bearer realm=\"atrium\", error=\"invalid_token\""))
        << r.headers.get("WWW-Authenticate").value_or("");
  }
  // None presented: the challenge carries no error code.
  auto missing = client_->call(Method::get, "/v1/projects");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.headers.get("WWW-Authenticate").value_or(""), "Bearer realm=\"atrium\"");
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, "", {{"Authorization", "Basic abc"}}).status, 401);
}

TEST_P(IdentityApiTest, JwksPublishesTheVerifyingKeysAndRotationKeepsOldTokensValid) {
  const std::string before = token_for("owner@acme.test", "owner-password");
  auto jwks = client_->call(Method::get, "/.well-known/jwks.json");
  ASSERT_EQ(jwks.status, 200);
  ASSERT_EQ(jwks.body["keys"].size(), 1u);
  EXPECT_EQ(jwks.body["keys"][0].value("alg", ""), "ES256");  // TestPlatform's (the production default is RS256)
  EXPECT_FALSE(jwks.body["keys"][0].contains("d"));           // no private part
  ASSERT_TRUE(platform().keys->rotate(identity::JwtAlgorithm::rs256, platform().audit->recorder({})));
  auto after_jwks = client_->call(Method::get, "/.well-known/jwks.json");
  ASSERT_EQ(after_jwks.body["keys"].size(), 2u);
  std::set<std::string> algs;
  for (const auto& k : after_jwks.body["keys"]) algs.insert(k.value("alg", ""));
  EXPECT_EQ(algs, (std::set<std::string>{"ES256", "RS256"}));
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, before).status, 200);
  const std::string after = token_for("owner@acme.test", "owner-password");
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, after).status, 200);
}

// Every tenant route x every role: 403 exactly when the role lacks the route's permission. The roles' permissions
// are written out here (the seed's role table with Atrium's refinements, docs/security.md), not read from the code.
TEST_P(IdentityApiTest, RoleMatrixGrantsExactlyTheRolesPermissions) {
  const std::vector<std::string> admin = {"projects:read",    "projects:write", "projects:delete", "billing:view",
                                          "users:manage",     "analytics:view", "users:read",      "tenant:read",
                                          "tenant:manage",    "audit:read",     "usage:read",      "analytics:write",
                                          "dashboards:manage"};
  const std::map<identity::Role, std::vector<std::string>> granted_to = {
      {identity::Role::admin, admin},
      {identity::Role::member,
       {"projects:read", "projects:write", "analytics:view", "analytics:write", "dashboards:manage"}},
      {identity::Role::viewer, {"projects:read"}},
  };
  std::map<identity::Role, std::string> tokens;
  tokens[identity::Role::owner] = token_for("owner@acme.test", "owner-password");
  for (auto role : {identity::Role::admin, identity::Role::member, identity::Role::viewer}) {
    const std::string email = std::string(identity::role_name(role)) + "@acme.test";
    ASSERT_TRUE(platform().users->add_member(tenant_.id, email, "", std::string("password-") + email, role,
                                             platform().audit->recorder({})));
    tokens[role] = token_for(email, std::string("password-") + email);
  }
  const std::string some_id = new_uuid_v7(SystemClock::instance());
  int checked = 0;
  for (const auto& route : client_->router().routes()) {
    if (route->options.access != http::Access::tenant) continue;
    std::string path = route->pattern;
    if (auto p = path.find("{id}"); p != std::string::npos) path.replace(p, 4, some_id);
    for (const auto& [role, token] : tokens) {
      const auto it = granted_to.find(role);
      // A route that names no permission is for every member of the tenant (GET /v1/settings).
      const bool allowed =
          it == granted_to.end() || route->options.permission.empty() ||
          std::find(it->second.begin(), it->second.end(), route->options.permission) != it->second.end();
      auto r = client_->call(route->method, path,
                             route->options.json_body ? std::optional<Json>(Json::object()) : std::nullopt, token);
      if (allowed) {
        EXPECT_NE(r.status, 403) << identity::role_name(role) << " " << route->pattern << " " << r.body.dump();
        EXPECT_NE(r.status, 401);
      } else {
        EXPECT_EQ(r.status, 403) << identity::role_name(role) << " " << route->pattern;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 4 * 12);
  // Super-admin routes: no tenant role passes; the super admin does.
  auto root = password_grant("root@atrium.test", "root-password", "");
  ASSERT_EQ(root.status, 200) << root.body.dump();
  for (const auto& route : client_->router().routes()) {
    if (route->options.access != http::Access::super_admin) continue;
    std::string path = route->pattern;
    if (auto p = path.find("{id}"); p != std::string::npos) path.replace(p, 4, some_id);
    const auto body = route->options.json_body ? std::optional<Json>(Json::object()) : std::nullopt;
    for (const auto& [role, token] : tokens) EXPECT_EQ(client_->call(route->method, path, body, token).status, 403);
    auto r = client_->call(route->method, path, body, root.body.value("access_token", ""));
    EXPECT_NE(r.status, 403) << route->pattern;
    EXPECT_NE(r.status, 401) << route->pattern;
  }
  // Operator routes on one tenant's data: no tenant role passes, not even the owner; the super admin naming the
  // tenant does.
  int operator_routes = 0;
  for (const auto& route : client_->router().routes()) {
    if (route->options.access != http::Access::tenant_super_admin) continue;
    ++operator_routes;
    std::string path = route->pattern;
    if (auto p = path.find("{id}"); p != std::string::npos) path.replace(p, 4, some_id);
    const auto body = route->options.json_body ? std::optional<Json>(Json::object()) : std::nullopt;
    for (const auto& [role, token] : tokens) {
      EXPECT_EQ(client_->call(route->method, path, body, token).status, 403)
          << identity::role_name(role) << " " << route->pattern;
    }
    auto r =
        client_->call(route->method, path, body, root.body.value("access_token", ""), {{"X-Tenant-ID", tenant_.id}});
    EXPECT_NE(r.status, 403) << route->pattern << " " << r.body.dump();
    EXPECT_NE(r.status, 401) << route->pattern;
  }
  EXPECT_GE(operator_routes, 5);
}

TEST_P(IdentityApiTest, RolesCannotBeGrantedAboveOnesOwn) {
  ASSERT_TRUE(platform().users->add_member(tenant_.id, "admin@acme.test", "", std::string("admin-password"),
                                           identity::Role::admin, platform().audit->recorder({})));
  const std::string admin = token_for("admin@acme.test", "admin-password");
  auto r = client_->call(Method::post, "/v1/users", Json{{"email", "new@acme.test"}, {"role", "owner"}}, admin);
  EXPECT_EQ(r.status, 403);
  auto ok = client_->call(Method::post, "/v1/users", Json{{"email", "new@acme.test"}, {"role", "member"}}, admin);
  EXPECT_EQ(ok.status, 202) << ok.body.dump();
  // The last owner cannot be demoted or removed.
  const std::string owner = token_for("owner@acme.test", "owner-password");
  auto members = client_->call(Method::get, "/v1/users?limit=100", std::nullopt, owner);
  std::string owner_id;
  for (const auto& m : members.body["data"]) {
    if (m.value("role", "") == "owner") owner_id = m.value("id", "");
  }
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + owner_id, Json{{"role", "viewer"}}, owner).status, 409);
  // A refused change revokes nothing: the owner's token still works.
  EXPECT_EQ(client_->call(Method::get, "/v1/users", std::nullopt, owner).status, 200);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/users/" + owner_id, std::nullopt, owner).status, 409);
  EXPECT_EQ(client_->call(Method::get, "/v1/users", std::nullopt, owner).status, 200);
}

// Two owners removing (or demoting) each other at the same moment: each counts two owners before the other's change
// commits unless the transactions are serializable. Whatever the interleaving, one owner is left.
TEST_P(IdentityApiTest, TwoOwnersRemovingEachOtherAtOnceLeaveTheTenantAnOwner) {
  auto& users = *platform().users;
  const auto who = platform().audit->recorder({});
  const std::string first = users.find_by_email("owner@acme.test")->id;
  auto second =
      users.add_member(tenant_.id, "owner2@acme.test", "", std::string("owner2-password"), identity::Role::owner, who);
  ASSERT_TRUE(second) << second.error().message;
  for (int round = 0; round < 12; ++round) {
    // Both owners again (the previous round removed or demoted one of them).
    for (const auto& email : {"owner@acme.test", "owner2@acme.test"}) {
      const std::string id = users.find_by_email(email)->id;
      if (!users.role_in(tenant_.id, id).value()) {
        ASSERT_TRUE(users.add_member(tenant_.id, email, "", std::nullopt, identity::Role::owner, who));
      } else {
        ASSERT_TRUE(users.update_member(tenant_.id, id, identity::Role::owner, std::nullopt, who));
      }
    }
    ASSERT_EQ(users.count_owners(tenant_.id).value(), 2);
    const bool demote = round % 2 == 1;
    std::atomic<int> ready{0};
    auto act = [&](const std::string& target) {
      ++ready;
      while (ready.load() < 2) std::this_thread::yield();
      return demote ? users.update_member(tenant_.id, target, identity::Role::viewer, std::nullopt, who).has_value()
                    : users.remove_member(tenant_.id, target, who).has_value();
    };
    bool a = false, b = false;
    std::thread t1([&] { a = act(first); });
    std::thread t2([&] { b = act(second->user.id); });
    t1.join();
    t2.join();
    EXPECT_EQ(users.count_owners(tenant_.id).value(), 1) << "round " << round << (demote ? " (demote)" : " (remove)");
    EXPECT_NE(a, b) << "exactly one of the two changes applies, round " << round;
  }
}

TEST_P(IdentityApiTest, BadBodiesAre400AndChangeNothing) {
  const std::string owner = token_for("owner@acme.test", "owner-password");
  for (const Json& body : {Json::array(), Json{{"name", 5}}, Json{{"name", ""}}, Json{{"name", "x"}, {"extra", 1}},
                           Json{{"name", std::string(201, 'x')}}}) {
    auto r = client_->call(Method::post, "/v1/projects", body, owner);
    EXPECT_EQ(r.status, 400) << body.dump();
  }
  EXPECT_TRUE(client_->call(Method::get, "/v1/projects", std::nullopt, owner).body["data"].empty());
  EXPECT_EQ(client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "magic"}}).status, 400);
}

// ---- OAuth 2.0 and HTTP conventions client libraries rely on --------------------------------------------------

constexpr const char* k_form = "application/x-www-form-urlencoded";

TEST_P(IdentityApiTest, FormEncodedPasswordAndRefreshGrantsWork) {
  // RFC 6749 section 4.3.2: username (here an e-mail with + and @ percent-encoded) and password.
  ASSERT_TRUE(platform().users->add_member(tenant_.id, "a+b@acme.test", "", "p&ss=word +1", identity::Role::member,
                                           platform().audit->recorder({})));
  auto issued = client_->send(
      Method::post, "/v1/auth/token",
      "grant_type=password&username=a%2Bb%40acme.test&password=p%26ss%3Dword+%2B1&tenant=acme&scope=", k_form);
  ASSERT_EQ(issued.status, 200) << issued.raw_body;
  EXPECT_EQ(issued.headers.get("Cache-Control").value_or(""), "no-store");
  EXPECT_EQ(issued.body.value("token_type", ""), "Bearer");
  const std::string refresh = issued.body.value("refresh_token", "");
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, issued.body.value("access_token", "")).status,
            200);
  // RFC 6749 section 6.
  auto refreshed = client_->send(Method::post, "/v1/auth/token", "grant_type=refresh_token&refresh_token=" + refresh,
                                 "application/x-www-form-urlencoded; charset=UTF-8");
  ASSERT_EQ(refreshed.status, 200) << refreshed.raw_body;
  EXPECT_NE(refreshed.body.value("refresh_token", ""), refresh);
  // RFC 7009 section 2.1: the revocation request is a form too; 200 with an empty body.
  auto revoked =
      client_->send(Method::post, "/v1/auth/revoke",
                    "token=" + refreshed.body.value("refresh_token", "") + "&token_type_hint=refresh_token", k_form);
  EXPECT_EQ(revoked.status, 200);
  EXPECT_TRUE(revoked.raw_body.empty());
  auto after =
      client_->send(Method::post, "/v1/auth/token",
                    "grant_type=refresh_token&refresh_token=" + refreshed.body.value("refresh_token", ""), k_form);
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body.value("error", ""), "invalid_grant");
  // JSON still works, with `username` as well as `email`.
  auto json = client_->call(Method::post, "/v1/auth/token",
                            Json{{"grant_type", "password"},
                                 {"username", "owner@acme.test"},
                                 {"password", "owner-password"},
                                 {"tenant", "acme"}});
  EXPECT_EQ(json.status, 200) << json.body.dump();
}

TEST_P(IdentityApiTest, EachOAuthErrorAnswersItsErrorCode) {
  struct Case {
    std::string body;
    std::string content_type;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"grant_type=password&username=owner%40acme.test&password=wrong&tenant=acme", k_form, 400, "invalid_grant"},
      {"grant_type=refresh_token&refresh_token=rt_unknown", k_form, 400, "invalid_grant"},
      {"grant_type=client_credentials", k_form, 400, "unsupported_grant_type"},
      {"grant_type=password&password=x&tenant=acme", k_form, 400, "invalid_request"},                     // no username
      {"grant_type=password&username=a&email=b&password=x", k_form, 400, "invalid_request"},              // both names
      {"grant_type=password&grant_type=password&username=a&password=x", k_form, 400, "invalid_request"},  // repeated
      {"grant_type=password&username=a&password=x&color=red", k_form, 400, "invalid_request"},            // unknown
      {"grant_type=password&username=%00&password=x", k_form, 400, "invalid_request"},                    // NUL
      {"grant_type=password&username=%FF&password=x", k_form, 400, "invalid_request"},                    // not UTF-8
      {"{\"grant_type\": ", "application/json", 400, "invalid_request"},                                  // malformed
      {"grant_type=password", "text/plain", 415, "invalid_request"},
      {"", "", 415, "invalid_request"},
  };
  for (const auto& c : cases) {
    auto r = client_->send(Method::post, "/v1/auth/token", c.body, c.content_type);
    EXPECT_EQ(r.status, c.status) << c.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << c.body;
    EXPECT_EQ(r.body.value("error", ""), c.error) << c.body << " " << r.raw_body;
    EXPECT_FALSE(r.body.value("error_description", "").empty()) << c.body;
  }
  auto revoke = client_->send(Method::post, "/v1/auth/revoke", "token_type_hint=access_token", k_form);
  EXPECT_EQ(revoke.status, 400);
  EXPECT_EQ(revoke.body.value("error", ""), "invalid_request");
  // Form bodies are for the OAuth endpoints only.
  const std::string owner = token_for("owner@acme.test", "owner-password");
  auto project = client_->send(Method::post, "/v1/projects", "name=x", k_form, {{"Authorization", "Bearer " + owner}});
  EXPECT_EQ(project.status, 415);
  EXPECT_FALSE(project.body.contains("error"));
}

TEST_P(IdentityApiTest, AuthorizationServerMetadataAndJwksFollowTheirRfcs) {
  auto meta = client_->call(Method::get, "/.well-known/oauth-authorization-server", std::nullopt, "",
                            {{"Host", "auth.acme.test:8443"}});
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.body.value("issuer", ""), "atrium");
  EXPECT_EQ(meta.body.value("token_endpoint", ""), "http://auth.acme.test:8443/v1/auth/token");
  EXPECT_EQ(meta.body.value("revocation_endpoint", ""), "http://auth.acme.test:8443/v1/auth/revoke");
  EXPECT_EQ(meta.body.value("jwks_uri", ""), "http://auth.acme.test:8443/.well-known/jwks.json");
  EXPECT_EQ(meta.body["grant_types_supported"], (Json{"password", "refresh_token"}));
  EXPECT_EQ(meta.body["token_endpoint_auth_methods_supported"], Json{"none"});
  EXPECT_TRUE(meta.body["response_types_supported"].is_array());
  auto jwks = client_->call(Method::get, "/.well-known/jwks.json");
  EXPECT_EQ(jwks.content_type, "application/jwk-set+json");
}

TEST_P(IdentityApiTest, EveryAnswerIsNosniffAndAuthenticatedAnswersAreNotStored) {
  const std::string owner = token_for("owner@acme.test", "owner-password");
  for (const auto& r :
       {client_->call(Method::get, "/health"), client_->call(Method::get, "/v1/projects"),
        client_->call(Method::get, "/no/such/path"), client_->call(Method::get, "/v1/projects", std::nullopt, owner)}) {
    EXPECT_EQ(r.headers.get("X-Content-Type-Options").value_or(""), "nosniff");
    EXPECT_FALSE(r.headers.get("Strict-Transport-Security").has_value());  // no TLS here (tls_test.py checks it)
  }
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, owner).headers.get("Cache-Control").value_or(""),
            "no-store");
  // A handler's own caching stays (the JWKS is public).
  EXPECT_EQ(client_->call(Method::get, "/.well-known/jwks.json").headers.get("Cache-Control").value_or(""),
            "public, max-age=300");
}

TEST_P(IdentityApiTest, ProblemTypesHavePagesAndEveryProblemNamesItsInstance) {
  auto page = client_->call(Method::get, "/problems/validation");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.raw_body.find("<h1>/problems/validation</h1>"), std::string::npos);
  EXPECT_NE(page.raw_body.find("HTTP 400"), std::string::npos);
  for (const char* slug : {"not-found", "precondition-failed", "idempotency-key-reused", "invalid-grant",
                           "unsupported-media-type", "rate-limited", "quota-exceeded"}) {
    EXPECT_EQ(client_->call(Method::get, std::string("/problems/") + slug).status, 200) << slug;
  }
  auto unknown = client_->call(Method::get, "/problems/no-such-problem");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.value("instance", ""), "/problems/no-such-problem");
}

// Every isolation level on both backends: memberships and tokens live in the control plane, but sign-in, roles and
// revocation must hold wherever the tenant's data lives.
INSTANTIATE_TEST_SUITE_P(Backends, IdentityApiTest, all_isolation_cases(), isolation_case_name);

TEST(Cors, PreflightsFromListedOriginsAreAnsweredAndOthersGetNoCorsHeaders) {
  Config config;
  config.server.cors_origins = "https://app.acme.test, http://localhost:5173";
  auto tp = TestPlatform::create(Backend::sqlite, config);
  ApiClient client(tp->platform());
  const std::vector<std::pair<std::string, std::string>> preflight = {
      {"Origin", "https://app.acme.test"},
      {"Access-Control-Request-Method", "PATCH"},
      {"Access-Control-Request-Headers", "authorization, content-type, if-match"}};
  auto ok =
      client.call(Method::options, "/v1/projects/0190a1b2-0000-7000-8000-000000000000", std::nullopt, "", preflight);
  EXPECT_EQ(ok.status, 204);
  EXPECT_EQ(ok.headers.get("Access-Control-Allow-Origin").value_or(""), "https://app.acme.test");
  EXPECT_NE(ok.headers.get("Access-Control-Allow-Methods").value_or("").find("PATCH"), std::string::npos);
  EXPECT_NE(ok.headers.get("Access-Control-Allow-Headers").value_or("").find("If-Match"), std::string::npos);
  EXPECT_EQ(ok.headers.get("Access-Control-Max-Age").value_or(""), "600");
  // An origin not listed: no CORS answer (the preflight is 405 as any OPTIONS), so the browser refuses the call.
  auto other = client.call(Method::options, "/v1/projects", std::nullopt, "",
                           {{"Origin", "https://evil.test"}, {"Access-Control-Request-Method", "GET"}});
  EXPECT_EQ(other.status, 405);
  EXPECT_FALSE(other.headers.get("Access-Control-Allow-Origin").has_value());
  // A simple request from a listed origin: allowed and the headers a client reads exposed; every answer varies by
  // Origin.
  auto read = client.call(Method::get, "/health", std::nullopt, "", {{"Origin", "http://localhost:5173"}});
  EXPECT_EQ(read.headers.get("Access-Control-Allow-Origin").value_or(""), "http://localhost:5173");
  EXPECT_NE(read.headers.get("Access-Control-Expose-Headers").value_or("").find("ETag"), std::string::npos);
  EXPECT_EQ(read.headers.get("Vary").value_or(""), "Origin");
  EXPECT_FALSE(client.call(Method::get, "/health", std::nullopt, "", {{"Origin", "https://evil.test"}})
                   .headers.get("Access-Control-Allow-Origin")
                   .has_value());
  // Bad lists are refused when the configuration loads.
  for (const char* bad : {"app.acme.test", "https://a.test/path", "*, https://a.test", "ftp://a.test"}) {
    EXPECT_FALSE(parse_cors_origins(bad).has_value()) << bad;
  }
  EXPECT_EQ(parse_cors_origins("*")->size(), 1u);
}

TEST(Cors, WithoutOriginsNothingChanges) {
  auto tp = TestPlatform::create(Backend::sqlite, Config{});
  ApiClient client(tp->platform());
  auto r = client.call(Method::options, "/v1/projects", std::nullopt, "",
                       {{"Origin", "https://app.acme.test"}, {"Access-Control-Request-Method", "GET"}});
  EXPECT_EQ(r.status, 405);
  EXPECT_FALSE(r.headers.get("Access-Control-Allow-Origin").has_value());
  EXPECT_FALSE(r.headers.get("Vary").has_value());
}

// The tenant binding of every TenantStatement is checked when it compiles (tests/tenancy/statement_binding_test.py);
// what is left to check at run time: statements are prepared per connection by name, so two statements may not
// share one.
TEST(TenantStatements, EveryTenantStatementHasItsOwnName) {
  std::vector<tenancy::TenantStatement> all(projects::project_store::statements().begin(),
                                            projects::project_store::statements().end());
  for (const auto& list : {webhooks::store::statements(), reports::store::statements(), events::tenant_statements(),
                           email::settings_store::statements(), billing::Billing::tenant_statements(),
                           metering::Metering::tenant_statements(), billing::Entitlements::tenant_statements(),
                           churn::Service::tenant_statements()}) {
    all.insert(all.end(), list.begin(), list.end());
  }
  all.insert(all.end(), tenancy::idempotency_statements().begin(), tenancy::idempotency_statements().end());
  const auto moved = tenancy::tenant_table_statements();
  all.insert(all.end(), moved.begin(), moved.end());
  const auto archived = app::control_table_statements();
  all.insert(all.end(), archived.begin(), archived.end());
  all.insert(all.end(), analytics::tenant_statements().begin(), analytics::tenant_statements().end());
  all.insert(all.end(), analytics::dashboard_store::statements().begin(),
             analytics::dashboard_store::statements().end());
  EXPECT_GE(all.size(), 30u);
  std::map<std::string_view, std::string_view> sql_of;
  for (const auto& s : all) {
    auto [it, added] = sql_of.emplace(s.name, s.sql);
    EXPECT_TRUE(added || it->second == s.sql) << s.name << " names two statements";
  }
}

TEST(RevocationAcrossInstances, ARevokedTokenIsRefusedByASecondInstanceOnTheSameRedis) {
  const char* redis = std::getenv("ATRIUM_TEST_REDIS_URL");
  ATRIUM_MISSING_SERVICE(redis == nullptr || *redis == '\0', "ATRIUM_TEST_REDIS_URL");
  ATRIUM_MISSING_SERVICE(!postgres_url(), "ATRIUM_TEST_POSTGRES_URL");  // two instances share one database
  Config config;
  config.identity.redis_url = redis;
  auto tp = TestPlatform::create(Backend::postgres, config);
  ASSERT_TRUE(tp);
  app::Platform& first = tp->platform();
  app::Platform::NewTenantRequest r;
  r.tenant.slug = "acme";
  r.tenant.name = "Acme";
  r.owner_email = "owner@acme.test";
  r.owner_password = "owner-password";
  ASSERT_TRUE(first.create_tenant(r, {}));
  auto second_platform = app::Platform::open(tp->config(), SystemClock::instance(), {});
  ASSERT_TRUE(second_platform) << second_platform.error().message;
  ApiClient one(first);
  ApiClient two(**second_platform);
  auto token = one.call(Method::post, "/v1/auth/token",
                        Json{{"grant_type", "password"},
                             {"email", "owner@acme.test"},
                             {"password", "owner-password"},
                             {"tenant", "acme"}});
  ASSERT_EQ(token.status, 200);
  const std::string access = token.body.value("access_token", "");
  ASSERT_EQ(two.call(Method::get, "/v1/projects", std::nullopt, access).status, 200);  // cached on instance two
  ASSERT_EQ(one.call(Method::post, "/v1/auth/revoke", Json{{"token", access}}).status, 200);
  EXPECT_EQ(two.call(Method::get, "/v1/projects", std::nullopt, access).status, 401);
}

}  // namespace
}  // namespace atrium::test
