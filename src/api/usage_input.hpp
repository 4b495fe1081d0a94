#pragma once

// The JSON bodies of the metering routes (docs/openapi.yaml) decoded into metering's typed inputs.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/json.hpp"
#include "metering/metering.hpp"

namespace atrium::api::usage_input {

// A batch body: one element, or {"events": [...]} of 1 to `max_events`, each decoded by `entry`; an envelope that
// is neither is invalid_argument. POST /v1/usage and POST /v1/events.
Result<metering::UsageBatch> batch_of(const Json& body, std::size_t max_events,
                                      const std::function<metering::UsageEntry(const Json&)>& entry);
// An element that cannot be read: rejected at its index with `reason` and `detail`, echoing its idempotency_key
// (when it has a string one).
metering::UsageEntry unreadable(const Json& element, std::string reason, std::string detail);
// Why a batch element cannot be an event: not an object, a member not in `allowed`, or no string
// idempotency_key (the entry to reject it with); nullopt when it has that shape.
std::optional<metering::UsageEntry> refuse_shape(const Json& element, std::initializer_list<std::string_view> allowed);
// An integer's value; beyond int64 saturated to its maximum, which every range check refuses.
std::int64_t saturated(const Json& integer);

// POST /v1/usage: one event or {"events": [...]} of 1 to `max_events`. An envelope that is neither is
// invalid_argument; an event that cannot be read becomes an entry with its reason (invalid_event,
// invalid_idempotency_key, invalid_metric, invalid_quantity, invalid_timestamp, invalid_properties), rejected at its
// index while the rest of the batch goes on.
Result<metering::UsageBatch> usage_batch(const Json& body, std::size_t max_events);

// POST /v1/meters: {"metric", "name", "aggregation", "property", "filters"}.
Result<metering::Meter> new_meter(const Json& body);

}  // namespace atrium::api::usage_input
