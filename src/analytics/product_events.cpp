#include "analytics/product_events.hpp"

#include <algorithm>

namespace atrium::analytics {

std::string event_metric(std::string_view type) { return std::string(k_event_metric_prefix) + std::string(type); }

std::string_view event_type_of(std::string_view metric) {
  return metric.starts_with(k_event_metric_prefix) ? metric.substr(k_event_metric_prefix.size()) : std::string_view{};
}

bool valid_event_type(std::string_view type) {
  if (type.empty() || type.size() > 64 - k_event_metric_prefix.size()) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(type.front())) return false;
  return std::all_of(type.begin(), type.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '/'; });
}

namespace {

// A non-empty string property of at most 128 bytes.
bool named(const Json& properties, const char* name) {
  auto it = properties.find(name);
  return it != properties.end() && it->is_string() && !it->get_ref<const std::string&>().empty() &&
         it->get_ref<const std::string&>().size() <= 128;
}

}  // namespace

std::optional<Refusal> check_reserved(std::string_view type, std::int64_t value, const Json& properties) {
  if (type == k_user_active || type == k_user_signed_in) {
    return Refusal{"reserved_type", std::string(type) + " is recorded by Atrium itself"};
  }
  if (type == k_nps_response && (value < 0 || value > 10)) {
    return Refusal{"invalid_value", "an nps.response has a value of 0 to 10"};
  }
  if (type == k_support_rating && (value < 1 || value > 5)) {
    return Refusal{"invalid_value", "a support.rating has a value of 1 to 5"};
  }
  if (type == k_feature_used && !named(properties, "feature")) {
    return Refusal{"invalid_properties", "a feature.used event names its feature: properties.feature, 1-128 bytes"};
  }
  if (type == k_page_viewed && !named(properties, "page")) {
    return Refusal{"invalid_properties", "a page.viewed event names its page: properties.page, 1-128 bytes"};
  }
  return std::nullopt;
}

}  // namespace atrium::analytics
