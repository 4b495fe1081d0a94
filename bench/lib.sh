# Shared helpers for the wrk-vs-nginx HTTP benchmarks (bench/http_*.sh). Sourced, not run.
#
# The sourcing script sets, before sourcing: BENCH_NAME (tag for progress lines, e.g. http_health) and REPO_ROOT.
# The common settings (environment variables, defaults below) are read here: ATRIUM_BINARY NGINX_BINARY
# WRK_BINARY DURATION WARMUP THREADS CONNECTIONS ROUNDS VERBOSE.
# This file defines HOST, the timeouts, the process ids cleanup stops, and:
#   log/die, bench_install_traps (cleanup on every exit path; calls bench_cleanup_extra when the script defines it),
#   duration_seconds, free_port, http_get, wait_http, bench_check_prereqs, bench_collect_facts,
#   atrium_listening_facts, nginx_start, parse_wrk, run_wrk, run_measurements, report_results.
# shellcheck shell=bash
# Globals set here for the sourcing script (facts, results) look unused to shellcheck:
# shellcheck disable=SC2034

ATRIUM_BINARY=${ATRIUM_BINARY:-$REPO_ROOT/build/atrium}
NGINX_BINARY=${NGINX_BINARY:-/usr/sbin/nginx}
WRK_BINARY=${WRK_BINARY:-wrk}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
VERBOSE=${VERBOSE:-0}

readonly HOST=127.0.0.1
readonly STARTUP_TIMEOUT_S=15   # bound on waiting for each server to answer
readonly STOP_TIMEOUT_S=10      # bound on waiting for each process to exit after SIGTERM

WORK_DIR=""
ATRIUM_PID=""
NGINX_PID=""
WRK_PID=""
REQUIRE_2XX=0                   # 1: any non-2xx response in a wrk run (warm-up included) stops the benchmark
declare -A RESULT=()            # RESULT[target,round] = parse_wrk output

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$BENCH_NAME" "$*" >&2
  exit 1
}

# --- cleanup ----------------------------------------------------------------------------------------------------

# stop_pid PID NAME: SIGTERM, bounded wait, then SIGKILL (children first, by pid) if it is still there.
stop_pid() {
  local pid=$1 name=$2 i child
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not exit within ${STOP_TIMEOUT_S}s; sending SIGKILL"
      for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        kill -KILL "$child" 2>/dev/null || true
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  stop_pid "$WRK_PID" wrk
  stop_pid "$NGINX_PID" nginx
  stop_pid "$ATRIUM_PID" atrium
  if declare -F bench_cleanup_extra >/dev/null; then
    bench_cleanup_extra
  fi
  if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
    rm -rf -- "$WORK_DIR"
  fi
  exit "$rc"
}

bench_install_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# --- helpers ----------------------------------------------------------------------------------------------------

# duration_seconds 10s|2m|1h|10 -> whole seconds
duration_seconds() {
  local d=$1 n unit
  [[ $d =~ ^([0-9]+)([smh]?)$ ]] || die "invalid duration '$d' (use e.g. 10s, 2m)"
  n=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[2]}
  case $unit in
    m) echo $((n * 60)) ;;
    h) echo $((n * 3600)) ;;
    *) echo "$n" ;;
  esac
}

port_busy() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null
  fi
}

# free_port: a loopback TCP port below the Linux ephemeral range with no socket on it (bounded attempts).
free_port() {
  local i port
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12000))
    if ! port_busy "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found in 200 attempts"
}

http_get() { curl --noproxy '*' --silent --show-error --fail --max-time 2 "$@"; }

# wait_http NAME PID URL LOGFILE: bounded wait until URL answers 2xx; fails if PID exits first.
wait_http() {
  local name=$1 pid=$2 url=$3 logfile=$4 i
  for ((i = 0; i < STARTUP_TIMEOUT_S * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during startup; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      die "$name did not start"
    fi
    if http_get -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "last lines of $logfile:"
  tail -n 20 "$logfile" >&2 || true
  die "$name did not answer $url within ${STARTUP_TIMEOUT_S}s"
}

# bench_parse_args [ARG]: a benchmark takes its settings from the environment; --help prints `usage` (which the script
# defines) and exits, no argument goes on, anything else stops it.
bench_parse_args() {
  case ${1:-} in
    -h | --help)
      usage
      exit 0
      ;;
    "") ;;
    *) die "unexpected argument '$1' (settings are environment variables; see --help)" ;;
  esac
}

