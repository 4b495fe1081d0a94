// Moving a tenant between isolation levels (app/tenant_move.hpp): every ordered pair of levels on both backends while
// a writer and a reader keep using the tenant through the API, and a move stopped after each of its steps and run
// again. What must hold: no acknowledged write is lost or applied twice, reads never fail, writes are refused only
// with 503 and Retry-After, the stores compare equal, the old copy is gone, the neighbour is untouched and the
// audit log verifies.
#include "app/tenant_move.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "audit/audit_log.hpp"
#include "core/failpoint.hpp"
#include "projects/project_store.hpp"
#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using namespace std::chrono_literals;
using http::Method;
using storage::Backend;
using tenancy::Isolation;
using tenancy::MoveState;
using tenancy::Tenant;

const app::MoveOptions k_quick{.settle = 20ms};

class TenantMoveTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;                 // the move's wait before removing the old copy is at least this
    config.gateway.default_requests_per_second = 0;  // the load below is as fast as it goes
    tp_ = TestPlatform::create(GetParam(), config);
    ASSERT_TRUE(tp_);
    client_ = std::make_unique<ApiClient>(platform());
    alpha_ = create_test_tenant(platform(), "alpha", Isolation::shared);
    bravo_ = create_test_tenant(platform(), "bravo", Isolation::shared);
    owner_a_ = client_->sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = client_->sign_in("owner@bravo.test", "password-bravo", "bravo");
    fill(owner_a_, "alpha");
    fill(owner_b_, "bravo");
  }

  app::Platform& platform() { return tp_->platform(); }

  // A row in every table a tenant's requests write: projects, a webhook endpoint (its secret sealed), email
  // settings (sealed), a dashboard, and the idempotency keys kept for them.
  void fill(const std::string& token, const std::string& name) {
    for (int i = 0; i < 3; ++i) {
      auto r = client_->call(Method::post, "/v1/projects", Json{{"name", name + "-" + std::to_string(i)}}, token,
                             {{"Idempotency-Key", name + "-project-" + std::to_string(i)}});
      ASSERT_EQ(r.status, 201) << r.raw_body;
    }
    auto hook = client_->call(Method::post, "/v1/webhook-endpoints",
                              Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {"project.created"}}}, token);
    ASSERT_EQ(hook.status, 201) << hook.raw_body;
    auto mail = client_->call(Method::put, "/v1/email-settings",
                              Json{{"from_name", name + " Support"}, {"reply_to", "help@" + name + ".test"}}, token);
    ASSERT_EQ(mail.status, 200) << mail.raw_body;
    auto board = client_->call(Method::post, "/v1/analytics/dashboards",
                               Json{{"name", name + " board"},
                                    {"widgets",
                                     {{{"title", "Active"},
                                       {"metric", "active_users"},
                                       {"chart", "line"},
                                       {"range_days", 30},
                                       {"group_by", "day"}}}}},
                               token);
    ASSERT_EQ(board.status, 201) << board.raw_body;
  }

  Tenant current(const std::string& id) {
    auto t = platform().tenants->get(id);
    EXPECT_TRUE(t) << t.error().message;
    return t.value_or(Tenant{});
  }

  // The tenant's store as read at `level`, every table but the outboxes (carried to the control plane by a move).
  std::vector<tenancy::TableDigest> rows_at(const Tenant& t, Isolation level) {
    Tenant view = t;
    view.isolation = level;
    view.move_state = MoveState::none;
    auto d = tenancy::digest_tables(*platform().tenant_data, view);
    EXPECT_TRUE(d) << d.error().message;
    std::vector<tenancy::TableDigest> kept;
    for (auto& table : d.value_or(std::vector<tenancy::TableDigest>{})) {
      if (table.table != "audit_outbox" && table.table != "event_outbox") kept.push_back(std::move(table));
    }
    return kept;
  }

  // After a finished move from `from`: the old copy is gone (or is the same store), the tenant is at `to`.
  void expect_moved(const Tenant& before, Isolation from, Isolation to) {
    const Tenant now = current(before.id);
    EXPECT_EQ(now.isolation, to);
    EXPECT_EQ(now.move_state, MoveState::none);
    Tenant old = before;
    old.isolation = from;
    Tenant moved = before;
    moved.isolation = to;
    if (platform().tenant_data->same_store(old, moved)) return;
    if (from == Isolation::shared) {
      for (const auto& table : rows_at(before, Isolation::shared)) EXPECT_EQ(table.rows, 0) << table.table;
    } else if (GetParam() == Backend::postgres && from == Isolation::schema) {
      EXPECT_FALSE(tenancy::digest_tables(*platform().tenant_data, old)) << "the old schema is still there";
    } else {
      auto exists = platform().tenant_data->own_store_exists(old);
      ASSERT_TRUE(exists) << exists.error().message;
      EXPECT_FALSE(*exists) << "the old database or file is still there";
    }
  }

  void expect_audit_clean() {
    auto report = platform().audit->verify(std::nullopt);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->findings.empty()) << report->findings.front().problem;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  Tenant alpha_;
  Tenant bravo_;
  std::string owner_a_;
  std::string owner_b_;
};

