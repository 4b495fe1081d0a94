// A tenant's product analytics (roles with analytics:view): the same widgets a custom dashboard composes.
import { useState } from "preact/hooks";
import { can } from "../api";
import { Select } from "../ui";
import { WidgetView, type Widget } from "../widgets";

export function TenantView() {
  const [days, setDays] = useState("30");
  const range_days = Number(days);
  const w = (title: string, metric: string, chart: string, group_by = "day"): Widget => ({ title, metric, chart, range_days, group_by });
  return (
    <>
      <h1>Product analytics</h1>
      <form class="filters card" onSubmit={(e) => e.preventDefault()}>
        <Select
          label="Range"
          value={days}
          onChange={setDays}
          options={[
            ["7", "Last 7 days"],
            ["30", "Last 30 days"],
            ["90", "Last 90 days"],
            ["365", "Last 365 days"],
          ]}
        />
      </form>
      <div class="kpis">
        <WidgetView w={w("DAU", "dau", "number")} />
        <WidgetView w={w("WAU", "wau", "number")} />
        <WidgetView w={w("MAU", "mau", "number")} />
        <WidgetView w={w("Stickiness", "stickiness", "number")} />
        <WidgetView w={w("Time to first value", "time_to_first_value", "number")} />
        <WidgetView w={w("NPS", "nps", "number")} />
      </div>
      <WidgetView w={w("Daily active users", "active_users", "line")} />
      <WidgetView w={w("Feature adoption", "feature_adoption", "bar")} />
      <WidgetView w={w("NPS responses", "nps", "bar")} />
      <WidgetView w={w("Retention", "retention", "heatmap")} />
      {can("usage:read") && <WidgetView w={w("Usage against quotas", "usage", "bar")} />}
      <WidgetView w={w("Live events", "realtime", "line")} />
    </>
  );
}
