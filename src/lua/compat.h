/*
 * compat.h — the few Lua C API differences the bindings meet. Lua 5.4 is the
 * primary target; this keeps the 5.1/LuaJIT port to this one file.
 */
#ifndef CF_LUA_COMPAT_H
#define CF_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 504
#define cfl_getuservalue(L, idx) lua_getiuservalue((L), (idx), 1)
#define cfl_setuservalue(L, idx) lua_setiuservalue((L), (idx), 1)
static inline int cfl_closethread(lua_State *co, lua_State *from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, from);
#else
  (void)from;
  return lua_resetthread(co);
#endif
}
#else
#error "cfuture needs Lua 5.4 (the LuaJIT port lives in compat.h)"
#endif

#endif
