#!/usr/bin/env bash
# Starts and stops the private services the test suite uses, on loopback and free ports, as root on Debian 12.
#   scripts/services.sh start DIR   -> starts PostgreSQL, Redis and RabbitMQ under DIR, writes DIR/env (export lines)
#                                      and prints it
#   scripts/services.sh stop DIR    -> stops whatever start left running under DIR (safe to repeat)
# Debian's default instances (and their ports, data and configuration) are neither used nor needed.
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

# Private RabbitMQ node, run as the rabbitmq user: its own node name (atrium-<random>@localhost), AMQP, distribution
# and epmd ports on loopback, Erlang cookie (HOME), configuration, plugin list (empty: no management plugin), data
# and logs, all under DIR/rabbitmq. Nothing of Debian's default instance (/etc/rabbitmq, /var/lib/rabbitmq, epmd on
# 4369) is read or needed. The pids of the launcher, beam.smp and epmd are recorded for stop_rabbitmq.
RABBIT_BIN=/usr/lib/rabbitmq/bin

# Runs a command as the rabbitmq user with the node's environment only (rabbit_env, from load_rabbit_env).
as_rabbitmq() {
  if [[ $(id -u) -eq 0 ]]; then
    setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- env -i "${rabbit_env[@]}" "$@"
  else
    env -i "${rabbit_env[@]}" "$@"
  fi
}

# Sets rabbit_env (and rabbit_node) from DIR/rabbitmq; the node's ports must already be recorded there.
load_rabbit_env() {
  local r=$dir/rabbitmq
  rabbit_node=$(cat "$r/node")
  rabbit_env=(
    "HOME=$r" "PATH=/usr/sbin:/usr/bin:/sbin:/bin" "LANG=C.UTF-8"
    "RABBITMQ_NODENAME=$rabbit_node" "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
    "RABBITMQ_NODE_PORT=$(cat "$r/port")" "RABBITMQ_DIST_PORT=$(cat "$r/dist_port")"
    "ERL_EPMD_PORT=$(cat "$r/epmd_port")" "ERL_EPMD_ADDRESS=127.0.0.1"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    "RABBITMQ_MNESIA_BASE=$r/mnesia" "RABBITMQ_LOG_BASE=$r/log" "RABBITMQ_PID_FILE=$r/beam.pid"
    "RABBITMQ_CONF_ENV_FILE=$r/rabbitmq-env.conf" "RABBITMQ_CONFIG_FILE=$r/rabbitmq.conf"
    "RABBITMQ_ADVANCED_CONFIG_FILE=$r/advanced.config" "RABBITMQ_ENABLED_PLUGINS_FILE=$r/enabled_plugins"
  )
}

# The pid of the process listening on loopback TCP port $1, or nothing.
listener_pid() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

start_rabbitmq() {
  local r=$dir/rabbitmq port epmd_port pid i deadline
  install -d -m 0755 "$dir"
  install -d -o rabbitmq -g rabbitmq -m 0700 "$r" "$r/mnesia" "$r/log"
  port=$(free_port)
  echo "$port" >"$r/port"
  free_port >"$r/dist_port"
  epmd_port=$(free_port)
  echo "$epmd_port" >"$r/epmd_port"
  echo "atrium-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')@localhost" >"$r/node"
  # Empty private configuration: the system's /etc/rabbitmq files are not read. "[]." = no plugins enabled.
  install -o rabbitmq -g rabbitmq -m 0600 /dev/null "$r/rabbitmq.conf"
  install -o rabbitmq -g rabbitmq -m 0600 /dev/null "$r/rabbitmq-env.conf"
  echo '[].' | install -o rabbitmq -g rabbitmq -m 0600 /dev/stdin "$r/enabled_plugins"
  # A private Erlang cookie for the node and rabbitmqctl (both run with HOME=$r).
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f0-9' 'A-P' |
    install -o rabbitmq -g rabbitmq -m 0400 /dev/stdin "$r/.erlang.cookie"
  load_rabbit_env
  # epmd of its own on a private port, so stopping it cannot disturb other Erlang nodes.
  (cd "$r" && as_rabbitmq epmd -address 127.0.0.1 -port "$epmd_port" -daemon)
  for ((i = 0; i < 50; i++)); do
    pid=$(listener_pid "$epmd_port")
    [[ -n $pid ]] && break
    sleep 0.1
  done
  echo "$pid" >"$r/epmd.pid"
  # In the background, in a session of its own (a Ctrl-C meant for the caller does not reach it); setsid, setpriv
  # and env exec, so the recorded pid is the rabbitmq-server script's, which stops beam.smp on TERM.
  (
    cd "$r"
    if [[ $(id -u) -eq 0 ]]; then
      exec setsid setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- env -i "${rabbit_env[@]}" \
        "$RABBIT_BIN/rabbitmq-server" </dev/null >"$r/log/startup.log" 2>&1
    fi
    exec setsid env -i "${rabbit_env[@]}" "$RABBIT_BIN/rabbitmq-server" </dev/null >"$r/log/startup.log" 2>&1
  ) &
  echo $! >"$r/launcher.pid"
  # await_startup fails at once while the Erlang node is not up yet; retry until it answers or 60 s pass.
  deadline=$((SECONDS + 60))
  until as_rabbitmq timeout $((deadline - SECONDS)) "$RABBIT_BIN/rabbitmqctl" -q -n "$rabbit_node" \
    -t $((deadline - SECONDS)) await_startup >>"$r/log/await.log" 2>&1; do
    if ((SECONDS + 1 >= deadline)) || ! kill -0 "$(cat "$r/launcher.pid")" 2>/dev/null; then
      echo "services.sh: RabbitMQ node $rabbit_node did not start within 60 s (see $r/log)" >&2
      return 1
    fi
    sleep 0.5
  done
  listener_pid "$port" >"$r/beam.listener.pid"
  echo "export ATRIUM_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$port/%2f" >>"$dir/env"
}

stop_rabbitmq() {
  local r=$dir/rabbitmq f pid
  [[ -f "$r/node" ]] || return 0
  load_rabbit_env
  if [[ -f "$r/launcher.pid" ]]; then
    as_rabbitmq timeout 60 "$RABBIT_BIN/rabbitmqctl" -q -n "$rabbit_node" stop >/dev/null 2>&1 || true
  fi
  # Whatever is left (a node that never finished booting, a hung stop, epmd): the recorded pids, while they still
  # name the same kind of process.
  for f in launcher.pid beam.pid beam.listener.pid epmd.pid; do
    [[ -s "$r/$f" ]] || continue
    pid=$(cat "$r/$f")
    stop_pid "$pid" "rabbitmq-server beam.smp epmd" || true
    rm -f "$r/$f"
  done
}

# Ends process $1 (TERM, then KILL after 10 s) when its command name is one of $2.
stop_pid() {
  local pid=$1 names=" $2 " comm i
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  for ((i = 0; i < 100; i++)); do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0
    [[ $names == *" $comm "* ]] || return 0
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 0
    if ((i == 0)); then kill -TERM "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

case "$cmd" in
  start)
    start_postgres
    start_redis
    start_rabbitmq
    cat "$dir/env"
    ;;
  stop)
    stop_rabbitmq
    stop_redis
    stop_postgres
    ;;
  *)
    echo "usage: services.sh start|stop DIR" >&2
    exit 2
    ;;
esac
