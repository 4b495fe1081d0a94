#include "core/audit_event.hpp"

namespace atrium::audit {

std::string_view actor_type_name(ActorType type) {
  switch (type) {
    case ActorType::user: return "user";
    case ActorType::api_key: return "api_key";
    case ActorType::system: return "system";
    case ActorType::super_admin: return "super_admin";
  }
  return "system";
}

void add_change(Json& changes, std::string_view field, const Json& before, const Json& after) {
  if (before == after) return;
  changes[std::string(field)] = {{"before", before}, {"after", after}};
}

Json created_changes(const Json& created) {
  Json changes = Json::object();
  for (const auto& [k, v] : created.items()) changes[k] = {{"before", nullptr}, {"after", v}};
  return changes;
}

}  // namespace atrium::audit
