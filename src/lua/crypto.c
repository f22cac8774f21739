/*
 * crypto.c — cf.crypto: digests, HMAC, PBKDF2, random bytes, hex and
 * base64, on OpenSSL's libcrypto.
 *
 * Ground rules
 * - digest, hmac and pbkdf2 return light futures. Each anchors its input
 *   strings in its uservalues (so the pointers it keeps stay valid) and
 *   holds nothing else while fresh. A small input is computed at the first
 *   poll, into the future itself: no thread hop. A large one becomes a job
 *   on libuv's thread pool that owns a copy of the input (the future may be
 *   dropped and collected while the job runs); the future holds the job
 *   while pending or ready, and its poller always drops or takes it, which
 *   orphans the job (freed now, or by the pool when it is done). A digest
 *   or HMAC orphaned while it runs stops at its next megabyte.
 * - The hasher (cf.crypto.hasher) is a handle object owning an EVP context,
 *   freed by digest() or its finaliser; its calls are synchronous.
 * - Every function checks the runtime (cfl_rt_named) and all its arguments
 *   before it allocates anything. Malformed hex or base64 is a value
 *   (nil, message); misuse raises, naming the function and the argument.
 */
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfl.h"

#define HASHER_MT "cfuture.Hasher"

/* Inputs up to this many bytes are digested at the first poll. */
#define INLINE_BYTES (64 * 1024)
/* PBKDF2 is computed at the first poll up to this many HMAC iterations in
 * all (iterations times output blocks), for outputs of one digest at most. */
#define INLINE_ITERATIONS 1024
/* A pool job digests this much between checks of its cancel flag. */
#define CHUNK (1024 * 1024)
#define MAX_BYTES (1024 * 1024) /* random(n), pbkdf2's length */

/* ---- the algorithms ------------------------------------------------------- */

static const struct {
  const char *name; /* as Lua names it */
  const char *ossl; /* as OpenSSL's default provider names it */
} algs[] = {{"md5", "MD5"},         {"sha1", "SHA1"},       {"sha224", "SHA2-224"},
            {"sha256", "SHA2-256"}, {"sha384", "SHA2-384"}, {"sha512", "SHA2-512"}};
#define NALGS ((int)(sizeof algs / sizeof algs[0]))
#define ALG_LIST "md5, sha1, sha224, sha256, sha384, sha512"

/* Fetched once for the process (fetching is a locked lookup) and kept: the
 * objects are shared by every thread, read only. */
static uv_once_t fetch_once = UV_ONCE_INIT;
static EVP_MD *mds[NALGS];
static EVP_MAC *hmac_mac;

static void fetch_all(void) {
  for (int i = 0; i < NALGS; i++)
    mds[i] = EVP_MD_fetch(NULL, algs[i].ossl, NULL);
  hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  ERR_clear_error();
}

/* The digest name at idx (any case); raises naming fname otherwise, or if
 * this OpenSSL lacks it (a FIPS-only build has no md5). */
static int check_alg(lua_State *L, int idx, const char *fname) {
  size_t len = 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  if (s && strlen(s) == len)
    for (int i = 0; i < NALGS; i++)
      if (!strcasecmp(s, algs[i].name)) {
        uv_once(&fetch_once, fetch_all);
        if (!mds[i] || !hmac_mac)
          luaL_error(L, "%s: the %s digest is not available in this OpenSSL", fname, algs[i].name);
        return i;
      }
  if (!s)
    return luaL_error(L, "%s: argument #%d must be a digest name (" ALG_LIST "; got %s)", fname,
                      idx, luaL_typename(L, idx));
  if (strlen(s) != len)
    return luaL_error(
        L, "%s: argument #%d must be a digest name (" ALG_LIST "; got a string with a NUL byte)",
        fname, idx);
  char got[40]; /* lua_pushfstring has no precision */
  snprintf(got, sizeof got, "%.32s%s", s, len > 32 ? "..." : "");
  return luaL_error(L, "%s: argument #%d must be a digest name (" ALG_LIST "; got \"%s\")", fname,
                    idx, got);
}

