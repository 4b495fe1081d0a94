# Helpers for the benchmarks that drive Atrium's API on a private PostgreSQL (bench/http_projects.sh,
# bench/tenant_scale.sh). Sourced after lib.sh (log, die, WORK_DIR). The sourcing script sets ATRIUM_BASE (the
# running Atrium) before calling api_call or sign_in; bench_cleanup_extra stops SERVICES_DIR's services on exit.
# shellcheck shell=bash
# Globals set here for the sourcing script look unused to shellcheck:
# shellcheck disable=SC2034

SERVICES_DIR=""  # scripts/services.sh state directory while PostgreSQL runs
PG_PORT="" PG_BIN="" PG_VERSION="" PG_SUPER_URL=""

# Called by lib.sh's cleanup on every exit path: stops the private services.
bench_cleanup_extra() {
  if [[ -n $SERVICES_DIR ]]; then
    bash "$REPO_ROOT/scripts/services.sh" stop "$SERVICES_DIR" >/dev/null 2>&1
    SERVICES_DIR=""
  fi
}

now_ns() { date +%s%N; }
# elapsed_s START_NS -> seconds since START_NS, 2 decimals
elapsed_s() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

# json_get FILE MEMBER -> the top-level member as text ("" for null or absent); fails unless FILE is a JSON object.
json_get() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print("" if v is None else v)' "$1" "$2"
}

# api_call METHOD PATH EXPECTED_STATUS OUTFILE [TOKEN [JSON_BODY]]: one request to the running Atrium; stops the
# benchmark (showing the answer) unless the status is EXPECTED_STATUS.
api_call() {
  local method=$1 path=$2 want=$3 out=$4 token=${5:-} body=${6:-} code
  local -a args=(--noproxy '*' --silent --show-error --max-time 30 -X "$method" -o "$out" -w '%{http_code}')
  [[ -z $token ]] || args+=(-H "Authorization: Bearer $token")
  [[ -z $body ]] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
  code=$(curl "${args[@]}" "$ATRIUM_BASE$path") || die "$method $path: curl failed"
  if [[ $code != "$want" ]]; then
    cat "$out" >&2 2>/dev/null || true
    echo >&2
    die "$method $path answered $code, expected $want"
  fi
}

# sign_in EMAIL PASSWORD [TENANT] -> access token
sign_in() {
  local email=$1 password=$2 tenant=${3:-} body out token
  body="{\"grant_type\":\"password\",\"email\":\"$email\",\"password\":\"$password\"${tenant:+,\"tenant\":\"$tenant\"}}"
  out="$WORK_DIR/token-$email.json"
  api_call POST /v1/auth/token 200 "$out" "" "$body"
  token=$(json_get "$out" access_token) || die "sign-in of $email: answer is not JSON"
  [[ -n $token ]] || die "sign-in of $email: no access_token in the answer"
  echo "$token"
}

# start_postgres DIR: private PostgreSQL (and Redis, unused) via scripts/services.sh with its state and logs in
# DIR, plus Atrium's two roles (atrium_owner, atrium_app) and its database atrium_bench. Sets SERVICES_DIR PG_PORT
# PG_BIN PG_VERSION PG_SUPER_URL.
start_postgres() {
  local dir=$1 envfile super_url
  SERVICES_DIR="$dir/services"
  log "starting private PostgreSQL (scripts/services.sh start)"
  bash "$REPO_ROOT/scripts/services.sh" start "$SERVICES_DIR" >"$dir/services-start.log" 2>&1 || {
    cat "$dir/services-start.log" >&2
    die "scripts/services.sh start failed"
  }
  envfile="$SERVICES_DIR/env"
  super_url=$(sed -n 's/^export ATRIUM_TEST_POSTGRES_URL=//p' "$envfile")
  PG_SUPER_URL=$super_url
  PG_PORT=$(sed -n 's/^export ATRIUM_TEST_PG_PORT=//p' "$envfile")
  PG_BIN=$(sed -n 's/^export ATRIUM_TEST_PG_BIN=//p' "$envfile")
  [[ -n $super_url && $PG_PORT =~ ^[0-9]+$ && -x $PG_BIN/psql ]] || die "unexpected $envfile: $(cat "$envfile")"
  PG_VERSION=$("$PG_BIN/postgres" --version 2>/dev/null | head -n 1) || PG_VERSION="unknown"
  "$PG_BIN/psql" "$super_url" -v ON_ERROR_STOP=1 -qAt \
    -c 'CREATE ROLE atrium_owner LOGIN CREATEDB' \
    -c 'CREATE ROLE atrium_app LOGIN' \
    -c 'CREATE DATABASE atrium_bench OWNER atrium_owner' >"$dir/psql.log" 2>&1 || {
    cat "$dir/psql.log" >&2
    die "creating the roles and database atrium_bench failed"
  }
}
