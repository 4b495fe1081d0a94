#!/usr/bin/env bash
# Runs one libFuzzer target for a few seconds from its seed corpus (fuzz/corpus/<name>), as part of the test
# suite. Exit 77 (skipped) when the fuzz build is absent; with ATRIUM_TEST_REQUIRE_SERVICES=1 (scripts/test.sh, and
# so CI) its absence is a failure.
set -euo pipefail
name=$1
seconds=${ATRIUM_FUZZ_SECONDS:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${ATRIUM_FUZZ_DIR:-}/fuzz/fuzz_$name
if [[ -z "${ATRIUM_FUZZ_DIR:-}" || ! -x "$binary" ]]; then
  if [[ "${ATRIUM_TEST_REQUIRE_SERVICES:-}" == 1 ]]; then
    echo "fuzz target $binary missing (scripts/test.sh builds it)" >&2
    exit 1
  fi
  echo "fuzz build not found; skipping" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/fuzz/corpus/$name/." "$work/"
"$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$work" 2>"$work.log" || {
  tail -n 60 "$work.log" >&2
  rm -f "$work.log"
  exit 1
}
grep -E "stat::number_of_executed_units|Done" "$work.log" || true
rm -f "$work.log"
