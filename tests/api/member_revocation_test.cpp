// A membership change revokes the member's live access tokens at once (RevocationStore::revoke_member, checked with
// the jti on every request), through the real router and middleware, on both backends and both revocation stores.
#include <gtest/gtest.h>

#include "identity/permissions.hpp"
#include "support/api_client.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using namespace std::chrono_literals;
using http::Method;
using storage::Backend;

struct Setup {
  Backend backend;
  bool redis;  // identity.redis_url set: the shared store; else the in-process one
};

std::string setup_name(const ::testing::TestParamInfo<Setup>& info) {
  return std::string(storage::backend_name(info.param.backend)) + (info.param.redis ? "_redis" : "_memory");
}

[[maybe_unused]] void PrintTo(const Setup& setup, std::ostream* os) {
  *os << storage::backend_name(setup.backend) << (setup.redis ? " with Redis" : " in-process");
}

// Adds `email` (its account created with `password` when it has none) to the tenant as `role`; the user's id.
std::string add_member(app::Platform& platform, const std::string& tenant_id, const std::string& email,
                       const std::string& password, identity::Role role) {
  auto m = platform.users->add_member(tenant_id, email, "", password, role, platform.audit->recorder({}));
  EXPECT_TRUE(m) << m.error().message;
  return m ? m->user.id : "";
}

// Skips (or under CI fails) when a service the setup needs is not configured. True when the test may go on.
bool services_present(const Setup& setup) {
  if (setup.backend == Backend::postgres && !postgres_url()) {
    if (services_required()) ADD_FAILURE() << "ATRIUM_TEST_POSTGRES_URL is not set";
    return false;
  }
  if (setup.redis && !redis_url()) {
    if (services_required()) ADD_FAILURE() << "ATRIUM_TEST_REDIS_URL is not set";
    return false;
  }
  return true;
}

class MemberRevocationTest : public ::testing::TestWithParam<Setup> {
 protected:
  void SetUp() override {
    if (!services_present(GetParam())) GTEST_SKIP() << "service not configured";
    Config config;
    if (GetParam().redis) config.identity.redis_url = *redis_url();
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    ASSERT_TRUE(tp_);
    client_ = std::make_unique<ApiClient>(platform());
    acme_ = create_tenant("acme");
    beta_ = create_tenant("beta");
    // Ada is an admin of both tenants (one account, two memberships).
    ada_ = add_member(platform(), acme_.id, "ada@example.test", "ada-password", identity::Role::admin);
    ASSERT_EQ(add_member(platform(), beta_.id, "ada@example.test", "ada-password", identity::Role::admin), ada_);
    owner_ = access_token("owner@acme.test", "owner-password", "acme");
  }

  app::Platform& platform() { return tp_->platform(); }

  tenancy::Tenant create_tenant(const std::string& slug) {
    app::Platform::NewTenantRequest r;
    r.tenant.slug = slug;
    r.tenant.name = slug;
    r.owner_email = "owner@" + slug + ".test";
    r.owner_password = "owner-password";
    auto t = platform().create_tenant(r, {});
    EXPECT_TRUE(t) << t.error().message;
    return t.value_or(tenancy::Tenant{});
  }

  ApiResponse sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->call(
        Method::post, "/v1/auth/token",
        Json{{"grant_type", "password"}, {"email", email}, {"password", password}, {"tenant", tenant}});
  }
  std::string access_token(const std::string& email, const std::string& password, const std::string& tenant) {
    auto r = sign_in(email, password, tenant);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("access_token", "");
  }
  ApiResponse refresh(const std::string& refresh_token) {
    return client_->call(Method::post, "/v1/auth/token",
                         Json{{"grant_type", "refresh_token"}, {"refresh_token", refresh_token}});
  }

  // GET /v1/users needs users:read: owners and admins, not viewers.
  int admin_route(const std::string& token) {
    return client_->call(Method::get, "/v1/users", std::nullopt, token).status;
  }
  // GET /v1/projects needs projects:read: every role.
  int member_route(const std::string& token) {
    return client_->call(Method::get, "/v1/projects", std::nullopt, token).status;
  }

  // Starts within a second (+200 ms), so a millisecond later is the same second: the issue time in whole seconds
  // (iat) could not tell a token from a change a millisecond after it.
  ManualClock clock_{std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) + 200ms};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant acme_;
  tenancy::Tenant beta_;
  std::string ada_;
  std::string owner_;
};

