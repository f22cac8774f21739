/*
 * net.c — cf.net: TCP clients and servers, and the address helpers that
 * UDP (udp.c) and DNS (dns.c) share.
 *
 * connect and accept are futures; failures are nil, message, code.
 * Connected and accepted sockets are streams (see stream.c) with a few TCP
 * methods added. listen binds at the call.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

#define LISTENER_MT "cfuture.Listener"

/* ---- addresses ------------------------------------------------------------------- */

int cfl_check_port(lua_State *L, int idx, const char *fname) {
  char what[32];
  snprintf(what, sizeof what, "argument #%d (port)", idx);
  return (int)cfl_check_int_range(L, idx, fname, what, 0, 65535);
}

/* A host string; an embedded NUL would cut it short in the C calls. */
const char *cfl_check_host(lua_State *L, int idx, const char *fname) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: argument #%d must be a host name or address string (got %s)", fname, idx,
               luaL_typename(L, idx));
  char what[32];
  snprintf(what, sizeof what, "argument #%d (host)", idx);
  return cfl_check_cstring(L, idx, fname, what, NULL);
}

/* A numeric address ("127.0.0.1", "::1"; "localhost"; "*" or "" for any). */
int cfl_parse_addr(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (!host || !*host || !strcmp(host, "*")) host = "0.0.0.0";
  if (!strcmp(host, "localhost")) host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

int cfl_push_addr(lua_State *L, const struct sockaddr *sa) {
  char host[64];
  int port;
  int r = cfu_addr_name(sa, host, sizeof host, &port);
  if (r != 0) return cfl_push_ioerr(L, r, "address");
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

int cfl_bad_addr(lua_State *L, const char *fname, const char *host) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: '%s' is not a numeric IPv4 or IPv6 address", fname, host);
  lua_pushliteral(L, "EINVAL");
  return 3;
}

/* ---- connect ------------------------------------------------------------------------ */

typedef struct cfl_connect {
  cfl_future hdr;
  cfu_connect *c;
  char *what; /* "host:port" for messages */
} cfl_connect;

static cf_poll connect_poll(cf_future *base, cf_context *cx) {
  cfl_connect *f = (cfl_connect *)base;
  cfu_connect *c = f->c;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  if (cfu_req_state(&c->base) == CFU_REQ_NEW) {
    char *colon = strrchr(f->what, ':');
    *colon = '\0';
    cfu_connect_start(f->hdr.rt->loop, c, f->what, colon + 1, cx->waker); /* or done, failed */
    *colon = ':';
    if (!cfu_req_done(&c->base)) return CF_PENDING;
  } else if (!cfu_req_poll(&c->base, cx->waker)) {
    return CF_PENDING;
  }
  return cfl_ready(&f->hdr);
}

static void connect_release(cfl_future *base) {
  cfl_connect *f = (cfl_connect *)base;
  if (f->c) {
    cfu_connect *c = f->c;
    f->c = NULL;
    cfu_connect_orphan(c);
  }
  free(f->what);
  f->what = NULL;
}

static int connect_take(lua_State *L, cfl_future *base) {
  cfl_connect *f = (cfl_connect *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  int err = cfu_req_err(&f->c->base);
  if (err) {
    n = cfl_push_ioerrf(L, err, "connect %s", f->what);
  } else {
    cfu_stream *s = cfu_connect_take(f->c);
    cfu_handle_track(&f->hdr.rt->io, &s->base);
    uv_tcp_nodelay(&s->h.tcp, 1); /* request/response traffic: no Nagle delay */
    cfl_push_stream(L, s);
  }
  cfu_connect *c = f->c;
  f->c = NULL;
  cfu_connect_orphan(c); /* done: freed now */
  free(f->what);
  f->what = NULL;
  return n;
}

static void connect_describe(lua_State *L, cfl_future *base) {
  cfl_connect *f = (cfl_connect *)base;
  lua_pushfstring(L, "connect %s", f->what ? f->what : "");
}

static const cfl_class connect_class = {
    .vt = {.poll = connect_poll, .drop = cfl_drop_released},
    .release = connect_release,
    .name = "connect",
    .take = connect_take,
    .describe = connect_describe,
};

/* cf.net.connect(host, port) -> future of a stream */
static int l_connect(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = cfl_check_host(L, 1, "net.connect");
  int port = cfl_check_port(L, 2, "net.connect");
  cfl_connect *f = (cfl_connect *)cfl_new_future(L, rt, &connect_class, sizeof *f);
  f->c = cfu_connect_new();
  lua_pushfstring(L, "%s:%d", host, port);
  f->what = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  if (!f->c || !f->what) return luaL_error(L, "net.connect: out of memory");
  return 1;
}

/* ---- listeners --------------------------------------------------------------------------- */

typedef struct cfl_listener {
  cfu_listener *l;
} cfl_listener;

/* The listener object at idx, or NULL: by metatable identity. */
static cfl_listener *to_listener(lua_State *L, int idx) {
  return luaL_testudata(L, idx, LISTENER_MT);
}

static cfl_listener *check_listener_obj(lua_State *L, const char *fname) {
  cfl_listener *o = to_listener(L, 1);
  if (!o) cfl_raise_self(L, 1, fname, "a listener");
  return o;
}

static cfu_listener *check_listener(lua_State *L, const char *fname) {
  cfl_listener *o = check_listener_obj(L, fname);
  if (!o->l || o->l->base.closing) luaL_error(L, "%s: the listener is closed", fname);
  return o->l;
}

cfu_listener *cfl_check_listener(lua_State *L, int idx, const char *fname) {
  cfl_listener *o = to_listener(L, idx);
  if (!o || !o->l || o->l->base.closing)
    luaL_error(L, "%s: argument #%d must be an open listener", fname, idx);
  return o->l;
}

/* cf.net.listen(host, port [, {backlog=, ipv6only=}]) -> listener, or nil, msg, code */
static int l_listen(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = lua_isnoneornil(L, 1) ? "*" : cfl_check_host(L, 1, "net.listen");
  int port = cfl_check_port(L, 2, "net.listen");
  int backlog = 511, flags = 0;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "backlog");
    if (!lua_isnil(L, -1))
      backlog = (int)cfl_check_int_range(L, -1, "net.listen", "option backlog", 0, INT_MAX);
    lua_getfield(L, 3, "ipv6only");
    if (lua_toboolean(L, -1)) flags |= UV_TCP_IPV6ONLY;
    lua_pop(L, 2);
  } else if (!lua_isnoneornil(L, 3)) {
    return luaL_error(L, "net.listen: argument #3 must be an options table (got %s)",
                      luaL_typename(L, 3));
  }
  struct sockaddr_storage ss;
  if (cfl_parse_addr(host, port, &ss) != 0) return cfl_bad_addr(L, "net.listen", host);
  cfl_listener *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->l = NULL;
  luaL_setmetatable(L, LISTENER_MT);
  cfu_listener *l = cfu_listener_new(rt->loop);
  if (!l) return luaL_error(L, "net.listen: out of memory");
  o->l = l;
  cfu_handle_track(&rt->io, &l->base);
  int r = cfu_listener_listen(l, (struct sockaddr *)&ss, backlog, flags);
  if (r != 0) {
    o->l = NULL;
    cfu_handle_unref(&l->base);
    return cfl_push_ioerrf(L, r, "listen %s:%d", host, port);
  }
  return 1;
}

