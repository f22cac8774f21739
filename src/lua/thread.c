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
 * - channel([cap]) is a channel between threads: its ends travel inside
 *   arguments and messages; send/recv are futures on a runtime's loop
 *   thread and block (send_blocking/recv_blocking) on workers.
 *
 * Functions, arguments, results and messages are copied (copy.c). A worker
 * notices a stop request at its next instruction-count hook and in every
 * blocking call of this module (sleep, *_blocking); C code it is running
 * cannot be interrupted. Workers reach the loop thread only through the
 * runtime's inbox (src/uv/thread.c): their completion is mail whose fire
 * hook, on the loop thread, joins the thread and wakes the awaiting task.
 * Lock order: a pool's mutex, then a channel's, then an inbox's or parker's.
 */
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "cfl.h"
#include "copy.h"

#define XCHAN_MT "cfuture.ThreadChannel"
#define POOL_MT "cfuture.ThreadPool"
#define HOOK_EVERY 1000 /* instructions between stop checks */

typedef struct wthread wthread;
typedef struct tpool tpool;

/* ---- the runtime's side ---------------------------------------------------------- */

typedef struct cfl_threads {
  cfu_inbox inbox;
  cf_link threads; /* wthread not joined yet */
  cf_link works;   /* xwork not freed yet */
  cf_link pools;   /* tpool not freed yet */
  int refs;        /* the runtime, works, pools, channel futures (loop thread) */
  int closed;      /* the runtime closed: no thread is left, the inbox is shut */
} cfl_threads;

static cfl_threads *ts_ref(cfl_threads *ts) {
  ts->refs++;
  return ts;
}

static void ts_unref(cfl_threads *ts) {
  if (--ts->refs == 0) free(ts);
}

static void ts_hold(cfl_threads *ts) {
  if (!ts->closed) cfu_inbox_hold(&ts->inbox);
}

static void ts_release(cfl_threads *ts) {
  if (!ts->closed) cfu_inbox_release(&ts->inbox);
}

static cfl_threads *threads_of(lua_State *L, cf_runtime *rt) {
  if (rt->threads) return rt->threads;
  if (rt->closing) luaL_error(L, "thread: the runtime is closed");
  cfl_threads *ts = calloc(1, sizeof *ts);
  if (!ts || cfu_inbox_init(&ts->inbox, rt->loop) != 0) {
    free(ts);
    luaL_error(L, "thread: out of memory");
  }
  cf__list_init(&ts->threads);
  cf__list_init(&ts->works);
  cf__list_init(&ts->pools);
  ts->refs = 1;
  rt->threads = ts;
  return ts;
}

/* ---- the worker's side: its parker, state and stop checks ---------------------------- */

/* Registry keys of the function caches. A state can hold both: a worker
 * that runs its own runtime loads jobs and also sends functions. */
static const char ENCODED_KEY = 'e'; /* sender: function -> its encoding (weak keys) */
static const char LOADED_KEY = 'l';  /* worker: encoding -> loaded function */

static _Thread_local cfu_parker *tl_parker; /* threads started by this module */
static _Thread_local cfu_parker tl_other;   /* any other thread that blocks here */
static _Thread_local int tl_other_ready;

/* The parker of this OS thread, or NULL (raising) on a runtime's loop thread,
 * which must never block. */
static cfu_parker *blocking_parker(lua_State *L, const char *fname) {
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

static _Thread_local int tl_stop_raised; /* the current stop request was raised once */

static int stop_requested(void) { return tl_parker && cfu_parker_cancelled(tl_parker); }

static int raise_cancelled(lua_State *L) {
  tl_stop_raised = 1;
  return luaL_error(L, "cancelled");
}

/* A stop request raises "cancelled" at the next hook once: a worker that
 * catches it may tidy up (its blocking calls keep raising). */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (!tl_stop_raised && stop_requested()) raise_cancelled(L);
}

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

static void paths_free(paths *p) {
  free(p->path);
  free(p->cpath);
  p->path = p->cpath = NULL;
}

static lua_State *new_worker_state(const paths *p) {
  lua_State *W = luaL_newstate();
  if (!W) return NULL;
  luaL_openlibs(W);
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
  cfl_hookable_state(W);
  lua_sethook(W, stop_hook, LUA_MASKCOUNT, HOOK_EVERY);
  return W;
}

/* ---- work: one call of a function on a worker -------------------------------------------- */

typedef struct xwork {
  cf_link all;   /* cfl_threads.works (loop thread) */
  cf_link qlink; /* the pool's queue (pool mutex) */
  cfl_buf fn;    /* the function (or source string), encoded */
  cfl_buf vals;  /* the arguments, then the results or the error message */
  int nargs, nres;
  uint8_t failed;    /* vals holds an error message */
  uint8_t cancelled; /* it stopped because it was asked to */
  uint8_t queued;    /* on the pool's queue (pool mutex) */
  uint8_t submitted; /* loop thread: started or queued */
  uint8_t finished;  /* loop thread: done mail delivered */
  uint8_t swoken;    /* loop thread: woken because the queue has room */
  uint8_t orphaned;  /* loop thread: nobody will take the results */
  cfu_mail done;
  cf_waker waker;  /* loop thread: the awaiting task */
  cf_link swait;   /* loop thread: waiting for room on the pool's queue */
  cf_waker swaker; /* loop thread */
  wthread *thread; /* spawned: its thread (loop thread); pool: the runner (pool mutex) */
  tpool *pool;     /* NULL for spawned threads */
  cfl_threads *ts;
} xwork;