static const char *check_bytes(lua_State *L, int idx, const char *fname, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: argument #%d must be a string (got %s)", fname, idx, luaL_typename(L, idx));
  return lua_tolstring(L, idx, len);
}

/* An integer number (not a string that converts) in [lo, hi]. */
static lua_Integer check_int(lua_State *L, int idx, const char *fname, lua_Integer lo,
                             lua_Integer hi) {
  char what[24];
  snprintf(what, sizeof what, "argument #%d", idx);
  if (lua_type(L, idx) != LUA_TNUMBER) {
    char range[64];
    snprintf(range, sizeof range, "from %lld to %lld", (long long)lo, (long long)hi);
    luaL_error(L, "%s: %s must be an integer %s (got %s)", fname, what, range,
               luaL_typename(L, idx));
  }
  return cfl_check_int_range(L, idx, fname, what, lo, hi);
}

/* An optional flag: nil, none or a boolean. */
static int check_flag(lua_State *L, int idx, const char *fname) {
  int t = lua_type(L, idx);
  if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, "%s: argument #%d must be a boolean or nil (got %s)", fname, idx,
               luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* ---- the computations (loop thread or pool) -------------------------------
 * Each returns 0, UV_ECANCELED (the cancel flag was seen) or UV_ENOMEM, or
 * CRYPTO_FAILED with OpenSSL's error code in *e. */

#define CRYPTO_FAILED 1

static int failed(unsigned long *e) {
  *e = ERR_get_error();
  ERR_clear_error();
  return *e == 0 || ERR_GET_REASON(*e) == ERR_R_MALLOC_FAILURE ? UV_ENOMEM : CRYPTO_FAILED;
}

static int stopped(atomic_int *cancel) { return cancel && atomic_load(cancel); }

static int do_digest(int alg, const unsigned char *d, size_t n, unsigned char *out,
                     unsigned *outlen, atomic_int *cancel, unsigned long *e) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int r = 0;
  if (!ctx || !EVP_DigestInit_ex2(ctx, mds[alg], NULL)) {
    r = failed(e);
    goto out;
  }
  do {
    size_t k = n < CHUNK ? n : CHUNK;
    if (stopped(cancel)) {
      r = UV_ECANCELED;
      goto out;
    }
    if (!EVP_DigestUpdate(ctx, d, k)) {
      r = failed(e);
      goto out;
    }
    d += k;
    n -= k;
  } while (n > 0);
  if (!EVP_DigestFinal_ex(ctx, out, outlen)) r = failed(e);
out:
  EVP_MD_CTX_free(ctx);
  return r;
}

