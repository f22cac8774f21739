/*
 * taskset.c — cf.task_set(): tasks whose results are taken in the order they
 * finish (tokio's JoinSet). set:spawn starts a member; set:join_next() is a
 * future of the next finished one; closing the set (close, <close>, __gc)
 * aborts the members still running.
 *
 * Ground rules
 * - The set holds a reference on each running member (cf_task_ref) and the
 *   member's ext points back (ext->set, linked by ext->scope_link: a task is
 *   in a scope or in a set, never both). The member's on_done moves it to
 *   the done queue and holds it (cfl_task_hold), so its results stay until a
 *   join_next takes them.
 * - Closing detaches every member (ext->set = NULL) and lets go of the
 *   finished ones: an error nobody took is then reported as unobserved, like
 *   a JoinHandle's. No task ever points at a freed set.
 * - The set keeps the JoinHandle spawn returned for each member (a table
 *   by task id), so join_next hands back that same object.
 * - A join_next future anchors its set (uservalue), so the set outlives it;
 *   one that took a member from the queue and is dropped before its results
 *   were taken puts it back at the front.
 */
#include "cfl.h"

#define TASKSET_MT "cfuture.TaskSet"

typedef struct cfl_taskset {
  cf_runtime *rt;
  cf_link live; /* running members (ext->scope_link) */
  cf_link done; /* finished members whose results were not taken */
  size_t nlive, ndone;
  cf_waitlist joiners; /* join_next futures waiting for a member to finish */
  int handles;         /* registry ref: task id -> the JoinHandle spawn returned */
  int closed;
} cfl_taskset;

static cfl_task *link_task(cf_link *l) {
  return cf__container_of(l, cfl_task_ext, scope_link)->task;
}

/* A member's on_done: from the running list to the done queue. */
static void member_done(cfl_task *t) {
  cfl_taskset *s = t->ext->set;
  t->ext->on_done = NULL;
  cf__list_remove(&t->ext->scope_link);
  s->nlive--;
  cfl_task_hold(t); /* its results, until a join_next takes them */
  cf__list_push_back(&s->done, &t->ext->scope_link);
  s->ndone++;
  cf_waitlist_wake_all(&s->joiners);
  cf_task_unref(&t->base); /* the running list's reference */
}

/* Let go of a finished member (its results were taken, or nobody will). */
static void forget_done(cfl_task *t) {
  t->ext->set = NULL;
  cfl_task_unhold(t);
}

static void set_close(cfl_taskset *s) {
  if (s->closed) return;
  s->closed = 1;
  cf_link *l;
  while ((l = cf__list_pop_front(&s->live))) {
    cfl_task *t = link_task(l);
    t->ext->set = NULL; /* it finishes cancelling alone */
    t->ext->on_done = NULL;
    cf_task_abort(&t->base);
    cf_task_unref(&t->base);
  }
  s->nlive = 0;
  while ((l = cf__list_pop_front(&s->done))) {
    s->ndone--;
    forget_done(link_task(l));
  }
  cf_waitlist_wake_all(&s->joiners);
  if (s->handles != LUA_NOREF && !s->rt->closed) { /* the handles go with the members */
    lua_State *S = s->rt->S;
    luaL_unref(S, LUA_REGISTRYINDEX, s->handles);
    s->handles = LUA_NOREF;
  }
}

static cfl_taskset *to_set(lua_State *L, int idx) { return luaL_testudata(L, idx, TASKSET_MT); }

static cfl_taskset *check_set(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  cfl_taskset *s = to_set(L, 1);
  if (!s) cfl_raise_self(L, 1, fname, "a task set");
  return s;
}

/* ---- join_next ------------------------------------------------------------------- */

typedef struct join_next_op {
  cfl_future hdr;
  cfl_taskset *s;
  cfl_task *got; /* taken from the done queue (held), results not yet handed out */
} join_next_op;

static cf_poll join_next_poll(cf_future *base, cf_context *cx) {
  join_next_op *op = (join_next_op *)base;
  cfl_taskset *s = op->s;
  if (cfl_polled_out(&op->hdr)) return CF_READY;
  op->hdr.state = CFL_ST_PENDING;
  cf_link *l = cf__list_pop_front(&s->done);
  if (l) {
    s->ndone--;
    op->got = link_task(l);
    return cfl_ready(&op->hdr);
  }
  if (s->nlive == 0 || s->closed) return cfl_ready(&op->hdr); /* nothing left: no value */
  cf_waitlist_register(&s->joiners, cx);
  return CF_PENDING;
}

static void join_next_drop(cf_future *base) {
  join_next_op *op = (join_next_op *)base;
  if (op->got) { /* ready but never taken: back to the front for the next join_next */
    cfl_task *t = op->got;
    op->got = NULL;
    if (op->s->closed) {
      forget_done(t);
    } else {
      cf__list_push_front(&op->s->done, &t->ext->scope_link);
      op->s->ndone++;
      cf_waitlist_wake_one(&op->s->joiners);
    }
  }
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

/* h, true, results... | h, false, error | nothing (the set is empty) */
static int join_next_take(lua_State *L, cfl_future *f) {
  join_next_op *op = (join_next_op *)f;
  f->state = CFL_ST_TAKEN;
  cfl_task *t = op->got;
  if (!t) return 0;
  op->got = NULL;
  luaL_checkstack(L, 4, "too many results");
  if (op->s->handles != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->s->handles);
    lua_rawgeti(L, -1, (lua_Integer)t->base.id);
    lua_pushnil(L);
    lua_rawseti(L, -3, (lua_Integer)t->base.id);
    lua_remove(L, -2);
  } else {
    lua_pushnil(L);
  }
  if (lua_isnil(L, -1)) { /* not kept (the set closed meanwhile): a new handle */
    lua_pop(L, 1);
    cfl_push_join_handle(L, f->rt, t);
  }
  int base = lua_gettop(L);
  int n = cfl_task_take(L, t);
  t->observed = 1; /* its error reached the caller */
  if (n < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, base + 1);
    n = 2;
  } else {
    luaL_checkstack(L, 1, "too many results");
    lua_pushboolean(L, 1);
    lua_insert(L, base + 1);
    n += 1;
  }
  forget_done(t);
  return n + 1;
}

