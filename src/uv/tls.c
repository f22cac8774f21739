/*
 * tls.c — TLS on a stream: OpenSSL through memory BIOs (tls.h has the
 * ground rules).
 *
 * The input path: libuv reads ciphertext into the free tail of the
 * stream's buffer (on_alloc in stream.c, as for a plain stream); it is
 * copied into the input BIO at once, and OpenSSL's plaintext is then
 * decrypted into that same tail, where readers find it. So a TLS stream
 * needs no buffer of its own beyond OpenSSL's.
 *
 * The output path: a write is encrypted a record at a time; each record
 * goes to the kernel straight from the output BIO while the kernel takes
 * everything, and the rest is encrypted into one queued write, sized for
 * the records' overhead up front.
 */
#include "tls.h"

#include <assert.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD 16384 /* plaintext per record: TLS's maximum */
#define OVERHEAD 512 /* per record, more than any suite TLS 1.2/1.3 allows adds */

/* ---- error codes ---------------------------------------------------------------- */

static const struct {
  int code;
  const char *name, *text;
} tls_errors[] = {
    {CFU_ETLS, "ETLS", "TLS protocol error"},
    {CFU_ETLSEOF, "ETLSEOF", "the peer closed the TLS connection without close_notify"},
    {CFU_ECERTUNTRUSTED, "ECERTUNTRUSTED", "the certificate is not issued by a trusted CA"},
    {CFU_ECERTEXPIRED, "ECERTEXPIRED", "the certificate has expired or is not valid yet"},
    {CFU_EHOSTMISMATCH, "EHOSTMISMATCH", "the certificate does not match the host name"},
    {CFU_ECERTREQUIRED, "ECERTREQUIRED", "a client certificate is required"},
    {CFU_ECERTINVALID, "ECERTINVALID", "the certificate did not verify"},
};

const char *cfu_err_name(int err) {
  if (cfu_is_tls_err(err)) return tls_errors[CFU_ETLS - err].name;
  return uv_err_name(err);
}

const char *cfu_strerror(int err) {
  if (cfu_is_tls_err(err)) return tls_errors[CFU_ETLS - err].text;
  return uv_strerror(err);
}

const char *cfu_stream_strerror(const cfu_stream *s, int err) {
  if (cfu_is_tls_err(err) && s && s->tls && s->tls->msg[0]) return s->tls->msg;
  return cfu_strerror(err);
}

const char *cfu_tls_last_error(char *buf, size_t size) {
  unsigned long e = ERR_peek_last_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  if (reason)
    snprintf(buf, size, "%s", reason);
  else if (e)
    ERR_error_string_n(e, buf, size);
  else
    snprintf(buf, size, "unknown TLS error");
  ERR_clear_error();
  return buf;
}

/* ---- contexts -------------------------------------------------------------------- */

static uv_once_t ex_once = UV_ONCE_INIT;
static int ex_index = -1; /* SSL ex_data: the cfu_tls of an SSL */

