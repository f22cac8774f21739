/*
 * coro.c — Lua coroutines as futures, await, tasks and join handles.
 *
 * Ground rules
 * - A coroutine future's poll resumes its coroutine. Inside, await polls the
 *   awaited future in place first (a ready future costs no suspension); if
 *   it is pending, the coroutine yields and the coroutine future's poll
 *   polls it from then on, resuming the coroutine with its results.
 * - rt->current is the coroutine whose body is running; await refuses any
 *   other caller, so await outside a task is an error, never a stray yield.
 * - An error kills the coroutine: its traceback is appended (strings only,
 *   once), then the thread is closed so <close> variables run, leaving the
 *   error value alone on its stack.
 * - A task's coroutine is anchored by a ref in the runtime's anchor table;
 *   it goes back to the pool once the task is complete and no JoinHandle can
 *   ask for its results. A coroutine future's thread is its uservalue.
 */
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

typedef struct cfl_handle {
  cfl_future hdr;
  cfl_task *task;
} cfl_handle;

/* ---- coroutine pool ---------------------------------------------------- */

/* Push an idle coroutine onto L and return it. */
static lua_State *thread_new(lua_State *L, cf_runtime *rt) {
  if (rt->npool > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->pool);
    lua_rawgeti(L, -1, rt->npool);
    lua_pushnil(L);
    lua_rawseti(L, -3, rt->npool--);
    lua_remove(L, -2);
    return lua_tothread(L, -1);
  }
  return lua_newthread(L);
}

/* The task's results can no longer be asked for: unanchor its coroutine,
 * keeping it for reuse if it ended cleanly. */
void cfl_task_release(cfl_task *t) {
  cf_runtime *rt = t->root.hdr.rt;
  if (t->recycled || rt->closing) return;
  t->recycled = 1;
  lua_State *S = rt->S, *co = t->root.co;
  lua_rawgeti(S, LUA_REGISTRYINDEX, rt->anchors);
  if (co && !t->root.running && lua_status(co) == LUA_OK && rt->npool < CFL_POOL_MAX) {
    lua_settop(co, 0);
    lua_rawgeti(S, LUA_REGISTRYINDEX, rt->pool);
    lua_rawgeti(S, -2, t->root.ref);
    lua_rawseti(S, -2, ++rt->npool);
    lua_pop(S, 1);
  }
  luaL_unref(S, -1, t->root.ref);
  lua_pop(S, 1);
  t->root.ref = LUA_NOREF;
  t->root.co = NULL;
}

/* ---- coroutine futures --------------------------------------------------- */

static void coro_init(cfl_coro *c, lua_State *co, int ref) {
  c->co = co;
  c->ref = ref;
  c->nres = 0;
  c->raise = 0;
  c->running = 0;
  c->woke = 0;
  c->awaiting = NULL;
  cf_waiter_init(&c->waiter);
  c->task = NULL;
}

/* The coroutine died with the error value on its top. */
static void coro_fail(cf_runtime *rt, cfl_coro *c) {
  lua_State *co = c->co;
  lua_checkstack(co, 2);
  if (lua_type(co, -1) == LUA_TSTRING) {
    const char *msg = lua_tostring(co, -1);
    if (!strstr(msg, "\nstack traceback:")) {
      luaL_traceback(rt->S, co, msg, 0);
      lua_xmove(rt->S, co, 1);
      lua_replace(co, -2);
    }
  }
  /* Lua 5.4 keeps the <close> variables of a coroutine that died with an
   * error open until the thread is closed. */
  cfl_closethread(co, cfl_from(rt));
  if (lua_gettop(co) == 0) lua_pushnil(co);
  lua_settop(co, 1);
  c->hdr.state = CFL_FAILED;
}

