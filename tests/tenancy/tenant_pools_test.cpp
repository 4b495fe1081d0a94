// The pools of tenants with their own database (PostgreSQL) or file (SQLite) stay within their caps: at most
// tenancy.max_open_tenant_pools open (the least recently used close first, and a closed one reopens on its next use
// with the tenant's data intact), holding at most tenancy.max_tenant_connections connections together — counted on
// PostgreSQL where they arrive (pg_stat_activity). Both backends.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::tenancy {
namespace {

using storage::Backend;

constexpr TenantStatement k_count_projects{"t_pools_count_projects",
                                           "SELECT COUNT(*) FROM projects WHERE tenant_id = $1"};

class TenantPoolsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !test::postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
  }

  void open(int max_pools, int max_connections, int tenants = 3) {
    Config config;
    // Generous: with one connection per tenant, a transaction the machine stalls holds up its tenant's other readers.
    config.storage.connect_timeout_ms = 30'000;
    config.tenancy.max_open_tenant_pools = max_pools;
    config.tenancy.max_tenant_connections = max_connections;
    config.tenancy.tenant_pool_size = 4;
    tp_ = test::TestPlatform::create(GetParam(), config);
    ASSERT_TRUE(tp_);
    for (const char* slug : {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}) {
      if (static_cast<int>(tenants_.size()) == tenants) break;
      tenants_.push_back(test::create_test_tenant(platform(), slug, Isolation::database));
    }
    data().close_idle_pools(std::chrono::milliseconds(0));  // what creating them opened
    ASSERT_EQ(data().own_pools().open, 0u);
  }

  app::Platform& platform() { return tp_->platform(); }
  TenantData& data() { return *platform().tenant_data; }

  // A read in the tenant's own store, optionally inside another one (a second connection of its pool).
  void read(const Tenant& t, const std::function<void()>& inside = {}) {
    auto r = data().transact(t,
                             [&](TenantTransaction& tx) -> Result<void> {
                               auto n = tx.execute(k_count_projects);
                               if (!n) return std::unexpected(n.error());
                               if (inside) inside();
                               return {};
                             },
                             {.read_only = true});
    ASSERT_TRUE(r) << r.error().message;
  }
  std::size_t connections() {
    const auto pools = data().own_pools();
    return pools.summed.in_use + pools.summed.idle;
  }

  // The connections to the tenants' own databases that are open now as PostgreSQL sees them; on SQLite the pools'
  // own counts (open files would overcount: SQLite keeps a closed connection's descriptor while another connection
  // to the same file holds a lock).
  std::size_t real_connections() {
    if (GetParam() == Backend::postgres) {
      if (!server_) {
        storage::DatabaseOptions o;
        o.url = tp_->admin_url();
        o.pool_size = 1;
        auto opened = storage::open_database(o);
        EXPECT_TRUE(opened) << opened.error().message;
        if (!opened) return 0;
        server_ = std::move(*opened);
      }
      std::string names;
      for (const auto& t : tenants_) names += (names.empty() ? "" : ",") + tenant_database_name(t.id);
      static constexpr storage::Statement k_count{
          "t_pools_backends", "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = ANY(string_to_array($1, ','))"};
      auto n = storage::transact_value<std::int64_t>(*server_, [&](storage::Transaction& tx) -> Result<std::int64_t> {
        auto r = tx.execute(k_count, {storage::Value(names)});
        if (!r) return std::unexpected(r.error());
        return r->int_at(0, 0).value_or(-1);
      });
      EXPECT_TRUE(n) << n.error().message;
      return n ? static_cast<std::size_t>(*n) : 0;
    }
    return connections();
  }

  // real_connections() once at most `n`, or after 5 s: a closed connection's backend leaves pg_stat_activity a
  // moment after the client closed it (so only a count above `n` is waited on).
  std::size_t real_connections_settled(std::size_t n) {
    std::size_t now = real_connections();
    for (int i = 0; i < 250 && now > n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      now = real_connections();
    }
    return now;
  }

  std::unique_ptr<test::TestPlatform> tp_;
  std::vector<Tenant> tenants_;
  std::unique_ptr<storage::Database> server_;  // PostgreSQL: the owner's connection for pg_stat_activity
};

TEST_P(TenantPoolsTest, AtMostMaxOpenTenantPoolsTheLeastRecentlyUsedClosingFirst) {
  ASSERT_NO_FATAL_FAILURE(open(2, 0));
  read(tenants_[0]);
  read(tenants_[1]);
  EXPECT_EQ(data().own_pools().open, 2u);
  read(tenants_[0]);  // alpha is the most recent now: bravo goes when charlie opens
  read(tenants_[2]);
  EXPECT_EQ(data().own_pools().open, 2u);
  EXPECT_EQ(connections(), 2u);
  // alpha's pool is still open: using it opens nothing; bravo's reopens and charlie's (now the oldest) closes.
  read(tenants_[0]);
  EXPECT_EQ(data().own_pools().open, 2u);
  read(tenants_[1]);
  EXPECT_EQ(data().own_pools().open, 2u);
}

