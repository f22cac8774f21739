#!/usr/bin/env bash
# bench/redis/run.sh [K] — Redis client libraries against one redis-server, in
# one run of K (3) interleaved rounds; every round runs every case once:
#   redis-benchmark     the C load tool: the floor (-c 1, -c C, -c C -P PIPE)
#   redis-lua           Debian's redis-lua (redis.lua) on blocking LuaSocket,
#                       one connection, sequential (c1, c1-P16)
#                       on cfuture.socket: C tasks, a connection each (cC,
#                       cC-P16), and one task (c1) for the cost per operation
#   resty               lua-resty-redis (Debian's lua-nginx-redis, downloaded)
#                       on cfuture.ngx: C light threads (cC, cC-P16, c1)
#                       under nginx + ngx_http_lua_module ("openresty"): the
#                       same Lua code (resty_work.lua) in one request
#   raw                 no library: RESP by hand on cfuture streams
#                       (raw_cfuture.lua), what cfuture itself costs (c1, cC,
#                       cC-P16); "layer us/op" of a cfuture row is its client
#                       CPU per operation minus raw's, same Lua and case
# Every Lua client runs the SET, GET and INCR phases of workload.lua (N
# operations each, checked: replies, DBSIZE, the INCR total) and prints one
# result line; the table gives medians over the rounds. The Lua cases run on
# each interpreter of LUAS that can load them (LuaJIT uses build/jit).
#
# OpenResty without installing it: plain Debian nginx (apt-get install nginx)
# loads ngx_http_lua_module and NDK from `apt-get download`ed packages
# (libnginx-mod-http-lua, libnginx-mod-http-ndk, lua-resty-core,
# lua-resty-lrucache, libluajit2-5.1-2), unpacked with dpkg -x into
# $BUILD/openresty: installing them would replace Debian's LuaJIT.
#
# Environment: N (20000 operations per phase), C (50), PIPE (16), LUAS
# ("lua5.4 luajit"), CASES (all: "bench luasocket raw cfuture resty openresty"),
# TIMEOUT (120 s per case), BUILD (/tmp/cfuture-redisbench),
# CFUTURE_COMPAT_LIBS (/tmp/cfuture-compat-libs). Raw result lines go to
# $BUILD/results.txt, every case's stderr to $BUILD/logs/.
set -u
K=${1:-3}
case $K in '' | *[!0-9]* | 0) echo "usage: run.sh [K >= 1]" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-/tmp/cfuture-redisbench}
N=${N:-20000}
C=${C:-50}
PIPE=${PIPE:-16}
LUAS=${LUAS:-lua5.4 luajit}
CASES=${CASES:-bench luasocket raw cfuture resty openresty}
TIMEOUT=${TIMEOUT:-120}
export CFUTURE_COMPAT_LIBS=${CFUTURE_COMPAT_LIBS:-/tmp/cfuture-compat-libs}
LOGS=$BUILD/logs
RESULTS=$BUILD/results.txt
OR=$BUILD/openresty

