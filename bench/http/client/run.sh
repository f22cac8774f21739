#!/usr/bin/env bash
# bench/http/client/run.sh [K] — the HTTP client fetching N (10000) small
# responses over keep-alive from a local nginx, one at a time (C = 1) and
# C_MANY (16) at a time on as many connections:
#   cfuture      cfuture.lua: http.get + read_all on a pool (this checkout's build/)
#   node-http    node.js: http.get with a keepAlive Agent (maxSockets = C)
#   node-fetch   node.js: fetch (undici's keep-alive pool)
#   curl         one curl process given the N URLs in a config file (it reuses
#                its connection); with C > 1, --parallel --parallel-max C
# K (3) interleaved rounds; the table gives the median requests per second.
# Environment: N, C_MANY, LUA (lua5.4), NODE (node), CURL (curl), BUILD
# (/tmp/cfuture-httpclient-bench).
set -u
K=${1:-3}
N=${N:-10000}
C_MANY=${C_MANY:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
CURL=${CURL:-curl}
BUILD=${BUILD:-/tmp/cfuture-httpclient-bench}
rm -rf "$BUILD"
mkdir -p "$BUILD/www" "$BUILD/tmp"
printf 'hello world\n' > "$BUILD/www/hello.txt"
PORT=$(( 20000 + RANDOM % 20000 ))
cat > "$BUILD/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
error_log $BUILD/error.log warn; pid $BUILD/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $BUILD/tmp; proxy_temp_path $BUILD/tmp; fastcgi_temp_path $BUILD/tmp;
  uwsgi_temp_path $BUILD/tmp; scgi_temp_path $BUILD/tmp;
  server { listen 127.0.0.1:$PORT; root $BUILD/www; }
}
CONF
nginx -p "$BUILD" -c "$BUILD/nginx.conf" -e "$BUILD/error.log" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null' EXIT
URL="http://127.0.0.1:$PORT/hello.txt"
for _ in $(seq 50); do curl -sf "$URL" > /dev/null && break; sleep 0.1; done
for i in $(seq "$N"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done > "$BUILD/curl.cfg"

RESULTS=$BUILD/results.txt
: > "$RESULTS"
curl_run() { # C
  local t0 t1 par=()
  [ "$1" -gt 1 ] && par=(--parallel --parallel-max "$1")
  t0=$(date +%s.%N)
  "$CURL" -s --no-progress-meter ${par[@]+"${par[@]}"} -K "$BUILD/curl.cfg" 2>/dev/null || return 1
  t1=$(date +%s.%N)
  echo "curl $1 $(echo "$N / ($t1 - $t0)" | bc)"
}
for round in $(seq "$K"); do
  for c in 1 "$C_MANY"; do
    "$LUA" "$HERE/cfuture.lua" "$URL" "$N" "$c" >> "$RESULTS" || echo "cfuture failed" >&2
    "$NODE" "$HERE/node.js" http "$URL" "$N" "$c" >> "$RESULTS" || echo "node http failed" >&2
    "$NODE" "$HERE/node.js" fetch "$URL" "$N" "$c" >> "$RESULTS" || echo "node fetch failed" >&2
    curl_run "$c" >> "$RESULTS" || echo "curl failed" >&2
  done
  echo "round $round done" >&2
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
printf '\n%-12s %12s %12s\n' client "C=1 req/s" "C=$C_MANY req/s"
for who in cfuture node-http node-fetch curl; do
  one=$(awk -v w=$who '$1 == w && $2 == 1 { print $3 }' "$RESULTS" | median)
  many=$(awk -v w=$who -v c="$C_MANY" '$1 == w && $2 == c { print $3 }' "$RESULTS" | median)
  printf '%-12s %12s %12s\n' "$who" "$one" "$many"
done
