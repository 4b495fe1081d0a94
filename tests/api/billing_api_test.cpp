// Billing through the real router and middleware on every backend and isolation level: the tenant boundary on every
// billing route with an id (another tenant, and the operator acting in another tenant, get 404 and change nothing), the
// roles (members see no billing; only the super admin finalizes, voids, credits, sets test mode and edits the catalog),
// bad input (400 problem+json naming the field, nothing written), illegal transitions (409), catalog versions, coupons
// and tax on real invoices (amounts computed by hand here), invoice documents, credit notes and voiding, and the MRR in
// /v1/admin/metrics. Time-dependent cases run on test clocks.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "identity/permissions.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

// Test-clock times as sent (RFC 3339) and as the API shows them (format_rfc3339: milliseconds, Z).
constexpr const char* kJan15 = "2026-01-15T00:00:00Z";
constexpr const char* kFeb15 = "2026-02-15T00:00:00Z";
constexpr const char* kMar15 = "2026-03-15T00:00:00Z";
std::string shown(const std::string& sent) { return sent.substr(0, sent.size() - 1) + ".000Z"; }

class BillingApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = make_tenant("alpha");
    b_ = make_tenant("beta");
    owner_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = sign_in("owner@beta.test", "password-beta", "beta");
    auto root =
        client_->call(Method::post, "/v1/auth/token",
                      Json{{"grant_type", "password"}, {"email", "root@atrium.test"}, {"password", "root-password"}});
    ASSERT_EQ(root.status, 200) << root.raw_body;
    root_ = root.body.value("access_token", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  tenancy::Tenant make_tenant(const std::string& slug) {
    return create_test_tenant(platform(), slug, GetParam().isolation);
  }

  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return client_->sign_in(email, password, tenant);
  }

  // A member of `tenant` with `role`, signed in.
  std::string member(const tenancy::Tenant& tenant, const std::string& email, identity::Role role) {
    auto m =
        platform().users->add_member(tenant.id, email, "", "password-" + email, role, platform().audit->recorder({}));
    EXPECT_TRUE(m) << m.error().message;
    return sign_in(email, "password-" + email, tenant.slug);
  }

  ApiResponse call(Method method, const std::string& path, const std::optional<Json>& body, const std::string& token) {
    return client_->call(method, path, body, token);
  }

  // The super admin: platform-wide, or acting in the tenant `tenant_id` names (X-Tenant-ID).
  ApiResponse as_root(Method method, const std::string& path, const std::optional<Json>& body = std::nullopt,
                      const std::string& tenant_id = "") {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!tenant_id.empty()) headers.emplace_back("X-Tenant-ID", tenant_id);
    return client_->call(method, path, body, root_, headers);
  }

  // 200 and the body.
  Json get(const std::string& token, const std::string& path) {
    auto r = call(Method::get, path, std::nullopt, token);
    EXPECT_EQ(r.status, 200) << path << " " << r.raw_body;
    return r.body;
  }
  Json list(const std::string& token, const std::string& path) { return get(token, path).value("data", Json::array()); }
  Json root_get(const std::string& path, const std::string& tenant_id = "") {
    auto r = as_root(Method::get, path, std::nullopt, tenant_id);
    EXPECT_EQ(r.status, 200) << path << " " << r.raw_body;
    return r.body;
  }

  static std::set<std::string> ids(const Json& data) {
    std::set<std::string> out;
    for (const auto& e : data) out.insert(e.value("id", ""));
    return out;
  }

  // The entry of `data` whose `key` is `value` (null when none).
  static Json find(const Json& data, const std::string& key, const Json& value) {
    for (const auto& e : data) {
      if (e.contains(key) && e[key] == value) return e;
    }
    return nullptr;
  }

  // A problem+json answer with `status` whose detail mentions `needle` (the field at fault).
  static void expect_problem(const ApiResponse& r, int status, const std::string& needle, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << " -> " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << what;
    const std::string detail = r.body.is_object() ? r.body.value("detail", "") : "";
    EXPECT_NE(detail.find(needle), std::string::npos)
        << what << ": the detail '" << detail << "' does not name '" << needle << "'";
  }

  Json make_plan(const std::string& code, const std::string& currency, const std::string& interval,
                 std::int64_t base_price, const Json& extra = Json::object()) {
    Json body = {{"code", code},         {"name", "Plan " + code}, {"tier", "professional"},
                 {"currency", currency}, {"interval", interval},   {"base_price", base_price}};
    body.update(extra);
    auto r = as_root(Method::post, "/v1/plans", body);
    EXPECT_EQ(r.status, 201) << r.raw_body;
    return r.body;
  }

  static Json account_body(const std::string& name, const std::string& currency = "USD",
                           const std::string& country = "US", const std::string& payment_method = "pm_card_visa") {
    return {{"legal_name", name},
            {"email", "billing@" + name + ".test"},
            {"address", Json::array({"1 Main Street", "Springfield"})},
            {"country", country},
            {"currency", currency},
            {"payment_method", payment_method}};
  }

  // The tenant's owner opens its billing account; the super admin turns test mode on when asked.
  void open_account(const std::string& token, const tenancy::Tenant& tenant, const Json& body, bool test_mode) {
    auto r = call(Method::put, "/v1/billing-account", body, token);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    if (test_mode) {
      auto t = as_root(Method::put, "/v1/billing-account", Json{{"test_mode", true}}, tenant.id);
      EXPECT_EQ(t.status, 200) << t.raw_body;
      EXPECT_EQ(t.body.value("test_mode", false), true);
    }
  }

  std::string make_clock(const std::string& token, const std::string& frozen_time) {
    auto r = call(Method::post, "/v1/test-clocks", Json{{"name", "clock"}, {"frozen_time", frozen_time}}, token);
    EXPECT_EQ(r.status, 201) << r.raw_body;
    EXPECT_EQ(r.body.value("frozen_time", ""), shown(frozen_time));
    return r.body.value("id", "");
  }

  Json advance(const std::string& token, const std::string& clock, const std::string& to) {
    auto r = call(Method::post, "/v1/test-clocks/" + clock + "/advance", Json{{"frozen_time", to}}, token);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    EXPECT_EQ(r.body.value("frozen_time", ""), shown(to));
    return r.body;
  }

  Json subscribe(const std::string& token, const Json& body) {
    auto r = call(Method::post, "/v1/subscriptions", body, token);
    EXPECT_EQ(r.status, 201) << body.dump() << " -> " << r.raw_body;
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

// ---- 1. the tenant boundary -----------------------------------------------------------------------------------------

TEST_P(BillingApiTest, AnotherTenantGets404OnEveryBillingRouteWithAnIdAndChangesNothing) {
  make_plan("pro", "USD", "monthly", 5000);
  open_account(owner_a_, a_, account_body("alpha"), true);
  open_account(owner_b_, b_, account_body("beta"), true);
  const std::string clock_a = make_clock(owner_a_, kJan15);
  const std::string clock_b = make_clock(owner_b_, kJan15);
  // B cannot attach A's test clock to a subscription of its own.
  expect_problem(call(Method::post, "/v1/subscriptions", Json{{"plan", "pro"}, {"test_clock_id", clock_a}}, owner_b_),
                 400, "test clock", "B subscribing on A's clock");
  EXPECT_TRUE(list(owner_b_, "/v1/subscriptions").empty());

  const std::string sub_a = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock_a}}).value("id", "");
  const std::string sub_b = subscribe(owner_b_, {{"plan", "pro"}, {"test_clock_id", clock_b}}).value("id", "");
  const Json invoices_a = list(owner_a_, "/v1/invoices");
  const Json invoices_b = list(owner_b_, "/v1/invoices");
  ASSERT_EQ(invoices_a.size(), 1u);
  ASSERT_EQ(invoices_b.size(), 1u);
  const std::string inv_a = invoices_a[0].value("id", "");
  const std::string inv_b = invoices_b[0].value("id", "");
  EXPECT_EQ(invoices_a[0].value("status", ""), "paid");
  // A credit note of A's (by the operator), so every list of A has something in it.
  auto note = as_root(Method::post, "/v1/credit-notes",
                      Json{{"invoice_id", inv_a}, {"amount", 500}, {"method", "credit_balance"}}, a_.id);
  ASSERT_EQ(note.status, 201) << note.raw_body;
  const std::string note_a = note.body.value("id", "");

  auto snapshot_a = [&] {
    return Json{{"account", get(owner_a_, "/v1/billing-account")},
                {"subscription", get(owner_a_, "/v1/subscriptions/" + sub_a)},
                {"invoice", get(owner_a_, "/v1/invoices/" + inv_a)},
                {"clock", get(owner_a_, "/v1/test-clocks/" + clock_a)},
                {"subscriptions", list(owner_a_, "/v1/subscriptions")},
                {"invoices", list(owner_a_, "/v1/invoices")},
                {"credit_notes", list(owner_a_, "/v1/credit-notes")},
                {"test_clocks", list(owner_a_, "/v1/test-clocks")}};
  };
  const Json before = snapshot_a();
  EXPECT_EQ(before["account"].value("credit_balance", 0), 500);

  // Every route with an {id} under the tenant's billing resources, named with A's id.
  const std::map<std::string, std::string> id_of = {
      {"/v1/subscriptions/", sub_a}, {"/v1/invoices/", inv_a}, {"/v1/test-clocks/", clock_a}};
  const std::map<std::string, Json> body_of = {
      {"PATCH /v1/subscriptions/{id}", {{"seats", 3}}},
      {"POST /v1/subscriptions/{id}/cancel", {{"at_period_end", false}}},
      {"POST /v1/test-clocks/{id}/advance", {{"frozen_time", kMar15}}},
  };
  std::set<std::string> covered;
  for (const auto& route : client_->router().routes()) {
    const auto at = route->pattern.find("{id}");
    if (at == std::string::npos) continue;
    std::string id;
    for (const auto& [prefix, value] : id_of) {
      if (route->pattern.starts_with(prefix)) id = value;
    }
    if (id.empty()) continue;
    const std::string key = std::string(http::method_name(route->method)) + " " + route->pattern;
    std::string path = route->pattern;
    path.replace(at, 4, id);
    if (path.ends_with("/preview")) path += "?seats=2";
    std::optional<Json> body;
    if (route->options.json_body) {
      const auto it = body_of.find(key);
      body = it == body_of.end() ? Json::object() : it->second;
    }
    const bool operator_only =
        path.ends_with("/finalize") || path.ends_with("/void") || path.ends_with("/mark-uncollectible");
    auto by_b = call(route->method, path, body, owner_b_);
    if (operator_only) {
      EXPECT_EQ(by_b.status, 403) << key << " " << by_b.raw_body;
    } else {
      EXPECT_EQ(by_b.status, 404) << key << " " << by_b.raw_body;
      EXPECT_EQ(by_b.content_type, "application/problem+json") << key;
      EXPECT_EQ(by_b.body.is_object() ? by_b.body.value("type", "") : "", "/problems/not-found") << key;
    }
    // The operator acting in B does not reach A's objects either (the operator-only routes included).
    auto by_root_in_b = as_root(route->method, path, body, b_.id);
    EXPECT_EQ(by_root_in_b.status, 404) << "super admin in B: " << key << " " << by_root_in_b.raw_body;
    covered.insert(key);
  }
  for (const char* expected :
       {"GET /v1/subscriptions/{id}", "PATCH /v1/subscriptions/{id}", "GET /v1/subscriptions/{id}/preview",
        "POST /v1/subscriptions/{id}/pause", "POST /v1/subscriptions/{id}/resume", "POST /v1/subscriptions/{id}/cancel",
        "GET /v1/invoices/{id}", "POST /v1/invoices/{id}/pay", "GET /v1/invoices/{id}/download",
        "POST /v1/invoices/{id}/finalize", "POST /v1/invoices/{id}/void", "POST /v1/invoices/{id}/mark-uncollectible",
        "GET /v1/test-clocks/{id}", "POST /v1/test-clocks/{id}/advance", "DELETE /v1/test-clocks/{id}"}) {
    EXPECT_TRUE(covered.contains(expected)) << expected << " was not found among the routes";
  }
  // A credit note by the operator acting in B that names A's invoice is refused and credits no one.
  expect_problem(as_root(Method::post, "/v1/credit-notes",
                         Json{{"invoice_id", inv_a}, {"amount", 100}, {"method", "credit_balance"}}, b_.id),
                 400, inv_a, "credit note in B on A's invoice");

  // B's lists hold B's objects and none of A's.
  for (const auto& [path, a_id, b_id] :
       {std::tuple<std::string, std::string, std::string>{"/v1/subscriptions", sub_a, sub_b},
        {"/v1/invoices", inv_a, inv_b},
        {"/v1/invoices?status=paid", inv_a, inv_b},
        {"/v1/test-clocks", clock_a, clock_b}}) {
    const auto seen = ids(list(owner_b_, path));
    EXPECT_FALSE(seen.contains(a_id)) << path;
    EXPECT_TRUE(seen.contains(b_id)) << path;
  }
  EXPECT_TRUE(list(owner_b_, "/v1/credit-notes").empty());
  const Json account_b = get(owner_b_, "/v1/billing-account");
  EXPECT_EQ(account_b.value("tenant_id", ""), b_.id);
  EXPECT_EQ(account_b.value("legal_name", ""), "beta");
  EXPECT_EQ(account_b.value("credit_balance", -1), 0);
  EXPECT_EQ(get(owner_b_, "/v1/subscriptions/" + sub_b).value("seats", 0), 1);

  // The super admin sees A's invoices when it names A, and only B's when it names B.
  const auto root_in_a = ids(root_get("/v1/invoices", a_.id).value("data", Json::array()));
  EXPECT_EQ(root_in_a, std::set<std::string>{inv_a});
  const auto root_in_b = ids(root_get("/v1/invoices", b_.id).value("data", Json::array()));
  EXPECT_EQ(root_in_b, std::set<std::string>{inv_b});
  const Json seen_by_root = root_get("/v1/invoices/" + inv_a, a_.id);
  EXPECT_EQ(seen_by_root.value("tenant_id", ""), a_.id);
  EXPECT_EQ(seen_by_root.value("total", 0), 5000);
  EXPECT_EQ(ids(root_get("/v1/credit-notes", a_.id).value("data", Json::array())), std::set<std::string>{note_a});
  // A tenant's owner cannot name another tenant.
  EXPECT_EQ(client_->call(Method::get, "/v1/invoices", std::nullopt, owner_b_, {{"X-Tenant-ID", a_.id}}).status, 403);

  const Json after = snapshot_a();
  for (auto it = before.begin(); it != before.end(); ++it) {
    EXPECT_EQ(after[it.key()], it.value()) << "A's " << it.key() << " changed";
  }
}

