// The project store (src/projects/project_store.cpp) inside tenant-scoped transactions, below the API: input
// checks, creation-order pages with a cursor, patches, removal, the quota count, and that another tenant's
// transaction sees none of it. Every isolation level, both backends.
#include "projects/project_store.hpp"

#include <gtest/gtest.h>

#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::projects {
namespace {

using tenancy::TenantTransaction;

class ProjectStoreTest : public test::TwoTenantTest {
 protected:
  // Runs `body` in `tenant`'s transaction and returns what it produced.
  template <class T>
  Result<T> in(const tenancy::Tenant& tenant, const std::function<Result<T>(TenantTransaction&)>& body) {
    std::optional<Result<T>> out;
    auto r = tp_->platform().tenant_data->transact(tenant, [&](TenantTransaction& tx) -> Result<void> {
      out = body(tx);
      if (!*out) return std::unexpected(out->error());
      return {};
    });
    if (!r) return std::unexpected(r.error());
    return std::move(*out);
  }

  Result<ProjectPage> list(const tenancy::Tenant& tenant, const std::optional<std::string>& after, int limit) {
    return project_store::list(*tp_->platform().tenant_data, tenant, after, limit);
  }

  Project create(const tenancy::Tenant& tenant, const std::string& name) {
    auto p = in<Project>(tenant, [&](TenantTransaction& tx) { return project_store::create(tx, clock_, name, ""); });
    EXPECT_TRUE(p) << p.error().message;
    return p.value_or(Project{});
  }
};

TEST_P(ProjectStoreTest, NamesAndDescriptionsAreCheckedBeforeAnythingIsWritten) {
  for (const std::string& name : {std::string(), std::string(201, 'n')}) {
    auto p = in<Project>(a_, [&](TenantTransaction& tx) { return project_store::create(tx, clock_, name, ""); });
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, Errc::invalid_argument) << name.size();
  }
  auto long_description = in<Project>(
      a_, [&](TenantTransaction& tx) { return project_store::create(tx, clock_, "ok", std::string(2001, 'd')); });
  ASSERT_FALSE(long_description);
  EXPECT_EQ(long_description.error().code, Errc::invalid_argument);
  auto n = in<std::int64_t>(a_, [](TenantTransaction& tx) { return project_store::count(tx); });
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0);
}

TEST_P(ProjectStoreTest, PagesFollowCreationOrderAndTheLastPageHasNoCursor) {
  std::vector<std::string> ids;
  for (const char* name : {"one", "two", "three"}) {
    ids.push_back(create(a_, name).id);
    clock_.advance(std::chrono::milliseconds(5));
  }
  auto first = list(a_, std::nullopt, 2);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->projects.size(), 2u);
  EXPECT_EQ(first->projects[0].id, ids[0]);
  EXPECT_EQ(first->projects[1].id, ids[1]);
  ASSERT_TRUE(first->next_cursor);
  auto second = list(a_, first->next_cursor, 2);
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(second->projects.size(), 1u);
  EXPECT_EQ(second->projects[0].id, ids[2]);
  EXPECT_EQ(second->projects[0].name, "three");
  EXPECT_FALSE(second->next_cursor);
  auto bad = list(a_, "not-a-cursor", 2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST_P(ProjectStoreTest, APatchChangesWhatItNamesAndRemovalIsFinal) {
  const Project p = create(a_, "before");
  clock_.advance(std::chrono::seconds(61));
  auto updated = in<Project>(a_, [&](TenantTransaction& tx) {
    return project_store::update(tx, clock_, p.id, ProjectPatch{.name = std::nullopt, .description = "now described"});
  });
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->name, "before");
  EXPECT_EQ(updated->description, "now described");
  EXPECT_EQ(updated->created_at, p.created_at);
  EXPECT_NE(updated->updated_at, p.updated_at);

  ASSERT_TRUE(in<bool>(a_, [&](TenantTransaction& tx) -> Result<bool> {
    if (auto r = project_store::remove(tx, p.id); !r) return std::unexpected(r.error());
    return true;
  }));
  auto gone = in<Project>(a_, [&](TenantTransaction& tx) { return project_store::get(tx, p.id); });
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::not_found);
  auto again = in<bool>(a_, [&](TenantTransaction& tx) -> Result<bool> {
    if (auto r = project_store::remove(tx, p.id); !r) return std::unexpected(r.error());
    return true;
  });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::not_found);
}

TEST_P(ProjectStoreTest, AnotherTenantsTransactionSeesNothingOfIt) {
  const Project p = create(a_, "alpha's");
  create(b_, "bravo's");
  auto get = in<Project>(b_, [&](TenantTransaction& tx) { return project_store::get(tx, p.id); });
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().code, Errc::not_found);
  auto update = in<Project>(b_, [&](TenantTransaction& tx) {
    return project_store::update(tx, clock_, p.id, ProjectPatch{.name = "taken", .description = std::nullopt});
  });
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code, Errc::not_found);
  auto remove = in<bool>(b_, [&](TenantTransaction& tx) -> Result<bool> {
    if (auto r = project_store::remove(tx, p.id); !r) return std::unexpected(r.error());
    return true;
  });
  ASSERT_FALSE(remove);
  EXPECT_EQ(remove.error().code, Errc::not_found);
  auto listed = list(b_, std::nullopt, 50);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->projects.size(), 1u);
  EXPECT_EQ(listed->projects[0].name, "bravo's");
  // Alpha's project is untouched.
  auto still = in<Project>(a_, [&](TenantTransaction& tx) { return project_store::get(tx, p.id); });
  ASSERT_TRUE(still);
  EXPECT_EQ(still->name, "alpha's");
  auto counts = in<std::int64_t>(a_, [](TenantTransaction& tx) { return project_store::count(tx); });
  ASSERT_TRUE(counts);
  EXPECT_EQ(*counts, 1);
}

INSTANTIATE_TEST_SUITE_P(Isolation, ProjectStoreTest, test::all_isolation_cases(), test::isolation_case_name);

}  // namespace
}  // namespace atrium::projects