struct wthread {
  cf_link link; /* cfl_threads.threads */
  uv_thread_t tid;
  cfu_parker parker;
  xwork *work; /* spawned: the one call it makes */
  tpool *pool; /* pool worker */
  paths paths;
  cfu_mail exited; /* pool worker: it has left (loop thread joins it) */
};

struct tpool {
  cf_link link; /* cfl_threads.pools */
  uv_mutex_t mu;
  uv_cond_t cond; /* workers wait here for jobs */
  cf_link queue;
  size_t queued, cap;
  int closing;    /* no new jobs; workers leave once the queue is empty */
  int want_space; /* someone waits for room: post `space` on the next take */
  cfu_mail space;
  cf_link space_waiters; /* loop thread: xwork.swait */
  int nthreads, alive;   /* alive: loop thread, workers not joined yet */
  int nworks;            /* loop thread: xwork that point here, not freed yet */
  struct cfl_pool *obj;  /* the Lua object, NULL once collected */
  cfl_threads *ts;
};

/* w failed with the message msg (whatever vals held is released). */
static void fail_with(xwork *w, const char *msg) {
  w->failed = 1;
  cfl_error_msg(&w->vals, msg);
}

#define LOADED_MAX 64 /* functions a worker state keeps loaded */

/* Push the function encoded in fn. A pool worker keeps what it loaded, by
 * encoding, so a job that runs the same function again skips the load. */
