/* tls_client: the load generator of bench/tls_echo (C, OpenSSL, epoll, threads).
 *
 *   tls_client echo      -p PORT -a CA_PEM [-c CONNS] [-r ROUNDS] [-s SIZE] [common options]
 *   tls_client handshake -p PORT -a CA_PEM [-H COUNT] [-C CONCURRENCY] [common options]
 *   common: [-j THREADS] [-n PEER] [-N SERVERNAME] [-P SERVER_PID] [-t TIMEOUT_S]
 *
 * Every connection is TLS 1.3 only (min = max = 1.3, OpenSSL's default
 * ciphersuites and groups), verifies the server's certificate against CA_PEM
 * and checks its name (SERVERNAME, default "localhost", also sent as SNI).
 * Sockets are non-blocking with TCP_NODELAY; OpenSSL reads and writes them
 * directly (read-ahead on, so one read(2) takes a whole record). Each of the
 * THREADS threads runs its own epoll loop over its share of the connections.
 *
 * echo (the tcp_echo workload over TLS): CONNS (100) connections connect and
 * complete their handshakes; once all have, the clock starts and each does
 * ROUNDS (2000) round trips of a SIZE (64) byte message: SSL_write it, SSL_read
 * until SIZE bytes came back, check them against what was sent, repeat. Prints
 *   tls_echo PEER CONNS*ROUNDS SECONDS rtt_per_s=... [cpu, TLS parameters]
 * SECONDS runs from the last handshake to the last echo received.
 *
 * handshake: COUNT (2000) connections, at most CONCURRENCY (8) at a time, each
 * a full handshake: connect(2), handshake, close_notify, read the server's
 * close_notify (or end of stream, which takes in its session tickets), close.
 * Then the same with resumption: first, outside the clock, enough full
 * connections to collect COUNT TLS 1.3 tickets (a server sends one or more
 * after each full handshake); then COUNT connections, each offering one of
 * those tickets (SSL_set_session), each ticket used once (OpenSSL's client
 * does not resume a session twice), so every counted connection can resume
 * whether or not the server renews tickets on resumption. Prints
 *   tls_handshake PEER full COUNT SECONDS hs_per_s=... resumed=R tickets=T ...
 *   tls_handshake PEER resumed COUNT SECONDS hs_per_s=... resumed=R tickets=T ...
 * resumed = how many connections the server actually resumed; tickets = new
 * tickets received per connection in that phase (0 in the resumed phase: the
 * server does not renew them, so a client that keeps only its latest ticket
 * would resume every other connection).
 *
 * The cpu fields are cores used over the measured region (CPU seconds /
 * wall seconds): client_cpu from getrusage (all threads), server_cpu from
 * /proc/SERVER_PID/stat (utime + stime of all its threads, 10 ms ticks),
 * when -P is given; server_us = the server's CPU microseconds per round trip
 * or per handshake. Any error (connect, handshake, verification, a wrong
 * echo, the server closing early) or going past TIMEOUT_S (60) prints a
 * message on stderr and exits 1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECT, ST_HANDSHAKE, ST_READY, ST_ECHO, ST_SHUTDOWN, ST_DRAIN, ST_DONE };

typedef struct worker worker_t;

typedef struct {
  int fd;
  SSL *ssl;
  int state;
  uint32_t events; /* current epoll interest */
  int id;
  long round;   /* echo: round trips completed */
  size_t got;   /* echo: bytes of the current reply received */
  int wpending; /* echo: the message is still to be written */
  worker_t *w;
  char msg[256];
  char in[256];
} conn_t;

struct worker {
  int idx, ep;
  conn_t *conns;
  int n;              /* connections (echo) or slots (handshake) */
  int live;           /* echo: not yet ready / not yet done; handshake: busy slots */
  long todo;          /* handshake: connections to make in this phase */
  long started;       /* handshake: connections begun in this phase */
  long resumed;       /* handshake: connections the server resumed */
  int resume;         /* handshake: offer a ticket from the pool */
  int collect;        /* handshake: keep the tickets received in the pool */
  long tickets;       /* handshake: tickets received */
  SSL_SESSION **pool; /* tickets to offer, each once */
  long pool_head, pool_n, pool_cap;
  pthread_t th;
};

static const char *mode;
static const char *peer = "server";
static const char *cafile;
static const char *servername = "localhost";
static int port;
static int nthreads = 1;
static int nconns = 100;
static long rounds = 2000;
static size_t msgsize = 64;
static long hs_count = 2000;
static int hs_conc = 8;
static long server_pid;
static double timeout_s = 60;

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static double deadline;
static atomic_int failed;
static atomic_long tickets;
static worker_t *workers;

