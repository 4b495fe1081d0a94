// Tenant isolation end to end, for every isolation level on every backend: two tenants with their own users,
// projects and API keys; every tenant route is called with tenant A's credentials against tenant B's ids, header
// and host, and must answer 403 or 404 and change nothing.
#include <gtest/gtest.h>

#include <libpq-fe.h>
#include <algorithm>

#include <array>
#include <map>
#include <set>

#include "core/hash.hpp"
#include "identity/permissions.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;
using tenancy::Isolation;

using Case = IsolationCase;

// SELECT returning one integer, run on its own connection (as whatever role the URL names).
std::int64_t pg_count(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::int64_t n = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* res = PQexec(conn, sql.c_str());
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) n = std::atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
  }
  PQfinish(conn);
  return n;
}

class TenancyTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.base_domain = "atrium.test";
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = make_tenant("alpha");
    b_ = make_tenant("beta");
    token_a_ = sign_in("owner@alpha.test", "alpha");
    token_b_ = sign_in("owner@beta.test", "beta");
    root_ = sign_in("root@atrium.test", "");
    project_a_ = create_project(token_a_, "A's project");
    project_b_ = create_project(token_b_, "B's project");
  }

  app::Platform& platform() { return tp_->platform(); }

  tenancy::Tenant make_tenant(const std::string& slug) {
    return create_test_tenant(platform(), slug, GetParam().isolation);
  }

  std::string sign_in(const std::string& email, const std::string& tenant) {
    return client_->sign_in(email, email == "root@atrium.test" ? "root-password" : "password-" + tenant, tenant);
  }

  std::string create_project(const std::string& token, const std::string& name) {
    auto r = client_->call(Method::post, "/v1/projects", Json{{"name", name}}, token);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("id", "");
  }

  std::vector<std::string> project_names(const std::string& token,
                                         const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    auto r = client_->call(Method::get, "/v1/projects?limit=100", std::nullopt, token, headers);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    std::vector<std::string> names;
    for (const auto& p : r.body["data"]) names.push_back(p.value("name", ""));
    return names;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string token_a_;
  std::string token_b_;
  std::string root_;
  std::string project_a_;
  std::string project_b_;
};

TEST_P(TenancyTest, EachTenantSeesOnlyItsOwnProjects) {
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  EXPECT_EQ(project_names(token_b_), std::vector<std::string>{"B's project"});
}

TEST_P(TenancyTest, AnotherTenantsProjectIdsAreNotFoundAndUnchanged) {
  EXPECT_EQ(client_->call(Method::get, "/v1/projects/" + project_b_, std::nullopt, token_a_).status, 404);
  EXPECT_EQ(client_->call(Method::patch, "/v1/projects/" + project_b_, Json{{"name", "pwned"}}, token_a_).status, 404);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/projects/" + project_b_, std::nullopt, token_a_).status, 404);
  auto b = client_->call(Method::get, "/v1/projects/" + project_b_, std::nullopt, token_b_);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body.value("name", ""), "B's project");
}

TEST_P(TenancyTest, NamingAnotherTenantByHeaderOrHostIsForbidden) {
  for (const auto& header : {std::pair<std::string, std::string>{"X-Tenant-ID", b_.id},
                             std::pair<std::string, std::string>{"X-Tenant-ID", b_.slug},
                             std::pair<std::string, std::string>{"Host", "beta.atrium.test"}}) {
    for (Method m : {Method::get, Method::post}) {
      auto r =
          client_->call(m, "/v1/projects", m == Method::post ? std::optional<Json>(Json{{"name", "x"}}) : std::nullopt,
                        token_a_, {header});
      EXPECT_EQ(r.status, 403) << header.first << ": " << header.second << " " << r.body.dump();
    }
    EXPECT_EQ(client_->call(Method::get, "/v1/users", std::nullopt, token_a_, {header}).status, 403);
  }
  EXPECT_EQ(project_names(token_b_), std::vector<std::string>{"B's project"});
  // Agreeing sources are fine.
  EXPECT_EQ(project_names(token_a_, {{"X-Tenant-ID", "alpha"}, {"Host", "alpha.atrium.test"}}),
            std::vector<std::string>{"A's project"});
}

