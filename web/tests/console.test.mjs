// The console in a real browser (Debian's Chromium driven by playwright-core) against a real `atrium serve` loaded
// with the demo platform. Run by tests/console/console_browser_test.py, which starts the server and passes:
//   ATRIUM_URL       http://127.0.0.1:<port>
//   ROOT_EMAIL, ROOT_PASSWORD   a super admin
//   DEMO_PASSWORD    the demo owners' password (owner@<slug>.demo)
// Each test signs in through the page, checks what it shows against the API's own answer for the same question,
// and fails on any console error or uncaught exception of the page.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const base = process.env.ATRIUM_URL;
const rootEmail = process.env.ROOT_EMAIL;
const rootPassword = process.env.ROOT_PASSWORD;
const demoPassword = process.env.DEMO_PASSWORD ?? "demo-password";
assert.ok(base && rootEmail && rootPassword, "ATRIUM_URL, ROOT_EMAIL and ROOT_PASSWORD are required");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let browser;
let host; // a page of "the tenant's own product", on another origin, that frames the embed
let hostPort;
let hostPage = "";

// ---- the API, from outside the browser ------------------------------------------------------------------------

async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function tokenFor(email, password, tenant) {
  const r = await api("POST", "/v1/auth/token", undefined, { grant_type: "password", email, password, ...(tenant ? { tenant } : {}) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access_token;
}

// The demo tenants: each with its owner's token and its subscription, active ones first.
let demo;
async function demoTenants() {
  if (demo) return demo;
  const root = await tokenFor(rootEmail, rootPassword);
  const listed = await api("GET", "/v1/admin/tenants?limit=100", root);
  const out = [];
  for (const t of listed.body.data.filter((x) => x.status === "active" && x.slug.startsWith("demo-"))) {
    const token = await tokenFor(`owner@${t.slug}.demo`, demoPassword, t.slug);
    const subs = await api("GET", "/v1/subscriptions", token);
    out.push({ tenant: t, token, sub: subs.body.data.find((s) => s.status === "active") });
  }
  out.sort((a, b) => Number(!a.sub) - Number(!b.sub));
  assert.ok(out.length >= 2 && out[0].sub, "the demo platform has two active tenants, one of them subscribed");
  demo = out;
  return demo;
}

// ---- the browser ----------------------------------------------------------------------------------------------

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, locale: "en-US", acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.errors = [];
  // A failed load's message does not name the resource; its location does.
  page.on("console", (m) => m.type() === "error" && page.errors.push(`${m.text()}${m.location()?.url ? ` (${m.location().url})` : ""}`));
  page.on("pageerror", (e) => page.errors.push(e.message));
  return page;
}

async function signIn(page, email, password, tenant = "") {
  await page.goto(`${base}/console`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Tenant", { exact: false }).fill(tenant);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

async function noSeriousViolations(page, what) {
  await page.evaluate(axeSource); // through the DevTools protocol: the page's CSP does not apply to it
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; ")})`),
    [],
    `accessibility violations on ${what}`,
  );
}

function noErrors(page, what) {
  assert.deepEqual(page.errors, [], `console errors on ${what}`);
}

// The text the page's locale gives an amount of minor units (the console formats money the same way).
function moneyText(page, minor, currency) {
  return page.evaluate(
    ([m, c]) => {
      const digits = new Intl.NumberFormat("en", { style: "currency", currency: c }).resolvedOptions().maximumFractionDigits;
      let t = BigInt(Math.abs(m)).toString();
      if (digits > 0) {
        t = t.padStart(digits + 1, "0");
        t = `${t.slice(0, -digits)}.${t.slice(-digits)}`;
      }
      return new Intl.NumberFormat(navigator.language, { style: "currency", currency: c }).format((m < 0 ? "-" : "") + t);
    },
    [minor, currency],
  );
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  host = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(hostPage);
  });
  await new Promise((resolve) => host.listen(0, "127.0.0.1", resolve));
  hostPort = host.address().port;
});

after(async () => {
  await browser?.close();
  host?.close();
});

// ---- the tests ------------------------------------------------------------------------------------------------

test("the page carries a strict policy, and the policy blocks inline script", async () => {
  const page = await newPage();
  const res = await page.goto(`${base}/console`);
  const csp = res.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'$/);
  const ran = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const s = document.createElement("script");
        s.textContent = "window.__inlineRan = true";
        document.body.append(s);
        setTimeout(() => resolve(window.__inlineRan === true), 200);
      }),
  );
  assert.equal(ran, false, "an inline script ran");
  assert.ok(page.errors.some((e) => /Content Security Policy/.test(e)), "the browser reported the blocked script");
  await page.context().close();
});

