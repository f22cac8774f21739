/*
 * net.c — name resolution, TCP connect and listen, UDP: callbacks record
 * and wake; requests whose future is gone clean up after themselves.
 */
#include "net.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- name resolution ------------------------------------------------------------- */

static void lookup_free(cfu_req *r) {
  cfu_lookup *l = cf__container_of(r, cfu_lookup, base);
  if (l->res) uv_freeaddrinfo(l->res);
  free(l);
}

cfu_lookup *cfu_lookup_new(void) {
  cfu_lookup *l = calloc(1, sizeof *l);
  if (l) cfu_req_init(&l->base, lookup_free);
  return l;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cfu_lookup *l = req->data;
  l->res = res;
  cfu_req_complete(&l->base, status);
}

static void fill_hints(struct addrinfo *h, int socktype, int family) {
  memset(h, 0, sizeof *h);
  h->ai_family = family;
  h->ai_socktype = socktype;
  h->ai_flags = AI_ADDRCONFIG;
}

int cfu_lookup_start(uv_loop_t *loop, cfu_lookup *l, const char *host, const char *service,
                     int socktype, int family, const cf_waker *w) {
  struct addrinfo hints;
  fill_hints(&hints, socktype, family);
  l->req.data = l;
  int r = uv_getaddrinfo(loop, &l->req, on_resolved, host, service, &hints);
  return cfu_req_submitted(&l->base, r, w);
}

void cfu_lookup_orphan(cfu_lookup *l) {
  if (cfu_req_orphan(&l->base)) uv_cancel((uv_req_t *)&l->req);
}

/* ---- TCP connect -------------------------------------------------------------------- */

static void connect_free(cfu_req *r) {
  cfu_connect *c = cf__container_of(r, cfu_connect, base);
  if (c->res) uv_freeaddrinfo(c->res);
  if (c->s) cfu_handle_unref(&c->s->base); /* closes a connection nobody wants */
  free(c);
}

cfu_connect *cfu_connect_new(void) {
  cfu_connect *c = calloc(1, sizeof *c);
  if (c) cfu_req_init(&c->base, connect_free);
  return c;
}

static void on_connected(uv_connect_t *req, int status);

/* Try the remaining addresses in order until one connects; err is the
 * failure so far. */
static void try_next(cfu_connect *c, int err) {
  while (c->next) {
    struct addrinfo *ai = c->next;
    c->next = ai->ai_next;
    cfu_stream *s = cfu_stream_new_tcp(c->loop);
    if (!s) {
      err = UV_ENOMEM;
      break;
    }
    c->req.data = c;
    int r = uv_tcp_connect(&c->req, &s->h.tcp, ai->ai_addr, on_connected);
    if (r == 0) {
      c->s = s;
      return;
    }
    cfu_handle_unref(&s->base);
    err = r;
  }
  cfu_req_complete(&c->base, err);
}

/* An orphaned connect ends at its next callback (completing frees it). */
static void on_connect_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cfu_connect *c = req->data;
  c->res = res;
  if (status != 0 || cfu_req_orphaned(&c->base)) {
    cfu_req_complete(&c->base, status);
    return;
  }
  c->next = res;
  try_next(c, 0);
}

static void on_connected(uv_connect_t *req, int status) {
  cfu_connect *c = req->data;
  if (status == 0 || cfu_req_orphaned(&c->base)) {
    cfu_req_complete(&c->base, status);
    return;
  }
  cfu_handle_unref(&c->s->base);
  c->s = NULL;
  try_next(c, status);
}

int cfu_connect_start(uv_loop_t *loop, cfu_connect *c, const char *host, const char *port,
                      const cf_waker *w) {
  struct addrinfo hints;
  fill_hints(&hints, SOCK_STREAM, AF_UNSPEC);
  c->loop = loop;
  c->resolve.data = c;
  int r = uv_getaddrinfo(loop, &c->resolve, on_connect_resolved, host, port, &hints);
  return cfu_req_submitted(&c->base, r, w);
}

void cfu_connect_orphan(cfu_connect *c) {
  if (!cfu_req_orphan(&c->base)) return;
  if (c->s)
    cfu_handle_close(&c->s->base); /* the connect callback runs with UV_ECANCELED */
  else
    uv_cancel((uv_req_t *)&c->resolve);
}

cfu_stream *cfu_connect_take(cfu_connect *c) {
  cfu_stream *s = c->s;
  c->s = NULL;
  return s;
}

/* ---- TCP listen -------------------------------------------------------------------- */

static void listener_closing(cfu_handle *h) {
  cf_waitlist_wake_all(&((cfu_listener *)h)->acceptors);
}

static void listener_free(cfu_handle *h) {
  cfu_listener *l = (cfu_listener *)h;
  if (l->tls) cfu_tls_ctx_unref(l->tls);
  free(l);
}

void cfu_listener_set_tls(cfu_listener *l, cfu_tls_ctx *c) {
  cfu_tls_ctx_ref(c);
  if (l->tls) cfu_tls_ctx_unref(l->tls);
  l->tls = c;
}

static const cfu_handle_vt listener_vt = {listener_closing, listener_free, 0};

cfu_listener *cfu_listener_new(uv_loop_t *loop) {
  cfu_listener *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  cfu_handle_init(&l->base, &listener_vt);
  uv_tcp_init(loop, &l->h);
  cfu_handle_opened(&l->base, (uv_handle_t *)&l->h);
  cf_waitlist_init(&l->acceptors);
  return l;
}

