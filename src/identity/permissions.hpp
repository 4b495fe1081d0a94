#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::identity {

// Roles a user holds in a tenant (memberships.role), highest first.
enum class Role { owner, admin, member, viewer };

std::string_view role_name(Role r);
std::optional<Role> parse_role(std::string_view text);

// Every permission Atrium knows, "resource:action". Routes declare the one they need; docs/security.md has
// the table of which role holds which.
namespace perm {
inline constexpr std::string_view projects_read = "projects:read";
inline constexpr std::string_view projects_write = "projects:write";
inline constexpr std::string_view projects_delete = "projects:delete";
inline constexpr std::string_view users_read = "users:read";
inline constexpr std::string_view users_manage = "users:manage";
inline constexpr std::string_view api_keys_read = "api_keys:read";
inline constexpr std::string_view api_keys_manage = "api_keys:manage";
inline constexpr std::string_view tenant_read = "tenant:read";
inline constexpr std::string_view tenant_manage = "tenant:manage";
inline constexpr std::string_view billing_view = "billing:view";
inline constexpr std::string_view billing_manage = "billing:manage";
inline constexpr std::string_view audit_read = "audit:read";
inline constexpr std::string_view webhooks_read = "webhooks:read";
inline constexpr std::string_view webhooks_manage = "webhooks:manage";
inline constexpr std::string_view usage_read = "usage:read";
inline constexpr std::string_view usage_write = "usage:write";
}  // namespace perm

std::span<const std::string_view> all_permissions();

// The permissions a role grants. owner: all; admin: all but billing:manage (usage:read and usage:write included);
// member: work on projects and see users; viewer: read projects and users.
std::vector<std::string> permissions_for(Role role);

bool is_known_permission(std::string_view p);

// True when `role` may hand out `target` (assign it to a user or invite with it): never above itself.
bool may_assign(Role role, Role target);

}  // namespace atrium::identity
