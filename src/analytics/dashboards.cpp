#include "analytics/dashboards.hpp"

#include <algorithm>
#include <array>

#include "core/ids.hpp"
#include "core/json_input.hpp"

namespace atrium::analytics {

namespace {

namespace ji = json_input;
using storage::ResultSet;
using storage::Value;
using tenancy::TenantStatement;

constexpr TenantStatement k_insert{
    "dashboards_insert",
    "INSERT INTO dashboards (tenant_id, id, name, widgets, version, created_by, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, 1, $5, $6, $6)"};
constexpr TenantStatement k_get{"dashboards_get",
                                "SELECT id, name, widgets, version, created_by, created_at, updated_at FROM dashboards "
                                "WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_list{
    "dashboards_list",
    "SELECT id, name, widgets, version, created_by, created_at, updated_at FROM dashboards "
    "WHERE tenant_id = $1 ORDER BY name, id"};
constexpr TenantStatement k_named{"dashboards_named",
                                  "SELECT id FROM dashboards WHERE tenant_id = $1 AND name = $2 AND id <> $3"};
constexpr TenantStatement k_count{"dashboards_count", "SELECT COUNT(*) FROM dashboards WHERE tenant_id = $1"};
constexpr TenantStatement k_update{"dashboards_update",
                                   "UPDATE dashboards SET name = $3, widgets = $4, version = version + 1, "
                                   "updated_at = $5 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_delete{"dashboards_delete", "DELETE FROM dashboards WHERE tenant_id = $1 AND id = $2"};

constexpr TenantStatement k_all[] = {k_insert, k_get, k_list, k_named, k_count, k_update, k_delete};

// Each metric with the charts it can be drawn as (the first is the console's default) and whether it is a series
// (the only kind a grouping other than "day" applies to).
struct MetricCharts {
  std::string_view metric;
  std::array<std::string_view, 3> charts;
  bool series;
};
constexpr std::array<MetricCharts, 11> k_widget_metrics = {{
    {"active_users", {"line", "bar", "table"}, true},
    {"realtime", {"line", "bar", "table"}, false},
    {"dau", {"number", "", ""}, false},
    {"wau", {"number", "", ""}, false},
    {"mau", {"number", "", ""}, false},
    {"stickiness", {"number", "", ""}, false},
    {"time_to_first_value", {"number", "", ""}, false},
    {"nps", {"number", "bar", "table"}, false},
    {"feature_adoption", {"bar", "table", ""}, false},
    {"usage", {"bar", "table", ""}, false},
    {"retention", {"heatmap", "table", ""}, false},
}};
constexpr std::array<int, 4> k_ranges = {7, 30, 90, 365};
constexpr std::array<std::string_view, 3> k_groupings = {"day", "week", "month"};

const MetricCharts* find_metric(std::string_view metric) {
  for (const auto& m : k_widget_metrics) {
    if (m.metric == metric) return &m;
  }
  return nullptr;
}

Result<void> text_of(const std::string& value, std::string_view name, std::size_t max) {
  if (value.empty() || value.size() > max) {
    return fail(Errc::invalid_argument, std::string(name) + " must be 1-" + std::to_string(max) + " characters");
  }
  if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    return fail(Errc::invalid_argument, std::string(name) + " must not hold control characters");
  }
  return {};
}

Result<Widget> widget_from_json(const Json& w, std::size_t index) {
  const std::string at = "widgets[" + std::to_string(index) + "].";
  if (!w.is_object()) return fail(Errc::invalid_argument, "widgets[" + std::to_string(index) + "] must be an object");
  for (auto it = w.begin(); it != w.end(); ++it) {
    const auto& k = it.key();
    if (k != "title" && k != "metric" && k != "chart" && k != "range_days" && k != "group_by") {
      return fail(Errc::invalid_argument, "unknown member '" + at + k + "'");
    }
  }
  Widget out;
  auto title = ji::text(w, "title", 400);
  auto metric = ji::text(w, "metric", 64);
  auto chart = ji::text(w, "chart", 64);
  auto group = ji::text(w, "group_by", 64);
  for (const auto* r : {&title, &metric, &chart, &group}) {
    if (!*r) return fail(Errc::invalid_argument, at + r->error().message);
  }
  auto range = ji::integer(w, "range_days", 1, 365);
  if (!range) return fail(Errc::invalid_argument, at + range.error().message);
  out.title = title->value_or("");
  if (auto ok = text_of(out.title, at + "title", 100); !ok) return std::unexpected(ok.error());
  out.metric = metric->value_or("");
  const auto* m = find_metric(out.metric);
  if (m == nullptr) {
    std::string names;
    for (const auto& known : k_widget_metrics) names += (names.empty() ? "" : ", ") + std::string(known.metric);
    return fail(Errc::invalid_argument, at + "metric must be one of " + names);
  }
  out.chart = chart->value_or(std::string(m->charts[0]));
  if (out.chart.empty() || std::find(m->charts.begin(), m->charts.end(), out.chart) == m->charts.end()) {
    std::string names;
    for (auto c : m->charts) {
      if (!c.empty()) names += (names.empty() ? "" : ", ") + std::string(c);
    }
    return fail(Errc::invalid_argument, at + "chart for " + out.metric + " must be one of " + names);
  }
  out.range_days = static_cast<int>(range->value_or(30));
  if (std::find(k_ranges.begin(), k_ranges.end(), out.range_days) == k_ranges.end()) {
    return fail(Errc::invalid_argument, at + "range_days must be 7, 30, 90 or 365");
  }
  out.group_by = group->value_or("day");
  if (std::find(k_groupings.begin(), k_groupings.end(), out.group_by) == k_groupings.end()) {
    return fail(Errc::invalid_argument, at + "group_by must be day, week or month");
  }
  if (!m->series && out.group_by != "day") {
    return fail(Errc::invalid_argument, at + "group_by applies to active_users only");
  }
  return out;
}

std::vector<Widget> widgets_from_stored(const std::string& text) {
  std::vector<Widget> out;
  const Json stored = Json::parse(text, nullptr, false);
  if (!stored.is_array()) return out;
  for (const auto& w : stored) {
    out.push_back({.title = w.value("title", ""),
                   .metric = w.value("metric", ""),
                   .chart = w.value("chart", ""),
                   .range_days = w.value("range_days", 30),
                   .group_by = w.value("group_by", "day")});
  }
  return out;
}

std::string widgets_text(const std::vector<Widget>& widgets) {
  Json a = Json::array();
  for (const auto& w : widgets) a.push_back(to_json(w));
  return a.dump();
}

Dashboard from_row(const ResultSet& rs, std::size_t row) {
  return {.id = rs.text_at(row, 0).value_or(""),
          .name = rs.text_at(row, 1).value_or(""),
          .widgets = widgets_from_stored(rs.text_at(row, 2).value_or("[]")),
          .version = rs.int_at(row, 3).value_or(1),
          .created_by = rs.text_at(row, 4).value_or(""),
          .created_at = rs.text_at(row, 5).value_or(""),
          .updated_at = rs.text_at(row, 6).value_or("")};
}

Result<void> name_free(tenancy::TenantTransaction& tx, const std::string& name, const std::string& except_id) {
  auto rs = tx.execute(k_named, {Value(name), Value(except_id)});
  if (!rs) return std::unexpected(rs.error());
  if (!rs->empty()) return fail(Errc::conflict, "a dashboard named '" + name + "' exists");
  return {};
}

}  // namespace

Json to_json(const Widget& w) {
  return {{"title", w.title},
          {"metric", w.metric},
          {"chart", w.chart},
          {"range_days", w.range_days},
          {"group_by", w.group_by}};
}

Json to_json(const Dashboard& d) {
  Json widgets = Json::array();
  for (const auto& w : d.widgets) widgets.push_back(to_json(w));
  return {{"id", d.id},
          {"name", d.name},
          {"widgets", std::move(widgets)},
          {"version", d.version},
          {"created_by", d.created_by},
          {"created_at", d.created_at},
          {"updated_at", d.updated_at}};
}

Result<NewDashboard> dashboard_from_json(const Json& body) {
  if (auto ok = ji::only_members(body, {"name", "widgets"}); !ok) return std::unexpected(ok.error());
  NewDashboard out;
  auto name = ji::text(body, "name", 400);
  if (!name) return std::unexpected(name.error());
  if (!*name) return fail(Errc::invalid_argument, "name is required");
  out.name = **name;
  if (auto ok = text_of(out.name, "name", 100); !ok) return std::unexpected(ok.error());
  const auto it = body.find("widgets");
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) return fail(Errc::invalid_argument, "widgets must be an array");
  if (it->size() > k_max_widgets) {
    return fail(Errc::invalid_argument, "a dashboard holds at most " + std::to_string(k_max_widgets) + " widgets");
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    auto w = widget_from_json((*it)[i], i);
    if (!w) return std::unexpected(w.error());
    out.widgets.push_back(std::move(*w));
  }
  return out;
}