test("the platform view shows the API's figures, sorts, filters and drills down", async () => {
  const page = await newPage();
  const tokens = [];
  page.on("response", async (r) => {
    if (r.url().endsWith("/v1/auth/token") && r.status() === 200) tokens.push(await r.json());
  });
  await signIn(page, rootEmail, rootPassword);
  await page.getByRole("heading", { name: "Platform" }).waitFor();
  await page.locator("#tenants-table tbody tr").first().waitFor();

  // The same range the view asks for by default: the last twelve calendar months up to today.
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 11, 1)).toISOString().slice(0, 10);
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString().slice(0, 10);
  const root = tokens[0].access_token;
  const saas = await api("GET", `/v1/admin/analytics/saas?from=${from}&to=${to}&granularity=month`, root);
  assert.equal(saas.status, 200);
  const c = saas.body.currencies[0];
  assert.ok(c.summary.mrr_end > 0, "the demo platform has MRR");
  assert.equal(await page.locator('[data-kpi="MRR"]').textContent(), await moneyText(page, c.summary.mrr_end, c.currency));
  assert.equal(await page.locator('[data-kpi="ARR"]').textContent(), await moneyText(page, c.summary.arr, c.currency));
  assert.equal(await page.locator('[data-kpi="Customers"]').textContent(), new Intl.NumberFormat("en-US").format(c.summary.customers_end));
  // The movements chart's table: one row per period with the API's amounts.
  const movements = page.getByRole("figure", { name: `MRR movements (${c.currency})` });
  await movements.getByRole("button", { name: "Show table" }).click();
  const rows = movements.locator("tbody tr");
  assert.equal(await rows.count(), c.periods.length);
  const last = c.periods.at(-1);
  const cells = await rows.last().locator("td").allTextContents();
  assert.equal(cells[1], await moneyText(page, last.movements.new, c.currency));
  assert.equal(cells[5], await moneyText(page, last.movements.churn, c.currency));
  assert.equal(cells[7], await moneyText(page, last.mrr_end, c.currency));
  // The CSV download holds the same numbers, raw.
  const [download] = await Promise.all([page.waitForEvent("download"), movements.getByRole("button", { name: "Download CSV" }).click()]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\r\n");
  assert.equal(csv.length, c.periods.length + 1);
  assert.equal(csv.at(-1).split(",")[8], String(last.mrr_end));

  // The tenants table: every tenant, with the API's MRR, biggest first.
  const tenants = await api("GET", "/v1/admin/tenants?limit=100", root);
  const table = page.locator("#tenants-table tbody tr");
  assert.equal(await table.count(), tenants.body.data.length);
  const shown = await table.evaluateAll((trs) => trs.map((tr) => [tr.dataset.tenant, Number(tr.querySelector("[data-mrr]").dataset.mrr)]));
  const bySlug = new Map(tenants.body.data.map((t) => [t.slug, t.id]));
  const mrrOf = new Map(c.tenants.map((t) => [t.tenant_id, t.mrr]));
  for (const [slug, mrr] of shown) assert.equal(mrr, mrrOf.get(bySlug.get(slug)) ?? 0, slug);
  for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1][1] >= shown[i][1], "sorted by MRR, biggest first");
  // No churn model is trained on this small demo: the churn column says so rather than showing a risk.
  const models = await api("GET", "/v1/admin/churn/models", root);
  assert.equal(models.status, 200);
  assert.equal(models.body.data.length, 0);
  for (const cell of await table.locator("td[data-churn]").allTextContents()) assert.equal(cell, "not scored");
  assert.match(await page.locator("#tenants-h ~ p").last().textContent(), /no churn model is active/);
  await page.getByRole("button", { name: /^Tenant/ }).click();
  const names = await table.locator("th a").allTextContents();
  assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  const target = tenants.body.data.find((t) => t.slug === "demo-2");
  await page.getByLabel("Filter by name, slug or plan").fill("demo-2");
  assert.equal(await table.count(), 1);
  await table.locator("th a").click();
  await page.getByRole("heading", { name: target.name }).waitFor();
  assert.match(await page.locator(".facts").textContent(), new RegExp(target.isolation));
  await page.getByText("Not scored: no churn model is active.").waitFor();
  await page.goto(`${base}/console#/platform`);
  await page.locator("#tenants-table tbody tr").first().waitFor();
  await noSeriousViolations(page, "the platform view");
  noErrors(page, "the platform view");

  // Signing out revokes the session: neither token works afterwards.
  const session = tokens.at(-1);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  let status = 200;
  for (let i = 0; i < 50 && status !== 401; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await api("GET", "/v1/admin/tenants", session.access_token)).status;
  }
  assert.equal(status, 401, "the access token still works after signing out");
  const refreshed = await api("POST", "/v1/auth/token", undefined, { grant_type: "refresh_token", refresh_token: session.refresh_token });
  assert.equal(refreshed.status, 400);
  await page.context().close();
});

