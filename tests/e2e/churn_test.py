"""Churn prediction through the real binary on the demo platform (docs/ml.md, Churn prediction): two years of a
believable SaaS business, a model trained on its first 18 months (`atrium churn train --to`), ranked against what
happened in the months after (`atrium churn evaluate`, its ROC AUC printed), and the model's XGBoost JSON exported by
`atrium serve` loaded in Python's xgboost (Debian's python3-xgboost) giving the same probabilities as Atrium's own
predictions for every customer."""

import json
import math
import os
import sys
import tempfile
from datetime import date, datetime, timezone

from atrium_e2e import AtriumServer, E2ETestCase, run_cli, skip_or_fail, wait_for_binary

TENANTS = os.environ.get("ATRIUM_E2E_CHURN_TENANTS", "80")
MONTHS = 24


def months_before(day, months):
    """The first day of the month `months` before `day`'s (the demo's first day)."""
    index = day.year * 12 + (day.month - 1) - months
    return date(index // 12, index % 12 + 1, 1)


class ChurnTest(E2ETestCase):

    def setUp(self):
        try:
            wait_for_binary(timeout=60.0)
        except AssertionError:
            skip_or_fail(self, "atrium binary not found (set ATRIUM_BINARY)")
        try:
            import numpy  # noqa: F401
            import xgboost  # noqa: F401
        except ImportError:
            skip_or_fail(self, "python3-xgboost missing (scripts/setup.sh --test-tools)")

    def call(self, server, method, path, token=None, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return server.request(method, path, headers=headers, body=data, timeout=120.0)

    def test_trained_on_the_first_18_months_it_ranks_the_later_churners_first(self):
        import numpy
        import xgboost

        env = {"ATRIUM_IDENTITY_PASSWORD_COST": "minimum"}
        server = AtriumServer(env=env)
        self.addCleanup(server.close)
        seeded = run_cli(["demo", "seed", "--tenants", TENANTS, "--months", str(MONTHS), "--seed", "7", "--quiet",
                          "--data-dir", server.data_dir], env=env, timeout=1200)
        self.assertEqual(seeded.returncode, 0, seeded.stderr)
        start = months_before(datetime.now(timezone.utc).date(), MONTHS)
        cut = months_before(start, -18)  # 18 months after the first day
        trained = run_cli(["churn", "train", "--to", cut.isoformat(), "--horizon", "90", "--activate", "--quiet",
                           "--data-dir", server.data_dir], env=env, timeout=600)
        self.assertEqual(trained.returncode, 0, trained.stderr)
        model = json.loads(trained.stdout)
        self.assertEqual(model["version"], 1)
        self.assertEqual(model["status"], "active")
        self.assertGreater(model["positives"], 0)
        evaluated = run_cli(["churn", "evaluate", "--version", "1", "--at", cut.isoformat(), "--horizon", "180",
                             "--data-dir", server.data_dir], env=env, timeout=600)
        self.assertEqual(evaluated.returncode, 0, evaluated.stderr)
        evaluation = json.loads(evaluated.stdout)
        auc = evaluation["models"]["ensemble"]["roc_auc"]
        print(f"\ndemo platform, {TENANTS} tenants: trained on the months before {cut}, "
              f"{evaluation['customers']} customers then, {evaluation['churned']} churned in the 180 days after; "
              f"ensemble ROC AUC {auc:.3f}", file=sys.stderr)
        self.assertGreater(auc, 0.65, evaluation)

        created = run_cli(["admin", "create-superuser", "--email", "root@e2e.test", "--password", "root-password",
                           "--data-dir", server.data_dir], env=env)
        self.assertEqual(created.returncode, 0, created.stderr)
        server.start()
        root = self.call(server, "POST", "/v1/auth/token", body={
            "grant_type": "password", "email": "root@e2e.test", "password": "root-password"}).json()["access_token"]
        exported = self.call(server, "GET", "/v1/admin/churn/models/1/xgboost", root)
        self.assertEqual(exported.status, 200, exported)
        ranked = self.call(server, "GET", "/v1/admin/churn/tenants?limit=10000", root)
        self.assertEqual(ranked.status, 200, ranked)
        predictions = ranked.json()["data"]
        self.assertGreater(len(predictions), 0)
        probabilities = [p["churnProbability"] for p in predictions]
        self.assertEqual(probabilities, sorted(probabilities, reverse=True))

        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
            f.write(exported.body)
            path = f.name
        self.addCleanup(os.unlink, path)
        booster = xgboost.Booster(model_file=path)
        rows = [[math.nan if p["features"][name] is None else p["features"][name] for name in model["features"]]
                for p in predictions]
        python = booster.predict(xgboost.DMatrix(numpy.array(rows, dtype=numpy.float32), missing=math.nan))
        for p, q in zip(predictions, python):
            self.assertAlmostEqual(p["models"]["xgboost"], float(q), places=5, msg=p["tenantId"])
        server.stop()
        server.raise_on_sanitizer_reports("the churn server")
