/*
 * stream.c — reading and writing libuv streams for futures.
 *
 * Ground rules
 * - Reading runs only while someone wants bytes, and stops once a read
 *   can complete or the buffer holds HIGH_WATER bytes: a peer that writes
 *   faster than the program reads is held back by the kernel, not queued
 *   without bound in memory.
 * - Callbacks store, then wake every waiting reader; readers check their
 *   own condition when polled.
 * - A write's bytes are copied into its request, so the Lua string may be
 *   collected while libuv sends it.
 */
#define _GNU_SOURCE /* memmem */
#include "stream.h"

#include "tls.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 65536
#define HIGH_WATER (1u << 20)

/* ---- lifetime -------------------------------------------------------------- */

static void stream_closing(cfu_handle *h) {
  cfu_stream *s = (cfu_stream *)h;
  s->reading = 0;
  cf_waitlist_wake_all(&s->readers);
}

static void stream_free(cfu_handle *h) {
  cfu_stream *s = (cfu_stream *)h;
  cfu__tls_free(s->tls);
  free(s->buf);
  free(s);
}

static const cfu_handle_vt stream_vt = {stream_closing, stream_free, 0};

static cfu_stream *stream_new(void) {
  cfu_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  cfu_handle_init(&s->base, &stream_vt);
  cf_waitlist_init(&s->readers);
  return s;
}

cfu_stream *cfu_stream_new_pipe(uv_loop_t *loop) {
  cfu_stream *s = stream_new();
  if (!s) return NULL;
  uv_pipe_init(loop, &s->h.pipe, 0);
  cfu_handle_opened(&s->base, &s->h.handle);
  return s;
}

cfu_stream *cfu_stream_new_tcp(uv_loop_t *loop) {
  cfu_stream *s = stream_new();
  if (!s) return NULL;
  uv_tcp_init(loop, &s->h.tcp);
  cfu_handle_opened(&s->base, &s->h.handle);
  s->tcp = 1;
  return s;
}

/* ---- reading ----------------------------------------------------------------- */

int cfu__stream_reserve(cfu_stream *s, size_t n) {
  if (s->off > 0 && (s->len == 0 || s->off > s->cap / 2)) {
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
  }
  if (s->cap - s->off - s->len < n) {
    size_t cap = s->cap ? s->cap : CHUNK;
    while (cap - s->off - s->len < n)
      cap *= 2;
    char *nb = realloc(s->buf, cap);
    if (!nb) return 0;
    s->buf = nb;
    s->cap = cap;
  }
  return 1;
}

/* A TLS stream reads its ciphertext into the same free tail: tls.c copies
 * it into OpenSSL before decrypting into that space. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  cfu_stream *s = h->data;
  (void)hint;
  if (!cfu__stream_reserve(s, CHUNK)) {
    b->base = NULL;
    b->len = 0; /* libuv reports UV_ENOBUFS */
    return;
  }
  b->base = s->buf + s->off + s->len;
  b->len = s->cap - s->off - s->len;
}

static void stop_reading(cfu_stream *s) {
  if (s->reading) {
    uv_read_stop(&s->h.stream);
    s->reading = 0;
  }
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  cfu_stream *s = h->data;
  if (s->tls) {
    if (n > 0)
      cfu__tls_input(s, b->base, (size_t)n);
    else if (n == UV_EOF)
      cfu__tls_eof(s);
    else if (n < 0 && !s->rerr)
      s->rerr = (int)n;
    if (s->eof || s->rerr || s->len >= HIGH_WATER) stop_reading(s);
  } else if (n > 0) {
    s->len += (size_t)n;
    if (s->len >= HIGH_WATER) stop_reading(s);
  } else if (n == UV_EOF) {
    s->eof = 1;
    stop_reading(s);
  } else if (n < 0) {
    s->rerr = (int)n;
    stop_reading(s);
  }
  cf_waitlist_wake_all(&s->readers);
}

/* Where the delimiter of a LINE/UNTIL read is, or NULL; *over is set when
 * more than the limit is buffered without one. */
