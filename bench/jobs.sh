#!/usr/bin/env bash
# Background-job throughput of each queue backend beside its floor, measured in the same run by
# build/bench/atrium_jobs_bench (see bench/jobs_bench.cpp for what each line measures):
#   sqlite    a fresh SQLite file; baseline: 3 single-row transactions per job on a plain table
#   postgres  a fresh database on a private PostgreSQL; the same baseline
#   rabbitmq  a private RabbitMQ (idempotency keys and completion records in a fresh SQLite file); baseline: raw
#             librabbitmq persistent publish + confirm, consume + ack, prefetch 16
# Builds nothing. PostgreSQL and RabbitMQ (and Redis, unused) are private instances started with
# scripts/services.sh in a temporary directory, after the SQLite run; everything is stopped and removed on exit.
# Note that scripts/services.sh runs PostgreSQL with fsync=off and synchronous_commit=off, and Atrium opens SQLite
# with synchronous=NORMAL (WAL), while RabbitMQ confirms persistent messages only after persisting them: compare each
# backend with its own baseline, not the backends with each other.
#
# Prints TSV on stdout (a header line, then one line per measurement; progress on stderr):
#   backend  measure  jobs  threads  seconds  per_second  p50_ms  p99_ms
#
# Usage: bench/jobs.sh
# Environment (defaults in brackets):
#   JOBS                jobs per measurement                                  [20000]
#   THREADS             enqueue threads, runner threads, baseline threads     [4]
#   BACKENDS            space-separated subset of: sqlite postgres rabbitmq   [sqlite postgres rabbitmq]
#   KEYS                1 = every job has an idempotency key (--keys)         [0]
#   MAX_CLAIM           SQL: most jobs one claim takes (--max-claim)          [32]
#   PRODUCERS           end-to-end enqueue threads (--producers)              [1]
#   JOBS_BENCH_BINARY   the benchmark binary                                  [<repo>/build/bench/atrium_jobs_bench]
#   TIMEOUT             bound on one backend's run, in seconds                [1800]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME="jobs"
JOBS=${JOBS:-20000}
THREADS=${THREADS:-4}  # set before lib.sh, whose default (wrk threads) is 2
BACKENDS=${BACKENDS:-sqlite postgres rabbitmq}
KEYS=${KEYS:-0}
MAX_CLAIM=${MAX_CLAIM:-32}
PRODUCERS=${PRODUCERS:-1}
JOBS_BENCH_BINARY=${JOBS_BENCH_BINARY:-$REPO_ROOT/build/bench/atrium_jobs_bench}
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

# start_services: the private PostgreSQL, Redis and RabbitMQ (once); sets PG_URL and AMQP_URL.
start_services() {
  [[ -z $SERVICES_DIR ]] || return 0
  SERVICES_DIR="$WORK_DIR/services"
  log "starting private PostgreSQL, Redis and RabbitMQ (scripts/services.sh)"
  bash "$REPO_ROOT/scripts/services.sh" start "$SERVICES_DIR" >"$WORK_DIR/services.log" 2>&1 || {
    cat "$WORK_DIR/services.log" >&2
    die "scripts/services.sh start failed"
  }
  PG_URL=$(sed -n 's/^export ATRIUM_TEST_POSTGRES_URL=//p' "$SERVICES_DIR/env")
  AMQP_URL=$(sed -n 's/^export ATRIUM_TEST_AMQP_URL=//p' "$SERVICES_DIR/env")
  [[ -n $PG_URL && -n $AMQP_URL ]] || die "scripts/services.sh wrote no PostgreSQL or AMQP URL to $SERVICES_DIR/env"
}

bench_parse_args "$@"
for var in JOBS THREADS TIMEOUT; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer (got '${!var}')"
done
[[ $KEYS == 0 || $KEYS == 1 ]] || die "KEYS must be 0 or 1 (got '$KEYS')"
read -r -a backends <<<"$BACKENDS"
((${#backends[@]} > 0)) || die "BACKENDS is empty"
for backend in "${backends[@]}"; do
  case $backend in
    sqlite | postgres | rabbitmq) ;;
    *) die "unknown backend '$backend' in BACKENDS (sqlite, postgres, rabbitmq)" ;;
  esac
done
if [[ ! -x $JOBS_BENCH_BINARY ]]; then
  die "benchmark binary not found or not executable: $JOBS_BENCH_BINARY
  Build it first (from $REPO_ROOT):
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build atrium_jobs_bench
  or point JOBS_BENCH_BINARY at an existing build."
fi
command -v timeout >/dev/null 2>&1 || die "timeout not found"

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-jobs-bench.XXXXXX")
chmod 755 "$WORK_DIR"  # the services run as the postgres and rabbitmq users
mkdir -p "$WORK_DIR/tmp"

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
log "$(date '+%Y-%m-%d %H:%M:%S %Z'); $(nproc) cores (${cpu_model:-unknown CPU}); JOBS=$JOBS THREADS=$THREADS KEYS=$KEYS MAX_CLAIM=$MAX_CLAIM PRODUCERS=$PRODUCERS"
cache="$(dirname "$JOBS_BENCH_BINARY")/../CMakeCache.txt"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" 2>/dev/null || true)
if [[ $build_type != Release ]]; then
  log "warning: build type '${build_type:-unknown}' (from $cache), not Release; numbers will not be representative"
fi

extra=()
((KEYS == 0)) || extra+=(--keys)
extra+=(--max-claim "$MAX_CLAIM" --producers "$PRODUCERS")
status=0
printf 'backend\tmeasure\tjobs\tthreads\tseconds\tper_second\tp50_ms\tp99_ms\n'
for backend in "${backends[@]}"; do
  url_args=()
  case $backend in
    postgres) start_services; url_args=(--url "$PG_URL") ;;
    rabbitmq) start_services; url_args=(--url "$AMQP_URL") ;;
  esac
  log "=== $backend ==="
  # The program's scratch SQLite files go under WORK_DIR (removed on exit even if the program is killed).
  if ! TMPDIR="$WORK_DIR/tmp" timeout --kill-after=10 "$TIMEOUT" "$JOBS_BENCH_BINARY" --backend "$backend" \
    --jobs "$JOBS" --threads "$THREADS" "${url_args[@]}" "${extra[@]}"; then
    log "$backend: atrium_jobs_bench failed (see above); continuing with the other backends"
    status=1
  fi
done
exit "$status"
