#include "gateway/versioning.hpp"

#include <array>

#include <fmt/format.h>

#include "http/problem.hpp"

namespace atrium::gateway {

namespace {

using std::chrono::day;
using std::chrono::month;
using std::chrono::sys_days;
using std::chrono::year;

// Oldest first. A new version goes at the end; the one it replaces gets its deprecation date (the new version's
// release) and a sunset at least six months later, and the change is described in docs/api-versioning.md.
const std::array<ApiVersion, 2> k_versions = {{
    {k_version_2026_06_01, sys_days(year{2026} / 11 / 1), sys_days(year{2027} / 5 / 1)},
    {k_version_2026_11_01, std::nullopt, std::nullopt},
}};

bool versioned_path(std::string_view path) { return path == "/v1" || path.starts_with("/v1/"); }

std::string iso_date(sys_days d) {
  const std::chrono::year_month_day ymd(d);
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

std::string known_versions_text() {
  std::string out;
  for (const ApiVersion& v : k_versions) {
    if (!out.empty()) out += ", ";
    out += v.name;
    if (v.sunset) out += " (deprecated; sunset " + iso_date(*v.sunset) + ")";
  }
  return out;
}

}  // namespace

std::span<const ApiVersion> api_versions() { return k_versions; }

const ApiVersion& current_api_version() { return k_versions.back(); }

const ApiVersion* find_api_version(std::string_view name) {
  for (const ApiVersion& v : k_versions) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

std::string http_date(sys_days day) {
  static constexpr std::string_view k_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::string_view k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::chrono::year_month_day ymd(day);
  const std::chrono::weekday wd(day);
  return fmt::format("{}, {:02} {} {} 00:00:00 GMT", k_days[wd.c_encoding()], static_cast<unsigned>(ymd.day()),
                     k_months[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()));
}

http::Middleware versioning_middleware(std::string docs_url) {
  const std::string link = "<" + docs_url + ">; rel=\"deprecation\"";
  return [link](http::Request& req, const http::Next& next) -> http::Response {
    if (!versioned_path(req.path)) return next(req);
    const ApiVersion* version = &current_api_version();
    if (auto asked = req.headers.get("Atrium-Version")) {
      version = find_api_version(*asked);
      req.api_version_named = true;
      if (version == nullptr) {
        Json known = Json::array();
        for (const ApiVersion& v : api_versions()) known.push_back(v.name);
        return http::problem(400, "unsupported-api-version", "Bad Request",
                             "Atrium-Version must be one of: " + known_versions_text() + ".", req,
                             {{"known_versions", known}});
      }
    }
    req.api_version = version->name;
    http::Response res = next(req);
    // A tenant's pinned version (security middleware) may have replaced the default.
    if (const ApiVersion* chosen = find_api_version(req.api_version)) version = chosen;
    res.headers.set("Atrium-Version", std::string(version->name));
    if (version->deprecated) {
      res.headers.set("Deprecation",
                      fmt::format("@{}", version->deprecated->time_since_epoch() / std::chrono::seconds(1)));
      if (version->sunset) res.headers.set("Sunset", http_date(*version->sunset));
      res.headers.add("Link", link);
    }
    return res;
  };
}

}  // namespace atrium::gateway
