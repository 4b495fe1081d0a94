#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/time.hpp"

namespace atrium::billing {

// Billing time is core's Instant at whole seconds (the billing clock reads are floored to the second; stored as
// Unix seconds). Periods run [start, end).
using atrium::Instant;

enum class Interval { monthly, quarterly, annual };
std::string_view interval_name(Interval i);
std::optional<Interval> parse_interval(std::string_view text);
int interval_months(Interval i);  // 1, 3, 12

// Period boundaries keep the anchor's day of month and time of day (Stripe's billing_cycle_anchor): the n-th
// boundary is the anchor moved by n * months, its day clamped to the month's length (anchor Jan 31 monthly:
// Feb 28 or 29, Mar 31, Apr 30, ...; the clamping never drifts the later boundaries). n may be negative.
Instant boundary(Instant anchor, Interval interval, std::int64_t n);
// Adds calendar months with the same clamping.
Instant add_months(Instant t, std::int64_t months);

// The first boundary strictly after `t` whose day of month is `anchor_day` (1-31, clamped to the month's length)
// at t's time of day: the end of a first, short period that sets a subscription's billing anchor day. An anchor_day
// outside 1-31 is clamped into it.
Instant next_anchor_day(Instant t, int anchor_day);

// Whole days between two instants, rounded down ((b - a) / 86400, a <= b).
std::int64_t whole_days(Instant a, Instant b);
// "2026-11" style YYYYMM number of the UTC month containing t (202611).
int year_month(Instant t);
// Days in a month (month 1-12), leap years included; 0 for a month outside 1-12.
int days_in_month(int year, int month);

}  // namespace atrium::billing