/* Phases: every worker reports ready, the main thread starts the clock and lets them go, every
 * worker reports done. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int n_ready, n_done, go_phase;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *fmt, ...) {
  if (atomic_exchange(&failed, 1)) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  unsigned long e = ERR_get_error();
  char ebuf[256] = "";
  if (e) ERR_error_string_n(e, ebuf, sizeof ebuf);
  fprintf(stderr, "tls_client (%s, %s): %s%s%s\n", peer, mode, buf, e ? ": " : "", ebuf);
  pthread_mutex_lock(&mu);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static const char *ssl_err_name(int e) {
  switch (e) {
  case SSL_ERROR_ZERO_RETURN: return "the server sent close_notify";
  case SSL_ERROR_SYSCALL: return "I/O error or end of stream";
  case SSL_ERROR_SSL: return "TLS error";
  default: return "unexpected SSL error";
  }
}

static void want(conn_t *c, uint32_t ev) {
  if (c->events == ev) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
    fail(errno == ENOENT ? "the server hung up on a connection while it waited" : "epoll_ctl: %s",
         strerror(errno));
  c->events = ev;
}

/* After an SSL call returned r <= 0: wait for what it wants (1), or fail (0). */
static int want_io(conn_t *c, int r, const char *what) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    want(c, EPOLLIN);
    return 1;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    want(c, EPOLLOUT);
    return 1;
  }
  if (e == SSL_ERROR_SSL && SSL_get_verify_result(c->ssl) != X509_V_OK) {
    fail("%s: certificate verification: %s", what,
         X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    return 0;
  }
  int en = errno;
  fail("%s: %s%s%s", what, ssl_err_name(e), e == SSL_ERROR_SYSCALL && en ? ": " : "",
       e == SSL_ERROR_SYSCALL && en ? strerror(en) : "");
  return 0;
}

static void conn_open(conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail("socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    fail("connect: %s", strerror(errno));
    return;
  }
  c->ssl = SSL_new(ctx);
  if (!c->ssl) {
    fail("SSL_new");
    return;
  }
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  SSL_set_tlsext_host_name(c->ssl, servername);
  if (!SSL_set1_host(c->ssl, servername)) {
    fail("SSL_set1_host");
    return;
  }
  SSL_set_app_data(c->ssl, c);
  worker_t *w = c->w;
  if (w->resume && w->pool_head < w->pool_n) {
    SSL_SESSION *sess = w->pool[w->pool_head++];
    int ok = SSL_set_session(c->ssl, sess); /* takes its own reference */
    SSL_SESSION_free(sess);
    if (!ok) {
      fail("SSL_set_session");
      return;
    }
  }
  c->state = ST_CONNECT;
  c->events = EPOLLOUT;
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &e) < 0) fail("epoll_ctl: %s", strerror(errno));
}

static void conn_free(conn_t *c) {
  if (c->ssl) SSL_free(c->ssl);
  if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
  c->ssl = NULL;
  c->fd = -1;
}

static void fill_msg(conn_t *c) {
  /* distinct content per connection and round, so a misrouted echo is caught */
  int n = snprintf(c->msg, sizeof c->msg, "c%05d r%09ld ", c->id, c->round);
  for (size_t i = (size_t)n; i < msgsize; i++)
    c->msg[i] = (char)('a' + (i + (size_t)c->round) % 26);
  c->msg[msgsize - 1] = '\n';
}

static char proto_info[256];
static atomic_int proto_taken;

static void note_protocol(SSL *ssl) {
  if (atomic_exchange(&proto_taken, 1)) return;
  int nid = SSL_get_negotiated_group(ssl);
  const char *group = nid ? SSL_group_to_name(ssl, nid) : NULL;
  int type = 0, hash = 0;
  SSL_get_peer_signature_type_nid(ssl, &type);
  SSL_get_peer_signature_nid(ssl, &hash);
  const char *alg = type == EVP_PKEY_EC        ? "ecdsa"
                    : type == EVP_PKEY_RSA_PSS ? "rsa_pss"
                    : type == EVP_PKEY_RSA     ? "rsa"
                    : type                     ? OBJ_nid2sn(type)
                                               : "?";
  snprintf(proto_info, sizeof proto_info, "proto=%s cipher=%s group=%s sig=%s_%s",
           SSL_get_version(ssl), SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
           group ? group : "?", alg, hash ? OBJ_nid2sn(hash) : "?");
}

