#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace atrium::identity {

// Revoked access-token ids (jti) until their expiry. Implementations are thread-safe and never throw (beyond
// std::bad_alloc).
//
// A jti is 1-128 printable ASCII characters without spaces (0x21-0x7E); anything else is invalid_argument.
// Revocation lasts while clock.now() < expires_at; after that the token's own exp rejects it.
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
};

// One process's revocations, in memory: not shared between Atrium instances and lost on restart. Reads the time
// from `clock`, which must outlive the store. Bounded: expired entries are purged as new ones arrive, and when
// `max_entries` unexpired entries are held (at least 1), the one expiring soonest is forgotten to make room.
std::unique_ptr<RevocationStore> make_memory_revocation_store(const Clock& clock, std::size_t max_entries = 1'000'000);

// Revocations in Redis (RESP2, Redis >= 2.6.12), shared by every instance using the same server, database and
// prefix: `SET <key_prefix><jti> 1 PX <ms until expires_at by clock>` and `EXISTS <key_prefix><jti>`.
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

namespace detail {

// Shared by both stores: 1-128 characters in 0x21-0x7E, else invalid_argument.
Result<void> validate_jti(std::string_view jti);

}  // namespace detail

}  // namespace atrium::identity