// Every tenant route, whatever its method: A's credentials naming B by header or host are refused before the
// handler runs, and B's data is unchanged afterwards.
TEST_P(TenancyTest, EveryTenantRouteRefusesCredentialsNamingAnotherTenant) {
  int routes = 0;
  for (const auto& route : client_->router().routes()) {
    if (route->options.access != http::Access::tenant && route->options.access != http::Access::tenant_super_admin) {
      continue;
    }
    ++routes;
    std::string path = route->pattern;
    if (auto p = path.find("{id}"); p != std::string::npos) path.replace(p, 4, project_b_);
    const auto body = route->options.json_body ? std::optional<Json>(Json{{"name", "pwned"}}) : std::nullopt;
    for (const auto& header : {std::pair<std::string, std::string>{"X-Tenant-ID", b_.id},
                               std::pair<std::string, std::string>{"Host", "beta.atrium.test"}}) {
      auto r = client_->call(route->method, path, body, token_a_, {header});
      EXPECT_EQ(r.status, 403) << http::method_name(route->method) << " " << route->pattern << " " << header.first;
    }
  }
  EXPECT_GE(routes, 12);
  EXPECT_EQ(project_names(token_b_), std::vector<std::string>{"B's project"});
  EXPECT_EQ(client_->call(Method::get, "/v1/users", std::nullopt, token_b_).body["data"].size(), 1u);
}

TEST_P(TenancyTest, AnotherTenantsUsersAndKeysAreOutOfReach) {
  auto members_b = client_->call(Method::get, "/v1/users", std::nullopt, token_b_);
  ASSERT_EQ(members_b.status, 200);
  const std::string owner_b = members_b.body["data"][0].value("id", "");
  EXPECT_EQ(client_->call(Method::patch, "/v1/users/" + owner_b, Json{{"role", "viewer"}}, token_a_).status, 404);
  EXPECT_EQ(client_->call(Method::delete_, "/v1/users/" + owner_b, std::nullopt, token_a_).status, 404);
  auto members_a = client_->call(Method::get, "/v1/users", std::nullopt, token_a_);
  ASSERT_EQ(members_a.body["data"].size(), 1u);
  EXPECT_EQ(members_a.body["data"][0].value("email", ""), "owner@alpha.test");

  auto key_b =
      client_->call(Method::post, "/v1/api-keys", Json{{"name", "ci"}, {"permissions", {"projects:read"}}}, token_b_);
  ASSERT_EQ(key_b.status, 201) << key_b.body.dump();
  EXPECT_EQ(client_->call(Method::delete_, "/v1/api-keys/" + key_b.body.value("id", ""), std::nullopt, token_a_).status,
            404);
  EXPECT_TRUE(client_->call(Method::get, "/v1/api-keys", std::nullopt, token_a_).body["data"].empty());
  // B's key works for B, and cannot be pointed at A.
  const std::string secret = key_b.body.value("secret", "");
  EXPECT_EQ(project_names(secret), std::vector<std::string>{"B's project"});
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, secret, {{"X-Tenant-ID", a_.id}}).status, 403);
  // A key only does what it was given.
  EXPECT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "x"}}, secret).status, 403);
}

TEST_P(TenancyTest, SuperAdminActsAsOwnerInTheTenantItNames) {
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, root_).status, 403);  // no tenant named
  EXPECT_EQ(project_names(root_, {{"X-Tenant-ID", "beta"}}), std::vector<std::string>{"B's project"});
  auto created =
      client_->call(Method::post, "/v1/projects", Json{{"name", "by root"}}, root_, {{"X-Tenant-ID", b_.id}});
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
}

