#!/usr/bin/env bash
# bench/tls_echo/run.sh [K] — the tcp_echo workload over TLS 1.3, and TLS
# handshakes per second (full and resumed), for three servers in one run:
#   c        server.c: C on libuv + OpenSSL memory BIOs (the reference)
#   node     node.js: Node's tls.createServer, each socket piped to itself
#   cfuture  cfuture.lua: cf.tls.listen + a task per connection (this checkout's
#            build/; skipped, with a message, when it has no cf.tls.listen)
# all under one C load client (tls_client.c). K (3) interleaved rounds: in
# each, every server is started, gets the echo load then the handshake load,
# and is stopped; the table gives medians over the rounds.
#
# Environment: PEERS ("c node cfuture"), KEY (ec = ECDSA P-256 certificates,
# or rsa = RSA 2048), ECHO_ARGS ("-c 100 -r 2000 -s 64 -j 1"), HS_ARGS
# ("-H 2000 -C 8 -j 2"), TIMEOUT (60 s per client run), BUILD
# (/tmp/cfuture-tlsbench), CC, LUA (lua5.4), NODE (node). Raw result lines go
# to $BUILD/results.txt, servers' and clients' stderr to $BUILD/logs/.
set -u
K=${1:-3}
case $K in '' | *[!0-9]* | 0) echo "usage: run.sh [K >= 1]" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-/tmp/cfuture-tlsbench}
CC=${CC:-gcc}
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
PEERS=${PEERS:-c node cfuture}
KEY=${KEY:-ec}
ECHO_ARGS=${ECHO_ARGS:--c 100 -r 2000 -s 64 -j 1}
HS_ARGS=${HS_ARGS:--H 2000 -C 8 -j 2}
TIMEOUT=${TIMEOUT:-60}
LOGS=$BUILD/logs
RESULTS=$BUILD/results.txt
CERTS=$BUILD/certs

