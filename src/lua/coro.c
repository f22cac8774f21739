/*
 * coro.c — Lua coroutines as futures, await and async functions.
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
 * - A coroutine future's thread is its uservalue; a task's is anchored in
 *   the runtime's anchor table (see task.c).
 * - Await through nested coroutines: a coroutine that cf.coroutine.resume
 *   is running (its set FORWARDING_KEY names it) awaits by yielding
 *   (NESTED_MARK, future) to that resumer, which awaits the future in its
 *   own coroutine (a task, or another nested one: the same step again) and
 *   resumes it with (CFL_AWAIT_OK, results...) or (CFL_AWAIT_ERR, error).
 */
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

/* ready awaits a task may complete in one poll before it must yield */
#define COOP_BUDGET 128

/* the status await is resumed with on 5.1 (see cfl_wrap_raising), and by
 * the resumer of a nested coroutine on both (see cfuture/coroutine.lua) */
static const char CFL_AWAIT_OK = 'o', CFL_AWAIT_ERR = 'e';

/* ---- coroutine cache --------------------------------------------------- */

/* Push an idle coroutine onto L and return it. */
lua_State *cfl_coroutine_new(lua_State *L, cf_runtime *rt) {
  if (rt->coro_cache.n > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->coro_cache.ref);
    lua_rawgeti(L, -1, rt->coro_cache.n);
    lua_pushnil(L);
    lua_rawseti(L, -3, rt->coro_cache.n--);
    lua_remove(L, -2);
    return lua_tothread(L, -1);
  }
  return lua_newthread(L);
}

/* ---- coroutine futures --------------------------------------------------- */

void cfl_coro_init(cfl_coro *c, cf_runtime *rt, lua_State *co, int ref, cf_waiter *waiter) {
  c->hdr.base.vt = &cfl_coro_class.vt;
  c->hdr.rt = rt;
  c->hdr.owner = NULL;
  c->hdr.state = CFL_ST_FRESH;
  c->co = co;
  c->ref = ref;
  c->nres = 0;
  c->raise = 0;
  c->running = 0;
  c->woke = 0;
  c->awaiting = NULL;
  c->waiter = waiter;
  cf_waiter_init(waiter);
  c->root = 0;
  c->staged = 0;
  c->in_await = 0;
  c->defers = LUA_NOREF;
  c->await_ref = LUA_NOREF;
}

/* Run c's cf.defer functions, last first, on the scratch thread in
 * protected mode; an error is reported like one nobody awaited. */
static void run_defers(cf_runtime *rt, cfl_coro *c) {
  lua_State *S = rt->S;
  int ref = c->defers;
  c->defers = LUA_NOREF;
  lua_checkstack(S, 3);
  lua_rawgeti(S, LUA_REGISTRYINDEX, ref);
  luaL_unref(S, LUA_REGISTRYINDEX, ref);
  for (int i = (int)lua_rawlen(S, -1); i >= 1; i--) {
    lua_rawgeti(S, -1, i);
    if (lua_pcall(S, 0, 0, 0) != LUA_OK) cfl_report(rt, S, cfl_coro_task(c));
  }
  lua_pop(S, 1);
}
#define RUN_DEFERS(rt, c)                                                                          \
  do {                                                                                             \
    if ((c)->defers != LUA_NOREF) run_defers((rt), (c));                                           \
  } while (0)

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
#if CFL_LUA54
  lua_settop(co, 1);
#endif
  /* 5.1: the dead frames stay below the error value, untouched: the
   * collector still reads them */
  c->hdr.state = CFL_ST_FAILED;
}

/* The future a coroutine is suspended on is also anchored in a slot of a
 * table of its own, not only by the coroutine's stack: coroutine.close, or a
 * resume from outside the scheduler, can clear that stack while the poller
 * still points at the future. The coroutine future takes the slot at its
 * first suspension and keeps it to its end; a suspension writes the future
 * there, its completion writes false (not nil: the slot stays in the
 * table's array part). await reaches the table as its closure's third
 * upvalue, C callers of cfl_await_own (and 5.1) through the registry. */
#define UP_AWAITED 3
static const char AWAITED_KEY = 'a'; /* registry: the table of awaited futures */

