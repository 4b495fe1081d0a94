#pragma once

// The SQL of product metrics: reads of product events (usage_events rows with metric "event:<type>", written by
// metering's ingestion) in a control-plane transaction scoped to the tenant. Times are Unix milliseconds; a UTC
// day is ts / 86400000 (integer division on both backends).

#include "tenancy/tenant_data.hpp"

namespace atrium::analytics::sql {

using tenancy::TenantStatement;

// Active users per UTC day of [$2, $3): rows (day, users).
constexpr TenantStatement k_daily_active{
    "analytics_daily_active",
    "SELECT ts / 86400000, COUNT(DISTINCT user_id) FROM usage_events WHERE tenant_id = $1 AND user_id IS NOT NULL "
    "AND ts >= $2 AND ts < $3 GROUP BY ts / 86400000 ORDER BY 1"};
// Distinct users with any product event in [$2, $3).
constexpr TenantStatement k_active_users{"analytics_active_users",
                                         "SELECT COUNT(DISTINCT user_id) FROM usage_events WHERE tenant_id = $1 AND "
                                         "user_id IS NOT NULL AND ts >= $2 AND ts < $3"};
// The users and properties of one type's events in [$3, $4) ($2: the metric).
constexpr TenantStatement k_user_properties{"analytics_user_properties",
                                            "SELECT user_id, properties FROM usage_events WHERE tenant_id = $1 AND "
                                            "metric = $2 AND user_id IS NOT NULL AND ts >= $3 AND ts < $4"};
// How many events of one type carried each value in [$3, $4): rows (value, events).
constexpr TenantStatement k_value_counts{"analytics_value_counts",
                                         "SELECT quantity, COUNT(*) FROM usage_events WHERE tenant_id = $1 AND "
                                         "metric = $2 AND ts >= $3 AND ts < $4 GROUP BY quantity"};
// Users first seen (their earliest product event still kept) in [$2, $3): rows (user, first ts).
constexpr TenantStatement k_first_seen{"analytics_first_seen",
                                       "SELECT user_id, MIN(ts) FROM usage_events WHERE tenant_id = $1 AND user_id IS "
                                       "NOT NULL GROUP BY user_id HAVING MIN(ts) >= $2 AND MIN(ts) < $3"};
// Each user's first event of one type ($2: the metric): rows (user, first ts).
constexpr TenantStatement k_first_of{"analytics_first_of",
                                     "SELECT user_id, MIN(ts) FROM usage_events WHERE tenant_id = $1 AND metric = $2 "
                                     "AND user_id IS NOT NULL GROUP BY user_id"};

inline constexpr TenantStatement k_all[] = {k_daily_active, k_active_users, k_user_properties,
                                            k_value_counts, k_first_seen,   k_first_of};

}  // namespace atrium::analytics::sql
