# Shared helpers for the benchmarks that compare two Atrium instances differing in one setting, "on" and "off"
# (bench/http_audit.sh, bench/http_encryption.sh). Sourced after lib.sh, not run.
#
# The sourcing script sets, before sourcing: ONOFF_VARIABLE (the ATRIUM_* variable set to true / false) and
# ONOFF_NAME (how progress lines name it, e.g. "audit"). It may define onoff_prepare TARGET, run once per instance
# after its owner signed in (extra setup through `api`). This file defines the shared state (BASE TOKEN LOGFILE
# ARGS ENV_VARS per target; OFF_PID beside lib.sh's ATRIUM_PID, which is the "on" instance), the cleanup hook, and:
#   json_get FILE KEY, api TARGET METHOD PATH WANT OUT [TOKEN [BODY]], sign_in TARGET EMAIL PASSWORD [TENANT],
#   onoff_start_backend sqlite|postgres (sets BACKEND_NAME BACKEND_DIR BACKEND_LABEL; both instances ready).
# shellcheck shell=bash
# lib.sh (sourced first) declares RESULT (associative) and sets warmup_s:
# shellcheck disable=SC2034,SC2154,SC2004

readonly SUPER_EMAIL=root@bench.test SUPER_PASSWORD=root-password-1
readonly OWNER_EMAIL=owner@bench.test OWNER_PASSWORD=owner-password-1
readonly TENANT_SLUG=bench

SERVICES_DIR=""
OFF_PID=""  # the "off" instance; ATRIUM_PID (lib.sh) is the "on" one
declare -A BASE=() TOKEN=() LOGFILE=() ARGS=() ENV_VARS=()

bench_cleanup_extra() {
  stop_pid "$OFF_PID" "atrium ($ONOFF_NAME off)"
  OFF_PID=""
  if [[ -n $SERVICES_DIR ]]; then
    bash "$REPO_ROOT/scripts/services.sh" stop "$SERVICES_DIR" >/dev/null 2>&1
    SERVICES_DIR=""
  fi
}

json_get() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

# api TARGET METHOD PATH WANT OUT [TOKEN [BODY]]
api() {
  local target=$1 method=$2 path=$3 want=$4 out=$5 token=${6:-} body=${7:-} code
  local -a args=(--noproxy '*' --silent --show-error --max-time 30 -X "$method" -o "$out" -w '%{http_code}')
  [[ -z $token ]] || args+=(-H "Authorization: Bearer $token")
  [[ -z $body ]] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
  code=$(curl "${args[@]}" "${BASE[$target]}$path") || die "$target: $method $path: curl failed"
  [[ $code == "$want" ]] || {
    cat "$out" >&2 || true
    die "$target: $method $path answered $code, expected $want"
  }
}

sign_in() {
  local target=$1 email=$2 password=$3 tenant=${4:-} out
  out="$BACKEND_DIR/$target-token-$email.json"
  api "$target" POST /v1/auth/token 200 "$out" "" \
    "{\"grant_type\":\"password\",\"email\":\"$email\",\"password\":\"$password\"${tenant:+,\"tenant\":\"$tenant\"}}"
  json_get "$out" access_token
}

