#include "identity/token_service.hpp"

#include "core/ids.hpp"
#include "core/log.hpp"
#include "identity/secrets.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::identity {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_insert_refresh{
    "refresh_insert",
    "INSERT INTO refresh_tokens (id, family_id, user_id, tenant_id, token_hash, created_at, expires_at) VALUES ($1, "
    "$2, $3, $4, $5, $6, $7)"};
constexpr Statement k_refresh_by_hash{"refresh_by_hash",
                                      "SELECT id, family_id, user_id, tenant_id, expires_at, used_at, revoked_at FROM "
                                      "refresh_tokens WHERE token_hash = $1"};
// PostgreSQL: the token's tenant is not known before it is found, and RLS shows the serving role only the rows of
// the tenant its transaction is scoped to; the owner's SECURITY DEFINER function finds it by hash (migration 0011).
// Using it and revoking its family then run scoped to its tenant (scope_to_token).
constexpr Statement k_refresh_by_hash_pg{"refresh_by_hash_pg",
                                         "SELECT id, family_id, user_id, tenant_id, expires_at, used_at, revoked_at "
                                         "FROM atrium_refresh_token_by_hash($1)"};
constexpr Statement k_refresh_use{"refresh_use",
                                  "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND "
                                  "revoked_at IS NULL"};
constexpr Statement k_refresh_revoke_family{
    "refresh_revoke_family", "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL"};
// A family's rotation and its revocation take turns (PostgreSQL; SQLite runs one writer): each locks the family's
// rows first, so the statement after the lock sees what the other committed — a new token inserted after a
// revocation began, or a revocation that began before the insert, is never missed.
constexpr Statement k_refresh_lock_family{"refresh_lock_family",
                                          "SELECT id FROM refresh_tokens WHERE family_id = $1 FOR UPDATE"};
constexpr Statement k_refresh_family_revoked{
    "refresh_family_revoked", "SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL LIMIT 1"};

constexpr Statement k_record_revoked{"revoked_tokens_insert",
                                     "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) "
                                     "DO NOTHING"};

constexpr std::string_view k_bad_credentials = "invalid email, password or tenant";

Result<void> lock_family(Transaction& tx, const std::string& family) {
  if (tx.backend() != storage::Backend::postgres) return {};
  auto r = tx.execute(k_refresh_lock_family, {Value(family)});
  if (!r) return std::unexpected(r.error());
  return {};
}