// ---- 2. roles -------------------------------------------------------------------------------------------------------

TEST_P(BillingApiTest, MembersSeeNoBillingAndOnlyTheSuperAdminDoesTheOperatorsPart) {
  const std::string plan_id = make_plan("pro", "USD", "monthly", 5000).value("id", "");
  open_account(owner_a_, a_, account_body("alpha"), false);
  const std::string sub = subscribe(owner_a_, {{"plan", "pro"}}).value("id", "");
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const std::string paid = invoices[0].value("id", "");
  const std::string member_token = member(a_, "member@alpha.test", identity::Role::member);
  const std::string admin_token = member(a_, "admin@alpha.test", identity::Role::admin);

  // billing:view: members have it not, admins do.
  for (const std::string& path :
       {std::string("/v1/billing-account"), std::string("/v1/subscriptions"), "/v1/subscriptions/" + sub,
        "/v1/subscriptions/" + sub + "/preview?seats=2", std::string("/v1/invoices"), "/v1/invoices/" + paid,
        "/v1/invoices/" + paid + "/download?format=html", std::string("/v1/credit-notes"),
        std::string("/v1/test-clocks")}) {
    auto r = call(Method::get, path, std::nullopt, member_token);
    EXPECT_EQ(r.status, 403) << "member " << path << " " << r.raw_body;
    EXPECT_EQ(r.content_type, "application/problem+json") << path;
    EXPECT_EQ(call(Method::get, path, std::nullopt, admin_token).status, 200) << "admin " << path;
  }
  // billing:manage: neither has it.
  const Json before_sub = get(owner_a_, "/v1/subscriptions/" + sub);
  const Json before_account = get(owner_a_, "/v1/billing-account");
  for (const auto& token : {member_token, admin_token}) {
    for (const auto& [method, path, body] :
         {std::tuple<Method, std::string, std::optional<Json>>{Method::put, "/v1/billing-account",
                                                               Json{{"legal_name", "taken over"}}},
          {Method::patch, "/v1/subscriptions/" + sub, Json{{"seats", 4}}},
          {Method::post, "/v1/subscriptions/" + sub + "/pause", std::nullopt},
          {Method::post, "/v1/subscriptions/" + sub + "/cancel", Json::object()},
          {Method::post, "/v1/invoices/" + paid + "/pay", std::nullopt},
          {Method::post, "/v1/test-clocks", Json::object()}}) {
      EXPECT_EQ(call(method, path, body, token).status, 403) << http::method_name(method) << " " << path;
    }
  }
  EXPECT_EQ(get(owner_a_, "/v1/subscriptions/" + sub), before_sub);
  EXPECT_EQ(get(owner_a_, "/v1/billing-account"), before_account);

  // The operator's part, refused to the tenant's owner.
  auto draft = as_root(
      Method::post, "/v1/invoices",
      Json{{"lines", Json::array({Json{{"description", "Onboarding"}, {"quantity", 1}, {"unit_amount", 2500}}})}},
      a_.id);
  ASSERT_EQ(draft.status, 201) << draft.raw_body;
  ASSERT_EQ(draft.body.value("status", ""), "draft");
  const std::string draft_id = draft.body.value("id", "");
  const Json one_off = {
      {"lines", Json::array({Json{{"description", "Anything"}, {"quantity", 1}, {"unit_amount", 100}}})}};
  for (const auto& [method, path, body] :
       {std::tuple<Method, std::string, std::optional<Json>>{Method::post, "/v1/invoices", one_off},
        {Method::post, "/v1/invoices/" + draft_id + "/finalize", std::nullopt},
        {Method::post, "/v1/invoices/" + draft_id + "/void", std::nullopt},
        {Method::post, "/v1/invoices/" + paid + "/void", std::nullopt},
        {Method::post, "/v1/invoices/" + draft_id + "/mark-uncollectible", std::nullopt},
        {Method::post, "/v1/credit-notes", Json{{"invoice_id", paid}, {"amount", 100}, {"method", "credit_balance"}}},
        {Method::put, "/v1/billing-account", Json{{"test_mode", true}, {"legal_name", "sneaky"}}},
        {Method::post, "/v1/plans",
         Json{{"code", "mine"},
              {"name", "Mine"},
              {"tier", "free"},
              {"currency", "USD"},
              {"interval", "monthly"},
              {"base_price", 1}}},
        {Method::patch, "/v1/plans/" + plan_id, Json{{"base_price", 1}}},
        {Method::post, "/v1/coupons", Json{{"code", "FREE"}, {"percent_off_bps", 10000}, {"duration", "forever"}}},
        {Method::get, "/v1/coupons", std::nullopt},
        {Method::put, "/v1/tax-rates", Json{{"country", "US"}, {"bps", 1}}}}) {
    auto r = call(method, path, body, owner_a_);
    EXPECT_EQ(r.status, 403) << "owner " << http::method_name(method) << " " << path << " " << r.raw_body;
  }
  // Nothing of it happened.
  const Json after_invoices = list(owner_a_, "/v1/invoices");
  EXPECT_EQ(ids(after_invoices), (std::set<std::string>{paid, draft_id}));
  EXPECT_EQ(get(owner_a_, "/v1/invoices/" + draft_id).value("status", ""), "draft");
  EXPECT_EQ(get(owner_a_, "/v1/invoices/" + paid).value("status", ""), "paid");
  EXPECT_TRUE(list(owner_a_, "/v1/credit-notes").empty());
  const Json account = get(owner_a_, "/v1/billing-account");
  EXPECT_EQ(account.value("test_mode", true), false);
  EXPECT_EQ(account.value("legal_name", ""), "alpha");
  EXPECT_EQ(account.value("credit_balance", -1), 0);
  const Json plans = root_get("/v1/plans?include_inactive=true").value("data", Json::array());
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].value("base_price", 0), 5000);
  EXPECT_EQ(plans[0].value("version", 0), 1);
  EXPECT_TRUE(root_get("/v1/coupons").value("data", Json::array()).empty());
  EXPECT_TRUE(list(owner_a_, "/v1/tax-rates").empty());

  // The super admin acting in the tenant may.
  auto finalized = as_root(Method::post, "/v1/invoices/" + draft_id + "/finalize", std::nullopt, a_.id);
  EXPECT_EQ(finalized.status, 200) << finalized.raw_body;
  EXPECT_EQ(finalized.body.value("status", ""),
            "paid");  // charged to pm_card_visa at once
  EXPECT_EQ(finalized.body.value("amount_paid", 0), 2500);
  auto test_mode = as_root(Method::put, "/v1/billing-account", Json{{"test_mode", true}}, a_.id);
  EXPECT_EQ(test_mode.status, 200) << test_mode.raw_body;
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("test_mode", false), true);
}

