/*
 * task.c — tasks and join handles: spawn, lazy start, results, recycling.
 *
 * Ground rules
 * - A spawned task gets no coroutine until it first runs: spawn stages the
 *   function and arguments in the runtime's stage table, and the first poll
 *   moves them onto a coroutine from the pool.
 * - When a task completes, its results move into its anchor slot (one value
 *   as is, several in a table, an error value as is) and its coroutine goes
 *   back to the pool at once. Short tasks therefore share a few coroutines.
 * - Holders (JoinHandles, block_on, a scope that must re-raise a child's
 *   error) keep the results alive; the last one to go releases them, and an
 *   error nobody took is reported then (or at completion if nobody holds
 *   the task at all).
 */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "cfl.h"

typedef struct cfl_join_handle {
  cfl_future hdr;
  cfl_task *task; /* NULL once finalised (a finaliser may resurrect it) */
  uint64_t id;    /* the task's, kept for a finalised handle */
} cfl_join_handle;

#define FINALISED "the JoinHandle was finalised (its __gc ran; a finaliser resurrected it)"

static const char NIL_MARK = 'n'; /* stands for nil in an anchor slot */

/* ---- the stage: arguments of tasks that have not started ----------------- */

static void stage_push(lua_State *L, cf_runtime *rt, cfl_task *t, int idx, int n) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->stage.ref);
  int tbl = lua_gettop(L);
  t->root.staged = 1;
  t->root.ref = rt->stage.top + 1; /* index of the first value */
  t->root.nres = n;                /* how many */
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, idx + i);
    lua_rawseti(L, tbl, t->root.ref + i);
  }
  rt->stage.top += n;
  rt->stage.n += n;
  lua_pop(L, 1);
}

/* Move t's staged values onto `to`, or drop them if `to` is NULL. */
static void stage_take(cf_runtime *rt, cfl_task *t, lua_State *to) {
  lua_State *L = to ? to : rt->S;
  int n = t->root.nres, first = t->root.ref;
  luaL_checkstack(L, n + 2, "too many arguments");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->stage.ref);
  int tbl = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (to) lua_rawgeti(L, tbl, first + i);
    lua_pushnil(L);
    lua_rawseti(L, tbl, first + i);
  }
  lua_remove(L, tbl);
  t->root.staged = 0;
  t->root.ref = LUA_NOREF;
  t->root.nres = 0;
  rt->stage.n -= n;
  if (rt->stage.n == 0) {
    /* empty: start again at 1, in a fresh table if a burst grew this one */
    if (rt->stage.top > 4096) {
      lua_newtable(L);
      lua_rawseti(L, LUA_REGISTRYINDEX, rt->stage.ref);
    }
    rt->stage.top = 0;
  }
}

/* A staged task's first poll: its coroutine is made only now (a task
 * cancelled before it ran never costs one). */
static void task_start(cfl_task *t) {
  cf_runtime *rt = t->root.hdr.rt;
  lua_State *S = rt->S;
  lua_rawgeti(S, LUA_REGISTRYINDEX, rt->anchors);
  lua_State *co = cfl_coroutine_new(S, rt);
  stage_take(rt, t, co); /* reads ref and nres: before they are reused */
  t->root.ref = luaL_ref(S, -2);
  lua_pop(S, 1);
  t->root.co = co;
}

/* The executor polls a staged task's entry once: it starts the coroutine
 * and hands over to it (the executor polls the root from then on). */
static cf_poll entry_poll(cf_future *base, cf_context *cx) {
  cfl_task *t = (cfl_task *)((char *)base - offsetof(cfl_task, entry));
  task_start(t);
  t->base.future = &t->root.hdr.base;
  return cf_future_poll(t->base.future, cx);
}

static void entry_drop(cf_future *base) {
  cfl_task *t = (cfl_task *)((char *)base - offsetof(cfl_task, entry));
  cfl_coro_class.vt.drop(&t->root.hdr.base);
}

static const cf_future_vtable entry_vt = {entry_poll, entry_drop};

/* ---- completion and results ---------------------------------------------- */

