// The console's first view over loopback, in Debian's Chromium (playwright-core from web/node_modules): cold loads
// (a new browser context each, so nothing cached) of ATRIUM_URL/console and BASELINE_URL/console (nginx serving the
// same files), alternated A B B A. Per load: first contentful paint and the time until the sign-in form is there
// (the first view's first render), from the navigation's start. Prints JSON: medians, p90s and the transfer sizes.
// Run by bench/console.sh.
import { createRequire } from "node:module";

const require = createRequire(new URL("../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const targets = { atrium: process.env.ATRIUM_URL, nginx: process.env.BASELINE_URL };
const runs = Number(process.env.RUNS ?? 30);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

async function load(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  let bytes = 0;
  page.on("response", async (r) => {
    const size = Number(r.headers()["content-length"] ?? 0);
    bytes += size;
  });
  await page.goto(`${url}/console`, { waitUntil: "load" });
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  const t = await page.evaluate(() => {
    const fcp = performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN;
    return { fcp, ready: performance.now() };
  });
  await context.close();
  return { ...t, bytes };
}

const samples = { atrium: [], nginx: [] };
for (const name of Object.keys(targets)) await load(targets[name]); // warm the servers (not the browser cache)
for (let i = 0; i < runs; i++) {
  const order = i % 2 === 0 ? ["atrium", "nginx"] : ["nginx", "atrium"];
  for (const name of order) samples[name].push(await load(targets[name]));
}
await browser.close();

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const out = {};
for (const [name, xs] of Object.entries(samples)) {
  out[name] = {
    runs: xs.length,
    fcp_ms_median: +pct(xs.map((x) => x.fcp), 0.5).toFixed(1),
    fcp_ms_p90: +pct(xs.map((x) => x.fcp), 0.9).toFixed(1),
    ready_ms_median: +pct(xs.map((x) => x.ready), 0.5).toFixed(1),
    ready_ms_p90: +pct(xs.map((x) => x.ready), 0.9).toFixed(1),
    transferred_bytes: xs[0].bytes,
  };
}
console.log(JSON.stringify(out, null, 2));