/* c->raise: what await does when the scheduler resumes it */
#define RAISE_ERROR 1   /* raise the error value on top */
#define RAISE_RELEASE 2 /* the await completed: clear the slot */

/* f is at index 1 of L */
static void anchor_awaited(lua_State *L, cfl_coro *c, int own) {
  int tbl = lua_upvalueindex(UP_AWAITED);
  if (own) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &AWAITED_KEY);
    tbl = lua_gettop(L);
  }
  lua_pushvalue(L, 1);
  if (c->await_ref == LUA_NOREF)
    c->await_ref = luaL_ref(L, tbl);
  else
    lua_rawseti(L, tbl, c->await_ref);
  if (own) lua_pop(L, 1);
}

/* The await completed: its slot lets go of the future. */
__attribute__((noinline)) static void release_awaited(lua_State *L, cfl_coro *c, int own) {
  lua_checkstack(L, 2);
  if (own) lua_rawgetp(L, LUA_REGISTRYINDEX, &AWAITED_KEY);
  lua_pushboolean(L, 0);
  lua_rawseti(L, own ? -2 : lua_upvalueindex(UP_AWAITED), c->await_ref);
  if (own) lua_pop(L, 1);
}

/* The coroutine future ends (ready, failed, cancelled): free its slot. */
static void free_await_ref(cf_runtime *rt, cfl_coro *c) {
  if (c->await_ref == LUA_NOREF) return;
  lua_State *S = rt->S;
  lua_checkstack(S, 2);
  lua_rawgetp(S, LUA_REGISTRYINDEX, &AWAITED_KEY);
  luaL_unref(S, -1, c->await_ref);
  lua_pop(S, 1);
  c->await_ref = LUA_NOREF;
}

/* c stops awaiting (cancelled or lost): its waiter leaves, the future loses
 * its anchor. */
static void unanchor_awaited(cf_runtime *rt, cfl_coro *c) {
  cf_waiter_cancel(c->waiter);
  c->awaiting = NULL;
  free_await_ref(rt, c);
}

/* co is running or resuming another coroutine right now, under a resume
 * that is not the scheduler's (a coroutine.resume from outside). */
static int co_busy(lua_State *co) {
  lua_Debug ar;
  return lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar);
}

/* A pending coroutine that is no longer suspended where the scheduler left
 * it: coroutine.close closed it, or a resume from outside ran it to its end
 * or to an error. Fail it (what it awaited is dropped); if it is running
 * under that other resume right now, leave it alone and look again later. */
__attribute__((noinline, cold)) static cf_poll coro_lost(cf_runtime *rt, cfl_coro *c,
                                                         cf_context *cx) {
  lua_State *co = c->co;
  if (co_busy(co)) {
    cf_waker_wake_by_ref(cx->waker);
    return CF_PENDING;
  }
  cfl_future *a = c->awaiting;
  unanchor_awaited(rt, c);
  if (a) cfl_drop(a);
  int st = lua_status(co);
  c->woke = c->raise = c->in_await = 0;
  c->nres = 0;
  if (st != LUA_OK) cfl_closethread(co, cfl_from(rt)); /* its <close> variables */
#if !CFL_LUA54
  if (st == LUA_OK) /* 5.1: dead frames stay below an error (see coro_fail) */
#endif
    lua_settop(co, 0);
  lua_checkstack(co, 1);
  lua_pushstring(co, st == LUA_OK ? "the task's coroutine was closed from outside "
                                    "(coroutine.close, or it was resumed from outside the "
                                    "scheduler and ran to its end)"
                                  : "the task's coroutine was resumed from outside the "
                                    "scheduler and died with an error");
  c->hdr.state = CFL_ST_FAILED;
  RUN_DEFERS(rt, c);
  return CF_READY;
}

static cf_poll coro_resume(cf_runtime *rt, cfl_coro *c, cf_context *cx, int nargs) {
  lua_State *co = c->co;
  cfl_coro *prev = rt->current;
  const cf_context *prevcx = rt->current_cx;
  int nres = 0;
  rt->current = c;
  rt->current_cx = cx;
  c->running = 1;
  int st = lua_resume(co, prev ? prev->co : rt->caller, nargs, &nres);
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
  free_await_ref(rt, c);
  if (st == LUA_OK) {
    c->nres = nres;
    c->hdr.state = CFL_ST_READY;
  } else {
    coro_fail(rt, c);
  }
  RUN_DEFERS(rt, c);
  return CF_READY;
}