TEST_P(TenancyTest, SuspendedAndDeletedTenantsAreRefusedAndPurgeRemovesOnlyTheirData) {
  auto suspend = client_->call(Method::patch, "/v1/admin/tenants/" + b_.id, Json{{"status", "suspended"}}, root_);
  ASSERT_EQ(suspend.status, 200) << suspend.body.dump();
  auto refused = client_->call(Method::get, "/v1/projects", std::nullopt, token_b_);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(refused.body.value("detail", ""), "Invalid tenant");
  auto sign_in = client_->call(
      Method::post, "/v1/auth/token",
      Json{
          {"grant_type", "password"}, {"email", "owner@beta.test"}, {"password", "password-beta"}, {"tenant", "beta"}});
  EXPECT_EQ(sign_in.status, 400);
  EXPECT_EQ(sign_in.body.value("error", ""), "invalid_grant");
  ASSERT_EQ(client_->call(Method::patch, "/v1/admin/tenants/" + b_.id, Json{{"status", "active"}}, root_).status, 200);
  EXPECT_EQ(project_names(token_b_), std::vector<std::string>{"B's project"});

  EXPECT_EQ(client_->call(Method::delete_, "/v1/admin/tenants/" + b_.id + "?purge=true", std::nullopt, root_).status,
            204);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, token_b_).status, 403);
  EXPECT_EQ(project_names(token_a_), std::vector<std::string>{"A's project"});
  auto gone = client_->call(Method::patch, "/v1/admin/tenants/" + b_.id, Json{{"status", "active"}}, root_);
  EXPECT_EQ(gone.status, 409);
}

