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

ATRIUM_BINARY=${ATRIUM_BINARY:-$REPO_ROOT/build/atrium}
NGINX_BINARY=${NGINX_BINARY:-/usr/sbin/nginx}
WRK_BINARY=${WRK_BINARY:-wrk}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
VERBOSE=${VERBOSE:-0}

BENCH_NAME=http_health
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

bench_install_traps

# --- checks -----------------------------------------------------------------------------------------------------

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *) die "unexpected argument '$1' (settings are environment variables; see --help)" ;;
esac

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
mkdir -p "$WORK_DIR/atrium-data" "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp" "$WORK_DIR/nginx/www" "$WORK_DIR/wrk"
chmod 700 "$WORK_DIR/atrium-data"

# --- Atrium -----------------------------------------------------------------------------------------------------

atrium_port=$(free_port)
atrium_url="http://$HOST:$atrium_port/health"
log "starting Atrium on $HOST:$atrium_port (access log off)"
ATRIUM_LOG_ACCESS_LOG=false "$ATRIUM_BINARY" serve --listen "$HOST:$atrium_port" --data-dir "$WORK_DIR/atrium-data" \
  >"$WORK_DIR/atrium.log" 2>&1 &
ATRIUM_PID=$!
wait_http Atrium "$ATRIUM_PID" "$atrium_url" "$WORK_DIR/atrium.log"

listening_line=$(grep -m 1 '"msg":"listening"' "$WORK_DIR/atrium.log" || true)
io_threads=$(sed -n 's/.*"io_threads":\([0-9][0-9]*\).*/\1/p' <<<"$listening_line")
io_threads_source="from Atrium's 'listening' log line"
if [[ -z $io_threads ]]; then
  io_threads=${ATRIUM_SERVER_IO_THREADS:-0}
  ((io_threads > 0)) || io_threads=$nproc_n
  io_threads_source="assumed (not found in Atrium's log)"
fi
atrium_db=$(sed -n 's/.*"database":"\([^"]*\)".*/\1/p' <<<"$listening_line")

http_get -o "$WORK_DIR/nginx/www/health" "$atrium_url" || die "cannot fetch $atrium_url"
chmod 644 "$WORK_DIR/nginx/www/health"
atrium_ctype=$(http_get -o /dev/null -w '%{content_type}' "$atrium_url")
atrium_sizes=$(http_get -o /dev/null -w '%{size_header} B headers + %{size_download} B body' "$atrium_url")

# --- nginx ------------------------------------------------------------------------------------------------------

nginx_port=$(free_port)
nginx_url="http://$HOST:$nginx_port/health"
nginx_prefix="$WORK_DIR/nginx"
nginx_conf="$nginx_prefix/nginx.conf"
nginx_build=$("$NGINX_BINARY" -V 2>&1)
temp_paths="        client_body_temp_path $nginx_prefix/tmp/client_body;"
for module in proxy fastcgi uwsgi scgi; do
  if [[ $nginx_build != *"--without-http_${module}_module"* ]]; then
    temp_paths+=$'\n'"        ${module}_temp_path $nginx_prefix/tmp/$module;"
  fi
