// Users are scoped to their tenants (issue 14, hole 1): one tenant cannot see, link or change another tenant's member
// by naming their e-mail, adding a person is an invitation mailed to the address (the same answer whether or not it
// has an account), and API keys cannot grant beyond their own permissions. Every backend and isolation level.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "core/clock.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using identity::Role;
using storage::Backend;

class InvitationsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.billing.run_cron = "";
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    alice_ = add_test_member(platform(), a_.id, "alice@alpha.test", "alice-password", Role::member);
    ASSERT_TRUE(platform().users->update_member(a_.id, alice_, std::nullopt, std::string("Alice A"),
                                                platform().audit->recorder({})));
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string token(const std::string& email, const std::string& password, const std::string& tenant) {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    auto r = client_->call(Method::post, "/v1/auth/token", body);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("access_token", "");
  }
  int sign_in_status(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_
        ->call(Method::post, "/v1/auth/token",
               Json{{"grant_type", "password"}, {"email", email}, {"password", password}, {"tenant", tenant}})
        .status;
  }
  ApiResponse invite(const std::string& bearer, const Json& body) {
    return client_->call(Method::post, "/v1/users", body, bearer);
  }
  std::set<std::string> member_emails(const std::string& bearer) {
    std::set<std::string> out;
    auto r = client_->call(Method::get, "/v1/users?limit=100", std::nullopt, bearer);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    for (const auto& m : r.body["data"]) out.insert(m.value("email", ""));
    return out;
  }
  Json member_of(const std::string& bearer, const std::string& id) {
    auto r = client_->call(Method::get, "/v1/users?limit=100", std::nullopt, bearer);
    for (const auto& m : r.body["data"]) {
      if (m.value("id", "") == id) return m;
    }
    return Json::object();
  }
  std::string name_in_a(const std::string& id) {
    auto m = platform().users->get_member(a_.id, id);
    EXPECT_TRUE(m);
    return m ? m->user.name : "";
  }
  // The members of an answer's JSON object, for comparing shapes.
  static std::set<std::string> keys(const Json& j) {
    std::set<std::string> out;
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) out.insert(it.key());
    }
    return out;
  }

  ManualClock clock_{parse_rfc3339("2026-12-01T00:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_, b_;
  std::string alice_, owner_a_, owner_b_;
};

TEST_P(InvitationsApiTest, AnotherTenantsMemberCannotBeLinkedSeenOrRenamed) {
  // Tenant B names A's member: an invitation, nothing about Alice.
  auto known = invite(owner_b_, Json{{"email", "alice@alpha.test"}, {"role", "viewer"}});
  ASSERT_EQ(known.status, 202) << known.body.dump();
  EXPECT_EQ(known.body.value("object", ""), "invitation");
  EXPECT_EQ(known.body.value("status", ""), "pending");
  EXPECT_NE(known.body.value("id", ""), alice_);
  EXPECT_EQ(known.body.dump().find(alice_), std::string::npos);
  EXPECT_EQ(known.body.dump().find("Alice A"), std::string::npos);
  EXPECT_FALSE(member_emails(owner_b_).contains("alice@alpha.test"));
  // The same answer for an address nobody has, and for the super admin's: no enumeration.
  auto unknown = invite(owner_b_, Json{{"email", "nobody@nowhere.test"}, {"role", "viewer"}});
  ASSERT_EQ(unknown.status, 202) << unknown.body.dump();
  EXPECT_EQ(keys(unknown.body), keys(known.body));
  auto root = invite(owner_b_, Json{{"email", "root@atrium.test"}, {"role", "viewer"}});
  ASSERT_EQ(root.status, 202) << root.body.dump();
  EXPECT_EQ(keys(root.body), keys(known.body));
  // A password for someone else's account is not accepted at all (it was how an existing account got linked).
  auto with_password = invite(owner_b_, Json{{"email", "alice@alpha.test"}, {"password", "attacker-pass"}});
  EXPECT_EQ(with_password.status, 400) << with_password.body.dump();
  EXPECT_EQ(sign_in_status("alice@alpha.test", "attacker-pass", "beta"), 400);

  // B addresses Alice by id: not a member there, so there is nothing to read or change.
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"name", "Pwned"}}, owner_b_).status, 404);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/users/" + alice_, std::nullopt, owner_b_).status, 404);
  EXPECT_EQ(name_in_a(alice_), "Alice A");
  EXPECT_TRUE(member_emails(owner_a_).contains("alice@alpha.test"));
}

