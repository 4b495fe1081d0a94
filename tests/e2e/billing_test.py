"""The billing run through the real binary, on the embedded SQLite database and on PostgreSQL: `atrium billing run`
killed with SIGKILL after the payment provider charged a batch but before the outcomes were recorded, then run
again: every subscription is invoiced once for the period, and every invoice is charged once at the provider.

The control database is read directly while the processes run (SQLite: <data_dir>/atrium.db; PostgreSQL: psql as
the test server's superuser), and written once to let a month pass for the subscriptions (the run reads the real
clock).
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atrium_e2e  # noqa: E402
from atrium_e2e import BINARY, E2ETestCase, child_env, in_ci, poll_until, run_cli, skip_or_fail, wait_for_binary  # noqa: E402
from postgres_test import PostgresTestCase  # noqa: E402

RUN_TIMEOUT = 120.0
SUBSCRIPTIONS = 12
BATCH = 5


def atrium_env(**settings):
    env = {k: None for k in os.environ if k.startswith(("ATRIUM_BILLING_", "ATRIUM_JOBS_", "ATRIUM_IDENTITY_"))
           or k == "ATRIUM_FAILPOINTS"}
    env["ATRIUM_IDENTITY_PASSWORD_COST"] = "minimum"
    for key, value in settings.items():
        env["ATRIUM_" + key.upper()] = "true" if value is True else "false" if value is False else str(value)
    return env


class KilledBillingRun:
    """The story, on whichever database the concrete class names: `database_args` for the binary, `count(sql)` and
    `write(sql, params)` on the control database."""

    def database_args(self, data_dir):
        raise NotImplementedError

    def count(self, data_dir, sql):
        raise NotImplementedError

    def let_a_month_pass(self, data_dir, ended):
        raise NotImplementedError

class BillingRunMixin(KilledBillingRun):

    def check_binary(self):
        try:
            wait_for_binary(timeout=60.0 if in_ci() else 5.0)
        except AssertionError:
            skip_or_fail(self, f"atrium binary not found: {BINARY} (set ATRIUM_BINARY)")
        if "billing" not in run_cli(["--help"]).stdout:
            skip_or_fail(self, f"{BINARY} has no `billing` subcommand")

    def call(self, server, method, path, token, body=None, tenant=None):
        headers = {"Authorization": f"Bearer {token}"}
        if tenant:
            headers["X-Tenant-ID"] = tenant
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return server.request(method, path, headers=headers, body=data)

    def expect(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        return resp.json()

    def test_a_killed_billing_run_resumes_without_billing_twice(self):
        env = atrium_env(JOBS_EMBEDDED=False, BILLING_RUN_CRON="")
        server = self.start_server(args=self.database_args(None), env=env)
        db_args = self.database_args(server.data_dir)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           *db_args], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        root = self.expect(server.request("POST", "/v1/auth/token", headers={"Content-Type": "application/json"},
                                          body=json.dumps({"grant_type": "password", "email": "root@e2e.test",
                                                           "password": "root-password"}).encode()),
                           200)["access_token"]
        self.expect(self.call(server, "POST", "/v1/plans", root,
                              {"code": "pro", "name": "Pro", "tier": "professional", "currency": "USD",
                               "interval": "monthly", "base_price": 4900}), 201)
        for i in range(SUBSCRIPTIONS):
            tenant = self.expect(self.call(server, "POST", "/v1/admin/tenants", root,
                                           {"slug": f"t{i}", "name": f"Tenant {i}"}), 201)["id"]
            self.expect(self.call(server, "PUT", "/v1/billing-account", root,
                                  {"legal_name": f"Tenant {i} Ltd", "email": f"billing@t{i}.test", "currency": "USD",
                                   "payment_method": "pm_card_visa"}, tenant), 200)
            sub = self.expect(self.call(server, "POST", "/v1/subscriptions", root, {"plan": "pro"}, tenant), 201)
            self.assertEqual(sub["status"], "active", sub)
        server.stop()
        data_dir = server.data_dir
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM simulated_charges"), SUBSCRIPTIONS)

        # A month passes for every subscription: its period ended a minute ago.
        self.let_a_month_pass(data_dir, int(time.time()) - 60)

        # The run charges a batch of BATCH and then waits at the failpoint before recording the outcomes; it is
        # killed while the second batch waits there.
        run_env = child_env(dict(env, ATRIUM_BILLING_RUN_BATCH=BATCH,
                                 ATRIUM_FAILPOINTS="billing.after_charge=sleep:4000"))
        proc = subprocess.Popen([BINARY, "billing", "run", "--quiet", *db_args], env=run_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        atrium_e2e._live_processes.append(proc)
        try:
            poll_until(lambda: self.count(data_dir, "SELECT COUNT(*) FROM simulated_charges") >= SUBSCRIPTIONS + 2 * BATCH,
                       timeout=RUN_TIMEOUT, message="the second batch charged")
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
            atrium_e2e._live_processes.remove(proc)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM simulated_charges"), SUBSCRIPTIONS + 2 * BATCH)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'"), BATCH,
                         "the killed batch's outcomes were not recorded")

        again = run_cli(["billing", "run", "--quiet", *db_args], env=env, timeout=RUN_TIMEOUT)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("renewed 2 subscription period(s)", again.stdout, again.stdout)

        # Once per subscription and period, once per invoice at the provider, every invoice paid.
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM invoices"), 2 * SUBSCRIPTIONS)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM invoices WHERE status = 'paid'"), 2 * SUBSCRIPTIONS)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM (SELECT subscription_id, period_start FROM invoices "
                                              "GROUP BY 1, 2 HAVING COUNT(*) > 1) AS d"), 0)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM simulated_charges"), 2 * SUBSCRIPTIONS)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM payment_attempts"), 2 * SUBSCRIPTIONS)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM payment_attempts WHERE status = 'succeeded'"),
                         2 * SUBSCRIPTIONS)
        third = run_cli(["billing", "run", "--quiet", *db_args], env=env, timeout=RUN_TIMEOUT)
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertIn("renewed 0 subscription period(s), 0 invoice(s)", third.stdout, third.stdout)
        self.assertEqual(self.count(data_dir, "SELECT COUNT(*) FROM simulated_charges"), 2 * SUBSCRIPTIONS)


if __name__ == "__main__":
    import unittest
    unittest.main()


class BillingRunTest(BillingRunMixin, E2ETestCase):
    """On the embedded SQLite database."""

    def setUp(self):
        self.check_binary()

    def database_args(self, data_dir):
        return [] if data_dir is None else ["--data-dir", data_dir]

    def count(self, data_dir, sql):
        db = sqlite3.connect(os.path.join(data_dir, "atrium.db"), timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA query_only = ON")
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def let_a_month_pass(self, data_dir, ended):
        db = sqlite3.connect(os.path.join(data_dir, "atrium.db"), timeout=10, isolation_level=None)
        try:
            db.execute("UPDATE subscriptions SET anchor = ?, cycle = 0, current_period_start = ? - 2592000, "
                       "current_period_end = ?", (ended, ended, ended))
        finally:
            db.close()


class BillingRunPostgresTest(BillingRunMixin, PostgresTestCase):
    """On PostgreSQL, in a database of its own (psql as the test server's superuser reads past row-level
    security)."""

    def setUp(self):
        super().setUp()
        self.check_binary()

    def database_args(self, data_dir):
        # The data directory still holds the key that seals the signing keys.
        return ["--database-url", self.url, *([] if data_dir is None else ["--data-dir", data_dir])]

    def count(self, data_dir, sql):
        return int(self.psql(sql, url=self.url).stdout.strip())

    def let_a_month_pass(self, data_dir, ended):
        self.psql(f"UPDATE subscriptions SET anchor = {ended}, cycle = 0, current_period_start = {ended} - 2592000, "
                  f"current_period_end = {ended}", url=self.url)