static int load_fn(lua_State *W, const cfl_buf *fn) {
  size_t pos = 0;
  if (fn->len == 0 || fn->p[0] != 'F') return cfl_decode(W, fn->p, fn->len, &pos);
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

/* Run w in W (a worker's state), leaving the results or an error in w->vals. */
static void run_work(lua_State *W, xwork *w) {
  if (!W) {
    fail_with(w, "thread: cannot create a Lua state (out of memory)");
    return;
  }
  int base = lua_gettop(W);
  lua_pushcfunction(W, cfl_error_handler_tb);
  int st = LUA_OK;
  if (load_fn(W, &w->fn) != 0) {
    lua_pushliteral(W, "thread: cannot load the function");
    st = LUA_ERRRUN;
  } else if (lua_type(W, -1) == LUA_TSTRING) {
    size_t n;
    const char *src = lua_tolstring(W, -1, &n);
    st = luaL_loadbufferx(W, src, n, "=thread", "t");
    lua_remove(W, -2);
  }
  size_t pos = 0;
  for (int i = 0; st == LUA_OK && i < w->nargs; i++)
    if (cfl_decode(W, w->vals.p, w->vals.len, &pos)) {
      lua_pushliteral(W, "thread: corrupt arguments");
      st = LUA_ERRRUN;
    }
  /* what was decoded belongs to the state now; the rest is released */
  cfl_buf_consumed(&w->vals, pos);
  if (st == LUA_OK) st = lua_pcall(W, w->nargs, LUA_MULTRET, base + 1);
  if (st == LUA_OK) {
    char err[160];
    w->nres = lua_gettop(W) - base - 1;
    for (int i = 1; i <= w->nres; i++)
      if (cfl_encode(W, base + 1 + i, &w->vals, err)) {
        cfl_buf_discard(&w->vals);
        lua_pushfstring(W, "thread: result #%d: %s", i, err);
        st = LUA_ERRRUN;
        break;
      }
  }
  if (st != LUA_OK) {
    w->cancelled = (uint8_t)stop_requested();
    w->failed = 1;
    cfl_encode_error(W, -1, &w->vals, "thread");
  }
  lua_settop(W, base);
}

static void pool_unref(tpool *p);

static void work_free(xwork *w) {
  if (cf__link_linked(&w->all)) cf__list_remove(&w->all);
  cf_waker_drop(&w->waker);
  cf_waker_drop(&w->swaker);
  if (cf__link_linked(&w->swait)) cf__list_remove(&w->swait);
  cfl_buf_discard(&w->fn);
  cfl_buf_discard(&w->vals);
  if (w->pool) pool_unref(w->pool);
  ts_unref(w->ts);
  free(w);
}

static void thread_free(wthread *t) {
  if (cf__link_linked(&t->link)) cf__list_remove(&t->link);
  cfu_parker_destroy(&t->parker);
  paths_free(&t->paths);
  free(t);
}

/* loop thread: a call is over */
static void on_done(cfu_mail *m) {
  xwork *w = cf__container_of(m, xwork, done);
  if (!w->pool && w->thread) {
    uv_thread_join(&w->thread->tid); /* it posted this as its last act */
    thread_free(w->thread);
    w->thread = NULL;
  }
  w->finished = 1;
  if (w->orphaned) {
    work_free(w);
    return;
  }
  ts_release(w->ts);
  cf_waker_wake(&w->waker);
}

/* Encode the function at idx, reusing the encoding of a function sent
 * before (a pool's jobs usually all run the same few functions). */
static int encode_fn(lua_State *L, int idx, cfl_buf *b, char *err) {
  if (lua_type(L, idx) != LUA_TFUNCTION) return cfl_encode(L, idx, b, err);
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

/* Does the source at idx compile? If not, err says why. */
static int source_compiles(lua_State *L, int idx, char *err, size_t errlen) {
  size_t n;
  const char *src = lua_tolstring(L, idx, &n);
  int ok = luaL_loadbufferx(L, src, n, "=thread", "t") == LUA_OK;
  if (!ok) snprintf(err, errlen, "the source does not compile: %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return ok;
}

static xwork *work_new(lua_State *L, cfl_threads *ts, int fnidx, int first, int last,
                       const char *fname) {
  xwork *w = calloc(1, sizeof *w);
  if (!w) luaL_error(L, "%s: out of memory", fname);
  w->ts = ts_ref(ts);
  cf__list_push_back(&ts->works, &w->all);
  w->orphaned = 1; /* until a future owns it */
  cfu_mail_init(&w->done, &ts->inbox, on_done);
  char err[160];
  int t = lua_type(L, fnidx);
  int bad = 0;
  if (t != LUA_TSTRING && (t != LUA_TFUNCTION || lua_iscfunction(L, fnidx))) {
    snprintf(err, sizeof err, "must be a Lua function or its source: got %s",
             lua_iscfunction(L, fnidx) ? "a C function" : luaL_typename(L, fnidx));
    bad = fnidx;
  } else if (t == LUA_TSTRING && !source_compiles(L, fnidx, err, sizeof err)) {
    bad = fnidx; /* said here, where the caller can see it, not on the worker */
  } else if (encode_fn(L, fnidx, &w->fn, err))
    bad = fnidx;
  for (int i = first; !bad && i <= last; i++)
    if (cfl_encode(L, i, &w->vals, err)) bad = i;
  if (bad) {
    work_free(w);
    luaL_error(L, "%s: argument #%d: %s", fname, bad, err);
  }
  w->nargs = last >= first ? last - first + 1 : 0;
  return w;
}

/* ---- the future over a work -------------------------------------------------------------------
 */

typedef struct cfl_work {
  cfl_future hdr;
  xwork *w;
} cfl_work;

static int pool_submit(xwork *w, cf_context *cx);
static void wake_for_space(tpool *p);

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
  if (!w->pool) {
    if (w->thread) cfu_parker_cancel(&w->thread->parker);
    return;
  }
  tpool *p = w->pool;
  int unqueued = 0;
  uv_mutex_lock(&p->mu);
  if (w->queued) {
    cf__list_remove(&w->qlink);
    w->queued = 0;
    p->queued--;
    unqueued = 1;
  } else if (w->thread)
    cfu_parker_cancel(&w->thread->parker);
  uv_mutex_unlock(&p->mu);
  if (unqueued || !w->submitted) {
    if (unqueued) ts_release(w->ts);
    w->submitted = 1;
    w->finished = 1;
    w->failed = w->cancelled = 1;
    cfl_buf_discard(&w->vals);
    cf_waker_wake(&w->waker);
  }
}

/* The future lets go: the thread runs on (spawn) or the job is stopped (pool). */
static void work_release(cfl_work *f, int stop) {
  xwork *w = f->w;
  if (!w) return;
  f->w = NULL;
  if (w->swoken && !w->submitted && w->pool) {
    w->swoken = 0; /* it was woken for room it will not use: pass it on */
    wake_for_space(w->pool);
  }
  if (stop) work_abort(w);
  if (cf__link_linked(&w->swait)) cf__list_remove(&w->swait);
  if (w->finished) {
    work_free(w);
    return;
  }
  w->orphaned = 1;
  cf_waker_drop(&w->waker);
  if (w->submitted) ts_release(w->ts);
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
  } else if (w->failed) {
    cfl_push_error(L, &w->vals, "thread");
    n = -1;
  } else {
    size_t pos = 0;
    luaL_checkstack(L, w->nres, "too many results");
    n = w->nres;
    for (int i = 0; i < w->nres; i++)
      if (cfl_decode(L, w->vals.p, w->vals.len, &pos)) {
        lua_pushliteral(L, "thread: corrupt results");
        n = -1;
        break;
      }
    cfl_buf_consumed(&w->vals, pos); /* decoded: what they referenced belongs to L now */
  }
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
    .core = {.poll = work_poll, .drop = work_drop},
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

static void spawn_main(void *arg) {
  wthread *t = arg;
  tl_parker = &t->parker;
  lua_State *W = new_worker_state(&t->paths);
  run_work(W, t->work);
  if (W) lua_close(W);
  cfu_mail_post(&t->work->done);
}

static wthread *thread_new(lua_State *L, cfl_threads *ts, const char *fname) {
  wthread *t = calloc(1, sizeof *t);
  if (!t || cfu_parker_init(&t->parker) != 0) {
    free(t);
    luaL_error(L, "%s: out of memory", fname);
  }
  paths_from(L, &t->paths);
  cf__list_push_back(&ts->threads, &t->link);
  return t;
}

/* cf.thread.spawn(fn_or_source, ...) -> handle: a future of fn's results */
static int l_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_threads *ts = threads_of(L, rt);
  xwork *w = work_new(L, ts, 1, 2, lua_gettop(L), "thread.spawn");
  wthread *t = thread_new(L, ts, "thread.spawn");
  t->work = w;
  w->thread = t;
  int r = uv_thread_create(&t->tid, spawn_main, t);
  if (r != 0) {
    thread_free(t);
    work_free(w);
    return luaL_error(L, "thread.spawn: cannot start a thread: %s", uv_strerror(r));
  }
  w->submitted = 1;
  ts_hold(ts);
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
  uv_cond_destroy(&p->cond);
  uv_mutex_destroy(&p->mu);
  ts_unref(p->ts);
  free(p);
}

/* A pool goes once its workers are joined, its Lua object collected and
 * no job (nor a future of one) points at it. */
static void pool_maybe_free(tpool *p) {
  if (p->alive == 0 && !p->obj && p->nworks == 0) pool_free(p);
}

static void pool_unref(tpool *p) {
  p->nworks--;
  pool_maybe_free(p);
}

static void pool_main(void *arg) {
  wthread *t = arg;
  tpool *p = t->pool;
  tl_parker = &t->parker;
  lua_State *W = new_worker_state(&t->paths);
  uv_mutex_lock(&p->mu);
  for (;;) {
    while (cf__list_empty(&p->queue) && !p->closing)
      uv_cond_wait(&p->cond, &p->mu);
    cf_link *l = cf__list_pop_front(&p->queue);
    if (!l) break; /* closing, nothing left */
    xwork *w = cf__container_of(l, xwork, qlink);
    w->queued = 0;
    p->queued--;
    w->thread = t;
    atomic_store(&t->parker.cancel, 0);
    tl_stop_raised = 0;
    if (p->want_space) {
      p->want_space = 0;
      cfu_mail_post(&p->space);
    }
    uv_mutex_unlock(&p->mu);
    run_work(W, w);
    if (W) lua_gc(W, LUA_GCSTEP, 0);
    uv_mutex_lock(&p->mu);
    w->thread = NULL;
    cfu_mail_post(&w->done);
  }
  uv_mutex_unlock(&p->mu);
  if (W) lua_close(W);
  cfu_mail_post(&t->exited);
}

/* loop thread: a worker left (its pool closed) */
static void on_exited(cfu_mail *m) {
  wthread *t = cf__container_of(m, wthread, exited);
  tpool *p = t->pool;
  uv_thread_join(&t->tid);
  thread_free(t);
  p->alive--;
  pool_maybe_free(p);
}

/* loop thread: wake as many waiters for room as there is room (FIFO). If
 * some stay, the next take posts again. */
static void wake_for_space(tpool *p) {
  uv_mutex_lock(&p->mu);
  size_t room = p->queued < p->cap ? p->cap - p->queued : 0;
  cf_link *l;
  while (room > 0 && (l = cf__list_pop_front(&p->space_waiters))) {
    xwork *w = cf__container_of(l, xwork, swait);
    w->swoken = 1;
    cf_waker_wake(&w->swaker);
    room--;
  }
  if (!cf__list_empty(&p->space_waiters)) p->want_space = 1;
  uv_mutex_unlock(&p->mu);
}

/* loop thread: a worker took a job from a full queue */
static void on_space(cfu_mail *m) { wake_for_space(cf__container_of(m, tpool, space)); }

/* First poll of a pool job: queue it, or wait for room. 1 when queued (or
 * failed at once: finished is set then). */
static int pool_submit(xwork *w, cf_context *cx) {
  tpool *p = w->pool;
  int r = 1;
  uv_mutex_lock(&p->mu);
  if (p->closing) {
    w->finished = 1;
    fail_with(w, "pool:run: the pool is closed"); /* releases the arguments */
  } else if (p->queued >= p->cap) {
    p->want_space = 1;
    cf_waker_set(&w->swaker, cx->waker);
    if (!cf__link_linked(&w->swait)) cf__list_push_back(&p->space_waiters, &w->swait);
    r = 0;
  } else {
    cf__list_push_back(&p->queue, &w->qlink);
    w->queued = 1;
    p->queued++;
    uv_cond_signal(&p->cond);
  }
  uv_mutex_unlock(&p->mu);
  w->swoken = 0;
  if (r) {
    w->submitted = 1;
    if (cf__link_linked(&w->swait)) cf__list_remove(&w->swait);
    if (!w->finished) ts_hold(w->ts);
  }
  return r;
}

static void pool_close(tpool *p) {
  uv_mutex_lock(&p->mu);
  p->closing = 1;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
}

static cfl_pool *to_pool(lua_State *L, const char *fname) {
  cfl_pool *o = luaL_testudata(L, 1, POOL_MT);
  if (!o)
    luaL_error(L, "%s: argument #1 must be a thread pool (call it with a colon; got %s)", fname,
               luaL_typename(L, 1));
  return o;
}

/* The pool of the method's self; its runtime checked first (cfl_rt). */
static tpool *check_pool(lua_State *L, const char *fname) {
  cfl_rt(L);
  cfl_pool *o = to_pool(L, fname);
  if (!o->p) luaL_error(L, "%s: the pool is closed", fname); /* finalised */
  return o->p;
}

#define MAX_QUEUE 0x7fffffff /* jobs a pool's queue, messages a channel holds */

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
  cfl_threads *ts = threads_of(L, rt);
  cfl_pool *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->p = NULL;
  luaL_setmetatable(L, POOL_MT);
  tpool *p = calloc(1, sizeof *p);
  if (!p) return luaL_error(L, "thread.pool: out of memory");
  if (uv_mutex_init(&p->mu) != 0) {
    free(p);
    return luaL_error(L, "thread.pool: out of memory");
  }
  if (uv_cond_init(&p->cond) != 0) {
    uv_mutex_destroy(&p->mu);
    free(p);
    return luaL_error(L, "thread.pool: out of memory");
  }
  cf__list_init(&p->queue);
  cf__list_init(&p->space_waiters);
  cfu_mail_init(&p->space, &ts->inbox, on_space);
  p->cap = (size_t)cap;
  p->ts = ts_ref(ts);
  p->obj = o;
  cf__list_push_back(&ts->pools, &p->link);
  o->p = p;
  for (int i = 0; i < n; i++) {
    wthread *t = thread_new(L, ts, "thread.pool");
    t->pool = p;
    cfu_mail_init(&t->exited, &ts->inbox, on_exited);
    int r = uv_thread_create(&t->tid, pool_main, t);
    if (r != 0) {
      thread_free(t);
      if (p->nthreads == 0) {
        pool_free(p);
        return luaL_error(L, "thread.pool: cannot start a thread: %s", uv_strerror(r));
      }
      break;
    }
    p->nthreads++;
    p->alive++;
  }
  return 1;
}

