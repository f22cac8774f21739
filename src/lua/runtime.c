/*
 * runtime.c — what every binding asks of the runtime: finding it from a
 * Lua state, registering functions with its upvalues, the Lua thread to
 * work on. No subsystem is named here (module.c lists them), so every
 * binding can depend on this file without a cycle.
 */
#include "cfl.h"

const char cfl_runtime_key = 'r'; /* registry[&cfl_runtime_key] = runtime guard */

cf_runtime *cf_runtime_of(lua_State *L) {
  cf_runtime *rt = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cfl_runtime_key);
  if (lua_isuserdata(L, -1)) rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

uv_loop_t *cf_runtime_loop(cf_runtime *rt) { return rt->loop; }

lua_State *cfl_from(cf_runtime *rt) { return rt->current ? rt->current->co : rt->caller; }

void cfl_setfuncs(lua_State *L, cf_runtime *rt, const luaL_Reg *fns) {
  lua_pushlightuserdata(L, rt);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.methods);
  luaL_setfuncs(L, fns, 2);
}

void cfl_registry_table(lua_State *L, const void *key, const char *mode) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  if (mode) {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}
