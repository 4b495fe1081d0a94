#!/usr/bin/env bash
# Starts and stops the private services the test suite uses, on loopback and free ports, as root on Debian 12.
#   scripts/services.sh start DIR   -> starts PostgreSQL under DIR, writes DIR/env (export lines) and prints it
#   scripts/services.sh stop DIR    -> stops whatever start left running under DIR
# Redis and RabbitMQ join here when the issues that need them land.
set -euo pipefail

cmd=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local port
  port=$(free_port)
  install -d -m 0755 "$dir"
  install -d -o postgres -g postgres -m 0700 "$dir/pg"
  as_postgres "$PG_BIN/initdb" -D "$dir/pg/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/pg/initdb.log" 2>&1
  # Fast, disposable cluster: durability settings off (tests never survive a machine crash anyway).
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w -t 60 start \
    -o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null
  as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qAt -c "CREATE DATABASE atrium_test" >/dev/null
  echo "$port" >"$dir/pg/port"
  {
    echo "export ATRIUM_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/atrium_test"
    echo "export ATRIUM_TEST_PG_BIN=$PG_BIN"
    echo "export ATRIUM_TEST_PG_DATA=$dir/pg/data"
    echo "export ATRIUM_TEST_PG_PORT=$port"
    echo "export ATRIUM_TEST_PG_SOCKET_DIR=$dir/pg"
  } >"$dir/env"
}

stop_postgres() {
  if [[ -f "$dir/pg/data/postmaster.pid" ]]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

case "$cmd" in
  start)
    start_postgres
    cat "$dir/env"
    ;;
  stop)
    stop_postgres
    ;;
  *)
    echo "usage: services.sh start|stop DIR" >&2
    exit 2
    ;;
esac
