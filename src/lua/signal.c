/*
 * signal.c — cf.signal: OS signals as futures, and signal names.
 *
 * cf.signal.wait(sig) completes at the next delivery after its first poll;
 * cf.signal.listen(sig) keeps watching and counts deliveries, so none is
 * lost between two recv() calls.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../uv/process.h"
#include "cfl.h"

#define LISTENER_MT "cfuture.SignalListener"

/* The signal's name, or its number when it has none (a real-time signal). */
static void push_signame(lua_State *L, int num) {
  const char *name = cfl_signame(num);
  if (name)
    lua_pushstring(L, name);
  else
    lua_pushinteger(L, num);
}

/* ---- waiting ------------------------------------------------------------------ */

/* A watcher keeps the loop alive (holds it, so block_on waits instead of
 * reporting a deadlock) only while some future is pending on it: an idle
 * listener is like tokio's or Node's unreferenced handle. Each pending
 * future counts once; the libuv handle is referenced while the count is
 * not 0. A cf.signal.wait owns its watcher and counts alone. */
typedef struct cfl_listener {
  cfu_signal *s;
} cfl_listener;

typedef struct cfl_sigwait {
  cfl_future hdr;
  cfu_signal *s;   /* started on first poll (wait), or the listener's (recv) */
  cfl_listener *l; /* the listener (anchored in uservalue 1), NULL for a wait */
  int signum;
  int err;
  unsigned got;
  uint8_t once;    /* a cf.signal.wait: owns its watcher */
  uint8_t holding; /* counted as pending on s */
} cfl_sigwait;

static void hold(cfl_sigwait *w) { cfu_handle_wait(&w->s->base, &w->holding, 1); }
static void unhold(cfl_sigwait *w) { cfu_handle_wait(&w->s->base, &w->holding, 0); }

static cf_poll sigwait_poll(cf_future *base, cf_context *cx) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  if (cfl_polled_out(&w->hdr)) return CF_READY;
  if (w->hdr.state == CFL_ST_FRESH && w->once) {
    w->s = cfu_signal_new();
    int r = w->s ? cfu_signal_start(w->hdr.rt->loop, w->s, w->signum) : UV_ENOMEM;
    if (r != 0) {
      w->err = r;
      return cfl_ready(&w->hdr);
    }
    cfu_handle_started(&w->s->base); /* held below while pending */
    cfu_handle_track(&w->hdr.rt->io, &w->s->base);
  }
  w->hdr.state = CFL_ST_PENDING;
  w->got = cfu_signal_take(w->s);
  if (w->got == 0 && w->s->base.closing) {
    w->err = UV_ECANCELED;
  } else if (w->got == 0) {
    hold(w);
    cf_waitlist_register(&w->s->waiters, cx);
    return CF_PENDING;
  }
  unhold(w);
  return cfl_ready(&w->hdr);
}

static void sigwait_release(cfl_future *base) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  if (w->s) {
    unhold(w);
    cfu_signal *s = w->s;
    w->s = NULL;
    cfu_handle_unref(&s->base);
  }
}

static int sigwait_take(lua_State *L, cfl_future *base) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  w->hdr.state = CFL_ST_TAKEN;
  sigwait_release(&w->hdr);
  if (w->err) {
    const char *name = cfl_signame(w->signum);
    if (name) return cfl_push_ioerr(L, w->err, name);
    char what[32];
    snprintf(what, sizeof what, "signal %d", w->signum);
    return cfl_push_ioerr(L, w->err, what);
  }
  push_signame(L, w->signum);
  lua_pushinteger(L, (lua_Integer)w->got);
  return 2;
}

static void sigwait_describe(lua_State *L, cfl_future *base) {
  int num = ((cfl_sigwait *)base)->signum;
  const char *n = cfl_signame(num);
  if (n)
    lua_pushfstring(L, "signal %s", n);
  else
    lua_pushfstring(L, "signal %d", num);
}

static const cfl_class sigwait_class = {
    .vt = {.poll = sigwait_poll, .drop = cfl_drop_released},
    .release = sigwait_release,
    .name = "signal",
    .take = sigwait_take,
    .describe = sigwait_describe,
    .nuv = 1,
};

/* cf.signal.wait(sig) -> future of the signal's name when it is delivered */
static int l_wait(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int signum = cfl_check_watchable(L, 1, "signal.wait");
  cfl_sigwait *w = (cfl_sigwait *)cfl_new_future(L, rt, &sigwait_class, sizeof *w);
  w->signum = signum;
  w->once = 1;
  return 1;
}

/* ---- listeners ------------------------------------------------------------------ */

