#!/bin/sh
# Neovim plugin test: nvim --headless with this repository on 'runtimepath'
# and the LuaJIT build of cfuture.core ($1: the directory holding cfuture/core.so).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
moddir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CF_NVIM_OUT="$tmp/report" CF_NVIM_DIR="$tmp"
export LUA_CPATH="$moddir/?.so;;"
export XDG_STATE_HOME="$tmp" XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp"
status=0
timeout 60 nvim --headless -u NONE -i NONE --cmd "set rtp^=$root" \
  -c "luafile $root/test/nvim/plugin_test.lua" </dev/null || status=$?
cat "$tmp/report" 2>/dev/null || true
[ "$status" -eq 0 ] || { echo "nvim exited with $status"; exit 1; }
get() { sed -n "s/^$1=//p" "$tmp/report"; }
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1"; fail=1; fi; }
check "1000 result lines in the buffer" '[ "$(get lines)" = 1000 ] && [ "$(get good_lines)" = 1000 ]'
check "key handled within 50 ms ($(get key_ms) ms)" \
  '[ "$(get key_ms)" != -1 ] && [ "$(echo "$(get key_ms) < 50" | bc)" = 1 ]'
check "no step while idle ($(get idle_steps))" '[ "$(get idle_steps)" = 0 ]'
check "idle CPU under 20 ms per second ($(get idle_cpu_ms) ms)" '[ "$(get idle_cpu_ms)" -lt 20 ]'
check "no task left" '[ "$(get tasks_left)" = 0 ]'
check "cfuture.luv refused inside Neovim" '[ "$(get luv_refused)" = true ]'
exit $fail