// ---- 3. bad input and illegal transitions ---------------------------------------------------------------------------

TEST_P(BillingApiTest, BadInputIs400NamingTheFieldAndChangesNothing) {
  const std::string plan_id = make_plan("pro", "USD", "monthly", 5000).value("id", "");
  make_plan("pro-eur", "EUR", "monthly", 4500);
  open_account(owner_a_, a_, account_body("alpha"), true);
  const std::string clock = make_clock(owner_a_, kJan15);
  // Coupons the account cannot use: another currency, expired at the clock's time, deactivated.
  for (const Json& c : {Json{{"code", "EURO5"}, {"amount_off", 500}, {"currency", "EUR"}},
                        Json{{"code", "OLD"}, {"percent_off_bps", 1000}, {"redeem_by", "2025-12-31T00:00:00Z"}},
                        Json{{"code", "GONE"}, {"percent_off_bps", 1000}}}) {
    ASSERT_EQ(as_root(Method::post, "/v1/coupons", c).status, 201) << c.dump();
  }
  const Json gone = find(root_get("/v1/coupons").value("data", Json::array()), "code", "GONE");
  ASSERT_EQ(as_root(Method::delete_, "/v1/coupons/" + gone.value("id", "")).status, 200);

  // Subscriptions.
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"plan", "pro"}, {"bogus", 1}}, "bogus"},
           {Json{{"plan", 5}}, "plan"},
           {Json{{"seats", 1}}, "plan"},
           {Json{{"plan", "pro"}, {"seats", "3"}}, "seats"},
           {Json{{"plan", "pro"}, {"seats", 2.5}}, "seats"},
           {Json{{"plan", "pro"}, {"seats", -1}}, "seats"},
           {Json{{"plan", "pro"}, {"seats", 0}}, "seats"},
           {Json{{"plan", "no-such-plan"}}, "no-such-plan"},
           {Json{{"plan", "pro-eur"}}, "currency"},
           {Json{{"plan", "pro"}, {"coupon", "NOPE"}}, "coupon"},
           {Json{{"plan", "pro"}, {"coupon", "GONE"}}, "coupon"},
           {Json{{"plan", "pro"}, {"coupon", "EURO5"}}, "currency"},
           {Json{{"plan", "pro"}, {"coupon", "OLD"}, {"test_clock_id", clock}}, "expired"},
           {Json{{"plan", "pro"}, {"test_clock_id", "not-a-clock"}}, "test clock"},
           {Json{{"plan", "pro"}, {"trial_days", -1}}, "trial_days"},
           {Json{{"plan", "pro"}, {"trial_days", 7}, {"billing_anchor_day", 1}}, "billing_anchor_day"},
           {Json{{"plan", "pro"}, {"billing_anchor_day", 32}}, "billing_anchor_day"},
           {Json::array({"pro"}), "object"},
       }) {
    expect_problem(call(Method::post, "/v1/subscriptions", body, owner_a_), 400, field, "subscribe " + body.dump());
  }
  EXPECT_TRUE(list(owner_a_, "/v1/subscriptions").empty());
  EXPECT_TRUE(list(owner_a_, "/v1/invoices").empty());
  for (const auto& c : root_get("/v1/coupons").value("data", Json::array())) {
    EXPECT_EQ(c.value("times_redeemed", -1), 0) << c.dump();
  }

  // The billing account: each bad field comes with a good change that must not be applied either.
  const Json account_before = get(owner_a_, "/v1/billing-account");
  for (const auto& [bad, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"payment_method", "pm_card_gold"}}, "payment_method"},
           {Json{{"payment_method", 4242}}, "payment_method"},
           {Json{{"currency", "XYZ"}}, "currency"},
           {Json{{"email", "nobody"}}, "email"},
           {Json{{"country", "Germany"}}, "country"},
           {Json{{"country", "de"}}, "country"},
           {Json{{"proration", "hourly"}}, "proration"},
           {Json{{"address", "1 Main Street"}}, "address"},
           {Json{{"tax_ids", Json::array({1})}}, "tax_ids"},
           {Json{{"test_mode", "yes"}}, "test_mode"},
           {Json{{"nickname", "al"}}, "nickname"},
       }) {
    Json body = bad;
    body["legal_name"] = "Changed Inc";
    expect_problem(call(Method::put, "/v1/billing-account", body, owner_a_), 400, field, "account " + body.dump());
  }
  expect_problem(call(Method::put, "/v1/billing-account", Json{{"legal_name", ""}}, owner_a_), 400, "legal_name",
                 "empty legal_name");
  EXPECT_EQ(get(owner_a_, "/v1/billing-account"), account_before);

  // The catalog (super admin).
  const Json good_plan = {{"code", "bad"},     {"name", "Bad"},         {"tier", "starter"},
                          {"currency", "USD"}, {"interval", "monthly"}, {"base_price", 1000}};
  auto plan_with = [&](const Json& change, const std::string& drop = "") {
    Json p = good_plan;
    if (change.is_object()) p.update(change);
    if (!drop.empty()) p.erase(drop);
    return p;
  };
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {plan_with({{"interval", "weekly"}}), "interval"},
           {plan_with({{"tier", "gold"}}), "tier"},
           {plan_with({{"currency", "ZZZ"}}), "currency"},
           {plan_with({{"currency", "usd"}}), "currency"},
           {plan_with(Json::object(), "currency"), "currency"},
           {plan_with({{"base_price", -1}}), "base_price"},
           {plan_with({{"base_price", "1000"}}), "base_price"},
           {plan_with(Json::object(), "base_price"), "base_price"},
           {plan_with({{"included_seats", -1}}), "included_seats"},
           {plan_with({{"seat_price", -5}}), "seat_price"},
           {plan_with({{"code", "has space"}}), "code"},
           {plan_with({{"limits", {{"projects", -1}}}}), "limits.projects"},
           {plan_with({{"colour", "blue"}}), "colour"},
       }) {
    expect_problem(as_root(Method::post, "/v1/plans", body), 400, field, "plan " + body.dump());
  }
  expect_problem(as_root(Method::patch, "/v1/plans/" + plan_id, Json{{"interval", "weekly"}}), 400, "interval",
                 "plan patch interval");
  expect_problem(as_root(Method::patch, "/v1/plans/" + plan_id, Json{{"code", "other"}}), 400, "code",
                 "plan patch code");
  expect_problem(as_root(Method::get, "/v1/plans/" + plan_id + "?version=0"), 400, "version", "plan version 0");
  const Json plans = root_get("/v1/plans?include_inactive=true").value("data", Json::array());
  EXPECT_EQ(plans.size(), 2u);
  EXPECT_TRUE(find(plans, "code", "bad").is_null());
  EXPECT_EQ(root_get("/v1/plans/" + plan_id).value("version", 0), 1);

  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"code", "BOTH"}, {"percent_off_bps", 1000}, {"amount_off", 500}, {"currency", "USD"}}, "amount_off"},
           {Json{{"code", "BOTH2"}, {"percent_off_bps", 1000}, {"amount_off", 500}, {"currency", "USD"}},
            "percent_off_bps"},
           {Json{{"code", "NONE"}}, "percent_off_bps"},
           {Json{{"code", "BIG"}, {"percent_off_bps", 10001}}, "percent_off_bps"},
           {Json{{"code", "NOCUR"}, {"amount_off", 500}}, "currency"},
           {Json{{"code", "DUR"}, {"percent_off_bps", 1000}, {"duration", "sometimes"}}, "duration"},
           {Json{{"code", "REP"}, {"percent_off_bps", 1000}, {"duration", "repeating"}}, "duration_months"},
           {Json{{"code", "RB"}, {"percent_off_bps", 1000}, {"redeem_by", "next week"}}, "redeem_by"},
           {Json{{"code", "MAX"}, {"percent_off_bps", 1000}, {"max_redemptions", 0}}, "max_redemptions"},
       }) {
    expect_problem(as_root(Method::post, "/v1/coupons", body), 400, field, "coupon " + body.dump());
  }
  EXPECT_EQ(root_get("/v1/coupons").value("data", Json::array()).size(), 3u);

  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"country", "Germany"}, {"bps", 1900}}, "country"},
           {Json{{"country", "de"}, {"bps", 1900}}, "country"},
           {Json{{"country", "DE"}, {"bps", 10001}}, "bps"},
           {Json{{"country", "DE"}}, "bps"},
           {Json{{"country", "DE"}, {"bps", 1900}, {"inclusive", "no"}}, "inclusive"},
       }) {
    expect_problem(as_root(Method::put, "/v1/tax-rates", body), 400, field, "tax rate " + body.dump());
  }
  EXPECT_TRUE(list(owner_a_, "/v1/tax-rates").empty());

  // Test clocks: bad RFC 3339, and no going back.
  expect_problem(call(Method::post, "/v1/test-clocks", Json{{"frozen_time", "yesterday"}}, owner_a_), 400,
                 "frozen_time", "clock with a bad time");
  const Json clock_before = get(owner_a_, "/v1/test-clocks/" + clock);
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"frozen_time", "2026-01-01T00:00:00Z"}}, "frozen_time"},
           {Json{{"frozen_time", kJan15}}, "frozen_time"},
           {Json{{"frozen_time", "15/02/2026"}}, "frozen_time"},
           {Json{{"frozen_time", "2026-02-15"}}, "frozen_time"},
           {Json{{"frozen_time", 1771113600}}, "frozen_time"},
           {Json{{"frozen_time", kFeb15}, {"by", "me"}}, "frozen_time"},
       }) {
    expect_problem(call(Method::post, "/v1/test-clocks/" + clock + "/advance", body, owner_a_), 400, field,
                   "advance " + body.dump());
  }
  EXPECT_EQ(get(owner_a_, "/v1/test-clocks/" + clock), clock_before);
  EXPECT_EQ(list(owner_a_, "/v1/test-clocks").size(), 1u);

  // Changes to a subscription, and credit notes and invoices by the operator.
  const std::string sub = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}}).value("id", "");
  const Json sub_before = get(owner_a_, "/v1/subscriptions/" + sub);
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json::object(), "plan"},
           {Json{{"seats", -2}}, "seats"},
           {Json{{"seats", "many"}}, "seats"},
           {Json{{"plan", "pro-eur"}}, "EUR"},
           {Json{{"plan", "nope"}}, "nope"},
           {Json{{"colour", 1}}, "colour"},
       }) {
    expect_problem(call(Method::patch, "/v1/subscriptions/" + sub, body, owner_a_), 400, field,
                   "change " + body.dump());
  }
  expect_problem(call(Method::get, "/v1/subscriptions/" + sub + "/preview?seats=abc", std::nullopt, owner_a_), 400,
                 "seats", "preview seats=abc");
  expect_problem(call(Method::get, "/v1/subscriptions/" + sub + "/preview?seats=0", std::nullopt, owner_a_), 400,
                 "seats", "preview seats=0");
  expect_problem(call(Method::post, "/v1/subscriptions/" + sub + "/cancel", Json{{"at_period_end", "yes"}}, owner_a_),
                 400, "at_period_end", "cancel at_period_end=yes");
  expect_problem(call(Method::post, "/v1/subscriptions/" + sub + "/cancel", Json{{"now", true}}, owner_a_), 400, "now",
                 "cancel now=true");
  EXPECT_EQ(get(owner_a_, "/v1/subscriptions/" + sub), sub_before);
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const std::string inv = invoices[0].value("id", "");
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"amount", 100}}, "invoice_id"},
           {Json{{"invoice_id", inv}, {"amount", "100"}}, "amount"},
           {Json{{"invoice_id", inv}, {"amount", 0}}, "amount"},
           {Json{{"invoice_id", inv}, {"amount", 100}, {"method", "cash"}}, "method"},
           {Json{{"invoice_id", inv}, {"amount", 100}, {"method", "invoice"}}, "method"},
           {Json{{"invoice_id", inv}, {"amount", 100}, {"reason", "because"}}, "reason"},
       }) {
    expect_problem(as_root(Method::post, "/v1/credit-notes", body, a_.id), 400, field, "credit note " + body.dump());
  }
  for (const auto& [body, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"lines", Json::array()}}, "lines"},
           {Json{{"lines", Json::array({Json{{"description", "x"}}})}}, "unit_amount"},
           {Json{{"lines", Json::array({Json{{"unit_amount", 100}}})}}, "description"},
           {Json{{"lines", Json::array({Json{{"description", "x"}, {"unit_amount", 100}, {"quantity", 0}}})}},
            "quantity"},
       }) {
    expect_problem(as_root(Method::post, "/v1/invoices", body, a_.id), 400, field, "invoice " + body.dump());
  }
  EXPECT_TRUE(list(owner_a_, "/v1/credit-notes").empty());
  EXPECT_EQ(ids(list(owner_a_, "/v1/invoices")), std::set<std::string>{inv});
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", -1), 0);
}

