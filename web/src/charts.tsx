// Charts, each with its numbers: every figure can switch to a table and download its data as CSV.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export const palette = ["#1d4ed8", "#b45309", "#047857", "#b91c1c", "#6d28d9", "#0e7490", "#be185d", "#4d7c0f"];

export interface Column {
  label: string;
  // The raw value written to CSV, and the text shown in the table.
  value: (row: number) => string | number | null;
  text?: (row: number) => string;
}

export interface TableData {
  columns: Column[];
  rows: number;
}

function csvField(v: string | number | null): string {
  const s = v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(data: TableData): string {
  const lines = [data.columns.map((c) => csvField(c.label)).join(",")];
  for (let r = 0; r < data.rows; r++) lines.push(data.columns.map((c) => csvField(c.value(r))).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

export function download(name: string, blob: Blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function DataTable({ data, caption }: { data: TableData; caption: string }) {
  const rows = [];
  for (let r = 0; r < data.rows; r++) {
    rows.push(
      <tr key={r}>
        {data.columns.map((c, i) =>
          i === 0 ? (
            <th scope="row" key={i}>
              {c.text ? c.text(r) : String(c.value(r) ?? "—")}
            </th>
          ) : (
            <td key={i}>{c.text ? c.text(r) : String(c.value(r) ?? "—")}</td>
          ),
        )}
      </tr>,
    );
  }
  return (
    <div class="table-scroll">
      <table>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {data.columns.map((c, i) => (
              <th scope="col" key={i}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{rows}</tbody>
      </table>
    </div>
  );
}

// A titled figure: the chart, or its table, and the CSV of its data.
export function Figure(props: { title: string; data: TableData; children?: ComponentChildren; tableOnly?: boolean }) {
  const [asTable, setAsTable] = useState(props.tableOnly ?? false);
  const slug = props.title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return (
    <figure class="card figure" aria-label={props.title}>
      <figcaption>
        <h3>{props.title}</h3>
        <span class="figure-actions">
          {!props.tableOnly && (
            <button type="button" class="link" aria-pressed={asTable} onClick={() => setAsTable(!asTable)}>
              {asTable ? "Show chart" : "Show table"}
            </button>
          )}
          <button
            type="button"
            class="link"
            onClick={() => download(`${slug}.csv`, new Blob([toCsv(props.data)], { type: "text/csv" }))}
          >
            Download CSV
          </button>
        </span>
      </figcaption>
      {asTable || !props.children ? <DataTable data={props.data} caption={props.title} /> : props.children}
    </figure>
  );
}

export interface Series {
  label: string;
  values: (number | null)[];
}

// A time series line chart (uPlot). `x`: Unix seconds. `describe` is read to screen readers in place of the canvas.
export function LineChart(props: { x: number[]; series: Series[]; describe: string; format?: (v: number) => string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = props.format ?? ((v: number) => String(v));
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 240,
      series: [
        {},
        ...props.series.map((s, i) => ({
          label: s.label,
          stroke: palette[i % palette.length],
          width: 2,
          value: (_u: uPlot, v: number | null) => (v === null ? "—" : fmt(v)),
        })),
      ],
      axes: [{}, { values: (_u: uPlot, splits: number[]) => splits.map(fmt), size: 80 }],
      scales: { x: { time: true } },
      cursor: { drag: { x: false, y: false } },
    };
    const plot = new uPlot(opts, [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 240 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.x, props.series]);
  return <div ref={box} class="chart" role="img" aria-label={props.describe} />;
}

// Bars per category, several series side by side; negative values go below the axis (e.g. MRR lost). SVG, scaled
// to its box.
export function BarChart(props: {
  labels: string[];
  series: Series[];
  describe: string;
  format?: (v: number) => string;
}) {
  const fmt = props.format ?? ((v: number) => String(v));
  const values = props.series.flatMap((s) => s.values.map((v) => v ?? 0));
  const max = Math.max(0, ...values);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const width = 640;
  const height = 220;
  const top = 10;
  const bottom = 40;
  const plotH = height - top - bottom;
  const zero = top + (max / span) * plotH;
  const group = width / Math.max(1, props.labels.length);
  const bar = Math.max(2, (group * 0.8) / Math.max(1, props.series.length));
  const every = Math.ceil(props.labels.length / 12);
  return (
    <div class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.describe} preserveAspectRatio="none">
        <line x1={0} x2={width} y1={zero} y2={zero} class="axis" />
        {props.labels.map((label, i) => (
          <g key={i}>
            {props.series.map((s, j) => {
              const v = s.values[i] ?? 0;
              const h = (Math.abs(v) / span) * plotH;
              return (
                <rect
                  key={j}
                  x={i * group + group * 0.1 + j * bar}
                  y={v >= 0 ? zero - h : zero}
                  width={bar * 0.9}
                  height={h}
                  fill={palette[j % palette.length]}
                >
                  <title>{`${label} · ${s.label}: ${fmt(v)}`}</title>
                </rect>
              );
            })}
            {i % every === 0 && (
              <text x={i * group + group / 2} y={height - 22} text-anchor="middle" class="tick">
                {label}
              </text>
            )}
          </g>
        ))}
      </svg>
      <ul class="legend">
        {props.series.map((s, j) => (
          <li key={j}>
            <span class={`swatch swatch-${j % palette.length}`} aria-hidden="true" />
            {s.label}
          </li>
        ))}
      </ul>
    </div>
  );
}

// Retention as a heatmap: a row per cohort, a column per day since first seen, shaded by the share retained.
export function Heatmap(props: { rows: string[]; columns: string[]; cells: (number | null)[][]; describe: string }) {
  return (
    <div class="table-scroll">
      <table class="heatmap" aria-label={props.describe}>
        <thead>
          <tr>
            <th scope="col">Cohort</th>
            {props.columns.map((c, i) => (
              <th scope="col" key={i}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r, i) => (
            <tr key={i}>
              <th scope="row">{r}</th>
              {props.cells[i].map((v, j) => (
                <td key={j} class={v === null ? "heat-none" : `heat-${Math.min(9, Math.floor(v * 10))}`}>
                  {v === null ? "" : `${Math.round(v * 100)}%`}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Kpi(props: { label: string; value: string; hint?: string }) {
  return (
    <div class="kpi card">
      <div class="kpi-label">{props.label}</div>
      <div class="kpi-value" data-kpi={props.label}>
        {props.value}
      </div>
      {props.hint && <div class="kpi-hint">{props.hint}</div>}
    </div>
  );
}
