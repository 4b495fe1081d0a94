"""The web console in a real browser: `atrium serve` on SQLite loaded with the demo platform (a few tenants over a
few months, built through the real services), a super admin, and web/tests/console.test.mjs driving Debian's
Chromium with playwright-core against it (docs/console.md). The server's log is checked for sanitizer reports.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from atrium_e2e import REPO_ROOT, AtriumServer, E2ETestCase, run_cli, skip_or_fail, wait_for_binary  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WEB = os.path.join(REPO_ROOT, "web")


class ConsoleBrowserTest(E2ETestCase):

    def setUp(self):
        try:
            wait_for_binary(timeout=60.0)
        except AssertionError:
            skip_or_fail(self, "atrium binary not found (set ATRIUM_BINARY)")
        if not os.path.exists(CHROMIUM):
            skip_or_fail(self, f"{CHROMIUM} not found (Debian package chromium; scripts/setup.sh --test-tools)")
        if not shutil.which("node") or not os.path.isdir(os.path.join(WEB, "node_modules", "playwright-core")):
            skip_or_fail(self, "node or web/node_modules missing (scripts/setup.sh)")

    def test_console_in_chromium(self):
        env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"}
        server = AtriumServer(env=env)
        self.addCleanup(server.close)
        seeded = run_cli(["demo", "seed", "--tenants", "5", "--months", "3", "--seed", "11", "--quiet",
                          "--data-dir", server.data_dir], env=env, timeout=600)
        self.assertEqual(seeded.returncode, 0, seeded.stderr)
        created = run_cli(["admin", "create-superuser", "--email", "root@console.test", "--password",
                           "root-password", "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        server.start()
        run = subprocess.run(
            ["node", "--test", "--test-concurrency=1", "--test-reporter=spec", "tests/console.test.mjs"],
            cwd=WEB, capture_output=True, text=True, timeout=900,
            env={**os.environ, "ATRIUM_URL": f"http://127.0.0.1:{server.port}", "ROOT_EMAIL": "root@console.test",
                 "ROOT_PASSWORD": "root-password", "DEMO_PASSWORD": "demo-password", "CHROMIUM": CHROMIUM})
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        self.assertEqual(run.returncode, 0, "the browser tests failed (output above)")
        server.stop()
        server.raise_on_sanitizer_reports("the console's server")


if __name__ == "__main__":
    unittest.main()
