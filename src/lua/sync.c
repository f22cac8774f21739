/*
 * sync.c — semaphores and notify: every wait a future. (Channels: channel.c;
 * mutex, rwlock, oneshot, watch, broadcast, barrier: lua/cfuture/sync.lua.)
 *
 * Ground rules
 * - Semaphore: permits are assigned to waiters in FIFO order by release;
 *   an acquire cancelled after its permits were assigned gives them back.
 * - Notify: notify_one promises one waiter (or stores one permit when none
 *   waits); notify_all wakes the current waiters through a generation count.
 * - A semaphore holds at most MAX_PERMITS permits in all (free and handed
 *   out), so no sum can wrap.
 */
#include <stdio.h>

#include "cfl.h"

/* ---- semaphores --------------------------------------------------------- */

/* Most permits a semaphore has in all, free and handed out (tokio has
 * MAX_PERMITS): 2^53, exact as a LuaJIT number. Releases only move permits
 * back, so no count can wrap. */
#define MAX_PERMITS ((lua_Integer)1 << 53)
#define SEM_MT "cfuture.Semaphore"
#define PERMIT_MT "cfuture.Permit"

typedef struct cfl_sem {
  lua_Integer permits; /* free */
  lua_Integer total;   /* free and handed out: the initial count plus add_permits */
  cf_link queue;       /* acquire ops in arrival order */
  uint8_t lock;        /* a mutex's or rwlock's: its permits are guards */
} cfl_sem;

typedef struct acq_op {
  cfl_future hdr;
  cfl_sem *sem; /* kept alive by the uservalue */
  lua_Integer n;
  cf_link link;
  cf_waker waker;
  uint8_t assigned;
} acq_op;

/* Hand permits to the waiters at the head of the queue, in order. */
static void sem_assign(cfl_sem *s) {
  while (!cf__list_empty(&s->queue)) {
    acq_op *op = cf__container_of(s->queue.next, acq_op, link);
    if (op->n > s->permits) break;
    s->permits -= op->n;
    op->assigned = 1;
    cf__list_remove(&op->link);
    cf_waker_wake(&op->waker);
  }
}

static void sem_release(cfl_sem *s, lua_Integer n) {
  s->permits += n; /* at most total: every permit handed out came from it */
  sem_assign(s);
}

static cf_poll acq_poll(cf_future *base, cf_context *cx) {
  acq_op *op = (acq_op *)base;
  cfl_sem *s = op->sem;
  if (op->assigned || cfl_polled_out(&op->hdr)) {
    if (!cfl_polled_out(&op->hdr)) op->hdr.state = CFL_ST_READY;
    return CF_READY;
  }
  if (op->hdr.state == CFL_ST_FRESH) {
    op->hdr.state = CFL_ST_PENDING;
    if (cf__list_empty(&s->queue) && s->permits >= op->n) {
      s->permits -= op->n;
      op->assigned = 1;
      return cfl_ready(&op->hdr);
    }
    cf__list_push_back(&s->queue, &op->link);
  }
  cf_waker_set(&op->waker, cx->waker);
  return CF_PENDING;
}