static const char *find_delim(cfu_stream *s, const cfu_read_spec *r, int *over) {
  const char *d = r->kind == CFU_TAKE_LINE ? "\n" : r->delim;
  size_t dlen = r->kind == CFU_TAKE_LINE ? 1 : r->dlen;
  *over = 0;
  if (s->len == 0) return NULL; /* s->buf may be NULL: never hand it to memchr */
  size_t window = s->len < r->n + dlen ? s->len : r->n + dlen;
  const char *at =
      dlen == 1 ? memchr(s->buf + s->off, d[0], window) : memmem(s->buf + s->off, window, d, dlen);
  *over = !at && s->len >= r->n + dlen;
  return at;
}

static int can_complete(cfu_stream *s, const cfu_read_spec *r) {
  int over;
  if (s->eof || s->rerr || s->base.closing) return 1;
  switch (r->kind) {
  case CFU_TAKE_SOME: return s->len > 0;
  case CFU_TAKE_EXACT: return s->len >= r->n;
  case CFU_TAKE_LINE:
  case CFU_TAKE_UNTIL: return find_delim(s, r, &over) != NULL || over;
  case CFU_HANDSHAKE: return !s->tls || s->tls->hs_done;
  default: return 0;
  }
}

int cfu_stream_poll_read(cfu_stream *s, const cfu_read_spec *r, cf_context *cx) {
  if (can_complete(s, r)) return 1;
  if (!s->reading) {
    assert(!s->base.closing); /* can_complete said so */
    int e = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (e != 0) {
      s->rerr = e;
      return 1;
    }
    s->reading = 1;
    cfu_handle_started(&s->base); /* the reader's wait_begin refs it */
  }
  cf_waitlist_register(&s->readers, cx);
  return 0;
}

const char *cfu_stream_peek(cfu_stream *s, const cfu_read_spec *r, size_t *len, size_t *used,
                            int *err) {
  size_t k = s->len, skip = 0;
  *err = 0;
  *len = *used = 0;
  switch (r->kind) {
  case CFU_TAKE_SOME:
    if (r->n > 0 && r->n < k) k = r->n;
    break;
  case CFU_TAKE_EXACT:
    if (r->n < k) k = r->n;
    break;
  case CFU_TAKE_LINE:
  case CFU_TAKE_UNTIL: {
    int over;
    const char *at = s->len ? find_delim(s, r, &over) : NULL;
    if (at) {
      k = (size_t)(at - (s->buf + s->off));
      if (r->kind == CFU_TAKE_UNTIL) {
        k += r->dlen; /* the delimiter is part of the result */
      } else {
        skip = 1;
        if (k > 0 && at[-1] == '\r') k--, skip++;
      }
    } else if (s->len > 0 && over) {
      *err = UV_ENOBUFS;
      return NULL;
    }
    break;
  }
  default: break;
  }
  if (k == 0 && skip == 0) {
    *err = cfu_stream_end_err(s);
    return NULL;
  }
  *len = k;
  *used = k + skip;
  return s->buf + s->off;
}

void cfu_stream_consume(cfu_stream *s, size_t n) {
  s->off += n;
  s->len -= n;
  if (s->len == 0) s->off = 0;
}

/* ---- writing ------------------------------------------------------------------- */

static void write_free(cfu_req *r) { free(cf__container_of(r, cfu_write, base)); }

cfu_write *cfu_write_new(const char *data, size_t len) {
  cfu_write *w = malloc(sizeof *w + len);
  if (!w) return NULL;
  memset(w, 0, sizeof *w);
  cfu_req_init(&w->base, write_free);
  if (len) memcpy(w->data, data, len);
  w->len = len;
  return w;
}

cfu_write *cfu_write_reserve(cfu_write *w, size_t cap) {
  assert(cfu_req_state(&w->base) == CFU_REQ_NEW); /* nothing points at it yet */
  cfu_write *nw = realloc(w, sizeof *w + cap);
  if (!nw) free(w);
  return nw;
}

/* The callback's part, for either kind: the handle lets go after the
 * request completed (completing may free w, never the handle). */
