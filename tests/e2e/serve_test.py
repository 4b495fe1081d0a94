"""`atrium serve` on the embedded SQLite database: operations endpoints, metrics, request ids, migrations."""

import json
import signal
import os
import re
import sqlite3
import tempfile
import unittest

from atrium_e2e import (SCHEMA_VERSION, E2ETestCase, RawReader, SharedServerTestCase, connect, free_port,
                        parse_metrics, require_tool, run_cli, run_tool, sample_value)


def promtool_problems(test, text):
    """promtool check metrics on `text`: its findings, less the one lint the seed's naming brings."""
    promtool = require_tool(test, "promtool")
    check = run_tool([promtool, "check", "metrics"], input_text=text, timeout=60)
    # One lint is expected: the seed names its subscription gauge active_subscriptions_total (docs/analytics.md),
    # against Prometheus' convention that only counters end in _total. Exit status 3 is lint, 1 a parse error.
    allowed = 'active_subscriptions_total non-counter metrics should not have "_total" suffix'
    test.assertIn(check.returncode, (0, 3), f"promtool check metrics failed:\n{check.stdout}\n{check.stderr}\n"
                                            f"metrics:\n{text}")
    return [line for line in (check.stdout + check.stderr).splitlines() if line.strip() and line != allowed]


class ServeSqliteTest(SharedServerTestCase):

    def metrics(self):
        r = self.server.get("/metrics")
        self.assertEqual(r.status, 200, r)
        return r

    def test_health(self):
        r = self.server.get("/health")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("application/json"), r)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertTrue(r.header("X-Request-Id"), r)

    def test_ready_reports_sqlite_and_schema_version(self):
        r = self.server.get("/ready")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["status"], "ready")
        self.assertEqual(body["database"], "sqlite")
        self.assertIsInstance(body["schema_version"], int)
        self.assertGreaterEqual(body["schema_version"], 1)
        self.assertTrue(os.path.isfile(os.path.join(self.server.data_dir, "atrium.db")),
                        "the embedded database is not at DATA_DIR/atrium.db")

    def test_metrics_pass_promtool(self):
        self.server.get("/health")
        r = self.metrics()
        self.assertTrue(r.header("Content-Type", "").startswith("text/plain"), r)
        self.assertEqual(promtool_problems(self, r.text()), [], f"metrics:\n{r.text()}")

    def test_metrics_families_present(self):
        self.server.get("/health")
        text = self.metrics().text()
        for family, kind in [("http_requests_total", "counter"), ("http_request_duration_seconds", "histogram"),
                             ("http_requests_in_flight", "gauge"), ("process_cpu_seconds_total", "counter"),
                             ("process_resident_memory_bytes", "gauge"), ("process_open_fds", "gauge"),
                             ("atrium_build_info", "gauge"), ("active_subscriptions_total", "gauge"),
                             ("revenue_total", "counter"), ("atrium_ready", "gauge"),
                             ("atrium_db_pool_connections", "gauge"), ("atrium_db_pool_max_connections", "gauge"),
                             ("atrium_db_pool_waiting", "gauge"), ("atrium_db_tenant_pools_open", "gauge")]:
            self.assertRegex(text, rf"(?m)^# TYPE {family} {kind}$")
        samples = parse_metrics(text)
        self.assertGreater(sample_value(samples, "process_resident_memory_bytes"), 0)
        self.assertGreater(sample_value(samples, "process_open_fds"), 0)
        # What /ready would answer, and the main pool (storage.pool_size, 8 by default).
        self.assertEqual(sample_value(samples, "atrium_ready"), 1.0, text)
        self.assertEqual(sample_value(samples, "atrium_db_pool_max_connections", pool="main"), 8.0, text)
        self.assertGreaterEqual(sample_value(samples, "atrium_db_pool_connections", pool="main", state="idle"), 1.0)
        self.assertEqual(sample_value(samples, "atrium_db_pool_waiting", pool="main"), 0.0, text)
        # No certificate without TLS (tls_test.py), and no tenant label unless asked for.
        self.assertNotIn("atrium_tls_certificate_expiry_timestamp_seconds", text)
        self.assertNotIn("tenant_id=", text)
        # The metrics request itself is in flight while the body is rendered.
        self.assertGreaterEqual(sample_value(samples, "http_requests_in_flight"), 1)
        # atrium_build_info carries the same version that `atrium version` prints.
        version = re.match(r"atrium (\S+) ", run_cli(["version"]).stdout).group(1)
        self.assertEqual(sample_value(samples, "atrium_build_info", version=version), 1.0, text)

    def test_requests_are_counted_by_route(self):
        before = parse_metrics(self.metrics().text())
        for _ in range(3):
            self.assertEqual(self.server.get("/health").status, 200)
        after = parse_metrics(self.metrics().text())
        labels = {"method": "GET", "route": "/health", "status": "200"}
        self.assertEqual(sample_value(after, "http_requests_total", **labels)
                         - sample_value(before, "http_requests_total", **labels), 3.0)
        count = sample_value(after, "http_request_duration_seconds_count", **labels)
        self.assertEqual(sample_value(after, "http_request_duration_seconds_bucket", le="+Inf", **labels), count)
        self.assertGreaterEqual(count, 3.0)

    def test_metric_labels_stay_bounded(self):
        raw_path = "/nope-12345"
        r = self.server.get(raw_path)
        self.assertEqual(r.status, 404)
        r = self.server.request("BREW", "/other-98765")  # an unknown method and another unknown path
        self.assertIn(r.status, (400, 404, 405, 501), r)
        text = self.metrics().text()
        self.assertNotIn("nope-12345", text)
        self.assertNotIn("other-98765", text)
        self.assertNotIn("BREW", text)
        samples = parse_metrics(text)
        # The 404 is still counted, under a bounded route label.
        self.assertGreaterEqual(sample_value(samples, "http_requests_total", status="404"), 1.0, text)
        # Route labels are route patterns (or one catch-all value), never request paths.
        for name, labels, _ in samples:
            route = labels.get("route")
            if name.startswith("http_request") and route is not None and route.startswith("/"):
                self.assertIn(route, {"/health", "/ready", "/metrics", "/openapi.json"},
                              f"unbounded route label in {name}{labels}")

    def test_openapi_document(self):
        r = self.server.get("/openapi.json")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("application/json"), r)
        doc = r.json()
        self.assertEqual(doc.get("openapi"), "3.1.0")
        self.assertIn("info", doc)
        for path in ("/health", "/ready", "/metrics", "/openapi.json"):
            self.assertIn(path, doc.get("paths", {}))
            self.assertIn("get", doc["paths"][path])

    def test_request_id_is_echoed_when_valid(self):
        r = self.server.get("/health", headers={"X-Request-Id": "e2e-req.42:abc_DEF"})
        self.assertEqual(r.header("X-Request-Id"), "e2e-req.42:abc_DEF")
        # Also on errors, and the problem body carries the same id.
        r = self.server.get("/nope", headers={"X-Request-Id": "e2e-err-1"})
        body = self.assertProblem(r, 404)
        self.assertEqual(body["request_id"], "e2e-err-1")

    def test_invalid_request_id_is_replaced(self):
        for bad in ("has space", "x" * 200, "semi;colon", "<script>"):
            r = self.server.get("/health", headers={"X-Request-Id": bad})
            self.assertEqual(r.status, 200)
            rid = r.header("X-Request-Id")
            self.assertTrue(rid, r)
            self.assertNotEqual(rid, bad)
            self.assertRegex(rid, r"^[A-Za-z0-9._:-]{1,128}$")

    def test_generated_request_ids_are_unique(self):
        ids = {self.server.get("/health").header("X-Request-Id") for _ in range(5)}
        self.assertEqual(len(ids), 5, ids)

    def test_head_and_keep_alive(self):
        s = connect(self.server.port)
        try:
            reader = RawReader(s)
            s.sendall(b"HEAD /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
            r = reader.read_response(head_request=True)
            self.assertEqual(r.status, 200, r)
            # No body follows a HEAD response: the next response on the connection parses cleanly.
            s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\n\r\n")
            r = reader.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body), {"status": "ok"})
        finally:
            s.close()

    def test_pipelined_requests_answer_in_order(self):
        s = connect(self.server.port)
        try:
            reader = RawReader(s)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: first\r\n\r\n"
                      b"GET /nope HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: second\r\n\r\n"
                      b"GET /ready HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: third\r\nConnection: close\r\n\r\n")
            got = [reader.read_response() for _ in range(3)]
            self.assertEqual([(r.status, r.header("X-Request-Id")) for r in got],
                             [(200, "first"), (404, "second"), (200, "third")])
            self.assertTrue(reader.wait_closed(10), "Connection: close was not honoured")
        finally:
            s.close()

    def test_not_found_and_method_not_allowed(self):
        body = self.assertProblem(self.server.get("/does/not/exist"), 404)
        self.assertIn("type", body)
        r = self.server.request("DELETE", "/metrics")
        self.assertProblem(r, 405)
        allow = {m.strip() for m in r.header("Allow", "").split(",")}
        self.assertIn("GET", allow)
        self.assertNotIn("DELETE", allow)


