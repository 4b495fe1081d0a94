// PostgreSQL row-level security on its own, as if the application had a bug: the serving role, connected directly
// and setting whatever it may on its own connection, reads and writes no row of another tenant. Tables are found
// in pg_catalog (every table with a tenant_id column), seeded for two tenants by the superuser, and probed with
// statements that filter by nothing but the other tenant's id. The statements here are built from catalog names
// quoted by the server (quote_ident): that is the test's business; the product's SQL stays constant text.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/ids.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::test {
namespace {

// One libpq connection (the test needs session state and SET ROLE, which the pool does not offer).
class Pg {
 public:
  struct Out {
    std::string error;  // empty: success
    std::vector<std::vector<std::optional<std::string>>> rows;
    long affected = 0;
    bool ok() const { return error.empty(); }
    std::string text(std::size_t row, std::size_t column) const { return rows.at(row).at(column).value_or(""); }
    long number() const { return rows.empty() ? -1 : std::stol(text(0, 0)); }
  };

  explicit Pg(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) error_ = PQerrorMessage(conn_);
  }
  ~Pg() { PQfinish(conn_); }
  Pg(const Pg&) = delete;
  Pg& operator=(const Pg&) = delete;
  const std::string& connect_error() const { return error_; }

  Out exec(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* res =
        PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
    Out out;
    const auto status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      out.error = PQresultErrorMessage(res);
      if (out.error.empty()) out.error = "error";
    } else {
      for (int r = 0; r < PQntuples(res); ++r) {
        std::vector<std::optional<std::string>> row;
        for (int c = 0; c < PQnfields(res); ++c) {
          if (PQgetisnull(res, r, c)) {
            row.emplace_back();
          } else {
            row.emplace_back(PQgetvalue(res, r, c));
          }
        }
        out.rows.push_back(std::move(row));
      }
      const char* n = PQcmdTuples(res);
      out.affected = (n != nullptr && *n != '\0') ? std::stol(n) : 0;
    }
    PQclear(res);
    return out;
  }

  // Runs `sql`; a failure fails the calling test.
  Out must(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto out = exec(sql, params);
    EXPECT_TRUE(out.ok()) << sql << ": " << out.error;
    return out;
  }

 private:
  PGconn* conn_;
  std::string error_;
};

// A table with a tenant_id column, as pg_catalog describes it.
struct TenantTable {
  std::string schema;
  std::string name;
  std::string qualified;    // quoted: "schema"."name"
  std::string tenant_type;  // uuid or text
  bool rls = false;
  bool force = false;
};

std::vector<TenantTable> tenant_tables(Pg& db) {
  auto rows = db.must(
      "SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
      "format_type(a.atttypid, a.atttypmod), c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
      "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
      "WHERE a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%' "
      "ORDER BY n.nspname, c.relname");
  std::vector<TenantTable> out;
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    out.push_back({rows.text(i, 0), rows.text(i, 1), rows.text(i, 2), rows.text(i, 3), rows.text(i, 4) == "t",
                   rows.text(i, 5) == "t"});
  }
  return out;
}

// Inserts one row of `tenant` into `t` as the superuser, with foreign keys not checked (session_replication_role):
// tenant_id is the tenant, every other NOT NULL column without a default gets a value of its type (the first value
// a CHECK (... IN ...) allows, else a fresh unique one).
void seed(Pg& superuser, const TenantTable& t, const std::string& tenant) {
  auto columns = superuser.must(
      "SELECT a.attname, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef, "
      "(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c' AND "
      "k.conkey = ARRAY[a.attnum] LIMIT 1) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
      "AND NOT a.attisdropped ORDER BY a.attnum",
      {t.schema, t.name});
  static int counter = 0;
  std::string names;
  std::string placeholders;
  std::vector<std::string> values;
  for (std::size_t i = 0; i < columns.rows.size(); ++i) {
    const std::string name = columns.text(i, 0);
    const std::string type = columns.text(i, 2);
    const bool required = columns.text(i, 3) == "t" && columns.text(i, 4) != "t";
    std::string value;
    if (name == "tenant_id") {
      value = tenant;
    } else if (!required) {
      continue;
    } else if (const std::string check = columns.text(i, 5); check.find('\'') != std::string::npos) {
      const auto open = check.find('\'');
      value = check.substr(open + 1, check.find('\'', open + 1) - open - 1);
    } else if (type == "uuid") {
      value = new_uuid_v7(SystemClock::instance());
    } else if (type == "text") {
      value = "seed-" + new_uuid_v7(SystemClock::instance());
    } else if (type == "bigint" || type == "integer" || type == "smallint") {
      value = std::to_string(1000 + ++counter);
    } else if (type == "double precision" || type == "real" || type == "numeric") {
      value = "0.5";
    } else if (type == "boolean") {
      value = "false";
    } else if (type == "timestamp with time zone") {
      value = "2026-01-01T00:00:00Z";
    } else if (type == "jsonb" || type == "json") {
      value = "{}";
    } else {
      ADD_FAILURE() << t.qualified << "." << name << ": no seed value for type " << type;
      return;
    }
    values.push_back(value);
    names += (names.empty() ? "" : ", ") + columns.text(i, 1);
    placeholders += (placeholders.empty() ? "$" : ", $") + std::to_string(values.size()) + "::" + type;
  }
  superuser.must("BEGIN");
  superuser.must("SET LOCAL session_replication_role = replica");
  superuser.must("INSERT INTO " + t.qualified + " (" + names + ") VALUES (" + placeholders + ")", values);
  superuser.must("COMMIT");
}

