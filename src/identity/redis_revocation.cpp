#include <charconv>
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

// KEYS[1]: a member's epoch key. ARGV: the epoch (ms since 1970) and the ms until keep_until (positive). Keeps the
// later epoch and the later expiry of what is there and what is asked. Lua numbers are doubles: millisecond times
// (about 2^41) are exact.
constexpr std::string_view k_revoke_member_script = R"lua(
local epoch = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current and current > epoch then epoch = current end
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], string.format('%d', epoch), 'PX', string.format('%d', ttl))
return 1
)lua";

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

  Result<void> revoke_member(std::string_view user_id, std::string_view tenant_id, TimePoint at,
                             TimePoint keep_until) override {
    if (auto valid = detail::validate_member(user_id, tenant_id); !valid) return valid;
    const auto ttl = std::chrono::ceil<std::chrono::milliseconds>(keep_until - clock_.now());
    if (ttl.count() <= 0) return {};
    const std::string key = member_key(user_id, tenant_id);
    const std::string epoch = std::to_string(detail::epoch_ms(at));
    const std::string ms = std::to_string(ttl.count());
    auto done = expect(redis_.command({"EVAL", k_revoke_member_script, "1", key, epoch, ms}),
                       storage::RedisReply::Type::integer, "EVAL");
    if (!done) return std::unexpected(done.error());
    return {};
  }

  Result<TokenRevocation> check(std::string_view jti, std::string_view user_id, std::string_view tenant_id,
                                TimePoint issued_at) override {
    if (auto valid = detail::validate_jti(jti); !valid) return std::unexpected(valid.error());
    const std::string_view scope = tenant_id.empty() ? k_no_tenant : tenant_id;
    if (auto valid = detail::validate_member(user_id, scope); !valid) return std::unexpected(valid.error());
    const std::string jti_key = key_prefix_ + std::string(jti);
    auto reply =
        expect(redis_.command({"MGET", jti_key, member_key(user_id, scope)}), storage::RedisReply::Type::array, "MGET");
    if (!reply) return std::unexpected(reply.error());
    if (reply->elements.size() != 2u) return fail(Errc::unavailable, "redis MGET: unexpected reply");
    for (const auto& element : reply->elements) {
      if (element.type != storage::RedisReply::Type::nil && element.type != storage::RedisReply::Type::string) {
        return fail(Errc::unavailable, "redis MGET: unexpected reply");
      }
    }
    if (reply->elements[0].type == storage::RedisReply::Type::string) return TokenRevocation::token;
    if (reply->elements[1].type == storage::RedisReply::Type::nil) return TokenRevocation::none;
    // The epoch as the script wrote it; anything else is unusable, and unusable fails closed.
    const std::string& text = reply->elements[1].text;
    std::int64_t epoch = 0;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), epoch);
    if (text.empty() || parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || epoch < 0) {
      return fail(Errc::unavailable, "redis: malformed member epoch");
    }
    return detail::epoch_ms(issued_at) < epoch ? TokenRevocation::member : TokenRevocation::none;
  }

 private:
  std::string member_key(std::string_view user_id, std::string_view tenant_id) const {
    std::string key = key_prefix_ + "m:";
    key.append(user_id).append(":").append(tenant_id);
    return key;
  }

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
