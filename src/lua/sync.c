/*
 * sync.c — channels, semaphores and notify: every wait a future.
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
 * - Semaphore: permits are assigned to waiters in FIFO order by release;
 *   an acquire cancelled after its permits were assigned gives them back.
 * - Notify: notify_one promises one waiter (or stores one permit when none
 *   waits); notify_all wakes the current waiters through a generation count.
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
 * - Counts are range-checked where they enter: a channel holds at most
 *   MAX_QUEUED messages, a semaphore at most MAX_PERMITS permits in all
 *   (free and handed out), so no sum can wrap.
 */
#include <stdio.h>

#include "cfl.h"

static const char NIL_MARK = 'n'; /* stands for a nil message in a buffer */

/* What the value at idx is, for messages: its metatable's __name, or its
 * type (the metatable keeps the name alive). */
static const char *what_is(lua_State *L, int idx) {
  const char *kind = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name")) {
    if (lua_type(L, -1) == LUA_TSTRING) kind = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return kind;
}

/* The runtime, as cfl_rt, but the message names fname (cfl_rt finds no
 * name for a function called by pcall). */
static cf_runtime *rt_open(lua_State *L, const char *fname) {
  cf_runtime *rt = (cf_runtime *)lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  if (rt->closed) luaL_error(L, "%s: the cfuture runtime is closed", fname);
  return rt;
}

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

extern const cfl_class cfl_chan_class;

static int is_chan(cfl_future *f) { return f && f->base.vt == &cfl_chan_class.core; }

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
    .core = {.poll = recv_poll, .drop = recv_drop},
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
    .core = {.poll = send_poll, .drop = send_drop},
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
    .core = {.poll = done_poll, .drop = done_drop}, .name = "sent", .take = done_take, .shared = 1};

/* The channel at index 1. */
static cfl_chan *check_chan(lua_State *L, const char *fname) {
  cf_runtime *rt = rt_open(L, fname);
  cfl_future *f = cfl_tofuture_p(L, 1, rt, lua_touserdata(L, 1));
  if (!is_chan(f))
    luaL_error(L, "%s: argument #1 must be a channel (got %s)", fname,
               f ? cfl_class_of(f)->name : what_is(L, 1));
  return (cfl_chan *)f;
}

/* cf.channel([capacity]) -> channel; no capacity: unbounded. The ring
 * starts empty and grows with the messages, whatever the capacity. */