/* pool:run(fn_or_source, ...) -> future of fn's results, run by a worker */
static int p_run(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  tpool *p = check_pool(L, "pool:run");
  if (p->closing) return luaL_error(L, "pool:run: the pool is closed");
  xwork *w = work_new(L, p->ts, 2, 3, lua_gettop(L), "pool:run");
  w->pool = p;
  p->nworks++;
  push_work_future(L, rt, w, 1); /* the future keeps the pool object alive */
  return 1;
}

/* pool:close(): take no new jobs; the workers finish the queue and leave */
static int p_close(lua_State *L) {
  tpool *p = check_pool(L, "pool:close");
  pool_close(p);
  return 0;
}

static int p_size(lua_State *L) {
  lua_pushinteger(L, check_pool(L, "pool:size")->nthreads);
  return 1;
}

static int p_queued(lua_State *L) {
  tpool *p = check_pool(L, "pool:queued");
  uv_mutex_lock(&p->mu);
  lua_Integer n = (lua_Integer)p->queued;
  uv_mutex_unlock(&p->mu);
  lua_pushinteger(L, n);
  return 1;
}

/* __gc (also called by hand: any self that is not a live pool is left alone) */
static int p_gc(lua_State *L) {
  cfl_pool *o = luaL_testudata(L, 1, POOL_MT);
  tpool *p = o ? o->p : NULL;
  if (!p) return 0;
  o->p = NULL;
  p->obj = NULL;
  pool_close(p);
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
  lua_pushfstring(L, "cfuture.ThreadPool(%d threads%s): %p", p->nthreads,
                  p->closing ? ", closed" : "", (void *)o);
  return 1;
}