class TenantLabelTest(E2ETestCase):

    def test_tenant_label_on_keeps_promtool_clean(self):
        # metrics.tenant_label: the request metrics gain tenant_id ("none" for requests in no tenant; the bound is
        # tests/http/http_metrics_test.cpp's). Sign-in and /health act in no tenant.
        server = self.start_server(env={"ATRIUM_METRICS_TENANT_LABEL": "true",
                                        "ATRIUM_METRICS_TENANT_LABEL_LIMIT": "5"})
        server.get("/health")
        text = server.get("/metrics").text()
        self.assertRegex(text, r'http_requests_total\{method="GET",route="/health",status="200",tenant_id="none"\} ')
        self.assertEqual(promtool_problems(self, text), [], text)


class ServeLifecycleTest(E2ETestCase):

    def test_sigint_stops_cleanly(self):
        server = self.start_server()
        self.assertEqual(server.stop(sig=signal.SIGINT), 0, server.log_text())
        with self.assertRaises(OSError):
            connect(server.port, timeout=2).close()

    def test_access_log_and_json_logs(self):
        server = self.start_server()
        server.get("/health", headers={"X-Request-Id": "e2e-log-1"})
        self.assertEqual(server.stop(), 0)
        entries = server.log_entries()
        self.assertTrue(entries, server.log_text())
        for line in server.log_text().splitlines():
            if line.strip():
                json.loads(line)  # every stderr line is one JSON object
        listening = [e for e in entries if e.get("msg") == "listening"]
        self.assertEqual(len(listening), 1, server.log_text())
        self.assertEqual(listening[0].get("port"), server.port)
        self.assertTrue(any(e.get("request_id") == "e2e-log-1" and e.get("status") == 200 for e in entries),
                        server.log_text())

    def test_access_log_can_be_disabled(self):
        server = self.start_server(env={"ATRIUM_LOG_ACCESS_LOG": "false"})
        server.get("/health", headers={"X-Request-Id": "e2e-nolog-1"})
        self.assertEqual(server.stop(), 0)
        self.assertNotIn("e2e-nolog-1", server.log_text())

    def test_schema_behind_then_migrate_makes_ready(self):
        # Without migrate_on_start the fresh database is at version 0: not ready, and saying why.
        server = self.start_server(env={"ATRIUM_STORAGE_MIGRATE_ON_START": "false"})
        r = server.get("/ready")
        body = self.assertProblem(r, 503)
        self.assertIn("migrate", body["detail"])
        self.assertEqual(server.get("/health").status, 200)  # liveness does not depend on the schema

        out = run_cli(["migrate", "--data-dir", server.data_dir])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"schema version {SCHEMA_VERSION}", out.stdout)

        r = server.get("/ready")  # same process, no restart
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["schema_version"], SCHEMA_VERSION)

    def test_schema_ahead_of_the_build_is_served(self):
        # A newer release migrated (its migration Job runs before its pods replace these): this build stays ready
        # and keeps serving, during the rollout and after a rollback (migrations only add; deploy_test checks that).
        with tempfile.TemporaryDirectory(prefix="atrium-e2e-") as d:
            self.assertEqual(run_cli(["migrate", "--data-dir", d]).returncode, 0)
            with sqlite3.connect(os.path.join(d, "atrium.db")) as db:
                db.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                           "VALUES (?, 'from_a_newer_release', 'x', '2026-12-06T00:00:00Z')", (SCHEMA_VERSION + 1,))
            server = self.start_server(data_dir=d, env={"ATRIUM_STORAGE_MIGRATE_ON_START": "false"})
            r = server.get("/ready")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["schema_version"], SCHEMA_VERSION + 1)
            # Signing keys were loaded as on a current schema: sign-in answers (invalid_grant for a stranger, not 503).
            r = server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                               body=json.dumps({"grant_type": "password", "email": "nobody@example.com",
                                                "password": "not-a-password"}).encode())
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["error"], "invalid_grant")
            self.assertEqual(server.stop(), 0, server.log_text())

    def test_migrate_is_idempotent(self):
        with tempfile.TemporaryDirectory(prefix="atrium-e2e-") as d:
            first = run_cli(["migrate", "--data-dir", d])
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertRegex(first.stdout, r"applied [1-9]\d* migration\(s\); schema version " + str(SCHEMA_VERSION))
            second = run_cli(["migrate", "--data-dir", d])
            self.assertEqual(second.returncode, 0, second.stderr)
            self.assertIn(f"applied 0 migration(s); schema version {SCHEMA_VERSION}", second.stdout)
            self.assertTrue(os.path.isfile(os.path.join(d, "atrium.db")))

    def test_sqlite_url_elsewhere(self):
        with tempfile.TemporaryDirectory(prefix="atrium-e2e-") as d:
            db_path = os.path.join(d, "elsewhere.db")
            server = self.start_server(args=["--database-url", f"sqlite:{db_path}"])
            r = server.get("/ready")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["database"], "sqlite")
            self.assertTrue(os.path.isfile(db_path), "sqlite:PATH did not create the database at PATH")
            self.assertFalse(os.path.exists(os.path.join(server.data_dir, "atrium.db")))
            self.assertEqual(server.stop(), 0, server.log_text())

    def test_unreachable_database_fails_startup(self):
        with tempfile.TemporaryDirectory(prefix="atrium-e2e-") as d:
            url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
            out = run_cli(["serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", d, "--database-url", url],
                          env={"ATRIUM_STORAGE_CONNECT_TIMEOUT_MS": "1000"}, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("database", out.stderr)

    def test_listen_address_in_use_fails(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            with tempfile.TemporaryDirectory(prefix="atrium-e2e-") as d:
                out = run_cli(["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d], timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("cannot listen", out.stderr)


if __name__ == "__main__":
    unittest.main()
