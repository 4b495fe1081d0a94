// The pools of tenants with their own database (PostgreSQL) or file (SQLite) stay within their caps: at most
// tenancy.max_open_tenant_pools open, holding at most tenancy.max_tenant_connections together; the least recently
// used close first, and a closed one reopens on its next use with the tenant's data intact. Both backends.
#include <gtest/gtest.h>

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

  void open(int max_pools, int max_connections) {
    Config config;
    config.tenancy.max_open_tenant_pools = max_pools;
    config.tenancy.max_tenant_connections = max_connections;
    config.tenancy.tenant_pool_size = 4;
    tp_ = test::TestPlatform::create(GetParam(), config);
    ASSERT_TRUE(tp_);
    for (const char* slug : {"alpha", "bravo", "charlie"}) {
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

  std::unique_ptr<test::TestPlatform> tp_;
  std::vector<Tenant> tenants_;
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

TEST_P(TenantPoolsTest, TheConnectionsOfAllPoolsStayWithinMaxTenantConnections) {
  ASSERT_NO_FATAL_FAILURE(open(100, 3));
  // alpha's pool holds two connections (a transaction inside another), bravo's one: three in all.
  read(tenants_[0], [&] { read(tenants_[0]); });
  read(tenants_[1]);
  EXPECT_EQ(data().own_pools().open, 2u);
  EXPECT_EQ(connections(), 3u);
  // charlie's would be a fourth: alpha's pool (the least recently used, with two) closes; bravo's stays.
  read(tenants_[2]);
  EXPECT_EQ(data().own_pools().open, 2u);
  EXPECT_EQ(connections(), 2u);
  // Within the cap nothing closes: alpha reopens with one connection beside bravo's and charlie's.
  read(tenants_[0]);
  EXPECT_EQ(data().own_pools().open, 3u);
  EXPECT_EQ(connections(), 3u);
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
