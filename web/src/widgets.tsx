// Widgets: one metric drawn one way over one range. The tenant view, custom dashboards and embeds draw them all
// from the same public API (GET /v1/analytics/product, /v1/analytics/realtime, /v1/entitlements).
import { useEffect, useState } from "preact/hooks";
import { get, query } from "./api";
import { BarChart, Figure, Heatmap, Kpi, LineChart, type TableData } from "./charts";
import { day, decimal, duration, integer, lastDays, percent } from "./format";
import { Status, useData } from "./ui";

export interface Widget {
  title: string;
  metric: string;
  chart: string;
  range_days: number;
  group_by: string;
}

// The metrics a widget can show, with the charts each can be drawn as (the first is the default): the same table
// as the server's (src/analytics/dashboards.cpp).
export const widgetMetrics: Record<string, { label: string; charts: string[]; grouped?: boolean }> = {
  active_users: { label: "Daily active users", charts: ["line", "bar", "table"], grouped: true },
  realtime: { label: "Events in the last hour (live)", charts: ["line", "bar", "table"] },
  dau: { label: "DAU", charts: ["number"] },
  wau: { label: "WAU", charts: ["number"] },
  mau: { label: "MAU", charts: ["number"] },
  stickiness: { label: "Stickiness (DAU/MAU)", charts: ["number"] },
  time_to_first_value: { label: "Time to first value", charts: ["number"] },
  nps: { label: "NPS", charts: ["number", "bar", "table"] },
  feature_adoption: { label: "Feature adoption", charts: ["bar", "table"] },
  usage: { label: "Usage against quotas", charts: ["bar", "table"] },
  retention: { label: "Retention by cohort", charts: ["heatmap", "table"] },
};

export interface ProductMetrics {
  from: string;
  to: string;
  active_users: number;
  daily_active_users: { date: string; users: number }[];
  dau: number;
  wau: number;
  mau: number;
  stickiness: number | null;
  feature_adoption: { feature: string; users: number; adoption: number }[];
  nps: { responses: number; promoters: number; passives: number; detractors: number; score: number | null };
  time_to_first_value: { event: string; users: number; reached: number; median_seconds: number | null; p90_seconds: number | null } | null;
  retention: { day: number; users: number; retained: number; rate: number | null }[];
  retention_cohorts: { date: string; users: number; retained: number[] }[];
}

export interface Realtime {
  from: string;
  minutes: number;
  types: Record<string, number[]>;
  totals: Record<string, number>;
}

export interface Entitlement {
  name: string;
  metric: string | null;
  limit: number | null;
  used: number;
  remaining: number | null;
  enforcement: string;
}

// The value event for time to first value: the first feature used.
export const valueEvent = "feature.used";

const cache = new Map<string, { at: number; value: Promise<unknown> }>();
// One request per URL every 15 s, however many widgets read it.
function cached<T>(url: string): Promise<T> {
  const hit = cache.get(url);
  if (hit && Date.now() - hit.at < 15000) return hit.value as Promise<T>;
  const value = get<T>(url);
  cache.set(url, { at: Date.now(), value });
  value.catch(() => cache.delete(url));
  return value;
}

export function productUrl(rangeDays: number): string {
  const r = lastDays(rangeDays);
  return `/v1/analytics/product${query({ from: r.from, to: r.to, value_event: valueEvent })}`;
}

export function productMetrics(rangeDays: number): Promise<ProductMetrics> {
  return cached<ProductMetrics>(productUrl(rangeDays));
}

const seconds = (iso: string) => Date.parse(`${iso}T00:00:00Z`) / 1000;

// Daily values as means per ISO week (from Monday) or calendar month.
export function grouped(days: { date: string; users: number }[], by: string): { date: string; users: number }[] {
  if (by === "day") return days;
  const buckets = new Map<string, number[]>();
  for (const d of days) {
    const t = new Date(`${d.date}T00:00:00Z`);
    let key = d.date.slice(0, 7) + "-01";
    if (by === "week") {
      const monday = new Date(t.getTime() - ((t.getUTCDay() + 6) % 7) * 86400000);
      key = monday.toISOString().slice(0, 10);
    }
    buckets.set(key, [...(buckets.get(key) ?? []), d.users]);
  }
  return [...buckets].map(([date, v]) => ({ date, users: Math.round((v.reduce((a, b) => a + b, 0) / v.length) * 10) / 10 }));
}

