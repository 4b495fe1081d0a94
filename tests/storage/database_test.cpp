#include "storage/database.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

#include "storage/backend_param.hpp"

namespace atrium::storage {
namespace {

using test::BackendTest;

constexpr Statement k_create{"",
                             "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                             "score DOUBLE PRECISION, active BOOLEAN, note TEXT)"};
constexpr Statement k_insert{"items_insert",
                             "INSERT INTO items (id, name, score, active, note) VALUES ($1, $2, $3, $4, $5)"};
constexpr Statement k_by_id{"items_by_id", "SELECT id, name, score, active, note FROM items WHERE id = $1"};
constexpr Statement k_count{"items_count", "SELECT COUNT(*) FROM items"};
constexpr Statement k_reordered{"items_reordered", "SELECT name FROM items WHERE name = $2 AND id = $1"};
constexpr Statement k_bump{"items_bump", "UPDATE items SET score = score + 1 WHERE id = $1"};

class DatabaseTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(db().transact([](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_create); !r) return std::unexpected(r.error());
      return {};
    }));
  }

  Result<void> insert(std::int64_t id, std::string name) {
    return db().transact([&](Transaction& tx) -> Result<void> {
      auto r = tx.execute(k_insert, {Value(id), Value(name), Value(1.5), Value(true), Value()});
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }

  std::int64_t count() {
    auto n = transact_value<std::int64_t>(db(), [](Transaction& tx) -> Result<std::int64_t> {
      auto r = tx.execute(k_count);
      if (!r) return std::unexpected(r.error());
      return r->int_at(0, 0).value_or(-1);
    });
    return n.value_or(-1);
  }
};

TEST_P(DatabaseTest, RoundTripsEveryValueType) {
  ASSERT_TRUE(insert(7, "seven"));
  auto rows =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_by_id, {Value(std::int64_t{7})}); });
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->rows.size(), 1u);
  EXPECT_EQ(rows->int_at(0, 0), 7);
  EXPECT_EQ(rows->text_at(0, 1), "seven");
  EXPECT_EQ(std::get<double>(rows->rows[0][2]), 1.5);
  EXPECT_EQ(rows->bool_at(0, 3), true);
  EXPECT_TRUE(rows->is_null(0, 4));
  EXPECT_EQ(rows->columns, (std::vector<std::string>{"id", "name", "score", "active", "note"}));
}

TEST_P(DatabaseTest, ParametersBindByNumberNotPosition) {
  ASSERT_TRUE(insert(1, "one"));
  auto rows = transact_value<ResultSet>(db(), [](Transaction& tx) {
    return tx.execute(k_reordered, {Value(std::int64_t{1}), Value(std::string("one"))});
  });
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_EQ(rows->rows.size(), 1u);
}

TEST_P(DatabaseTest, InputIsNeverInterpretedAsSql) {
  const std::string hostile = "x'); DROP TABLE items; --";
  ASSERT_TRUE(insert(1, hostile));
  EXPECT_EQ(count(), 1);
  auto rows =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_by_id, {Value(std::int64_t{1})}); });
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->text_at(0, 1), hostile);
}

TEST_P(DatabaseTest, UniqueViolationIsTyped) {
  ASSERT_TRUE(insert(1, "dup"));
  auto r = insert(2, "dup");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unique_violation) << r.error().message;
  EXPECT_EQ(count(), 1);
}

