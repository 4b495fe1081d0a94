#!/usr/bin/env bash
# HTTP load benchmark: Atrium's GET /v1/projects?limit=20 with a bearer token, for a tenant (isolation shared)
# holding 1,000 projects, on SQLite and on PostgreSQL, each beside an nginx baseline serving the same JSON body as a
# static file, in the same run, on loopback.
#
# Per backend: creates a super admin (atrium admin create-superuser) and starts the release binary (build/atrium,
# access log off; for PostgreSQL a private server from scripts/services.sh, Atrium serving as role atrium_app with
# migrations and provisioning as the database owner atrium_owner), signs in, creates tenant "bench" with an owner,
# signs the owner in, creates the projects with POST /v1/projects (every answer must be 201) and checks that
# paging reaches them all. Serves the GET /v1/projects?limit=20 body byte-identical from a private nginx, warms
# both up and runs wrk with the owner's Authorization header against both (nginx ignores it) in ABBA order. On
# PostgreSQL it then runs the raw-libpq floor (build/bench/atrium_pg_pipeline_bench): the commands Atrium sends for
# one such request, in one pipeline per request over CONNECTIONS connections, no HTTP. Any non-2xx answer stops the
# benchmark. Prints a Markdown report on stdout (progress goes to stderr). All processes,
# services and temp files are removed on exit, failure or Ctrl-C.
#
# Usage: bench/http_projects.sh
# Environment (defaults in brackets):
#   BACKEND        sqlite, postgres or both           [both]
#   PROJECTS       projects in the tenant             [1000]
#   ATRIUM_BINARY  Atrium binary                      [<repo>/build/atrium]
#   NGINX_BINARY   nginx binary                       [/usr/sbin/nginx]
#   WRK_BINARY     wrk binary                         [wrk]
#   DURATION       wrk duration of each measured run  [10s]
#   WARMUP         wrk warm-up per target, 0 = none   [2s]
#   THREADS        wrk threads                        [2]
#   CONNECTIONS    wrk connections                    [64]
#   ROUNDS         measured runs per target           [2]
#   VERBOSE        1 = copy raw wrk output to stderr  [0]
#   PIPELINE_BENCH the raw-libpq floor                [<repo>/build/bench/atrium_pg_pipeline_bench]
# Atrium reads ATRIUM_* variables from the environment as usual (e.g. ATRIUM_SERVER_IO_THREADS=N); the storage
# location ones (ATRIUM_STORAGE_DATABASE_URL, ATRIUM_STORAGE_ADMIN_DATABASE_URL, ATRIUM_STORAGE_DATA_DIR) must be
# unset: BACKEND chooses. PostgreSQL needs scripts/services.sh's prerequisites (Debian's postgresql, redis-server).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

BACKEND=${BACKEND:-both}
PROJECTS=${PROJECTS:-1000}
PIPELINE_BENCH=${PIPELINE_BENCH:-$REPO_ROOT/build/bench/atrium_pg_pipeline_bench}

BENCH_NAME=http_projects
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
# shellcheck source=bench/lib_api.sh
source "$SCRIPT_DIR/lib_api.sh"

readonly PAGE_LIMIT=20                  # the benchmarked page size
readonly VERIFY_LIMIT=100               # page size when checking that paging reaches every project
readonly SETUP_TIMEOUT_S=300            # bound on creating all projects (one curl process)
readonly SUPER_EMAIL=root@bench.test SUPER_PASSWORD=root-password-1
readonly OWNER_EMAIL=owner@bench.test OWNER_PASSWORD=owner-password-1
readonly TENANT_SLUG=bench

BENCH_ATRIUM_LOG=""  # the running Atrium's log (require_2xx shows its tail)
ATRIUM_BASE=""       # http://HOST:PORT of the running Atrium

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

bench_install_traps

# --- helpers ----------------------------------------------------------------------------------------------------