// Purging leaves nothing of the tenant in the control plane but its bookkeeping records (kept for
// billing.retain_invoices_years, then removed by the retention job) and its audit entries; the other tenant keeps
// everything.
TEST_P(TenancyTest, PurgeRemovesTheTenantsControlPlaneRowsButItsBookkeeping) {
  ASSERT_EQ(client_
                ->call(Method::post, "/v1/plans",
                       Json{{"code", "basic"},
                            {"name", "Basic"},
                            {"tier", "starter"},
                            {"currency", "USD"},
                            {"interval", "monthly"},
                            {"base_price", 1000},
                            {"trial_days", 0}},
                       root_)
                .status,
            201);
  for (const auto* t : {&a_, &b_}) {
    const std::string token = t == &a_ ? token_a_ : token_b_;
    const std::string slug = t == &a_ ? "alpha" : "beta";
    ASSERT_EQ(
        client_->call(Method::post, "/v1/api-keys", Json{{"name", "k"}, {"permissions", {"projects:read"}}}, token)
            .status,
        201);
    ASSERT_EQ(client_->call(Method::post, "/v1/users", Json{{"email", "invitee@" + slug + ".test"}}, token).status,
              202);
    ASSERT_EQ(client_
                  ->call(Method::put, "/v1/billing-account",
                         Json{{"legal_name", slug},
                              {"email", "billing@" + slug + ".test"},
                              {"currency", "USD"},
                              {"payment_method", "pm_card_visa"}},
                         token)
                  .status,
              200);
    ASSERT_EQ(client_->call(Method::post, "/v1/subscriptions", Json{{"plan", "basic"}}, token).status, 201);
    const std::string now = format_rfc3339(std::chrono::system_clock::now());
    ASSERT_EQ(
        client_
            ->call(Method::post, "/v1/usage",
                   Json{{"metric", "api.calls"}, {"quantity", 3}, {"timestamp", now}, {"idempotency_key", "u1"}}, token)
            .status,
        202);
    ASSERT_EQ(client_
                  ->call(Method::put, "/v1/entitlements/projects", Json{{"limit", 5}, {"enforcement", "hard"}}, root_,
                         {{"X-Tenant-ID", t->id}})
                  .status,
              200);
  }
  // Rows per control-plane table of a tenant, through its scoped transaction.
  using tenancy::TenantStatement;
  static constexpr std::array<std::pair<std::string_view, TenantStatement>, 13> k_counts{{
      {"memberships", {"t_count_memberships", "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1"}},
      {"api_keys", {"t_count_api_keys", "SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1"}},
      {"refresh_tokens", {"t_count_refresh", "SELECT COUNT(*) FROM refresh_tokens WHERE tenant_id = $1"}},
      {"invitations", {"t_count_invitations", "SELECT COUNT(*) FROM invitations WHERE tenant_id = $1"}},
      {"billing_accounts", {"t_count_accounts", "SELECT COUNT(*) FROM billing_accounts WHERE tenant_id = $1"}},
      {"subscriptions", {"t_count_subs", "SELECT COUNT(*) FROM subscriptions WHERE tenant_id = $1"}},
      {"usage_events", {"t_count_usage", "SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1"}},
      {"usage_rollups", {"t_count_rollups", "SELECT COUNT(*) FROM usage_rollups WHERE tenant_id = $1"}},
      {"quota_overrides", {"t_count_overrides", "SELECT COUNT(*) FROM quota_overrides WHERE tenant_id = $1"}},
      {"invoices", {"t_count_invoices", "SELECT COUNT(*) FROM invoices WHERE tenant_id = $1"}},
      {"invoice_lines", {"t_count_lines", "SELECT COUNT(*) FROM invoice_lines WHERE tenant_id = $1"}},
      {"payment_attempts", {"t_count_attempts", "SELECT COUNT(*) FROM payment_attempts WHERE tenant_id = $1"}},
      {"audit_logs", {"t_count_audit", "SELECT COUNT(*) FROM audit_logs WHERE tenant_id = $1"}},
  }};
  auto counts = [&](const std::string& tenant_id) {
    std::map<std::string, std::int64_t> out;
    auto r =
        platform().tenant_data->transact_control_plane(tenant_id, [&](tenancy::TenantTransaction& tx) -> Result<void> {
          for (const auto& [table, statement] : k_counts) {
            auto rows = tx.execute(statement);
            if (!rows) return std::unexpected(rows.error());
            out[std::string(table)] = rows->int_at(0, 0).value_or(-1);
          }
          return {};
        });
    EXPECT_TRUE(r) << r.error().message;
    return out;
  };
  const auto a_before = counts(a_.id);
  const auto b_before = counts(b_.id);
  for (const auto& [table, n] : b_before) EXPECT_GT(n, 0) << table << " has no row of B to purge: the test is vacuous";

  ASSERT_EQ(client_->call(Method::delete_, "/v1/admin/tenants/" + b_.id + "?purge=true", std::nullopt, root_).status,
            204);
  const std::set<std::string> kept = {"invoices", "invoice_lines", "payment_attempts", "audit_logs"};
  const auto b_after = counts(b_.id);
  for (const auto& [table, n] : b_after) {
    if (table == "audit_logs") {
      EXPECT_GE(n, b_before.at(table)) << "audit entries stay for audit.retention_days (the purge adds its own)";
    } else if (kept.contains(table)) {
      EXPECT_EQ(n, b_before.at(table)) << table << " is bookkeeping and stays";
    } else {
      EXPECT_EQ(n, 0) << table << " still holds the purged tenant's rows";
    }
  }
  EXPECT_EQ(counts(a_.id), a_before) << "the other tenant lost rows";

  // After the bookkeeping period, the retention job removes the invoices of tenants purged before it began.
  auto none = platform().billing->apply_retention(std::chrono::system_clock::now() - std::chrono::hours(1));
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
  auto deleted = platform().billing->apply_retention(std::chrono::system_clock::now() + std::chrono::hours(1));
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, b_before.at("invoices"));
  const auto b_final = counts(b_.id);
  for (const auto& table : {"invoices", "invoice_lines", "payment_attempts"}) EXPECT_EQ(b_final.at(table), 0) << table;
  EXPECT_EQ(counts(a_.id), a_before);
}