/* ---- channels ---------------------------------------------------------------------------- */

typedef struct cfl_xchan {
  cfu_xchan *ch;
} cfl_xchan;

static void msg_discard(cfu_xmsg *m) {
  cfl_copy_release(m->data, m->len);
  free(m);
}

/* __gc (also called by hand: any self that is not a channel is left alone) */
static int xchan_gc(lua_State *L) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (o && o->ch) {
    cfu_xchan_unref(o->ch);
    o->ch = NULL;
  }
  return 0;
}

cfu_xchan *cfl_toxchan(lua_State *L, int idx) {
  cfl_xchan *o = luaL_testudata(L, idx, XCHAN_MT);
  return o ? o->ch : NULL;
}

static cfu_xchan *check_xchan(lua_State *L, const char *fname) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (!o)
    luaL_error(L, "%s: argument #1 must be a thread channel (call it with a colon; got %s)", fname,
               luaL_typename(L, 1));
  if (!o->ch) luaL_error(L, "%s: the channel was finalised (its __gc was called)", fname);
  return o->ch;
}

/* A checked delay (cfl_check_ms: 0 to 1e15 ms) in nanoseconds, at least 1
 * and at most about 31 years (1e15 ms would not fit in 64 bits). */
static uint64_t ms_to_ns(double ms) {
  double ns = ms * 1e6;
  if (ns < 1) return 1;
  if (ns > 1e18) return (uint64_t)1e18;
  return (uint64_t)ns;
}

/* The value at idx as a message; raises naming fname. */
static cfu_xmsg *encode_msg(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx))
    luaL_error(L, "%s: argument #%d must not be nil (nil marks a closed channel)", fname, idx);
  cfl_buf b = {NULL, 0, 0};
  char err[160];
  if (cfl_encode(L, idx, &b, err)) {
    cfl_buf_discard(&b);
    luaL_error(L, "%s: argument #%d: %s", fname, idx, err);
  }
  cfu_xmsg *m = malloc(sizeof *m + b.len);
  if (!m) {
    cfl_buf_discard(&b);
    luaL_error(L, "%s: out of memory", fname);
  }
  m->link.next = m->link.prev = NULL;
  m->len = b.len;
  memcpy(m->data, b.p, b.len);
  free(b.p); /* its references now belong to the message */
  return m;
}

