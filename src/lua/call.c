/*
 * call.c — the copied call of cf.thread and cf.blocking (see call.h).
 *
 * Threads: the encode/push half runs on the caller's thread, the state,
 * watch and run half on a worker (an OS thread of cf.thread, or a pool
 * thread of libuv for cf.blocking). The stop check is per OS thread
 * (thread-local), the hook per state. No lock is taken here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "call.h"
#include "cfl.h"

/* Registry keys of the function caches. A state can hold both: a worker
 * that runs its own runtime loads jobs and also sends functions. */
static const char ENCODED_KEY = 'e'; /* sender: function -> its encoding (weak keys) */
static const char LOADED_KEY = 'l';  /* worker: encoding -> loaded function */

#define LOADED_MAX 64 /* functions a worker state keeps loaded */

/* ---- the caller's side ---------------------------------------------------------------- */

const char *cfl_call_badfn(lua_State *L, int idx, const cfl_call_kind *k) {
  int t = lua_type(L, idx);
  if (t == LUA_TFUNCTION && !lua_iscfunction(L, idx)) return NULL;
  if (t == LUA_TSTRING && k->sources) return NULL;
  return lua_iscfunction(L, idx) ? "a C function" : luaL_typename(L, idx);
}

/* Encode the function at idx, reusing the encoding of a function sent
 * before (a pool's jobs usually all run the same few functions). */
static int encode_fn(lua_State *L, int idx, cfl_buf *b, int cache, char *err) {
  if (!cache || lua_type(L, idx) != LUA_TFUNCTION) return cfl_encode(L, idx, b, err);
  idx = lua_absindex(L, idx);
  cfl_registry_table(L, &ENCODED_KEY, "k");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TSTRING) {
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    int r = cfl_buf_put(b, p, n);
    lua_pop(L, 2);
    if (r) snprintf(err, 160, "out of memory");
    return r ? -1 : 0;
  }
  lua_pop(L, 1);
  if (cfl_encode(L, idx, b, err)) {
    lua_pop(L, 1);
    return -1;
  }
  lua_pushvalue(L, idx);
  lua_pushlstring(L, b->p, b->len);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return 0;
}

/* Load the source of length n as a chunk named after the kind. */
static int load_source(lua_State *L, const char *src, size_t n, const cfl_call_kind *k) {
  char chunk[32];
  snprintf(chunk, sizeof chunk, "=%s", k->name);
  return luaL_loadbufferx(L, src, n, chunk, "t");
}

