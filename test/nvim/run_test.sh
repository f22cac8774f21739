#!/bin/sh
# Run one test file written with cfuture.nvim.test under nvim --headless:
#   run_test.sh <dir holding cfuture/core.so> <test file> [args for the test]
# with this repository on 'runtimepath' and a throw-away XDG home. The test
# file's TAP lines are the output; the status is Neovim's exit status.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
moddir=$1 file=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CF_NVIM_TMP="$tmp" CF_NVIM_ROOT="$root" CF_NVIM_ARGS="$*"
export LUA_CPATH="$moddir/?.so;;"
export XDG_STATE_HOME="$tmp" XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" XDG_CACHE_HOME="$tmp"
case $file in /*) ;; *) file="$root/$file" ;; esac
status=0
timeout 120 nvim --headless -u NONE -i NONE -n --cmd "set rtp^=$root" \
  -c "runtime plugin/cfuture.lua" ${CF_NVIM_PRE:+-c "luafile $CF_NVIM_PRE"} -c "luafile $file" </dev/null || status=$?
[ "$status" -eq 0 ] || echo "nvim exited with status $status"
exit "$status"