TEST_P(MemberRevocationTest, DowngradeRefusesTheOldTokenAtOnceAndANewSignInHoldsTheNewRole) {
  auto grant = sign_in("ada@example.test", "ada-password", "acme");
  ASSERT_EQ(grant.status, 200) << grant.body.dump();
  const std::string old = grant.body.value("access_token", "");
  ASSERT_EQ(admin_route(old), 200);  // verified and cached

  clock_.advance(1ms);  // same second
  auto patched = client_->call(Method::patch, "/v1/users/" + ada_, Json{{"role", "viewer"}}, owner_);
  ASSERT_EQ(patched.status, 200) << patched.body.dump();
  EXPECT_EQ(patched.body.value("role", ""), "viewer");
  // The admin token is refused at once, on every route: it no longer says what the member may do.
  EXPECT_EQ(admin_route(old), 401);
  EXPECT_EQ(member_route(old), 401);

  // At the very instant of the change, a new sign-in and a refresh of the old session both hold the new role.
  const std::string fresh = access_token("ada@example.test", "ada-password", "acme");
  EXPECT_EQ(member_route(fresh), 200);
  EXPECT_EQ(admin_route(fresh), 403);
  auto refreshed = refresh(grant.body.value("refresh_token", ""));
  ASSERT_EQ(refreshed.status, 200) << refreshed.body.dump();
  const std::string renewed = refreshed.body.value("access_token", "");
  EXPECT_EQ(member_route(renewed), 200);
  EXPECT_EQ(admin_route(renewed), 403);
  // The owner who made the change is not affected.
  EXPECT_EQ(admin_route(owner_), 200);
}

TEST_P(MemberRevocationTest, RemovalRefusesTheOldTokenAndItsRefresh) {
  auto grant = sign_in("ada@example.test", "ada-password", "acme");
  ASSERT_EQ(grant.status, 200) << grant.body.dump();
  const std::string old = grant.body.value("access_token", "");
  ASSERT_EQ(member_route(old), 200);

  clock_.advance(1ms);
  ASSERT_EQ(client_->call(Method::delete_, "/v1/users/" + ada_, std::nullopt, owner_).status, 204);
  EXPECT_EQ(member_route(old), 401);
  EXPECT_EQ(admin_route(old), 401);
  EXPECT_EQ(refresh(grant.body.value("refresh_token", "")).status, 400);  // invalid_grant
  EXPECT_EQ(sign_in("ada@example.test", "ada-password", "acme").status, 400);
}

TEST_P(MemberRevocationTest, TheSameUsersTokenForAnotherTenantIsUnaffected) {
  const std::string at_acme = access_token("ada@example.test", "ada-password", "acme");
  const std::string at_beta = access_token("ada@example.test", "ada-password", "beta");
  clock_.advance(1ms);
  ASSERT_EQ(client_->call(Method::patch, "/v1/users/" + ada_, Json{{"role", "viewer"}}, owner_).status, 200);
  EXPECT_EQ(admin_route(at_acme), 401);
  EXPECT_EQ(admin_route(at_beta), 200);
  ASSERT_EQ(client_->call(Method::delete_, "/v1/users/" + ada_, std::nullopt, owner_).status, 204);
  EXPECT_EQ(admin_route(at_beta), 200);
  EXPECT_EQ(member_route(at_beta), 200);
}

TEST_P(MemberRevocationTest, ChangesThatLeaveTheRoleAloneKeepTheTokens) {
  const std::string token = access_token("ada@example.test", "ada-password", "acme");
  clock_.advance(1ms);
  // The same role again, and a name (the account's, not the membership's).
  ASSERT_EQ(client_->call(Method::patch, "/v1/users/" + ada_, Json{{"role", "admin"}}, owner_).status, 200);
  ASSERT_EQ(client_->call(Method::patch, "/v1/users/" + ada_, Json{{"name", "Ada L."}}, token).status, 200);
  EXPECT_EQ(admin_route(token), 200);
}