static int l_channel(lua_State *L) {
  cf_runtime *rt = rt_open(L, "channel");
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
    lua_rawgeti(L, LUA_REGISTRYINDEX, ch->hdr.rt->sent);
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

/* ---- semaphores --------------------------------------------------------- */

/* Most permits a semaphore has in all, free and handed out (tokio has
 * MAX_PERMITS): 2^53, exact as a LuaJIT number. Releases only move permits
 * back, so no count can wrap. */
#define MAX_PERMITS ((lua_Integer)1 << 53)
#define SEM_MT "cfuture.Semaphore"
#define PERMIT_MT "cfuture.Permit"

typedef struct cfl_sem {
  lua_Integer permits; /* free */
  lua_Integer total;   /* free and handed out: the initial count plus add_permits */
  cf_link queue;       /* acquire ops in arrival order */
  uint8_t lock;        /* a mutex's or rwlock's: its permits are guards */
} cfl_sem;

typedef struct acq_op {
  cfl_future hdr;
  cfl_sem *sem; /* kept alive by the uservalue */
  lua_Integer n;
  cf_link link;
  cf_waker waker;
  uint8_t assigned;
} acq_op;

/* Hand permits to the waiters at the head of the queue, in order. */
static void sem_assign(cfl_sem *s) {
  while (!cf__list_empty(&s->queue)) {
    acq_op *op = cf__container_of(s->queue.next, acq_op, link);
    if (op->n > s->permits) break;
    s->permits -= op->n;
    op->assigned = 1;
    cf__list_remove(&op->link);
    cf_waker_wake(&op->waker);
  }
}

static void sem_release(cfl_sem *s, lua_Integer n) {
  s->permits += n; /* at most total: every permit handed out came from it */
  sem_assign(s);
}

static cf_poll acq_poll(cf_future *base, cf_context *cx) {
  acq_op *op = (acq_op *)base;
  cfl_sem *s = op->sem;
  if (op->assigned || cfl_polled_out(&op->hdr)) {
    if (!cfl_polled_out(&op->hdr)) op->hdr.state = CFL_ST_READY;
    return CF_READY;
  }
  if (op->hdr.state == CFL_ST_FRESH) {
    op->hdr.state = CFL_ST_PENDING;
    if (cf__list_empty(&s->queue) && s->permits >= op->n) {
      s->permits -= op->n;
      op->assigned = 1;
      return cfl_ready(&op->hdr);
    }
    cf__list_push_back(&s->queue, &op->link);
  }
  cf_waker_set(&op->waker, cx->waker);
  return CF_PENDING;
}

static void acq_drop(cf_future *base) {
  acq_op *op = (acq_op *)base;
  cf_waker_drop(&op->waker);
  if (cf__link_linked(&op->link)) {
    cf__list_remove(&op->link);
    sem_assign(op->sem); /* the next waiter may fit now */
  }
  if (op->assigned) { /* permits it never handed out go back */
    op->assigned = 0;
    sem_release(op->sem, op->n);
  }
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

/* Permit objects: what an acquire gives; releasing returns the permits. A
 * lock semaphore's permits are guards: the same object, "unlock" in its
 * messages. */
typedef struct cfl_permit {
  cfl_sem *sem; /* kept alive by the uservalue */
  lua_Integer n;
  uint8_t released; /* released in full: another release raises */
} cfl_permit;

/* Push a permit of n of s's permits (the caller sets its uservalue to s). */
static void push_permit(lua_State *L, cfl_sem *s, lua_Integer n) {
  cfl_permit *p = lua_newuserdatauv(L, sizeof *p, 1);
  p->sem = s;
  p->n = n;
  p->released = 0;
  luaL_setmetatable(L, PERMIT_MT);
}

static int acq_take(lua_State *L, cfl_future *f) {
  acq_op *op = (acq_op *)f;
  f->state = CFL_ST_TAKEN;
  if (!op->assigned) {
    cfl_push_cancelled(L, f->rt, "the acquire was cancelled");
    return -1;
  }
  op->assigned = 0;
  luaL_checkstack(L, 3, NULL);
  push_permit(L, op->sem, op->n);
  cfl_push_self(L, op);
  cfl_getuservalue(L, -1);
  lua_remove(L, -2);
  cfl_setuservalue(L, -2);
  return 1;
}

static void acq_describe(lua_State *L, cfl_future *f) {
  acq_op *op = (acq_op *)f;
  char buf[96];
  snprintf(buf, sizeof buf, "%s (%lld permit(s), %lld free)", op->sem->lock ? "lock" : "acquire",
           (long long)op->n, (long long)op->sem->permits);
  lua_pushstring(L, buf);
}

static const cfl_class acq_class = {
    .core = {.poll = acq_poll, .drop = acq_drop},
    .name = "acquire",
    .take = acq_take,
    .describe = acq_describe,
    .nuv = 1,
};

static cfl_sem *check_sem(lua_State *L, const char *fname) {
  rt_open(L, fname);
  cfl_sem *s = luaL_testudata(L, 1, SEM_MT);
  if (!s) luaL_error(L, "%s: argument #1 must be a semaphore (got %s)", fname, what_is(L, 1));
  return s;
}

/* A count of permits: an integer from 0 to MAX_PERMITS, dflt when absent. */
static lua_Integer check_count(lua_State *L, int idx, const char *fname, lua_Integer dflt) {
  if (dflt >= 0 && lua_isnoneornil(L, idx)) return dflt;
  int isint;
  lua_Integer n = lua_tointegerx(L, idx, &isint);
  if (isint && n >= 0 && n <= MAX_PERMITS) return n; /* no message to build */
  char what[16];
  snprintf(what, sizeof what, "argument #%d", idx);
  return cfl_check_int_range(L, idx, fname, what, 0, MAX_PERMITS);
}

static int new_semaphore(lua_State *L, const char *fname, int lock) {
  rt_open(L, fname);
  lua_Integer n = check_count(L, 1, fname, -1);
  cfl_sem *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->permits = s->total = n;
  s->lock = (uint8_t)lock;
  cf__list_init(&s->queue);
  luaL_setmetatable(L, SEM_MT);
  return 1;
}

/* cf.semaphore(permits) -> semaphore */
static int l_semaphore(lua_State *L) { return new_semaphore(L, "semaphore", 0); }

/* The semaphore under a mutex or rwlock (sync.lua only): guards. */
static int l_lock_semaphore(lua_State *L) { return new_semaphore(L, "lock_semaphore", 1); }

/* sem:acquire([n = 1]) -> future of a permit (release it, or let <close> do) */
static int s_acquire(lua_State *L) {
  cfl_sem *s = check_sem(L, "acquire");
  lua_Integer n = check_count(L, 2, "acquire", 1);
  acq_op *op = (acq_op *)cfl_new_future(L, cfl_rt(L), &acq_class, sizeof(acq_op));
  op->sem = s;
  op->n = n;
  op->link.next = op->link.prev = NULL;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  cfl_register_self(L, -1);
  return 1;
}

/* sem:try_acquire([n = 1]) -> permit | nil */
static int s_try_acquire(lua_State *L) {
  cfl_sem *s = check_sem(L, "try_acquire");
  lua_Integer n = check_count(L, 2, "try_acquire", 1);
  if (!cf__list_empty(&s->queue) || s->permits < n) return 0;
  s->permits -= n;
  push_permit(L, s, n);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* sem:add_permits([n = 1]) */
static int s_add_permits(lua_State *L) {
  cfl_sem *s = check_sem(L, "add_permits");
  lua_Integer n = check_count(L, 2, "add_permits", 1);
  if (s->lock)
    return luaL_error(L, "add_permits: argument #1 is the semaphore of a mutex or rwlock, "
                         "which takes no permits");
  if (n > MAX_PERMITS - s->total) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "add_permits: cannot add %lld permit(s): the semaphore has %lld (free and held) "
             "and may have at most %lld",
             (long long)n, (long long)s->total, (long long)MAX_PERMITS);
    return luaL_error(L, "%s", msg);
  }
  s->total += n;
  sem_release(s, n);
  return 0;
}

static int s_available(lua_State *L) {
  lua_pushinteger(L, check_sem(L, "available")->permits);
  return 1;
}

static cfl_permit *check_permit(lua_State *L, const char *fname) {
  rt_open(L, fname);
  cfl_permit *p = luaL_testudata(L, 1, PERMIT_MT);
  if (!p) luaL_error(L, "%s: argument #1 must be a permit (got %s)", fname, what_is(L, 1));
  return p;
}

/* Give back k of p's permits (all when k < 0). */
static void permit_release(cfl_permit *p, lua_Integer k) {
  if (k < 0) k = p->n;
  p->n -= k;
  if (p->n == 0) p->released = 1;
  sem_release(p->sem, k);
}

/* permit:release([k = all]), guard:unlock() */
static int permit_method(lua_State *L, const char *fname) {
  cfl_permit *p = check_permit(L, fname);
  const char *verb = fname; /* the method called: release or unlock */
  if (p->released)
    return luaL_error(L, "%s: the %s was already %s", verb, p->sem->lock ? "guard" : "permit",
                      p->sem->lock ? "unlocked" : "released");
  lua_Integer k = check_count(L, 2, verb, p->n);
  if (k > p->n) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: cannot release %lld permit(s): only %lld held", verb,
             (long long)k, (long long)p->n);
    return luaL_error(L, "%s", msg);
  }
  permit_release(p, k);
  return 0;
}

