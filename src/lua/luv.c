/*
 * luv.c — cfuture on luv's loop (`require "cfuture.luv"`).
 *
 * A Lua program that already runs luv (`uv.run()`) can let cfuture's tasks
 * share that loop instead of driving a second one: this opens the module
 * with cf_runtime_open on the loop luv uses in this Lua state, exactly as a
 * C host would with its own loop. luv does not hand its loop to Lua, so it
 * is read from luv's registry entry "luv_context" (luv >= 1.30: a struct
 * whose first member is the loop pointer). Both builds link the same
 * shared libuv, so the handles and requests cfuture starts are ordinary
 * members of luv's loop.
 *
 * luv's loop finaliser closes every handle still open on the loop with its
 * own close callback, which would misread cfuture's. cfuture's finaliser
 * runs first (finalisers run newest first, and cfuture.luv requires luv
 * before it opens), and it closes all of cfuture's handles, so luv finds
 * them closing and leaves them to their own callbacks, which luv's
 * finaliser runs (the library stays mapped for them: see pin_library in
 * runtime.c).
 */
#include "cfl.h"

/* The entry point cfuture/luv.lua loads from this library. */
int luaopen_cfuture_luv(lua_State *L);

static uv_loop_t *luv_loop_of(lua_State *L) {
  uv_loop_t *loop = NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, "luv_context");
  if (lua_type(L, -1) == LUA_TUSERDATA && lua_rawlen(L, -1) >= sizeof(uv_loop_t *))
    loop = *(uv_loop_t **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return loop;
}

int luaopen_cfuture_luv(lua_State *L) {
  if (cf_runtime_of(L))
    return luaL_error(L, "cfuture.luv: cfuture is already open in this Lua state on its own loop "
                         "(require \"cfuture.luv\" before anything requires \"cfuture\")");
  uv_loop_t *loop = luv_loop_of(L);
  if (!loop)
    return luaL_error(L, "cfuture.luv: luv's loop was not found (luv 1.30 or later must be "
                         "loaded: require \"luv\" first)");
  if (cf_runtime_open(L, loop) != 0) return lua_error(L);
  return 1;
}
