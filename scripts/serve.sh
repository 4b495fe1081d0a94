#!/usr/bin/env bash
# Quick start (a): installs everything, builds the release binary build/atrium and runs `atrium serve` on the
# embedded default (SQLite under ./data) at 127.0.0.1:8080. Extra arguments go to `atrium serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build atrium
exec build/atrium serve --listen 127.0.0.1:8080 --data-dir ./data "$@"
