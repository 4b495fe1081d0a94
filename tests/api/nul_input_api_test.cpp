// NUL bytes and malformed e-mail addresses at the API's edge, on both backends: a NUL-suffixed e-mail can neither
// sign in nor dodge the per-account sign-in lock, "%00" is not "no filter", and one address check guards every
// route that takes an e-mail.
#include <gtest/gtest.h>

#include "billing/billing.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

std::string with_nul(std::string_view before, std::string_view after) {
  std::string s(before);
  s += '\0';
  s += after;
  return s;
}

class NulInputApiTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.identity.max_failed_logins_per_account = 3;
    config.identity.max_failed_logins_per_address = 1000;  // only the per-account lock is under test
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam(), config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    tenant_ = create_test_tenant(platform(), "alpha", tenancy::Isolation::shared);
    ASSERT_FALSE(tenant_.id.empty());
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  ApiResponse password_grant(const std::string& email, const std::string& password) {
    return client_->call(
        Method::post, "/v1/auth/token",
        Json{{"grant_type", "password"}, {"email", email}, {"password", password}, {"tenant", "alpha"}});
  }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant = "alpha") {
    return client_->sign_in(email, password, tenant);
  }

  // A problem+json answer with `status` whose detail mentions `needle`.
  static void expect_problem(const ApiResponse& r, int status, const std::string& needle, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << " -> " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << what;
    const std::string detail = r.body.is_object() ? r.body.value("detail", "") : "";
    EXPECT_NE(detail.find(needle), std::string::npos)
        << what << ": the detail '" << detail << "' lacks '" << needle << "'";
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant tenant_;
};

// Before: on PostgreSQL "owner@alpha.test\0zz" looked up the owner (libpq cut the text at the NUL) while the
// throttle counted "owner@alpha.test\0zz" — a fresh counter per suffix, and with the right password a token even
// while the account was locked.
TEST_P(NulInputApiTest, NulSuffixedEmailNeverSignsInNorDodgesTheAccountLock) {
  const std::string owner = "owner@alpha.test";
  const std::string password = "password-alpha";
  // Not locked yet: refused as malformed, with the right password too.
  for (const std::string& email : {with_nul(owner, "zz"), with_nul(owner, ""), with_nul("OWNER@alpha.test", "1")}) {
    expect_problem(password_grant(email, password), 400, "\"/email\" contains a NUL character", "before the lock");
  }
  // The malformed attempts were not failures of the account: three wrong passwords still lock it, no fewer.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(password_grant(owner, "wrong-password").status, 400) << i;
  expect_problem(password_grant(owner, password), 429, "too many failed sign-ins", "the locked account");
  // Another spelling of the same account is the same lock (the key is what is looked up).
  expect_problem(password_grant("Owner@ALPHA.test", password), 429, "too many failed sign-ins", "upper case");
  // Locked: every NUL-suffixed variant is still refused, whatever the suffix, never answered with a token.
  for (int i = 0; i < 10; ++i) {
    const std::string email = with_nul(owner, "zz" + std::to_string(i));
    const auto r = password_grant(email, password);
    EXPECT_NE(r.status, 200) << "signed in with a NUL suffix while locked";
    expect_problem(r, 400, "\"/email\" contains a NUL character", "locked, suffix " + std::to_string(i));
  }
  // Below the HTTP edge too: the token service refuses the NUL before any lookup or counting.
  auto direct = platform().tokens->password_grant(with_nul(owner, "zz"), password, std::string("alpha"), "10.0.0.9",
                                                  platform().audit->recorder({}));
  ASSERT_FALSE(direct) << "issued a token for a NUL-suffixed e-mail";
  EXPECT_EQ(direct.error().code, Errc::invalid_argument) << direct.error().message;
}

TEST_P(NulInputApiTest, TokenServiceRefusesANulEmailBeforeLookingItUp) {
  const std::string owner = "owner@alpha.test";
  for (const std::string& email : {with_nul(owner, "zz"), with_nul(owner, ""), with_nul("", owner)}) {
    auto r = platform().tokens->password_grant(email, "password-alpha", std::string("alpha"), "10.0.0.8",
                                               platform().audit->recorder({}));
    ASSERT_FALSE(r) << "issued a token";
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().message;
  }
  // None of them counted against the owner: three real failures are still needed to lock the account.
  for (int i = 0; i < 2; ++i) EXPECT_EQ(password_grant(owner, "wrong-password").status, 400);
  EXPECT_EQ(password_grant(owner, "password-alpha").status, 200);
}