# page_info FILE IDS_FILE -> "<items>\t<next_cursor or empty>"; appends the items' ids to IDS_FILE.
page_info() {
  python3 -c '
import json, sys
page = json.load(open(sys.argv[1]))
data, cursor = page["data"], page["next_cursor"]
with open(sys.argv[2], "a") as ids:
    for item in data:
        ids.write(item["id"] + "\n")
print("%d\t%s" % (len(data), cursor or ""))' "$1" "$2"
}

# create_projects TOKEN: POST /v1/projects PROJECTS times from one curl process (one keep-alive connection).
# Sets create_s.
create_projects() {
  local token=$1 cfg="$BACKEND_DIR/create-projects.curl" out="$BACKEND_DIR/create-projects.out" i start rc=0
  local created bad
  {
    for ((i = 1; i <= PROJECTS; i++)); do
      printf 'url = "%s/v1/projects"\n' "$ATRIUM_BASE"
      printf 'request = "POST"\n'
      printf 'max-time = 30\n'
      printf 'header = "Content-Type: application/json"\n'
      printf 'header = "Authorization: Bearer %s"\n' "$token"
      printf 'data-binary = "{\\"name\\":\\"project-%d\\",\\"description\\":\\"Benchmark project %d of %d, created by bench/http_projects.sh.\\"}"\n' \
        "$i" "$i" "$PROJECTS"
      # Each answer is one line of JSON; the status follows it after a tab.
      printf 'write-out = "\\t%%{http_code}\\n"\n'
      ((i == PROJECTS)) || printf 'next\n'
    done
  } >"$cfg"
  log "creating $PROJECTS projects (POST /v1/projects, one keep-alive connection)"
  start=$(now_ns)
  timeout --kill-after=5 "$SETUP_TIMEOUT_S" curl --noproxy '*' --silent --show-error --config "$cfg" \
    >"$out" 2>"$BACKEND_DIR/create-projects.err" || rc=$?
  create_s=$(elapsed_s "$start")
  ((rc == 0)) || {
    cat "$BACKEND_DIR/create-projects.err" >&2
    die "creating projects failed (curl exit $rc after ${create_s}s)"
  }
  created=$(awk -F '\t' '$NF == "201"' "$out" | wc -l)
  if ((created != PROJECTS)); then
    bad=$(awk -F '\t' '$NF != "201"' "$out" | head -n 3)
    die "only $created of $PROJECTS POST /v1/projects answered 201; first others: $bad"
  fi
  log "created $PROJECTS projects in ${create_s}s"
}

# verify_paging TOKEN: GET /v1/projects?limit=VERIFY_LIMIT, following next_cursor (bounded), must reach PROJECTS
# distinct projects and end with next_cursor null. Sets verify_pages.
verify_paging() {
  local token=$1 cursor="" next="" count total=0 info code max_pages ids="$BACKEND_DIR/ids" unique
  local -a cursor_arg
  max_pages=$((PROJECTS / VERIFY_LIMIT + 2))
  : >"$ids"
  for ((verify_pages = 1; verify_pages <= max_pages; verify_pages++)); do
    cursor_arg=()
    [[ -z $cursor ]] || cursor_arg=(--data-urlencode "cursor=$cursor")
    code=$(curl --noproxy '*' --silent --show-error --max-time 30 -o "$BACKEND_DIR/page.json" -w '%{http_code}' \
      -G --data-urlencode "limit=$VERIFY_LIMIT" "${cursor_arg[@]}" -H "Authorization: Bearer $token" \
      "$ATRIUM_BASE/v1/projects") || die "GET /v1/projects (page $verify_pages): curl failed"
    if [[ $code != 200 ]]; then
      cat "$BACKEND_DIR/page.json" >&2 || true
      die "GET /v1/projects?limit=$VERIFY_LIMIT (page $verify_pages) answered $code"
    fi
    info=$(page_info "$BACKEND_DIR/page.json" "$ids") || die "page $verify_pages is not a project page"
    IFS=$'\t' read -r count next <<<"$info"
    total=$((total + count))
    [[ -n $next ]] || break
    cursor=$next
  done
  [[ -z $next ]] || die "paging did not end within $max_pages pages of $VERIFY_LIMIT"
  unique=$(sort -u "$ids" | wc -l)
  ((total == PROJECTS && unique == PROJECTS)) ||
    die "paging with limit=$VERIFY_LIMIT returned $total projects ($unique distinct ids), expected $PROJECTS"
  log "paging with limit=$VERIFY_LIMIT reached $total projects in $verify_pages pages"
}