static void hs_next(conn_t *c);

/* A handshake-mode connection ended cleanly: count it, start the next. */
static void hs_finish(conn_t *c) {
  if (SSL_session_reused(c->ssl)) c->w->resumed++;
  conn_free(c);
  hs_next(c);
}

static void hs_next(conn_t *c) {
  worker_t *w = c->w;
  if (w->started < w->todo) {
    w->started++;
    conn_open(c);
  } else {
    c->state = ST_DONE;
    w->live--;
  }
}

static void echo_step(conn_t *c) {
  for (;;) {
    if (c->wpending) {
      int r = SSL_write(c->ssl, c->msg, (int)msgsize);
      if (r <= 0) {
        want_io(c, r, "echo write");
        return;
      }
      c->wpending = 0;
      /* nothing can have arrived for this message yet: wait, unless a record is buffered */
      if (!SSL_has_pending(c->ssl)) {
        want(c, EPOLLIN);
        return;
      }
    }
    int r = SSL_read(c->ssl, c->in + c->got, (int)(msgsize - c->got));
    if (r <= 0) {
      if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
        fail("echo read: the server closed the connection after %ld round trips", c->round);
        return;
      }
      want_io(c, r, "echo read");
      return;
    }
    c->got += (size_t)r;
    if (c->got < msgsize) continue;
    if (memcmp(c->in, c->msg, msgsize) != 0) {
      fail("the echo differs from the message sent");
      return;
    }
    c->round++;
    if (c->round == rounds) {
      c->state = ST_DONE;
      want(c, 0);
      c->w->live--;
      return;
    }
    fill_msg(c);
    c->got = 0;
    c->wpending = 1;
  }
}

static void conn_step(conn_t *c) {
  int r;
  switch (c->state) {
  case ST_CONNECT: {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      fail("connect: %s", strerror(err));
      return;
    }
    c->state = ST_HANDSHAKE;
  } /* fall through */
  case ST_HANDSHAKE:
    r = SSL_connect(c->ssl);
    if (r != 1) {
      want_io(c, r, "handshake");
      return;
    }
    note_protocol(c->ssl);
    if (*mode == 'e') { /* echo: wait for the others */
      c->state = ST_READY;
      want(c, 0);
      c->w->live--;
      return;
    }
    c->state = ST_SHUTDOWN;
    /* fall through */
  case ST_SHUTDOWN:
    r = SSL_shutdown(c->ssl);
    if (r < 0) {
      want_io(c, r, "close_notify");
      return;
    }
    if (r == 1) {
      hs_finish(c);
      return;
    }
    c->state = ST_DRAIN;
    /* fall through */
  case ST_DRAIN: /* the tickets, then the server's close_notify or end of stream */
    for (;;) {
      char buf[256];
      r = SSL_read(c->ssl, buf, sizeof buf);
      if (r > 0) {
        fail("the server sent data on a handshake-only connection");
        return;
      }
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) break; /* also end of stream: SSL_OP_IGNORE_UNEXPECTED_EOF */
      want_io(c, r, "reading the server's close_notify");
      return;
    }
    hs_finish(c);
    return;
  case ST_ECHO: echo_step(c); return;
  default: /* ready or done: only a hang-up or error can be reported; stop watching */
    epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    return;
  }
}

/* Run w's event loop until w->live is 0 (or a failure, or the deadline). */
static void run_loop(worker_t *w) {
  struct epoll_event ev[256];
  while (w->live > 0 && !atomic_load(&failed)) {
    int n = epoll_wait(w->ep, ev, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("epoll_wait: %s", strerror(errno));
      return;
    }
    for (int i = 0; i < n && !atomic_load(&failed); i++)
      conn_step(ev[i].data.ptr);
    if (n == 0 && now() > deadline) {
      fail("timed out after %.0f s (a worker had %d connections still busy)", timeout_s, w->live);
      return;
    }
  }
}

/* Worker side of a phase boundary: report ready, wait for the start. */
static int phase_begin(int phase) {
  pthread_mutex_lock(&mu);
  n_ready++;
  pthread_cond_broadcast(&cv);
  while (go_phase < phase && !atomic_load(&failed))
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return !atomic_load(&failed);
}

