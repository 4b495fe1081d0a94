"""`atrium serve` and `atrium migrate` on PostgreSQL, including riding out a database restart.

Needs ATRIUM_TEST_POSTGRES_URL (and, for the restart test, ATRIUM_TEST_PG_BIN, ATRIUM_TEST_PG_DATA,
ATRIUM_TEST_PG_PORT, ATRIUM_TEST_PG_SOCKET_DIR). Skipped without them, unless ATRIUM_TEST_REQUIRE_SERVICES=1 (the test
command sets it): then it fails.
Every test works in a database of its own, created here and dropped afterwards.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from atrium_e2e import SCHEMA_VERSION_POSTGRES
import uuid
from urllib.parse import urlsplit, urlunsplit

from atrium_e2e import E2ETestCase, poll_until, run_cli, run_tool, skip_or_fail

PG_URL = os.environ.get("ATRIUM_TEST_POSTGRES_URL", "")


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def as_postgres(cmd):
    """Runs a PostgreSQL server command as the postgres user when we are root (pg_ctl refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PostgresTestCase(E2ETestCase):

    def setUp(self):
        if not PG_URL:
            skip_or_fail(self, "ATRIUM_TEST_POSTGRES_URL is not set")
        if shutil.which("psql") is None:
            skip_or_fail(self, "psql is not installed")
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-pg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_name = "e2e_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {self.db_name}")
        self.addCleanup(self.drop_database)
        self.url = with_database(PG_URL, self.db_name)

    def psql(self, sql, url=None, check=True):
        out = run_tool(["psql", url or PG_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed:\n{out.stderr}")
        return out

    def drop_database(self):
        # Runs after the server cleanup (cleanups are LIFO), so no connection should remain; FORCE covers leaks.
        # PostgreSQL may still be coming back up after the restart test: retry within a bound.
        poll_until(lambda: self.psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)",
                                     check=False).returncode == 0,
                   timeout=30, interval=0.2, message=f"dropping {self.db_name}")

    def serve(self, env=None):
        return self.start_server(args=["--database-url", self.url], env=env)


class PostgresServeTest(PostgresTestCase):

    def test_ready_on_postgres(self):
        server = self.serve()
        r = server.get("/ready")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["status"], "ready")
        self.assertEqual(body["database"], "postgres")
        self.assertEqual(body["schema_version"], SCHEMA_VERSION_POSTGRES)
        listening = [e for e in server.log_entries() if e.get("msg") == "listening"]
        self.assertEqual(listening[0].get("database"), "postgres", server.log_text())
        # The embedded SQLite file is not used.
        self.assertFalse(os.path.exists(os.path.join(server.data_dir, "atrium.db")))
        # migrate_on_start applied the schema into *this* database.
        self.assertEqual(self.psql("SELECT max(version) FROM schema_migrations", url=self.url).stdout.strip(), str(SCHEMA_VERSION_POSTGRES))
        self.assertEqual(server.stop(), 0, server.log_text())

    def test_migrate(self):
        first = run_cli(["migrate", "--database-url", self.url, "--data-dir", os.path.join(self.tmp, "data")])
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn(f"schema version {SCHEMA_VERSION_POSTGRES}", first.stdout)
        self.assertRegex(first.stdout, r"applied [1-9]\d* migration\(s\)")
        second = run_cli(["migrate", "--database-url", self.url, "--data-dir", os.path.join(self.tmp, "data")])
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertIn(f"applied 0 migration(s); schema version {SCHEMA_VERSION_POSTGRES}", second.stdout)

    def test_not_ready_until_migrated(self):
        server = self.serve(env={"ATRIUM_STORAGE_MIGRATE_ON_START": "false"})
        body = self.assertProblem(server.get("/ready"), 503)
        self.assertIn("migrate", body["detail"])
        out = run_cli(["migrate", "--database-url", self.url, "--data-dir", os.path.join(self.tmp, "data")])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"schema version {SCHEMA_VERSION_POSTGRES}", out.stdout)
        r = server.get("/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["database"], "postgres")

    def test_password_is_not_logged(self):
        parts = urlsplit(self.url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        user = parts.username or "postgres"
        url = urlunsplit((parts.scheme, f"{user}:pw-e2e-S3cret@{host}", parts.path, parts.query, ""))
        server = self.start_server(args=["--database-url", url])  # trust auth: the password is ignored
        self.assertEqual(server.get("/ready").status, 200)
        self.assertEqual(server.stop(), 0)
        self.assertNotIn("pw-e2e-S3cret", server.log_text())


class PostgresRestartTest(PostgresTestCase):

    def setUp(self):
        super().setUp()
        self.pg_bin = os.environ.get("ATRIUM_TEST_PG_BIN", "")
        self.pg_data = os.environ.get("ATRIUM_TEST_PG_DATA", "")
        self.pg_port = os.environ.get("ATRIUM_TEST_PG_PORT", "")
        self.pg_socket_dir = os.environ.get("ATRIUM_TEST_PG_SOCKET_DIR", "")
        if not (self.pg_bin and self.pg_data and self.pg_port and self.pg_socket_dir):
            skip_or_fail(self, "ATRIUM_TEST_PG_BIN/_DATA/_PORT/_SOCKET_DIR are not all set")

    def pg_ctl(self, *args):
        cmd = as_postgres([os.path.join(self.pg_bin, "pg_ctl"), "-D", self.pg_data, *args])
        return run_tool(cmd, timeout=90)

    def stop_postgres(self):
        out = self.pg_ctl("-m", "fast", "-w", "stop")
        if out.returncode != 0:
            raise AssertionError(f"pg_ctl stop failed:\n{out.stdout}\n{out.stderr}")

    def start_postgres(self):
        options = (f"-p {self.pg_port} -k {self.pg_socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        log = os.path.join(self.pg_data, "..", "log")
        out = self.pg_ctl("-l", log, "-w", "start", "-o", options)
        if out.returncode != 0:
            raise AssertionError(f"pg_ctl start failed:\n{out.stdout}\n{out.stderr}")

    def postgres_running(self):
        return self.pg_ctl("status").returncode == 0

    def test_ready_follows_a_database_restart(self):
        server = self.serve()
        r = server.get("/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["database"], "postgres")

        stopped = False
        try:
            self.stop_postgres()
            stopped = True

            def not_ready():
                resp = server.get("/ready", timeout=30)
                return resp if resp.status == 503 else None

            resp = poll_until(not_ready, timeout=30, interval=0.1, message="/ready answering 503 with the "
                                                                          "database down")
            self.assertProblem(resp, 503)
            # Liveness does not depend on the database.
            self.assertEqual(server.get("/health").status, 200)
        finally:
            # Always bring the shared PostgreSQL back, even when an assertion above failed.
            if stopped or not self.postgres_running():
                self.start_postgres()

        def ready_again():
            resp = server.get("/ready", timeout=30)
            return resp if resp.status == 200 else None

        resp = poll_until(ready_again, timeout=30, interval=0.1,
                          message="/ready answering 200 after PostgreSQL came back (same atrium process)")
        self.assertEqual(resp.json()["database"], "postgres")
        self.assertIsNone(server.proc.poll(), "atrium exited while the database was down")
        self.assertEqual(server.stop(), 0, server.log_text())


if __name__ == "__main__":
    unittest.main()