// Revokes every token of the family (reuse detected), after its lock.
Result<void> revoke_family(Transaction& tx, const std::string& family, const std::string& now) {
  if (auto l = lock_family(tx, family); !l) return l;
  auto r = tx.execute(k_refresh_revoke_family, {Value(family), Value(now)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<storage::ResultSet> refresh_by_hash(Transaction& tx, const std::string& hash) {
  return tx.execute(tx.backend() == storage::Backend::postgres ? k_refresh_by_hash_pg : k_refresh_by_hash,
                    {Value(hash)});
}

// Scopes the transaction to the tenant of a refresh token found by hash (column 3; NULL for a super admin signed
// in without a tenant, whose rows only an unscoped transaction sees).
Result<void> scope_to_token(Transaction& tx, const storage::ResultSet& rs) {
  if (rs.is_null(0, 3)) return {};
  return tenancy::scope_to_tenant(tx, rs.text_at(0, 3).value_or(""));
}

std::int64_t seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Principal principal_from(const AccessClaims& c) {
  Principal p;
  p.kind = c.scope == k_embed_scope ? Principal::Kind::embed : Principal::Kind::user;
  p.customer = c.customer;
  p.subject = c.sub;
  p.tenant_id = c.tenant_id;
  p.role = c.role;
  p.permissions = c.permissions;
  p.super_admin = c.super_admin;
  p.jti = c.jti;
  p.expires_at = from_unix_seconds(c.exp);
  p.issued_at = c.iat_ms ? from_unix_ms(*c.iat_ms) : from_unix_seconds(c.iat);
  return p;
}

}  // namespace

TokenService::TokenService(storage::Database& db, UserStore& users, tenancy::TenantStore& tenants, KeyStore& keys,
                           RevocationStore& revocations, const Clock& clock, TokenSettings settings, std::string issuer,
                           std::string audience, PasswordCost password_cost, JwtAlgorithm algorithm)
    : db_(db),
      users_(users),
      tenants_(tenants),
      keys_(keys),
      revocations_(revocations),
      clock_(clock),
      settings_(settings),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      cost_(password_cost),
      algorithm_(algorithm) {}

bool TokenService::throttled(const std::string& key) {
  std::lock_guard lock(failures_mutex_);
  auto it = failures_.find(key);
  if (it == failures_.end()) return false;
  if (clock_.monotonic() - it->second.window_start > settings_.failure_window) {
    failures_.erase(it);
    return false;
  }
  const int limit = key.starts_with("addr:") ? settings_.max_failures_per_address : settings_.max_failures_per_account;
  return it->second.count >= limit;
}

void TokenService::record_failure(const std::string& key) {
  std::lock_guard lock(failures_mutex_);
  if (failures_.size() > 100'000) failures_.clear();  // bound memory under a credential-stuffing flood
  auto& f = failures_[key];
  if (f.count == 0 || clock_.monotonic() - f.window_start > settings_.failure_window) {
    f.count = 0;
    f.window_start = clock_.monotonic();
  }
  ++f.count;
}

void TokenService::clear_failures(const std::string& key) {
  std::lock_guard lock(failures_mutex_);
  failures_.erase(key);
}

Result<IssuedTokens> TokenService::issue(const User& user, const std::optional<tenancy::Tenant>& tenant,
                                         const std::optional<std::string>& family_id, std::string_view action,
                                         const audit::Recorder& audit) {
  // Another instance may have rotated the signing key: pick the newest up within a minute.
  (void)keys_.reload_if_stale(std::chrono::seconds(60));
  const auto keyset = keys_.ensure(algorithm_);
  if (!keyset) return fail(Errc::unavailable, "no signing key loaded");
  // The issue time is read before the role: a token that read a role from before a membership change committed
  // then carries an issue time before the epoch set after the commit, and is refused (revoke_member).
  const auto now = clock_.now();
  AccessClaims claims;
  bool member = false;
  claims.sub = user.id;
  claims.super_admin = user.super_admin;
  if (tenant) {
    claims.tenant_id = tenant->id;
    auto role = users_.role_in(tenant->id, user.id);
    if (!role) return std::unexpected(role.error());
    if (*role) {
      member = true;
      claims.role = std::string(role_name(**role));
      claims.permissions = permissions_for(**role);
    } else if (user.super_admin) {
      claims.role = std::string(role_name(Role::owner));  // a super admin acts as an owner in any tenant
      claims.permissions = permissions_for(Role::owner);
    } else {
      return fail(Errc::unauthenticated, std::string(k_bad_credentials));
    }
  } else if (!user.super_admin) {
    return fail(Errc::invalid_argument, "tenant is required");
  }
  stamp(claims, now, settings_.access_ttl);
  auto token = keyset->signer->sign(claims);
  if (!token) return std::unexpected(token.error());

  const std::string refresh = "rt_" + random_token();
  const std::string family = family_id.value_or(new_uuid_v7(clock_));
  auto stored = db_.transact([&](Transaction& tx) -> Result<void> {
    if (tenant) {
      if (auto s = tenancy::scope_to_tenant(tx, tenant->id); !s) return s;
    }
    if (family_id) {
      // A rotation: none if a racing presentation of the same token revoked the family meanwhile.
      if (auto l = lock_family(tx, family); !l) return l;
      auto revoked = tx.execute(k_refresh_family_revoked, {Value(family)});
      if (!revoked) return std::unexpected(revoked.error());
      if (!revoked->empty()) return fail(Errc::unauthenticated, "refresh token reuse detected");
    }
    auto r =
        tx.execute(k_insert_refresh, {Value(new_uuid_v7(clock_)), Value(family), Value(user.id),
                                      tenant ? Value(tenant->id) : Value(), Value(sha256_hex(refresh)),
                                      Value(format_rfc3339(now)), Value(format_rfc3339(now + settings_.refresh_ttl))});
    if (!r) return std::unexpected(r.error());
    audit::Event event{.action = std::string(action),
                       .resource_type = "session",
                       .resource_id = family,
                       .tenant_id = tenant ? tenant->id : "",
                       .actor_id = user.id};
    event.changes = {{"access_token_jti", claims.jti}};
    return audit::record(audit, tx, event);
  });
  if (!stored) return std::unexpected(stored.error());
  return IssuedTokens{.access_token = std::move(*token),
                      .expires_in = settings_.access_ttl.count(),
                      .refresh_token = refresh,
                      .user_id = user.id,
                      .tenant_id = claims.tenant_id,
                      .member = member,
                      .jti = claims.jti};
}

void TokenService::stamp(AccessClaims& claims, Instant now, std::chrono::seconds ttl) {
  claims.iss = issuer_;
  claims.aud = audience_;
  claims.jti = new_uuid_v7(clock_);
  claims.iat = seconds(now);
  claims.iat_ms = detail::epoch_ms(now);
  claims.nbf = claims.iat;
  claims.exp = claims.iat + ttl.count();
}

Result<EmbedToken> TokenService::issue_embed(const Principal& minter, const std::string& tenant_id,
                                             const std::string& customer, std::chrono::seconds ttl,
                                             const audit::Recorder& audit) {
  if (minter.kind == Principal::Kind::embed) return fail(Errc::invalid_argument, "an embed token cannot mint another");
  if (tenant_id.empty()) return fail(Errc::invalid_argument, "an embed token is for one tenant");
  (void)keys_.reload_if_stale(std::chrono::seconds(60));
  const auto keyset = keys_.ensure(algorithm_);
  if (!keyset) return fail(Errc::unavailable, "no signing key loaded");
  const auto now = clock_.now();
  AccessClaims claims;
  claims.sub = minter.subject;
  claims.tenant_id = tenant_id;
  claims.role = std::string(k_embed_scope);
  claims.permissions = {std::string(perm::analytics_view)};
  stamp(claims, now, ttl);
  claims.scope = std::string(k_embed_scope);
  claims.customer = customer;
  auto token = keyset->signer->sign(claims);
  if (!token) return std::unexpected(token.error());
  auto recorded = db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
    audit::Event event{.action = "analytics.embed_token_created",
                       .resource_type = "embed_token",
                       .resource_id = claims.jti,
                       .tenant_id = tenant_id};
    event.changes =
        audit::created_changes({{"customer", customer}, {"expires_at", format_rfc3339(from_unix_seconds(claims.exp))}});
    return audit::record(audit, tx, event);
  });
  if (!recorded) return std::unexpected(recorded.error());
  return EmbedToken{.token = std::move(*token), .jti = claims.jti, .expires_at = from_unix_seconds(claims.exp)};
}

Result<IssuedTokens> TokenService::password_grant(const std::string& email_in, const std::string& password,
                                                  const std::optional<std::string>& tenant_ref,
                                                  const std::string& remote_address, const audit::Recorder& audit) {
  if (email_in.empty() || password.empty()) return fail(Errc::invalid_argument, "email and password are required");
  // A NUL would be cut off where the e-mail becomes a C string, so the lookup could find an account whose failures
  // are counted under another key. Refused outright (the HTTP edge refuses it before this, too).
  if (email_in.find('\0') != std::string::npos) {
    return fail(Errc::invalid_argument, "email must not contain a NUL character");
  }
  // One normalised text is both the throttle's key and what is looked up (UserStore lower-cases the same way, so
  // the lookup sees exactly this text).
  std::string email = email_in;
  for (char& c : email) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  const std::string account_key = "acct:" + email;
  const std::string address_key = "addr:" + remote_address;
  if (throttled(account_key) || throttled(address_key)) {
    return fail(Errc::rate_limited, "too many failed sign-ins; try again later");
  }
  std::string known_user;  // the account's id once found, for the audit entry
  std::string tenant_id;
  auto refuse = [&](std::string_view reason) -> Result<IssuedTokens> {
    record_failure(account_key);
    record_failure(address_key);
    if (tenant_id.empty() && tenant_ref && !tenant_ref->empty()) {
      auto t = is_uuid(*tenant_ref) ? tenants_.get(*tenant_ref) : tenants_.get_by_slug(*tenant_ref);
      if (t) tenant_id = t->id;
    }
    // The failure goes to the tenant's chain only when the account is a member there: the tenant's auditors may
    // see attempts on their members, never which other e-mails have accounts. Everything else: platform chain.
    if (!tenant_id.empty()) {
      auto role =
          known_user.empty() ? Result<std::optional<Role>>(std::nullopt) : users_.role_in(tenant_id, known_user);
      if (!role || !*role) tenant_id.clear();
    }
    audit::Event event{.action = "auth.login_failed",
                       .resource_type = "user",
                       .resource_id = known_user,
                       .tenant_id = tenant_id,
                       .actor_id = known_user};
    event.changes = {{"email", email}, {"reason", reason}};
    if (auto r = db_.transact([&](Transaction& tx) { return audit::record(audit, tx, event); }); !r) {
      return std::unexpected(r.error());  // a sign-in failure that cannot be recorded is not answered as one
    }
    return fail(Errc::unauthenticated, std::string(k_bad_credentials));
  };
  auto user = users_.find_by_email(email);
  if (!user) {
    if (user.error().code != Errc::not_found) return std::unexpected(user.error());
    // Spend the same time as a real check so response times do not reveal which e-mails exist.
    std::call_once(dummy_once_, [this] { dummy_hash_ = hash_password("not a password", cost_).value_or(""); });
    verify_password(password, dummy_hash_);
    return refuse("unknown account");
  }
  known_user = user->id;
  if (!verify_password(password, user->password_hash)) return refuse("wrong password");
  std::optional<tenancy::Tenant> tenant;
  if (tenant_ref && !tenant_ref->empty()) {
    auto t = is_uuid(*tenant_ref) ? tenants_.get(*tenant_ref) : tenants_.get_by_slug(*tenant_ref);
    if (!t) {
      if (t.error().code == Errc::not_found) return refuse("unknown tenant");
      return std::unexpected(t.error());
    }
    tenant_id = t->id;
    if (t->status != tenancy::TenantStatus::active) return refuse("tenant not active");
    tenant = std::move(*t);
  } else if (!user->super_admin) {
    return fail(Errc::invalid_argument, "tenant is required");
  }
  auto issued = issue(*user, tenant, std::nullopt, "auth.login_succeeded", audit);
  if (!issued) {
    if (issued.error().code == Errc::unauthenticated) return refuse("not a member of the tenant");
    return issued;
  }
  clear_failures(account_key);
  return issued;
}

Result<IssuedTokens> TokenService::refresh_grant(const std::string& refresh_token, const audit::Recorder& audit) {
  if (!refresh_token.starts_with("rt_") || refresh_token.size() > 200) {
    return fail(Errc::unauthenticated, "invalid refresh token");
  }
  const std::string now = format_rfc3339(clock_.now());
  struct Found {
    std::string family;
    std::string user_id;
    std::optional<std::string> tenant_id;
    bool reused = false;
  };
  auto found = storage::transact_value<Found>(db_, [&](Transaction& tx) -> Result<Found> {
    auto rs = refresh_by_hash(tx, sha256_hex(refresh_token));
    if (!rs) return std::unexpected(rs.error());
    if (rs->empty()) return fail(Errc::unauthenticated, "invalid refresh token");
    if (auto s = scope_to_token(tx, *rs); !s) return std::unexpected(s.error());
    Found f;
    const std::string id = rs->text_at(0, 0).value_or("");
    f.family = rs->text_at(0, 1).value_or("");
    f.user_id = rs->text_at(0, 2).value_or("");
    f.tenant_id = rs->text_at(0, 3);
    const std::string expires_at = rs->text_at(0, 4).value_or("");
    // Presented again after rotation (or after revocation), or at the same time as another presentation that
    // won: someone holds a copy. The family is revoked, the token just issued to the other presenter included.
    auto reuse = [&]() -> Result<Found> {
      if (auto r = revoke_family(tx, f.family, now); !r) return std::unexpected(r.error());
      f.reused = true;
      audit::Event event{.action = "auth.refresh_reuse_detected",
                         .resource_type = "session",
                         .resource_id = f.family,
                         .tenant_id = f.tenant_id.value_or(""),
                         .actor_id = f.user_id};
      event.changes = {{"family_revoked", true}};
      if (auto a = audit::record(audit, tx, event); !a) return std::unexpected(a.error());
      return f;
    };
    if (!rs->is_null(0, 5) || !rs->is_null(0, 6)) return reuse();
    if (expires_at <= now) return fail(Errc::unauthenticated, "refresh token expired");
    auto used = tx.execute(k_refresh_use, {Value(id), Value(now)});
    if (!used) return std::unexpected(used.error());
    if (used->affected_rows != 1) return reuse();  // a racing presentation used it first
    return f;
  });
  if (!found) return std::unexpected(found.error());
  if (found->reused) {
    log::warn("refresh token reuse detected; family revoked", {{"user_id", found->user_id}, {"family", found->family}});
    return fail(Errc::unauthenticated, "refresh token reuse detected");
  }
  auto user = users_.get(found->user_id);
  if (!user) return fail(Errc::unauthenticated, "invalid refresh token");
  std::optional<tenancy::Tenant> tenant;
  if (found->tenant_id) {
    auto t = tenants_.get(*found->tenant_id);
    if (!t || t->status != tenancy::TenantStatus::active) return fail(Errc::unauthenticated, "tenant is not active");
    tenant = std::move(*t);
  }
  return issue(*user, tenant, found->family, "auth.token_refreshed", audit);
}

Result<void> TokenService::revoke(const std::string& token, const audit::Recorder& audit) {
  if (token.starts_with("rt_")) {
    const std::string now = format_rfc3339(clock_.now());
    return db_.transact([&](Transaction& tx) -> Result<void> {
      auto rs = refresh_by_hash(tx, sha256_hex(token));
      if (!rs) return std::unexpected(rs.error());
      if (rs->empty()) return {};
      if (auto s = scope_to_token(tx, *rs); !s) return s;
      if (auto l = lock_family(tx, rs->text_at(0, 1).value_or("")); !l) return l;  // not past a racing rotation
      auto r = tx.execute(k_refresh_revoke_family, {Value(rs->text_at(0, 1).value_or("")), Value(now)});
      if (!r) return std::unexpected(r.error());
      if (r->affected_rows == 0) return {};  // already revoked: nothing changed
      return audit::record(audit, tx,
                           {.action = "auth.token_revoked",
                            .resource_type = "session",
                            .resource_id = rs->text_at(0, 1).value_or(""),
                            .tenant_id = rs->text_at(0, 3).value_or(""),
                            .actor_id = rs->text_at(0, 2).value_or("")});
    });
  }
  const auto keyset = keys_.ensure(algorithm_);
  if (!keyset) return fail(Errc::unavailable, "no signing key loaded");
  auto claims = keyset->verifier->verify(token, clock_.now());
  if (!claims) return {};  // not a valid token of ours: nothing to revoke
  const Instant expires = from_unix_seconds(claims->exp);
  // Durable record first (in-process stores reload it at start), then the store every request consults.
  auto recorded = db_.transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(k_record_revoked, {Value(claims->jti), Value(format_rfc3339(expires))});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) return {};  // already revoked: nothing changed
    return audit::record(audit, tx,
                         {.action = "auth.token_revoked",
                          .resource_type = "access_token",
                          .resource_id = claims->jti,
                          .tenant_id = claims->tenant_id,
                          .actor_id = claims->sub});
  });
  if (!recorded) return recorded;
  auto r = revocations_.revoke(claims->jti, expires);
  if (!r) return r;
  std::unique_lock lock(cache_mutex_);
  verified_.erase(sha256_hex(token));
  return {};
}