bool refused(const Pg::Out& out) {
  return out.error.find("row-level security") != std::string::npos ||
         out.error.find("permission denied") != std::string::npos;
}

// What the serving role does to `t` in one context: `prelude` runs at the start of each transaction (the tenant
// transaction's set_config calls, or nothing). Returns what it could do to `other`'s rows; visible_own is how
// many rows of `own` it saw.
struct Probe {
  std::vector<std::string> leaks;
  long visible_own = -1;
};

Probe probe(Pg& app, const TenantTable& t, const std::vector<std::string>& prelude, const std::string& own,
            const std::string& other) {
  Probe out;
  auto run = [&](const std::string& sql, const std::vector<std::string>& params) {
    app.must("BEGIN");
    for (const auto& p : prelude) app.must(p);
    auto r = app.exec(sql, params);
    app.exec("ROLLBACK");
    return r;
  };
  const std::string where = " WHERE tenant_id::text = $1";
  if (auto r = run("SELECT count(*) FROM " + t.qualified + where, {other}); r.ok() && r.number() != 0) {
    out.leaks.push_back("reads " + std::to_string(r.number()) + " row(s)");
  } else if (!r.ok() && !refused(r)) {
    out.leaks.push_back("SELECT failed otherwise: " + r.error);
  }
  if (auto r = run("SELECT count(*) FROM " + t.qualified + where, {own}); r.ok()) out.visible_own = r.number();
  if (auto r = run("UPDATE " + t.qualified + " SET tenant_id = tenant_id" + where, {other}); r.ok() && r.affected) {
    out.leaks.push_back("updates its rows");
  }
  if (auto r = run("DELETE FROM " + t.qualified + where, {other}); r.ok() && r.affected) {
    out.leaks.push_back("deletes its rows");
  }
  // The RLS check on a new row comes before NOT NULL and CHECK constraints: anything else means no policy stopped it.
  if (auto r = run("INSERT INTO " + t.qualified + " (tenant_id) VALUES ($1::" + t.tenant_type + ")", {other});
      !refused(r)) {
    out.leaks.push_back("inserts a row (" + (r.ok() ? std::string("accepted") : r.error) + ")");
  }
  if (auto r = run("UPDATE " + t.qualified + " SET tenant_id = $1::" + t.tenant_type + " WHERE tenant_id::text = $2",
                   {other, own});
      r.ok() && r.affected) {
    out.leaks.push_back("moves a row of its own to it");
  } else if (!r.ok() && !refused(r)) {
    out.leaks.push_back("moving a row failed otherwise: " + r.error);
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
  return s;
}

class RlsIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(!postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = TestPlatform::create(storage::Backend::postgres);
    superuser_url_ = with_database(*postgres_url(), database_of(tp_->admin_url()));
  }

  app::Platform& platform() { return tp_->platform(); }

  std::unique_ptr<TestPlatform> tp_;
  std::string superuser_url_;
};

// The tables the platform's billing, usage and quota work reads across tenants.
const std::set<std::string> k_platform_tables = {
    "billing_accounts", "test_clocks",  "subscriptions", "invoices",        "invoice_lines", "payment_attempts",
    "credit_notes",     "usage_events", "usage_rollups", "quota_overrides", "quota_notices", "usage_billings"};