die() { echo "run.sh: $*" >&2; exit 1; }
mkdir -p "$LOGS" || die "cannot make $LOGS"
rm -f "$LOGS"/* "$RESULTS"
: > "$RESULTS"

echo "building into $BUILD"
$CC -O2 -g -Wall -Wextra -o "$BUILD/tls_client" "$HERE/tls_client.c" -lssl -lcrypto -lpthread ||
  die "cannot build tls_client.c (needs libssl-dev)"
$CC -O2 -g -Wall -Wextra -o "$BUILD/tls_server" "$HERE/server.c" -lssl -lcrypto -luv ||
  die "cannot build server.c (needs libssl-dev, libuv1-dev)"
rm -rf "$CERTS"
sh "$HERE/certs.sh" "$CERTS" "$KEY" || die "cannot make the certificates (openssl CLI)"

# Which peers can run here.
peers=()
for p in $PEERS; do
  case $p in
    c) peers+=(c) ;;
    node)
      if command -v "$NODE" > /dev/null; then peers+=(node); else echo "node: skipped: no '$NODE' on PATH"; fi ;;
    cfuture)
      # what bench/prelude.lua will find: this checkout's lua/ and build/ first
      probe=$("$LUA" -e "
        package.path = '$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;' .. package.path
        package.cpath = '$ROOT/build/?.so;' .. package.cpath
        local ok, cf = pcall(require, 'cfuture')
        if not ok then io.write('cannot load cfuture: ', (tostring(cf):gsub('\n.*', ''))) return end
        io.write(cf.tls and cf.tls.listen and 'ok' or 'no cf.tls.listen in this build')" 2>&1)
      if [ "$probe" = ok ]; then
        peers+=(cfuture)
      else
        echo "cfuture: skipped: $probe (from $ROOT/build; build it with cf.tls first)"
      fi ;;
    *) die "unknown peer '$p' (c, node, cfuture)" ;;
  esac
done
[ ${#peers[@]} -gt 0 ] || die "no peer to run"

server_cmd() {
  case $1 in
    c) SCMD=("$BUILD/tls_server") ;;
    node) SCMD=("$NODE" "$HERE/node.js") ;;
    cfuture) SCMD=("$LUA" "$HERE/cfuture.lua") ;;
  esac
}

SPID=
stop_server() {
  [ -n "$SPID" ] || return 0
  # the server leads its own process group (setsid): end anything it started too
  if kill -0 "$SPID" 2> /dev/null; then
    kill -TERM -- "-$SPID" 2> /dev/null || kill -TERM "$SPID" 2> /dev/null
    for _ in $(seq 20); do kill -0 "$SPID" 2> /dev/null || break; sleep 0.1; done
  fi
  kill -KILL -- "-$SPID" 2> /dev/null
  wait "$SPID" 2> /dev/null
  SPID=
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

failures=()
failed() { # peer round what
  failures+=("$1 (round $2): $3")
  echo "  FAILED: $1 (round $2): $3" >&2
}

# start_server PEER ROUND: sets SPID and SPORT, or reports why not and returns 1.
start_server() {
  local peer=$1 round=$2 out=$LOGS/$1.$2.port err=$LOGS/$1.$2.server.err
  server_cmd "$peer"
  setsid "${SCMD[@]}" "$CERTS/server.pem" "$CERTS/server.key" > "$out" 2> "$err" &
  SPID=$! # setsid execs the server in place: this is its PID and its group's
  for _ in $(seq 200); do # 20 s
    if [ "$(wc -l < "$out")" -ge 1 ]; then
      SPORT=$(head -n 1 "$out")
      case $SPORT in
        '' | *[!0-9]*) failed "$peer" "$round" "bad port line '$SPORT' (stderr: $(tail -c 300 "$err"))"; stop_server; return 1 ;;
      esac
      return 0
    fi
    if ! kill -0 "$SPID" 2> /dev/null; then
      wait "$SPID" 2> /dev/null
      failed "$peer" "$round" "the server exited (status $?) before printing its port; stderr: $(tail -c 300 "$err")"
      SPID=
      return 1
    fi
    sleep 0.1
  done
  failed "$peer" "$round" "the server printed no port within 20 s"
  stop_server
  return 1
}

# client PEER ROUND MODE ARGS...: one tls_client run, its result lines into $RESULTS.
client() {
  local peer=$1 round=$2 mode=$3 log=$LOGS/$1.$2.$3.client.err
  shift 3
  local out
  out=$(timeout $((TIMEOUT + 15)) "$BUILD/tls_client" "$mode" -p "$SPORT" -a "$CERTS/ca.pem" -n "$peer" \
    -P "$SPID" -t "$TIMEOUT" "$@" 2> "$log")
  local rc=$?
  [ -n "$out" ] && echo "$out" >> "$RESULTS"
  if [ $rc -ne 0 ]; then
    local why
    why=$(tail -n 3 "$log" | tr '\n' ' ')
    [ $rc -eq 124 ] && why="killed after $((TIMEOUT + 15)) s. $why"
    kill -0 "$SPID" 2> /dev/null || why="$why (the server is gone; its stderr: $(tail -c 300 "$LOGS/$peer.$round.server.err"))"
    failed "$peer" "$round" "$mode load: exit $rc: $why"
    return 1
  fi
  echo "$out" | sed 's/^/  /' | cut -c1-150
}

echo "peers: ${peers[*]}; $K interleaved rounds; certificates: $KEY; echo: $ECHO_ARGS; handshakes: $HS_ARGS"
for round in $(seq "$K"); do
  for peer in "${peers[@]}"; do
    echo "round $round: $peer"
    start_server "$peer" "$round" || continue
    # shellcheck disable=SC2086
    client "$peer" "$round" echo $ECHO_ARGS
    # shellcheck disable=SC2086
    kill -0 "$SPID" 2> /dev/null && client "$peer" "$round" handshake $HS_ARGS
    rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SPID/status" 2> /dev/null)
    [ -n "$rss" ] && echo "rss $peer $rss" >> "$RESULTS"
    stop_server
  done
done

echo
awk -v order="${peers[*]}" -v k="$K" '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function field(name,   i) { for (i = 5; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
  function add(key, v) { if (v != "") { vals[key] = vals[key] " " v; cnt[key]++ } }
  function m(key) { return median(vals[key]) }
  function num(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
  function ratio(a, b) { return (a == "" || b == "" || a + 0 == 0 || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
  function cores(key) { return num(m(key "_ccpu"), "%.2f") " / " num(m(key "_scpu"), "%.2f") }
  $1 == "tls_echo" {
    p = $2; add(p ",echo", $4); add(p ",echo_us", field("server_us")); n_echo = $3
    add(p ",echo_ccpu", field("client_cpu")); add(p ",echo_scpu", field("server_cpu"))
    if (params == "") params = field("proto") " " field("cipher") ", key exchange " field("group") ", server signature " field("sig")
  }
  $1 == "tls_handshake" {
    p = $2; h = $3; add(p "," h, field("hs_per_s")); add(p "," h "_us", field("server_us")); n_hs = $4
    add(p "," h "_ccpu", field("client_cpu")); add(p "," h "_scpu", field("server_cpu"))
    add(p "," h "_res", field("resumed")); add(p "," h "_tix", field("tickets"))
  }
  $1 == "rss" { if ($3 + 0 > rss[$2] + 0) rss[$2] = $3 }
  END {
    np = split(order, peers, " ")
    if (params != "") print "negotiated: " params
    printf "medians of %s rounds; \"by CPU\" = the reference server'"'"'s CPU per operation / this one'"'"'s; cores = client / server\n\n", k
    printf "echo, %s round trips of 64 B:\n\n", n_echo
    printf "| peer | echo median s | round trips/s | x C | server us/rt | x C by CPU | cores | peak RSS MiB | runs ok |\n"
    printf "|---|---:|---:|---:|---:|---:|---|---:|---:|\n"
    c_s = m("c,echo"); c_us = m("c,echo_us")
    for (i = 1; i <= np; i++) {
      p = peers[i]; s = m(p ",echo"); us = m(p ",echo_us")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %d/%s |\n", p, num(s, "%.3f"), s == "" ? "-" : sprintf("%.0f", n_echo / s),
        ratio(c_s, s), num(us, "%.1f"), ratio(c_us, us), cores(p ",echo"), rss[p] == "" ? "-" : sprintf("%.1f", rss[p] / 1024),
        cnt[p ",echo"], k
    }
    printf "\nhandshakes, %s of each kind:\n\n", n_hs
    printf "| peer | full hs/s | x Node | server us/full | x Node by CPU | cores | resumed hs/s | x Node | server us/resumed | x Node by CPU | cores | resumed | tickets per hs full / resumed |\n"
    printf "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|\n"
    nf = m("node,full"); nr = m("node,resumed"); nfu = m("node,full_us"); nru = m("node,resumed_us")
    for (i = 1; i <= np; i++) {
      p = peers[i]; f = m(p ",full"); r = m(p ",resumed"); fu = m(p ",full_us"); ru = m(p ",resumed_us")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", p,
        num(f, "%.0f"), ratio(f, nf), num(fu, "%.0f"), ratio(nfu, fu), cores(p ",full"),
        num(r, "%.0f"), ratio(r, nr), num(ru, "%.0f"), ratio(nru, ru), cores(p ",resumed"),
        num(m(p ",resumed_res"), "%d"), num(m(p ",full_tix"), "%.2f"), num(m(p ",resumed_tix"), "%.2f")
      res = m(p ",resumed_res")
      if (res != "" && res + 0 < n_hs + 0) notes = notes sprintf("note: %s resumed only %d of %d connections offered a ticket (tickets per full handshake: %s)\n", p, res, n_hs, m(p ",full_tix"))
    }
    if (notes != "") printf "\n%s", notes
  }' "$RESULTS"

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "FAILURES (${#failures[@]}); logs in $LOGS:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
