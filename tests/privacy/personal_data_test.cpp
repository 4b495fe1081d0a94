// One person's data (docs/data-protection.md, "One person's data"): a super admin exports everything Atrium holds
// about a user — the account, memberships in tenants of every level, sessions, invitations to the address, the
// audit entries by and about them — and erases it: the person can no longer sign in or be found by address, their
// tokens are refused, their memberships, sessions and invitations are gone, the audit chains still verify and the
// erasure's own entry names no address. Only super admins reach it. Every isolation level, both backends.
#include <gtest/gtest.h>

#include "audit/audit_log.hpp"
#include "identity/invitations.hpp"
#include "identity/user_store.hpp"
#include "privacy/personal_data.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;

class PersonalDataTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == storage::Backend::postgres && !postgres_url(),
                           "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    auto root = platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({}));
    ASSERT_TRUE(root) << root.error().message;
    root_id_ = root->id;
    root_ = client_->sign_in("root@atrium.test", "root-password");
    alpha_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    bravo_ = create_test_tenant(platform(), "bravo", GetParam().isolation);
    charlie_ = create_test_tenant(platform(), "charlie", GetParam().isolation);
    ana_ = add_test_member(platform(), alpha_.id, "ana@person.test", "ana-password", identity::Role::admin);
    ASSERT_TRUE(platform().users->add_member(bravo_.id, "ana@person.test", "", std::nullopt, identity::Role::member,
                                             platform().audit->recorder({})));
    bob_ = add_test_member(platform(), alpha_.id, "bob@person.test", "bob-password", identity::Role::member);
    ASSERT_TRUE(platform().invitations->invite(charlie_.id, "ana@person.test", identity::Role::viewer, root_id_,
                                               platform().audit->recorder({})));
    ana_token_ = client_->sign_in("ana@person.test", "ana-password", "alpha");
    auto made = client_->call(Method::post, "/v1/projects", Json{{"name", "Ana's project"}}, ana_token_);
    ASSERT_EQ(made.status, 201) << made.raw_body;
  }

  app::Platform& platform() { return tp_->platform(); }
  ApiResponse call(Method m, const std::string& path, const std::optional<Json>& body = {}) {
    return client_->call(m, path, body, root_);
  }
  static std::vector<std::string> column(const Json& rows, const char* field) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.value(field, ""));
    return out;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  std::string root_id_, root_, ana_, bob_, ana_token_;
  tenancy::Tenant alpha_, bravo_, charlie_;
};

