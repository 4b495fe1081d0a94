#include "identity/tenant_purge.hpp"

#include <array>

namespace atrium::identity {

namespace {

using tenancy::TenantStatement;

constexpr std::array k_purge{
    TenantStatement{"identity_purge_invitations", "DELETE FROM invitations WHERE tenant_id = $1"},
    TenantStatement{"identity_purge_refresh_tokens", "DELETE FROM refresh_tokens WHERE tenant_id = $1"},
    TenantStatement{"identity_purge_api_keys", "DELETE FROM api_keys WHERE tenant_id = $1"},
    TenantStatement{"identity_purge_memberships", "DELETE FROM memberships WHERE tenant_id = $1"},
};

}  // namespace

std::span<const TenantStatement> purge_statements() { return k_purge; }

}  // namespace atrium::identity