static void ex_init(void) { ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

static void forget_session(cfu_tls_ctx *c, unsigned i) {
  free(c->sessions[i].key);
  SSL_SESSION_free(c->sessions[i].sess);
  c->sessions[i].key = NULL;
  c->sessions[i].sess = NULL;
}

static int find_session(cfu_tls_ctx *c, const char *key) {
  for (unsigned i = 0; i < CFU_TLS_SESSIONS; i++)
    if (c->sessions[i].key && strcmp(c->sessions[i].key, key) == 0) return (int)i;
  return -1;
}

/* A client's new session (a TLS 1.3 ticket arrives after the handshake):
 * keep the latest per key. Returning 1 keeps OpenSSL's reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  cfu_tls *t = SSL_get_ex_data(ssl, ex_index);
  if (!t || !t->key || !SSL_SESSION_is_resumable(sess)) return 0;
  cfu_tls_ctx *c = t->ctx;
  int i = find_session(c, t->key);
  if (i < 0) {
    for (unsigned k = 0; k < CFU_TLS_SESSIONS && i < 0; k++)
      if (!c->sessions[k].key) i = (int)k;
    if (i < 0) {
      i = (int)c->next_session;
      c->next_session = (c->next_session + 1) % CFU_TLS_SESSIONS;
    }
    forget_session(c, (unsigned)i);
    c->sessions[i].key = strdup(t->key);
    if (!c->sessions[i].key) return 0;
  } else {
    SSL_SESSION_free(c->sessions[i].sess);
  }
  c->sessions[i].sess = sess;
  return 1;
}

/* The server picks the first of its protocols the client offers; none in
 * common: no ALPN at all (the client decides whether that will do). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  cfu_tls_ctx *c = arg;
  unsigned char *sel;
  if (!c->alpn) return SSL_TLSEXT_ERR_NOACK;
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

cfu_tls_ctx *cfu_tls_ctx_new(int server) {
  uv_once(&ex_once, ex_init);
  if (ex_index < 0) return NULL;
  cfu_tls_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ctx) {
    free(c);
    ERR_clear_error();
    return NULL;
  }
  c->refs = 1;
  c->server = (uint8_t)server;
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (server) {
    SSL_CTX_set_session_id_context(c->ctx, (const unsigned char *)"cfuture", 7);
    SSL_CTX_set_alpn_select_cb(c->ctx, on_alpn, c);
  } else {
    c->verify = 1;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    cfu_tls_ctx_cache_sessions(c, 1);
  }
  return c;
}

void cfu_tls_ctx_cache_sessions(cfu_tls_ctx *c, int on) {
  SSL_CTX_set_session_cache_mode(
      c->ctx, on ? SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE : SSL_SESS_CACHE_OFF);
  SSL_CTX_sess_set_new_cb(c->ctx, on ? on_new_session : NULL);
}

int cfu_tls_ctx_set_alpn(cfu_tls_ctx *c, const unsigned char *wire, unsigned len) {
  unsigned char *p = malloc(len ? len : 1);
  if (!p) return UV_ENOMEM;
  memcpy(p, wire, len);
  free(c->alpn);
  c->alpn = p;
  c->alpn_len = len;
  return 0;
}

void cfu_tls_ctx_ref(cfu_tls_ctx *c) { c->refs++; }

void cfu_tls_ctx_unref(cfu_tls_ctx *c) {
  if (--c->refs > 0) return;
  for (unsigned i = 0; i < CFU_TLS_SESSIONS; i++)
    forget_session(c, i);
  SSL_CTX_free(c->ctx);
  free(c->alpn);
  free(c);
}

/* ---- failures --------------------------------------------------------------------- */

static int verify_code(long v) {
  switch (v) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
  case X509_V_ERR_CERT_NOT_YET_VALID: return CFU_ECERTEXPIRED;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH: return CFU_EHOSTMISMATCH;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_CERT_UNTRUSTED: return CFU_ECERTUNTRUSTED;
  default: return CFU_ECERTINVALID;
  }
}

/* Make the failure sticky: code and reason, reading stops (stream.c sees
 * rerr), and the alert OpenSSL made goes to the peer. */
static int set_failure(cfu_stream *s, int code, const char *msg) {
  cfu_tls *t = s->tls;
  if (!s->rerr || !cfu_is_tls_err(s->rerr)) {
    s->rerr = code;
    snprintf(t->msg, sizeof t->msg, "%s", msg);
  }
  cf_waitlist_wake_all(&s->readers); /* a reader parked on an idle peer learns of it */
  return s->rerr;
}

static void flush(cfu_stream *s);

/* OpenSSL's call returned ret: WANT_READ is 0 (wait for input); anything
 * else is a failure, made sticky and returned. */
static int check(cfu_stream *s, int ret) {
  cfu_tls *t = s->tls;
  int e = SSL_get_error(t->ssl, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  char buf[200];
  unsigned long err = ERR_peek_last_error();
  int reason = ERR_GET_LIB(err) == ERR_LIB_SSL ? ERR_GET_REASON(err) : 0;
  long v = SSL_get_verify_result(t->ssl);
  int code;
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
    code = verify_code(v);
    snprintf(buf, sizeof buf, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    ERR_clear_error();
  } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    code = CFU_ECERTREQUIRED;
    snprintf(buf, sizeof buf, "the peer sent no certificate, and one is required");
    ERR_clear_error();
  } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING || (e == SSL_ERROR_SYSCALL && err == 0)) {
    code = CFU_ETLSEOF;
    snprintf(buf, sizeof buf, "%s", cfu_strerror(CFU_ETLSEOF));
    ERR_clear_error();
  } else {
    code = CFU_ETLS;
    cfu_tls_last_error(buf, sizeof buf);
  }
  set_failure(s, code, buf);
  flush(s);
  return s->rerr;
}

/* ---- the flow of records ------------------------------------------------------------ */

/* Send what OpenSSL wrote (best effort: a failure shows up on the next
 * write or read). */
