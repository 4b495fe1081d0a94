#include "tenancy/tenant.hpp"

namespace atrium::tenancy {

std::string_view status_name(TenantStatus s) {
  switch (s) {
    case TenantStatus::active: return "active";
    case TenantStatus::suspended: return "suspended";
    case TenantStatus::deleted: return "deleted";
  }
  return "active";
}

std::optional<TenantStatus> parse_status(std::string_view text) {
  for (auto s : {TenantStatus::active, TenantStatus::suspended, TenantStatus::deleted}) {
    if (text == status_name(s)) return s;
  }
  return std::nullopt;
}

std::string_view isolation_name(Isolation i) {
  switch (i) {
    case Isolation::shared: return "shared";
    case Isolation::schema: return "schema";
    case Isolation::database: return "database";
  }
  return "shared";
}

std::optional<Isolation> parse_isolation(std::string_view text) {
  for (auto i : {Isolation::shared, Isolation::schema, Isolation::database}) {
    if (text == isolation_name(i)) return i;
  }
  return std::nullopt;
}

std::string_view move_state_name(MoveState m) {
  switch (m) {
    case MoveState::none: return "";
    case MoveState::copying: return "copying";
    case MoveState::frozen: return "frozen";
    case MoveState::switched: return "switched";
  }
  return "";
}

std::optional<MoveState> parse_move_state(std::string_view text) {
  for (auto m : {MoveState::none, MoveState::copying, MoveState::frozen, MoveState::switched}) {
    if (text == move_state_name(m)) return m;
  }
  return std::nullopt;
}

Json to_json(const Tenant& t) {
  return {{"id", t.id},
          {"slug", t.slug},
          {"name", t.name},
          {"status", status_name(t.status)},
          {"isolation", isolation_name(t.isolation)},
          {"plan", t.plan},
          {"quotas", t.quotas},
          {"settings", to_json(t.settings)},
          {"created_at", t.created_at},
          {"updated_at", t.updated_at},
          {"move", t.move_state == MoveState::none
                       ? Json()
                       : Json{{"state", move_state_name(t.move_state)}, {"level", isolation_name(t.move_level)}}}};
}

}  // namespace atrium::tenancy