// Keeps creating projects (each with its own Idempotency-Key, sent again after a 503 until it is answered) and
// listing them, counting what was acknowledged and anything that failed otherwise.
class Load {
 public:
  Load(app::Platform& platform, std::string token) : client_(platform), token_(std::move(token)) {
    writer_ = std::jthread([this](std::stop_token stop) { write(stop); });
    reader_ = std::jthread([this](std::stop_token stop) { read(stop); });
  }
  ~Load() { stop(); }

  void stop() {
    writer_.request_stop();
    reader_.request_stop();
    if (writer_.joinable()) writer_.join();
    if (reader_.joinable()) reader_.join();
  }

  // Waits (at most a minute) until `n` more writes than now were acknowledged.
  bool wait_for_more(std::size_t n) {
    const std::size_t target = acknowledged().size() + n;
    for (int i = 0; i < 6000; ++i) {
      if (acknowledged().size() >= target) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::vector<std::string> acknowledged() {
    std::lock_guard lock(mutex_);
    return ids_;
  }
  std::vector<std::string> failures() {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  void write(const std::stop_token& stop) {
    for (int n = 0; !stop.stop_requested();) {
      const std::string key = "load-" + std::to_string(n);
      auto r = client_.call(Method::post, "/v1/projects", Json{{"name", key}}, token_, {{"Idempotency-Key", key}});
      std::lock_guard lock(mutex_);
      if (r.status == 201) {
        ids_.push_back(r.body.value("id", ""));
        ++n;
      } else if (r.status == 503 && r.headers.get("Retry-After")) {
        // refused while frozen: sent again with the same key
      } else {
        failures_.push_back("POST " + std::to_string(r.status) + " " + r.raw_body);
        ++n;
      }
    }
  }

  void read(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      auto r = client_.call(Method::get, "/v1/projects?limit=5", std::nullopt, token_);
      if (r.status != 200) {
        std::lock_guard lock(mutex_);
        failures_.push_back("GET " + std::to_string(r.status) + " " + r.raw_body);
      }
    }
  }

  ApiClient client_;
  std::string token_;
  std::mutex mutex_;
  std::vector<std::string> ids_;       // guarded by mutex_
  std::vector<std::string> failures_;  // guarded by mutex_
  std::jthread writer_;
  std::jthread reader_;
};

// Every ordered pair of levels, as one chain of six moves, under load all along.
TEST_P(TenantMoveTest, EveryPairOfLevelsUnderLoadLosesNothingAndDuplicatesNothing) {
  const auto bravo_before = rows_at(bravo_, Isolation::shared);
  const std::vector<Isolation> chain = {Isolation::schema,   Isolation::database, Isolation::shared,
                                        Isolation::database, Isolation::schema,   Isolation::shared};
  Load load(platform(), owner_a_);
  ASSERT_TRUE(load.wait_for_more(3));
  Isolation from = Isolation::shared;
  for (Isolation to : chain) {
    SCOPED_TRACE(std::string(tenancy::isolation_name(from)) + " -> " + std::string(tenancy::isolation_name(to)));
    auto report = app::move_tenant(platform(), alpha_.id, to, k_quick);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->from, from);
    EXPECT_FALSE(report->already_there);
    expect_moved(alpha_, from, to);
    Tenant old = alpha_;
    old.isolation = from;
    if (!platform().tenant_data->same_store(old, current(alpha_.id))) {
      ASSERT_EQ(report->verified.size(), tenancy::tenant_tables().size());  // compared table by table
    }
    ASSERT_TRUE(load.wait_for_more(3)) << "writes did not resume at the new level";
    from = to;
  }
  load.stop();

  EXPECT_TRUE(load.failures().empty()) << load.failures().front();
  // Every acknowledged project is there once; nothing else was added (3 from the set-up).
  std::multiset<std::string> listed;
  std::string cursor;
  do {
    auto page = client_->call(Method::get, "/v1/projects?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor),
                              std::nullopt, owner_a_);
    ASSERT_EQ(page.status, 200) << page.raw_body;
    for (const auto& p : page.body["data"]) listed.insert(p.value("id", ""));
    cursor = page.body["next_cursor"].is_string() ? page.body["next_cursor"].get<std::string>() : "";
  } while (!cursor.empty());
  const auto acknowledged = load.acknowledged();
  for (const auto& id : acknowledged) EXPECT_EQ(listed.count(id), 1u) << id;
  EXPECT_EQ(listed.size(), acknowledged.size() + 3);

  // A key used before the moves still replays its first answer (the idempotency keys moved too).
  auto replay =
      client_->call(Method::post, "/v1/projects", Json{{"name", "load-0"}}, owner_a_, {{"Idempotency-Key", "load-0"}});
  EXPECT_EQ(replay.status, 201);
  EXPECT_EQ(replay.body.value("id", ""), acknowledged.front());
  // Sealed fields opened where they now live.
  auto mail = client_->call(Method::get, "/v1/email-settings", std::nullopt, owner_a_);
  ASSERT_EQ(mail.status, 200) << mail.raw_body;
  EXPECT_EQ(mail.body.value("from_name", ""), "alpha Support");
  // The neighbour never moved and nothing of it changed; the audit log tells the six moves and verifies.
  EXPECT_EQ(rows_at(bravo_, Isolation::shared), bravo_before);
  auto moved = platform().audit->list({.chain_id = alpha_.id, .action = "tenant.moved", .limit = 100});
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(moved->entries.size(), chain.size());
  expect_audit_clean();
}

// A move stopped after each step — as a crash there would leave it — finishes when run again, and while it is
// frozen, writes are refused with 503 and Retry-After and reads go on.
TEST_P(TenantMoveTest, AMoveStoppedAfterAnyStepFinishesWhenRunAgain) {
  struct Stop {
    std::string step;
    Isolation to;
    MoveState left;
  };
  // Each to or from the shared level, so each copies on both backends (SQLite's schema and database levels are one
  // file); the pairs among the other levels are in the test above.
  const std::vector<Stop> stops = {
      {"provision", Isolation::database, MoveState::copying}, {"copy", Isolation::shared, MoveState::copying},
      {"freeze", Isolation::schema, MoveState::frozen},       {"sync", Isolation::shared, MoveState::frozen},
      {"verify", Isolation::database, MoveState::frozen},     {"switch", Isolation::shared, MoveState::switched},
      {"remove", Isolation::schema, MoveState::switched},
  };
  const auto before = rows_at(alpha_, Isolation::shared);
  Isolation from = Isolation::shared;
  for (const auto& stop : stops) {
    SCOPED_TRACE("stopped after " + stop.step + ", " + std::string(tenancy::isolation_name(from)) + " -> " +
                 std::string(tenancy::isolation_name(stop.to)));
    {
      atrium::ScopedFailure failure("tenant_move.after_" + stop.step);
      auto stopped = app::move_tenant(platform(), alpha_.id, stop.to, k_quick);
      ASSERT_FALSE(stopped);
      EXPECT_NE(stopped.error().message.find("after " + stop.step), std::string::npos) << stopped.error().message;
    }
    const Tenant left = current(alpha_.id);
    EXPECT_EQ(left.move_state, stop.left);
    EXPECT_EQ(left.isolation, stop.left == MoveState::switched ? stop.to : from);
    if (stop.left == MoveState::frozen) {
      auto write = client_->call(Method::post, "/v1/projects", Json{{"name", "refused"}}, owner_a_);
      EXPECT_EQ(write.status, 503) << write.raw_body;
      EXPECT_TRUE(write.headers.get("Retry-After"));
      EXPECT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, owner_a_).status, 200);
    }
    // A move to another level is refused while this one is under way.
    auto other = app::move_tenant(platform(), alpha_.id,
                                  stop.to == Isolation::shared ? Isolation::database : Isolation::shared, k_quick);
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().code, Errc::conflict) << other.error().message;
    auto finished = app::move_tenant(platform(), alpha_.id, stop.to, k_quick);
    ASSERT_TRUE(finished) << finished.error().message;
    expect_moved(alpha_, from, stop.to);
    EXPECT_EQ(rows_at(alpha_, stop.to), before);
    auto again = app::move_tenant(platform(), alpha_.id, stop.to, k_quick);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_TRUE(again->already_there);
    from = stop.to;
  }
  auto write = client_->call(Method::post, "/v1/projects", Json{{"name", "after"}}, owner_a_);
  EXPECT_EQ(write.status, 201) << write.raw_body;
  expect_audit_clean();
}