done
worker_connections=$((CONNECTIONS + 256 > 1024 ? CONNECTIONS + 256 : 1024))
cat >"$nginx_conf" <<EOF
# Private nginx instance for bench/http_health.sh (generated).
daemon off;
master_process on;
worker_processes $io_threads;
pid $nginx_prefix/nginx.pid;
error_log $nginx_prefix/logs/error.log warn;

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
        listen $HOST:$nginx_port;
        root $nginx_prefix/www;

        location = /health {
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

"$NGINX_BINARY" -t -q -p "$nginx_prefix/" -c "$nginx_conf" -e "$nginx_prefix/logs/error.log" \
  >"$nginx_prefix/logs/configtest.log" 2>&1 || {
  cat "$nginx_prefix/logs/configtest.log" >&2
  die "nginx rejected the generated configuration $nginx_conf"
}
log "starting nginx on $HOST:$nginx_port (worker_processes $io_threads)"
"$NGINX_BINARY" -p "$nginx_prefix/" -c "$nginx_conf" -e "$nginx_prefix/logs/error.log" \
  >"$nginx_prefix/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_http nginx "$NGINX_PID" "$nginx_url" "$nginx_prefix/logs/error.log"

http_get -o "$WORK_DIR/nginx-body" "$nginx_url" || die "cannot fetch $nginx_url"
cmp -s "$WORK_DIR/nginx-body" "$nginx_prefix/www/health" || die "nginx /health body differs from Atrium's"
nginx_ctype=$(http_get -o /dev/null -w '%{content_type}' "$nginx_url")
nginx_sizes=$(http_get -o /dev/null -w '%{size_header} B headers + %{size_download} B body' "$nginx_url")
[[ $nginx_ctype == "$atrium_ctype" ]] || log "warning: Content-Type differs: Atrium '$atrium_ctype', nginx '$nginx_ctype'"

# --- load -------------------------------------------------------------------------------------------------------

declare -A URL=([atrium]=$atrium_url [nginx]=$nginx_url)
declare -A RESULT=()

if ((warmup_s > 0)); then
  for target in atrium nginx; do
    log "warm-up: $target for $WARMUP"
    run_wrk "$WARMUP" "${URL[$target]}" "$WORK_DIR/wrk/warmup-$target.txt"
  done
fi

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2 == 1)); then order=(atrium nginx); else order=(nginx atrium); fi
  for target in "${order[@]}"; do
    out="$WORK_DIR/wrk/round$round-$target.txt"
    log "round $round/$ROUNDS: $target for $DURATION"
    run_wrk "$DURATION" "${URL[$target]}" "$out"
    RESULT[$target,$round]=$(parse_wrk "$out") || {
      cat "$out" >&2
      die "could not parse wrk output for $target (round $round)"
    }
  done
done

# --- report -----------------------------------------------------------------------------------------------------

# best TARGET -> round number with the highest requests/s
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

wrk_cmd_atrium=$(printf '%q ' "$WRK_BINARY" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" "$atrium_url")
wrk_cmd_nginx=$(printf '%q ' "$WRK_BINARY" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" "$nginx_url")
if ((ROUNDS % 2 == 0)); then
  order_text="ABBA order (odd rounds Atrium first, even rounds nginx first)"
else
  order_text="alternating order (odd rounds Atrium first, even rounds nginx first)"
fi

best_atrium=$(best_round atrium)
best_nginx=$(best_round nginx)
read -r rps_a p50_a p90_a p99_a _ <<<"${RESULT[atrium,$best_atrium]}"
read -r rps_n p50_n p90_n p99_n _ <<<"${RESULT[nginx,$best_nginx]}"
ratio=$(awk -v a="$rps_a" -v n="$rps_n" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "n/a" }')

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
echo "Reported: the best of $ROUNDS run(s) per target (highest requests/s); the latency percentiles are from that same run."
echo
echo "| target | requests/s | p50 | p90 | p99 | Atrium/nginx requests/s |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| atrium | $rps_a | $(fmt_ms "$p50_a") | $(fmt_ms "$p90_a") | $(fmt_ms "$p99_a") | $ratio |"
echo "| nginx | $rps_n | $(fmt_ms "$p50_n") | $(fmt_ms "$p90_n") | $(fmt_ms "$p99_n") | 1.00 |"
echo
echo "Atrium/nginx requests/s ratio: **$ratio**"
echo
echo "All runs (in execution order):"
echo
echo "| round | target | requests/s | p50 | p90 | p99 | requests | socket errors | non-2xx |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
problems=0
declare -A SUM=([atrium]=0 [nginx]=0)
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2 == 1)); then order=(atrium nginx); else order=(nginx atrium); fi
  for target in "${order[@]}"; do
    read -r rps p50 p90 p99 reqs sockerr non2xx <<<"${RESULT[$target,$round]}"
    echo "| $round | $target | $rps | $(fmt_ms "$p50") | $(fmt_ms "$p90") | $(fmt_ms "$p99") | $reqs | $sockerr | $non2xx |"
    SUM[$target]=$(awk -v s="${SUM[$target]}" -v r="$rps" 'BEGIN { printf "%.2f", s + r }')
    if ((sockerr > 0 || non2xx > 0)); then problems=1; fi
  done
done
echo
mean_a=$(awk -v s="${SUM[atrium]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')
mean_n=$(awk -v s="${SUM[nginx]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')
mean_ratio=$(awk -v a="$mean_a" -v n="$mean_n" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "n/a" }')
echo "Mean requests/s over the $ROUNDS run(s): atrium $mean_a, nginx $mean_n (ratio $mean_ratio)."
if ((problems)); then
  echo
  echo "**Warning: some runs had socket errors or non-2xx responses; see the table above.**"
fi
