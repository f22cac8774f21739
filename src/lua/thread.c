/*
 * thread.c — cf.thread: Lua functions on other OS threads, as futures.
 *
 * - spawn(fn, ...) starts an OS thread with a fresh Lua state and returns a
 *   handle (a future of the function's results). Dropping the handle
 *   detaches the thread; abort() asks it to stop.
 * - pool(n) keeps n threads, each with one Lua state reused across jobs;
 *   pool:run(fn, ...) is a lazy future that queues the job on first poll
 *   (the queue is bounded: a full queue makes run wait). Dropping a job's
 *   future takes it off the queue, or asks it to stop if it runs.
 * - channel([cap]) is a channel between threads (thread_channel.c).
 *
 * Functions, arguments, results and messages are copied (call.c, copy.c).
 * The threads and the queue are src/uv/tpool.c; the worker's state and stop
 * checks worker.c. Here everything runs on the runtime's loop thread but a
 * job's run, on its worker, which touches only the job's call: the
 * completion is mail whose fire hook, on the loop thread, wakes the
 * awaiting task. Lock order (src/uv/tpool.h): a pool's mutex, then a
 * channel's, then an inbox's or parker's; this file takes none itself.
 */
#include <stdio.h>
#include <stdlib.h>

#include "thread.h"

#define POOL_MT "cfuture.ThreadPool"

typedef struct tpool tpool;

/* ---- the runtime's side ---------------------------------------------------------- */

cfl_threads *cfl_threads_ref(cfl_threads *ts) {
  ts->refs++;
  return ts;
}

void cfl_threads_unref(cfl_threads *ts) {
  if (--ts->refs == 0) free(ts);
}

cfl_threads *cfl_threads_of(lua_State *L, cf_runtime *rt) {
  if (rt->threads) return rt->threads;
  if (rt->closing) luaL_error(L, "thread: the runtime is closed");
  cfl_threads *ts = calloc(1, sizeof *ts);
  if (!ts || cfu_threads_init(&ts->hub, rt->loop) != 0) {
    free(ts);
    luaL_error(L, "thread: out of memory");
  }
  cf__list_init(&ts->works);
  cf__list_init(&ts->pools);
  ts->refs = 1;
  rt->threads = ts;
  return ts;
}

/* ---- work: one call of a function on a worker -------------------------------------------- */

typedef struct xwork {
  cfu_tjob job;
  cf_link all; /* cfl_threads.works (loop thread) */
  cfl_call call;
  uint8_t cancelled; /* it stopped because it was asked to */
  uint8_t submitted; /* loop thread: started or queued */
  uint8_t finished;  /* loop thread: done mail delivered */
  uint8_t orphaned;  /* loop thread: nobody will take the results */
  cf_waker waker;    /* loop thread: the awaiting task */
  tpool *pool;       /* NULL for spawned threads */
  cfl_threads *ts;
} xwork;

struct tpool {
  cfu_tpool base;
  cf_link link;         /* cfl_threads.pools */
  int nworks;           /* xwork that point here, not freed yet */
  struct cfl_pool *obj; /* the Lua object, NULL once collected */
  cfl_threads *ts;
};

/* worker thread: run w in its state */
static void work_run(cfu_tjob *j, void *state) {
  xwork *w = cf__container_of(j, xwork, job);
  lua_State *W = state;
  cfl_worker_rearm();
  if (!W) {
    cfl_call_fail(&w->call, "thread: cannot create a Lua state (out of memory)");
    return;
  }
  if (cfl_call_run(W, &w->call, &cfl_thread_call) != 0)
    w->cancelled = (uint8_t)cfl_worker_stop_requested();
  if (w->pool) lua_gc(W, LUA_GCSTEP, 0);
}

static void pool_unref(tpool *p);

static void work_free(xwork *w) {
  if (cf__link_linked(&w->all)) cf__list_remove(&w->all);
  cf_waker_drop(&w->waker);
  cfu_tjob_fini(&w->job);
  cfl_call_discard(&w->call);
  if (w->pool) pool_unref(w->pool);
  cfl_threads_unref(w->ts);
  free(w);
}

/* loop thread: a call is over */
static void work_done(cfu_tjob *j) {
  xwork *w = cf__container_of(j, xwork, job);
  w->finished = 1;
  if (w->orphaned) {
    work_free(w);
    return;
  }
  cfu_threads_release(&w->ts->hub);
  cf_waker_wake(&w->waker);
}

static const cfu_tjob_vt work_vt = {.run = work_run, .done = work_done};

