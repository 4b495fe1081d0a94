#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/dispatcher.hpp"

namespace atrium::gateway {

// Dated API versions (Stripe-style): a client pins the response shapes it was written against with the request
// header `Atrium-Version: <date>`. Paths stay /v1; a version changes shapes, never meaning.
struct ApiVersion {
  std::string_view name;                            // "2026-11-01": the Atrium-Version value
  std::optional<std::chrono::sys_days> deprecated;  // set: answers carry Deprecation, Sunset and Link
  std::optional<std::chrono::sys_days> sunset;      // the day after which the version may no longer be served
};

// The version whose list responses used "items" where later versions use "data" (GET /v1/projects).
inline constexpr std::string_view k_version_2026_06_01 = "2026-06-01";
inline constexpr std::string_view k_version_2026_11_01 = "2026-11-01";

// Every known version, oldest first; the last is the current one.
std::span<const ApiVersion> api_versions();
// The version a request without Atrium-Version gets.
const ApiVersion& current_api_version();
// nullptr when `name` is not a known version.
const ApiVersion* find_api_version(std::string_view name);

// For requests under /v1: reads Atrium-Version (absent: the current version) into request.api_version, which
// handlers compare (dates in this format order as strings), and echoes it on the response. An unknown version is
// answered 400 problem+json (type /problems/unsupported-api-version) whose `known_versions` lists the known ones.
// A deprecated version's answers also carry `Deprecation: @<unix seconds>` (RFC 9745), `Sunset: <HTTP-date>`
// (RFC 8594) and `Link: <docs_url>; rel="deprecation"`. Other paths (/health, /metrics, ...) are unversioned.
// Place it before the security middleware, so 401 and 403 answers are versioned too.
http::Middleware versioning_middleware(std::string docs_url);

// "Sat, 01 May 2027 00:00:00 GMT" (RFC 9110 IMF-fixdate).
std::string http_date(std::chrono::sys_days day);

}  // namespace atrium::gateway
