#include "api/support.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include "core/json_input.hpp"
#include "core/log.hpp"
#include "http/problem.hpp"
#include "identity/principal.hpp"
#include "identity/token_service.hpp"
#include "tenancy/idempotency.hpp"

namespace atrium::api {

Result<std::optional<std::string>> idempotency_key(const http::Request& req) {
  const auto header = req.headers.get("Idempotency-Key");
  if (!header) return std::nullopt;
  auto key = tenancy::parse_idempotency_key_header(*header);
  if (!key) {
    return fail(Errc::invalid_argument,
                "Idempotency-Key must be 1-255 visible ASCII characters, bare or as a quoted string");
  }
  return key;
}

http::Response no_content() {
  http::Response res;
  res.status = 204;
  return res;
}

http::Response quota_exceeded(std::string_view quota, std::int64_t limit, std::int64_t used, const http::Request& req) {
  return http::problem(403, "quota-exceeded", "Quota exceeded",
                       "The hard quota " + std::string(quota) + " allows " + std::to_string(limit) + " " +
                           std::string(quota) + "; the tenant has " + std::to_string(used) + ".",
                       req, {{"quota", quota}, {"limit", limit}, {"used", used}});
}

http::Response error_response(const Error& error, const http::Request& req) {
  switch (error.code) {
    case Errc::invalid_argument: return http::problem(400, "validation", "Invalid Request", error.message, req);
    case Errc::unauthenticated: {
      http::Response r = http::problem(401, "unauthenticated", "Unauthorized", error.message, req);
      r.headers.set("WWW-Authenticate", "Bearer realm=\"atrium\"");
      return r;
    }
    case Errc::forbidden: return http::problem(403, "forbidden", "Forbidden", error.message, req);
    case Errc::not_found: return http::problem(404, "not-found", "Not Found", error.message, req);
    case Errc::conflict:
    case Errc::unique_violation: return http::problem(409, "conflict", "Conflict", error.message, req);
    case Errc::rate_limited: {
      http::Response r = http::problem(429, "rate-limited", "Too Many Requests", error.message, req);
      r.headers.set("Retry-After", "60");
      return r;
    }
    case Errc::unavailable:
    case Errc::timeout:
    case Errc::serialization_failure:
    case Errc::connection_lost: {
      log::warn("dependency unavailable", {{"request_id", req.request_id}, {"error", error.message}});
      http::Response r =
          http::problem(503, "unavailable", "Service Unavailable", "A dependency is unavailable; retry shortly.", req);
      r.headers.set("Retry-After", "1");
      return r;
    }
    case Errc::internal: break;
  }
  log::error("internal error", {{"request_id", req.request_id}, {"error", error.message}});
  return http::problem(500, "internal", "Internal Server Error", "The server failed to handle the request.", req);
}

Result<const Json*> body_object(const http::Request& request, std::initializer_list<std::string_view> allowed) {
  if (!request.json) return fail(Errc::invalid_argument, "the body must be a JSON object");
  if (auto r = json_input::only_members(*request.json, allowed); !r) return std::unexpected(r.error());
  return &*request.json;
}

Result<std::optional<std::string>> string_member(const Json& object, std::string_view name, bool required) {
  auto v = json_input::text(object, name, std::numeric_limits<std::size_t>::max());
  if (v && !*v && required) return fail(Errc::invalid_argument, std::string(name) + " is required");
  return v;
}

std::string printable_text(std::string_view raw, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(raw.size(), max_bytes));
  for (std::size_t i = 0; i < raw.size() && out.size() < max_bytes;) {
    const auto c = static_cast<unsigned char>(raw[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = n != 0 && i + n <= raw.size() && out.size() + n <= max_bytes;
    for (std::size_t k = 1; valid && k < n; ++k) valid = (static_cast<unsigned char>(raw[i + k]) & 0xC0) == 0x80;
    if (valid && n == 1 && (c < 0x20 || c == 0x7F)) valid = false;  // control characters
    if (!valid) {
      out.push_back('?');
      ++i;
      continue;
    }
    out.append(raw.substr(i, n));
    i += n;
  }
  return out;
}

audit::Context audit_context(const http::Request& request) {
  audit::Context c;
  c.actor_type = audit::ActorType::user;
  if (const auto& p = request.principal) {
    c.actor_id = p->subject;
    c.session_id = p->jti;
    if (p->kind == identity::Principal::Kind::api_key) {
      c.actor_type = audit::ActorType::api_key;
    } else if (p->super_admin) {
      c.actor_type = audit::ActorType::super_admin;
    }
  }
  c.actor_ip = request.remote_address;
  c.user_agent = printable_text(request.headers.get("User-Agent").value_or(""), 512);
  c.request_id = request.request_id;
  return c;
}

Result<std::optional<std::int64_t>> int_param(const http::Request& request, std::string_view name, std::int64_t min,
                                              std::int64_t max) {
  auto text = request.query_param(name);
  if (!text) return std::nullopt;
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size() || v < min || v > max) {
    return fail(Errc::invalid_argument,
                std::string(name) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return v;
}

Result<PageParams> page_params(const http::Request& request) {
  PageParams p;
  auto limit = int_param(request, "limit", 1, 100);
  if (!limit) return std::unexpected(limit.error());
  if (*limit) p.limit = static_cast<int>(**limit);
  if (auto cursor = request.query_param("cursor"); cursor && !cursor->empty()) p.cursor = *cursor;
  return p;
}

}  // namespace atrium::api