static void on_connection(uv_stream_t *server, int status) {
  cfu_listener *l = server->data;
  if (status < 0)
    l->err = status;
  else
    l->pending = 1; /* libuv stops accepting until uv_accept takes it */
  cf_waitlist_wake_all(&l->acceptors);
}

int cfu_listener_listen(cfu_listener *l, const struct sockaddr *addr, int backlog, int flags) {
  int r = uv_tcp_bind(&l->h, addr, (unsigned)flags);
  if (r == 0) r = uv_listen((uv_stream_t *)&l->h, backlog, on_connection);
  if (r == 0) cfu_handle_started(&l->base);
  return r;
}

int cfu_listener_accept(cfu_listener *l, cfu_stream **out) {
  assert(!l->base.closing && l->pending);
  cfu_stream *s = cfu_stream_new_tcp(l->h.loop);
  if (!s) return UV_ENOMEM;
  l->pending = 0;
  int r = uv_accept((uv_stream_t *)&l->h, &s->h.stream);
  if (r == 0 && l->tls) r = cfu_tls_attach(s, l->tls, 1, NULL, NULL);
  if (r != 0) {
    cfu_handle_unref(&s->base);
    return r;
  }
  *out = s;
  return 0;
}

/* ---- UDP ------------------------------------------------------------------------ */

#define UDP_BUF 65536
#define UDP_QUEUE_MAX 1024

static void udp_closing(cfu_handle *h) { cf_waitlist_wake_all(&((cfu_udp *)h)->receivers); }

static void udp_free(cfu_handle *h) {
  cfu_udp *u = (cfu_udp *)h;
  while (u->head) {
    cfu_datagram *d = u->head;
    u->head = d->next;
    free(d);
  }
  free(u->rbuf);
  free(u);
}

static const cfu_handle_vt udp_vt = {udp_closing, udp_free, 0};

cfu_udp *cfu_udp_new(uv_loop_t *loop) {
  cfu_udp *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  cfu_handle_init(&u->base, &udp_vt);
  uv_udp_init(loop, &u->h);
  cfu_handle_opened(&u->base, (uv_handle_t *)&u->h);
  cf_waitlist_init(&u->receivers);
  return u;
}

static void udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  cfu_udp *u = h->data;
  (void)hint;
  if (!u->rbuf) u->rbuf = malloc(UDP_BUF);
  b->base = u->rbuf;
  b->len = u->rbuf ? UDP_BUF : 0;
}

static void udp_on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *addr,
                        unsigned flags) {
  cfu_udp *u = h->data;
  (void)flags;
  if (n < 0) {
    u->rerr = (int)n;
  } else if (addr) { /* n == 0 without an address: nothing to read */
    cfu_datagram *d = malloc(sizeof *d + (size_t)n);
    if (!d) return; /* dropped, as the network may */
    d->next = NULL;
    d->len = (size_t)n;
    memset(&d->from, 0, sizeof d->from);
    memcpy(&d->from, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    memcpy(d->data, b->base, (size_t)n);
    if (u->tail)
      u->tail->next = d;
    else
      u->head = d;
    u->tail = d;
    if (++u->queued >= UDP_QUEUE_MAX) { /* let the kernel queue (and drop) */
      uv_udp_recv_stop(&u->h);
      u->receiving = 0;
    }
  } else {
    return;
  }
  cf_waitlist_wake_all(&u->receivers);
}

int cfu_udp_poll_recv(cfu_udp *u, cf_context *cx) {
  if (u->head || u->rerr || u->base.closing) return 1;
  if (!u->receiving) {
    assert(!u->base.closing); /* returned above */
    int r = uv_udp_recv_start(&u->h, udp_alloc, udp_on_recv);
    if (r != 0) {
      u->rerr = r;
      return 1;
    }
    u->receiving = 1;
    cfu_handle_started(&u->base); /* the receiver's wait_begin refs it */
  }
  cf_waitlist_register(&u->receivers, cx);
  return 0;
}

cfu_datagram *cfu_udp_take(cfu_udp *u) {
  cfu_datagram *d = u->head;
  if (!d) return NULL;
  u->head = d->next;
  if (!u->head) u->tail = NULL;
  u->queued--;
  return d;
}

static void on_udp_sent(uv_udp_send_t *req, int status) { cfu__write_done(req->data, status); }

int cfu_udp_send_submit(cfu_udp *u, cfu_write *sr, const struct sockaddr *to, const cf_waker *w) {
  uv_buf_t b;
  b.base = sr->data;
  b.len = sr->len; /* not uv_buf_init: its length is an unsigned int */
  sr->req.udp.data = sr;
  int r = u->base.closing ? UV_EBADF : uv_udp_send(&sr->req.udp, &u->h, &b, 1, to, on_udp_sent);
  if (r == 0) cfu__write_busy(sr, &u->base);
  return cfu_req_submitted(&sr->base, r, w);
}

int cfu_addr_name(const struct sockaddr *sa, char *host, size_t hostlen, int *port) {
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    *port = ntohs(a->sin6_port);
    return uv_ip6_name(a, host, hostlen);
  }
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    *port = ntohs(a->sin_port);
    return uv_ip4_name(a, host, hostlen);
  }
  return UV_EAFNOSUPPORT;
}
