/*
 * scope.c — structured concurrency: cf.scope(function(s, ...) ... end, ...).
 *
 * The scope future runs its body and every task the body starts with
 * s:spawn. It completes when the body and all those tasks have finished,
 * with the body's results. The first error (the body's or a child's)
 * cancels the body and every other child, then is raised once they are all
 * gone. Cancelling the scope cancels them all.
 *
 * Ground rules
 * - The scope holds a reference on each live child and the child points
 *   back; the child's complete hook unlinks it. Drop (and so __gc) unlinks
 *   every child first, so no task ever points at a freed scope.
 */
#include "cfl.h"

struct cfl_scope {
  cfl_future hdr;
  cfl_coro *body;   /* anchored in the uservalue */
  cf_link children; /* cfl_task_ext.scope_link */
  int nchildren;
  cfl_task *failed; /* child whose error is raised (referenced), or NULL */
  uint8_t body_done;
  cf_waker waker; /* wakes whoever polls the scope */
};

static void abort_children(cfl_scope *sc) {
  for (cf_link *l = sc->children.next; l != &sc->children; l = l->next)
    cf_task_abort(&cf__container_of(l, cfl_task_ext, scope_link)->task->base);
}

static void detach_children(cfl_scope *sc) {
  cf_link *l;
  int now = sc->hdr.rt->cancelling_now; /* inside abort_now: the children end before it returns */
  while ((l = cf__list_pop_front(&sc->children))) {
    cfl_task *t = cf__container_of(l, cfl_task_ext, scope_link)->task;
    t->ext->scope = NULL; /* it runs on alone: nothing to hear of its end */
    t->ext->on_done = NULL;
    sc->nchildren--;
    if (now)
      cf_task_cancel_now(&t->base);
    else
      cf_task_abort(&t->base);
    cf_task_unref(&t->base);
  }
  sc->nchildren = 0;
}

/* A child's on_done: it leaves the scope; its failure fails the scope. */
static void child_done(cfl_task *t) {
  cfl_scope *sc = t->ext->scope;
  cf__list_remove(&t->ext->scope_link);
  sc->nchildren--;
  t->ext->scope = NULL;
  t->ext->on_done = NULL;
  if (!t->base.cancelled && t->root.hdr.state == CFL_ST_FAILED) {
    t->observed = 1;
    if (!sc->failed && sc->body->hdr.state != CFL_ST_FAILED) {
      sc->failed = t;
      cfl_task_hold(t); /* keeps its error for scope_take */
      abort_children(sc);
    }
  }
  cf_waker_wake_by_ref(&sc->waker);
  cf_task_unref(&t->base);
}

static int failing(cfl_scope *sc) { return sc->failed || sc->body->hdr.state == CFL_ST_FAILED; }

static cf_poll scope_poll(cf_future *base, cf_context *cx) {
  cfl_scope *sc = (cfl_scope *)base;
  if (cfl_polled_out(&sc->hdr)) return CF_READY;
  sc->hdr.state = CFL_ST_PENDING;
  cf_waker_set(&sc->waker, cx->waker);
  if (!sc->body_done) {
    if (sc->failed) {
      cfl_drop(&sc->body->hdr);
      sc->body_done = 1;
    } else if (cf_future_poll(&sc->body->hdr.base, cx) == CF_READY) {
      sc->body_done = 1;
      if (sc->body->hdr.state == CFL_ST_FAILED) abort_children(sc);
    }
  }
  if (!sc->body_done || sc->nchildren > 0) return CF_PENDING;
  sc->hdr.state = failing(sc) ? CFL_ST_FAILED : CFL_ST_READY;
  cf_waker_drop(&sc->waker);
  return CF_READY;
}

