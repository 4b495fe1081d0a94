#pragma once

// The bodies and queries of the analytics routes (docs/openapi.yaml) decoded into analytics' typed inputs.

#include <cstddef>
#include <optional>
#include <string>

#include "analytics/product_metrics.hpp"
#include "analytics/saas_metrics.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "metering/metering.hpp"

namespace atrium::api::analytics_input {

// POST /v1/events: one event or {"events": [...]} of 1 to `max_events`, each {"type", "idempotency_key",
// "user_id", "value", "properties", "timestamp"}. An event that cannot be read, or breaks its reserved type's
// rule, becomes an entry with its reason (invalid_event, invalid_type, invalid_idempotency_key, invalid_user_id,
// invalid_value, invalid_properties, invalid_timestamp, reserved_type), rejected at its index. `caller_user` is the
// signed-in user ("" for an API key): a user's events are about that user (user_id defaults to it and may not name
// another). A missing timestamp is `now`.
Result<metering::UsageBatch> event_batch(const Json& body, std::size_t max_events, const std::string& caller_user,
                                         Instant now);

// GET /v1/analytics/product: from and to (dates, YYYY-MM-DD, or RFC 3339 midnights), features (comma-separated),
// value_event.
struct ProductParams {
  std::optional<std::string> from;
  std::optional<std::string> to;
  std::optional<std::string> features;
  std::optional<std::string> value_event;
};
Result<analytics::ProductQuery> product_query(const ProductParams& params);

// GET /v1/admin/analytics/saas: from and to as above, granularity (day, week or month; default month), currency
// (an ISO 4217 code: three capital letters).
struct SaasParams {
  std::optional<std::string> from;
  std::optional<std::string> to;
  std::optional<std::string> granularity;
  std::optional<std::string> currency;
};
Result<analytics::SaasQuery> saas_query(const SaasParams& params);

}  // namespace atrium::api::analytics_input
