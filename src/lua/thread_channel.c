/*
 * thread_channel.c — the Lua object of a cross-thread channel
 * (cf.thread.channel; the channel itself is src/uv/thread.c). Its ends
 * travel inside arguments and messages (copy.c); send/recv are futures on
 * a runtime's loop thread, send_blocking/recv_blocking park a worker.
 *
 * Threads: a handle lives in one Lua state, so on that state's thread; the
 * channel it refers to is shared, and only its functions touch it (they
 * take its mutex, then an inbox's or a parker's). A future's wake comes as
 * mail, delivered on its loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "thread.h"

#define XCHAN_MT "cfuture.ThreadChannel"

typedef struct cfl_xchan {
  cfu_xchan *ch;
} cfl_xchan;

static void msg_discard(cfu_xmsg *m) {
  cfl_copy_release(m->data, m->len);
  free(m);
}

/* __gc (also called by hand: any self that is not a channel is left alone) */
static int xchan_gc(lua_State *L) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (o && o->ch) {
    cfu_xchan_unref(o->ch);
    o->ch = NULL;
  }
  return 0;
}

cfu_xchan *cfl_toxchan(lua_State *L, int idx) {
  cfl_xchan *o = luaL_testudata(L, idx, XCHAN_MT);
  return o ? o->ch : NULL;
}

static cfu_xchan *check_xchan(lua_State *L, const char *fname) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (!o) cfl_raise_self(L, 1, fname, "a thread channel");
  if (!o->ch) luaL_error(L, "%s: the channel was finalised (its __gc was called)", fname);
  return o->ch;
}

/* The value at idx as a message; raises naming fname. */
static cfu_xmsg *encode_msg(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx))
    luaL_error(L, "%s: argument #%d must not be nil (nil marks a closed channel)", fname, idx);
  cfl_buf b = {NULL, 0, 0};
  char err[160];
  if (cfl_encode(L, idx, &b, err)) {
    cfl_buf_discard(&b);
    luaL_error(L, "%s: argument #%d: %s", fname, idx, err);
  }
  cfu_xmsg *m = malloc(sizeof *m + b.len);
  if (!m) {
    cfl_buf_discard(&b);
    luaL_error(L, "%s: out of memory", fname);
  }
  m->link.next = m->link.prev = NULL;
  m->len = b.len;
  memcpy(m->data, b.p, b.len);
  free(b.p); /* its references now belong to the message */
  return m;
}

/* Push the value of m and free it; 1, or raises if corrupt. */
static int push_msg(lua_State *L, cfu_xmsg *m) {
  size_t pos = 0;
  int bad = cfl_decode(L, m->data, m->len, &pos);
  if (bad) cfl_copy_release(m->data + pos, m->len - pos);
  free(m);
  if (bad) luaL_error(L, "thread channel: corrupt message");
  return 1;
}

