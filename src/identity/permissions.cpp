#include "identity/permissions.hpp"

#include <algorithm>
#include <array>

namespace atrium::identity {

namespace {

// Each permission with the seed permission that governs it (itself for the seed's eight).
struct Governed {
  std::string_view permission;
  std::string_view by;
};
constexpr std::array<Governed, 20> k_all = {{
    {perm::projects_read, perm::projects_read},
    {perm::projects_write, perm::projects_write},
    {perm::projects_delete, perm::projects_delete},
    {perm::billing_view, perm::billing_view},
    {perm::billing_manage, perm::billing_manage},
    {perm::users_manage, perm::users_manage},
    {perm::analytics_view, perm::analytics_view},
    {perm::integrations_manage, perm::integrations_manage},
    {perm::users_read, perm::users_manage},
    {perm::tenant_read, perm::users_manage},
    {perm::tenant_manage, perm::users_manage},
    {perm::audit_read, perm::users_manage},
    {perm::usage_read, perm::billing_view},
    {perm::api_keys_read, perm::integrations_manage},
    {perm::api_keys_manage, perm::integrations_manage},
    {perm::webhooks_read, perm::integrations_manage},
    {perm::webhooks_manage, perm::integrations_manage},
    {perm::usage_write, perm::integrations_manage},
    {perm::analytics_write, perm::analytics_view},
    {perm::dashboards_manage, perm::analytics_view},
}};

constexpr std::array<std::string_view, 8> k_seed = {
    perm::projects_read,  perm::projects_write, perm::projects_delete, perm::billing_view,
    perm::billing_manage, perm::users_manage,   perm::analytics_view,  perm::integrations_manage,
};

// The seed's rolePermissions.
constexpr std::array<std::string_view, 6> k_admin = {perm::projects_read, perm::projects_write, perm::projects_delete,
                                                     perm::billing_view,  perm::users_manage,   perm::analytics_view};
constexpr std::array<std::string_view, 3> k_member = {perm::projects_read, perm::projects_write, perm::analytics_view};
constexpr std::array<std::string_view, 1> k_viewer = {perm::projects_read};

constexpr std::array<std::string_view, k_all.size()> names() {
  std::array<std::string_view, k_all.size()> out{};
  for (std::size_t i = 0; i < k_all.size(); ++i) out[i] = k_all[i].permission;
  return out;
}
constexpr std::array<std::string_view, k_all.size()> k_names = names();

}  // namespace

std::string_view role_name(Role r) {
  switch (r) {
    case Role::owner: return "owner";
    case Role::admin: return "admin";
    case Role::member: return "member";
    case Role::viewer: return "viewer";
  }
  return "viewer";
}

std::optional<Role> parse_role(std::string_view text) {
  for (Role r : {Role::owner, Role::admin, Role::member, Role::viewer}) {
    if (text == role_name(r)) return r;
  }
  return std::nullopt;
}

std::span<const std::string_view> all_permissions() { return k_names; }

std::span<const std::string_view> seed_permissions() { return k_seed; }

std::optional<std::string_view> governing_permission(std::string_view p) {
  for (const Governed& g : k_all) {
    if (g.permission == p) return g.by;
  }
  return std::nullopt;
}

std::vector<std::string> with_refinements(std::vector<std::string> granted) {
  const auto holds = [&](std::string_view p) { return std::find(granted.begin(), granted.end(), p) != granted.end(); };
  std::vector<std::string> added;
  for (const Governed& g : k_all) {
    if (g.permission != g.by && holds(g.by) && !holds(g.permission)) added.emplace_back(g.permission);
  }
  granted.insert(granted.end(), added.begin(), added.end());
  return granted;
}

std::vector<std::string> permissions_for(Role role) {
  std::span<const std::string_view> list;
  switch (role) {
    case Role::owner: list = k_seed; break;
    case Role::admin: list = k_admin; break;
    case Role::member: list = k_member; break;
    case Role::viewer: list = k_viewer; break;
  }
  return with_refinements({list.begin(), list.end()});
}

bool is_known_permission(std::string_view p) { return governing_permission(p).has_value(); }

bool may_assign(Role role, Role target) { return static_cast<int>(role) <= static_cast<int>(target); }

}  // namespace atrium::identity
