#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::storage {
class Transaction;  // storage/database.hpp: a Recorder writes inside the caller's transaction
}  // namespace atrium::storage

// The audit log's vocabulary (who acts, what happened), shared by the stores that record events (tenancy, identity)
// and the audit log that keeps them (audit/), which sits above them.
namespace atrium::audit {

enum class ActorType { user, api_key, system, super_admin };
std::string_view actor_type_name(ActorType type);

// Who acts, and from where: fixed for one request or one command.
struct Context {
  ActorType actor_type = ActorType::system;
  std::string actor_id;  // user id, API key id, or the command ("cli") for system
  std::string actor_ip;
  std::string user_agent;
  std::string request_id;
  std::string session_id;  // the access token's jti, when the caller has one
};

// What happened to which resource. `changes` holds {"field": {"before": x, "after": y}} for the fields that
// changed; secrets are never put in it (a password change records "[redacted]" on both sides).
struct Event {
  std::string action;  // "<resource>.<verb>", e.g. "project.created", "auth.login_failed"
  std::string resource_type;
  std::string resource_id;
  std::string tenant_id;  // the tenant's chain; "" for the platform chain
  Json changes = Json::object();
  std::string actor_id;  // when the change itself names its actor (a sign-in: the account); else the context's
};

// Adds {"before": before, "after": after} under `field` when they differ.
void add_change(Json& changes, std::string_view field, const Json& before, const Json& after);
// {"field": {"before": null, "after": value}} for every member of `created` (a resource that did not exist).
Json created_changes(const Json& created);

// Appends an event inside the transaction of the change it describes (a transaction on the control-plane
// database), bound to who is acting. Returning an error rolls the change back with it. An empty Recorder
// records nothing: for the stores' own unit tests.
using Recorder = std::function<Result<void>(storage::Transaction&, const Event&)>;

inline Result<void> record(const Recorder& recorder, storage::Transaction& tx, const Event& event) {
  if (!recorder) return {};
  return recorder(tx, event);
}

}  // namespace atrium::audit
