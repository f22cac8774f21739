/*
 * stream.c — Lua stream objects (a child's stdin/stdout/stderr, TCP
 * connections) and their read and write futures.
 *
 * A read future takes its bytes out of the stream's buffer the moment it
 * becomes ready, so another reader polled before it is resumed cannot take
 * them; a read that is dropped before it was ready takes nothing, so a
 * cancelled read loses no data. A write's bytes go to the kernel from the
 * Lua string at the first poll; what it does not take is copied.
 *
 * Reads and writes are the most frequent futures of a server, so they are
 * light (cfl_new_light_future: no finaliser). They hold no reference on the
 * stream: they anchor the stream's Lua object, whose reference keeps the
 * stream while they live, and reach the stream through it at each poll
 * (NULL once the object was finalised: they end as if it was closed). What
 * they hold while pending or ready (a read's bytes, a write in flight) is
 * released by whoever polls them, which always drops or takes them.
 */
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

#define STREAM_MT "cfuture.Stream"

typedef struct cfl_stream {
  cfu_stream *s;
  uint8_t closed; /* close() was called: methods raise */
} cfl_stream;

/* ---- read futures ------------------------------------------------------------ */

typedef struct cfl_read {
  cfl_future hdr;
  cfl_stream *o;      /* the stream object, anchored in uservalue 1 */
  cfu_read_spec spec; /* read_until's delimiter: the string in uservalue 2 */
  char *data;         /* the result once ready (read_all accumulates here) */
  size_t len, cap;
  int err;
  uint8_t waiting; /* counted in the stream's waiting (cfu_handle_wait) */
} cfl_read;

/* A pending read keeps the stream's handle (and so the loop) alive; a read
 * that is ready or dropped no longer does. s is NULL once the stream object
 * was finalised: its stream is closing then, and what it counts is moot. */
static void read_wait(cfl_read *r, cfu_stream *s, int on) {
  cfu_handle_wait(s ? &s->base : NULL, &r->waiting, on);
}

/* read_all: move what is buffered into the future, so the stream keeps
 * reading past its high-water mark. */
static int gather(cfl_read *r, cfu_stream *s) {
  size_t n;
  const char *p = cfu_stream_buffered(s, &n);
  if (n == 0) return 0;
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 65536;
    while (cap < r->len + n)
      cap *= 2;
    char *nb = realloc(r->data, cap);
    if (!nb) return UV_ENOMEM;
    r->data = nb;
    r->cap = cap;
  }
  memcpy(r->data + r->len, p, n);
  r->len += n;
  cfu_stream_consume(s, n);
  return 0;
}

static cf_poll read_poll(cf_future *base, cf_context *cx) {
  cfl_read *r = (cfl_read *)base;
  if (cfl_polled_out(&r->hdr)) return CF_READY;
  r->hdr.state = CFL_ST_PENDING;
  cfu_stream *s = r->o->s;
  if (!s) {
    r->err = UV_ECANCELED;
  } else if (r->spec.kind == CFU_TAKE_ALL) {
    if ((r->err = gather(r, s)) == 0 && !cfu_stream_poll_read(s, &r->spec, cx)) {
      read_wait(r, s, 1);
      return CF_PENDING;
    }
    if (!r->err) r->err = cfu_stream_end_err(s);
    if (!r->err) r->err = gather(r, s);
  } else {
    if (!cfu_stream_poll_read(s, &r->spec, cx)) {
      read_wait(r, s, 1);
      return CF_PENDING;
    }
    /* take the bytes now: a combinator may hand them over later, and the
     * readers polled meanwhile must neither get them nor wait for them */
    size_t used;
    const char *p = cfu_stream_peek(s, &r->spec, &r->len, &used, &r->err);
    if (p) {
      r->data = malloc(r->len ? r->len : 1);
      if (r->data) {
        memcpy(r->data, p, r->len);
        cfu_stream_consume(s, used);
      } else {
        r->err = UV_ENOMEM;
      }
    }
  }
  read_wait(r, s, 0);
  return cfl_ready(&r->hdr);
}

static void read_release(cfl_read *r) {
  free(r->data);
  r->data = NULL;
}

