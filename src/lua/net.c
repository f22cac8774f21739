/*
 * net.c — cf.net: TCP clients and servers, UDP sockets, DNS lookups.
 *
 * connect, accept, lookup, send_to and recv_from are futures; failures are
 * nil, message, code. Connected and accepted sockets are streams (see
 * stream.c) with a few TCP methods added. listen and udp bind at the call.
 */
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../uv/net.h"
#include "cfl.h"

#define LISTENER_MT "cfuture.Listener"
#define UDP_MT "cfuture.Udp"

/* ---- addresses ------------------------------------------------------------------- */

static int check_port(lua_State *L, int idx, const char *fname) {
  char what[32];
  snprintf(what, sizeof what, "argument #%d (port)", idx);
  return (int)cfl_check_int_range(L, idx, fname, what, 0, 65535);
}

/* A host string; an embedded NUL would cut it short in the C calls. */
static const char *check_host(lua_State *L, int idx, const char *fname) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: argument #%d must be a host name or address string (got %s)", fname, idx,
               luaL_typename(L, idx));
  char what[32];
  snprintf(what, sizeof what, "argument #%d (host)", idx);
  return cfl_check_cstring(L, idx, fname, what, NULL);
}

/* A numeric address ("127.0.0.1", "::1"; "localhost"; "*" or "" for any). */
static int parse_addr(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (!host || !*host || !strcmp(host, "*")) host = "0.0.0.0";
  if (!strcmp(host, "localhost")) host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

static int push_addr(lua_State *L, const struct sockaddr *sa) {
  char host[64];
  int port;
  int r = cfu_addr_name(sa, host, sizeof host, &port);
  if (r != 0) return cfl_push_ioerr(L, r, "address");
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

static int bad_addr(lua_State *L, const char *fname, const char *host) {
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
  } else if (!cfu_req_done(&c->base)) {
    cfu_req_set_waker(&c->base, cx->waker);
  }
  if (!cfu_req_done(&c->base)) return CF_PENDING;
  return cfl_ready(&f->hdr);
}

static void connect_release(cfl_connect *f) {
  if (f->c) {
    cfu_connect *c = f->c;
    f->c = NULL;
    cfu_connect_orphan(c);
  }
  free(f->what);
  f->what = NULL;
}

static void connect_drop(cf_future *base) {
  cfl_connect *f = (cfl_connect *)base;
  connect_release(f);
  cfl_mark_dropped(&f->hdr);
}

static int connect_take(lua_State *L, cfl_future *base) {
  cfl_connect *f = (cfl_connect *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  int err = cfu_req_err(&f->c->base);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "connect %s: %s", f->what, uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    n = 3;
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
    .core = {.poll = connect_poll, .drop = connect_drop},
    .name = "connect",
    .take = connect_take,
    .describe = connect_describe,
};

/* cf.net.connect(host, port) -> future of a stream */
static int l_connect(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = check_host(L, 1, "net.connect");
  int port = check_port(L, 2, "net.connect");
  cfl_connect *f = (cfl_connect *)cfl_new_future(L, rt, &connect_class, sizeof *f);
  f->c = cfu_connect_new();
  lua_pushfstring(L, "%s:%d", host, port);
  f->what = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  if (!f->c || !f->what) return luaL_error(L, "net.connect: out of memory");
  return 1;
}

/* ---- lookup --------------------------------------------------------------------------- */

typedef struct cfl_lookup {
  cfl_future hdr;
  cfu_lookup *l;
  char *host;
  int family;
} cfl_lookup;

static cf_poll lookup_poll(cf_future *base, cf_context *cx) {
  cfl_lookup *f = (cfl_lookup *)base;
  if (f->hdr.state == CFL_ST_FRESH) {
    f->hdr.state = CFL_ST_PENDING;
    /* a failed start leaves it done with the error */
    cfu_lookup_start(f->hdr.rt->loop, f->l, f->host, NULL, SOCK_STREAM, f->family, cx->waker);
  } else if (f->hdr.state == CFL_ST_PENDING && !cfu_req_done(&f->l->base)) {
    cfu_req_set_waker(&f->l->base, cx->waker);
  }
  if (f->hdr.state == CFL_ST_PENDING && cfu_req_done(&f->l->base)) f->hdr.state = CFL_ST_READY;
  return f->hdr.state == CFL_ST_PENDING ? CF_PENDING : CF_READY;
}

static void lookup_release(cfl_lookup *f) {
  if (f->l) {
    cfu_lookup *l = f->l;
    f->l = NULL;
    cfu_lookup_orphan(l); /* freed now unless busy */
  }
  free(f->host);
  f->host = NULL;
}

static void lookup_drop(cf_future *base) {
  cfl_lookup *f = (cfl_lookup *)base;
  lookup_release(f);
  cfl_mark_dropped(&f->hdr);
}

static int lookup_take(lua_State *L, cfl_future *base) {
  cfl_lookup *f = (cfl_lookup *)base;
  int n = 1;
  int err = cfu_req_err(&f->l->base);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "lookup %s: %s", f->host, uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    n = 3;
  } else {
    lua_newtable(L);
    int i = 0;
    for (struct addrinfo *ai = f->l->res; ai; ai = ai->ai_next) {
      char host[64];
      int port;
      if (cfu_addr_name(ai->ai_addr, host, sizeof host, &port) != 0) continue;
      lua_pushstring(L, host); /* skip duplicates (one per socket type) */
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) != LUA_TNIL) {
        lua_pop(L, 2);
        continue;
      }
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++i);
      lua_pushboolean(L, 1);
      lua_rawset(L, -3);
    }
    for (int k = 1; k <= i; k++) { /* drop the membership keys */
      lua_rawgeti(L, -1, k);
      lua_pushnil(L);
      lua_rawset(L, -3);
    }
  }
  f->hdr.state = CFL_ST_TAKEN;
  lookup_release(f);
  return n;
}

