/*
 * channel.c — cf.channel: the channel between tasks; its receive and send
 * are futures.
 *
 * Ground rules
 * - Channel: the channel object is also its receive future (shared, like a
 *   JoinHandle), so `ch:recv():await()` allocates nothing; a combinator
 *   gets a receive future of its own (recv_op). Messages stay in the
 *   channel until a receiver takes them: a waiting receiver is *promised*
 *   one message (cf_waitlist_notify_one) and newcomers may take only what
 *   is not promised, so waiters are served in arrival order; a receiver
 *   cancelled with a promise passes it on (cf_waiter_cancel). A recv_op
 *   that is ready holds a reservation until it is taken or dropped. The
 *   same scheme, with room instead of messages, serves waiting senders.
 * - A channel's messages are a ring in the array part of a table that sits
 *   in stack slot 1 of a private Lua thread (the channel's uservalue), so
 *   C code that holds only the channel reaches it: a send or receive is one
 *   array store or load, never a hash lookup. The ring grows by doubling
 *   (never beyond the capacity) into a new table allocated on the calling
 *   thread, so running out of memory raises there as a normal Lua error.
 *   (A ring in the thread's own stack slots stops growing where
 *   lua_checkstack refuses: at 524,288 messages on 5.4, LUAI_MAXSTACK, and
 *   at 4,096 on LuaJIT, LUAI_MAXCSTACK.) A waiting send keeps its
 *   value in its uservalue table, found again through cfl_push_self.
 * - A channel holds at most MAX_QUEUED messages, checked where they enter.
 */
#include <stdio.h>

#include "cfl.h"

static const char NIL_MARK = 'n'; /* stands for a nil message in a buffer */

/* ---- channels ------------------------------------------------------------ */

typedef struct cfl_chan {
  cfl_future hdr;        /* polling it receives */
  lua_Integer cap;       /* 0: unbounded */
  lua_State *buf;        /* messages: a ring in this thread's stack slots */
  lua_Integer size;      /* ring slots */
  lua_Integer head;      /* 0-based slot of the oldest message */
  lua_Integer count;     /* messages queued */
  lua_Integer reserved;  /* messages held by ready recv_ops */
  lua_Integer room_held; /* room held by ready send_ops */
  cf_waitlist recvq, sendq;
  uint8_t closed;
} cfl_chan;

#define COUNT(ch) ((ch)->count)
/* Most messages a channel holds (the largest capacity, and the bound of an
 * unbounded channel): 2^27, well below the array limits of 5.4 (2^31) and
 * LuaJIT (2^28), and 2 GiB of slots on 5.4. */
#define MAX_QUEUED ((lua_Integer)1 << 27)
#define RING_MIN 8
#define RING_KEEP 4096 /* an emptied ring bigger than this is let go */

static const cfl_class cfl_chan_class;

static int is_chan(cfl_future *f) { return f && f->base.vt == &cfl_chan_class.vt; }

/* Messages a receiver may take: not promised to others, not reserved. */
static lua_Integer recv_available(cfl_chan *ch, cf_waiter *w) {
  int mine = w && w->notified_by == &ch->recvq;
  return COUNT(ch) - ch->reserved - (lua_Integer)ch->recvq.notified + mine;
}

static lua_Integer send_room(cfl_chan *ch, cf_waiter *w) {
  if (ch->cap == 0) return COUNT(ch) < MAX_QUEUED;
  int mine = w && w->notified_by == &ch->sendq;
  return ch->cap - COUNT(ch) - ch->room_held - (lua_Integer)ch->sendq.notified + mine;
}

/* Move the messages into a ring twice the size (at most the capacity), in
 * order from slot 1. The new table is made on L, the running thread: an
 * allocation error raises there (never on the ring's thread). */
static void buffer_grow(lua_State *L, cfl_chan *ch) {
  lua_State *b = ch->buf;
  lua_Integer size = ch->size, limit = ch->cap ? ch->cap : MAX_QUEUED;
  lua_Integer nsize = size ? size * 2 : RING_MIN;
  if (nsize > limit) nsize = limit;
  luaL_checkstack(L, 3, NULL);
  lua_createtable(L, (int)nsize, 0);
  if (size) {
    lua_pushvalue(b, 1);
    lua_xmove(b, L, 1);
    for (lua_Integer i = 0; i < ch->count; i++) {
      lua_rawgeti(L, -1, (ch->head + i) % size + 1);
      lua_rawseti(L, -3, i + 1);
    }
    lua_pop(L, 1);
  }
  lua_settop(b, 0);
  lua_xmove(L, b, 1);
  ch->head = 0;
  ch->size = nsize;
}

