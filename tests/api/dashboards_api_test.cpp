// Custom dashboards (/v1/analytics/dashboards) and the web console's routes through the real router, on every
// isolation level and both backends: who may read and change dashboards (embed tokens read only), what a widget may
// be, that every change is audited and bad input changes nothing, that one tenant never sees another's; and the
// console's files with their security headers (CSP, frame-ancestors per tenant for the embed page).
#include <gtest/gtest.h>

#include "console/assets.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

Json widget(const std::string& metric, const std::string& chart, int range = 30, const std::string& group = "day") {
  return {{"title", metric + " " + chart},
          {"metric", metric},
          {"chart", chart},
          {"range_days", range},
          {"group_by", group}};
}

class DashboardsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    add_test_member(platform(), a_.id, "member@alpha.test", "member-password", identity::Role::member);
    add_test_member(platform(), a_.id, "viewer@alpha.test", "viewer-password", identity::Role::viewer);
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
    member_a_ = token("member@alpha.test", "member-password", "alpha");
    viewer_a_ = token("viewer@alpha.test", "viewer-password", "alpha");
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

  ApiResponse as(const std::string& who, Method m, const std::string& path, const std::optional<Json>& body = {}) {
    return client_->call(m, path, body, who);
  }

  Json audit_actions(const std::string& resource_id) {
    auto r = as(owner_a_, Method::get, "/v1/audit-logs?resource_id=" + resource_id);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    Json actions = Json::array();
    for (const auto& e : r.body.value("data", Json::array())) actions.push_back(e.value("action", ""));
    return actions;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_, owner_b_, member_a_, viewer_a_;
};

TEST_P(DashboardsApiTest, CreatedReadReplacedDeletedAndEachChangeAudited) {
  const Json body = {{"name", "Growth"},
                     {"widgets", {widget("active_users", "line", 90, "week"), widget("retention", "heatmap")}}};
  auto made = as(member_a_, Method::post, "/v1/analytics/dashboards", body);
  ASSERT_EQ(made.status, 201) << made.raw_body;
  const std::string id = made.body.value("id", "");
  EXPECT_EQ(made.headers.get("Location").value_or(""), "/v1/analytics/dashboards/" + id);
  EXPECT_EQ(made.body["name"], "Growth");
  EXPECT_EQ(made.body["widgets"], body["widgets"]);
  EXPECT_EQ(made.body["version"], 1);

  auto read = as(owner_a_, Method::get, "/v1/analytics/dashboards/" + id);
  ASSERT_EQ(read.status, 200) << read.raw_body;
  EXPECT_EQ(read.body, made.body);
  auto listed = as(member_a_, Method::get, "/v1/analytics/dashboards");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.body["data"].size(), 1u);
  EXPECT_EQ(listed.body["data"][0], made.body);

  const Json replacement = {{"name", "Growth (weekly)"}, {"widgets", {widget("nps", "number")}}};
  auto replaced = as(owner_a_, Method::put, "/v1/analytics/dashboards/" + id, replacement);
  ASSERT_EQ(replaced.status, 200) << replaced.raw_body;
  EXPECT_EQ(replaced.body["name"], "Growth (weekly)");
  EXPECT_EQ(replaced.body["widgets"], replacement["widgets"]);
  EXPECT_EQ(replaced.body["version"], 2);
  EXPECT_EQ(replaced.body["created_at"], made.body["created_at"]);

  ASSERT_EQ(as(owner_a_, Method::delete_, "/v1/analytics/dashboards/" + id).status, 204);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/analytics/dashboards/" + id).status, 404);
  EXPECT_EQ(as(owner_a_, Method::delete_, "/v1/analytics/dashboards/" + id).status, 404);
  EXPECT_EQ(audit_actions(id), Json::array({"dashboard.deleted", "dashboard.updated", "dashboard.created"}));
}

TEST_P(DashboardsApiTest, EmbedTokensAndViewersReadOnlyAsTheirPermissionsAllow) {
  auto made = as(owner_a_, Method::post, "/v1/analytics/dashboards", Json{{"name", "Embedded"}});
  ASSERT_EQ(made.status, 201) << made.raw_body;
  const std::string id = made.body.value("id", "");
  EXPECT_EQ(made.body["widgets"], Json::array());
  // A viewer holds no analytics:view.
  EXPECT_EQ(as(viewer_a_, Method::get, "/v1/analytics/dashboards/" + id).status, 403);
  EXPECT_EQ(as(viewer_a_, Method::post, "/v1/analytics/dashboards", Json{{"name", "v"}}).status, 403);

  auto minted = as(owner_a_, Method::post, "/v1/analytics/embed-tokens", Json{{"ttl_seconds", 300}});
  ASSERT_EQ(minted.status, 201) << minted.raw_body;
  const std::string embed = minted.body.value("token", "");
  auto read = as(embed, Method::get, "/v1/analytics/dashboards/" + id);
  ASSERT_EQ(read.status, 200) << read.raw_body;
  EXPECT_EQ(read.body["name"], "Embedded");
  EXPECT_EQ(as(embed, Method::get, "/v1/analytics/dashboards").status, 200);
  EXPECT_EQ(as(embed, Method::post, "/v1/analytics/dashboards", Json{{"name", "by embed"}}).status, 403);
  EXPECT_EQ(as(embed, Method::put, "/v1/analytics/dashboards/" + id, Json{{"name", "x"}}).status, 403);
  EXPECT_EQ(as(embed, Method::delete_, "/v1/analytics/dashboards/" + id).status, 403);

  // Another tenant's embed token and owner find nothing of A's.
  auto b_minted = as(owner_b_, Method::post, "/v1/analytics/embed-tokens", Json::object());
  ASSERT_EQ(b_minted.status, 201);
  EXPECT_EQ(as(b_minted.body.value("token", ""), Method::get, "/v1/analytics/dashboards/" + id).status, 404);
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/analytics/dashboards/" + id).status, 404);
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/analytics/dashboards").body["data"], Json::array());
  EXPECT_EQ(as(owner_b_, Method::put, "/v1/analytics/dashboards/" + id, Json{{"name", "B's"}}).status, 404);
  EXPECT_EQ(as(owner_b_, Method::delete_, "/v1/analytics/dashboards/" + id).status, 404);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/analytics/dashboards/" + id).body, made.body);
}