static void lookup_describe(lua_State *L, cfl_future *base) {
  lua_pushfstring(L, "lookup %s", ((cfl_lookup *)base)->host);
}

static const cfl_class lookup_class = {
    .core = {.poll = lookup_poll, .drop = lookup_drop},
    .name = "lookup",
    .take = lookup_take,
    .describe = lookup_describe,
};

/* cf.net.lookup(name [, family]) -> future of a list of addresses ("inet", "inet6") */
static int l_lookup(lua_State *L) {
  static const char *const fams[] = {"any", "inet", "inet6"};
  static const int famv[] = {AF_UNSPEC, AF_INET, AF_INET6};
  cf_runtime *rt = cfl_rt(L);
  const char *host = check_host(L, 1, "net.lookup");
  int fam = 0;
  if (!lua_isnoneornil(L, 2)) {
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    for (fam = 0; name && fam < 3 && strcmp(name, fams[fam]) != 0; fam++) {
    }
    if (!name || fam == 3)
      return luaL_error(L,
                        "net.lookup: argument #2 must be \"any\", \"inet\" or \"inet6\" (got %s)",
                        name ? name : luaL_typename(L, 2));
  }
  cfl_lookup *f = (cfl_lookup *)cfl_new_future(L, rt, &lookup_class, sizeof *f);
  f->l = cfu_lookup_new();
  f->host = strdup(host);
  f->family = famv[fam];
  if (!f->l || !f->host) return luaL_error(L, "net.lookup: out of memory");
  return 1;
}

/* reverse lookup: getnameinfo on the thread pool */
typedef struct reverse_job {
  cfu_job job;
  struct sockaddr_storage addr;
  char host[NI_MAXHOST];
  char what[64];
} reverse_job;

static void reverse_run(cfu_job *job) {
  reverse_job *j = (reverse_job *)job;
  socklen_t len =
      j->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int r =
      getnameinfo((struct sockaddr *)&j->addr, len, j->host, sizeof j->host, NULL, 0, NI_NAMEREQD);
  if (r != 0) job->err = r == EAI_NONAME ? UV_EAI_NONAME : UV_EAI_FAIL;
}
static void reverse_free(cfu_job *job) { free(job); }
static const cfu_job_vt reverse_vt = {reverse_run, NULL, reverse_free};