# --- one backend ------------------------------------------------------------------------------------------------

# run_backend sqlite|postgres: set up, measure, stop; writes the backend's report section to BACKEND_DIR/report.md
# and a summary row to BACKEND_DIR/summary.md.
run_backend() {
  local backend=$1 label atrium_port nginx_port atrium_url nginx_url start superuser_s tenant_s owner_token
  local root_token isolation page_items expected_items next atrium_ctype atrium_sizes nginx_ctype nginx_sizes
  local atrium_cmd wrk_opts wrk_cmd_atrium wrk_cmd_nginx log_problems verdict=""
  # One tenant at full load: a rate limit no run reaches, so the limiter decides every request but never refuses.
  local -a atrium_env=(ATRIUM_LOG_ACCESS_LOG=false ATRIUM_GATEWAY_DEFAULT_REQUESTS_PER_SECOND=1000000
    ATRIUM_GATEWAY_DEFAULT_BURST=1000000) atrium_args
  BACKEND_DIR="$WORK_DIR/$backend"
  mkdir -p "$BACKEND_DIR/atrium-data" "$BACKEND_DIR/nginx/www/v1"
  chmod 700 "$BACKEND_DIR/atrium-data"
  atrium_args=(--data-dir "$BACKEND_DIR/atrium-data")
  atrium_cmd="$ATRIUM_BINARY serve --listen $HOST:<port> --data-dir <tmp>"
  if [[ $backend == postgres ]]; then label=PostgreSQL; else label=SQLite; fi
  log "=== $label ==="
  if [[ $backend == postgres ]]; then
    start_postgres "$BACKEND_DIR"
    atrium_args+=(--database-url "postgresql://atrium_app@$HOST:$PG_PORT/atrium_bench")
    atrium_env+=("ATRIUM_STORAGE_ADMIN_DATABASE_URL=postgresql://atrium_owner@$HOST:$PG_PORT/atrium_bench")
    atrium_cmd="ATRIUM_STORAGE_ADMIN_DATABASE_URL=postgresql://atrium_owner@$HOST:$PG_PORT/atrium_bench $atrium_cmd"
    atrium_cmd+=" --database-url postgresql://atrium_app@$HOST:$PG_PORT/atrium_bench"
  fi

  # Super admin, before serving, with the same storage flags and environment as serve.
  log "creating the super admin ($SUPER_EMAIL)"
  start=$(now_ns)
  env "${atrium_env[@]}" "$ATRIUM_BINARY" admin create-superuser --email "$SUPER_EMAIL" --password "$SUPER_PASSWORD" \
    "${atrium_args[@]}" >"$BACKEND_DIR/create-superuser.log" 2>&1 || {
    cat "$BACKEND_DIR/create-superuser.log" >&2
    die "atrium admin create-superuser failed"
  }
  superuser_s=$(elapsed_s "$start")

  atrium_port=$(free_port)
  ATRIUM_BASE="http://$HOST:$atrium_port"
  BENCH_ATRIUM_LOG="$BACKEND_DIR/atrium.log"
  log "starting Atrium on $HOST:$atrium_port (access log off, $label)"
  env "${atrium_env[@]}" "$ATRIUM_BINARY" serve --listen "$HOST:$atrium_port" "${atrium_args[@]}" \
    >"$BENCH_ATRIUM_LOG" 2>&1 &
  ATRIUM_PID=$!
  wait_http Atrium "$ATRIUM_PID" "$ATRIUM_BASE/health" "$BENCH_ATRIUM_LOG"
  http_get -o "$BACKEND_DIR/ready.json" "$ATRIUM_BASE/ready" || die "Atrium's /ready is not 200"
  atrium_listening_facts "$BENCH_ATRIUM_LOG"

  # Tenant and owner.
  start=$(now_ns)
  root_token=$(sign_in "$SUPER_EMAIL" "$SUPER_PASSWORD")
  api_call POST /v1/admin/tenants 201 "$BACKEND_DIR/tenant.json" "$root_token" \
    "{\"slug\":\"$TENANT_SLUG\",\"name\":\"Bench\",\"isolation\":\"shared\",\"owner_email\":\"$OWNER_EMAIL\",\"owner_password\":\"$OWNER_PASSWORD\"}"
  isolation=$(json_get "$BACKEND_DIR/tenant.json" isolation) || die "POST /v1/admin/tenants: answer is not JSON"
  [[ $isolation == shared ]] || die "tenant created with isolation '$isolation', expected shared"
  owner_token=$(sign_in "$OWNER_EMAIL" "$OWNER_PASSWORD" "$TENANT_SLUG")
  tenant_s=$(elapsed_s "$start")
  log "tenant '$TENANT_SLUG' (shared) created and owner signed in (${tenant_s}s, including 3 Argon2id checks/hashes)"

  create_projects "$owner_token"
  verify_paging "$owner_token"

  # The benchmarked page, twice (it must not change), then nginx serving it.
  atrium_url="$ATRIUM_BASE/v1/projects?limit=$PAGE_LIMIT"
  api_call GET "/v1/projects?limit=$PAGE_LIMIT" 200 "$BACKEND_DIR/nginx/www/v1/projects" "$owner_token"
  api_call GET "/v1/projects?limit=$PAGE_LIMIT" 200 "$BACKEND_DIR/page-again.json" "$owner_token"
  cmp -s "$BACKEND_DIR/nginx/www/v1/projects" "$BACKEND_DIR/page-again.json" ||
    die "two GET /v1/projects?limit=$PAGE_LIMIT answers differ; nginx could not serve 'the same body'"
  chmod 644 "$BACKEND_DIR/nginx/www/v1/projects"
  IFS=$'\t' read -r page_items next <<<"$(page_info "$BACKEND_DIR/nginx/www/v1/projects" /dev/null)"
  expected_items=$((PROJECTS < PAGE_LIMIT ? PROJECTS : PAGE_LIMIT))
  ((page_items == expected_items)) || die "GET /v1/projects?limit=$PAGE_LIMIT returned $page_items projects"
  atrium_ctype=$(curl --noproxy '*' -sS --fail --max-time 5 -o /dev/null -w '%{content_type}' \
    -H "Authorization: Bearer $owner_token" "$atrium_url")
  atrium_sizes=$(curl --noproxy '*' -sS --fail --max-time 5 -o /dev/null \
    -w '%{size_header} B headers + %{size_download} B body' -H "Authorization: Bearer $owner_token" "$atrium_url")

  nginx_port=$(free_port)
  nginx_url="http://$HOST:$nginx_port/v1/projects?limit=$PAGE_LIMIT"
  nginx_start "$BACKEND_DIR/nginx" "$nginx_port" "$io_threads" /v1/projects
  http_get -H "Authorization: Bearer $owner_token" -o "$BACKEND_DIR/nginx-body" "$nginx_url" ||
    die "cannot fetch $nginx_url"
  cmp -s "$BACKEND_DIR/nginx-body" "$BACKEND_DIR/nginx/www/v1/projects" ||
    die "nginx's /v1/projects body differs from Atrium's"
  nginx_ctype=$(http_get -o /dev/null -w '%{content_type}' "$nginx_url")
  nginx_sizes=$(http_get -H "Authorization: Bearer $owner_token" -o /dev/null \
    -w '%{size_header} B headers + %{size_download} B body' "$nginx_url")
  [[ $nginx_ctype == "$atrium_ctype" ]] ||
    log "warning: Content-Type differs: Atrium '$atrium_ctype', nginx '$nginx_ctype'"

  # Load.
  REQUIRE_2XX=1
  run_measurements "$atrium_url" "$nginx_url" "$BACKEND_DIR/wrk" -H "Authorization: Bearer $owner_token"

  # The raw-libpq floor, with Atrium stopped so that it has the cores Atrium had: best of ROUNDS.
  local floor_rps="" floor_line floor_cmd round
  stop_pid "$ATRIUM_PID" atrium
  ATRIUM_PID=""
  if [[ $backend == postgres ]]; then
    floor_cmd="$PIPELINE_BENCH --url postgresql://atrium_app@$HOST:$PG_PORT/atrium_bench --tenant <tenant id>"
    floor_cmd+=" --connections $CONNECTIONS --seconds $(duration_seconds "$DURATION") --warmup $warmup_s --limit $PAGE_LIMIT"
    for ((round = 1; round <= ROUNDS; round++)); do
      log "round $round/$ROUNDS: raw libpq pipeline floor for $DURATION"
      floor_line=$("$PIPELINE_BENCH" --url "postgresql://atrium_app@$HOST:$PG_PORT/atrium_bench" \
        --tenant "$(json_get "$BACKEND_DIR/tenant.json" id)" --connections "$CONNECTIONS" \
        --seconds "$(duration_seconds "$DURATION")" --warmup "$warmup_s" --limit "$PAGE_LIMIT") ||
        die "the raw libpq floor failed"
      [[ $floor_line =~ per_second\ ([0-9]+)\ rows_per_request\ ([0-9]+) ]] || die "unexpected floor output: $floor_line"
      ((BASH_REMATCH[2] == PAGE_LIMIT + 1)) || die "the floor's page query returned ${BASH_REMATCH[2]} rows"
      if [[ -z $floor_rps ]] || ((BASH_REMATCH[1] > floor_rps)); then floor_rps=${BASH_REMATCH[1]}; fi
    done
  fi

  stop_pid "$NGINX_PID" nginx
  NGINX_PID=""
  bench_cleanup_extra

  log_problems=$(grep -Eic '"level":"(warn|error|critical)"|^[0-9TZ:.+-]+ (warn|error|critical) ' "$BENCH_ATRIUM_LOG" || true)
  if ((log_problems > 0)); then
    log "Atrium's log ($label) has $log_problems warning/error lines:"
    grep -Ei '"level":"(warn|error|critical)"|^[0-9TZ:.+-]+ (warn|error|critical) ' "$BENCH_ATRIUM_LOG" | head -n 20 >&2
  fi

  # Report section.
  wrk_opts="--latency -t $THREADS -c $CONNECTIONS -d $DURATION -H 'Authorization: Bearer <owner access token>'"
  wrk_cmd_atrium="$WRK_BINARY $wrk_opts '$atrium_url'"
  wrk_cmd_nginx="$WRK_BINARY $wrk_opts '$nginx_url'"
  {
    echo "## $label"
    echo
    echo "- Atrium: \`${atrium_cmd/<port>/$atrium_port}\`, io_threads=$io_threads ($io_threads_source)," \
      "database=${atrium_db:-unknown}"
    if [[ $backend == postgres ]]; then
      echo "- PostgreSQL: $PG_VERSION, private server from \`scripts/services.sh\` on loopback (fsync, synchronous_commit" \
        "and full_page_writes off; trust authentication); Atrium serves as \`atrium_app\` (owns no table) and" \
        "migrates/provisions as \`atrium_owner\`, the owner of database \`atrium_bench\`"
    else
      echo "- SQLite: embedded, \`<data-dir>/atrium.db\` (WAL)"
    fi
    echo "- Setup: \`atrium admin create-superuser\` ${superuser_s}s; super admin sign-in, tenant \`$TENANT_SLUG\`" \
      "(isolation shared) with its owner, owner sign-in ${tenant_s}s; $PROJECTS × \`POST /v1/projects\` over one" \
      "keep-alive connection: all 201 in ${create_s}s" \
      "($(awk -v n="$PROJECTS" -v s="$create_s" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')/s);" \
      "paging with limit=$VERIFY_LIMIT reached all $PROJECTS (distinct ids) in $verify_pages pages"
    echo "- Response: Atrium $atrium_sizes ($atrium_ctype); nginx $nginx_sizes ($nginx_ctype); bodies" \
      "byte-identical ($page_items projects, next_cursor $([[ -n $next ]] && echo set || echo null))"
    echo "- wrk (Atrium): \`$wrk_cmd_atrium\`"
    echo "- wrk (nginx): \`$wrk_cmd_nginx\`"
    echo "- Atrium log: $log_problems warning/error line(s) during the run"
    echo
    report_results
    if [[ -n $floor_rps ]]; then
      echo
      echo "Raw libpq floor (\`$floor_cmd\`, Atrium stopped; best of $ROUNDS): $floor_rps requests/s;" \
        "Atrium / floor: **$(awk -v a="$rps_a" -v f="$floor_rps" 'BEGIN { printf "%.2f", a / f }')**"
    fi
  } >"$BACKEND_DIR/report.md"
  if [[ $backend == sqlite ]]; then
    if awk -v r="$best_ratio" 'BEGIN { exit !(r >= 0.5) }'; then verdict="met"; else verdict="NOT met"; fi
    echo "$verdict" >"$BACKEND_DIR/verdict"
  fi
  echo "| $label | $rps_a | $rps_n | $best_ratio | $mean_ratio | $(fmt_ms "$p99_a") | $(fmt_ms "$p99_n") |" \
    >"$BACKEND_DIR/summary.md"
}

