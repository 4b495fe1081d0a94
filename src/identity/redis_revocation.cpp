#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/sigpipe.hpp"
#include "identity/revocation.hpp"

namespace atrium::identity {

namespace {

using TimePoint = std::chrono::system_clock::time_point;
// Socket deadlines are physical time, so they use the steady clock directly; the injected Clock decides expiry.
using Deadline = std::chrono::steady_clock::time_point;

constexpr std::size_t k_max_idle = 16;

struct RedisEndpoint {
  std::string host;
  int port = 6379;
  std::string user;      // empty: the default user
  std::string password;  // empty: no AUTH
  bool auth = false;
  long db = 0;
};

std::optional<long> parse_number(std::string_view text, long max) {
  long value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > max) return std::nullopt;
  return value;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (ec != std::errc() || end != text.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// redis://[[user]:password@]host[:port][/db]. Messages never repeat the password.
Result<RedisEndpoint> parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.starts_with("rediss://")) return fail(Errc::invalid_argument, "redis URL: TLS (rediss://) is not supported");
  if (!url.starts_with(scheme)) return fail(Errc::invalid_argument, "redis URL must start with redis://");
  std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail(Errc::invalid_argument, "redis URL: query and fragment are not supported");
  }
  RedisEndpoint endpoint;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view path = rest.substr(slash + 1);
    if (!path.empty()) {
      const auto db = parse_number(path, 1'000'000);
      if (!db) return fail(Errc::invalid_argument, "redis URL: the path must be a database number");
      endpoint.db = *db;
    }
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return fail(Errc::invalid_argument, "redis URL: credentials must be [user]:password@");
    }
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) return fail(Errc::invalid_argument, "redis URL: bad percent-encoding in the credentials");
    endpoint.user = std::move(*user);
    endpoint.password = std::move(*password);
    endpoint.auth = true;
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(Errc::invalid_argument, "redis URL: unterminated IPv6 address");
    endpoint.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail(Errc::invalid_argument, "redis URL: bad text after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return fail(Errc::invalid_argument, "redis URL: empty port");
    }
  } else {
    const auto colon = authority.find(':');
    endpoint.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return fail(Errc::invalid_argument, "redis URL: empty port");
    }
  }
  if (endpoint.host.empty()) return fail(Errc::invalid_argument, "redis URL: missing host");
  if (!port.empty()) {
    const auto number = parse_number(port, 65535);
    if (!number || *number == 0) return fail(Errc::invalid_argument, "redis URL: port must be 1-65535");
    endpoint.port = static_cast<int>(*number);
  }
  return endpoint;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  ms = std::max(ms, std::chrono::milliseconds(1));
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// Time left until `deadline`, or nullopt when it has passed.
std::optional<std::chrono::milliseconds> remaining(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return std::nullopt;
  return left;
}

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// A failed round trip. `broken`: the connection is out of step or closed and must be dropped; otherwise Redis
// answered with an error reply and the connection stays usable.
struct Failure {
  Error error;
  bool broken = true;
};

template <class T>
using Attempt = std::expected<T, Failure>;

std::unexpected<Failure> broken_connection(redisContext* c, std::string_view what) {
  return std::unexpected(Failure{Error{Errc::unavailable, fmt::format("redis {}: {}", what, c->errstr)}, true});
}

