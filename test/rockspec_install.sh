#!/bin/sh
# `luarocks make` of the rockspec, offline, into a throw-away tree; then a
# fresh lua5.4 that knows only that tree requires cfuture and runs a task.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$tree" "$work"' EXIT
# build from a copy so the checkout stays clean
cp -r "$src/src" "$src/include" "$src/lua" "$src/examples" "$src/docs" "$src/library" "$src"/*.rockspec "$work/"
cd "$work"
luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none ./*.rockspec >"$work/make.log" 2>&1 || {
  cat "$work/make.log"; exit 1; }
# the rock tree's own module paths, nothing else
lpath="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua"
cpath="$tree/lib/lua/5.4/?.so"
out=$(env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH="$lpath" LUA_CPATH="$cpath" TREE="$tree" lua5.4 -e '
  local cf = require "cfuture"
  local so = package.searchpath("cfuture.core", package.cpath)
  assert(so and so:find(os.getenv("TREE"), 1, true), "cfuture.core not from the rock tree")
  print(cf.block_on(function() cf.sleep(10):await(); return "installed ok" end))') || {
  echo "require failed; the rock tree holds:"; find "$tree" -name '*.lua' -o -name '*.so'; cat "$work/make.log"; exit 1; }
[ "$out" = "installed ok" ] || { echo "unexpected output: $out"; exit 1; }
# the LuaLS annotations sit in the rock's directory, where README points editors
rockdir=$(luarocks --lua-version=5.4 --tree="$tree" show --rock-dir cfuture)
for f in cfuture.lua cfuture/thread.lua cfuture/core.lua; do
  [ -f "$rockdir/library/$f" ] || { echo "library/$f not installed in $rockdir"; exit 1; }
done
echo "$out"
