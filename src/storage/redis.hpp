#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace atrium::storage {

// Where a Redis server is: redis://[[user]:password@]host[:port][/db] (port 6379 and db 0 by default; the
// password may be percent-encoded; IPv6 hosts in brackets).
struct RedisEndpoint {
  std::string host;
  int port = 6379;
  std::string user;      // empty: the default user
  std::string password;  // empty: no AUTH
  bool auth = false;
  long db = 0;
};

// invalid_argument on a malformed URL (TLS, query strings, a bad port or database); messages never repeat the
// password.
Result<RedisEndpoint> parse_redis_url(std::string_view url);

// One RESP2 reply. Error replies are values here, not failures: the server answered.
struct RedisReply {
  enum class Type { nil, string, status, integer, array, error };
  Type type = Type::nil;
  std::int64_t integer = 0;
  std::string text;                  // string, status and error replies
  std::vector<RedisReply> elements;  // array replies
};

// Commands to one Redis server (RESP2, hiredis underneath) over a small pool of blocking connections, made on
// first use, so the server need not be up yet. Each call finishes within about `timeout`: connecting, AUTH and
// SELECT and the command share one deadline, and a pooled connection found dead (Redis restarted while it was
// idle) is replaced once within it. A connection that failed is dropped; at most `max_idle` are kept. Host names
// are resolved without a timeout: prefer addresses. Thread-safe; SIGPIPE is blocked around socket writes.
class RedisClient {
 public:
  RedisClient(RedisEndpoint endpoint, std::chrono::milliseconds timeout, std::size_t max_idle = 16);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command (binary-safe arguments; the first is the command name) and returns its reply. Errors:
  // unavailable when the server cannot be reached, times out, refuses AUTH or SELECT, or the connection breaks.
  Result<RedisReply> command(std::initializer_list<std::string_view> args);

  const RedisEndpoint& endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::storage
