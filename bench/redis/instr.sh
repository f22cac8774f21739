#!/usr/bin/env bash
# bench/redis/instr.sh [LUA] — user-space instructions per operation of each
# Lua client (valgrind --tool=callgrind), independent of the machine's load:
# every program runs with N=N1 and N=N2 operations per phase and the
# difference of the two totals is divided by 3 (N2 - N1), so start-up and
# connection set-up cancel out. The kernel's share (loopback TCP, epoll) is
# not counted: see the wall and CPU rates of run.sh for it.
# With LUA=luajit it also counts lua-resty-redis under nginx + ngx_http_lua_module
# (the whole nginx process, one /bench request per run), if run.sh has unpacked
# the module into BUILD/openresty.
# Environment: N1 (1000), N2 (3000), C (50), PIPE (1), BUILD (/tmp/cfuture-redisbench),
# CFUTURE_COMPAT_LIBS. Prints one line per client: instructions per operation.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA=${1:-lua5.4}
N1=${N1:-1000}
N2=${N2:-3000}
C=${C:-50}
PIPE=${PIPE:-1}
OR=${BUILD:-/tmp/cfuture-redisbench}/openresty
BUILD=${BUILD:-/tmp/cfuture-redisbench}/instr
export CFUTURE_COMPAT_LIBS=${CFUTURE_COMPAT_LIBS:-/tmp/cfuture-compat-libs}
mkdir -p "$BUILD/redis"
sh "$ROOT/test/compat/fetch_libs.sh" "$CFUTURE_COMPAT_LIBS" || exit 1
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -f "$BUILD/redis/redis.pid"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$BUILD/redis/redis.pid" --dir "$BUILD/redis" --logfile "$BUILD/redis/redis.log" || exit 1
for _ in $(seq 100); do [ -s "$BUILD/redis/redis.pid" ] && break; sleep 0.05; done
rpid=$(cat "$BUILD/redis/redis.pid")
vpid=
trap 'kill "$rpid" 2> /dev/null; [ -n "$vpid" ] && kill "$vpid" 2> /dev/null' EXIT
sleep 0.3

ir() { # OUT PROGRAM ARGS...: total instructions of one run
  local out=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$out" "$LUA" "$@" > "$out.stdout" 2> "$out.stderr" ||
    { echo "failed: $* ($(tail -n 2 "$out.stderr" | tr '\n' ' '))" >&2; return 1; }
  grep -q '^redis ' "$out.stdout" || { echo "no result: $*" >&2; return 1; }
  awk '/^summary:/ { print $2 }' "$out"
}
one() { # NAME CONNS PROGRAM ARGS-BEFORE-N
  local name=$1 c=$2 prog=$3
  shift 3
  local a b f
  f=$BUILD/$(echo "$name" | tr '/' '_').c$c
  a=$(ir "$f.$N1.out" "$HERE/$prog" "$@" "$N1" "$c" "$PIPE") || return
  b=$(ir "$f.$N2.out" "$HERE/$prog" "$@" "$N2" "$c" "$PIPE") || return
  awk -v n="$name" -v c="$c" -v a="$a" -v b="$b" -v d=$((3 * (N2 - N1))) -v p="$PIPE" \
    'BEGIN { printf "%-32s c%-3d P%-3d %8.0f instructions/op\n", n, c, p, (b - a) / d }'
}
echo "$LUA, N=$N1 and $N2 per phase, callgrind, user space only"
one "redis-lua/luasocket/$LUA" 1 redis_lua.lua luasocket "$port"
one "raw/cfuture/$LUA" 1 raw_cfuture.lua "$port"
one "raw/cfuture/$LUA" "$C" raw_cfuture.lua "$port"
one "redis-lua/cfuture/$LUA" 1 redis_lua.lua cfuture "$port"
one "redis-lua/cfuture/$LUA" "$C" redis_lua.lua cfuture "$port"
one "resty/cfuture/$LUA" 1 resty_cfuture.lua "$port"
one "resty/cfuture/$LUA" "$C" resty_cfuture.lua "$port"

# nginx + ngx_http_lua_module under callgrind: one server per count, one request
nginx_ir() { # N: total instructions of an nginx that served one /bench request of N
  local n=$1 dir=$BUILD/nginx np
  mkdir -p "$dir/logs"
  np=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed -e "s|listen 127.0.0.1:[0-9]*;|listen 127.0.0.1:$np;|" -e "s|error_log [^;]*;|error_log $dir/logs/error.log warn;|" \
    -e "s|pid [^;]*;|pid $dir/nginx.pid;|" "$OR/run/nginx.conf" > "$dir/nginx.conf"
  LD_LIBRARY_PATH=$OR/root/usr/lib/x86_64-linux-gnu valgrind --tool=callgrind \
    --callgrind-out-file="$dir/cg.$n" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    > "$dir/out.$n" 2>&1 &
  vpid=$!
  for _ in $(seq 150); do curl -s "http://127.0.0.1:$np/ping" > /dev/null && break; sleep 0.2; done
  curl -s "http://127.0.0.1:$np/bench?port=$port&n=$n&c=$C&p=$PIPE&pid=$rpid" > "$dir/res.$n"
  kill -QUIT "$vpid"
  wait "$vpid"
  vpid=
  grep -q '^redis ' "$dir/res.$n" || { echo "nginx: no result: $(head -c 200 "$dir/res.$n")" >&2; return 1; }
  awk '/^summary:/ { print $2 }' "$dir/cg.$n"
}
if [ "$LUA" = luajit ]; then
  if [ -f "$OR/run/nginx.conf" ] && command -v nginx > /dev/null; then
    a=$(nginx_ir "$N1") && b=$(nginx_ir "$N2") &&
      awk -v a="$a" -v b="$b" -v d=$((3 * (N2 - N1))) -v c="$C" -v p="$PIPE" \
        'BEGIN { printf "%-32s c%-3d P%-3d %8.0f instructions/op (the nginx process)\n", "resty/openresty/luajit2", c, p, (b - a) / d }'
  else
    echo "resty/openresty/luajit2: skipped: run bench/redis/run.sh first (it unpacks the lua module into $OR)"
  fi
fi
