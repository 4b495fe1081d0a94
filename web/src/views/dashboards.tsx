// Custom dashboards: named compositions of widgets saved per tenant (/v1/analytics/dashboards), and their embeds.
import { useState } from "preact/hooks";
import { call, can, claims, get } from "../api";
import { day } from "../format";
import { Alert, Field, Select, Status, messageOf, useData } from "../ui";
import { WidgetView, widgetMetrics, type Widget } from "../widgets";

export interface Dashboard {
  id: string;
  name: string;
  widgets: Widget[];
  version: number;
  created_at: string;
  updated_at: string;
}

export function DashboardList() {
  const list = useData(() => get<{ data: Dashboard[] }>("/v1/analytics/dashboards"), []);
  return (
    <>
      <h1>Dashboards</h1>
      {can("dashboards:manage") && (
        <p>
          <a class="button" href="#/dashboards/new">
            New dashboard
          </a>
        </p>
      )}
      <Status of={list}>
        {(r) =>
          r.data.length === 0 ? (
            <p>No dashboards yet.</p>
          ) : (
            <ul class="cards" aria-label="Dashboards">
              {r.data.map((d) => (
                <li key={d.id} class="card">
                  <a href={`#/dashboards/${d.id}`}>{d.name}</a>
                  <div class="muted">
                    {d.widgets.length} widgets · updated {day(d.updated_at)}
                  </div>
                </li>
              ))}
            </ul>
          )
        }
      </Status>
      {can("tenant:manage") && <EmbedOrigins />}
    </>
  );
}

// Which sites may frame this tenant's embedded dashboards (the tenant setting embed_frame_ancestors).
function EmbedOrigins() {
  const settings = useData(() => get<{ embed_frame_ancestors: string[] }>("/v1/settings"), []);
  const [text, setText] = useState<string | undefined>();
  const [message, setMessage] = useState("");
  return (
    <section class="card" aria-labelledby="origins-h">
      <h2 id="origins-h">Sites that may embed dashboards</h2>
      <Status of={settings}>
        {(s) => (
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              const list = (text ?? s.embed_frame_ancestors.join("\n")).split(/\s+/).filter(Boolean);
              try {
                await call("PATCH", "/v1/settings", { embed_frame_ancestors: list });
                setMessage("Saved.");
                settings.reload();
              } catch (err) {
                setMessage(messageOf(err));
              }
            }}
          >
            <Field label="Origins, one per line (https://app.example.com)">
              {(id) => (
                <textarea id={id} rows={3} value={text ?? s.embed_frame_ancestors.join("\n")} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
              )}
            </Field>
            <button type="submit">Save origins</button>
            <p role="status">{message}</p>
          </form>
        )}
      </Status>
    </section>
  );
}

export function DashboardView({ id }: { id: string }) {
  const loaded = useData(() => get<Dashboard>(`/v1/analytics/dashboards/${encodeURIComponent(id)}`), [id]);
  const [error, setError] = useState("");
  return (
    <Status of={loaded}>
      {(d) => (
        <>
          <p>
            <a href="#/dashboards">← Dashboards</a>
          </p>
          <h1>{d.name}</h1>
          {can("dashboards:manage") && (
            <p class="actions">
              <a class="button" href={`#/dashboards/${d.id}/edit`}>
                Edit
              </a>
              <button
                type="button"
                class="danger"
                onClick={async () => {
                  if (!window.confirm(`Delete the dashboard "${d.name}"?`)) return;
                  try {
                    await call("DELETE", `/v1/analytics/dashboards/${d.id}`);
                    location.hash = "#/dashboards";
                  } catch (e) {
                    setError(messageOf(e));
                  }
                }}
              >
                Delete
              </button>
            </p>
          )}
          {error && <Alert>{error}</Alert>}
          <Widgets widgets={d.widgets} />
          <EmbedPanel dashboard={d} />
        </>
      )}
    </Status>
  );
}

export function Widgets({ widgets }: { widgets: Widget[] }) {
  if (widgets.length === 0) return <p>This dashboard has no widgets.</p>;
  return (
    <div class="widgets">
      {widgets.map((w, i) => (
        <div class={widgetMetrics[w.metric]?.charts[0] === "number" && w.chart === "number" ? "widget small" : "widget"} key={i}>
          <WidgetView w={w} />
        </div>
      ))}
    </div>
  );
}