TEST_P(TenancyTest, IdempotencyKeyCreatesOnceAndRefusesADifferentBody) {
  const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "create-1"}};
  auto first = client_->call(Method::post, "/v1/projects", Json{{"name", "once"}}, token_a_, key);
  auto again = client_->call(Method::post, "/v1/projects", Json{{"name", "once"}}, token_a_, key);
  ASSERT_EQ(first.status, 201);
  ASSERT_EQ(again.status, 201);
  EXPECT_EQ(first.body.value("id", ""), again.body.value("id", ""));
  EXPECT_EQ(again.headers.get("Idempotent-Replayed").value_or(""), "true");
  // Another body with the key: 422 (draft-ietf-httpapi-idempotency-key-header), nothing made.
  auto reused = client_->call(Method::post, "/v1/projects", Json{{"name", "other"}}, token_a_, key);
  EXPECT_EQ(reused.status, 422);
  EXPECT_EQ(reused.body.value("type", ""), "/problems/idempotency-key-reused");
  // The draft's form, a structured-field string, names the same key as the bare token.
  auto quoted = client_->call(Method::post, "/v1/projects", Json{{"name", "once"}}, token_a_,
                              {{"Idempotency-Key", "\"create-1\""}});
  EXPECT_EQ(quoted.status, 201);
  EXPECT_EQ(quoted.body.value("id", ""), first.body.value("id", ""));
  EXPECT_EQ(quoted.headers.get("Idempotent-Replayed").value_or(""), "true");
  for (const char* bad : {"\"unterminated", "\"a\"b\"", "\"\"", "two words", "\"bad\\escape\""}) {
    EXPECT_EQ(
        client_->call(Method::post, "/v1/projects", Json{{"name", "x"}}, token_a_, {{"Idempotency-Key", bad}}).status,
        400)
        << bad;
  }
  // The same key in another tenant is another key.
  EXPECT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "once"}}, token_b_, key).status, 201);
  EXPECT_EQ(project_names(token_a_).size(), 2u);
}

// Every other changing tenant route honours Idempotency-Key through the generic middleware (api/idempotency.hpp):
// once per key, route and body; a failed request releases its key; a key still in progress is 409, never a rerun.
TEST_P(TenancyTest, IdempotencyKeyOnAnyChangingRouteAppliesItOnce) {
  auto endpoints = [&](const std::string& token) {
    return client_->call(Method::get, "/v1/webhook-endpoints", std::nullopt, token).body["data"].size();
  };
  const Json hook{{"url", "http://127.0.0.1:9/once"}};
  const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "hook-1"}};
  auto first = client_->call(Method::post, "/v1/webhook-endpoints", hook, token_a_, key);
  ASSERT_EQ(first.status, 201) << first.body.dump();
  EXPECT_FALSE(first.headers.get("Idempotent-Replayed"));
  auto again = client_->call(Method::post, "/v1/webhook-endpoints", hook, token_a_, key);
  ASSERT_EQ(again.status, 201) << again.body.dump();
  EXPECT_EQ(again.headers.get("Idempotent-Replayed").value_or(""), "true");
  EXPECT_EQ(again.body, first.body);  // the same endpoint, its signing secret included
  EXPECT_EQ(endpoints(token_a_), 1u);

  // The key with another body, or on another route: 422, nothing made.
  auto other_body =
      client_->call(Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/b"}}, token_a_, key);
  EXPECT_EQ(other_body.status, 422);
  EXPECT_EQ(other_body.body.value("type", ""), "/problems/idempotency-key-reused");
  auto other_route = client_->call(Method::post, "/v1/api-keys",
                                   Json{{"name", "k"}, {"permissions", {"projects:read"}}}, token_a_, key);
  EXPECT_EQ(other_route.status, 422);
  EXPECT_EQ(endpoints(token_a_), 1u);

  // A refused request keeps nothing under its key: corrected, the same key applies.
  const std::vector<std::pair<std::string, std::string>> retry = {{"Idempotency-Key", "hook-2"}};
  EXPECT_EQ(client_->call(Method::post, "/v1/webhook-endpoints", Json{{"url", "not a url"}}, token_a_, retry).status,
            400);
  auto corrected =
      client_->call(Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/c"}}, token_a_, retry);
  EXPECT_EQ(corrected.status, 201) << corrected.body.dump();
  EXPECT_EQ(endpoints(token_a_), 2u);

  // A replay repeats where the first answer said the made thing is.
  const std::vector<std::pair<std::string, std::string>> board_key = {{"Idempotency-Key", "board-1"}};
  auto board = client_->call(Method::post, "/v1/analytics/dashboards", Json{{"name", "Once"}}, token_a_, board_key);
  ASSERT_EQ(board.status, 201) << board.body.dump();
  const std::string location(board.headers.get("Location").value_or(""));
  EXPECT_EQ(location, "/v1/analytics/dashboards/" + board.body.value("id", ""));
  auto board_again =
      client_->call(Method::post, "/v1/analytics/dashboards", Json{{"name", "Once"}}, token_a_, board_key);
  ASSERT_EQ(board_again.status, 201) << board_again.body.dump();
  EXPECT_EQ(board_again.headers.get("Idempotent-Replayed").value_or(""), "true");
  EXPECT_EQ(board_again.headers.get("Location").value_or(""), location);
  EXPECT_EQ(board_again.body, board.body);

  // PATCH too: a repeat is the replay of the first change.
  const std::string patch_path = "/v1/projects/" + project_a_;
  const std::vector<std::pair<std::string, std::string>> patch_key = {{"Idempotency-Key", "patch-1"}};
  auto patched = client_->call(Method::patch, patch_path, Json{{"name", "renamed once"}}, token_a_, patch_key);
  ASSERT_EQ(patched.status, 200) << patched.body.dump();
  auto repatched = client_->call(Method::patch, patch_path, Json{{"name", "renamed once"}}, token_a_, patch_key);
  EXPECT_EQ(repatched.status, 200);
  EXPECT_EQ(repatched.headers.get("Idempotent-Replayed").value_or(""), "true");
  EXPECT_EQ(repatched.body, patched.body);

  // A key whose request is still running (or was cut off after it ran) is not run again.
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) {
    return tenancy::store_answer(tx, "hook-3",
                                 {.operation = "POST /v1/webhook-endpoints",
                                  .request_hash = sha256_hex(Json{{"url", "http://127.0.0.1:9/d"}}.dump()),
                                  .status = 0,
                                  .body = ""},
                                 std::chrono::system_clock::now());
  }));
  auto busy = client_->call(Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/d"}}, token_a_,
                            {{"Idempotency-Key", "hook-3"}});
  EXPECT_EQ(busy.status, 409) << busy.body.dump();
  EXPECT_EQ(busy.body.value("type", ""), "/problems/idempotency-key-in-use");
  EXPECT_EQ(busy.headers.get("Retry-After").value_or(""), "1");
  EXPECT_EQ(endpoints(token_a_), 2u);

  // The same key in another tenant is another key.
  EXPECT_EQ(client_->call(Method::post, "/v1/webhook-endpoints", hook, token_b_, key).status, 201);
  EXPECT_EQ(endpoints(token_b_), 1u);
  EXPECT_EQ(endpoints(token_a_), 2u);
}

