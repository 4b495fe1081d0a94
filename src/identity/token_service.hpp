#pragma once

#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "identity/key_store.hpp"
#include "identity/principal.hpp"
#include "identity/revocation.hpp"
#include "identity/user_store.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::identity {

struct TokenSettings {
  std::chrono::seconds access_ttl{3600};
  std::chrono::seconds refresh_ttl{30 * 24 * 3600};
  int max_failures_per_account = 5;   // failed sign-ins per e-mail within failure_window
  int max_failures_per_address = 20;  // failed sign-ins per remote address within failure_window
  std::chrono::seconds failure_window{900};
  std::size_t verified_cache_entries = 10'000;
  std::chrono::seconds leeway{30};  // the verifier's clock-skew leeway: how long after exp a token may still pass
};

struct IssuedTokens {
  std::string access_token;
  std::int64_t expires_in = 0;
  std::string refresh_token;
  // Whom the tokens are for: the user, the tenant ("" for a super admin without one), whether the user is a member
  // of it (a super admin acting in a tenant is not), and the access token's jti.
  std::string user_id;
  std::string tenant_id;
  bool member = false;
  std::string jti;
};

// Sign-in, refresh-token rotation, revocation, and bearer-token authentication. Thread-safe.
//
// Refresh tokens are opaque ("rt_" + 256 random bits), stored as SHA-256, and rotated on every use; presenting a
// rotated (or revoked) one again revokes its whole family. Access tokens are verified once and then served from
// a bounded cache keyed by the token's SHA-256, which still honours exp and revocation on every request.
struct EmbedToken {
  std::string token;
  std::string jti;
  Instant expires_at{};
};

// The `scope` claim of embed tokens.
inline constexpr std::string_view k_embed_scope = "embed";

class TokenService {
 public:
  TokenService(storage::Database& db, UserStore& users, tenancy::TenantStore& tenants, KeyStore& keys,
               RevocationStore& revocations, const Clock& clock, TokenSettings settings, std::string issuer,
               std::string audience, PasswordCost password_cost, JwtAlgorithm algorithm);

  // Errors: unauthenticated (wrong e-mail or password, no membership in the tenant, tenant not active; one
  // message for all so accounts cannot be probed), rate_limited (too many failures for the account or address),
  // invalid_argument.
  Result<IssuedTokens> password_grant(const std::string& email, const std::string& password,
                                      const std::optional<std::string>& tenant_ref, const std::string& remote_address,
                                      const audit::Recorder& audit);
  // Errors: unauthenticated (unknown, expired, revoked or reused token — reuse revokes the family).
  Result<IssuedTokens> refresh_grant(const std::string& refresh_token, const audit::Recorder& audit);
  // Revokes an access token (by jti, until it expires) or a refresh token (its whole family). Unknown tokens are
  // ignored (RFC 7009).
  Result<void> revoke(const std::string& token, const audit::Recorder& audit);

  // Refuses, from now on, every access token of `user_id` for `tenant_id` issued before now (by the clock, in
  // milliseconds): call it when that membership changes (role or removal), before the change and again once it has
  // committed (docs/security.md, Revocation). Written to `revoked_tokens` (reloaded at start by in-process stores),
  // then to the revocation store, until every such token has expired (now + access token lifetime + leeway). A
  // failure is logged. An empty `tenant_id` refuses the user's tokens issued without a tenant (a super admin's).
  // Errors: invalid_argument, unavailable and database errors.
  Result<void> revoke_member(const std::string& user_id, const std::string& tenant_id);

  // Verifies a bearer access token and checks, in one call to the revocation store, that neither it nor its
  // member's earlier tokens are revoked. Errors: unauthenticated; unavailable when the revocation store cannot answer
  // (callers fail closed).
  // The returned principal is shared with the cache: never modify it.
  Result<std::shared_ptr<const Principal>> authenticate(const std::string& token);

  // Signs an embed token (docs/analytics.md, Embedded analytics) for `minter`, a member or API key acting in
  // `tenant_id`: the tenant's analytics reads only (permission analytics:view), of one `customer` when not "", for
  // `ttl`. It is refused like the minter's own tokens when the minter's membership changes. Recorded as
  // analytics.embed_token_created through `audit`. Errors: invalid_argument (an embed token minting another),
  // unavailable (no signing key).
  Result<EmbedToken> issue_embed(const Principal& minter, const std::string& tenant_id, const std::string& customer,
                                 std::chrono::seconds ttl, const audit::Recorder& audit);

  // Signs an access token for a user in a tenant (or without one, for a super admin) and a fresh refresh token.
  // Records `action` (sign-in, refresh) through `audit` with the new refresh token.
  Result<IssuedTokens> issue(const User& user, const std::optional<tenancy::Tenant>& tenant,
                             const std::optional<std::string>& family_id, std::string_view action,
                             const audit::Recorder& audit);

 private:
  // Issuer, audience, a new jti, issue and not-before times of `now`, expiry `ttl` later.
  void stamp(AccessClaims& claims, Instant now, std::chrono::seconds ttl);
  bool throttled(const std::string& key);
  void record_failure(const std::string& key);
  void clear_failures(const std::string& key);

  storage::Database& db_;
  UserStore& users_;
  tenancy::TenantStore& tenants_;
  KeyStore& keys_;
  RevocationStore& revocations_;
  const Clock& clock_;
  TokenSettings settings_;
  std::string issuer_;
  std::string audience_;

  struct Failures {
    int count = 0;
    std::chrono::steady_clock::time_point window_start;
  };
  std::mutex failures_mutex_;
  std::unordered_map<std::string, Failures> failures_;  // guarded by failures_mutex_

  PasswordCost cost_;
  JwtAlgorithm algorithm_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;  // set once under dummy_once_

  std::shared_mutex cache_mutex_;
  // guarded by cache_mutex_; key: SHA-256 of the token
  std::unordered_map<std::string, std::shared_ptr<const Principal>> verified_;
};

}  // namespace atrium::identity