/* Push the value of m and free it; 1, or raises if corrupt. */
static int push_msg(lua_State *L, cfu_xmsg *m) {
  size_t pos = 0;
  int bad = cfl_decode(L, m->data, m->len, &pos);
  if (bad) cfl_copy_release(m->data + pos, m->len - pos);
  free(m);
  if (bad) luaL_error(L, "thread channel: corrupt message");
  return 1;
}

/* The worker functions and channel methods serve worker states too, which
 * have no runtime; in a runtime's state they carry its upvalue, and raise
 * once it has closed, like every other entry point there. */
static void check_runtime(lua_State *L) {
  if (lua_type(L, lua_upvalueindex(CFL_UP_RT)) == LUA_TLIGHTUSERDATA) cfl_rt(L);
}

/* channel:send_blocking(v) -> true, or nil, "closed" (worker threads) */
static int c_send_blocking(lua_State *L) {
  check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:send_blocking");
  cfu_parker *pk = blocking_parker(L, "channel:send_blocking");
  cfu_xmsg *m = encode_msg(L, 2, "channel:send_blocking");
  cfu_xwait w = {{NULL, NULL}, pk, NULL};
  for (;;) {
    int r = cfu_xchan_send(ch, m, &w);
    if (r == CFU_X_OK) break;
    if (r == CFU_X_CLOSED) {
      msg_discard(m);
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    if (cfu_park(pk, 0) == CFU_PARK_CANCELLED) {
      cfu_xchan_unwait(ch, &w);
      msg_discard(m);
      return raise_cancelled(L);
    }
  }
  cfu_xchan_unwait(ch, &w);
  lua_pushboolean(L, 1);
  return 1;
}

/* channel:recv_blocking([timeout_ms]) -> value; nil once closed and drained;
 * nil, "timeout" (worker threads) */
static int c_recv_blocking(lua_State *L) {
  check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:recv_blocking");
  uint64_t timeout = 0;
  if (!lua_isnoneornil(L, 2)) {
    timeout = ms_to_ns(cfl_check_ms(L, 2, "channel:recv_blocking"));
  }
  cfu_parker *pk = blocking_parker(L, "channel:recv_blocking");
  uint64_t deadline = timeout ? uv_hrtime() + timeout : 0;
  cfu_xwait w = {{NULL, NULL}, pk, NULL};
  for (;;) {
    cfu_xmsg *m = NULL;
    int r = cfu_xchan_recv(ch, &m, &w);
    if (r == CFU_X_OK) {
      cfu_xchan_unwait(ch, &w);
      return push_msg(L, m);
    }
    if (r == CFU_X_CLOSED) {
      lua_pushnil(L);
      return 1;
    }
    uint64_t left = 0;
    if (deadline) {
      uint64_t now = uv_hrtime();
      left = now < deadline ? deadline - now : 0;
      if (!left) {
        cfu_xchan_unwait(ch, &w);
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
      }
    }
    if (cfu_park(pk, left) == CFU_PARK_CANCELLED) {
      cfu_xchan_unwait(ch, &w);
      return raise_cancelled(L);
    }
  }
}

/* channel:try_recv() -> value, or nil, "empty" | "closed" (never waits) */
static int c_try_recv(lua_State *L) {
  check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:try_recv");
  cfu_xmsg *m = NULL;
  int r = cfu_xchan_recv(ch, &m, NULL);
  if (r == CFU_X_OK) return push_msg(L, m);
  lua_pushnil(L);
  if (r == CFU_X_CLOSED)
    lua_pushliteral(L, "closed");
  else
    lua_pushliteral(L, "empty");
  return 2;
}

static int c_close(lua_State *L) {
  check_runtime(L);
  cfu_xchan_close(check_xchan(L, "channel:close"));
  return 0;
}

static int c_is_closed(lua_State *L) {
  check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:is_closed");
  uv_mutex_lock(&ch->mu);
  int closed = ch->closed;
  uv_mutex_unlock(&ch->mu);
  lua_pushboolean(L, closed);
  return 1;
}

static int c_len(lua_State *L) {
  check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:len");
  uv_mutex_lock(&ch->mu);
  lua_Integer n = (lua_Integer)ch->n;
  uv_mutex_unlock(&ch->mu);
  lua_pushinteger(L, n);
  return 1;
}

static int c_tostring(lua_State *L) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (o && !o->ch) {
    lua_pushfstring(L, "cfuture.ThreadChannel(finalised): %p", (void *)o);
    return 1;
  }
  lua_pushfstring(L, "cfuture.ThreadChannel: %p", (void *)check_xchan(L, "channel:__tostring"));
  return 1;
}

/* -- send / recv as futures, on a runtime's loop thread -- */

typedef struct cfl_xop {
  cfl_future hdr;
  cfu_xchan *ch;  /* referenced */
  cfu_xmsg *msg;  /* send: to deliver; recv: the one received */
  cfu_xwait wait; /* registered on the channel while pending */
  cfu_mail mail;  /* the channel's wake, delivered on the loop thread */
  cf_waker waker; /* the awaiting task */
  cfl_threads *ts;
  uint8_t is_send;
  uint8_t closed; /* the channel was closed */
  uint8_t held;   /* holds the inbox (the loop stays alive while it waits) */
} cfl_xop;

