// The platform's SaaS metrics and its tenants (super admins): GET /v1/admin/analytics/saas and /v1/admin/tenants.
import { useMemo, useState } from "preact/hooks";
import { call, get, query } from "../api";
import { BarChart, Figure, Kpi, LineChart, type TableData } from "../charts";
import { day, decimal, integer, isoDay, money, percent } from "../format";
import { Alert, DateInput, Field, Select, Status, messageOf, useData } from "../ui";

export interface Movements {
  new: number;
  expansion: number;
  contraction: number;
  churn: number;
  reactivation: number;
  net: number;
  new_customers: number;
  churned_customers: number;
}

export interface Period {
  start: string;
  end: string;
  mrr_start: number;
  mrr_end: number;
  arr: number;
  customers_start: number;
  customers_end: number;
  movements: Movements;
  arpu: number | null;
  customer_churn_rate: number | null;
  gross_revenue_churn: number | null;
  net_revenue_churn: number | null;
  quick_ratio: number | null;
  net_revenue_retention: number | null;
  gross_revenue_retention: number | null;
  spend: number;
  cac: number | null;
  cac_payback_months: number | null;
  metered_revenue: number;
}

export interface CurrencyMetrics {
  currency: string;
  summary: Period;
  monthly_churn_rate: number | null;
  ltv: number | null;
  periods: Period[];
  tenants: { tenant_id: string; mrr: number }[];
}

export interface SaasMetrics {
  from: string;
  to: string;
  granularity: string;
  currencies: CurrencyMetrics[];
}

export interface Tenant {
  id: string;
  slug: string;
  name: string;
  status: string;
  isolation: string;
  plan: string;
  created_at: string;
  quotas: Record<string, unknown>;
  settings: { locale: string; timezone: string };
}

// Churn prediction (docs/ml.md): the active model's predictions, or why there are none (no model is active: 409).
export interface ChurnPrediction {
  tenantId: string;
  churnProbability: number;
  riskLevel: "low" | "medium" | "high";
  confidenceScore: number;
  model: { name: string; version: number };
  topRiskFactors: { feature: string; value: number | null; contribution: number; direction: string }[];
  recommendedInterventions: { kind: string; reason: string }[];
  history?: { day: string; churnProbability: number; riskLevel: string }[];
}

export type Churn = { scored: true; byTenant: Map<string, ChurnPrediction> } | { scored: false; why: string };

// Whether a model is active, asked first: the predictions answer 409 without one, which a browser logs as an error.
async function activeModel(): Promise<boolean> {
  const r = await get<{ data: { status: string }[] }>("/v1/admin/churn/models");
  return r.data.some((m) => m.status === "active");
}

async function churnRisks(): Promise<Churn> {
  if (!(await activeModel())) return { scored: false, why: "no churn model is active" };
  const r = await get<{ data: ChurnPrediction[] }>(`/v1/admin/churn/tenants${query({ limit: 10000 })}`);
  return { scored: true, byTenant: new Map(r.data.map((p) => [p.tenantId, p])) };
}

const share = (p: number) => `${(p * 100).toFixed(0)}%`;

function RiskBadge(props: { p?: ChurnPrediction }) {
  if (!props.p) return <span class="muted">not a customer</span>;
  return (
    <span class={`badge badge-risk-${props.p.riskLevel}`} title={`confidence ${share(props.p.confidenceScore)}`}>
      {props.p.riskLevel} · {share(props.p.churnProbability)}
    </span>
  );
}

async function allTenants(): Promise<Tenant[]> {
  const out: Tenant[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const r = await get<{ data: Tenant[]; next_cursor: string | null }>(`/v1/admin/tenants${query({ limit: 100, cursor })}`);
    out.push(...r.data);
    if (!r.next_cursor) break;
    cursor = r.next_cursor;
  }
  return out;
}

const seconds = (iso: string) => Date.parse(`${iso}T00:00:00Z`) / 1000;