test("the tenant view shows the API's product metrics and the live counters move", async () => {
  const [{ tenant, token }] = await demoTenants();
  // Signing in marks the owner active today, stored by the server every 5 s (analytics.activity_flush_ms): wait until
  // two readings 6 s apart agree, so a flush fell between them and today's DAU no longer moves under the test (the
  // page's own sign-in below marks the same user, which changes nothing).
  const today0 = new Date();
  const day0 = new Date(Date.UTC(today0.getUTCFullYear(), today0.getUTCMonth(), today0.getUTCDate())).toISOString().slice(0, 10);
  const next0 = new Date(Date.UTC(today0.getUTCFullYear(), today0.getUTCMonth(), today0.getUTCDate() + 1)).toISOString().slice(0, 10);
  const dauNow = async () => (await api("GET", `/v1/analytics/product?from=${day0}&to=${next0}`, token)).body.dau;
  for (let tries = 0, last = await dauNow(); ; tries++) {
    await new Promise((r) => setTimeout(r, 6000));
    const now = await dauNow();
    if (now === last) break;
    assert.ok(tries < 5, "today's DAU kept moving");
    last = now;
  }
  const page = await newPage();
  await signIn(page, `owner@${tenant.slug}.demo`, demoPassword, tenant.slug);
  await page.getByRole("heading", { name: "Product analytics" }).waitFor();
  await page.locator('[data-kpi="DAU"]').waitFor();
  const today = new Date();
  const from = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - 29)).toISOString().slice(0, 10);
  const to = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1)).toISOString().slice(0, 10);
  const m = (await api("GET", `/v1/analytics/product?from=${from}&to=${to}&value_event=feature.used`, token)).body;
  const locale = (await api("GET", "/v1/settings", token)).body.locale;
  const int = (n) => new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(n);
  assert.equal(await page.locator('[data-kpi="DAU"]').textContent(), int(m.dau));
  assert.equal(await page.locator('[data-kpi="WAU"]').textContent(), int(m.wau));
  assert.equal(await page.locator('[data-kpi="MAU"]').textContent(), int(m.mau));
  assert.ok(m.mau > 0, "the demo tenant has active users");
  const retention = page.getByRole("figure", { name: "Retention", exact: true });
  await retention.locator("table.heatmap").waitFor();
  assert.equal(await retention.locator("tbody tr").count(), m.retention_cohorts.filter((c) => c.users > 0).length);
  const dau = page.getByRole("figure", { name: "Daily active users", exact: true });
  await dau.getByRole("button", { name: "Show table" }).click();
  assert.equal(await dau.locator("tbody tr").count(), m.daily_active_users.length);

  // An event sent now shows up in the live counters without a reload.
  const live = page.locator("[data-realtime-total]");
  await live.waitFor();
  const before = Number(await live.getAttribute("data-realtime-total"));
  const sent = await api("POST", "/v1/events", token, {
    type: "feature.used", // the signed-in owner's own event (a user's token sends no one else's)
    properties: { feature: "export" },
    idempotency_key: `console-live-${Date.now()}`,
  });
  assert.equal(sent.status, 202);
  assert.equal(sent.body.accepted, 1, JSON.stringify(sent.body));
  const counted = await api("GET", "/v1/analytics/realtime?minutes=60", token);
  const total = Object.values(counted.body.totals).reduce((a, b) => a + b, 0);
  assert.ok(total > before, `the API counts the event (${total} after, ${before} on the page before)`);
  await page
    .waitForFunction((n) => Number(document.querySelector("[data-realtime-total]")?.dataset.realtimeTotal) > n, before, { timeout: 20000 })
    .catch(async (e) => {
      const shown = await page.locator("main").innerText().catch(() => "?");
      throw new Error(`the live counter stayed at ${before} (the API says ${total}); the page shows:\n${shown.slice(0, 2000)}`, { cause: e });
    });
  await noSeriousViolations(page, "the tenant view");
  noErrors(page, "the tenant view");
  await page.context().close();
});

