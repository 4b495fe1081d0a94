// The Atrium console: one page, hash-routed. /console signs in with the token endpoint; /console/embed/<tenant>
// shows one dashboard with an embed token read from the URL fragment (never sent to the server, removed from the
// address bar at once).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, claims, get, onSessionChange, signIn, signOut, setEmbedToken } from "./api";
import { setLocale } from "./format";
import "./style.css";
import { Alert, Field, Status, messageOf, useData } from "./ui";
import { BillingView } from "./views/billing";
import { DashboardEditor, DashboardList, DashboardView, Widgets, type Dashboard } from "./views/dashboards";
import { PlatformView, TenantDetail } from "./views/platform";
import { TenantView } from "./views/tenant";

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function useSession() {
  const [, setTick] = useState(0);
  useEffect(() => onSessionChange(() => setTick((t) => t + 1)), []);
  return claims();
}

function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [tenant, setTenant] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="signin">
      <h1>Sign in to Atrium</h1>
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            await signIn(email, password, tenant.trim());
            setError("");
          } catch (err) {
            setError(err instanceof ApiError && err.problem.status === 400 ? "The email, password or tenant is wrong." : messageOf(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Email">
          {(id) => <input id={id} type="email" autoComplete="username" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />}
        </Field>
        <Field label="Password">
          {(id) => (
            <input id={id} type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
          )}
        </Field>
        <Field label="Tenant" hint="Its slug; leave empty to sign in as a platform operator">
          {(id) => <input id={id} autoComplete="organization" value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} />}
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && <Alert>{error}</Alert>}
      </form>
    </main>
  );
}

function Nav({ superAdmin }: { superAdmin: boolean }) {
  const links: [string, string][] = superAdmin
    ? [["#/platform", "Platform"]]
    : [
        ["#/analytics", "Analytics"],
        ["#/dashboards", "Dashboards"],
        ...(claims()?.permissions.includes("billing:view") ? ([["#/billing", "Billing"]] as [string, string][]) : []),
      ];
  const hash = location.hash || links[0][0];
  return (
    <header class="top">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <span class="brand">Atrium</span>
      <nav aria-label="Console">
        <ul>
          {links.map(([href, text]) => (
            <li key={href}>
              <a href={href} aria-current={hash.startsWith(href) ? "page" : undefined}>
                {text}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <button type="button" class="link signout" onClick={() => void signOut()}>
        Sign out
      </button>
    </header>
  );
}

function Routes({ hash, superAdmin }: { hash: string; superAdmin: boolean }) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (superAdmin) {
    if (parts[0] === "platform" && parts[1] === "tenants" && parts[2]) return <TenantDetail id={parts[2]} />;
    return <PlatformView />;
  }
  switch (parts[0]) {
    case "dashboards":
      if (parts[1] === "new") return <DashboardEditor />;
      if (parts[1] && parts[2] === "edit") return <DashboardEditor id={parts[1]} />;
      if (parts[1]) return <DashboardView id={parts[1]} />;
      return <DashboardList />;
    case "billing":
      return <BillingView />;
    default:
      return <TenantView />;
  }
}

function Console() {
  const session = useSession();
  const hash = useHash();
  useEffect(() => {
    if (session?.tenant_id) void get<{ locale: string }>("/v1/settings").then((s) => setLocale(s.locale), () => undefined);
  }, [session?.tenant_id]);
  if (!session) return <SignIn />;
  const superAdmin = session.super_admin === true && !session.tenant_id;
  return (
    <>
      <Nav superAdmin={superAdmin} />
      <main id="main" tabIndex={-1}>
        <Routes hash={hash} superAdmin={superAdmin} />
      </main>
    </>
  );
}

function Embed({ dashboard }: { dashboard: string }) {
  const loaded = useData(() => get<Dashboard>(`/v1/analytics/dashboards/${encodeURIComponent(dashboard)}`), [dashboard]);
  return (
    <main id="main" class="embed">
      <Status of={loaded}>
        {(d) => (
          <>
            <h1>{d.name}</h1>
            <Widgets widgets={d.widgets} />
          </>
        )}
      </Status>
    </main>
  );
}

function start() {
  const root = document.getElementById("app");
  if (!root) return;
  if (location.pathname.startsWith("/console/embed/")) {
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    history.replaceState(null, "", location.pathname + location.search);
    const dashboard = new URLSearchParams(location.search).get("dashboard") ?? "";
    if (!token || !dashboard) {
      render(<Alert>This embed link is incomplete: it needs a dashboard and a token.</Alert>, root);
      return;
    }
    setEmbedToken(token);
    render(<Embed dashboard={dashboard} />, root);
    return;
  }
  render(<Console />, root);
}

start();