TEST_P(InvitationsApiTest, AcceptingJoinsTheExistingAccountOrCreatesOne) {
  ASSERT_EQ(invite(owner_b_, Json{{"email", "Alice@Alpha.test"}, {"role", "viewer"}}).status, 202);
  auto alice_token = take_invitation_token(platform(), "alice@alpha.test");
  ASSERT_TRUE(alice_token);
  // The token carries tenant B: changing it to A's id gives nothing.
  std::string forged = *alice_token;
  forged.replace(4, 36, a_.id);
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", forged}}).status, 404);
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", "inv_nope"}}).status, 404);

  auto joined = client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *alice_token}});
  ASSERT_EQ(joined.status, 200) << joined.body.dump();
  EXPECT_EQ(joined.body.value("id", ""), alice_);
  EXPECT_EQ(joined.body.value("tenant_id", ""), b_.id);
  EXPECT_EQ(joined.body.value("role", ""), "viewer");
  EXPECT_FALSE(joined.body.value("account_created", true));
  // Single use.
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *alice_token}}).status, 404);
  // Alice signs in to B with her own password; B's owner sees her now, and still cannot rename her (her account's
  // name is hers), while she can.
  const std::string alice_in_b = token("alice@alpha.test", "alice-password", "beta");
  EXPECT_TRUE(member_emails(owner_b_).contains("alice@alpha.test"));
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"name", "Renamed by B"}}, owner_b_).status, 403);
  EXPECT_EQ(name_in_a(alice_), "Alice A");
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"role", "admin"}}, owner_b_).status, 200);
  EXPECT_EQ(member_of(owner_b_, alice_).value("role", ""), "admin");
  EXPECT_EQ(member_of(owner_a_, alice_).value("role", ""), "member");
  // Her token from before the change carries viewer (no users:manage); a fresh one carries admin, and her own name
  // is hers to change (it is her account's, so A sees it too).
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"name", "Alice B"}}, alice_in_b).status, 403);
  const std::string alice_admin = token("alice@alpha.test", "alice-password", "beta");
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"name", "Alice B"}}, alice_admin).status, 200);
  EXPECT_EQ(name_in_a(alice_), "Alice B");

  // A new address: the account is made on acceptance, with the password its owner chooses.
  ASSERT_EQ(invite(owner_b_, Json{{"email", "newbie@beta.test"}}).status, 202);
  auto newbie = take_invitation_token(platform(), "newbie@beta.test");
  ASSERT_TRUE(newbie);
  auto no_password = client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *newbie}});
  EXPECT_EQ(no_password.status, 400) << no_password.body.dump();
  auto created = client_->call(Method::post, "/v1/invitations/accept",
                               Json{{"token", *newbie}, {"name", "Newbie"}, {"password", "newbie-password"}});
  ASSERT_EQ(created.status, 200) << created.body.dump();
  EXPECT_TRUE(created.body.value("account_created", false));
  EXPECT_EQ(created.body.value("role", ""), "member");
  EXPECT_EQ(sign_in_status("newbie@beta.test", "newbie-password", "beta"), 200);
  EXPECT_EQ(sign_in_status("newbie@beta.test", "newbie-password", "alpha"), 400);
}