export function movementsTable(c: CurrencyMetrics): TableData {
  const p = c.periods;
  const m = (k: keyof Movements) => (r: number) => p[r].movements[k];
  const t = (k: keyof Movements) => (r: number) => money(p[r].movements[k], c.currency);
  return {
    rows: p.length,
    columns: [
      { label: "Period start", value: (r) => p[r].start, text: (r) => day(p[r].start) },
      { label: "MRR at start", value: (r) => p[r].mrr_start, text: (r) => money(p[r].mrr_start, c.currency) },
      { label: "New", value: m("new"), text: t("new") },
      { label: "Expansion", value: m("expansion"), text: t("expansion") },
      { label: "Reactivation", value: m("reactivation"), text: t("reactivation") },
      { label: "Contraction", value: m("contraction"), text: t("contraction") },
      { label: "Churn", value: m("churn"), text: t("churn") },
      { label: "Net", value: m("net"), text: t("net") },
      { label: "MRR at end", value: (r) => p[r].mrr_end, text: (r) => money(p[r].mrr_end, c.currency) },
      { label: "ARR", value: (r) => p[r].arr, text: (r) => money(p[r].arr, c.currency) },
      { label: "Customers", value: (r) => p[r].customers_end, text: (r) => integer(p[r].customers_end) },
    ],
  };
}

function rateTable(c: CurrencyMetrics): TableData {
  const p = c.periods;
  const col = (label: string, k: keyof Period) => ({
    label,
    value: (r: number) => p[r][k] as number | null,
    text: (r: number) => percent(p[r][k] as number | null),
  });
  return {
    rows: p.length,
    columns: [
      { label: "Period start", value: (r) => p[r].start, text: (r) => day(p[r].start) },
      col("Customer churn", "customer_churn_rate"),
      col("Gross revenue churn", "gross_revenue_churn"),
      col("Net revenue churn", "net_revenue_churn"),
      col("NRR", "net_revenue_retention"),
      col("GRR", "gross_revenue_retention"),
    ],
  };
}

function Currency({ c }: { c: CurrencyMetrics }) {
  const s = c.summary;
  const fmt = (v: number) => money(v, c.currency);
  const x = useMemo(() => c.periods.map((p) => seconds(p.start)), [c]);
  const mrrSeries = useMemo(
    () => [
      { label: "MRR", values: c.periods.map((p) => p.mrr_end) },
      { label: "ARR", values: c.periods.map((p) => p.arr) },
    ],
    [c],
  );
  const labels = c.periods.map((p) => p.start.slice(0, 7 + (c.periods.length > 24 ? 3 : 0)));
  const moves = [
    { label: "New", values: c.periods.map((p) => p.movements.new) },
    { label: "Expansion", values: c.periods.map((p) => p.movements.expansion) },
    { label: "Reactivation", values: c.periods.map((p) => p.movements.reactivation) },
    { label: "Contraction", values: c.periods.map((p) => -p.movements.contraction) },
    { label: "Churn", values: c.periods.map((p) => -p.movements.churn) },
  ];
  return (
    <section aria-labelledby={`cur-${c.currency}`}>
      <h2 id={`cur-${c.currency}`}>Revenue in {c.currency}</h2>
      <div class="kpis">
        <Kpi label="MRR" value={fmt(s.mrr_end)} />
        <Kpi label="ARR" value={fmt(s.arr)} />
        <Kpi label="Customers" value={integer(s.customers_end)} />
        <Kpi label="ARPU" value={s.arpu === null ? "—" : fmt(s.arpu)} />
        <Kpi label="Customer churn" value={percent(s.customer_churn_rate)} hint="over the range" />
        <Kpi label="Revenue churn (gross)" value={percent(s.gross_revenue_churn)} />
        <Kpi label="Revenue churn (net)" value={percent(s.net_revenue_churn)} />
        <Kpi label="NRR" value={percent(s.net_revenue_retention)} />
        <Kpi label="GRR" value={percent(s.gross_revenue_retention)} />
        <Kpi label="LTV" value={c.ltv === null ? "—" : fmt(c.ltv)} hint={`monthly churn ${percent(c.monthly_churn_rate)}`} />
        <Kpi label="CAC" value={s.cac === null ? "—" : fmt(s.cac)} />
        <Kpi label="CAC payback" value={s.cac_payback_months === null ? "—" : `${decimal(s.cac_payback_months, 1)} mo`} />
        <Kpi label="Quick ratio" value={decimal(s.quick_ratio)} />
        <Kpi label="Metered revenue" value={fmt(s.metered_revenue)} />
      </div>
      <Figure title={`MRR and ARR (${c.currency})`} data={movementsTable(c)}>
        <LineChart
          x={x}
          series={mrrSeries}
          format={fmt}
          describe={`MRR from ${fmt(s.mrr_start)} to ${fmt(s.mrr_end)} over ${c.periods.length} periods`}
        />
      </Figure>
      <Figure title={`MRR movements (${c.currency})`} data={movementsTable(c)}>
        <BarChart
          labels={labels}
          series={moves}
          format={fmt}
          describe={`MRR gained (new, expansion, reactivation) above the axis and lost (contraction, churn) below, per period`}
        />
      </Figure>
      <Figure title={`Churn and retention (${c.currency})`} data={rateTable(c)} tableOnly />
    </section>
  );
}

