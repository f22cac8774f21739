#!/bin/sh
# Quitting Neovim cancels the tasks started through cfuture.nvim: their
# cf.defer cleanups run, their jobs are stopped, and :qa! does not wait.
# With a second argument "task", a task runs the :qa!.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CF_NVIM_TMP="$tmp" LUA_CPATH="$1/?.so;;"
[ "${2:-}" = task ] && export CF_NVIM_QUIT_IN_TASK=1
export XDG_STATE_HOME="$tmp" XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp"
start=$(date +%s%N)
# the task variant also leaves plugin/ out: the module hooks VimLeavePre itself
plugin="runtime plugin/cfuture.lua"
[ "${2:-}" = task ] && plugin="echo"
timeout 30 nvim --headless -u NONE -i NONE -n --cmd "set rtp^=$root" \
  -c "$plugin" -c "luafile $root/test/nvim/leave_test.lua" </dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1"; fail=1; fi; }
pid=$(cat "$tmp/pid" 2>/dev/null || echo 0)
check "the task's job started (pid $pid)" '[ "$pid" -gt 0 ]'
check "the task's cf.defer cleanup ran at VimLeavePre" '[ "$(cat "$tmp/cleaned" 2>/dev/null)" = "cleanup ran" ]'
check "the scope's child was cancelled too" '[ "$(cat "$tmp/child" 2>/dev/null)" = "child cleanup ran" ]'
check "its cleanup's error was reported before exit" 'grep -q "child cleanup failed" "$tmp/reported" 2>/dev/null'
sleep 0.3
check "the job is gone after exit" '! kill -0 "$pid" 2>/dev/null'
check "Neovim quit without waiting ($ms ms, under 5000)" '[ "$ms" -lt 5000 ]'
exit $fail