TEST_P(BillingApiTest, ASuperAdminStartsTheBillingRunOverTheApi) {
  EXPECT_EQ(client_->call(Method::post, "/v1/admin/billing/run", std::nullopt, owner_a_).status, 403);
  const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "nightly-2026-12-05"}};
  auto first = client_->call(Method::post, "/v1/admin/billing/run", std::nullopt, root_, key);
  ASSERT_EQ(first.status, 202) << first.body.dump();
  EXPECT_TRUE(first.body["created"].get<bool>());
  auto again = client_->call(Method::post, "/v1/admin/billing/run", std::nullopt, root_, key);
  ASSERT_EQ(again.status, 202);
  EXPECT_EQ(again.body["job_id"], first.body["job_id"]);
  EXPECT_FALSE(again.body["created"].get<bool>());
  // The run waits in the queue as a billing.run job.
  auto jobs = client_->call(Method::get, "/v1/admin/jobs", std::nullopt, root_);
  ASSERT_EQ(jobs.status, 200);
  std::int64_t queued = 0;
  for (const auto& row : jobs.body["counts"]) {
    if (row.value("type", "") == "billing.run") queued += row.value("queued", std::int64_t{0});
  }
  EXPECT_EQ(queued, 1) << jobs.body.dump();
}

TEST_P(BillingApiTest, IllegalTransitionsAre409AndChangeNothing) {
  make_plan("pro", "USD", "monthly", 5000);
  auto coupon = as_root(Method::post, "/v1/coupons",
                        Json{{"code", "TEN"}, {"percent_off_bps", 1000}, {"duration", "once"}, {"max_redemptions", 5}});
  ASSERT_EQ(coupon.status, 201) << coupon.raw_body;
  open_account(owner_a_, a_, account_body("alpha"), true);
  const std::string clock = make_clock(owner_a_, kJan15);
  const std::string sub = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}}).value("id", "");
  const std::string path = "/v1/subscriptions/" + sub;

  // Resuming an active subscription.
  expect_problem(call(Method::post, path + "/resume", std::nullopt, owner_a_), 409, "paused", "resume active");
  // A second live subscription (with a coupon whose redemption must be rolled back with it).
  expect_problem(call(Method::post, "/v1/subscriptions", Json{{"plan", "pro"}, {"coupon", "TEN"}}, owner_a_), 409,
                 "live subscription", "second subscription");
  EXPECT_EQ(ids(list(owner_a_, "/v1/subscriptions")), std::set<std::string>{sub});
  EXPECT_EQ(list(owner_a_, "/v1/invoices").size(), 1u);
  const Json coupons = root_get("/v1/coupons").value("data", Json::array());
  ASSERT_EQ(coupons.size(), 1u);
  EXPECT_EQ(coupons[0].value("times_redeemed", -1), 0) << "the failed subscription's redemption was kept";
  EXPECT_EQ(get(owner_a_, path).value("status", ""), "active");

  // Paused: not again, not at period end, no changes.
  auto paused = call(Method::post, path + "/pause", std::nullopt, owner_a_);
  ASSERT_EQ(paused.status, 200) << paused.raw_body;
  EXPECT_EQ(paused.body.value("status", ""), "paused");
  const Json paused_sub = get(owner_a_, path);
  expect_problem(call(Method::post, path + "/pause", std::nullopt, owner_a_), 409, "paused", "pause paused");
  expect_problem(call(Method::post, path + "/cancel", Json{{"at_period_end", true}}, owner_a_), 409, "paused",
                 "cancel paused at period end");
  expect_problem(call(Method::patch, path, Json{{"seats", 2}}, owner_a_), 409, "paused", "change paused");
  EXPECT_EQ(get(owner_a_, path), paused_sub);
  auto resumed = call(Method::post, path + "/resume", std::nullopt, owner_a_);
  ASSERT_EQ(resumed.status, 200) << resumed.raw_body;
  EXPECT_EQ(resumed.body.value("status", ""), "active");

  // Cancelled: the end.
  auto cancelled = call(Method::post, path + "/cancel", Json{{"at_period_end", false}}, owner_a_);
  ASSERT_EQ(cancelled.status, 200) << cancelled.raw_body;
  EXPECT_EQ(cancelled.body.value("status", ""), "cancelled");
  const Json cancelled_sub = get(owner_a_, path);
  expect_problem(call(Method::post, path + "/pause", std::nullopt, owner_a_), 409, "cancelled", "pause cancelled");
  expect_problem(call(Method::post, path + "/resume", std::nullopt, owner_a_), 409, "paused", "resume cancelled");
  expect_problem(call(Method::post, path + "/cancel", Json::object(), owner_a_), 409, "cancelled", "cancel cancelled");
  expect_problem(call(Method::patch, path, Json{{"seats", 2}}, owner_a_), 409, "cancelled", "change cancelled");
  EXPECT_EQ(get(owner_a_, path), cancelled_sub);
  EXPECT_EQ(list(owner_a_, "/v1/invoices").size(), 1u);

  // A cancelled subscription is not live: a new one may start (so the 409 above was about liveness).
  const std::string next = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}}).value("id", "");
  EXPECT_NE(next, sub);
  // A test clock with a live subscription cannot go.
  expect_problem(call(Method::delete_, "/v1/test-clocks/" + clock, std::nullopt, owner_a_), 409, "cancel",
                 "delete a clock in use");
  EXPECT_EQ(get(owner_a_, "/v1/test-clocks/" + clock).value("id", ""), clock);
}

