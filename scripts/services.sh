#!/usr/bin/env bash
# Starts and stops the private services the test suite uses, on loopback and free ports, as root on Debian 12.
#   scripts/services.sh start DIR   -> starts PostgreSQL and Redis under DIR, writes DIR/env (export lines) and prints it
#   scripts/services.sh stop DIR    -> stops whatever start left running under DIR (safe to repeat)
# RabbitMQ joins here when the issue that needs it lands.
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

# Disposable Redis: no persistence, loopback only, daemonized with its pid, log and working files in DIR/redis.
start_redis() {
  local port i
  port=$(free_port)
  install -d -m 0700 "$dir/redis"
  echo "$port" >"$dir/redis/port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis/pid" --dir "$dir/redis" --logfile "$dir/redis/log"
  for ((i = 0; i < 100; i++)); do
    if [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
      {
        echo "export ATRIUM_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
        echo "export ATRIUM_TEST_REDIS_PORT=$port"
      } >>"$dir/env"
      return 0
    fi
    sleep 0.1
  done
  echo "services.sh: redis-server on port $port did not answer PING within 10 s (see $dir/redis/log)" >&2
  return 1
}

stop_redis() {
  local port pid i
  [[ -f "$dir/redis/port" ]] || return 0
  port=$(cat "$dir/redis/port")
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  # A clean shutdown removes the pid file; otherwise end the process it names while that is still redis-server.
  [[ -f "$dir/redis/pid" ]] || return 0
  pid=$(cat "$dir/redis/pid")
  redis_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    redis_alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# True while PID is a live (not zombie) redis-server process.
redis_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $stat == *"(redis-server)"* && ${stat##*) } != Z* ]]
}

case "$cmd" in
  start)
    start_postgres
    start_redis
    cat "$dir/env"
    ;;
  stop)
    stop_redis
    stop_postgres
    ;;
  *)
    echo "usage: services.sh start|stop DIR" >&2
    exit 2
    ;;
esac