TEST_P(DatabaseTest, ErrorInTheBodyRollsBackEverything) {
  auto r = db().transact([](Transaction& tx) -> Result<void> {
    if (auto a = tx.execute(k_insert, {Value(std::int64_t{1}), Value(std::string("a")), Value(), Value(), Value()});
        !a) {
      return std::unexpected(a.error());
    }
    return fail(Errc::conflict, "changed my mind");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::conflict);
  EXPECT_EQ(count(), 0);
}

// SQL is constant text, so SQL that does not parse, or names a table that is not there, is the server's bug
// (internal: an API answers 500 without the SQL, not a 400 that blames and shows it to the client); a bound value
// the statement refuses is the caller's (invalid_argument, TextParameterWithNul... below).
TEST_P(DatabaseTest, BadSqlIsInternalAndAWrongParameterCountFails) {
  for (const char* sql : {"SELEC nonsense", "SELECT * FROM no_such_table", "SELECT no_such_column FROM items"}) {
    auto bad = db().transact([&](Transaction& tx) -> Result<void> {
      auto r = tx.execute(Statement{"", sql});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    ASSERT_FALSE(bad) << sql;
    EXPECT_EQ(bad.error().code, Errc::internal) << sql << ": " << bad.error().message;
  }
  auto wrong = db().transact([](Transaction& tx) -> Result<void> {
    auto r = tx.execute(k_by_id, {Value(std::int64_t{1}), Value(std::int64_t{2})});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  EXPECT_FALSE(wrong);
  // The connection is still usable afterwards.
  EXPECT_TRUE(insert(3, "three"));
}

// libpq takes text parameters as C strings: "victim\0zz" used to arrive as "victim" on PostgreSQL (so the lookup
// found the victim while anything keyed by the full text saw another value), and SQLite stored the NUL. Both now
// refuse it before anything runs.
TEST_P(DatabaseTest, TextParameterWithNulIsInvalidArgumentOnEveryPath) {
  ASSERT_TRUE(insert(1, "victim"));
  const std::string nul_suffixed("victim\0zz", 9);
  constexpr Statement k_by_name{"items_by_name", "SELECT id FROM items WHERE name = $1"};
  constexpr Statement k_by_name_unprepared{"", "SELECT id FROM items WHERE name = $1"};
  for (const Statement* statement : {&k_by_name, &k_by_name_unprepared}) {
    SCOPED_TRACE(statement->name.empty() ? "unprepared" : "prepared");
    // As the transaction's first statement (PostgreSQL sends it with BEGIN in one pipeline) ...
    auto first = transact_value<ResultSet>(
        db(), [&](Transaction& tx) { return tx.execute(*statement, {Value(nul_suffixed)}); }, {.read_only = true});
    ASSERT_FALSE(first) << "looked up " << first->rows.size() << " row(s)";
    EXPECT_EQ(first.error().code, Errc::invalid_argument) << first.error().message;
    EXPECT_NE(first.error().message.find("parameter $1 contains a NUL byte"), std::string::npos)
        << first.error().message;
    // ... and later in it.
    auto later = transact_value<ResultSet>(db(), [&](Transaction& tx) -> Result<ResultSet> {
      if (auto r = tx.execute(k_count); !r) return std::unexpected(r.error());
      return tx.execute(*statement, {Value(nul_suffixed)});
    });
    ASSERT_FALSE(later);
    EXPECT_EQ(later.error().code, Errc::invalid_argument) << later.error().message;
  }
  // Without the NUL the same lookups work, on the same pooled connections.
  auto found = transact_value<ResultSet>(
      db(), [&](Transaction& tx) { return tx.execute(k_by_name, {Value(std::string("victim"))}); });
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->rows.size(), 1u);
}

TEST_P(DatabaseTest, WritingTextWithNulChangesNothing) {
  for (const std::string& text : {std::string("a\0b", 3), std::string("\0", 1), std::string("tail\0", 5)}) {
    // On its own, and after another write in the same transaction: the whole transaction fails and rolls back.
    auto alone = insert(2, text);
    ASSERT_FALSE(alone);
    EXPECT_EQ(alone.error().code, Errc::invalid_argument) << alone.error().message;
    auto after_a_write = db().transact([&](Transaction& tx) -> Result<void> {
      if (auto r = tx.execute(k_insert, {Value(std::int64_t{3}), Value(std::string("ok")), Value(), Value(), Value()});
          !r) {
        return std::unexpected(r.error());
      }
      // A NUL in a parameter other than the first, too.
      auto r =
          tx.execute(k_insert, {Value(std::int64_t{4}), Value(std::string("fine")), Value(), Value(), Value(text)});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    ASSERT_FALSE(after_a_write);
    EXPECT_EQ(after_a_write.error().code, Errc::invalid_argument) << after_a_write.error().message;
    EXPECT_NE(after_a_write.error().message.find("$5"), std::string::npos) << after_a_write.error().message;
    EXPECT_EQ(count(), 0);
  }
  EXPECT_TRUE(insert(5, "after"));  // the connections are still usable
  EXPECT_EQ(count(), 1);
}

// Database::run: statements known up front, one transaction (one round trip on PostgreSQL).
TEST_P(DatabaseTest, RunReturnsEachStatementsResultInOrderAndCommits) {
  const BoundStatement batch[] = {
      {k_insert, {Value(std::int64_t{1}), Value(std::string("one")), Value(1.5), Value(true), Value()}},
      {k_insert, {Value(std::int64_t{2}), Value(std::string("two")), Value(2.5), Value(false), Value()}},
      {k_bump, {Value(std::int64_t{1})}},  // sees the row the first statement wrote
      {k_by_id, {Value(std::int64_t{1})}},
      {k_count, {}}};
  for (int round = 0; round < 2; ++round) {  // the second time the named statements are already prepared
    SCOPED_TRACE(round);
    if (round == 1) {
      ASSERT_TRUE(db().transact([](Transaction& tx) -> Result<void> {
        if (auto r = tx.execute(Statement{"", "DELETE FROM items"}); !r) return std::unexpected(r.error());
        return {};
      }));
    }
    auto results = db().run(batch);
    ASSERT_TRUE(results) << results.error().message;
    ASSERT_EQ(results->size(), 5u);
    EXPECT_EQ((*results)[0].affected_rows, 1);
    EXPECT_EQ((*results)[2].affected_rows, 1);
    ASSERT_EQ((*results)[3].rows.size(), 1u);
    EXPECT_EQ(std::get<double>((*results)[3].rows[0][2]), 2.5);
    EXPECT_EQ((*results)[4].int_at(0, 0), 2);
    EXPECT_EQ(count(), 2);
  }
}

TEST_P(DatabaseTest, RunIsAllOrNothing) {
  ASSERT_TRUE(insert(9, "taken"));
  const BoundStatement batch[] = {
      {k_insert, {Value(std::int64_t{1}), Value(std::string("new")), Value(), Value(), Value()}},
      {k_bump, {Value(std::int64_t{9})}},
      {k_insert, {Value(std::int64_t{2}), Value(std::string("taken")), Value(), Value(), Value()}},  // unique
      {k_insert, {Value(std::int64_t{3}), Value(std::string("after")), Value(), Value(), Value()}}};
  auto results = db().run(batch);
  ASSERT_FALSE(results);
  EXPECT_EQ(results.error().code, Errc::unique_violation) << results.error().message;
  EXPECT_EQ(count(), 1) << "the statements before the failing one rolled back, the ones after never ran";
  auto nine =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_by_id, {Value(std::int64_t{9})}); });
  ASSERT_TRUE(nine);
  EXPECT_EQ(std::get<double>(nine->rows.at(0)[2]), 1.5) << "the bump rolled back";
  // A NUL in any parameter is refused before anything is sent; bad SQL is the server's bug.
  const BoundStatement nul[] = {
      {k_bump, {Value(std::int64_t{9})}},
      {k_insert, {Value(std::int64_t{4}), Value(std::string("a\0b", 3)), Value(), Value(), Value()}}};
  auto refused = db().run(nul);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::invalid_argument) << refused.error().message;
  const BoundStatement bad[] = {{k_bump, {Value(std::int64_t{9})}}, {Statement{"", "SELEC nonsense"}, {}}};
  auto broken = db().run(bad);
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Errc::internal) << broken.error().message;
  // The pooled connections are usable afterwards, and nothing of the failed batches stayed.
  const BoundStatement fine[] = {{k_bump, {Value(std::int64_t{9})}}, {k_by_id, {Value(std::int64_t{9})}}};
  auto after = db().run(fine);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(std::get<double>(after->back().rows.at(0)[2]), 2.5);
  EXPECT_EQ(count(), 1);
}

TEST_P(DatabaseTest, AffectedRowsAreReported) {
  ASSERT_TRUE(insert(1, "a"));
  auto r =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_bump, {Value(std::int64_t{1})}); });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->affected_rows, 1);
}

