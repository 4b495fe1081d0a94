#pragma once

// The JSON bodies of the metering routes (docs/openapi.yaml) decoded into metering's typed inputs.

#include <cstddef>

#include "core/error.hpp"
#include "core/json.hpp"
#include "metering/metering.hpp"

namespace atrium::api::usage_input {

// POST /v1/usage: one event or {"events": [...]} of 1 to `max_events`. An envelope that is neither is
// invalid_argument; an event that cannot be read becomes an entry with its reason (invalid_event,
// invalid_idempotency_key, invalid_metric, invalid_quantity, invalid_timestamp, invalid_properties), rejected at its
// index while the rest of the batch goes on.
Result<metering::UsageBatch> usage_batch(const Json& body, std::size_t max_events);

// POST /v1/meters: {"metric", "name", "aggregation", "property", "filters"}.
Result<metering::Meter> new_meter(const Json& body);

}  // namespace atrium::api::usage_input