# --- checks -----------------------------------------------------------------------------------------------------

bench_parse_args "$@"

bench_select_backends
bench_check_prereqs python3 cmp sort
if [[ ! $PROJECTS =~ ^[1-9][0-9]*$ ]] || ((PROJECTS > 100000)); then
  die "PROJECTS must be 1-100000 (got '$PROJECTS')"
fi
for var in ATRIUM_STORAGE_DATABASE_URL ATRIUM_STORAGE_ADMIN_DATABASE_URL ATRIUM_STORAGE_DATA_DIR; do
  [[ -z ${!var:-} ]] || die "$var is set; unset it (BACKEND chooses the database)"
done
if [[ $BACKEND != sqlite ]]; then
  [[ -f $REPO_ROOT/scripts/services.sh ]] || die "scripts/services.sh not found"
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || die "PostgreSQL not installed (bash scripts/setup.sh)"
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (scripts/services.sh starts it; bash scripts/setup.sh)"
  [[ -x $PIPELINE_BENCH ]] || die "$PIPELINE_BENCH not found (ninja -C build atrium_pg_pipeline_bench, with -DATRIUM_BENCH=ON)"
fi
# The owner's access token must outlive the load runs of a backend (identity.access_token_ttl_s, default 3600 s).
load_s=$((2 * (warmup_s + ROUNDS * $(duration_seconds "$DURATION"))))
((load_s + 300 <= ${ATRIUM_IDENTITY_ACCESS_TOKEN_TTL_S:-3600})) ||
  die "the load runs take ${load_s}s per backend, longer than the access token lives; raise ATRIUM_IDENTITY_ACCESS_TOKEN_TTL_S"

