"""Background jobs through the real binary on the embedded SQLite database: `atrium worker` processes killed with
SIGKILL at the failpoints around a job's effect (the job runs again and its effect applies once), two workers
firing one cron schedule (each slot once, none skipped), SIGTERM letting the job in hand finish, and a webhook
receiver that is down at first (retried, then delivered once with a valid signature).

Each test has its own data directory and free loopback ports. The jobs table of the control database
(<data_dir>/atrium.db) is read directly, read-only, while the processes run.
"""

import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

# Also importable as tests.e2e.jobs_test (python3 -m unittest tests.e2e.jobs_test), not only by discover -s.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atrium_e2e  # noqa: E402
from atrium_e2e import (  # noqa: E402
    BINARY, E2ETestCase, EXIT_TIMEOUT, STARTUP_TIMEOUT, api_call, child_env, free_port, in_ci, poll_until, run_cli,
    skip_or_fail, wait_for_binary)

# Upper bounds for polls (the binary may be an ASan build on a loaded 2-core machine); never sleeps.
JOB_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

# Configuration sections this file sets explicitly; any value inherited from the outer shell is dropped first.
_OWN_ENV_PREFIXES = ("ATRIUM_JOBS_", "ATRIUM_WEBHOOKS_", "ATRIUM_EMAIL_", "ATRIUM_AUDIT_", "ATRIUM_IDENTITY_",
                     "ATRIUM_TENANCY_")


def atrium_env(**settings):
    """The environment for an Atrium child: ATRIUM_FAILPOINTS and the sections above cleared, then `settings`
    (keyword SECTION_KEY=value, e.g. JOBS_LEASE_MS=2000 -> ATRIUM_JOBS_LEASE_MS; FAILPOINTS -> ATRIUM_FAILPOINTS)."""
    env = {k: None for k in os.environ if k.startswith(_OWN_ENV_PREFIXES) or k == "ATRIUM_FAILPOINTS"}
    env["ATRIUM_IDENTITY_PASSWORD_COST"] = "minimum"
    env["ATRIUM_JOBS_POLL_INTERVAL_MS"] = "100"
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        env["ATRIUM_" + key.upper()] = str(value)
    return env


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------------------
# `atrium worker`