static xwork *work_new(lua_State *L, cfl_threads *ts, int fnidx, int first, int last,
                       const char *fname) {
  xwork *w = calloc(1, sizeof *w);
  if (!w) luaL_error(L, "%s: out of memory", fname);
  w->ts = cfl_threads_ref(ts);
  cf__list_push_back(&ts->works, &w->all);
  w->orphaned = 1; /* until a future owns it */
  cfu_tjob_init(&w->job, &ts->hub, &work_vt);
  char err[160];
  int bad = 0;
  const char *what = cfl_call_badfn(L, fnidx, &cfl_thread_call);
  if (what) {
    snprintf(err, sizeof err, "must be a Lua function or its source: got %s", what);
    bad = fnidx;
  } else
    bad = cfl_call_encode(L, &w->call, &cfl_thread_call, fnidx, first, last, err);
  if (bad) {
    work_free(w);
    luaL_error(L, "%s: argument #%d: %s", fname, bad, err);
  }
  return w;
}

/* ---- the future over a work -------------------------------------------------------------------
 */

typedef struct cfl_work {
  cfl_future hdr;
  xwork *w;
} cfl_work;

/* First poll of a pool job: queue it, or wait for room. 1 when queued (or
 * failed at once: finished is set then). */
static int pool_submit(xwork *w, cf_context *cx) {
  int r = cfu_tpool_submit(&w->job, cx->waker);
  if (r == CFU_TPOOL_FULL) return 0;
  w->submitted = 1;
  if (r == CFU_TPOOL_CLOSED) {
    w->finished = 1;
    cfl_call_fail(&w->call, "pool:run: the pool is closed"); /* releases the arguments */
  } else
    cfu_threads_hold(&w->ts->hub);
  return 1;
}

static cf_poll work_poll(cf_future *base, cf_context *cx) {
  cfl_work *f = (cfl_work *)base;
  xwork *w = f->w;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  if (!w->submitted && !pool_submit(w, cx)) return CF_PENDING;
  if (!w->finished) {
    cf_waker_set(&w->waker, cx->waker);
    return CF_PENDING;
  }
  return cfl_ready(&f->hdr);
}

/* Ask w to stop: off the queue if it waits there, else a stop request. */
static void work_abort(xwork *w) {
  if (w->finished) return;
  int unqueued = cfu_tjob_stop(&w->job);
  if (w->pool && (unqueued || !w->submitted)) {
    if (unqueued) cfu_threads_release(&w->ts->hub);
    w->submitted = 1;
    w->finished = 1;
    w->call.failed = w->cancelled = 1;
    cfl_buf_discard(&w->call.vals);
    cf_waker_wake(&w->waker);
  }
}

/* The future lets go: the thread runs on (spawn) or the job is stopped (pool). */
static void work_release(cfl_work *f, int stop) {
  xwork *w = f->w;
  if (!w) return;
  f->w = NULL;
  if (!w->submitted) cfu_tjob_pass_room(&w->job); /* woken for room it will not use */
  if (stop) work_abort(w);
  cfu_tjob_unwait(&w->job);
  if (w->finished) {
    work_free(w);
    return;
  }
  w->orphaned = 1;
  cf_waker_drop(&w->waker);
  if (w->submitted) cfu_threads_release(&w->ts->hub);
}

static void work_drop(cf_future *base) {
  cfl_work *f = (cfl_work *)base;
  work_release(f, f->w && f->w->pool != NULL);
  cfl_mark_dropped(&f->hdr);
}

static int work_take(lua_State *L, cfl_future *base) {
  cfl_work *f = (cfl_work *)base;
  xwork *w = f->w;
  f->hdr.state = CFL_ST_TAKEN;
  int n;
  if (w->cancelled) {
    cfl_push_cancelled(L, f->hdr.rt,
                       w->pool ? "the pool job was aborted" : "the thread was aborted");
    n = -1;
  } else
    n = cfl_call_push(L, &w->call, &cfl_thread_call);
  work_release(f, 0);
  return n;
}

static void work_describe(lua_State *L, cfl_future *base) {
  cfl_work *f = (cfl_work *)base;
  xwork *w = f->w;
  lua_pushstring(L, w && w->pool ? "thread pool job" : "thread");
}

static void work_abort_f(cfl_future *base) {
  cfl_work *f = (cfl_work *)base;
  if (f->w) work_abort(f->w);
}

static int work_is_finished(cfl_future *base) {
  cfl_work *f = (cfl_work *)base;
  return !f->w || f->w->finished;
}

static const cfl_class work_class = {
    .vt = {.poll = work_poll, .drop = work_drop},
    .name = "thread",
    .type = "cfuture.ThreadHandle",
    .take = work_take,
    .describe = work_describe,
    .nuv = 1,
    .abort = work_abort_f,
    .is_finished = work_is_finished,
};

