// The tenant resolution cache (src/tenancy/tenant_directory.cpp) keeps ids and slugs apart: a cached tenant
// whose slug has an id's form never answers for that id, and invalidation drops a tenant under both keys.
#include "tenancy/tenant_directory.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::tenancy {
namespace {

using storage::Backend;

class TenantDirectoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam() == Backend::postgres && !test::postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    tp_ = test::TestPlatform::create(GetParam());
    a_ = test::create_test_tenant(tp_->platform(), "alpha", Isolation::shared);
    x_ = test::create_test_tenant(tp_->platform(), "xray", Isolation::shared);
    ASSERT_FALSE(a_.id.empty());
    ASSERT_FALSE(x_.id.empty());
  }

  // Writes straight to the tenants row, behind the directory's back.
  void set(const std::string& id, std::string_view column_sql, const std::string& value) {
    auto r = tp_->platform().db().transact([&](storage::Transaction& tx) -> Result<void> {
      auto updated = tx.execute(storage::Statement{"", column_sql}, {storage::Value(value), storage::Value(id)});
      if (!updated) return std::unexpected(updated.error());
      return {};
    });
    ASSERT_TRUE(r) << r.error().message;
  }
  void set_slug(const std::string& id, const std::string& slug) {
    set(id, "UPDATE tenants SET slug = $1 WHERE id = $2", slug);
  }
  void set_name(const std::string& id, const std::string& name) {
    set(id, "UPDATE tenants SET name = $1 WHERE id = $2", name);
  }

  TenantStore& store() { return *tp_->platform().tenants; }

  std::unique_ptr<test::TestPlatform> tp_;
  ManualClock clock_{std::chrono::system_clock::now()};
  Tenant a_;
  Tenant x_;
};

std::string name_of(const Result<std::shared_ptr<const Tenant>>& r) { return r ? (*r)->name : "error"; }

TEST_P(TenantDirectoryTest, AnIdShapedSlugNeverAnswersForTheId) {
  TenantDirectory directory(store(), clock_, std::chrono::hours(1));
  ASSERT_EQ(name_of(directory.resolve_id(a_.id)), "alpha");
  set_slug(x_.id, a_.id);  // a row from before id-shaped slugs were refused
  auto x = directory.resolve_id(x_.id);
  ASSERT_TRUE(x);
  EXPECT_EQ((*x)->slug, a_.id);
  // A's id still names A, from the cache and freshly.
  EXPECT_EQ(name_of(directory.resolve_id(a_.id)), "alpha");
  EXPECT_EQ(name_of(directory.resolve(parse_tenant_ref(a_.id))), "alpha");
  TenantDirectory fresh(store(), clock_, std::chrono::hours(1));
  EXPECT_EQ(name_of(fresh.resolve_id(x_.id)), "xray");
  EXPECT_EQ(name_of(fresh.resolve_id(a_.id)), "alpha");
  // Asked as a slug, A's id finds nothing, even spelled out by hand past parse_tenant_ref.
  for (TenantDirectory* d : {&directory, &fresh}) {
    auto by_slug = d->resolve({.kind = RefKind::slug, .value = a_.id});
    ASSERT_FALSE(by_slug);
    EXPECT_EQ(by_slug.error().code, Errc::not_found);
    EXPECT_EQ(d->resolve(TenantRef{}).error().code, Errc::not_found);
  }
}

TEST_P(TenantDirectoryTest, EachKindIsCachedUnderItsOwnKey) {
  TenantDirectory directory(store(), clock_, std::chrono::seconds(10));
  EXPECT_EQ(name_of(directory.resolve(slug_ref("alpha"))), "alpha");
  set_name(a_.id, "renamed");
  // The slug entry is cached; the id was never asked for, so it is read afresh and cached under the id.
  EXPECT_EQ(name_of(directory.resolve(slug_ref("alpha"))), "alpha");
  EXPECT_EQ(name_of(directory.resolve_id(a_.id)), "renamed");
  // Any spelling of the id is one key.
  set_name(a_.id, "again");
  std::string upper = a_.id;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(name_of(directory.resolve(parse_tenant_ref(upper))), "renamed");
  // Entries expire.
  clock_.advance(std::chrono::seconds(11));
  EXPECT_EQ(name_of(directory.resolve(slug_ref("alpha"))), "again");
  EXPECT_EQ(name_of(directory.resolve_id(a_.id)), "again");
}

TEST_P(TenantDirectoryTest, InvalidateDropsBothKeys) {
  TenantDirectory directory(store(), clock_, std::chrono::hours(1));
  ASSERT_EQ(name_of(directory.resolve_id(a_.id)), "alpha");
  ASSERT_EQ(name_of(directory.resolve(slug_ref("alpha"))), "alpha");
  ASSERT_EQ(name_of(directory.resolve_id(x_.id)), "xray");
  ASSERT_EQ(name_of(directory.resolve(slug_ref("xray"))), "xray");
  set_name(a_.id, "renamed");
  set_name(x_.id, "renamed-x");
  directory.invalidate(a_);
  EXPECT_EQ(name_of(directory.resolve_id(a_.id)), "renamed");
  EXPECT_EQ(name_of(directory.resolve(slug_ref("alpha"))), "renamed");
  EXPECT_EQ(name_of(directory.resolve_id(x_.id)), "xray");  // another tenant's entry stays
  EXPECT_EQ(name_of(directory.resolve(slug_ref("xray"))), "xray");
  // A slug entry under a slug the tenant no longer has goes too.
  set_slug(x_.id, "x-new");
  auto moved = store().get(x_.id);
  ASSERT_TRUE(moved);
  directory.invalidate(*moved);
  EXPECT_EQ(directory.resolve(slug_ref("xray")).error().code, Errc::not_found);
  EXPECT_EQ(name_of(directory.resolve(slug_ref("x-new"))), "renamed-x");
}

INSTANTIATE_TEST_SUITE_P(Backends, TenantDirectoryTest, test::all_backends(), test::backend_name);

}  // namespace
}  // namespace atrium::tenancy