static void flush(cfu_stream *s) {
  cfu_tls *t = s->tls;
  char *p;
  long n = BIO_get_mem_data(t->wbio, &p);
  if (n > 0) {
    /* records lost to a full memory break the stream; the peer's own
     * errors (EPIPE, ECONNRESET) reach readers by themselves */
    if (cfu__stream_send(s, p, (size_t)n) == UV_ENOMEM) set_failure(s, UV_ENOMEM, "out of memory");
    (void)BIO_reset(t->wbio);
  }
}

static void handshake(cfu_stream *s) {
  cfu_tls *t = s->tls;
  if (t->hs_done || s->rerr) return;
  ERR_clear_error(); /* SSL_get_error reads the thread's queue: only this call's errors */
  int r = SSL_do_handshake(t->ssl);
  if (r == 1)
    t->hs_done = 1;
  else
    check(s, r);
  flush(s);
}

/* Decrypt everything the input BIO holds into the stream's buffer. */
static void decrypt(cfu_stream *s) {
  cfu_tls *t = s->tls;
  while (!s->rerr && !s->eof) {
    if (!cfu__stream_reserve(s, RECORD)) {
      set_failure(s, UV_ENOMEM, "out of memory");
      return;
    }
    ERR_clear_error();
    int r = SSL_read(t->ssl, s->buf + s->off + s->len, (int)(s->cap - s->off - s->len));
    if (r > 0) {
      s->len += (size_t)r;
      /* nothing left to decrypt: spare the call that would say WANT_READ */
      if (SSL_pending(t->ssl) == 0 && BIO_ctrl_pending(t->rbio) == 0) break;
      continue;
    }
    if (SSL_get_error(t->ssl, r) == SSL_ERROR_ZERO_RETURN) {
      s->eof = 1; /* close_notify: a clean end */
      break;
    }
    check(s, r);
    break;
  }
  flush(s); /* tickets processed, key updates answered, alerts */
}

void cfu__tls_input(cfu_stream *s, const char *data, size_t n) {
  cfu_tls *t = s->tls;
  if (s->rerr) return;
  if (BIO_write(t->rbio, data, (int)n) != (int)n) {
    set_failure(s, UV_ENOMEM, "out of memory");
    return;
  }
  handshake(s);
  if (t->hs_done) decrypt(s);
}

void cfu__tls_eof(cfu_stream *s) {
  cfu_tls *t = s->tls;
  s->eof = 1;
  if (s->rerr || (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN)) return;
  set_failure(s, CFU_ETLSEOF,
              t->hs_done ? "the peer closed the connection without close_notify"
                         : "the peer closed the connection during the TLS handshake");
}

/* One record's worth, or the rest, of data: encrypted into the output BIO.
 * After the handshake, with renegotiation refused, OpenSSL has no reason
 * to want input for a write; if it does anyway, the stream fails rather
 * than lose the bytes. */
static int encrypt(cfu_stream *s, const char *data, size_t n) {
  ERR_clear_error();
  int r = SSL_write(s->tls->ssl, data, (int)n);
  if (r > 0) return 0;
  int e = check(s, r);
  return e ? e : set_failure(s, CFU_ETLS, "the peer asked for input in the middle of a write");
}

/* A failure after OpenSSL took bytes (its record numbers moved on): the
 * stream cannot go on. */
static int lost(cfu_stream *s, int err) {
  set_failure(s, err, cfu_strerror(err));
  return s->rerr;
}

