// Tenant ids and slugs have disjoint forms, and the tenant cache is keyed by kind: a tenant whose slug is another
// tenant's id must not take over that tenant's requests. Every isolation level on every backend, with the cache
// on (entries live a minute), since the takeover went through it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "core/ids.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;
using Headers = std::vector<std::pair<std::string, std::string>>;

std::string upper(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::string without_dashes(std::string s) {
  std::erase(s, '-');
  return s;
}

class TenantResolutionTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.base_domain = "atrium.test";
    config.tenancy.cache_ttl_ms = 60'000;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    ASSERT_FALSE(a_.id.empty());
    token_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    root_ = sign_in("root@atrium.test", "root-password", "");
    ASSERT_EQ(create_project(token_a_, "A's project"), 201);
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  int create_project(const std::string& token, const std::string& name, const Headers& headers = {}) {
    return client_->call(Method::post, "/v1/projects", Json{{"name", name}}, token, headers).status;
  }

  // The project names the request sees, or {"<status>"} when it is refused.
  std::vector<std::string> project_names(const std::string& token, const Headers& headers = {}) {
    auto r = client_->call(Method::get, "/v1/projects?limit=100", std::nullopt, token, headers);
    if (r.status != 200) return {std::to_string(r.status)};
    std::vector<std::string> names;
    for (const auto& p : r.body["data"]) names.push_back(p.value("name", ""));
    std::ranges::sort(names);
    return names;
  }

  // Gives tenant `id` the slug `slug` behind the API's back, as a row written before slugs were checked would be.
  void set_slug_directly(const std::string& id, const std::string& slug) {
    auto r = platform().db().transact([&](storage::Transaction& tx) -> Result<void> {
      auto updated =
          tx.execute(storage::Statement{"test_set_tenant_slug", "UPDATE tenants SET slug = $1 WHERE id = $2"},
                     {storage::Value(slug), storage::Value(id)});
      if (!updated) return std::unexpected(updated.error());
      if (updated->affected_rows != 1) return fail(Errc::internal, "no tenant updated");
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  std::string token_a_;
  std::string root_;
};

TEST_P(TenantResolutionTest, ASlugWithTheFormOfAnIdIsRefused) {
  const std::string other_id = new_uuid_v7(SystemClock::instance());
  for (const std::string& slug :
       {a_.id, upper(a_.id), without_dashes(a_.id), upper(without_dashes(a_.id)), other_id, without_dashes(other_id)}) {
    auto r = client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", slug}, {"name", "X"}}, root_);
    EXPECT_EQ(r.status, 400) << slug << " " << r.body.dump();
    EXPECT_EQ(r.content_type, "application/problem+json") << slug;
    EXPECT_EQ(r.body.value("type", ""), "/problems/validation") << slug;
    EXPECT_NE(r.body.value("detail", "").find("slug"), std::string::npos) << r.body.dump();
  }
  // Slugs cannot be changed at all: PATCH knows no slug member.
  auto patch = client_->call(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"slug", without_dashes(a_.id)}}, root_);
  EXPECT_EQ(patch.status, 400) << patch.body.dump();
  // Nothing was created or changed.
  auto list = client_->call(Method::get, "/v1/admin/tenants", std::nullopt, root_);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["data"].size(), 1u) << list.body.dump();
  EXPECT_EQ(list.body["data"][0].value("slug", ""), "alpha");
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  // An ordinary slug is still fine.
  EXPECT_EQ(client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", "x-ray-2"}, {"name", "X"}}, root_).status,
            201);
}

// A tenant X whose slug is A's id, as rows written before the rule could be: once X is in the cache, A's own
// requests (naming A by the token's claim or X-Tenant-ID) still reach A alone, and X is reachable by its id only.
TEST_P(TenantResolutionTest, AnOldSlugEqualToAnotherTenantsIdTakesNothingOver) {
  const tenancy::Tenant x = create_test_tenant(platform(), "xray", GetParam().isolation);
  ASSERT_FALSE(x.id.empty());
  const std::string token_x = sign_in("owner@xray.test", "password-xray", "xray");
  set_slug_directly(x.id, a_.id);

  // X is resolved (by its id, from its owner's token) and so cached, after A; naming it by the id-shaped slug
  // finds nothing.
  ASSERT_EQ(create_project(token_x, "X's project"), 201);
  EXPECT_EQ(project_names(token_x), std::vector<std::string>{"X's project"});
  const Headers x_by_host = {{"Host", a_.id + ".atrium.test"}};
  EXPECT_EQ(project_names(token_x, x_by_host), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(root_, x_by_host), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", x.id}}), std::vector<std::string>{"X's project"});

  // A's owner, by the token's claim alone and with X-Tenant-ID naming A's id in any spelling of a UUID.
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(token_a_, {{"X-Tenant-ID", a_.id}}), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(token_a_, {{"X-Tenant-ID", upper(a_.id)}}), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(token_a_, {{"X-Tenant-ID", without_dashes(a_.id)}}), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(token_a_, x_by_host), std::vector<std::string>{"403"});
  EXPECT_EQ(create_project(token_a_, "A's second"), 201);
  EXPECT_EQ(create_project(token_a_, "A's third", {{"X-Tenant-ID", a_.id}}), 201);
  EXPECT_EQ(create_project(token_a_, "into X", {{"X-Tenant-ID", x.id}}), 403);
  // A super admin naming A's id reaches A.
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", a_.id}}),
            (std::vector<std::string>{"A's project", "A's second", "A's third"}));

  // X is untouched and still its own.
  EXPECT_EQ(project_names(token_x), std::vector<std::string>{"X's project"});
  EXPECT_EQ(project_names(token_x, {{"X-Tenant-ID", a_.id}}), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(token_a_), (std::vector<std::string>{"A's project", "A's second", "A's third"}));
  // Signing in to "A's id" is signing in to A, where X's owner is not a member.
  EXPECT_EQ(client_
                ->call(Method::post, "/v1/auth/token",
                       Json{{"grant_type", "password"},
                            {"email", "owner@xray.test"},
                            {"password", "password-xray"},
                            {"tenant", a_.id}})
                .status,
            400);  // invalid_grant
}

// Suspending a tenant drops it from the cache under its id and its slug at once.
TEST_P(TenantResolutionTest, SuspendingDropsTheCachedTenantByIdAndBySlug) {
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", "alpha"}}), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(root_, {{"Host", "alpha.atrium.test"}}), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  ASSERT_EQ(client_->call(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"status", "suspended"}}, root_).status,
            200);
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", "alpha"}}), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", a_.id}}), std::vector<std::string>{"403"});
  EXPECT_EQ(project_names(root_, {{"Host", "alpha.atrium.test"}}), std::vector<std::string>{"403"});
  ASSERT_EQ(client_->call(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"status", "active"}}, root_).status, 200);
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", "alpha"}}), std::vector<std::string>{"A's project"});
}

INSTANTIATE_TEST_SUITE_P(Levels, TenantResolutionTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
