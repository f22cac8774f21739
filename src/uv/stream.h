/*
 * stream.h — byte streams over libuv: pipes and TCP connections.
 *
 * A stream's memory is C memory: the handle libuv points at lives until
 * its close callback has run and nobody (the Lua object, a pending read
 * future, a write in flight) refers to it any more.
 */
#ifndef CF_UV_STREAM_H
#define CF_UV_STREAM_H

#include "handle.h"
#include "req.h"

typedef struct cfu_stream {
  cfu_handle base; /* refs: the Lua object, read futures, writes in flight */
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uint8_t eof;     /* the peer finished writing */
  uint8_t reading; /* uv_read_start is on */
  uint8_t shut;    /* the write side was shut down */
  uint8_t tcp;     /* h.tcp is the handle */
  int rerr;        /* read error, sticky (negative libuv error) */
  char *buf;       /* received bytes [off, off + len) not yet taken (plaintext for TLS) */
  size_t off, len, cap;
  cf_waitlist readers; /* reads, a handshake, a TLS write that needs input */
  struct cfu_tls *tls; /* the TLS engine (tls.h), or NULL for a plain stream */
} cfu_stream;

/* A new pipe or TCP stream on loop, initialised, with one reference: NULL
 * when out of memory. Lifetime: cfu_handle_ref / unref / close on
 * &s->base; closing wakes the readers, which then see it closed. */
cfu_stream *cfu_stream_new_pipe(uv_loop_t *loop);
cfu_stream *cfu_stream_new_tcp(uv_loop_t *loop);
static inline int cfu_stream_closing(const cfu_stream *s) { return s->base.closing; }

/* What a read waits for */
enum {
  CFU_TAKE_SOME,  /* whatever is there, at most n (0: no limit) */
  CFU_TAKE_EXACT, /* n bytes (fewer only at the end) */
  CFU_TAKE_LINE,  /* up to "\n", which is dropped with a "\r" before it */
  CFU_TAKE_UNTIL, /* up to and including delim */
  CFU_TAKE_ALL,   /* until the end */
  CFU_HANDSHAKE   /* nothing: until the TLS handshake is over (or failed) */
};

typedef struct cfu_read_spec {
  int kind;
  size_t n;          /* count, or for LINE/UNTIL the most bytes before the delimiter */
  const char *delim; /* UNTIL: owned by the caller */
  size_t dlen;
} cfu_read_spec;

/* 1 if the read can complete now (data, end of stream, error, closed, or a
 * line over its limit), else start reading, register cx and return 0. */
int cfu_stream_poll_read(cfu_stream *s, const cfu_read_spec *r, cf_context *cx);
/* The bytes a read completes with, in place: *len of them for the reader,
 * *used to consume (a line's newline is used, not returned). NULL with
 * *err 0 means nothing (end of stream); a line over its limit gives
 * UV_ENOBUFS and uses nothing. */
const char *cfu_stream_peek(cfu_stream *s, const cfu_read_spec *r, size_t *len, size_t *used,
                            int *err);
void cfu_stream_consume(cfu_stream *s, size_t n);
/* All the bytes buffered ([0, *len), possibly none), to move elsewhere
 * with cfu_stream_consume. */
static inline const char *cfu_stream_buffered(const cfu_stream *s, size_t *len) {
  *len = s->len;
  return s->buf + s->off;
}
/* The error a read that ends now gets: the read error (the end of the
 * stream is none), UV_ECANCELED if s closed before its end, else 0. */
static inline int cfu_stream_end_err(const cfu_stream *s) {
  if (s->rerr && s->rerr != UV_EOF) return s->rerr;
  return s->base.closing && !s->eof ? UV_ECANCELED : 0;
}
/* A read future counts on s's handle while it is pending (cfu_handle_wait):
 * a stream that reads ahead for nobody cannot wake anyone, so it must not
 * keep the loop alive (writes in flight do, as requests). */

/* A write in flight: a request (req.h) whose bytes are a copy it owns, to
 * a stream or, as one datagram, to a UDP socket (net.h). */
typedef struct cfu_write {
  cfu_req base;
  union {
    uv_write_t stream;
    uv_udp_send_t udp;
  } req;
  cfu_handle *h; /* referenced while busy */
  size_t len;
  char data[];
} cfu_write;

cfu_write *cfu_write_new(const char *data, size_t len);
/* A write not yet submitted, with room for cap bytes (it may move; on
 * failure w is freed): NULL when out of memory. */
cfu_write *cfu_write_reserve(cfu_write *w, size_t cap);
/* Queue w on s (which it references until done). 0, or a libuv error:
 * then w is done with it. */
int cfu_write_submit(cfu_stream *s, cfu_write *w, const cf_waker *waker);
/* The write's future lets go. */
void cfu_write_orphan(cfu_write *w);
/* Drivers only: libuv took w (it references h until done); w's callback
 * (either kind) completes it. */
void cfu__write_busy(cfu_write *w, cfu_handle *h);
void cfu__write_done(cfu_write *w, int status);
/* The first step of a write: hand the kernel what it takes at once when
 * nothing is queued (no copy). The count of bytes taken (0 if it would
 * block), or UV_EBADF if s is closing, UV_EPIPE if it was shut down, or
 * another libuv error. */
int cfu_stream_try_write(cfu_stream *s, const char *data, size_t len);
/* A write of data: 0 once the kernel took it all; 1 with *w a write in
 * flight for the rest (submitted, waking `waker`); 2 when a TLS stream must
 * read first (nothing taken: wait as a CFU_HANDSHAKE read does, then call
 * again); or a libuv / TLS error. */
int cfu_stream_write(cfu_stream *s, const char *data, size_t len, cfu_write **w,
                     const cf_waker *waker);
/* Shut the write side down once queued writes are done (best effort); a
 * TLS stream sends close_notify first. */
int cfu_stream_shutdown(cfu_stream *s);
/* Close now; a TLS stream first tells the peer with close_notify when the
 * kernel takes it at once. */
void cfu_stream_close(cfu_stream *s);

/* tls.c's part of the stream: room for n more bytes at the end of the
 * buffer (0 when out of memory), and bytes sent after every queued write
 * (taken by the kernel now, or queued as a copy nobody awaits). */
int cfu__stream_reserve(cfu_stream *s, size_t n);
int cfu__stream_send(cfu_stream *s, const char *data, size_t len);

#endif
