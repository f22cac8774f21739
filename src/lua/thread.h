/*
 * thread.h — what the files of cf.thread share (private to src/lua):
 * thread.c (the runtime's side, spawn, pools, the module), worker.c (the
 * worker's state, stop checks and library) and thread_channel.c (the Lua
 * object of a cross-thread channel).
 *
 * Threads: cfl_threads lives on a runtime's loop thread; the worker's
 * functions run on the worker (or any thread that blocks). Lock order, as
 * in src/uv/tpool.h: a pool's mutex, then a channel's, then an inbox's or
 * a parker's; this layer takes none of them itself.
 */
#ifndef CFL_THREAD_H
#define CFL_THREAD_H

#include "../uv/tpool.h"
#include "call.h"
#include "cfl.h"

#define MAX_QUEUE 0x7fffffff /* jobs a pool's queue, messages a channel holds */

/* ---- the runtime's side (thread.c) ---------------------------------------------------- */

typedef struct cfl_threads {
  cfu_threads hub; /* the inbox and the threads not joined yet */
  cf_link works;   /* xwork not freed yet */
  cf_link pools;   /* tpool not freed yet */
  int refs;        /* the runtime, works, pools, channel futures (loop thread) */
} cfl_threads;

/* The runtime's threads, made on first use (raises once it is closed). */
cfl_threads *cfl_threads_of(lua_State *L, cf_runtime *rt);
cfl_threads *cfl_threads_ref(cfl_threads *ts);
void cfl_threads_unref(cfl_threads *ts);

/* ---- the worker's side (worker.c) ------------------------------------------------------- */

/* How cf.thread's calls travel (call.h): sources allowed, tracebacks
 * appended, functions cached, a stop raised once. */
extern const cfl_call_kind cfl_thread_call;
/* A worker thread (not started) whose state gets L's package.path/cpath;
 * raises naming fname when out of memory. */
cfu_worker *cfl_worker_new(lua_State *L, cfl_threads *ts, const char *fname);
/* Worker thread, before each job: the next stop request raises again. */
void cfl_worker_rearm(void);
/* Has this worker been asked to stop? (0 on any other thread) */
int cfl_worker_stop_requested(void);
/* The parker of this OS thread, or raises on a runtime's loop thread,
 * which must never block. */
cfu_parker *cfl_blocking_parker(lua_State *L, const char *fname);
/* thread.sleep, cancelled, check, channel, is_worker */
extern const luaL_Reg cfl_worker_funcs[];

/* The worker functions and channel methods serve worker states too, which
 * have no runtime; in a runtime's state they carry its upvalue, and raise
 * once it has closed, like every other entry point there. */
static inline void cfl_thread_check_runtime(lua_State *L) {
  if (lua_type(L, lua_upvalueindex(CFL_UP_RT)) == LUA_TLIGHTUSERDATA) cfl_rt(L);
}

/* A checked delay (cfl_check_ms: 0 to 1e15 ms) in nanoseconds, at least 1
 * and at most about 31 years (1e15 ms would not fit in 64 bits). */
static inline uint64_t cfl_thread_ms_to_ns(double ms) {
  double ns = ms * 1e6;
  if (ns < 1) return 1;
  if (ns > 1e18) return (uint64_t)1e18;
  return (uint64_t)ns;
}

/* ---- channels (thread_channel.c) -------------------------------------------------------- */

/* cf.thread.channel([capacity]) */
int cfl_thread_channel(lua_State *L);
/* The channel metatable of a runtime's state, its methods with the runtime. */
void cfl_open_xchan(lua_State *L, cf_runtime *rt);

#endif
