#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace atrium::identity {

// What check() found.
enum class TokenRevocation {
  none,    // neither the token nor its member's earlier tokens are revoked
  token,   // its jti is revoked
  member,  // issued before its member's epoch: the membership changed after the token was issued
};

// Revoked access tokens, by id (jti) until their expiry, and member epochs: per (user id, tenant id), the time
// before which that member's tokens for that tenant are refused (their membership changed since). Implementations
// are thread-safe and never throw (beyond std::bad_alloc).
//
// A jti is 1-128 printable ASCII characters without spaces (0x21-0x7E); anything else is invalid_argument. User
// and tenant ids follow the same rule and must not contain ':'. Revocation lasts while clock.now() < expires_at
// (or keep_until); after that the token's own exp rejects it. Epochs have millisecond precision: times are
// truncated to whole milliseconds, and a token issued in the epoch's millisecond is not refused by it.
class RevocationStore {
 public:
  virtual ~RevocationStore() = default;

  // Marks jti revoked until `expires_at` (the token's exp; after it the entry may be forgotten). An expires_at
  // not in the future is a no-op (the token is already expired). Revoking a jti again replaces its expiry (callers
  // pass the token's exp, which never changes). Errors: invalid_argument, unavailable (Redis).
  virtual Result<void> revoke(std::string_view jti, std::chrono::system_clock::time_point expires_at) = 0;

  // True when jti is revoked. Errors: invalid_argument, unavailable (Redis unreachable, timed out or refused the
  // command); callers fail closed (treat an error as revoked).
  virtual Result<bool> is_revoked(std::string_view jti) = 0;

  // Refuses every token of `user_id` for `tenant_id` issued before `at` (in whole milliseconds). The entry may be
  // forgotten after `keep_until` (the time every such token has expired by: `at` + token lifetime + leeway); a
  // keep_until not in the future is a no-op. Epochs only move forward: a later call with an earlier `at` (or
  // keep_until) leaves the later one in force. Errors: invalid_argument, unavailable (Redis).
  virtual Result<void> revoke_member(std::string_view user_id, std::string_view tenant_id,
                                     std::chrono::system_clock::time_point at,
                                     std::chrono::system_clock::time_point keep_until) = 0;

  // The request path's check, in one call (one round trip for Redis): whether `jti` is revoked, else whether the
  // token, issued at `issued_at` (truncated to milliseconds), predates the epoch of (`user_id`, `tenant_id`). An
  // empty tenant_id (a token issued without a tenant: a super admin's) reads the epoch of (`user_id`,
  // k_no_tenant). Errors: invalid_argument, unavailable; callers fail closed.
  virtual Result<TokenRevocation> check(std::string_view jti, std::string_view user_id, std::string_view tenant_id,
                                        std::chrono::system_clock::time_point issued_at) = 0;
};

// The tenant id of the epoch that refuses a user's tokens issued without a tenant (a super admin signed in without
// one): revoke_member(user, k_no_tenant, ...). Tenant ids are UUIDs, so it names no tenant.
inline constexpr std::string_view k_no_tenant = "-";

// One process's revocations, in memory: not shared between Atrium instances and lost on restart. Reads the time
// from `clock`, which must outlive the store. Bounded: jtis and member epochs are kept in two tables of at most
// `max_entries` unexpired entries each (at least 1); expired entries are purged as new ones arrive, and when a table
// is full, its entry expiring soonest is forgotten to make room.
std::unique_ptr<RevocationStore> make_memory_revocation_store(const Clock& clock, std::size_t max_entries = 1'000'000);

// Revocations in Redis (RESP2, Redis >= 2.6.12), shared by every instance using the same server, database and
// prefix: `SET <key_prefix><jti> 1 PX <ms until expires_at by clock>` and `EXISTS <key_prefix><jti>`. A member
// epoch is `<key_prefix>m:<user id>:<tenant id>` holding the epoch in milliseconds since 1970, expiring at
// keep_until (a Lua script keeps the later epoch and expiry); check() is one `MGET` of the jti's key and the
// member's key.
//
// `redis_url` is redis://[[user]:password@]host[:port][/db] (port 6379 and db 0 by default; the password may be
// percent-encoded; IPv6 hosts in brackets). A malformed URL or a non-positive timeout is invalid_argument. Redis
// need not be up yet: connections are made on first use, kept in a small pool, and dropped and remade after any
// error, so calls fail with unavailable while Redis is down and succeed again once it is back.
//
// Each call finishes within about `timeout` (connecting, AUTH/SELECT and the command share one deadline; a pooled
// connection found dead is replaced once within it). Host names are resolved without a timeout: prefer addresses.
// `clock` must outlive the store.
Result<std::unique_ptr<RevocationStore>> make_redis_revocation_store(
    const std::string& redis_url, const Clock& clock,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(500), std::string key_prefix = "atrium:revoked:");

// The durable record of revocations is the control plane's `revoked_tokens` (key, expires_at), which an in-process
// store reloads at start. A key is a jti, or a member epoch: "member:<user id>:<tenant id>:<epoch ms>" (the jtis
// Atrium issues are UUIDs, which never start so), expiring at keep_until.
std::string member_revocation_key(std::string_view user_id, std::string_view tenant_id,
                                  std::chrono::system_clock::time_point at);
// Puts one such row back into `store`: revoke_member for a member epoch's key, else revoke. Errors: as theirs, and
// invalid_argument for a malformed member key.
Result<void> restore_revocation(RevocationStore& store, std::string_view key,
                                std::chrono::system_clock::time_point expires_at);

namespace detail {

// Shared by both stores: 1-128 characters in 0x21-0x7E, else invalid_argument.
Result<void> validate_jti(std::string_view jti);
// The same for a user id and a tenant id, which must not contain ':' either (they are joined by one).
Result<void> validate_member(std::string_view user_id, std::string_view tenant_id);
// Milliseconds since 1970, rounded down.
std::int64_t epoch_ms(std::chrono::system_clock::time_point t);

}  // namespace detail

}  // namespace atrium::identity
