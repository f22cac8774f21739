#!/bin/sh
# Neovim measurements, in one run: the live-grep picker's keystroke latency
# under load (test/nvim/picker_test.lua: 54 keys fed with nvim_input while
# rg or grep streams matches over 640000 generated lines), for each process
# backend, and the round trip of an awaited callback against a plain one
# (bench/nvim/callback_bench.lua).
#   sh bench/nvim/run.sh build/jit
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
moddir=${1:-$root/build/jit}
case $moddir in /*) ;; *) moddir="$PWD/$moddir" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nvim --version | head -1
echo
echo "picker keystroke latency (ms, from nvim_input to the picker seeing the new query)"
printf '%-6s %-8s %6s %6s %6s %8s %10s\n' tool backend p50 p99 max searches lines
for run in "rg process" "rg job" "grep process" "grep job"; do
  set -- $run
  line=$(sh "$root/test/nvim/run_test.sh" "$moddir" test/nvim/picker_test.lua "$1" "$2" 2>&1 | grep '^# abcd_matches=' || true)
  get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  if [ -z "$line" ]; then echo "$1 $2: the run did not finish"; continue; fi
  printf '%-6s %-8s %6s %6s %6s %8s %10s\n' "$1" "$2" "$(get key_p50_ms)" "$(get key_p99_ms)" "$(get key_max_ms)" \
    "$(get searches)" "$(get lines_received)"
done
echo
echo "callback round trip (us, sequential)"
CF_BENCH_OUT="$tmp/cb" LUA_CPATH="$moddir/?.so;;" XDG_STATE_HOME="$tmp" XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" \
  timeout 120 nvim --headless -u NONE -i NONE -n --cmd "set rtp^=$root" -c "runtime plugin/cfuture.lua" \
  -c "luafile $root/bench/nvim/callback_bench.lua" </dev/null
cat "$tmp/cb"