int cfu__tls_write(cfu_stream *s, const char *data, size_t len, cfu_write **out,
                   const cf_waker *waker) {
  cfu_tls *t = s->tls;
  *out = NULL;
  if (s->rerr && cfu_is_tls_err(s->rerr)) return s->rerr;
  if (t->notified) return UV_EPIPE;
  if (!t->hs_done) {
    /* a handshake that cannot finish any more: nothing to wait for */
    if (s->rerr || s->eof) return s->rerr ? s->rerr : CFU_ETLSEOF;
    handshake(s);
    if (s->rerr) return s->rerr;
    if (!t->hs_done) return 1;
  }
  size_t off = 0, left = 0;
  char *p = NULL;
  while (off < len) { /* straight to the kernel while it takes it all */
    size_t k = len - off < RECORD ? len - off : RECORD;
    int r = encrypt(s, data + off, k);
    if (r) return r;
    off += k;
    long n = BIO_get_mem_data(t->wbio, &p);
    int took = cfu_stream_try_write(s, p, (size_t)n);
    if (took < 0) {
      (void)BIO_reset(t->wbio);
      return lost(s, took);
    }
    if (took < n) {
      p += took;
      left = (size_t)n - (size_t)took;
      break;
    }
    (void)BIO_reset(t->wbio);
  }
  /* all of it taken; an empty write behind queued ones waits for them (a
   * flush, as for a plain stream), else it is done */
  if (off == len && left == 0 && (len != 0 || s->h.stream.write_queue_size == 0)) return 0;
  size_t records = (len - off + RECORD - 1) / RECORD;
  size_t cap = left + (len - off) + records * OVERHEAD;
  cfu_write *w = cfu_write_new(p, left);
  if (w) w = cfu_write_reserve(w, cap);
  (void)BIO_reset(t->wbio);
  if (!w) return lost(s, UV_ENOMEM);
  while (off < len) {
    size_t k = len - off < RECORD ? len - off : RECORD;
    int r = encrypt(s, data + off, k);
    if (r) {
      cfu_write_orphan(w);
      return lost(s, r);
    }
    off += k;
    long n = BIO_get_mem_data(t->wbio, &p);
    if (w->len + (size_t)n > cap) { /* small records (a peer's max_fragment_length): grow */
      size_t need = w->len + (size_t)n + (len - off) + records * OVERHEAD;
      cap = need > 2 * cap ? need : 2 * cap;
      w = cfu_write_reserve(w, cap); /* frees w when it fails */
      if (!w) {
        (void)BIO_reset(t->wbio);
        return lost(s, UV_ENOMEM);
      }
    }
    memcpy(w->data + w->len, p, (size_t)n);
    w->len += (size_t)n;
    (void)BIO_reset(t->wbio);
  }
  int r = cfu_write_submit(s, w, waker);
  if (r != 0) {
    cfu_write_orphan(w);
    return lost(s, r);
  }
  *out = w;
  return 0;
}

void cfu__tls_shutdown(cfu_stream *s) {
  cfu_tls *t = s->tls;
  if (t->notified || !t->hs_done || (s->rerr && cfu_is_tls_err(s->rerr))) return;
  t->notified = 1;
  ERR_clear_error();
  if (SSL_shutdown(t->ssl) < 0) ERR_clear_error();
  flush(s);
}

/* ---- engines ------------------------------------------------------------------------ */

static int is_address(const char *name) {
  unsigned char buf[16];
  return uv_inet_pton(AF_INET, name, buf) == 0 || uv_inet_pton(AF_INET6, name, buf) == 0;
}

int cfu_tls_attach(cfu_stream *s, cfu_tls_ctx *c, int server, const char *name, const char *key) {
  if (s->tls || s->base.closing) return UV_EINVAL;
  cfu_tls *t = calloc(1, sizeof *t);
  if (!t) return UV_ENOMEM;
  t->server = (uint8_t)server;
  t->ssl = SSL_new(c->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (key && !server) t->key = strdup(key);
  if (!t->ssl || !t->rbio || !t->wbio || (key && !server && !t->key)) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t->key);
    free(t);
    ERR_clear_error();
    return UV_ENOMEM;
  }
  BIO_set_mem_eof_return(t->rbio, -1); /* an empty input BIO means "more to come" */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_ex_data(t->ssl, ex_index, t);
  t->ctx = c;
  cfu_tls_ctx_ref(c);
  s->tls = t;
  int ok = 1;
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (name && *name) {
      if (is_address(name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1;
      } else {
        ok = SSL_set_tlsext_host_name(t->ssl, name) == 1 && SSL_set1_host(t->ssl, name) == 1;
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
    int i = t->key ? find_session(c, t->key) : -1;
    if (ok && i >= 0) {
      SSL_SESSION *sess = c->sessions[i].sess;
      SSL_set_session(t->ssl, sess);
      /* a TLS 1.3 ticket is used once (RFC 8446 C.4); the connection brings new ones */
      if (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION) forget_session(c, (unsigned)i);
    }
  }
  if (!ok) {
    char buf[200];
    set_failure(s, CFU_ETLS, cfu_tls_last_error(buf, sizeof buf));
    return CFU_ETLS;
  }
  /* bytes read ahead as plaintext are the peer's first ciphertext */
  size_t n;
  const char *ahead = cfu_stream_buffered(s, &n);
  if (n > 0) {
    if (BIO_write(t->rbio, ahead, (int)n) != (int)n) return UV_ENOMEM;
    cfu_stream_consume(s, n);
  }
  if (s->eof) {
    cfu__tls_eof(s);
    return 0;
  }
  if (!server || n > 0) {
    handshake(s);
    if (t->hs_done) decrypt(s);
  }
  return 0;
}

void cfu__tls_free(cfu_tls *t) {
  if (!t) return;
  SSL_free(t->ssl); /* and its BIOs */
  cfu_tls_ctx_unref(t->ctx);
  free(t->key);
  free(t);
}
