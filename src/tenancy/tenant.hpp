#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "tenancy/settings.hpp"
#include "tenancy/tenant_ref.hpp"  // valid_slug

namespace atrium::tenancy {

enum class TenantStatus { active, suspended, deleted };
enum class Isolation { shared, schema, database };

std::string_view status_name(TenantStatus s);
std::optional<TenantStatus> parse_status(std::string_view text);
std::string_view isolation_name(Isolation i);
std::optional<Isolation> parse_isolation(std::string_view text);

// A row of the control-plane `tenants` table. Times are RFC 3339 UTC text.
struct Tenant {
  std::string id;  // UUIDv7
  std::string slug;
  std::string name;
  TenantStatus status = TenantStatus::active;
  Isolation isolation = Isolation::shared;
  std::string plan;
  Json quotas = Json::object();
  TenantSettings settings;
  std::string created_at;
  std::string updated_at;
};

Json to_json(const Tenant& t);

}  // namespace atrium::tenancy