static void acq_drop(cf_future *base) {
  acq_op *op = (acq_op *)base;
  cf_waker_drop(&op->waker);
  if (cf__link_linked(&op->link)) {
    cf__list_remove(&op->link);
    sem_assign(op->sem); /* the next waiter may fit now */
  }
  if (op->assigned) { /* permits it never handed out go back */
    op->assigned = 0;
    sem_release(op->sem, op->n);
  }
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

/* Permit objects: what an acquire gives; releasing returns the permits. A
 * lock semaphore's permits are guards: the same object, "unlock" in its
 * messages. */
typedef struct cfl_permit {
  cfl_sem *sem; /* kept alive by the uservalue */
  lua_Integer n;
  uint8_t released; /* released in full: another release raises */
} cfl_permit;

/* Push a permit of n of s's permits (the caller sets its uservalue to s). */
static void push_permit(lua_State *L, cfl_sem *s, lua_Integer n) {
  cfl_permit *p = lua_newuserdatauv(L, sizeof *p, 1);
  p->sem = s;
  p->n = n;
  p->released = 0;
  luaL_setmetatable(L, PERMIT_MT);
}

static int acq_take(lua_State *L, cfl_future *f) {
  acq_op *op = (acq_op *)f;
  f->state = CFL_ST_TAKEN;
  if (!op->assigned) {
    cfl_push_cancelled(L, f->rt, "the acquire was cancelled");
    return -1;
  }
  op->assigned = 0;
  luaL_checkstack(L, 3, NULL);
  push_permit(L, op->sem, op->n);
  cfl_push_self(L, op);
  cfl_getuservalue(L, -1);
  lua_remove(L, -2);
  cfl_setuservalue(L, -2);
  return 1;
}

static void acq_describe(lua_State *L, cfl_future *f) {
  acq_op *op = (acq_op *)f;
  char buf[96];
  snprintf(buf, sizeof buf, "%s (%lld permit(s), %lld free)", op->sem->lock ? "lock" : "acquire",
           (long long)op->n, (long long)op->sem->permits);
  lua_pushstring(L, buf);
}

static const cfl_class acq_class = {
    .vt = {.poll = acq_poll, .drop = acq_drop},
    .name = "acquire",
    .take = acq_take,
    .describe = acq_describe,
    .nuv = 1,
};

static cfl_sem *check_sem(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  cfl_sem *s = luaL_testudata(L, 1, SEM_MT);
  if (!s) luaL_error(L, "%s: argument #1 must be a semaphore (got %s)", fname, cfl_what_is(L, 1));
  return s;
}

/* A count of permits: an integer from 0 to MAX_PERMITS, dflt when absent. */
static lua_Integer check_count(lua_State *L, int idx, const char *fname, lua_Integer dflt) {
  if (dflt >= 0 && lua_isnoneornil(L, idx)) return dflt;
  int isint;
  lua_Integer n = lua_tointegerx(L, idx, &isint);
  if (isint && n >= 0 && n <= MAX_PERMITS) return n; /* no message to build */
  char what[16];
  snprintf(what, sizeof what, "argument #%d", idx);
  return cfl_check_int_range(L, idx, fname, what, 0, MAX_PERMITS);
}

static int new_semaphore(lua_State *L, const char *fname, int lock) {
  cfl_rt_named(L, fname);
  lua_Integer n = check_count(L, 1, fname, -1);
  cfl_sem *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->permits = s->total = n;
  s->lock = (uint8_t)lock;
  cf__list_init(&s->queue);
  luaL_setmetatable(L, SEM_MT);
  return 1;
}

/* cf.semaphore(permits) -> semaphore */
static int l_semaphore(lua_State *L) { return new_semaphore(L, "semaphore", 0); }

/* The semaphore under a mutex or rwlock (sync.lua only): guards. */
static int l_lock_semaphore(lua_State *L) { return new_semaphore(L, "lock_semaphore", 1); }

/* sem:acquire([n = 1]) -> future of a permit (release it, or let <close> do) */
static int s_acquire(lua_State *L) {
  cfl_sem *s = check_sem(L, "acquire");
  lua_Integer n = check_count(L, 2, "acquire", 1);
  acq_op *op = (acq_op *)cfl_new_future(L, cfl_rt(L), &acq_class, sizeof(acq_op));
  op->sem = s;
  op->n = n;
  op->link.next = op->link.prev = NULL;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  cfl_register_self(L, -1);
  return 1;
}

/* sem:try_acquire([n = 1]) -> permit | nil */
static int s_try_acquire(lua_State *L) {
  cfl_sem *s = check_sem(L, "try_acquire");
  lua_Integer n = check_count(L, 2, "try_acquire", 1);
  if (!cf__list_empty(&s->queue) || s->permits < n) return 0;
  s->permits -= n;
  push_permit(L, s, n);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* sem:add_permits([n = 1]) */
static int s_add_permits(lua_State *L) {
  cfl_sem *s = check_sem(L, "add_permits");
  lua_Integer n = check_count(L, 2, "add_permits", 1);
  if (s->lock)
    return luaL_error(L, "add_permits: argument #1 is the semaphore of a mutex or rwlock, "
                         "which takes no permits");
  if (n > MAX_PERMITS - s->total) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "add_permits: cannot add %lld permit(s): the semaphore has %lld (free and held) "
             "and may have at most %lld",
             (long long)n, (long long)s->total, (long long)MAX_PERMITS);
    return luaL_error(L, "%s", msg);
  }
  s->total += n;
  sem_release(s, n);
  return 0;
}

