#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI (its recommended rules, .redocly.yaml); exit 0 only with no error and
# no warning. scripts/setup.sh --test-tools installs the linter (tools/openapi-lint, from its lockfile).
set -euo pipefail
cd "$(dirname "$0")/.."
lint=tools/openapi-lint/node_modules/.bin/redocly
if [[ ! -x $lint ]]; then
  echo "lint_openapi: $lint is missing; run scripts/setup.sh --test-tools" >&2
  exit 1
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
out=$("$lint" lint docs/openapi.yaml --config .redocly.yaml --format=stylish 2>&1) || {
  echo "$out" >&2
  exit 1
}
if grep -qE '^\s+[0-9]+:[0-9]+\s+(error|warning)' <<<"$out"; then
  echo "$out" >&2
  exit 1
fi
echo "lint_openapi: docs/openapi.yaml: no errors, no warnings"