test("a custom dashboard is created, kept, embedded in another site's frame, and refused to another tenant", async () => {
  const [a, b] = await demoTenants();
  const page = await newPage();
  await signIn(page, `owner@${a.tenant.slug}.demo`, demoPassword, a.tenant.slug);
  await page.goto(`${base}/console#/dashboards/new`);
  const name = `Growth ${Date.now()}`;
  await page.getByLabel("Dashboard name").fill(name);
  await page.getByLabel("Widget 1 grouping").selectOption("week");
  await page.getByRole("button", { name: "Add widget" }).click();
  await page.getByLabel("Widget 2 metric").selectOption("retention");
  await page.getByRole("button", { name: "Add widget" }).click();
  await page.getByLabel("Widget 3 metric").selectOption("nps");
  await page.getByLabel("Widget 3 chart").selectOption("bar");
  await page.getByRole("button", { name: "Save dashboard" }).click();
  await page.waitForURL(/#\/dashboards\/[0-9a-f-]{36}$/);
  const id = page.url().split("/").at(-1);
  await page.getByRole("heading", { name }).waitFor();
  const saved = await api("GET", `/v1/analytics/dashboards/${id}`, a.token);
  assert.deepEqual(
    saved.body.widgets.map((w) => [w.metric, w.chart, w.group_by]),
    [["active_users", "line", "week"], ["retention", "heatmap", "day"], ["nps", "bar", "day"]],
  );
  await page.getByRole("figure", { name: "Retention by cohort" }).locator("table.heatmap").waitFor();
  await noSeriousViolations(page, "a custom dashboard");

  // Reloaded: the session was in memory only, so signing in again; the dashboard is still there.
  await page.reload();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, ""]);
  await signIn(page, `owner@${a.tenant.slug}.demo`, demoPassword, a.tenant.slug);
  await page.goto(`${base}/console#/dashboards`);
  await page.getByRole("link", { name }).click();
  await page.getByRole("heading", { name }).waitFor();

  // The tenant lets its own site frame its dashboards, then makes an embed link.
  const site = `http://127.0.0.1:${hostPort}`;
  await page.goto(`${base}/console#/dashboards`);
  await page.getByLabel(/Origins, one per line/).fill(site);
  await page.getByRole("button", { name: "Save origins" }).click();
  await page.getByText("Saved.").waitFor();
  await page.goto(`${base}/console#/dashboards/${id}`);
  await page.getByRole("button", { name: "Create embed link" }).click();
  const url = await page.locator("[data-embed-url]").inputValue();
  assert.match(url, new RegExp(`/console/embed/${a.tenant.id}\\?dashboard=${id}#token=`));
  noErrors(page, "the dashboards");
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, ""]);
  await page.context().close();

  const framed = async (origin, src) => {
    hostPage = `<!doctype html><html lang="en"><title>Product</title><h1>Our product</h1><iframe title="analytics" width="1000" height="800" src="${src}"></iframe></html>`;
    const p = await newPage();
    await p.goto(`${origin}/`);
    return p;
  };
  // In the listed site's frame: the dashboard, its widgets, and the token gone from the frame's address.
  let p = await framed(site, url);
  const frame = p.frameLocator("iframe");
  await frame.getByRole("heading", { name }).waitFor();
  await frame.getByRole("figure", { name: "Retention by cohort" }).locator("table.heatmap").waitFor();
  const inner = p.frames().find((f) => f.url().includes("/console/embed/"));
  assert.ok(inner && !inner.url().includes("token="), "the token was removed from the frame's URL");
  noErrors(p, "the embed");
  await p.context().close();

  // A site the tenant did not list cannot frame it (localhost is another origin than 127.0.0.1).
  p = await framed(`http://localhost:${hostPort}`, url);
  await p.waitForFunction(() => document.querySelector("iframe") !== null);
  let blocked;
  for (let i = 0; i < 100 && !blocked; i++) {
    blocked = p.frames().find((f) => f !== p.mainFrame() && f.url().startsWith("chrome-error:"));
    if (!blocked) await p.waitForTimeout(100);
  }
  assert.ok(blocked, `framed by an unlisted site: ${p.frames().map((f) => f.url()).join(", ")}`);
  assert.ok(p.errors.some((e) => /frame-ancestors/.test(e)), "the browser named the frame-ancestors policy");
  assert.equal(await p.frameLocator("iframe").getByRole("heading", { name }).count(), 0);
  await p.context().close();

  // Another tenant's embed token finds no such dashboard, whatever tenant the page's path names.
  const other = await api("POST", "/v1/analytics/embed-tokens", b.token, { ttl_seconds: 300 });
  assert.equal(other.status, 201);
  for (const tenantInPath of [a.tenant.id, b.tenant.id]) {
    const q = await newPage();
    await q.goto(`${base}/console/embed/${tenantInPath}?dashboard=${id}#token=${other.body.token}`);
    await q.getByRole("alert").filter({ hasText: "Not Found" }).waitFor();
    assert.equal(await q.getByRole("heading", { name }).count(), 0);
    await q.context().close();
  }
});