/* Append the value on L's top (popped) to the buffer. */
static void buffer_push(lua_State *L, cfl_chan *ch) {
  if (ch->count == ch->size) buffer_grow(L, ch);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)&NIL_MARK);
  }
  lua_Integer slot = ch->head + ch->count; /* both < size */
  if (slot >= ch->size) slot -= ch->size;
  lua_xmove(L, ch->buf, 1);
  lua_rawseti(ch->buf, 1, slot + 1);
  ch->count++;
  cf_waitlist_notify_one(&ch->recvq); /* promise it to a waiting receiver */
}

/* Push the oldest message onto L and remove it from the buffer. */
static void buffer_pop(lua_State *L, cfl_chan *ch) {
  lua_State *b = ch->buf;
  lua_Integer slot = ch->head + 1;
  luaL_checkstack(L, 2, NULL);
  lua_rawgeti(b, 1, slot);
  lua_xmove(b, L, 1);
  lua_pushnil(b);
  lua_rawseti(b, 1, slot);
  ch->head = slot == ch->size ? 0 : slot;
  if (--ch->count == 0) {
    ch->head = 0;
    if (ch->size > RING_KEEP) { /* a burst grew the ring: let it go */
      lua_settop(b, 0);
      ch->size = 0;
    }
  }
  if (lua_touserdata(L, -1) == (void *)&NIL_MARK) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  if (ch->cap) cf_waitlist_notify_one(&ch->sendq); /* room for a waiting sender */
}

/* The channel as its own receive future (coroutine poll sites only: they
 * take the message right after READY). */
static cf_poll chan_poll(cf_future *base, cf_context *cx) {
  cfl_chan *ch = (cfl_chan *)base;
  if (recv_available(ch, cx->waiter) > 0 || ch->closed) {
    cf_waiter_consume(cx->waiter);
    return CF_READY;
  }
  cf_waitlist_register(&ch->recvq, cx);
  return CF_PENDING;
}

static void chan_drop(cf_future *base) { (void)base; }

/* message -> value, true; closed and drained -> nil, false */
static int recv_result(lua_State *L, cfl_chan *ch, int have) {
  luaL_checkstack(L, 2, NULL);
  if (!have) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
  }
  buffer_pop(L, ch);
  lua_pushboolean(L, 1);
  return 2;
}

static int chan_take(lua_State *L, cfl_future *f) {
  cfl_chan *ch = (cfl_chan *)f;
  return recv_result(L, ch, recv_available(ch, NULL) > 0);
}

static void chan_describe(lua_State *L, cfl_future *f) {
  cfl_chan *ch = (cfl_chan *)f;
  lua_pushfstring(L, "channel recv (%d queued%s)", (int)COUNT(ch), ch->closed ? ", closed" : "");
}

/* A receive future of its own, for combinators. */
typedef struct recv_op {
  cfl_future hdr;
  cfl_chan *ch;  /* kept alive by the uservalue */
  uint8_t holds; /* a message is reserved for it */
} recv_op;

static cf_poll recv_poll(cf_future *base, cf_context *cx) {
  recv_op *op = (recv_op *)base;
  cfl_chan *ch = op->ch;
  if (cfl_polled_out(&op->hdr)) return CF_READY;
  if (recv_available(ch, cx->waiter) > 0) {
    cf_waiter_consume(cx->waiter);
    ch->reserved++;
    op->holds = 1;
    return cfl_ready(&op->hdr);
  }
  if (ch->closed) {
    return cfl_ready(&op->hdr);
  }
  op->hdr.state = CFL_ST_PENDING;
  cf_waitlist_register(&ch->recvq, cx);
  return CF_PENDING;
}