type SortKey = "name" | "plan" | "mrr" | "status" | "isolation" | "created_at" | "churn";

function TenantsTable(props: { tenants: Tenant[]; metrics: SaasMetrics; currency: string; churn: Churn }) {
  const [sort, setSort] = useState<{ key: SortKey; asc: boolean }>({ key: "mrr", asc: false });
  const [filter, setFilter] = useState("");
  const [status, setStatus] = useState("");
  const c = props.metrics.currencies.find((x) => x.currency === props.currency);
  const mrr = new Map((c?.tenants ?? []).map((t) => [t.tenant_id, t.mrr]));
  const needle = filter.trim().toLowerCase();
  const rows = props.tenants
    .filter((t) => !status || t.status === status)
    .filter((t) => !needle || `${t.name} ${t.slug} ${t.plan}`.toLowerCase().includes(needle))
    .sort((a, b) => {
      const risk = (t: Tenant) => (props.churn.scored ? (props.churn.byTenant.get(t.id)?.churnProbability ?? -1) : -1);
      const value = (t: Tenant) => (sort.key === "mrr" ? (mrr.get(t.id) ?? 0) : sort.key === "churn" ? risk(t) : String(t[sort.key]));
      const va = value(a);
      const vb = value(b);
      const d = va < vb ? -1 : va > vb ? 1 : 0;
      return sort.asc ? d : -d;
    });
  const header = (key: SortKey, label: string) => (
    <th scope="col" aria-sort={sort.key === key ? (sort.asc ? "ascending" : "descending") : "none"}>
      <button type="button" class="sort" onClick={() => setSort({ key, asc: sort.key === key ? !sort.asc : true })}>
        {label}
        <span aria-hidden="true">{sort.key === key ? (sort.asc ? " ▲" : " ▼") : ""}</span>
      </button>
    </th>
  );
  return (
    <section aria-labelledby="tenants-h" class="card">
      <h2 id="tenants-h">Tenants</h2>
      <div class="filters">
        <Field label="Filter by name, slug or plan">
          {(id) => <input id={id} type="search" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />}
        </Field>
        <Select
          label="Status"
          value={status}
          onChange={setStatus}
          options={[
            ["", "Any"],
            ["active", "Active"],
            ["suspended", "Suspended"],
            ["deleted", "Deleted"],
          ]}
        />
      </div>
      <div class="table-scroll">
        <table id="tenants-table">
          <caption class="visually-hidden">Tenants with plan, MRR in {props.currency}, status and isolation</caption>
          <thead>
            <tr>
              {header("name", "Tenant")}
              {header("plan", "Plan")}
              {header("mrr", `MRR (${props.currency})`)}
              {header("status", "Status")}
              {header("isolation", "Isolation")}
              {header("churn", "Churn risk")}
              {header("created_at", "Created")}
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.id} data-tenant={t.slug}>
                <th scope="row">
                  <a href={`#/platform/tenants/${t.id}`}>{t.name}</a>
                  <div class="muted">{t.slug}</div>
                </th>
                <td>{t.plan}</td>
                <td class="num" data-mrr={mrr.get(t.id) ?? 0}>
                  {money(mrr.get(t.id) ?? 0, props.currency)}
                </td>
                <td>
                  <span class={`badge badge-${t.status}`}>{t.status}</span>
                </td>
                <td>{t.isolation}</td>
                <td data-churn={props.churn.scored ? (props.churn.byTenant.get(t.id)?.churnProbability ?? "") : ""}>
                  {props.churn.scored ? <RiskBadge p={props.churn.byTenant.get(t.id)} /> : <span class="muted">not scored</span>}
                </td>
                <td>{day(t.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted" aria-live="polite">
        {rows.length} of {props.tenants.length} tenants.{" "}
        {props.churn.scored ? "Churn risk: the active model's prediction now." : `Churn risk: not scored (${props.churn.why}).`}
      </p>
    </section>
  );
}

export function defaultRange(): { from: string; to: string } {
  const now = new Date();
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 11, 1));
  return { from: isoDay(first), to: isoDay(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1))) };
}