static int s_available(lua_State *L) {
  lua_pushinteger(L, check_sem(L, "available")->permits);
  return 1;
}

static cfl_permit *check_permit(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  cfl_permit *p = luaL_testudata(L, 1, PERMIT_MT);
  if (!p) luaL_error(L, "%s: argument #1 must be a permit (got %s)", fname, cfl_what_is(L, 1));
  return p;
}

/* Give back k of p's permits (all when k < 0). */
static void permit_release(cfl_permit *p, lua_Integer k) {
  if (k < 0) k = p->n;
  p->n -= k;
  if (p->n == 0) p->released = 1;
  sem_release(p->sem, k);
}

/* permit:release([k = all]), guard:unlock() */
static int permit_method(lua_State *L, const char *fname) {
  cfl_permit *p = check_permit(L, fname);
  const char *verb = fname; /* the method called: release or unlock */
  if (p->released)
    return luaL_error(L, "%s: the %s was already %s", verb, p->sem->lock ? "guard" : "permit",
                      p->sem->lock ? "unlocked" : "released");
  lua_Integer k = check_count(L, 2, verb, p->n);
  if (k > p->n) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: cannot release %lld permit(s): only %lld held", verb,
             (long long)k, (long long)p->n);
    return luaL_error(L, "%s", msg);
  }
  permit_release(p, k);
  return 0;
}

static int p_release(lua_State *L) { return permit_method(L, "release"); }
static int p_unlock(lua_State *L) {
  lua_settop(L, 1); /* unlock() gives back everything held: no count */
  return permit_method(L, "unlock");
}

static int p_count(lua_State *L) {
  lua_pushinteger(L, check_permit(L, "count")->n);
  return 1;
}

/* __close and __gc give back what is left, quietly; a foreign value or a
 * closed runtime (nothing waits any more) makes them do nothing. */
static int p_finish(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  cfl_permit *p = luaL_testudata(L, 1, PERMIT_MT);
  if (p && !rt->closed && !p->released) permit_release(p, -1);
  return 0;
}

/* ---- notify --------------------------------------------------------------- */

typedef struct cfl_notify {
  cf_waitlist q;
  uint64_t gen; /* notify_all count */
  uint8_t permit;
} cfl_notify;

typedef struct wait_op {
  cfl_future hdr;
  cfl_notify *n; /* kept alive by the uservalue */
  cf_waiter waiter;
  uint64_t gen;
  uint8_t holds; /* ready by a notify_one or the stored permit, not yet taken */
} wait_op;

static cf_poll wait_poll(cf_future *base, cf_context *cx) {
  wait_op *op = (wait_op *)base;
  cfl_notify *n = op->n;
  if (cfl_polled_out(&op->hdr)) return CF_READY;
  int ready = 0;
  if (op->waiter.notified_by == &n->q) {
    cf_waiter_consume(&op->waiter);
    ready = op->holds = 1;
  } else if (op->hdr.state == CFL_ST_PENDING && n->gen != op->gen) {
    ready = 1;
  } else if (op->hdr.state == CFL_ST_FRESH && n->permit) {
    n->permit = 0;
    ready = op->holds = 1;
  }
  if (ready) {
    cf_waiter_cancel(&op->waiter);
    return cfl_ready(&op->hdr);
  }
  if (op->hdr.state == CFL_ST_FRESH) op->gen = n->gen;
  op->hdr.state = CFL_ST_PENDING;
  cf_context own = {cx->waker, &op->waiter};
  cf_waitlist_register(&n->q, &own);
  return CF_PENDING;
}