TEST_P(PersonalDataTest, TheExportHoldsEverythingAboutThePersonAndNothingAboutOthers) {
  auto found = call(Method::get, "/v1/admin/users?email=ANA@person.test");
  ASSERT_EQ(found.status, 200) << found.raw_body;
  ASSERT_EQ(found.body["data"].size(), 1u);
  EXPECT_EQ(found.body["data"][0]["id"], ana_);
  EXPECT_EQ(call(Method::get, "/v1/admin/users?email=nobody@person.test").body["data"].size(), 0u);
  EXPECT_EQ(call(Method::get, "/v1/admin/users").status, 400);

  auto exported = call(Method::get, "/v1/admin/users/" + ana_ + "/personal-data");
  ASSERT_EQ(exported.status, 200) << exported.raw_body;
  const Json& e = exported.body;
  EXPECT_EQ(e["user"]["email"], "ana@person.test");
  EXPECT_EQ(e["user"]["superAdmin"], false);
  EXPECT_EQ(e["user"]["erased"], false);
  EXPECT_FALSE(e["user"].contains("password_hash"));
  EXPECT_FALSE(e["user"].contains("passwordHash"));
  std::vector<std::string> slugs = column(e["memberships"], "tenantSlug");
  std::sort(slugs.begin(), slugs.end());
  EXPECT_EQ(slugs, (std::vector<std::string>{"alpha", "bravo"}));
  for (const auto& m : e["memberships"]) {
    EXPECT_EQ(m["role"], m["tenantSlug"] == "alpha" ? "admin" : "member");
  }
  ASSERT_EQ(e["sessions"].size(), 1u) << "the sign-in's refresh token";
  EXPECT_EQ(e["sessions"][0]["tenantId"], alpha_.id);
  EXPECT_FALSE(e["sessions"][0].contains("token_hash"));
  ASSERT_EQ(e["invitations"].size(), 1u);
  EXPECT_EQ(e["invitations"][0]["tenantSlug"], "charlie");
  EXPECT_EQ(e["invitations"][0]["role"], "viewer");
  // The audit entries: the project Ana made (in alpha's chain), and those about her account.
  const std::vector<std::string> by = column(e["auditEntries"]["byUser"], "action");
  EXPECT_NE(std::find(by.begin(), by.end(), "project.created"), by.end()) << e["auditEntries"].dump();
  for (const auto& entry : e["auditEntries"]["byUser"]) EXPECT_EQ(entry["actor"]["id"], ana_) << entry.dump();
  const std::vector<std::string> about = column(e["auditEntries"]["aboutUser"], "action");
  EXPECT_FALSE(about.empty());
  for (const auto& entry : e["auditEntries"]["aboutUser"]) EXPECT_EQ(entry["resource"]["id"], ana_) << entry.dump();
  EXPECT_EQ(e["auditEntries"]["truncated"], false);
  // The export itself is recorded: who read her whole record.
  auto recorded = platform().audit->list({.chain_id = "platform", .action = "user.personal_data_exported"});
  ASSERT_TRUE(recorded);
  ASSERT_EQ(recorded->entries.size(), 1u);
  EXPECT_EQ(recorded->entries[0].resource_id, ana_);
  EXPECT_EQ(recorded->entries[0].actor_id, root_id_);
  // Nothing about Bob, who shares a tenant with her.
  EXPECT_EQ(exported.raw_body.find("bob@person.test"), std::string::npos);
  EXPECT_EQ(exported.raw_body.find(bob_), std::string::npos);

  // Ana reads the same about herself with her own sign-in; an API key has no person to read.
  auto own = client_->call(Method::get, "/v1/me/personal-data", std::nullopt, ana_token_);
  ASSERT_EQ(own.status, 200) << own.raw_body;
  EXPECT_EQ(own.body["user"]["id"], ana_);
  EXPECT_EQ(own.body["memberships"], e["memberships"]);
  EXPECT_EQ(own.body["invitations"], e["invitations"]);
  EXPECT_EQ(client_->call(Method::get, "/v1/me/personal-data").status, 401);
  const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  auto key =
      client_->call(Method::post, "/v1/api-keys", Json{{"name", "robot"}, {"permissions", {"projects:read"}}}, owner);
  ASSERT_EQ(key.status, 201) << key.raw_body;
  auto by_key = client_->call(Method::get, "/v1/me/personal-data", std::nullopt, key.body.value("secret", ""));
  EXPECT_EQ(by_key.status, 403) << by_key.raw_body;

  // The rest is for super admins only; an unknown or malformed id is 404.
  for (const auto& [m, path] :
       std::vector<std::pair<Method, std::string>>{{Method::get, "/v1/admin/users?email=ana@person.test"},
                                                   {Method::get, "/v1/admin/users/" + ana_ + "/personal-data"},
                                                   {Method::post, "/v1/admin/users/" + ana_ + "/erase"}}) {
    EXPECT_EQ(client_->call(m, path, std::nullopt, owner).status, 403) << path;
    EXPECT_EQ(client_->call(m, path, std::nullopt, ana_token_).status, 403) << path;
    EXPECT_EQ(client_->call(m, path).status, 401) << path;
  }
  EXPECT_EQ(call(Method::get, "/v1/admin/users/0190a000-0000-7000-8000-000000000000/personal-data").status, 404);
  EXPECT_EQ(call(Method::get, "/v1/admin/users/not-a-user/personal-data").status, 404);
  EXPECT_EQ(call(Method::post, "/v1/admin/users/not-a-user/erase").status, 404);
}

// A second super admin, signed in without a tenant and acting in one with X-Tenant-ID: once erased, both its
// tokens are refused at once — the super-admin claim ends with the account, not at the token's exp.
TEST_P(PersonalDataTest, AnErasedSuperAdminsTokensAreRefusedAtOnce) {
  auto eve =
      platform().users->create_user("eve@atrium.test", "Eve", "eve-password", true, platform().audit->recorder({}));
  ASSERT_TRUE(eve) << eve.error().message;
  const std::string eve_token = client_->sign_in("eve@atrium.test", "eve-password");
  ASSERT_FALSE(eve_token.empty());
  EXPECT_EQ(client_->call(Method::get, "/v1/admin/tenants", std::nullopt, eve_token).status, 200);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, eve_token, {{"X-Tenant-ID", alpha_.id}}).status,
            200);
  ASSERT_EQ(call(Method::post, "/v1/admin/users/" + eve->id + "/erase").status, 200);
  EXPECT_EQ(client_->call(Method::get, "/v1/admin/tenants", std::nullopt, eve_token).status, 401);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, eve_token, {{"X-Tenant-ID", alpha_.id}}).status,
            401);
  // Another super admin's tenant-less token is untouched.
  EXPECT_EQ(client_->call(Method::get, "/v1/admin/tenants", std::nullopt, root_).status, 200);
}