/* channel:send_blocking(v) -> true, or nil, "closed" (worker threads) */
static int c_send_blocking(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:send_blocking");
  cfu_parker *pk = cfl_blocking_parker(L, "channel:send_blocking");
  cfu_xmsg *m = encode_msg(L, 2, "channel:send_blocking");
  cfu_xwait w = {{NULL, NULL}, pk, NULL};
  for (;;) {
    int r = cfu_xchan_send(ch, m, &w);
    if (r == CFU_X_OK) break;
    if (r == CFU_X_CLOSED) {
      msg_discard(m);
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    if (cfu_park(pk, 0) == CFU_PARK_CANCELLED) {
      cfu_xchan_unwait(ch, &w);
      msg_discard(m);
      return cfl_call_raise_cancelled(L);
    }
  }
  cfu_xchan_unwait(ch, &w);
  lua_pushboolean(L, 1);
  return 1;
}

/* channel:recv_blocking([timeout_ms]) -> value; nil once closed and drained;
 * nil, "timeout" (worker threads) */
static int c_recv_blocking(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:recv_blocking");
  uint64_t timeout = 0;
  if (!lua_isnoneornil(L, 2)) {
    timeout = cfl_thread_ms_to_ns(cfl_check_ms(L, 2, "channel:recv_blocking"));
  }
  cfu_parker *pk = cfl_blocking_parker(L, "channel:recv_blocking");
  uint64_t deadline = timeout ? uv_hrtime() + timeout : 0;
  cfu_xwait w = {{NULL, NULL}, pk, NULL};
  for (;;) {
    cfu_xmsg *m = NULL;
    int r = cfu_xchan_recv(ch, &m, &w);
    if (r == CFU_X_OK) {
      cfu_xchan_unwait(ch, &w);
      return push_msg(L, m);
    }
    if (r == CFU_X_CLOSED) {
      lua_pushnil(L);
      return 1;
    }
    uint64_t left = 0;
    if (deadline) {
      uint64_t now = uv_hrtime();
      left = now < deadline ? deadline - now : 0;
      if (!left) {
        cfu_xchan_unwait(ch, &w);
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
      }
    }
    if (cfu_park(pk, left) == CFU_PARK_CANCELLED) {
      cfu_xchan_unwait(ch, &w);
      return cfl_call_raise_cancelled(L);
    }
  }
}

/* channel:try_recv() -> value, or nil, "empty" | "closed" (never waits) */
static int c_try_recv(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:try_recv");
  cfu_xmsg *m = NULL;
  int r = cfu_xchan_recv(ch, &m, NULL);
  if (r == CFU_X_OK) return push_msg(L, m);
  lua_pushnil(L);
  if (r == CFU_X_CLOSED)
    lua_pushliteral(L, "closed");
  else
    lua_pushliteral(L, "empty");
  return 2;
}

static int c_close(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan_close(check_xchan(L, "channel:close"));
  return 0;
}

static int c_is_closed(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:is_closed");
  lua_pushboolean(L, cfu_xchan_is_closed(ch));
  return 1;
}

static int c_len(lua_State *L) {
  cfl_thread_check_runtime(L);
  cfu_xchan *ch = check_xchan(L, "channel:len");
  lua_pushinteger(L, (lua_Integer)cfu_xchan_len(ch));
  return 1;
}

static int c_tostring(lua_State *L) {
  cfl_xchan *o = luaL_testudata(L, 1, XCHAN_MT);
  if (o && !o->ch) {
    lua_pushfstring(L, "cfuture.ThreadChannel(finalised): %p", (void *)o);
    return 1;
  }
  lua_pushfstring(L, "cfuture.ThreadChannel: %p", (void *)check_xchan(L, "channel:__tostring"));
  return 1;
}

/* -- send / recv as futures, on a runtime's loop thread -- */

typedef struct cfl_xop {
  cfl_future hdr;
  cfu_xchan *ch;  /* referenced */
  cfu_xmsg *msg;  /* send: to deliver; recv: the one received */
  cfu_xwait wait; /* registered on the channel while pending */
  cfu_mail mail;  /* the channel's wake, delivered on the loop thread */
  cf_waker waker; /* the awaiting task */
  cfl_threads *ts;
  uint8_t is_send;
  uint8_t closed; /* the channel was closed */
  uint8_t held;   /* holds the inbox (the loop stays alive while it waits) */
} cfl_xop;

static void xop_fire(cfu_mail *m) {
  cfl_xop *f = cf__container_of(m, cfl_xop, mail);
  cf_waker_wake(&f->waker);
}

static void xop_unhold(cfl_xop *f) {
  if (f->held) {
    f->held = 0;
    cfu_threads_release(&f->ts->hub);
  }
}

static cf_poll xop_poll(cf_future *base, cf_context *cx) {
  cfl_xop *f = (cfl_xop *)base;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  int r;
  if (f->is_send) {
    r = cfu_xchan_send(f->ch, f->msg, &f->wait);
    if (r == CFU_X_OK) f->msg = NULL;
  } else
    r = cfu_xchan_recv(f->ch, &f->msg, &f->wait);
  if (r == CFU_X_WAIT) {
    cf_waker_set(&f->waker, cx->waker);
    if (!f->held) {
      f->held = 1;
      cfu_threads_hold(&f->ts->hub);
    }
    return CF_PENDING;
  }
  f->closed = r == CFU_X_CLOSED;
  cfu_xchan_unwait(f->ch, &f->wait);
  xop_unhold(f);
  return cfl_ready(&f->hdr);
}

static void xop_release(cfl_future *base) {
  cfl_xop *f = (cfl_xop *)base;
  if (!f->ch) return;
  cfu_xchan_unwait(f->ch, &f->wait); /* after this no thread posts f->mail */
  cfu_mail_cancel(&f->mail);
  cf_waker_drop(&f->waker);
  xop_unhold(f);
  if (f->msg) msg_discard(f->msg);
  f->msg = NULL;
  cfu_xchan_unref(f->ch);
  f->ch = NULL;
  cfl_threads_unref(f->ts);
}

static int xop_take(lua_State *L, cfl_future *base) {
  cfl_xop *f = (cfl_xop *)base;
  f->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  if (f->is_send) {
    if (f->closed) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      n = 2;
    } else
      lua_pushboolean(L, 1);
  } else if (f->msg) {
    cfu_xmsg *m = f->msg;
    f->msg = NULL;
    size_t pos = 0;
    if (cfl_decode(L, m->data, m->len, &pos)) {
      cfl_copy_release(m->data + pos, m->len - pos);
      lua_pushliteral(L, "thread channel: corrupt message");
      n = -1;
    }
    free(m);
  } else
    lua_pushnil(L);
  xop_release(&f->hdr);
  return n;
}