typedef struct cfl_accept {
  cfl_future hdr;
  cfu_listener *l;
  cfu_stream *got;
  int err;
  uint8_t waiting; /* counted in the listener's waiting (it keeps the loop alive) */
} cfl_accept;

/* A pending accept keeps the listener's handle (and so the loop) alive. */
static void accept_wait(cfl_accept *f, int on) {
  cfu_handle_wait(f->l ? &f->l->base : NULL, &f->waiting, on);
}

static cf_poll accept_poll(cf_future *base, cf_context *cx) {
  cfl_accept *f = (cfl_accept *)base;
  cfu_listener *l = f->l;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  if (l->base.closing) {
    f->err = UV_ECANCELED;
  } else if (l->pending) {
    f->err = cfu_listener_accept(l, &f->got);
    if (f->got) {
      cfu_handle_track(&f->hdr.rt->io, &f->got->base);
      uv_tcp_nodelay(&f->got->h.tcp, 1);
    }
  } else if (l->err) {
    f->err = cfu_listener_take_err(l);
  } else {
    cf_waitlist_register(&l->acceptors, cx);
    accept_wait(f, 1);
    return CF_PENDING;
  }
  accept_wait(f, 0);
  return cfl_ready(&f->hdr);
}

static void accept_release(cfl_future *base) {
  cfl_accept *f = (cfl_accept *)base;
  accept_wait(f, 0);
  if (f->got) {
    cfu_handle_unref(&f->got->base); /* accepted for nobody: closed */
    f->got = NULL;
  }
  if (f->l) {
    cfu_listener *l = f->l;
    f->l = NULL;
    cfu_handle_unref(&l->base);
  }
}

