#!/usr/bin/env bash
# Training speed and quality: `atrium ml train` (5-fold stratified cross-validation of the seed's ensemble: a
# random forest of 100 trees and XGBoost of 100 rounds through libxgboost, a 32-16 network with Eigen, at most 50 epochs,
# weights 0.35 / 0.40 / 0.25) beside a Python reference doing the same folds' work in the same run:
# scikit-learn's RandomForestClassifier(100 trees) and MLPClassifier((64, 32), 50 epochs, early stopping) and
# xgboost.XGBClassifier(100 rounds), ensembled with the same weights (bench/ml_reference.py; Debian's
# python3-sklearn and python3-xgboost, installed by scripts/setup.sh --bench-tools). Each side runs ROUNDS times,
# alternated; the best wall time of each is reported with the ROC AUC of its pooled out-of-fold predictions.
# Scoring speed is bench/ml_bench.cpp (build/bench/atrium_ml_bench).
#
# Usage: bench/ml.sh [CSV LABEL POSITIVE]   (default: tests/data/mlc_churn.csv churn yes)
# Environment: ATRIUM_BINARY [build/atrium], ROUNDS [3]
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ATRIUM_BINARY=${ATRIUM_BINARY:-$REPO_ROOT/build/atrium}
ROUNDS=${ROUNDS:-3}
DATA=${1:-$REPO_ROOT/tests/data/mlc_churn.csv}
LABEL=${2:-churn}
POSITIVE=${3:-yes}
bash "$REPO_ROOT/scripts/setup.sh" --bench-tools >&2

best() { sort -n | head -1; }
# jget JSON EXPR: a Python expression over the parsed JSON `j`.
jget() { python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
atrium_times=()
python_times=()
for ((i = 0; i < ROUNDS; i++)); do
  for side in atrium python; do
    if [[ $side == atrium ]]; then
      out=$("$ATRIUM_BINARY" ml train --data "$DATA" --label "$LABEL" --positive "$POSITIVE" --cv 5 --json --quiet)
      atrium_times+=("$(jget "$out" 'j["seconds"]')")
      atrium_models=$(jget "$out" '", ".join("%.4f" % j["models"][m]["roc_auc"] for m in ["random_forest", "xgboost", "neural_network", "ensemble"])')
    else
      out=$(/usr/bin/python3 "$SCRIPT_DIR/ml_reference.py" "$DATA" "$LABEL" "$POSITIVE")
      python_times+=("$(jget "$out" 'j["seconds"]')")
      python_models=$(jget "$out" '", ".join("%.4f" % j[m] for m in ["random_forest", "xgboost", "neural_network", "ensemble"])')
    fi
  done
done
a=$(printf '%s\n' "${atrium_times[@]}" | best)
p=$(printf '%s\n' "${python_times[@]}" | best)
echo "| side | best of $ROUNDS (s) | ROC AUC forest, xgboost, network, ensemble |"
echo "|---|---:|---|"
echo "| atrium ml train | $a | $atrium_models |"
echo "| scikit-learn + xgboost (Python) | $p | $python_models |"
awk -v a="$a" -v p="$p" 'BEGIN { printf "\nspeed-up: %.1fx\n", p / a }'