TEST_P(InvitationsApiTest, InvitationsAreTheTenantsOwnAndExpire) {
  auto inv = invite(owner_b_, Json{{"email", "carol@elsewhere.test"}, {"role", "member"}});
  ASSERT_EQ(inv.status, 202) << inv.body.dump();
  const std::string id = inv.body.value("id", "");
  auto first = take_invitation_token(platform(), "carol@elsewhere.test");
  ASSERT_TRUE(first);
  // A sees nothing of B's invitations and cannot revoke them.
  auto a_list = client_->call(Method::get, "/v1/invitations", std::nullopt, owner_a_);
  ASSERT_EQ(a_list.status, 200);
  EXPECT_TRUE(a_list.body["data"].empty());
  EXPECT_EQ(client_->call(Method::delete_, "/v1/invitations/" + id, std::nullopt, owner_a_).status, 404);
  auto b_list = client_->call(Method::get, "/v1/invitations", std::nullopt, owner_b_);
  ASSERT_EQ(b_list.body["data"].size(), 1u);
  EXPECT_EQ(b_list.body["data"][0].value("email", ""), "carol@elsewhere.test");
  EXPECT_EQ(b_list.body["data"][0].dump().find("inv_"), std::string::npos) << "the token is shown nowhere";

  // Inviting again renews: the old token stops working, the new one works until it expires.
  ASSERT_EQ(invite(owner_b_, Json{{"email", "carol@elsewhere.test"}, {"role", "viewer"}}).status, 202);
  auto second = take_invitation_token(platform(), "carol@elsewhere.test");
  ASSERT_TRUE(second);
  EXPECT_NE(*first, *second);
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *first}, {"password", "carol-pass1"}})
                .status,
            404);
  clock_.advance(std::chrono::seconds(platform().config().identity.invitation_ttl_s + 1));
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *second}, {"password", "carol-pass1"}})
                .status,
            404);

  // Revoked: gone. (A week went by: the owner signs in again.)
  owner_b_ = token("owner@beta.test", "password-beta", "beta");
  ASSERT_EQ(invite(owner_b_, Json{{"email", "dave@elsewhere.test"}}).status, 202);
  auto dave = take_invitation_token(platform(), "dave@elsewhere.test");
  ASSERT_TRUE(dave);
  auto listed = client_->call(Method::get, "/v1/invitations", std::nullopt, owner_b_);
  std::string dave_id;
  for (const auto& i : listed.body["data"]) {
    if (i.value("email", "") == "dave@elsewhere.test") dave_id = i.value("id", "");
  }
  ASSERT_EQ(client_->call(Method::delete_, "/v1/invitations/" + dave_id, std::nullopt, owner_b_).status, 204);
  EXPECT_EQ(client_->call(Method::post, "/v1/invitations/accept", Json{{"token", *dave}, {"password", "dave-password"}})
                .status,
            404);
  // A member of the tenant already: 409 (the tenant's own business).
  EXPECT_EQ(invite(owner_b_, Json{{"email", "owner@beta.test"}}).status, 409);
  // Bad input changes nothing.
  for (const Json& body : {Json{{"email", "<a@b.com>"}}, Json{{"email", "x@y.test"}, {"role", "god"}},
                           Json{{"email", 5}}, Json{{"email", "x@y.test"}, {"extra", 1}}}) {
    EXPECT_EQ(invite(owner_b_, body).status, 400) << body.dump();
  }
}

TEST_P(InvitationsApiTest, ApiKeysGrantNoMoreThanTheyHold) {
  auto key =
      client_->call(Method::post, "/v1/api-keys",
                    Json{{"name", "hr"}, {"permissions", {"users:manage", "users:read", "projects:read"}}}, owner_a_);
  ASSERT_EQ(key.status, 201) << key.body.dump();
  const std::string secret = key.body.value("secret", "");
  // admin and member grant permissions the key lacks; viewer's (projects:read, users:read) it holds.
  EXPECT_EQ(invite(secret, Json{{"email", "x1@alpha.test"}, {"role", "admin"}}).status, 403);
  EXPECT_EQ(invite(secret, Json{{"email", "x2@alpha.test"}, {"role", "owner"}}).status, 403);
  EXPECT_EQ(invite(secret, Json{{"email", "x3@alpha.test"}, {"role", "member"}}).status, 403);
  EXPECT_EQ(invite(secret, Json{{"email", "x4@alpha.test"}, {"role", "viewer"}}).status, 202);
  // Nor raise an existing member, nor remove one above it.
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + alice_, Json{{"role", "admin"}}, secret).status, 403);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/users/" + alice_, std::nullopt, secret).status, 403);
  EXPECT_EQ(member_of(owner_a_, alice_).value("role", ""), "member");
}

INSTANTIATE_TEST_SUITE_P(Backends, InvitationsApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