static void scope_drop(cf_future *base) {
  cfl_scope *sc = (cfl_scope *)base;
  if (sc->hdr.state == CFL_ST_TAKEN || sc->hdr.state == CFL_ST_CANCELLED) return;
  detach_children(sc);
  cfl_drop(&sc->body->hdr);
  cf_waker_drop(&sc->waker);
  if (sc->failed) {
    cfl_task_unhold(sc->failed);
    sc->failed = NULL;
  }
  sc->hdr.state = CFL_ST_CANCELLED;
}

static int scope_take(lua_State *L, cfl_future *f) {
  cfl_scope *sc = (cfl_scope *)f;
  int n;
  if (f->state != CFL_ST_READY && f->state != CFL_ST_FAILED) {
    cfl_push_cancelled(L, f->rt, "the scope was cancelled");
    return -1;
  }
  if (sc->failed) {
    n = cfl_task_take(L, sc->failed);
    cfl_task_unhold(sc->failed);
    sc->failed = NULL;
    cfl_drop(&sc->body->hdr);
  } else {
    n = cfl_take(L, &sc->body->hdr);
  }
  f->state = CFL_ST_TAKEN;
  return n;
}

static void scope_describe(lua_State *L, cfl_future *f) {
  cfl_scope *sc = (cfl_scope *)f;
  lua_pushfstring(L, "scope (%d child task(s)%s)", sc->nchildren,
                  sc->body_done ? "" : ", body running");
}

static int s_spawn(lua_State *L);
static const luaL_Reg scope_methods[] = {{"spawn", s_spawn}, {NULL, NULL}};

static const cfl_class scope_class = {
    .vt = {.poll = scope_poll, .drop = scope_drop},
    .name = "scope",
    .type = "cfuture.Scope",
    .methods = scope_methods,
    .take = scope_take,
    .describe = scope_describe,
    .nuv = 1,
};

/* cf.scope(body, ...) -> future; body(s, ...) runs with s:spawn available */
static int l_scope(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (lua_type(L, 1) != LUA_TFUNCTION)
    return luaL_error(L, "scope: argument #1 must be a function (got %s)", luaL_typename(L, 1));
  int nargs = lua_gettop(L) - 1;
  cfl_scope *sc = (cfl_scope *)cfl_new_future(L, rt, &scope_class, sizeof(cfl_scope));
  cf__list_init(&sc->children);
  int scope = lua_gettop(L);
  /* body(s, ...) */
  luaL_checkstack(L, nargs + 3, "too many arguments");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, scope);
  for (int i = 0; i < nargs; i++)
    lua_pushvalue(L, 2 + i);
  sc->body = cfl_new_coro(L, rt, scope + 1, nargs + 1);
  sc->body->hdr.owner = sc;
  cfl_setuservalue(L, scope);
  lua_settop(L, scope);
  return 1;
}

/* s:spawn(fn_or_future, ...) -> JoinHandle of a task owned by the scope */
static int s_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_future *f = cfl_tofuture(L, 1);
  if (!f || f->base.vt != &scope_class.vt)
    return luaL_error(L, "spawn: s:spawn needs the scope object (call it with a colon)");
  cfl_scope *sc = (cfl_scope *)f;
  if (cfl_polled_out(&sc->hdr)) return luaL_error(L, "spawn: the scope has already finished");
  if (failing(sc)) return luaL_error(L, "spawn: the scope is being cancelled after an error");
  cfl_task *t = cfl_spawn(L, rt, 2, "spawn");
  cfl_task_ext *x = cfl_task_ext_of(t);
  if (!x) {
    cf_task_abort(&t->base);
    return luaL_error(L, "spawn: out of memory");
  }
  x->scope = sc;
  x->on_done = child_done;
  cf_task_ref(&t->base);
  cf__list_push_back(&sc->children, &x->scope_link);
  sc->nchildren++;
  cfl_push_join_handle(L, rt, t);
  return 1;
}

static const luaL_Reg funcs[] = {{"scope", l_scope}, {NULL, NULL}};
static void open_scope(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
}

const cfl_module cfl_scope_module = {.name = "scope", .open = open_scope};
