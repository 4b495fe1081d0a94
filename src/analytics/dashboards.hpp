#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::analytics {

// One widget of a custom dashboard (docs/analytics.md, "Custom dashboards"): what the web console draws. The
// metric decides the charts it may be drawn as (k_widget_metrics in dashboards.cpp): the daily active users and
// the real-time counters (the last hour's events per minute, whatever the range) as a line, bars or a table; a
// single figure (dau, wau, mau, stickiness, time_to_first_value) as a number; nps as a number, bars or a table;
// feature_adoption and usage (quotas used, which an embed token cannot read) as bars or a table; retention as a
// heatmap or a table.
struct Widget {
  std::string title;     // 1-100 characters
  std::string metric;    // active_users, realtime, dau, wau, mau, stickiness, time_to_first_value, nps,
                         // feature_adoption, usage, retention
  std::string chart;     // line, bar, number, table, heatmap
  int range_days = 30;   // 7, 30, 90 or 365: the days up to today the widget reads
  std::string group_by;  // day, week or month: active_users' bucket (a week's or month's mean of daily active
                         // users); "day" for the others
};

struct NewDashboard {
  std::string name;             // 1-100 characters, unique in the tenant
  std::vector<Widget> widgets;  // at most k_max_widgets
};

struct Dashboard {
  std::string id;
  std::string name;
  std::vector<Widget> widgets;
  std::int64_t version = 1;  // 1 when created, +1 per update
  std::string created_by;    // the user (or API key) that created it
  std::string created_at;
  std::string updated_at;
};

inline constexpr std::size_t k_max_widgets = 24;
inline constexpr std::int64_t k_max_dashboards = 100;  // per tenant

Json to_json(const Widget& w);
Json to_json(const Dashboard& d);
// A dashboard from a request body {"name", "widgets": [{"title", "metric", "chart", "range_days", "group_by"}]}:
// invalid_argument naming the first member out of its form (an unknown metric, a chart the metric cannot be drawn
// as, a range not offered).
Result<NewDashboard> dashboard_from_json(const Json& body);

// A tenant's custom dashboards. Every function runs inside the caller's tenant-scoped transaction. Another
// tenant's dashboard, or none, is not_found; a name taken is conflict; the k_max_dashboards-th + 1 is conflict.
namespace dashboard_store {

Result<Dashboard> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& created_by,
                         const NewDashboard& input);
Result<Dashboard> get(tenancy::TenantTransaction& tx, const std::string& id);
// Every dashboard of the tenant, by name.
Result<std::vector<Dashboard>> list(tenancy::TenantTransaction& tx);
// Replaces the name and the widgets.
Result<Dashboard> replace(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                          const NewDashboard& input);
Result<void> remove(tenancy::TenantTransaction& tx, const std::string& id);

// Every statement above, for the test that checks their names are unique.
std::span<const tenancy::TenantStatement> statements();

}  // namespace dashboard_store

}  // namespace atrium::analytics