static void join_next_describe(lua_State *L, cfl_future *f) {
  join_next_op *op = (join_next_op *)f;
  lua_pushfstring(L, "task_set:join_next (%d running, %d finished)", (int)op->s->nlive,
                  (int)op->s->ndone);
}

static const cfl_class join_next_class = {
    .vt = {.poll = join_next_poll, .drop = join_next_drop},
    .name = "task_set:join_next",
    .take = join_next_take,
    .describe = join_next_describe,
    .nuv = 1,
};

/* ---- methods ------------------------------------------------------------------------ */

/* set:spawn(fn_or_future, ...) -> JoinHandle of a member */
static int ts_spawn(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:spawn");
  cf_runtime *rt = s->rt;
  if (s->closed) return luaL_error(L, "task_set:spawn: the task set is closed");
  if (rt->closing) return luaL_error(L, "task_set:spawn: the runtime is closed");
  cfl_task *t = cfl_spawn(L, rt, 2, "task_set:spawn");
  cfl_task_ext *x = cfl_task_ext_of(t);
  if (!x) {
    cf_task_abort(&t->base);
    return luaL_error(L, "task_set:spawn: out of memory");
  }
  x->set = s;
  x->on_done = member_done;
  cf_task_ref(&t->base);
  cf__list_push_back(&s->live, &x->scope_link);
  s->nlive++;
  cfl_push_join_handle(L, rt, t);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handles);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)t->base.id);
  lua_pop(L, 1);
  return 1;
}

/* set:join_next() -> future of h, true, results... / h, false, error, or
 * nothing once the set is empty */
static int ts_join_next(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:join_next");
  join_next_op *op =
      (join_next_op *)cfl_new_future(L, s->rt, &join_next_class, sizeof(join_next_op));
  op->s = s;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* set:abort_all() -> how many were running: they finish as cancelled
 * (join_next gives h, false, a cancellation error) */
static int ts_abort_all(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:abort_all");
  for (cf_link *l = s->live.next; l != &s->live; l = l->next)
    cf_task_abort(&link_task(l)->base);
  lua_pushinteger(L, (lua_Integer)s->nlive);
  return 1;
}

/* set:len() / #set -> members not yet joined (running and finished) */
static int ts_len(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:len");
  lua_pushinteger(L, (lua_Integer)(s->nlive + s->ndone));
  return 1;
}

static int ts_running(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:running");
  lua_pushinteger(L, (lua_Integer)s->nlive);
  return 1;
}

static int ts_is_empty(lua_State *L) {
  cfl_taskset *s = check_set(L, "task_set:is_empty");
  lua_pushboolean(L, s->nlive + s->ndone == 0);
  return 1;
}

static int ts_close(lua_State *L) {
  set_close(check_set(L, "task_set:close"));
  return 0;
}

static int ts_is_closed(lua_State *L) {
  lua_pushboolean(L, check_set(L, "task_set:is_closed")->closed);
  return 1;
}

/* __gc: never raises; a foreign self is ignored. After the runtime closed,
 * every member has finished (and is in the done queue). */
static int ts_gc(lua_State *L) {
  cfl_taskset *s = to_set(L, 1);
  if (s) set_close(s);
  return 0;
}

static int ts_tostring(lua_State *L) {
  cfl_taskset *s = to_set(L, 1);
  if (!s) return cfl_raise_self(L, 1, "task_set:__tostring", "a task set");
  lua_pushfstring(L, "cfuture.TaskSet(%d running, %d finished%s): %p", (int)s->nlive, (int)s->ndone,
                  s->closed ? ", closed" : "", (void *)s);
  return 1;
}

/* cf.task_set() -> an empty set */
static int l_task_set(lua_State *L) {
  cf_runtime *rt = cfl_rt_named(L, "task_set");
  if (rt->closing) return luaL_error(L, "task_set: the runtime is closed");
  cfl_taskset *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->rt = rt;
  cf__list_init(&s->live);
  cf__list_init(&s->done);
  s->nlive = s->ndone = 0;
  cf_waitlist_init(&s->joiners);
  s->closed = 0;
  s->handles = LUA_NOREF;
  luaL_setmetatable(L, TASKSET_MT);
  lua_newtable(L);
  s->handles = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static const luaL_Reg methods[] = {
    {"spawn", ts_spawn}, {"join_next", ts_join_next}, {"abort_all", ts_abort_all},
    {"len", ts_len},     {"running", ts_running},     {"is_empty", ts_is_empty},
    {"close", ts_close}, {"is_closed", ts_is_closed}, {NULL, NULL}};
static const luaL_Reg meta[] = {{"__gc", ts_gc},
                                {"__close", ts_close},
                                {"__len", ts_len},
                                {"__tostring", ts_tostring},
                                {NULL, NULL}};
static const luaL_Reg funcs[] = {{"task_set", l_task_set}, {NULL, NULL}};

static void open_taskset(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  cfl_new_class(L, rt, TASKSET_MT, methods, meta);
  lua_setfield(L, -2, "TaskSet");
}

const cfl_module cfl_taskset_module = {.name = "taskset", .open = open_taskset};
