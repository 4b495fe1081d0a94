#!/usr/bin/env bash
# HTTP load benchmark of encryption at rest: a read route, GET /v1/billing-account (five encrypted fields opened
# per request), and a write route, PUT /v1/email-settings (two fields sealed, and the audit entry's two changes
# sealed), against two Atrium instances that differ only in protection.encrypt_fields, in the same run, on
# loopback, in ABBA order. The baseline is the same binary with encryption off. Target (issue 20): at most 10% slower.
#
# Per backend: two release binaries (build/atrium, access log off) on their own databases (SQLite: a data dir
# each; PostgreSQL: one private server from scripts/services.sh, a database each, Atrium serving as atrium_app and
# migrating as atrium_owner). Each gets a super admin, a tenant "bench" (isolation shared) with an owner, a billing
# account and the owner's token. Any non-2xx answer stops the benchmark. Prints a Markdown report on stdout
# (progress on stderr); everything is removed on exit.
#
# Usage: bench/http_encryption.sh
# Environment (defaults in brackets):
#   BACKEND        sqlite, postgres or both           [sqlite]
#   ATRIUM_BINARY  Atrium binary                      [<repo>/build/atrium]
#   WRK_BINARY     wrk binary                         [wrk]
#   DURATION       wrk duration of each measured run  [10s]
#   WARMUP         wrk warm-up per target, 0 = none   [2s]
#   THREADS        wrk threads                        [2]
#   CONNECTIONS    wrk connections                    [64]
#   ROUNDS         measured runs per target           [2]
#   VERBOSE        1 = copy raw wrk output to stderr  [0]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BACKEND=${BACKEND:-sqlite}
BENCH_NAME=http_encryption
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

ONOFF_VARIABLE=ATRIUM_PROTECTION_ENCRYPT_FIELDS
ONOFF_NAME=encryption
# shellcheck source=bench/lib_onoff.sh
source "$SCRIPT_DIR/lib_onoff.sh"
bench_install_traps

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# The billing account GET /v1/billing-account reads.
onoff_prepare() {
  api "$1" PUT /v1/billing-account 200 "$BACKEND_DIR/$1-account.json" "${TOKEN[$1]}" \
    '{"legal_name":"Bench GmbH","email":"billing@bench.test","address":["Benchstrasse 1","10115 Berlin"],"country":"DE","currency":"EUR","tax_ids":["DE123456789"]}'
}

run_backend() {
  local backend=$1 workload path
  local -a script
  onoff_start_backend "$backend"
  : >"$BACKEND_DIR/summary.md"
  : >"$BACKEND_DIR/report.md"
  for workload in read write; do
    if [[ $workload == read ]]; then
      path=/v1/billing-account
      script=()
    else
      path=/v1/email-settings
      script=(-s "$SCRIPT_DIR/put_email_settings.lua")
    fi
    onoff_measure "$path" "$workload" "${script[@]}"
    {
      echo "## $BACKEND_LABEL: $workload, $path"
      echo
      onoff_tables
      echo
    } >>"$BACKEND_DIR/report.md"
    echo "| $BACKEND_LABEL | $workload \`$path\` | $ONOFF_SUMMARY |" >>"$BACKEND_DIR/summary.md"
  done
  bench_cleanup_extra
}

onoff_setup "$@"
for backend in "${backends[@]}"; do run_backend "$backend"; done

echo "# Encryption at rest: a read and a write route with protection.encrypt_fields on vs off (same binary, same run, loopback)"
echo
echo "**wrk and Atrium share the same $nproc_n cores; compare the ratio, not the totals.**"
echo
echo "- Date: $run_date"
echo "- Command: \`BACKEND=$BACKEND DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS $0\`"
echo "- Workloads: \`GET /v1/billing-account\` (five encrypted fields opened) and \`PUT /v1/email-settings\` (two fields and the audit entry's two changes sealed; bench/put_email_settings.lua), the tenant owner's bearer token (isolation shared); every answer must be 200"
echo "- Baseline: the same binary with \`ATRIUM_PROTECTION_ENCRYPT_FIELDS=false\`; both instances have the access log off"
echo "- Runs: warm-up $WARMUP each, then $ROUNDS measured run(s) each, alternating which goes first"
echo "- CPU: $cpu_model; atrium: $atrium_version; wrk: $wrk_version"
inherited=$(env | sed -n 's/^\(ATRIUM_[A-Za-z0-9_]*\)=\(.*\)/\1=\2/p' | grep -Ev '^ATRIUM_BINARY=' | sort | tr '\n' ' ' || true)
echo "- Settings inherited by both instances from the environment: ${inherited:-none (defaults)}"
echo
echo "| backend | workload | encryption on requests/s | off requests/s | on/off | overhead |"
echo "|---|---|---:|---:|---:|---:|"
for backend in "${backends[@]}"; do cat "$WORK_DIR/$backend/summary.md"; done
for backend in "${backends[@]}"; do
  echo
  cat "$WORK_DIR/$backend/report.md"
done