/* Move the results into the anchor slot; the coroutine goes to the pool. */
static void settle(cfl_task *t) {
  cf_runtime *rt = t->root.hdr.rt;
  cfl_coro *c = &t->root;
  lua_State *S = rt->S, *co = c->co;
  if (c->staged) stage_take(rt, t, NULL); /* cancelled before it started */
  if (!co) return;
  int n = c->hdr.state == CFL_ST_FAILED ? 1 : c->hdr.state == CFL_ST_READY ? c->nres : 0;
  /* running: only when the runtime closes from inside a task; or a resume
   * from outside the scheduler runs the coroutine right now (coro.c) */
  lua_Debug ar;
  int running = c->running || (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar));
  luaL_checkstack(S, 6, NULL);
  lua_rawgeti(S, LUA_REGISTRYINDEX, rt->anchors);
  int tbl = lua_gettop(S);
  lua_rawgeti(S, tbl, c->ref); /* the coroutine itself */
  if (n == 0 || running) {
    luaL_unref(S, tbl, c->ref);
    c->ref = LUA_NOREF;
    n = 0;
  } else {
    if (n == 1) {
      lua_xmove(co, S, 1);
      if (lua_isnil(S, -1)) {
        lua_pop(S, 1);
        lua_pushlightuserdata(S, (void *)&NIL_MARK);
      }
    } else {
      lua_createtable(S, n, 0);
      for (int i = n; i >= 1; i--) {
        lua_xmove(co, S, 1);
        lua_rawseti(S, -2, i);
      }
    }
    lua_rawseti(S, tbl, c->ref); /* results take the coroutine's place */
  }
  c->nres = n;
  if (!running) {
    lua_settop(co, 0);
    if (lua_status(co) == LUA_OK && rt->coro_cache.n < CFL_CORO_CACHE_MAX) {
      lua_rawgeti(S, LUA_REGISTRYINDEX, rt->coro_cache.ref);
      lua_pushvalue(S, tbl + 1);
      lua_rawseti(S, -2, ++rt->coro_cache.n);
    }
  }
  lua_settop(S, tbl - 1);
  c->co = NULL;
}

cfl_task_ext *cfl_task_ext_of(cfl_task *t) {
  if (!t->ext && (t->ext = calloc(1, sizeof *t->ext))) t->ext->task = t;
  return t->ext;
}

static void push_task_label(lua_State *L, cfl_task *t) {
  if (cfl_task_name(t))
    lua_pushfstring(L, "task %d (%s)", (int)t->base.id, cfl_task_name(t));
  else
    lua_pushfstring(L, "task %d", (int)t->base.id);
}

int cfl_task_take(lua_State *L, cfl_task *t) {
  cfl_coro *c = &t->root;
  cf_runtime *rt = c->hdr.rt;
  if (t->base.cancelled) {
    push_task_label(L, t);
    lua_pushliteral(L, " was aborted");
    lua_concat(L, 2);
    cfl_push_cancelled(L, rt, lua_tostring(L, -1));
    lua_remove(L, -2);
    return -1;
  }
  int failed = c->hdr.state == CFL_ST_FAILED, n = c->nres;
  if (n == 0 || c->ref == LUA_NOREF) return 0;
  luaL_checkstack(L, n + 2, "too many results");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->anchors);
  lua_rawgeti(L, -1, c->ref);
  lua_remove(L, -2);
  if (n == 1) {
    if (lua_touserdata(L, -1) == (void *)&NIL_MARK) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    if (failed) {
      t->observed = 1;
      return -1;
    }
    return 1;
  }
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static void report_error(cfl_task *t) {
  lua_State *S = t->root.hdr.rt->S;
  if (cfl_task_take(S, t) < 0) cfl_report(t->root.hdr.rt, S, t);
}

/* Nobody can ask for the results any more: drop them. */
static void release(cfl_task *t) {
  cf_runtime *rt = t->root.hdr.rt;
  cfl_coro *c = &t->root;
  if (!t->base.cancelled && c->hdr.state == CFL_ST_FAILED && !t->observed) report_error(t);
  if (c->ref == LUA_NOREF || rt->closing) return;
  lua_rawgeti(rt->S, LUA_REGISTRYINDEX, rt->anchors);
  luaL_unref(rt->S, -1, c->ref);
  lua_pop(rt->S, 1);
  c->ref = LUA_NOREF;
}

void cfl_task_hold(cfl_task *t) {
  t->nholders++;
  cf_task_ref(&t->base);
}

void cfl_task_unhold(cfl_task *t) {
  if (--t->nholders == 0 && cf_task_is_complete(&t->base)) release(t);
  cf_task_unref(&t->base);
}

static void task_complete(cf_task *bt, int cancelled) {
  cfl_task *t = (cfl_task *)bt;
  (void)cancelled;
  if (t->unref) {
    t->unref = 0;
    t->root.hdr.rt->nunref--;
  }
  settle(t);
  if (t->ext && t->ext->on_done) t->ext->on_done(t);
  if (t->nholders == 0) release(t);
}

static void task_free(cf_task *bt) {
  cfl_task *t = (cfl_task *)bt;
  if (t->ext) free(t->ext->name);
  free(t->ext);
  free(t);
}