test("billing self-service: the plan change shows its proration before it applies; invoices download as PDF", async () => {
  const [{ tenant, token, sub }] = await demoTenants();
  const page = await newPage();
  await signIn(page, `owner@${tenant.slug}.demo`, demoPassword, tenant.slug);
  await page.goto(`${base}/console#/billing`);
  const plans = (await api("GET", "/v1/plans", token)).body.data;
  const current = plans.find((p) => p.id === sub.plan_id);
  await page.locator(".plan-name").waitFor();
  assert.equal(await page.locator(".plan-name").getAttribute("data-plan"), current.code);
  const account = (await api("GET", "/v1/billing-account", token)).body;
  assert.equal(await page.locator('[data-kpi="Credit balance"]').textContent(), await moneyText(page, account.credit_balance, account.currency));

  const select = page.getByLabel("New plan");
  const code = await select.inputValue();
  const target = plans.find((p) => p.code === code);
  assert.ok(target && target.id !== current.id);
  assert.equal(await page.getByRole("button", { name: "Confirm change" }).isDisabled(), true, "confirm before a preview");
  const [previewed] = await Promise.all([
    page.waitForResponse((r) => r.url().includes(`/v1/subscriptions/${sub.id}/preview`)),
    page.getByRole("button", { name: "Preview change" }).click(),
  ]);
  const preview = await previewed.json();
  await page.locator(".preview").waitFor();
  assert.equal(Number(await page.locator(".preview").getAttribute("data-preview-net")), preview.net);
  const facts = await page.locator(".preview dd").allTextContents();
  assert.equal(facts[0], await moneyText(page, preview.credit, preview.currency));
  assert.equal(facts[1], await moneyText(page, preview.charge, preview.currency));
  assert.equal(facts[2], await moneyText(page, preview.net, preview.currency));
  // Nothing changed by previewing.
  assert.equal((await api("GET", `/v1/subscriptions/${sub.id}`, token)).body.plan_id, current.id);
  await noSeriousViolations(page, "the billing view");
  await page.getByRole("button", { name: "Confirm change" }).click();
  await page.getByText(`Changed to ${target.name}.`).waitFor();
  assert.equal((await api("GET", `/v1/subscriptions/${sub.id}`, token)).body.plan_id, target.id);

  // An invoice's PDF.
  const download = page.getByRole("button", { name: /^Download .*\.pdf$/ }).first();
  const [file] = await Promise.all([page.waitForEvent("download"), download.click()]);
  assert.equal(readFileSync(await file.path()).subarray(0, 5).toString(), "%PDF-");

  // A test card as the payment method.
  await page.getByLabel("Test card").selectOption("pm_card_mastercard");
  await page.getByRole("button", { name: "Save payment method" }).click();
  await page.getByText("Payment method saved.").waitFor();
  assert.equal((await api("GET", "/v1/billing-account", token)).body.payment_method, "pm_card_mastercard");
  noErrors(page, "the billing view");
  await page.context().close();
});

test("on a narrow screen nothing runs off the side", async () => {
  const [{ tenant }] = await demoTenants();
  const page = await newPage({ width: 375, height: 740 });
  await page.goto(`${base}/console`);
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await noSeriousViolations(page, "the sign-in page");
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 375, "the sign-in page is too wide");
  await signIn(page, `owner@${tenant.slug}.demo`, demoPassword, tenant.slug);
  await page.locator('[data-kpi="DAU"]').waitFor();
  for (const view of ["#/analytics", "#/dashboards", "#/billing"]) {
    await page.goto(`${base}/console${view}`);
    await page.waitForLoadState("networkidle");
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `${view} is ${width}px wide on a 375px screen`);
  }
  noErrors(page, "the narrow screen");
  await page.context().close();
});