TEST_P(PersonalDataTest, ErasureRemovesThePersonAndKeepsTheRecordsConsistent) {
  // The only owner of a live tenant is not erased (the tenant would have no one to run it): 409, nothing changes.
  const tenancy::Tenant solo = create_test_tenant(platform(), "solo", GetParam().isolation);
  auto owner_of_solo = platform().users->find_by_email("owner@solo.test");
  ASSERT_TRUE(owner_of_solo);
  auto refused = call(Method::post, "/v1/admin/users/" + owner_of_solo->id + "/erase");
  EXPECT_EQ(refused.status, 409) << refused.raw_body;
  EXPECT_NE(refused.body.value("detail", "").find("solo"), std::string::npos) << refused.raw_body;
  EXPECT_EQ(client_->password_grant("owner@solo.test", "password-solo", "solo").status, 200);
  // The last super admin neither.
  EXPECT_EQ(call(Method::post, "/v1/admin/users/" + root_id_ + "/erase").status, 409);

  auto erased = call(Method::post, "/v1/admin/users/" + ana_ + "/erase");
  ASSERT_EQ(erased.status, 200) << erased.raw_body;
  EXPECT_EQ(erased.body["removed"], (Json{{"memberships", 2}, {"sessions", 1}, {"invitations", 1}}));
  // Once only: a retry changes nothing.
  EXPECT_EQ(call(Method::post, "/v1/admin/users/" + ana_ + "/erase").status, 409);

  // She cannot sign in, her token and refresh token are refused, and her address finds no one.
  // Her address and password are refused as any wrong credentials are.
  const auto wrong = client_->password_grant("bob@person.test", "not-bob's-password", "alpha");
  const auto gone = client_->password_grant("ana@person.test", "ana-password", "alpha");
  EXPECT_NE(gone.status, 200);
  EXPECT_EQ(gone.status, wrong.status);
  EXPECT_EQ(gone.body.value("error", ""), "invalid_grant");
  EXPECT_EQ(gone.body.value("detail", ""), wrong.body.value("detail", ""));
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, ana_token_).status, 401);
  EXPECT_EQ(call(Method::get, "/v1/admin/users?email=ana@person.test").body["data"].size(), 0u);
  // Alpha's members are Bob and the owner; her project stays (the tenant's data), made by an id.
  const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  auto members = client_->call(Method::get, "/v1/users", std::nullopt, owner);
  ASSERT_EQ(members.status, 200);
  std::vector<std::string> emails = column(members.body["data"], "email");
  std::sort(emails.begin(), emails.end());
  EXPECT_EQ(emails, (std::vector<std::string>{"bob@person.test", "owner@alpha.test"}));
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, owner).body["data"].size(), 1u);
  const std::string charlie_owner = client_->sign_in("owner@charlie.test", "password-charlie", "charlie");
  EXPECT_EQ(client_->call(Method::get, "/v1/invitations", std::nullopt, charlie_owner).body["data"].size(), 0u);

  // What is left of the account: its id, a pseudonymous address, nothing else.
  auto after = call(Method::get, "/v1/admin/users/" + ana_ + "/personal-data");
  ASSERT_EQ(after.status, 200) << after.raw_body;
  EXPECT_EQ(after.body["user"]["email"], "erased-" + ana_ + "@erased.invalid");
  EXPECT_EQ(after.body["user"]["name"], "");
  EXPECT_EQ(after.body["user"]["erased"], true);
  EXPECT_EQ(after.body["memberships"].size(), 0u);
  EXPECT_EQ(after.body["sessions"].size(), 0u);
  EXPECT_EQ(after.body["invitations"].size(), 0u);
  // The erasure is audited in the platform chain without her address, and every chain still verifies.
  auto entries = platform().audit->list({.chain_id = "platform", .action = "user.erased"});
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->entries.size(), 1u);
  EXPECT_EQ(entries->entries[0].resource_id, ana_);
  EXPECT_EQ(entries->entries[0].changes.find("ana@"), std::string::npos) << entries->entries[0].changes;
  auto verified = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_TRUE(verified->findings.empty());

  // The address is free again: a new account, unrelated to the erased one.
  auto again =
      platform().users->create_user("ana@person.test", "Ana", "new-password", false, platform().audit->recorder({}));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_NE(again->id, ana_);
}

INSTANTIATE_TEST_SUITE_P(Isolation, PersonalDataTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