export function PlatformView() {
  const [range, setRange] = useState(defaultRange);
  const [granularity, setGranularity] = useState("month");
  const [currency, setCurrency] = useState("");
  const metrics = useData(
    () => get<SaasMetrics>(`/v1/admin/analytics/saas${query({ from: range.from, to: range.to, granularity })}`),
    [range.from, range.to, granularity],
  );
  const tenants = useData(allTenants, []);
  const churn = useData(churnRisks, []);
  return (
    <>
      <h1>Platform</h1>
      <form class="filters card" onSubmit={(e) => e.preventDefault()}>
        <DateInput label="From" value={range.from} onChange={(from) => setRange({ ...range, from })} />
        <DateInput label="To (exclusive)" value={range.to} onChange={(to) => setRange({ ...range, to })} />
        <Select
          label="Granularity"
          value={granularity}
          onChange={setGranularity}
          options={[
            ["month", "Month"],
            ["week", "Week"],
            ["day", "Day"],
          ]}
        />
        <Status of={metrics}>
          {(m) =>
            m.currencies.length > 1 ? (
              <Select
                label="Currency"
                value={currency || m.currencies[0].currency}
                onChange={setCurrency}
                options={m.currencies.map((c) => [c.currency, c.currency])}
              />
            ) : null
          }
        </Status>
      </form>
      <Status of={metrics}>
        {(m) => {
          const shown = m.currencies.filter((c) => !currency || c.currency === currency);
          if (shown.length === 0) return <p>No paying customers in this range.</p>;
          return (
            <>
              {shown.slice(0, 1).map((c) => (
                <Currency key={c.currency} c={c} />
              ))}
              <Status of={tenants}>
                {(ts) => (
                  <Status of={churn}>
                    {(ch) => <TenantsTable tenants={ts} metrics={m} currency={shown[0].currency} churn={ch} />}
                  </Status>
                )}
              </Status>
            </>
          );
        }}
      </Status>
    </>
  );
}

