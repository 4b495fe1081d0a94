// Fuzzes the usage ingestion body (POST /v1/usage, src/api/usage_input.cpp) and meter definitions (POST
// /v1/meters), decoded through the bounded JSON parser every request body goes through. A batch is 1 to `max`
// entries, each either an event with its members typed or a rejection with a reason and an idempotency key of at most
// 255 bytes, and the envelope is refused exactly when it is neither an event nor {"events": [...]}. An accepted
// meter has the body's metric (Metering::create_meter checks its name), a known aggregation and filters that parse
// again.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/usage_input.hpp"
#include "check.hpp"
#include "core/json.hpp"

namespace {

using namespace atrium;

using atrium::fuzz::check;

constexpr std::size_t k_max = 100;

bool envelope_ok(const Json& body) {
  if (!body.is_object()) return false;
  auto events = body.find("events");
  if (events == body.end()) return true;
  return body.size() == 1 && events->is_array() && !events->empty() && events->size() <= k_max;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;
  JsonLimits limits;
  limits.reject_nul = true;
  auto body = parse_json(input, limits, &error);
  if (!body) return 0;

  auto batch = api::usage_input::usage_batch(*body, k_max);
  check(batch.has_value() == envelope_ok(*body), "refused exactly when the envelope is wrong");
  if (batch) {
    check(!batch->empty() && batch->size() <= k_max, "1 to max entries");
    for (const auto& entry : *batch) {
      check(entry.event.has_value() != !entry.unreadable.reason.empty(), "an event or a reason, never both");
      check(entry.unreadable.idempotency_key.size() <= metering::k_max_idempotency_key_bytes, "an echo of 255 bytes");
      if (entry.event) {
        std::string property_error;
        auto properties = parse_json(entry.event->properties, JsonLimits{}, &property_error);
        check(properties && properties->is_object(), "properties are a JSON object's text");
      }
    }
  }

  if (auto meter = api::usage_input::new_meter(*body)) {
    // The decoder types the body; the metric's rules are Metering::create_meter's, which the route calls next.
    check(body->is_object() && (*body)["metric"] == meter->metric, "the meter's metric is the body's");
    check(metering::parse_aggregation(metering::aggregation_name(meter->aggregation)) == meter->aggregation,
          "a known aggregation");
    Json filters = Json::object();
    for (const auto& [name, value] : meter->filters) filters[name] = value;
    check(metering::parse_filters(filters).has_value(), "filters parse again");
  }
  return 0;
}
