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
// A move between isolation levels (`atrium tenant move`): none; copying (writes go on); frozen (tenant-store writes
// refused with `unavailable` until the switch); switched (the new level serves, the old copy is still to be removed).
enum class MoveState { none, copying, frozen, switched };

std::string_view status_name(TenantStatus s);
std::optional<TenantStatus> parse_status(std::string_view text);
std::string_view isolation_name(Isolation i);
std::optional<Isolation> parse_isolation(std::string_view text);
std::string_view move_state_name(MoveState m);  // "" for none
std::optional<MoveState> parse_move_state(std::string_view text);

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
  MoveState move_state = MoveState::none;
  Isolation move_level = Isolation::shared;  // copying, frozen: the target; switched: the level left
  // Never stored: set only on the mover's own view of the store it leaves (app/tenant_move.cpp), whose writes
  // (carrying the outboxes, removing the old copy) pass the fence every other write stops at (TenantData::fence).
  bool passes_fence = false;

  bool writes_frozen() const { return move_state == MoveState::frozen; }
};

Json to_json(const Tenant& t);

}  // namespace atrium::tenancy
