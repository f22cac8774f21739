#!/usr/bin/env bash
# Load-test the network examples against real tools, in one run:
#   - examples/http_server.lua under wrk (Debian wrk), against a minimal
#     Node http server doing the same ("hello\n", keep-alive);
#   - examples/mini_redis.lua under redis-benchmark, against the real
#     redis-server (Debian redis-server), same commands and clients.
# Prints requests/s and the ratio to the reference. Needs a build (build/).
#   bench/servers/run.sh [seconds=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
export LUA_PATH_5_4="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH_5_4="$PWD/build/?.so;;"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

port_of() { # wait for "...:PORT" on the first line of a file
  for _ in $(seq 100); do
    local p; p=$(head -1 "$1" 2>/dev/null | grep -o ':[0-9]*' | tail -1 | tr -d :)
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo "server did not start: $1" >&2; exit 1
}

# --- HTTP ---------------------------------------------------------------------------
lua5.4 examples/http_server.lua 0 > /tmp/cf_http.out & pids+=($!)
cf_port=$(port_of /tmp/cf_http.out)
node -e '
const http = require("http");
const s = http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": 6}); res.end("hello\n"); });
s.keepAliveTimeout = 0;
s.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + s.address().port));
' > /tmp/node_http.out & pids+=($!)
node_port=$(port_of /tmp/node_http.out)

rps() { wrk -t2 -c100 -d"${secs}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
cf_rps=$(rps "$cf_port"); node_rps=$(rps "$node_port")
cf_rps2=$(rps "$cf_port"); node_rps2=$(rps "$node_port")
echo "http wrk -t2 -c100 ${secs}s: cfuture $cf_rps / $cf_rps2 req/s, node $node_rps / $node_rps2 req/s" \
  "(ratio cfuture/node $(echo "scale=2; ($cf_rps + $cf_rps2) / ($node_rps + $node_rps2)" | bc))"

# --- Redis ------------------------------------------------------------------------------
lua5.4 examples/mini_redis.lua 0 > /tmp/cf_redis.out & pids+=($!)
mr_port=$(port_of /tmp/cf_redis.out)
rport=$((20000 + RANDOM % 20000))
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no > /dev/null & pids+=($!)
sleep 0.3

bench() { { redis-benchmark -h 127.0.0.1 -p "$1" -t set,get,incr -n 100000 -c 50 -q $2 2>&1 || true; } \
  | tr '\r' '\n' | awk '/requests per second/ && !/rps=/ {printf "%s %s  ", $1, $2}'; }
for mode in "" "-P 16"; do
  echo "redis-benchmark -c 50 ${mode:-(no pipelining)}:"
  echo "  mini_redis:   $(bench "$mr_port" "$mode")"
  echo "  redis-server: $(bench "$rport" "$mode")"
done