function Series(props: { w: Widget; label: string; x: string[]; values: number[]; unit: (v: number) => string }) {
  const data: TableData = {
    rows: props.x.length,
    columns: [
      { label: "Date", value: (r) => props.x[r], text: (r) => day(props.x[r]) },
      { label: props.label, value: (r) => props.values[r], text: (r) => props.unit(props.values[r]) },
    ],
  };
  const describe = `${props.label}: ${props.x.length} points, last ${props.unit(props.values.at(-1) ?? 0)}`;
  return (
    <Figure title={props.w.title} data={data} tableOnly={props.w.chart === "table"}>
      {props.w.chart === "bar" ? (
        <BarChart labels={props.x.map((d) => d.slice(5))} series={[{ label: props.label, values: props.values }]} describe={describe} format={props.unit} />
      ) : (
        <LineChart x={props.x.map(seconds)} series={[{ label: props.label, values: props.values }]} describe={describe} format={props.unit} />
      )}
    </Figure>
  );
}

function Bars(props: { w: Widget; labels: string[]; series: { label: string; values: number[] }[]; unit: (v: number) => string }) {
  const data: TableData = {
    rows: props.labels.length,
    columns: [
      { label: "Name", value: (r) => props.labels[r] },
      ...props.series.map((s) => ({ label: s.label, value: (r: number) => s.values[r], text: (r: number) => props.unit(s.values[r]) })),
    ],
  };
  return (
    <Figure title={props.w.title} data={data} tableOnly={props.w.chart === "table"}>
      <BarChart labels={props.labels} series={props.series} format={props.unit} describe={`${props.w.title}: ${props.labels.length} bars`} />
    </Figure>
  );
}

export function RetentionFigure({ w, m }: { w: Widget; m: ProductMetrics }) {
  const days = [0, 1, 7, 14, 30];
  const cohorts = m.retention_cohorts.filter((c) => c.users > 0);
  const cells = cohorts.map((c) => days.map((d) => (d < c.retained.length ? c.retained[d] / c.users : null)));
  const data: TableData = {
    rows: cohorts.length,
    columns: [
      { label: "Cohort", value: (r) => cohorts[r].date },
      { label: "Users", value: (r) => cohorts[r].users },
      ...days.map((d, i) => ({
        label: `Day ${d}`,
        value: (r: number) => (cells[r][i] === null ? null : cohorts[r].retained[d]),
        text: (r: number) => percent(cells[r][i]),
      })),
    ],
  };
  return (
    <Figure title={w.title} data={data} tableOnly={w.chart === "table"}>
      <Heatmap
        rows={cohorts.map((c) => `${c.date} (${c.users})`)}
        columns={days.map((d) => `Day ${d}`)}
        cells={cells}
        describe={`Share of each day's new users active again after 0, 1, 7, 14 and 30 days`}
      />
    </Figure>
  );
}

function ProductWidget({ w, m }: { w: Widget; m: ProductMetrics }) {
  switch (w.metric) {
    case "active_users": {
      const g = grouped(m.daily_active_users, w.group_by);
      return <Series w={w} label="Active users" x={g.map((d) => d.date)} values={g.map((d) => d.users)} unit={(v) => decimal(v, 1)} />;
    }
    case "dau":
      return <Kpi label={w.title} value={integer(m.dau)} hint="users active on the last day" />;
    case "wau":
      return <Kpi label={w.title} value={integer(m.wau)} hint="the last 7 days" />;
    case "mau":
      return <Kpi label={w.title} value={integer(m.mau)} hint="the last 30 days" />;
    case "stickiness":
      return <Kpi label={w.title} value={percent(m.stickiness)} hint="DAU / MAU" />;
    case "time_to_first_value": {
      const t = m.time_to_first_value;
      return (
        <Kpi
          label={w.title}
          value={duration(t?.median_seconds)}
          hint={t ? `median to first ${t.event}; p90 ${duration(t.p90_seconds)}; ${integer(t.reached)} of ${integer(t.users)} reached it` : undefined}
        />
      );
    }
    case "nps":
      if (w.chart === "number") {
        return <Kpi label={w.title} value={m.nps.score === null ? "—" : decimal(m.nps.score, 1)} hint={`${integer(m.nps.responses)} responses`} />;
      }
      return (
        <Bars
          w={w}
          labels={["Promoters", "Passives", "Detractors"]}
          series={[{ label: "Responses", values: [m.nps.promoters, m.nps.passives, m.nps.detractors] }]}
          unit={integer}
        />
      );
    case "feature_adoption":
      return (
        <Bars
          w={w}
          labels={m.feature_adoption.map((f) => f.feature)}
          series={[{ label: "Adoption", values: m.feature_adoption.map((f) => f.adoption) }]}
          unit={percent}
        />
      );
    case "retention":
      return <RetentionFigure w={w} m={m} />;
  }
  return <p>Unknown metric {w.metric}</p>;
}

