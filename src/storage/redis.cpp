#include "storage/redis.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "core/sigpipe.hpp"

namespace atrium::storage {

namespace {

// Socket deadlines are physical time, so they use the steady clock directly.
using Deadline = std::chrono::steady_clock::time_point;

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

RedisReply convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::string; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::status; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::error; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::integer; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::array; break;
    default: out.type = RedisReply::Type::nil; break;
  }
  if (out.type == RedisReply::Type::string || out.type == RedisReply::Type::status ||
      out.type == RedisReply::Type::error) {
    out.text.assign(r.str, r.len);
  } else if (out.type == RedisReply::Type::integer) {
    out.integer = r.integer;
  } else if (out.type == RedisReply::Type::array) {
    out.elements.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
  }
  return out;
}

// A round trip that failed on the connection itself (closed, timed out, out of step): it must be dropped.
Error broken(redisContext* c, std::string_view what) {
  return Error{Errc::unavailable, fmt::format("redis {}: {}", what, c->errstr)};
}

// Sends one command and reads its reply within `deadline`; nullopt-free: a failure means the connection broke.
Result<RedisReply> round_trip(redisContext* c, Deadline deadline, std::initializer_list<std::string_view> args) {
  const auto left = remaining(deadline);
  if (!left) return fail(Errc::unavailable, "redis: timed out");
  if (redisSetTimeout(c, to_timeval(*left)) != REDIS_OK) return std::unexpected(broken(c, "set timeout"));
  const char* argv[16];
  std::size_t lengths[16];
  std::vector<const char*> argv_heap;
  std::vector<std::size_t> lengths_heap;
  const char** argv_ptr = argv;
  std::size_t* lengths_ptr = lengths;
  if (args.size() > 16) {
    argv_heap.resize(args.size());
    lengths_heap.resize(args.size());
    argv_ptr = argv_heap.data();
    lengths_ptr = lengths_heap.data();
  }
  std::size_t i = 0;
  for (const auto arg : args) {
    argv_ptr[i] = arg.data();
    lengths_ptr[i] = arg.size();
    ++i;
  }
  ReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv_ptr, lengths_ptr)));
  if (!reply) return std::unexpected(broken(c, args.size() > 0 ? *args.begin() : std::string_view("command")));
  return convert(*reply);
}

}  // namespace

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

struct RedisClient::Impl {
  RedisEndpoint endpoint;
  std::chrono::milliseconds timeout;
  std::size_t max_idle;
  std::mutex mutex;
  std::vector<ContextPtr> idle;  // guarded by mutex; most recently used last

  ContextPtr take_idle() {
    std::lock_guard lock(mutex);
    if (idle.empty()) return nullptr;
    ContextPtr c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  void give_back(ContextPtr c) {
    std::lock_guard lock(mutex);
    if (idle.size() < max_idle) idle.push_back(std::move(c));
  }

  // A reply to AUTH or SELECT that is an error refuses the connection.
  Result<void> setup_command(redisContext* c, Deadline deadline, std::initializer_list<std::string_view> args) {
    auto reply = round_trip(c, deadline, args);
    if (!reply) return std::unexpected(reply.error());
    if (reply->type == RedisReply::Type::error) {
      return fail(Errc::unavailable, fmt::format("redis refused {}: {}", *args.begin(), reply->text));
    }
    return {};
  }

  Result<ContextPtr> connect(Deadline deadline) {
    const auto left = remaining(deadline);
    if (!left) return fail(Errc::unavailable, "redis: timed out");
    ContextPtr c(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, to_timeval(*left)));
    if (!c) return fail(Errc::unavailable, "redis: out of memory");
    if (c->err != 0) {
      return fail(Errc::unavailable,
                  fmt::format("redis connect to {}:{}: {}", endpoint.host, endpoint.port, c->errstr));
    }
    if (endpoint.auth) {
      auto done = endpoint.user.empty() ? setup_command(c.get(), deadline, {"AUTH", endpoint.password})
                                        : setup_command(c.get(), deadline, {"AUTH", endpoint.user, endpoint.password});
      if (!done) return std::unexpected(done.error());
    }
    if (endpoint.db != 0) {
      const std::string db = std::to_string(endpoint.db);
      if (auto done = setup_command(c.get(), deadline, {"SELECT", db}); !done) return std::unexpected(done.error());
    }
    return c;
  }
};

RedisClient::RedisClient(RedisEndpoint endpoint, std::chrono::milliseconds timeout, std::size_t max_idle)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = std::move(endpoint);
  impl_->timeout = timeout;
  impl_->max_idle = max_idle;
}

RedisClient::~RedisClient() = default;

const RedisEndpoint& RedisClient::endpoint() const { return impl_->endpoint; }

Result<RedisReply> RedisClient::command(std::initializer_list<std::string_view> args) {
  const SigpipeGuard guard;
  const Deadline deadline = std::chrono::steady_clock::now() + impl_->timeout;
  ContextPtr c = impl_->take_idle();
  const bool reused = c != nullptr;
  for (int attempt = 0;; ++attempt) {
    if (!c) {
      auto fresh = impl_->connect(deadline);
      if (!fresh) return std::unexpected(fresh.error());
      c = std::move(*fresh);
    }
    auto reply = round_trip(c.get(), deadline, args);
    if (reply) {
      impl_->give_back(std::move(c));
      return reply;
    }
    c.reset();
    // A pooled connection may have died while idle; one fresh try, if time is left.
    if (!reused || attempt > 0 || !remaining(deadline)) return std::unexpected(reply.error());
  }
}

}  // namespace atrium::storage
