#pragma once

// Product events (docs/analytics.md): what a tenant's product tells Atrium its users did. They are usage events
// (metering::Metering::ingest: durable before the answer, exactly once per idempotency key, rejected one by one)
// whose metric is "event:<type>" and whose user_id says whom they are about, so the ingestion path, its roll-ups
// and /v1/usage/summary serve them unchanged.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"

namespace atrium::analytics {

// The metric a product event of `type` is stored under, and back ("" when `metric` is no product event's).
inline constexpr std::string_view k_event_metric_prefix = "event:";
std::string event_metric(std::string_view type);
std::string_view event_type_of(std::string_view metric);

// Product events keep their idempotency keys apart from usage events' (both are rows of usage_events, unique per
// tenant and key): they are stored with this prefix, so a client may use one key for a usage event and a product
// event. Their keys are therefore 1-249 printable ASCII characters.
inline constexpr std::string_view k_event_key_prefix = "event:";
inline constexpr std::size_t k_max_event_key_bytes = 255 - k_event_key_prefix.size();

// Event types: 1-58 letters, digits, '_', '-', '.', ':' or '/', starting with a letter or digit (a metric name
// once prefixed).
bool valid_event_type(std::string_view type);

// Reserved types, which the metrics and the churn model read (docs/analytics.md):
inline constexpr std::string_view k_feature_used = "feature.used";            // properties.feature: the feature
inline constexpr std::string_view k_nps_response = "nps.response";            // value 0-10
inline constexpr std::string_view k_ticket_opened = "support.ticket_opened";  //
inline constexpr std::string_view k_support_rating = "support.rating";        // value 1-5
inline constexpr std::string_view k_page_viewed = "page.viewed";              // properties.page, e.g. "cancel"
inline constexpr std::string_view k_negative_feedback = "feedback.negative";  //
inline constexpr std::string_view k_user_active = "user.active";              // Atrium's own: one per user and day
inline constexpr std::string_view k_user_signed_in = "user.signed_in";        // Atrium's own: a sign-in

// Why an event of a reserved type breaks its type's rule, as a rejection (reason, detail); nullopt when it keeps
// it (or its type is not reserved). Atrium's own types may not be sent by clients.
struct Refusal {
  std::string reason;  // invalid_value | invalid_properties | reserved_type
  std::string detail;
};
std::optional<Refusal> check_reserved(std::string_view type, std::int64_t value, const Json& properties);

}  // namespace atrium::analytics
