/*
 * report.c — errors nobody awaited (reported at the end of each executor
 * run, to cf.on_error's handler or stderr) and cancellation errors.
 *
 * Ground rules
 * - A report is queued on the scratch thread (cfl_report may be called from
 *   inside a poll); they are delivered by cfl_flush_reports, where Lua may
 *   run: at the end of an executor run and at runtime close.
 */
#include <stdio.h>

#include "cfl.h"

void cfl_report(cf_runtime *rt, lua_State *from, cfl_task *t) {
  lua_State *S = rt->S;
  lua_xmove(from, S, 1);
  lua_rawgeti(S, LUA_REGISTRYINDEX, rt->reports.ref);
  lua_createtable(S, 0, 3);
  lua_pushvalue(S, -3);
  lua_setfield(S, -2, "error");
  if (t) {
    lua_pushinteger(S, (lua_Integer)t->base.id);
    lua_setfield(S, -2, "id");
    if (cfl_task_name(t)) {
      lua_pushstring(S, cfl_task_name(t));
      lua_setfield(S, -2, "name");
    }
  }
  lua_rawseti(S, -2, ++rt->reports.n);
  lua_pop(S, 2);
  cfl_wake_host(rt); /* queued outside a run (a finaliser): the next step delivers it */
}

/* The error as text for stderr: its __tostring may raise or return a
 * non-string, so it runs protected and a failure is described instead. */
static int tostring_p(lua_State *S) {
  luaL_tolstring(S, 1, NULL);
  return 1;
}

static const char *report_text(lua_State *S, int idx) {
  idx = lua_absindex(S, idx);
  lua_pushcfunction(S, tostring_p);
  lua_pushvalue(S, idx);
  if (lua_pcall(S, 1, 1, 0) == LUA_OK) return lua_tostring(S, -1);
  const char *why = lua_type(S, -1) == LUA_TSTRING ? lua_tostring(S, -1) : "(not a string)";
  return lua_pushfstring(S, "(a %s value whose __tostring raised: %s)", luaL_typename(S, idx), why);
}

static void print_report(lua_State *S, int entry) {
  lua_getfield(S, entry, "id");
  lua_getfield(S, entry, "name");
  lua_getfield(S, entry, "error");
  const char *err = report_text(S, -1);
  if (lua_isnil(S, -4))
    fprintf(stderr, "cfuture: error in a future nobody awaited:\n%s\n", err);
  else if (lua_isnil(S, -3))
    fprintf(stderr, "cfuture: task %lld failed and nobody awaited it:\n%s\n",
            (long long)lua_tointeger(S, -4), err);
  else
    fprintf(stderr, "cfuture: task %lld (%s) failed and nobody awaited it:\n%s\n",
            (long long)lua_tointeger(S, -4), lua_tostring(S, -3), err);
  fflush(stderr);
  lua_settop(S, entry);
}

void cfl_flush_reports(cf_runtime *rt) {
  lua_State *S = rt->S;
  while (rt->reports.n > 0) {
    lua_rawgeti(S, LUA_REGISTRYINDEX, rt->reports.ref);
    int n = rt->reports.n;
    /* swap in a fresh list first: a handler may cause new reports */
    lua_newtable(S);
    lua_rawseti(S, LUA_REGISTRYINDEX, rt->reports.ref);
    rt->reports.n = 0;
    int list = lua_gettop(S);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(S, list, i);
      int entry = lua_gettop(S);
      if (rt->reports.handler != LUA_NOREF) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, rt->reports.handler);
        lua_getfield(S, entry, "error");
        lua_pushvalue(S, entry);
        if (lua_pcall(S, 2, 0, 0) != LUA_OK) {
          fprintf(stderr, "cfuture: error in the on_error handler: %s\n", report_text(S, -1));
          lua_settop(S, entry);
          print_report(S, entry);
        }
      } else {
        print_report(S, entry);
      }
      lua_settop(S, list);
    }
    lua_settop(S, list - 1);
  }
}

/* cf.on_error(handler|nil) -> previous handler */
static int l_on_error(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (rt->reports.handler != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->reports.handler);
  else
    lua_pushnil(L);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->reports.handler);
  rt->reports.handler = LUA_NOREF;
  if (!lua_isnil(L, 1)) {
    lua_pushvalue(L, 1);
    rt->reports.handler = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

/* ---- cancellation errors ----------------------------------------------- */

void cfl_push_cancelled(lua_State *L, cf_runtime *rt, const char *what) {
  lua_createtable(L, 0, 2);
  lua_pushfstring(L, "cancelled: %s", what);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "cancelled");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.cancelled_mt);
  lua_setmetatable(L, -2);
}

static int cancelled_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

/* cf.is_cancelled(err) -> boolean */
static int l_is_cancelled(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int r = 0;
  if (lua_getmetatable(L, 1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.cancelled_mt);
    r = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, r);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"on_error", l_on_error}, {"is_cancelled", l_is_cancelled}, {NULL, NULL}};

static void open_report(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  rt->reports.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rt->reports.handler = LUA_NOREF;
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "cfuture.Cancelled");
  lua_setfield(L, -2, "__name");
  rt->ref.cancelled_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  cfl_setfuncs(L, rt, funcs);
}

const cfl_module cfl_report_module = {.name = "report", .open = open_report};
