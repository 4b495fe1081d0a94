// The shared limiter: the same GCRA step as detail::gcra, in microseconds, inside one Lua script per decision.
#include <openssl/evp.h>

#include <fmt/format.h>

#include "gateway/rate_limiter.hpp"
#include "storage/redis.hpp"

namespace atrium::gateway {

namespace {

// KEYS[1]: the key. ARGV: interval (microseconds per unit), burst, cost (already clamped), and optionally the time
// in microseconds (tests; otherwise Redis's TIME). Stores the TAT as an integer string with a PX expiry at the
// TAT. Returns {allowed, remaining, retry_after_us, reset_after_us}. Lua numbers are doubles: microsecond times
// (about 2^51 today) stay exact, nanoseconds would not. redis.replicate_commands lets a script that read TIME
// write on Redis before 5 (from 5 on it is the default; in 7 a no-op).
constexpr std::string_view k_script = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local window = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, math.floor((now + window - tat) / interval), allow_at - now, tat - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
)lua";

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  std::string out;
  out.reserve(length * 2);
  for (unsigned i = 0; i < length; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

class RedisRateLimiter final : public RateLimiter {
 public:
  RedisRateLimiter(storage::RedisEndpoint endpoint, RedisLimiterOptions options)
      : redis_(std::move(endpoint), options.timeout),
        prefix_(std::move(options.key_prefix)),
        clock_(options.clock),
        sha_(sha1_hex(k_script)) {}

  Result<Decision> decide(std::string_view key, const Limit& limit, std::int64_t cost) override {
    const std::int64_t interval = std::max<std::int64_t>(1, 1'000'000 / limit.rate);
    cost = std::clamp<std::int64_t>(cost, 1, limit.burst);
    const std::string full_key = prefix_ + std::string(key);
    const std::string interval_arg = std::to_string(interval);
    const std::string burst_arg = std::to_string(limit.burst);
    const std::string cost_arg = std::to_string(cost);
    std::string now_arg;
    if (clock_ != nullptr) {
      now_arg = std::to_string(
          std::chrono::duration_cast<std::chrono::microseconds>(clock_->now().time_since_epoch()).count());
    }
    auto run = [&](std::string_view verb, std::string_view script) {
      return clock_ != nullptr
                 ? redis_.command({verb, script, "1", full_key, interval_arg, burst_arg, cost_arg, now_arg})
                 : redis_.command({verb, script, "1", full_key, interval_arg, burst_arg, cost_arg});
    };
    auto reply = run("EVALSHA", sha_);
    if (reply && reply->type == storage::RedisReply::Type::error && reply->text.starts_with("NOSCRIPT")) {
      reply = run("EVAL", k_script);
    }
    if (!reply) return std::unexpected(reply.error());
    if (reply->type == storage::RedisReply::Type::error) {
      return fail(Errc::unavailable, "redis refused the rate-limit script: " + reply->text);
    }
    if (reply->type != storage::RedisReply::Type::array || reply->elements.size() != 4) {
      return fail(Errc::unavailable, "redis: unexpected reply to the rate-limit script");
    }
    for (const auto& e : reply->elements) {
      if (e.type != storage::RedisReply::Type::integer) {
        return fail(Errc::unavailable, "redis: unexpected reply to the rate-limit script");
      }
    }
    Decision d;
    d.allowed = reply->elements[0].integer == 1;
    d.limit = limit.burst;
    d.remaining = reply->elements[1].integer;
    d.retry_after = std::chrono::microseconds(reply->elements[2].integer);
    d.reset_after = std::chrono::microseconds(reply->elements[3].integer);
    return d;
  }

 private:
  storage::RedisClient redis_;
  const std::string prefix_;
  const Clock* clock_;
  const std::string sha_;
};

}  // namespace

std::string_view detail::redis_rate_limit_script() { return k_script; }

Result<std::unique_ptr<RateLimiter>> make_redis_rate_limiter(const std::string& redis_url,
                                                             RedisLimiterOptions options) {
  if (options.timeout.count() <= 0) return fail(Errc::invalid_argument, "redis timeout must be positive");
  auto endpoint = storage::parse_redis_url(redis_url);
  if (!endpoint) return std::unexpected(endpoint.error());
  return std::make_unique<RedisRateLimiter>(std::move(*endpoint), std::move(options));
}

}  // namespace atrium::gateway