static void phase_end(void) {
  pthread_mutex_lock(&mu);
  n_done++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Main side: wait for every worker to reach `count` (n_ready or n_done). */
static int wait_count(int *counter, int target) {
  pthread_mutex_lock(&mu);
  while (*counter < target && !atomic_load(&failed)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&cv, &mu, &ts);
    if (now() > deadline + 1) fail("timed out after %.0f s", timeout_s);
  }
  pthread_mutex_unlock(&mu);
  return !atomic_load(&failed);
}

static void start_phase(int phase) {
  pthread_mutex_lock(&mu);
  go_phase = phase;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static void *echo_worker(void *arg) {
  worker_t *w = arg;
  w->live = w->n;
  for (int i = 0; i < w->n; i++)
    conn_open(&w->conns[i]);
  run_loop(w); /* all handshakes */
  if (!phase_begin(1)) return NULL;
  w->live = w->n;
  for (int i = 0; i < w->n && !atomic_load(&failed); i++) {
    conn_t *c = &w->conns[i];
    c->state = ST_ECHO;
    fill_msg(c);
    c->wpending = 1;
    echo_step(c);
  }
  run_loop(w);
  phase_end();
  return NULL;
}

static long share(long total, int i) { return total / nthreads + (i < total % nthreads); }

static void hs_phase(worker_t *w, long count, int resume, int collect) {
  w->todo = count;
  w->started = 0;
  w->resumed = 0;
  w->resume = resume;
  w->collect = collect;
  w->live = w->n;
  for (int i = 0; i < w->n; i++)
    hs_next(&w->conns[i]);
  run_loop(w);
}

static void *hs_worker(void *arg) {
  worker_t *w = arg;
  long count = share(hs_count, w->idx);
  if (!phase_begin(1)) return NULL;
  hs_phase(w, count, 0, 0); /* full */
  phase_end();
  /* phase 2, not measured: full connections until the pool holds `count` tickets */
  w->pool_cap = count;
  w->pool = calloc((size_t)count, sizeof *w->pool);
  long got = w->tickets; /* in the full phase, `count` connections */
  if (!phase_begin(2)) return NULL;
  for (int tries = 0; got > 0 && w->pool_n < count && tries < 8 && !atomic_load(&failed); tries++) {
    long need = count - w->pool_n;
    hs_phase(w, (need * count + got - 1) / got, 0, 1);
  }
  phase_end();
  if (!phase_begin(3)) return NULL;
  hs_phase(w, count, 1, 0); /* resumed */
  phase_end();
  return NULL;
}

static double rusage_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* CPU seconds the server has used (all threads), or -1. */
static double server_cpu_s(void) {
  if (server_pid <= 0) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long ut, st;
  /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct {
  double t, cpu, scpu;
} mark_t;

static mark_t mark(void) { return (mark_t){now(), rusage_s(), server_cpu_s()}; }

/* " client_cpu=... server_cpu=... server_us=..." for the region a..b and `ops` operations */
static void cpu_fields(char *out, size_t len, mark_t a, mark_t b, long ops) {
  double dt = b.t - a.t;
  int n = snprintf(out, len, " client_cpu=%.2f", (b.cpu - a.cpu) / dt);
  if (a.scpu >= 0 && b.scpu >= 0)
    snprintf(out + n, len - (size_t)n, " server_cpu=%.2f server_us=%.1f", (b.scpu - a.scpu) / dt,
             (b.scpu - a.scpu) * 1e6 / (double)ops);
}

/* A ticket arrived (in the connection's own thread): count it, keep it if collecting. */
static int new_session_cb(SSL *ssl, SSL_SESSION *s) {
  conn_t *c = SSL_get_app_data(ssl);
  atomic_fetch_add(&tickets, 1);
  if (!c) return 0;
  worker_t *w = c->w;
  w->tickets++;
  if (!w->collect || w->pool_n >= w->pool_cap) return 0;
  w->pool[w->pool_n++] = s; /* the pool owns it now */
  return 1;
}

static void usage(void) {
  fprintf(stderr, "usage: tls_client echo|handshake -p PORT -a CA_PEM [-c CONNS] [-r ROUNDS] [-s "
                  "SIZE 32..256]\n"
                  "       [-H COUNT] [-C CONCURRENCY] [-j THREADS] [-n PEER] [-N SERVERNAME] [-P "
                  "SERVER_PID] [-t TIMEOUT_S]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  mode = argv[1];
  if (strcmp(mode, "echo") != 0 && strcmp(mode, "handshake") != 0) usage();
  int opt;
  optind = 2;
  while ((opt = getopt(argc, argv, "p:a:c:r:s:H:C:j:n:N:P:t:")) != -1) {
    switch (opt) {
    case 'p': port = atoi(optarg); break;
    case 'a': cafile = optarg; break;
    case 'c': nconns = atoi(optarg); break;
    case 'r': rounds = atol(optarg); break;
    case 's': msgsize = (size_t)atol(optarg); break;
    case 'H': hs_count = atol(optarg); break;
    case 'C': hs_conc = atoi(optarg); break;
    case 'j': nthreads = atoi(optarg); break;
    case 'n': peer = optarg; break;
    case 'N': servername = optarg; break;
    case 'P': server_pid = atol(optarg); break;
    case 't': timeout_s = atof(optarg); break;
    default: usage();
    }
  }
  if (port <= 0 || port > 65535 || !cafile || nconns < 1 || rounds < 1 || msgsize < 32 ||
      msgsize > 256 || hs_count < 1 || hs_conc < 1 || nthreads < 1)
    usage();
  int per = *mode == 'e' ? nconns : hs_conc;
  if (nthreads > per) nthreads = per;

  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    fail("SSL_CTX_new");
    return 1;
  }
  if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
    fail("cannot load the CA certificate %s", cafile);
    return 1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  /* count the tickets received and keep some by hand (new_session_cb), not in a cache */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  deadline = now() + timeout_s;

  workers = calloc((size_t)nthreads, sizeof *workers);
  int id = 0;
  for (int i = 0; i < nthreads; i++) {
    worker_t *w = &workers[i];
    w->idx = i;
    w->n = (int)share(per, i);
    w->conns = calloc((size_t)w->n, sizeof(conn_t));
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    for (int k = 0; k < w->n; k++) {
      w->conns[k].fd = -1;
      w->conns[k].id = id++;
      w->conns[k].w = w;
    }
  }
  for (int i = 0; i < nthreads; i++)
    pthread_create(&workers[i].th, NULL, *mode == 'e' ? echo_worker : hs_worker, &workers[i]);

  char cpu[160];
  int ok = 1;
  if (*mode == 'e') {
    ok = wait_count(&n_ready, nthreads);
    mark_t a = mark();
    if (ok) start_phase(1);
    ok = ok && wait_count(&n_done, nthreads);
    mark_t b = mark();
    if (ok) {
      long total = (long)nconns * rounds;
      double dt = b.t - a.t;
      cpu_fields(cpu, sizeof cpu, a, b, total);
      printf("tls_echo %s %ld %.6f rtt_per_s=%.0f conns=%d rounds=%ld size=%zu threads=%d%s %s\n",
             peer, total, dt, (double)total / dt, nconns, rounds, msgsize, nthreads, cpu,
             proto_info);
    }
  } else {
    for (int phase = 1; phase <= 3 && ok; phase++) {
      ok = wait_count(&n_ready, nthreads * phase);
      long t0 = atomic_load(&tickets);
      mark_t a = mark();
      if (ok) start_phase(phase);
      ok = ok && wait_count(&n_done, nthreads * phase);
      mark_t b = mark();
      if (!ok || phase == 2) continue; /* 2: collecting tickets */
      long resumed = 0;
      for (int i = 0; i < nthreads; i++)
        resumed += workers[i].resumed;
      double dt = b.t - a.t;
      cpu_fields(cpu, sizeof cpu, a, b, hs_count);
      printf("tls_handshake %s %s %ld %.6f hs_per_s=%.0f resumed=%ld tickets=%.2f concurrency=%d "
             "threads=%d%s %s\n",
             peer, phase == 1 ? "full" : "resumed", hs_count, dt, (double)hs_count / dt, resumed,
             (double)(atomic_load(&tickets) - t0) / (double)hs_count, hs_conc, nthreads, cpu,
             proto_info);
      fflush(stdout);
    }
  }
  for (int i = 0; i < nthreads; i++)
    pthread_join(workers[i].th, NULL);
  if (!ok || atomic_load(&failed)) return 1;
  for (int i = 0; i < nthreads; i++) {
    for (long k = workers[i].pool_head; k < workers[i].pool_n; k++)
      SSL_SESSION_free(workers[i].pool[k]);
    free(workers[i].pool);
    for (int k = 0; k < workers[i].n; k++) {
      conn_t *c = &workers[i].conns[k];
      if (c->ssl) SSL_shutdown(c->ssl);
      conn_free(c);
    }
  }
  SSL_CTX_free(ctx);
  return 0;
}
