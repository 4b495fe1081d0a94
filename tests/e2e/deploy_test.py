"""deploy/: the Kubernetes manifests render with kustomize and validate against the Kubernetes (and Prometheus
operator) API schemas; they carry the seed's numbers (Deployment, HorizontalPodAutoscaler, probes); the pods' grace
periods outlast Atrium's drains; the ConfigMap is a configuration this build accepts; the alert rules pass promtool's
checks and unit tests, and the operator's PrometheusRule holds exactly those rules."""

import glob
import os
import re
import subprocess
import tempfile
import tomllib
import unittest

import yaml

from atrium_e2e import REPO_ROOT, require_tool, run_cli, run_tool, skip_or_fail, wait_for_binary

DEPLOY = os.path.join(REPO_ROOT, "deploy")
CHECK = os.path.join(DEPLOY, "check")
KUSTOMIZE = os.path.join(CHECK, "node_modules", "@install-binary", "kustomize-linux-x64", "kustomize-linux-x64")
OVERLAYS = ("small", "production")

# The seed's HorizontalPodAutoscaler spec ("Infrastructure → Horizontal Pod Autoscaling"), target renamed.
SEED_HPA_SPEC = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "atrium-api"},
    "minReplicas": 3,
    "maxReplicas": 20,
    "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Resource",
         "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}},
    ],
    "behavior": {
        "scaleDown": {"stabilizationWindowSeconds": 300,
                      "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
        "scaleUp": {"stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30},
                                 {"type": "Pods", "value": 4, "periodSeconds": 30}]},
    },
}


def render(overlay):
    out = run_tool([KUSTOMIZE, "build", os.path.join(DEPLOY, "kubernetes", "overlays", overlay)], timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"kustomize build {overlay} failed:\n{out.stderr}")
    return out.stdout


def objects(overlay):
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(render(overlay)) if o}


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


