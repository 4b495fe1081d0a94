#!/usr/bin/env bash
# Rate-limit decisions per second through Redis beside redis-benchmark's raw operations per second, in the same run
# against the same private Redis (started as scripts/services.sh starts it: loopback, a free port, no persistence).
# Measured, each with CONNECTIONS connections, ROUNDS times in alternating order:
#   SET, GET            redis-benchmark -t set,get: the raw floor of one round trip
#   EVALSHA return 1    redis-benchmark running a trivial Lua script: the floor of a script round trip
#   EVALSHA gcra        redis-benchmark running Atrium's rate-limit script itself on random keys (no client work)
#   atrium decisions    build/bench/atrium_ratelimit_bench: gateway::make_redis_rate_limiter from CONNECTIONS
#                       threads (one pooled connection each), EVALSHA per decision, reply parsed into a Decision
# Builds nothing: build the release targets first (ninja -C build atrium_ratelimit_bench). Prints a Markdown
# report on stdout (progress on stderr); Redis and the temporary directory are removed on exit.
#
# Usage: bench/ratelimit_redis.sh
# Environment (defaults in brackets):
#   CONNECTIONS         connections (redis-benchmark -c) and Atrium threads      [8]
#   REQUESTS            requests per redis-benchmark run (-n)                      [200000]
#   SECONDS_PER_RUN     duration of each Atrium run                                [5]
#   KEYS                distinct rate-limit keys                                   [10000]
#   ROUNDS              measured rounds                                            [2]
#   RATELIMIT_BENCH_BINARY                                                [<repo>/build/bench/atrium_ratelimit_bench]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME="ratelimit_redis"
CONNECTIONS=${CONNECTIONS:-8}
REQUESTS=${REQUESTS:-200000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
KEYS=${KEYS:-10000}
ROUNDS=${ROUNDS:-2}
RATELIMIT_BENCH_BINARY=${RATELIMIT_BENCH_BINARY:-$REPO_ROOT/build/bench/atrium_ratelimit_bench}
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

REDIS_PORT=""
REDIS_DIR=""

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

# shellcheck disable=SC2317  # called by cleanup (lib.sh)
bench_cleanup_extra() {
  local pid i
  [[ -n $REDIS_PORT ]] || return 0
  redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [[ -f $REDIS_DIR/pid ]]; then
    pid=$(cat "$REDIS_DIR/pid")
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  REDIS_PORT=""
}
bench_install_traps

bench_parse_args "$@"
for tool in redis-server redis-cli redis-benchmark python3 awk; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[[ -x $RATELIMIT_BENCH_BINARY ]] || die "$RATELIMIT_BENCH_BINARY not found: ninja -C build atrium_ratelimit_bench"
for var in CONNECTIONS REQUESTS SECONDS_PER_RUN KEYS ROUNDS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer (got '${!var}')"
done

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-ratelimit-redis.XXXXXX")
REDIS_DIR="$WORK_DIR/redis"
mkdir -p "$REDIS_DIR"

# --- Redis (as scripts/services.sh starts it) --------------------------------------------------------------------

REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log "starting redis-server on $HOST:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no --daemonize yes \
  --pidfile "$REDIS_DIR/pid" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/log"
for ((i = 0; i < 100; i++)); do
  [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
  sleep 0.1
done
[[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || die "redis-server did not answer PING"
cli() { redis-cli -h "$HOST" -p "$REDIS_PORT" "$@"; }

trivial_sha=$(cli SCRIPT LOAD "return 1")
gcra_sha=$(cli SCRIPT LOAD "$("$RATELIMIT_BENCH_BINARY" --print-script)")

# --- measurements ------------------------------------------------------------------------------------------------

declare -A BEST=()
declare -A ALL=()
record() {  # record NAME OPS_PER_S
  ALL[$1]+="$2 "
  if [[ -z ${BEST[$1]:-} ]] || awk -v a="$2" -v b="${BEST[$1]}" 'BEGIN { exit !(a > b) }'; then BEST[$1]=$2; fi
}

# rb NAME ARGS...: one redis-benchmark run (CSV); records its requests per second.
rb() {
  local name=$1 out rps
  shift
  out=$(redis-benchmark -h "$HOST" -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$REQUESTS" --csv "$@" 2>/dev/null) ||
    die "redis-benchmark failed: $*"
  rps=$(grep -v '^"test"' <<<"$out" | head -n 1 | awk -F'","' '{ gsub(/"/, "", $2); print $2 }')
  [[ -n $rps ]] || die "cannot parse redis-benchmark output: $out"
  log "$name: $rps ops/s"
  record "$name" "$rps"
}

run_setget() {
  local out line name rps
  out=$(redis-benchmark -h "$HOST" -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$REQUESTS" --csv -t set,get 2>/dev/null) ||
    die "redis-benchmark -t set,get failed"
  while IFS= read -r line; do
    [[ $line == '"test"'* || -z $line ]] && continue
    name=$(awk -F'","' '{ gsub(/"/, "", $1); print $1 }' <<<"$line")
    rps=$(awk -F'","' '{ gsub(/"/, "", $2); print $2 }' <<<"$line")
    log "$name: $rps ops/s"
    record "$name" "$rps"
  done <<<"$out"
}

run_atrium() {
  local out rps
  out=$("$RATELIMIT_BENCH_BINARY" --redis-url "redis://$HOST:$REDIS_PORT/0" --threads "$CONNECTIONS" \
    --seconds "$SECONDS_PER_RUN" --keys "$KEYS") || die "atrium_ratelimit_bench failed: $out"
  rps=$(sed -n 's/.*decisions_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
  log "atrium decisions: $out"
  ATRIUM_LINES+="$out"$'\n'
  record "atrium decisions" "$rps"
}
ATRIUM_LINES=""

run_redis_benchmarks() {
  run_setget
  rb "EVALSHA return 1" EVALSHA "$trivial_sha" 0
  # The rate-limit script on KEYS random keys: interval 1000 µs (1000/s), burst 2000, cost 1, as the Atrium run.
  rb "EVALSHA gcra" -r "$KEYS" EVALSHA "$gcra_sha" 1 "bench:rl:__rand_int__" 1000 2000 1
}

log "warm-up"
redis-benchmark -h "$HOST" -p "$REDIS_PORT" -c "$CONNECTIONS" -n 20000 -q -t set >/dev/null 2>&1
"$RATELIMIT_BENCH_BINARY" --redis-url "redis://$HOST:$REDIS_PORT/0" --threads "$CONNECTIONS" --seconds 1 \
  --keys "$KEYS" >/dev/null
for ((round = 1; round <= ROUNDS; round++)); do
  log "round $round/$ROUNDS"
  if ((round % 2 == 1)); then
    run_redis_benchmarks
    run_atrium
  else
    run_atrium
    run_redis_benchmarks
  fi
done

# --- report ------------------------------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v v="$1" 'BEGIN { printf "%\047.0f", v }' 2>/dev/null || echo "$1"; }

echo "# Rate-limit decisions through Redis vs redis-benchmark (same run, same private Redis)"
echo
echo "- Date: $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "- Command: \`CONNECTIONS=$CONNECTIONS REQUESTS=$REQUESTS SECONDS_PER_RUN=$SECONDS_PER_RUN KEYS=$KEYS ROUNDS=$ROUNDS bench/ratelimit_redis.sh\`"
echo "- nproc: $(nproc); CPU: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)"
echo "- Redis: $(redis-server --version | sed 's/ sha=.*//'), no persistence, loopback; redis-benchmark -c $CONNECTIONS -n $REQUESTS"
echo "- Atrium: revision $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO_ROOT" diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), $CONNECTIONS threads, $KEYS keys, ${SECONDS_PER_RUN} s per run"
echo "- Best of $ROUNDS round(s) per line; odd rounds run redis-benchmark first, even rounds Atrium first"
echo
echo "| operation | ops/s (best) | all runs | atrium decisions / this |"
echo "|---|---:|---|---:|"
atrium=${BEST["atrium decisions"]}
for name in "SET" "GET" "EVALSHA return 1" "EVALSHA gcra" "atrium decisions"; do
  [[ -n ${BEST[$name]:-} ]] || continue
  echo "| $name | $(fmt "${BEST[$name]}") | ${ALL[$name]% } | $(ratio "$atrium" "${BEST[$name]}") |"
done
echo
echo "Atrium runs (latency is per decision, client side):"
echo
echo '```'
printf '%s' "$ATRIUM_LINES"
echo '```'