// The platform's own routes take Idempotency-Key too, per super admin: a retried plan or tenant creation is the
// replay of the first (one made, not two or a 409), another super admin's same key is its own, and the key with
// another body is refused.
TEST_P(TenancyTest, IdempotencyKeyOnAPlatformRouteAppliesItOncePerSuperAdmin) {
  const Json plan{{"code", "once"},        {"name", "Once"},    {"tier", "starter"}, {"currency", "USD"},
                  {"interval", "monthly"}, {"base_price", 500}, {"trial_days", 0}};
  const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "plan-1"}};
  auto first = client_->call(Method::post, "/v1/plans", plan, root_, key);
  ASSERT_EQ(first.status, 201) << first.body.dump();
  EXPECT_FALSE(first.headers.get("Idempotent-Replayed"));
  auto again = client_->call(Method::post, "/v1/plans", plan, root_, key);
  ASSERT_EQ(again.status, 201) << again.body.dump();
  EXPECT_EQ(again.headers.get("Idempotent-Replayed").value_or(""), "true");
  EXPECT_EQ(again.body, first.body);
  auto plans = client_->call(Method::get, "/v1/plans", std::nullopt, root_);
  ASSERT_EQ(plans.status, 200);
  EXPECT_EQ(std::count_if(plans.body["data"].begin(), plans.body["data"].end(),
                          [](const Json& p) { return p.value("code", "") == "once"; }),
            1);
  Json twice = plan;
  twice["code"] = "twice";
  auto other_body = client_->call(Method::post, "/v1/plans", twice, root_, key);
  EXPECT_EQ(other_body.status, 422) << other_body.body.dump();
  EXPECT_EQ(other_body.body.value("type", ""), "/problems/idempotency-key-reused");

  // A tenant made by a retried request is one tenant.
  const Json gamma{{"slug", "gamma"}, {"name", "Gamma"}};
  const std::vector<std::pair<std::string, std::string>> tenant_key = {{"Idempotency-Key", "tenant-gamma"}};
  auto made = client_->call(Method::post, "/v1/admin/tenants", gamma, root_, tenant_key);
  ASSERT_EQ(made.status, 201) << made.body.dump();
  auto remade = client_->call(Method::post, "/v1/admin/tenants", gamma, root_, tenant_key);
  ASSERT_EQ(remade.status, 201) << remade.body.dump();
  EXPECT_EQ(remade.headers.get("Idempotent-Replayed").value_or(""), "true");
  EXPECT_EQ(remade.body.value("id", ""), made.body.value("id", ""));

  // Keys are per super admin: another one's "plan-1" is its own request (here refused: the code is taken).
  ASSERT_TRUE(platform().users->create_user("root2@atrium.test", "Root 2", "root2-password", true,
                                            platform().audit->recorder({})));
  const std::string root2 = client_->sign_in("root2@atrium.test", "root2-password");
  auto theirs = client_->call(Method::post, "/v1/plans", plan, root2, key);
  EXPECT_EQ(theirs.status, 409) << theirs.body.dump();
  EXPECT_FALSE(theirs.headers.get("Idempotent-Replayed"));
}

