#!/usr/bin/env python3
"""The Python reference for bench/ml.sh: the seed's ensemble with scikit-learn and xgboost on the same kind of
folds (5-fold stratified, shuffled), one-hot categorical columns, mean-imputed missing values; prints JSON with the
wall time and each model's ROC AUC of the pooled out-of-fold predictions."""
import json
import sys
import time

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

path, label, positive = sys.argv[1:4]
started = time.time()
df = pd.read_csv(path)
y = (df[label].astype(str) == positive).astype(int).values
X = pd.get_dummies(df.drop(columns=[label]), dummy_na=False).astype(float)
X = X.fillna(X.mean()).values
oof = {k: np.zeros(len(y)) for k in ["random_forest", "xgboost", "neural_network", "ensemble"]}
for train, test in StratifiedKFold(5, shuffle=True, random_state=42).split(X, y):
    forest = RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=42).fit(X[train], y[train])
    boosted = xgb.XGBClassifier(n_estimators=100, n_jobs=-1, random_state=42, verbosity=0).fit(X[train], y[train])
    scaler = StandardScaler().fit(X[train])
    network = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=50, early_stopping=True,
                            random_state=42).fit(scaler.transform(X[train]), y[train])
    oof["random_forest"][test] = forest.predict_proba(X[test])[:, 1]
    oof["xgboost"][test] = boosted.predict_proba(X[test])[:, 1]
    oof["neural_network"][test] = network.predict_proba(scaler.transform(X[test]))[:, 1]
    oof["ensemble"][test] = (0.35 * oof["random_forest"][test] + 0.40 * oof["xgboost"][test] +
                             0.25 * oof["neural_network"][test])
result = {k: roc_auc_score(y, v) for k, v in oof.items()}
result["seconds"] = time.time() - started
print(json.dumps(result))