# bench_select_backends: the backends BACKEND names (sqlite, postgres or both), into the array `backends`.
bench_select_backends() {
  case $BACKEND in
    sqlite) backends=(sqlite) ;;
    postgres) backends=(postgres) ;;
    both) backends=(sqlite postgres) ;;
    *) die "BACKEND must be sqlite, postgres or both (got '$BACKEND')" ;;
  esac
}

# bench_check_prereqs [TOOL...]: binaries, tools (curl awk timeout and any given) and the numeric settings.
# Sets warmup_s. Raises the open-file limit for the servers and wrk (best effort).
bench_check_prereqs() {
  local tool var
  if [[ ! -x $ATRIUM_BINARY ]]; then
    die "Atrium binary not found or not executable: $ATRIUM_BINARY
  Build the release binary first (from $REPO_ROOT):
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build
  or point ATRIUM_BINARY at an existing build."
  fi
  [[ -x $NGINX_BINARY ]] || die "nginx not found at $NGINX_BINARY (apt-get install nginx-light, or set NGINX_BINARY)"
  command -v "$WRK_BINARY" >/dev/null 2>&1 || die "wrk not found (apt-get install wrk, or set WRK_BINARY)"
  for tool in curl awk timeout "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
  done
  for var in THREADS CONNECTIONS ROUNDS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer (got '${!var}')"
  done
  ((CONNECTIONS >= THREADS)) || die "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS)"
  # shellcheck disable=SC2153  # DURATION is a setting of the sourcing script
  duration_seconds "$DURATION" >/dev/null
  warmup_s=$(duration_seconds "$WARMUP")
  ((ROUNDS <= 20)) || die "ROUNDS must be <= 20"

  # Room for the connections in both servers and wrk (best effort).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# bench_collect_facts: sets run_date nproc_n cpu_model atrium_version nginx_version wrk_version.
bench_collect_facts() {
  run_date=$(date '+%Y-%m-%d %H:%M:%S %Z')
  nproc_n=$(nproc)
  cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  [[ -n $cpu_model ]] || cpu_model="unknown"
  atrium_version=$("$ATRIUM_BINARY" version 2>&1 | head -n 1) || die "'$ATRIUM_BINARY version' failed"
  nginx_version=$("$NGINX_BINARY" -v 2>&1 | head -n 1 | sed 's/^nginx version: //')
  wrk_version=$("$WRK_BINARY" -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//') || true
  if [[ $atrium_version != *Release* ]]; then
    log "warning: '$atrium_version' does not look like a Release build; numbers will not be representative"
  fi
}

# atrium_listening_facts LOGFILE: sets io_threads io_threads_source atrium_db from Atrium's 'listening' line.
atrium_listening_facts() {
  local listening_line
  listening_line=$(grep -m 1 '"msg":"listening"' "$1" || true)
  io_threads=$(sed -n 's/.*"io_threads":\([0-9][0-9]*\).*/\1/p' <<<"$listening_line")
  io_threads_source="from Atrium's 'listening' log line"
  if [[ -z $io_threads ]]; then
    io_threads=${ATRIUM_SERVER_IO_THREADS:-0}
    ((io_threads > 0)) || io_threads=$nproc_n
    io_threads_source="assumed (not found in Atrium's log)"
  fi
  atrium_db=$(sed -n 's/.*"database":"\([^"]*\)".*/\1/p' <<<"$listening_line")
}

# nginx_start PREFIX PORT WORKERS LOCATION: a private nginx (daemon off, access log off) on HOST:PORT serving
# PREFIX/www as root, with `location = LOCATION` (a static file, application/json) and 404 for everything else.
# The caller puts the file at PREFIX/www/LOCATION. Sets NGINX_PID; returns once nginx answers LOCATION.
nginx_start() {
  local prefix=$1 port=$2 workers=$3 location=$4 conf build temp_paths module worker_connections
  conf="$prefix/nginx.conf"
  mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/www"
  build=$("$NGINX_BINARY" -V 2>&1)
  temp_paths="        client_body_temp_path $prefix/tmp/client_body;"
  for module in proxy fastcgi uwsgi scgi; do
    if [[ $build != *"--without-http_${module}_module"* ]]; then
      temp_paths+=$'\n'"        ${module}_temp_path $prefix/tmp/$module;"
    fi
  done
  worker_connections=$((CONNECTIONS + 256 > 1024 ? CONNECTIONS + 256 : 1024))
  cat >"$conf" <<EOF
# Private nginx instance for bench/$BENCH_NAME.sh (generated).
daemon off;
master_process on;
worker_processes $workers;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;

events {
    worker_connections $worker_connections;
}

http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server_tokens off;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
$temp_paths

    server {
        listen $HOST:$port;
        root $prefix/www;

        location = $location {
            default_type application/json;
            etag off;
            add_header Cache-Control no-store;
        }
        location / {
            return 404;
        }
    }
}
EOF

  "$NGINX_BINARY" -t -q -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" \
    >"$prefix/logs/configtest.log" 2>&1 || {
    cat "$prefix/logs/configtest.log" >&2
    die "nginx rejected the generated configuration $conf"
  }
  log "starting nginx on $HOST:$port (worker_processes $workers)"
  "$NGINX_BINARY" -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" \
    >"$prefix/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_http nginx "$NGINX_PID" "http://$HOST:$port$location" "$prefix/logs/error.log"
}

