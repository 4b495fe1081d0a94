#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::analytics {

// A tenant's product metrics over whole UTC days [from, to) (docs/analytics.md states each definition). A user is
// whoever a product event's user_id names; Atrium's own user.active marks make its members count too.
struct ProductQuery {
  Instant from{};                     // midnight UTC
  Instant to{};                       // midnight UTC, after from, at most 366 days later
  std::vector<std::string> features;  // key features for adoption; empty: every feature used in the range
  std::string value_event;            // the event type that is "first value"; empty: no time to first value
  std::string user;                   // "": every user; else only this user's events (an embed token's customer)
};

struct DailyActive {
  Instant day{};
  std::int64_t users = 0;
};

struct FeatureAdoption {
  std::string feature;
  std::int64_t users = 0;  // distinct users with feature.used for it in the range
  double share = 0;        // users / active users of the range (0 when there were none)
};

struct Nps {
  std::int64_t responses = 0;
  std::int64_t promoters = 0;   // 9-10
  std::int64_t passives = 0;    // 7-8
  std::int64_t detractors = 0;  // 0-6
  std::optional<double> score;  // 100 * (promoters - detractors) / responses, rounded to 0.1; none without responses
};

struct TimeToFirstValue {
  std::string event;
  std::int64_t users = 0;                      // first seen in the range
  std::int64_t reached = 0;                    // of them, with an event of `event` (at any time after)
  std::optional<std::int64_t> median_seconds;  // nearest rank over those who reached it
  std::optional<std::int64_t> p90_seconds;
};

// N-day retention (docs/analytics.md): users grouped by the UTC day of their first product event (first seen in
// the range); a user is retained on day N when active on the day first seen + N.
inline constexpr int k_max_retention_day = 30;
struct RetentionCohort {
  Instant day{};
  std::int64_t users = 0;
  std::vector<std::int64_t> retained;  // [n]: of them, active on day + n; n = 0 .. min(30, days to the range's end)
};
struct NDayRetention {
  int day = 0;                 // N: 1, 7, 14 or 30
  std::int64_t users = 0;      // first seen at least N days before the range's last day
  std::int64_t retained = 0;   // of them, active on their day N
  std::optional<double> rate;  // retained / users; none without users
};

struct ProductMetrics {
  Instant from{};
  Instant to{};
  std::vector<DailyActive> daily_active;  // every day of the range, zeros included
  std::int64_t active_users = 0;          // distinct users in the range
  // Rolling windows ending with the range's last day: that day, its 7 days, its 30 days.
  std::int64_t dau = 0;
  std::int64_t wau = 0;
  std::int64_t mau = 0;
  std::optional<double> stickiness;  // mean DAU over those 30 days / MAU; none when MAU is 0
  std::vector<FeatureAdoption> feature_adoption;
  Nps nps;
  std::optional<TimeToFirstValue> time_to_first_value;
  std::vector<RetentionCohort> retention_cohorts;  // by first-seen day, days without new users left out
  std::vector<NDayRetention> retention;            // days 1, 7, 14 and 30 over every cohort
};

Json to_json(const ProductMetrics& m);

// invalid_argument for a range that is not whole days, is reversed or longer than 366 days, or a bad event type.
Result<ProductMetrics> product_metrics(tenancy::TenantData& data, const std::string& tenant_id,
                                       const ProductQuery& query);

// Every tenant statement of the module, for the test that checks their names are unique.
std::span<const tenancy::TenantStatement> tenant_statements();

}  // namespace atrium::analytics
