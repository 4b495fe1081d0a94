#!/usr/bin/env bash
# Tenant scale on PostgreSQL (issue 22): what start-up, memory, connections and a random tenant's read cost with
# 10 tenants, and again with SCHEMA_TENANTS at the schema level and DATABASE_TENANTS at the database level, on one
# private PostgreSQL server, the same Atrium release binary and settings in both phases.
#
# Creates a super admin, starts `atrium serve` (Atrium as role atrium_app, migrations and provisioning as the owner
# atrium_owner; tenancy.max_open_tenant_pools=MAX_POOLS and tenancy.max_tenant_connections=MAX_TENANT_CONNECTIONS,
# under the test server's max_connections of 200), creates tenants with POST /v1/admin/tenants (one owner for all of
# them; PARALLEL requests at a time), and per phase:
#   - restarts Atrium and times SIGTERM-free start-up to the first 200 from /ready, then reads its RSS and the
#     server's connections of Atrium's two roles;
#   - signs the owner in to SAMPLE tenants picked at random (half of each level) and runs wrk for DURATION with every
#     request a GET /v1/projects?limit=20 of one of them at random (bench/random_tenant.lua), any non-2xx stopping
#     the benchmark (but in the baseline phase, whose errors are counted); then reads RSS, connections,
#     atrium_db_tenant_pools_open and how many connections to tenant databases were opened during the load
#     (pg_stat_database.sessions), to the tenants read and to the others.
# The second phase is measured twice: with those settings, and as the baseline with the pool cap alone
# (tenancy.max_open_tenant_pools=32, so that 32 pools of tenancy.tenant_pool_size 4 stay under 200 connections;
# tenancy.max_tenant_connections=0), the only cap before tenancy.max_tenant_connections existed.
# Prints a Markdown report on stdout (progress on stderr); removes every process and file on exit.
#
# Usage: bench/tenant_scale.sh
# Environment (defaults in brackets):
#   SCHEMA_TENANTS    tenants at the schema level in the second phase    [10000]
#   DATABASE_TENANTS  tenants at the database level in the second phase  [500]
#   BASE_TENANTS      tenants of the first phase, half at each level     [10]
#   SAMPLE            tenants whose reads the load picks from            [200]
#   PARALLEL          tenant creations in flight                         [4]
#   CHUNK             tenants created per super admin token              [500]
#   MAX_POOLS         tenancy.max_open_tenant_pools                       [1000]
#   MAX_TENANT_CONNECTIONS  tenancy.max_tenant_connections                [150]
#   ATRIUM_BINARY DURATION WARMUP THREADS CONNECTIONS VERBOSE WRK_BINARY as in bench/lib.sh [build/atrium, 10s, 2s, 2, 64]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

SCHEMA_TENANTS=${SCHEMA_TENANTS:-10000}
DATABASE_TENANTS=${DATABASE_TENANTS:-500}
BASE_TENANTS=${BASE_TENANTS:-10}
SAMPLE=${SAMPLE:-200}
PARALLEL=${PARALLEL:-4}
CHUNK=${CHUNK:-500}
MAX_POOLS=${MAX_POOLS:-1000}
MAX_TENANT_CONNECTIONS=${MAX_TENANT_CONNECTIONS:-150}

BENCH_NAME=tenant_scale  # lib.sh's log lines
# shellcheck disable=SC2034
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
# shellcheck source=bench/lib_api.sh
source "$SCRIPT_DIR/lib_api.sh"

readonly SUPER_EMAIL=root@bench.test SUPER_PASSWORD=root-password-1
readonly OWNER_EMAIL=owner@bench.test OWNER_PASSWORD=owner-password-1
readonly READY_TIMEOUT_S=600

BENCH_ATRIUM_LOG=""
ATRIUM_BASE=""