// Sends one command (binary-safe arguments) and reads its reply, within `deadline`.
Attempt<ReplyPtr> command(redisContext* c, Deadline deadline, std::initializer_list<std::string_view> args) {
  const auto left = remaining(deadline);
  if (!left) return std::unexpected(Failure{Error{Errc::unavailable, "redis: timed out"}, true});
  if (redisSetTimeout(c, to_timeval(*left)) != REDIS_OK) return broken_connection(c, "set timeout");
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  ReplyPtr reply(
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  if (!reply) return broken_connection(c, std::string_view(argv.front(), lengths.front()));
  if (reply->type == REDIS_REPLY_ERROR) {
    return std::unexpected(Failure{
        Error{Errc::unavailable, fmt::format("redis refused {}: {}", std::string_view(argv.front(), lengths.front()),
                                             std::string_view(reply->str, reply->len))},
        false});
  }
  return reply;
}

class RedisRevocationStore final : public RevocationStore {
 public:
  RedisRevocationStore(RedisEndpoint endpoint, const Clock& clock, std::chrono::milliseconds timeout,
                       std::string key_prefix)
      : endpoint_(std::move(endpoint)), clock_(clock), timeout_(timeout), key_prefix_(std::move(key_prefix)) {}

  Result<void> revoke(std::string_view jti, TimePoint expires_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return valid;
    const auto ttl = std::chrono::ceil<std::chrono::milliseconds>(expires_at - clock_.now());
    if (ttl.count() <= 0) return {};
    const std::string key = key_prefix_ + std::string(jti);
    const std::string ms = std::to_string(ttl.count());
    auto done = run([&](redisContext* c, Deadline deadline) -> Attempt<bool> {
      auto reply = command(c, deadline, {"SET", key, "1", "PX", ms});
      if (!reply) return std::unexpected(reply.error());
      if ((*reply)->type != REDIS_REPLY_STATUS) {
        return std::unexpected(Failure{Error{Errc::unavailable, "redis SET: unexpected reply"}, true});
      }
      return true;
    });
    if (!done) return std::unexpected(done.error());
    return {};
  }

  Result<bool> is_revoked(std::string_view jti) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const std::string key = key_prefix_ + std::string(jti);
    return run([&](redisContext* c, Deadline deadline) -> Attempt<bool> {
      auto reply = command(c, deadline, {"EXISTS", key});
      if (!reply) return std::unexpected(reply.error());
      if ((*reply)->type != REDIS_REPLY_INTEGER) {
        return std::unexpected(Failure{Error{Errc::unavailable, "redis EXISTS: unexpected reply"}, true});
      }
      return (*reply)->integer > 0;
    });
  }

 private:
  // Runs `op` on a pooled connection (or a new one) within one deadline of timeout_. A broken connection is
  // dropped; when it came from the pool (it may have died while idle, e.g. Redis restarted) the op is tried once
  // more on a fresh connection if time is left.
  template <class Op>
  Result<bool> run(Op&& op) {
    const SigpipeGuard guard;
    const Deadline deadline = std::chrono::steady_clock::now() + timeout_;
    ContextPtr c = take_idle();
    const bool reused = c != nullptr;
    for (int attempt = 0;; ++attempt) {
      if (!c) {
        auto fresh = connect(deadline);
        if (!fresh) return std::unexpected(fresh.error());
        c = std::move(*fresh);
      }
      auto result = op(c.get(), deadline);
      if (result) {
        give_back(std::move(c));
        return *result;
      }
      if (!result.error().broken) {
        give_back(std::move(c));
        return std::unexpected(std::move(result.error().error));
      }
      c.reset();
      if (!reused || attempt > 0 || !remaining(deadline)) return std::unexpected(std::move(result.error().error));
    }
  }

  Result<ContextPtr> connect(Deadline deadline) {
    const auto left = remaining(deadline);
    if (!left) return fail(Errc::unavailable, "redis: timed out");
    ContextPtr c(redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, to_timeval(*left)));
    if (!c) return fail(Errc::unavailable, "redis: out of memory");
    if (c->err != 0) {
      return fail(Errc::unavailable,
                  fmt::format("redis connect to {}:{}: {}", endpoint_.host, endpoint_.port, c->errstr));
    }
    if (endpoint_.auth) {
      auto reply = endpoint_.user.empty() ? command(c.get(), deadline, {"AUTH", endpoint_.password})
                                          : command(c.get(), deadline, {"AUTH", endpoint_.user, endpoint_.password});
      if (!reply) return std::unexpected(std::move(reply.error().error));
    }
    if (endpoint_.db != 0) {
      auto reply = command(c.get(), deadline, {"SELECT", std::to_string(endpoint_.db)});
      if (!reply) return std::unexpected(std::move(reply.error().error));
    }
    return c;
  }

  ContextPtr take_idle() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return nullptr;
    ContextPtr c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }

  void give_back(ContextPtr c) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < k_max_idle) idle_.push_back(std::move(c));
  }

  const RedisEndpoint endpoint_;
  const Clock& clock_;
  const std::chrono::milliseconds timeout_;
  const std::string key_prefix_;
  std::mutex mutex_;
  std::vector<ContextPtr> idle_;  // guarded by mutex_; most recently used last
};

}  // namespace

Result<std::unique_ptr<RevocationStore>> make_redis_revocation_store(const std::string& redis_url, const Clock& clock,
                                                                     std::chrono::milliseconds timeout,
                                                                     std::string key_prefix) {
  if (timeout.count() <= 0) return fail(Errc::invalid_argument, "redis timeout must be positive");
  auto endpoint = parse_redis_url(redis_url);
  if (!endpoint) return std::unexpected(endpoint.error());
  return std::make_unique<RedisRevocationStore>(std::move(*endpoint), clock, timeout, std::move(key_prefix));
}

}  // namespace atrium::identity