/* Does the source at idx compile? If not, err says why. */
static int source_compiles(lua_State *L, int idx, const cfl_call_kind *k, char *err) {
  size_t n;
  const char *src = lua_tolstring(L, idx, &n);
  int ok = load_source(L, src, n, k) == LUA_OK;
  if (!ok) snprintf(err, 160, "the source does not compile: %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return ok;
}

int cfl_call_encode(lua_State *L, cfl_call *c, const cfl_call_kind *k, int fnidx, int first,
                    int last, char err[160]) {
  if (k->sources && lua_type(L, fnidx) == LUA_TSTRING && !source_compiles(L, fnidx, k, err))
    return fnidx;
  if (encode_fn(L, fnidx, &c->fn, k->cache, err)) return fnidx;
  for (int i = first; i <= last; i++)
    if (cfl_encode(L, i, &c->vals, err)) return i;
  c->nargs = last >= first ? last - first + 1 : 0;
  return 0;
}

int cfl_call_push(lua_State *L, cfl_call *c, const cfl_call_kind *k) {
  if (c->failed) {
    cfl_push_error(L, &c->vals, k->name);
    return -1;
  }
  size_t pos = 0;
  luaL_checkstack(L, c->nres, "too many results");
  int n = c->nres;
  for (int i = 0; i < c->nres; i++)
    if (cfl_decode(L, c->vals.p, c->vals.len, &pos)) {
      lua_pushfstring(L, "%s: corrupt results", k->name);
      n = -1;
      break;
    }
  cfl_buf_consumed(&c->vals, pos); /* decoded: what they referenced belongs to L now */
  return n;
}

void cfl_call_discard(cfl_call *c) {
  cfl_buf_discard(&c->fn);
  cfl_buf_discard(&c->vals);
}

void cfl_call_fail(cfl_call *c, const char *msg) {
  c->failed = 1;
  cfl_error_msg(&c->vals, msg);
}

/* ---- the worker's side ------------------------------------------------------------------ */

static CF_THREAD_LOCAL const atomic_int *tl_stop; /* the flag calls on this thread stop at */
static CF_THREAD_LOCAL int tl_once;               /* raise once per stop request */
static CF_THREAD_LOCAL int tl_raised;             /* the current stop request was raised */

void cfl_call_watch(const cfl_call_kind *k, const atomic_int *stop) {
  tl_stop = stop;
  tl_once = k ? k->stop_once : 0;
  tl_raised = 0;
}

int cfl_call_raise_cancelled(lua_State *L) {
  tl_raised = 1;
  return luaL_error(L, "cancelled");
}

/* A stop request raises "cancelled" at the next hook: once for a stop_once
 * kind, so that code which catches it may tidy up (its blocking calls keep
 * raising), else at every hook until the call ends. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (tl_stop && atomic_load(tl_stop) && !(tl_once && tl_raised)) cfl_call_raise_cancelled(L);
}

lua_State *cfl_call_state(const cfl_call_kind *k) {
  lua_State *W = luaL_newstate();
  if (!W) return NULL;
  luaL_openlibs(W);
  cfl_hookable_state(W);
  lua_sethook(W, stop_hook, LUA_MASKCOUNT, k->hook_every);
  return W;
}

/* Push the function encoded in fn. With the cache a worker state keeps what
 * it loaded, by encoding, so a job that runs the same function again skips
 * the load. */
static int load_fn(lua_State *W, const cfl_buf *fn, int cache) {
  size_t pos = 0;
  if (!cache || fn->len == 0 || fn->p[0] != 'F') return cfl_decode(W, fn->p, fn->len, &pos);
  cfl_registry_table(W, &LOADED_KEY, NULL);
  lua_pushlstring(W, fn->p, fn->len);
  if (lua_rawget(W, -2) == LUA_TFUNCTION) {
    lua_remove(W, -2);
    return 0;
  }
  lua_pop(W, 1);
  if (cfl_decode(W, fn->p, fn->len, &pos) != 0) {
    lua_remove(W, -2);
    return -1;
  }
  lua_rawgeti(W, -2, 0); /* how many it holds */
  lua_Integer n = lua_tointeger(W, -1);
  lua_pop(W, 1);
  if (n >= LOADED_MAX) { /* full: start over */
    lua_newtable(W);
    lua_replace(W, -3);
    lua_pushvalue(W, -2);
    lua_rawsetp(W, LUA_REGISTRYINDEX, &LOADED_KEY);
    n = 0;
  }
  lua_pushlstring(W, fn->p, fn->len);
  lua_pushvalue(W, -2);
  lua_rawset(W, -4);
  lua_pushinteger(W, n + 1);
  lua_rawseti(W, -3, 0);
  lua_remove(W, -2);
  return 0;
}

int cfl_call_run(lua_State *W, cfl_call *c, const cfl_call_kind *k) {
  int base = lua_gettop(W);
  lua_pushcfunction(W, k->traceback ? cfl_error_handler_tb : cfl_error_handler);
  int st = LUA_OK;
  if (load_fn(W, &c->fn, k->cache) != 0) {
    lua_pushfstring(W, "%s: cannot load the function", k->name);
    st = LUA_ERRRUN;
  } else if (k->sources && lua_type(W, -1) == LUA_TSTRING) {
    size_t n;
    const char *src = lua_tolstring(W, -1, &n);
    st = load_source(W, src, n, k);
    lua_remove(W, -2);
  }
  size_t pos = 0;
  for (int i = 0; st == LUA_OK && i < c->nargs; i++)
    if (cfl_decode(W, c->vals.p, c->vals.len, &pos)) {
      lua_pushfstring(W, "%s: corrupt arguments", k->name);
      st = LUA_ERRRUN;
    }
  /* what was decoded belongs to the state now; the rest is released */
  cfl_buf_consumed(&c->vals, pos);
  if (st == LUA_OK) st = lua_pcall(W, c->nargs, LUA_MULTRET, base + 1);
  if (st == LUA_OK) {
    char err[160];
    c->nres = lua_gettop(W) - base - 1;
    for (int i = 1; i <= c->nres; i++)
      if (cfl_encode(W, base + 1 + i, &c->vals, err)) {
        cfl_buf_discard(&c->vals);
        lua_pushfstring(W, "%s: result #%d: %s", k->name, i, err);
        st = LUA_ERRRUN;
        break;
      }
  }
  if (st != LUA_OK) {
    c->failed = 1;
    cfl_encode_error(W, -1, &c->vals, k->name);
  }
  lua_settop(W, base);
  return st == LUA_OK ? 0 : -1;
}