# --- environment facts ------------------------------------------------------------------------------------------

bench_collect_facts
sqlite_version=$(dpkg-query -W -f='${Version}' libsqlite3-0 2>/dev/null || true)

command_line="BACKEND=$BACKEND PROJECTS=$PROJECTS DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS"
command_line+=" CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS"
[[ ${ATRIUM_BINARY} == "$REPO_ROOT/build/atrium" ]] || command_line+=" ATRIUM_BINARY=$(printf '%q' "$ATRIUM_BINARY")"
command_line+=" $(printf '%q' "$0")"
inherited_atrium_env=$(env | sed -n 's/^\(ATRIUM_[A-Za-z0-9_]*\)=.*/\1/p' | grep -Ev '^ATRIUM_(BINARY|LOG_ACCESS_LOG)$' | sort | tr '\n' ' ' || true)

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atrium-http-projects.XXXXXX")
# nginx workers and PostgreSQL may run as unprivileged users; they must be able to reach their files.
chmod 755 "$WORK_DIR"

for backend in "${backends[@]}"; do
  run_backend "$backend"
done

# --- report -----------------------------------------------------------------------------------------------------

echo "# HTTP GET /v1/projects?limit=$PAGE_LIMIT with a bearer token: Atrium vs nginx (same run, loopback)"
echo
echo "**Note: wrk and both servers share the same $nproc_n cores (nproc = $nproc_n); the load generator competes"
echo "with the server under test for CPU, so absolute numbers are understated. Compare the ratio, not the totals.**"
echo
echo "- Date: $run_date"
echo "- Command: \`$command_line\`"
echo "- Workload: tenant \`$TENANT_SLUG\` (isolation shared) with $PROJECTS projects; \`GET /v1/projects?limit=$PAGE_LIMIT\`" \
  "with the tenant owner's access token (\`Authorization: Bearer\`, a JWT from \`POST /v1/auth/token\`) on every" \
  "request; wrk sends the same header to nginx, which ignores it"
