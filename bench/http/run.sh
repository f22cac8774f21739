#!/usr/bin/env bash
# The cfuture.http server under wrk -c100, against the same small response
# ("hello world\n", text/plain, keep-alive) from Node's http, nginx (the
# floor), and the hand-written HTTP example that came before the module
# (main's examples/http_server.lua before the move, answering "hello\n").
# Each server is measured twice, alternating, and the better run is kept
# (the machine may be shared). Prints requests/s and the ratios; also the
# server's CPU time per request (user + system, from /proc), which a busy
# machine disturbs less than the rate. Needs a build (build/), wrk, node,
# nginx.
#   bench/http/run.sh [seconds=5] [connections=100]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
conns=${2:-100}
export LUA_PATH_5_4="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH_5_4="$PWD/build/?.so;;"
tmp=$(mktemp -d /tmp/cfuture-bench-http.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return; fi
    sleep 0.05
  done
  echo "no server on port $1" >&2; exit 1
}

# cfuture.http
cf_port=$(free_port)
lua5.4 bench/http/cfuture_server.lua "$cf_port" > /dev/null & pids+=($!); cf_pid=$!
# Node's http
node_port=$(free_port)
node -e '
const http = require("http");
http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": 12}); res.end("hello world\n");
}).listen(+process.argv[1], "127.0.0.1");
' "$node_port" & pids+=($!); node_pid=$!
# nginx, one worker (cfuture and Node use one core too)
nginx_port=$(free_port)
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
master_process off;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type text/plain; return 200 "hello world\n"; }
  }
}
NGINX
nginx -p "$tmp" -c "$tmp/nginx.conf" 2> "$tmp/nginx.err" & pids+=($!); nginx_pid=$!
# the hand-written example of before (git: the commit before the move)
old_port=$(free_port)
old_rev=${OLD_REV:-$(git log --format=%H -n1 --diff-filter=M --grep="examples/http_server.lua on cfuture.http" -- examples/http_server.lua)}
git show "$old_rev^:examples/http_server.lua" > "$tmp/old_http_server.lua"
lua5.4 "$tmp/old_http_server.lua" "$old_port" > /dev/null & pids+=($!); old_pid=$!

for p in "$cf_port" "$node_port" "$nginx_port" "$old_port"; do wait_port "$p"; done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# measure PORT PID -> "rps cpu_us_per_request"
measure() {
  local c0 n c1
  c0=$(cpu "$2")
  n=$(wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$1/" | awk '/requests in/ {print $1}')
  c1=$(cpu "$2")
  awk -v n="$n" -v s="$secs" -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f %.1f\n", n / s, c / hz * 1e6 / n }'
}
declare -A best_rps best_cpu
for round in 1 2; do
  for name in cfuture node nginx old; do
    case $name in
      cfuture) r=$(measure "$cf_port" "$cf_pid") ;;
      node) r=$(measure "$node_port" "$node_pid") ;;
      nginx) r=$(measure "$nginx_port" "$nginx_pid") ;;
      old) r=$(measure "$old_port" "$old_pid") ;;
    esac
    rps=${r% *}; us=${r#* }
    if [ -z "${best_rps[$name]:-}" ] || [ "$rps" -gt "${best_rps[$name]}" ]; then
      best_rps[$name]=$rps; best_cpu[$name]=$us
    fi
  done
done

echo "wrk -t2 -c$conns -d${secs}s, small keep-alive responses (best of 2 runs each)"
printf '%-34s %12s %16s %14s\n' server "requests/s" "CPU us/request" "cfuture is"
row() {
  printf '%-34s %12s %16s %14s\n' "$1" "${best_rps[$2]}" "${best_cpu[$2]}" \
    "$(awk -v a="${best_rps[cfuture]}" -v b="${best_rps[$2]}" 'BEGIN { printf "%.2fx", a / b }')"
}
row "cfuture.http (lua5.4)" cfuture
row "Node $(node --version) http" node
row "nginx (1 worker, return 200)" nginx
row "old hand-written example" old