static int p_release(lua_State *L) { return permit_method(L, "release"); }
static int p_unlock(lua_State *L) {
  lua_settop(L, 1); /* unlock() gives back everything held: no count */
  return permit_method(L, "unlock");
}

static int p_count(lua_State *L) {
  lua_pushinteger(L, check_permit(L, "count")->n);
  return 1;
}

/* __close and __gc give back what is left, quietly; a foreign value or a
 * closed runtime (nothing waits any more) makes them do nothing. */
static int p_finish(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  cfl_permit *p = luaL_testudata(L, 1, PERMIT_MT);
  if (p && !rt->closed && !p->released) permit_release(p, -1);
  return 0;
}

/* ---- notify --------------------------------------------------------------- */

typedef struct cfl_notify {
  cf_waitlist q;
  uint64_t gen; /* notify_all count */
  uint8_t permit;
} cfl_notify;

typedef struct wait_op {
  cfl_future hdr;
  cfl_notify *n; /* kept alive by the uservalue */
  cf_waiter waiter;
  uint64_t gen;
  uint8_t holds; /* ready by a notify_one or the stored permit, not yet taken */
} wait_op;

static cf_poll wait_poll(cf_future *base, cf_context *cx) {
  wait_op *op = (wait_op *)base;
  cfl_notify *n = op->n;
  if (cfl_polled_out(&op->hdr)) return CF_READY;
  int ready = 0;
  if (op->waiter.notified_by == &n->q) {
    cf_waiter_consume(&op->waiter);
    ready = op->holds = 1;
  } else if (op->hdr.state == CFL_ST_PENDING && n->gen != op->gen) {
    ready = 1;
  } else if (op->hdr.state == CFL_ST_FRESH && n->permit) {
    n->permit = 0;
    ready = op->holds = 1;
  }
  if (ready) {
    cf_waiter_cancel(&op->waiter);
    return cfl_ready(&op->hdr);
  }
  if (op->hdr.state == CFL_ST_FRESH) op->gen = n->gen;
  op->hdr.state = CFL_ST_PENDING;
  cf_context own = {cx->waker, &op->waiter};
  cf_waitlist_register(&n->q, &own);
  return CF_PENDING;
}

