#include "tenancy/settings.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <unordered_set>

#include "core/config.hpp"  // is_origin

namespace atrium::tenancy {

namespace {

constexpr std::size_t k_max_origins = 20;
constexpr std::size_t k_max_event_types = 50;

bool all_of(std::string_view s, auto pred) {
  return std::all_of(s.begin(), s.end(), [&](char c) { return pred(static_cast<unsigned char>(c)); });
}

// BCP 47 in the shape products use: a 2-3 letter language, then subtags of 2-8 letters or digits ("en", "en-US",
// "zh-Hant-TW", "es-419").
bool valid_locale(std::string_view tag) {
  if (tag.empty() || tag.size() > 35) return false;
  std::size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    const std::size_t dash = std::min(tag.find('-', start), tag.size());
    const std::string_view part = tag.substr(start, dash - start);
    if (first ? (part.size() < 2 || part.size() > 3 || !all_of(part, ::isalpha))
              : (part.size() < 2 || part.size() > 8 || !all_of(part, ::isalnum))) {
      return false;
    }
    first = false;
    start = dash + 1;
  }
  return true;
}

bool valid_color(std::string_view c) { return c.size() == 7 && c[0] == '#' && all_of(c.substr(1), ::isxdigit); }

bool valid_https_url(std::string_view u) {
  return u.size() <= 2048 && u.starts_with("https://") && u.size() > 8 &&
         all_of(u, [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

// As webhooks::valid_event_type: "*", or "<resource>.<event>" of a-z, 0-9, '_' and '.'.
bool valid_event_type(std::string_view t) {
  if (t == "*") return true;
  return t.size() <= 100 && t.find('.') != std::string_view::npos && t.front() != '.' && t.back() != '.' &&
         all_of(t, [](unsigned char c) { return std::islower(c) || std::isdigit(c) || c == '.' || c == '_'; });
}

Result<std::string> text(const Json& v, const std::string& member, std::size_t max) {
  if (!v.is_string()) return fail(Errc::invalid_argument, member + " must be a string or null");
  auto s = v.get<std::string>();
  if (s.size() > max)
    return fail(Errc::invalid_argument, member + " must be at most " + std::to_string(max) + " bytes");
  return s;
}

Result<std::vector<std::string>> text_list(const Json& v, const std::string& member, std::size_t max_items,
                                           bool (*valid)(std::string_view), std::string_view form) {
  if (!v.is_array()) return fail(Errc::invalid_argument, member + " must be an array or null");
  if (v.size() > max_items) {
    return fail(Errc::invalid_argument, member + " holds at most " + std::to_string(max_items) + " entries");
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const Json& item : v) {
    if (!item.is_string() || !valid(item.get_ref<const std::string&>())) {
      return fail(Errc::invalid_argument, member + " entries must be " + std::string(form));
    }
    if (seen.insert(item.get<std::string>()).second) out.push_back(item.get<std::string>());
  }
  return out;
}

Result<void> patch_branding(Branding& b, const Json& patch) {
  if (patch.is_null()) {
    b = Branding{};
    return {};
  }
  if (!patch.is_object()) return fail(Errc::invalid_argument, "branding must be an object or null");
  for (const auto& [key, v] : patch.items()) {
    const std::string member = "branding." + key;
    if (key == "display_name") {
      if (v.is_null()) {
        b.display_name.clear();
        continue;
      }
      auto s = text(v, member, 200);
      if (!s) return std::unexpected(s.error());
      b.display_name = std::move(*s);
    } else if (key == "logo_url") {
      if (v.is_null()) {
        b.logo_url.clear();
        continue;
      }
      if (!v.is_string() || !valid_https_url(v.get_ref<const std::string&>())) {
        return fail(Errc::invalid_argument, member + " must be an https URL (at most 2048 bytes) or null");
      }
      b.logo_url = v.get<std::string>();
    } else if (key == "primary_color") {
      if (v.is_null()) {
        b.primary_color.clear();
        continue;
      }
      if (!v.is_string() || !valid_color(v.get_ref<const std::string&>())) {
        return fail(Errc::invalid_argument, member + " must be a color as #rrggbb or null");
      }
      b.primary_color = v.get<std::string>();
    } else {
      return fail(Errc::invalid_argument, "unknown member " + member);
    }
  }
  return {};
}

}  // namespace

Json to_json(const TenantSettings& s) {
  auto or_null = [](const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); };
  return {{"branding",
           {{"display_name", or_null(s.branding.display_name)},
            {"logo_url", or_null(s.branding.logo_url)},
            {"primary_color", or_null(s.branding.primary_color)}}},
          {"locale", s.locale},
          {"timezone", s.timezone},
          {"api_version", or_null(s.api_version)},
          {"cors_origins", s.cors_origins},
          {"embed_frame_ancestors", s.embed_frame_ancestors},
          {"webhooks", {{"default_event_types", s.webhook_event_types}}},
          {"encryption", {{"event_properties", s.encrypt_event_properties}}}};
}

TenantSettings settings_from_json(const Json& stored) {
  TenantSettings s;
  if (!stored.is_object()) return s;
  // The stored form was validated when written: apply it as a patch onto the defaults, dropping what fails (a
  // setting written by a newer version this one does not know).
  for (const auto& [key, v] : stored.items()) {
    Json one = Json::object();
    one[key] = v;
    if (auto applied = patch_settings(s, one)) s = std::move(*applied);
  }
  return s;
}

Result<TenantSettings> patch_settings(const TenantSettings& current, const Json& patch) {
  if (!patch.is_object()) return fail(Errc::invalid_argument, "the body must be a JSON object");
  TenantSettings s = current;
  const TenantSettings defaults;
  for (const auto& [key, v] : patch.items()) {
    if (key == "branding") {
      if (auto r = patch_branding(s.branding, v); !r) return std::unexpected(r.error());
    } else if (key == "locale") {
      if (v.is_null()) {
        s.locale = defaults.locale;
      } else if (!v.is_string() || !valid_locale(v.get_ref<const std::string&>())) {
        return fail(Errc::invalid_argument, "locale must be a BCP 47 language tag such as \"en-US\", or null");
      } else {
        s.locale = v.get<std::string>();
      }
    } else if (key == "timezone") {
      if (v.is_null()) {
        s.timezone = defaults.timezone;
      } else if (!v.is_string() || !known_time_zone(v.get<std::string>())) {
        return fail(Errc::invalid_argument,
                    "timezone must be an IANA time zone name such as \"Europe/Berlin\" (tz database), or null");
      } else {
        s.timezone = v.get<std::string>();
      }
    } else if (key == "api_version") {
      if (v.is_null()) {
        s.api_version.clear();
      } else {
        auto t = text(v, "api_version", 32);
        if (!t) return std::unexpected(t.error());
        s.api_version = std::move(*t);
      }
    } else if (key == "cors_origins") {
      if (v.is_null()) {
        s.cors_origins.clear();
      } else {
        auto list = text_list(v, "cors_origins", k_max_origins, is_origin,
                              "origins as browsers send them, scheme://host[:port] (no \"*\": list each origin)");
        if (!list) return std::unexpected(list.error());
        s.cors_origins = std::move(*list);
      }
    } else if (key == "embed_frame_ancestors") {
      if (v.is_null()) {
        s.embed_frame_ancestors.clear();
      } else {
        auto list = text_list(v, "embed_frame_ancestors", k_max_origins, is_origin,
                              "origins as browsers send them, scheme://host[:port] (no \"*\": list each origin)");
        if (!list) return std::unexpected(list.error());
        s.embed_frame_ancestors = std::move(*list);
      }
    } else if (key == "webhooks") {
      if (v.is_null()) {
        s.webhook_event_types = defaults.webhook_event_types;
        continue;
      }
      if (!v.is_object()) return fail(Errc::invalid_argument, "webhooks must be an object or null");
      for (const auto& [wkey, wv] : v.items()) {
        if (wkey != "default_event_types") return fail(Errc::invalid_argument, "unknown member webhooks." + wkey);
        if (wv.is_null()) {
          s.webhook_event_types = defaults.webhook_event_types;
          continue;
        }
        auto list = text_list(wv, "webhooks.default_event_types", k_max_event_types, valid_event_type,
                              "event types (\"<resource>.<event>\" of a-z, 0-9, '_' and '.', or \"*\")");
        if (!list) return std::unexpected(list.error());
        if (list->empty()) {
          return fail(Errc::invalid_argument, "webhooks.default_event_types must name at least one event type");
        }
        s.webhook_event_types = std::move(*list);
      }
    } else if (key == "encryption") {
      if (v.is_null()) {
        s.encrypt_event_properties = defaults.encrypt_event_properties;
        continue;
      }
      if (!v.is_object()) return fail(Errc::invalid_argument, "encryption must be an object or null");
      for (const auto& [ekey, ev] : v.items()) {
        if (ekey != "event_properties") return fail(Errc::invalid_argument, "unknown member encryption." + ekey);
        if (ev.is_null()) {
          s.encrypt_event_properties = defaults.encrypt_event_properties;
        } else if (!ev.is_boolean()) {
          return fail(Errc::invalid_argument, "encryption.event_properties must be true, false or null");
        } else {
          s.encrypt_event_properties = ev.get<bool>();
        }
      }
    } else {
      return fail(Errc::invalid_argument, "unknown member " + key);
    }
  }
  return s;
}

bool known_time_zone(const std::string& name) {
  if (name == "UTC") return true;
  // Every tenant read checks its stored zone (settings_from_json): a zone found once is remembered, so the tz
  // database is read once per zone and process, not per read. Zones are not removed while a process runs.
  static std::mutex mutex;
  static std::unordered_set<std::string> found;
  {
    std::lock_guard lock(mutex);
    if (found.contains(name)) return true;
  }
  // Names are Area/Location[/More] of letters, digits, '_', '-', '+'; never ".." or an absolute path.
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.find("..") != std::string::npos) return false;
  if (!all_of(name, [](unsigned char c) { return std::isalnum(c) || c == '/' || c == '_' || c == '-' || c == '+'; })) {
    return false;
  }
  std::error_code ec;
  const std::filesystem::path file = std::filesystem::path("/usr/share/zoneinfo") / name;
  if (!std::filesystem::is_regular_file(file, ec)) return false;
  // A compiled zone starts with the "TZif" magic (the folder also holds tables such as zone.tab).
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {};
  const bool tzif = std::fread(magic, 1, 4, f) == 4 && std::string_view(magic, 4) == "TZif";
  std::fclose(f);
  if (tzif) {
    std::lock_guard lock(mutex);
    found.insert(name);
  }
  return tzif;
}

}  // namespace atrium::tenancy
