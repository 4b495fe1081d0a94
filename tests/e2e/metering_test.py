"""Usage ingestion through the real binary, on the embedded SQLite database and on PostgreSQL: `atrium serve` killed
with SIGKILL while two clients send batches to POST /v1/usage, then restarted. Every event whose batch was
acknowledged (202) must be stored and counted exactly once; batches whose answer was lost are retried with the same
keys and then count once too (never twice). The database is read directly after the kill (SQLite read-only through
<data_dir>/atrium.db; PostgreSQL through psql, in a database of the test's own, dropped afterwards).
"""

import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
import unittest
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atrium_e2e  # noqa: E402
from atrium_e2e import (BINARY, E2ETestCase, in_ci, poll_until, run_cli, run_tool, skip_or_fail,  # noqa: E402
                        wait_for_binary)

PG_URL = os.environ.get("ATRIUM_TEST_POSTGRES_URL", "")

BATCH = 200
CLIENTS = 2
ACKED_BEFORE_KILL = 12  # batches acknowledged before the kill (the clients keep sending while it happens)
LOAD_TIMEOUT = 120.0


def atrium_env(**settings):
    env = {k: None for k in os.environ if k.startswith(("ATRIUM_METERING_", "ATRIUM_JOBS_", "ATRIUM_IDENTITY_"))
           or k == "ATRIUM_FAILPOINTS"}
    env["ATRIUM_IDENTITY_PASSWORD_COST"] = "minimum"
    for key, value in settings.items():
        env["ATRIUM_" + key.upper()] = "true" if value is True else "false" if value is False else str(value)
    return env


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class UsageIngestionCrashTest(E2ETestCase):

    def setUp(self):
        try:
            wait_for_binary(timeout=60.0 if in_ci() else 5.0)
        except AssertionError:
            skip_or_fail(self, f"atrium binary not found: {BINARY} (set ATRIUM_BINARY)")

    def call(self, server, method, path, token, body=None, timeout=30.0):
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return server.request(method, path, headers=headers, body=data, timeout=timeout)

    def expect(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        return resp.json()

    def rows(self, sql, tenant):
        """Rows of `sql`, where ? is the tenant id, read directly from the server's database."""
        if self.database_url is None:
            db = sqlite3.connect(os.path.join(self.server.data_dir, "atrium.db"), timeout=10, isolation_level=None)
            try:
                db.execute("PRAGMA query_only = ON")
                return db.execute(sql, (tenant,)).fetchall()
            finally:
                db.close()
        out = self.psql(sql.replace("?", ":'tenant'"), "-v", f"tenant={tenant}")
        return [tuple(line.split("|")) for line in out.splitlines() if line]

    def query(self, sql, tenant):
        return [tuple(int(v) for v in row) for row in self.rows(sql, tenant)]

    def psql(self, sql, *args, url=None):
        out = run_tool(["psql", url or self.database_url, "-v", "ON_ERROR_STOP=1", "-qAt", *args],
                       input_text=sql + ";\n", timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed:\n{out.stderr}")
        return out.stdout

    def use_postgres(self):
        """A database of this test's own on the test PostgreSQL server."""
        if not PG_URL:
            skip_or_fail(self, "ATRIUM_TEST_POSTGRES_URL is not set")
        if shutil.which("psql") is None:
            skip_or_fail(self, "psql is not installed")
        name = "e2e_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}", url=PG_URL)
        self.addCleanup(lambda: poll_until(
            lambda: run_tool(["psql", PG_URL, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                             timeout=60).returncode == 0, timeout=30, interval=0.2, message=f"dropping {name}"))
        parts = urlsplit(PG_URL)
        self.database_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))

    def keys(self, tenant):
        return [row[0] for row in self.rows(
            "SELECT idempotency_key FROM usage_events WHERE tenant_id = ? AND metric = 'api.calls'", tenant)]

    def test_kill_9_during_ingestion_on_sqlite(self):
        self.database_url = None
        self.kill_9_during_ingestion_loses_no_acknowledged_event_and_counts_none_twice()

    def test_kill_9_during_ingestion_on_postgres(self):
        self.use_postgres()
        self.kill_9_during_ingestion_loses_no_acknowledged_event_and_counts_none_twice()

    def kill_9_during_ingestion_loses_no_acknowledged_event_and_counts_none_twice(self):
        env = atrium_env(JOBS_EMBEDDED=False)
        where = ["--database-url", self.database_url] if self.database_url else []
        server = self.server = self.start_server(args=where, env=env)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir, *where], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        root = self.expect(server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                                          body=json.dumps({"grant_type": "password", "email": "root@e2e.test",
                                                           "password": "root-password"}).encode()),
                           200)["access_token"]
        tenant = self.expect(self.call(server, "POST", "/v1/admin/tenants", root,
                                       {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                                        "owner_password": "owner-password"}), 201)["id"]
        owner = self.expect(server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                                           body=json.dumps({"grant_type": "password", "email": "owner@acme.test",
                                                            "password": "owner-password",
                                                            "tenant": "acme"}).encode()),
                            200)["access_token"]
        key = self.expect(self.call(server, "POST", "/v1/api-keys", owner,
                                    {"name": "meter", "permissions": ["usage:write", "usage:read"]}), 201)["secret"]

        lock = threading.Lock()
        acked = []    # batches answered 202: every event in them must be stored
        unknown = []  # batches whose answer never came (the kill): retried after the restart
        stop = threading.Event()

        def client(n):
            i = 0
            while not stop.is_set():
                events = [{"metric": "api.calls", "quantity": (i * BATCH + j) % 7 + 1, "timestamp": now_rfc3339(),
                           "idempotency_key": f"c{n}-b{i}-e{j}"} for j in range(BATCH)]
                i += 1
                try:
                    r = self.call(server, "POST", "/v1/usage", key, {"events": events}, timeout=60.0)
                except OSError:
                    with lock:
                        unknown.append(events)
                    return  # the server is gone
                with lock:
                    if r.status == 202 and r.json()["accepted"] == BATCH:
                        acked.append(events)
                    else:
                        unknown.append(events)
                        if r.status != 202:
                            return

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            poll_until(lambda: len(acked) >= ACKED_BEFORE_KILL, timeout=LOAD_TIMEOUT,
                       message=f"{ACKED_BEFORE_KILL} batches acknowledged")
            server.send_signal(signal.SIGKILL)
            server.wait_exit()
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=90)
        self.assertGreaterEqual(len(acked), ACKED_BEFORE_KILL)

        # Every acknowledged event is stored, once; the roll-ups agree with the events. Only the test's metric counts:
        # api_calls is the gateway's own count of these requests, event:user.* Atrium's own product events.
        stored = set(self.keys(tenant))
        acked_keys = {e["idempotency_key"] for batch in acked for e in batch}
        self.assertEqual(len(acked_keys), len(acked) * BATCH)
        missing = acked_keys - stored
        self.assertFalse(missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}")
        (events_count, events_sum), = self.query(
            "SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM usage_events WHERE tenant_id = ? "
            "AND metric = 'api.calls'", tenant)
        (rollup_count, rollup_sum), = self.query(
            "SELECT COALESCE(SUM(event_count), 0), COALESCE(SUM(quantity_sum), 0) FROM usage_rollups "
            "WHERE tenant_id = ? AND metric = 'api.calls'", tenant)
        self.assertEqual((rollup_count, rollup_sum), (events_count, events_sum))

        # Restarted, the clients retry what they never heard back about, with the same keys.
        server.start()
        retried_accepted = 0
        for batch in unknown:
            r = self.expect(self.call(server, "POST", "/v1/usage", key, {"events": batch}), 202)
            self.assertEqual(r["accepted"] + r["duplicates"], BATCH, r)
            retried_accepted += r["accepted"]
        everything = acked + unknown
        total_count = len(everything) * BATCH
        total_sum = sum(e["quantity"] for batch in everything for e in batch)
        (n,), = self.query("SELECT COUNT(*) FROM usage_events WHERE tenant_id = ? AND metric = 'api.calls'", tenant)
        self.assertEqual(n, total_count)
        self.assertEqual(retried_accepted, total_count - events_count)
        # The summary counts each event once.
        start = datetime.fromtimestamp(time.time() - 3 * 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = datetime.fromtimestamp(time.time() + 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for aggregation, want in (("count", total_count), ("sum", total_sum)):
            s = self.expect(self.call(server, "GET", f"/v1/usage/summary?metric=api.calls&aggregation={aggregation}"
                                      f"&from={start}&to={end}", key), 200)
            self.assertEqual(s["data"][0]["value"], want, (aggregation, s))


if __name__ == "__main__":
    unittest.main()
