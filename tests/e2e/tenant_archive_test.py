"""`atrium tenant export` and `atrium tenant import` through the real binary, beside a running `atrium serve` on the
embedded SQLite database: a tenant exported while it serves, deleted and purged over HTTP, refused back from an
altered archive or with another key (exit 2, nothing written), then imported at another level, after which every
view of it over HTTP is what it was, its owner signs in with the same password, and the audit log verifies.
"""

import base64
import os
import subprocess
import sys
import unittest

# Also importable as tests.e2e.tenant_archive_test, not only by discover -s.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atrium_e2e import E2ETestCase, api_call, password_grant, poll_until, run_cli, sign_in  # noqa: E402

CACHE_TTL_MS = 300
VIEWS = ["/v1/projects?limit=100", "/v1/webhook-endpoints", "/v1/email-settings", "/v1/billing-account",
         "/v1/users", "/v1/api-keys"]


def atrium_env():
    own = ("ATRIUM_TENANCY_", "ATRIUM_GATEWAY_")
    env = {k: None for k in os.environ if k.startswith(own)}
    env["ATRIUM_IDENTITY_PASSWORD_COST"] = "minimum"
    env["ATRIUM_TENANCY_CACHE_TTL_MS"] = str(CACHE_TTL_MS)
    env["ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND"] = "0"
    # The server stores API call counts and activity marks often, so some land while the import writes the tenant:
    # they must not (the import holds the tenant back until it is whole, and the read-back would differ).
    env["ATRIUM_GATEWAY_API_CALLS_REPORT_MS"] = "100"
    env["ATRIUM_ANALYTICS_ACTIVITY_FLUSH_MS"] = "100"
    return env


class TenantArchiveTest(E2ETestCase):
    def setUp(self):
        self.env = atrium_env()
        self.server = self.start_server(env=self.env)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", self.server.data_dir], env=self.env)
        self.assertEqual(created.returncode, 0, created.stderr)
        self.root = sign_in(self.server, "root@e2e.test", "root-password")
        r = api_call(self.server, "POST", "/v1/admin/tenants", self.root,
                     {"slug": "acme", "name": "Acme", "isolation": "schema", "owner_email": "owner@acme.test",
                      "owner_password": "owner-password"})
        self.assertEqual(r.status, 201, r)
        self.tenant_id = r.json()["id"]
        self.owner = sign_in(self.server, "owner@acme.test", "owner-password", "acme")
        self.key_file = os.path.join(self.server.data_dir, "archive.key")
        with open(self.key_file, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        self.archive = os.path.join(self.server.data_dir, "acme.archive")

    def views(self, token):
        out = {}
        for path in VIEWS:
            r = api_call(self.server, "GET", path, token)
            self.assertEqual(r.status, 200, f"{path}: {r}")
            out[path] = r.json()
        return out

    def cli(self, *args):
        return run_cli([*args, "--quiet", "--data-dir", self.server.data_dir], env=self.env, timeout=120)

    def test_export_purge_and_import_at_another_level_gives_the_tenant_back(self):
        for i in range(3):
            r = api_call(self.server, "POST", "/v1/projects", self.owner, {"name": f"project-{i}"})
            self.assertEqual(r.status, 201, r)
        for method, path, body, status in [
                ("POST", "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}, 201),
                ("PUT", "/v1/email-settings", {"from_name": "Acme Support", "reply_to": "help@acme.test"}, 200),
                ("PUT", "/v1/billing-account", {"legal_name": "Acme Holdings", "email": "ap@acme.test",
                                                "currency": "EUR", "payment_method": "pm_card_visa"}, 200),
                ("POST", "/v1/api-keys", {"name": "ci", "permissions": ["projects:read"]}, 201)]:
            r = api_call(self.server, method, path, self.owner, body)
            self.assertEqual(r.status, status, f"{path}: {r}")
        before = self.views(self.owner)

        # Signed with an Ed25519 key made by the openssl command (docs/data-protection.md); another signer's public
        # key for the refusal below.
        keys = {}
        for who in ("ours", "theirs"):
            private = os.path.join(self.server.data_dir, f"{who}.pem")
            keys[who] = os.path.join(self.server.data_dir, f"{who}.pub.pem")
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
            subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", keys[who]], check=True)
        exported = self.cli("tenant", "export", "--tenant", "acme", "--out", self.archive, "--key-file",
                            self.key_file, "--sign-key", os.path.join(self.server.data_dir, "ours.pem"))
        self.assertEqual(exported.returncode, 0, exported.stderr)
        self.assertIn("projects", exported.stdout)
        self.assertIn("signed", exported.stdout)
        with open(self.archive, "rb") as f:
            data = f.read()
        for plain in (b"project-0", b"Acme Holdings", b"ap@acme.test", b"owner@acme.test"):
            self.assertNotIn(plain, data)
        self.assertEqual(os.stat(self.archive).st_mode & 0o777, 0o600)

        r = api_call(self.server, "DELETE", f"/v1/admin/tenants/{self.tenant_id}?purge=true", self.root)
        self.assertEqual(r.status, 204, r)

        # An altered archive, or the right one under another key: refused, nothing written.
        altered = self.archive + ".altered"
        with open(altered, "wb") as f:
            f.write(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:])
        other_key = os.path.join(self.server.data_dir, "other.key")
        with open(other_key, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode())
        for archive, key, verify in [(altered, self.key_file, []), (self.archive, other_key, []),
                                     (self.archive, self.key_file, ["--verify-key", keys["theirs"]])]:
            refused = self.cli("tenant", "import", "--in", archive, "--key-file", key, *verify)
            self.assertEqual(refused.returncode, 2, refused.stdout + refused.stderr)
            self.assertIn("atrium:", refused.stderr)
        r = api_call(self.server, "GET", f"/v1/admin/tenants/{self.tenant_id}", self.root)
        self.assertEqual(r.json()["status"], "deleted", r)

        imported = self.cli("tenant", "import", "--in", self.archive, "--key-file", self.key_file, "--isolation",
                            "shared", "--verify-key", keys["ours"])
        self.assertEqual(imported.returncode, 0, imported.stderr)
        self.assertIn("whose signature verified", imported.stdout)
        self.assertIn("imported at the shared level", imported.stdout)
        self.assertIn("every table read back equal to the archive", imported.stdout)

        # serve picks the tenant up once its cache expires; the owner signs in with the same password.
        poll_until(lambda: password_grant(self.server, "owner@acme.test", "owner-password", "acme").status == 200,
                   30, message="the owner signing in to the imported tenant")
        owner = sign_in(self.server, "owner@acme.test", "owner-password", "acme")
        self.assertEqual(self.views(owner), before)
        tenant = api_call(self.server, "GET", f"/v1/admin/tenants/{self.tenant_id}", self.root).json()
        self.assertEqual((tenant["status"], tenant["isolation"]), ("active", "shared"))
        r = api_call(self.server, "POST", "/v1/projects", owner, {"name": "after"})
        self.assertEqual(r.status, 201, r)
        verify = run_cli(["audit", "verify", "--data-dir", self.server.data_dir], env=self.env)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertStillServing(self.server)


if __name__ == "__main__":
    unittest.main()
