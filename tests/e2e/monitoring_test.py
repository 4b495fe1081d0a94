"""Monitoring end to end: a real Prometheus (Debian's) scrapes `atrium serve` on the private PostgreSQL and Prometheus's
postgres_exporter, evaluates the seed's `saas_alerts` group from deploy/prometheus/rules/atrium.rules.yml, and the
test makes HighErrorRate go pending, then firing, then resolved, read from Prometheus's own HTTP API.

The 5xx come from a real fault: a gateway route whose upstream does not listen (502, then 503 once its circuit
opens). Time is compressed, the only change made to the rules: windows of 5m become 15s, `for: 5m` becomes 5s,
and the group is evaluated every second (Prometheus scrapes every second too)."""

import json
import os
import shutil
import subprocess
import threading
import unittest
import urllib.parse
import urllib.request

import yaml

from atrium_e2e import (REPO_ROOT, child_env, free_port, http_request, poll_until, require_tool, run_tool,
                        skip_or_fail)
from postgres_test import PostgresTestCase

RULES = os.path.join(REPO_ROOT, "deploy", "prometheus", "rules", "atrium.rules.yml")


def compressed_rules(db_name):
    """The saas_alerts group with time compressed, and LowDatabaseConnections on this test's database."""
    with open(RULES) as f:
        groups = yaml.safe_load(f)["groups"]
    group = next(g for g in groups if g["name"] == "saas_alerts")
    group["interval"] = "1s"
    for rule in group["rules"]:
        expr = rule["expr"].replace("[5m]", "[15s]")
        if rule["alert"] == "LowDatabaseConnections":
            expr = expr.replace('datname="atrium"', f'datname="{db_name}"')
        assert expr != rule["expr"] or rule["alert"] == "HighChurnRisk", rule["alert"]
        rule["expr"] = expr
        rule["for"] = "5s"
    return {"groups": [group]}