// ---- the tenant's plan and its subscription ------------------------------------------------------------------------

// The tenant record's plan names the plan of its live subscription, whichever path moves it (a subscription, a plan
// change, a dunning-free end at the period end reached by a test clock); an operator cannot set another one while the
// subscription lives (409, nothing changes), and can again once it ended.
TEST_P(BillingApiTest, TheTenantsPlanFollowsItsSubscription) {
  make_plan("pro", "USD", "monthly", 5000);
  make_plan("team", "USD", "monthly", 9000);
  open_account(owner_a_, a_, account_body("alpha"), true);
  const std::string clock = make_clock(owner_a_, kJan15);
  auto plan_of = [&](const tenancy::Tenant& t) { return root_get("/v1/admin/tenants/" + t.id).value("plan", ""); };
  EXPECT_EQ(plan_of(a_), "free");
  const std::string sub = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}}).value("id", "");
  const std::string path = "/v1/subscriptions/" + sub;
  EXPECT_EQ(plan_of(a_), "pro");
  EXPECT_EQ(plan_of(b_), "free") << "another tenant's plan moved";

  const Json before = root_get("/v1/admin/tenants/" + a_.id);
  expect_problem(as_root(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"plan", "team"}}), 409, "subscription",
                 "set the plan of a subscribed tenant");
  EXPECT_EQ(root_get("/v1/admin/tenants/" + a_.id), before);
  // The same plan, or no plan member at all, is fine.
  auto renamed = as_root(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"name", "Alpha Two"}, {"plan", "pro"}});
  ASSERT_EQ(renamed.status, 200) << renamed.raw_body;
  EXPECT_EQ(renamed.body.value("name", ""), "Alpha Two");

  auto changed = call(Method::patch, path, Json{{"plan", "team"}}, owner_a_);
  ASSERT_EQ(changed.status, 200) << changed.raw_body;
  EXPECT_EQ(plan_of(a_), "team");

  auto at_end = call(Method::post, path + "/cancel", Json{{"at_period_end", true}}, owner_a_);
  ASSERT_EQ(at_end.status, 200) << at_end.raw_body;
  EXPECT_EQ(plan_of(a_), "team");
  advance(owner_a_, clock, kFeb15);
  EXPECT_EQ(get(owner_a_, path).value("status", ""), "cancelled");
  EXPECT_EQ(plan_of(a_), "free");

  auto set = as_root(Method::patch, "/v1/admin/tenants/" + a_.id, Json{{"plan", "team"}});
  ASSERT_EQ(set.status, 200) << set.raw_body;
  EXPECT_EQ(set.body.value("plan", ""), "team");
}

