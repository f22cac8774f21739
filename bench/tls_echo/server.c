/* bench/tls_echo, the C reference: a TLS echo server on libuv and OpenSSL
 * memory BIOs.
 *
 *   tls_server CERT KEY [PORT]     (or TLS_CERT / TLS_KEY in the environment)
 *
 * Binds 127.0.0.1 (PORT, default 0 = any free port), prints the bound port as
 * the first line of stdout, and serves until killed. Per connection: the read
 * callback feeds what arrived into the SSL's read BIO, SSL_read drains it
 * (doing the handshake first), every plaintext chunk is SSL_write-n back into
 * the write BIO, and the write BIO is flushed once per read: uv_try_write
 * from a buffer, and what the kernel does not take is copied into a
 * uv_write. On the client's close_notify it answers with its own and closes
 * after the last write; on end of stream or an error it closes. OpenSSL's
 * defaults otherwise (TLS 1.2-1.3, stateless TLS 1.3 session tickets). */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
  uv_tcp_t tcp;
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  int writes;       /* uv_writes in flight */
  int closing;      /* close once they are done */
} conn_t;

typedef struct {
  uv_write_t req;
  conn_t *c;
  char data[];
} wreq_t;

static SSL_CTX *ctx;
static char rbuf[65536]; /* the socket's bytes, consumed (into the rbio) before the next read */
static char pbuf[16384]; /* plaintext, one SSL_read at a time */
static char obuf[65536]; /* ciphertext on its way out */

static void on_close(uv_handle_t *h) {
  conn_t *c = (conn_t *)h;
  SSL_free(c->ssl);
  free(c);
}

static void conn_close(conn_t *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_write(uv_write_t *req, int status) {
  wreq_t *r = (wreq_t *)req;
  conn_t *c = r->c;
  free(r);
  c->writes--;
  if (status < 0 || (c->closing && c->writes == 0)) conn_close(c);
}

/* Send n bytes of ciphertext: straight to the kernel when nothing is queued, the rest queued. */
static int send_out(conn_t *c, const char *p, size_t n) {
  size_t done = 0;
  if (c->writes == 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w >= 0)
      done = (size_t)w;
    else if (w != UV_EAGAIN)
      return w;
    if (done == n) return 0;
  }
  wreq_t *r = malloc(sizeof *r + (n - done));
  if (!r) return UV_ENOMEM;
  r->c = c;
  memcpy(r->data, p + done, n - done);
  uv_buf_t b = uv_buf_init(r->data, (unsigned)(n - done));
  int e = uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (e < 0) {
    free(r);
    return e;
  }
  c->writes++;
  return 0;
}

/* Move everything the write BIO holds to the socket. */
static int flush(conn_t *c) {
  for (;;) {
    int n = BIO_read(c->wbio, obuf, sizeof obuf);
    if (n <= 0) return 0;
    int e = send_out(c, obuf, (size_t)n);
    if (e < 0) return e;
  }
}

/* Close after the queued writes (close_notify or an alert among them). */
static void close_after_writes(conn_t *c) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->closing = 1;
  if (c->writes == 0) conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  (void)sz;
  *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn_t *c = (conn_t *)s;
  if (n == 0) return;
  if (n < 0) { /* end of stream without close_notify, or a reset */
    conn_close(c);
    return;
  }
  if (BIO_write(c->rbio, b->base, (int)n) != (int)n) {
    conn_close(c);
    return;
  }
  for (;;) {
    int r = SSL_read(c->ssl, pbuf, sizeof pbuf);
    if (r > 0) {
      if (SSL_write(c->ssl, pbuf, r) != r) { /* a memory BIO takes it all */
        conn_close(c);
        return;
      }
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) SSL_shutdown(c->ssl); /* the client's close_notify: answer it */
    ERR_clear_error();
    if (flush(c) < 0)
      conn_close(c);
    else
      close_after_writes(c);
    return;
  }
  if (flush(c) < 0) conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  uv_tcp_init(server->loop, &c->tcp);
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || !c->ssl || !c->rbio || !c->wbio) {
    if (c->ssl) {
      SSL_set_bio(c->ssl, c->rbio, c->wbio);
    } else {
      BIO_free(c->rbio);
      BIO_free(c->wbio);
    }
    conn_close(c);
    return;
  }
  BIO_set_mem_eof_return(c->rbio, -1); /* empty = retry, not end of stream */
  BIO_set_mem_eof_return(c->wbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_accept_state(c->ssl);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

int main(int argc, char **argv) {
  const char *cert = argc > 1 ? argv[1] : getenv("TLS_CERT");
  const char *key = argc > 2 ? argv[2] : getenv("TLS_KEY");
  int port = argc > 3 ? atoi(argv[3]) : 0;
  if (!cert || !key) {
    fprintf(stderr, "usage: tls_server CERT KEY [PORT]\n");
    return 2;
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "tls_server: cannot load %s / %s: ", cert, key);
    ERR_print_errors_fp(stderr);
    return 1;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
  if (r < 0) {
    fprintf(stderr, "tls_server: %s\n", uv_strerror(r));
    return 1;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  printf("%d\n", ntohs(bound.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
