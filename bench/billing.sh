#!/usr/bin/env bash
# The billing run over SUBSCRIPTIONS active subscriptions (invoices per second) beside its baseline, measured in the
# same run on the same database by build/bench/atrium_billing_bench (see bench/billing_bench.cpp for what each
# line measures):
#   billing run  Billing::run() renewing every subscription: invoice, line, payment attempt, charge through the
#                simulated gateway, outcome, events; BATCH subscriptions per transaction
#   baseline     "baseline: the rows a renewal writes, no logic": the same rows as plain single-row statements,
#                BATCH sets per transaction
# Backends: sqlite (a fresh data directory) and postgres (a fresh database on a private PostgreSQL, migrated as an
# owner role and served as a role without BYPASSRLS, so row-level security applies).
# Builds nothing. PostgreSQL (and Redis and RabbitMQ, unused) are private instances started with
# scripts/services.sh in a temporary directory, after the SQLite run; everything is stopped and removed on exit.
# Note that scripts/services.sh runs PostgreSQL with fsync=off and synchronous_commit=off, and Atrium opens SQLite
# with synchronous=NORMAL (WAL): compare each backend with its own baseline, not the backends with each other.
#
# Prints TSV on stdout (a header line, then one line per measurement; progress on stderr):
#   backend  measure  subscriptions  batch  seconds  per_second
#
# Usage: bench/billing.sh
# Environment (defaults in brackets):
#   SUBSCRIPTIONS          active subscriptions (one tenant each) to renew     [100000]
#   BATCH                  subscriptions per billing-run transaction           [500]
#   BACKENDS               space-separated subset of: sqlite postgres          [sqlite postgres]
#   BILLING_BENCH_BINARY   the benchmark binary                      [<repo>/build/bench/atrium_billing_bench]
#   TIMEOUT                bound on one backend's run, in seconds              [1800]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME="billing"
SUBSCRIPTIONS=${SUBSCRIPTIONS:-100000}
BATCH=${BATCH:-500}
BACKENDS=${BACKENDS:-sqlite postgres}
BILLING_BENCH_BINARY=${BILLING_BENCH_BINARY:-$REPO_ROOT/build/bench/atrium_billing_bench}
TIMEOUT=${TIMEOUT:-1800}
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

SERVICES_DIR=""

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

# shellcheck disable=SC2317  # called by cleanup (lib.sh)
bench_cleanup_extra() {
  if [[ -n $SERVICES_DIR ]]; then
    bash "$REPO_ROOT/scripts/services.sh" stop "$SERVICES_DIR" >/dev/null 2>&1
    SERVICES_DIR=""
  fi
}
bench_install_traps

# start_services: the private PostgreSQL (and Redis and RabbitMQ, which scripts/services.sh always starts); sets
# PG_URL.
start_services() {
  [[ -z $SERVICES_DIR ]] || return 0
  SERVICES_DIR="$WORK_DIR/services"
  log "starting a private PostgreSQL (scripts/services.sh)"
  bash "$REPO_ROOT/scripts/services.sh" start "$SERVICES_DIR" >"$WORK_DIR/services.log" 2>&1 || {
    cat "$WORK_DIR/services.log" >&2
    die "scripts/services.sh start failed"
  }
  PG_URL=$(sed -n 's/^export ATRIUM_TEST_POSTGRES_URL=//p' "$SERVICES_DIR/env")
  [[ -n $PG_URL ]] || die "scripts/services.sh wrote no PostgreSQL URL to $SERVICES_DIR/env"
}

bench_parse_args "$@"
for var in SUBSCRIPTIONS BATCH TIMEOUT; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer (got '${!var}')"
done
read -r -a backends <<<"$BACKENDS"
((${#backends[@]} > 0)) || die "BACKENDS is empty"
for backend in "${backends[@]}"; do
  case $backend in
    sqlite | postgres) ;;
    *) die "unknown backend '$backend' in BACKENDS (sqlite, postgres)" ;;
  esac
done
if [[ ! -x $BILLING_BENCH_BINARY ]]; then
  die "benchmark binary not found or not executable: $BILLING_BENCH_BINARY
  Build it first (from $REPO_ROOT):
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build atrium_billing_bench
  or point BILLING_BENCH_BINARY at an existing build."
fi
command -v timeout >/dev/null 2>&1 || die "timeout not found"

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-billing-bench.XXXXXX")
chmod 755 "$WORK_DIR"  # the services run as the postgres and rabbitmq users
mkdir -p "$WORK_DIR/tmp"

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
log "$(date '+%Y-%m-%d %H:%M:%S %Z'); $(nproc) cores (${cpu_model:-unknown CPU}); SUBSCRIPTIONS=$SUBSCRIPTIONS BATCH=$BATCH"
cache="$(dirname "$BILLING_BENCH_BINARY")/../CMakeCache.txt"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" 2>/dev/null || true)
if [[ $build_type != Release ]]; then
  log "warning: build type '${build_type:-unknown}' (from $cache), not Release; numbers will not be representative"
fi

status=0
printf 'backend\tmeasure\tsubscriptions\tbatch\tseconds\tper_second\n'
for backend in "${backends[@]}"; do
  url_args=()
  if [[ $backend == postgres ]]; then
    start_services
    url_args=(--url "$PG_URL")
  fi
  log "=== $backend ==="
  # The program's scratch directories go under WORK_DIR (removed on exit even if the program is killed).
  if ! TMPDIR="$WORK_DIR/tmp" timeout --kill-after=10 "$TIMEOUT" "$BILLING_BENCH_BINARY" --backend "$backend" \
    --subscriptions "$SUBSCRIPTIONS" --batch "$BATCH" "${url_args[@]}"; then
    log "$backend: atrium_billing_bench failed (see above); continuing with the other backends"
    status=1
  fi
done
exit "$status"
