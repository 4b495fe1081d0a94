#!/usr/bin/env bash
# Gateway benchmark (docs/gateway.md): Atrium forwarding to an upstream, with authentication (a tenant owner's
# bearer JWT), rate limiting (on; limits set high enough not to refuse) and api_calls metering on, beside nginx as a
# plain reverse proxy (proxy_pass with upstream keep-alive) to the same upstream, in the same run, with the same wrk
# connections, on loopback. The upstream is a third, private nginx serving a small JSON file (1 worker).
#
# Reports requests/s of both (best of ROUNDS, ABBA order), their p99, the p99 of the upstream asked directly (so the
# latency each proxy adds), and the memory (RSS) each proxy holds for IDLE idle client connections (opened by a
# Python script, nothing sent), as the growth over the proxy at rest. Prints Markdown on stdout; progress on stderr.
#
# Usage: bench/proxy.sh
# Environment (defaults in brackets): ATRIUM_BINARY [build/atrium], NGINX_BINARY [/usr/sbin/nginx], WRK_BINARY
#   [wrk], DURATION [10s], WARMUP [2s], THREADS [2], CONNECTIONS [64], ROUNDS [2], IDLE [10000], VERBOSE [0].
# nginx as a proxy runs as many workers as Atrium has I/O threads.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
IDLE=${IDLE:-10000}

BENCH_NAME=proxy
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

readonly SUPER_EMAIL=root@bench.test SUPER_PASSWORD=root-password-1
readonly OWNER_EMAIL=owner@bench.test OWNER_PASSWORD=owner-password-1
UPSTREAM_PID=""

bench_cleanup_extra() { stop_pid "$UPSTREAM_PID" "upstream nginx"; }
bench_install_traps
bench_check_prereqs python3
bench_collect_facts
REQUIRE_2XX=1
WORK_DIR=$(mktemp -d /tmp/atrium-bench-proxy.XXXXXX)
chmod 755 "$WORK_DIR"

# rss_kib PID... -> the sum of the processes' VmRSS (KiB)
rss_kib() {
  local total=0 pid kib
  for pid in "$@"; do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + kib))
  done
  echo "$total"
}

# idle_growth_kib PORT PID...: opens IDLE connections to PORT, waits for the server to take them, and prints how much
# the processes' RSS grew (KiB); closes them after.
idle_growth_kib() {
  local port=$1 before after
  shift
  before=$(rss_kib "$@")
  python3 - "$port" "$IDLE" "$WORK_DIR/idle.ready" <<'PY' &
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
open(ready, "w").close()
time.sleep(8)
PY
  local pid=$!
  while [[ ! -f $WORK_DIR/idle.ready ]]; do
    kill -0 "$pid" 2>/dev/null || die "the idle-connection script failed (ulimit -n $(ulimit -n))"
    sleep 0.1
  done
  sleep 3
  after=$(rss_kib "$@")
  wait "$pid" || true
  rm -f "$WORK_DIR/idle.ready"
  echo $((after - before))
}

# --- the upstream -----------------------------------------------------------------------------------------------
upstream_port=$(free_port)
mkdir -p "$WORK_DIR/upstream/www/item"
printf '{"id":"item_1","name":"Proxied item","price":{"amount":1999,"currency":"EUR"},"tags":["a","b"]}\n' \
  >"$WORK_DIR/upstream/www/item/index.json"
chmod -R a+rX "$WORK_DIR/upstream"
nginx_start "$WORK_DIR/upstream" "$upstream_port" 1 /item/index.json
UPSTREAM_PID=$NGINX_PID
NGINX_PID=""

# --- Atrium -----------------------------------------------------------------------------------------------------
cat >"$WORK_DIR/routes.toml" <<EOF
[clusters.items]
endpoints = ["$HOST:$upstream_port"]

[[routes]]
name = "items"
path_prefix = "/item"
cluster = "items"
permission = "projects:read"
EOF
export ATRIUM_IDENTITY_PASSWORD_COST=minimum ATRIUM_LOG_ACCESS_LOG=false
export ATRIUM_PROXY_ROUTES_FILE=$WORK_DIR/routes.toml
export ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND=1000000 ATRIUM_GATEWAY_DEFAULT_BURST=1000000
"$ATRIUM_BINARY" admin create-superuser --email "$SUPER_EMAIL" --password "$SUPER_PASSWORD" \
  --data-dir "$WORK_DIR/data" >"$WORK_DIR/superuser.log" 2>&1 || die "create-superuser failed"