# --- load -------------------------------------------------------------------------------------------------------

# parse_wrk FILE -> "rps p50_ms p90_ms p99_ms requests socket_errors non2xx"
parse_wrk() {
  awk '
    function to_ms(v,   n) {
      n = v + 0
      if (v ~ /us$/) return n / 1000
      if (v ~ /ms$/) return n
      if (v ~ /m$/)  return n * 60000
      if (v ~ /h$/)  return n * 3600000
      if (v ~ /s$/)  return n * 1000
      return -1
    }
    /^Requests\/sec:/              { rps = $2 }
    $1 == "50%"                    { p50 = to_ms($2) }
    $1 == "90%"                    { p90 = to_ms($2) }
    $1 == "99%"                    { p99 = to_ms($2) }
    / requests in /                { reqs = $1 }
    /Socket errors:/               { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/    { non2xx = $NF }
    END {
      if (rps == "" || p50 == "" || p90 == "" || p99 == "" || p50 < 0 || p90 < 0 || p99 < 0) exit 1
      printf "%s %.3f %.3f %.3f %s %d %d\n", rps, p50, p90, p99, reqs, sockerr, non2xx
    }' "$1"
}

# run_wrk DURATION URL OUTFILE [WRK_OPTION...]: wrk in the background (so Ctrl-C/cleanup can stop it), bounded by
# timeout. The extra options (e.g. -H 'Authorization: ...') go before the URL.
run_wrk() {
  local duration=$1 url=$2 out=$3 limit rc=0
  shift 3
  limit=$(($(duration_seconds "$duration") + 30))
  timeout --kill-after=5 "$limit" "$WRK_BINARY" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$duration" "$@" "$url" \
    >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  if [[ $VERBOSE == 1 ]]; then
    printf -- '--- wrk %s (%s):\n' "$url" "$duration" >&2
    cat "$out" >&2
  fi
  if ((rc != 0)); then
    cat "$out" >&2 || true
    die "wrk failed (exit $rc) against $url"
  fi
}

# require_2xx TARGET WHAT OUTFILE: with REQUIRE_2XX=1, stop when the wrk run in OUTFILE saw a non-2xx response.
require_2xx() {
  local target=$1 what=$2 out=$3 parsed non2xx
  ((REQUIRE_2XX)) || return 0
  parsed=$(parse_wrk "$out") || {
    cat "$out" >&2
    die "could not parse wrk output for $target ($what)"
  }
  non2xx=${parsed##* }
  if ((non2xx > 0)); then
    cat "$out" >&2
    if [[ $target == atrium && -n ${BENCH_ATRIUM_LOG:-} && -f ${BENCH_ATRIUM_LOG:-} ]]; then
      log "last lines of $BENCH_ATRIUM_LOG:"
      tail -n 20 "$BENCH_ATRIUM_LOG" >&2 || true
    fi
    die "$target answered $non2xx non-2xx responses during the $what run; the numbers would be meaningless"
  fi
}

# run_measurements ATRIUM_URL NGINX_URL OUTDIR [WRK_OPTION...]: warm-up (WARMUP per target, Atrium first), then
# ROUNDS measured runs per target in ABBA order, into RESULT[target,round].
run_measurements() {
  local atrium_url=$1 nginx_url=$2 outdir=$3 target round out
  shift 3
  local -A url=([atrium]=$atrium_url [nginx]=$nginx_url)
  local -a order
  RESULT=()
  mkdir -p "$outdir"

  if ((warmup_s > 0)); then
    for target in atrium nginx; do
      log "warm-up: $target for $WARMUP"
      run_wrk "$WARMUP" "${url[$target]}" "$outdir/warmup-$target.txt" "$@"
      require_2xx "$target" warm-up "$outdir/warmup-$target.txt"
    done
  fi

  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(atrium nginx); else order=(nginx atrium); fi
    for target in "${order[@]}"; do
      out="$outdir/round$round-$target.txt"
      log "round $round/$ROUNDS: $target for $DURATION"
      run_wrk "$DURATION" "${url[$target]}" "$out" "$@"
      RESULT[$target,$round]=$(parse_wrk "$out") || {
        cat "$out" >&2
        die "could not parse wrk output for $target (round $round)"
      }
      require_2xx "$target" "round $round" "$out"
    done
  done
}

# --- report -----------------------------------------------------------------------------------------------------

# best_round TARGET -> round number with the highest requests/s
best_round() {
  local target=$1 r best=1
  for ((r = 2; r <= ROUNDS; r++)); do
    if awk -v a="${RESULT[$target,$r]%% *}" -v b="${RESULT[$target,$best]%% *}" 'BEGIN { exit !(a > b) }'; then
      best=$r
    fi
  done
  echo "$best"
}

fmt_ms() { awk -v v="$1" 'BEGIN { printf "%.3f ms", v }'; }

# order_text -> how the measured runs were ordered, for the report
order_text() {
  if ((ROUNDS % 2 == 0)); then
    echo "ABBA order (odd rounds Atrium first, even rounds nginx first)"
  else
    echo "alternating order (odd rounds Atrium first, even rounds nginx first)"
  fi
}

# report_results: Markdown tables of RESULT on stdout (best run per target with the ratio, every run, the means).
# Sets best_ratio mean_ratio rps_a p99_a rps_n p99_n mean_a mean_n problems.
report_results() {
  local best_atrium best_nginx p50_a p90_a p50_n p90_n round target rps p50 p90 p99 reqs sockerr non2xx
  local -a order
  local -A sum=([atrium]=0 [nginx]=0)
  best_atrium=$(best_round atrium)
  best_nginx=$(best_round nginx)
  read -r rps_a p50_a p90_a p99_a _ <<<"${RESULT[atrium,$best_atrium]}"
  read -r rps_n p50_n p90_n p99_n _ <<<"${RESULT[nginx,$best_nginx]}"
  best_ratio=$(awk -v a="$rps_a" -v n="$rps_n" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "n/a" }')

  echo "Reported: the best of $ROUNDS run(s) per target (highest requests/s); the latency percentiles are from that same run."
  echo
  echo "| target | requests/s | p50 | p90 | p99 | Atrium/nginx requests/s |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| atrium | $rps_a | $(fmt_ms "$p50_a") | $(fmt_ms "$p90_a") | $(fmt_ms "$p99_a") | $best_ratio |"
  echo "| nginx | $rps_n | $(fmt_ms "$p50_n") | $(fmt_ms "$p90_n") | $(fmt_ms "$p99_n") | 1.00 |"
  echo
  echo "Atrium/nginx requests/s ratio: **$best_ratio**"
  echo
  echo "All runs (in execution order):"
  echo
  echo "| round | target | requests/s | p50 | p90 | p99 | requests | socket errors | non-2xx |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  problems=0
  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(atrium nginx); else order=(nginx atrium); fi
    for target in "${order[@]}"; do
      read -r rps p50 p90 p99 reqs sockerr non2xx <<<"${RESULT[$target,$round]}"
      echo "| $round | $target | $rps | $(fmt_ms "$p50") | $(fmt_ms "$p90") | $(fmt_ms "$p99") | $reqs | $sockerr | $non2xx |"
      sum[$target]=$(awk -v s="${sum[$target]}" -v r="$rps" 'BEGIN { printf "%.2f", s + r }')
      if ((sockerr > 0 || non2xx > 0)); then problems=1; fi
    done
  done
  echo
  mean_a=$(awk -v s="${sum[atrium]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')
  mean_n=$(awk -v s="${sum[nginx]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')
  mean_ratio=$(awk -v a="$mean_a" -v n="$mean_n" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "n/a" }')
  echo "Mean requests/s over the $ROUNDS run(s): atrium $mean_a, nginx $mean_n (ratio $mean_ratio)."
  if ((problems)); then
    echo
    echo "**Warning: some runs had socket errors or non-2xx responses; see the table above.**"
  fi
}
