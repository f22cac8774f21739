#!/usr/bin/env bash
# bench/websocket/run.sh — a WebSocket echo benchmark: cfuture (cf.http +
# cfuture.websocket) against Node's `ws` package, each as server and as
# client, in one run. Every client/server pair runs each workload:
#   small   N_SMALL (20000) round trips of 32-byte binary messages on 1 connection
#   small32 the same shared by 32 connections at once
#   64k     N_BIG (2000) round trips of 64 KiB messages on 1 connection
# and prints messages per second (one round trip = one message each way).
# Node's ws is installed into $BUILD/node_modules if missing (npm install ws).
# Environment: BUILD (/tmp/cfuture-wsbench), LUA (lua5.4), NODE (node),
# N_SMALL, N_BIG.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-/tmp/cfuture-wsbench}
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
N_SMALL=${N_SMALL:-20000}
N_BIG=${N_BIG:-2000}
mkdir -p "$BUILD"
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

printf "%-8s %-8s %12s %12s %12s\n" server client "small msg/s" "small32" "64k msg/s"
for server in cfuture node; do
  for cl in cfuture node; do
    start_server $server
    a=$(client $cl "$SPORT" "$N_SMALL" 32 1 | cut -d' ' -f1)
    b=$(client $cl "$SPORT" "$N_SMALL" 32 32 | cut -d' ' -f1)
    c=$(client $cl "$SPORT" "$N_BIG" 65536 1 | cut -d' ' -f1)
    kill "$SPID"; wait "$SPID" 2> /dev/null
    printf "%-8s %-8s %12s %12s %12s\n" $server $cl "${a:-fail}" "${b:-fail}" "${c:-fail}"
  done
done