TEST_P(DashboardsApiTest, BadInputIsA4xxProblemAndChangesNothing) {
  auto made = as(owner_a_, Method::post, "/v1/analytics/dashboards", Json{{"name", "Kept"}});
  ASSERT_EQ(made.status, 201) << made.raw_body;
  const std::string id = made.body.value("id", "");
  Json too_many = Json::array();
  for (int i = 0; i < 25; ++i) too_many.push_back(widget("dau", "number"));
  const std::vector<std::pair<Json, std::string>> cases = {
      {Json::object(), "name is required"},
      {Json{{"name", ""}}, "name must be 1-100 characters"},
      {Json{{"name", std::string(101, 'x')}}, "name must be 1-100 characters"},
      {Json{{"name", "a\nb"}}, "name must not hold control characters"},
      {Json{{"name", "x"}, {"extra", 1}}, "unknown member 'extra'"},
      {Json{{"name", "x"}, {"widgets", "all"}}, "widgets must be an array"},
      {Json{{"name", "x"}, {"widgets", too_many}}, "at most 24 widgets"},
      {Json{{"name", "x"}, {"widgets", {widget("revenue", "line")}}}, "widgets[0].metric must be one of"},
      {Json{{"name", "x"}, {"widgets", {widget("dau", "line")}}}, "widgets[0].chart for dau must be one of number"},
      {Json{{"name", "x"}, {"widgets", {widget("dau", "number", 14)}}}, "widgets[0].range_days must be 7, 30, 90"},
      {Json{{"name", "x"}, {"widgets", {widget("nps", "number", 30, "week")}}}, "group_by applies to active_users"},
      {Json{{"name", "x"}, {"widgets", {widget("active_users", "line", 30, "year")}}}, "group_by must be day"},
      {Json{{"name", "x"}, {"widgets", {Json{{"metric", "dau"}}}}}, "widgets[0].title must be 1-100"},
      {Json{{"name", "x"}, {"widgets", {Json{{"title", "t"}, {"metric", "dau"}, {"colour", "red"}}}}},
       "unknown member 'widgets[0].colour'"},
  };
  for (const auto& [body, detail] : cases) {
    for (const auto& [method, path] : {std::pair{Method::post, std::string("/v1/analytics/dashboards")},
                                       std::pair{Method::put, "/v1/analytics/dashboards/" + id}}) {
      auto r = as(owner_a_, method, path, body);
      EXPECT_EQ(r.status, 400) << body.dump() << " " << r.raw_body;
      EXPECT_EQ(r.content_type, "application/problem+json");
      EXPECT_NE(r.body.value("detail", "").find(detail), std::string::npos) << r.raw_body;
    }
  }
  // A name taken by another dashboard of the tenant (not by another tenant's) is a conflict.
  ASSERT_EQ(as(owner_b_, Method::post, "/v1/analytics/dashboards", Json{{"name", "Other"}}).status, 201);
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/analytics/dashboards", Json{{"name", "Other"}}).status, 201);
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/analytics/dashboards", Json{{"name", "Kept"}}).status, 409);
  EXPECT_EQ(as(owner_a_, Method::put, "/v1/analytics/dashboards/" + id, Json{{"name", "Other"}}).status, 409);
  // A widget's chart defaults to the metric's first.
  auto defaulted = as(owner_a_, Method::post, "/v1/analytics/dashboards",
                      Json{{"name", "Defaults"}, {"widgets", {Json{{"title", "Ret"}, {"metric", "retention"}}}}});
  ASSERT_EQ(defaulted.status, 201) << defaulted.raw_body;
  EXPECT_EQ(
      defaulted.body["widgets"][0],
      (Json{{"title", "Ret"}, {"metric", "retention"}, {"chart", "heatmap"}, {"range_days", 30}, {"group_by", "day"}}));

  EXPECT_EQ(as(owner_a_, Method::get, "/v1/analytics/dashboards/" + id).body, made.body);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/analytics/dashboards").body["data"].size(), 3u);
  EXPECT_EQ(audit_actions(id), Json::array({"dashboard.created"}));
}

