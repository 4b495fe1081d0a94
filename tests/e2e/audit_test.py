"""The hash-chained audit log through the real binary on the embedded SQLite database: entries written by the API,
`atrium audit verify` and `atrium audit checkpoint`, and tampering by someone with write access to the database file
(who drops the append-only triggers first), each case on its own copy of the data directory."""

import json
import os
import re
import shutil
import sqlite3
import tempfile
import unittest

from atrium_e2e import AtriumServer, E2ETestCase, api_call, run_cli

ENV = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"}

_FINDING = re.compile(r"^TAMPERED chain (\S+) seq (\d+)(?: entry (\S+))?: (.+)$")
_SUMMARY = re.compile(r"^(\d+) chain\(s\), (\d+) entries checked: (intact|TAMPERING FOUND)$")


_call = api_call


def _expect(resp, status):
    if resp.status != status:
        raise AssertionError(f"expected {status}, got {resp!r}")
    return resp


def _sign_in(server, email, password, tenant=None):
    body = {"grant_type": "password", "email": email, "password": password}
    if tenant:
        body["tenant"] = tenant
    return _expect(_call(server, "POST", "/v1/auth/token", body=body), 200).json()["access_token"]


def _cli_ok(args):
    r = run_cli(args, env=ENV)
    if r.returncode != 0:
        raise AssertionError(f"atrium {' '.join(args)} exited with {r.returncode}\nstdout:\n{r.stdout}\n"
                             f"stderr:\n{r.stderr}")
    return r