static int accept_take(lua_State *L, cfl_future *base) {
  cfl_accept *f = (cfl_accept *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  if (f->got) {
    cfl_push_stream(L, f->got);
    f->got = NULL;
  } else {
    n = cfl_push_ioerr(L, f->err ? f->err : UV_ECANCELED, "accept");
  }
  accept_release(&f->hdr);
  return n;
}

static const cfl_class accept_class = {
    .vt = {.poll = accept_poll, .drop = cfl_drop_released},
    .release = accept_release,
    .name = "accept",
    .take = accept_take,
    .nuv = 1,
};

/* incoming()'s accepts: the end of the loop when the listener closes, and
 * any other accept error raised (the loop cannot mistake it for the end) */
static int incoming_take(lua_State *L, cfl_future *base) {
  cfl_accept *f = (cfl_accept *)base;
  if (f->got || f->err == 0 || f->err == UV_ECANCELED) {
    if (!f->got) {
      f->hdr.state = CFL_ST_TAKEN;
      accept_release(&f->hdr);
      lua_pushnil(L);
      return 1;
    }
    return accept_take(L, base);
  }
  f->hdr.state = CFL_ST_TAKEN;
  lua_pushfstring(L, "listener:incoming: %s", uv_strerror(f->err));
  accept_release(&f->hdr);
  return -1;
}

static const cfl_class incoming_class = {
    .vt = {.poll = accept_poll, .drop = cfl_drop_released},
    .release = accept_release,
    .name = "accept",
    .take = incoming_take,
    .nuv = 1,
};

/* A fresh accept future on the listener object at idx (which it anchors). */
static cfl_accept *new_accept(lua_State *L, cf_runtime *rt, int idx, cfu_listener *l,
                              const cfl_class *cls) {
  idx = lua_absindex(L, idx);
  cfl_accept *f = (cfl_accept *)cfl_new_future(L, rt, cls, sizeof *f);
  f->l = l;
  cfu_handle_ref(&l->base);
  lua_pushvalue(L, idx);
  cfl_setuservalue(L, -2);
  return f;
}

/* listener:accept() -> future of a stream */
static int li_accept(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfu_listener *l = check_listener(L, "listener:accept");
  new_accept(L, rt, 1, l, &accept_class);
  return 1;
}

/* The iterator: upvalues rt, mt (as every module function) and the
 * listener object. A closed listener ends it, whether it was closed before
 * the first step, while the loop's body ran, or while the accept waited. */
static int incoming_step(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_listener *o = lua_touserdata(L, lua_upvalueindex(3));
  lua_settop(L, 0);
  if (!o->l || o->l->base.closing) {
    lua_pushnil(L);
    return cfl_results(L, 1);
  }
  cfl_accept *f = new_accept(L, rt, lua_upvalueindex(3), o->l, &incoming_class);
  return cfl_await_own(L, &f->hdr);
}

/* listener:incoming() -> iterator of accepted connections, for use inside a
 * task: `for conn in l:incoming() do ... end`; it ends when the listener is
 * closed, and another accept error is raised */
static int li_incoming(lua_State *L) {
  cfl_rt(L);
  check_listener_obj(L, "listener:incoming");
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_MT));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, incoming_step, 3);
#if !CFL_LUA54
  cfl_wrap_raising_top(L);
#endif
  return 1;
}

