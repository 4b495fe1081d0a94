#pragma once

// The SQL of a person's data (docs/data-protection.md, "One person's data"): a user account and what names it
// across tenants, read and erased in the platform scope (the control plane's memberships, sessions and
// invitations are behind row-level security per tenant). Constant text with bind parameters.

#include "storage/database.hpp"

namespace atrium::privacy::sql {

using storage::Statement;

#define USER_COLS "id, email, name, password_hash, is_super_admin, created_at, updated_at"
constexpr Statement k_user{"privacy_user", "SELECT " USER_COLS " FROM users WHERE id = $1"};
constexpr Statement k_user_locked{"privacy_user_locked", "SELECT " USER_COLS " FROM users WHERE id = $1 FOR UPDATE"};
constexpr Statement k_memberships{"privacy_memberships",
                                  "SELECT m.tenant_id, t.slug, t.name, m.role, m.created_at FROM memberships m JOIN "
                                  "tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY m.created_at, "
                                  "m.tenant_id"};
// Sessions: refresh tokens (their hashes are not personal data, and are left out).
constexpr Statement k_sessions{"privacy_sessions",
                               "SELECT id, family_id, tenant_id, created_at, expires_at, used_at, revoked_at FROM "
                               "refresh_tokens WHERE user_id = $1 ORDER BY created_at, id"};
// Invitations to the address: by its blind index ($1), or as stored before addresses were sealed ($2).
constexpr Statement k_invitations{"privacy_invitations",
                                  "SELECT i.tenant_id, t.slug, i.id, i.role, i.invited_by, i.created_at, i.expires_at "
                                  "FROM invitations i JOIN tenants t ON t.id = i.tenant_id WHERE i.email_index = $1 OR "
                                  "i.email = $2 ORDER BY "
                                  "i.created_at, i.id"};
// The live tenants whose only owner the user is.
constexpr Statement k_sole_owner_of{
    "privacy_sole_owner_of",
    "SELECT t.slug FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 AND m.role = "
    "'owner' AND t.status <> 'deleted' AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.tenant_id = m.tenant_id "
    "AND o.role = 'owner' AND o.user_id <> m.user_id) ORDER BY t.slug"};
constexpr Statement k_super_admins{"privacy_super_admins", "SELECT COUNT(*) FROM users WHERE is_super_admin = $1"};
constexpr Statement k_delete_memberships{"privacy_delete_memberships", "DELETE FROM memberships WHERE user_id = $1"};
constexpr Statement k_delete_sessions{"privacy_delete_sessions", "DELETE FROM refresh_tokens WHERE user_id = $1"};
constexpr Statement k_delete_invitations{"privacy_delete_invitations",
                                         "DELETE FROM invitations WHERE email_index = $1 OR email = $2"};
// The account stays (its id is what audit entries and other records name), its personal fields do not: $2 is the
// pseudonymous address, $6 the empty name (both as stored: sealed), $7 the address's blind index, $3 the unusable
// password hash.
constexpr Statement k_erase_user{"privacy_erase_user",
                                 "UPDATE users SET email = $2, name = $6, email_index = $7, password_hash = $3, "
                                 "is_super_admin = $4, updated_at = $5 WHERE id = $1"};
#undef USER_COLS

}  // namespace atrium::privacy::sql