echo "- Warm-up: $WARMUP per target before the measured runs; measured: $ROUNDS run(s) per target, $(order_text)"
echo "- nproc: $nproc_n"
echo "- CPU: $cpu_model"
echo "- wrk: $wrk_version"
echo "- nginx: $nginx_version"
echo "- atrium: $atrium_version"
[[ " ${backends[*]} " != *" sqlite "* ]] || echo "- SQLite library: libsqlite3-0 ${sqlite_version:-unknown}"
echo "- Atrium: access log OFF for the load run (ATRIUM_LOG_ACCESS_LOG=false); identity.redis_url unset" \
  "(revocation checks in-process); tenant rate limit 1,000,000/s with a burst of 1,000,000 (in-process: every" \
  "request is decided, none refused); every other setting at its default"
if [[ -n ${inherited_atrium_env// /} ]]; then
  echo "- Also inherited by Atrium from the environment: ${inherited_atrium_env% }"
fi
echo "- nginx: private instance per backend, worker_processes = Atrium I/O threads, access_log off," \
  "keepalive_requests 1000000, the saved body as a static file at location = /v1/projects (the query string does" \
  "not affect the match), default_type application/json"
echo
echo "## Summary"
echo
echo "Best run per target (highest requests/s); p99 from that run."
echo
echo "| backend | Atrium requests/s | nginx requests/s | Atrium/nginx (best) | Atrium/nginx (mean) | Atrium p99 | nginx p99 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for backend in "${backends[@]}"; do
  cat "$WORK_DIR/$backend/summary.md"
done
if [[ -f $WORK_DIR/sqlite/verdict ]]; then
  echo
  echo "Target on SQLite, Atrium at least 0.50 × nginx's requests/s (best runs): **$(cat "$WORK_DIR/sqlite/verdict")**"
fi
for backend in "${backends[@]}"; do
  echo
  cat "$WORK_DIR/$backend/report.md"
done