static cf_poll coro_poll(cf_future *base, cf_context *cx) {
  cfl_coro *c = (cfl_coro *)base;
  cf_runtime *rt = c->hdr.rt;
  int nargs = 0;
  if (c->root) rt->coop = COOP_BUDGET; /* the executor polls the task */
  switch (c->hdr.state) {
  case CFL_ST_FRESH:
    c->hdr.state = CFL_ST_PENDING;
    nargs = lua_gettop(c->co) - 1;
    break;
  case CFL_ST_PENDING:
    if (c->running) return CF_PENDING; /* polled from inside its own body */
    if (lua_status(c->co) != LUA_YIELD) return coro_lost(rt, c, cx);
    if (c->awaiting) {
      cfl_future *a = c->awaiting;
      cf_context sub = {cx->waker, c->waiter};
      if (cf_future_poll(&a->base, &sub) == CF_PENDING) return CF_PENDING;
      cf_waiter_cancel(c->waiter);
      c->awaiting = NULL;
#if CFL_LUA54
      nargs = cfl_take(c->co, a);
      c->raise = RAISE_RELEASE; /* there, after the take (which may collect) */
      if (nargs < 0) {
        c->raise |= RAISE_ERROR;
        nargs = 1;
      }
#else
      /* await's Lua half (cfl_wrap_raising) raises or returns what follows */
      lua_pushlightuserdata(c->co, (void *)&CFL_AWAIT_OK);
      nargs = cfl_take(c->co, a);
      if (nargs < 0) {
        lua_pushlightuserdata(c->co, (void *)&CFL_AWAIT_ERR);
        lua_replace(c->co, -3);
        nargs = 1;
      }
      nargs++;
      release_awaited(c->co, c, 1); /* after the take, which may collect */
    } else if (c->nres) {           /* a budget yield: await's answer is on co's stack */
      nargs = c->nres;
      c->nres = 0;
    } else if (c->in_await) { /* yield_now */
      lua_pushlightuserdata(c->co, (void *)&CFL_AWAIT_OK);
      nargs = 1;
#endif
    }
    c->in_await = 0;
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
  case CFL_ST_FRESH:
    if (co) lua_settop(co, 0);
    c->hdr.state = CFL_ST_CANCELLED;
    break;
  case CFL_ST_PENDING:
    c->hdr.state = CFL_ST_CANCELLED;
    {
      cfl_future *a = c->awaiting;
      unanchor_awaited(rt, c);
      if (a) cfl_drop(a);
    }
    /* running: its own body dropped it (only when the runtime closes from
     * inside a task); busy: a resume from outside runs it now */
    if (c->running || rt->closing || co_busy(co)) break;
    /* run the coroutine's <close> handlers; an error there is reported */
    if (cfl_closethread(co, cfl_from(rt)) != LUA_OK) {
      lua_settop(co, 1);
      cfl_report(rt, co, cfl_coro_task(c));
    }
    lua_settop(co, 0);
    RUN_DEFERS(rt, c);
    break;
  case CFL_ST_READY:
    lua_settop(co, 0);
    c->hdr.state = CFL_ST_CANCELLED;
    break;
  case CFL_ST_FAILED:
    /* an error that nobody took */
    c->hdr.state = CFL_ST_CANCELLED;
    if (!rt->closing) cfl_report(rt, co, cfl_coro_task(c));
    lua_settop(co, 0);
    break;
  default: break;
  }
}