atrium_port=$(free_port)
BENCH_ATRIUM_LOG=$WORK_DIR/atrium.log
"$ATRIUM_BINARY" serve --listen "$HOST:$atrium_port" --data-dir "$WORK_DIR/data" >"$BENCH_ATRIUM_LOG" 2>&1 &
ATRIUM_PID=$!
wait_http Atrium "$ATRIUM_PID" "http://$HOST:$atrium_port/health" "$BENCH_ATRIUM_LOG"
atrium_listening_facts "$BENCH_ATRIUM_LOG"
token_of() {
  curl --noproxy '*' -s -X POST "http://$HOST:$atrium_port/v1/auth/token" -H 'Content-Type: application/json' \
    --data-binary "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
root=$(token_of "{\"grant_type\":\"password\",\"email\":\"$SUPER_EMAIL\",\"password\":\"$SUPER_PASSWORD\"}")
curl --noproxy '*' -sf -o /dev/null -X POST "http://$HOST:$atrium_port/v1/admin/tenants" \
  -H "Authorization: Bearer $root" -H 'Content-Type: application/json' \
  --data-binary "{\"slug\":\"bench\",\"name\":\"Bench\",\"owner_email\":\"$OWNER_EMAIL\",\"owner_password\":\"$OWNER_PASSWORD\"}" ||
  die "tenant creation failed"
owner=$(token_of "{\"grant_type\":\"password\",\"email\":\"$OWNER_EMAIL\",\"password\":\"$OWNER_PASSWORD\",\"tenant\":\"bench\"}")
code=$(curl --noproxy '*' -s -o "$WORK_DIR/probe.json" -w '%{http_code}' -H "Authorization: Bearer $owner" \
  "http://$HOST:$atrium_port/item/index.json")
[[ $code == 200 ]] || die "GET /item/index.json through Atrium answered $code"
cmp -s "$WORK_DIR/probe.json" "$WORK_DIR/upstream/www/item/index.json" || die "Atrium forwarded another body"
code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "http://$HOST:$atrium_port/item/index.json")
[[ $code == 401 ]] || die "GET without credentials answered $code, expected 401 (authentication must be on)"

# --- nginx as a reverse proxy -----------------------------------------------------------------------------------
proxy_port=$(free_port)
mkdir -p "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp"
cat >"$WORK_DIR/nginx/nginx.conf" <<EOF
daemon off;
worker_processes $io_threads;
pid $WORK_DIR/nginx/nginx.pid;
error_log $WORK_DIR/nginx/logs/error.log warn;
events { worker_connections $((IDLE + CONNECTIONS + 1024)); }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK_DIR/nginx/tmp/body;
    proxy_temp_path $WORK_DIR/nginx/tmp/proxy;
    upstream items { server $HOST:$upstream_port; keepalive 64; }
    server {
        listen $HOST:$proxy_port;
        location /item { proxy_pass http://items; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
"$NGINX_BINARY" -p "$WORK_DIR/nginx/" -c "$WORK_DIR/nginx/nginx.conf" -e "$WORK_DIR/nginx/logs/error.log" \
  >"$WORK_DIR/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_http nginx "$NGINX_PID" "http://$HOST:$proxy_port/item/index.json" "$WORK_DIR/nginx/logs/error.log"

# --- load -------------------------------------------------------------------------------------------------------
run_measurements "http://$HOST:$atrium_port/item/index.json" "http://$HOST:$proxy_port/item/index.json" \
  "$WORK_DIR/wrk" -H "Authorization: Bearer $owner"
run_wrk "$DURATION" "http://$HOST:$upstream_port/item/index.json" "$WORK_DIR/wrk/direct.txt"
read -r _ _ _ p99_direct _ <<<"$(parse_wrk "$WORK_DIR/wrk/direct.txt")"

echo "## Gateway: Atrium forwarding vs nginx proxy_pass ($run_date)"
echo
echo "Machine: $nproc_n cores ($cpu_model). $atrium_version, $atrium_db, $io_threads I/O threads ($io_threads_source);"
echo "nginx $nginx_version with $io_threads workers; $wrk_version, $THREADS threads, $CONNECTIONS connections, $DURATION per run."
echo "Atrium: bearer JWT verified, tenant resolved, permission checked, rate limit decided, api_calls counted, the"
echo "identity headers and signed token added, per request. nginx: plain proxy_pass with upstream keep-alive."
echo
report_results
echo
nginx_workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
# shellcheck disable=SC2086  # the worker pids are words
atrium_idle=$(idle_growth_kib "$atrium_port" "$ATRIUM_PID")
# shellcheck disable=SC2086
nginx_idle=$(idle_growth_kib "$proxy_port" "$NGINX_PID" $nginx_workers)
echo "| | Atrium | nginx | upstream directly |"
echo "|---|---:|---:|---:|"
echo "| p99 | $(fmt_ms "$p99_a") | $(fmt_ms "$p99_n") | $(fmt_ms "$p99_direct") |"
echo "| p99 added by the proxy | $(fmt_ms "$(awk -v a="$p99_a" -v d="$p99_direct" 'BEGIN { print a - d }')") | $(fmt_ms "$(awk -v a="$p99_n" -v d="$p99_direct" 'BEGIN { print a - d }')") | |"
echo "| RSS for $IDLE idle client connections | $((atrium_idle / 1024)) MiB ($((atrium_idle * 1024 / IDLE)) B each) | $((nginx_idle / 1024)) MiB ($((nginx_idle * 1024 / IDLE)) B each) | |"
