#!/usr/bin/env bash
# bench/websocket/run.sh — a WebSocket echo benchmark: cfuture (cf.http +
# cfuture.websocket) against Node's `ws` package, each as server and as
# client, in one run. Every client/server pair runs each workload:
#   small   N_SMALL (20000) round trips of 32-byte binary messages on 1 connection
#   small32 the same shared by 32 connections at once
#   64k     N_BIG (2000) round trips of 64 KiB messages on 1 connection
# and prints messages per second (one round trip = one message each way),
# the best of ROUNDS (3) runs of each, with the CPU time per round trip of
# the server (from /proc) and of the client (its own count), which the
# machine's other load disturbs less than the rate. Raw numbers go to
# $BUILD/results.txt.
# Node's ws is installed into $BUILD/node_modules if missing (npm install ws).
# Environment: BUILD (/tmp/cfuture-wsbench), LUA (lua5.4), NODE (node),
# N_SMALL, N_BIG, ROUNDS.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-/tmp/cfuture-wsbench}
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
N_SMALL=${N_SMALL:-20000}
N_BIG=${N_BIG:-2000}
ROUNDS=${ROUNDS:-3}
mkdir -p "$BUILD"
: > "$BUILD/results.txt"
if [ ! -d "$BUILD/node_modules/ws" ]; then
  echo "installing ws into $BUILD"
  (cd "$BUILD" && npm install --no-audit --no-fund --silent ws > /dev/null) || { echo "npm install ws failed" >&2; exit 1; }
fi
export NODE_PATH=$BUILD/node_modules

start_server() { # kind -> sets SPID, SPORT
  local out=$BUILD/server.out
  : > "$out"
  case $1 in
    cfuture) "$LUA" "$HERE/cfuture.lua" server > "$out" 2> "$BUILD/server.err" & ;;
    node) "$NODE" "$HERE/node.js" server > "$out" 2> "$BUILD/server.err" & ;;
  esac
  SPID=$!
  for _ in $(seq 100); do SPORT=$(head -1 "$out"); [ -n "$SPORT" ] && return 0; sleep 0.05; done
  echo "server $1 did not start" >&2; cat "$BUILD/server.err" >&2; exit 1
}
client() { # kind port n size c
  case $1 in
    cfuture) "$LUA" "$HERE/cfuture.lua" client "$2" "$3" "$4" "$5" ;;
    node) "$NODE" "$HERE/node.js" client "$2" "$3" "$4" "$5" ;;
  esac
}

cpu_ticks() { # user + system clock ticks of a process
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# one workload, ROUNDS times: the best rate, and the CPU microseconds per
# round trip of the client and of the server (medians)
cell() { # client-kind port n size c
  local rates="" ccpu="" scpu="" out t0 t1
  for _ in $(seq "$ROUNDS"); do
    t0=$(cpu_ticks "$SPID")
    out=$(client "$1" "$2" "$3" "$4" "$5")
    t1=$(cpu_ticks "$SPID")
    rates="$rates $(echo "$out" | cut -d' ' -f1)"
    ccpu="$ccpu $(echo "$out" | cut -d' ' -f3)"
    scpu="$scpu $(awk -v d=$((t1 - t0)) -v u=$TICK_US -v n="$3" 'BEGIN { printf "%.1f", d * u / n }')"
  done
  echo "$1 n=$3 size=$4 c=$5 rates:$rates client_us:$ccpu server_us:$scpu" >> "$BUILD/results.txt"
  local best med_c med_s
  best=$(echo $rates | tr ' ' '\n' | sort -n | tail -1)
  med_c=$(echo $ccpu | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  med_s=$(echo $scpu | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  printf "%s (%s/%s)" "${best:-fail}" "$med_s" "$med_c"
}
echo "messages/s, best of $ROUNDS (server/client CPU us per round trip, medians)"
printf "%-8s %-8s %-24s %-24s %-24s\n" server client "32 B x1" "32 B x32 conns" "64 KiB x1"
for server in cfuture node; do
  for cl in cfuture node; do
    start_server $server
    a=$(cell $cl "$SPORT" "$N_SMALL" 32 1)
    b=$(cell $cl "$SPORT" "$N_SMALL" 32 32)
    c=$(cell $cl "$SPORT" "$N_BIG" 65536 1)
    kill "$SPID"; wait "$SPID" 2> /dev/null
    printf "%-8s %-8s %-24s %-24s %-24s\n" $server $cl "$a" "$b" "$c"
  done
done