TEST_P(DatabaseTest, ConcurrentWritersAllCommit) {
  constexpr int threads = 4;
  constexpr int per_thread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        if (!insert(t * 1000 + i, "n" + std::to_string(t * 1000 + i))) ++failures;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count(), threads * per_thread);
}

// Many writers at once (on SQLite they share group commits): each one's outcome is its own. Failing bodies, and a
// body whose statement breaks a constraint, roll back alone; every other writer's row lands exactly once.
TEST_P(DatabaseTest, ConcurrentWritersFailAndSucceedIndependently) {
  constexpr int threads = 16;
  constexpr int per_thread = 40;
  ASSERT_TRUE(insert(999'999, "taken"));
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const std::int64_t id = t * 1000 + i;
        auto r = db().transact([&](Transaction& tx) -> Result<void> {
          auto ins = tx.execute(k_insert, {Value(id), Value("n" + std::to_string(id)), Value(), Value(), Value()});
          if (!ins) return std::unexpected(ins.error());
          if (i % 3 == 1) return fail(Errc::conflict, "the body gives up after writing");
          if (i % 3 == 2) {
            // A second row whose name is taken: the statement fails and the body reports it.
            auto dup = tx.execute(k_insert, {Value(id + 500), Value(std::string("taken")), Value(), Value(), Value()});
            if (!dup) return std::unexpected(dup.error());
          }
          return {};
        });
        const bool expect_ok = i % 3 == 0;
        if (static_cast<bool>(r) != expect_ok) ++wrong;
        if (!r && i % 3 == 1 && r.error().code != Errc::conflict) ++wrong;
        if (!r && i % 3 == 2 && r.error().code != Errc::unique_violation) ++wrong;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(count(), 1 + threads * ((per_thread + 2) / 3));
  auto kept =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_by_id, {Value(std::int64_t{1})}); });
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->empty()) << "a failed body's write survived";
}

