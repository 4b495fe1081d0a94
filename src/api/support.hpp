#pragma once

// Shared by the HTTP handlers: error mapping, body field checks, pagination parameters.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "core/audit_event.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "http/message.hpp"

namespace atrium::api {

// The problem+json answer for an expected failure: invalid_argument 400, unauthenticated 401 (with
// WWW-Authenticate), forbidden 403, not_found 404, conflict and unique_violation 409, rate_limited 429,
// unavailable / timeout / serialization_failure / connection_lost 503, internal 500 (details logged, not sent).
http::Response error_response(const Error& error, const http::Request& request);
// A creation a hard quota on a counted resource refused: 403 /problems/quota-exceeded with `quota`, `limit` and
// `used` (the count found).
http::Response quota_exceeded(std::string_view quota, std::int64_t limit, std::int64_t used,
                              const http::Request& request);

// 204 No Content.
http::Response no_content();

// The JSON body of a json_body route as an object, refusing members not in `allowed` (400 names the first).
Result<const Json*> body_object(const http::Request& request, std::initializer_list<std::string_view> allowed);

// A member that must be a string when present (`required`: must be present).
Result<std::optional<std::string>> string_member(const Json& object, std::string_view name, bool required);

// The request's Idempotency-Key (tenancy::parse_idempotency_key_header: bare or quoted), nullopt without one;
// invalid_argument when it is malformed.
Result<std::optional<std::string>> idempotency_key(const http::Request& request);

// Who is acting, for the audit log: the request's principal (user, API key or super admin), address, user agent,
// request id and access token id. Before authentication (sign-in) the actor is a user yet to be named.
audit::Context audit_context(const http::Request& request);

// `raw` (a header, a request target) made safe to store: at most `max_bytes`, invalid UTF-8 and control characters
// replaced by '?'.
std::string printable_text(std::string_view raw, std::size_t max_bytes);

// An integer query parameter in [min, max]: nullopt when absent, invalid_argument naming it otherwise.
Result<std::optional<std::int64_t>> int_param(const http::Request& request, std::string_view name, std::int64_t min,
                                              std::int64_t max);

struct PageParams {
  int limit = 20;
  std::optional<std::string> cursor;
};
// ?limit (1-100, default 20) and ?cursor.
Result<PageParams> page_params(const http::Request& request);

}  // namespace atrium::api