static cf_poll coro_resume(cf_runtime *rt, cfl_coro *c, cf_context *cx, int nargs) {
  lua_State *co = c->co;
  cfl_coro *prev = rt->current;
  const cf_context *prevcx = rt->current_cx;
  lua_State *from = prev ? prev->co : rt->driver;
  int nres = 0;
  rt->current = c;
  rt->current_cx = cx;
  c->running = 1;
  int st = lua_resume(co, from, nargs, &nres);
  c->running = 0;
  rt->current = prev;
  rt->current_cx = prevcx;
  if (st == LUA_YIELD) {
    if (c->awaiting) return CF_PENDING;
    if (c->woke) { /* yield_now: its waker fired already */
      c->woke = 0;
      return CF_PENDING;
    }
    /* a bare coroutine.yield(...) in a task body: let others run, like yield_now */
    lua_pop(co, nres);
    cf_waker_wake_by_ref(cx->waker);
    return CF_PENDING;
  }
  if (st == LUA_OK) {
    c->nres = nres;
    c->hdr.state = CFL_READY;
  } else {
    coro_fail(rt, c);
  }
  return CF_READY;
}

static cf_poll coro_poll(cf_future *base, cf_context *cx) {
  cfl_coro *c = (cfl_coro *)base;
  cf_runtime *rt = c->hdr.rt;
  int nargs = 0;
  switch (c->hdr.state) {
  case CFL_FRESH:
    c->hdr.state = CFL_PENDING;
    nargs = lua_gettop(c->co) - 1;
    break;
  case CFL_PENDING:
    if (c->running) return CF_PENDING; /* polled from inside its own body */
    if (c->awaiting) {
      cfl_future *a = c->awaiting;
      cf_context sub = {cx->waker, &c->waiter};
      if (cf_future_poll(&a->base, &sub) == CF_PENDING) return CF_PENDING;
      cf_waiter_cancel(&c->waiter);
      c->awaiting = NULL;
      nargs = cfl_take(c->co, a);
      if (nargs < 0) {
        c->raise = 1;
        nargs = 1;
      }
    }
    break;
  default: return CF_READY;
  }
  return coro_resume(rt, c, cx, nargs);
}

static void coro_drop(cf_future *base) {
  cfl_coro *c = (cfl_coro *)base;
  cf_runtime *rt = c->hdr.rt;
  lua_State *co = c->co;
  switch (c->hdr.state) {
  case CFL_FRESH:
    if (co) lua_settop(co, 0);
    c->hdr.state = CFL_CANCELLED;
    break;
  case CFL_PENDING:
    c->hdr.state = CFL_CANCELLED;
    if (c->awaiting) {
      cf_waiter_cancel(&c->waiter);
      cfl_drop(c->awaiting);
      c->awaiting = NULL;
    }
    if (c->running || rt->closing) break;
    /* run the coroutine's <close> handlers; an error there is reported */
    if (cfl_closethread(co, cfl_from(rt)) != LUA_OK) {
      lua_settop(co, 1);
      cfl_report(rt, co, c->task);
    }
    lua_settop(co, 0);
    break;
  case CFL_READY:
    lua_settop(co, 0);
    c->hdr.state = CFL_CANCELLED;
    break;
  case CFL_FAILED:
    /* an error that nobody took */
    c->hdr.state = CFL_CANCELLED;
    if (!rt->closing) cfl_report(rt, co, c->task);
    lua_settop(co, 0);
    break;
  default: break;
  }
}

static int coro_take(lua_State *L, cfl_future *f) {
  cfl_coro *c = (cfl_coro *)f;
  int n;
  switch (f->state) {
  case CFL_READY:
    n = c->nres;
    luaL_checkstack(L, n, "too many results");
    lua_xmove(c->co, L, n);
    f->state = CFL_TAKEN;
    return n;
  case CFL_FAILED:
    lua_checkstack(L, 1);
    lua_xmove(c->co, L, 1);
    f->state = CFL_TAKEN;
    return -1;
  default: cfl_push_cancelled(L, f->rt, "the future was cancelled"); return -1;
  }
}

static void coro_describe(lua_State *L, cfl_future *f) {
  cfl_coro *c = (cfl_coro *)f;
  if (c->awaiting) {
    cfl_push_describe(L, c->awaiting);
    lua_pushfstring(L, "async function awaiting %s", lua_tostring(L, -1));
    lua_remove(L, -2);
  } else {
    lua_pushstring(L, "async function");
  }
}

const cfl_class cfl_coro_class = {
    {coro_poll, coro_drop}, "async function", coro_take, coro_describe, NULL, 0};

