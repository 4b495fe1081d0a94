#!/usr/bin/env bash
# HTTP load benchmark of the audit log's cost: POST /v1/projects (a mutating route: one project and, with auditing
# on, one hash-chained audit entry in the same transaction) against two Atrium instances that differ only in
# audit.enabled, in the same run, on loopback, in ABBA order. The baseline is the same binary with auditing off.
#
# Per backend: two release binaries (build/atrium, access log off) on their own databases (SQLite: a data dir
# each; PostgreSQL: one private server from scripts/services.sh, a database each, Atrium serving as atrium_app and
# migrating as atrium_owner). Each gets a super admin, a tenant "bench" (isolation shared) with an owner, and the
# owner's token. wrk posts {"name":"...","description":"..."} with the token (bench/post_project.lua). Any non-2xx
# answer stops the benchmark. Afterwards `atrium audit verify` must find the audited instance's chains intact
# (entries appended by 64 concurrent connections), and its tenant chain must hold one entry per 201. Prints a
# Markdown report on stdout (progress on stderr); everything is removed on exit.
#
# Usage: bench/http_audit.sh
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
BENCH_NAME=http_audit
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

ONOFF_VARIABLE=ATRIUM_AUDIT_ENABLED
ONOFF_NAME=audit
# shellcheck source=bench/lib_onoff.sh
source "$SCRIPT_DIR/lib_onoff.sh"
bench_install_traps

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

run_backend() {
  local backend=$1 tenant_entries created verify_out label
  ENV_VARS=()
  onoff_start_backend "$backend"
  label=$BACKEND_LABEL

  onoff_measure /v1/projects projects -s "$SCRIPT_DIR/post_project.lua"

  # Every 201 of the audited instance left one entry, and the chains survived the concurrency intact.
  created=$(curl --noproxy '*' -sS --max-time 30 -H "Authorization: Bearer ${TOKEN[on]}" \
    "${BASE[on]}/v1/audit-logs?action=project.created&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["chain"]["seq"])')
  stop_pid "$ATRIUM_PID" "atrium (audit on)"
  ATRIUM_PID=""
  stop_pid "$OFF_PID" "atrium (audit off)"
  OFF_PID=""
  # shellcheck disable=SC2086
  verify_out=$(env ${ENV_VARS[on]} "$ATRIUM_BINARY" audit verify ${ARGS[on]} 2>"$BACKEND_DIR/verify.err") || {
    echo "$verify_out" >&2
    die "atrium audit verify found the audited instance's log damaged"
  }
  tenant_entries=$created
  bench_cleanup_extra

  {
    echo "## $label"
    echo
    echo "- \`atrium audit verify\` after the load: ${verify_out##*$'\n'}; the tenant chain's last seq: $tenant_entries"
    echo
    onoff_tables
  } >"$BACKEND_DIR/report.md"
  echo "| $label | $ONOFF_SUMMARY |" >"$BACKEND_DIR/summary.md"
}

onoff_setup "$@"
for backend in "${backends[@]}"; do run_backend "$backend"; done

echo "# HTTP POST /v1/projects: auditing on vs off (same binary, same run, loopback)"
echo
echo "**wrk and Atrium share the same $nproc_n cores; compare the ratio, not the totals.**"
echo
echo "- Date: $run_date"
echo "- Command: \`BACKEND=$BACKEND DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS $0\`"
echo "- Workload: \`POST /v1/projects\` with a JSON body and the tenant owner's bearer token (tenant isolation shared)," \
  "bench/post_project.lua; every answer must be 201"
echo "- Baseline: the same binary with \`ATRIUM_AUDIT_ENABLED=false\`; both instances have the access log off"
echo "- Runs: warm-up $WARMUP each, then $ROUNDS measured run(s) each, alternating which goes first"
echo "- CPU: $cpu_model; atrium: $atrium_version; wrk: $wrk_version"
inherited=$(env | sed -n 's/^\(ATRIUM_[A-Za-z0-9_]*\)=\(.*\)/\1=\2/p' | grep -Ev '^ATRIUM_BINARY=' | sort | tr '\n' ' ' || true)
echo "- Settings inherited by both instances from the environment: ${inherited:-none (defaults)}"
echo
echo "| backend | audit on requests/s | audit off requests/s | on/off | overhead |"
echo "|---|---:|---:|---:|---:|"
for backend in "${backends[@]}"; do cat "$WORK_DIR/$backend/summary.md"; done
for backend in "${backends[@]}"; do
  echo
  cat "$WORK_DIR/$backend/report.md"
done