// Deleting a tenant ends its subscriptions at once (each recorded and announced like any cancellation); a repeated
// DELETE cancels nothing more, and the other tenant's subscription lives on.
TEST_P(BillingApiTest, DeletingATenantCancelsItsSubscriptions) {
  make_plan("pro", "USD", "monthly", 5000);
  open_account(owner_a_, a_, account_body("alpha"), false);
  open_account(owner_b_, b_, account_body("beta"), false);
  const std::string sub_a = subscribe(owner_a_, {{"plan", "pro"}}).value("id", "");
  const std::string sub_b = subscribe(owner_b_, {{"plan", "pro"}}).value("id", "");
  ASSERT_EQ(root_get("/v1/admin/tenants/" + a_.id).value("plan", ""), "pro");

  auto deleted = as_root(Method::delete_, "/v1/admin/tenants/" + a_.id);
  ASSERT_EQ(deleted.status, 204) << deleted.raw_body;
  auto subs = platform().billing->list_subscriptions(a_.id);
  ASSERT_TRUE(subs) << subs.error().message;
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].status, billing::Status::cancelled);
  EXPECT_TRUE((*subs)[0].cancelled_at.has_value());
  const Json tenant = root_get("/v1/admin/tenants/" + a_.id);
  EXPECT_EQ(tenant.value("status", ""), "deleted");
  EXPECT_EQ(tenant.value("plan", ""), "free");

  auto entries = platform().audit->list(audit::Query{.chain_id = a_.id, .action = "subscription.cancelled"});
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->entries.size(), 1u);
  EXPECT_EQ(entries->entries[0].resource_id, sub_a);

  auto again = as_root(Method::delete_, "/v1/admin/tenants/" + a_.id);
  ASSERT_EQ(again.status, 204) << again.raw_body;
  auto entries_again = platform().audit->list(audit::Query{.chain_id = a_.id, .action = "subscription.cancelled"});
  ASSERT_TRUE(entries_again) << entries_again.error().message;
  EXPECT_EQ(entries_again->entries.size(), 1u) << "a repeated DELETE cancelled again";

  EXPECT_EQ(get(owner_b_, "/v1/subscriptions/" + sub_b).value("status", ""), "active");
}

// ---- 4. catalog versions --------------------------------------------------------------------------------------------

TEST_P(BillingApiTest, APriceChangeIsANewVersionThatExistingSubscriptionsKeepOutOf) {
  const Json v1 = make_plan("pro", "USD", "monthly", 5000);
  const std::string plan_id = v1.value("id", "");
  EXPECT_EQ(v1.value("version", 0), 1);
  open_account(owner_a_, a_, account_body("alpha"), true);
  open_account(owner_b_, b_, account_body("beta"), false);
  const std::string clock = make_clock(owner_a_, kJan15);
  const std::string sub_a = subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}}).value("id", "");

  auto patched = as_root(Method::patch, "/v1/plans/" + plan_id, Json{{"base_price", 7000}});
  ASSERT_EQ(patched.status, 200) << patched.raw_body;
  EXPECT_EQ(patched.body.value("version", 0), 2);
  EXPECT_EQ(patched.body.value("base_price", 0), 7000);
  // A name is not a price: no new version.
  auto renamed = as_root(Method::patch, "/v1/plans/" + plan_id, Json{{"name", "Pro Plus"}});
  ASSERT_EQ(renamed.status, 200) << renamed.raw_body;
  EXPECT_EQ(renamed.body.value("version", 0), 2);
  EXPECT_EQ(renamed.body.value("name", ""), "Pro Plus");

  const Json current = get(owner_a_, "/v1/plans/" + plan_id);
  EXPECT_EQ(current.value("version", 0), 2);
  EXPECT_EQ(current.value("base_price", 0), 7000);
  const Json old = get(owner_a_, "/v1/plans/" + plan_id + "?version=1");
  EXPECT_EQ(old.value("version", 0), 1);
  EXPECT_EQ(old.value("base_price", 0), 5000);
  EXPECT_EQ(get(owner_a_, "/v1/plans/" + plan_id + "?version=2").value("base_price", 0), 7000);
  EXPECT_EQ(call(Method::get, "/v1/plans/" + plan_id + "?version=3", std::nullopt, owner_a_).status, 404);

  // The existing subscription stays on version 1, also at its renewal.
  EXPECT_EQ(get(owner_a_, "/v1/subscriptions/" + sub_a).value("plan_version", 0), 1);
  advance(owner_a_, clock, kFeb15);
  const Json sub = get(owner_a_, "/v1/subscriptions/" + sub_a);
  EXPECT_EQ(sub.value("plan_version", 0), 1);
  EXPECT_EQ(sub.value("current_period_start", ""), shown(kFeb15));
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 2u);
  const Json renewal = find(invoices, "period_start", shown(kFeb15));
  ASSERT_TRUE(renewal.is_object()) << invoices.dump();
  EXPECT_EQ(renewal.value("billing_reason", ""), "subscription_cycle");
  EXPECT_EQ(renewal.value("subtotal", 0), 5000);
  EXPECT_EQ(renewal.value("total", 0), 5000);
  EXPECT_EQ(renewal.value("amount_paid", 0), 5000);
  const Json lines = get(owner_a_, "/v1/invoices/" + renewal.value("id", "")).value("lines", Json::array());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].value("unit_amount", 0), 5000);

  // A new subscription gets the current version.
  const Json sub_b = subscribe(owner_b_, {{"plan", "pro"}});
  EXPECT_EQ(sub_b.value("plan_version", 0), 2);
  const Json invoices_b = list(owner_b_, "/v1/invoices");
  ASSERT_EQ(invoices_b.size(), 1u);
  EXPECT_EQ(invoices_b[0].value("subtotal", 0), 7000);
  EXPECT_EQ(invoices_b[0].value("total", 0), 7000);
}

// ---- 5. coupons and tax ---------------------------------------------------------------------------------------------

TEST_P(BillingApiTest, ACouponAndTaxAreOnTheInvoiceExactlyAsComputedByHand) {
  make_plan("team", "EUR", "monthly", 4970, Json{{"included_seats", 1}, {"seat_price", 1250}});
  auto tax = as_root(Method::put, "/v1/tax-rates",
                     Json{{"country", "DE"}, {"name", "VAT"}, {"bps", 1900}, {"inclusive", false}});
  ASSERT_EQ(tax.status, 200) << tax.raw_body;
  auto coupon =
      as_root(Method::post, "/v1/coupons",
              Json{{"code", "WELCOME15"}, {"percent_off_bps", 1500}, {"duration", "once"}, {"max_redemptions", 1}});
  ASSERT_EQ(coupon.status, 201) << coupon.raw_body;
  open_account(owner_a_, a_, account_body("alpha", "EUR", "DE"), true);
  const std::string clock = make_clock(owner_a_, kJan15);
  const Json sub =
      subscribe(owner_a_, {{"plan", "team"}, {"seats", 3}, {"coupon", "WELCOME15"}, {"test_clock_id", clock}});
  EXPECT_EQ(sub.value("coupon_id", ""), coupon.body.value("id", ""));

  // subtotal 4970 + 2 extra seats * 1250 = 7470; discount 15% = 1120.5 -> 1121 (half away from zero); taxable 6349; VAT
  // 19% = 1206.31 -> 1206; total 6349 + 1206 = 7555.
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const Json first = get(owner_a_, "/v1/invoices/" + invoices[0].value("id", ""));
  EXPECT_EQ(first.value("currency", ""), "EUR");
  EXPECT_EQ(first.value("subtotal", 0), 7470);
  EXPECT_EQ(first.value("discount", 0), 1121);
  EXPECT_EQ(first.value("tax", 0), 1206);
  EXPECT_EQ(first.value("tax_inclusive", true), false);
  EXPECT_EQ(first.value("total", 0), 7555);
  EXPECT_EQ(first.value("amount_due", 0), 7555);
  EXPECT_EQ(first.value("amount_paid", 0), 7555);
  EXPECT_EQ(first.value("status", ""), "paid");
  EXPECT_NE(first.value("discount_label", "").find("WELCOME15"), std::string::npos) << first.dump();
  EXPECT_NE(first.value("tax_label", "").find("VAT"), std::string::npos) << first.dump();
  const Json lines = first.value("lines", Json::array());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].value("amount", 0), 4970);
  EXPECT_EQ(lines[1].value("kind", ""), "seats");
  EXPECT_EQ(lines[1].value("quantity", 0), 2);
  EXPECT_EQ(lines[1].value("amount", 0), 2500);
  const Json attempts = first.value("payment_attempts", Json::array());
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].value("amount", 0), 7555);

  // A month later: the coupon was for once. VAT 19% of 7470 = 1419.3 -> 1419; total 8889.
  advance(owner_a_, clock, kFeb15);
  const Json all = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(all.size(), 2u);
  const Json second = find(all, "period_start", shown(kFeb15));
  ASSERT_TRUE(second.is_object()) << all.dump();
  EXPECT_EQ(second.value("subtotal", 0), 7470);
  EXPECT_EQ(second.value("discount", -1), 0);
  EXPECT_EQ(second.value("discount_label", "x"), "");
  EXPECT_EQ(second.value("tax", 0), 1419);
  EXPECT_EQ(second.value("total", 0), 8889);
  EXPECT_EQ(second.value("amount_paid", 0), 8889);

  // max_redemptions 1: the next tenant to use it gets 409, and nothing of its subscription remains.
  open_account(owner_b_, b_, account_body("beta", "EUR", "DE"), false);
  expect_problem(call(Method::post, "/v1/subscriptions", Json{{"plan", "team"}, {"coupon", "WELCOME15"}}, owner_b_),
                 409, "redemption", "second redemption");
  EXPECT_TRUE(list(owner_b_, "/v1/subscriptions").empty());
  EXPECT_TRUE(list(owner_b_, "/v1/invoices").empty());
  const Json coupons = root_get("/v1/coupons").value("data", Json::array());
  ASSERT_EQ(coupons.size(), 1u);
  EXPECT_EQ(coupons[0].value("times_redeemed", 0), 1);
  // Without the coupon B can subscribe: the 409 was the coupon's.
  subscribe(owner_b_, {{"plan", "team"}});
}

