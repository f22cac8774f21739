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
  char *buf;       /* received bytes [off, off + len) not yet taken */
  size_t off, len, cap;
  cf_waitlist readers;
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
  CFU_TAKE_ALL    /* until the end */
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
/* Shut the write side down once queued writes are done (best effort). */
int cfu_stream_shutdown(cfu_stream *s);

#endif