static void push_work_future(lua_State *L, cf_runtime *rt, xwork *w, int anchor) {
  cfl_work *f = (cfl_work *)cfl_new_future(L, rt, &work_class, sizeof *f);
  f->w = w;
  w->orphaned = 0;
  if (anchor) {
    lua_pushvalue(L, anchor);
    cfl_setuservalue(L, -2);
  }
}

/* ---- spawn ---------------------------------------------------------------------------------- */

/* cf.thread.spawn(fn_or_source, ...) -> handle: a future of fn's results */
static int l_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_threads *ts = cfl_threads_of(L, rt);
  xwork *w = work_new(L, ts, 1, 2, lua_gettop(L), "thread.spawn");
  cfu_worker *t = cfl_worker_new(L, ts, "thread.spawn");
  int r = cfu_tjob_spawn(&w->job, t);
  if (r != 0) {
    work_free(w);
    return luaL_error(L, "thread.spawn: cannot start a thread: %s", uv_strerror(r));
  }
  w->submitted = 1;
  cfu_threads_hold(&ts->hub);
  push_work_future(L, rt, w, 0);
  return 1;
}

/* ---- pools
 * ---------------------------------------------------------------------------------------- */

typedef struct cfl_pool {
  tpool *p;
} cfl_pool;

static void pool_free(tpool *p) {
  if (cf__link_linked(&p->link)) cf__list_remove(&p->link);
  if (p->obj) p->obj->p = NULL;
  cfu_tpool_destroy(&p->base);
  cfl_threads_unref(p->ts);
  free(p);
}

/* A pool goes once its workers are joined, its Lua object collected and
 * no job (nor a future of one) points at it. */
static void pool_maybe_free(tpool *p) {
  if (cfu_tpool_idle(&p->base) && !p->obj && p->nworks == 0) pool_free(p);
}

static void pool_unref(tpool *p) {
  p->nworks--;
  pool_maybe_free(p);
}

/* loop thread: a worker left (its pool closed) */
static void pool_exited(cfu_tpool *base) { pool_maybe_free(cf__container_of(base, tpool, base)); }

static cfl_pool *to_pool(lua_State *L, const char *fname) {
  cfl_pool *o = luaL_testudata(L, 1, POOL_MT);
  if (!o) cfl_raise_self(L, 1, fname, "a thread pool");
  return o;
}

/* The pool of the method's self; its runtime checked first (cfl_rt). */
static tpool *check_pool(lua_State *L, const char *fname) {
  cfl_rt(L);
  cfl_pool *o = to_pool(L, fname);
  if (!o->p) luaL_error(L, "%s: the pool is closed", fname); /* finalised */
  return o->p;
}

/* cf.thread.pool(n [, {queue = size}]) -> pool of n worker threads */
static int l_pool(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int n = (int)cfl_check_int_range(L, 1, "thread.pool", "argument #1 (thread count)", 1, 1024);
  lua_Integer cap = 256;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2))
      return luaL_error(L, "thread.pool: argument #2 must be an options table (got %s)",
                        luaL_typename(L, 2));
    lua_getfield(L, 2, "queue");
    if (!lua_isnil(L, -1))
      cap = cfl_check_int_range(L, -1, "thread.pool", "option 'queue'", 1, MAX_QUEUE);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  cfl_threads *ts = cfl_threads_of(L, rt);
  cfl_pool *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->p = NULL;
  luaL_setmetatable(L, POOL_MT);
  tpool *p = calloc(1, sizeof *p);
  if (!p) return luaL_error(L, "thread.pool: out of memory");
  if (cfu_tpool_init(&p->base, &ts->hub, (size_t)cap, pool_exited) != 0) {
    free(p);
    return luaL_error(L, "thread.pool: out of memory");
  }
  p->ts = cfl_threads_ref(ts);
  p->obj = o;
  cf__list_push_back(&ts->pools, &p->link);
  o->p = p;
  for (int i = 0; i < n; i++) {
    cfu_worker *t = cfl_worker_new(L, ts, "thread.pool");
    int r = cfu_tpool_start(&p->base, t);
    if (r != 0) {
      if (cfu_tpool_size(&p->base) == 0) {
        pool_free(p);
        return luaL_error(L, "thread.pool: cannot start a thread: %s", uv_strerror(r));
      }
      break;
    }
  }
  return 1;
}

/* pool:run(fn_or_source, ...) -> future of fn's results, run by a worker */
static int p_run(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  tpool *p = check_pool(L, "pool:run");
  if (cfu_tpool_closing(&p->base)) return luaL_error(L, "pool:run: the pool is closed");
  xwork *w = work_new(L, p->ts, 2, 3, lua_gettop(L), "pool:run");
  w->pool = p;
  w->job.pool = &p->base;
  p->nworks++;
  push_work_future(L, rt, w, 1); /* the future keeps the pool object alive */
  return 1;
}