// ---- 6. documents ---------------------------------------------------------------------------------------------------

TEST_P(BillingApiTest, InvoicesDownloadAsHtmlAndPdf) {
  make_plan("pro", "USD", "monthly", 5000);
  open_account(owner_a_, a_, account_body("alpha"), false);
  subscribe(owner_a_, {{"plan", "pro"}});
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const std::string id = invoices[0].value("id", "");
  const std::string number = invoices[0].value("number", "");
  ASSERT_TRUE(number.starts_with("INV-")) << number;
  const std::string path = "/v1/invoices/" + id + "/download";

  auto html = call(Method::get, path + "?format=html", std::nullopt, owner_a_);
  ASSERT_EQ(html.status, 200) << html.raw_body;
  EXPECT_TRUE(html.content_type.starts_with("text/html")) << html.content_type;
  EXPECT_NE(html.raw_body.find(number), std::string::npos);
  EXPECT_NE(html.raw_body.find("alpha"), std::string::npos) << "the customer is on the invoice";
  EXPECT_NE(html.headers.get("Content-Disposition").value_or("").find(number + ".html"), std::string::npos);

  auto pdf = call(Method::get, path + "?format=pdf", std::nullopt, owner_a_);
  ASSERT_EQ(pdf.status, 200) << pdf.content_type;
  EXPECT_EQ(pdf.content_type, "application/pdf");
  EXPECT_TRUE(pdf.raw_body.starts_with("%PDF-"));
  EXPECT_NE(pdf.raw_body.find("%%EOF"), std::string::npos);
  EXPECT_NE(pdf.headers.get("Content-Disposition").value_or("").find(number + ".pdf"), std::string::npos);
  auto by_default = call(Method::get, path, std::nullopt, owner_a_);
  EXPECT_EQ(by_default.status, 200);
  EXPECT_EQ(by_default.content_type, "application/pdf");
  // The super admin acting in the tenant gets the same document.
  auto as_operator = as_root(Method::get, path + "?format=html", std::nullopt, a_.id);
  EXPECT_EQ(as_operator.status, 200);
  EXPECT_NE(as_operator.raw_body.find(number), std::string::npos);

  expect_problem(call(Method::get, path + "?format=xml", std::nullopt, owner_a_), 400, "format", "format=xml");
}

// ---- 7. credit notes and voiding ------------------------------------------------------------------------------------

TEST_P(BillingApiTest, CreditNotesGoToTheBalanceAndTheNextInvoiceAndOnlyOpenInvoicesAreVoided) {
  make_plan("pro", "USD", "monthly", 5000);
  open_account(owner_a_, a_, account_body("alpha"), true);
  const std::string clock = make_clock(owner_a_, kJan15);
  subscribe(owner_a_, {{"plan", "pro"}, {"test_clock_id", clock}});
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const std::string paid = invoices[0].value("id", "");
  ASSERT_EQ(invoices[0].value("status", ""), "paid");

  // More than the invoice's total: refused.
  expect_problem(as_root(Method::post, "/v1/credit-notes",
                         Json{{"invoice_id", paid}, {"amount", 5001}, {"method", "credit_balance"}}, a_.id),
                 400, "amount", "credit above the total");
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", -1), 0);
  auto note = as_root(
      Method::post, "/v1/credit-notes",
      Json{{"invoice_id", paid}, {"amount", 1200}, {"method", "credit_balance"}, {"reason", "product_unsatisfactory"}},
      a_.id);
  ASSERT_EQ(note.status, 201) << note.raw_body;
  // The invoice is on a test clock: its credit notes are numbered from the test sequence.
  EXPECT_TRUE(note.body.value("number", "").starts_with("TEST-CN-")) << note.raw_body;
  EXPECT_EQ(note.body.value("amount", 0), 1200);
  EXPECT_EQ(note.body.value("method", ""), "credit_balance");
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", 0), 1200);
  // What was credited counts: 5000 - 1200 = 3800 is left, 3801 is too much.
  expect_problem(as_root(Method::post, "/v1/credit-notes",
                         Json{{"invoice_id", paid}, {"amount", 3801}, {"method", "credit_balance"}}, a_.id),
                 400, "amount", "credit above what is left");
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", 0), 1200);
  EXPECT_EQ(list(owner_a_, "/v1/credit-notes").size(), 1u);

  // The renewal uses the balance: 5000 - 1200 = 3800 charged.
  advance(owner_a_, clock, kFeb15);
  const Json all = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(all.size(), 2u);
  const Json renewal = find(all, "period_start", shown(kFeb15));
  ASSERT_TRUE(renewal.is_object()) << all.dump();
  EXPECT_EQ(renewal.value("total", 0), 5000);
  EXPECT_EQ(renewal.value("credit_applied", 0), 1200);
  EXPECT_EQ(renewal.value("amount_due", 0), 3800);
  EXPECT_EQ(renewal.value("amount_paid", 0), 3800);
  EXPECT_EQ(renewal.value("status", ""), "paid");
  const Json attempts =
      get(owner_a_, "/v1/invoices/" + renewal.value("id", "")).value("payment_attempts", Json::array());
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].value("amount", 0), 3800);
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", -1), 0);

  // An open invoice (its charge declined) is voided; a paid one is not.
  open_account(owner_b_, b_, account_body("beta", "USD", "US", "pm_card_chargeDeclined"), true);
  const std::string clock_b = make_clock(owner_b_, kJan15);
  const std::string sub_b = subscribe(owner_b_, {{"plan", "pro"}, {"test_clock_id", clock_b}}).value("id", "");
  const Json invoices_b = list(owner_b_, "/v1/invoices");
  ASSERT_EQ(invoices_b.size(), 1u);
  const std::string open = invoices_b[0].value("id", "");
  const Json open_invoice = get(owner_b_, "/v1/invoices/" + open);
  EXPECT_EQ(open_invoice.value("status", ""), "open");
  EXPECT_EQ(open_invoice.value("amount_remaining", 0), 5000);
  const Json declined = open_invoice.value("payment_attempts", Json::array());
  ASSERT_EQ(declined.size(), 1u);
  EXPECT_EQ(declined[0].value("status", ""), "failed");
  EXPECT_EQ(declined[0].value("failure_code", ""), "card_declined");
  EXPECT_EQ(get(owner_b_, "/v1/subscriptions/" + sub_b).value("status", ""), "past_due");

  auto voided = as_root(Method::post, "/v1/invoices/" + open + "/void", std::nullopt, b_.id);
  ASSERT_EQ(voided.status, 200) << voided.raw_body;
  EXPECT_EQ(voided.body.value("status", ""), "void");
  const Json after_void = get(owner_b_, "/v1/invoices/" + open);
  EXPECT_EQ(after_void.value("status", ""), "void");
  EXPECT_EQ(after_void.value("amount_remaining", -1), 0);
  EXPECT_FALSE(after_void["voided_at"].is_null());
  EXPECT_TRUE(after_void["next_payment_attempt"].is_null());
  expect_problem(as_root(Method::post, "/v1/invoices/" + open + "/void", std::nullopt, b_.id), 409, "void",
                 "void a void invoice");
  expect_problem(as_root(Method::post, "/v1/credit-notes", Json{{"invoice_id", open}, {"amount", 100}}, b_.id), 409,
                 "void", "credit a void invoice");

  const Json paid_before = get(owner_a_, "/v1/invoices/" + paid);
  expect_problem(as_root(Method::post, "/v1/invoices/" + paid + "/void", std::nullopt, a_.id), 409, "paid",
                 "void a paid invoice");
  expect_problem(as_root(Method::post, "/v1/invoices/" + paid + "/mark-uncollectible", std::nullopt, a_.id), 409,
                 "paid", "mark a paid invoice uncollectible");
  EXPECT_EQ(get(owner_a_, "/v1/invoices/" + paid), paid_before);
  EXPECT_EQ(paid_before.value("status", ""), "paid");

  // Voiding an open invoice that used the account's credit gives the credit back.
  const tenancy::Tenant c = make_tenant("gamma");
  const std::string owner_c = sign_in("owner@gamma.test", "password-gamma", "gamma");
  open_account(owner_c, c, account_body("gamma"), true);
  const std::string clock_c = make_clock(owner_c, kJan15);
  subscribe(owner_c, {{"plan", "pro"}, {"test_clock_id", clock_c}});
  const Json first_c = list(owner_c, "/v1/invoices");
  ASSERT_EQ(first_c.size(), 1u);
  ASSERT_EQ(
      as_root(Method::post, "/v1/credit-notes",
              Json{{"invoice_id", first_c[0].value("id", "")}, {"amount", 1000}, {"method", "credit_balance"}}, c.id)
          .status,
      201);
  ASSERT_EQ(
      call(Method::put, "/v1/billing-account", Json{{"payment_method", "pm_card_chargeDeclined"}}, owner_c).status,
      200);
  advance(owner_c, clock_c, kFeb15);
  const Json renewal_c = find(list(owner_c, "/v1/invoices"), "period_start", shown(kFeb15));
  ASSERT_TRUE(renewal_c.is_object());
  EXPECT_EQ(renewal_c.value("status", ""), "open");
  EXPECT_EQ(renewal_c.value("credit_applied", 0), 1000);
  EXPECT_EQ(renewal_c.value("amount_remaining", 0), 4000);
  EXPECT_EQ(get(owner_c, "/v1/billing-account").value("credit_balance", -1), 0);
  auto voided_c = as_root(Method::post, "/v1/invoices/" + renewal_c.value("id", "") + "/void", std::nullopt, c.id);
  ASSERT_EQ(voided_c.status, 200) << voided_c.raw_body;
  EXPECT_EQ(voided_c.body.value("status", ""), "void");
  EXPECT_EQ(get(owner_c, "/v1/billing-account").value("credit_balance", -1), 1000);
}

