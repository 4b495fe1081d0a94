// Pools sharing a storage::ConnectionBudget never hold more connections together than it has places: a pool that
// needs one takes a free place, or closes the idle connection of the pool used least recently (only a surplus one
// when it has connections of its own); otherwise it waits, and times out clearly. Closing a pool gives its places
// back. Both backends.
#include "storage/connection_budget.hpp"

#include <thread>

#include "storage/backend_param.hpp"

namespace atrium::storage {
namespace {

using test::BackendTest;

constexpr Statement k_one{"budget_one", "SELECT 1"};

class ConnectionBudgetTest : public BackendTest {
 protected:
  // A pool of the test's database in `budget`; it waits up to about `wait` for a connection.
  std::unique_ptr<Database> pool(const std::shared_ptr<ConnectionBudget>& budget,
                                 std::chrono::milliseconds wait = std::chrono::milliseconds(300)) {
    DatabaseOptions o;
    o.url = test_database().url();
    o.pool_size = 4;
    o.busy_timeout = wait / 3;  // SQLite waits for busy_timeout + connect_timeout
    o.connect_timeout = wait - o.busy_timeout;
    o.connection_budget = budget;
    auto opened = open_database(o);
    EXPECT_TRUE(opened) << opened.error().message;
    return opened ? std::move(*opened) : nullptr;
  }

  // A transaction on `db` that runs `inside` while it holds its connection.
  static Result<void> hold(Database& db, const std::function<void()>& inside = {}) {
    return db.transact(
        [&](Transaction& tx) -> Result<void> {
          if (auto r = tx.execute(k_one); !r) return std::unexpected(r.error());
          if (inside) inside();
          return {};
        },
        {.read_only = true});
  }

  static std::size_t held(Database& db) {
    const auto s = db.pool_stats();
    return s.in_use + s.idle;
  }
};

TEST_P(ConnectionBudgetTest, ANewConnectionTakesTheIdleOneOfTheLeastRecentlyUsedPool) {
  auto budget = std::make_shared<ConnectionBudget>(3);
  auto a = pool(budget);
  auto b = pool(budget);
  ASSERT_TRUE(a && b);
  // a holds two connections (a transaction inside another), b one: every place is taken.
  ASSERT_TRUE(hold(*a, [&] { ASSERT_TRUE(hold(*a)); }));
  ASSERT_TRUE(hold(*b));
  EXPECT_EQ(budget->taken(), 3u);
  EXPECT_EQ(held(*a), 2u);
  // A third pool's connection is one of a's (used before b's), which keeps the other.
  auto c = pool(budget);
  ASSERT_TRUE(c);
  EXPECT_EQ(budget->taken(), 3u);
  EXPECT_EQ(held(*a), 1u);
  EXPECT_EQ(held(*b), 1u);
  EXPECT_EQ(held(*c), 1u);
  // Each pool works on the connection it has: nothing more opens, nothing closes.
  for (auto* db : {a.get(), b.get(), c.get()}) ASSERT_TRUE(hold(*db));
  EXPECT_EQ(held(*a) + held(*b) + held(*c), 3u);
  // Closing a pool gives its places back.
  b.reset();
  EXPECT_EQ(budget->taken(), 2u);
}

TEST_P(ConnectionBudgetTest, WithEveryConnectionInUseANewOneWaitsThenTimesOut) {
  auto budget = std::make_shared<ConnectionBudget>(2);
  auto a = pool(budget);
  auto b = pool(budget);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(hold(*a, [&] {
    // Both places in use (a's and b's): a second connection of a finds nothing to take.
    ASSERT_TRUE(hold(*b, [&] {
      auto r = hold(*a);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, Errc::timeout) << r.error().message;
      EXPECT_NE(r.error().message.find("hold every place it has"), std::string::npos);
    }));
    // b's connection is idle now, but it is b's only one, and a has its own to wait for: a does not close it.
    auto r = hold(*a);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::timeout);
    EXPECT_EQ(held(*b), 1u);
  }));
  // A pool without any connection does take another's last idle one.
  auto c = pool(budget);
  ASSERT_TRUE(c);
  EXPECT_EQ(budget->taken(), 2u);
  EXPECT_EQ(held(*a) + held(*b), 1u);
  EXPECT_EQ(held(*c), 1u);
}

TEST_P(ConnectionBudgetTest, ABusyPoolGrowsIntoAnotherPoolsSurplusOnceItIdledButLeavesItOneConnection) {
  auto budget = std::make_shared<ConnectionBudget>(3);
  auto a = pool(budget);
  auto b = pool(budget);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(hold(*a, [&] { ASSERT_TRUE(hold(*a)); }));  // a: two idle, b: one idle
  ASSERT_TRUE(hold(*b, [&] {
    // a's second connection has been idle a moment only (its burst may go on): b waits for its own instead.
    auto r = hold(*b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::timeout);
  }));
  EXPECT_EQ(held(*a), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the second that makes it surplus
  ASSERT_TRUE(hold(*b, [&] {
    // Now b's second connection is one of a's two.
    ASSERT_TRUE(hold(*b, [&] {
      EXPECT_EQ(held(*a), 1u);
      // A third: a's last connection stays; b waits for its own, in vain here.
      auto r = hold(*b);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, Errc::timeout);
    }));
  }));
  EXPECT_EQ(held(*a), 1u);
  EXPECT_EQ(held(*b), 2u);
  EXPECT_EQ(budget->taken(), 3u);
}

TEST_P(ConnectionBudgetTest, AWaitingPoolGetsThePlaceAnotherFrees) {
  auto budget = std::make_shared<ConnectionBudget>(1);
  auto a = pool(budget, std::chrono::seconds(10));
  auto b = pool(budget, std::chrono::seconds(10));  // its first connection took the place of a's idle one
  ASSERT_TRUE(a && b);
  EXPECT_EQ(held(*a), 0u);
  Result<void> in_a = fail(Errc::internal, "not run");
  std::thread waiter;
  ASSERT_TRUE(hold(*b, [&] {
    waiter = std::thread([&] { in_a = hold(*a); });
    // b ends its transaction only once a waits for a connection.
    for (int i = 0; i < 1000 && a->pool_stats().waiting == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(a->pool_stats().waiting, 1u);
  }));
  waiter.join();
  ASSERT_TRUE(in_a) << in_a.error().message;
  EXPECT_EQ(held(*a), 1u);
  EXPECT_EQ(held(*b), 0u);
  EXPECT_EQ(budget->taken(), 1u);
}

ATRIUM_INSTANTIATE_BACKENDS(ConnectionBudgetTest);

}  // namespace
}  // namespace atrium::storage