static const cf_task_hooks task_hooks = {task_complete, task_free};

/* ---- spawn ------------------------------------------------------------------- */

cfl_task *cfl_spawn(lua_State *L, cf_runtime *rt, int idx, const char *fname) {
  int top = lua_gettop(L), fn = idx, nargs = top - idx, named = 0;
  if (top < idx)
    luaL_error(L, "%s: argument #%d must be a function or a future (got no value)", fname, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    /* cf.spawn{fn_or_future, args..., name = "..."} */
    size_t len = lua_rawlen(L, idx);
    if (len < 1) luaL_error(L, "%s: a table argument needs the function or future at [1]", fname);
    if (len > 1000000)
      luaL_error(L, "%s: a table argument may hold at most 1000000 values (got %d)", fname,
                 (int)(len > 0x7fffffff ? 0x7fffffff : len));
    int n = (int)len;
    lua_getfield(L, idx, "name");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: the task name must be a string (got %s)", fname, luaL_typename(L, -1));
    named = !lua_isnil(L, -1);
    if (named) cfl_check_cstring(L, -1, fname, "the task name", NULL);
    if (!lua_checkstack(L, n + 2))
      luaL_error(L, "%s: too many arguments for the task (%d)", fname, n - 1);
    for (int i = 1; i <= n; i++)
      lua_rawgeti(L, idx, i);
    fn = top + 2;
    nargs = n - 1;
  }
  cfl_future *f = cfl_tofuture(L, fn);
  if (!f && lua_type(L, fn) != LUA_TFUNCTION) {
    if (fn != idx)
      luaL_error(L, "%s: argument #%d: [1] must be a function or a future (got %s)", fname, idx,
                 luaL_typename(L, fn));
    luaL_error(L, "%s: argument #%d must be a function or a future (got %s)", fname, idx,
               luaL_typename(L, fn));
  }
  if (!f) cfl_unwrap_async(L, fn);
  int adopt = f && f->base.vt == &cfl_coro_class.vt && f->state == CFL_ST_FRESH && !f->owner;
  if (f && !adopt) cfl_check_claimable(L, f, NULL, fname, idx);
  /* every check is done: from here on, nothing raises but out-of-memory */
  char *name = named ? strdup(lua_tostring(L, top + 1)) : NULL;
  cfl_task *t = malloc(sizeof *t);
  if (t) t->ext = NULL;
  if (!t || (named && (!name || !cfl_task_ext_of(t)))) {
    free(name);
    if (t) free(t->ext);
    free(t);
    luaL_error(L, "%s: out of memory", fname);
    return NULL;
  }
  if (named) t->ext->name = name;
  t->nholders = 0;
  t->observed = 0;
  t->unref = 0;
  t->parent = rt->ex.current ? rt->ex.current->id : 0;
  cfl_coro_init(&t->root, rt, NULL, LUA_NOREF, &t->base.waiter);
  t->root.hdr.owner = t;
  t->root.root = 1;
  if (adopt) {
    /* take over the future's coroutine: it holds the body and arguments */
    cfl_coro *src = (cfl_coro *)f;
    t->root.co = src->co;
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->anchors);
    cfl_getuservalue(L, fn);
    t->root.ref = luaL_ref(L, -2);
    lua_pushnil(L);
    cfl_setuservalue(L, fn);
    src->co = NULL;
    src->hdr.state = CFL_ST_MOVED;
  } else if (f) {
    /* the task's coroutine will await the future */
    f->owner = &t->root;
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.await_fn);
    lua_pushvalue(L, fn);
    stage_push(L, rt, t, lua_gettop(L) - 1, 2);
  } else {
    stage_push(L, rt, t, fn, nargs + 1);
  }
  t->entry.vt = &entry_vt;
  cf_task_spawn(&t->base, &rt->ex, &task_hooks, t->root.staged ? &t->entry : &t->root.hdr.base);
  lua_settop(L, top);
  return t;
}

/* ---- join handles ---------------------------------------------------------- */

static cf_poll join_handle_poll(cf_future *base, cf_context *cx) {
  cfl_join_handle *h = (cfl_join_handle *)base;
  cfl_task *t = h->task;
  if (!t) { /* join_handle_take says why */
    return cfl_failed(&h->hdr);
  }
  if (cf_task_is_complete(&t->base)) {
    h->hdr.state =
        (t->base.cancelled || t->root.hdr.state == CFL_ST_FAILED) ? CFL_ST_FAILED : CFL_ST_READY;
    return CF_READY;
  }
  cf_waitlist_register(&t->base.joiners, cx);
  h->hdr.state = CFL_ST_PENDING;
  return CF_PENDING;
}

