/*
 * combinators.c — join, join_all, try_join, select and timeout.
 *
 * Ground rules
 * - A combinator owns its children from construction (they are validated
 *   first, so a bad argument leaves every future untouched) and anchors them
 *   in its uservalue. Nothing is polled before the combinator is.
 * - Each child has its own waker (cf_group): a wake re-polls that child
 *   only. A poll handles the children that were queued when it began, so a
 *   child that wakes itself (yield_now) waits for the next poll.
 * - As soon as the outcome is known, the children still running are dropped
 *   (cancelled): select's losers, try_join's siblings, timeout's future.
 */
#include "cfl.h"

enum { K_JOIN, K_JOIN_ALL, K_TRY_JOIN, K_SELECT, K_TIMEOUT };

static const char *const kind_names[] = {"join", "join_all", "try_join", "select", "timeout"};

typedef struct cfl_multi {
  cfl_future hdr;
  cf_group *g;
  int n, remaining;
  int failed; /* child whose error is raised, or -1 */
  int winner; /* select/timeout: first child ready, or -1 */
  uint8_t kind;
  cfl_future *child[]; /* then uint8_t done[n] */
} cfl_multi;

#define DONE(m) ((uint8_t *)&(m)->child[(m)->n])

/* Stop polling: drop every child not done (or all of them with `all`). */
static void settle(cfl_multi *m, int all) {
  if (m->g) {
    cf_group_release(m->g);
    m->g = NULL;
  }
  for (int i = 0; i < m->n; i++)
    if (all || !DONE(m)[i]) cfl_drop(m->child[i]);
}

static cf_poll multi_poll(cf_future *base, cf_context *cx) {
  cfl_multi *m = (cfl_multi *)base;
  if (cfl_polled_out(&m->hdr)) return CF_READY;
  if (m->hdr.state == CFL_ST_FRESH) {
    m->hdr.state = CFL_ST_PENDING;
    if (m->n == 0) {
      return cfl_ready(&m->hdr);
    }
    m->g = cf_group_new((size_t)m->n);
    if (!m->g) {
      return cfl_failed(&m->hdr);
    }
  }
  cf_group *g = m->g;
  cf_group_set_parent(g, cx->waker);
  for (size_t budget = g->nqueued; budget > 0; budget--) {
    long i = cf_group_next_ready(g);
    if (i < 0) break;
    if (DONE(m)[i]) continue;
    cfl_future *c = m->child[i];
    cf_waker w;
    cf_context ccx = cf_group_context(g, (size_t)i, &w);
    if (cf_future_poll(&c->base, &ccx) == CF_PENDING) continue;
    cf_waiter_cancel(&g->child[i].waiter);
    DONE(m)[i] = 1;
    m->remaining--;
    int failed = c->state == CFL_ST_FAILED;
    switch (m->kind) {
    case K_SELECT:
    case K_TIMEOUT:
      m->winner = (int)i;
      settle(m, 0);
      return cfl_ready(&m->hdr);
    case K_TRY_JOIN:
      if (failed) {
        m->failed = (int)i;
        settle(m, 0);
        return cfl_ready(&m->hdr);
      }
      break;
    default:
      if (failed && (m->failed < 0 || i < m->failed)) m->failed = (int)i;
      break;
    }
    if (m->remaining == 0) {
      settle(m, 0);
      return cfl_ready(&m->hdr);
    }
  }
  return CF_PENDING;
}

static void multi_drop(cf_future *base) {
  cfl_multi *m = (cfl_multi *)base;
  if (m->hdr.state == CFL_ST_TAKEN || m->hdr.state == CFL_ST_CANCELLED) return;
  settle(m, 1);
  m->hdr.state = CFL_ST_CANCELLED;
}

/* Push child i's first result (nil if none). */
static int take_first(lua_State *L, cfl_future *c) {
  int n = cfl_take(L, c);
  if (n < 0) return -1;
  if (n == 0) lua_pushnil(L);
  if (n > 1) lua_pop(L, n - 1);
  return 1;
}