static int coro_take(lua_State *L, cfl_future *f) {
  cfl_coro *c = (cfl_coro *)f;
  int n;
  switch (f->state) {
  case CFL_ST_READY:
    n = c->nres;
    luaL_checkstack(L, n, "too many results");
    lua_xmove(c->co, L, n);
    f->state = CFL_ST_TAKEN;
    return n;
  case CFL_ST_FAILED:
    lua_checkstack(L, 1);
    lua_xmove(c->co, L, 1);
    f->state = CFL_ST_TAKEN;
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
    .vt = {.poll = coro_poll, .drop = coro_drop},
    .name = "async function",
    .take = coro_take,
    .describe = coro_describe,
    .nuv = 1,
};

/* A coroutine future as a userdata: a task's root uses the task's waiter. */
typedef struct cfl_coro_ud {
  cfl_coro c;
  cf_waiter waiter;
} cfl_coro_ud;

static int async_call(lua_State *L);

void cfl_unwrap_async(lua_State *L, int idx) {
  if (lua_tocfunction(L, idx) != async_call) return;
  idx = lua_absindex(L, idx);
  lua_getupvalue(L, idx, 3);
  lua_replace(L, idx);
}

cfl_coro *cfl_new_coro(lua_State *L, cf_runtime *rt, int fn, int nargs) {
  fn = lua_absindex(L, fn);
  cfl_unwrap_async(L, fn);
  luaL_checkstack(L, nargs + 3, "too many arguments");
  cfl_coro_ud *u = (cfl_coro_ud *)cfl_new_future(L, rt, &cfl_coro_class, sizeof(cfl_coro_ud));
  cfl_coro *c = &u->c;
  lua_State *co = cfl_coroutine_new(L, rt);
  cfl_setuservalue(L, -2);
  cfl_coro_init(c, rt, co, LUA_NOREF, &u->waiter);
  for (int i = 0; i <= nargs; i++)
    lua_pushvalue(L, fn + i);
  lua_checkstack(co, nargs + 1);
  lua_xmove(L, co, nargs + 1);
  return c;
}

/* ---- await ----------------------------------------------------------------- */

#if CFL_LUA54
__attribute__((always_inline)) static inline int await_resumed(lua_State *L, cf_runtime *rt,
                                                               int own) {
  cfl_coro *cur = rt->current;
  if (!cur || cur->co != L) /* what it awaited stays anchored until it is dropped */
    return luaL_error(L, "await: a task's coroutine was resumed from outside the scheduler");
  int raise = cur->raise;
  cur->raise = 0;
  if (raise & RAISE_RELEASE) release_awaited(L, cur, own);
  if (raise & RAISE_ERROR) return lua_error(L);
  return lua_gettop(L) - 1;
}
static int await_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return await_resumed(L, (cf_runtime *)ctx, 0);
}
/* the same for cfl_await_own, whose caller's closure has no slot table */
static int await_own_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return await_resumed(L, (cf_runtime *)ctx, 1);
}
#define AWAIT_YIELD(L, rt, own)                                                                    \
  lua_yieldk((L), 0, (lua_KContext)(rt), (own) ? await_own_k : await_k)
#define AWAIT_READY(L, n) (n)
#else
/* 5.1 has no continuations: await yields, the scheduler resumes it with
 * CFL_AWAIT_OK and the results or CFL_AWAIT_ERR and the error, and its Lua
 * half (cfl_wrap_raising) returns or raises them. A ready future answers
 * the same way without suspending. */
#define AWAIT_YIELD(L, rt, own) lua_yield((L), 0)
#define AWAIT_READY(L, n) cfl_results((L), (n))

int cfl_results(lua_State *L, int n) {
  lua_pushlightuserdata(L, (void *)&CFL_AWAIT_OK);
  lua_insert(L, -n - 1);
  return n + 1;
}

int cfl_raise(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&CFL_AWAIT_ERR);
  lua_insert(L, -2);
  return 2;
}

/* No pcall around raw: it would cost a third of an await. So an error the
 * C function raises itself (misuse, before any resume) is placed at this
 * chunk ("[cfuture]:N:") rather than at the user's line; the traceback
 * still shows the user's frame. */
static const char wrap_lua[] =
    "local OK, ERR, error = ...\n"
    "local function finish(status, ...)\n"
    "  if status == OK then return ... end\n"
    "  if status == ERR then error((...), 0) end\n"
    "  error(\"await: a task's coroutine was resumed from outside the scheduler\", 0)\n"
    "end\n"
    "return function(raw) return function(...) return finish(raw(...)) end end\n";

/* Replace the C function on top of the stack by its Lua half, which raises
 * what the C function returned as an error: LuaJIT 2.1.0-beta3 corrupts its
 * state when a C function raises after it resumed a coroutine. */
