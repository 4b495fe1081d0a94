"""The gateway to upstream services (docs/gateway.md) through the real binary, with real upstream processes
(tests/e2e/upstream_server.py): routing by host, path and version; round-robin balancing; an endpoint killed under
load; no resend of a non-idempotent request; 504 on a slow upstream; a 1 GiB upload (and 256 MiB download) in flat
memory;
server-sent events and a WebSocket through; identity headers a client cannot forge and a signed identity token that
PyJWT verifies through the JWKS; rate limits and suspension before the upstream; api_calls counting proxied requests;
tenant placement; header, path and query transformations; the routes file reloaded without a restart.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jwt  # noqa: E402  (Debian's python3-jwt)

from atrium_e2e import (AtriumServer, E2ETestCase, api_call, connect, free_port, parse_metrics,  # noqa: E402
                        poll_until, run_cli, sample_value)

UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upstream_server.py")
PASSWORD = "gw-password-1"


def start_upstream(name, port, env=None):
    proc = subprocess.Popen([sys.executable, UPSTREAM, name, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    proc.stdout.readline()  # "upstream NAME on PORT": listening
    return proc


def upstream_get(port, path):
    sock = connect(port)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    finally:
        sock.close()


def routes_file(ports, dead_port):
    a, b, c, d, e, f, g = ports
    return f"""
[clusters.main]
endpoints = ["127.0.0.1:{a}", "127.0.0.1:{b}", "127.0.0.1:{c}"]

[clusters.solo_a]
endpoints = ["127.0.0.1:{a}"]

[clusters.solo_b]
endpoints = ["127.0.0.1:{b}"]

[clusters.solo_c]
endpoints = ["127.0.0.1:{c}"]

[clusters.dedicated]
endpoints = ["127.0.0.1:{d}"]

[clusters.slow]
endpoints = ["127.0.0.1:{a}"]
read_timeout_ms = 500

[clusters.dead]
endpoints = ["127.0.0.1:{dead_port}"]
connect_timeout_ms = 300

[clusters.kill]
endpoints = ["127.0.0.1:{e}", "127.0.0.1:{f}", "127.0.0.1:{g}"]
balance = "least_request"
[clusters.kill.health_check]
path = "/healthz"
interval_ms = 200
timeout_ms = 200
unhealthy_threshold = 1
[clusters.kill.circuit_breaker]
consecutive_failures = 1
open_ms = 60000

[[routes]]
name = "shop"
hosts = ["shop.example.test"]
path_prefix = "/"
cluster = "solo_c"
access = "open"

[[routes]]
name = "orders-new"
path_prefix = "/orders"
min_version = "2026-11-01"
cluster = "solo_b"
rewrite = "/v2/orders"

[[routes]]
name = "orders"
path_prefix = "/orders"
cluster = "solo_a"
permission = "projects:read"

[[routes]]
name = "item"
path = "/items/{{id}}"
methods = ["GET"]
cluster = "main"
rewrite = "/internal/items/{{id}}"
[routes.request_headers]
add = {{ "X-Product" = "atrium-e2e" }}
remove = ["X-Drop-Me"]
rename = {{ "X-Old-Name" = "X-New-Name" }}
[routes.response_headers]
add = {{ "X-Edge" = "atrium" }}
remove = ["X-Internal-Debug"]
[routes.query]
rename = {{ "q" = "query" }}
remove = ["secret"]
add = {{ "source" = "edge" }}

[[routes]]
name = "lb"
path_prefix = "/lb"
cluster = "main"
audit = true
[[routes.placements]]
tenants = ["bigco"]
cluster = "dedicated"

[[routes]]
name = "main"
path_prefix = "/main"
cluster = "main"
rewrite = "/"

[[routes]]
name = "kill"
path_prefix = "/kill"
cluster = "kill"
rewrite = "/"

[[routes]]
name = "slow"
path_prefix = "/slow"
cluster = "slow"

[[routes]]
name = "dead"
path_prefix = "/dead"
cluster = "dead"

[[routes]]
name = "expensive"
path_prefix = "/expensive"
cluster = "main"
cost = 10000

[[routes]]
name = "stream"
path_prefix = "/stream"
cluster = "solo_a"
rewrite = "/"

[[routes]]
name = "open-stream"
path_prefix = "/open-stream"
cluster = "solo_a"
access = "open"
rewrite = "/"

