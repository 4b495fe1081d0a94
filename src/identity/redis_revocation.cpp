#include <memory>
#include <string>

#include <fmt/format.h>

#include "identity/revocation.hpp"
#include "storage/redis.hpp"

namespace atrium::identity {

namespace {

using TimePoint = std::chrono::system_clock::time_point;

// A reply of the wrong kind (an error reply included) is unavailable: callers fail closed.
Result<storage::RedisReply> expect(Result<storage::RedisReply> reply, storage::RedisReply::Type type,
                                   std::string_view command) {
  if (!reply) return reply;
  if (reply->type == storage::RedisReply::Type::error) {
    return fail(Errc::unavailable, fmt::format("redis refused {}: {}", command, reply->text));
  }
  if (reply->type != type) return fail(Errc::unavailable, fmt::format("redis {}: unexpected reply", command));
  return reply;
}

class RedisRevocationStore final : public RevocationStore {
 public:
  RedisRevocationStore(storage::RedisEndpoint endpoint, const Clock& clock, std::chrono::milliseconds timeout,
                       std::string key_prefix)
      : redis_(std::move(endpoint), timeout), clock_(clock), key_prefix_(std::move(key_prefix)) {}

  Result<void> revoke(std::string_view jti, TimePoint expires_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return valid;
    const auto ttl = std::chrono::ceil<std::chrono::milliseconds>(expires_at - clock_.now());
    if (ttl.count() <= 0) return {};
    const std::string key = key_prefix_ + std::string(jti);
    const std::string ms = std::to_string(ttl.count());
    auto done = expect(redis_.command({"SET", key, "1", "PX", ms}), storage::RedisReply::Type::status, "SET");
    if (!done) return std::unexpected(done.error());
    return {};
  }

  Result<bool> is_revoked(std::string_view jti) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const std::string key = key_prefix_ + std::string(jti);
    auto reply = expect(redis_.command({"EXISTS", key}), storage::RedisReply::Type::integer, "EXISTS");
    if (!reply) return std::unexpected(reply.error());
    return reply->integer > 0;
  }

 private:
  storage::RedisClient redis_;
  const Clock& clock_;
  const std::string key_prefix_;
};

}  // namespace

Result<std::unique_ptr<RevocationStore>> make_redis_revocation_store(const std::string& redis_url, const Clock& clock,
                                                                     std::chrono::milliseconds timeout,
                                                                     std::string key_prefix) {
  if (timeout.count() <= 0) return fail(Errc::invalid_argument, "redis timeout must be positive");
  auto endpoint = storage::parse_redis_url(redis_url);
  if (!endpoint) return std::unexpected(endpoint.error());
  return std::make_unique<RedisRevocationStore>(std::move(*endpoint), clock, timeout, std::move(key_prefix));
}

}  // namespace atrium::identity