class AtriumWorker(atrium_e2e.LogFile):
    """`atrium worker` on a data directory, logging to a file. No HTTP: readiness is the "worker running" log line."""

    def __init__(self, data_dir, env, name="worker"):
        self.data_dir = data_dir
        self.env = env
        self.name = name
        fd, self.log_path = tempfile.mkstemp(prefix=f"atrium-e2e-{name}-", suffix=".log")
        os.close(fd)
        self.proc = None
        self._log = None

    def start(self, wait=True):
        self._log = open(self.log_path, "wb")
        cmd = [BINARY, "worker", "--data-dir", self.data_dir]
        self.proc = atrium_e2e._popen_retrying(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                               stderr=subprocess.STDOUT, env=child_env(self.env))
        atrium_e2e._live_processes.append(self.proc)
        if wait:
            self.wait_running()
        return self

    def wait_running(self, timeout=STARTUP_TIMEOUT):
        def running():
            if self.proc.poll() is not None:
                raise AssertionError(f"atrium worker ({self.name}) exited with {self.proc.returncode} before it "
                                     f"was running; log:\n{self.log_text()}")
            return any(e.get("msg") == "worker running" for e in self.log_entries())
        try:
            poll_until(running, timeout=timeout, message=f"atrium worker ({self.name}) running")
        except AssertionError as e:
            raise AssertionError(f"{e}; log:\n{self.log_text()}") from None

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=EXIT_TIMEOUT)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"atrium worker ({self.name}) did not exit within {timeout}s; log:\n"
                                 f"{self.log_text()}") from None

    def close(self):
        if self.proc is not None:
            atrium_e2e.stop_process(self.proc)
            if self.proc in atrium_e2e._live_processes:
                atrium_e2e._live_processes.remove(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        try:
            self.raise_on_sanitizer_reports(f"atrium worker ({self.name})")
        finally:
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass


# --------------------------------------------------------------------------------------------------------------
# A webhook receiver


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that answers every POST 200 and records (headers, body bytes)."""

    def __init__(self, port=0):
        received = self.received = []
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with lock:
                    received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/atrium"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def deliveries(self, event_type=None):
        """[(headers, body bytes, parsed body)] received so far, optionally only of one event type."""
        with self.lock:
            got = list(self.received)
        out = []
        for headers, body in got:
            parsed = json.loads(body.decode("utf-8"))
            if event_type is None or parsed.get("type") == event_type:
                out.append((headers, body, parsed))
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------------------------------------------


class JobsTest(E2ETestCase):

    _missing = None  # why the binary cannot run these tests, once known ("" when it can)

    def setUp(self):
        cls = type(self)
        if cls._missing is None:
            try:
                # A rebuild may be replacing the binary: wait for it (bounded), longer where it must be there.
                wait_for_binary(timeout=60.0 if in_ci() else 5.0)
                r = run_cli(["--help"])
                cls._missing = "" if "worker" in r.stdout else \
                    f"{BINARY} has no `worker` subcommand (built before background jobs?)"
            except AssertionError:
                cls._missing = f"atrium binary not found: {BINARY} (set ATRIUM_BINARY)"
        if cls._missing:
            skip_or_fail(self, cls._missing)

    # -- processes --

    def start_worker(self, data_dir, env, name="worker"):
        worker = AtriumWorker(data_dir, env, name)
        self.addCleanup(worker.close)
        worker.start()
        return worker

    def stop(self, worker, sig=signal.SIGTERM):
        """Signals the worker; returns its exit code (bounded wait)."""
        worker.send_signal(sig)
        return worker.wait_exit(STOP_TIMEOUT)

    def start_receiver(self, port=0):
        receiver = Receiver(port)
        self.addCleanup(receiver.close)
        return receiver

    # -- the API --

    def call(self, server, method, path, token=None, body=None, headers=None):
        return api_call(server, method, path, token, body, headers)

    def expect(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        return resp

    def sign_in(self, server, email, password, tenant=None):
        body = {"grant_type": "password", "email": email, "password": password}
        if tenant:
            body["tenant"] = tenant
        return self.expect(self.call(server, "POST", "/v1/auth/token", body=body), 200).json()["access_token"]

    def tenant_owner(self, server, env):
        """A super admin (CLI), a tenant "acme" with an owner; returns (owner token, tenant id)."""
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        root = self.sign_in(server, "root@e2e.test", "root-password")
        tenant = self.expect(self.call(server, "POST", "/v1/admin/tenants", root,
                                       {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                                        "owner_password": "owner-password"}), 201).json()
        return self.sign_in(server, "owner@acme.test", "owner-password", "acme"), tenant["id"]

    def create_endpoint(self, server, token, url, event_types):
        endpoint = self.expect(self.call(server, "POST", "/v1/webhook-endpoints", token,
                                         {"url": url, "description": "e2e receiver",
                                          "event_types": event_types}), 201).json()
        self.assertTrue(endpoint.get("secret"), endpoint)
        self.assertEqual(endpoint["status"], "enabled", endpoint)
        return endpoint

    def request_report(self, server, token):
        now = datetime.now(timezone.utc)
        r = self.expect(self.call(server, "POST", "/v1/reports", token,
                                  {"type": "audit_log", "from": rfc3339(now - timedelta(days=1)),
                                   "to": rfc3339(now + timedelta(days=1))}), 202)
        report = r.json()
        self.assertEqual(report["status"], "pending", report)
        self.assertEqual(r.header("Location"), f"/v1/reports/{report['id']}", r)
        return report["id"]

    def report(self, server, token, report_id):
        return self.expect(self.call(server, "GET", f"/v1/reports/{report_id}", token), 200).json()

    def deliveries(self, server, token, endpoint_id):
        return self.expect(self.call(server, "GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries", token),
                           200).json()["data"]

    def assert_report_ready_with_csv(self, server, token, report_id):
        report = self.report(server, token, report_id)
        self.assertEqual(report["status"], "ready", report)
        self.assertEqual(report["download_url"], f"/v1/reports/{report_id}?format=csv", report)
        csv = self.expect(self.call(server, "GET", report["download_url"], token), 200)
        self.assertTrue(csv.header("Content-Type", "").startswith("text/csv"), csv)
        lines = csv.text().split("\r\n")
        self.assertEqual(lines[-1], "", csv)
        self.assertTrue(lines[0].startswith("id,seq,occurred_at,"), csv)
        rows = lines[1:-1]
        self.assertEqual(len(rows), report["row_count"], (report, csv))
        self.assertTrue(any(",report.requested,report," in row for row in rows), csv)
        return report

    # -- the control database --

    def db_rows(self, data_dir, sql, params=()):
        db = sqlite3.connect(os.path.join(data_dir, "atrium.db"), timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA query_only = ON")
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def job(self, data_dir, idempotency_key):
        """(id, state, attempts, completed) of the job with this key, or None."""
        rows = self.db_rows(data_dir,
                            "SELECT j.id, j.state, j.attempts, c.job_id IS NOT NULL FROM jobs j "
                            "LEFT JOIN job_completions c ON c.job_id = j.id WHERE j.idempotency_key = ?",
                            (idempotency_key,))
        return rows[0] if rows else None

    def jobs_of_type(self, data_dir, job_type):
        """[(id, idempotency_key, state, attempts, completed)] of every job of this type."""
        return self.db_rows(data_dir,
                            "SELECT j.id, j.idempotency_key, j.state, j.attempts, c.job_id IS NOT NULL FROM jobs j "
                            "LEFT JOIN job_completions c ON c.job_id = j.id WHERE j.type = ? ORDER BY j.id",
                            (job_type,))

    def wait_job_state(self, data_dir, key, states, timeout=JOB_TIMEOUT, context=lambda: ""):
        try:
            return poll_until(lambda: (lambda j: j if j and j[1] in states else None)(self.job(data_dir, key)),
                              timeout=timeout, message=f"job {key} in state {states}")
        except AssertionError as e:
            raise AssertionError(f"{e}; now {self.job(data_dir, key)!r}\n{context()}") from None

    # -- 1. a worker killed at a failpoint --

    def killed_worker_setup(self, failpoint):
        """serve (jobs.embedded=false), tenant, owner, receiver, endpoint for report.ready, and worker A with the
        failpoint; a report requested. Returns all of them as a tuple."""
        env = atrium_env(JOBS_EMBEDDED=False, WEBHOOKS_ALLOW_PRIVATE_TARGETS=True)
        server = self.start_server(env=env)
        owner, tenant_id = self.tenant_owner(server, env)
        receiver = self.start_receiver()
        endpoint = self.create_endpoint(server, owner, receiver.url, ["report.ready"])
        worker_env = atrium_env(JOBS_EMBEDDED=False, WEBHOOKS_ALLOW_PRIVATE_TARGETS=True, JOBS_LEASE_MS=2000)
        a = self.start_worker(server.data_dir, dict(worker_env, ATRIUM_FAILPOINTS=failpoint), name="A")
        report_id = self.request_report(server, owner)
        return server, owner, tenant_id, receiver, endpoint, worker_env, a, report_id

    def assert_one_report_ready_delivery(self, server, owner, tenant_id, receiver, endpoint, report_id):
        got = receiver.deliveries("report.ready")
        self.assertEqual(len(got), 1, got)
        headers, body, event = got[0]
        self.assertEqual(event["tenant_id"], tenant_id, event)
        self.assertEqual(event["data"]["report_id"], report_id, event)
        self.assertEqual(headers.get("atrium-event-id"), event["id"], headers)
        all_ids = [e["id"] for _, _, e in receiver.deliveries()]
        self.assertEqual(len(all_ids), len(set(all_ids)), f"an event arrived twice: {all_ids}")
        log = self.deliveries(server, owner, endpoint["id"])
        self.assertEqual([(d["event_id"], d["event_type"], d["status"]) for d in log],
                         [(event["id"], "report.ready", "succeeded")], log)
        return log[0]

    def wait_quiet(self, data_dir):
        """Waits until no job is queued or running (every delivery that is going to happen has happened)."""
        poll_until(lambda: not self.db_rows(data_dir, "SELECT id FROM jobs WHERE state IN ('queued', 'running') "
                                                      "AND type <> 'system.cleanup'"),
                   timeout=JOB_TIMEOUT, message="every job settled")

    def test_killed_worker_job_runs_again_and_applies_once(self):
        """Killed after the effect committed but before the queue heard of it: the job runs again in B, finds
        itself completed, and nothing happens twice."""
        server, owner, tenant_id, receiver, endpoint, worker_env, a, report_id = \
            self.killed_worker_setup("jobs.before_ack=sleep:60000")
        key = f"report:{report_id}"
        context = lambda: f"worker A log:\n{a.log_text()}"  # noqa: E731

        # The effect is committed while A still holds the job.
        built = poll_until(lambda: (lambda r: r if r["status"] == "ready" else None)(
            self.report(server, owner, report_id)), timeout=JOB_TIMEOUT, message="report ready (built by worker A)")
        job_id, state, attempts, completed = self.job(server.data_dir, key)
        self.assertEqual((state, attempts, completed), ("running", 1, 1), context())
        # A's relay and webhook thread deliver report.ready, then A sits at the same failpoint for that job too.
        # (Killing A in the middle of the POST would legitimately deliver twice: at least once.)
        poll_until(lambda: len(receiver.deliveries("report.ready")) == 1, timeout=JOB_TIMEOUT,
                   message="report.ready delivered by worker A")
        poll_until(lambda: [j for j in self.jobs_of_type(server.data_dir, "webhook.deliver")
                            if j[2] == "running" and j[4]],
                   timeout=JOB_TIMEOUT, message="the webhook job completed but not acknowledged in A")

        a.kill9()
        self.assertEqual(self.job(server.data_dir, key)[1:3], ("running", 1))

        b = self.start_worker(server.data_dir, worker_env, name="B")
        done = self.wait_job_state(server.data_dir, key, ("done",),
                                   context=lambda: f"worker B log:\n{b.log_text()}")
        self.assertEqual(done, (job_id, "done", 2, 1))
        self.wait_quiet(server.data_dir)
        # Both jobs A held were redelivered to B, which found each already completed.
        hooks = self.jobs_of_type(server.data_dir, "webhook.deliver")
        self.assertEqual([(j[2], j[3], j[4]) for j in hooks], [("done", 2, 1)], hooks)

        # The report B saw is the one A built (not built again).
        self.assertEqual(self.assert_report_ready_with_csv(server, owner, report_id), built)
        delivery = self.assert_one_report_ready_delivery(server, owner, tenant_id, receiver, endpoint, report_id)
        self.assertEqual(delivery["attempts"], 1, delivery)

        self.assertEqual(self.stop(b), 0, b.log_text())
        self.assertEqual(server.stop(), 0, server.log_text())

    def test_killed_worker_before_effect_job_runs_again_once(self):
        """Killed before the handler ran: B runs it; the report is built and announced once."""
        server, owner, tenant_id, receiver, endpoint, worker_env, a, report_id = \
            self.killed_worker_setup("jobs.before_run=sleep:60000")
        key = f"report:{report_id}"

        job_id, _, _, _ = self.wait_job_state(server.data_dir, key, ("running",),
                                              context=lambda: f"worker A log:\n{a.log_text()}")
        a.kill9()
        self.assertEqual(self.job(server.data_dir, key)[1:], ("running", 1, 0))
        self.assertEqual(self.report(server, owner, report_id)["status"], "pending")
        self.assertEqual(receiver.deliveries(), [])

        b = self.start_worker(server.data_dir, worker_env, name="B")
        done = self.wait_job_state(server.data_dir, key, ("done",),
                                   context=lambda: f"worker B log:\n{b.log_text()}")
        self.assertEqual(done, (job_id, "done", 2, 1))
        self.assert_report_ready_with_csv(server, owner, report_id)
        poll_until(lambda: receiver.deliveries("report.ready"), timeout=JOB_TIMEOUT,
                   message="report.ready delivered by worker B")
        self.wait_quiet(server.data_dir)
        delivery = self.assert_one_report_ready_delivery(server, owner, tenant_id, receiver, endpoint, report_id)
        self.assertEqual(delivery["attempts"], 1, delivery)

        self.assertEqual(self.stop(b), 0, b.log_text())
        self.assertEqual(server.stop(), 0, server.log_text())

    # -- 2. two schedulers, one schedule --

    def test_worker_listener_serves_health_ready_and_metrics(self):
        # jobs.worker_listen: the orchestrator's probes and Prometheus reach the worker (deploy/kubernetes).
        tmp = tempfile.mkdtemp(prefix="atrium-e2e-jobs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data_dir = os.path.join(tmp, "data")
        port = atrium_e2e.free_port()
        env = atrium_env(JOBS_WORKER_LISTEN=f"127.0.0.1:{port}", JOBS_HEARTBEAT_CRON="* * * * * *")
        migrated = run_cli(["migrate", "--data-dir", data_dir], env=env)
        self.assertEqual(migrated.returncode, 0, migrated.stderr)
        worker = self.start_worker(data_dir, env)
        self.assertEqual(atrium_e2e.http_request(port, "GET", "/health").json(), {"status": "ok"})
        ready = atrium_e2e.http_request(port, "GET", "/ready")
        self.assertEqual(ready.status, 200, ready)
        self.assertEqual(ready.json()["database"], "sqlite")
        # The worker's own job metrics: heartbeats run here, so they are counted here.
        def heartbeats_counted():
            text = atrium_e2e.http_request(port, "GET", "/metrics").text()
            return atrium_e2e.sample_value(atrium_e2e.parse_metrics(text), "atrium_jobs_processed_total",
                                           type="system.heartbeat", outcome="succeeded")
        poll_until(lambda: (heartbeats_counted() or 0) >= 1, timeout=JOB_TIMEOUT, interval=0.2,
                   message="a heartbeat counted in the worker's /metrics")
        text = atrium_e2e.http_request(port, "GET", "/metrics").text()
        samples = atrium_e2e.parse_metrics(text)
        self.assertEqual(atrium_e2e.sample_value(samples, "atrium_ready"), 1.0, text)
        self.assertGreaterEqual(atrium_e2e.sample_value(samples, "atrium_db_pool_max_connections", pool="main"), 1)
        self.assertGreater(atrium_e2e.sample_value(samples, "process_resident_memory_bytes"), 0)
        # Only the operations routes: the API is not served here.
        self.assertEqual(atrium_e2e.http_request(port, "GET", "/v1/projects").status, 404)
        worker.send_signal(signal.SIGTERM)
        self.assertEqual(worker.wait_exit(STOP_TIMEOUT), 0, worker.log_text())

    def test_two_workers_fire_each_cron_slot_once(self):
        tmp = tempfile.mkdtemp(prefix="atrium-e2e-jobs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data_dir = os.path.join(tmp, "data")
        env = atrium_env(JOBS_HEARTBEAT_CRON="* * * * * *")
        migrated = run_cli(["migrate", "--data-dir", data_dir], env=env)
        self.assertEqual(migrated.returncode, 0, migrated.stderr)

        workers = [self.start_worker(data_dir, env, name="W1"), self.start_worker(data_dir, env, name="W2")]
        logs = lambda: "\n".join(f"{w.name} log:\n{w.log_text()}" for w in workers)  # noqa: E731

        def heartbeat_slots():
            return [j[1] for j in self.jobs_of_type(data_dir, "system.heartbeat")]
        # About six seconds of slots fired while both run.
        try:
            poll_until(lambda: len(heartbeat_slots()) >= 7, timeout=JOB_TIMEOUT, interval=0.2,
                       message="seven heartbeat slots fired")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{logs()}") from None
        for w in workers:
            self.assertIsNone(w.proc.poll(), logs())

        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            self.assertEqual(w.wait_exit(STOP_TIMEOUT), 0, logs())

        # The leader gave up its scheduler lease on the way out.
        self.assertEqual(self.db_rows(data_dir, "SELECT holder FROM leases WHERE name = 'scheduler'"), [], logs())

        rows = self.jobs_of_type(data_dir, "system.heartbeat")
        prefix = "schedule:system.heartbeat:"
        keys = [r[1] for r in rows]
        self.assertTrue(all(k.startswith(prefix) for k in keys), keys)
        slots = sorted(int(k[len(prefix):]) for k in keys)
        self.assertGreaterEqual(len(slots), 4, slots)
        self.assertEqual(len(slots), len(set(slots)), f"a slot fired twice: {slots}")
        self.assertTrue(all(s % 1000 == 0 for s in slots), slots)
        expected = list(range(slots[0], slots[-1] + 1000, 1000))
        missing = sorted(set(expected) - set(slots))
        self.assertEqual(missing, [], f"slots skipped between the first and the last: {missing}\n"
                                      f"fired: {slots}\n{logs()}")
        # Every fired job ran, or (fired in the last moment before the stop) still waits in the queue.
        states = {r[2] for r in rows}
        self.assertLessEqual(states, {"done", "queued"}, rows)
        self.assertGreaterEqual(sum(1 for r in rows if r[2] == "done"), len(rows) - 2, rows)

    # -- 3. SIGTERM and the job in hand --

    def test_sigterm_lets_a_running_job_finish(self):
        env = atrium_env(JOBS_EMBEDDED=False)
        server = self.start_server(env=env)
        owner, _ = self.tenant_owner(server, env)
        worker = self.start_worker(server.data_dir, dict(env, ATRIUM_FAILPOINTS="jobs.before_run=sleep:3000",
                                                         ATRIUM_JOBS_SHUTDOWN_GRACE_MS="20000"))
        report_id = self.request_report(server, owner)
        key = f"report:{report_id}"
        job_id, _, _, _ = self.wait_job_state(server.data_dir, key, ("running",), timeout=JOB_TIMEOUT,
                                              context=worker.log_text)
        self.assertEqual(self.report(server, owner, report_id)["status"], "pending")

        worker.send_signal(signal.SIGTERM)
        self.assertEqual(worker.wait_exit(STOP_TIMEOUT), 0, worker.log_text())

        self.assertEqual(self.job(server.data_dir, key), (job_id, "done", 1, 1), worker.log_text())
        self.assert_report_ready_with_csv(server, owner, report_id)
        messages = [e.get("msg") for e in worker.log_entries()]
        self.assertIn("stopped", messages, worker.log_text())
        self.assertNotIn("jobs still running after jobs.shutdown_grace_ms; they run again after their lease",
                         messages, worker.log_text())
        self.assertEqual(server.stop(), 0, server.log_text())

    # -- 4. a receiver that is down, then up --

    def test_webhook_receiver_down_then_up(self):
        env = atrium_env(WEBHOOKS_RETRY_SCHEDULE="1s,1s,1s,1s,1s", WEBHOOKS_ALLOW_PRIVATE_TARGETS=True)
        server = self.start_server(env=env)
        owner, tenant_id = self.tenant_owner(server, env)
        port = free_port()  # nothing listens here yet
        url = f"http://127.0.0.1:{port}/hooks/atrium"
        endpoint = self.create_endpoint(server, owner, url, ["project.created"])

        project = self.expect(self.call(server, "POST", "/v1/projects", owner, {"name": "Apollo"}), 201).json()

        # At least one attempt failed against the closed port before the receiver comes up.
        def failed_attempt():
            log = self.deliveries(server, owner, endpoint["id"])
            return log if log and log[0]["attempts"] >= 1 else None
        try:
            first = poll_until(failed_attempt, timeout=JOB_TIMEOUT, message="a failed delivery attempt")
        except AssertionError as e:
            raise AssertionError(f"{e}; log:\n{server.log_text()}") from None
        self.assertEqual(len(first), 1, first)
        self.assertEqual(first[0]["status"], "pending", first)
        self.assertIsNotNone(first[0]["last_error"], first)

        receiver = self.start_receiver(port)
        try:
            poll_until(lambda: receiver.deliveries(), timeout=JOB_TIMEOUT, message="a delivery at the receiver")
            poll_until(lambda: self.deliveries(server, owner, endpoint["id"])[0]["status"] == "succeeded",
                       timeout=JOB_TIMEOUT, message="the delivery recorded as succeeded")
        except AssertionError as e:
            raise AssertionError(f"{e}; deliveries: {self.deliveries(server, owner, endpoint['id'])}; log:\n"
                                 f"{server.log_text()}") from None
        self.wait_quiet(server.data_dir)

        got = receiver.deliveries()
        self.assertEqual(len(got), 1, got)
        headers, body, event = got[0]
        self.assertEqual(event["type"], "project.created", event)
        self.assertEqual(event["tenant_id"], tenant_id, event)
        self.assertEqual(event["data"]["id"], project["id"], event)
        self.assertEqual(set(event), {"id", "type", "created", "tenant_id", "data"}, event)
        self.assertEqual(headers.get("atrium-event-id"), event["id"], headers)
        self.assertEqual(headers.get("atrium-event-type"), "project.created", headers)

        # Atrium-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
        signature = headers.get("atrium-signature", "")
        parts = dict(p.split("=", 1) for p in signature.split(",") if "=" in p)
        self.assertEqual(set(parts), {"t", "v1"}, signature)
        self.assertRegex(parts["t"], r"^\d+$")
        self.assertLess(abs(int(parts["t"]) - time.time()), 300, signature)
        expected = hmac.new(endpoint["secret"].encode(), parts["t"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        self.assertTrue(hmac.compare_digest(parts["v1"], expected), (signature, expected))
        wrong = hmac.new(b"not-the-secret", parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        self.assertNotEqual(parts["v1"], wrong)

        log = self.deliveries(server, owner, endpoint["id"])
        self.assertEqual(len(log), 1, log)
        self.assertEqual(log[0]["event_id"], event["id"], log)
        self.assertEqual(log[0]["status"], "succeeded", log)
        self.assertGreaterEqual(log[0]["attempts"], 2, log)
        self.assertEqual(log[0]["last_status_code"], 200, log)
        self.assertEqual(server.stop(), 0, server.log_text())


if __name__ == "__main__":
    unittest.main()