[[routes]]
name = "shape"
path_prefix = "/shape"
cluster = "solo_a"
[[routes.versions]]
since = "2026-11-01"
rename = {{ "data" = "items", "data.amount_cents" = "amount" }}
added = ["total_count"]

[[routes]]
name = "open"
path_prefix = "/public"
cluster = "solo_a"
access = "open"
"""


class GatewayTest(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="atrium-gateway-")
        cls.ports = [free_port() for _ in range(7)]
        cls.dead_port = free_port()
        cls.upstreams = {}
        for name, port in zip("ABCDEFG", cls.ports):
            cls.upstreams[name] = start_upstream(name, port)
        cls.routes_path = os.path.join(cls.tmp, "routes.toml")
        with open(cls.routes_path, "w") as f:
            f.write(routes_file(cls.ports, cls.dead_port))
        cls.env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum", "ATRIUM_PROXY_ROUTES_FILE": cls.routes_path,
                   "ATRIUM_GATEWAY_API_CALLS_REPORT_MS": "300",
                   # Room for the load tests; the "expensive" route's cost takes a whole burst at once.
                   "ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND": "10000", "ATRIUM_GATEWAY_DEFAULT_BURST": "10000"}
        cls.server = AtriumServer(env=cls.env)
        try:
            cls.server.start()
            cls.bootstrap()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        for proc in cls.upstreams.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    @classmethod
    def bootstrap(cls):
        created = run_cli(["admin", "create-superuser", "--email", "root@gw.test", "--password", PASSWORD,
                           "--data-dir", cls.server.data_dir], env=cls.env)
        assert created.returncode == 0, created.stderr
        cls.root = cls.token("root@gw.test")
        cls.tenants = {}
        for slug in ("acme", "bigco", "limited", "paused"):
            r = api_call(cls.server, "POST", "/v1/admin/tenants", cls.root,
                         {"slug": slug, "name": slug.title(), "owner_email": f"owner@{slug}.test",
                          "owner_password": PASSWORD})
            assert r.status == 201, r
            cls.tenants[slug] = r.json()
        cls.owner = cls.token("owner@acme.test", "acme")

    @classmethod
    def token(cls, email, tenant=None):
        body = {"grant_type": "password", "email": email, "password": PASSWORD}
        if tenant:
            body["tenant"] = tenant
        r = api_call(cls.server, "POST", "/v1/auth/token", body=body)
        assert r.status == 200, r
        return r.json()["access_token"]

    def call(self, method, path, token=None, headers=None, body=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        return self.server.request(method, path, headers=h, body=body)

    def seen(self, key, names="ABC"):
        return sum(upstream_get(self.ports["ABCDEFG".index(n)], f"/__seen?key={key}")["count"] for n in names)

    # -- routing ---------------------------------------------------------------------------------------------

    def test_routes_by_host_path_and_version(self):
        shop = self.call("GET", "/anything", headers={"Host": "shop.example.test"})
        self.assertEqual(shop.status, 200, shop)
        self.assertEqual(shop.json()["server"], "C")
        current = self.call("GET", "/orders/7?x=1", self.owner)
        self.assertEqual(current.json()["server"], "B")
        self.assertEqual(current.json()["target"], "/v2/orders/7?x=1")
        older = self.call("GET", "/orders/7", self.owner, headers={"Atrium-Version": "2026-06-01"})
        self.assertEqual(older.json()["server"], "A")
        self.assertEqual(older.json()["target"], "/orders/7")
        # Atrium's own routes are untouched; a path no route names is Atrium's 404.
        self.assertEqual(self.call("GET", "/health").json(), {"status": "ok"})
        self.assertProblem(self.call("GET", "/nowhere", self.owner), 404)

    def test_round_robin_spreads_requests_across_three_endpoints(self):
        servers = [self.call("GET", "/lb/x", self.owner).json()["server"] for _ in range(30)]
        counts = {name: servers.count(name) for name in "ABC"}
        self.assertEqual(sum(counts.values()), 30, servers)
        self.assertLessEqual(max(counts.values()) - min(counts.values()), 1, counts)

    def test_a_tenant_placed_on_a_dedicated_cluster_goes_there(self):
        bigco = self.token("owner@bigco.test", "bigco")
        self.assertEqual({self.call("GET", "/lb/x", bigco).json()["server"] for _ in range(5)}, {"D"})
        self.assertNotIn("D", {self.call("GET", "/lb/x", self.owner).json()["server"] for _ in range(5)})

    def test_an_endpoint_killed_under_load_is_ejected_and_requests_keep_succeeding(self):
        statuses, servers, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                r = self.call("GET", "/kill/x", self.owner)
                statuses.append(r.status)
                if r.status == 200:
                    servers.append(r.json()["server"])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        poll_until(lambda: len(statuses) >= 60, 60, message="load before the kill")
        self.upstreams["F"].kill()
        self.upstreams["F"].wait()
        killed_at = len(statuses)
        poll_until(lambda: len(statuses) >= killed_at + 120, 60, message="load after the kill")
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(set(statuses), {200}, [s for s in statuses if s != 200])
        self.assertIn("F", servers[:killed_at])
        self.assertNotIn("F", servers[killed_at + 40:])
        samples = parse_metrics(self.server.get("/metrics").body.decode())
        endpoint = f"127.0.0.1:{self.ports[5]}"
        self.assertTrue(sample_value(samples, "proxy_endpoint_circuit_open", cluster="kill", endpoint=endpoint) == 1
                        or sample_value(samples, "proxy_endpoint_healthy", cluster="kill", endpoint=endpoint) == 0)

    def test_a_non_idempotent_request_is_never_sent_twice(self):
        failed = self.call("POST", "/main/reset", self.owner, headers={"X-Test-Key": "post-once",
                                                                    "Content-Type": "text/plain"}, body=b"x")
        self.assertProblem(failed, 502)
        self.assertEqual(self.seen("post-once"), 1)
        # The same failure on an idempotent request is tried on each endpoint in turn (three attempts).
        retried = self.call("GET", "/main/reset", self.owner, headers={"X-Test-Key": "get-thrice"})
        self.assertProblem(retried, 502)
        self.assertEqual(self.seen("get-thrice"), 3)
        # And a POST with an Idempotency-Key may be sent again: the upstream can tell a repeat.
        keyed = self.call("POST", "/main/reset", self.owner, headers={"Idempotency-Key": "keyed-post"})
        self.assertProblem(keyed, 502)
        self.assertEqual(self.seen("keyed-post"), 3)

    def test_a_slow_upstream_times_out_with_504(self):
        # The upstream answers after 3 s, the cluster waits 0.5 s: a 504 (not the upstream's 200) proves the bound.
        r = self.call("POST", "/slow?ms=3000", self.owner)
        self.assertProblem(r, 504)
        self.assertEqual(r.json()["type"], "/problems/upstream-timeout")

    def test_an_unreachable_upstream_is_502_problem_json(self):
        r = self.call("GET", "/dead/x", self.owner)
        self.assertProblem(r, 502)
        self.assertEqual(r.json()["type"], "/problems/bad-gateway")

    def test_an_upstream_error_without_a_body_becomes_problem_json(self):
        r = self.call("GET", "/stream/empty-error?status=500", self.owner)
        self.assertProblem(r, 500)
        self.assertEqual(r.json()["type"], "/problems/upstream-error")
        r = self.call("POST", "/stream/empty-error?status=409", self.owner)
        self.assertProblem(r, 409)

    # -- streaming -------------------------------------------------------------------------------------------

    def test_a_1_gib_body_streams_up_and_a_large_one_down_in_flat_memory(self):
        # A server of its own whose AddressSanitizer keeps (almost) no freed memory in quarantine: otherwise the
        # quarantine (256 MiB) fills with the per-read allocations a release build recycles, and RSS would measure
        # it rather than the proxy. Release numbers: docs/performance.md.
        env = dict(self.env, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1")
        server = self.start_server(env=env, data_dir=os.path.join(self.tmp, "stream-data"))
        size = 1 << 30

        def rss_kib():
            with open(f"/proc/{server.proc.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

        # Warm: the pools and caches a first request fills are not the body's.
        self.assertEqual(server.request("GET", "/public/x").status, 200)
        baseline = rss_kib()
        peak, done = [baseline], threading.Event()

        def sample():
            while not done.is_set():
                peak.append(rss_kib())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            sock = connect(server.port, timeout=120)
            sock.sendall(("POST /open-stream/upload HTTP/1.1\r\nHost: x\r\n"
                          f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n").encode())
            block = os.urandom(1 << 20)
            digest = hashlib.sha256()
            for _ in range(size >> 20):
                sock.sendall(block)
                digest.update(block)
            answer = b""
            while not answer.endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            sock.close()
            body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            self.assertEqual(body["length"], size)
            self.assertEqual(body["sha256"], digest.hexdigest())

            sock = connect(server.port, timeout=120)
            sock.sendall((f"GET /open-stream/download?bytes={size // 4} HTTP/1.1\r\nHost: x\r\n"
                          "Connection: close\r\n\r\n").encode())
            received = 0
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
            sock.close()
            self.assertGreater(received, size // 4)  # the body, chunk-framed, and the head
        finally:
            done.set()
            sampler.join()
        grown_mib = (max(peak) - baseline) / 1024
        self.assertLess(grown_mib, 64, f"RSS grew by {grown_mib:.0f} MiB while 1.25 GiB went through")

    def test_server_sent_events_arrive_as_the_upstream_sends_them(self):
        # The upstream holds back its later events until this client has seen the first one through the gateway
        # (it waits for the gate file): a gateway that buffered the answer would deliver nothing.
        gate = os.path.join(self.tmp, "sse-gate")
        sock = connect(self.server.port, timeout=60)
        sock.sendall((f"GET /stream/events?gate={gate} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.owner}\r\n"
                      "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode())
        data = b""
        while b"tick 0" not in data:
            chunk = sock.recv(4096)
            self.assertTrue(chunk, data)
            data += chunk
        self.assertNotIn(b"tick 1", data)
        open(gate, "w").close()
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        self.assertIn(b"text/event-stream", data)
        self.assertIn(b"tick 2", data)

    def test_a_websocket_echoes_through_the_gateway(self):
        sock = connect(self.server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /stream/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.owner}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.assertIn(b"Sec-WebSocket-Accept: " + accept, head)
        for message in (b"hello", b"again"):
            mask = os.urandom(4)
            sock.sendall(bytes([0x81, 0x80 | len(message)]) + mask +
                         bytes(b ^ mask[i % 4] for i, b in enumerate(message)))
            frame = sock.recv(2)
            payload = b""
            while len(payload) < frame[1]:
                payload += sock.recv(frame[1] - len(payload))
            self.assertEqual(payload, b"A: " + message)
        sock.close()

    # -- identity --------------------------------------------------------------------------------------------

    def test_spoofed_identity_headers_never_reach_the_upstream(self):
        tenant = self.tenants["acme"]
        forged = {"X-Atrium-Tenant-Id": self.tenants["bigco"]["id"], "X-Atrium-Role": "owner",
                  "x-atrium-identity": "forged.token.here", "X-Atrium-Permissions": "everything",
                  "X-Request-Id": "client-chosen-id"}
        seen = self.call("GET", "/lb/who", self.owner, headers=forged).json()["headers"]
        self.assertEqual(seen["X-Atrium-Tenant-Id"], tenant["id"])
        self.assertEqual(seen["X-Atrium-Tenant-Slug"], "acme")
        self.assertEqual(seen["X-Atrium-Isolation"], "shared")
        self.assertEqual(seen["X-Atrium-Role"], "owner")
        self.assertNotEqual(seen["X-Atrium-Identity"], "forged.token.here")
        self.assertNotIn("everything", seen["X-Atrium-Permissions"])
        self.assertNotIn("Authorization", seen)  # the caller's credentials stay at the edge
        self.assertEqual([k for k in seen if k.lower().startswith("x-atrium-")].count("X-Atrium-Role"), 1)
        # An open route carries no identity at all, whatever the client sends.
        anonymous = self.call("GET", "/public/x", headers=forged).json()["headers"]
        self.assertEqual([k for k in anonymous if k.lower().startswith("x-atrium-")], [])

    def test_the_identity_token_verifies_through_the_jwks(self):
        seen = self.call("GET", "/lb/who", self.owner).json()["headers"]
        token = seen["X-Atrium-Identity"]
        jwks = self.server.get("/.well-known/jwks.json").json()
        kid = jwt.get_unverified_header(token)["kid"]
        jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
        key = jwt.PyJWK(jwk)
        claims = jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience="atrium-upstream", issuer="atrium")
        self.assertEqual(claims["tenant_id"], self.tenants["acme"]["id"])
        self.assertEqual(claims["sub"], seen["X-Atrium-Subject"])
        self.assertEqual(claims["role"], "owner")
        self.assertLessEqual(claims["exp"] - claims["iat"], 60)
        with self.assertRaises(jwt.InvalidAudienceError):
            jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience="atrium-api", issuer="atrium")
        # Nor does Atrium's own API take it as credentials.
        self.assertProblem(api_call(self.server, "GET", "/v1/projects", token), 401)

    # -- the edge's checks -----------------------------------------------------------------------------------

    def test_unauthenticated_and_unpermitted_requests_never_reach_the_upstream(self):
        self.assertProblem(self.call("GET", "/lb/x", headers={"X-Test-Key": "anon"}), 401)
        self.assertEqual(self.seen("anon"), 0)

    def test_a_tenant_over_its_rate_limit_never_reaches_the_upstream(self):
        limited = self.token("owner@limited.test", "limited")
        # Eight at once: one request of this route spends the tenant's whole burst, which takes a second to refill.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(
                lambda _: self.call("GET", "/expensive/x", limited, headers={"X-Test-Key": "limit"}).status,
                range(8)))
        self.assertIn(200, statuses)
        self.assertIn(429, statuses)
        self.assertEqual(set(statuses), {200, 429}, statuses)
        self.assertEqual(self.seen("limit"), statuses.count(200))
        refused = self.call("GET", "/expensive/x", limited)
        if refused.status == 429:
            self.assertProblem(refused, 429)
            self.assertIsNotNone(refused.header("RateLimit"))

    def test_a_suspended_tenant_never_reaches_the_upstream(self):
        paused = self.token("owner@paused.test", "paused")
        self.assertEqual(self.call("GET", "/lb/x", paused).status, 200)
        r = api_call(self.server, "PATCH", f"/v1/admin/tenants/{self.tenants['paused']['id']}", self.root,
                     {"status": "suspended"})
        self.assertEqual(r.status, 200, r)
        poll_until(lambda: self.call("GET", "/lb/x", paused).status == 403, 40, message="suspension in force")
        self.assertProblem(self.call("GET", "/lb/x", paused, headers={"X-Test-Key": "suspended"}), 403)
        self.assertEqual(self.seen("suspended"), 0)

    def test_proxied_requests_count_as_api_calls_and_are_audited(self):
        bigco = self.token("owner@bigco.test", "bigco")
        start = datetime.now(timezone.utc) - timedelta(minutes=1)
        for _ in range(7):
            self.assertEqual(self.call("GET", "/lb/count", bigco).status, 200)

        def counted():
            end = datetime.now(timezone.utc) + timedelta(minutes=1)
            r = api_call(self.server, "GET",
                         f"/v1/usage/summary?metric=api_calls&from={start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                         f"&to={end.strftime('%Y-%m-%dT%H:%M:%SZ')}", bigco)
            return sum(w["value"] or 0 for w in r.json()["data"]) if r.status == 200 else 0

        poll_until(lambda: counted() >= 7, 30, message="api_calls to count the proxied requests")
        entries = api_call(self.server, "GET", "/v1/audit-logs?action=proxy.request&limit=50", bigco)
        self.assertEqual(entries.status, 200, entries)
        proxied = [e for e in entries.json()["data"] if e["action"] == "proxy.request"]
        self.assertGreaterEqual(len(proxied), 7, entries.json())
        self.assertEqual(proxied[0]["resource"], {"type": "route", "id": "lb"})
        self.assertEqual(proxied[0]["changes"]["status"], 200)

    # -- transformations -------------------------------------------------------------------------------------

    def test_headers_path_and_query_are_transformed(self):
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        r = self.call("GET", "/items/42?q=shoes&secret=s&page=2", self.owner,
                      headers={"X-Drop-Me": "1", "X-Old-Name": "v", "traceparent": trace})
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["target"], "/internal/items/42?query=shoes&page=2&source=edge")
        seen = body["headers"]
        self.assertEqual(seen["X-Product"], "atrium-e2e")
        self.assertNotIn("X-Drop-Me", seen)
        self.assertEqual(seen["X-New-Name"], "v")
        self.assertNotIn("X-Old-Name", seen)
        self.assertTrue(seen["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-"), seen)
        self.assertNotEqual(seen["traceparent"], trace)  # this hop is the new parent
        self.assertEqual(seen["X-Request-Id"], r.header("X-Request-Id"))
        self.assertEqual(seen["X-Forwarded-For"], "127.0.0.1")
        self.assertEqual(r.header("X-Edge"), "atrium")
        self.assertIsNone(r.header("X-Internal-Debug"))
        self.assertIsNotNone(r.header("RateLimit"))
        self.assertEqual(r.header("X-Upstream"), body["server"])
        # A method the route does not list is not forwarded.
        self.assertProblem(self.call("DELETE", "/items/42", self.owner), 404)

    def test_json_bodies_follow_the_version_the_client_names(self):
        # A client pinned before the upstream's change gets its older shape both ways, with a true Content-Length.
        old = self.call("POST", "/shape", self.owner,
                        headers={"Atrium-Version": "2026-06-01", "Content-Type": "application/json"},
                        body=json.dumps({"items": [{"amount": 3}]}).encode())
        self.assertEqual(old.status, 200, old)
        body = old.json()
        self.assertEqual(body["items"], [{"id": 1, "amount": 5, "currency": "EUR"}])
        self.assertNotIn("data", body)
        self.assertNotIn("total_count", body)
        self.assertEqual(body["received"], {"data": [{"amount_cents": 3}]})  # the upstream saw its own shape
        self.assertFalse(body["chunked"])
        self.assertEqual(int(old.header("Content-Length")), len(old.body))
        self.assertIsNotNone(old.header("RateLimit"))
        # A chunked request body is read whole and sent with its length.
        raw = json.dumps({"items": [{"amount": 4}]}).encode()
        framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (raw[:10], raw[10:])) + b"0\r\n\r\n"
        chunked = self.call("POST", "/shape", self.owner,
                            headers={"Atrium-Version": "2026-06-01", "Content-Type": "application/json",
                                     "Transfer-Encoding": "chunked"},
                            body=framed)
        self.assertEqual(chunked.status, 200, chunked)
        self.assertEqual(chunked.json()["received"], {"data": [{"amount_cents": 4}]})
        # The current version (named, or by default) passes both ways unchanged.
        for headers in ({"Atrium-Version": "2026-11-01"}, {}):
            current = self.call("POST", "/shape", self.owner, headers={**headers, "Content-Type": "application/json"},
                                body=json.dumps({"data": [{"amount_cents": 3}]}).encode())
            self.assertEqual(current.status, 200, current)
            self.assertEqual(current.json()["data"], [{"id": 1, "amount_cents": 5, "currency": "EUR"}])
            self.assertEqual(current.json()["total_count"], 1)
            self.assertEqual(current.json()["received"], {"data": [{"amount_cents": 3}]})

    def test_proxy_metrics_name_routes_and_clusters(self):
        self.call("GET", "/lb/m", self.owner)
        samples = parse_metrics(self.server.get("/metrics").body.decode())
        self.assertGreaterEqual(sample_value(samples, "proxy_requests_total", route="lb", cluster="main",
                                             status="200"), 1)
        self.assertGreaterEqual(sample_value(samples, "http_requests_total", method="GET", route="lb",
                                             status="200"), 1)

    def replace_routes(self, text):
        """Writes the routes file as an operator should: a new file renamed over the old one."""
        with open(self.routes_path + ".new", "w") as f:
            f.write(text)
        os.replace(self.routes_path + ".new", self.routes_path)

    def test_zz_the_routes_file_reloads_without_a_restart(self):
        with open(self.routes_path) as f:
            original = f.read()
        try:
            self.replace_routes(original.replace('name = "open"\npath_prefix = "/public"\ncluster = "solo_a"',
                                                 'name = "open"\npath_prefix = "/public"\ncluster = "solo_c"'))
            poll_until(lambda: self.call("GET", "/public/x").json()["server"] == "C", 20,
                       message="the reloaded routes")
            # A broken file is refused; the routes in force stay.
            self.replace_routes("[[routes]]\nname = 1\n")
            poll_until(lambda: "does not load" in self.server.log_text(), 20, message="the refusal in the log")
            self.assertEqual(self.call("GET", "/public/x").json()["server"], "C")
        finally:
            self.replace_routes(original)


if __name__ == "__main__":
    unittest.main()