function EmbedPanel({ dashboard }: { dashboard: Dashboard }) {
  const [url, setUrl] = useState("");
  const [error, setError] = useState("");
  const [ttl, setTtl] = useState("600");
  return (
    <section class="card" aria-labelledby="embed-h">
      <h2 id="embed-h">Embed</h2>
      <p>
        An embed token shows this tenant's analytics only, read-only, until it expires. Put the link in an iframe of a site listed
        under "Sites that may embed dashboards".
      </p>
      <form
        class="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const t = await call<{ token: string }>("POST", "/v1/analytics/embed-tokens", { ttl_seconds: Number(ttl) });
            const tenant = claims()?.tenant_id ?? "";
            setUrl(`${location.origin}/console/embed/${tenant}?dashboard=${dashboard.id}#token=${t.token}`);
            setError("");
          } catch (err) {
            setError(messageOf(err));
          }
        }}
      >
        <Select
          label="Valid for"
          value={ttl}
          onChange={setTtl}
          options={[
            ["600", "10 minutes"],
            ["1800", "30 minutes"],
            ["3600", "1 hour"],
          ]}
        />
        <button type="submit">Create embed link</button>
      </form>
      {error && <Alert>{error}</Alert>}
      {url && (
        <Field label="Embed link">
          {(id) => <textarea id={id} readOnly rows={3} value={url} data-embed-url={url} />}
        </Field>
      )}
    </section>
  );
}

const emptyWidget = (): Widget => ({ title: "Daily active users", metric: "active_users", chart: "line", range_days: 30, group_by: "day" });

export function DashboardEditor({ id }: { id?: string }) {
  const existing = useData(
    () => (id ? get<Dashboard>(`/v1/analytics/dashboards/${encodeURIComponent(id)}`) : Promise.resolve(undefined)),
    [id],
  );
  return (
    <Status of={{ ...existing, data: existing.loading ? undefined : { d: existing.data } }}>
      {({ d }) => <Editor initial={d} />}
    </Status>
  );
}

function Editor({ initial }: { initial?: Dashboard }) {
  const [name, setName] = useState(initial?.name ?? "");
  const [widgets, setWidgets] = useState<Widget[]>(initial?.widgets ?? [emptyWidget()]);
  const [error, setError] = useState("");
  const update = (i: number, patch: Partial<Widget>) => {
    const next = widgets.map((w, j) => (j === i ? { ...w, ...patch } : w));
    const w = next[i];
    const m = widgetMetrics[w.metric];
    if (!m.charts.includes(w.chart)) w.chart = m.charts[0];
    if (!m.grouped) w.group_by = "day";
    if (patch.metric) w.title = m.label;
    setWidgets(next);
  };
  return (
    <>
      <h1>{initial ? `Edit ${initial.name}` : "New dashboard"}</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const body = { name, widgets };
            const saved = initial
              ? await call<Dashboard>("PUT", `/v1/analytics/dashboards/${initial.id}`, body)
              : await call<Dashboard>("POST", "/v1/analytics/dashboards", body);
            location.hash = `#/dashboards/${saved.id}`;
          } catch (err) {
            setError(messageOf(err));
          }
        }}
      >
        <Field label="Dashboard name">
          {(fid) => <input id={fid} required maxLength={100} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />}
        </Field>
        <ol class="widget-editor">
          {widgets.map((w, i) => (
            <li key={i} class="card" aria-label={`Widget ${i + 1}`}>
              <Field label={`Widget ${i + 1} title`}>
                {(fid) => <input id={fid} required maxLength={100} value={w.title} onInput={(e) => update(i, { title: (e.target as HTMLInputElement).value })} />}
              </Field>
              <Select label={`Widget ${i + 1} metric`} value={w.metric} onChange={(metric) => update(i, { metric })} options={Object.entries(widgetMetrics).map(([k, v]) => [k, v.label])} />
              <Select label={`Widget ${i + 1} chart`} value={w.chart} onChange={(chart) => update(i, { chart })} options={widgetMetrics[w.metric].charts.map((c) => [c, c])} />
              <Select
                label={`Widget ${i + 1} range`}
                value={String(w.range_days)}
                onChange={(v) => update(i, { range_days: Number(v) })}
                options={[
                  ["7", "7 days"],
                  ["30", "30 days"],
                  ["90", "90 days"],
                  ["365", "365 days"],
                ]}
              />
              {widgetMetrics[w.metric].grouped && (
                <Select
                  label={`Widget ${i + 1} grouping`}
                  value={w.group_by}
                  onChange={(group_by) => update(i, { group_by })}
                  options={[
                    ["day", "By day"],
                    ["week", "By week"],
                    ["month", "By month"],
                  ]}
                />
              )}
              <button type="button" class="link" onClick={() => setWidgets(widgets.filter((_, j) => j !== i))}>
                Remove widget {i + 1}
              </button>
            </li>
          ))}
        </ol>
        <p class="actions">
          <button type="button" onClick={() => setWidgets([...widgets, emptyWidget()])} disabled={widgets.length >= 24}>
            Add widget
          </button>
          <button type="submit">Save dashboard</button>
        </p>
        {error && <Alert>{error}</Alert>}
      </form>
    </>
  );
}
