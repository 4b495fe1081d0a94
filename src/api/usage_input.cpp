#include "api/usage_input.hpp"

#include <chrono>
#include <limits>

#include "analytics/product_events.hpp"
#include "core/clock.hpp"
#include "core/json_input.hpp"

namespace atrium::api::usage_input {

metering::UsageEntry unreadable(const Json& e, std::string reason, std::string detail) {
  metering::UsageEntry entry;
  entry.unreadable.reason = std::move(reason);
  entry.unreadable.detail = std::move(detail);
  if (e.is_object()) {
    if (auto k = e.find("idempotency_key"); k != e.end() && k->is_string()) {
      entry.unreadable.idempotency_key =
          k->get_ref<const std::string&>().substr(0, metering::k_max_idempotency_key_bytes);
    }
  }
  return entry;
}

std::optional<metering::UsageEntry> refuse_shape(const Json& element, std::initializer_list<std::string_view> allowed) {
  if (!element.is_object()) return unreadable(element, "invalid_event", "an event must be a JSON object");
  if (auto only = json_input::only_members(element, allowed); !only) {
    return unreadable(element, "invalid_event", only.error().message);
  }
  auto key = element.find("idempotency_key");
  if (key == element.end() || !key->is_string()) {
    return unreadable(element, "invalid_idempotency_key",
                      "idempotency_key is required: 1-255 printable ASCII characters");
  }
  return std::nullopt;
}

std::int64_t saturated(const Json& integer) {
  return integer.is_number_unsigned() &&
                 integer.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : integer.get<std::int64_t>();
}

namespace {

// One event's members, typed; metering checks their values.
metering::UsageEntry usage_entry(const Json& e) {
  if (auto refused = refuse_shape(e, {"metric", "quantity", "timestamp", "idempotency_key", "properties"})) {
    return std::move(*refused);
  }
  metering::UsageEvent ev;
  ev.idempotency_key = e["idempotency_key"].get<std::string>();
  auto metric = e.find("metric");
  if (metric == e.end() || !metric->is_string()) {
    return unreadable(e, "invalid_metric",
                      "metric is required: 1-64 letters, digits, '_', '-', '.', ':' or '/', starting with a letter or "
                      "digit");
  }
  ev.metric = metric->get<std::string>();
  if (ev.metric.starts_with(analytics::k_event_metric_prefix)) {
    return unreadable(e, "invalid_metric", "metrics starting with event: are product events (POST /v1/events)");
  }
  auto quantity = e.find("quantity");
  if (quantity == e.end() || !quantity->is_number_integer()) {
    return unreadable(e, "invalid_quantity", "quantity is required: an integer");
  }
  ev.quantity = saturated(*quantity);  // beyond int64: metering refuses it as out of range
  auto ts = e.find("timestamp");
  std::optional<std::chrono::system_clock::time_point> when;
  if (ts != e.end() && ts->is_string()) when = parse_rfc3339(ts->get_ref<const std::string&>());
  if (!when) return unreadable(e, "invalid_timestamp", "timestamp is required: an RFC 3339 date-time");
  ev.timestamp = *when;
  if (auto props = e.find("properties"); props != e.end() && !props->is_null()) {
    if (!props->is_object()) return unreadable(e, "invalid_properties", "properties must be an object");
    ev.properties = props->dump();
  }
  return metering::UsageEntry{.event = std::move(ev), .unreadable = {}};
}

}  // namespace

Result<metering::UsageBatch> batch_of(const Json& body, std::size_t max_events,
                                      const std::function<metering::UsageEntry(const Json&)>& entry) {
  if (!body.is_object()) return fail(Errc::invalid_argument, "the body must be an event or {\"events\": [...]}");
  metering::UsageBatch batch;
  auto it = body.find("events");
  if (it == body.end()) {
    batch.push_back(entry(body));
    return batch;
  }
  if (body.size() != 1) return fail(Errc::invalid_argument, "a batch has only the member events");
  if (!it->is_array()) return fail(Errc::invalid_argument, "events must be an array");
  if (it->empty()) return fail(Errc::invalid_argument, "events must not be empty");
  if (it->size() > max_events) {
    return fail(Errc::invalid_argument, "a batch holds at most " + std::to_string(max_events) + " events");
  }
  batch.reserve(it->size());
  for (const auto& e : *it) batch.push_back(entry(e));
  return batch;
}

Result<metering::UsageBatch> usage_batch(const Json& body, std::size_t max_events) {
  return batch_of(body, max_events, usage_entry);
}

Result<metering::Meter> new_meter(const Json& body) {
  if (!body.is_object()) return fail(Errc::invalid_argument, "the body must be an object");
  for (const auto& [name, _] : body.items()) {
    if (name != "metric" && name != "name" && name != "aggregation" && name != "property" && name != "filters") {
      return fail(Errc::invalid_argument, "unknown member " + name);
    }
  }
  metering::Meter m;
  auto metric = body.find("metric");
  if (metric == body.end() || !metric->is_string()) {
    return fail(Errc::invalid_argument, "metric is required: 1-64 letters, digits, '_', '-', '.', ':' or '/'");
  }
  m.metric = metric->get<std::string>();
  if (auto name = body.find("name"); name != body.end()) {
    if (!name->is_string() || name->get_ref<const std::string&>().empty()) {
      return fail(Errc::invalid_argument, "name must be a string of 1-200 bytes");
    }
    m.name = name->get<std::string>();
  }
  auto agg = body.find("aggregation");
  std::optional<metering::Aggregation> a;
  if (agg != body.end() && agg->is_string()) a = metering::parse_aggregation(agg->get_ref<const std::string&>());
  if (!a) return fail(Errc::invalid_argument, "aggregation is required: sum, count, max, unique_count or latest");
  m.aggregation = *a;
  if (auto p = body.find("property"); p != body.end() && !p->is_null()) {
    if (!p->is_string()) return fail(Errc::invalid_argument, "property must be a property name of 1-128 bytes");
    m.property = p->get<std::string>();
  }
  if (auto f = body.find("filters"); f != body.end() && !f->is_null()) {
    auto filters = metering::parse_filters(*f);
    if (!filters) return std::unexpected(filters.error());
    m.filters = std::move(*filters);
  }
  return m;
}

}  // namespace atrium::api::usage_input