cfl_coro *cfl_new_coro(lua_State *L, cf_runtime *rt, int fn, int nargs) {
  fn = lua_absindex(L, fn);
  luaL_checkstack(L, nargs + 3, "too many arguments");
  cfl_coro *c = (cfl_coro *)cfl_new_future(L, rt, &cfl_coro_class, sizeof(cfl_coro));
  lua_State *co = thread_new(L, rt);
  cfl_setuservalue(L, -2);
  coro_init(c, co, LUA_NOREF);
  for (int i = 0; i <= nargs; i++)
    lua_pushvalue(L, fn + i);
  lua_checkstack(co, nargs + 1);
  lua_xmove(L, co, nargs + 1);
  return c;
}

/* ---- await ----------------------------------------------------------------- */

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  cf_runtime *rt = (cf_runtime *)ctx;
  cfl_coro *cur = rt->current;
  (void)status;
  if (!cur || cur->co != L)
    return luaL_error(L, "await: a task's coroutine was resumed from outside the scheduler");
  if (cur->raise) {
    cur->raise = 0;
    return lua_error(L);
  }
  return lua_gettop(L) - 1;
}

static int await_outside(lua_State *L) {
  if (lua_pushthread(L))
    return luaL_error(L, "await: not inside a task (the main chunk is not a task: run the code "
                         "with cf.block_on or cf.spawn)");
  return luaL_error(L, "await: not inside a task (this coroutine was not started by cfuture: "
                       "await works in async functions and in functions run by spawn/block_on)");
}

static int not_yieldable(lua_State *L) {
  return luaL_error(L, "await: cannot suspend here: the call goes through a C function that "
                       "cannot yield (a metamethod, a table.sort comparator, a gsub callback...)");
}

int cfl_await(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_coro *cur = rt->current;
  if (!cur || cur->co != L) return await_outside(L);
  lua_settop(L, 1);
  if (lua_touserdata(L, 1) == rt->yield_token_ptr) {
    /* yield_now: queue this task behind the others and suspend once */
    if (!lua_isyieldable(L)) return not_yieldable(L);
    cf_waker_wake_by_ref(rt->current_cx->waker);
    cur->woke = 1;
    return lua_yieldk(L, 0, (lua_KContext)rt, await_k);
  }
  cfl_future *f = cfl_checkawaitable(L, 1, "await");
  cfl_claim(L, f, cur, "await", 1);
  if (!lua_isyieldable(L)) return not_yieldable(L);
  cf_context cx = {rt->current_cx->waker, &cur->waiter};
  if (cf_future_poll(&f->base, &cx) == CF_READY) {
    cf_waiter_cancel(&cur->waiter);
    int n = cfl_take(L, f);
    return n < 0 ? lua_error(L) : n;
  }
  cur->awaiting = f;
  return lua_yieldk(L, 0, (lua_KContext)rt, await_k);
}

/* ---- tasks ------------------------------------------------------------------- */

static void push_task_label(lua_State *L, cfl_task *t) {
  if (t->name)
    lua_pushfstring(L, "task %d (%s)", (int)t->base.id, t->name);
  else
    lua_pushfstring(L, "task %d", (int)t->base.id);
}

static void report_task_error(cfl_task *t) {
  lua_State *co = t->root.co;
  t->observed = 1;
  lua_pushvalue(co, 1);
  cfl_report(t->root.hdr.rt, co, t);
}

static void task_complete(cf_task *bt, int cancelled) {
  cfl_task *t = (cfl_task *)bt;
  if (t->scope) cfl_scope_child_done(t);
  if (t->blocking || t->nhandles > 0) return;
  if (!cancelled && t->root.hdr.state == CFL_FAILED && !t->observed) report_task_error(t);
  cfl_task_release(t);
}

static void task_free(cf_task *bt) {
  cfl_task *t = (cfl_task *)bt;
  free(t->name);
  free(t);
}

static const cf_task_hooks task_hooks = {task_complete, task_free};

int cfl_task_take(lua_State *L, cfl_task *t) {
  cfl_coro *c = &t->root;
  lua_State *co = c->co;
  if (t->base.cancelled || !co) {
    push_task_label(L, t);
    lua_pushliteral(L, " was aborted");
    lua_concat(L, 2);
    cfl_push_cancelled(L, c->hdr.rt, lua_tostring(L, -1));
    lua_remove(L, -2);
    return -1;
  }
  if (c->hdr.state == CFL_FAILED) {
    t->observed = 1;
    lua_checkstack(L, 1);
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return -1;
  }
  int n = c->nres, base = lua_gettop(co) - n;
  luaL_checkstack(L, n, "too many results");
  lua_checkstack(co, n);
  for (int i = 1; i <= n; i++)
    lua_pushvalue(co, base + i);
  lua_xmove(co, L, n);
  return n;
}