Result<void> TokenService::revoke_member(const std::string& user_id, const std::string& tenant) {
  // No tenant: the user's tokens issued without one (a super admin's).
  const std::string tenant_id = tenant.empty() ? std::string(k_no_tenant) : tenant;
  if (auto valid = detail::validate_member(user_id, tenant_id); !valid) return valid;
  const auto at = clock_.now();
  // Every token issued before `at` has exp <= its second + access_ttl, and passes verification until leeway later.
  const auto keep_until = std::chrono::ceil<std::chrono::seconds>(at) + settings_.access_ttl + settings_.leeway;
  const std::string key = member_revocation_key(user_id, tenant_id, at);
  auto recorded = db_.transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(k_record_revoked, {Value(key), Value(format_rfc3339(keep_until))});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  auto r = recorded ? revocations_.revoke_member(user_id, tenant_id, at, keep_until) : recorded;
  if (!r) {
    log::warn("revoking a member's access tokens failed",
              {{"user_id", user_id}, {"tenant_id", tenant_id}, {"error", r.error().message}});
  }
  return r;
}

Result<std::shared_ptr<const Principal>> TokenService::authenticate(const std::string& token) {
  const std::string key = sha256_hex(token);
  const Instant now = clock_.now();
  std::shared_ptr<const Principal> principal;
  {
    std::shared_lock lock(cache_mutex_);
    if (auto it = verified_.find(key); it != verified_.end()) principal = it->second;
  }
  if (principal && principal->expires_at <= now) principal.reset();
  if (!principal) {
    auto keyset = keys_.ensure(algorithm_);
    if (!keyset) return fail(Errc::unavailable, "no signing key loaded");
    auto claims = keyset->verifier->verify(token, clock_.now());
    if (!claims && claims.error().message.find("unknown key id") != std::string::npos) {
      // Another instance may have rotated keys since we loaded them.
      if (keys_.reload_if_stale()) {
        keyset = keys_.ensure(algorithm_);
        claims = keyset->verifier->verify(token, clock_.now());
      }
    }
    if (!claims) return std::unexpected(claims.error());
    principal = std::make_shared<const Principal>(principal_from(*claims));
    std::unique_lock lock(cache_mutex_);
    if (verified_.size() >= settings_.verified_cache_entries) verified_.clear();
    verified_.emplace(key, principal);
  }
  // Cached or not: the jti and the member's epoch, in one call to the store.
  auto revoked = revocations_.check(principal->jti, principal->subject, principal->tenant_id, principal->issued_at);
  if (!revoked) return std::unexpected(revoked.error());
  if (*revoked == TokenRevocation::token) return fail(Errc::unauthenticated, "token revoked");
  if (*revoked == TokenRevocation::member) return fail(Errc::unauthenticated, "membership changed since the token");
  return principal;
}

}  // namespace atrium::identity
