#include "identity/permissions.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace atrium::identity {
namespace {

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

// The seed's rolePermissions, written out here rather than read from the code under test.
TEST(Permissions, TheSeedsRoleTableHoldsExactly) {
  const std::set<std::string> seed = {"projects:read",  "projects:write", "projects:delete", "billing:view",
                                      "billing:manage", "users:manage",   "analytics:view",  "integrations:manage"};
  const std::map<Role, std::set<std::string>> table = {
      {Role::owner, seed},
      {Role::admin,
       {"projects:read", "projects:write", "projects:delete", "billing:view", "users:manage", "analytics:view"}},
      {Role::member, {"projects:read", "projects:write", "analytics:view"}},
      {Role::viewer, {"projects:read"}},
  };
  EXPECT_EQ(std::set<std::string>(seed_permissions().begin(), seed_permissions().end()), seed);
  for (const auto& [role, expected] : table) {
    std::set<std::string> held_seed;
    for (const auto& p : permissions_for(role)) {
      if (seed.contains(p)) held_seed.insert(p);
    }
    EXPECT_EQ(held_seed, expected) << role_name(role);
  }
}

// Atrium's finer permissions, by the rule docs/security.md states: held by exactly the roles holding the seed
// permission each refines.
TEST(Permissions, RefinementsFollowTheSeedPermissionTheyRefine) {
  EXPECT_EQ(as_set(permissions_for(Role::admin)),
            (std::set<std::string>{"projects:read", "projects:write", "projects:delete", "billing:view", "users:manage",
                                   "analytics:view", "users:read", "tenant:read", "tenant:manage", "audit:read",
                                   "usage:read", "analytics:write", "dashboards:manage"}));
  EXPECT_EQ(as_set(permissions_for(Role::member)),
            (std::set<std::string>{"projects:read", "projects:write", "analytics:view", "analytics:write",
                                   "dashboards:manage"}));
  EXPECT_EQ(as_set(permissions_for(Role::viewer)), (std::set<std::string>{"projects:read"}));
  const auto owner = as_set(permissions_for(Role::owner));
  EXPECT_EQ(owner.size(), all_permissions().size());
  for (const auto p : all_permissions()) {
    EXPECT_TRUE(owner.contains(std::string(p))) << p;
    const auto by = governing_permission(p);
    ASSERT_TRUE(by.has_value()) << p;
    const auto seed = seed_permissions();
    EXPECT_NE(std::find(seed.begin(), seed.end(), *by), seed.end()) << p << " is governed by a non-seed " << *by;
    // Every role holds a refinement exactly when it holds what it refines.
    for (const Role role : {Role::owner, Role::admin, Role::member, Role::viewer}) {
      const auto held = as_set(permissions_for(role));
      EXPECT_EQ(held.contains(std::string(p)), held.contains(std::string(*by))) << role_name(role) << " " << p;
    }
  }
  EXPECT_EQ(governing_permission("webhooks:manage"), "integrations:manage");
  EXPECT_EQ(governing_permission("usage:read"), "billing:view");
  EXPECT_EQ(governing_permission("analytics:write"), "analytics:view");
  EXPECT_EQ(governing_permission("dashboards:manage"), "analytics:view");
  EXPECT_FALSE(governing_permission("projects:admin").has_value());
}

TEST(Permissions, AKeyHoldingASeedPermissionHoldsItsRefinements) {
  const auto expanded = as_set(with_refinements({"integrations:manage"}));
  EXPECT_EQ(expanded, (std::set<std::string>{"integrations:manage", "api_keys:read", "api_keys:manage", "webhooks:read",
                                             "webhooks:manage", "usage:write"}));
  // A refinement alone grants nothing more; nothing is added twice; unknown entries stay as they were.
  EXPECT_EQ(with_refinements({"usage:write"}), std::vector<std::string>{"usage:write"});
  const auto twice = with_refinements({"users:read", "users:manage", "custom:thing"});
  EXPECT_EQ(std::count(twice.begin(), twice.end(), "users:read"), 1);
  EXPECT_EQ(as_set(twice), (std::set<std::string>{"users:read", "users:manage", "custom:thing", "tenant:read",
                                                  "tenant:manage", "audit:read"}));
}

}  // namespace
}  // namespace atrium::identity