static void join_handle_drop(cf_future *base) { (void)base; /* detach: the task runs on */ }

static int join_handle_take(lua_State *L, cfl_future *f) {
  cfl_join_handle *h = (cfl_join_handle *)f;
  if (!h->task) {
    lua_pushfstring(L, "await: " FINALISED ", so it no longer knows task %d", (int)h->id);
    return -1;
  }
  return cfl_task_take(L, h->task);
}

static void join_handle_describe(lua_State *L, cfl_future *f) {
  cfl_task *t = ((cfl_join_handle *)f)->task;
  if (!t) {
    lua_pushliteral(L, "JoinHandle (finalised)");
    return;
  }
  lua_pushliteral(L, "JoinHandle of ");
  push_task_label(L, t);
  lua_concat(L, 2);
}

static void join_handle_gc(lua_State *L, cfl_future *f) {
  cfl_join_handle *h = (cfl_join_handle *)f;
  (void)L;
  if (!h->task) return;
  cfl_task *t = h->task;
  h->task = NULL;
  cfl_task_unhold(t);
}

static void join_handle_abort(cfl_future *f);
static int join_handle_is_finished(cfl_future *f);
static int h_abort(lua_State *L);
static int h_is_finished(lua_State *L);
static int h_id(lua_State *L);
static int h_name(lua_State *L);

const luaL_Reg cfl_abort_methods[] = {
    {"abort", h_abort}, {"is_finished", h_is_finished}, {NULL, NULL}};
static int h_unref(lua_State *L);
static int h_abort_now(lua_State *L);
static const luaL_Reg join_handle_methods[] = {
    {"id", h_id}, {"name", h_name}, {"unref", h_unref}, {"abort_now", h_abort_now}, {NULL, NULL}};

static const cfl_class cfl_join_handle_class = {
    .vt = {.poll = join_handle_poll, .drop = join_handle_drop},
    .name = "JoinHandle",
    .type = "cfuture.JoinHandle",
    .methods = join_handle_methods,
    .take = join_handle_take,
    .describe = join_handle_describe,
    .gc = join_handle_gc,
    .shared = 1,
    .abort = join_handle_abort,
    .is_finished = join_handle_is_finished,
};

void cfl_push_join_handle(lua_State *L, cf_runtime *rt, cfl_task *t) {
  cfl_join_handle *h =
      (cfl_join_handle *)cfl_new_future(L, rt, &cfl_join_handle_class, sizeof(cfl_join_handle));
  h->task = t;
  h->id = t->base.id;
  cfl_task_hold(t);
}

/* Only reached through check_abortable, which refuses a finalised handle. */
static void join_handle_abort(cfl_future *f) { cf_task_abort(&((cfl_join_handle *)f)->task->base); }

static int join_handle_is_finished(cfl_future *f) {
  return cf_task_is_complete(&((cfl_join_handle *)f)->task->base);
}

static void check_not_finalised(lua_State *L, cfl_future *f, const char *fname) {
  if (f->base.vt == &cfl_join_handle_class.vt && !((cfl_join_handle *)f)->task)
    luaL_error(L, "%s: " FINALISED, fname);
}

/* The handle at argument 1: a JoinHandle, or another class with abort. */
static cfl_future *check_abortable(lua_State *L, const char *fname) {
  cfl_future *f = cfl_tofuture(L, 1);
  if (!f || !cfl_class_of(f)->abort)
    luaL_error(L, "%s: argument #1 must be a JoinHandle (got %s)", fname,
               f ? cfl_class_of(f)->name : luaL_typename(L, 1));
  check_not_finalised(L, f, fname);
  return f;
}

static cfl_join_handle *check_join_handle(lua_State *L, const char *fname) {
  cfl_future *f = cfl_tofuture(L, 1);
  if (!f || f->base.vt != &cfl_join_handle_class.vt)
    luaL_error(L, "%s: argument #1 must be a JoinHandle (got %s)", fname,
               f ? cfl_class_of(f)->name : luaL_typename(L, 1));
  return (cfl_join_handle *)f;
}

static int h_abort(lua_State *L) {
  cfl_future *f = check_abortable(L, "abort");
  cfl_class_of(f)->abort(f);
  return 0;
}

static int h_is_finished(lua_State *L) {
  cfl_future *f = check_abortable(L, "is_finished");
  lua_pushboolean(L, cfl_class_of(f)->is_finished(f));
  return 1;
}

/* h:id() -> the task's id (a finalised handle still knows it) */
static int h_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_join_handle(L, "id")->id);
  return 1;
}

