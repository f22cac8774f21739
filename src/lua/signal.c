/*
 * signal.c — cf.signal: OS signals as futures, and signal names.
 *
 * cf.signal.wait(sig) completes at the next delivery after its first poll;
 * cf.signal.listen(sig) keeps watching and counts deliveries, so none is
 * lost between two recv() calls.
 */
#include <signal.h>
#include <string.h>

#include "../uv/process.h"
#include "cfl.h"

#define LISTENER_MT "cfuture.SignalListener"

static const struct {
  const char *name;
  int num;
} signals[] = {{"SIGHUP", SIGHUP},       {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
               {"SIGILL", SIGILL},       {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
               {"SIGBUS", SIGBUS},       {"SIGFPE", SIGFPE},   {"SIGKILL", SIGKILL},
               {"SIGUSR1", SIGUSR1},     {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
               {"SIGPIPE", SIGPIPE},     {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
               {"SIGCHLD", SIGCHLD},     {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
               {"SIGTSTP", SIGTSTP},     {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
               {"SIGURG", SIGURG},       {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
               {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
               {"SIGIO", SIGIO},         {"SIGSYS", SIGSYS},   {NULL, 0}};

const char *cfl_signame(int num) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].num == num) return signals[i].name;
  return NULL;
}

int cfl_checksignal(lua_State *L, int idx, const char *fname, int def) {
  if (def && lua_isnoneornil(L, idx)) return def;
  if (lua_isinteger(L, idx)) {
    lua_Integer n = lua_tointeger(L, idx);
    if (n >= 0 && n < 65) return (int)n;
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    for (int i = 0; signals[i].name; i++)
      if (!strcmp(s, signals[i].name) || !strcmp(s, signals[i].name + 3)) return signals[i].num;
  }
  return luaL_error(
      L, "%s: argument #%d must be a signal name such as \"SIGTERM\" or a number (got %s)", fname,
      idx, luaL_tolstring(L, idx, NULL));
}

/* ---- waiting ------------------------------------------------------------------ */

typedef struct cfl_sigwait {
  cfl_future hdr;
  cfu_signal *s; /* started on first poll (wait), or the listener's (recv) */
  int signum;
  int err;
  unsigned got;
  uint8_t once; /* a cf.signal.wait: owns its watcher */
} cfl_sigwait;

static cf_poll sigwait_poll(cf_future *base, cf_context *cx) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  if (w->hdr.state != CFL_FRESH && w->hdr.state != CFL_PENDING) return CF_READY;
  if (w->hdr.state == CFL_FRESH && w->once) {
    w->s = cfu_signal_new();
    int r = w->s ? cfu_signal_start(w->hdr.rt->loop, w->s, w->signum) : UV_ENOMEM;
    if (r != 0) {
      w->err = r;
      w->hdr.state = CFL_READY;
      return CF_READY;
    }
    cfu_handle_track(&w->hdr.rt->io, &w->s->base);
  }
  w->hdr.state = CFL_PENDING;
  if (w->s->pending > 0) {
    w->got = w->s->pending;
    w->s->pending = 0;
  } else if (w->s->base.closing) {
    w->err = UV_ECANCELED;
  } else {
    cf_waitlist_register(&w->s->waiters, cx);
    return CF_PENDING;
  }
  w->hdr.state = CFL_READY;
  return CF_READY;
}

static void sigwait_release(cfl_sigwait *w) {
  if (w->s) {
    cfu_signal *s = w->s;
    w->s = NULL;
    cfu_handle_unref(&s->base);
  }
}

static void sigwait_drop(cf_future *base) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  sigwait_release(w);
  cfl_mark_dropped(&w->hdr);
}

static int sigwait_take(lua_State *L, cfl_future *base) {
  cfl_sigwait *w = (cfl_sigwait *)base;
  w->hdr.state = CFL_TAKEN;
  sigwait_release(w);
  if (w->err) return cfl_push_ioerr(L, w->err, cfl_signame(w->signum));
  lua_pushstring(L, cfl_signame(w->signum));
  lua_pushinteger(L, (lua_Integer)w->got);
  return 2;
}

static void sigwait_describe(lua_State *L, cfl_future *base) {
  const char *n = cfl_signame(((cfl_sigwait *)base)->signum);
  lua_pushfstring(L, "signal %s", n ? n : "?");
}

static const cfl_class sigwait_class = {{sigwait_poll, sigwait_drop},
                                        "signal",
                                        sigwait_take,
                                        sigwait_describe,
                                        NULL,
                                        0,
                                        1,
                                        NULL,
                                        NULL,
                                        NULL};

/* cf.signal.wait(sig) -> future of the signal's name when it is delivered */
static int l_wait(lua_State *L) {
  int signum = cfl_checksignal(L, 1, "signal.wait", 0);
  cfl_sigwait *w = (cfl_sigwait *)cfl_new_future(L, cfl_rt(L), &sigwait_class, sizeof *w);
  w->signum = signum;
  w->once = 1;
  return 1;
}

/* ---- listeners ------------------------------------------------------------------ */

typedef struct cfl_listener {
  cfu_signal *s;
} cfl_listener;

/* cf.signal.listen(sig) -> listener; listener:recv() -> future of name, count */
static int l_listen(lua_State *L) {
  int signum = cfl_checksignal(L, 1, "signal.listen", 0);
  cf_runtime *rt = cfl_rt(L);
  cfl_listener *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->s = NULL;
  luaL_setmetatable(L, LISTENER_MT);
  cfu_signal *s = cfu_signal_new();
  if (!s) return luaL_error(L, "signal.listen: out of memory");
  int r = cfu_signal_start(rt->loop, s, signum);
  if (r != 0) {
    cfu_handle_unref(&s->base);
    return cfl_push_ioerr(L, r, cfl_signame(signum));
  }
  cfu_handle_track(&rt->io, &s->base);
  o->s = s;
  return 1;
}

static cfl_listener *check_listener(lua_State *L, const char *fname) {
  cfl_listener *o = luaL_testudata(L, 1, LISTENER_MT);
  if (!o)
    luaL_error(L, "%s: argument #1 must be a signal listener (call it with a colon; got %s)", fname,
               luaL_typename(L, 1));
  if (!o->s || o->s->base.closing) luaL_error(L, "%s: the listener is closed", fname);
  return o;
}

static int li_recv(lua_State *L) {
  cfl_listener *o = check_listener(L, "listener:recv");
  cfl_sigwait *w = (cfl_sigwait *)cfl_new_future(L, cfl_rt(L), &sigwait_class, sizeof *w);
  w->s = o->s;
  cfu_handle_ref(&o->s->base);
  w->signum = o->s->signum;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

static int li_close(lua_State *L) {
  cfl_listener *o = luaL_checkudata(L, 1, LISTENER_MT);
  if (o->s) {
    cfu_signal *s = o->s;
    o->s = NULL;
    cfu_handle_unref(&s->base);
  }
  return 0;
}

/* ---- module ------------------------------------------------------------------------ */

/* cf.signal.name(num) -> "SIGTERM" */
static int l_name(lua_State *L) {
  lua_pushstring(L, cfl_signame((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* cf.signal.number(name) -> 15 */
static int l_number(lua_State *L) {
  lua_pushinteger(L, cfl_checksignal(L, 1, "signal.number", 0));
  return 1;
}

static const luaL_Reg funcs[] = {
    {"wait", l_wait}, {"listen", l_listen}, {"name", l_name}, {"number", l_number}, {NULL, NULL}};
static const luaL_Reg listener_methods[] = {{"recv", li_recv}, {"close", li_close}, {NULL, NULL}};

void cfl_open_signal(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_setfield(L, -2, "signal");
  cfl_new_class(L, rt, LISTENER_MT, listener_methods, li_close, li_close, NULL);
  lua_pop(L, 1);
}
