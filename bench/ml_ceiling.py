#!/usr/bin/env python3
"""How high ROC AUC goes on mlc_churn with help the product may not give: XGBoost alone, tuned slow (1,000 rounds at
eta 0.02, depth 4) against the fast default (100 rounds at eta 0.1, depth 6), on the file's columns as they are and
with hand-made features that name its columns (the state column dropped; total charge, minutes and calls summed
across the day/evening/night/international columns). Three fold seeds, 5-fold stratified, pooled out-of-fold ROC
AUC. Used by docs/ml.md to size the gap to the issue's 0.93: `python3 bench/ml_ceiling.py tests/data/mlc_churn.csv`
(needs Debian's python3-sklearn, python3-xgboost and python3-pandas: scripts/setup.sh --bench-tools)."""
import sys

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

df = pd.read_csv(sys.argv[1])
y = (df.pop("churn") == "yes").astype(int).values
raw = pd.get_dummies(df, dtype=float)
made = pd.get_dummies(df.drop(columns=["state"]), dtype=float)
made["total_charge"] = df[[c for c in df.columns if c.endswith("_charge")]].sum(axis=1)
made["total_minutes"] = df[[c for c in df.columns if c.endswith("_minutes")]].sum(axis=1)
made["total_calls"] = df[[c for c in df.columns if c.endswith("_calls") and "service" not in c]].sum(axis=1)
common = dict(objective="binary:logistic", tree_method="hist", nthread=2, seed=1)
models = {
    "fast (100 rounds, eta 0.1, depth 6)": (dict(common, eta=0.1, max_depth=6, subsample=0.9, colsample_bytree=0.9), 100),
    "slow (1,000 rounds, eta 0.02, depth 4)": (dict(common, eta=0.02, max_depth=4, min_child_weight=3, subsample=0.8,
                                                    colsample_bytree=0.8), 1000),
}
print("| XGBoost | columns | fold seed 42 | 1 | 7 |\n|---|---|---:|---:|---:|")
for name, (params, rounds) in models.items():
    for columns, X in (("as in the file", raw), ("hand-made totals, no state", made)):
        scores = []
        for seed in (42, 1, 7):
            oof = np.zeros(len(y))
            for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y):
                booster = xgb.train(params, xgb.DMatrix(X.iloc[train], label=y[train]), rounds)
                oof[test] = booster.predict(xgb.DMatrix(X.iloc[test]))
            scores.append(f"{roc_auc_score(y, oof):.4f}")
        print(f"| {name} | {columns} | " + " | ".join(scores) + " |", flush=True)