class ManifestTest(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(KUSTOMIZE):
            skip_or_fail(self, "deploy/check/node_modules is missing: run scripts/setup.sh --test-tools")
        self.node = require_tool(self, "node")

    def test_every_object_validates_against_the_api_schemas(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                out = run_tool([self.node, os.path.join(CHECK, "validate.mjs")], input_text=render(overlay),
                               timeout=120)
                self.assertEqual(out.returncode, 0, f"{overlay}:\n{out.stdout}{out.stderr}")
                kinds = {line.split()[2] for line in out.stdout.splitlines() if line.startswith("ok")}
                for kind in ("Deployment", "HorizontalPodAutoscaler", "Service", "ConfigMap", "Job",
                             "PodDisruptionBudget", "NetworkPolicy"):
                    self.assertIn(kind, kinds, out.stdout)

    def test_the_validator_refuses_a_broken_object(self):
        # A validator that passes everything would pass the test above too.
        broken = render("production").replace("averageUtilization: 70", "averageUtilization: seventy", 1)
        out = run_tool([self.node, os.path.join(CHECK, "validate.mjs")], input_text=broken, timeout=120)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("FAIL autoscaling/v2 HorizontalPodAutoscaler atrium-api-hpa", out.stdout)
        unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
        out = run_tool([self.node, os.path.join(CHECK, "validate.mjs")], input_text=unknown, timeout=60)
        self.assertEqual(out.returncode, 1, out.stdout)

    def test_production_has_the_seeds_deployment_and_autoscaler(self):
        objs = objects("production")
        self.assertEqual(objs[("HorizontalPodAutoscaler", "atrium-api-hpa")]["spec"], SEED_HPA_SPEC)
        api = objs[("Deployment", "atrium-api")]
        self.assertEqual(api["spec"]["replicas"], 5)
        c = container(api)
        self.assertEqual(c["ports"][0]["containerPort"], 3000)
        self.assertEqual(c["resources"], {"requests": {"memory": "512Mi", "cpu": "500m"},
                                          "limits": {"memory": "1Gi", "cpu": "1000m"}})
        self.assertEqual(c["livenessProbe"], {"httpGet": {"path": "/health", "port": 3000},
                                              "initialDelaySeconds": 30, "periodSeconds": 10})
        self.assertEqual(c["readinessProbe"], {"httpGet": {"path": "/ready", "port": 3000},
                                               "initialDelaySeconds": 5, "periodSeconds": 5})
        # The seed's DATABASE_URL from the db-credentials Secret's `url`, as Atrium's storage.database_url.
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["ATRIUM_STORAGE_DATABASE_URL"]["valueFrom"],
                         {"secretKeyRef": {"name": "db-credentials", "key": "url"}})
        self.assertIn(("PrometheusRule", "atrium"), objs)
        self.assertIn(("ServiceMonitor", "atrium"), objs)

    def test_small_overlay_scales_down(self):
        objs = objects("small")
        hpa = objs[("HorizontalPodAutoscaler", "atrium-api-hpa")]["spec"]
        self.assertEqual((hpa["minReplicas"], hpa["maxReplicas"]), (2, 4))
        self.assertEqual(hpa["behavior"], SEED_HPA_SPEC["behavior"])
        self.assertEqual(objs[("Deployment", "atrium-worker")]["spec"]["replicas"], 1)
        self.assertNotIn(("PrometheusRule", "atrium"), objs)

    def test_pods_outlast_the_drain_and_migrations_run_in_the_job(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objs = objects(overlay)
                config = tomllib.loads(objs[("ConfigMap", "atrium-config")]["data"]["atrium.toml"])
                self.assertIs(config["storage"]["migrate_on_start"], False)
                self.assertIs(config["jobs"]["embedded"], False)
                api = objs[("Deployment", "atrium-api")]["spec"]["template"]["spec"]
                pause = int(api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
                self.assertGreater(api["terminationGracePeriodSeconds"],
                                   pause + config["server"]["drain_timeout_ms"] / 1000)
                self.assertEqual(api["containers"][0]["args"][0], "serve")
                worker = objs[("Deployment", "atrium-worker")]["spec"]["template"]["spec"]
                self.assertGreater(worker["terminationGracePeriodSeconds"], config["jobs"]["shutdown_grace_ms"] / 1000)
                w = worker["containers"][0]
                self.assertEqual(w["args"][0], "worker")
                port = int(config["jobs"]["worker_listen"].rsplit(":", 1)[1])
                self.assertEqual(w["readinessProbe"]["httpGet"], {"path": "/ready", "port": port})
                self.assertEqual(w["livenessProbe"]["httpGet"], {"path": "/health", "port": port})
                job = objs[("Job", "atrium-migrate")]["spec"]["template"]["spec"]
                self.assertEqual(job["containers"][0]["args"][0], "migrate")
                for spec in (api, worker, job):
                    self.assertIs(spec["securityContext"]["runAsNonRoot"], True)
                    self.assertIs(spec["automountServiceAccountToken"], False)

    def test_rollout_migrates_first_then_replaces_the_pods_with_the_image(self):
        # rollout.sh against a stand-in kubectl that records its calls and keeps what it was asked to apply.
        with tempfile.TemporaryDirectory() as tmp:
            calls = os.path.join(tmp, "calls")
            fake = os.path.join(tmp, "kubectl")
            with open(fake, "w") as f:
                f.write('#!/bin/sh\necho "$*" >> "$KUBECTL_CALLS"\n'
                        'if [ "$1" = apply ]; then cp "$3" "$KUBECTL_CALLS.yaml"; fi\n')
            os.chmod(fake, 0o755)
            env = dict(os.environ, PATH=tmp + os.pathsep + os.environ["PATH"], KUBECTL_CALLS=calls)
            out = subprocess.run(["bash", os.path.join(DEPLOY, "kubernetes", "rollout.sh"),
                                  os.path.join(DEPLOY, "kubernetes", "overlays", "production"),
                                  "registry.internal:5000/atrium:9.9.9"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stdout)
            with open(calls) as f:
                lines = [line.strip() for line in f]
            with open(calls + ".yaml") as f:
                rendered = [o for o in yaml.safe_load_all(f) if o]
        steps = [next(i for i, line in enumerate(lines) if cond(line)) for cond in (
            lambda line: "component=migration" in line,
            lambda line: line.startswith("--namespace atrium wait --for=condition=complete") and "atrium-migrate" in line,
            lambda line: line.startswith("apply") and "--selector" not in line,
            lambda line: "rollout status deployment/atrium-api" in line)]
        self.assertEqual(steps, sorted(steps), lines)
        images = {c["image"] for o in rendered if o["kind"] in ("Deployment", "Job")
                  for c in o["spec"]["template"]["spec"]["containers"]}
        self.assertEqual(images, {"registry.internal:5000/atrium:9.9.9"})

    def test_the_configmap_is_a_configuration_this_build_accepts(self):
        wait_for_binary()
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay), tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "atrium.toml")
                with open(path, "w") as f:
                    f.write(objects(overlay)[("ConfigMap", "atrium-config")]["data"]["atrium.toml"])
                out = run_cli(["config", "check", "--config", path],
                              env={"ATRIUM_STORAGE_DATABASE_URL": "postgresql://atrium@db.invalid/atrium"})
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn('worker_listen = "0.0.0.0:9090"', out.stdout)


class MigrationPolicyTest(unittest.TestCase):

    def test_migrations_only_add(self):
        # /ready accepts a schema newer than the build, and a rollout runs the migration Job before replacing the
        # previous release's pods: that holds only while no migration drops, renames or retypes what an older
        # build reads (docs/operations.md, "Migrations, rollouts and rollbacks").
        forbidden = re.compile(r"\b(DROP\s+(TABLE|COLUMN|VIEW)|RENAME|ALTER\s+COLUMN\s+\w+\s+(SET\s+DATA\s+)?TYPE)\b",
                               re.IGNORECASE)
        files = glob.glob(os.path.join(REPO_ROOT, "migrations", "**", "*.sql"), recursive=True)
        self.assertGreater(len(files), 40)
        for path in files:
            with open(path) as f:
                sql = re.sub(r"--[^\n]*", "", f.read())
            with self.subTest(migration=os.path.relpath(path, REPO_ROOT)):
                self.assertIsNone(forbidden.search(sql))


class AlertRulesTest(unittest.TestCase):

    def setUp(self):
        self.promtool = require_tool(self, "promtool")
        self.rules = os.path.join(DEPLOY, "prometheus", "rules")

    def test_rules_pass_promtool_check_and_unit_tests(self):
        for cmd in (["check", "rules", "atrium.rules.yml"], ["test", "rules", "atrium.rules.test.yml"]):
            out = subprocess.run([self.promtool, *cmd], cwd=self.rules, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stdout)
            self.assertIn("SUCCESS", out.stdout)

    def test_the_scrape_configuration_is_valid(self):
        out = subprocess.run([self.promtool, "check", "config", "prometheus.yml"], cwd=os.path.join(DEPLOY, "prometheus"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("is valid prometheus config file syntax", out.stdout)

    def test_every_alert_has_a_unit_test_and_a_runbook(self):
        with open(os.path.join(self.rules, "atrium.rules.yml")) as f:
            groups = yaml.safe_load(f)["groups"]
        with open(os.path.join(self.rules, "atrium.rules.test.yml")) as f:
            tests = yaml.safe_load(f)["tests"]
        tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case["exp_alerts"]}
        with open(os.path.join(REPO_ROOT, "docs", "operations.md")) as f:
            operations = f.read().lower()
        names = {r["alert"] for g in groups for r in g["rules"]}
        self.assertTrue({"HighErrorRate", "HighChurnRisk", "LowDatabaseConnections"} <= names)
        self.assertEqual([g["name"] for g in groups][0], "saas_alerts")
        for name in names:
            with self.subTest(alert=name):
                self.assertIn(name, tested, "no unit test sees this alert fire")
                self.assertTrue(f"### {name.lower()}" in operations, f"no runbook section ### {name} in docs/operations.md")

    def test_the_operators_prometheusrule_holds_the_same_rules(self):
        out = run_tool(["python3", os.path.join(CHECK, "prometheusrule.py"), "--check"], timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