static void recv_drop(cf_future *base) {
  recv_op *op = (recv_op *)base;
  if (op->holds) { /* give the reserved message back to the other receivers */
    op->holds = 0;
    op->ch->reserved--;
    cf_waitlist_notify_one(&op->ch->recvq);
  }
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

static int recv_take(lua_State *L, cfl_future *f) {
  recv_op *op = (recv_op *)f;
  int have = op->holds;
  if (op->holds) {
    op->holds = 0;
    op->ch->reserved--;
  }
  f->state = CFL_ST_TAKEN;
  return recv_result(L, op->ch, have);
}

static void recv_describe(lua_State *L, cfl_future *f) {
  chan_describe(L, &((recv_op *)f)->ch->hdr);
}

static const cfl_class recv_op_class = {
    .vt = {.poll = recv_poll, .drop = recv_drop},
    .name = "channel recv",
    .take = recv_take,
    .describe = recv_describe,
    .nuv = 1,
};

static cfl_future *own_recv(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  cfl_chan *ch = lua_touserdata(L, idx); /* the caller checked it is one */
  recv_op *op = (recv_op *)cfl_new_future(L, ch->hdr.rt, &recv_op_class, sizeof(recv_op));
  op->ch = ch;
  lua_pushvalue(L, idx);
  cfl_setuservalue(L, -2);
  lua_replace(L, idx);
  return &op->hdr;
}

/* A send that waits for room in a full bounded channel. The value waits in
 * the op's uservalue table {channel, value}. */
typedef struct send_op {
  cfl_future hdr;
  cfl_chan *ch;
  cf_waiter waiter;
  uint8_t holds; /* room is reserved for it */
} send_op;

static cf_poll send_poll(cf_future *base, cf_context *cx) {
  send_op *op = (send_op *)base;
  cfl_chan *ch = op->ch;
  if (cfl_polled_out(&op->hdr)) return CF_READY;
  if (ch->closed) {
    cf_waiter_cancel(&op->waiter);
    return cfl_failed(&op->hdr);
  }
  if (send_room(ch, &op->waiter) > 0) {
    cf_waiter_consume(&op->waiter);
    cf_waiter_cancel(&op->waiter);
    ch->room_held++;
    op->holds = 1;
    return cfl_ready(&op->hdr);
  }
  op->hdr.state = CFL_ST_PENDING;
  cf_context own = {cx->waker, &op->waiter};
  cf_waitlist_register(&ch->sendq, &own);
  return CF_PENDING;
}

static void send_drop(cf_future *base) {
  send_op *op = (send_op *)base;
  cf_waiter_cancel(&op->waiter); /* passes on room promised to it */
  if (op->holds) {
    op->holds = 0;
    op->ch->room_held--;
    cf_waitlist_notify_one(&op->ch->sendq);
  }
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

static int send_take(lua_State *L, cfl_future *f) {
  send_op *op = (send_op *)f;
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st == CFL_ST_FAILED || op->ch->closed) {
    if (op->holds) {
      op->holds = 0;
      op->ch->room_held--;
    }
    lua_pushliteral(L, "send: the channel was closed before the message could be sent");
    return -1;
  }
  op->holds = 0;
  op->ch->room_held--;
  luaL_checkstack(L, 3, NULL);
  cfl_push_self(L, op);
  cfl_getuservalue(L, -1);
  lua_rawgeti(L, -1, 2);
  lua_replace(L, -3);
  lua_pop(L, 1);
  buffer_push(L, op->ch);
  return 0;
}

static void send_describe(lua_State *L, cfl_future *f) {
  (void)f;
  lua_pushliteral(L, "channel send (waiting for room)");
}

static const cfl_class send_op_class = {
    .vt = {.poll = send_poll, .drop = send_drop},
    .name = "channel send",
    .take = send_take,
    .describe = send_describe,
    .nuv = 1,
};

/* The future a send that went through at once returns: ready, no results. */
static cf_poll done_poll(cf_future *base, cf_context *cx) {
  (void)base;
  (void)cx;
  return CF_READY;
}
static void done_drop(cf_future *base) { (void)base; }
static int done_take(lua_State *L, cfl_future *f) {
  (void)L;
  (void)f;
  return 0;
}
static const cfl_class done_class = {
    .vt = {.poll = done_poll, .drop = done_drop}, .name = "sent", .take = done_take, .shared = 1};

/* The channel at index 1. */
static cfl_chan *check_chan(lua_State *L, const char *fname) {
  cf_runtime *rt = cfl_rt_named(L, fname);
  cfl_future *f = cfl_tofuture_p(L, 1, rt, lua_touserdata(L, 1));
  if (!is_chan(f))
    luaL_error(L, "%s: argument #1 must be a channel (got %s)", fname,
               f ? cfl_class_of(f)->name : cfl_what_is(L, 1));
  return (cfl_chan *)f;
}

/* cf.channel([capacity]) -> channel; no capacity: unbounded. The ring
 * starts empty and grows with the messages, whatever the capacity. */
static int l_channel(lua_State *L) {
  cf_runtime *rt = cfl_rt_named(L, "channel");
  lua_Integer cap = 0;
  if (!lua_isnoneornil(L, 1))
    cap = cfl_check_int_range(L, 1, "channel", "argument #1", 1, MAX_QUEUED);
  cfl_chan *ch = (cfl_chan *)cfl_new_future(L, rt, &cfl_chan_class, sizeof(cfl_chan));
  ch->cap = cap;
  cf_waitlist_init(&ch->recvq);
  cf_waitlist_init(&ch->sendq);
  ch->buf = lua_newthread(L);
  cfl_setuservalue(L, -2);
  return 1;
}

/* ch:recv() -> future of (value, true), or (nil, false) once closed and drained */
static int c_recv(lua_State *L) {
  check_chan(L, "recv");
  lua_settop(L, 1);
  return 1;
}

/* ch:try_recv() -> true, value | false, "empty" | false, "closed" */
static int c_try_recv(lua_State *L) {
  cfl_chan *ch = check_chan(L, "try_recv");
  if (recv_available(ch, NULL) > 0) {
    lua_pushboolean(L, 1);
    buffer_pop(L, ch);
    return 2;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, ch->closed ? "closed" : "empty");
  return 2;
}

/* ch:send(v) -> future: sent at once when there is room (the future is
 * already complete), else sent when room appears. Raises if closed. */
static int c_send(lua_State *L) {
  cfl_chan *ch = check_chan(L, "send");
  lua_settop(L, 2);
  if (ch->closed) return luaL_error(L, "send: the channel is closed");
  if (send_room(ch, NULL) > 0) {
    buffer_push(L, ch);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ch->hdr.rt->ref.sent);
    return 1;
  }
  if (ch->cap == 0)
    return luaL_error(L, "send: the unbounded channel already holds %d messages", (int)MAX_QUEUED);
  send_op *op = (send_op *)cfl_new_future(L, ch->hdr.rt, &send_op_class, sizeof(send_op));
  op->ch = ch;
  cf_waiter_init(&op->waiter);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  cfl_setuservalue(L, -2);
  cfl_register_self(L, -1);
  return 1;
}

