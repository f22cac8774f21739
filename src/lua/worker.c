/*
 * worker.c — the worker's side of cf.thread: the Lua state a worker thread
 * holds (the spawner's module paths, require "cfuture.thread"), its stop
 * checks and the functions for the worker's own code (thread.sleep,
 * cancelled, check, is_worker, channel).
 *
 * Threads: the state functions run on the worker thread; the library runs
 * wherever its caller does (a worker, any thread that blocks, or a
 * runtime's loop thread, where blocking raises). A worker notices a stop
 * request at its next instruction-count hook (call.c) and in every blocking
 * call here; C code it is running cannot be interrupted. No lock is taken
 * here (parkers take their own).
 */
#include <stdlib.h>
#include <string.h>

#include "thread.h"

const cfl_call_kind cfl_thread_call = {
    .name = "thread",
    .hook_every = 1000,
    .sources = 1,
    .traceback = 1,
    .cache = 1,
    .stop_once = 1,
};

static CF_THREAD_LOCAL cfu_parker *tl_parker; /* threads started by this module */
static CF_THREAD_LOCAL cfu_parker tl_other;   /* any other thread that blocks here */
static CF_THREAD_LOCAL int tl_other_ready;

cfu_parker *cfl_blocking_parker(lua_State *L, const char *fname) {
  if (tl_parker) return tl_parker;
  if (cf_runtime_of(L))
    luaL_error(L,
               "%s: would block the event loop (only worker threads may block: "
               "inside tasks use the awaitable form)",
               fname);
  if (!tl_other_ready) {
    if (cfu_parker_init(&tl_other) != 0) luaL_error(L, "%s: out of memory", fname);
    tl_other_ready = 1;
  }
  return &tl_other;
}

int cfl_worker_stop_requested(void) { return tl_parker && cfu_parker_cancelled(tl_parker); }

void cfl_worker_rearm(void) {
  cfl_call_watch(&cfl_thread_call, tl_parker ? cfu_parker_flag(tl_parker) : NULL);
}

/* ---- the worker's state ------------------------------------------------------------------ */

static int open_worker_lib(lua_State *L);

typedef struct paths {
  char *path, *cpath;
} paths;

static char *dup_field(lua_State *L, const char *k) {
  lua_getfield(L, -1, k);
  const char *s = lua_tostring(L, -1);
  char *d = s ? strdup(s) : NULL;
  lua_pop(L, 1);
  return d;
}

/* The spawner's package.path/cpath, so a worker finds the same modules. */
static void paths_from(lua_State *L, paths *p) {
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    p->path = dup_field(L, "path");
    p->cpath = dup_field(L, "cpath");
  }
  lua_pop(L, 1);
}

static lua_State *new_worker_state(const paths *p) {
  lua_State *W = cfl_call_state(&cfl_thread_call);
  if (!W) return NULL;
  lua_getglobal(W, "package");
  if (p->path) {
    lua_pushstring(W, p->path);
    lua_setfield(W, -2, "path");
  }
  if (p->cpath) {
    lua_pushstring(W, p->cpath);
    lua_setfield(W, -2, "cpath");
  }
  lua_getfield(W, -1, "preload");
  lua_pushcfunction(W, open_worker_lib);
  lua_setfield(W, -2, "cfuture.thread");
  lua_pop(W, 2);
  return W;
}

/* worker thread, first */
static void *worker_enter(cfu_parker *pk, void *data) {
  tl_parker = pk;
  cfl_worker_rearm();
  return new_worker_state(data);
}

/* worker thread, last */
static void worker_leave(void *state) {
  if (state) lua_close(state);
}

/* loop thread */
static void worker_release(void *data) {
  paths *p = data;
  free(p->path);
  free(p->cpath);
  free(p);
}

static const cfu_worker_vt worker_vt = {
    .enter = worker_enter, .leave = worker_leave, .release = worker_release};

cfu_worker *cfl_worker_new(lua_State *L, cfl_threads *ts, const char *fname) {
  paths *p = calloc(1, sizeof *p);
  if (!p) luaL_error(L, "%s: out of memory", fname);
  paths_from(L, p);
  cfu_worker *t = cfu_worker_new(&ts->hub, &worker_vt, p);
  if (!t) {
    worker_release(p);
    luaL_error(L, "%s: out of memory", fname);
  }
  return t;
}

/* ---- functions for the worker's own code ----------------------------------------------- */

/* thread.sleep(ms): block this worker thread (never a runtime's loop thread) */
static int l_sleep(lua_State *L) {
  cfl_thread_check_runtime(L);
  double ms = cfl_check_ms(L, 1, "thread.sleep");
  cfu_parker *pk = cfl_blocking_parker(L, "thread.sleep");
  uint64_t deadline = uv_hrtime() + cfl_thread_ms_to_ns(ms);
  for (;;) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    if (cfu_park(pk, deadline - now) == CFU_PARK_CANCELLED) return cfl_call_raise_cancelled(L);
  }
  return 0;
}

/* thread.cancelled() -> true once this worker was asked to stop */
static int l_cancelled(lua_State *L) {
  cfl_thread_check_runtime(L);
  lua_pushboolean(L, cfl_worker_stop_requested());
  return 1;
}

/* thread.check(): raise "cancelled" if this worker was asked to stop */
static int l_check(lua_State *L) {
  cfl_thread_check_runtime(L);
  if (cfl_worker_stop_requested()) return cfl_call_raise_cancelled(L);
  return 0;
}

/* thread.is_worker() -> true on a thread started by cf.thread */
static int l_is_worker(lua_State *L) {
  cfl_thread_check_runtime(L);
  lua_pushboolean(L, tl_parker != NULL);
  return 1;
}

const luaL_Reg cfl_worker_funcs[] = {{"sleep", l_sleep},         {"cancelled", l_cancelled},
                                     {"check", l_check},         {"channel", cfl_thread_channel},
                                     {"is_worker", l_is_worker}, {NULL, NULL}};

static int open_worker_lib(lua_State *L) {
  luaL_newlib(L, cfl_worker_funcs);
  return 1;
}