static const cfl_class xop_class = {
    .vt = {.poll = xop_poll, .drop = cfl_drop_released},
    .release = xop_release,
    .name = "thread channel",
    .take = xop_take,
};

static int new_xop(lua_State *L, int is_send, const char *fname) {
  cfu_xchan *ch = check_xchan(L, fname);
  cf_runtime *rt = cf_runtime_of(L);
  if (!rt)
    return luaL_error(L,
                      "%s: no cfuture runtime drives this thread (on a worker use %s_blocking, "
                      "or run a runtime there with require \"cfuture\")",
                      fname, is_send ? "send" : "recv");
  if (rt->closed) return cfl_raise_closed(L);
  cfl_threads *ts = cfl_threads_of(L, rt);
  cfu_xmsg *m = is_send ? encode_msg(L, 2, fname) : NULL;
  cfl_xop *f = (cfl_xop *)cfl_new_future(L, rt, &xop_class, sizeof *f);
  f->ch = ch;
  cfu_xchan_ref(ch);
  f->msg = m;
  f->is_send = (uint8_t)is_send;
  f->ts = cfl_threads_ref(ts);
  f->wait.mail = &f->mail;
  cfu_mail_init(&f->mail, cfu_threads_inbox(&ts->hub), xop_fire);
  return 1;
}

/* channel:send(v) -> future of true once queued, or nil, "closed" */
static int c_send(lua_State *L) {
  cfl_thread_check_runtime(L);
  return new_xop(L, 1, "channel:send");
}

/* channel:recv() -> future of the next value, nil once closed and drained */
static int c_recv(lua_State *L) {
  cfl_thread_check_runtime(L);
  return new_xop(L, 0, "channel:recv");
}

static const luaL_Reg xchan_methods[] = {{"send", c_send},
                                         {"recv", c_recv},
                                         {"send_blocking", c_send_blocking},
                                         {"recv_blocking", c_recv_blocking},
                                         {"try_recv", c_try_recv},
                                         {"close", c_close},
                                         {"is_closed", c_is_closed},
                                         {"len", c_len},
                                         {NULL, NULL}};

/* Push the channel metatable of L, creating it in a state that has none. */
static void push_xchan_mt(lua_State *L) {
  if (luaL_newmetatable(L, XCHAN_MT)) {
    lua_pushcfunction(L, xchan_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, xchan_methods);
    lua_setfield(L, -2, "__index");
  }
}

void cfl_push_xchan(lua_State *L, cfu_xchan *ch) {
  cfl_xchan *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->ch = ch;
  push_xchan_mt(L);
  lua_setmetatable(L, -2);
}

/* cf.thread.channel([capacity]) -> a channel between threads (unbounded without capacity) */
int cfl_thread_channel(lua_State *L) {
  cfl_thread_check_runtime(L);
  lua_Integer cap = 0;
  if (!lua_isnoneornil(L, 1))
    cap = cfl_check_int_range(L, 1, "thread.channel", "argument #1 (capacity)", 1, MAX_QUEUE);
  cfl_xchan *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->ch = NULL;
  push_xchan_mt(L);
  lua_setmetatable(L, -2);
  o->ch = cfu_xchan_new((size_t)cap, msg_discard);
  if (!o->ch) return luaL_error(L, "thread.channel: out of memory");
  return 1;
}

/* The channel metatable of a runtime's state, its methods with the runtime. */
void cfl_open_xchan(lua_State *L, cf_runtime *rt) {
  luaL_newmetatable(L, XCHAN_MT);
  lua_pushcfunction(L, xchan_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, c_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  cfl_setfuncs(L, rt, xchan_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