/* ch:try_send(v) -> true | false, "full" | false, "closed" */
static int c_try_send(lua_State *L) {
  cfl_chan *ch = check_chan(L, "try_send");
  lua_settop(L, 2);
  if (ch->closed || send_room(ch, NULL) <= 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, ch->closed ? "closed" : "full");
    return 2;
  }
  buffer_push(L, ch);
  lua_pushboolean(L, 1);
  return 1;
}

/* ch:close(): no more sends; receivers drain what is queued, then get nil */
static int c_close(lua_State *L) {
  cfl_chan *ch = check_chan(L, "close");
  if (!ch->closed) {
    ch->closed = 1;
    cf_waitlist_wake_all(&ch->recvq);
    cf_waitlist_wake_all(&ch->sendq);
  }
  return 0;
}

static int c_len(lua_State *L) {
  lua_pushinteger(L, COUNT(check_chan(L, "len")));
  return 1;
}

static int c_capacity(lua_State *L) {
  cfl_chan *ch = check_chan(L, "capacity");
  if (ch->cap)
    lua_pushinteger(L, ch->cap);
  else
    lua_pushnil(L);
  return 1;
}

static int c_is_closed(lua_State *L) {
  lua_pushboolean(L, check_chan(L, "is_closed")->closed);
  return 1;
}

/* _sync.check_iter(ch): raise unless ch is a channel (ch:iter()) */
static int l_check_iter(lua_State *L) {
  check_chan(L, "iter");
  return 0;
}

/* ---- registration ----------------------------------------------------------- */

static const luaL_Reg chan_methods[] = {
    {"recv", c_recv},         {"try_recv", c_try_recv},   {"send", c_send},
    {"try_send", c_try_send}, {"close", c_close},         {"len", c_len},
    {"capacity", c_capacity}, {"is_closed", c_is_closed}, {NULL, NULL}};

static const cfl_class cfl_chan_class = {
    .vt = {.poll = chan_poll, .drop = chan_drop},
    .name = "channel",
    .type = "cfuture.Channel",
    .methods = chan_methods,
    .take = chan_take,
    .describe = chan_describe,
    .shared = 1,
    .nuv = 1,
    .own = own_recv,
};

static const luaL_Reg funcs[] = {{"channel", l_channel}, {NULL, NULL}};

/* Module table on top (after the sync subsystem, which made cf._sync). */
static void open_channel(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_getfield(L, -1, "_sync");
  static const luaL_Reg internal[] = {{"check_iter", l_check_iter}, {NULL, NULL}};
  cfl_setfuncs(L, rt, internal);
  lua_pop(L, 1);
  /* the shared "already sent" future */
  cfl_new_future(L, rt, &done_class, sizeof(cfl_future));
  rt->ref.sent = luaL_ref(L, LUA_REGISTRYINDEX);
}

const cfl_module cfl_channel_module = {.name = "channel", .open = open_channel};