static int reverse_push(lua_State *L, cfu_job *job) {
  reverse_job *j = (reverse_job *)job;
  if (job->err) {
    lua_pushnil(L);
    lua_pushfstring(L, "reverse %s: %s", j->what, uv_strerror(job->err));
    lua_pushstring(L, uv_err_name(job->err));
    return 3;
  }
  lua_pushstring(L, j->host);
  return 1;
}
static const cfl_job_kind reverse_kind = {"reverse lookup", reverse_push, NULL, NULL};

/* cf.net.reverse(address) -> future of a host name */
static int l_reverse(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = check_host(L, 1, "net.reverse");
  reverse_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "net.reverse: out of memory");
  if (parse_addr(host, 0, &j->addr) != 0 || !*host || !strcmp(host, "*")) {
    free(j);
    return bad_addr(L, "net.reverse", host);
  }
  cfu_job_init(&j->job, &reverse_vt);
  strncpy(j->what, host, sizeof j->what - 1);
  cfl_new_job(L, rt, &reverse_kind, &j->job);
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

/* cf.net.listen(host, port [, {backlog=, ipv6only=}]) -> listener, or nil, msg, code */
static int l_listen(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = lua_isnoneornil(L, 1) ? "*" : check_host(L, 1, "net.listen");
  int port = check_port(L, 2, "net.listen");
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
  if (parse_addr(host, port, &ss) != 0) return bad_addr(L, "net.listen", host);
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
  if (f->waiting == on || !f->l) return;
  f->waiting = (uint8_t)on;
  if (on)
    cfu_listener_wait_begin(f->l);
  else
    cfu_listener_wait_end(f->l);
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

static void accept_release(cfl_accept *f) {
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

static void accept_drop(cf_future *base) {
  cfl_accept *f = (cfl_accept *)base;
  accept_release(f);
  cfl_mark_dropped(&f->hdr);
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
  accept_release(f);
  return n;
}

static const cfl_class accept_class = {
    .core = {.poll = accept_poll, .drop = accept_drop},
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
      accept_release(f);
      lua_pushnil(L);
      return 1;
    }
    return accept_take(L, base);
  }
  f->hdr.state = CFL_ST_TAKEN;
  lua_pushfstring(L, "listener:incoming: %s", uv_strerror(f->err));
  accept_release(f);
  return -1;
}

static const cfl_class incoming_class = {
    .core = {.poll = accept_poll, .drop = accept_drop},
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
  return push_addr(L, (struct sockaddr *)&ss);
}

static void listener_release(cfl_listener *o) {
  if (o->l) {
    cfu_listener *l = o->l;
    o->l = NULL;
    cfu_handle_close(&l->base);
    cfu_handle_unref(&l->base);
  }
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
  return push_addr(L, (struct sockaddr *)&ss);
}