TEST_P(TenancyTest, ETagsMakeReadsConditionalAndStaleChangesFail) {
  const std::string path = "/v1/projects/" + project_a_;
  auto read = client_->call(Method::get, path, std::nullopt, token_a_);
  ASSERT_EQ(read.status, 200);
  const std::string tag = std::string(read.headers.get("ETag").value_or(""));
  ASSERT_EQ(tag.size(), 34u) << tag;  // "<32 hex digits>"
  // If-None-Match with the current tag (strong or weak, or in a list): 304 without a body.
  for (const std::string& listed : {tag, "W/" + tag, "\"other\", " + tag, std::string("*")}) {
    auto again = client_->call(Method::get, path, std::nullopt, token_a_, {{"If-None-Match", listed}});
    EXPECT_EQ(again.status, 304) << listed;
    EXPECT_TRUE(again.raw_body.empty());
    EXPECT_EQ(again.headers.get("ETag").value_or(""), tag);
  }
  EXPECT_EQ(client_->call(Method::get, path, std::nullopt, token_a_, {{"If-None-Match", "\"stale\""}}).status, 200);
  // If-Match with the current tag: the change applies and the tag moves on.
  auto renamed = client_->call(Method::patch, path, Json{{"name", "renamed"}}, token_a_, {{"If-Match", tag}});
  ASSERT_EQ(renamed.status, 200) << renamed.body.dump();
  auto now = client_->call(Method::get, path, std::nullopt, token_a_);
  EXPECT_NE(now.headers.get("ETag").value_or(""), tag);
  // The old tag is stale now: 412, nothing changed; a weak tag never matches If-Match.
  for (const std::string& stale : {tag, "W/" + std::string(now.headers.get("ETag").value_or(""))}) {
    auto refused = client_->call(Method::patch, path, Json{{"name", "lost update"}}, token_a_, {{"If-Match", stale}});
    EXPECT_EQ(refused.status, 412) << stale;
    EXPECT_EQ(refused.body.value("type", ""), "/problems/precondition-failed");
    EXPECT_EQ(client_->call(Method::delete_, path, std::nullopt, token_a_, {{"If-Match", stale}}).status, 412);
  }
  EXPECT_EQ(client_->call(Method::get, path, std::nullopt, token_a_).body.value("name", ""), "renamed");
  // Another tenant's project has no current representation for this caller: If-Match: * fails, nothing changes.
  EXPECT_EQ(
      client_->call(Method::delete_, "/v1/projects/" + project_b_, std::nullopt, token_a_, {{"If-Match", "*"}}).status,
      412);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects/" + project_b_, std::nullopt, token_b_).status, 200);
  // A caller who may change but not read the project learns nothing from a precondition: for it the project has
  // no current representation, whatever tag it sends.
  auto key = client_->call(Method::post, "/v1/api-keys", Json{{"name", "writer"}, {"permissions", {"projects:write"}}},
                           token_a_);
  ASSERT_EQ(key.status, 201) << key.body.dump();
  const std::string writer = key.body.value("secret", "");
  const std::string current =
      std::string(client_->call(Method::get, path, std::nullopt, token_a_).headers.get("ETag").value_or(""));
  for (const std::string& listed : {current, std::string("*")}) {
    EXPECT_EQ(client_->call(Method::patch, path, Json{{"name", "x"}}, writer, {{"If-Match", listed}}).status, 412);
  }
  EXPECT_EQ(client_->call(Method::patch, path, Json{{"name", "x"}}, writer, {{"If-None-Match", current}}).status, 200);
  // Repeated field lines are one list (RFC 9110 section 5.3): the second line's * counts.
  EXPECT_EQ(client_
                ->call(Method::patch, path, Json{{"name", "y"}}, token_a_,
                       {{"If-None-Match", "\"nothing\""}, {"If-None-Match", "*"}})
                .status,
            412);
  // If-Match: * on an existing resource holds.
  EXPECT_EQ(client_->call(Method::delete_, path, std::nullopt, token_a_, {{"If-Match", "*"}}).status, 204);
}

