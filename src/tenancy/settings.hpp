#pragma once

#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::tenancy {

// A tenant's own settings, which its owners and admins change (GET/PATCH /v1/settings; docs/tenants.md). Stored in
// the control plane with the tenant, so every request that resolves the tenant has them without another read.
struct Branding {
  std::string display_name;   // "" = the tenant's name
  std::string logo_url;       // https URL, or ""
  std::string primary_color;  // "#rrggbb", or ""
};

struct TenantSettings {
  Branding branding;
  std::string locale = "en-US";  // BCP 47 tag
  std::string timezone = "UTC";  // IANA time zone name
  // The API version the tenant's requests get when they name none (Atrium-Version still overrides it per request);
  // "" = not pinned: the current version.
  std::string api_version;
  // Origins browsers may call the API from when the request's host is one of the tenant's (its subdomain of
  // tenancy.base_domain or a verified custom domain), besides server.cors_origins.
  std::vector<std::string> cors_origins;
  // Origins whose pages may show the tenant's embedded console dashboards in a frame (the embed page's CSP
  // frame-ancestors); empty = no page may frame them.
  std::vector<std::string> embed_frame_ancestors;
  // Event types a webhook endpoint created without `event_types` subscribes to ("*" = every type).
  std::vector<std::string> webhook_event_types{"*"};
  // Whether the properties of the tenant's usage and product events are encrypted at rest with its data keys
  // (docs/data-protection.md): new events from when it is set (within the tenant cache's life on other instances);
  // `atrium keys reencrypt` seals the ones stored before.
  bool encrypt_event_properties = false;
};

Json to_json(const TenantSettings& s);
// The stored form (what to_json wrote) back; members missing or unreadable keep their defaults.
TenantSettings settings_from_json(const Json& stored);

// `current` with a JSON merge patch (RFC 7396) applied: a member set to null returns to its default. Unknown
// members and values out of their form are invalid_argument naming the member; nothing is applied then. The API
// version's name is checked by the caller (the versions live in the gateway).
Result<TenantSettings> patch_settings(const TenantSettings& current, const Json& patch);

// Whether `name` is a time zone of the system's tz database (/usr/share/zoneinfo), e.g. "Europe/Berlin", "UTC".
bool known_time_zone(const std::string& name);

}  // namespace atrium::tenancy