# onoff_start_instance on|off: data, super admin, serve, tenant, owner token, then onoff_prepare.
onoff_start_instance() {
  local target=$1 port root pid value
  value=$([[ $target == on ]] && echo true || echo false)
  # One tenant at full load: a rate limit no run reaches, so the limiter decides every request but never refuses.
  local -a env_vars=(ATRIUM_LOG_ACCESS_LOG=false "$ONOFF_VARIABLE=$value"
    ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND=1000000 ATRIUM_GATEWAY_DEFAULT_BURST=1000000)
  ARGS[$target]="--data-dir $BACKEND_DIR/$target-data"
  mkdir -p "$BACKEND_DIR/$target-data"
  if [[ $BACKEND_NAME == postgres ]]; then
    "$PG_BIN/psql" "$SUPER_URL" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE atrium_$target OWNER atrium_owner" \
      >>"$BACKEND_DIR/psql.log" 2>&1 || die "CREATE DATABASE atrium_$target failed"
    ARGS[$target]+=" --database-url postgresql://atrium_app@$HOST:$PG_PORT/atrium_$target"
    env_vars+=("ATRIUM_STORAGE_ADMIN_DATABASE_URL=postgresql://atrium_owner@$HOST:$PG_PORT/atrium_$target")
  fi
  ENV_VARS[$target]="${env_vars[*]}"
  # shellcheck disable=SC2086
  env "${env_vars[@]}" "$ATRIUM_BINARY" admin create-superuser --email "$SUPER_EMAIL" --password "$SUPER_PASSWORD" \
    ${ARGS[$target]} >"$BACKEND_DIR/$target-superuser.log" 2>&1 || {
    cat "$BACKEND_DIR/$target-superuser.log" >&2
    die "create-superuser ($target) failed"
  }
  port=$(free_port)
  BASE[$target]="http://$HOST:$port"
  LOGFILE[$target]="$BACKEND_DIR/$target.log"
  # shellcheck disable=SC2086
  env "${env_vars[@]}" "$ATRIUM_BINARY" serve --listen "$HOST:$port" ${ARGS[$target]} >"${LOGFILE[$target]}" 2>&1 &
  pid=$!
  if [[ $target == on ]]; then ATRIUM_PID=$pid; else OFF_PID=$pid; fi
  wait_http "Atrium ($target)" "$pid" "${BASE[$target]}/health" "${LOGFILE[$target]}"
  root=$(sign_in "$target" "$SUPER_EMAIL" "$SUPER_PASSWORD")
  api "$target" POST /v1/admin/tenants 201 "$BACKEND_DIR/$target-tenant.json" "$root" \
    "{\"slug\":\"$TENANT_SLUG\",\"name\":\"Bench\",\"isolation\":\"shared\",\"owner_email\":\"$OWNER_EMAIL\",\"owner_password\":\"$OWNER_PASSWORD\"}"
  TOKEN[$target]=$(sign_in "$target" "$OWNER_EMAIL" "$OWNER_PASSWORD" "$TENANT_SLUG")
  if declare -F onoff_prepare >/dev/null; then onoff_prepare "$target"; fi
  log "Atrium ($target, $ONOFF_VARIABLE=$value) ready on port $port"
}

# onoff_start_backend sqlite|postgres: the backend (PostgreSQL: a private server and its two roles), then both
# instances.
onoff_start_backend() {
  BACKEND_NAME=$1
  BACKEND_DIR="$WORK_DIR/$1"
  mkdir -p "$BACKEND_DIR"
  if [[ $1 == postgres ]]; then BACKEND_LABEL=PostgreSQL; else BACKEND_LABEL=SQLite; fi
  log "=== $BACKEND_LABEL ==="
  if [[ $1 == postgres ]]; then
    SERVICES_DIR="$BACKEND_DIR/services"
    bash "$REPO_ROOT/scripts/services.sh" start "$SERVICES_DIR" >"$BACKEND_DIR/services.log" 2>&1 || {
      cat "$BACKEND_DIR/services.log" >&2
      die "scripts/services.sh start failed"
    }
    SUPER_URL=$(sed -n 's/^export ATRIUM_TEST_POSTGRES_URL=//p' "$SERVICES_DIR/env")
    PG_PORT=$(sed -n 's/^export ATRIUM_TEST_PG_PORT=//p' "$SERVICES_DIR/env")
    PG_BIN=$(sed -n 's/^export ATRIUM_TEST_PG_BIN=//p' "$SERVICES_DIR/env")
    "$PG_BIN/psql" "$SUPER_URL" -v ON_ERROR_STOP=1 -qAt -c 'CREATE ROLE atrium_owner LOGIN CREATEDB' \
      -c 'CREATE ROLE atrium_app LOGIN' >"$BACKEND_DIR/psql.log" 2>&1 || die "creating roles failed"
  fi
  onoff_start_instance on
  onoff_start_instance off
}

