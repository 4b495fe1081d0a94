#!/usr/bin/env bash
# Usage ingestion benchmark: POST /v1/usage in batches of BATCH (1,000) events with unique idempotency keys, over
# HTTP with wrk (bench/post_usage.lua, an API key holding usage:write), on SQLite and/or PostgreSQL, beside the
# floor measured in the same run by atrium_metering_bench: the same rows inserted directly through
# storage::Database in 1,000-row transactions, and Metering::ingest without HTTP.
#
# On PostgreSQL the baseline of issue 22 is measured last, on the same database: a raw COPY (psql \copy, one
# transaction) of EVENTS rows of the same shape into usage_events, the fastest way PostgreSQL takes these rows.
#
# Events/s over HTTP is counted from the 202 answers that accepted the whole batch (any other answer stops the
# benchmark) and checked against the rows in usage_events afterwards. Then, on the same server, POST /v1/events
# (product events: the same ingestion plus the type rules, real-time counters and activity marks; bench/post_usage.lua with
# KIND=events, 100 users, an API key holding analytics:write) is measured the same way, with /v1/usage as its baseline.
#
# Usage: bench/metering.sh
# Environment: BACKEND sqlite|postgres|both [sqlite]; BATCH [1000]; DURATION [10s]; THREADS [2]; CONNECTIONS [4];
#   ATRIUM_BINARY [build/atrium]; BENCH_BINARY [build/bench/atrium_metering_bench]; EVENTS (floor rows) [200000];
#   PG_URL (a PostgreSQL superuser URL, for BACKEND=postgres; default $ATRIUM_TEST_POSTGRES_URL).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BACKEND=${BACKEND:-sqlite}
BATCH=${BATCH:-1000}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-4}
EVENTS=${EVENTS:-200000}
ATRIUM_BINARY=${ATRIUM_BINARY:-$REPO_ROOT/build/atrium}
BENCH_BINARY=${BENCH_BINARY:-$REPO_ROOT/build/bench/atrium_metering_bench}
PG_URL=${PG_URL:-${ATRIUM_TEST_POSTGRES_URL:-}}
HOST=127.0.0.1