INSTANTIATE_TEST_SUITE_P(Isolation, DashboardsApiTest, all_isolation_cases(), isolation_case_name);

// The console's page and files (one backend is enough: these routes read no tenant data but the embed page's
// tenant settings, which the settings tests cover on every level).
class ConsoleRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(Backend::sqlite, config);
    client_ = std::make_unique<ApiClient>(platform());
    a_ = create_test_tenant(platform(), "alpha", tenancy::Isolation::shared);
    owner_a_ = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
  }
  app::Platform& platform() { return tp_->platform(); }
  ApiResponse get(const std::string& path, const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return client_->send(Method::get, path, "", "", headers);
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  std::string owner_a_;
};

TEST_F(ConsoleRoutesTest, ThePageHasAStrictPolicyAndItsHashedFilesAreCachedForAYear) {
  ASSERT_FALSE(console::assets().empty()) << "built without the console";
  auto page = get("/console");
  ASSERT_EQ(page.status, 200) << page.raw_body;
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  const std::string csp(page.headers.get("Content-Security-Policy").value_or(""));
  EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
  EXPECT_TRUE(csp.ends_with("frame-ancestors 'none'")) << csp;
  EXPECT_EQ(page.headers.get("X-Frame-Options").value_or(""), "DENY");
  EXPECT_EQ(page.headers.get("Cache-Control").value_or(""), "no-cache");
  EXPECT_EQ(page.raw_body.find("<script>"), std::string::npos) << "an inline script";

  // Every file the page names is served under its hashed name, for a year, gzip-compressed when asked.
  int named = 0;
  for (const auto& asset : console::assets()) {
    if (!asset.immutable) continue;
    ASSERT_NE(page.raw_body.find("/console/" + std::string(asset.path)), std::string::npos) << asset.path;
    ++named;
    auto plain = get("/console/" + std::string(asset.path));
    ASSERT_EQ(plain.status, 200);
    EXPECT_EQ(plain.raw_body, asset.body);
    EXPECT_EQ(plain.headers.get("Cache-Control").value_or(""), "public, max-age=31536000, immutable");
    EXPECT_FALSE(plain.headers.get("Content-Encoding").has_value());
    auto packed = get("/console/" + std::string(asset.path), {{"Accept-Encoding", "br, gzip;q=0.8"}});
    EXPECT_EQ(packed.headers.get("Content-Encoding").value_or(""), "gzip");
    EXPECT_EQ(packed.raw_body, asset.gzip);
    EXPECT_LT(packed.raw_body.size(), plain.raw_body.size());
    auto refused = get("/console/" + std::string(asset.path), {{"Accept-Encoding", "gzip;q=0"}});
    EXPECT_FALSE(refused.headers.get("Content-Encoding").has_value());
  }
  EXPECT_GE(named, 2) << "a script and a style sheet";
  auto missing = get("/console/assets/nothing-here.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.content_type, "application/problem+json");
}

TEST_F(ConsoleRoutesTest, TheEmbedPageMayBeFramedByTheOriginsTheTenantLists) {
  auto page = get("/console/embed/alpha");
  ASSERT_EQ(page.status, 200) << page.raw_body;
  EXPECT_TRUE(
      std::string(page.headers.get("Content-Security-Policy").value_or("")).ends_with("frame-ancestors 'none'"));

  auto bad = client_->call(Method::patch, "/v1/settings", Json{{"embed_frame_ancestors", {"*"}}}, owner_a_);
  EXPECT_EQ(bad.status, 400) << bad.raw_body;
  bad =
      client_->call(Method::patch, "/v1/settings", Json{{"embed_frame_ancestors", {"https://a.test/path"}}}, owner_a_);
  EXPECT_EQ(bad.status, 400) << bad.raw_body;
  auto set =
      client_->call(Method::patch, "/v1/settings",
                    Json{{"embed_frame_ancestors", {"https://app.alpha.test", "http://localhost:3000"}}}, owner_a_);
  ASSERT_EQ(set.status, 200) << set.raw_body;
  EXPECT_EQ(set.body["embed_frame_ancestors"], Json::array({"https://app.alpha.test", "http://localhost:3000"}));
  for (const std::string& ref : {std::string("alpha"), a_.id}) {
    page = get("/console/embed/" + ref);
    ASSERT_EQ(page.status, 200);
    const std::string csp(page.headers.get("Content-Security-Policy").value_or(""));
    EXPECT_TRUE(csp.ends_with("frame-ancestors https://app.alpha.test http://localhost:3000")) << csp;
    EXPECT_FALSE(page.headers.get("X-Frame-Options").has_value());
  }
  // The console itself stays unframable.
  EXPECT_TRUE(std::string(get("/console").headers.get("Content-Security-Policy").value_or(""))
                  .ends_with("frame-ancestors 'none'"));
  EXPECT_EQ(get("/console/embed/nobody").status, 404);
  EXPECT_EQ(get("/console/embed/..").status, 404);
}

}  // namespace
}  // namespace atrium::test