class Process:
    def __init__(self, cmd, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


class MonitoringTest(PostgresTestCase):

    def setUp(self):
        super().setUp()
        self.prometheus = require_tool(self, "prometheus")
        self.exporter = shutil.which("prometheus-postgres-exporter")
        if self.exporter is None:
            skip_or_fail(self, "prometheus-postgres-exporter is not installed (scripts/setup.sh --test-tools)")

    def spawn(self, name, cmd, env=None):
        p = Process(cmd, child_env(env), os.path.join(self.tmp, name + ".log"))
        self.addCleanup(p.close)
        return p

    def prom(self, path, **params):
        url = f"http://127.0.0.1:{self.prom_port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def alert_state(self, name):
        for alert in self.prom("/api/v1/alerts")["alerts"]:
            if alert["labels"]["alertname"] == name:
                return alert["state"]
        return "inactive"

    def test_high_error_rate_goes_pending_firing_and_resolved(self):
        # Atrium on PostgreSQL, with a gateway route to an upstream that is not there.
        dead_port = free_port()
        routes = os.path.join(self.tmp, "routes.toml")
        with open(routes, "w") as f:
            f.write(f'[clusters.gone]\nendpoints = ["127.0.0.1:{dead_port}"]\nattempts = 1\nconnect_timeout_ms = 200\n'
                    '[[routes]]\nname = "gone"\npath_prefix = "/gone"\ncluster = "gone"\naccess = "open"\n')
        server = self.start_server(args=["--database-url", self.url], env={
            "ATRIUM_PROXY_ROUTES_FILE": routes,
            "ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND": "1000000",
            "ATRIUM_GATEWAY_DEFAULT_BURST": "1000000"})

        exporter_port = free_port()
        exporter = self.spawn("exporter", [self.exporter, f"--web.listen-address=127.0.0.1:{exporter_port}"],
                              env={"DATA_SOURCE_NAME": self.url + ("&" if "?" in self.url else "?") + "sslmode=disable"})

        rules = os.path.join(self.tmp, "rules.yml")
        with open(rules, "w") as f:
            yaml.safe_dump(compressed_rules(self.db_name), f, sort_keys=False)
        promtool = shutil.which("promtool")
        if promtool:
            check = run_tool([promtool, "check", "rules", rules], timeout=60)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
                "rule_files": [rules],
                "scrape_configs": [
                    {"job_name": "atrium-api", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]},
                    {"job_name": "postgres", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
                ]}, f, sort_keys=False)
        self.prom_port = free_port()
        prometheus = self.spawn("prometheus", [
            self.prometheus, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(self.tmp, 'tsdb')}",
            f"--web.listen-address=127.0.0.1:{self.prom_port}", "--log.level=warn"])

        def targets_up():
            try:
                up = self.prom("/api/v1/query", query="up")["result"]
            except OSError:
                return False
            return {r["metric"]["job"] for r in up if r["value"][1] == "1"} == {"atrium-api", "postgres"}
        try:
            poll_until(targets_up, timeout=90, interval=0.5, message="both targets up in Prometheus")
        except AssertionError:
            raise AssertionError("targets not up\nprometheus:\n" + prometheus.text() + "\nexporter:\n" + exporter.text())

        # postgres_exporter's pg_stat_database_numbackends reaches Prometheus for this test's database, and the
        # seed's LowDatabaseConnections rule evaluates without error on it.
        backends = poll_until(lambda: self.prom("/api/v1/query",
                                                query=f'pg_stat_database_numbackends{{datname="{self.db_name}"}}')
                              ["result"], timeout=60, interval=0.5, message="numbackends of the test database")
        self.assertGreaterEqual(float(backends[0]["value"][1]), 1)

        stop = threading.Event()
        failing = threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    http_request(server.port, "GET", "/gone/x" if failing.is_set() else "/health", timeout=5)
                except OSError:
                    pass
        workers = [threading.Thread(target=traffic, daemon=True) for _ in range(2)]
        for w in workers:
            w.start()
        self.addCleanup(lambda: (stop.set(), [w.join(10) for w in workers]))

        # Healthy traffic: the ratio is 0, and the rule has evaluated it.
        poll_until(lambda: self.prom("/api/v1/query", query='sum(rate(http_requests_total{route="/health"}[15s])) > 0')
                   ["result"], timeout=60, interval=0.5, message="healthy traffic seen by Prometheus")
        self.assertEqual(self.alert_state("HighErrorRate"), "inactive")

        # Every request fails: pending first (the `for` has not passed), then firing.
        failing.set()
        seen = []

        def state_is(wanted):
            state = self.alert_state("HighErrorRate")
            if not seen or seen[-1] != state:
                seen.append(state)
            return state == wanted
        poll_until(lambda: state_is("firing"), timeout=120, interval=0.2, message="HighErrorRate firing")
        self.assertEqual([s for s in seen if s != "inactive"][:2], ["pending", "firing"], seen)
        firing = next(a for a in self.prom("/api/v1/alerts")["alerts"]
                      if a["labels"]["alertname"] == "HighErrorRate")
        self.assertEqual(firing["labels"]["severity"], "critical")
        self.assertRegex(firing["annotations"]["description"], r"^Error rate is \d+(\.\d+)?%$")
        self.assertGreater(float(firing["value"]), 0.05)
        statuses = {r["metric"]["status"] for r in self.prom(
            "/api/v1/query", query='http_requests_total{route="gone"}')["result"]}
        self.assertTrue(statuses and all(s.startswith("5") for s in statuses), statuses)

        # The fault goes away: the alert resolves (leaves the list of active alerts).
        failing.clear()
        poll_until(lambda: state_is("inactive"), timeout=120, interval=0.2, message="HighErrorRate resolved")
        self.assertEqual(seen[-1], "inactive")

        # Prometheus kept the history: ALERTS had the alert both pending and firing.
        states = {r["metric"]["alertstate"] for r in self.prom(
            "/api/v1/query", query='max_over_time(ALERTS{alertname="HighErrorRate"}[10m])')["result"]}
        self.assertEqual(states, {"pending", "firing"})
        # The Grafana dashboard's queries are valid PromQL on these series; the ones about the API have data.
        with open(os.path.join(REPO_ROOT, "deploy", "grafana", "atrium.json")) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                result = self.prom("/api/v1/query", query=target["expr"].replace("$__rate_interval", "15s"))["result"]
                if panel["title"] in ("Requests per second by route", "Ready instances", "Database connections",
                                      "Latency p50 / p99"):
                    self.assertTrue(result, panel["title"])
        rule_health = {r["name"]: r["health"] for g in self.prom("/api/v1/rules")["groups"] for r in g["rules"]}
        self.assertEqual(rule_health, {"HighErrorRate": "ok", "HighChurnRisk": "ok", "LowDatabaseConnections": "ok"})


if __name__ == "__main__":
    unittest.main()
