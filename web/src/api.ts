// The console's one way to the API. Tokens live in this module's memory only: never in localStorage,
// sessionStorage, cookies or the URL, so a reload signs out and nothing outlives the tab.

export interface Claims {
  sub: string;
  tenant_id?: string;
  role: string;
  permissions: string[];
  super_admin?: boolean;
  exp: number;
  scope?: string;
}

export interface Problem {
  status: number;
  title: string;
  detail: string;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
  }
}

interface Session {
  access: string;
  refresh?: string;
  claims: Claims;
  timer?: number;
}

let session: Session | undefined;
const listeners = new Set<() => void>();

function notify() {
  for (const l of listeners) l();
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function claims(): Claims | undefined {
  return session?.claims;
}

export function can(permission: string): boolean {
  return session?.claims.permissions.includes(permission) ?? false;
}

function decodeClaims(token: string): Claims {
  const part = token.split(".")[1] ?? "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0)))) as Claims;
}

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

function start(answer: TokenAnswer) {
  if (session?.timer) window.clearTimeout(session.timer);
  session = { access: answer.access_token, refresh: answer.refresh_token, claims: decodeClaims(answer.access_token) };
  // Refresh a little before the access token runs out (and at least after 5 s).
  const wait = Math.max(5, answer.expires_in - 30) * 1000;
  session.timer = window.setTimeout(() => void refresh().catch(() => signOutLocally()), wait);
  notify();
}

async function problemOf(res: Response): Promise<Problem> {
  try {
    const body = await res.json();
    return { status: res.status, title: body.title ?? res.statusText, detail: body.detail ?? body.error_description ?? "" };
  } catch {
    return { status: res.status, title: res.statusText || "Error", detail: "" };
  }
}

async function tokenRequest(body: Record<string, string>): Promise<TokenAnswer> {
  const res = await fetch("/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new ApiError(await problemOf(res));
  return (await res.json()) as TokenAnswer;
}

export async function signIn(email: string, password: string, tenant: string): Promise<void> {
  const body: Record<string, string> = { grant_type: "password", email, password };
  if (tenant) body.tenant = tenant;
  start(await tokenRequest(body));
}

// An embed token handed over in the page's URL fragment: read-only, one tenant, no refresh.
export function setEmbedToken(token: string): void {
  session = { access: token, claims: decodeClaims(token) };
  notify();
}

let refreshing: Promise<void> | undefined;
async function refresh(): Promise<void> {
  if (!session?.refresh) throw new ApiError({ status: 401, title: "Signed out", detail: "The session ended." });
  refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh })
    .then(start)
    .finally(() => (refreshing = undefined));
  return refreshing;
}

function signOutLocally() {
  if (session?.timer) window.clearTimeout(session.timer);
  session = undefined;
  notify();
}

export async function signOut(): Promise<void> {
  const s = session;
  signOutLocally();
  if (!s) return;
  // RFC 7009: revoking the refresh token ends the session; the access token is revoked too.
  for (const token of [s.refresh, s.access]) {
    if (!token) continue;
    await fetch("/v1/auth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
    }).catch(() => undefined);
  }
}

async function send(method: string, path: string, body?: unknown, retried = false): Promise<Response> {
  if (!session) throw new ApiError({ status: 401, title: "Not signed in", detail: "Sign in first." });
  const headers: Record<string, string> = { Authorization: `Bearer ${session.access}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && !retried && session?.refresh) {
    await refresh();
    return send(method, path, body, true);
  }
  if (!res.ok) throw new ApiError(await problemOf(res));
  return res;
}

export async function get<T>(path: string): Promise<T> {
  return (await (await send("GET", path)).json()) as T;
}

export async function getBlob(path: string): Promise<Blob> {
  return (await send("GET", path)).blob();
}

export async function call<T>(method: "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}