static void read_drop(cf_future *base) {
  cfl_read *r = (cfl_read *)base;
  read_wait(r, r->o->s, 0);
  read_release(r);
  cfl_mark_dropped(&r->hdr);
}

/* nil, "<fname>: <message>", code for err on s (NULL once its object was
 * finalised): a TLS failure gives OpenSSL's reason. */
static int push_stream_err(lua_State *L, const cfu_stream *s, int err, const char *fname) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", fname, cfu_stream_strerror(s, err));
  lua_pushstring(L, cfu_err_name(err));
  return 3;
}

/* The message of a failed read: no delimiter within the limit (a line or
 * read_until), or the libuv / TLS error. */
static void push_read_error(lua_State *L, const cfu_stream *s, const cfu_read_spec *spec, int err) {
  if (err == UV_ENOBUFS && (spec->kind == CFU_TAKE_LINE || spec->kind == CFU_TAKE_UNTIL))
    lua_pushfstring(L, "%s: no delimiter within %d bytes",
                    spec->kind == CFU_TAKE_LINE ? "stream:read_line" : "stream:read_until",
                    (int)spec->n);
  else
    lua_pushfstring(L, "stream:read: %s", cfu_stream_strerror(s, err));
}

static int read_take(lua_State *L, cfl_future *base) {
  cfl_read *r = (cfl_read *)base;
  r->hdr.state = CFL_ST_TAKEN;
  int n = 1;
  if (r->err) {
    lua_pushnil(L);
    push_read_error(L, r->o->s, &r->spec, r->err);
    lua_pushstring(L, cfu_err_name(r->err));
    n = 3;
  } else if (r->data)
    lua_pushlstring(L, r->data, r->len);
  else if (r->spec.kind == CFU_TAKE_ALL)
    lua_pushliteral(L, "");
  else
    lua_pushnil(L); /* end of stream */
  read_release(r);
  return n;
}

static void read_describe(lua_State *L, cfl_future *base) {
  static const char *const names[] = {"stream:read", "stream:read_exact", "stream:read_line",
                                      "stream:read_until", "stream:read_all"};
  lua_pushstring(L, names[((cfl_read *)base)->spec.kind]);
}

static const cfl_class read_class = {
    .vt = {.poll = read_poll, .drop = read_drop},
    .name = "stream:read",
    .take = read_take,
    .describe = read_describe,
    .nuv = 1,
};
/* read_until: the same with its delimiter string anchored */
static const cfl_class read_until_class = {
    .vt = {.poll = read_poll, .drop = read_drop},
    .name = "stream:read",
    .take = read_take,
    .describe = read_describe,
    .nuv = 2,
};

/* ---- write futures --------------------------------------------------------- */

/* A write is a light future (no finaliser; writes are the most frequent
 * futures of a server): it holds no reference of its own. Until its first
 * poll it reaches the stream through the stream's Lua object, which it
 * anchors; from then on only what the kernel did not take is held, by the
 * request in flight, which references the stream itself, and that request
 * is orphaned (freed when libuv is done with it) when the future is taken
 * or dropped. */
typedef struct cfl_write {
  cfl_future hdr;
  cfl_stream *o;    /* the stream object, anchored in uservalue 1 */
  cfu_write *w;     /* what the kernel did not take at once, in flight */
  const char *data; /* the Lua string, anchored in uservalue 2 */
  size_t len;
  int err;
  uint8_t waiting; /* a TLS write waits for input (counted as a read is) */
} cfl_write;

static const cfu_read_spec handshake_spec = {.kind = CFU_HANDSHAKE};

/* Hand the bytes to the kernel directly when nothing is queued (no copy,
 * no suspension); queue a copy of the rest. A TLS stream whose handshake
 * is not over waits for it first, as a read would: 1 while pending. */
