/*
 * udp.c — cf.net.udp: UDP sockets; send_to and recv_from are futures,
 * failures are nil, message, code. udp binds at the call.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

#define UDP_MT "cfuture.Udp"

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
  const char *host = lua_isnoneornil(L, 1) ? "*" : cfl_check_host(L, 1, "net.udp");
  int port = lua_isnoneornil(L, 2) ? 0 : cfl_check_port(L, 2, "net.udp");
  struct sockaddr_storage ss;
  if (cfl_parse_addr(host, port, &ss) != 0) return cfl_bad_addr(L, "net.udp", host);
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
  cfu_handle_wait(f->u ? &f->u->base : NULL, &f->waiting, on);
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

static void recv_release(cfl_future *base) {
  cfl_recv *f = (cfl_recv *)base;
  recv_wait(f, 0);
  free(f->d);
  f->d = NULL;
  if (f->u) {
    cfu_udp *u = f->u;
    f->u = NULL;
    cfu_handle_unref(&u->base);
  }
}

static int recv_take(lua_State *L, cfl_future *base) {
  cfl_recv *f = (cfl_recv *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n;
  if (f->d) {
    lua_pushlstring(L, f->d->data, f->d->len);
    n = 1 + cfl_push_addr(L, (struct sockaddr *)&f->d->from);
  } else {
    n = cfl_push_ioerr(L, f->err, "udp:recv_from");
  }
  recv_release(&f->hdr);
  return n;
}

static const cfl_class recv_class = {
    .vt = {.poll = recv_poll, .drop = cfl_drop_released},
    .release = recv_release,
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
  cfu_write *sr;
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
    if (!cfu_req_poll(&f->sr->base, cx->waker)) return CF_PENDING;
    f->err = cfu_req_err(&f->sr->base);
    break;
  default: return CF_READY;
  }
  return cfl_ready(&f->hdr);
}

static void send_release(cfl_future *base) {
  cfl_send *f = (cfl_send *)base;
  if (f->sr) {
    cfu_write *sr = f->sr;
    f->sr = NULL;
    cfu_write_orphan(sr);
  }
  if (f->u) {
    cfu_udp *u = f->u;
    f->u = NULL;
    cfu_handle_unref(&u->base);
  }
}

static int send_take(lua_State *L, cfl_future *base) {
  cfl_send *f = (cfl_send *)base;
  f->hdr.state = CFL_ST_TAKEN;
  send_release(&f->hdr);
  if (f->err) return cfl_push_ioerr(L, f->err, "udp:send_to");
  lua_pushboolean(L, 1);
  return 1;
}

static const cfl_class send_class = {
    .vt = {.poll = send_poll, .drop = cfl_drop_released},
    .release = send_release,
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
  const char *host = cfl_check_host(L, 3, "udp:send_to");
  int port = cfl_check_port(L, 4, "udp:send_to");
  struct sockaddr_storage to;
  if (cfl_parse_addr(host, port, &to) != 0 || !*host || !strcmp(host, "*"))
    return cfl_bad_addr(L, "udp:send_to", host);
  cfl_send *f = (cfl_send *)cfl_new_future(L, cfl_rt(L), &send_class, sizeof *f);
  f->u = u;
  cfu_handle_ref(&u->base);
  f->to = to;
  f->sr = cfu_write_new(data, len); /* after the future: its __gc frees it */
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
  return cfl_push_addr(L, (struct sockaddr *)&ss);
}

/* u:fileno() -> the socket's descriptor (the UDP socket owns it) */
static int u_fileno(lua_State *L) {
  cfu_udp *u = check_udp(L, "udp:fileno");
  uv_os_fd_t fd;
  int r = uv_fileno((uv_handle_t *)&u->h, &fd);
  if (r != 0) return cfl_push_ioerr(L, r, "udp:fileno");
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
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
  const char *group = cfl_check_host(L, 2, fname);
  const char *iface = lua_isnoneornil(L, 3)
                          ? NULL
                          : cfl_check_cstring(L, 3, fname, "argument #3 (interface)", NULL);
  return u_result(L, uv_udp_set_membership(&u->h, group, iface, m), fname);
}
static int u_join_group(lua_State *L) { return membership(L, UV_JOIN_GROUP, "udp:join_group"); }
static int u_leave_group(lua_State *L) { return membership(L, UV_LEAVE_GROUP, "udp:leave_group"); }

static void udp_release(cfl_udp *o) {
  cfu_udp *u = o->u;
  o->u = NULL;
  if (u) cfu_handle_let_go(&u->base);
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

static const luaL_Reg udp_meta[] = {
    {"__gc", u_gc}, {"__close", u_close}, {"__tostring", u_tostring}, {NULL, NULL}};
static const luaL_Reg udp_methods[] = {{"recv_from", u_recv_from},
                                       {"send_to", u_send_to},
                                       {"local_address", u_local_address},
                                       {"fileno", u_fileno},
                                       {"set_broadcast", u_set_broadcast},
                                       {"set_ttl", u_set_ttl},
                                       {"set_multicast_loop", u_set_multicast_loop},
                                       {"set_multicast_ttl", u_set_multicast_ttl},
                                       {"join_group", u_join_group},
                                       {"leave_group", u_leave_group},
                                       {"close", u_close},
                                       {NULL, NULL}};
static const luaL_Reg funcs[] = {{"udp", l_udp}, {NULL, NULL}};

/* Module table on top (after the net subsystem): adds cf.net.udp. */
static void open_udp(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_getfield(L, -1, "net");
  cfl_setfuncs(L, rt, funcs);
  cfl_new_class(L, rt, UDP_MT, udp_methods, udp_meta);
  lua_setfield(L, -2, "Udp");
  lua_pop(L, 1);
}

const cfl_module cfl_udp_module = {.name = "udp", .open = open_udp};