die() { echo "run.sh: $*" >&2; exit 1; }
[ $((N % C)) -eq 0 ] || die "N ($N) must be a multiple of C ($C)"
mkdir -p "$LOGS" || die "cannot make $LOGS"
rm -f "$LOGS"/* "$RESULTS"
: > "$RESULTS"
has_case() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # PORT: up to 10 s
  for _ in $(seq 200); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.05
  done
  return 1
}

RPID=
NPID=
cleanup() {
  if [ -n "$NPID" ]; then kill "$NPID" 2> /dev/null; wait "$NPID" 2> /dev/null; NPID=; fi
  if [ -n "$RPID" ]; then
    kill "$RPID" 2> /dev/null
    for _ in $(seq 50); do kill -0 "$RPID" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$RPID" 2> /dev/null
    RPID=
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

skipped=()
skip() { skipped+=("$1"); echo "skipped: $1"; }

# --- redis-server ----------------------------------------------------------------
RPORT=$(free_port) || die "no free port (python3)"
mkdir -p "$BUILD/redis"
rm -f "$BUILD/redis/redis.pid"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$BUILD/redis/redis.pid" --dir "$BUILD/redis" --logfile "$BUILD/redis/redis.log" ||
  die "redis-server did not start"
for _ in $(seq 100); do [ -s "$BUILD/redis/redis.pid" ] && break; sleep 0.05; done
RPID=$(cat "$BUILD/redis/redis.pid" 2> /dev/null)
if [ -z "$RPID" ] || ! wait_port "$RPORT"; then die "redis-server is not listening on $RPORT"; fi
export REDIS_PID=$RPID
rver=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)

# --- the client libraries ----------------------------------------------------------
if has_case resty || has_case openresty; then
  sh "$ROOT/test/compat/fetch_libs.sh" "$CFUTURE_COMPAT_LIBS" ||
    die "cannot get lua-resty-redis (test/compat/fetch_libs.sh)"
fi
[ -f /usr/share/lua/5.1/redis.lua ] || die "no /usr/share/lua/5.1/redis.lua (apt-get install lua-redis)"

# --- which Lua cases can run here -----------------------------------------------------
lua_cases=() # "name|command..." ; the command gets no further arguments
for lua in $LUAS; do
  if ! command -v "$lua" > /dev/null; then skip "$lua: not on PATH"; continue; fi
  if has_case luasocket; then
    if "$lua" -e 'require "socket.core"' 2> /dev/null; then
      lua_cases+=("redis-lua/luasocket/$lua c1|$lua $HERE/redis_lua.lua luasocket $RPORT $N 1 1")
      lua_cases+=("redis-lua/luasocket/$lua c1-P$PIPE|$lua $HERE/redis_lua.lua luasocket $RPORT $N 1 $PIPE")
    else
      skip "redis-lua/luasocket/$lua: no LuaSocket C module for $lua"
    fi
  fi
  if has_case cfuture; then
    probe=$("$lua" "$HERE/probe.lua" cfuture.socket 2>&1)
    if [ "$probe" = ok ]; then
      lua_cases+=("redis-lua/cfuture/$lua c1|$lua $HERE/redis_lua.lua cfuture $RPORT $N 1 1")
      lua_cases+=("redis-lua/cfuture/$lua c$C|$lua $HERE/redis_lua.lua cfuture $RPORT $N $C 1")
      lua_cases+=("redis-lua/cfuture/$lua c$C-P$PIPE|$lua $HERE/redis_lua.lua cfuture $RPORT $N $C $PIPE")
    else
      skip "redis-lua/cfuture/$lua: $probe"
    fi
  fi
  if has_case raw; then
    probe=$("$lua" "$HERE/probe.lua" cfuture 2>&1)
    if [ "$probe" = ok ]; then
      lua_cases+=("raw/cfuture/$lua c1|$lua $HERE/raw_cfuture.lua $RPORT $N 1 1")
      lua_cases+=("raw/cfuture/$lua c$C|$lua $HERE/raw_cfuture.lua $RPORT $N $C 1")
      lua_cases+=("raw/cfuture/$lua c$C-P$PIPE|$lua $HERE/raw_cfuture.lua $RPORT $N $C $PIPE")
    else
      skip "raw/cfuture/$lua: $probe"
    fi
  fi
  if has_case resty; then
    probe=$("$lua" "$HERE/probe.lua" cfuture.ngx 2>&1)
    if [ "$probe" = ok ]; then
      lua_cases+=("resty/cfuture/$lua c1|$lua $HERE/resty_cfuture.lua $RPORT $N 1 1")
      lua_cases+=("resty/cfuture/$lua c$C|$lua $HERE/resty_cfuture.lua $RPORT $N $C 1")
      lua_cases+=("resty/cfuture/$lua c$C-P$PIPE|$lua $HERE/resty_cfuture.lua $RPORT $N $C $PIPE")
    else
      skip "resty/cfuture/$lua: $probe"
    fi
  fi
done

# --- OpenResty-style nginx: Debian nginx + the downloaded lua module ------------------
start_nginx() { # sets NPORT and NPID, or says why not and returns 1
  command -v nginx > /dev/null || { skip "openresty: no nginx (apt-get install nginx: plain nginx, it removes nothing)"; return 1; }
  if [ ! -f "$OR/root/usr/lib/nginx/modules/ngx_http_lua_module.so" ]; then
    rm -rf "$OR"
    mkdir -p "$OR/debs"
    chmod 755 "$OR/debs" # apt's sandbox user writes the downloads
    if ! (cd "$OR/debs" && apt-get download -q libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core \
      lua-resty-lrucache libluajit2-5.1-2 > "$LOGS/openresty.download" 2>&1); then
      skip "openresty: apt-get download of the lua module failed: $(tail -n 2 "$LOGS/openresty.download" | tr '\n' ' ')"
      return 1
    fi
    for deb in "$OR"/debs/*.deb; do dpkg -x "$deb" "$OR/root" || { skip "openresty: dpkg -x $deb failed"; return 1; }; done
  fi
  local have want
  have=$(nginx -v 2>&1 | grep -o '[0-9][0-9.]*' | head -n 1)
  want=$(dpkg-deb -f "$OR"/debs/libnginx-mod-http-lua*.deb Depends 2> /dev/null | grep -o 'nginx-abi-[0-9.]*' | cut -c11-)
  NPORT=$(free_port)
  mkdir -p "$OR/run/logs"
  local lib=$OR/root/usr/lib/x86_64-linux-gnu share=$OR/root/usr/share/lua/5.1 tmp=$OR/run
  cat > "$OR/run/nginx.conf" << EOF
load_module $OR/root/usr/lib/nginx/modules/ndk_http_module.so;
load_module $OR/root/usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
error_log $OR/run/logs/error.log warn;
pid $OR/run/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  lua_package_path "$HERE/?.lua;$CFUTURE_COMPAT_LIBS/?.lua;$share/?.lua;;";
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp;
  uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen 127.0.0.1:$NPORT;
    location = /ping { content_by_lua_block { ngx.say(jit and jit.version or _VERSION) } }
    location = /bench {
      lua_socket_log_errors on;
      content_by_lua_block {
        local a = ngx.req.get_uri_args()
        local W, R = require "workload", require "resty_work"
        local line, err = R.run {
          peer = "resty/openresty/luajit2", port = tonumber(a.port), n = tonumber(a.n),
          c = tonumber(a.c), p = tonumber(a.p),
          wall = function() ngx.update_time() return ngx.now() end, cpu = os.clock,
          srv_cpu = function() return W.proc_cpu(a.pid) end,
        }
        if not line then ngx.status = 500 ngx.say("CHECK FAILED: ", err) return end
        ngx.say(line)
      }
    }
  }
}
EOF
  LD_LIBRARY_PATH=$lib setsid nginx -p "$OR/run" -e "$OR/run/logs/error.log" -c "$OR/run/nginx.conf" \
    > "$LOGS/nginx.out" 2>&1 &
  NPID=$!
  if ! wait_port "$NPORT"; then
    skip "openresty: nginx $have with ngx_http_lua_module (built for nginx-abi $want) did not start: $(tail -n 3 "$OR/run/logs/error.log" "$LOGS/nginx.out" 2> /dev/null | tr '\n' ' ')"
    kill "$NPID" 2> /dev/null
    NPID=
    return 1
  fi
  local ping
  ping=$(curl -s "http://127.0.0.1:$NPORT/ping")
  echo "openresty: nginx $have, ngx_http_lua_module $(dpkg-deb -f "$OR"/debs/libnginx-mod-http-lua*.deb Version), $ping, pid $NPID, port $NPORT"
  return 0
}
if has_case openresty && start_nginx; then
  for cp in "$C 1" "$C $PIPE" "1 1"; do
    # shellcheck disable=SC2086 # two numbers
    set -- $cp
    name="resty/openresty/luajit2 c$1"
    [ "$2" -gt 1 ] && name="$name-P$2"
    lua_cases+=("$name|curl -s -S --max-time $TIMEOUT http://127.0.0.1:$NPORT/bench?port=$RPORT&n=$N&c=$1&p=$2&pid=$RPID")
  done
fi

# --- redis-benchmark ------------------------------------------------------------------
# one result line like the Lua programs': rates per test, client CPU (user +
# sys of redis-benchmark, /usr/bin/time) and server CPU per operation over
# the whole run (the three tests together)
proc_ticks() { # PID: utime + stime in clock ticks (fields 14, 15; the name may hold spaces)
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
bench_case() { # CONNS PIPE LOG
  local c=$1 p=$2 log=$3 s0 s1 out cpu
  s0=$(proc_ticks "$RPID")
  out=$(/usr/bin/time -f 'cpu %U %S' timeout "$TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$RPORT" \
    -t set,get,incr -n "$N" -c "$c" -P "$p" -q 2> "$log" | tr '\r' '\n')
  s1=$(proc_ticks "$RPID")
  cpu=$(awk '/^cpu / { print $2 + $3 }' "$log")
  echo "$out" | awk -v n="$N" -v c="$c" -v p="$p" -v cpu="$cpu" -v srv="$((s1 - s0))" '
    /requests per second/ && !/rps=/ { t = tolower($1); sub(":", "", t); r[t] = $2 }
    END {
      if (r["set"] == "" || r["get"] == "" || r["incr"] == "" || cpu == "") exit 1
      us = cpu / (3 * n) * 1e6; su = srv / 100 / (3 * n) * 1e6
      printf "redis redis-benchmark/C c%d%s n=%d c=%d p=%d", c, (p > 1 ? "-P" p : ""), n, c, p
      printf " set_ops=%s set_cpu=%.2f set_srv=%.2f get_ops=%s get_cpu=%.2f get_srv=%.2f incr_ops=%s incr_cpu=%.2f incr_srv=%.2f\n",
        r["set"], us, su, r["get"], us, su, r["incr"], us, su
    }'
}
if has_case bench; then
  lua_cases=("redis-benchmark/C c1|bench 1 1" "redis-benchmark/C c$C|bench $C 1"
    "redis-benchmark/C c$C-P$PIPE|bench $C $PIPE" "${lua_cases[@]}")
fi
[ ${#lua_cases[@]} -gt 0 ] || die "no case to run"

set -f # the URLs have "?"
failures=()
echo "redis-server $rver on port $RPORT (pid $RPID); N=$N per phase, C=$C, PIPE=$PIPE; ${#lua_cases[@]} cases x $K interleaved rounds"
for round in $(seq "$K"); do
  echo "round $round"
  for entry in "${lua_cases[@]}"; do
    name=${entry%%|*}
    cmd=${entry#*|}
    log="$LOGS/$(echo "$name" | tr ' /' '__').$round.err"
    # shellcheck disable=SC2086 # the commands are split into words on purpose
    case $cmd in
      bench\ *) out=$(bench_case ${cmd#bench } "$log") ;;
      curl\ *) out=$($cmd 2> "$log") ;;
      *) out=$(timeout "$TIMEOUT" $cmd 2> "$log") ;;
    esac
    rc=$?
    if [ $rc -ne 0 ] || ! echo "$out" | grep -q '^redis '; then
      why=$( (echo "$out"; tail -n 3 "$log") | grep -v '^$' | tail -n 3 | tr '\n' ' ')
      [ $rc -eq 124 ] && why="killed after $TIMEOUT s. $why"
      failures+=("$name (round $round): exit $rc: $why")
      echo "  FAILED: $name: exit $rc: $why" >&2
      continue
    fi
    echo "$out" >> "$RESULTS"
    echo "$out" | sed 's/^/  /' | cut -c1-160
  done
done
cleanup

echo
echo "medians of $K rounds; ops/s per phase; \"all\" = 3N / (time of the three phases); client and server CPU in us per operation (user + sys; redis-benchmark's over its whole run)"
echo
awk -v k="$K" -v C="$C" -v P="$PIPE" '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function field(name,   i) { for (i = 4; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
  function add(key, v) { if (v != "") vals[key] = vals[key] " " v }
  function m(key) { return median(vals[key]) }
  function ratio(a, b) { return (a == "" || b == "" || a + 0 == 0 || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
  $1 == "redis" {
    row = $2 " " $3
    if (!(row in seen)) { seen[row] = 1; rows[++nr] = row }
    cnt[row]++
    set = field("set_ops"); get = field("get_ops"); inc = field("incr_ops")
    add(row ",set", set); add(row ",get", get); add(row ",incr", inc)
    add(row ",all", 3 / (1 / set + 1 / get + 1 / inc))
    add(row ",cpu", (field("set_cpu") + field("get_cpu") + field("incr_cpu")) / 3)
    if (field("set_srv") != "") add(row ",srv", (field("set_srv") + field("get_srv") + field("incr_srv")) / 3)
  }
  END {
    printf "| client / I/O / Lua | case | SET/s | GET/s | INCR/s | all/s | client us/op | server us/op | x redis-benchmark | x LuaSocket | x LuaSocket by CPU | x OpenResty | x OpenResty by CPU | layer us/op | runs ok |\n"
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= nr; i++) {
      row = rows[i]; split(row, pc, " "); peer = pc[1]; cs = pc[2]
      split(peer, pp, "/"); lib = pp[1]; io = pp[2]; lua = pp[3]
      piped = cs ~ /-P/
      # references: redis-benchmark with the same connections and pipelining; blocking
      # LuaSocket, sequential, same library and Lua (c1 or c1-P); OpenResty, same case
      rb = m("redis-benchmark/C " cs ",all")
      ls = m("redis-lua/luasocket/" lua " c1" (piped ? "-P" P : "") ",all")
      lsc = m("redis-lua/luasocket/" lua " c1" (piped ? "-P" P : "") ",cpu")
      orr = m("resty/openresty/luajit2 " cs ",all"); orc = m("resty/openresty/luajit2 " cs ",cpu")
      a = m(row ",all"); cu = m(row ",cpu"); sv = m(row ",srv")
      raw = m("raw/cfuture/" lua " " cs ",cpu")
      layer = (io == "cfuture" && lib != "raw" && raw != "") ? sprintf("%.1f", cu - raw) : "-"
      printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.1f | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", peer, cs,
        m(row ",set"), m(row ",get"), m(row ",incr"), a, cu, sv == "" ? "-" : sprintf("%.1f", sv),
        lib == "redis-benchmark" ? "1.00" : ratio(a, rb),
        lib == "redis-lua" && io != "luasocket" ? ratio(a, ls) : "-",
        lib == "redis-lua" && io != "luasocket" ? ratio(lsc, cu) : "-",
        lib == "resty" && io != "openresty" ? ratio(a, orr) : "-",
        lib == "resty" && io != "openresty" ? ratio(orc, cu) : "-", layer, cnt[row], k
    }
  }' "$RESULTS"

if [ ${#skipped[@]} -gt 0 ]; then
  echo
  echo "SKIPPED:"
  printf '  %s\n' "${skipped[@]}"
fi
if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "FAILURES (${#failures[@]}); logs in $LOGS:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