// The fence holds whatever a process believes: a write through a view of the tenant taken before the freeze (as
// another instance's tenant cache would hold it) is refused once the old store is fenced, and the rows compare
// equal afterwards.
TEST_P(TenantMoveTest, AWriteThroughAStaleViewOfTheTenantIsRefusedByTheFence) {
  const Tenant stale = current(alpha_.id);
  Tenant old = stale;
  old.passes_fence = false;
  ASSERT_TRUE(platform().tenant_data->fence(stale));
  auto write = platform().tenant_data->transact(old, [](tenancy::TenantTransaction&) -> Result<void> { return {}; });
  ASSERT_FALSE(write);
  EXPECT_EQ(write.error().code, Errc::unavailable) << write.error().message;
  auto run = platform().tenant_data->run(old, {});
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, Errc::unavailable) << run.error().message;
  // Reads pass; another tenant's writes pass; the fence lifted, writes pass again.
  EXPECT_TRUE(platform().tenant_data->transact(old, [](tenancy::TenantTransaction&) -> Result<void> { return {}; },
                                               {.read_only = true}));
  EXPECT_TRUE(platform().tenant_data->transact(bravo_, [](tenancy::TenantTransaction&) -> Result<void> { return {}; }));
  ASSERT_TRUE(platform().tenant_data->fence(stale, false));
  EXPECT_TRUE(platform().tenant_data->transact(old, [](tenancy::TenantTransaction&) -> Result<void> { return {}; }));
}

