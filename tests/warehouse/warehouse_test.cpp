// The analytics warehouse and its ETL (src/warehouse/, docs/analytics.md, Warehouse), on SQLite and PostgreSQL: the
// star schema loaded from a platform's billing, usage and product events; a second run, a full reload and a run
// stopped after its first chunk and resumed all leave the same tables; an event arriving late within the look-back
// is counted once; and (PostgreSQL) a BI tool connected as the read-only role runs the documented queries and can
// change nothing.
#include <gtest/gtest.h>

#include <unistd.h>

#include "core/failpoint.hpp"
#include "support/api_client.hpp"
#include "support/test_database.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "warehouse/warehouse.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;
using storage::Statement;

// Every table of the warehouse but the ETL's own bookkeeping, each in a fixed order.
const Statement k_dumps[] = {
    {"", "SELECT * FROM dim_date ORDER BY date_key"},
    {"", "SELECT tenant_id, slug, name, isolation, status, plan FROM dim_tenant ORDER BY tenant_id"},
    {"", "SELECT * FROM dim_tenant_history ORDER BY tenant_id, valid_from"},
    {"", "SELECT * FROM dim_plan ORDER BY plan_id, version"},
    {"", "SELECT * FROM dim_user ORDER BY tenant_id, user_id"},
    {"", "SELECT * FROM fact_mrr_daily ORDER BY date_key, tenant_id, subscription_id"},
    {"", "SELECT * FROM fact_revenue ORDER BY date_key, tenant_id, kind, document_id, line_no"},
    {"", "SELECT * FROM fact_usage_daily ORDER BY date_key, tenant_id, metric"},
    {"", "SELECT * FROM fact_product_events_daily ORDER BY date_key, tenant_id, event_type, user_id"},
    {"", "SELECT * FROM tenant_metrics ORDER BY date_key, tenant_id"},
};

std::string dump(storage::Database& db) {
  std::string out;
  auto r = db.transact([&](storage::Transaction& tx) -> Result<void> {
    for (const Statement& s : k_dumps) {
      auto rows = tx.execute(s);
      if (!rows) return std::unexpected(rows.error());
      out += std::string(s.sql) + "\n";
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        for (std::size_t c = 0; c < rows->columns.size(); ++c) {
          auto number = rows->int_at(i, c);
          out += (number ? std::to_string(*number) : rows->text_at(i, c).value_or("NULL")) + "|";
        }
        out += "\n";
      }
    }
    return {};
  });
  EXPECT_TRUE(r) << r.error().message;
  return out;
}

std::int64_t scalar(storage::Database& db, const Statement& s, std::initializer_list<storage::Value> params = {}) {
  std::int64_t v = -1;
  auto r = db.transact([&](storage::Transaction& tx) -> Result<void> {
    auto rows = tx.execute(s, params);
    if (!rows) return std::unexpected(rows.error());
    v = rows->empty() ? -1 : rows->int_at(0, 0).value_or(-1);
    return {};
  });
  EXPECT_TRUE(r) << r.error().message;
  return v;
}

class WarehouseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam(), config, &clock_);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    alpha_ = create_test_tenant(platform(), "alpha", tenancy::Isolation::shared);
    bravo_ = create_test_tenant(platform(), "bravo", tenancy::Isolation::schema);
  }

  app::Platform& platform() { return tp_->platform(); }

  void at(const char* when) {
    const Instant target = parse_rfc3339(when).value();
    ASSERT_GE(target, clock_.now());
    clock_.advance(target - clock_.now());
    ASSERT_TRUE(platform().billing->run());
  }

  std::unique_ptr<warehouse::Warehouse> open(TestDatabase& db, int chunk_days = 31, std::string reader = "") {
    auto wh = warehouse::Warehouse::open({.url = db.url(),
                                          .data_dir = "",
                                          .lookback_days = 3,
                                          .reader_role = std::move(reader),
                                          .chunk_days = chunk_days},
                                         *platform().tenant_data, clock_, nullptr);
    EXPECT_TRUE(wh) << wh.error().message;
    return wh ? std::move(*wh) : nullptr;
  }

  void events(const tenancy::Tenant& tenant,
              const std::vector<std::tuple<std::string, std::string, const char*>>& list) {
    metering::UsageBatch batch;
    for (const auto& [key, user, when] : list) {
      metering::UsageEvent e;
      e.metric = "event:feature.used";
      e.idempotency_key = key;
      e.user_id = user;
      e.quantity = 1;
      e.properties = R"({"feature":"export"})";
      e.timestamp = parse_rfc3339(when).value();
      batch.push_back({.event = e, .unreadable = {}});
    }
    auto r = platform().analytics->ingest(tenant.id, std::move(batch));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->rejected.empty()) << metering::to_json(*r).dump();
  }

  // The story: alpha subscribes to a 1000-a-month plan on Mar 1 (and pays 1000); its users u1 and u2 use a feature
  // on Feb 27, Feb 28 and Mar 1; bravo has no subscription and one anonymous event on Mar 2.
  void story() {
    auto token = client_->sign_in("root@atrium.test", "root-password");
    auto plan = client_->call(Method::post, "/v1/plans",
                              Json{{"code", "starter"},
                                   {"name", "Starter"},
                                   {"tier", "starter"},
                                   {"currency", "USD"},
                                   {"interval", "monthly"},
                                   {"base_price", 1000}},
                              token);
    ASSERT_EQ(plan.status, 201) << plan.raw_body;
    const std::string owner = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
    auto account = client_->call(Method::put, "/v1/billing-account",
                                 Json{{"legal_name", "Alpha"},
                                      {"email", "billing@alpha.test"},
                                      {"address", Json::array({"1 Main Street"})},
                                      {"country", "US"},
                                      {"currency", "USD"},
                                      {"payment_method", "pm_card_visa"}},
                                 owner);
    ASSERT_EQ(account.status, 200) << account.raw_body;
    auto sub = client_->call(Method::post, "/v1/subscriptions", Json{{"plan", "starter"}}, owner);
    ASSERT_EQ(sub.status, 201) << sub.raw_body;
    events(alpha_, {{"a1", "u1", "2026-02-27T09:00:00Z"},
                    {"a2", "u1", "2026-02-28T09:00:00Z"},
                    {"a3", "u2", "2026-02-28T10:00:00Z"},
                    {"a4", "u2", "2026-03-01T11:00:00Z"}});
    at("2026-03-02T12:00:00Z");
    events(bravo_, {{"b1", "", "2026-03-02T08:00:00Z"}});
    at("2026-03-03T10:00:00Z");
  }

  ManualClock clock_{parse_rfc3339("2026-03-01T12:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant alpha_;
  tenancy::Tenant bravo_;
};

TEST_P(WarehouseTest, TheStarSchemaHoldsTheDaysOfEveryFact) {
  story();
  auto db = TestDatabase::create(GetParam());
  auto wh = open(*db);
  ASSERT_TRUE(wh);
  std::vector<std::pair<std::int64_t, std::int64_t>> progress;
  auto stats = wh->run_etl({.full = false, .from = std::nullopt, .progress = [&](std::int64_t d, std::int64_t t) {
                              progress.emplace_back(d, t);
                            }});
  ASSERT_TRUE(stats) << stats.error().message;
  // The first run starts at the first source row (Feb 27) and ends with today (Mar 3): 5 days, one chunk.
  EXPECT_EQ(stats->to_day - stats->from_day, 5);
  ASSERT_EQ(progress.size(), 1u);
  EXPECT_EQ(progress[0], (std::pair<std::int64_t, std::int64_t>{5, 5}));
  storage::Database& w = wh->database();

  // MRR on Mar 1, 2 and 3; none before.
  EXPECT_EQ(scalar(w, {"", "SELECT COUNT(*) FROM fact_mrr_daily WHERE tenant_id = $1 AND mrr = 1000"},
                   {storage::Value(alpha_.id)}),
            3);
  EXPECT_EQ(scalar(w, {"", "SELECT MIN(date_key) FROM fact_mrr_daily"}), 20260301);
  // The first invoice's line and its payment, on Mar 1.
  EXPECT_EQ(
      scalar(
          w,
          {"", "SELECT CAST(SUM(amount) AS BIGINT) FROM fact_revenue WHERE kind = 'payment' AND date_key = 20260301"}),
      1000);
  EXPECT_EQ(scalar(w, {"", "SELECT CAST(SUM(amount) AS BIGINT) FROM fact_revenue WHERE kind = 'invoice_line'"}), 1000);
  // Product events per day and user: Feb 28 has u1 and u2.
  EXPECT_EQ(scalar(w, {"", "SELECT COUNT(*) FROM fact_product_events_daily WHERE date_key = 20260228"}), 2);
  EXPECT_EQ(
      scalar(
          w,
          {"", "SELECT CAST(SUM(events) AS BIGINT) FROM fact_product_events_daily WHERE event_type = 'feature.used'"}),
      5);
  // The seed's tenant_metrics: alpha on Mar 1 pays 1000, knows two users (first seen Feb 27 and 28), one active.
  EXPECT_EQ(scalar(w, {"", "SELECT mrr FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260301"},
                   {storage::Value(alpha_.id)}),
            1000);
  EXPECT_EQ(scalar(w, {"", "SELECT user_count FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260301"},
                   {storage::Value(alpha_.id)}),
            2);
  EXPECT_EQ(scalar(w, {"", "SELECT active_users FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260228"},
                   {storage::Value(alpha_.id)}),
            2);
  EXPECT_EQ(scalar(w, {"", "SELECT revenue FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260301"},
                   {storage::Value(alpha_.id)}),
            1000);
  // Bravo's anonymous event counts as an event, never as a user.
  EXPECT_EQ(scalar(w, {"", "SELECT events FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260302"},
                   {storage::Value(bravo_.id)}),
            1);
  EXPECT_EQ(scalar(w, {"", "SELECT user_count FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260302"},
                   {storage::Value(bravo_.id)}),
            0);
  // Dimensions: both tenants, the plan, ISO weeks (Mar 2 2026 is the Monday of week 10).
  EXPECT_EQ(scalar(w, {"", "SELECT COUNT(*) FROM dim_tenant"}), 2);
  EXPECT_EQ(scalar(w, {"", "SELECT iso_week FROM dim_date WHERE date_key = 20260302"}), 10);
  EXPECT_EQ(scalar(w, {"", "SELECT week_start FROM dim_date WHERE date_key = 20260301"}), 20260223);
  // Aggregates: March's MRR at its last loaded day, and the daily MRR view.
  EXPECT_EQ(scalar(w,
                   {"",
                    "SELECT mrr_end FROM tenant_metrics_monthly WHERE tenant_id = $1 AND month_start = "
                    "20260301"},
                   {storage::Value(alpha_.id)}),
            1000);
  EXPECT_EQ(scalar(w, {"", "SELECT mrr FROM mrr_daily WHERE date_key = 20260303 AND currency = 'USD'"}), 1000);
}

TEST_P(WarehouseTest, RunsAgainAndFullReloadsLeaveTheSameTablesAndLateEventsCountOnce) {
  story();
  auto db = TestDatabase::create(GetParam());
  auto wh = open(*db);
  ASSERT_TRUE(wh);
  ASSERT_TRUE(wh->run_etl());
  const std::string first = dump(wh->database());
  ASSERT_TRUE(wh->run_etl());
  EXPECT_EQ(dump(wh->database()), first) << "a second run changed the warehouse";
  ASSERT_TRUE(wh->run_etl({.full = true, .from = std::nullopt, .progress = {}}));
  EXPECT_EQ(dump(wh->database()), first) << "a full reload changed the warehouse";

  // An event about Mar 1 arrives on Mar 3 (late, within the 3-day look-back): the next run counts it, once.
  events(alpha_, {{"late", "u3", "2026-03-01T15:00:00Z"}});
  ASSERT_TRUE(wh->run_etl());
  const Statement mar1{"",
                       "SELECT CAST(SUM(events) AS BIGINT) FROM fact_product_events_daily WHERE date_key = 20260301"};
  EXPECT_EQ(scalar(wh->database(), mar1), 2);
  ASSERT_TRUE(wh->run_etl());
  EXPECT_EQ(scalar(wh->database(), mar1), 2);
  EXPECT_EQ(scalar(wh->database(),
                   {"", "SELECT active_users FROM tenant_metrics WHERE tenant_id = $1 AND date_key = 20260301"},
                   {storage::Value(alpha_.id)}),
            2);
  // Re-running a window from a date reloads it to the same state.
  const std::string after_late = dump(wh->database());
  ASSERT_TRUE(wh->run_etl({.full = false, .from = parse_rfc3339("2026-02-28T00:00:00Z"), .progress = {}}));
  EXPECT_EQ(dump(wh->database()), after_late);
  EXPECT_EQ(wh->run_etl({.full = false, .from = parse_rfc3339("2026-02-28T12:00:00Z"), .progress = {}}).error().code,
            Errc::invalid_argument);
}

TEST_P(WarehouseTest, ARunStoppedAfterAChunkResumesToTheSameTables) {
  story();
  auto whole_db = TestDatabase::create(GetParam());
  auto whole = open(*whole_db);
  ASSERT_TRUE(whole);
  ASSERT_TRUE(whole->run_etl());

  // One day per chunk; the run stops (as a crash would) after committing its first.
  auto resumed_db = TestDatabase::create(GetParam());
  auto resumed = open(*resumed_db, 1);
  ASSERT_TRUE(resumed);
  {
    ScopedFailure stop("warehouse.after_chunk");
    auto stopped = resumed->run_etl();
    ASSERT_FALSE(stopped);
  }
  EXPECT_EQ(scalar(resumed->database(), {"", "SELECT MAX(date_key) FROM dim_date"}), 20260303);
  // The first chunk (Feb 27) is committed with its watermark: the next day to load is Feb 28.
  EXPECT_EQ(scalar(resumed->database(), {"", "SELECT next_day FROM etl_state"}),
            unix_seconds(parse_rfc3339("2026-02-28T00:00:00Z").value()) / 86'400);
  EXPECT_NE(dump(resumed->database()), dump(whole->database())) << "the stopped run should be partial";
  ASSERT_TRUE(resumed->run_etl());
  EXPECT_EQ(dump(resumed->database()), dump(whole->database()));
}

// BI tools connect as analytics.warehouse_reader_role and run the documented example queries (docs/analytics.md);
// the role can read every table and view and change nothing.
class WarehouseReaderTest : public WarehouseTest {};

TEST_P(WarehouseReaderTest, TheReadOnlyRoleRunsTheDocumentedQueries) {
  story();
  auto db = TestDatabase::create(GetParam());
  const std::string role = "atrium_bi_" + std::to_string(::getpid());
  std::string error;
  pg_admin(*postgres_url(), "DROP ROLE IF EXISTS " + role);
  ASSERT_TRUE(pg_admin(*postgres_url(), "CREATE ROLE " + role + " LOGIN PASSWORD 'bi-password'", &error)) << error;
  {
    auto wh = open(*db, 31, role);
    ASSERT_TRUE(wh);
    ASSERT_TRUE(wh->run_etl());
    const std::string url = db->url();
    const std::string bi_url = "postgresql://" + role + ":bi-password@" + url.substr(url.find('@') + 1);
    auto bi = storage::open_database({.url = bi_url, .pool_size = 1});
    ASSERT_TRUE(bi) << bi.error().message;
    // The documented examples: MRR by month and currency, tenants' monthly metrics, adoption by day.
    EXPECT_EQ(
        scalar(**bi,
               {"",
                "SELECT CAST(SUM(mrr) AS BIGINT) FROM mrr_daily m JOIN dim_date d ON d.date_key = m.date_key WHERE "
                "d.date_key = (SELECT MAX(date_key) FROM mrr_daily) AND m.currency = 'USD'"}),
        1000);
    EXPECT_EQ(scalar(**bi, {"",
                            "SELECT COUNT(*) FROM tenant_metrics_monthly t JOIN dim_tenant n ON n.tenant_id = "
                            "t.tenant_id WHERE n.slug = 'alpha'"}),
              2);  // February and March
    EXPECT_EQ(scalar(**bi, {"",
                            "SELECT COUNT(DISTINCT user_id) FROM fact_product_events_daily e JOIN dim_date d ON "
                            "d.date_key = e.date_key WHERE d.iso_week = 9 AND e.event_type = 'feature.used'"}),
              2);
    auto write = (*bi)->transact([](storage::Transaction& tx) -> Result<void> {
      auto r = tx.execute({"", "DELETE FROM tenant_metrics"});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    ASSERT_FALSE(write);
    EXPECT_NE(write.error().message.find("permission denied"), std::string::npos) << write.error().message;
    auto ddl = (*bi)->transact([](storage::Transaction& tx) -> Result<void> {
      auto r = tx.execute({"", "CREATE TABLE bi_scratch (x INTEGER)"});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    ASSERT_FALSE(ddl);
    EXPECT_NE(ddl.error().message.find("permission denied"), std::string::npos) << ddl.error().message;
  }
  db.reset();
  pg_admin(*postgres_url(), "DROP OWNED BY " + role);
  pg_admin(*postgres_url(), "DROP ROLE IF EXISTS " + role);
}

INSTANTIATE_TEST_SUITE_P(Backends, WarehouseTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return std::string(storage::backend_name(info.param)); });
// The reader role is PostgreSQL's (a SQLite file is read-only by file permissions).
INSTANTIATE_TEST_SUITE_P(Postgres, WarehouseReaderTest, ::testing::Values(Backend::postgres),
                         [](const auto& info) { return std::string(storage::backend_name(info.param)); });

}  // namespace
}  // namespace atrium::test
