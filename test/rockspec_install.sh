#!/bin/sh
# `luarocks make` of the rockspec, offline, into a throw-away tree; then a
# fresh lua5.4 that knows only that tree requires cfuture and runs a task.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
work=$(mktemp -d)
jtree=$(mktemp -d)
jwork=$(mktemp -d)
trap 'rm -rf "$tree" "$work" "$jtree" "$jwork"' EXIT
# build from a copy so the checkout stays clean
cp -r "$src/src" "$src/include" "$src/lua" "$src/examples" "$src/docs" "$src/library" "$src/plugin" \
  "$src"/*.rockspec "$work/"
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
for f in cfuture.lua cfuture/thread.lua cfuture/core.lua cfuture/luv.lua; do
  [ -f "$rockdir/library/$f" ] || { echo "library/$f not installed in $rockdir"; exit 1; }
done
echo "$out"
# cfuture.luv from the rock, on the system's luv (the tree first, then the defaults)
if lua5.4 -e 'require "luv"' 2>/dev/null; then
  lout=$(env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH="$lpath;;" LUA_CPATH="$cpath;;" lua5.4 -e '
    local uv = require "luv"
    local cf = require "cfuture.luv"
    cf.spawn(function() cf.sleep(10):await(); print("cfuture.luv installed ok") end)
    uv.run()')
  [ "$lout" = "cfuture.luv installed ok" ] || { echo "cfuture.luv from the rock: $lout"; exit 1; }
  echo "$lout"
fi
# LuaJIT: the same rockspec with --lua-version=5.1 against LuaJIT's headers
if command -v luajit >/dev/null && [ -d /usr/include/luajit-2.1 ]; then
  cp -r "$src/src" "$src/include" "$src/lua" "$src/examples" "$src/docs" "$src/library" "$src/plugin" \
    "$src"/*.rockspec "$jwork/"
  cd "$jwork"
  luarocks --lua-version=5.1 --tree="$jtree" make --deps-mode=none ./*.rockspec \
    LUA_INCDIR=/usr/include/luajit-2.1 >"$jwork/make.log" 2>&1 || { cat "$jwork/make.log"; exit 1; }
  jout=$(env -u LUA_PATH -u LUA_CPATH LUA_PATH="$jtree/share/lua/5.1/?.lua;$jtree/share/lua/5.1/?/init.lua" \
    LUA_CPATH="$jtree/lib/lua/5.1/?.so" luajit -e '
    local cf = require "cfuture"
    print(cf.block_on(function() cf.sleep(10):await(); return "installed ok on " .. jit.version end))')
  case "$jout" in "installed ok on LuaJIT"*) echo "$jout" ;; *) echo "LuaJIT rock: $jout"; exit 1 ;; esac
fi