static int write_step(cfl_write *f, cf_context *cx) {
  int waited = f->waiting; /* polled again after waiting for the handshake */
  for (int tries = 0;; tries++) {
    cfu_stream *s = f->o->s; /* NULL once the stream object was finalised */
    if (!s) return UV_EBADF;
    int r = cfu_stream_write(s, f->data, f->len, &f->w, cx->waker);
    if (r == 2 && tries > 0) r = UV_EPROTO; /* the handshake was over, yet it waits: never spin */
    if (r == UV_EBADF && (waited || tries > 0)) r = UV_ECANCELED; /* closed while it waited */
    if (r != 2) {
      cfu_handle_wait(&s->base, &f->waiting, 0);
      return r;
    }
    if (!cfu_stream_poll_read(s, &handshake_spec, cx)) {
      cfu_handle_wait(&s->base, &f->waiting, 1);
      return 1;
    }
  }
}

static cf_poll write_poll(cf_future *base, cf_context *cx) {
  cfl_write *f = (cfl_write *)base;
  int r;
  switch (f->hdr.state) {
  case CFL_ST_FRESH: f->hdr.state = CFL_ST_PENDING; /* fall through */
  case CFL_ST_PENDING:
    if (f->w) {
      if (!cfu_req_poll(&f->w->base, cx->waker)) return CF_PENDING;
      f->err = cfu_req_err(&f->w->base);
      break;
    }
    r = write_step(f, cx);
    if (r == 1) return CF_PENDING; /* in flight, or waiting for the handshake */
    f->err = r;
    break;
  default: return CF_READY;
  }
  return cfl_ready(&f->hdr);
}

static void write_release(cfl_future *base) {
  cfl_write *f = (cfl_write *)base;
  cfu_handle_wait(f->o->s ? &f->o->s->base : NULL, &f->waiting, 0);
  if (f->w) {
    cfu_write *w = f->w;
    f->w = NULL;
    cfu_write_orphan(w);
  }
}

static int write_take(lua_State *L, cfl_future *base) {
  cfl_write *f = (cfl_write *)base;
  f->hdr.state = CFL_ST_TAKEN;
  write_release(&f->hdr);
  if (f->err) return push_stream_err(L, f->o->s, f->err, "stream:write");
  lua_pushboolean(L, 1);
  return 1;
}

static const cfl_class write_class = {
    .vt = {.poll = write_poll, .drop = cfl_drop_released},
    .release = write_release,
    .name = "stream:write",
    .take = write_take,
    .nuv = 2,
};

/* ---- stream objects ---------------------------------------------------------- */

void cfl_push_stream(lua_State *L, cfu_stream *s) {
  cfl_stream *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->s = s;
  o->closed = 0;
  luaL_setmetatable(L, STREAM_MT);
}

cfu_stream *cfl_check_stream(lua_State *L, int idx, const char *fname) {
  cfl_stream *o = cfl_testudata(L, idx, cfl_rt(L)->stream_mt);
  if (!o) cfl_raise_self(L, idx, fname, "a stream");
  if (o->closed || !o->s || o->s->base.closing) luaL_error(L, "%s: the stream is closed", fname);
  return o->s;
}

static cfl_stream *check_stream_rt(lua_State *L, cf_runtime *rt, const char *fname) {
  cfl_stream *o = cfl_testudata(L, 1, rt->stream_mt);
  if (!o) cfl_raise_self(L, 1, fname, "a stream");
  if (o->closed || !o->s || o->s->base.closing) luaL_error(L, "%s: the stream is closed", fname);
  return o;
}

static cfl_stream *check_stream(lua_State *L, const char *fname) {
  return check_stream_rt(L, cfl_rt(L), fname);
}

static cfl_read *new_read(lua_State *L, cfl_stream *o, const cfl_class *cls, int kind, size_t n) {
  cfl_read *r = (cfl_read *)cfl_new_light_future(L, cfl_rt(L), cls, sizeof *r);
  r->o = o;
  r->spec.kind = kind;
  r->spec.n = n;
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return r;
}

/* A byte count: an integer (an integral float too), positive if optional
 * (absent or nil: 0, the caller's default), else non-negative. */
static size_t check_count(lua_State *L, int idx, const char *fname, int optional) {
  if (optional && lua_isnoneornil(L, idx)) return 0;
  int isint = 0;
  lua_Integer n = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &isint) : 0;
  if (!isint || n < (optional ? 1 : 0))
    luaL_error(L, "%s: argument #%d must be a %s byte count (got %s)", fname, idx,
               optional ? "positive" : "non-negative",
               lua_isstring(L, idx) ? luaL_tolstring(L, idx, NULL) : luaL_typename(L, idx));
  return (size_t)n;
}