static void xop_fire(cfu_mail *m) {
  cfl_xop *f = cf__container_of(m, cfl_xop, mail);
  cf_waker_wake(&f->waker);
}

static void xop_unhold(cfl_xop *f) {
  if (f->held) {
    f->held = 0;
    ts_release(f->ts);
  }
}

static cf_poll xop_poll(cf_future *base, cf_context *cx) {
  cfl_xop *f = (cfl_xop *)base;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  int r;
  if (f->is_send) {
    r = cfu_xchan_send(f->ch, f->msg, &f->wait);
    if (r == CFU_X_OK) f->msg = NULL;
  } else
    r = cfu_xchan_recv(f->ch, &f->msg, &f->wait);
  if (r == CFU_X_WAIT) {
    cf_waker_set(&f->waker, cx->waker);
    if (!f->held) {
      f->held = 1;
      ts_hold(f->ts);
    }
    return CF_PENDING;
  }
  f->closed = r == CFU_X_CLOSED;
  cfu_xchan_unwait(f->ch, &f->wait);
  xop_unhold(f);
  return cfl_ready(&f->hdr);
}

static void xop_release(cfl_xop *f) {
  if (!f->ch) return;
  cfu_xchan_unwait(f->ch, &f->wait); /* after this no thread posts f->mail */
  cfu_mail_cancel(&f->mail);
  cf_waker_drop(&f->waker);
  xop_unhold(f);
  if (f->msg) msg_discard(f->msg);
  f->msg = NULL;
  cfu_xchan_unref(f->ch);
  f->ch = NULL;
  ts_unref(f->ts);
}

static void xop_drop(cf_future *base) {
  cfl_xop *f = (cfl_xop *)base;
  xop_release(f);
  cfl_mark_dropped(&f->hdr);
}

static int xop_take(lua_State *L, cfl_future *base) {
  cfl_xop *f = (cfl_xop *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  if (f->is_send) {
    if (f->closed) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      n = 2;
    } else
      lua_pushboolean(L, 1);
  } else if (f->msg) {
    cfu_xmsg *m = f->msg;
    f->msg = NULL;
    size_t pos = 0;
    if (cfl_decode(L, m->data, m->len, &pos)) {
      cfl_copy_release(m->data + pos, m->len - pos);
      lua_pushliteral(L, "thread channel: corrupt message");
      n = -1;
    }
    free(m);
  } else
    lua_pushnil(L);
  xop_release(f);
  return n;
}

static const cfl_class xop_class = {
    .core = {.poll = xop_poll, .drop = xop_drop}, .name = "thread channel", .take = xop_take};

static int new_xop(lua_State *L, int is_send, const char *fname) {
  cfu_xchan *ch = check_xchan(L, fname);
  cf_runtime *rt = cf_runtime_of(L);
  if (!rt)
    return luaL_error(L,
                      "%s: no cfuture runtime drives this thread (on a worker use %s_blocking, "
                      "or run a runtime there with require \"cfuture\")",
                      fname, is_send ? "send" : "recv");
  if (rt->closed) return cfl_raise_closed(L);
  cfl_threads *ts = threads_of(L, rt);
  cfu_xmsg *m = is_send ? encode_msg(L, 2, fname) : NULL;
  cfl_xop *f = (cfl_xop *)cfl_new_future(L, rt, &xop_class, sizeof *f);
  f->ch = ch;
  cfu_xchan_ref(ch);
  f->msg = m;
  f->is_send = (uint8_t)is_send;
  f->ts = ts_ref(ts);
  f->wait.mail = &f->mail;
  cfu_mail_init(&f->mail, &ts->inbox, xop_fire);
  return 1;
}

/* channel:send(v) -> future of true once queued, or nil, "closed" */
static int c_send(lua_State *L) {
  check_runtime(L);
  return new_xop(L, 1, "channel:send");
}

/* channel:recv() -> future of the next value, nil once closed and drained */
static int c_recv(lua_State *L) {
  check_runtime(L);
  return new_xop(L, 0, "channel:recv");
}

static const luaL_Reg xchan_methods[] = {{"send", c_send},
                                         {"recv", c_recv},
                                         {"send_blocking", c_send_blocking},
                                         {"recv_blocking", c_recv_blocking},
                                         {"try_recv", c_try_recv},
                                         {"close", c_close},
                                         {"is_closed", c_is_closed},
                                         {"len", c_len},
                                         {NULL, NULL}};

/* Push the channel metatable of L, creating it in a state that has none. */
static void push_xchan_mt(lua_State *L) {
  if (luaL_newmetatable(L, XCHAN_MT)) {
    lua_pushcfunction(L, xchan_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, xchan_methods);
    lua_setfield(L, -2, "__index");
  }
}

void cfl_push_xchan(lua_State *L, cfu_xchan *ch) {
  cfl_xchan *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->ch = ch;
  push_xchan_mt(L);
  lua_setmetatable(L, -2);
}

/* cf.thread.channel([capacity]) -> a channel between threads (unbounded without capacity) */
static int l_channel(lua_State *L) {
  check_runtime(L);
  lua_Integer cap = 0;
  if (!lua_isnoneornil(L, 1))
    cap = cfl_check_int_range(L, 1, "thread.channel", "argument #1 (capacity)", 1, MAX_QUEUE);
  cfl_xchan *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->ch = NULL;
  push_xchan_mt(L);
  lua_setmetatable(L, -2);
  o->ch = cfu_xchan_new((size_t)cap, msg_discard);
  if (!o->ch) return luaL_error(L, "thread.channel: out of memory");
  return 1;
}

