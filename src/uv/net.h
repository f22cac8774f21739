/*
 * net.h — TCP connect and listen, UDP, and name resolution on libuv.
 *
 * Each in-flight request (a lookup, a connect, a datagram send) is a
 * request (req.h): C memory that lives until its libuv callback; the future
 * that started it may let go earlier (orphan), and the callback then cleans
 * up: a connection made for nobody is closed, a resolved address list is
 * freed.
 */
#ifndef CF_UV_NET_H
#define CF_UV_NET_H

#include "stream.h"
#include "tls.h"

/* ---- name resolution --------------------------------------------------------- */

typedef struct cfu_lookup {
  cfu_req base;
  uv_getaddrinfo_t req;
  struct addrinfo *res; /* the answer, owned until freed */
} cfu_lookup;

cfu_lookup *cfu_lookup_new(void); /* NULL when out of memory */
/* Start resolving host (and service, may be NULL) for socktype (SOCK_STREAM,
 * SOCK_DGRAM, or 0 for any). 0, or a libuv error: then l is done with it. */
int cfu_lookup_start(uv_loop_t *loop, cfu_lookup *l, const char *host, const char *service,
                     int socktype, int family, const cf_waker *w);
void cfu_lookup_orphan(cfu_lookup *l); /* frees now or in the callback */

/* ---- TCP connect ----------------------------------------------------------------- */

/* Busy from the start until the last address was tried: resolving, then
 * connecting to each address in turn until one works. */
typedef struct cfu_connect {
  cfu_req base;
  uv_getaddrinfo_t resolve;
  uv_connect_t req;
  uv_loop_t *loop;
  struct addrinfo *res;  /* the resolved addresses, owned until freed */
  struct addrinfo *next; /* the address to try after the current one */
  cfu_stream *s;         /* the connection being made (one reference); NULL while resolving */
} cfu_connect;

cfu_connect *cfu_connect_new(void); /* NULL when out of memory */
/* 0, or a libuv error: then c is done with it. */
int cfu_connect_start(uv_loop_t *loop, cfu_connect *c, const char *host, const char *port,
                      const cf_waker *w);
void cfu_connect_orphan(cfu_connect *c); /* frees now, or once the attempt is over */
/* Take the connected stream (done, no error): the caller owns its reference. */
cfu_stream *cfu_connect_take(cfu_connect *c);

/* ---- TCP listen ---------------------------------------------------------------- */

typedef struct cfu_listener {
  cfu_handle base; /* refs: the Lua object and pending accepts */
  uv_tcp_t h;
  uint8_t pending; /* libuv holds an accepted connection for uv_accept */
  int err;         /* a failed accept, reported to the next acceptor */
  cf_waitlist acceptors;
  cfu_tls_ctx *tls; /* accepted connections are TLS servers with it (one reference), or NULL */
} cfu_listener;

cfu_listener *cfu_listener_new(uv_loop_t *loop);
int cfu_listener_listen(cfu_listener *l, const struct sockaddr *addr, int backlog, int flags);
/* Accept connections as TLS streams with context c (referenced). */
void cfu_listener_set_tls(cfu_listener *l, cfu_tls_ctx *c);
/* Accept the pending connection into a new stream (one reference). */
int cfu_listener_accept(cfu_listener *l, cfu_stream **out);
/* The failed accept to report (0: none), reported once. */
static inline int cfu_listener_take_err(cfu_listener *l) {
  int err = l->err;
  l->err = 0;
  return err;
}

/* ---- UDP ---------------------------------------------------------------------- */

typedef struct cfu_datagram {
  struct cfu_datagram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[];
} cfu_datagram;

typedef struct cfu_udp {
  cfu_handle base; /* refs: the Lua object, receives, sends in flight */
  uv_udp_t h;
  uint8_t receiving;
  int rerr;
  cfu_datagram *head, *tail; /* received, not yet taken */
  size_t queued;
  char *rbuf; /* 64 KiB receive buffer */
  cf_waitlist receivers;
} cfu_udp;

cfu_udp *cfu_udp_new(uv_loop_t *loop);
/* 1 if a datagram (or an error / close) is there, else start receiving,
 * register cx and return 0. */
int cfu_udp_poll_recv(cfu_udp *u, cf_context *cx);
cfu_datagram *cfu_udp_take(cfu_udp *u); /* caller frees */
/* A receive counts on u's handle while it is pending (cfu_handle_wait), as
 * an accept does on a listener's; sends in flight keep the loop alive as
 * requests. */

/* A datagram in flight is a cfu_write (stream.h), made by cfu_write_new
 * and let go with cfu_write_orphan. */
/* 0, or a libuv error: then sr is done with it. */
int cfu_udp_send_submit(cfu_udp *u, cfu_write *sr, const struct sockaddr *to, const cf_waker *w);

/* "1.2.3.4" / "::1" and a port for an address; 0 or a libuv error. */
int cfu_addr_name(const struct sockaddr *sa, char *host, size_t hostlen, int *port);

#endif