/* stream:read([max]) -> future of the next bytes available (at most max), nil at the end */
static int s_read(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:read");
  new_read(L, o, &read_class, CFU_TAKE_SOME, check_count(L, 2, "stream:read", 1));
  return 1;
}

/* stream:read_exact(n) -> future of exactly n bytes (fewer only at the end) */
static int s_read_exact(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:read_exact");
  new_read(L, o, &read_class, CFU_TAKE_EXACT, check_count(L, 2, "stream:read_exact", 0));
  return 1;
}

#define LINE_MAX_DEFAULT (1u << 20)

/* stream:read_line([max]) -> future of the next line without its newline,
 * nil at the end; nil, msg, "ENOBUFS" if no newline comes within max bytes */
static int s_read_line(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:read_line");
  size_t max = check_count(L, 2, "stream:read_line", 1);
  new_read(L, o, &read_class, CFU_TAKE_LINE, max ? max : LINE_MAX_DEFAULT);
  return 1;
}

/* stream:read_until(delim [, max]) -> future of the bytes up to and
 * including delim (the rest at the end of the stream, nil when nothing is
 * left); nil, msg, "ENOBUFS" if delim does not come within max bytes */
static int s_read_until(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:read_until");
  size_t dlen;
  const char *d = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &dlen) : NULL;
  if (!d || dlen == 0)
    luaL_error(L, "stream:read_until: argument #2 must be a non-empty delimiter string (got %s)",
               d ? "\"\"" : luaL_typename(L, 2));
  size_t max = check_count(L, 3, "stream:read_until", 1);
  cfl_read *r = new_read(L, o, &read_until_class, CFU_TAKE_UNTIL, max ? max : LINE_MAX_DEFAULT);
  r->spec.delim = d;
  r->spec.dlen = dlen;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

/* stream:read_all() -> future of everything until the end of the stream */
static int s_read_all(lua_State *L) {
  new_read(L, check_stream(L, "stream:read_all"), &read_class, CFU_TAKE_ALL, 0);
  return 1;
}

/* ---- iterators ------------------------------------------------------------------ */

/* An iterator awaits one read future of its own again and again instead of
 * making a future per item: the future never leaves the iterator, so nobody
 * sees it start over, and a loop over a busy connection allocates only the
 * strings it returns. Nothing but the iterator's await polls it, and the
 * await takes the result right after the poll that found it ready, so the
 * bytes stay in the stream's buffer until then and go from there straight
 * into the Lua string. Its take raises a read error rather than returning
 * it, so the loop cannot mistake a failure for the end of the stream. */
static cf_poll read_iter_poll(cf_future *base, cf_context *cx) {
  cfl_read *r = (cfl_read *)base;
  if (cfl_polled_out(&r->hdr)) return CF_READY;
  r->hdr.state = CFL_ST_PENDING;
  cfu_stream *s = r->o->s;
  if (s && !cfu_stream_poll_read(s, &r->spec, cx)) {
    read_wait(r, s, 1);
    return CF_PENDING;
  }
  read_wait(r, s, 0);
  return cfl_ready(&r->hdr);
}

static int read_iter_take(lua_State *L, cfl_future *base) {
  cfl_read *r = (cfl_read *)base;
  size_t len, used;
  int err, n = 1;
  cfu_stream *s = r->o->s;
  const char *p = s ? cfu_stream_peek(s, &r->spec, &len, &used, &err) : NULL;
  if (!s) err = UV_ECANCELED;
  r->hdr.state = CFL_ST_TAKEN;
  if (p) {
    lua_pushlstring(L, p, len);
    cfu_stream_consume(s, used);
  } else if (err) {
    push_read_error(L, s, &r->spec, err);
    n = -1;
  } else {
    lua_pushnil(L); /* end of stream */
  }
  read_release(r);
  return n;
}

static const cfl_class read_iter_class = {
    .vt = {.poll = read_iter_poll, .drop = read_drop},
    .name = "stream:read",
    .take = read_iter_take,
    .describe = read_describe,
    .nuv = 1,
};

