#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/time.hpp"

namespace atrium::identity {

// Who is calling, established by authentication and completed by tenant resolution. Immutable once the
// request's middleware has built it.
struct Principal {
  // embed: an embed token a tenant minted for its product's pages (docs/analytics.md, Embedded analytics): reads of
  // the tenant's analytics only, as the member or key that minted it (`subject`).
  enum class Kind { user, api_key, embed };
  Kind kind = Kind::user;
  std::string subject;    // user id or API key id
  std::string tenant_id;  // the tenant the credentials are bound to ("" for a super admin without one)
  std::string role;       // the member's role in that tenant ("" for API keys and tenant-less super admins)
  std::vector<std::string> permissions;
  bool super_admin = false;
  std::string jti;       // access tokens only
  Instant expires_at{};  // access tokens only (exp)
  Instant issued_at{};   // access tokens only: iat_ms, or iat when the token has none
  std::string customer;  // embed tokens only: the one customer whose analytics it reads ("" all)

  bool has(std::string_view permission) const {
    return std::find(permissions.begin(), permissions.end(), permission) != permissions.end();
  }
};

}  // namespace atrium::identity
