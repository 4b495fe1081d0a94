// `atrium migrate` (Platform::migrate_all, also serve's start) visits only the tenants whose own schema, database or
// file is behind this build, as the control plane records it (tenants.schema_version), not every tenant.
#include <gtest/gtest.h>

#include <algorithm>

#include "storage/migrations.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::tenancy {
namespace {

using storage::Backend;

constexpr storage::Statement k_version{"test_tenant_schema_version",
                                       "SELECT schema_version FROM tenants WHERE id = $1"};
constexpr storage::Statement k_set_version{"test_tenant_schema_version_set",
                                           "UPDATE tenants SET schema_version = $2 WHERE id = $1"};

class TenantMigrationsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !test::postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = test::TestPlatform::create(GetParam());
    const auto migrations = storage::builtin_migrations(GetParam(), storage::MigrationSet::tenant);
    latest_ = migrations.back().version;
  }

  app::Platform& p() { return tp_->platform(); }

  std::int64_t version_of(const std::string& id) {
    auto v =
        storage::transact_value<std::int64_t>(p().admin_db(), [&](storage::Transaction& tx) -> Result<std::int64_t> {
          auto rs = tx.execute(k_version, {storage::Value(id)});
          if (!rs) return std::unexpected(rs.error());
          return rs->int_at(0, 0).value_or(-1);
        });
    EXPECT_TRUE(v) << v.error().message;
    return v.value_or(-1);
  }

  void set_version(const std::string& id, std::int64_t version) {
    auto r = p().admin_db().transact([&](storage::Transaction& tx) -> Result<void> {
      if (auto u = tx.execute(k_set_version, {storage::Value(id), storage::Value(version)}); !u) {
        return std::unexpected(u.error());
      }
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
  }

  // Runs migrate_all; returns the totals its progress reported (empty when it visited no tenant).
  std::vector<int> migrate_all() {
    std::vector<int> totals;
    auto r = p().migrate_all([&](int, int total) { totals.push_back(total); });
    EXPECT_TRUE(r) << r.error().message;
    return totals;
  }

  std::unique_ptr<test::TestPlatform> tp_;
  int latest_ = 0;
};

TEST_P(TenantMigrationsTest, ProvisioningRecordsTheVersionAndMigrateVisitsOnlyTenantsBehind) {
  const Tenant shared = test::create_test_tenant(p(), "mshared", Isolation::shared);
  const Tenant schema = test::create_test_tenant(p(), "mschema", Isolation::schema);
  const Tenant database = test::create_test_tenant(p(), "mdatabase", Isolation::database);
  ASSERT_FALSE(database.id.empty());
  EXPECT_EQ(version_of(schema.id), latest_);
  EXPECT_EQ(version_of(database.id), latest_);
  EXPECT_EQ(version_of(shared.id), 0) << "the shared level has no store of its own";

  // Everything current: no tenant's store is visited.
  EXPECT_EQ(migrate_all(), std::vector<int>{});
  auto behind = p().tenants->list_behind(latest_, std::nullopt, 10);
  ASSERT_TRUE(behind);
  EXPECT_TRUE(behind->tenants.empty());

  // One tenant recorded behind (as after an upgrade that brings tenant migrations): that one alone, once.
  set_version(database.id, latest_ - 1);
  behind = p().tenants->list_behind(latest_, std::nullopt, 10);
  ASSERT_TRUE(behind);
  ASSERT_EQ(behind->tenants.size(), 1u);
  EXPECT_EQ(behind->tenants[0].id, database.id);
  EXPECT_EQ(migrate_all(), std::vector<int>{1});
  EXPECT_EQ(version_of(database.id), latest_);
  EXPECT_EQ(migrate_all(), std::vector<int>{});
}

TEST_P(TenantMigrationsTest, DeletedTenantsAndTheSharedLevelAreNeverBehind) {
  const Tenant shared = test::create_test_tenant(p(), "nshared", Isolation::shared);
  const Tenant gone = test::create_test_tenant(p(), "ngone", Isolation::schema);
  ASSERT_FALSE(gone.id.empty());
  set_version(gone.id, 0);
  TenantPatch patch;
  patch.status = TenantStatus::deleted;
  ASSERT_TRUE(p().tenants->update(gone.id, patch, audit::Recorder{}));
  auto behind = p().tenants->list_behind(latest_, std::nullopt, 10);
  ASSERT_TRUE(behind);
  EXPECT_TRUE(behind->tenants.empty());
  EXPECT_EQ(version_of(shared.id), 0);
}

// Pages follow the cursor, as list() does.
TEST_P(TenantMigrationsTest, BehindIsPaged) {
  std::vector<std::string> ids;
  for (const char* slug : {"pa", "pb", "pc"}) {
    const Tenant t = test::create_test_tenant(p(), slug, Isolation::schema);
    ASSERT_FALSE(t.id.empty());
    set_version(t.id, 0);
    ids.push_back(t.id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> seen;
  std::optional<std::string> cursor;
  for (int pages = 0; pages < 5; ++pages) {
    auto page = p().tenants->list_behind(latest_, cursor, 2);
    ASSERT_TRUE(page);
    for (const auto& t : page->tenants) seen.push_back(t.id);
    if (!page->next_cursor) break;
    cursor = page->next_cursor;
  }
  EXPECT_EQ(seen, ids);
  EXPECT_FALSE(p().tenants->list_behind(latest_, std::optional<std::string>("not-a-cursor"), 2));
}

INSTANTIATE_TEST_SUITE_P(Backends, TenantMigrationsTest, test::all_backends(), test::backend_name);

}  // namespace
}  // namespace atrium::tenancy