/* The iterator: upvalues rt, mt (as every module function) and the read
 * future, which anchors the stream object. */
static int read_step(lua_State *L) {
  cfl_rt(L);
  cfl_read *r = lua_touserdata(L, lua_upvalueindex(3));
  cfl_stream *o = r->o;
  const char *fname = r->spec.kind == CFU_TAKE_LINE ? "stream:lines" : "stream:chunks";
  if (r->hdr.state == CFL_ST_PENDING || r->hdr.state == CFL_ST_READY)
    return luaL_error(L, "%s: the iterator is already waiting in another task", fname);
  if (o->closed || !o->s || o->s->base.closing)
    return luaL_error(L, "%s: the stream is closed", fname);
  /* taken or cancelled: it holds nothing (its take reads the stream's
   * buffer directly), so starting over is a state change */
  r->hdr.owner = NULL;
  r->hdr.state = CFL_ST_FRESH;
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(3));
  return cfl_await_own(L, &r->hdr);
}

static int push_iterator(lua_State *L, cfl_stream *o, int kind, size_t n) {
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_RT));
  lua_pushvalue(L, lua_upvalueindex(CFL_UP_MT));
  new_read(L, o, &read_iter_class, kind, n);
  lua_pushcclosure(L, read_step, 3);
#if !CFL_LUA54
  cfl_wrap_raising_top(L);
#endif
  return 1;
}

/* stream:chunks([max]) -> iterator of the bytes as they arrive (each as
 * read(max) gives them), for use inside a task; a read error is raised */
static int s_chunks(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:chunks");
  return push_iterator(L, o, CFU_TAKE_SOME, check_count(L, 2, "stream:chunks", 1));
}

/* stream:lines([max]) -> iterator of lines (as read_line(max) gives them),
 * for use inside a task; a read error or a line over max is raised */
static int s_lines(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:lines");
  size_t max = check_count(L, 2, "stream:lines", 1);
  return push_iterator(L, o, CFU_TAKE_LINE, max ? max : LINE_MAX_DEFAULT);
}

/* ---- the TLS handshake ------------------------------------------------------------ */

/* A read of nothing that waits until the handshake is over, as a read
 * waits for bytes; a plain stream has none to wait for. */
static int handshake_take(lua_State *L, cfl_future *base) {
  cfl_read *r = (cfl_read *)base;
  cfu_stream *s = r->o->s;
  r->hdr.state = CFL_ST_TAKEN;
  if (s && (!s->tls || s->tls->hs_done) && !(s->rerr && cfu_is_tls_err(s->rerr))) {
    lua_pushboolean(L, 1);
    return 1;
  }
  int err = !s ? UV_ECANCELED : s->rerr ? s->rerr : cfu_stream_end_err(s);
  if (err == 0) err = s->eof ? CFU_ETLSEOF : UV_ECANCELED;
  return push_stream_err(L, s, err, "stream:handshake");
}

static void handshake_describe(lua_State *L, cfl_future *base) {
  (void)base;
  lua_pushliteral(L, "stream:handshake");
}

static const cfl_class handshake_class = {
    .vt = {.poll = read_iter_poll, .drop = read_drop},
    .name = "stream:handshake",
    .take = handshake_take,
    .describe = handshake_describe,
    .nuv = 1,
};

/* stream:handshake() -> future of true once the TLS handshake is over (at
 * once for a plain stream), or nil, msg, code */
static int s_handshake(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:handshake");
  new_read(L, o, &handshake_class, CFU_HANDSHAKE, 0);
  return 1;
}

/* stream:write(data) -> future of true once the bytes are handed to the kernel */
static int s_write(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_stream *o = check_stream_rt(L, rt, "stream:write");
  size_t len;
  const char *data = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  if (!data)
    luaL_error(L, "stream:write: argument #2 must be a string (got %s)", luaL_typename(L, 2));
  cfl_write *f = (cfl_write *)cfl_new_light_future(L, rt, &write_class, sizeof *f);
  f->o = o;
  f->data = data;
  f->len = len;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 2); /* the bytes stay put while the future lives */
  lua_setiuservalue(L, -2, 2);
  return 1;
}

