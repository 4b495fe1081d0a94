"""Encryption at rest through the real binary on the embedded SQLite database (docs/data-protection.md): the API's
personal and secret fields never reach the data directory in the clear, `atrium keys data rotate-kek` and
`atrium keys data rotate` run beside a serving instance without a request failing, and a purge leaves a copy of the
data directory taken before it unreadable."""

import glob
import os
import re
import shutil
import tempfile
import threading

from atrium_e2e import E2ETestCase, api_call, run_cli, sign_in

# A rate limit the load never reaches: every answer must be the route's own.
ENV = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum", "ATRIUM_PROTECTION_KEY_CACHE_TTL_MS": "500",
       "ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND": "1000000", "ATRIUM_GATEWAY_DEFAULT_BURST": "1000000"}
SECRETS = ["Plaintext Legal Name AG", "plaintext-billing@acme.test", "Plaintextweg 9", "CHE999888777",
           "Plaintext Sender", "plaintext-reply@acme.test"]


def _expect(resp, status):
    if resp.status != status:
        raise AssertionError(f"expected {status}, got {resp!r}")
    return resp


def _cli(args):
    r = run_cli(args, env=ENV, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"atrium {' '.join(args)} exited with {r.returncode}\nstdout:\n{r.stdout}\n"
                             f"stderr:\n{r.stderr}")
    return r.stdout


def _data_bytes(data_dir):
    out = b""
    for path in glob.glob(os.path.join(data_dir, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out += f.read()
    return out


class DataProtectionTest(E2ETestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="atrium-e2e-protection-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")
        _cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
              "--data-dir", self.data_dir])
        self.server = self.start_server(env=ENV, data_dir=self.data_dir)
        self.root = sign_in(self.server, "root@e2e.test", "root-password")
        created = api_call(self.server, "POST", "/v1/admin/tenants", self.root,
                           {"slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
                            "owner_password": "owner-password", "isolation": "database"})
        self.tenant = _expect(created, 201).json()["id"]
        self.owner = sign_in(self.server, "owner@acme.test", "owner-password", "acme")
        account = {"legal_name": SECRETS[0], "email": SECRETS[1], "address": [SECRETS[2], "8000 Zurich"],
                   "country": "CH", "currency": "CHF", "tax_ids": [SECRETS[3]]}
        self.assertIn(api_call(self.server, "PUT", "/v1/billing-account", self.owner, account).status, (200, 201))
        _expect(api_call(self.server, "PUT", "/v1/email-settings", self.owner,
                         {"from_name": SECRETS[4], "reply_to": SECRETS[5]}), 200)
        endpoint = _expect(api_call(self.server, "POST", "/v1/webhook-endpoints", self.owner,
                                    {"url": "https://hooks.example/acme", "event_types": ["*"]}), 201).json()
        self.webhook_secret = endpoint["secret"]

    def read_back(self):
        account = _expect(api_call(self.server, "GET", "/v1/billing-account", self.owner), 200).json()
        self.assertEqual(account["legal_name"], SECRETS[0])
        self.assertEqual(account["tax_ids"], [SECRETS[3]])
        settings = _expect(api_call(self.server, "GET", "/v1/email-settings", self.owner), 200).json()
        self.assertEqual(settings["reply_to"], SECRETS[5])

    def test_fields_are_ciphertext_on_disk_and_keys_rotate_under_load(self):
        self.read_back()
        raw = _data_bytes(self.data_dir)
        self.assertIn(b"enc1:", raw)
        for s in SECRETS + [self.webhook_secret]:
            self.assertNotIn(s.encode(), raw, f"{s} is on disk in the clear")

        # Readers and writers keep going while the keys rotate in another process.
        errors, stop, done = [], threading.Event(), [0]

        def load():
            n = 0
            while not stop.is_set():
                n += 1
                done[0] = n
                r = api_call(self.server, "PUT", "/v1/email-settings", self.owner,
                             {"from_name": f"Sender {n}", "reply_to": SECRETS[5]})
                g = api_call(self.server, "GET", "/v1/billing-account", self.owner)
                if r.status != 200 or g.status != 200 or g.json()["legal_name"] != SECRETS[0]:
                    errors.append((r.status, r.text()[:300], g.status, g.text()[:300]))
        worker = threading.Thread(target=load)
        worker.start()
        try:
            out = _cli(["keys", "data", "rotate-kek", "--tenant", self.tenant, "--data-dir", self.data_dir])
            self.assertIn("key-encryption key version 2", out)
            out = _cli(["keys", "data", "rotate", "--tenant", self.tenant, "--data-dir", self.data_dir, "--quiet"])
            self.assertRegex(out, r"re-encrypted under data key 2")
        finally:
            stop.set()
            worker.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertGreater(done[0], 10, "the load ran beside the rotation")
        listing = _cli(["keys", "data", "list", "--tenant", self.tenant, "--data-dir", self.data_dir])
        self.assertEqual(re.findall(r"data key (\d+) (\w+) \(key-encryption key version (\d+)", listing),
                         [("2", "active", "2")], listing)
        self.read_back()
        # A rerun of the re-encryption has nothing left to do.
        out = _cli(["keys", "data", "reencrypt", "--tenant", self.tenant, "--data-dir", self.data_dir, "--quiet"])
        self.assertRegex(out, r" 0 re-encrypted under data key 2")

    def test_purge_leaves_a_backup_taken_before_it_unreadable(self):
        backup = os.path.join(self.tmp, "backup")
        self.server.stop()
        shutil.copytree(self.data_dir, backup, ignore=shutil.ignore_patterns("kms"))
        self.server = self.start_server(env=ENV, data_dir=self.data_dir)
        self.root = sign_in(self.server, "root@e2e.test", "root-password")
        _expect(api_call(self.server, "DELETE", f"/v1/admin/tenants/{self.tenant}?purge=true", self.root), 204)
        self.server.stop()
        # The backup's database files with today's key service: the tenant's key-encryption key is gone.
        restored = os.path.join(self.tmp, "restored")
        shutil.copytree(backup, restored)
        shutil.copytree(os.path.join(self.data_dir, "keys", "kms"), os.path.join(restored, "keys", "kms"))
        self.assertFalse(os.path.exists(os.path.join(restored, "keys", "kms", f"{self.tenant}.key")))
        self.server = self.start_server(env=ENV, data_dir=restored)
        owner = sign_in(self.server, "owner@acme.test", "owner-password", "acme")
        resp = api_call(self.server, "GET", "/v1/billing-account", owner)
        self.assertEqual(resp.status, 500, resp)
        self.assertNotIn(SECRETS[0], resp.text())
        self.assertIn("intact", _cli(["audit", "verify", "--data-dir", self.data_dir]))