/* A keyed HMAC context for alg, or NULL (with *e). */
static EVP_MAC_CTX *hmac_new(int alg, const unsigned char *key, size_t klen, unsigned long *e,
                             int *r) {
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_mac);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)algs[alg].ossl, 0),
      OSSL_PARAM_construct_end()};
  /* key is never NULL (a NULL key would mean "keep the previous one") */
  if (!ctx || !EVP_MAC_init(ctx, key ? key : (const unsigned char *)"", klen, params)) {
    *r = failed(e);
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static int do_hmac(int alg, const unsigned char *key, size_t klen, const unsigned char *d, size_t n,
                   unsigned char *out, unsigned *outlen, atomic_int *cancel, unsigned long *e) {
  int r = 0;
  EVP_MAC_CTX *ctx = hmac_new(alg, key, klen, e, &r);
  if (!ctx) return r;
  while (n > 0) {
    size_t k = n < CHUNK ? n : CHUNK;
    if (stopped(cancel)) {
      r = UV_ECANCELED;
      goto out;
    }
    if (!EVP_MAC_update(ctx, d, k)) {
      r = failed(e);
      goto out;
    }
    d += k;
    n -= k;
  }
  size_t got = 0;
  if (!EVP_MAC_final(ctx, out, &got, EVP_MAX_MD_SIZE))
    r = failed(e);
  else
    *outlen = (unsigned)got;
out:
  EVP_MAC_CTX_free(ctx);
  return r;
}

/* Lengths were checked to fit an int. */
static int do_pbkdf2(int alg, const unsigned char *pass, size_t plen, const unsigned char *salt,
                     size_t slen, int iter, unsigned char *out, size_t outlen, unsigned long *e) {
  if (!PKCS5_PBKDF2_HMAC((const char *)pass, (int)plen, salt, (int)slen, iter, mds[alg],
                         (int)outlen, out))
    return failed(e);
  return 0;
}

/* ---- what a future computes ----------------------------------------------- */

typedef enum { OP_DIGEST, OP_HMAC, OP_PBKDF2 } op_kind;
static const char *const op_names[] = {"crypto.digest", "crypto.hmac", "crypto.pbkdf2"};

/* The inputs: digest (data), hmac (key, data), pbkdf2 (password, salt). */
typedef struct op {
  uint8_t kind, alg;
  int iter;      /* pbkdf2 */
  size_t outlen; /* pbkdf2: the key's length */
  const unsigned char *in[2];
  size_t len[2];
} op;

/* Compute op into out (room for EVP_MAX_MD_SIZE, or pbkdf2's outlen). */
static int op_run(const op *o, unsigned char *out, size_t *outlen, atomic_int *cancel,
                  unsigned long *e) {
  unsigned n = 0;
  int r;
  switch (o->kind) {
  case OP_DIGEST: r = do_digest(o->alg, o->in[0], o->len[0], out, &n, cancel, e); break;
  case OP_HMAC:
    r = do_hmac(o->alg, o->in[0], o->len[0], o->in[1], o->len[1], out, &n, cancel, e);
    break;
  default:
    n = (unsigned)o->outlen;
    r = do_pbkdf2(o->alg, o->in[0], o->len[0], o->in[1], o->len[1], o->iter, out, o->outlen, e);
    break;
  }
  *outlen = n;
  return r;
}

/* Cheap enough for the loop thread? */
static int op_inline(const op *o) {
  if (o->len[0] + o->len[1] > INLINE_BYTES) return 0;
  if (o->kind != OP_PBKDF2) return 1;
  size_t size = (size_t)EVP_MD_get_size(mds[o->alg]);
  size_t blocks = (o->outlen + size - 1) / size;
  return o->outlen <= EVP_MAX_MD_SIZE && (size_t)o->iter * blocks <= INLINE_ITERATIONS;
}

/* ---- the pool job ------------------------------------------------------------ */

typedef struct crypto_job {
  cfu_job job;
  op o;               /* its in[] point into buf */
  unsigned char *buf; /* the copied inputs */
  unsigned char *out; /* small, or allocated for a long pbkdf2 key */
  size_t outlen;
  unsigned long e; /* OpenSSL's error code when failed */
  int r;           /* op_run's outcome */
  unsigned char small[EVP_MAX_MD_SIZE];
} crypto_job;

static void job_run(cfu_job *job) {
  crypto_job *j = (crypto_job *)job;
  j->r = op_run(&j->o, j->out, &j->outlen, &job->cancel, &j->e);
  free(j->buf); /* here rather than on the loop: unmapping a big copy takes a while */
  j->buf = NULL;
  /* Free this pool thread's OpenSSL state (its error queue) now: the pool
   * threads outlive OPENSSL_cleanup at exit, which would leave it lost. */
  OPENSSL_thread_stop();
}

static void job_free(cfu_job *job) {
  crypto_job *j = (crypto_job *)job;
  if (j->out != j->small) free(j->out);
  free(j->buf);
  free(j);
}

static const cfu_job_vt job_vt = {job_run, NULL, job_free};

/* A job over a copy of o's inputs, or NULL when out of memory. */
static crypto_job *job_new(const op *o) {
  crypto_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  cfu_job_init(&j->job, &job_vt);
  j->o = *o;
  j->buf = malloc(o->len[0] + o->len[1] + 1);
  j->out = o->kind == OP_PBKDF2 && o->outlen > sizeof j->small ? malloc(o->outlen) : j->small;
  if (!j->buf || !j->out) {
    job_free(&j->job);
    return NULL;
  }
  memcpy(j->buf, o->in[0], o->len[0]);
  memcpy(j->buf + o->len[0], o->in[1], o->len[1]);
  j->o.in[0] = j->buf;
  j->o.in[1] = j->buf + o->len[0];
  return j;
}

/* ---- the future ---------------------------------------------------------------- */

typedef struct crypto_future {
  cfl_future hdr;
  op o;            /* in[] point into the strings of uservalues 1 and 2 */
  crypto_job *job; /* the pool's work, while pending or ready */
  int r;           /* the outcome of an inline computation */
  unsigned long e;
  size_t outlen;
  unsigned char out[EVP_MAX_MD_SIZE]; /* an inline computation's result */
} crypto_future;

static cf_poll cr_poll(cf_future *base, cf_context *cx) {
  crypto_future *f = (crypto_future *)base;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  if (f->job) {
    if (!cfu_req_poll(&f->job->job.base, cx->waker)) return CF_PENDING;
  } else if (op_inline(&f->o)) {
    f->r = op_run(&f->o, f->out, &f->outlen, NULL, &f->e);
  } else {
    f->hdr.state = CFL_ST_PENDING;
    crypto_job *j = job_new(&f->o);
    if (!j) {
      f->r = UV_ENOMEM;
      return cfl_failed(&f->hdr);
    }
    f->job = j;
    if (cfu_job_submit(f->hdr.rt->loop, &j->job, cx->waker) == 0) return CF_PENDING;
    j->r = j->job.err; /* not submitted */
  }
  if (f->job && !f->job->r) f->job->r = f->job->job.err; /* cancelled before it ran */
  int r = f->job ? f->job->r : f->r;
  return r ? cfl_failed(&f->hdr) : cfl_ready(&f->hdr);
}

static void cr_release(cfl_future *base) {
  crypto_future *f = (crypto_future *)base;
  if (f->job) {
    crypto_job *j = f->job;
    f->job = NULL;
    cfu_job_orphan(&j->job);
  }
}

static int cr_take(lua_State *L, cfl_future *base) {
  crypto_future *f = (crypto_future *)base;
  int failed_ = f->hdr.state == CFL_ST_FAILED;
  f->hdr.state = CFL_ST_TAKEN;
  crypto_job *j = f->job;
  int r = j ? j->r : f->r;
  unsigned long e = j ? j->e : f->e;
  const char *fname = op_names[f->o.kind];
  if (!failed_) {
    lua_pushlstring(L, (const char *)(j ? j->out : f->out), j ? j->outlen : f->outlen);
  } else if (r == CRYPTO_FAILED) {
    char msg[256];
    ERR_error_string_n(e, msg, sizeof msg);
    lua_pushfstring(L, "%s: OpenSSL failed: %s", fname, msg);
  } else {
    lua_pushfstring(L, "%s: %s", fname, uv_strerror(r));
  }
  cr_release(base);
  return failed_ ? -1 : 1;
}

static void cr_describe(lua_State *L, cfl_future *base) {
  crypto_future *f = (crypto_future *)base;
  char buf[96];
  if (f->o.kind == OP_PBKDF2)
    snprintf(buf, sizeof buf, "%s %s (%d iterations)", op_names[f->o.kind], algs[f->o.alg].name,
             f->o.iter);
  else
    snprintf(buf, sizeof buf, "%s %s (%zu bytes%s)", op_names[f->o.kind], algs[f->o.alg].name,
             f->o.len[0] + f->o.len[1], f->job ? ", on the thread pool" : "");
  lua_pushstring(L, buf);
}

static const cfl_class crypto_class = {
    .vt = {.poll = cr_poll, .drop = cfl_drop_released},
    .name = "crypto",
    .take = cr_take,
    .describe = cr_describe,
    .release = cr_release,
    .nuv = 2,
};

/* Push the future for o; its inputs are the strings at i0 and i1 (0: none). */
static void push_op(lua_State *L, cf_runtime *rt, const op *o, int i0, int i1) {
  crypto_future *f =
      (crypto_future *)cfl_new_light_future(L, rt, &crypto_class, sizeof(crypto_future));
  f->o = *o;
  if (!o->in[1]) f->o.in[1] = (const unsigned char *)"";
  lua_pushvalue(L, i0);
  lua_setiuservalue(L, -2, 1);
  if (i1) {
    lua_pushvalue(L, i1);
    lua_setiuservalue(L, -2, 2);
  }
}

/* cf.crypto.digest(alg, data) -> future of the raw digest */
static int l_digest(lua_State *L) {
  cf_runtime *rt = cfl_rt_named(L, "crypto.digest");
  op o = {.kind = OP_DIGEST};
  o.alg = (uint8_t)check_alg(L, 1, "crypto.digest");
  o.in[0] = (const unsigned char *)check_bytes(L, 2, "crypto.digest", &o.len[0]);
  push_op(L, rt, &o, 2, 0);
  return 1;
}

/* cf.crypto.hmac(alg, key, data) -> future of the raw MAC */
static int l_hmac(lua_State *L) {
  cf_runtime *rt = cfl_rt_named(L, "crypto.hmac");
  op o = {.kind = OP_HMAC};
  o.alg = (uint8_t)check_alg(L, 1, "crypto.hmac");
  o.in[0] = (const unsigned char *)check_bytes(L, 2, "crypto.hmac", &o.len[0]);
  o.in[1] = (const unsigned char *)check_bytes(L, 3, "crypto.hmac", &o.len[1]);
  push_op(L, rt, &o, 2, 3);
  return 1;
}

/* cf.crypto.pbkdf2(alg, password, salt, iterations, length) -> future of the raw key */
static int l_pbkdf2(lua_State *L) {
  const char *fname = "crypto.pbkdf2";
  cf_runtime *rt = cfl_rt_named(L, fname);
  op o = {.kind = OP_PBKDF2};
  o.alg = (uint8_t)check_alg(L, 1, fname);
  o.in[0] = (const unsigned char *)check_bytes(L, 2, fname, &o.len[0]);
  o.in[1] = (const unsigned char *)check_bytes(L, 3, fname, &o.len[1]);
  o.iter = (int)check_int(L, 4, fname, 1, INT_MAX);
  o.outlen = (size_t)check_int(L, 5, fname, 1, MAX_BYTES);
  for (int i = 0; i < 2; i++)
    if (o.len[i] > INT_MAX)
      luaL_error(L, "%s: argument #%d must be at most 2^31-1 bytes long", fname, i + 2);
  push_op(L, rt, &o, 2, 3);
  return 1;
}

/* ---- the hasher ------------------------------------------------------------------ */

typedef struct hasher {
  EVP_MD_CTX *md;   /* a digest's context, or NULL */
  EVP_MAC_CTX *mac; /* an HMAC's, or NULL */
  uint8_t alg, keyed, finished;
} hasher;

static void hasher_free(hasher *h) {
  EVP_MD_CTX_free(h->md);
  EVP_MAC_CTX_free(h->mac);
  h->md = NULL;
  h->mac = NULL;
}

static int raise_ossl(lua_State *L, const char *fname, int r, unsigned long e) {
  if (r != CRYPTO_FAILED) return luaL_error(L, "%s: %s", fname, uv_strerror(r));
  char msg[256];
  ERR_error_string_n(e, msg, sizeof msg);
  return luaL_error(L, "%s: OpenSSL failed: %s", fname, msg);
}

/* cf.crypto.hasher(alg [, key]) -> a streaming digest (an HMAC with a key) */
static int l_hasher(lua_State *L) {
  const char *fname = "crypto.hasher";
  cfl_rt_named(L, fname);
  int alg = check_alg(L, 1, fname);
  size_t klen = 0;
  const char *key = NULL;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TSTRING)
      luaL_error(L, "%s: argument #2 must be a key string or nil (got %s)", fname,
                 luaL_typename(L, 2));
    key = lua_tolstring(L, 2, &klen);
  }
  hasher *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->alg = (uint8_t)alg;
  h->keyed = key != NULL;
  luaL_getmetatable(L, HASHER_MT);
  lua_setmetatable(L, -2);
  /* the finaliser frees what is made from here on */
  unsigned long e = 0;
  int r = 0;
  if (key) {
    h->mac = hmac_new(alg, (const unsigned char *)key, klen, &e, &r);
  } else {
    h->md = EVP_MD_CTX_new();
    if (!h->md || !EVP_DigestInit_ex2(h->md, mds[alg], NULL)) r = failed(&e);
  }
  if (r) {
    hasher_free(h);
    h->finished = 1;
    raise_ossl(L, fname, r, e);
  }
  return 1;
}