namespace dashboard_store {

std::span<const TenantStatement> statements() { return k_all; }

Result<Dashboard> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& created_by,
                         const NewDashboard& input) {
  auto count = tx.execute(k_count);
  if (!count) return std::unexpected(count.error());
  if (count->int_at(0, 0).value_or(0) >= k_max_dashboards) {
    return fail(Errc::conflict, "a tenant has at most " + std::to_string(k_max_dashboards) + " dashboards");
  }
  if (auto free = name_free(tx, input.name, ""); !free) return std::unexpected(free.error());
  const std::string id = new_uuid_v7(clock);
  auto r = tx.execute(k_insert, {Value(id), Value(input.name), Value(widgets_text(input.widgets)), Value(created_by),
                                 Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get(tx, id);
}

Result<Dashboard> get(tenancy::TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such dashboard");
  auto rs = tx.execute(k_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such dashboard");
  return from_row(*rs, 0);
}

Result<std::vector<Dashboard>> list(tenancy::TenantTransaction& tx) {
  auto rs = tx.execute(k_list);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Dashboard> out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) out.push_back(from_row(*rs, i));
  return out;
}

Result<Dashboard> replace(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                          const NewDashboard& input) {
  if (auto current = get(tx, id); !current) return current;
  if (auto free = name_free(tx, input.name, id); !free) return std::unexpected(free.error());
  auto r = tx.execute(
      k_update, {Value(id), Value(input.name), Value(widgets_text(input.widgets)), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get(tx, id);
}

Result<void> remove(tenancy::TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such dashboard");
  auto r = tx.execute(k_delete, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no such dashboard");
  return {};
}

}  // namespace dashboard_store

}  // namespace atrium::analytics