static int h_name(lua_State *L) {
  cfl_join_handle *h = check_join_handle(L, "name");
  check_not_finalised(L, &h->hdr, "name");
  cfl_task *t = h->task;
  if (cfl_task_name(t))
    lua_pushstring(L, cfl_task_name(t));
  else
    lua_pushnil(L);
  return 1;
}

/* h:unref() -> h: cf.run() and cf.step() no longer wait for the task (a
 * watcher or heartbeat that runs while there is other work); it still runs,
 * and block_on, await and abort work as before */
static int h_unref(lua_State *L) {
  cfl_join_handle *h = check_join_handle(L, "unref");
  check_not_finalised(L, &h->hdr, "unref");
  cfl_task *t = h->task;
  if (!t->unref && !cf_task_is_complete(&t->base)) {
    t->unref = 1;
    t->root.hdr.rt->nunref++;
  }
  lua_settop(L, 1);
  return 1;
}

typedef struct cancel_now_args {
  cf_runtime *rt;
  cf_task *t;
  int outside; /* called outside any drive */
  int done;
} cancel_now_args;

static int cancel_now_p(lua_State *L) {
  cancel_now_args *a = lua_touserdata(L, 1);
  a->done = cf_task_cancel_now(a->t);
  if (a->rt->reports.n) cfl_flush_reports(a->rt); /* the host may exit next */
  return 0;
}

/* h:abort_now() -> true if the task ended here: its cancellation (cf.defer
 * cleanups, <close> variables, what it awaited dropped, the tasks of a scope
 * it awaited) runs before this returns, even from inside another task or
 * outside any drive (a host that is about to exit); the errors its
 * cleanups raise are reported before it returns too. Outside a drive,
 * cleanups cannot drive the loop (block_on, run and step refuse, as inside
 * a drive). The running task itself (or one whose poll is on the stack) is
 * only marked, as by abort: false. Protected like an executor run: an error
 * that cuts the cancellation short (out of memory) is printed, and the task
 * is left to finish cancelling at the next run. */
static int h_abort_now(lua_State *L) {
  cfl_join_handle *h = check_join_handle(L, "abort_now");
  check_not_finalised(L, &h->hdr, "abort_now");
  cf_runtime *rt = h->hdr.rt;
  cfl_task *t = h->task;
  if (rt->closing || cf_task_is_complete(&t->base)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  cancel_now_args a = {rt, &t->base, !rt->in_run, 0};
  cf_task *prev = rt->ex.completing;
  cfl_task_hold(t); /* the handle may be collected by code the drop runs */
  if (a.outside) rt->in_run = 1;
  rt->cancelling_now++; /* a scope dropped meanwhile cancels its tasks now too */
  lua_pushcfunction(L, cancel_now_p);
  lua_pushlightuserdata(L, &a);
  int st = lua_pcall(L, 1, 0, 0);
  rt->cancelling_now--;
  if (st != LUA_OK) {
    cf_executor_completion_cut(&rt->ex, prev);
    if (!cf_task_is_complete(&t->base)) { /* cut inside its drop: finish at the next run */
      t->base.dropping = 0;
      cf_task_abort(&t->base);
    }
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object)";
    fprintf(stderr, "cfuture: error inside abort_now (the task finishes cancelling later): %s\n",
            msg);
    fflush(stderr);
    lua_pop(L, 1);
  }
  if (a.outside) {
    rt->in_run = 0;
    if (cf_executor_has_ready(&rt->ex) || rt->reports.n) cfl_wake_host(rt); /* joiners woken */
  }
  cfl_task_unhold(t);
  lua_pushboolean(L, st == LUA_OK && a.done);
  return 1;
}

/* ---- module functions -------------------------------------------------------- */

/* cf.spawn(f_or_fn, ...) -> JoinHandle */
static int l_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (rt->closing) return luaL_error(L, "spawn: the runtime is closed");
  cfl_task *t = cfl_spawn(L, rt, 1, "spawn");
  cfl_push_join_handle(L, rt, t);
  return 1;
}

/* cf.current() -> id, name of the running task, or nothing outside tasks */
static int l_current(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cf_task *bt = rt->ex.current;
  if (!bt || !rt->current) return 0;
  cfl_task *t = (cfl_task *)bt;
  lua_pushinteger(L, (lua_Integer)bt->id);
  if (cfl_task_name(t))
    lua_pushstring(L, cfl_task_name(t));
  else
    lua_pushnil(L);
  return 2;
}

static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {"current", l_current}, {NULL, NULL}};

static void open_task(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_newtable(L);
  rt->stage.ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

const cfl_module cfl_task_module = {.name = "task", .open = open_task};
