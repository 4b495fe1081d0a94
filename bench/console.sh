#!/usr/bin/env bash
# The web console's size and first render over loopback, beside nginx serving the same built files.
#
# Prints the first view's files (index.html, the script, the style sheet) raw and gzip-compressed as Atrium sends
# them, then runs bench/console_render.mjs: RUNS cold loads of /console in Chromium from the release binary and
# from a private nginx (gzip on, the same files under /console/, the page with Atrium's security headers), alternated, with first contentful paint and the
# time until the sign-in form has rendered. The server gets an empty SQLite data directory; the sign-in page reads
# no data. All processes and temp files are removed on exit.
#
# Usage: bench/console.sh        Environment: ATRIUM_BINARY [build/atrium], RUNS [30], NGINX_BINARY [/usr/sbin/nginx]
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME=console
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_install_traps

WORK_DIR=$(mktemp -d /tmp/atrium-bench-console.XXXXXX)
chmod 755 "$WORK_DIR"  # nginx workers (not root) read the files
CONSOLE_DIR=$(dirname "$ATRIUM_BINARY")/console
[[ -f $CONSOLE_DIR/index.html ]] || die "$CONSOLE_DIR/index.html missing: build $ATRIUM_BINARY with the console"

echo "| file | bytes | gzip -9 bytes |"
echo "|---|---|---|"
total=0
total_gz=0
for f in "$CONSOLE_DIR"/index.html "$CONSOLE_DIR"/assets/*; do
  raw=$(stat -c %s "$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  total=$((total + raw))
  total_gz=$((total_gz + gz))
  echo "| ${f#"$CONSOLE_DIR"/} | $raw | $gz |"
done
echo "| **first view, all files** | **$total** | **$total_gz** |"
echo

port=$(free_port)
log "starting atrium on $HOST:$port"
"$ATRIUM_BINARY" serve --listen "$HOST:$port" --data-dir "$WORK_DIR/data" >"$WORK_DIR/atrium.log" 2>&1 &
ATRIUM_PID=$!
wait_http atrium "$ATRIUM_PID" "http://$HOST:$port/health" "$WORK_DIR/atrium.log"

nport=$(free_port)
mkdir -p "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp" "$WORK_DIR/nginx/www"
cp -r "$CONSOLE_DIR" "$WORK_DIR/nginx/www/console"
chmod -R a+rX "$WORK_DIR/nginx/www"
cat >"$WORK_DIR/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK_DIR/nginx/nginx.pid;
error_log $WORK_DIR/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    include /etc/nginx/mime.types;
    client_body_temp_path $WORK_DIR/nginx/tmp/body;
    proxy_temp_path $WORK_DIR/nginx/tmp/proxy;
    fastcgi_temp_path $WORK_DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK_DIR/nginx/tmp/uwsgi;
    scgi_temp_path $WORK_DIR/nginx/tmp/scgi;
    gzip on;
    gzip_comp_level 9;
    gzip_types text/css application/javascript text/javascript;
    server {
        listen $HOST:$nport;
        root $WORK_DIR/nginx/www;
        # The page with Atrium's own security headers, so both sides ask the browser for the same work.
        location = /console {
            add_header Content-Security-Policy "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'none'";
            add_header Cross-Origin-Opener-Policy same-origin;
            add_header Referrer-Policy no-referrer;
            add_header X-Frame-Options DENY;
            add_header Cache-Control no-cache;
            default_type text/html;
            try_files /console/index.html =404;
        }
        location /console/assets/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    }
}
CONF
log "starting nginx on $HOST:$nport"
"$NGINX_BINARY" -p "$WORK_DIR/nginx/" -c "$WORK_DIR/nginx/nginx.conf" -e "$WORK_DIR/nginx/logs/error.log" \
  >"$WORK_DIR/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_http nginx "$NGINX_PID" "http://$HOST:$nport/console" "$WORK_DIR/nginx/logs/error.log"

log "loading /console ${RUNS:-30} times from each"
ATRIUM_URL="http://$HOST:$port" BASELINE_URL="http://$HOST:$nport" RUNS=${RUNS:-30} \
  node "$SCRIPT_DIR/console_render.mjs"
