#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::webhooks {

struct Endpoint {
  std::string id;
  std::string url;
  std::string description;
  std::vector<std::string> event_types;  // "*" matches every type
  std::string secret;                    // only filled where the caller is allowed to see it
  std::string status;                    // enabled | disabled
  std::string disabled_reason;
  std::string created_at;
  std::string updated_at;
};

struct Delivery {
  std::string id;
  std::string endpoint_id;
  std::string event_id;
  std::string event_type;
  std::string body;    // the event's JSON, byte for byte the same on every attempt
  std::string status;  // pending | succeeded | failed
  std::int64_t attempts = 0;
  std::int64_t last_status_code = 0;
  std::string last_error;
  std::int64_t redeliveries = 0;
  std::string created_at;
  std::string updated_at;
};

struct DeliveryPage {
  std::vector<Delivery> deliveries;
  std::optional<std::string> next_cursor;
};

// The columns encrypted at rest (the signing secret), for re-encryption.
std::vector<tenancy::SealedColumn> sealed_columns();

// `secret` included only when asked (the create response shows it once).
Json to_json(const Endpoint& e, bool with_secret = false);
Json to_json(const Delivery& d);

// Tenant-scoped storage of webhook endpoints and their delivery log. Every function runs in the caller's
// tenant transaction. Errors: invalid_argument (bad input), not_found (no such endpoint or delivery here).
namespace store {

Result<Endpoint> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& url,
                        const std::string& description, const std::vector<std::string>& event_types);
Result<std::vector<Endpoint>> list(tenancy::TenantTransaction& tx);
// How many endpoints the tenant has (one of its integrations).
Result<std::int64_t> count(tenancy::TenantTransaction& tx);
Result<Endpoint> get(tenancy::TenantTransaction& tx, const std::string& id, bool with_secret = false);
Result<void> remove(tenancy::TenantTransaction& tx, const std::string& id);
Result<void> disable(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                     const std::string& reason);

// Enables a disabled endpoint again (no-op for an enabled one); returns it.
Result<Endpoint> enable(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id);

// The enabled endpoints whose filter matches `event_type`.
Result<std::vector<Endpoint>> matching(tenancy::TenantTransaction& tx, const std::string& event_type);
// The delivery of `event` to `endpoint_id`, created pending unless it exists (idempotent).
Result<Delivery> add_delivery(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& endpoint_id,
                              const std::string& event_id, const std::string& event_type, const std::string& body);
Result<Delivery> get_delivery(tenancy::TenantTransaction& tx, const std::string& id);
// Newest first.
Result<DeliveryPage> deliveries(tenancy::TenantTransaction& tx, const std::string& endpoint_id,
                                const std::optional<std::string>& before, int limit);
Result<void> record_attempt(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& delivery_id,
                            bool succeeded, bool final, std::int64_t status_code, const std::string& error);
// Sets a delivery pending again for a manual redelivery; returns it with redeliveries counted.
Result<Delivery> redeliver(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& delivery_id);

// Deletes deliveries that ended (not pending) and were last touched before `before`; returns how many.
Result<std::int64_t> expire_deliveries(tenancy::TenantTransaction& tx, std::chrono::system_clock::time_point before);

std::vector<tenancy::TenantStatement> statements();

}  // namespace store

// Checks an event-type filter entry: "*" or "<resource>.<verb>" of [a-z0-9_.] (1-100 bytes).
bool valid_event_type(std::string_view type);
// Parses "30s,2m,1h,1d" into delays; invalid_argument naming the bad entry.
Result<std::vector<std::chrono::milliseconds>> parse_schedule(std::string_view text);

}  // namespace atrium::webhooks
