// Metering's names and their rules: metric names, idempotency keys, property filters, aggregations and windows.
// Free of storage, so the API's decoders and the fuzz targets (docs/fuzzing.md) use them alone.
#include <algorithm>

#include "metering/metering.hpp"

namespace atrium::metering {

bool valid_metric_name(std::string_view metric) {
  if (metric.empty() || metric.size() > 64) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(metric.front())) return false;
  return std::all_of(metric.begin(), metric.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '/'; });
}

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > k_max_idempotency_key_bytes) return false;
  return std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool valid_property_name(std::string_view name) { return !name.empty() && name.size() <= 128; }

Result<Filters> parse_filters(const Json& j) {
  if (!j.is_object()) return fail(Errc::invalid_argument, "filters must be an object of property -> value");
  Filters out;
  for (const auto& [name, value] : j.items()) {
    if (!valid_property_name(name)) return fail(Errc::invalid_argument, "filters: property names are 1-128 bytes");
    if (!value.is_primitive() || value.is_null()) {
      return fail(Errc::invalid_argument, "filters: values must be strings, numbers or booleans");
    }
    out.emplace(name, value);
  }
  return out;
}

std::string_view aggregation_name(Aggregation a) {
  switch (a) {
    case Aggregation::sum: return "sum";
    case Aggregation::count: return "count";
    case Aggregation::max: return "max";
    case Aggregation::unique_count: return "unique_count";
    case Aggregation::latest: return "latest";
  }
  return "sum";
}

std::optional<Aggregation> parse_aggregation(std::string_view text) {
  for (Aggregation a :
       {Aggregation::sum, Aggregation::count, Aggregation::max, Aggregation::unique_count, Aggregation::latest}) {
    if (aggregation_name(a) == text) return a;
  }
  return std::nullopt;
}

std::optional<Window> parse_window(std::string_view text) {
  if (text == "hour") return Window::hour;
  if (text == "day") return Window::day;
  if (text == "month") return Window::month;
  return std::nullopt;
}

}  // namespace atrium::metering