/* cf.signal.listen(sig) -> listener; listener:recv() -> future of name, count */
static int l_listen(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int signum = cfl_check_watchable(L, 1, "signal.listen");
  cfl_listener *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->s = NULL;
  luaL_setmetatable(L, LISTENER_MT);
  cfu_signal *s = cfu_signal_new();
  if (!s) return luaL_error(L, "signal.listen: out of memory");
  int r = cfu_signal_start(rt->loop, s, signum);
  if (r != 0) {
    cfu_handle_unref(&s->base);
    lua_pop(L, 1);
    char what[48];
    snprintf(what, sizeof what, "signal.listen %d", signum);
    const char *name = cfl_signame(signum);
    return cfl_push_ioerr(L, r, name ? name : what);
  }
  cfu_handle_started(&s->base); /* held while a recv is pending */
  cfu_handle_track(&rt->io, &s->base);
  o->s = s;
  return 1;
}

/* The listener at index 1, or NULL if it is something else. */
static cfl_listener *to_listener(lua_State *L) { return luaL_testudata(L, 1, LISTENER_MT); }

static cfl_listener *check_listener(lua_State *L, const char *fname) {
  cfl_listener *o = to_listener(L);
  if (!o) cfl_raise_self(L, 1, fname, "a signal listener");
  if (!o->s || o->s->base.closing) luaL_error(L, "%s: the listener is closed", fname);
  return o;
}

static int li_recv(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_listener *o = check_listener(L, "listener:recv");
  cfl_sigwait *w = (cfl_sigwait *)cfl_new_future(L, rt, &sigwait_class, sizeof *w);
  w->s = o->s;
  cfu_handle_ref(&o->s->base);
  w->l = o; /* anchored below: it outlives w */
  w->signum = o->s->signum;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* Stop watching: pending receives end with ECANCELED. */
static void listener_close(cfl_listener *o) {
  cfu_signal *s = o->s;
  o->s = NULL;
  if (s) cfu_handle_let_go(&s->base);
}

/* listener:close() */
static int li_close(lua_State *L) {
  (void)cfl_rt(L);
  cfl_listener *o = to_listener(L);
  if (!o)
    return luaL_error(L, "listener:close: argument #1 must be a signal listener (got %s)",
                      luaL_typename(L, 1));
  listener_close(o);
  return 0;
}

/* __close: also after the runtime closed (its handles are closed already,
 * and the watcher's memory lives while referenced) */
static int li_mclose(lua_State *L) {
  cfl_listener *o = to_listener(L);
  if (!o)
    return luaL_error(L, "listener:__close: argument #1 must be a signal listener (got %s)",
                      luaL_typename(L, 1));
  listener_close(o);
  return 0;
}

/* __gc: a foreign value (getmetatable(l).__gc(x)) is left alone */
static int li_gc(lua_State *L) {
  cfl_listener *o = to_listener(L);
  if (o) listener_close(o);
  return 0;
}

static int li_tostring(lua_State *L) {
  cfl_listener *o = to_listener(L);
  if (!o)
    return luaL_error(L, "listener:__tostring: argument #1 must be a signal listener (got %s)",
                      luaL_typename(L, 1));
  if (!o->s) {
    lua_pushliteral(L, "cfuture.SignalListener(closed)");
  } else {
    const char *n = cfl_signame(o->s->signum);
    if (n)
      lua_pushfstring(L, "cfuture.SignalListener(%s)", n);
    else
      lua_pushfstring(L, "cfuture.SignalListener(%d)", o->s->signum);
  }
  return 1;
}

/* ---- module ------------------------------------------------------------------------ */

/* cf.signal.name(num) -> "SIGTERM" */
static int l_name(lua_State *L) {
  (void)cfl_rt(L);
  int isint = 0;
  lua_Integer n = lua_tointegerx(L, 1, &isint);
  if (lua_type(L, 1) != LUA_TNUMBER || !isint || n < 1 || n >= NSIG)
    return luaL_error(L, "signal.name: argument #1 must be a signal number from 1 to %d (got %s)",
                      NSIG - 1, cfl_got(L, 1));
  lua_pushstring(L, cfl_signame((int)n)); /* nil for one without a name */
  return 1;
}

/* cf.signal.number(name) -> 15 */
static int l_number(lua_State *L) {
  (void)cfl_rt(L);
  lua_pushinteger(L, cfl_checksignal(L, 1, "signal.number", 0));
  return 1;
}

static const luaL_Reg funcs[] = {
    {"wait", l_wait}, {"listen", l_listen}, {"name", l_name}, {"number", l_number}, {NULL, NULL}};
static const luaL_Reg listener_methods[] = {{"recv", li_recv}, {"close", li_close}, {NULL, NULL}};

static void open_signal(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_setfield(L, -2, "signal");
  static const luaL_Reg meta[] = {
      {"__gc", li_gc}, {"__close", li_mclose}, {"__tostring", li_tostring}, {NULL, NULL}};
  cfl_new_class(L, rt, LISTENER_MT, listener_methods, meta);
  lua_pop(L, 1);
}

const cfl_module cfl_signal_module = {.name = "signal", .open = open_signal};