/* stream:shutdown() -> true: the peer reads end of stream after queued writes */
static int s_shutdown(lua_State *L) {
  cfl_stream *o = check_stream(L, "stream:shutdown");
  int r = cfu_stream_shutdown(o->s);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:shutdown");
  lua_pushboolean(L, 1);
  return 1;
}

/* The stream object at 1 for a method that works on closed streams too. */
static cfl_stream *check_self(lua_State *L, cf_runtime *rt, const char *fname) {
  cfl_stream *o = cfl_testudata(L, 1, rt->stream_mt);
  if (!o) cfl_raise_self(L, 1, fname, "a stream");
  return o;
}

/* stream:close(): close now; pending reads end with ECANCELED */
static int s_close(lua_State *L) {
  cfl_stream *o = check_self(L, cfl_rt(L), "stream:close");
  if (o->s && !o->closed) {
    o->closed = 1;
    cfu_stream_close(o->s);
  }
  return 0;
}

/* __gc: never raises; a foreign self (the metamethod called by hand) is
 * ignored. After the runtime closed, every handle is closing already, so
 * dropping the reference only frees. */
static int s_gc(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  cfl_stream *o = cfl_testudata(L, 1, rt->stream_mt);
  if (o && o->s) {
    cfu_stream *s = o->s;
    o->s = NULL;
    o->closed = 1;
    cfu_handle_unref(&s->base);
  }
  return 0;
}

/* stream:buffered() -> bytes received and not read yet (no wait) */
static int s_buffered(lua_State *L) {
  cfl_stream *o = check_self(L, cfl_rt(L), "stream:buffered");
  lua_pushinteger(L, o->s ? (lua_Integer)o->s->len : 0);
  return 1;
}

/* s:fileno() -> the OS descriptor, for socket options or a poller of
 * another library; the stream still owns it (closing it is the stream's) */
static int s_fileno(lua_State *L) {
  cfl_stream *o = check_self(L, cfl_rt(L), "stream:fileno");
  if (o->closed || !o->s || o->s->base.closing) return cfl_push_ioerr(L, UV_EBADF, "stream:fileno");
  uv_os_fd_t fd;
  int r = uv_fileno(&o->s->h.handle, &fd);
  if (r != 0) return cfl_push_ioerr(L, r, "stream:fileno");
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

static int s_is_closed(lua_State *L) {
  cfl_stream *o = check_self(L, cfl_rt(L), "stream:is_closed");
  lua_pushboolean(L, o->closed || !o->s || o->s->base.closing);
  return 1;
}

/* __tostring: reads only the Lua object, so it works after the runtime
 * closed (an error message may still print a stream) */
static int s_tostring(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  cfl_stream *o = check_self(L, rt, "stream:__tostring");
  lua_pushfstring(L, "cfuture.Stream(%s%s): %p", o->closed || !o->s ? "closed" : "open",
                  o->s && o->s->tls ? ", tls" : "", (void *)o);
  return 1;
}

static const luaL_Reg methods[] = {{"read", s_read},
                                   {"read_exact", s_read_exact},
                                   {"read_line", s_read_line},
                                   {"read_until", s_read_until},
                                   {"read_all", s_read_all},
                                   {"chunks", s_chunks},
                                   {"lines", s_lines},
                                   {"write", s_write},
                                   {"shutdown", s_shutdown},
                                   {"close", s_close},
                                   {"is_closed", s_is_closed},
                                   {"buffered", s_buffered},
                                   {"fileno", s_fileno},
                                   {"handshake", s_handshake},
                                   {NULL, NULL}};
/* metamethods with the module's upvalues (cfl_new_class registers bare ones) */
static const luaL_Reg metamethods[] = {
    {"__gc", s_gc}, {"__close", s_close}, {"__tostring", s_tostring}, {NULL, NULL}};

/* Module table on top: cf.Stream holds the stream methods. */
static void open_stream(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_new_class(L, rt, STREAM_MT, methods, metamethods);
  luaL_getmetatable(L, STREAM_MT);
  rt->stream_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  lua_setfield(L, -2, "Stream");
}

const cfl_module cfl_stream_module = {.name = "stream", .open = open_stream};