// Regression: any connection could set app.billing_platform = 'on' and read every tenant's billing, usage and quota
// rows. Now no setting of the serving role's opens them, and only the platform scope (the owner's transaction)
// sees every tenant.
TEST_F(RlsIsolationTest, NoSettingOpensBillingUsageAndQuotaRowsToTheServingRole) {
  const auto a = create_test_tenant(platform(), "rls-a", tenancy::Isolation::shared);
  const auto b = create_test_tenant(platform(), "rls-b", tenancy::Isolation::shared);
  Pg superuser(superuser_url_);
  ASSERT_EQ(superuser.connect_error(), "");
  std::vector<TenantTable> tables;
  for (const auto& t : tenant_tables(superuser)) {
    if (t.schema == "public" && k_platform_tables.count(t.name)) tables.push_back(t);
  }
  ASSERT_EQ(tables.size(), k_platform_tables.size());
  for (const auto& t : tables) {
    seed(superuser, t, a.id);
    seed(superuser, t, b.id);
  }

  Pg app(tp_->app_url());
  ASSERT_EQ(app.connect_error(), "");
  for (const char* setting : {"app.billing_platform", "app.platform_scope"}) {
    app.must("SELECT set_config($1, 'on', false)", {setting});
  }
  for (const auto& t : tables) {
    SCOPED_TRACE(t.qualified);
    EXPECT_TRUE(t.rls && t.force);
    // With no tenant, nothing at all.
    auto none = probe(app, t, {}, a.id, b.id);
    EXPECT_EQ(joined(none.leaks), "");
    EXPECT_EQ(none.visible_own, 0);
    // In tenant A's transaction, A's row and nothing of B's.
    auto scoped = probe(app, t, {"SELECT set_config('app.tenant_id', '" + a.id + "', true)"}, a.id, b.id);
    EXPECT_EQ(joined(scoped.leaks), "");
    EXPECT_EQ(scoped.visible_own, 1);
  }
  // The owner outside the platform scope sees no tenant's rows either; inside it (TenantData::transact_platform),
  // every tenant's.
  Pg owner(tp_->admin_url());
  for (const auto& t : tables) {
    EXPECT_EQ(owner.must("SELECT count(*) FROM " + t.qualified).number(), 0) << t.qualified;
    long both = -1;
    auto r = platform().tenant_data->transact_platform([&](tenancy::PlatformTransaction& tx) -> Result<void> {
      auto rows = tx.control().execute(
          storage::Statement{"", "SELECT count(*) FROM " + t.qualified + " WHERE tenant_id IN ($1::uuid, $2::uuid)"},
          {storage::Value(a.id), storage::Value(b.id)});
      if (!rows) return std::unexpected(rows.error());
      both = rows->int_at(0, 0).value_or(-1);
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(both, 2) << t.qualified;
  }
  // And the serving role cannot become the owner.
  EXPECT_FALSE(app.exec("SET ROLE atrium_owner").ok());
  EXPECT_FALSE(app.exec("SET SESSION AUTHORIZATION atrium_owner").ok());
}

// Every table with a tenant_id column — in public, in the tenant schemas and in the tenant databases the test
// creates at all three levels — has RLS with FORCE, and the serving role, with anything it can set on its own
// connection, reads and writes no row of the other tenant.
TEST_F(RlsIsolationTest, EveryTableWithATenantIdKeepsTheServingRoleToItsTenant) {
  const auto shared_a = create_test_tenant(platform(), "rls-shared-a", tenancy::Isolation::shared);
  const auto shared_b = create_test_tenant(platform(), "rls-shared-b", tenancy::Isolation::shared);
  const auto schema_a = create_test_tenant(platform(), "rls-schema-a", tenancy::Isolation::schema);
  const auto schema_b = create_test_tenant(platform(), "rls-schema-b", tenancy::Isolation::schema);
  const auto database_a = create_test_tenant(platform(), "rls-database-a", tenancy::Isolation::database);
  const auto database_b = create_test_tenant(platform(), "rls-database-b", tenancy::Isolation::database);

  // Where tables live, and the two tenants probed there: A is the one the serving role acts for.
  struct Location {
    std::string database;    // "" = the platform's own
    std::string schema;      // the schema whose tables are probed with this pair
    std::string own_schema;  // the schema level's search_path for A ("" = none)
    std::string other_schema;
    std::string a, b;
  };
  const std::string main_db = database_of(tp_->admin_url());
  const std::vector<Location> locations = {
      {main_db, "public", "", "", shared_a.id, shared_b.id},
      {main_db, tenancy::tenant_schema_name(schema_a.id), tenancy::tenant_schema_name(schema_a.id),
       tenancy::tenant_schema_name(schema_b.id), schema_a.id, schema_b.id},
      {main_db, tenancy::tenant_schema_name(schema_b.id), tenancy::tenant_schema_name(schema_b.id),
       tenancy::tenant_schema_name(schema_a.id), schema_b.id, schema_a.id},
      {tenancy::tenant_database_name(database_a.id), "public", "", "", database_a.id, database_b.id},
      {tenancy::tenant_database_name(database_b.id), "public", "", "", database_b.id, database_a.id},
  };

  int probed = 0;
  for (const auto& at : locations) {
    SCOPED_TRACE(at.database + "/" + at.schema);
    Pg superuser(with_database(*postgres_url(), at.database));
    ASSERT_EQ(superuser.connect_error(), "");
    std::vector<TenantTable> tables;
    for (const auto& t : tenant_tables(superuser)) {
      if (t.schema == at.schema) tables.push_back(t);
    }
    ASSERT_FALSE(tables.empty());
    for (const auto& t : tables) {
      seed(superuser, t, at.a);
      seed(superuser, t, at.b);
    }

    Pg app(with_database(tp_->app_url(), at.database));
    ASSERT_EQ(app.connect_error(), "");
    EXPECT_FALSE(app.exec("SET ROLE atrium_owner").ok());
    EXPECT_FALSE(app.exec("SET SESSION AUTHORIZATION atrium_owner").ok());
    const std::string set_a = "SELECT set_config('app.tenant_id', '" + at.a + "', true)";
    std::vector<std::string> tenant_a = {set_a};
    if (!at.own_schema.empty()) tenant_a.push_back("SELECT set_config('search_path', '" + at.own_schema + "', true)");
    std::vector<std::string> elsewhere = {
        set_a,
        "SELECT set_config('search_path', '" + (at.other_schema.empty() ? "public" : at.other_schema) + "', true)"};

    for (const auto& t : tables) {
      SCOPED_TRACE(t.qualified);
      ++probed;
      EXPECT_TRUE(t.rls) << "no row-level security";
      EXPECT_TRUE(t.force) << "row-level security is not forced on the owner";

      app.must("RESET ALL");
      // 1. Tenant A's transaction: A's row, nothing of B's.
      auto scoped = probe(app, t, tenant_a, at.a, at.b);
      EXPECT_EQ(joined(scoped.leaks), "") << "in A's transaction";
      EXPECT_GE(scoped.visible_own, 1) << "A's own rows are not visible: the probe would prove nothing";
      // 2. With every bypass the serving role can set on its connection.
      for (const char* setting : {"app.billing_platform", "app.platform_scope"}) {
        app.must("SELECT set_config($1, 'on', false)", {setting});
      }
      EXPECT_EQ(joined(probe(app, t, tenant_a, at.a, at.b).leaks), "") << "with the platform settings on";
      // 3. B at session level, then A's transaction: the transaction's own setting wins.
      app.must("SELECT set_config('app.tenant_id', $1, false)", {at.b});
      EXPECT_EQ(joined(probe(app, t, tenant_a, at.a, at.b).leaks), "") << "with app.tenant_id = B for the session";
      // 4. A's transaction with the search_path on public or B's schema.
      EXPECT_EQ(joined(probe(app, t, elsewhere, at.a, at.b).leaks), "") << "with another search_path";
      // 5. No tenant at all (session '' and no transaction scope): nobody's rows.
      app.must("SELECT set_config('app.tenant_id', '', false)");
      auto none = probe(app, t, {}, at.a, at.b);
      EXPECT_EQ(joined(none.leaks), "") << "without a tenant";
      EXPECT_EQ(none.visible_own, 0) << "without a tenant";
    }
  }
  EXPECT_GE(probed, 42);
}

// The SECURITY DEFINER functions reach into the platform scope: no role of the cluster but the serving role (and the
// owner) may call them. Functions are PUBLIC's by default; migration 0013 revokes that.
TEST_F(RlsIsolationTest, OnlyTheServingRoleMayCallTheDefinerFunctions) {
  Pg superuser(superuser_url_);
  ASSERT_EQ(superuser.connect_error(), "");
  auto open_to_all = superuser.must(
      "SELECT p.proname FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) "
      "a "
      "WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0 AND a.privilege_type = 'EXECUTE' ORDER BY 1");
  std::string names;
  for (std::size_t i = 0; i < open_to_all.rows.size(); ++i) names += open_to_all.text(i, 0) + " ";
  EXPECT_EQ(names, "");
  auto definers =
      superuser.must("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef");
  EXPECT_GE(definers.number(), 4);

  // A role of the same cluster that is not the serving role is refused; the serving role is not.
  superuser.exec("DROP ROLE IF EXISTS atrium_rls_stranger");
  superuser.must("CREATE ROLE atrium_rls_stranger");
  superuser.must("BEGIN");
  superuser.must("SET LOCAL ROLE atrium_rls_stranger");
  auto stranger = superuser.exec("SELECT * FROM atrium_api_key_by_prefix('ak_live_x')");
  superuser.exec("ROLLBACK");
  superuser.must("DROP ROLE atrium_rls_stranger");
  EXPECT_NE(stranger.error.find("permission denied"), std::string::npos) << stranger.error;
  Pg app(tp_->app_url());
  ASSERT_EQ(app.connect_error(), "");
  EXPECT_TRUE(app.exec("SELECT * FROM atrium_api_key_by_prefix('ak_live_x')").ok());
  EXPECT_TRUE(app.exec("SELECT atrium_membership_count()").ok());
}

// A super admin signed in without a tenant holds refresh tokens of no tenant (tenant_id NULL): found by hash, used
// and revoked in a transaction scoped to no tenant, never visible in a tenant's.
TEST_F(RlsIsolationTest, RefreshTokensOfNoTenantRotateAndRevokeOutsideEveryTenantsScope) {
  auto who = platform().audit->recorder({});
  ASSERT_TRUE(platform().users->create_user("root@rls.test", "", "root-password", true, who));
  auto first = platform().tokens->password_grant("root@rls.test", "root-password", std::nullopt, "127.0.0.1", who);
  ASSERT_TRUE(first) << first.error().message;
  auto second = platform().tokens->refresh_grant(first->refresh_token, who);
  ASSERT_TRUE(second) << second.error().message;
  auto third = platform().tokens->refresh_grant(second->refresh_token, who);
  ASSERT_TRUE(third) << third.error().message;
  ASSERT_TRUE(platform().tokens->revoke(third->refresh_token, who));
  EXPECT_FALSE(platform().tokens->refresh_grant(third->refresh_token, who));

  const auto t = create_test_tenant(platform(), "rls-refresh", tenancy::Isolation::shared);
  Pg app(tp_->app_url());
  ASSERT_EQ(app.connect_error(), "");
  const std::string count = "SELECT count(*) FROM refresh_tokens WHERE tenant_id IS NULL";
  app.must("BEGIN");
  app.must("SELECT set_config('app.tenant_id', $1, true)", {t.id});
  EXPECT_EQ(app.must(count).number(), 0);
  app.must("ROLLBACK");
  EXPECT_EQ(app.must(count).number(), 3);
  EXPECT_EQ(app.must(count + " AND revoked_at IS NULL").number(), 0);
}

// The schema level's search_path is the tenant's schema alone: a tenant table missing from the schema is an error,
// not the shared table of the same name (which `tenant_<hex>, public` silently resolved to). Control-plane
// statements in the same transaction resolve in public, and tenant statements after them in the schema again.
TEST_F(RlsIsolationTest, SchemaLevelTenantStatementsNeverResolveToTheSharedTables) {
  const auto t = create_test_tenant(platform(), "rls-schema", tenancy::Isolation::schema);
  const std::string schema = tenancy::tenant_schema_name(t.id);
  Pg superuser(superuser_url_);
  ASSERT_EQ(superuser.connect_error(), "");
  superuser.must("DROP TABLE " + schema + ".idempotency_keys");

  constexpr tenancy::TenantStatement k_missing{"", "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1"};
  auto missing = platform().tenant_data->transact(t, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    auto rows = tx.execute(k_missing);
    if (!rows) return std::unexpected(rows.error());
    return {};
  });
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("idempotency_keys"), std::string::npos) << missing.error().message;

  constexpr tenancy::TenantStatement k_tenant_path{
      "", "SELECT current_setting('search_path'), count(*) FROM projects WHERE tenant_id = $1"};
  constexpr storage::Statement k_control_path{"", "SELECT current_setting('search_path'), count(*) FROM tenants"};
  std::vector<std::string> paths;
  auto mixed = platform().tenant_data->transact(t, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    for (int round = 0; round < 2; ++round) {
      auto own = tx.execute(k_tenant_path);
      if (!own) return std::unexpected(own.error());
      paths.push_back(own->text_at(0, 0).value_or(""));
      auto control = tx.control_plane()->execute(k_control_path);
      if (!control) return std::unexpected(control.error());
      paths.push_back(control->text_at(0, 0).value_or(""));
    }
    return {};
  });
  ASSERT_TRUE(mixed) << mixed.error().message;
  EXPECT_EQ(paths, (std::vector<std::string>{schema, "public", schema, "public"}));
}

}  // namespace
}  // namespace atrium::test