export function TenantDetail({ id }: { id: string }) {
  const range = defaultRange();
  const tenant = useData(() => get<Tenant>(`/v1/admin/tenants/${encodeURIComponent(id)}`), [id]);
  const metrics = useData(
    () => get<SaasMetrics>(`/v1/admin/analytics/saas${query({ from: range.from, to: range.to, granularity: "month" })}`),
    [id],
  );
  return (
    <>
      <p>
        <a href="#/platform">← All tenants</a>
      </p>
      <Status of={tenant}>
        {(t) => (
          <>
            <h1>{t.name}</h1>
            <dl class="facts card">
              <dt>Slug</dt>
              <dd>{t.slug}</dd>
              <dt>Id</dt>
              <dd>
                <code>{t.id}</code>
              </dd>
              <dt>Plan</dt>
              <dd>{t.plan}</dd>
              <dt>Status</dt>
              <dd>{t.status}</dd>
              <dt>Isolation</dt>
              <dd>{t.isolation}</dd>
              <dt>Locale and time zone</dt>
              <dd>
                {t.settings.locale}, {t.settings.timezone}
              </dd>
              <dt>Created</dt>
              <dd>{day(t.created_at)}</dd>
            </dl>
            <ChurnCard id={t.id} />
            <Status of={metrics}>
              {(m) => (
                <section class="card" aria-labelledby="t-mrr">
                  <h2 id="t-mrr">MRR now</h2>
                  <ul>
                    {m.currencies.map((c) => (
                      <li key={c.currency}>
                        {c.currency}: {money(c.tenants.find((x) => x.tenant_id === t.id)?.mrr ?? 0, c.currency)}
                      </li>
                    ))}
                  </ul>
                </section>
              )}
            </Status>
          </>
        )}
      </Status>
    </>
  );
}

// One tenant's churn risk, why, and what to do about it: each recommended intervention can be applied from here.
function ChurnCard({ id }: { id: string }) {
  const risk = useData(
    async () => ((await activeModel()) ? get<ChurnPrediction>(`/v1/admin/tenants/${encodeURIComponent(id)}/churn`) : undefined),
    [id],
  );
  const [done, setDone] = useState("");
  const [failed, setFailed] = useState("");
  const apply = async (kind: string) => {
    setFailed("");
    try {
      await call("POST", `/v1/admin/tenants/${encodeURIComponent(id)}/churn/interventions`, { kind });
      setDone(kind);
    } catch (e) {
      setFailed(messageOf(e));
    }
  };
  return (
    <section class="card" aria-labelledby="t-churn">
      <h2 id="t-churn">Churn risk</h2>
      <Status of={{ ...risk, data: risk.loading ? undefined : (risk.data ?? null) }}>
        {(p) =>
          p === null ? (
            <p class="muted">Not scored: no churn model is active.</p>
          ) : (
            <>
              <p>
                <RiskBadge p={p} /> (model {p.model.name} v{p.model.version}, confidence {share(p.confidenceScore)})
              </p>
              {p.topRiskFactors.length > 0 && (
                <>
                  <h3>What raises it</h3>
                  <ul id="churn-factors">
                    {p.topRiskFactors.map((f) => (
                      <li key={f.feature}>
                        {f.feature.replaceAll("_", " ")}: {f.value === null ? "none" : Number(f.value.toFixed(2))}
                      </li>
                    ))}
                  </ul>
                </>
              )}
              <h3>What to do</h3>
              {p.recommendedInterventions.length === 0 ? (
                <p class="muted">Nothing recommended at this risk.</p>
              ) : (
                <ul id="churn-interventions">
                  {p.recommendedInterventions.map((r) => (
                    <li key={r.kind}>
                      {r.reason}{" "}
                      <button type="button" onClick={() => apply(r.kind)} disabled={done === r.kind}>
                        {done === r.kind ? "Applied" : `Apply: ${r.kind.replaceAll("_", " ")}`}
                      </button>
                    </li>
                  ))}
                </ul>
              )}
              {failed && <Alert>{failed}</Alert>}
            </>
          )
        }
      </Status>
    </section>
  );
}