export function RealtimeFigure({ w }: { w: Widget }) {
  const [data, setData] = useState<Realtime | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    let live = true;
    const load = () =>
      get<Realtime>("/v1/analytics/realtime?minutes=60").then(
        (r) => live && (setData(r), setError(undefined)),
        (e: Error) => live && setError(e.message),
      );
    void load();
    const timer = window.setInterval(load, 5000);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, []);
  if (error) return <p class="alert" role="alert">{`${w.title}: ${error}`}</p>;
  if (!data) return <p aria-busy="true">Loading…</p>;
  const start = Date.parse(data.from) / 1000;
  const x = Array.from({ length: data.minutes }, (_, i) => start + i * 60);
  const types = Object.keys(data.types).sort();
  const table: TableData = {
    rows: x.length,
    columns: [
      { label: "Minute", value: (r) => new Date(x[r] * 1000).toISOString() },
      ...types.map((t) => ({ label: t, value: (r: number) => data.types[t][r] ?? 0 })),
    ],
  };
  const total = Object.values(data.totals).reduce((a, b) => a + b, 0);
  return (
    <Figure title={w.title} data={table} tableOnly={w.chart === "table"}>
      <p class="muted" aria-live="polite" data-realtime-total={total}>
        {integer(total)} events in the last {data.minutes} minutes
      </p>
      {types.length === 0 ? (
        <p>No events yet.</p>
      ) : w.chart === "bar" ? (
        <BarChart labels={types} series={[{ label: "Events", values: types.map((t) => data.totals[t]) }]} describe={`Events by type in the last hour`} format={integer} />
      ) : (
        <LineChart x={x} series={types.map((t) => ({ label: t, values: data.types[t] }))} describe={`Events per minute by type, last hour`} format={integer} />
      )}
    </Figure>
  );
}

export function UsageFigure({ w }: { w: Widget }) {
  const loaded = useData(() => cached<{ data: Entitlement[] }>("/v1/entitlements"), []);
  return (
    <Status of={loaded}>
      {(r) => {
        const rows = r.data.filter((e) => e.limit !== null);
        const data: TableData = {
          rows: rows.length,
          columns: [
            { label: "Quota", value: (i) => rows[i].name },
            { label: "Used", value: (i) => rows[i].used, text: (i) => integer(rows[i].used) },
            { label: "Limit", value: (i) => rows[i].limit, text: (i) => integer(rows[i].limit) },
            { label: "Used share", value: (i) => rows[i].used / (rows[i].limit || 1), text: (i) => percent(rows[i].used / (rows[i].limit || 1)) },
            { label: "Enforcement", value: (i) => rows[i].enforcement },
          ],
        };
        return (
          <Figure title={w.title} data={data} tableOnly={w.chart === "table"}>
            {rows.length === 0 && <p>No quota with a limit on this plan.</p>}
            <ul class="meters">
              {rows.map((e) => (
                <li key={e.name}>
                  <label>
                    <span>
                      {e.name}: {integer(e.used)} of {integer(e.limit)}
                    </span>
                    <meter min={0} max={e.limit ?? 0} value={e.used} high={(e.limit ?? 0) * 0.8} optimum={0} />
                  </label>
                </li>
              ))}
            </ul>
            <p class="muted">No usage forecast yet: forecasting is not built.</p>
          </Figure>
        );
      }}
    </Status>
  );
}

export function WidgetView({ w }: { w: Widget }) {
  if (w.metric === "realtime") return <RealtimeFigure w={w} />;
  if (w.metric === "usage") return <UsageFigure w={w} />;
  return <ProductWidgetLoader w={w} />;
}

function ProductWidgetLoader({ w }: { w: Widget }) {
  const loaded = useData(() => productMetrics(w.range_days), [w.range_days]);
  return <Status of={loaded}>{(m) => <ProductWidget w={w} m={m} />}</Status>;
}