static int multi_take(lua_State *L, cfl_future *f) {
  cfl_multi *m = (cfl_multi *)f;
  int st = f->state, n;
  f->state = CFL_ST_TAKEN;
  if (st != CFL_ST_READY) {
    if (st == CFL_ST_FAILED) {
      lua_pushfstring(L, "%s: out of memory", kind_names[m->kind]);
      return -1;
    }
    cfl_push_cancelled(L, f->rt, "the combinator was cancelled");
    return -1;
  }
  if (m->failed >= 0) {
    n = cfl_take(L, m->child[m->failed]);
    settle(m, 1); /* other children's errors are reported as unobserved */
    return n;
  }
  switch (m->kind) {
  case K_SELECT: {
    luaL_checkstack(L, 1, NULL);
    lua_pushinteger(L, m->winner + 1);
    n = cfl_take(L, m->child[m->winner]);
    if (n < 0) {
      lua_remove(L, -2);
      return -1;
    }
    return n + 1;
  }
  case K_TIMEOUT:
    if (m->winner == 0) return cfl_take(L, m->child[0]);
    cfl_take(L, m->child[1]);
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  case K_JOIN_ALL:
    lua_createtable(L, m->n, 1);
    for (int i = 0; i < m->n; i++) {
      take_first(L, m->child[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, m->n);
    lua_setfield(L, -2, "n");
    return 1;
  default:
    luaL_checkstack(L, m->n, "too many results");
    for (int i = 0; i < m->n; i++)
      take_first(L, m->child[i]);
    return m->n;
  }
}

static void multi_describe(lua_State *L, cfl_future *f) {
  cfl_multi *m = (cfl_multi *)f;
  if (m->kind == K_TIMEOUT) {
    cfl_push_describe(L, m->child[0]);
    lua_pushfstring(L, "timeout of %s", lua_tostring(L, -1));
    lua_remove(L, -2);
  } else {
    lua_pushfstring(L, "%s (%d of %d pending)", kind_names[m->kind], m->remaining, m->n);
  }
}

static const cfl_class multi_class = {
    .vt = {.poll = multi_poll, .drop = multi_drop},
    .name = "combinator",
    .take = multi_take,
    .describe = multi_describe,
    .nuv = 1,
};

/* Build a combinator of the n values at first..first+n-1 (futures or
 * functions); `what` names an argument in errors ("argument", "element"). */
static cfl_multi *new_multi(lua_State *L, int kind, int first, int n, int argbase,
                            const char *what) {
  cf_runtime *rt = cfl_rt(L);
  const char *fname = kind_names[kind];
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    if (!cfl_tofuture(L, idx) && lua_type(L, idx) != LUA_TFUNCTION)
      luaL_error(L, "%s: %s #%d must be a future or a function (got %s)", fname, what, argbase + i,
                 luaL_typename(L, idx));
  }
  for (int i = 0; i < n; i++) {
    cfl_future *c = cfl_checkawaitable(L, first + i, fname);
    if (cfl_class_of(c)->own) c = cfl_class_of(c)->own(L, first + i);
    cfl_check_claimable(L, c, NULL, fname, argbase + i);
  }
  size_t size = sizeof(cfl_multi) + (size_t)n * (sizeof(cfl_future *) + 1);
  cfl_multi *m = (cfl_multi *)cfl_new_future(L, rt, &multi_class, size);
  m->n = m->remaining = n;
  m->failed = m->winner = -1;
  m->kind = (uint8_t)kind;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    cfl_future *c = cfl_tofuture(L, first + i);
    if (c->owner == m) {
      for (int j = 0; j < i; j++)
        if (m->child[j]->owner == m) m->child[j]->owner = NULL;
      m->n = 0;
      luaL_error(L, "%s: %s #%d is the same future as an earlier one", fname, what, argbase + i);
    }
    if (!cfl_class_of(c)->shared) c->owner = m;
    m->child[i] = c;
    DONE(m)[i] = 0;
    lua_pushvalue(L, first + i);
    lua_rawseti(L, -2, i + 1);
  }
  cfl_setuservalue(L, -2);
  return m;
}

static int variadic(lua_State *L, int kind, int min) {
  int n = lua_gettop(L);
  cfl_rt(L);
  if (n < min) return luaL_error(L, "%s: needs at least %d future(s)", kind_names[kind], min);
  new_multi(L, kind, 1, n, 1, "argument");
  return 1;
}

/* cf.join(f1, f2, ...) -> future of each one's first result, in order */
static int l_join(lua_State *L) { return variadic(L, K_JOIN, 0); }
/* cf.try_join(f1, ...) -> like join; the first error cancels the rest */
static int l_try_join(lua_State *L) { return variadic(L, K_TRY_JOIN, 0); }
/* cf.select(f1, ...) -> future of (index, results...) of the first to finish */
static int l_select(lua_State *L) { return variadic(L, K_SELECT, 1); }

/* cf.join_all(list) -> future of a list of first results (with field n) */
static int l_join_all(lua_State *L) {
  cfl_rt(L);
  if (!lua_istable(L, 1))
    return luaL_error(L, "join_all: argument #1 must be a table of futures (got %s)",
                      luaL_typename(L, 1));
  int n = (int)lua_rawlen(L, 1);
  luaL_checkstack(L, n + 4, "too many futures");
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, 1, i);
  new_multi(L, K_JOIN_ALL, 2, n, 1, "element");
  return 1;
}

/* cf.timeout(ms, f) -> future of f's results, or nil, "timeout" */
static int l_timeout(lua_State *L) {
  cfl_rt(L);
  double ms = cfl_check_ms(L, 1, "timeout");
  lua_settop(L, 2);
  if (!cfl_tofuture(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
    return luaL_error(L, "timeout: argument #2 must be a future or a function (got %s)",
                      luaL_typename(L, 2));
  cfl_new_sleep(L, cfl_rt(L), ms);
  new_multi(L, K_TIMEOUT, 2, 2, 2, "argument");
  return 1;
}

static const luaL_Reg funcs[] = {{"join", l_join},         {"join_all", l_join_all},
                                 {"try_join", l_try_join}, {"select", l_select},
                                 {"timeout", l_timeout},   {NULL, NULL}};

static void open_combinators(lua_State *L) { cfl_setfuncs(L, cf_runtime_of(L), funcs); }

const cfl_module cfl_combinators_module = {.name = "combinators", .open = open_combinators};