/* listener:local_address() -> host, port */
static int li_local_address(lua_State *L) {
  cfl_rt(L);
  cfu_listener *l = check_listener(L, "listener:local_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int r = uv_tcp_getsockname(&l->h, (struct sockaddr *)&ss, &len);
  if (r != 0) return cfl_push_ioerr(L, r, "listener:local_address");
  return cfl_push_addr(L, (struct sockaddr *)&ss);
}

/* l:fileno() -> the listening socket's descriptor (the listener owns it) */
static int li_fileno(lua_State *L) {
  cfl_rt(L);
  cfu_listener *l = check_listener(L, "listener:fileno");
  uv_os_fd_t fd;
  int r = uv_fileno((uv_handle_t *)&l->h, &fd);
  if (r != 0) return cfl_push_ioerr(L, r, "listener:fileno");
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

static void listener_release(cfl_listener *o) {
  cfu_listener *l = o->l;
  o->l = NULL;
  if (l) cfu_handle_let_go(&l->base);
}

/* listener:close() (also __close) */
static int li_close(lua_State *L) {
  cfl_rt(L);
  listener_release(check_listener_obj(L, "listener:close"));
  return 0;
}

/* __gc: never raises; a foreign self is ignored. After the runtime closed
 * the handle is closing already: this only drops the reference. */
static int li_gc(lua_State *L) {
  cfl_listener *o = to_listener(L, 1);
  if (o) listener_release(o);
  return 0;
}

static int li_tostring(lua_State *L) {
  cfl_listener *o = check_listener_obj(L, "listener:__tostring");
  lua_pushfstring(L, "cfuture.Listener(%s): %p", o->l && !o->l->base.closing ? "open" : "closed",
                  (void *)o);
  return 1;
}

/* ---- TCP stream methods --------------------------------------------------------------- */

static uv_tcp_t *check_tcp(lua_State *L, const char *fname) {
  cfu_stream *s = cfl_check_stream(L, 1, fname);
  if (!s->tcp) luaL_error(L, "%s: the stream is not a TCP connection", fname);
  return &s->h.tcp;
}

/* stream:peer_address() / stream:local_address() -> host, port */
static int s_peer_address(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, "stream:peer_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int r = uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:peer_address");
  return cfl_push_addr(L, (struct sockaddr *)&ss);
}

static int s_local_address(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, "stream:local_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int r = uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:local_address");
  return cfl_push_addr(L, (struct sockaddr *)&ss);
}

/* stream:set_nodelay(on) -> true (connections start with no delay) */
static int s_set_nodelay(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, "stream:set_nodelay");
  int r = uv_tcp_nodelay(t, lua_toboolean(L, 2));
  if (r != 0) return cfl_push_ioerr(L, r, "stream:set_nodelay");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:set_keepalive(on [, delay_s = 60]) -> true */
static int s_set_keepalive(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, "stream:set_keepalive");
  /* TCP_KEEPIDLE: 1 s to 32767 s on Linux */
  unsigned delay = lua_isnoneornil(L, 3)
                       ? 60
                       : (unsigned)cfl_check_int_range(L, 3, "stream:set_keepalive",
                                                       "argument #3 (delay in seconds)", 1, 32767);
  int r = uv_tcp_keepalive(t, lua_toboolean(L, 2), delay);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:set_keepalive");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:reset(): close at once with a TCP reset (the peer sees ECONNRESET) */
static int s_reset(lua_State *L) {
  check_tcp(L, "stream:reset");
  cfu_stream *s = cfl_check_stream(L, 1, "stream:reset"); /* the same checks: never fails */
  int r = cfu_handle_close_reset(&s->base);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:reset");
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- module ------------------------------------------------------------------------------- */

static const luaL_Reg funcs[] = {{"connect", l_connect}, {"listen", l_listen}, {NULL, NULL}};
static const luaL_Reg listener_methods[] = {
    {"accept", li_accept}, {"incoming", li_incoming}, {"local_address", li_local_address},
    {"fileno", li_fileno}, {"close", li_close},       {NULL, NULL}};
static const luaL_Reg listener_meta[] = {
    {"__gc", li_gc}, {"__close", li_close}, {"__tostring", li_tostring}, {NULL, NULL}};
static const luaL_Reg tcp_methods[] = {{"peer_address", s_peer_address},
                                       {"local_address", s_local_address},
                                       {"set_nodelay", s_set_nodelay},
                                       {"set_keepalive", s_set_keepalive},
                                       {"reset", s_reset},
                                       {NULL, NULL}};

/* Module table on top (after the stream subsystem): adds cf.net, which the
 * udp and dns subsystems fill further. */
static void open_net(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  cfl_new_class(L, rt, LISTENER_MT, listener_methods, listener_meta);
  lua_setfield(L, -2, "Listener"); /* net.Listener, net.Udp: the method tables */
  lua_setfield(L, -2, "net");
  lua_getfield(L, -1, "Stream");
  cfl_setfuncs(L, rt, tcp_methods);
  lua_pop(L, 1);
}

const cfl_module cfl_net_module = {.name = "net", .open = open_net};