cfl_task *cfl_spawn(lua_State *L, cf_runtime *rt, int idx, const char *fname) {
  int top = lua_gettop(L), fn = idx, nargs = top - idx, named = 0;
  if (top < idx)
    luaL_error(L, "%s: argument #%d must be a function or a future (got no value)", fname, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    /* cf.spawn{fn_or_future, args..., name = "..."} */
    int n = (int)lua_rawlen(L, idx);
    if (n < 1) luaL_error(L, "%s: a table argument needs the function or future at [1]", fname);
    lua_getfield(L, idx, "name");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: the task name must be a string (got %s)", fname, luaL_typename(L, -1));
    named = !lua_isnil(L, -1);
    luaL_checkstack(L, n, "too many arguments");
    for (int i = 1; i <= n; i++)
      lua_rawgeti(L, idx, i);
    fn = top + 2;
    nargs = n - 1;
  }
  cfl_future *f = cfl_tofuture(L, fn);
  if (!f && lua_type(L, fn) != LUA_TFUNCTION)
    luaL_error(L, "%s: argument #%d must be a function or a future (got %s)", fname, idx,
               luaL_typename(L, fn));
  int adopt = f && f->base.vt == &cfl_coro_class.core && f->state == CFL_FRESH && !f->owner;
  if (f && !adopt) cfl_check_claimable(L, f, NULL, fname, idx);
  /* every check is done: from here on, nothing raises but out-of-memory */
  char *name = named ? strdup(lua_tostring(L, top + 1)) : NULL;
  cfl_task *t = calloc(1, sizeof *t);
  if (!t || (named && !name)) {
    free(name);
    free(t);
    luaL_error(L, "%s: out of memory", fname);
    return NULL;
  }
  t->name = name;
  lua_State *co;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->anchors);
  int anchors = lua_gettop(L);
  if (adopt) {
    /* adopt the future's coroutine: it already holds the body and arguments */
    cfl_coro *src = (cfl_coro *)f;
    co = src->co;
    cfl_getuservalue(L, fn);
    t->root.ref = luaL_ref(L, anchors);
    lua_pushnil(L);
    cfl_setuservalue(L, fn);
    src->co = NULL;
    src->hdr.state = CFL_MOVED;
  } else {
    if (f) {
      /* the task's coroutine awaits the future */
      f->owner = &t->root;
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->await_fn);
      lua_pushvalue(L, fn);
      fn = lua_gettop(L) - 1;
      nargs = 1;
    }
    co = thread_new(L, rt);
    t->root.ref = luaL_ref(L, anchors);
    lua_checkstack(co, nargs + 1);
    for (int i = 0; i <= nargs; i++)
      lua_pushvalue(L, fn + i);
    lua_xmove(L, co, nargs + 1);
  }
  int ref = t->root.ref;
  coro_init(&t->root, co, ref);
  t->root.hdr.base.vt = &cfl_coro_class.core;
  t->root.hdr.rt = rt;
  t->root.hdr.owner = t;
  t->root.hdr.state = CFL_FRESH;
  t->root.task = t;
  cf_task_spawn(&t->base, &rt->ex, &task_hooks, &t->root.hdr.base);
  lua_settop(L, top);
  return t;
}

/* ---- join handles ---------------------------------------------------------- */

static cf_poll handle_poll(cf_future *base, cf_context *cx) {
  cfl_handle *h = (cfl_handle *)base;
  cfl_task *t = h->task;
  if (cf_task_is_complete(&t->base)) {
    h->hdr.state = (t->base.cancelled || t->root.hdr.state == CFL_FAILED) ? CFL_FAILED : CFL_READY;
    return CF_READY;
  }
  cf_waitlist_register(&t->base.joiners, cx);
  h->hdr.state = CFL_PENDING;
  return CF_PENDING;
}

static void handle_drop(cf_future *base) { (void)base; /* detach: the task runs on */ }