TEST_P(MemberRevocationTest, AnotherInstanceRefusesTheOldTokenToo) {
  // In-process store: a restart reloads the epoch from revoked_tokens. Redis: every instance shares it.
  const std::string old = access_token("ada@example.test", "ada-password", "acme");
  clock_.advance(1ms);
  ASSERT_EQ(client_->call(Method::patch, "/v1/users/" + ada_, Json{{"role", "viewer"}}, owner_).status, 200);
  const std::string fresh = access_token("ada@example.test", "ada-password", "acme");

  auto again = app::Platform::open(tp_->config(), clock_, {});
  ASSERT_TRUE(again) << again.error().message;
  ApiClient second(**again);
  EXPECT_EQ(second.call(Method::get, "/v1/projects", std::nullopt, old).status, 401);
  EXPECT_EQ(second.call(Method::get, "/v1/projects", std::nullopt, fresh).status, 200);
  EXPECT_EQ(second.call(Method::get, "/v1/api-keys", std::nullopt, fresh).status, 403);
}

INSTANTIATE_TEST_SUITE_P(Setups, MemberRevocationTest,
                         ::testing::Values(Setup{Backend::sqlite, false}, Setup{Backend::sqlite, true},
                                           Setup{Backend::postgres, false}, Setup{Backend::postgres, true}),
                         setup_name);

// While the revocation store cannot answer, a membership change is refused (503) and changes nothing, so a token
// can never keep rights its member lost. The owner acts through an API key here: keys are not checked against the
// revocation store, which a bearer JWT would need (and get 503 from) first.
class MemberRevocationUnavailableTest : public ::testing::TestWithParam<Backend> {};

TEST_P(MemberRevocationUnavailableTest, ChangesAreRefusedAndTokensFailClosed) {
  if (!services_present({GetParam(), false})) GTEST_SKIP() << "service not configured";
  Config config;
  config.identity.redis_url = "redis://127.0.0.1:" + std::to_string(closed_port());
  auto tp = TestPlatform::create(GetParam(), config);
  ASSERT_TRUE(tp);
  app::Platform& platform = tp->platform();
  ApiClient client(platform);
  app::Platform::NewTenantRequest r;
  r.tenant.slug = "acme";
  r.tenant.name = "Acme";
  r.owner_email = "owner@acme.test";
  r.owner_password = "owner-password";
  auto tenant = platform.create_tenant(r, {});
  ASSERT_TRUE(tenant) << tenant.error().message;
  const std::string ada = add_member(platform, tenant->id, "ada@example.test", "ada-password", identity::Role::admin);
  auto owner_account = platform.users->find_by_email("owner@acme.test");
  ASSERT_TRUE(owner_account) << owner_account.error().message;
  identity::Principal owner;
  owner.subject = owner_account->id;
  owner.tenant_id = tenant->id;
  owner.role = "owner";
  owner.permissions = identity::permissions_for(identity::Role::owner);
  auto key = platform.api_keys->create(tenant->id, "ops", owner.permissions, owner, platform.audit->recorder({}));
  ASSERT_TRUE(key) << key.error().message;

  EXPECT_EQ(client.call(Method::patch, "/v1/users/" + ada, Json{{"role", "viewer"}}, key->secret).status, 503);
  EXPECT_EQ(client.call(Method::delete_, "/v1/users/" + ada, std::nullopt, key->secret).status, 503);
  auto member = platform.users->get_member(tenant->id, ada);
  ASSERT_TRUE(member) << member.error().message;
  EXPECT_EQ(member->role, identity::Role::admin);

  // Signing in needs no revocation store; using the token does.
  auto grant = client.call(
      Method::post, "/v1/auth/token",
      Json{
          {"grant_type", "password"}, {"email", "ada@example.test"}, {"password", "ada-password"}, {"tenant", "acme"}});
  ASSERT_EQ(grant.status, 200) << grant.body.dump();
  EXPECT_EQ(client.call(Method::get, "/v1/projects", std::nullopt, grant.body.value("access_token", "")).status, 503);
}

INSTANTIATE_TEST_SUITE_P(Backends, MemberRevocationUnavailableTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return std::string(storage::backend_name(info.param)); });

}  // namespace
}  // namespace atrium::test