void cfl_wrap_raising_top(lua_State *L) {
  static const char MAKER_KEY = 'w';
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &MAKER_KEY) == LUA_TNIL) {
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, wrap_lua, sizeof wrap_lua - 1, "=[cfuture]")) lua_error(L);
    lua_pushlightuserdata(L, (void *)&CFL_AWAIT_OK);
    lua_pushlightuserdata(L, (void *)&CFL_AWAIT_ERR);
    lua_getglobal(L, "error");
    lua_call(L, 3, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &MAKER_KEY);
  }
  lua_insert(L, -2);
  lua_call(L, 1, 1);
}

/* The same for the C function t[name] (t at idx). */
void cfl_wrap_raising(lua_State *L, int idx, const char *name) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, name);
  cfl_wrap_raising_top(L);
  lua_setfield(L, idx, name);
}
#endif

static int not_yieldable(lua_State *L) {
  return luaL_error(L, "await: cannot suspend here: the call goes through a C function that "
                       "cannot yield (a metamethod, a table.sort comparator, a gsub callback...)");
}

/* ---- await through nested coroutines ------------------------------------ */

static const char FORWARDING_KEY = 'F'; /* registry: weak set of forwarding coroutines */
static const char NESTED_MARK = 'N';    /* what such a coroutine yields with its future */

static int forwarding(lua_State *L) {
  lua_checkstack(L, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &FORWARDING_KEY);
  lua_pushthread(L);
  int on = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return on;
}

#if CFL_LUA54
/* resumed by the resumer: [1] the future, [2] the status, [3...] results */
static int nested_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  const void *st = lua_touserdata(L, 2);
  if (st == &CFL_AWAIT_OK) return lua_gettop(L) - 2;
  if (st == &CFL_AWAIT_ERR) {
    lua_settop(L, 3);
    return lua_error(L);
  }
  return luaL_error(L, "await: the coroutine was resumed while it awaited (by a resume that "
                       "is not cf.coroutine.resume)");
}
#endif

/* The future (or yield token) at index 1 goes to the resumer. */
static int await_nested(lua_State *L) {
  if (!lua_isyieldable(L)) return not_yieldable(L);
  lua_settop(L, 1);
  lua_pushlightuserdata(L, (void *)&NESTED_MARK);
  lua_pushvalue(L, 1);
#if CFL_LUA54
  return lua_yieldk(L, 2, 0, nested_k);
#else
  return lua_yield(L, 2); /* await's Lua half takes the status */
#endif
}

static int await_outside(lua_State *L) {
  if (lua_pushthread(L))
    return luaL_error(L, "await: not inside a task (the main chunk is not a task: run the code "
                         "with cf.block_on or cf.spawn)");
  return luaL_error(L, "await: not inside a task (this coroutine was not started by cfuture: "
                       "await works in async functions, in functions run by spawn/block_on, "
                       "and in coroutines resumed by cf.coroutine.resume/wrap)");
}

/* The task has used its budget of ready awaits for this poll: await's
 * answer (n results, or the error value if n < 0) is on L's top; suspend
 * like yield_now, so the other ready tasks (and I/O) get their turn, and
 * give the answer when the scheduler comes back (tokio's coop budget). */
static int await_budget_yield(lua_State *L, cf_runtime *rt, cfl_coro *cur, int n) {
  cf_waker_wake_by_ref(rt->current_cx->waker);
  cur->woke = 1;
#if CFL_LUA54
  cur->raise = n < 0 ? RAISE_ERROR : 0; /* await_k raises the error value on top */
  cur->in_await = 1;
  return lua_yieldk(L, 0, (lua_KContext)rt, await_k);
#else
  /* the answer (status token first) waits on co's stack for the resume */
  int k = n < 0 ? cfl_raise(L) : cfl_results(L, n);
  cur->nres = k;
  return lua_yield(L, k);
#endif
}

/* Poll f (owned by cur, at index 1 of L) from cur's await: its results
 * now, or suspend. */
static int await_claimed(lua_State *L, cf_runtime *rt, cfl_coro *cur, cfl_future *f, int own) {
  if (!lua_isyieldable(L)) return not_yieldable(L);
  cf_context cx = {rt->current_cx->waker, cur->waiter};
  if (cf_future_poll(&f->base, &cx) == CF_READY) {
    cf_waiter_cancel(cur->waiter);
    int n = cfl_take(L, f);
    if (rt->coop <= 1) return await_budget_yield(L, rt, cur, n);
    rt->coop--;
    return n < 0 ? cfl_raise(L) : AWAIT_READY(L, n);
  }
  anchor_awaited(L, cur, own);
  cur->awaiting = f;
  cur->in_await = 1;
  return AWAIT_YIELD(L, rt, own);
}