static void wait_drop(cf_future *base) {
  wait_op *op = (wait_op *)base;
  if (op->waiter.notified_by || op->holds) { /* a notify_one it never used: keep it */
    cf_waiter_consume(&op->waiter);
    op->holds = 0;
    if (!cf_waitlist_notify_one(&op->n->q)) op->n->permit = 1;
  }
  cf_waiter_cancel(&op->waiter);
  if (op->hdr.state != CFL_ST_TAKEN) op->hdr.state = CFL_ST_CANCELLED;
}

static int wait_take(lua_State *L, cfl_future *f) {
  ((wait_op *)f)->holds = 0;
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st != CFL_ST_READY) {
    cfl_push_cancelled(L, f->rt, "the wait was cancelled");
    return -1;
  }
  return 0;
}

static const cfl_class wait_class = {
    .core = {.poll = wait_poll, .drop = wait_drop},
    .name = "notify wait",
    .take = wait_take,
    .nuv = 1,
};

static cfl_notify *check_notify(lua_State *L, const char *fname) {
  rt_open(L, fname);
  cfl_notify *n = luaL_testudata(L, 1, "cfuture.Notify");
  if (!n) luaL_error(L, "%s: argument #1 must be a notify (got %s)", fname, what_is(L, 1));
  return n;
}

static int l_notify(lua_State *L) {
  rt_open(L, "notify");
  cfl_notify *n = lua_newuserdatauv(L, sizeof *n, 0);
  cf_waitlist_init(&n->q);
  n->gen = 0;
  n->permit = 0;
  luaL_setmetatable(L, "cfuture.Notify");
  return 1;
}