// Before: "?status=%00" reached the statement "... AND ($2 = '' OR status = $2)" as "" on PostgreSQL: no filter.
TEST_P(NulInputApiTest, StatusFilterWithNulIsRefusedNotDropped) {
  auto root =
      client_->call(Method::post, "/v1/auth/token",
                    Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
  ASSERT_EQ(root.status, 200) << root.raw_body;
  const std::string root_token = root.body.value("access_token", "");
  auto plan = client_->call(Method::post, "/v1/plans",
                            Json{{"code", "pro"},
                                 {"name", "Pro"},
                                 {"tier", "professional"},
                                 {"currency", "USD"},
                                 {"interval", "monthly"},
                                 {"base_price", 5000}},
                            root_token);
  ASSERT_EQ(plan.status, 201) << plan.raw_body;
  const std::string owner = sign_in("owner@alpha.test", "password-alpha");
  auto account = client_->call(Method::put, "/v1/billing-account",
                               Json{{"legal_name", "Alpha"},
                                    {"email", "billing@alpha.test"},
                                    {"address", Json::array({"1 Main Street", "Springfield"})},
                                    {"country", "US"},
                                    {"currency", "USD"},
                                    {"payment_method", "pm_card_visa"}},
                               owner);
  ASSERT_EQ(account.status, 200) << account.raw_body;
  auto test_mode = client_->call(Method::put, "/v1/billing-account", Json{{"test_mode", true}}, root_token,
                                 {{"X-Tenant-ID", tenant_.id}});
  ASSERT_EQ(test_mode.status, 200) << test_mode.raw_body;
  auto sub = client_->call(Method::post, "/v1/subscriptions", Json{{"plan", "pro"}}, owner);
  ASSERT_EQ(sub.status, 201) << sub.raw_body;

  auto all = client_->call(Method::get, "/v1/invoices", std::nullopt, owner);
  ASSERT_EQ(all.status, 200) << all.raw_body;
  ASSERT_EQ(all.body.value("data", Json::array()).size(), 1u);
  const std::string status = all.body["data"][0].value("status", "");
  ASSERT_FALSE(status.empty());
  auto other = client_->call(Method::get, "/v1/invoices?status=void", std::nullopt, owner);
  ASSERT_EQ(other.status, 200) << other.raw_body;
  EXPECT_TRUE(other.body.value("data", Json::array()).empty());

  for (const std::string query : {"status=%00", "status=void%00", "status=%00void", "limit=10&status=%00"}) {
    const auto r = client_->call(Method::get, "/v1/invoices?" + query, std::nullopt, owner);
    expect_problem(r, 400, "query parameter \"status\" contains a NUL character", query);
    EXPECT_EQ(r.body.value("type", ""), "/problems/validation") << query;
  }
  // The storage layer refuses it too, rather than listing every invoice.
  auto listed = platform().billing->list_invoices(tenant_.id, std::string(1, '\0'));
  ASSERT_FALSE(listed) << "listed " << listed->size() << " invoice(s)";
  EXPECT_EQ(listed.error().code, Errc::invalid_argument) << listed.error().message;
}

TEST_P(NulInputApiTest, NulInABodyStringOrPathIsRefusedAndChangesNothing) {
  const std::string owner = sign_in("owner@alpha.test", "password-alpha");
  auto created = client_->call(Method::post, "/v1/projects", Json{{"name", with_nul("Apollo", "x")}}, owner);
  expect_problem(created, 400, "\"/name\" contains a NUL character", "project name");
  auto listed = client_->call(Method::get, "/v1/projects", std::nullopt, owner);
  ASSERT_EQ(listed.status, 200) << listed.raw_body;
  EXPECT_TRUE(listed.body.value("data", Json::array()).empty()) << listed.raw_body;
  // A NUL in a path parameter (possible in-process; the HTTP parser refuses the raw byte on the wire).
  expect_problem(client_->call(Method::get, with_nul("/v1/projects/", "x"), std::nullopt, owner), 400,
                 "path parameter \"id\" contains a NUL character", "path");
}

// One address check everywhere an e-mail is accepted; each address here passed at least one of the old checks.
TEST_P(NulInputApiTest, MalformedEmailsAreRefusedEverywhere) {
  const std::string owner = sign_in("owner@alpha.test", "password-alpha");
  for (const std::string email : {"<a@b.com>", "\"A\" <a@b.com>", "a@b.com>", "a..b@c.com", "a@b", "a@-b.com"}) {
    SCOPED_TRACE(email);
    // POST /v1/users: the address is checked before anyone is added or invited.
    expect_problem(client_->call(Method::post, "/v1/users", Json{{"email", email}, {"role", "member"}}, owner), 400,
                   "email is not a valid address", "POST /v1/users");
    auto member = platform().users->add_member(tenant_.id, email, "", std::string("member-password"),
                                               identity::Role::member, platform().audit->recorder({}));
    ASSERT_FALSE(member);
    EXPECT_EQ(member.error().code, Errc::invalid_argument);
    EXPECT_EQ(member.error().message, "email is not a valid address");
    EXPECT_FALSE(platform().users->create_user(email, "X", "some-password", false, platform().audit->recorder({})));
    app::Platform::NewTenantRequest t;
    t.tenant.slug = "beta";
    t.tenant.name = "Beta";
    t.owner_email = email;
    t.owner_password = "owner-password";
    auto tenant = platform().create_tenant(t, {});
    ASSERT_FALSE(tenant);
    EXPECT_EQ(tenant.error().code, Errc::invalid_argument);
    expect_problem(
        client_->call(Method::put, "/v1/email-settings", Json{{"from_name", "Alpha"}, {"reply_to", email}}, owner), 400,
        "reply_to", "PUT /v1/email-settings");
  }
  // The billing account's e-mail (its old check only wanted an '@' and no space or angle bracket).
  for (const std::string email : {"a..b@c.com", "a@b", "a@-b.com", ".a@b.com", "a\"b@c.com"}) {
    expect_problem(client_->call(Method::put, "/v1/billing-account",
                                 Json{{"legal_name", "Alpha"},
                                      {"email", email},
                                      {"address", Json::array({"1 Main Street"})},
                                      {"country", "US"},
                                      {"currency", "USD"}},
                                 owner),
                   400, "email must be an email address", "PUT /v1/billing-account " + email);
  }
  // Nothing was created.
  auto members = client_->call(Method::get, "/v1/users", std::nullopt, owner);
  ASSERT_EQ(members.status, 200) << members.raw_body;
  EXPECT_EQ(members.body.value("data", Json::array()).size(), 1u) << members.raw_body;
  EXPECT_EQ(client_->call(Method::get, "/v1/billing-account", std::nullopt, owner).status, 404);
}

INSTANTIATE_TEST_SUITE_P(Backends, NulInputApiTest, all_backends(), backend_name);

}  // namespace
}  // namespace atrium::test