static int s_local_address(lua_State *L) {
  uv_tcp_t *t = check_tcp(L, "stream:local_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int r = uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:local_address");
  return push_addr(L, (struct sockaddr *)&ss);
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

/* ---- UDP --------------------------------------------------------------------------------- */

typedef struct cfl_udp {
  cfu_udp *u;
} cfl_udp;

static cfl_udp *to_udp(lua_State *L, int idx) { return luaL_testudata(L, idx, UDP_MT); }

static cfl_udp *check_udp_obj(lua_State *L, const char *fname) {
  cfl_udp *o = to_udp(L, 1);
  if (!o) cfl_raise_self(L, 1, fname, "a UDP socket");
  return o;
}

/* Every UDP method: the runtime first, then the open socket at 1. */
static cfu_udp *check_udp(lua_State *L, const char *fname) {
  cfl_rt(L);
  cfl_udp *o = check_udp_obj(L, fname);
  if (!o->u || o->u->base.closing) luaL_error(L, "%s: the socket is closed", fname);
  return o->u;
}

/* cf.net.udp([host [, port]]) -> socket bound to host:port (default any
 * address, an ephemeral port), or nil, msg, code */
static int l_udp(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = lua_isnoneornil(L, 1) ? "*" : check_host(L, 1, "net.udp");
  int port = lua_isnoneornil(L, 2) ? 0 : check_port(L, 2, "net.udp");
  struct sockaddr_storage ss;
  if (parse_addr(host, port, &ss) != 0) return bad_addr(L, "net.udp", host);
  cfl_udp *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->u = NULL;
  luaL_setmetatable(L, UDP_MT);
  cfu_udp *u = cfu_udp_new(rt->loop);
  if (!u) return luaL_error(L, "net.udp: out of memory");
  o->u = u;
  cfu_handle_track(&rt->io, &u->base);
  int r = uv_udp_bind(&u->h, (struct sockaddr *)&ss, UV_UDP_REUSEADDR);
  if (r != 0) {
    o->u = NULL;
    cfu_handle_unref(&u->base);
    return cfl_push_ioerrf(L, r, "udp %s:%d", host, port);
  }
  return 1;
}

typedef struct cfl_recv {
  cfl_future hdr;
  cfu_udp *u;
  cfu_datagram *d;
  int err;
  uint8_t waiting; /* counted in the socket's waiting (it keeps the loop alive) */
} cfl_recv;

/* A pending receive keeps the socket's handle (and so the loop) alive. */
static void recv_wait(cfl_recv *f, int on) {
  if (f->waiting == on || !f->u) return;
  f->waiting = (uint8_t)on;
  if (on)
    cfu_udp_wait_begin(f->u);
  else
    cfu_udp_wait_end(f->u);
}

static cf_poll recv_poll(cf_future *base, cf_context *cx) {
  cfl_recv *f = (cfl_recv *)base;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  if (!cfu_udp_poll_recv(f->u, cx)) {
    recv_wait(f, 1);
    return CF_PENDING;
  }
  recv_wait(f, 0);
  f->d = cfu_udp_take(f->u);
  if (!f->d) f->err = f->u->rerr ? f->u->rerr : UV_ECANCELED;
  return cfl_ready(&f->hdr);
}

static void recv_release(cfl_recv *f) {
  recv_wait(f, 0);
  free(f->d);
  f->d = NULL;
  if (f->u) {
    cfu_udp *u = f->u;
    f->u = NULL;
    cfu_handle_unref(&u->base);
  }
}

static void recv_drop(cf_future *base) {
  cfl_recv *f = (cfl_recv *)base;
  recv_release(f);
  cfl_mark_dropped(&f->hdr);
}

static int recv_take(lua_State *L, cfl_future *base) {
  cfl_recv *f = (cfl_recv *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n;
  if (f->d) {
    lua_pushlstring(L, f->d->data, f->d->len);
    n = 1 + push_addr(L, (struct sockaddr *)&f->d->from);
  } else {
    n = cfl_push_ioerr(L, f->err, "udp:recv_from");
  }
  recv_release(f);
  return n;
}

static const cfl_class recv_class = {
    .core = {.poll = recv_poll, .drop = recv_drop},
    .name = "udp:recv_from",
    .take = recv_take,
    .nuv = 1,
};

/* udp:recv_from() -> future of data, host, port */
static int u_recv_from(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:recv_from");
  cfl_recv *f = (cfl_recv *)cfl_new_future(L, cfl_rt(L), &recv_class, sizeof *f);
  f->u = u;
  cfu_handle_ref(&u->base);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

typedef struct cfl_send {
  cfl_future hdr;
  cfu_udp *u;
  cfu_udp_send *sr;
  struct sockaddr_storage to;
  int err;
} cfl_send;

static cf_poll send_poll(cf_future *base, cf_context *cx) {
  cfl_send *f = (cfl_send *)base;
  switch (f->hdr.state) {
  case CFL_ST_FRESH: {
    f->hdr.state = CFL_ST_PENDING;
    int r = cfu_udp_send_submit(f->u, f->sr, (struct sockaddr *)&f->to, cx->waker);
    if (r == 0) return CF_PENDING;
    f->err = r;
    break;
  }
  case CFL_ST_PENDING:
    if (!cfu_req_done(&f->sr->base)) {
      cfu_req_set_waker(&f->sr->base, cx->waker);
      return CF_PENDING;
    }
    f->err = cfu_req_err(&f->sr->base);
    break;
  default: return CF_READY;
  }
  return cfl_ready(&f->hdr);
}

static void send_release(cfl_send *f) {
  if (f->sr) {
    cfu_udp_send *sr = f->sr;
    f->sr = NULL;
    cfu_udp_send_orphan(sr);
  }
  if (f->u) {
    cfu_udp *u = f->u;
    f->u = NULL;
    cfu_handle_unref(&u->base);
  }
}

static void send_drop(cf_future *base) {
  cfl_send *f = (cfl_send *)base;
  send_release(f);
  cfl_mark_dropped(&f->hdr);
}

static int send_take(lua_State *L, cfl_future *base) {
  cfl_send *f = (cfl_send *)base;
  f->hdr.state = CFL_ST_TAKEN;
  send_release(f);
  if (f->err) return cfl_push_ioerr(L, f->err, "udp:send_to");
  lua_pushboolean(L, 1);
  return 1;
}

static const cfl_class send_class = {
    .core = {.poll = send_poll, .drop = send_drop},
    .name = "udp:send_to",
    .take = send_take,
    .nuv = 1,
};

/* udp:send_to(data, host, port) -> future of true (host: a numeric address) */
static int u_send_to(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:send_to");
  size_t len;
  const char *data = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  if (!data)
    luaL_error(L, "udp:send_to: argument #2 must be a string (got %s)", luaL_typename(L, 2));
  const char *host = check_host(L, 3, "udp:send_to");
  int port = check_port(L, 4, "udp:send_to");
  struct sockaddr_storage to;
  if (parse_addr(host, port, &to) != 0 || !*host || !strcmp(host, "*"))
    return bad_addr(L, "udp:send_to", host);
  cfl_send *f = (cfl_send *)cfl_new_future(L, cfl_rt(L), &send_class, sizeof *f);
  f->u = u;
  cfu_handle_ref(&u->base);
  f->to = to;
  f->sr = cfu_udp_send_new(data, len); /* after the future: its __gc frees it */
  if (!f->sr) return luaL_error(L, "udp:send_to: out of memory");
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

static int u_local_address(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:local_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int r = uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len);
  if (r != 0) return cfl_push_ioerr(L, r, "udp:local_address");
  return push_addr(L, (struct sockaddr *)&ss);
}

static int u_result(lua_State *L, int r, const char *fname) {
  if (r != 0) return cfl_push_ioerr(L, r, fname);
  lua_pushboolean(L, 1);
  return 1;
}

static int u_set_broadcast(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:set_broadcast");
  return u_result(L, uv_udp_set_broadcast(&u->h, lua_toboolean(L, 2)), "udp:set_broadcast");
}
static int u_set_ttl(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:set_ttl");
  int ttl = (int)cfl_check_int_range(L, 2, "udp:set_ttl", "argument #2 (ttl)", 1, 255);
  return u_result(L, uv_udp_set_ttl(&u->h, ttl), "udp:set_ttl");
}
static int u_set_multicast_loop(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:set_multicast_loop");
  return u_result(L, uv_udp_set_multicast_loop(&u->h, lua_toboolean(L, 2)),
                  "udp:set_multicast_loop");
}
static int u_set_multicast_ttl(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:set_multicast_ttl");
  int ttl = (int)cfl_check_int_range(L, 2, "udp:set_multicast_ttl", "argument #2 (ttl)", 0, 255);
  return u_result(L, uv_udp_set_multicast_ttl(&u->h, ttl), "udp:set_multicast_ttl");
}
static int membership(lua_State *L, uv_membership m, const char *fname) {
  cfu_udp *u = check_udp(L, fname);
  const char *group = check_host(L, 2, fname);
  const char *iface = lua_isnoneornil(L, 3)
                          ? NULL
                          : cfl_check_cstring(L, 3, fname, "argument #3 (interface)", NULL);
  return u_result(L, uv_udp_set_membership(&u->h, group, iface, m), fname);
}
static int u_join_group(lua_State *L) { return membership(L, UV_JOIN_GROUP, "udp:join_group"); }
static int u_leave_group(lua_State *L) { return membership(L, UV_LEAVE_GROUP, "udp:leave_group"); }

static void udp_release(cfl_udp *o) {
  if (o->u) {
    cfu_udp *u = o->u;
    o->u = NULL;
    cfu_handle_close(&u->base);
    cfu_handle_unref(&u->base);
  }
}

/* udp:close() (also __close) */
static int u_close(lua_State *L) {
  cfl_rt(L);
  udp_release(check_udp_obj(L, "udp:close"));
  return 0;
}

/* __gc: never raises; a foreign self is ignored (see li_gc) */
static int u_gc(lua_State *L) {
  cfl_udp *o = to_udp(L, 1);
  if (o) udp_release(o);
  return 0;
}

static int u_tostring(lua_State *L) {
  cfl_udp *o = check_udp_obj(L, "udp:__tostring");
  lua_pushfstring(L, "cfuture.Udp(%s): %p", o->u && !o->u->base.closing ? "open" : "closed",
                  (void *)o);
  return 1;
}

/* ---- module ------------------------------------------------------------------------------- */

static const luaL_Reg funcs[] = {{"connect", l_connect}, {"listen", l_listen}, {"lookup", l_lookup},
                                 {"reverse", l_reverse}, {"udp", l_udp},       {NULL, NULL}};
static const luaL_Reg listener_methods[] = {{"accept", li_accept},
                                            {"incoming", li_incoming},
                                            {"local_address", li_local_address},
                                            {"close", li_close},
                                            {NULL, NULL}};
static const luaL_Reg listener_meta[] = {
    {"__gc", li_gc}, {"__close", li_close}, {"__tostring", li_tostring}, {NULL, NULL}};
static const luaL_Reg udp_meta[] = {
    {"__gc", u_gc}, {"__close", u_close}, {"__tostring", u_tostring}, {NULL, NULL}};
static const luaL_Reg tcp_methods[] = {{"peer_address", s_peer_address},
                                       {"local_address", s_local_address},
                                       {"set_nodelay", s_set_nodelay},
                                       {"set_keepalive", s_set_keepalive},
                                       {"reset", s_reset},
                                       {NULL, NULL}};
static const luaL_Reg udp_methods[] = {{"recv_from", u_recv_from},
                                       {"send_to", u_send_to},
                                       {"local_address", u_local_address},
                                       {"set_broadcast", u_set_broadcast},
                                       {"set_ttl", u_set_ttl},
                                       {"set_multicast_loop", u_set_multicast_loop},
                                       {"set_multicast_ttl", u_set_multicast_ttl},
                                       {"join_group", u_join_group},
                                       {"leave_group", u_leave_group},
                                       {"close", u_close},
                                       {NULL, NULL}};

/* Module table on top (after cfl_open_stream): adds cf.net. */
static void open_net(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  /* metamethods with the module's upvalues (cfl_new_class registers bare ones) */
  cfl_new_class(L, rt, LISTENER_MT, listener_methods, NULL, NULL, NULL);
  lua_setfield(L, -2, "Listener"); /* net.Listener, net.Udp: the method tables */
  luaL_getmetatable(L, LISTENER_MT);
  cfl_setfuncs(L, rt, listener_meta);
  lua_pop(L, 1);
  cfl_new_class(L, rt, UDP_MT, udp_methods, NULL, NULL, NULL);
  lua_setfield(L, -2, "Udp");
  luaL_getmetatable(L, UDP_MT);
  cfl_setfuncs(L, rt, udp_meta);
  lua_pop(L, 1);
  lua_setfield(L, -2, "net");
  lua_getfield(L, -1, "Stream");
  cfl_setfuncs(L, rt, tcp_methods);
  lua_pop(L, 1);
}

const cfl_module cfl_net_module = {.name = "net", .open = open_net};