static int handle_take(lua_State *L, cfl_future *f) {
  return cfl_task_take(L, ((cfl_handle *)f)->task);
}

static void handle_describe(lua_State *L, cfl_future *f) {
  cfl_task *t = ((cfl_handle *)f)->task;
  if (!t) {
    lua_pushliteral(L, "JoinHandle");
    return;
  }
  lua_pushliteral(L, "JoinHandle of ");
  push_task_label(L, t);
  lua_concat(L, 2);
}

static void handle_gc(lua_State *L, cfl_future *f) {
  cfl_handle *h = (cfl_handle *)f;
  cfl_task *t = h->task;
  (void)L;
  if (!t) return;
  h->task = NULL;
  if (--t->nhandles == 0 && cf_task_is_complete(&t->base) && !t->blocking) {
    if (!t->base.cancelled && t->root.hdr.state == CFL_FAILED && !t->observed && t->root.co)
      report_task_error(t);
    cfl_task_release(t);
  }
  cf_task_unref(&t->base);
}

const cfl_class cfl_handle_class = {
    {handle_poll, handle_drop}, "JoinHandle", handle_take, handle_describe, handle_gc, 1};

void cfl_push_handle(lua_State *L, cf_runtime *rt, cfl_task *t) {
  cfl_handle *h = (cfl_handle *)cfl_new_future(L, rt, &cfl_handle_class, sizeof(cfl_handle));
  h->task = t;
  t->nhandles++;
  cf_task_ref(&t->base);
}

static cfl_handle *check_handle(lua_State *L, const char *fname) {
  cfl_future *f = cfl_tofuture(L, 1);
  if (!f || f->base.vt != &cfl_handle_class.core)
    luaL_error(L, "%s: argument #1 must be a JoinHandle (got %s)", fname,
               f ? cfl_class_of(f)->name : luaL_typename(L, 1));
  return (cfl_handle *)f;
}

static int h_abort(lua_State *L) {
  cf_task_abort(&check_handle(L, "abort")->task->base);
  return 0;
}

static int h_is_finished(lua_State *L) {
  lua_pushboolean(L, cf_task_is_complete(&check_handle(L, "is_finished")->task->base));
  return 1;
}

static int h_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_handle(L, "id")->task->base.id);
  return 1;
}

static int h_name(lua_State *L) {
  cfl_task *t = check_handle(L, "name")->task;
  if (t->name)
    lua_pushstring(L, t->name);
  else
    lua_pushnil(L);
  return 1;
}

/* ---- module functions -------------------------------------------------------- */

/* cf.spawn(f_or_fn, ...) -> JoinHandle */
static int l_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (rt->closing) return luaL_error(L, "spawn: the runtime is closed");
  cfl_task *t = cfl_spawn(L, rt, 1, "spawn");
  cfl_push_handle(L, rt, t);
  return 1;
}

static int async_call(lua_State *L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_insert(L, 1);
  cfl_new_coro(L, cfl_rt(L), 1, nargs);
  return 1;
}

/* cf.async(fn) -> afn; afn(...) returns a lazy future of fn(...) */
static int l_async(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_MT));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, async_call, 3);
  return 1;
}

/* cf.current() -> id, name of the running task, or nil outside tasks */
static int l_current(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cf_task *bt = rt->ex.current;
  if (!bt || !rt->current) return 0;
  cfl_task *t = (cfl_task *)bt;
  lua_pushinteger(L, (lua_Integer)bt->id);
  if (t->name)
    lua_pushstring(L, t->name);
  else
    lua_pushnil(L);
  return 2;
}

static const luaL_Reg funcs[] = {{"spawn", l_spawn},
                                 {"async", l_async},
                                 {"await", cfl_await},
                                 {"current", l_current},
                                 {NULL, NULL}};

static const luaL_Reg methods[] = {
    {"await", cfl_await}, {"abort", h_abort}, {"is_finished", h_is_finished},
    {"id", h_id},         {"name", h_name},   {NULL, NULL}};

void cfl_open_coro(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_getfield(L, -1, "await");
  rt->await_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->mt);
  lua_getfield(L, -1, "__index");
  cfl_setfuncs(L, rt, methods);
  lua_pop(L, 2);
}