class AuditChainTest(E2ETestCase):
    """One populated data directory for the class (cls.data_dir, never modified after setUpClass); each tampering
    case works on its own copy."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="atrium-e2e-audit-")
        try:
            cls._populate()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _populate(cls):
        cls.data_dir = os.path.join(cls.tmp, "data")
        _cli_ok(["migrate", "--data-dir", cls.data_dir])
        _cli_ok(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                 "--data-dir", cls.data_dir])
        server = AtriumServer(env=ENV, data_dir=cls.data_dir)
        try:
            server.start()
            root = _sign_in(server, "root@e2e.test", "root-password")
            tenants = {}
            for slug in ("acme", "globex"):
                created = _call(server, "POST", "/v1/admin/tenants", root,
                                {"slug": slug, "name": slug.title(), "owner_email": f"owner@{slug}.test",
                                 "owner_password": "owner-password"})
                tenants[slug] = _expect(created, 201).json()["id"]
            cls.tenant_id = tenants["acme"]
            cls.other_tenant_id = tenants["globex"]

            owner = _sign_in(server, "owner@acme.test", "owner-password", "acme")
            cls.project_ids = []
            for name in ("Apollo", "Gemini", "Mercury"):
                created = _call(server, "POST", "/v1/projects", owner, {"name": name})
                cls.project_ids.append(_expect(created, 201).json()["id"])
            _expect(_call(server, "PATCH", f"/v1/projects/{cls.project_ids[0]}", owner, {"name": "Apollo 11"}), 200)
            _expect(_call(server, "DELETE", f"/v1/projects/{cls.project_ids[1]}", owner), 204)

            other_owner = _sign_in(server, "owner@globex.test", "owner-password", "globex")
            _expect(_call(server, "POST", "/v1/projects", other_owner, {"name": "Hubble"}), 201)

            cls.listing = _expect(_call(server, "GET", "/v1/audit-logs?limit=100", owner), 200).json()
            # Stopped before anything reads the database file directly, so every later step sees a quiescent file.
            code = server.stop()
            if code != 0:
                raise AssertionError(f"atrium serve exited with {code}; log:\n{server.log_text()}")
        finally:
            server.close()

        cls.checkpoint = _cli_ok(["audit", "checkpoint", "--data-dir", cls.data_dir])
        cls.checkpoint_path = os.path.join(cls.tmp, "checkpoint.json")
        with open(cls.checkpoint_path, "w", encoding="utf-8") as f:
            f.write(cls.checkpoint.stdout)

    # -- helpers --

    def verify(self, data_dir, *args):
        """Runs `atrium audit verify`; returns (exit code, findings as (chain, seq, entry, problem), summary match)."""
        r = run_cli(["audit", "verify", "--data-dir", data_dir, *args], env=ENV)
        context = f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        lines = r.stdout.splitlines()
        self.assertTrue(lines, context)
        findings = []
        for line in lines[:-1]:
            m = _FINDING.match(line)
            self.assertIsNotNone(m, f"unexpected line {line!r}; {context}")
            findings.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
        summary = _SUMMARY.match(lines[-1])
        self.assertIsNotNone(summary, f"no summary line; {context}")
        self.assertEqual(summary.group(3), "intact" if not findings else "TAMPERING FOUND", context)
        return r.returncode, findings, summary, context

    def assertIntact(self, data_dir, *args):
        code, findings, summary, context = self.verify(data_dir, *args)
        self.assertEqual(code, 0, context)
        self.assertEqual(findings, [], context)
        return summary

    def assertOriginalIntact(self):
        summary = self.assertIntact(self.data_dir)
        self.assertEqual(int(summary.group(2)), self.total_entries())

    def copy_data_dir(self):
        tmp = tempfile.mkdtemp(prefix="atrium-e2e-audit-case-")
        self.addCleanup(shutil.rmtree, tmp, True)
        copy = os.path.join(tmp, "data")
        shutil.copytree(self.data_dir, copy)
        return copy

    def open_db(self, data_dir, drop_triggers=True):
        db = sqlite3.connect(os.path.join(data_dir, "atrium.db"), isolation_level=None)
        self.addCleanup(db.close)
        if drop_triggers:
            db.execute("DROP TRIGGER audit_logs_no_update")
            db.execute("DROP TRIGGER audit_logs_no_delete")
        return db

    def chain(self, db, chain_id):
        """[(seq, id, hash)] of a chain in seq order."""
        return db.execute("SELECT seq, id, hash FROM audit_logs WHERE chain_id = ? ORDER BY seq",
                          (chain_id,)).fetchall()

    def tenant_chain_length(self):
        return len(self.listing["data"])

    def total_entries(self):
        return sum(c["seq"] for c in json.loads(self.checkpoint.stdout)["chains"])

    def middle(self, db):
        entries = self.chain(db, self.tenant_id)
        self.assertEqual([e[0] for e in entries], list(range(1, self.tenant_chain_length() + 1)))
        mid = len(entries) // 2
        self.assertTrue(1 < mid < len(entries), entries)
        return entries, mid

    def tamper_action(self, data_dir):
        """Case a: the action of a middle entry of the tenant chain is rewritten. Returns (seq, id)."""
        db = self.open_db(data_dir)
        entries, mid = self.middle(db)
        entry_id = entries[mid - 1][1]
        changed = db.execute("UPDATE audit_logs SET action = 'project.viewed' WHERE id = ?", (entry_id,))
        self.assertEqual(changed.rowcount, 1)
        db.close()
        return mid, entry_id

    # -- the log as the API and the CLI show it --

    def test_api_lists_the_tenant_chain_newest_first(self):
        entries = self.listing["data"]
        self.assertIsNone(self.listing["next_cursor"])
        self.assertGreaterEqual(len(entries), 5, entries)
        self.assertEqual({e["chain"]["id"] for e in entries}, {self.tenant_id})
        self.assertEqual({e["tenant_id"] for e in entries}, {self.tenant_id})
        # Newest first: seq counts down to 1 without gaps, and each entry links to the hash of the one below it.
        self.assertEqual([e["chain"]["seq"] for e in entries], list(range(len(entries), 0, -1)))
        for newer, older in zip(entries, entries[1:]):
            self.assertEqual(newer["chain"]["prev_hash"], older["chain"]["hash"], (newer, older))
        self.assertEqual(entries[-1]["chain"]["prev_hash"], "")
        self.assertEqual(len({e["chain"]["hash"] for e in entries}), len(entries))
        apollo, gemini, mercury = self.project_ids
        self.assertEqual([(e["action"], e["resource"]["id"]) for e in entries[:5]],
                         [("project.deleted", gemini), ("project.updated", apollo), ("project.created", mercury),
                          ("project.created", gemini), ("project.created", apollo)])
        self.assertEqual(entries[1]["changes"], {"name": {"before": "Apollo", "after": "Apollo 11"}})

    def test_verify_reports_every_chain_intact(self):
        summary = self.assertIntact(self.data_dir)
        self.assertEqual(summary.group(1), "3")
        self.assertEqual(int(summary.group(2)), self.total_entries())
        self.assertIntact(self.data_dir, "--checkpoint", self.checkpoint_path)

    def test_checkpoint_records_the_head_of_every_chain(self):
        doc = json.loads(self.checkpoint.stdout)
        self.assertIsInstance(doc["created_at"], str)
        self.assertRegex(doc["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        heads = {c["chain_id"]: c for c in doc["chains"]}
        self.assertEqual(set(heads), {self.tenant_id, self.other_tenant_id, "platform"})
        newest = self.listing["data"][0]["chain"]
        self.assertEqual(heads[self.tenant_id], {"chain_id": self.tenant_id, "seq": newest["seq"],
                                                 "hash": newest["hash"]})
        self.assertGreater(heads["platform"]["seq"], 0)
        self.assertRegex(heads["platform"]["hash"], r"^[0-9a-f]{64}$")

    # -- tampering, each on its own copy --

    def test_triggers_refuse_update_and_delete(self):
        data_dir = self.copy_data_dir()
        db = self.open_db(data_dir, drop_triggers=False)
        with self.assertRaisesRegex(sqlite3.DatabaseError, "append-only"):
            db.execute("UPDATE audit_logs SET action = 'x' WHERE chain_id = ?", (self.tenant_id,))
        with self.assertRaisesRegex(sqlite3.DatabaseError, "append-only"):
            db.execute("DELETE FROM audit_logs WHERE chain_id = ?", (self.tenant_id,))
        self.assertEqual(len(self.chain(db, self.tenant_id)), self.tenant_chain_length())
        db.close()
        self.assertIntact(data_dir)

    def test_altered_entry_is_named(self):
        data_dir = self.copy_data_dir()
        seq, entry_id = self.tamper_action(data_dir)
        code, findings, _, context = self.verify(data_dir)
        self.assertEqual(code, 3, context)
        self.assertEqual([f[:3] for f in findings], [(self.tenant_id, seq, entry_id)], context)
        self.assertOriginalIntact()

    def test_removed_entry_is_found(self):
        data_dir = self.copy_data_dir()
        db = self.open_db(data_dir)
        entries, mid = self.middle(db)
        self.assertEqual(db.execute("DELETE FROM audit_logs WHERE id = ?", (entries[mid - 1][1],)).rowcount, 1)
        db.close()
        code, findings, _, context = self.verify(data_dir)
        self.assertEqual(code, 3, context)
        self.assertEqual([f[:2] for f in findings], [(self.tenant_id, mid)], context)
        self.assertIn("missing", findings[0][3], context)
        self.assertOriginalIntact()

    def test_reordered_entries_are_found(self):
        data_dir = self.copy_data_dir()
        db = self.open_db(data_dir)
        entries, mid = self.middle(db)
        first, second = entries[mid - 1][1], entries[mid][1]
        db.execute("BEGIN")
        db.execute("UPDATE audit_logs SET seq = -1 WHERE id = ?", (first,))
        db.execute("UPDATE audit_logs SET seq = ? WHERE id = ?", (mid, second))
        db.execute("UPDATE audit_logs SET seq = ? WHERE id = ?", (mid + 1, first))
        db.execute("COMMIT")
        self.assertEqual([e[1] for e in self.chain(db, self.tenant_id)][mid - 1:mid + 1], [second, first])
        db.close()
        code, findings, _, context = self.verify(data_dir)
        self.assertEqual(code, 3, context)
        self.assertEqual([f[:2] for f in findings], [(self.tenant_id, mid)], context)
        self.assertOriginalIntact()

    def test_truncation_with_a_fixed_head_is_found_only_against_a_checkpoint(self):
        data_dir = self.copy_data_dir()
        db = self.open_db(data_dir)
        entries = self.chain(db, self.tenant_id)
        n = len(entries)
        self.assertEqual(n, self.tenant_chain_length())
        db.execute("BEGIN")
        self.assertEqual(db.execute("DELETE FROM audit_logs WHERE id = ?", (entries[-1][1],)).rowcount, 1)
        fixed = db.execute("UPDATE audit_chain_heads SET seq = ?, hash = ? WHERE chain_id = ?",
                           (n - 1, entries[-2][2], self.tenant_id))
        self.assertEqual(fixed.rowcount, 1)
        db.execute("COMMIT")
        db.close()

        # The chain is internally consistent again: without outside evidence nothing is wrong.
        summary = self.assertIntact(data_dir)
        self.assertEqual(int(summary.group(2)), self.total_entries() - 1)
        # The checkpoint taken before still names the removed head.
        code, findings, _, context = self.verify(data_dir, "--checkpoint", self.checkpoint_path)
        self.assertEqual(code, 3, context)
        self.assertEqual([f[:2] for f in findings], [(self.tenant_id, n)], context)
        # Chains the attacker did not touch pass against the same checkpoint.
        self.assertIntact(data_dir, "--tenant", self.other_tenant_id, "--checkpoint", self.checkpoint_path)
        self.assertOriginalIntact()

    def test_tenant_option_checks_only_that_chain(self):
        data_dir = self.copy_data_dir()
        seq, entry_id = self.tamper_action(data_dir)
        for other in (self.other_tenant_id, "platform"):
            with self.subTest(tenant=other):
                summary = self.assertIntact(data_dir, "--tenant", other)
                self.assertEqual(summary.group(1), "1")
        code, findings, summary, context = self.verify(data_dir, "--tenant", self.tenant_id)
        self.assertEqual(code, 3, context)
        self.assertEqual(summary.group(1), "1", context)
        self.assertEqual([f[:3] for f in findings], [(self.tenant_id, seq, entry_id)], context)
        self.assertOriginalIntact()


if __name__ == "__main__":
    unittest.main()
