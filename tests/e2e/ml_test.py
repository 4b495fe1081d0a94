"""`atrium ml train` through the real binary (docs/ml.md): the seed's ensemble cross-validated on any CSV — the public
churn data set the issue names and a file made here whose answer is known — with its report as text and JSON, and
files it cannot use refused with exit 2 and the reason."""

import json
import os
import random
import shutil
import tempfile
import unittest

from atrium_e2e import REPO_ROOT, E2ETestCase, run_cli

CHURN = os.path.join(REPO_ROOT, "tests", "data", "mlc_churn.csv")


class MlTrainTest(E2ETestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="atrium-e2e-ml-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def train(self, *args, timeout=300):
        return run_cli(["ml", "train", "--quiet", *args], timeout=timeout)

    def test_a_file_whose_answer_is_known_is_learnt_by_every_model(self):
        # Churned when usage is low and tickets many, with a categorical plan, missing values and quoted text.
        rng = random.Random(5)
        lines = ["usage,tickets,plan,\"comment, free text\",left"]
        for i in range(800):
            usage = rng.gauss(50, 20)
            tickets = rng.randint(0, 6)
            plan = rng.choice(["free", "pro", "team"])
            left = "Y" if usage / 20 - tickets + (1 if plan == "pro" else 0) + rng.gauss(0, 1) < 0 else "N"
            shown = "NA" if i % 13 == 0 else f"{usage:.1f}"
            lines.append(f"{shown},{tickets},{plan},\"said \"\"hi\"\", {i % 3}\",{left}")
        path = self.write("known.csv", "\n".join(lines) + "\n")
        r = self.train("--data", path, "--label", "left", "--positive", "Y", "--cv", "3", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["rows"], 800)
        self.assertEqual(out["folds"], 3)
        # usage and tickets numeric; plan and the comment one-hot (3 + 3 levels).
        self.assertEqual(out["features"], 8)
        self.assertEqual(out["weights"], [0.35, 0.40, 0.25])
        for model in ["random_forest", "xgboost", "neural_network", "ensemble"]:
            scores = out["models"][model]
            self.assertGreater(scores["roc_auc"], 0.85, model)
            self.assertEqual(len(scores["fold_roc_auc"]), 3)
            self.assertLess(scores["brier"], 0.2, model)

    def test_the_public_churn_data_set(self):
        r = self.train("--data", CHURN, "--label", "churn", "--positive", "yes", "--cv", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("5000 rows (707 positive)", r.stdout)
        self.assertIn("15 numeric and 4 categorical columns -> 73 features", r.stdout)
        ensemble = [line for line in r.stdout.splitlines() if line.startswith("ensemble ")][0]
        # The target is 0.93; measured 0.9245 (docs/performance.md); this guards against falling back.
        self.assertGreaterEqual(float(ensemble.split()[1]), 0.92, r.stdout)

    def test_files_it_cannot_use_are_refused_with_the_reason(self):
        good = self.write("ok.csv", "a,b\n1,yes\n2,no\n3,yes\n4,no\n")
        cases = [
            (["--data", os.path.join(self.dir, "missing.csv"), "--label", "b", "--positive", "yes"], "cannot read"),
            (["--data", good, "--label", "c", "--positive", "yes"], "no column named c"),
            (["--data", good, "--label", "b", "--positive", "maybe"], "no row has b = maybe"),
            (["--data", self.write("ragged.csv", "a,b\n1,yes\n2\n"), "--label", "b", "--positive", "yes"],
             "record 3 has 1 fields"),
            (["--data", good, "--label", "b", "--positive", "yes", "--cv", "1"], "--cv must be 2-20"),
        ]
        for args, reason in cases:
            r = self.train(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(reason, r.stderr, args)
            self.assertEqual(r.stdout, "", args)


if __name__ == "__main__":
    unittest.main()