// A move copies tenant_tables(): they must be every table of a tenant's own store but the store's bookkeeping (its
// migrations, the fences, and in a database or file of its own its one-row tenants table). PostgreSQL: a tenant's
// schema, read from the catalog; SQLite: a tenant's own file.
TEST_P(TenantMoveTest, TheTablesAMoveCopiesAreEveryTableOfATenantStore) {
  const bool pg = GetParam() == Backend::postgres;
  const Tenant own = create_test_tenant(platform(), "charlie", pg ? Isolation::schema : Isolation::database);
  storage::DatabaseOptions options;
  options.url = pg ? tp_->admin_url() : "sqlite:" + tp_->config().storage.data_dir + "/tenants/" + own.id + ".db";
  auto db = storage::open_database(options);
  ASSERT_TRUE(db) << db.error().message;
  const storage::Statement catalog =
      pg ? storage::Statement{"catalog_tables",
                              "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"}
         : storage::Statement{"catalog_tables", "SELECT name FROM sqlite_master WHERE type = 'table' AND $1 <> ''"};
  std::set<std::string> found;
  ASSERT_TRUE((*db)->transact([&](storage::Transaction& tx) -> Result<void> {
    auto rs = tx.execute(catalog, {storage::Value(tenancy::tenant_schema_name(own.id))});
    if (!rs) return std::unexpected(rs.error());
    for (std::size_t i = 0; i < rs->rows.size(); ++i) found.insert(rs->text_at(i, 0).value_or(""));
    return {};
  }));
  std::set<std::string> expected = {"tenant_schema_migrations", "tenant_fences"};
  if (!pg) expected.insert("tenants");
  for (const auto& t : tenancy::tenant_tables()) expected.insert(std::string(t.name));
  EXPECT_EQ(found, expected);
}

