/*
 * custom.c — futures written in Lua: cf.future(poll [, cancel]).
 *
 * poll(waker) runs each time the future is polled; it returns cf.PENDING
 * to stay pending (after arranging for waker:wake() to be called), or the
 * results. The waker object passed is the same one every time; it always
 * wakes whoever polled last, so storing it once is enough.
 *
 * poll and cancel run on the runtime's scratch thread in protected mode:
 * they cannot await; an error in poll fails the future.
 */
#include "cfl.h"

typedef struct cfl_custom {
  cfl_future hdr;
  cf_waker *waker; /* inside the waker object, which the data table anchors */
} cfl_custom;

typedef struct cfl_waker_obj {
  cf_waker w;
} cfl_waker_obj;

static const char PENDING_KEY = 'p'; /* registry: the cf.PENDING sentinel */

/* Push the custom future's data table (its uservalue) onto L. */
static void push_data(lua_State *L, cfl_custom *c) {
  cfl_push_self(L, c);
  cfl_getuservalue(L, -1);
  lua_remove(L, -2);
}

static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg) luaL_traceback(L, L, msg, 1);
  return 1;
}

static cf_poll custom_poll(cf_future *base, cf_context *cx) {
  cfl_custom *c = (cfl_custom *)base;
  cf_runtime *rt = c->hdr.rt;
  if (cfl_polled_out(&c->hdr)) return CF_READY;
  c->hdr.state = CFL_ST_PENDING;
  cf_waker_set(c->waker, cx->waker);
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  lua_checkstack(S, 8);
  push_data(S, c);
  int data = lua_gettop(S);
  lua_pushcfunction(S, traceback_handler);
  lua_getfield(S, data, "poll");
  lua_getfield(S, data, "waker");
  int st = lua_pcall(S, 1, LUA_MULTRET, data + 1);
  /* poll may return as many values as a call can: room for the table */
  if (!lua_checkstack(S, 4)) {
    lua_settop(S, data);
    lua_pushliteral(S, "future: the poll function returned too many values");
    st = LUA_ERRRUN;
  }
  if (st != LUA_OK) {
    lua_setfield(S, data, "error");
    c->hdr.state = CFL_ST_FAILED;
  } else {
    int n = lua_gettop(S) - (data + 1);
    lua_rawgetp(S, LUA_REGISTRYINDEX, &PENDING_KEY);
    int pending = n >= 1 && lua_rawequal(S, data + 2, -1);
    lua_pop(S, 1);
    if (pending) {
      lua_settop(S, top);
      return CF_PENDING;
    }
    lua_createtable(S, n, 1);
    lua_insert(S, data + 2);
    for (int i = n; i >= 1; i--)
      lua_rawseti(S, data + 2, i);
    lua_pushinteger(S, n);
    lua_setfield(S, data + 2, "n");
    lua_setfield(S, data, "results");
    c->hdr.state = CFL_ST_READY;
  }
  cf_waker_drop(c->waker);
  lua_settop(S, top);
  return CF_READY;
}

/* Mark c cancelled; return whether its cancel callback must run. */
static int cancel_state(cfl_custom *c) {
  int st = c->hdr.state;
  if (st == CFL_ST_TAKEN || st == CFL_ST_CANCELLED) return 0;
  c->hdr.state = CFL_ST_CANCELLED;
  cf_waker_drop(c->waker);
  return st == CFL_ST_PENDING && !c->hdr.rt->closing;
}

/* Run data.cancel() on L, the data table on top (popped). */
static void run_cancel(cf_runtime *rt, lua_State *L) {
  lua_getfield(L, -1, "cancel");
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
  } else if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    cfl_report(rt, L, NULL);
  }
}

static void custom_drop(cf_future *base) {
  cfl_custom *c = (cfl_custom *)base;
  if (!cancel_state(c)) return;
  lua_State *S = c->hdr.rt->S;
  lua_checkstack(S, 4);
  push_data(S, c);
  run_cancel(c->hdr.rt, S);
}

/* From __gc: the weak self table no longer finds c, the uservalue does. */
static void custom_gc(lua_State *L, cfl_future *f) {
  if (!cancel_state((cfl_custom *)f)) return;
  cfl_getuservalue(L, 1);
  run_cancel(f->rt, L);
}

static int custom_take(lua_State *L, cfl_future *f) {
  cfl_custom *c = (cfl_custom *)f;
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st == CFL_ST_CANCELLED) {
    cfl_push_cancelled(L, f->rt, "the future was cancelled");
    return -1;
  }
  luaL_checkstack(L, 4, NULL);
  push_data(L, c);
  if (st == CFL_ST_FAILED) {
    lua_getfield(L, -1, "error");
    lua_remove(L, -2);
    return -1;
  }
  lua_getfield(L, -1, "results");
  lua_remove(L, -2);
  int n = (int)lua_tointeger(L, (lua_getfield(L, -1, "n"), -1));
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static const cfl_class custom_class = {
    .vt = {.poll = custom_poll, .drop = custom_drop},
    .name = "custom future",
    .take = custom_take,
    .gc = custom_gc,
    .nuv = 1,
};

static cfl_waker_obj *check_waker(lua_State *L) { return luaL_checkudata(L, 1, "cfuture.Waker"); }

static int waker_wake(lua_State *L) {
  cfl_rt(L);
  cf_waker_wake_by_ref(&check_waker(L)->w);
  return 0;
}

static const luaL_Reg waker_methods[] = {{"wake", waker_wake}, {NULL, NULL}};

static int waker_gc(lua_State *L) {
  cf_waker_drop(&check_waker(L)->w);
  return 0;
}

/* cf.future(poll [, cancel]) -> future */
static int l_future(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (lua_type(L, 1) != LUA_TFUNCTION)
    return luaL_error(L, "future: argument #1 must be a poll function (got %s)",
                      luaL_typename(L, 1));
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
    return luaL_error(L, "future: argument #2 must be a cancel function or nil (got %s)",
                      luaL_typename(L, 2));
  lua_settop(L, 2);
  cfl_custom *c = (cfl_custom *)cfl_new_future(L, rt, &custom_class, sizeof(cfl_custom));
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "poll");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "cancel");
  cfl_waker_obj *w = lua_newuserdatauv(L, sizeof *w, 0);
  w->w.vt = NULL;
  w->w.data = NULL;
  luaL_setmetatable(L, "cfuture.Waker");
  lua_setfield(L, -2, "waker");
  c->waker = &w->w;
  cfl_setuservalue(L, 3);
  cfl_register_self(L, 3);
  return 1;
}

static const luaL_Reg funcs[] = {{"future", l_future}, {NULL, NULL}};

static void open_custom(lua_State *L) {
  cfl_setfuncs(L, cf_runtime_of(L), funcs);
  /* cf.PENDING */
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "cfuture.PENDING");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &PENDING_KEY);
  lua_setfield(L, -2, "PENDING");
  /* waker objects */
  luaL_newmetatable(L, "cfuture.Waker");
  lua_pushcfunction(L, waker_gc);
  lua_setfield(L, -2, "__gc");
  lua_createtable(L, 0, 1);
  cfl_setfuncs(L, cf_runtime_of(L), waker_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

const cfl_module cfl_custom_module = {.name = "custom", .open = open_custom};