// Refund credit notes go back to the card, and never beyond what was charged (what earlier notes credited counts).
TEST_P(BillingApiTest, RefundsNeverExceedWhatWasCharged) {
  make_plan("pro", "USD", "monthly", 5000);
  open_account(owner_a_, a_, account_body("alpha"), false);
  subscribe(owner_a_, {{"plan", "pro"}});
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  const std::string paid = invoices[0].value("id", "");
  ASSERT_EQ(invoices[0].value("amount_paid", 0), 5000);
  auto refund = [&](std::int64_t amount) {
    return as_root(Method::post, "/v1/credit-notes",
                   Json{{"invoice_id", paid}, {"amount", amount}, {"method", "refund"}, {"reason", "duplicate"}},
                   a_.id);
  };
  auto first = refund(3000);
  ASSERT_EQ(first.status, 201) << first.raw_body;
  EXPECT_TRUE(first.body.value("reference", "").starts_with("re_sim_")) << first.raw_body;
  // 5000 - 3000 = 2000 is left.
  expect_problem(refund(2001), 400, "amount", "refund above what is left");
  EXPECT_EQ(list(owner_a_, "/v1/credit-notes").size(), 1u);
  auto second = refund(2000);
  ASSERT_EQ(second.status, 201) << second.raw_body;
  expect_problem(refund(1), 400, "amount", "refund of a fully refunded invoice");
  EXPECT_EQ(list(owner_a_, "/v1/credit-notes").size(), 2u);
  EXPECT_EQ(get(owner_a_, "/v1/billing-account").value("credit_balance", -1), 0);
}

// ---- 8. metrics -----------------------------------------------------------------------------------------------------

TEST_P(BillingApiTest, AdminMetricsReportTheMonthlyRecurringRevenuePerCurrency) {
  make_plan("annual", "USD", "annual", 120000);
  make_plan("monthly", "USD", "monthly", 2000);
  make_plan("quarterly-eur", "EUR", "quarterly", 30000, Json{{"included_seats", 1}, {"seat_price", 1500}});
  const tenancy::Tenant c = make_tenant("gamma");
  const std::string owner_c = sign_in("owner@gamma.test", "password-gamma", "gamma");
  open_account(owner_a_, a_, account_body("alpha"), false);
  open_account(owner_b_, b_, account_body("beta", "EUR", "FR"), false);
  open_account(owner_c, c, account_body("gamma"), false);

  auto mrr = [&] {
    auto r = as_root(Method::get, "/v1/admin/metrics");
    EXPECT_EQ(r.status, 200) << r.raw_body;
    EXPECT_TRUE(r.body.contains("mrr")) << r.raw_body;
    return r.body.value("mrr", Json::object());
  };
  EXPECT_TRUE(mrr().empty());
  // Three tenants, an owner each, and a second member in gamma: 4 memberships of 3 tenants, every tenant's counted
  // (on PostgreSQL memberships' RLS shows the serving role none of them outside a tenant's scope).
  member(c, "second@gamma.test", identity::Role::viewer);
  auto stats = as_root(Method::get, "/v1/admin/metrics");
  ASSERT_EQ(stats.status, 200) << stats.raw_body;
  EXPECT_EQ(stats.body.value("tenants", 0), 3) << stats.raw_body;
  EXPECT_DOUBLE_EQ(stats.body.value("average_users_per_tenant", 0.0), 4.0 / 3.0) << stats.raw_body;

  subscribe(owner_a_, {{"plan", "annual"}});                       // 120000 / 12 = 10000 USD
  subscribe(owner_b_, {{"plan", "quarterly-eur"}, {"seats", 3}});  // (30000 + 2 * 1500) / 3 = 11000 EUR
  const std::string sub_c = subscribe(owner_c, {{"plan", "monthly"}}).value("id", "");  // 2000 USD
  Json m = mrr();
  EXPECT_EQ(m.value("USD", 0), 12000) << m.dump();
  EXPECT_EQ(m.value("EUR", 0), 11000) << m.dump();
  EXPECT_EQ(m.size(), 2u) << m.dump();

  // Only active (and past-due) subscriptions count.
  ASSERT_EQ(call(Method::post, "/v1/subscriptions/" + sub_c + "/cancel", Json::object(), owner_c).status, 200);
  m = mrr();
  EXPECT_EQ(m.value("USD", 0), 10000) << m.dump();
  EXPECT_EQ(m.value("EUR", 0), 11000) << m.dump();
  // Tenants do not see the platform's metrics.
  EXPECT_EQ(call(Method::get, "/v1/admin/metrics", std::nullopt, owner_a_).status, 403);
}

// Billing::mrr() (billing.hpp): net of a recurring coupon, without tax; test clocks excluded.
TEST_P(BillingApiTest, MrrIsNetOfRecurringCouponsAndLeavesTestClocksOut) {
  make_plan("annual", "USD", "annual", 120000);
  make_plan("monthly", "USD", "monthly", 2000);
  auto coupon = as_root(Method::post, "/v1/coupons",
                        Json{{"code", "QUARTER"}, {"percent_off_bps", 2500}, {"duration", "forever"}});
  ASSERT_EQ(coupon.status, 201) << coupon.raw_body;
  open_account(owner_a_, a_, account_body("alpha"), false);
  subscribe(owner_a_, {{"plan", "annual"}, {"coupon", "QUARTER"}});
  const Json invoices = list(owner_a_, "/v1/invoices");
  ASSERT_EQ(invoices.size(), 1u);
  EXPECT_EQ(invoices[0].value("discount", 0), 30000);
  EXPECT_EQ(invoices[0].value("total", 0), 90000);
  // B's subscription lives on a test clock: not revenue.
  open_account(owner_b_, b_, account_body("beta"), true);
  const Json on_clock = subscribe(owner_b_, {{"plan", "monthly"}, {"test_clock_id", make_clock(owner_b_, kJan15)}});
  EXPECT_EQ(on_clock.value("status", ""), "active");
  auto r = as_root(Method::get, "/v1/admin/metrics");
  ASSERT_EQ(r.status, 200) << r.raw_body;
  EXPECT_EQ(r.body["mrr"], (Json{{"USD", 7500}})) << "120000 a year less 25% forever is 90000 a year, 7500 a month";
}

INSTANTIATE_TEST_SUITE_P(Isolation, BillingApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