/* pool:close(): take no new jobs; the workers finish the queue and leave */
static int p_close(lua_State *L) {
  tpool *p = check_pool(L, "pool:close");
  cfu_tpool_close(&p->base);
  return 0;
}

static int p_size(lua_State *L) {
  lua_pushinteger(L, cfu_tpool_size(&check_pool(L, "pool:size")->base));
  return 1;
}

static int p_queued(lua_State *L) {
  tpool *p = check_pool(L, "pool:queued");
  lua_pushinteger(L, (lua_Integer)cfu_tpool_queued(&p->base));
  return 1;
}

/* __gc (also called by hand: any self that is not a live pool is left alone) */
static int p_gc(lua_State *L) {
  cfl_pool *o = luaL_testudata(L, 1, POOL_MT);
  tpool *p = o ? o->p : NULL;
  if (!p) return 0;
  o->p = NULL;
  p->obj = NULL;
  cfu_tpool_close(&p->base);
  pool_maybe_free(p);
  return 0;
}

static int p_tostring(lua_State *L) {
  cfl_pool *o = to_pool(L, "pool:__tostring");
  tpool *p = o->p;
  if (!p) {
    lua_pushfstring(L, "cfuture.ThreadPool(closed): %p", (void *)o);
    return 1;
  }
  lua_pushfstring(L, "cfuture.ThreadPool(%d threads%s): %p", cfu_tpool_size(&p->base),
                  cfu_tpool_closing(&p->base) ? ", closed" : "", (void *)o);
  return 1;
}

/* ---- the module and shutdown
 * --------------------------------------------------------------------- */

/* cf.thread.traceback(err) -> the worker's traceback of an error value that
 * is not a string (a table, say) raised on a worker (spawn, pool:run,
 * cf.blocking) and copied here, or nil. (A string error of spawn and
 * pool:run carries its traceback itself.) */
static int l_traceback(lua_State *L) {
  cfl_rt(L);
  return cfl_push_traceback(L, 1);
}

static const luaL_Reg spawn_funcs[] = {
    {"spawn", l_spawn}, {"pool", l_pool}, {"traceback", l_traceback}, {NULL, NULL}};
static const luaL_Reg pool_methods[] = {
    {"run", p_run}, {"close", p_close}, {"size", p_size}, {"queued", p_queued}, {NULL, NULL}};

/* Module table on top: adds cf.thread. */
static void open_thread(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  static const luaL_Reg meta[] = {{"__gc", p_gc}, {"__tostring", p_tostring}, {NULL, NULL}};
  cfl_new_class(L, rt, POOL_MT, pool_methods, meta);
  lua_pop(L, 1);
  lua_newtable(L);
  cfl_setfuncs(L, rt, cfl_worker_funcs);
  cfl_setfuncs(L, rt, spawn_funcs);
  cfl_open_xchan(L, rt); /* the channel metatable of this state */
  lua_setfield(L, -2, "thread");
  /* require "cfuture.thread" gives the same table here */
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "loaded");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -3, "thread");
      lua_setfield(L, -2, "cfuture.thread");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void close_threads(cf_runtime *rt) {
  cfl_threads *ts = rt->threads;
  if (!ts) return;
  cf_link *l;
  /* closed first, or their workers would run the queue to its end */
  for (l = ts->pools.next; l != &ts->pools; l = l->next)
    cfu_tpool_close(&cf__container_of(l, tpool, link)->base);
  cfu_threads_stop(&ts->hub); /* every thread asked to stop and joined */
  /* what nobody holds goes now; what a Lua object still holds is finished
   * (as cancelled) and freed with that object */
  while ((l = cf__list_pop_front(&ts->works))) {
    xwork *w = cf__container_of(l, xwork, all);
    if (w->orphaned) {
      work_free(w);
      continue;
    }
    if (!w->finished) {
      cfl_buf_discard(&w->call.vals);
      w->finished = w->call.failed = w->cancelled = 1;
    }
    cfu_tjob_unwait(&w->job); /* nobody waits for room any more */
  }
  /* a pool goes now, or with the last of its Lua object and its jobs */
  while ((l = cf__list_pop_front(&ts->pools)))
    pool_maybe_free(cf__container_of(l, tpool, link));
  rt->threads = NULL;
  cfl_threads_unref(ts);
}

const cfl_module cfl_thread_module = {
    .name = "thread", .open = open_thread, .close = close_threads};
