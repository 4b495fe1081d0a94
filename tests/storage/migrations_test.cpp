#include "storage/migrations.hpp"

#include "storage/backend_param.hpp"

namespace atrium::storage {
namespace {

const ManualClock k_clock(std::chrono::system_clock::time_point(std::chrono::hours(24 * 20000)));

constexpr Migration k_good[] = {
    {1, "one", "CREATE TABLE m_one (id INTEGER PRIMARY KEY)"},
    {2, "two", "CREATE TABLE m_two (id INTEGER PRIMARY KEY); INSERT INTO m_two (id) VALUES (1)"},
};
constexpr Migration k_then_broken[] = {
    {1, "one", "CREATE TABLE m_one (id INTEGER PRIMARY KEY)"},
    {2, "two", "CREATE TABLE m_two (id INTEGER PRIMARY KEY); INSERT INTO m_two (id) VALUES (1)"},
    {3, "broken", "CREATE TABLE m_three (id INTEGER PRIMARY KEY); INSERT INTO no_such_table VALUES (1)"},
};
constexpr Migration k_edited[] = {
    {1, "one", "CREATE TABLE m_one (id INTEGER PRIMARY KEY, extra TEXT)"},
};

class MigrationsTest : public test::BackendTest {};

bool table_exists(Database& db, const std::string& name) {
  const Statement q = db.backend() == Backend::sqlite
                          ? Statement{"t_exists_sqlite", "SELECT COUNT(*) FROM sqlite_master WHERE name = $1"}
                          : Statement{"t_exists_pg", "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = $1"};
  auto r = transact_value<std::int64_t>(db, [&](Transaction& tx) -> Result<std::int64_t> {
    auto rows = tx.execute(q, {Value(name)});
    if (!rows) return std::unexpected(rows.error());
    return rows->int_at(0, 0).value_or(0);
  });
  return r.value_or(0) > 0;
}

TEST_P(MigrationsTest, FreshDatabaseIsAtVersionZero) {
  auto s = migration_status(db(), k_good);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->current, 0);
  EXPECT_EQ(s->latest, 2);
  EXPECT_FALSE(s->up_to_date());
}

TEST_P(MigrationsTest, AppliesInOrderOnceAndReportsEach) {
  std::vector<int> seen;
  auto n = migrate(db(), k_good, k_clock, [&](const Migration& m) { seen.push_back(m.version); });
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_TRUE(table_exists(db(), "m_two"));
  auto again = migrate(db(), k_good, k_clock);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
  EXPECT_TRUE(migration_status(db(), k_good)->up_to_date());
}

TEST_P(MigrationsTest, FailingMigrationRollsBackAndStops) {
  auto n = migrate(db(), k_then_broken, k_clock);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("migration 3"), std::string::npos) << n.error().message;
  EXPECT_FALSE(table_exists(db(), "m_three"));  // the part of 3 that ran was rolled back
  EXPECT_TRUE(table_exists(db(), "m_two"));     // 1 and 2 stay applied
  auto s = migration_status(db(), k_then_broken);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->current, 2);
}

TEST_P(MigrationsTest, EditedMigrationIsRefused) {
  ASSERT_TRUE(migrate(db(), k_good, k_clock));
  auto n = migrate(db(), k_edited, k_clock);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::conflict);
}

TEST_P(MigrationsTest, ConcurrentRunnersApplyEachMigrationOnce) {
  auto other = test_database().open_again();
  Result<int> a = 0;
  Result<int> b = 0;
  std::thread t1([&] { a = migrate(db(), k_good, k_clock); });
  std::thread t2([&] { b = migrate(*other, k_good, k_clock); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(*a + *b, 2);
}

TEST_P(MigrationsTest, BuiltinMigrationsApplyCleanly) {
  auto builtin = builtin_migrations(db().backend());
  ASSERT_FALSE(builtin.empty());
  for (std::size_t i = 0; i < builtin.size(); ++i) EXPECT_EQ(builtin[i].version, static_cast<int>(i + 1));
  ASSERT_TRUE(migrate(db(), builtin, k_clock));
  EXPECT_TRUE(migration_status(db(), builtin)->up_to_date());
}

ATRIUM_INSTANTIATE_BACKENDS(MigrationsTest);

}  // namespace
}  // namespace atrium::storage