/* n:wait() -> future ready at the next notification */
static int n_wait(lua_State *L) {
  check_notify(L, "wait");
  wait_op *op = (wait_op *)cfl_new_future(L, cfl_rt(L), &wait_class, sizeof(wait_op));
  op->n = lua_touserdata(L, 1);
  cf_waiter_init(&op->waiter);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* n:notify_one(): wake one waiter, or let the next wait complete at once */
static int n_notify_one(lua_State *L) {
  cfl_notify *n = check_notify(L, "notify_one");
  if (!cf_waitlist_notify_one(&n->q)) n->permit = 1;
  return 0;
}

/* n:notify_all() -> number woken: wake every current waiter */
static int n_notify_all(lua_State *L) {
  cfl_notify *n = check_notify(L, "notify_all");
  n->gen++;
  lua_pushinteger(L, (lua_Integer)cf_waitlist_wake_all(&n->q));
  return 1;
}

/* ---- what sync.lua builds on ------------------------------------------------ */

/* _sync.closed() -> has the runtime closed? (Lua-side methods check it) */
static int l_closed(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushboolean(L, rt->closed);
  return 1;
}

/* _sync.check_iter(ch): raise unless ch is a channel (ch:iter()) */
static int l_check_iter(lua_State *L) {
  check_chan(L, "iter");
  return 0;
}

/* ---- registration ----------------------------------------------------------- */

static const luaL_Reg funcs[] = {
    {"channel", l_channel}, {"semaphore", l_semaphore}, {"notify", l_notify}, {NULL, NULL}};

/* cf._sync: taken (and removed from the module) by lua/cfuture/sync.lua */
static const luaL_Reg internal_funcs[] = {{"lock_semaphore", l_lock_semaphore},
                                          {"check_iter", l_check_iter},
                                          {"closed", l_closed},
                                          {NULL, NULL}};

static const luaL_Reg chan_methods[] = {
    {"recv", c_recv},         {"try_recv", c_try_recv},   {"send", c_send},
    {"try_send", c_try_send}, {"close", c_close},         {"len", c_len},
    {"capacity", c_capacity}, {"is_closed", c_is_closed}, {NULL, NULL}};

const cfl_class cfl_chan_class = {
    .core = {.poll = chan_poll, .drop = chan_drop},
    .name = "channel",
    .type = "cfuture.Channel",
    .methods = chan_methods,
    .take = chan_take,
    .describe = chan_describe,
    .shared = 1,
    .nuv = 1,
    .own = own_recv,
};

static const luaL_Reg sem_methods[] = {{"acquire", s_acquire},
                                       {"try_acquire", s_try_acquire},
                                       {"add_permits", s_add_permits},
                                       {"available", s_available},
                                       {NULL, NULL}};

static const luaL_Reg notify_methods[] = {
    {"wait", n_wait}, {"notify_one", n_notify_one}, {"notify_all", n_notify_all}, {NULL, NULL}};

static const luaL_Reg permit_methods[] = {
    {"release", p_release}, {"unlock", p_unlock}, {"count", p_count}, {NULL, NULL}};

/* <close> and __gc give back what is left */
static const luaL_Reg permit_meta[] = {{"__close", p_finish}, {"__gc", p_finish}, {NULL, NULL}};

/* __name for messages (5.1's luaL_newmetatable sets none) */
static void set_name(lua_State *L, const char *name) {
  luaL_getmetatable(L, name);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

static void open_sync(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_newtable(L);
  cfl_setfuncs(L, rt, internal_funcs);
  lua_setfield(L, -2, "_sync");
  /* channel methods live on the shared future metatable */
  cfl_new_class(L, rt, SEM_MT, sem_methods, NULL, NULL, NULL);
  cfl_new_class(L, rt, "cfuture.Notify", notify_methods, NULL, NULL, NULL);
  lua_pop(L, 2);
  set_name(L, SEM_MT);
  set_name(L, "cfuture.Notify");
  /* permits: release / unlock, <close> and __gc release what is left */
  luaL_newmetatable(L, PERMIT_MT);
  cfl_setfuncs(L, rt, permit_meta);
  lua_newtable(L);
  cfl_setfuncs(L, rt, permit_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  set_name(L, PERMIT_MT);
  /* the shared "already sent" future */
  cfl_new_future(L, rt, &done_class, sizeof(cfl_future));
  rt->sent = luaL_ref(L, LUA_REGISTRYINDEX);
}

const cfl_module cfl_sync_module = {.name = "sync", .open = open_sync};