static void wait_drop(cf_future *base) {
  wait_op *op = (wait_op *)base;
  if (op->waiter.notified_by || op->holds) { /* a notify_one it never used: keep it */
    cf_waiter_consume(&op->waiter);
    op->holds = 0;
    if (!cf_waitlist_notify_one(&op->n->q)) op->n->permit = 1;
  }
  cf_waiter_cancel(&op->waiter);
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

static int wait_take(lua_State *L, cfl_future *f) {
  ((wait_op *)f)->holds = 0;
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st != CFL_ST_READY) {
    cfl_push_cancelled(L, f->rt, "the wait was cancelled");
    return -1;
  }
  return 0;
}

static const cfl_class wait_class = {
    .vt = {.poll = wait_poll, .drop = wait_drop},
    .name = "notify wait",
    .take = wait_take,
    .nuv = 1,
};

static cfl_notify *check_notify(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  cfl_notify *n = luaL_testudata(L, 1, "cfuture.Notify");
  if (!n) luaL_error(L, "%s: argument #1 must be a notify (got %s)", fname, cfl_what_is(L, 1));
  return n;
}

static int l_notify(lua_State *L) {
  cfl_rt_named(L, "notify");
  cfl_notify *n = lua_newuserdatauv(L, sizeof *n, 0);
  cf_waitlist_init(&n->q);
  n->gen = 0;
  n->permit = 0;
  luaL_setmetatable(L, "cfuture.Notify");
  return 1;
}

/* n:wait() -> future ready at the next notification */
static int n_wait(lua_State *L) {
  check_notify(L, "wait");
  wait_op *op = (wait_op *)cfl_new_future(L, cfl_rt(L), &wait_class, sizeof(wait_op));
  op->n = lua_touserdata(L, 1);
  cf_waiter_init(&op->waiter);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* n:notify_one(): wake one waiter, or let the next wait complete at once */
static int n_notify_one(lua_State *L) {
  cfl_notify *n = check_notify(L, "notify_one");
  if (!cf_waitlist_notify_one(&n->q)) n->permit = 1;
  return 0;
}

/* n:notify_all() -> number woken: wake every current waiter */
static int n_notify_all(lua_State *L) {
  cfl_notify *n = check_notify(L, "notify_all");
  n->gen++;
  lua_pushinteger(L, (lua_Integer)cf_waitlist_wake_all(&n->q));
  return 1;
}

/* ---- what sync.lua builds on ------------------------------------------------ */

/* _sync.closed() -> has the runtime closed? (Lua-side methods check it) */
static int l_closed(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushboolean(L, rt->closed);
  return 1;
}

/* ---- registration ----------------------------------------------------------- */

static const luaL_Reg funcs[] = {{"semaphore", l_semaphore}, {"notify", l_notify}, {NULL, NULL}};

/* cf._sync: taken (and removed from the module) by lua/cfuture/sync.lua */
static const luaL_Reg internal_funcs[] = {
    {"lock_semaphore", l_lock_semaphore}, {"closed", l_closed}, {NULL, NULL}};

static const luaL_Reg sem_methods[] = {{"acquire", s_acquire},
                                       {"try_acquire", s_try_acquire},
                                       {"add_permits", s_add_permits},
                                       {"available", s_available},
                                       {NULL, NULL}};

static const luaL_Reg notify_methods[] = {
    {"wait", n_wait}, {"notify_one", n_notify_one}, {"notify_all", n_notify_all}, {NULL, NULL}};

static const luaL_Reg permit_methods[] = {
    {"release", p_release}, {"unlock", p_unlock}, {"count", p_count}, {NULL, NULL}};

/* <close> and __gc give back what is left */
static const luaL_Reg permit_meta[] = {{"__close", p_finish}, {"__gc", p_finish}, {NULL, NULL}};

static void open_sync(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_newtable(L);
  cfl_setfuncs(L, rt, internal_funcs);
  lua_setfield(L, -2, "_sync");
  cfl_new_class(L, rt, SEM_MT, sem_methods, NULL);
  cfl_new_class(L, rt, "cfuture.Notify", notify_methods, NULL);
  /* permits: release / unlock, <close> and __gc release what is left */
  cfl_new_class(L, rt, PERMIT_MT, permit_methods, permit_meta);
  lua_pop(L, 3);
}

const cfl_module cfl_sync_module = {.name = "sync", .open = open_sync};
