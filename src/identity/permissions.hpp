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
//
// The seed's eight (its `Permission` enum) and their role table hold exactly. Each of Atrium's other permissions
// refines one of the eight and is held by exactly the roles that hold it (governing_permission): a credential
// holding a seed permission holds its refinements too.
namespace perm {
// The seed's eight.
inline constexpr std::string_view projects_read = "projects:read";
inline constexpr std::string_view projects_write = "projects:write";
inline constexpr std::string_view projects_delete = "projects:delete";
inline constexpr std::string_view billing_view = "billing:view";
inline constexpr std::string_view billing_manage = "billing:manage";
inline constexpr std::string_view users_manage = "users:manage";
inline constexpr std::string_view analytics_view = "analytics:view";
inline constexpr std::string_view integrations_manage = "integrations:manage";
// Refinements (governed by, in brackets).
inline constexpr std::string_view users_read = "users:read";                // [users:manage]
inline constexpr std::string_view tenant_read = "tenant:read";              // [users:manage]
inline constexpr std::string_view tenant_manage = "tenant:manage";          // [users:manage]
inline constexpr std::string_view audit_read = "audit:read";                // [users:manage]
inline constexpr std::string_view usage_read = "usage:read";                // [billing:view]
inline constexpr std::string_view api_keys_read = "api_keys:read";          // [integrations:manage]
inline constexpr std::string_view api_keys_manage = "api_keys:manage";      // [integrations:manage]
inline constexpr std::string_view webhooks_read = "webhooks:read";          // [integrations:manage]
inline constexpr std::string_view webhooks_manage = "webhooks:manage";      // [integrations:manage]
inline constexpr std::string_view usage_write = "usage:write";              // [integrations:manage]
inline constexpr std::string_view analytics_write = "analytics:write";      // [analytics:view]
inline constexpr std::string_view dashboards_manage = "dashboards:manage";  // [analytics:view]
}  // namespace perm

std::span<const std::string_view> all_permissions();
// The seed's eight, in its enum's order.
std::span<const std::string_view> seed_permissions();

// The seed permission a refinement belongs to; a seed permission governs itself. nullopt for unknown text.
std::optional<std::string_view> governing_permission(std::string_view p);

// The permissions a role grants: the seed's role table (owner: all eight; admin: projects:read/write/delete,
// billing:view, users:manage, analytics:view; member: projects:read/write, analytics:view; viewer: projects:read)
// with the refinements of each.
std::vector<std::string> permissions_for(Role role);

// `granted` with the refinements of every seed permission in it added (an API key created with
// integrations:manage manages webhooks and API keys). Unknown entries are kept as they are; no duplicates added.
std::vector<std::string> with_refinements(std::vector<std::string> granted);

bool is_known_permission(std::string_view p);

// True when `role` may hand out `target` (assign it to a user or invite with it): never above itself.
bool may_assign(Role role, Role target);

}  // namespace atrium::identity
