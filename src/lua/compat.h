/*
 * compat.h — the Lua C API differences the bindings meet. The sources are
 * written against Lua 5.4; for LuaJIT 2.1 (the Lua 5.1 API, as in Neovim and
 * LÖVE) this header supplies the 5.2-5.4 functions they use, so the port
 * lives here and in the two places that need a different design:
 * - await's suspension (coro.c): 5.1 has no lua_yieldk, so await yields and
 *   its results come back as resume values, checked by a small Lua half
 *   (cfl_wrap_raising), which also raises block_on's and run's errors;
 * - uservalues: a userdata's environment table holds them (lua_newuserdatauv
 *   below).
 */
#ifndef CF_LUA_COMPAT_H
#define CF_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 504

#define CFL_LUA54 1
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
/* A C function that may have resumed a coroutine raises with cfl_raise and
 * returns its results with cfl_results (see cfl_wrap_raising in coro.c). */
#define cfl_raise(L) lua_error(L)
#define cfl_results(L, n) (n)

/* A worker state whose count hook delivers cancellation (5.4: nothing to do) */
#define cfl_hookable_state(W) ((void)(W))

/* Push the main thread of L's state. */
static inline void cfl_push_mainthread(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
}

#elif LUA_VERSION_NUM == 501

#include <luajit.h> /* LuaJIT 2.1: PUC 5.1 lacks the 5.2 functions it adds */
#include <math.h>

#define CFL_LUA54 0

/* ---- functions that return the pushed value's type since 5.3 ---- */
#define lua_rawgeti(L, i, n) (lua_rawgeti((L), (i), (n)), lua_type((L), -1))
#define lua_rawget(L, i) (lua_rawget((L), (i)), lua_type((L), -1))
#define lua_getfield(L, i, k) (lua_getfield((L), (i), (k)), lua_type((L), -1))
#define lua_gettable(L, i) (lua_gettable((L), (i)), lua_type((L), -1))

/* 5.3 and later set __name (the type in tostring and errors); so does this */
static inline int cfl__newmetatable(lua_State *L, const char *name) {
  if (!(luaL_newmetatable)(L, name)) return 0;
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  return 1;
}
#define luaL_newmetatable(L, n) cfl__newmetatable((L), (n))

static inline int lua_absindex(lua_State *L, int idx) {
  return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_rawlen(L, i) lua_objlen((L), (i))

static inline int lua_rawgetp(lua_State *L, int idx, const void *p) {
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, idx);
  return lua_type(L, -1);
}
static inline void lua_rawsetp(lua_State *L, int idx, const void *p) {
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}
static inline int lua_geti(lua_State *L, int idx, lua_Integer i) {
  idx = lua_absindex(L, idx);
  lua_pushinteger(L, i);
  return lua_gettable(L, idx);
}
static inline void lua_seti(lua_State *L, int idx, lua_Integer i) {
  idx = lua_absindex(L, idx);
  lua_pushinteger(L, i);
  lua_insert(L, -2);
  lua_settable(L, idx);
}

/* Numbers are doubles: an "integer" is a number with an integral value that
 * a lua_Integer holds exactly. */
static inline int cfl_integral(lua_Number n) {
  return n == floor(n) && n >= -9007199254740992.0 && n <= 9007199254740992.0;
}
static inline int lua_isinteger(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TNUMBER && cfl_integral(lua_tonumber(L, idx));
}
static inline lua_Integer cfl_tointegerx(lua_State *L, int idx, int *isint) {
  int isnum = 0;
  lua_Number n = lua_tonumberx(L, idx, &isnum);
  int ok = isnum && cfl_integral(n);
  if (isint) *isint = ok;
  return ok ? (lua_Integer)n : 0;
}
#define lua_tointegerx(L, i, p) cfl_tointegerx((L), (i), (p))

static inline int luaL_getsubtable(lua_State *L, int idx, const char *name) {
  if (lua_getfield(L, idx, name) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, idx, name);
  return 0;
}

static inline const char *luaL_tolstring(lua_State *L, int idx, size_t *len) {
  idx = lua_absindex(L, idx);
  if (luaL_callmeta(L, idx, "__tostring")) {
    if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
  } else {
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
      lua_pushvalue(L, idx);
      lua_tolstring(L, -1, NULL);
      break;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNIL: lua_pushliteral(L, "nil"); break;
    default: {
      const char *kind = luaL_typename(L, idx);
      if (luaL_getmetafield(L, idx, "__name")) {
        if (lua_type(L, -1) == LUA_TSTRING) kind = lua_tostring(L, -1);
        lua_pop(L, 1); /* the metatable keeps the name alive */
      }
      lua_pushfstring(L, "%s: %p", kind, lua_topointer(L, idx));
    }
    }
  }
  return lua_tolstring(L, -1, len);
}

/* Uservalues: slot n of the userdata's environment table. A userdata made
 * with nuv == 0 has none (its environment is the default one, never
 * written through). */
static inline void *lua_newuserdatauv(lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  if (nuv > 0) {
    lua_createtable(L, nuv, 0);
    lua_setfenv(L, -2);
  }
  return p;
}
static inline int lua_getiuservalue(lua_State *L, int idx, int n) {
  lua_getfenv(L, idx);
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
  return lua_type(L, -1);
}
static inline int lua_setiuservalue(lua_State *L, int idx, int n) {
  idx = lua_absindex(L, idx);
  lua_getfenv(L, idx);
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
  return 1;
}
#define cfl_getuservalue(L, idx) lua_getiuservalue((L), (idx), 1)
#define cfl_setuservalue(L, idx) lua_setiuservalue((L), (idx), 1)

/* lua_resume: 5.1 takes no "from" and leaves every result on the stack. */
static inline int cfl_resume51(lua_State *co, int nargs, int *nres) {
  int st = lua_resume(co, nargs);
  *nres = lua_gettop(co);
  return st;
}
#define lua_resume(co, from, nargs, nres) cfl_resume51((co), (nargs), (nres))

/* 5.1 cannot close a suspended thread: its pending frames are dropped with it
 * (there are no to-be-closed variables to run). */
static inline int cfl_closethread(lua_State *co, lua_State *from) {
  (void)from;
  int st = lua_status(co);
  return st == LUA_YIELD ? LUA_OK : st;
}

/* LuaJIT 2.1.0-beta3 corrupts its state when a C function raises after it
 * resumed a coroutine: such functions return (CFL_AWAIT_ERR, error) or
 * (CFL_AWAIT_OK, results...) to a Lua half that raises (coro.c). */
int cfl_raise(lua_State *L);
int cfl_results(lua_State *L, int n);
void cfl_wrap_raising(lua_State *L, int idx, const char *name);
void cfl_wrap_raising_top(lua_State *L);

#define LUA_LOADED_TABLE "_LOADED"
#define lua_dump(L, w, d, strip) lua_dump((L), (w), (d))

/* LuaJIT runs no hook inside compiled code, and a worker's count hook is
 * how an aborted job stops: worker states run interpreted. */
#define cfl_hookable_state(W) luaJIT_setmode((W), 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF)

/* LuaJIT has no registry slot for the main thread, and luaopen may run in a
 * coroutine: a thread the registry keeps serves as the runtime's own. */
static inline void cfl_push_mainthread(lua_State *L) {
  if (lua_pushthread(L)) return;
  lua_pop(L, 1);
  lua_newthread(L);
  lua_pushvalue(L, -1);
  luaL_ref(L, LUA_REGISTRYINDEX);
}

#else
#error "cfuture needs Lua 5.4 or LuaJIT 2.1"
#endif

#endif