log() { printf '[metering] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-metering.XXXXXX")
ATRIUM_PID=""
cleanup() {
  if [[ -n $ATRIUM_PID ]] && kill -0 "$ATRIUM_PID" 2>/dev/null; then
    kill -TERM "$ATRIUM_PID" 2>/dev/null || true
    wait "$ATRIUM_PID" 2>/dev/null || true
  fi
  rm -rf -- "$WORK_DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
call() { # METHOD PATH EXPECTED OUT [TOKEN [BODY]]
  local code
  local -a args=(--noproxy '*' -sS --max-time 30 -X "$1" -o "$4" -w '%{http_code}')
  [[ -z ${5:-} ]] || args+=(-H "Authorization: Bearer $5")
  [[ -z ${6:-} ]] || args+=(-H 'Content-Type: application/json' --data-binary "$6")
  code=$(curl "${args[@]}" "$BASE$2")
  [[ $code == "$3" ]] || die "$1 $2 answered $code: $(cat "$4")"
}

run_backend() {
  local backend=$1 dir="$WORK_DIR/$1" port db_url="" scratch="" floor http_events bad secs rows
  mkdir -p "$dir/data"
  local -a args=(--data-dir "$dir/data")
  # No rate limit on the benchmark tenant (gateway.*: 0 = unlimited), so the ingestion path is what is measured.
  local -a env_=(ATRIUM_LOG_ACCESS_LOG=false ATRIUM_IDENTITY_PASSWORD_COST=minimum ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND=0)
  if [[ $backend == postgres ]]; then
    [[ -n $PG_URL ]] || die "PG_URL (or ATRIUM_TEST_POSTGRES_URL) is needed for PostgreSQL"
    scratch="atrium_metering_$RANDOM$RANDOM"
    psql "$PG_URL" -qAt -c "CREATE DATABASE $scratch" >/dev/null
    db_url="${PG_URL%/*}/$scratch"
    args+=(--database-url "$db_url")
  fi
  log "=== $backend: floor (atrium_metering_bench --events $EVENTS) ==="
  if [[ $backend == postgres ]]; then
    floor=$("$BENCH_BINARY" --events "$EVENTS" --database-url "$PG_URL")
  else
    floor=$("$BENCH_BINARY" --events "$EVENTS")
  fi
  echo "$floor" >&2
  env "${env_[@]}" "$ATRIUM_BINARY" admin create-superuser --email root@bench.test --password root-password-1 \
    "${args[@]}" >"$dir/superuser.log" 2>&1 || die "create-superuser failed: $(cat "$dir/superuser.log")"
  port=$(free_port)
  BASE="http://$HOST:$port"
  env "${env_[@]}" "$ATRIUM_BINARY" serve --listen "$HOST:$port" "${args[@]}" >"$dir/atrium.log" 2>&1 &
  ATRIUM_PID=$!
  for _ in $(seq 100); do curl --noproxy '*' -sf "$BASE/health" >/dev/null 2>&1 && break; sleep 0.1; done
  call POST /v1/auth/token 200 "$dir/root.json" "" \
    '{"grant_type":"password","email":"root@bench.test","password":"root-password-1"}'
  call POST /v1/admin/tenants 201 "$dir/tenant.json" "$(json_get "$dir/root.json" access_token)" \
    '{"slug":"bench","name":"Bench","owner_email":"owner@bench.test","owner_password":"owner-password-1"}'
  call POST /v1/auth/token 200 "$dir/owner.json" "" \
    '{"grant_type":"password","email":"owner@bench.test","password":"owner-password-1","tenant":"bench"}'
  call POST /v1/api-keys 201 "$dir/key.json" "$(json_get "$dir/owner.json" access_token)" \
    '{"name":"ingest","permissions":["usage:write"]}'
  call POST /v1/api-keys 201 "$dir/events_key.json" "$(json_get "$dir/owner.json" access_token)" \
    '{"name":"events","permissions":["analytics:write"]}'
  local key events_key
  key=$(json_get "$dir/key.json" secret)
  events_key=$(json_get "$dir/events_key.json" secret)
  log "warm-up (2s)"
  RUN_ID=warm BATCH=$BATCH wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -s "$SCRIPT_DIR/post_usage.lua" \
    -H "Authorization: Bearer $key" "$BASE/v1/usage" >"$dir/warm.txt"
  log "measuring ($DURATION, $THREADS threads, $CONNECTIONS connections, batches of $BATCH)"
  RUN_ID=run BATCH=$BATCH wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency \
    -s "$SCRIPT_DIR/post_usage.lua" -H "Authorization: Bearer $key" "$BASE/v1/usage" >"$dir/wrk.txt"
  cat "$dir/wrk.txt" >&2
  bad=$(awk '$1 == "bad" { print $2 }' "$dir/wrk.txt")
  http_events=$(awk '$1 == "events" { print $2 }' "$dir/wrk.txt")
  [[ $bad == 0 ]] || die "$bad answers were not 202 with every event accepted"
  secs=$(awk '/requests in/ { for (i = 1; i <= NF; i++) if ($i ~ /s,$/) { sub(/s,/, "", $i); print $i } }' "$dir/wrk.txt")
  log "product events: warm-up (2s), then measuring ($DURATION)"
  KIND=events RUN_ID=warm BATCH=$BATCH wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -s "$SCRIPT_DIR/post_usage.lua" \
    -H "Authorization: Bearer $events_key" "$BASE/v1/events" >"$dir/events_warm.txt"
  KIND=events RUN_ID=run BATCH=$BATCH wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency \
    -s "$SCRIPT_DIR/post_usage.lua" -H "Authorization: Bearer $events_key" "$BASE/v1/events" >"$dir/events.txt"
  cat "$dir/events.txt" >&2
  [[ $(awk '$1 == "bad" { print $2 }' "$dir/events.txt") == 0 ]] || die "POST /v1/events: answers other than 202"
  local events_n events_secs
  events_n=$(awk '$1 == "events" { print $2 }' "$dir/events.txt")
  events_secs=$(awk '/requests in/ { for (i = 1; i <= NF; i++) if ($i ~ /s,$/) { sub(/s,/, "", $i); print $i } }' "$dir/events.txt")
  kill -TERM "$ATRIUM_PID"
  wait "$ATRIUM_PID" || true
  ATRIUM_PID=""
  local copy_line=""
  if [[ $backend == sqlite ]]; then
    rows=$(sqlite3 "$dir/data/atrium.db" "SELECT COUNT(*) FROM usage_events")
  else
    rows=$(psql "$db_url" -qAt -c "SELECT COUNT(*) FROM usage_events")
    # The raw COPY baseline: rows as the HTTP run stored them (metric, quantity, timestamp, properties), new keys.
    local tenant_id start ms
    tenant_id=$(json_get "$dir/tenant.json" id)
    awk -v n="$EVENTS" -v t="$tenant_id" -v now="$(date +%s)000" 'BEGIN {
      for (i = 1; i <= n; i++) printf "%s,copy-%d,api.calls,%d,%s,\"{\"\"region\"\":\"\"eu\"\"}\",%s\n", t, i, i % 10 + 1, now, now
    }' >"$dir/copy.csv"
    start=$(date +%s%N)
    psql "$db_url" -qAt -v ON_ERROR_STOP=1 -c "\\copy usage_events (tenant_id, idempotency_key, metric, quantity, ts, properties, received_at) FROM '$dir/copy.csv' WITH (FORMAT csv)" >/dev/null
    ms=$((($(date +%s%N) - start) / 1000000))
    copy_line="- raw COPY baseline, same database after the run: $EVENTS rows in ${ms} ms: **$(awk -v e="$EVENTS" -v m="$ms" 'BEGIN { printf "%.0f", e * 1000 / m }') rows/s**; HTTP / COPY = $(awk -v e="$http_events" -v s="$secs" -v n="$EVENTS" -v m="$ms" 'BEGIN { printf "%.2f", (e / s) / (n * 1000 / m) }')"
    psql "$PG_URL" -qAt -c "DROP DATABASE $scratch WITH (FORCE)" >/dev/null
  fi
  echo "## $backend"
  echo
  echo "- HTTP: $http_events events acknowledged in ${secs}s: **$(awk -v e="$http_events" -v s="$secs" 'BEGIN { printf "%.0f", e / s }') events/s**" \
    "($(grep 'Requests/sec' "$dir/wrk.txt" | awk '{print $2}') requests/s of $BATCH); rows in usage_events after the run" \
    "(warm-up included): $rows"
  echo "- latency: $(grep -E '^ +(50|99)%' "$dir/wrk.txt" | awk '{sub(/%/, "", $1); printf "p%s %s; ", $1, $2}')"
  echo "- POST /v1/events, same server, after it: $events_n product events in ${events_secs}s:" \
    "**$(awk -v e="$events_n" -v s="$events_secs" 'BEGIN { printf "%.0f", e / s }') events/s**;" \
    "latency $(grep -E '^ +(50|99)%' "$dir/events.txt" | awk '{sub(/%/, "", $1); printf "p%s %s; ", $1, $2}')"
  [[ -z $copy_line ]] || echo "$copy_line"
  echo "- floor, same run:"
  echo '```'
  echo "$floor"
  echo '```'
  echo
}

case $BACKEND in
  sqlite) backends=(sqlite) ;;
  postgres) backends=(postgres) ;;
  both) backends=(sqlite postgres) ;;
  *) die "BACKEND must be sqlite, postgres or both" ;;
esac
echo "# POST /v1/usage ingestion (batches of $BATCH), $(date -u +%Y-%m-%dT%H:%M:%SZ), nproc $(nproc)"
echo
echo "Command: \`BACKEND=$BACKEND DURATION=$DURATION THREADS=$THREADS CONNECTIONS=$CONNECTIONS bench/metering.sh\`;" \
  "wrk and the server share the machine's cores."
echo
for b in "${backends[@]}"; do run_backend "$b"; done
