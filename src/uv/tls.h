/*
 * tls.h — TLS on a cfuture stream, on OpenSSL through memory BIOs.
 *
 * A stream becomes a TLS stream when an engine is attached to it
 * (cfu_tls_attach): from then on the bytes libuv reads are ciphertext,
 * fed to OpenSSL, and the stream's buffer holds the plaintext OpenSSL
 * gives back, so every read kind of stream.h works unchanged; writes are
 * encrypted on their way to libuv. Attaching works on a fresh connection
 * and on one that already carried plain bytes (STARTTLS): what was read
 * ahead is handed to OpenSSL as the first ciphertext.
 *
 * Ground rules
 * - Everything runs on the loop thread; OpenSSL's error queue is emptied
 *   after every failure it reports, so the next call's SSL_get_error is
 *   about that call only.
 * - What OpenSSL writes into its output BIO (handshake messages, alerts,
 *   session tickets, key-update answers, close_notify) is flushed to the
 *   socket right after the call that produced it, before any later write,
 *   so records go out in the order OpenSSL made them.
 * - A TLS failure is sticky: the stream's read error becomes one of the
 *   CFU_ETLS* codes below, with OpenSSL's reason kept in the engine
 *   (cfu_stream_strerror gives it), and every later read or write fails
 *   with it.
 * - A write before the handshake is over waits for it, as a read does (a
 *   server that speaks first). Renegotiation is refused
 *   (SSL_OP_NO_RENEGOTIATION), so after the handshake a write never needs
 *   input; one that OpenSSL answers with WANT_READ anyway fails the stream
 *   instead of losing bytes, as does any failure after OpenSSL took them.
 */
#ifndef CF_UV_TLS_H
#define CF_UV_TLS_H

#include <openssl/ssl.h>

#include "stream.h"

/* Failure codes beyond libuv's range (libuv's are above -4096). */
enum {
  CFU_ETLS = -5001,           /* a protocol failure: an alert, no shared cipher, bad record... */
  CFU_ETLSEOF = -5002,        /* the peer closed without close_notify */
  CFU_ECERTUNTRUSTED = -5003, /* the peer's chain ends at no trusted CA */
  CFU_ECERTEXPIRED = -5004,   /* a certificate expired or is not valid yet */
  CFU_EHOSTMISMATCH = -5005,  /* the certificate is not for the name or address asked for */
  CFU_ECERTREQUIRED = -5006,  /* a server that requires a client certificate got none */
  CFU_ECERTINVALID = -5007,   /* any other verification failure */
};

/* libuv's uv_err_name / uv_strerror, knowing the codes above too. */
const char *cfu_err_name(int err);
const char *cfu_strerror(int err);
static inline int cfu_is_tls_err(int err) { return err <= CFU_ETLS && err >= CFU_ECERTINVALID; }

/* ---- contexts -------------------------------------------------------------------
 * A context is an SSL_CTX with what cfuture adds: the server's ALPN list,
 * and on the client side a cache of sessions to resume, one per key (the
 * server's name and port). Contexts are counted: each stream that uses one
 * holds a reference. */
#define CFU_TLS_SESSIONS 64

typedef struct cfu_tls_ctx {
  SSL_CTX *ctx;
  int refs;
  uint8_t server;
  uint8_t verify;      /* peers are verified (client: the server; server: client_cert) */
  unsigned char *alpn; /* the server's protocols, in wire format */
  unsigned alpn_len;
  struct {
    char *key;
    SSL_SESSION *sess;
  } sessions[CFU_TLS_SESSIONS];
  unsigned next_session; /* the slot to reuse when all are taken */
} cfu_tls_ctx;

/* A new context with one reference, set up as a client or a server:
 * secure defaults (TLS 1.2 at least, no renegotiation, peers verified
 * where the role calls for it). NULL when out of memory. */
cfu_tls_ctx *cfu_tls_ctx_new(int server);
void cfu_tls_ctx_ref(cfu_tls_ctx *c);
void cfu_tls_ctx_unref(cfu_tls_ctx *c);
/* Client: keep sessions to resume (on by default). */
void cfu_tls_ctx_cache_sessions(cfu_tls_ctx *c, int on);
/* The server's ALPN choice among protocols (wire format; copied). 0 or UV_ENOMEM. */
int cfu_tls_ctx_set_alpn(cfu_tls_ctx *c, const unsigned char *wire, unsigned len);
/* The last OpenSSL error as text into buf (and the queue emptied). */
const char *cfu_tls_last_error(char *buf, size_t size);

/* ---- engines ----------------------------------------------------------------------- */

typedef struct cfu_tls {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl: ciphertext in, ciphertext out */
  cfu_tls_ctx *ctx; /* one reference */
  char *key;        /* client: the session cache's key, or NULL */
  uint8_t server;
  uint8_t hs_done;  /* the handshake completed */
  uint8_t notified; /* close_notify was sent */
  char msg[256];    /* the reason of the sticky failure (the stream's rerr) */
} cfu_tls;

/* Make s a TLS stream with context c. Client: `name` (may be NULL) is sent
 * as SNI and checked against the certificate (a numeric address is
 * checked as one and not sent); `key` picks the session to resume. The
 * client's first flight goes out at once. 0, or UV_EINVAL (s is TLS
 * already, or closing), UV_ENOMEM, or CFU_ETLS. */
int cfu_tls_attach(cfu_stream *s, cfu_tls_ctx *c, int server, const char *name, const char *key);
static inline int cfu_tls_handshake_done(const cfu_stream *s) { return s->tls && s->tls->hs_done; }

/* The message for err on s: OpenSSL's reason for s's TLS failure, else
 * cfu_strerror(err). */
const char *cfu_stream_strerror(const cfu_stream *s, int err);

/* Stream internals (stream.c calls these for a TLS stream). */
void cfu__tls_input(cfu_stream *s, const char *data, size_t n); /* ciphertext arrived */
void cfu__tls_eof(cfu_stream *s);                               /* the peer's end came */
/* Encrypt data (from its start) for writing. 0: all of it went out or is
 * queued in *w (submitted, waking `waker`); 1: OpenSSL wants input first
 * (nothing taken); or a libuv / CFU_ETLS* error. */
int cfu__tls_write(cfu_stream *s, const char *data, size_t len, cfu_write **w,
                   const cf_waker *waker);
void cfu__tls_shutdown(cfu_stream *s); /* send close_notify (once) */
void cfu__tls_free(cfu_tls *t);

#endif
