#include "api/analytics_input.hpp"

#include <algorithm>
#include <tuple>

#include "analytics/product_events.hpp"
#include "api/usage_input.hpp"

namespace atrium::api::analytics_input {

namespace {

using usage_input::unreadable;

constexpr std::int64_t k_max_value = 1'000'000'000'000;  // as a usage quantity

metering::UsageEntry product_event_entry(const Json& e, const std::string& caller_user, Instant now) {
  if (auto refused =
          usage_input::refuse_shape(e, {"type", "idempotency_key", "user_id", "value", "properties", "timestamp"})) {
    return std::move(*refused);
  }
  metering::UsageEvent ev;
  ev.idempotency_key = e["idempotency_key"].get<std::string>();
  if (ev.idempotency_key.size() > analytics::k_max_event_key_bytes) {
    return unreadable(e, "invalid_idempotency_key",
                      "a product event's idempotency_key is 1-249 printable ASCII characters");
  }
  auto type = e.find("type");
  if (type == e.end() || !type->is_string() || !analytics::valid_event_type(type->get_ref<const std::string&>())) {
    return unreadable(e, "invalid_type",
                      "type is required: 1-58 letters, digits, '_', '-', '.', ':' or '/', starting with a letter or "
                      "digit");
  }
  const std::string& type_name = type->get_ref<const std::string&>();
  ev.metric = analytics::event_metric(type_name);
  if (auto user = e.find("user_id"); user != e.end() && !user->is_null()) {
    if (!user->is_string()) return unreadable(e, "invalid_user_id", "user_id must be a string");
    ev.user_id = user->get<std::string>();
    if (!caller_user.empty() && ev.user_id != caller_user) {
      return unreadable(e, "invalid_user_id", "a user's events are about that user: user_id must be the caller's");
    }
  } else {
    ev.user_id = caller_user;
  }
  ev.quantity = 1;
  if (auto value = e.find("value"); value != e.end() && !value->is_null()) {
    if (!value->is_number_integer()) return unreadable(e, "invalid_value", "value must be an integer");
    ev.quantity = usage_input::saturated(*value);
    if (ev.quantity < 0 || ev.quantity > k_max_value) {
      return unreadable(e, "invalid_value", "value must be between 0 and 1000000000000");
    }
  }
  Json properties = Json::object();
  if (auto props = e.find("properties"); props != e.end() && !props->is_null()) {
    if (!props->is_object()) return unreadable(e, "invalid_properties", "properties must be an object");
    properties = *props;
  }
  ev.timestamp = now;
  if (auto ts = e.find("timestamp"); ts != e.end() && !ts->is_null()) {
    auto when = ts->is_string() ? parse_rfc3339(ts->get_ref<const std::string&>()) : std::nullopt;
    if (!when) return unreadable(e, "invalid_timestamp", "timestamp must be an RFC 3339 date-time");
    ev.timestamp = *when;
  }
  if (auto refused = analytics::check_reserved(type_name, ev.quantity, properties)) {
    return unreadable(e, refused->reason, refused->detail);
  }
  ev.properties = properties.dump();
  return metering::UsageEntry{.event = std::move(ev), .unreadable = {}};
}

// A date (YYYY-MM-DD) or an RFC 3339 date-time.
Result<Instant> day_param(const std::optional<std::string>& text, const char* name) {
  if (!text) return fail(Errc::invalid_argument, std::string(name) + " is required (YYYY-MM-DD)");
  auto t = parse_rfc3339(text->size() == 10 ? *text + "T00:00:00Z" : *text);
  if (!t) return fail(Errc::invalid_argument, std::string(name) + " must be a date (YYYY-MM-DD)");
  return *t;
}

// The `from` and `to` query parameters, both required.
Result<std::pair<Instant, Instant>> day_range(const std::optional<std::string>& from,
                                              const std::optional<std::string>& to) {
  auto f = day_param(from, "from");
  if (!f) return std::unexpected(f.error());
  auto t = day_param(to, "to");
  if (!t) return std::unexpected(t.error());
  return std::pair{*f, *t};
}

}  // namespace

Result<metering::UsageBatch> event_batch(const Json& body, std::size_t max_events, const std::string& caller_user,
                                         Instant now) {
  return usage_input::batch_of(body, max_events,
                               [&](const Json& e) { return product_event_entry(e, caller_user, now); });
}

Result<analytics::ProductQuery> product_query(const ProductParams& params) {
  analytics::ProductQuery q;
  auto range = day_range(params.from, params.to);
  if (!range) return std::unexpected(range.error());
  std::tie(q.from, q.to) = *range;
  if (params.features) {
    std::string_view rest = *params.features;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      q.features.emplace_back(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
  }
  q.value_event = params.value_event.value_or("");
  return q;
}

Result<analytics::SaasQuery> saas_query(const SaasParams& params) {
  analytics::SaasQuery q;
  auto range = day_range(params.from, params.to);
  if (!range) return std::unexpected(range.error());
  std::tie(q.from, q.to) = *range;
  if (params.granularity) {
    auto g = analytics::parse_granularity(*params.granularity);
    if (!g) return fail(Errc::invalid_argument, "granularity must be day, week or month");
    q.granularity = *g;
  }
  if (params.currency) {
    const std::string& c = *params.currency;
    if (!analytics::valid_currency(c)) {
      return fail(Errc::invalid_argument, "currency must be an ISO 4217 code (three capital letters)");
    }
    q.currency = c;
  }
  if (auto c = analytics::check(q); !c) return std::unexpected(c.error());
  return q;
}

}  // namespace atrium::api::analytics_input