# onoff_measure PATH TAG [WRK_OPTION...]: WARMUP per instance, then ROUNDS measured runs per instance in ABBA order
# against PATH, each with the instance's owner token, into RESULT[on|off,round] (emptied first). TAG names the
# output files. Any non-2xx answer stops the benchmark.
onoff_measure() {
  local path=$1 tag=$2 target round out
  local -a order
  shift 2
  RESULT=()
  REQUIRE_2XX=1
  if ((warmup_s > 0)); then
    for target in on off; do
      log "warm-up: $tag, $ONOFF_NAME $target for $WARMUP"
      out="$BACKEND_DIR/warmup-$tag-$target.txt"
      run_wrk "$WARMUP" "${BASE[$target]}$path" "$out" "$@" -H "Authorization: Bearer ${TOKEN[$target]}"
      require_2xx "$ONOFF_NAME-$target" warm-up "$out"
    done
  fi
  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(on off); else order=(off on); fi
    for target in "${order[@]}"; do
      out="$BACKEND_DIR/round$round-$tag-$target.txt"
      log "round $round/$ROUNDS: $tag, $ONOFF_NAME $target for $DURATION"
      run_wrk "$DURATION" "${BASE[$target]}$path" "$out" "$@" -H "Authorization: Bearer ${TOKEN[$target]}"
      RESULT[$target,$round]=$(parse_wrk "$out") || die "could not parse $out"
      require_2xx "$ONOFF_NAME-$target" "round $round" "$out"
    done
  done
}

# onoff_tables: on stdout, the best run of each instance with their ratio, then every run in execution order (from
# RESULT). Sets ONOFF_SUMMARY to "RPS_ON | RPS_OFF | RATIO | OVERHEAD%" for a summary row.
onoff_tables() {
  local best_on best_off rps_on rps_off p99_on p99_off ratio overhead round target rps p50 p90 p99 reqs non2xx
  local -a order
  best_on=$(best_round on)
  best_off=$(best_round off)
  read -r rps_on _ _ p99_on _ <<<"${RESULT[on,$best_on]}"
  read -r rps_off _ _ p99_off _ <<<"${RESULT[off,$best_off]}"
  ratio=$(awk -v a="$rps_on" -v b="$rps_off" 'BEGIN { printf "%.2f", a / b }')
  overhead=$(awk -v a="$rps_on" -v b="$rps_off" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }')
  ONOFF_SUMMARY="$rps_on | $rps_off | $ratio | $overhead%"
  echo "| target | requests/s (best) | p99 | |"
  echo "|---|---:|---:|---|"
  echo "| $ONOFF_NAME on | $rps_on | $(fmt_ms "$p99_on") | on/off = **$ratio** ($overhead% slower) |"
  echo "| $ONOFF_NAME off | $rps_off | $(fmt_ms "$p99_off") | baseline |"
  echo
  echo "All runs (in execution order):"
  echo
  echo "| round | target | requests/s | p50 | p90 | p99 | requests | non-2xx |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(on off); else order=(off on); fi
    for target in "${order[@]}"; do
      read -r rps p50 p90 p99 reqs _ non2xx <<<"${RESULT[$target,$round]}"
      echo "| $round | $ONOFF_NAME $target | $rps | $(fmt_ms "$p50") | $(fmt_ms "$p90") | $(fmt_ms "$p99") | $reqs | $non2xx |"
    done
  done
}

# onoff_setup [ARG]: --help, the backends BACKEND names (into `backends`), the environment check, the machine's
# facts and WORK_DIR (atrium-<BENCH_NAME>.XXXXXX).
onoff_setup() {
  bench_parse_args "$@"
  bench_select_backends
  bench_check_prereqs python3
  local var
  for var in ATRIUM_STORAGE_DATABASE_URL ATRIUM_STORAGE_ADMIN_DATABASE_URL ATRIUM_STORAGE_DATA_DIR "$ONOFF_VARIABLE"; do
    [[ -z ${!var:-} ]] || die "$var is set; unset it"
  done
  bench_collect_facts
  WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-${BENCH_NAME//_/-}.XXXXXX")
  chmod 755 "$WORK_DIR"
}