usage() { sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

bench_install_traps
bench_parse_args "$@"
for n in SCHEMA_TENANTS DATABASE_TENANTS BASE_TENANTS SAMPLE PARALLEL CHUNK MAX_POOLS MAX_TENANT_CONNECTIONS; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
((BASE_TENANTS >= 2 && SAMPLE >= 2 && PARALLEL >= 1 && CHUNK >= 1)) ||
  die "BASE_TENANTS and SAMPLE at least 2, PARALLEL and CHUNK at least 1"
bench_check_prereqs python3 shuf
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-tenant-scale.XXXXXX")
chmod 755 "$WORK_DIR"  # the postgres user reaches its data directory under it

psql_value() { "$PG_BIN/psql" "$PG_SUPER_URL" -qAt -c "$1"; }
connections() { psql_value "SELECT count(*) FROM pg_stat_activity WHERE usename IN ('atrium_app', 'atrium_owner')"; }
# Connections ever opened to the tenants' own databases (PostgreSQL counts them per database): "read" (the
# databases of the tenants in READ_SLUGS, comma-separated), then "others".
tenant_sessions() {
  "$PG_BIN/psql" "postgresql://atrium_owner@$HOST:$PG_PORT/atrium_bench" -qAt -F ' ' -v slugs="$READ_SLUGS" <<'SQL'
WITH read AS (SELECT 'atrium_t_' || replace(id::text, '-', '') AS datname FROM tenants
              WHERE slug = ANY(string_to_array(:'slugs', ',')))
SELECT coalesce(sum(sessions) FILTER (WHERE datname IN (SELECT datname FROM read)), 0),
       coalesce(sum(sessions) FILTER (WHERE datname NOT IN (SELECT datname FROM read)), 0)
FROM pg_stat_database WHERE datname LIKE 'atrium_t_%'
SQL
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$ATRIUM_PID/status"; }
pools_open() { curl --noproxy '*' -sS "$ATRIUM_BASE/metrics" | awk '$1 == "atrium_db_tenant_pools_open" { print $2 }'; }

ATRIUM_ENV=(ATRIUM_LOG_ACCESS_LOG=false ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND=1000000
  ATRIUM_GATEWAY_DEFAULT_BURST=1000000)
POOL_ENV=("ATRIUM_TENANCY_MAX_OPEN_TENANT_POOLS=$MAX_POOLS" "ATRIUM_TENANCY_MAX_TENANT_CONNECTIONS=$MAX_TENANT_CONNECTIONS")
BASELINE_POOL_ENV=(ATRIUM_TENANCY_MAX_OPEN_TENANT_POOLS=32 ATRIUM_TENANCY_MAX_TENANT_CONNECTIONS=0)
ATRIUM_ARGS=()

# start_atrium: serve on a free port; sets START_S (process start to the first 200 from /ready).
start_atrium() {
  local port start i
  port=$(free_port)
  ATRIUM_BASE="http://$HOST:$port"
  BENCH_ATRIUM_LOG="$WORK_DIR/atrium-$port.log"
  start=$(now_ns)
  env "${ATRIUM_ENV[@]}" "${POOL_ENV[@]}" "$ATRIUM_BINARY" serve --listen "$HOST:$port" "${ATRIUM_ARGS[@]}" >"$BENCH_ATRIUM_LOG" 2>&1 &
  ATRIUM_PID=$!
  for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
    if curl --noproxy '*' -sS --fail --max-time 2 -o /dev/null "$ATRIUM_BASE/ready" 2>/dev/null; then
      START_S=$(elapsed_s "$start")
      return 0
    fi
    kill -0 "$ATRIUM_PID" 2>/dev/null || {
      tail -n 30 "$BENCH_ATRIUM_LOG" >&2
      die "Atrium exited during start-up"
    }
    sleep 0.05
  done
  die "Atrium was not ready within ${READY_TIMEOUT_S}s"
}

# create_tenants COUNT ISOLATION PREFIX: POST /v1/admin/tenants COUNT times, PARALLEL in flight, in chunks of
# CHUNK with a fresh super admin token each (a chunk must end within the access token's life); every answer 201.
create_tenants() {
  local count=$1 isolation=$2 prefix=$3 first last start i
  ((count > 0)) || return 0
  log "creating $count tenants at the $isolation level ($PARALLEL at a time)"
  start=$(now_ns)
  for ((first = 1; first <= count; first += CHUNK)); do
    last=$((first + CHUNK - 1 < count ? first + CHUNK - 1 : count))
    ROOT_TOKEN=$(sign_in "$SUPER_EMAIL" "$SUPER_PASSWORD")
    create_chunk "$first" "$last" "$isolation" "$prefix"
  done
  log "created $count $isolation tenants in $(elapsed_s "$start")s"
  for ((i = 1; i <= count; i++)); do echo "$prefix-$i"; done >>"$WORK_DIR/slugs-$isolation"
}

# create_chunk FIRST LAST ISOLATION PREFIX: tenants PREFIX-FIRST .. PREFIX-LAST.
create_chunk() {
  local from=$1 to=$2 isolation=$3 prefix=$4 i created
  local cfg="$WORK_DIR/create.curl" out="$WORK_DIR/create.out"
  {
    for ((i = from; i <= to; i++)); do
      printf 'url = "%s/v1/admin/tenants"\nrequest = "POST"\nmax-time = 120\n' "$ATRIUM_BASE"
      printf 'header = "Content-Type: application/json"\nheader = "Authorization: Bearer %s"\n' "$ROOT_TOKEN"
      printf 'data-binary = "{\\"slug\\":\\"%s-%d\\",\\"name\\":\\"%s %d\\",\\"isolation\\":\\"%s\\",\\"owner_email\\":\\"%s\\"}"\n' \
        "$prefix" "$i" "$prefix" "$i" "$isolation" "$OWNER_EMAIL"
      printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
      ((i == to)) || printf 'next\n'
    done
  } >"$cfg"
  curl --noproxy '*' --silent --no-progress-meter --show-error --parallel --parallel-max "$PARALLEL" --config "$cfg" \
    >"$out" || die "creating $prefix tenants $from-$to: curl failed"
  created=$(grep -c '^201$' "$out" || true)
  ((created == to - from + 1)) ||
    die "only $created of tenants $prefix-$from..$to answered 201: $(sort "$out" | uniq -c | head)"
  log "  $prefix-$to"
}

# measure PHASE [tolerant]: restart, start-up, idle figures, then the random-tenant read load. Appends a row to the
# report. Errors (non-2xx answers, socket errors and timeouts) stop the run unless the second argument is given.
measure() {
  local phase=$1 tolerant=${2:-} tenants idle_rss idle_conn slug parsed rps p50 p99 reqs sockerr non2xx load_rss load_conn pools
  local read_before others_before read_after others_after opened
  local per_level tokens="$WORK_DIR/tokens-${1// /_}"
  tenants=$("$PG_BIN/psql" "postgresql://atrium_owner@$HOST:$PG_PORT/atrium_bench" -qAt \
    -c "SELECT count(*) FROM tenants WHERE status <> 'deleted'")
  stop_pid "$ATRIUM_PID" atrium
  ATRIUM_PID=""
  sleep 1
  start_atrium
  idle_rss=$(rss_mib)
  idle_conn=$(connections)
  log "$phase: $tenants tenants, ready in ${START_S}s, RSS ${idle_rss} MiB, $idle_conn connections"
  per_level=$((SAMPLE / 2))
  : >"$tokens"
  READ_SLUGS=""
  for level in schema database; do
    while read -r slug; do
      sign_in "$OWNER_EMAIL" "$OWNER_PASSWORD" "$slug" >>"$tokens"
      READ_SLUGS+="${READ_SLUGS:+,}$slug"
    done < <(shuf -n "$per_level" "$WORK_DIR/slugs-$level")
  done
  log "$phase: $(wc -l <"$tokens") owners signed in; reads of a random one of them for $DURATION"
  export TOKENS_FILE=$tokens
  run_wrk "$WARMUP" "$ATRIUM_BASE/v1/projects?limit=20" "$WORK_DIR/warm" -s "$SCRIPT_DIR/random_tenant.lua"
  read -r read_before others_before < <(tenant_sessions)
  run_wrk "$DURATION" "$ATRIUM_BASE/v1/projects?limit=20" "$WORK_DIR/wrk" -s "$SCRIPT_DIR/random_tenant.lua"
  read -r read_after others_after < <(tenant_sessions)
  opened="$((read_after - read_before)) / $((others_after - others_before))"
  parsed=$(parse_wrk "$WORK_DIR/wrk") || die "cannot parse wrk's output"
  read -r rps p50 _ p99 reqs sockerr non2xx <<<"$parsed"
  ((non2xx == 0 && sockerr == 0)) || [[ -n $tolerant ]] || {
    cat "$WORK_DIR/wrk" >&2
    die "$phase: $non2xx non-2xx answers, $sockerr socket errors"
  }
  load_rss=$(rss_mib)
  load_conn=$(connections)
  pools=$(pools_open)
  printf '| %s | %s | %s s | %s MiB | %s | %s | %s | %s ms | %s ms | %s | %s MiB | %s | %s | %s |\n' "$phase" \
    "$tenants" "$START_S" "$idle_rss" "$idle_conn" "$(wc -l <"$tokens")" "$rps" "$p50" "$p99" "$((non2xx + sockerr))" \
    "$load_rss" "$load_conn" "${pools:-?}" "$opened" >>"$WORK_DIR/report.md"
  log "$phase: $rps requests/s, p99 $p99 ms, RSS ${load_rss} MiB, $load_conn connections, $pools tenant pools open," \
    "$opened tenant connections opened during the load (tenants read / others)"
}

# --- run ----------------------------------------------------------------------------------------------------------

bench_collect_facts
start_postgres "$WORK_DIR"
ATRIUM_ARGS=(--data-dir "$WORK_DIR/atrium-data" --database-url "postgresql://atrium_app@$HOST:$PG_PORT/atrium_bench")
ATRIUM_ENV+=("ATRIUM_STORAGE_ADMIN_DATABASE_URL=postgresql://atrium_owner@$HOST:$PG_PORT/atrium_bench")
mkdir -p "$WORK_DIR/atrium-data"
chmod 700 "$WORK_DIR/atrium-data"
env "${ATRIUM_ENV[@]}" "$ATRIUM_BINARY" admin create-superuser --email "$SUPER_EMAIL" --password "$SUPER_PASSWORD" \
  "${ATRIUM_ARGS[@]}" >"$WORK_DIR/create-superuser.log" 2>&1 || die "create-superuser failed"
start_atrium
ROOT_TOKEN=$(sign_in "$SUPER_EMAIL" "$SUPER_PASSWORD")
# The owner of every tenant: created with the first one.
api_call POST /v1/admin/tenants 201 "$WORK_DIR/first.json" "$ROOT_TOKEN" \
  "{\"slug\":\"schema-0\",\"name\":\"schema 0\",\"isolation\":\"schema\",\"owner_email\":\"$OWNER_EMAIL\",\"owner_password\":\"$OWNER_PASSWORD\"}"
echo schema-0 >"$WORK_DIR/slugs-schema"
: >"$WORK_DIR/slugs-database"
: >"$WORK_DIR/report.md"
create_tenants $((BASE_TENANTS / 2 - 1)) schema base-schema
create_tenants $((BASE_TENANTS - BASE_TENANTS / 2)) database base-database
measure "$BASE_TENANTS tenants"
create_start=$(now_ns)
create_tenants $((SCHEMA_TENANTS - BASE_TENANTS / 2)) schema schema
create_tenants $((DATABASE_TENANTS - (BASE_TENANTS - BASE_TENANTS / 2))) database database
create_s=$(elapsed_s "$create_start")
measure "$SCHEMA_TENANTS + $DATABASE_TENANTS tenants"
POOL_ENV=("${BASELINE_POOL_ENV[@]}")
measure "$SCHEMA_TENANTS + $DATABASE_TENANTS tenants, baseline: 32 pools, no connection cap" tolerant
stop_pid "$ATRIUM_PID" atrium
ATRIUM_PID=""

cat <<EOF
## Tenant scale on PostgreSQL: $BASE_TENANTS tenants beside $SCHEMA_TENANTS at the schema level and $DATABASE_TENANTS at the database level

Command: \`bench/tenant_scale.sh\` (SCHEMA_TENANTS=$SCHEMA_TENANTS DATABASE_TENANTS=$DATABASE_TENANTS BASE_TENANTS=$BASE_TENANTS
SAMPLE=$SAMPLE PARALLEL=$PARALLEL MAX_POOLS=$MAX_POOLS MAX_TENANT_CONNECTIONS=$MAX_TENANT_CONNECTIONS), $(date -u +%Y-%m-%d), nproc $(nproc), ${PG_VERSION:-PostgreSQL}, wrk $THREADS threads /
$CONNECTIONS connections / $DURATION, each request a GET /v1/projects?limit=20 of one of the tenants read (up to
$SAMPLE, half of each level) at random. Creating the second phase's tenants took ${create_s} s ($PARALLEL requests in flight).

| phase | tenants | start-up to /ready | RSS idle | connections idle | tenants read | requests/s | p50 | p99 | errors | RSS after load | connections after load | tenant pools open | tenant connections opened in the load (tenants read / others) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(cat "$WORK_DIR/report.md")
EOF
