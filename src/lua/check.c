/*
 * check.c — argument checks shared by the bindings. Every message names the
 * function and the argument, and says what was expected and what came.
 */
#include <stdio.h>
#include <string.h>

#include "cfl.h"

/* Push the dotted path under the table at tbl (depth levels down) of the
 * function at fn and return 1, or return 0. An error's cold path only: it
 * leaves what it walked on the stack, which the error then unwinds. */
static int find_name(lua_State *L, int fn, int tbl, int depth) {
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (lua_rawequal(L, -1, fn)) {
        lua_pushvalue(L, -2);
        return 1;
      }
      int key = lua_gettop(L) - 1;
      if (depth > 0 && lua_istable(L, -1) && find_name(L, fn, key + 1, depth - 1)) {
        lua_pushfstring(L, "%s.%s", lua_tostring(L, key), lua_tostring(L, -1));
        return 1;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

int cfl_raise_closed(lua_State *L) {
  lua_Debug ar;
  const char *name = NULL;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "nf", &ar)) {
    name = ar.name;
    int fn = lua_gettop(L);
    /* called through pcall, say: no name from the call; find it in the module */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (!name && lua_istable(L, -1)) {
      lua_getfield(L, -1, "cfuture.core");
      if (lua_istable(L, -1) && find_name(L, fn, lua_gettop(L), 2)) name = lua_tostring(L, -1);
    }
  }
  if (!name) return luaL_error(L, "the cfuture runtime is closed");
  return luaL_error(L, "%s: the cfuture runtime is closed", name);
}

const char *cfl_check_cstring(lua_State *L, int idx, const char *fname, const char *what,
                              size_t *len) {
  size_t n;
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a string (got %s)", fname, what, luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &n);
  if (strlen(s) != n) luaL_error(L, "%s: %s must not contain a NUL byte", fname, what);
  if (len) *len = n;
  return s;
}

lua_Integer cfl_check_int_range(lua_State *L, int idx, const char *fname, const char *what,
                                lua_Integer lo, lua_Integer hi) {
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint || v < lo || v > hi) {
    char range[64]; /* lua_pushfstring has no 64-bit format on 5.1 */
    snprintf(range, sizeof range, "from %lld to %lld", (long long)lo, (long long)hi);
    const char *got =
        lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL) : luaL_typename(L, idx);
    luaL_error(L, "%s: %s must be an integer %s (got %s)", fname, what, range, got);
  }
  return v;
}