TEST_P(TenancyTest, CursorPaginationVisitsEveryProjectOnce) {
  for (int i = 0; i < 6; ++i) create_project(token_a_, "p" + std::to_string(i));
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto r = client_->call(Method::get, "/v1/projects?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor),
                           std::nullopt, token_a_);
    ASSERT_EQ(r.status, 200);
    EXPECT_LE(r.body["data"].size(), 3u);
    for (const auto& p : r.body["data"]) seen.push_back(p.value("id", ""));
    if (r.body["next_cursor"].is_null()) break;
    cursor = r.body["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(client_->call(Method::get, "/v1/projects?limit=101", std::nullopt, token_a_).status, 400);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects?limit=0", std::nullopt, token_a_).status, 400);
  EXPECT_EQ(client_->call(Method::get, "/v1/projects?cursor=junk", std::nullopt, token_a_).status, 400);
}

INSTANTIATE_TEST_SUITE_P(Levels, TenancyTest, all_isolation_cases(), isolation_case_name);

// Row-level security is PostgreSQL's: checked where the serving role reaches the tables from the main database.
class RowLevelSecurityTest : public TenancyTest {};

TEST_P(RowLevelSecurityTest, ServingRoleWithoutTenantContextSeesNoRows) {
  // Rows exist (the owner role may read the catalogue of how many), yet the serving role sees none without
  // app.tenant_id, even on a fresh connection, and owns no table.
  const std::string table = GetParam().isolation == Isolation::schema ? tenancy::tenant_schema_name(a_.id) + ".projects"
                                                                      : std::string("projects");
  EXPECT_EQ(pg_count(tp_->app_url(), "SELECT COUNT(*) FROM " + table), 0);
  EXPECT_EQ(pg_count(tp_->app_url(),
                     "SELECT COUNT(*) FROM (SELECT set_config('app.tenant_id', '" + a_.id + "', false)) s, " + table),
            1);
  EXPECT_EQ(pg_count(tp_->app_url(),
                     "SELECT COUNT(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE "
                     "r.rolname = current_user AND c.relkind = 'r'"),
            0);
}

INSTANTIATE_TEST_SUITE_P(Postgres, RowLevelSecurityTest,
                         ::testing::Values(Case{Backend::postgres, Isolation::shared},
                                           Case{Backend::postgres, Isolation::schema}),
                         isolation_case_name);

}  // namespace
}  // namespace atrium::test
