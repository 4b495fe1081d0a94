"""`atrium tenant move` through the real binary, beside a running `atrium serve` on the embedded SQLite database:
a move killed with SIGKILL after each of its steps (held there by ATRIUM_FAILPOINTS) and run again, while a writer
and a reader use the tenant over HTTP all along. Every acknowledged write is there exactly once, reads never fail,
writes are refused only with 503 and Retry-After, and the audit log verifies.
"""

import os
import subprocess
import sys
import threading
import time
import unittest

# Also importable as tests.e2e.tenant_move_test, not only by discover -s.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atrium_e2e  # noqa: E402
from atrium_e2e import (  # noqa: E402
    BINARY, E2ETestCase, api_call, child_env, poll_until, run_cli, sign_in)

# Upper bound for a step to be reached (the binary may be an ASan build on a loaded 2-core machine).
STEP_TIMEOUT = 60.0
CACHE_TTL_MS = 300


def atrium_env(**settings):
    own = ("ATRIUM_TENANCY_", "ATRIUM_GATEWAY_", "ATRIUM_FAILPOINTS")
    env = {k: None for k in os.environ if k.startswith(own)}
    env["ATRIUM_IDENTITY_PASSWORD_COST"] = "minimum"
    env["ATRIUM_TENANCY_CACHE_TTL_MS"] = str(CACHE_TTL_MS)
    env["ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND"] = "0"  # the load is as fast as it goes
    for key, value in settings.items():
        env[key] = str(value)
    return env


class Load:
    """A writer creating projects (each with its own Idempotency-Key, sent again after a 503 until answered) and a
    reader listing them, each on its own thread, recording what was acknowledged and anything else that failed."""

    def __init__(self, server, token):
        self.server, self.token = server, token
        self.acknowledged, self.failures, self.refused = [], [], 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.write, daemon=True),
                        threading.Thread(target=self.read, daemon=True)]
        for t in self.threads:
            t.start()

    def write(self):
        n = 0
        while not self.stopping.is_set():
            key = f"load-{n}"
            try:
                r = api_call(self.server, "POST", "/v1/projects", self.token, {"name": key}, {"Idempotency-Key": key})
            except OSError as e:  # a refused connection would be a failure of serve, not of the move
                with self.lock:
                    self.failures.append(f"POST {e}")
                n += 1
                continue
            with self.lock:
                if r.status == 201:
                    self.acknowledged.append(r.json()["id"])
                    n += 1
                elif r.status == 503 and r.header("Retry-After"):
                    self.refused += 1
                    time.sleep(0.02)
                else:
                    self.failures.append(f"POST {r.status} {r.text()}")
                    n += 1

    def read(self):
        while not self.stopping.is_set():
            try:
                r = api_call(self.server, "GET", "/v1/projects?limit=5", self.token)
                ok = r.status == 200
                detail = f"GET {r.status} {r.text()}"
            except OSError as e:
                ok, detail = False, f"GET {e}"
            if not ok:
                with self.lock:
                    self.failures.append(detail)

    def count(self):
        with self.lock:
            return len(self.acknowledged)

    def wait_for_more(self, n):
        target = self.count() + n
        poll_until(lambda: self.count() >= target, STEP_TIMEOUT, message=f"{n} more acknowledged writes")

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)


class TenantMoveTest(E2ETestCase):
    def setUp(self):
        self.env = atrium_env()
        self.server = self.start_server(env=self.env)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", self.server.data_dir], env=self.env)
        self.assertEqual(created.returncode, 0, created.stderr)
        self.root = sign_in(self.server, "root@e2e.test", "root-password")
        r = api_call(self.server, "POST", "/v1/admin/tenants", self.root,
                     {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                      "owner_password": "owner-password"})
        self.assertEqual(r.status, 201, r)
        self.tenant_id = r.json()["id"]
        self.owner = sign_in(self.server, "owner@acme.test", "owner-password", "acme")

    def move_args(self, to):
        return ["tenant", "move", "--tenant", "acme", "--to", to, "--settle-ms", str(CACHE_TTL_MS), "--quiet",
                "--data-dir", self.server.data_dir]

    def kill_after(self, step, to):
        """Runs the move held after `step`, waits for its log line, and kills it with SIGKILL."""
        env = child_env(dict(self.env, ATRIUM_FAILPOINTS=f"tenant_move.after_{step}=sleep:600000"))
        proc = subprocess.Popen([BINARY, *self.move_args(to)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        reached = threading.Event()
        lines = []

        def watch():
            for line in proc.stderr:
                lines.append(line)
                if '"tenant move step done"' in line and f'"step":"{step}"' in line:
                    reached.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.assertTrue(reached.wait(STEP_TIMEOUT), f"step {step} not reached:\n{''.join(lines)}")
        proc.kill()
        proc.wait(timeout=30)
        watcher.join(timeout=30)
        proc.stderr.close()

    def admin_tenant(self):
        r = api_call(self.server, "GET", f"/v1/admin/tenants/{self.tenant_id}", self.root)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_a_move_killed_after_each_step_finishes_when_run_again_under_load(self):
        load = Load(self.server, self.owner)
        self.addCleanup(load.stop)
        load.wait_for_more(3)
        # shared -> database -> shared -> schema -> shared -> database: every step killed once, and on SQLite the
        # schema and database levels are one file, so each of these moves copies.
        left = "shared"
        for step, to, state in [("copy", "database", "copying"), ("sync", "shared", "frozen"),
                                ("switch", "schema", "switched"), ("remove", "shared", "switched"),
                                ("freeze", "database", "frozen")]:
            with self.subTest(step=step, to=to):
                self.kill_after(step, to)
                # The tenant shows the move where it stopped: its step, and the target (the level left once switched).
                self.assertEqual(self.admin_tenant()["move"],
                                 {"state": state, "level": left if state == "switched" else to})
                again = run_cli(self.move_args(to), env=self.env, timeout=120)
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertIn(f"to {to}:", again.stdout)
                tenant = self.admin_tenant()
                self.assertEqual((tenant["isolation"], tenant["move"]), (to, None))
                load.wait_for_more(3)  # writes resumed at the new level
                left = to
        load.stop()

        self.assertEqual(load.failures, [])
        listed, cursor = [], None
        while True:
            r = api_call(self.server, "GET", "/v1/projects?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                         self.owner)
            self.assertEqual(r.status, 200, r)
            listed += [p["id"] for p in r.json()["data"]]
            cursor = r.json().get("next_cursor")
            if not cursor:
                break
        self.assertEqual(sorted(listed), sorted(load.acknowledged))  # each once, nothing else
        # The old copies are gone: only the database-level file is left.
        files = [f for f in os.listdir(os.path.join(self.server.data_dir, "tenants")) if f.endswith(".db")]
        self.assertEqual(files, [f"{self.tenant_id}.db"])
        verify = run_cli(["audit", "verify", "--data-dir", self.server.data_dir], env=self.env)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        moved = api_call(self.server, "GET",
                         f"/v1/admin/audit-logs?tenant_id={self.tenant_id}&action=tenant.moved", self.root)
        self.assertEqual(moved.status, 200, moved)
        self.assertEqual(len(moved.json()["data"]), 5, moved.json())
        self.assertStillServing(self.server)


if __name__ == "__main__":
    unittest.main()