TEST_P(TenantPoolsTest, ANewConnectionBeyondMaxTenantConnectionsTakesTheLeastRecentlyUsedIdleOne) {
  ASSERT_NO_FATAL_FAILURE(open(100, 3));
  // alpha's pool holds two connections (a transaction inside another), bravo's one: three in all.
  read(tenants_[0], [&] { read(tenants_[0]); });
  read(tenants_[1]);
  EXPECT_EQ(data().own_pools().open, 2u);
  EXPECT_EQ(connections(), 3u);
  EXPECT_EQ(real_connections_settled(3), 3u);
  // charlie's would be a fourth: one of alpha's (the least recently used pool) closes for it, the pools stay open.
  read(tenants_[2]);
  EXPECT_EQ(data().own_pools().open, 3u);
  EXPECT_EQ(connections(), 3u);
  EXPECT_EQ(real_connections_settled(3), 3u);
  // Each tenant works on the connection its pool kept.
  for (const auto& t : tenants_) read(t);
  EXPECT_EQ(real_connections_settled(3), 3u);
}

TEST_P(TenantPoolsTest, UnderConcurrentLoadThePoolsStayWithinMaxTenantConnections) {
  ASSERT_NO_FATAL_FAILURE(open(100, 3));
  // Six threads read random tenants, each transaction holding its connection a moment: every read succeeds, waiting
  // for a connection when the three places are taken, and afterwards the server holds three connections — without
  // the shared cap each of the three pools grows to its 4 and keeps them (12). (Not sampled during the load: summing
  // pools one by one, or counting backends that are still exiting, would count a connection that moved twice.)
  std::atomic<int> failed{0};
  std::mutex first_error_mutex;
  std::string first_error;
  std::vector<std::thread> readers;
  for (int r = 0; r < 6; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 pick(static_cast<unsigned>(r));
      for (int i = 0; i < 40; ++i) {
        const auto& t = tenants_[pick() % tenants_.size()];
        auto ok = data().transact(t,
                                  [&](TenantTransaction& tx) -> Result<void> {
                                    auto n = tx.execute(k_count_projects);
                                    if (!n) return std::unexpected(n.error());
                                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                    return {};
                                  },
                                  {.read_only = true});
        if (!ok && failed++ == 0) {
          std::lock_guard lock(first_error_mutex);
          first_error = ok.error().message;
        }
      }
    });
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(real_connections_settled(3), 3u);
  EXPECT_EQ(connections(), 3u);
}

TEST_P(TenantPoolsTest, ABackgroundPassGivesBackTheConnectionsItOpened) {
  ASSERT_NO_FATAL_FAILURE(open(100, 3, 6));
  read(tenants_[0]);
  read(tenants_[1]);
  ASSERT_EQ(real_connections_settled(2), 2u);
  // A pass over bravo (held) and charlie (not): charlie's connection closes after, bravo's and alpha's stay.
  int visited = 0;
  for (const auto& t : {tenants_[1], tenants_[2]}) {
    data().in_passing(t, [&] {
      read(t);
      ++visited;
    });
  }
  EXPECT_EQ(visited, 2);
  EXPECT_EQ(data().own_pools().open, 2u);
  EXPECT_EQ(real_connections_settled(2), 2u);
  // A pass over three more tenants with every place taken: it replaces one connection in use, not one per tenant.
  read(tenants_[2]);
  ASSERT_EQ(real_connections_settled(3), 3u);
  for (std::size_t i = 3; i < tenants_.size(); ++i) data().in_passing(tenants_[i], [&] { read(tenants_[i]); });
  EXPECT_EQ(data().own_pools().open, 3u);      // alpha's, bravo's and charlie's
  EXPECT_EQ(real_connections_settled(2), 2u);  // two of their three connections kept (all three would go otherwise)
}

TEST_P(TenantPoolsTest, ATransactionInFlightKeepsItsPoolUntilItEnds) {
  ASSERT_NO_FATAL_FAILURE(open(1, 0));
  // bravo opens while alpha's transaction runs: alpha's pool leaves the cache but serves its transaction to the end.
  read(tenants_[0], [&] {
    read(tenants_[1]);
    EXPECT_EQ(data().own_pools().open, 1u);
  });
  read(tenants_[0]);
  EXPECT_EQ(data().own_pools().open, 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, TenantPoolsTest, test::all_backends(), test::backend_name);

}  // namespace
}  // namespace atrium::tenancy