// A process holds a tenant's own pool open; once no transaction used it for the idle time, it is closed (so a
// move's removal of the old database is not held up by it), and the next transaction opens it again.
TEST_P(TenantMoveTest, OwnPoolsUnusedForTheIdleTimeAreClosed) {
  const Tenant own = create_test_tenant(platform(), "charlie", Isolation::database);
  auto data = platform().tenant_data;
  auto touch = [&] { return data->transact(own, [](tenancy::TenantTransaction&) -> Result<void> { return {}; }); };
  ASSERT_TRUE(touch());
  ASSERT_GE(data->own_pools().open, 1u);
  EXPECT_EQ(data->close_idle_pools(std::chrono::hours(1)), 0u);  // used just now
  EXPECT_GE(data->close_idle_pools(0ms), 1u);
  EXPECT_EQ(data->own_pools().open, 0u);
  ASSERT_TRUE(touch());
  EXPECT_EQ(data->own_pools().open, 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, TenantMoveTest, all_backends(), backend_name);

// SQLite: a tenant's file removed or replaced by another process (another instance's move away and back) is
// followed: a pool this process holds on the removed file is never used again, and a file that is not there is
// an error, never a new empty file.
TEST(TenantFiles, AnInstanceFollowsATenantFileAnotherProcessRemovedOrReplaced) {
  auto tp = TestPlatform::create(Backend::sqlite);
  ASSERT_TRUE(tp);
  app::Platform& platform = tp->platform();
  const Tenant own = create_test_tenant(platform, "alpha", Isolation::database);
  auto create = [&](tenancy::TenantData& data, const std::string& name) {
    return data.transact(own, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      auto p = projects::project_store::create(tx, SystemClock::instance(), name, "");
      if (!p) return std::unexpected(p.error());
      return {};
    });
  };
  auto names = [&]() -> std::vector<std::string> {
    auto page = projects::project_store::list(*platform.tenant_data, own, std::nullopt, 100);
    EXPECT_TRUE(page) << page.error().message;
    std::vector<std::string> out;
    for (const auto& p : page.value_or(projects::ProjectPage{}).projects) out.push_back(p.name);
    return out;
  };
  ASSERT_TRUE(create(*platform.tenant_data, "before"));
  ASSERT_EQ(names(), std::vector<std::string>{"before"});

  // "Another process": its own TenantData on the same files, which removes the tenant's file and makes a new one.
  storage::DatabaseOptions main;
  main.url = "sqlite:" + tp->config().storage.data_dir + "/atrium.db";
  auto db = storage::open_database(main);
  ASSERT_TRUE(db) << db.error().message;
  tenancy::TenantData other(**db, **db, {.data_dir = tp->config().storage.data_dir}, SystemClock::instance());
  ASSERT_TRUE(other.purge(own));
  const std::string path = tp->config().storage.data_dir + "/tenants/" + own.id + ".db";
  auto gone = platform.tenant_data->transact(own, [](tenancy::TenantTransaction&) -> Result<void> { return {}; },
                                             {.read_only = true});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::unavailable) << gone.error().message;
  EXPECT_FALSE(std::filesystem::exists(path));

  ASSERT_TRUE(other.provision(own));
  ASSERT_TRUE(create(other, "after"));
  EXPECT_EQ(names(), std::vector<std::string>{"after"});
  ASSERT_TRUE(create(*platform.tenant_data, "this instance"));
  auto page = projects::project_store::list(other, own, std::nullopt, 100);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->projects.size(), 2u);  // written where the other process sees it
}

}  // namespace
}  // namespace atrium::test