int cfl_await(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_coro *cur = rt->current;
  if (!cur || cur->co != L) {
    if (!forwarding(L)) return await_outside(L);
    if (lua_touserdata(L, 1) != rt->yield_token_ptr) cfl_checkawaitable(L, 1, "await");
    return await_nested(L);
  }
  lua_settop(L, 1);
  void *p = lua_touserdata(L, 1);
  if (p == rt->yield_token_ptr) {
    /* yield_now: queue this task behind the others and suspend once */
    if (!lua_isyieldable(L)) return not_yieldable(L);
    cf_waker_wake_by_ref(rt->current_cx->waker);
    cur->woke = 1;
    cur->in_await = 1;
    return AWAIT_YIELD(L, rt, 0);
  }
  cfl_future *f = cfl_tofuture_p(L, 1, rt, p);
  if (!f) f = cfl_checkawaitable(L, 1, "await"); /* a function, or misuse */
  cfl_claim(L, f, cur, "await", 1);
  return await_claimed(L, rt, cur, f, 0);
}

int cfl_await_own(lua_State *L, cfl_future *f) {
  cf_runtime *rt = f->rt;
  cfl_coro *cur = rt->current;
  if (!cur || cur->co != L) return forwarding(L) ? await_nested(L) : await_outside(L);
  f->owner = cur;
  return await_claimed(L, rt, cur, f, 1);
}

/* cf.defer(fn): fn runs when the running async function ends: returns,
 * raises or is cancelled. The portable form of a <close> variable (LuaJIT
 * has none, and cannot close a suspended coroutine). */
static int l_defer(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_coro *cur = rt->current;
  if (!lua_isfunction(L, 1) && !luaL_getmetafield(L, 1, "__call"))
    return luaL_error(L, "defer: argument #1 must be a function (got %s)", luaL_typename(L, 1));
  if (!cur || cur->co != L)
    return luaL_error(L, "defer: not inside a task (defer belongs to the async function that "
                         "calls it)");
  lua_settop(L, 1);
  if (cur->defers == LUA_NOREF) {
    lua_createtable(L, 2, 0);
    cur->defers = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, cur->defers);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
  return 0;
}

/* ---- async functions ------------------------------------------------------ */

static int async_call(lua_State *L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_insert(L, 1);
  cfl_new_coro(L, cfl_rt(L), 1, nargs);
  return 1;
}

/* cf.async(fn) -> afn; afn(...) returns a lazy future of fn(...) */
static int l_async(lua_State *L) {
  cfl_rt(L);
  if (lua_type(L, 1) != LUA_TFUNCTION)
    return luaL_error(L, "async: argument #1 must be a function (got %s)", luaL_typename(L, 1));
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_MT));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, async_call, 3);
  return 1;
}

static const luaL_Reg funcs[] = {{"async", l_async}, {"defer", l_defer}, {NULL, NULL}};

static void open_coro(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  /* await: the module's upvalues and the table of awaited futures */
  lua_pushlightuserdata(L, rt);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.methods);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &AWAITED_KEY);
  lua_pushcclosure(L, cfl_await, UP_AWAITED);
#if !CFL_LUA54
  cfl_wrap_raising_top(L);
#endif
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "await");
  /* f:await() */
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.methods);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "await");
  lua_pop(L, 1);
  rt->ref.await_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  /* cf._coroutine: what cfuture/coroutine.lua's resumer works with */
  lua_createtable(L, 0, 4);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &FORWARDING_KEY);
  lua_setfield(L, -2, "forwarding");
  lua_pushlightuserdata(L, (void *)&NESTED_MARK);
  lua_setfield(L, -2, "mark");
  lua_pushlightuserdata(L, (void *)&CFL_AWAIT_OK);
  lua_setfield(L, -2, "ok");
  lua_pushlightuserdata(L, (void *)&CFL_AWAIT_ERR);
  lua_setfield(L, -2, "err");
  lua_setfield(L, -2, "_coroutine");
}

const cfl_module cfl_coro_module = {.name = "coro", .open = open_coro};