TEST_P(DatabaseTest, SerializationFailuresAreRetriedUntilTheUpdateLands) {
  ASSERT_TRUE(insert(1, "counter"));
  auto other = test_database().open_again(4);
  constexpr int threads = 4;
  constexpr int per_thread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      Database& target = t % 2 == 0 ? db() : *other;
      for (int i = 0; i < per_thread; ++i) {
        auto r = target.transact(
            [](Transaction& tx) -> Result<void> {
              auto read = tx.execute(k_by_id, {Value(std::int64_t{1})});
              if (!read) return std::unexpected(read.error());
              auto w = tx.execute(k_bump, {Value(std::int64_t{1})});
              if (!w) return std::unexpected(w.error());
              return {};
            },
            TransactionOptions{.isolation = Isolation::serializable, .max_attempts = 50});
        if (!r) ++failures;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  auto rows =
      transact_value<ResultSet>(db(), [](Transaction& tx) { return tx.execute(k_by_id, {Value(std::int64_t{1})}); });
  ASSERT_TRUE(rows);
  EXPECT_EQ(std::get<double>(rows->rows[0][2]), 1.5 + threads * per_thread);
}

TEST_P(DatabaseTest, PingAnswers) { EXPECT_TRUE(db().ping()); }

// The pool's occupancy (atrium_db_pool_* in /metrics): a held connection is in use, a caller that finds none free is
// counted as waiting until it gets one, and a returned connection stays idle.
TEST_P(DatabaseTest, PoolStatsCountConnectionsInUseIdleAndWaiting) {
  auto pool = test_database().open_again(1);
  ASSERT_TRUE(pool);
  TransactionOptions read;
  read.read_only = true;  // SQLite: writes are group-committed, reads take a pooled connection each
  std::promise<void> entered;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::thread holder([&] {
    EXPECT_TRUE(pool->transact(
        [&](Transaction&) -> Result<void> {
          entered.set_value();
          released.wait();
          return {};
        },
        read));
  });
  entered.get_future().wait();
  PoolStats held = pool->pool_stats();
  EXPECT_EQ(held.in_use, 1u);
  EXPECT_EQ(held.idle, 0u);
  EXPECT_EQ(held.max, 1u);
  EXPECT_EQ(held.waiting, 0u);

  std::thread waiter([&] { EXPECT_TRUE(pool->transact([](Transaction&) -> Result<void> { return {}; }, read)); });
  bool saw_waiting = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);  // inside the acquire timeout
  while (!saw_waiting && std::chrono::steady_clock::now() < deadline) {
    saw_waiting = pool->pool_stats().waiting == 1;
    if (!saw_waiting) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(saw_waiting);
  release.set_value();
  holder.join();
  waiter.join();
  PoolStats after = pool->pool_stats();
  EXPECT_EQ(after.in_use, 0u);
  EXPECT_EQ(after.idle, 1u);
  EXPECT_EQ(after.waiting, 0u);

  PoolStats sum = held;
  sum += after;
  EXPECT_EQ(sum.in_use, 1u);
  EXPECT_EQ(sum.idle, 1u);
  EXPECT_EQ(sum.max, 2u);
}

ATRIUM_INSTANTIATE_BACKENDS(DatabaseTest);

TEST(PostgresDatabase, StatementTimeoutIsTyped) {
  auto url = test::postgres_url();
  if (!url) GTEST_SKIP() << "PostgreSQL not configured";
  DatabaseOptions o;
  o.url = *url;
  o.pool_size = 1;
  o.statement_timeout = std::chrono::milliseconds(50);
  auto db = open_database(o);
  ASSERT_TRUE(db) << db.error().message;
  auto r = (*db)->transact([](Transaction& tx) -> Result<void> {
    auto s = tx.execute(Statement{"", "SELECT pg_sleep(2)"});
    if (!s) return std::unexpected(s.error());
    return {};
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout) << r.error().message;
  EXPECT_TRUE((*db)->ping());
}

TEST(PostgresDatabase, KilledConnectionsAreReplaced) {
  auto url = test::postgres_url();
  if (!url) GTEST_SKIP() << "PostgreSQL not configured";
  auto t = test::TestDatabase::create(Backend::postgres, 2);
  ASSERT_TRUE(t->db().ping());
  // Terminate every backend of this database, as a server restart would.
  std::string error;
  const std::string name = t->url().substr(t->url().rfind('/') + 1);
  ASSERT_TRUE(test::pg_admin(
      *url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'", &error))
      << error;
  EXPECT_TRUE(t->db().ping());
}

// A pooled connection the server closed (a restart, pg_terminate_backend) is replaced before run() sends anything,
// as transact replaces it at its first statement.
TEST(PostgresDatabase, RunReplacesConnectionsTheServerClosed) {
  auto url = test::postgres_url();
  if (!url) GTEST_SKIP() << "PostgreSQL not configured";
  auto t = test::TestDatabase::create(Backend::postgres, 2);
  const BoundStatement one[] = {{k_count, {}}};
  ASSERT_TRUE(t->db().transact([](Transaction& tx) -> Result<void> {
    if (auto r = tx.execute(k_create); !r) return std::unexpected(r.error());
    return {};
  }));
  ASSERT_TRUE(t->db().run(one));
  const std::string name = t->url().substr(t->url().rfind('/') + 1);
  std::string error;
  ASSERT_TRUE(test::pg_admin(
      *url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'", &error))
      << error;
  // Until the backends are gone, run() could still reach the old connection and prove nothing.
  auto admin = open_database({.url = *url, .pool_size = 1});
  ASSERT_TRUE(admin) << admin.error().message;
  const Statement k_backends{"", "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"};
  ASSERT_TRUE(test::eventually([&] {
    auto n = transact_value<ResultSet>(**admin, [&](Transaction& tx) { return tx.execute(k_backends, {Value(name)}); });
    return n && n->int_at(0, 0) == 0;
  }));
  for (int i = 0; i < 3; ++i) {
    auto r = t->db().run(one);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->front().int_at(0, 0), 0);
  }
}

TEST(PostgresDatabase, UnreachableServerIsUnavailable) {
  DatabaseOptions o;
  o.url = "postgresql://nobody@127.0.0.1:1/none";
  o.connect_timeout = std::chrono::milliseconds(1000);
  auto db = open_database(o);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, Errc::unavailable);
}

TEST(SqliteDatabase, AWriteTransactionInsideAnotherOnTheSameDatabaseIsRefused) {
  auto t = test::TestDatabase::create(Backend::sqlite);
  auto outer = t->db().transact([&](Transaction&) -> Result<void> {
    auto inner = t->db().transact([](Transaction&) -> Result<void> { return {}; });
    EXPECT_FALSE(inner);
    EXPECT_EQ(inner.error().code, Errc::internal);
    return {};
  });
  EXPECT_TRUE(outer);
  // Reading inside a write transaction is fine (another connection).
  auto reads = t->db().transact([&](Transaction&) -> Result<void> { return t->db().ping(); });
  EXPECT_TRUE(reads);
}

TEST_P(DatabaseTest, ABodyThatThrowsFailsAloneAndWritesGoOn) {
  std::vector<std::thread> workers;
  std::atomic<int> ok{0};
  std::atomic<int> threw{0};
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::int64_t id = t * 100 + i;
        // A throwing body is that transaction's internal error: rolled back, its connection back in the pool.
        auto r = db().transact([&](Transaction& tx) -> Result<void> {
          auto ins = tx.execute(k_insert, {Value(id), Value("t" + std::to_string(id)), Value(), Value(), Value()});
          if (!ins) return std::unexpected(ins.error());
          if (i % 5 == 0) throw std::runtime_error("boom");
          return {};
        });
        if (r) ++ok;
        if (!r && i % 5 == 0 && r.error().code == Errc::internal) ++threw;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(ok.load(), 8 * 16);
  EXPECT_EQ(threw.load(), 8 * 4);
  EXPECT_EQ(count(), 8 * 16);
  EXPECT_TRUE(insert(99'999, "after"));
}

TEST(SqliteDatabase, UsesWalAndForeignKeys) {
  auto t = test::TestDatabase::create(Backend::sqlite);
  auto r = transact_value<ResultSet>(t->db(), [](Transaction& tx) -> Result<ResultSet> {
    auto mode = tx.execute(Statement{"", "PRAGMA journal_mode"});
    if (!mode) return mode;
    auto fk = tx.execute(Statement{"", "PRAGMA foreign_keys"});
    if (!fk) return fk;
    mode->rows.push_back(fk->rows.at(0));
    return mode;
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text_at(0, 0), "wal");
  EXPECT_EQ(r->int_at(1, 0), 1);
}

}  // namespace
}  // namespace atrium::storage