static hasher *check_hasher(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  hasher *h = luaL_testudata(L, 1, HASHER_MT);
  if (!h) cfl_raise_self(L, 1, fname, "a hasher");
  if (h->finished) luaL_error(L, "%s: the hasher is finished", fname);
  return h;
}

/* h:update(data) -> h */
static int h_update(lua_State *L) {
  hasher *h = check_hasher(L, "hasher:update");
  size_t n;
  const unsigned char *d = (const unsigned char *)check_bytes(L, 2, "hasher:update", &n);
  int ok = h->mac ? EVP_MAC_update(h->mac, d, n) : EVP_DigestUpdate(h->md, d, n);
  if (!ok) {
    unsigned long e;
    int r = failed(&e);
    raise_ossl(L, "hasher:update", r, e);
  }
  lua_settop(L, 1);
  return 1;
}

/* h:digest() -> the raw digest; the hasher is finished */
static int h_digest(lua_State *L) {
  hasher *h = check_hasher(L, "hasher:digest");
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t n = 0;
  unsigned u = 0;
  int ok = h->mac ? EVP_MAC_final(h->mac, out, &n, sizeof out) : EVP_DigestFinal_ex(h->md, out, &u);
  if (!h->mac) n = u;
  unsigned long e = 0;
  int r = ok ? 0 : failed(&e);
  hasher_free(h);
  h->finished = 1;
  if (r) raise_ossl(L, "hasher:digest", r, e);
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

/* __gc: never raises; a foreign value is left alone */
static int h_gc(lua_State *L) {
  hasher *h = luaL_testudata(L, 1, HASHER_MT);
  if (h) {
    hasher_free(h);
    h->finished = 1;
  }
  return 0;
}

/* __tostring: reads only the object, so it works after the runtime closed */
static int h_tostring(lua_State *L) {
  hasher *h = luaL_testudata(L, 1, HASHER_MT);
  if (!h)
    return luaL_error(L, "hasher:__tostring: argument #1 must be a hasher (got %s)",
                      luaL_typename(L, 1));
  lua_pushfstring(L, "cfuture.Hasher(%s%s%s): %p", h->keyed ? "hmac " : "", algs[h->alg].name,
                  h->finished ? ", finished" : "", (void *)h);
  return 1;
}

/* ---- synchronous helpers -------------------------------------------------------- */

/* A scratch buffer of n bytes that the collector frees (so an error raised
 * while it is in use leaks nothing), left on the stack. */
static unsigned char *scratch(lua_State *L, size_t n) { return lua_newuserdatauv(L, n ? n : 1, 0); }

/* Push the n bytes at p as a string, in place of the scratch buffer on top. */
static int push_scratch(lua_State *L, const unsigned char *p, size_t n) {
  lua_pushlstring(L, (const char *)p, n);
  lua_remove(L, -2);
  return 1;
}

/* cf.crypto.random(n) -> n bytes from OpenSSL's CSPRNG */
static int l_random(lua_State *L) {
  cfl_rt_named(L, "crypto.random");
  size_t n = (size_t)check_int(L, 1, "crypto.random", 0, MAX_BYTES);
  unsigned char *p = scratch(L, n);
  if (n && RAND_bytes(p, (int)n) != 1) {
    unsigned long e;
    int r = failed(&e);
    raise_ossl(L, "crypto.random", r, e);
  }
  return push_scratch(L, p, n);
}

/* cf.crypto.equal(a, b) -> whether the strings are equal, in time that
 * depends only on their length */
static int l_equal(lua_State *L) {
  cfl_rt_named(L, "crypto.equal");
  size_t na, nb;
  const char *a = check_bytes(L, 1, "crypto.equal", &na);
  const char *b = check_bytes(L, 2, "crypto.equal", &nb);
  lua_pushboolean(L, na == nb && CRYPTO_memcmp(a, b, na) == 0);
  return 1;
}

static const char HEX[] = "0123456789abcdef";

/* cf.crypto.hex(data) -> lowercase hex */
static int l_hex(lua_State *L) {
  cfl_rt_named(L, "crypto.hex");
  size_t n;
  const unsigned char *s = (const unsigned char *)check_bytes(L, 1, "crypto.hex", &n);
  if (n > (SIZE_MAX - 1) / 2) return luaL_error(L, "crypto.hex: the string is too long");
  unsigned char *p = scratch(L, 2 * n);
  for (size_t i = 0; i < n; i++) {
    p[2 * i] = (unsigned char)HEX[s[i] >> 4];
    p[2 * i + 1] = (unsigned char)HEX[s[i] & 15];
  }
  return push_scratch(L, p, 2 * n);
}

/* A byte as a message shows it: "g", or byte 0x00 when not printable. */
static const char *shown(unsigned char c, char *buf, size_t size) {
  if (c > 0x20 && c < 0x7f && c != '"')
    snprintf(buf, size, "\"%c\"", c);
  else
    snprintf(buf, size, "byte 0x%02x", c);
  return buf;
}

/* nil, "<fname>: <message>" (message formatted, with a position) */
static int bad_input(lua_State *L, const char *fname, const char *what, unsigned char c,
                     size_t pos) {
  char b[16], msg[160];
  if (what)
    snprintf(msg, sizeof msg, "%s: %s at position %zu", fname, what, pos);
  else
    snprintf(msg, sizeof msg, "%s: bad character %s at position %zu", fname, shown(c, b, sizeof b),
             pos);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* cf.crypto.unhex(text) -> bytes | nil, message (either case accepted) */
static int l_unhex(lua_State *L) {
  const char *fname = "crypto.unhex";
  cfl_rt_named(L, fname);
  size_t n;
  const unsigned char *s = (const unsigned char *)check_bytes(L, 1, fname, &n);
  for (size_t i = 0; i < n; i++)
    if (hexval(s[i]) < 0) return bad_input(L, fname, NULL, s[i], i + 1);
  if (n % 2) return bad_input(L, fname, "odd number of hex digits: the last has no pair", 0, n);
  unsigned char *p = scratch(L, n / 2);
  for (size_t i = 0; i < n / 2; i++)
    p[i] = (unsigned char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
  return push_scratch(L, p, n / 2);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* cf.crypto.base64(data [, url]) -> base64 with padding; url: base64url
 * without padding */
static int l_base64(lua_State *L) {
  const char *fname = "crypto.base64";
  cfl_rt_named(L, fname);
  size_t n;
  const unsigned char *s = (const unsigned char *)check_bytes(L, 1, fname, &n);
  int url = check_flag(L, 2, fname);
  const char *abc = url ? B64URL : B64;
  if (n > SIZE_MAX / 2) return luaL_error(L, "%s: the string is too long", fname);
  unsigned char *p = scratch(L, (n + 2) / 3 * 4), *o = p;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    *o++ = (unsigned char)abc[v >> 18];
    *o++ = (unsigned char)abc[v >> 12 & 63];
    *o++ = (unsigned char)abc[v >> 6 & 63];
    *o++ = (unsigned char)abc[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
    *o++ = (unsigned char)abc[v >> 18];
    *o++ = (unsigned char)abc[v >> 12 & 63];
    if (i + 1 < n)
      *o++ = (unsigned char)abc[v >> 6 & 63];
    else if (!url)
      *o++ = '=';
    if (!url) *o++ = '=';
  }
  return push_scratch(L, p, (size_t)(o - p));
}

static int b64val(unsigned char c, int url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

/* cf.crypto.unbase64(text [, url]) -> bytes | nil, message. Padding may be
 * left out; when present it must complete the last group of four. Only
 * the canonical encoding is accepted (unused low bits of the last
 * character zero), so that each byte string has one encoding. */
static int l_unbase64(lua_State *L) {
  const char *fname = "crypto.unbase64";
  cfl_rt_named(L, fname);
  size_t n;
  const unsigned char *s = (const unsigned char *)check_bytes(L, 1, fname, &n);
  int url = check_flag(L, 2, fname);
  size_t pad = 0;
  while (pad < n && s[n - 1 - pad] == '=')
    pad++;
  size_t m = n - pad; /* the characters before the padding */
  for (size_t i = 0; i < m; i++)
    if (b64val(s[i], url) < 0) return bad_input(L, fname, NULL, s[i], i + 1);
  if (m % 4 == 1) return bad_input(L, fname, "truncated input: a lone character", 0, m);
  if (pad && (pad > 2 || n % 4 != 0 || m % 4 == 0))
    return bad_input(L, fname, "padding that does not complete a group of four", 0, m + 1);
  unsigned char *p = scratch(L, m / 4 * 3 + 2), *o = p;
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    unsigned v = (unsigned)b64val(s[i], url) << 18 | (unsigned)b64val(s[i + 1], url) << 12 |
                 (unsigned)b64val(s[i + 2], url) << 6 | (unsigned)b64val(s[i + 3], url);
    *o++ = (unsigned char)(v >> 16);
    *o++ = (unsigned char)(v >> 8);
    *o++ = (unsigned char)v;
  }
  if (i < m) { /* 2 or 3 characters: 1 or 2 bytes */
    unsigned v = (unsigned)b64val(s[i], url) << 18 | (unsigned)b64val(s[i + 1], url) << 12 |
                 (i + 2 < m ? (unsigned)b64val(s[i + 2], url) << 6 : 0);
    unsigned spare = i + 2 < m ? v & 0xff : v & 0xffff;
    if (spare) {
      lua_pop(L, 1);
      return bad_input(L, fname, "non-zero unused bits (not the canonical encoding)", 0, m);
    }
    *o++ = (unsigned char)(v >> 16);
    if (i + 2 < m) *o++ = (unsigned char)(v >> 8);
  }
  return push_scratch(L, p, (size_t)(o - p));
}

/* ---- the module -------------------------------------------------------------------- */

static const luaL_Reg funcs[] = {
    {"digest", l_digest}, {"hmac", l_hmac},         {"pbkdf2", l_pbkdf2}, {"hasher", l_hasher},
    {"random", l_random}, {"equal", l_equal},       {"hex", l_hex},       {"unhex", l_unhex},
    {"base64", l_base64}, {"unbase64", l_unbase64}, {NULL, NULL}};

static const luaL_Reg hasher_methods[] = {{"update", h_update}, {"digest", h_digest}, {NULL, NULL}};
static const luaL_Reg hasher_meta[] = {{"__gc", h_gc}, {"__tostring", h_tostring}, {NULL, NULL}};

static void open_crypto(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_setfield(L, -2, "crypto");
  cfl_new_class(L, rt, HASHER_MT, hasher_methods, hasher_meta);
  lua_pop(L, 1);
}

const cfl_module cfl_crypto_module = {.name = "crypto", .open = open_crypto};
