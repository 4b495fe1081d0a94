#include "identity/permissions.hpp"

#include <algorithm>
#include <array>

namespace atrium::identity {

namespace {

constexpr std::array<std::string_view, 16> k_all = {
    perm::projects_read, perm::projects_write,  perm::projects_delete, perm::users_read,
    perm::users_manage,  perm::api_keys_read,   perm::api_keys_manage, perm::tenant_read,
    perm::tenant_manage, perm::billing_view,    perm::billing_manage,  perm::audit_read,
    perm::webhooks_read, perm::webhooks_manage, perm::usage_read,      perm::usage_write,
};

constexpr std::array<std::string_view, 15> k_admin = {
    perm::projects_read, perm::projects_write,  perm::projects_delete, perm::users_read,    perm::users_manage,
    perm::api_keys_read, perm::api_keys_manage, perm::tenant_read,     perm::tenant_manage, perm::billing_view,
    perm::audit_read,    perm::webhooks_read,   perm::webhooks_manage, perm::usage_read,    perm::usage_write,
};

constexpr std::array<std::string_view, 4> k_member = {perm::projects_read, perm::projects_write, perm::projects_delete,
                                                      perm::users_read};

constexpr std::array<std::string_view, 2> k_viewer = {perm::projects_read, perm::users_read};

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

std::span<const std::string_view> all_permissions() { return k_all; }

std::vector<std::string> permissions_for(Role role) {
  std::span<const std::string_view> list;
  switch (role) {
    case Role::owner: list = k_all; break;
    case Role::admin: list = k_admin; break;
    case Role::member: list = k_member; break;
    case Role::viewer: list = k_viewer; break;
  }
  return {list.begin(), list.end()};
}

bool is_known_permission(std::string_view p) { return std::find(k_all.begin(), k_all.end(), p) != k_all.end(); }

bool may_assign(Role role, Role target) { return static_cast<int>(role) <= static_cast<int>(target); }

}  // namespace atrium::identity