void cfu__write_done(cfu_write *w, int status) {
  cfu_handle *h = w->h;
  w->h = NULL;
  cfu_req_complete(&w->base, status);
  cfu_handle_unref(h);
}

/* libuv submitted w: it references h until done. */
void cfu__write_busy(cfu_write *w, cfu_handle *h) {
  w->h = h;
  cfu_handle_ref(h);
}

static void on_write(uv_write_t *req, int status) { cfu__write_done(req->data, status); }

/* UV_EBADF / UV_EPIPE when s takes no more writes, else 0. */
static int write_check(const cfu_stream *s) {
  if (s->base.closing) return UV_EBADF;
  return s->shut ? UV_EPIPE : 0;
}

int cfu_write_submit(cfu_stream *s, cfu_write *w, const cf_waker *waker) {
  uv_buf_t b;
  b.base = w->data;
  b.len = w->len; /* not uv_buf_init: its length is an unsigned int */
  w->req.stream.data = w;
  int r = write_check(s);
  if (r == 0) r = uv_write(&w->req.stream, &s->h.stream, &b, 1, on_write);
  if (r == 0) cfu__write_busy(w, &s->base);
  return cfu_req_submitted(&w->base, r, waker);
}

void cfu_write_orphan(cfu_write *w) {
  cfu_req_orphan(&w->base); /* in flight: bytes handed to libuv cannot be taken back */
}

int cfu_stream_try_write(cfu_stream *s, const char *data, size_t len) {
  int r = write_check(s);
  if (r != 0 || s->h.stream.write_queue_size != 0 || len == 0) return r;
  uv_buf_t b;
  b.base = (char *)data;
  b.len = len; /* not uv_buf_init: its length is an unsigned int */
  int n = uv_try_write(&s->h.stream, &b, 1);
  return n == UV_EAGAIN || n == UV_ENOSYS ? 0 : n;
}

int cfu__stream_send(cfu_stream *s, const char *data, size_t len) {
  int n = cfu_stream_try_write(s, data, len);
  if (n < 0 || (size_t)n == len) return n < 0 ? n : 0;
  cfu_write *w = cfu_write_new(data + n, len - (size_t)n);
  if (!w) return UV_ENOMEM;
  static const cf_waker nobody = {NULL, NULL};
  int r = cfu_write_submit(s, w, &nobody);
  cfu_write_orphan(w); /* nobody awaits it: freed when libuv is done */
  return r;
}

int cfu_stream_write(cfu_stream *s, const char *data, size_t len, cfu_write **w,
                     const cf_waker *waker) {
  *w = NULL;
  if (s->tls) {
    int r = write_check(s);
    if (r == 0) r = cfu__tls_write(s, data, len, w, waker);
    return r == 1 ? 2 : r < 0 ? r : *w ? 1 : 0;
  }
  int n = cfu_stream_try_write(s, data, len);
  if (n < 0) return n;
  /* all of it taken; an empty write behind queued ones waits for them (a
   * flush), else it is done */
  if ((size_t)n == len && (len != 0 || s->h.stream.write_queue_size == 0)) return 0;
  cfu_write *nw = cfu_write_new(data + n, len - (size_t)n);
  if (!nw) return UV_ENOMEM;
  int r = cfu_write_submit(s, nw, waker);
  if (r != 0) {
    cfu_write_orphan(nw);
    return r;
  }
  *w = nw;
  return 1;
}

void cfu_stream_close(cfu_stream *s) {
  if (s->tls && !s->base.closing && !s->shut) cfu__tls_shutdown(s);
  cfu_handle_close(&s->base);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  cfu_stream *s = req->data;
  free(req);
  cfu_handle_unref(&s->base);
}

int cfu_stream_shutdown(cfu_stream *s) {
  if (s->base.closing) return UV_EBADF;
  if (s->shut) return 0;
  if (s->tls) cfu__tls_shutdown(s);
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req) return UV_ENOMEM;
  req->data = s;
  int r = uv_shutdown(req, &s->h.stream, on_shutdown);
  if (r != 0) {
    free(req);
    return r;
  }
  s->shut = 1;
  cfu_handle_ref(&s->base);
  return 0;
}
