#!/usr/bin/env bash
# HTTP load benchmark: Atrium's GET /health against an nginx baseline, in the same run, on loopback.
#
# Starts the release binary (build/atrium, access log off) and a private nginx instance that serves a static
# file byte-identical to Atrium's /health body, warms each up, then runs wrk against both in ABBA order
# (round 1: Atrium then nginx, round 2: nginx then Atrium, ...). Prints a Markdown report on stdout
# (progress goes to stderr). All processes and temp files are removed on exit, failure or Ctrl-C.
#
# Usage: bench/http_health.sh
# Environment (defaults in brackets):
#   ATRIUM_BINARY  Atrium binary                      [<repo>/build/atrium]
#   NGINX_BINARY   nginx binary                       [/usr/sbin/nginx]
#   WRK_BINARY     wrk binary                         [wrk]
#   DURATION       wrk duration of each measured run  [10s]
#   WARMUP         wrk warm-up per target, 0 = none   [2s]
#   THREADS        wrk threads                        [2]
#   CONNECTIONS    wrk connections                    [64]
#   ROUNDS         measured runs per target           [2]
#   VERBOSE        1 = copy raw wrk output to stderr  [0]
# Atrium reads ATRIUM_* variables from the environment as usual; e.g. ATRIUM_SERVER_IO_THREADS=N sets its I/O
# threads (default: one per core), and nginx's worker_processes follows the number Atrium reports.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)


BENCH_NAME=http_health
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

bench_install_traps

# --- checks -----------------------------------------------------------------------------------------------------

bench_parse_args "$@"

# shellcheck disable=SC2119  # takes extra tool names, not the script's arguments
bench_check_prereqs

# --- environment facts ------------------------------------------------------------------------------------------

bench_collect_facts

command_line="DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS"
[[ ${ATRIUM_BINARY} == "$REPO_ROOT/build/atrium" ]] || command_line+=" ATRIUM_BINARY=$(printf '%q' "$ATRIUM_BINARY")"
command_line+=" $(printf '%q' "$0")"
inherited_atrium_env=$(env | sed -n 's/^\(ATRIUM_[A-Za-z0-9_]*\)=.*/\1/p' | grep -Ev '^ATRIUM_(BINARY|LOG_ACCESS_LOG)$' | sort | tr '\n' ' ' || true)

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-http-health.XXXXXX")
# nginx workers may run as an unprivileged user; they must be able to reach the static file.
chmod 755 "$WORK_DIR"
mkdir -p "$WORK_DIR/atrium-data" "$WORK_DIR/nginx/www" "$WORK_DIR/wrk"
chmod 700 "$WORK_DIR/atrium-data"

# --- Atrium -----------------------------------------------------------------------------------------------------

atrium_port=$(free_port)
atrium_url="http://$HOST:$atrium_port/health"
log "starting Atrium on $HOST:$atrium_port (access log off)"
ATRIUM_LOG_ACCESS_LOG=false "$ATRIUM_BINARY" serve --listen "$HOST:$atrium_port" --data-dir "$WORK_DIR/atrium-data" \
  >"$WORK_DIR/atrium.log" 2>&1 &
ATRIUM_PID=$!
wait_http Atrium "$ATRIUM_PID" "$atrium_url" "$WORK_DIR/atrium.log"

atrium_listening_facts "$WORK_DIR/atrium.log"

http_get -o "$WORK_DIR/nginx/www/health" "$atrium_url" || die "cannot fetch $atrium_url"
chmod 644 "$WORK_DIR/nginx/www/health"
atrium_ctype=$(http_get -o /dev/null -w '%{content_type}' "$atrium_url")
atrium_sizes=$(http_get -o /dev/null -w '%{size_header} B headers + %{size_download} B body' "$atrium_url")

# --- nginx ------------------------------------------------------------------------------------------------------

nginx_port=$(free_port)
nginx_url="http://$HOST:$nginx_port/health"
nginx_prefix="$WORK_DIR/nginx"
nginx_start "$nginx_prefix" "$nginx_port" "$io_threads" /health

http_get -o "$WORK_DIR/nginx-body" "$nginx_url" || die "cannot fetch $nginx_url"
cmp -s "$WORK_DIR/nginx-body" "$nginx_prefix/www/health" || die "nginx /health body differs from Atrium's"
nginx_ctype=$(http_get -o /dev/null -w '%{content_type}' "$nginx_url")
nginx_sizes=$(http_get -o /dev/null -w '%{size_header} B headers + %{size_download} B body' "$nginx_url")
[[ $nginx_ctype == "$atrium_ctype" ]] || log "warning: Content-Type differs: Atrium '$atrium_ctype', nginx '$nginx_ctype'"

# --- load -------------------------------------------------------------------------------------------------------

run_measurements "$atrium_url" "$nginx_url" "$WORK_DIR/wrk"

# --- report -----------------------------------------------------------------------------------------------------

wrk_cmd_atrium=$(printf '%q ' "$WRK_BINARY" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" "$atrium_url")
wrk_cmd_nginx=$(printf '%q ' "$WRK_BINARY" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" "$nginx_url")
order_text=$(order_text)

echo "# HTTP GET /health: Atrium vs nginx (same run, loopback)"
echo
echo "**Note: wrk and both servers share the same $nproc_n cores (nproc = $nproc_n); the load generator competes"
echo "with the server under test for CPU, so absolute numbers are understated. Compare the ratio, not the totals.**"
echo
echo "- Date: $run_date"
echo "- Command: \`$command_line\`"
echo "- wrk (Atrium): \`${wrk_cmd_atrium% }\`"
echo "- wrk (nginx): \`${wrk_cmd_nginx% }\`"
echo "- Warm-up: $WARMUP per target before the measured runs; measured: $ROUNDS run(s) per target, $order_text"
echo "- nproc: $nproc_n"
echo "- CPU: $cpu_model"
echo "- wrk: $wrk_version"
echo "- nginx: $nginx_version"
echo "- atrium: $atrium_version"
echo "- Atrium: \`$ATRIUM_BINARY serve --listen $HOST:$atrium_port --data-dir <tmp>\`, access log OFF for the load run" \
  "(ATRIUM_LOG_ACCESS_LOG=false), io_threads=$io_threads ($io_threads_source), database=${atrium_db:-unknown}"
if [[ -n ${inherited_atrium_env// /} ]]; then
  echo "- Also inherited by Atrium from the environment: ${inherited_atrium_env% }"
fi
echo "- nginx: private instance, worker_processes $io_threads (= Atrium I/O threads), access_log off," \
  "keepalive_requests 1000000, static file at location = /health, default_type application/json"
echo "- Response: Atrium $atrium_sizes ($atrium_ctype); nginx $nginx_sizes ($nginx_ctype); bodies byte-identical"
echo
report_results
