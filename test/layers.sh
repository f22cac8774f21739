#!/bin/sh
# The layer rule, executed: src/core uses neither libuv nor Lua; src/uv uses
# core and libuv, never Lua or the bindings; nothing calls upward. Checked on
# the sources (includes and identifiers), so it needs no build.
# usage: test/layers.sh [repo root]
cd "${1:-$(dirname "$0")/..}" || exit 2
fail=0
bad() { echo "layering: $1"; fail=1; }

# what a layer's files include
inc() { grep -n '#include' "$@" 2>/dev/null; }
if out=$(inc src/core/*.c src/core/*.h | grep -E '"\.\./(uv|lua)/|<uv\.h>|<lua|<lauxlib'); then
  bad "src/core includes a layer above it or libuv/Lua:"; echo "$out"
fi
if out=$(inc src/uv/*.c src/uv/*.h | grep -E '"\.\./lua/|<lua|<lauxlib|<lualib'); then
  bad "src/uv includes the bindings or Lua:"; echo "$out"
fi
# what a layer's code names (comments are prose: strip // and /* */ lines)
code() { sed -e 's://.*$::' -e 's:/\*.*\*/::g' "$@" | grep -v '^\s*\*'; }
for f in src/core/*.c src/core/*.h; do
  if code "$f" | grep -qE '\b(uv_[a-z_]+|lua_[a-z]+|luaL_[a-z]+|cfu_[a-z_]+|cfl_[a-z_]+)\s*\('; then
    bad "$f calls libuv, Lua, a driver or a binding"; code "$f" | grep -nE '\b(uv_|lua_|luaL_|cfu_|cfl_)[a-z_]*\s*\(' | head -3
  fi
done
for f in src/uv/*.c src/uv/*.h; do
  if code "$f" | grep -qE '\b(lua_[a-z]+|luaL_[a-z]+|cfl_[a-z_]+)\s*\('; then
    bad "$f calls Lua or a binding"; code "$f" | grep -nE '\b(lua_|luaL_|cfl_)[a-z_]*\s*\(' | head -3
  fi
done
[ "$fail" = 0 ] && echo "layers: src/core -> nothing above; src/uv -> core and libuv only: ok"
exit "$fail"
