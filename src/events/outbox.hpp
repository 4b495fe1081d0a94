#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::events {

// A domain event ("project.created", "tenant.created", ...). Webhook deliveries carry exactly to_json(event).
struct Event {
  std::string id;  // UUIDv7, the same on every delivery of this event
  std::string type;
  std::string tenant_id;
  Instant created{};  // whole seconds (stored and sent as Unix seconds, as Stripe's `created`)
  Json data = Json::object();
};

Json to_json(const Event& event);

// The transactional outbox. emit() writes the event in the transaction of the change, so a rolled-back change
// publishes nothing and a committed one is never lost: into the control plane's pending_events when the tenant's
// data shares that database, else into the tenant's own event_outbox, which move_to_control_plane() carries over
// after the commit (idempotently; also at start for what a crash left there).
Result<Event> emit(tenancy::TenantTransaction& tx, const Clock& clock, std::string type, Json data);
// For a change in a control-plane transaction (tenant lifecycle); `tenant_id` may be "" for platform events.
Result<Event> emit(storage::Transaction& control_tx, const Clock& clock, std::string tenant_id, std::string type,
                   Json data);
Result<int> move_to_control_plane(tenancy::TenantData& data, storage::Database& control, const tenancy::Tenant& tenant);

// Publishes one event; must be idempotent (it runs again for an event whose removal from the outbox did not
// commit). An error leaves the event in the outbox to be tried again.
using Publisher = std::function<Result<void>(const Event&)>;

// Reads pending_events in order and hands each to the publisher, then deletes it. An event that fails holds back
// the later events of its tenant (until the next pass), not other tenants'. Several relays (instances) may run at
// once (with a lease, one at a time): publishers are idempotent, so an event published twice reaches nobody twice.
// Thread-safe.
// With a `holder` (this instance's id), each relay pass first takes the control plane's "relay" lease, so one
// instance relays at a time (another takes over when it stops renewing, within `duration`); without one, every
// pass runs.
struct RelayLease {
  std::string holder;
  std::chrono::milliseconds duration{std::chrono::seconds(30)};
};

class Relay {
 public:
  // `clock` times the lease.
  Relay(storage::Database& control, const Clock& clock, Publisher publisher, std::chrono::milliseconds interval,
        RelayLease lease = {});
  ~Relay();
  void start();
  void stop();
  // Wakes the relay after a commit that emitted events. Never blocks.
  void wake();
  // Publishes what is pending now, up to `limit` events; returns how many were published (0 when another instance
  // holds the lease). For tests and CLI.
  Result<int> run_once(int limit = 500);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every tenant-table statement above, for the test that checks their names are unique.
std::vector<tenancy::TenantStatement> tenant_statements();
// What purging a tenant deletes: its events not relayed yet (control plane, `tenant_id = $1`).
std::vector<tenancy::TenantStatement> purge_statements();

}  // namespace atrium::events
