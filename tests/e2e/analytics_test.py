"""Product analytics through the real binary (docs/analytics.md): `atrium serve` stores its own activity marks on
its own schedule (analytics.activity_flush_ms), so a member who signed in and made requests counts as an active user
of the day without anyone flushing by hand; product events sent with an API key show up in the product metrics and
the real-time counters; and what is pending when the server stops with SIGTERM is stored on the way out.
"""

import json
import os
import sqlite3
import sys
import unittest
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atrium_e2e import E2ETestCase, poll_until, run_cli, skip_or_fail, wait_for_binary  # noqa: E402


class AnalyticsTest(E2ETestCase):

    def setUp(self):
        try:
            wait_for_binary(timeout=60.0)
        except AssertionError:
            skip_or_fail(self, "atrium binary not found (set ATRIUM_BINARY)")

    def call(self, server, method, path, token=None, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return server.request(method, path, headers=headers, body=data, timeout=30.0)

    def expect(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        return resp.json()

    def test_activity_is_stored_on_schedule_and_events_reach_the_metrics(self):
        env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum", "ATRIUM_ANALYTICS_ACTIVITY_FLUSH_MS": "200"}
        server = self.start_server(env=env)
        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        root = self.expect(self.call(server, "POST", "/v1/auth/token", body={
            "grant_type": "password", "email": "root@e2e.test", "password": "root-password"}), 200)["access_token"]
        self.expect(self.call(server, "POST", "/v1/admin/tenants", root, {
            "slug": "acme", "name": "Acme", "owner_email": "owner@acme.test", "owner_password": "owner-password"}),
            201)
        owner = self.expect(self.call(server, "POST", "/v1/auth/token", body={
            "grant_type": "password", "email": "owner@acme.test", "password": "owner-password", "tenant": "acme"}),
            200)["access_token"]
        key = self.expect(self.call(server, "POST", "/v1/api-keys", owner,
                                    {"name": "product", "permissions": ["analytics:write"]}), 201)["secret"]
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        accepted = self.expect(self.call(server, "POST", "/v1/events", key, {"events": [
            {"type": "feature.used", "user_id": "u1", "properties": {"feature": "export"}, "idempotency_key": "e1",
             "timestamp": stamp},
            {"type": "nps.response", "user_id": "u1", "value": 9, "idempotency_key": "e2", "timestamp": stamp},
            {"type": "nps.response", "user_id": "u2", "value": 4, "idempotency_key": "e3", "timestamp": stamp},
        ]}), 202)
        self.assertEqual(accepted["accepted"], 3, accepted)

        today = now.strftime("%Y-%m-%d")
        tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d")
        path = f"/v1/analytics/product?from={today}&to={tomorrow}"

        def three_active():
            # u1, u2 and the owner, whose sign-in and requests the server marks on its own schedule.
            return self.expect(self.call(server, "GET", path, owner), 200)["dau"] == 3
        poll_until(three_active, timeout=30, message="the owner's activity stored by the server")
        metrics = self.expect(self.call(server, "GET", path, owner), 200)
        self.assertEqual(metrics["nps"]["score"], 0.0, metrics)  # one promoter, one detractor
        self.assertEqual(metrics["feature_adoption"], [{"feature": "export", "users": 1,
                                                        "adoption": 1 / 3}], metrics)
        realtime = self.expect(self.call(server, "GET", "/v1/analytics/realtime?minutes=5", owner), 200)
        self.assertEqual(realtime["totals"].get("nps.response"), 2, realtime)
        self.assertEqual(realtime["totals"].get("user.signed_in"), 1, realtime)

        # A sign-in right before SIGTERM is stored by the shutdown's last flush.
        self.expect(self.call(server, "POST", "/v1/auth/token", body={
            "grant_type": "password", "email": "owner@acme.test", "password": "owner-password", "tenant": "acme"}),
            200)
        self.assertEqual(server.stop(), 0, server.log_text())
        server.start()
        owner = self.expect(self.call(server, "POST", "/v1/auth/token", body={
            "grant_type": "password", "email": "owner@acme.test", "password": "owner-password", "tenant": "acme"}),
            200)["access_token"]
        summary = self.expect(self.call(
            server, "GET", f"/v1/usage/summary?metric=event:user.signed_in&aggregation=count"
                           f"&from={today}T00:00:00Z&to={tomorrow}T00:00:00Z", owner), 200)
        self.assertGreaterEqual(summary["data"][0]["value"], 2, summary)

        # The warehouse, loaded by hand once the server stopped (so nothing arrives between the runs): the product
        # events of today per user, the seed's tenant_metrics, and a second run changing nothing.
        self.assertEqual(server.stop(), 0, server.log_text())
        etl = run_cli(["analytics", "etl", "--quiet", "--data-dir", server.data_dir], env=env)
        self.assertEqual(etl.returncode, 0, etl.stderr)
        self.assertIn("loaded", etl.stdout)
        warehouse = os.path.join(server.data_dir, "warehouse.db")
        self.assertTrue(os.path.isfile(warehouse), "the warehouse is not at DATA_DIR/warehouse.db")

        def tables():
            with sqlite3.connect(warehouse) as db:
                return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                        for t in ("fact_product_events_daily", "tenant_metrics", "dim_user", "dim_tenant")}
        first = tables()
        key = int(today.replace("-", ""))
        nps = [r for r in first["fact_product_events_daily"] if r[0] == key and r[2] == "nps.response"]
        self.assertEqual(sorted((r[3], r[4], r[5]) for r in nps), [("u1", 1, 9), ("u2", 1, 4)], nps)
        acme = [r for r in first["tenant_metrics"] if r[0] == key]
        self.assertEqual(len(acme), 1, first["tenant_metrics"])
        self.assertGreaterEqual(acme[0][5], 3, acme)  # active users: u1, u2 and the owner
        again = run_cli(["analytics", "etl", "--quiet", "--data-dir", server.data_dir], env=env)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(tables(), first)
        bad = run_cli(["analytics", "etl", "--from", "yesterday", "--data-dir", server.data_dir], env=env)
        self.assertEqual(bad.returncode, 2, bad.stderr)


if __name__ == "__main__":
    unittest.main()