/* ---- functions for the worker's own code
 * --------------------------------------------------------- */

/* thread.sleep(ms): block this worker thread (never a runtime's loop thread) */
static int l_sleep(lua_State *L) {
  check_runtime(L);
  double ms = cfl_check_ms(L, 1, "thread.sleep");
  cfu_parker *pk = blocking_parker(L, "thread.sleep");
  uint64_t deadline = uv_hrtime() + ms_to_ns(ms);
  for (;;) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    if (cfu_park(pk, deadline - now) == CFU_PARK_CANCELLED) return raise_cancelled(L);
  }
  return 0;
}

/* thread.cancelled() -> true once this worker was asked to stop */
static int l_cancelled(lua_State *L) {
  check_runtime(L);
  lua_pushboolean(L, stop_requested());
  return 1;
}

/* thread.check(): raise "cancelled" if this worker was asked to stop */
static int l_check(lua_State *L) {
  check_runtime(L);
  if (stop_requested()) return raise_cancelled(L);
  return 0;
}

/* cf.thread.traceback(err) -> the worker's traceback of an error value that
 * is not a string (a table, say) raised on a worker (spawn, pool:run,
 * cf.blocking) and copied here, or nil. (A string error of spawn and
 * pool:run carries its traceback itself.) */
static int l_traceback(lua_State *L) {
  cfl_rt(L);
  return cfl_push_traceback(L, 1);
}

/* thread.is_worker() -> true on a thread started by cf.thread */
static int l_is_worker(lua_State *L) {
  check_runtime(L);
  lua_pushboolean(L, tl_parker != NULL);
  return 1;
}

static const luaL_Reg worker_funcs[] = {{"sleep", l_sleep},         {"cancelled", l_cancelled},
                                        {"check", l_check},         {"channel", l_channel},
                                        {"is_worker", l_is_worker}, {NULL, NULL}};

static int open_worker_lib(lua_State *L) {
  luaL_newlib(L, worker_funcs);
  return 1;
}

/* ---- the module and shutdown
 * --------------------------------------------------------------------- */

static const luaL_Reg spawn_funcs[] = {
    {"spawn", l_spawn}, {"pool", l_pool}, {"traceback", l_traceback}, {NULL, NULL}};
static const luaL_Reg pool_methods[] = {
    {"run", p_run}, {"close", p_close}, {"size", p_size}, {"queued", p_queued}, {NULL, NULL}};

/* Module table on top: adds cf.thread. */
void cfl_open_thread(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_new_class(L, rt, POOL_MT, pool_methods, p_gc, NULL, p_tostring);
  lua_pop(L, 1);
  lua_newtable(L);
  cfl_setfuncs(L, rt, worker_funcs);
  cfl_setfuncs(L, rt, spawn_funcs);
  /* the channel metatable of this state, its methods with the runtime */
  luaL_newmetatable(L, XCHAN_MT);
  lua_pushcfunction(L, xchan_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, c_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  cfl_setfuncs(L, rt, xchan_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
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

void cfl_close_threads(cf_runtime *rt) {
  cfl_threads *ts = rt->threads;
  if (!ts) return;
  cf_link *l;
  for (l = ts->pools.next; l != &ts->pools; l = l->next)
    pool_close(cf__container_of(l, tpool, link));
  for (l = ts->threads.next; l != &ts->threads; l = l->next)
    cfu_parker_cancel(&cf__container_of(l, wthread, link)->parker);
  /* every worker stops at its next check: wait for each */
  for (l = ts->threads.next; l != &ts->threads; l = l->next)
    uv_thread_join(&cf__container_of(l, wthread, link)->tid);
  /* nothing posts any more; mail not delivered (in the threads too) is dropped */
  ts->closed = 1;
  cfu_inbox_close(&ts->inbox);
  while ((l = cf__list_pop_front(&ts->threads))) {
    wthread *t = cf__container_of(l, wthread, link);
    if (t->work) t->work->thread = NULL;
    thread_free(t);
  }
  /* what nobody holds goes now; what a Lua object still holds is finished
   * (as cancelled) and freed with that object */
  while ((l = cf__list_pop_front(&ts->works))) {
    xwork *w = cf__container_of(l, xwork, all);
    if (w->orphaned) {
      work_free(w);
      continue;
    }
    if (!w->finished) {
      cfl_buf_discard(&w->vals);
      w->finished = w->failed = w->cancelled = 1;
    }
    w->swoken = 0; /* nobody waits for room any more */
    if (cf__link_linked(&w->swait)) cf__list_remove(&w->swait);
  }
  /* a pool goes now, or with the last of its Lua object and its jobs */
  while ((l = cf__list_pop_front(&ts->pools))) {
    tpool *p = cf__container_of(l, tpool, link);
    p->alive = 0;
    pool_maybe_free(p);
  }
  rt->threads = NULL;
  ts_unref(ts);
}

const cfl_module cfl_thread_module = {
    .name = "thread", .open = cfl_open_thread, .close = cfl_close_threads};
