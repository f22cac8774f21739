/*
 * tls.c — the C half of cf.tls: contexts (an SSL_CTX set up from an
 * options table), making a stream a TLS stream, and what a TLS stream
 * tells about itself (tls_info, peer_certificate). lua/cfuture/tls.lua
 * builds the public functions (connect, wrap, accept, listen) on these.
 *
 * Option names are checked in tls.lua (it knows which belong to a context
 * and which to one connection); here each value is checked and applied.
 * A bad value raises; a file that cannot be loaded is an I/O failure
 * (nil, msg, code).
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfl.h"
#include "net.h"

#define CONTEXT_MT "cfuture.TlsContext"

typedef struct cfl_tls_context {
  cfu_tls_ctx *c;
} cfl_tls_context;

static cfu_tls_ctx *check_context(lua_State *L, int idx, const char *fname) {
  cfl_tls_context *o = luaL_testudata(L, idx, CONTEXT_MT);
  if (!o || !o->c)
    luaL_error(L, "%s: argument #%d must be a TLS context (got %s)", fname, idx,
               cfl_what_is(L, idx));
  return o->c;
}

/* ---- options ------------------------------------------------------------------- */

/* opts[name] as a string (no NUL), or NULL when absent; it stays
 * anchored in opts. */
static const char *opt_string(lua_State *L, const char *fname, const char *name) {
  lua_getfield(L, 1, name);
  int i = lua_gettop(L);
  const char *v = NULL;
  if (!lua_isnil(L, i)) {
    if (lua_type(L, i) != LUA_TSTRING)
      luaL_error(L, "%s: option %s must be a string (got %s)", fname, name, luaL_typename(L, i));
    v = cfl_check_cstring(L, i, fname, lua_pushfstring(L, "option %s", name), NULL);
  }
  lua_settop(L, i - 1);
  return v;
}

/* opts[name] as a boolean: dflt when absent. */
static int opt_bool(lua_State *L, const char *fname, const char *name, int dflt) {
  lua_getfield(L, 1, name);
  int t = lua_type(L, -1), v = dflt;
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_error(L, "%s: option %s must be a boolean (got %s)", fname, name, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int opt_version(lua_State *L, const char *fname, const char *name) {
  const char *v = opt_string(L, fname, name);
  if (!v) return 0;
  if (strcmp(v, "1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "1.3") == 0) return TLS1_3_VERSION;
  return luaL_error(L, "%s: option %s must be \"1.2\" or \"1.3\" (got \"%s\")", fname, name, v);
}

/* opts.alpn, a list of protocol names, in ALPN's wire format (a Lua
 * string left on the stack), or 0 when absent. */
static int opt_alpn(lua_State *L, const char *fname) {
  lua_getfield(L, 1, "alpn");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "%s: option alpn must be a list of protocol names (got %s)", fname,
               luaL_typename(L, -1));
  luaL_Buffer b;
  int t = lua_gettop(L);
  size_t n = lua_rawlen(L, t);
  if (n == 0) luaL_error(L, "%s: option alpn must list at least one protocol", fname);
  luaL_buffinit(L, &b);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i);
    size_t len;
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!p || len == 0 || len > 255)
      luaL_error(L, "%s: option alpn[%d] must be a protocol name of 1 to 255 bytes", fname, (int)i);
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, p, len);
  }
  luaL_pushresult(&b);
  lua_remove(L, t);
  return 1;
}

/* nil, "<fname>: <what> <path>: <reason>", code: ENOENT / EACCES when the
 * file cannot be opened, ETLS when OpenSSL rejects what it holds. */
static int push_file_err(lua_State *L, const char *fname, const char *what, const char *path) {
  char buf[200];
  FILE *f = fopen(path, "rb");
  int err = CFU_ETLS;
  if (!f)
    err = errno == ENOENT ? UV_ENOENT : errno == EACCES ? UV_EACCES : UV_EIO;
  else
    fclose(f);
  lua_pushnil(L);
  if (err == CFU_ETLS)
    lua_pushfstring(L, "%s: %s %s: %s", fname, what, path, cfu_tls_last_error(buf, sizeof buf));
  else
    lua_pushfstring(L, "%s: %s %s: %s", fname, what, path, cfu_strerror(err));
  ERR_clear_error();
  lua_pushstring(L, cfu_err_name(err));
  return 3;
}

/* _tls.context(opts, fname) -> context, or nil, msg, code */
static int l_context(lua_State *L) {
  const char *fname = luaL_optstring(L, 2, "tls.context");
  luaL_checktype(L, 1, LUA_TTABLE);
  int server = opt_bool(L, fname, "server", 0);
  const char *cafile = opt_string(L, fname, "cafile");
  const char *capath = opt_string(L, fname, "capath");
  const char *certfile = opt_string(L, fname, "certfile");
  const char *keyfile = opt_string(L, fname, "keyfile");
  const char *ciphers = opt_string(L, fname, "ciphers");
  const char *suites = opt_string(L, fname, "ciphersuites");
  const char *client_cert = opt_string(L, fname, "client_cert");
  int verify = opt_bool(L, fname, "verify", 1);
  int cache = opt_bool(L, fname, "session_cache", 1);
  if (server) { /* client options: refused rather than silently ignored */
    static const char *const client_only[] = {"verify", "session_cache"};
    for (int i = 0; i < 2; i++) {
      lua_getfield(L, 1, client_only[i]);
      int given = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (given)
        luaL_error(L, "%s: option %s is for clients (a server verifies clients with client_cert)",
                   fname, client_only[i]);
    }
  }
  int minv = opt_version(L, fname, "min_version");
  int maxv = opt_version(L, fname, "max_version");
  int alpn = opt_alpn(L, fname) ? lua_gettop(L) : 0; /* its wire string */
  if (client_cert && strcmp(client_cert, "require") != 0 && strcmp(client_cert, "request") != 0)
    luaL_error(L, "%s: option client_cert must be \"require\" or \"request\" (got \"%s\")", fname,
               client_cert);
  if (client_cert && !server)
    luaL_error(L, "%s: option client_cert is for servers (a client sends one with certfile)",
               fname);
  if (server && !certfile)
    luaL_error(L, "%s: a server needs option certfile (and keyfile, unless certfile holds the key)",
               fname);
  if (keyfile && !certfile) luaL_error(L, "%s: option keyfile needs certfile too", fname);
  if (minv && maxv && minv > maxv)
    luaL_error(L, "%s: option min_version is above max_version", fname);

  cfl_tls_context *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->c = NULL;
  luaL_setmetatable(L, CONTEXT_MT);
  cfu_tls_ctx *c = cfu_tls_ctx_new(server);
  if (!c) return luaL_error(L, "%s: out of memory", fname);
  o->c = c;
  SSL_CTX *ctx = c->ctx;
  if (minv) SSL_CTX_set_min_proto_version(ctx, minv);
  if (maxv) SSL_CTX_set_max_proto_version(ctx, maxv);
  if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
    ERR_clear_error();
    return luaL_error(L, "%s: option ciphers matches no cipher (\"%s\")", fname, ciphers);
  }
  if (suites && SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
    ERR_clear_error();
    return luaL_error(L, "%s: option ciphersuites matches no suite (\"%s\")", fname, suites);
  }
  /* whom to trust: the given CAs, else the system's store */
  if (cafile || capath) {
    if (SSL_CTX_load_verify_locations(ctx, cafile, capath) != 1)
      return push_file_err(L, fname, cafile ? "cafile" : "capath", cafile ? cafile : capath);
  } else if (!server || client_cert) {
    SSL_CTX_set_default_verify_paths(ctx);
    ERR_clear_error(); /* a system without a store verifies nothing, and says so then */
  }
  if (certfile) {
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1)
      return push_file_err(L, fname, "certfile", certfile);
    const char *kf = keyfile ? keyfile : certfile;
    if (SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1)
      return push_file_err(L, fname, "keyfile", kf);
    if (SSL_CTX_check_private_key(ctx) != 1)
      return push_file_err(L, fname, "keyfile (it does not match certfile)", kf);
  }
  if (server) {
    c->verify = client_cert != NULL;
    if (client_cert) {
      int mode = SSL_VERIFY_PEER;
      if (strcmp(client_cert, "require") == 0) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, NULL);
      if (cafile) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
      }
    }
    if (alpn) {
      size_t len;
      const char *wire = lua_tolstring(L, alpn, &len);
      if (cfu_tls_ctx_set_alpn(c, (const unsigned char *)wire, (unsigned)len) != 0)
        return luaL_error(L, "%s: out of memory", fname);
    }
  } else {
    c->verify = (uint8_t)verify;
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    cfu_tls_ctx_cache_sessions(c, cache);
    if (alpn) {
      size_t len;
      const char *wire = lua_tolstring(L, alpn, &len);
      if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)wire, (unsigned)len) != 0)
        return luaL_error(L, "%s: out of memory", fname);
    }
  }
  return 1;
}

static int gc_context(lua_State *L) {
  cfl_tls_context *o = luaL_testudata(L, 1, CONTEXT_MT);
  if (o && o->c) {
    cfu_tls_ctx *c = o->c;
    o->c = NULL;
    cfu_tls_ctx_unref(c);
  }
  return 0;
}

static int context_tostring(lua_State *L) {
  cfl_tls_context *o = luaL_testudata(L, 1, CONTEXT_MT);
  if (!o) return luaL_error(L, "TlsContext:__tostring: argument #1 must be a TLS context");
  lua_pushfstring(L, "cfuture.TlsContext(%s): %p",
                  !o->c          ? "freed"
                  : o->c->server ? "server"
                                 : "client",
                  (void *)o);
  return 1;
}

/* _tls.is_server(ctx) -> is a server context, verifies its peers */
static int l_is_server(lua_State *L) {
  cfu_tls_ctx *c = check_context(L, 1, "tls");
  lua_pushboolean(L, c->server);
  lua_pushboolean(L, c->verify);
  return 2;
}

/* _tls.check_stream(s, fname): raise unless s is an open plain stream */
static int l_check_stream(lua_State *L) {
  const char *fname = luaL_checkstring(L, 2);
  if (!cfl_testudata(L, 1, cfl_rt(L)->stream_mt))
    return luaL_error(L, "%s: argument #1 must be a stream (got %s)", fname, cfl_what_is(L, 1));
  if (cfl_check_stream(L, 1, fname)->tls)
    return luaL_error(L, "%s: the stream is a TLS stream already", fname);
  return 0;
}

/* ---- making TLS streams -------------------------------------------------------- */

/* _tls.attach(stream, ctx, server, name, key, fname) -> true, or nil, msg, code */
static int l_attach(lua_State *L) {
  const char *fname = luaL_checkstring(L, 6);
  cfu_stream *s = cfl_check_stream(L, 1, fname);
  cfu_tls_ctx *c = check_context(L, 2, fname);
  int server = lua_toboolean(L, 3);
  const char *name = lua_isnil(L, 4) ? NULL : lua_tostring(L, 4);
  const char *key = lua_isnil(L, 5) ? NULL : lua_tostring(L, 5);
  if (s->tls) return luaL_error(L, "%s: the stream is a TLS stream already", fname);
  if (server != c->server)
    return luaL_error(L, "%s: option context must be a %s context", fname,
                      server ? "server" : "client");
  int r = cfu_tls_attach(s, c, server, name, key);
  if (r != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", fname, cfu_stream_strerror(s, r));
    lua_pushstring(L, cfu_err_name(r));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* _tls.listen(listener, ctx): accepted connections become TLS servers */
static int l_listen(lua_State *L) {
  cfu_listener *l = cfl_check_listener(L, 1, "tls.listen");
  cfu_tls_ctx *c = check_context(L, 2, "tls.listen");
  if (!c->server) return luaL_error(L, "tls.listen: option context must be a server context");
  cfu_listener_set_tls(l, c);
  return 0;
}

/* ---- what a TLS stream tells ------------------------------------------------------- */

static cfu_tls *check_tls(lua_State *L, const char *fname) {
  cfu_stream *s = cfl_check_stream(L, 1, fname);
  return s->tls;
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* stream:tls_info() -> {protocol, cipher, alpn, resumed, servername,
 * handshake_done, verified}, or nil for a plain stream */
static int s_tls_info(lua_State *L) {
  cfu_tls *t = check_tls(L, "stream:tls_info");
  if (!t) {
    lua_pushnil(L);
    return 1;
  }
  SSL *ssl = t->ssl;
  lua_createtable(L, 0, 7);
  lua_pushboolean(L, t->hs_done);
  lua_setfield(L, -2, "handshake_done");
  if (t->hs_done) {
    set_str(L, "protocol", SSL_get_version(ssl));
    set_str(L, "cipher", SSL_get_cipher_name(ssl));
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen) {
      lua_pushlstring(L, (const char *)alpn, alen);
      lua_setfield(L, -2, "alpn");
    }
    lua_pushboolean(L, SSL_session_reused(ssl));
    lua_setfield(L, -2, "resumed");
    X509 *peer = SSL_get0_peer_certificate(ssl);
    lua_pushboolean(L, peer && t->ctx->verify && SSL_get_verify_result(ssl) == X509_V_OK);
    lua_setfield(L, -2, "verified");
  }
  set_str(L, "servername", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  lua_pushstring(L, t->server ? "server" : "client");
  lua_setfield(L, -2, "role");
  return 1;
}

/* A BIO's contents as a Lua string on the stack (BIO freed). */
static void push_bio(lua_State *L, BIO *b) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
  BIO_free(b);
}

static void push_name(lua_State *L, const X509_NAME *name) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) luaL_error(L, "stream:peer_certificate: out of memory");
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  push_bio(L, b);
}

static void push_time(lua_State *L, const ASN1_TIME *t) {
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
    lua_pushnil(L);
    return;
  }
  lua_pushinteger(L, (lua_Integer)timegm(&tm));
}

static void push_sans(lua_State *L, X509 *x) {
  lua_newtable(L);
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int n = names ? sk_GENERAL_NAME_num(names) : 0, k = 0;
  for (int i = 0; i < n; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      const ASN1_IA5STRING *v = g->d.ia5;
      lua_pushfstring(L, "%s:",
                      g->type == GEN_DNS     ? "DNS"
                      : g->type == GEN_EMAIL ? "email"
                                             : "URI");
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
      lua_concat(L, 2);
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING *ip = g->d.ip;
      char buf[64];
      int len = ASN1_STRING_length(ip);
      const unsigned char *p = ASN1_STRING_get0_data(ip);
      if (len == 4)
        uv_inet_ntop(AF_INET, p, buf, sizeof buf);
      else if (len == 16)
        uv_inet_ntop(AF_INET6, p, buf, sizeof buf);
      else
        continue;
      lua_pushfstring(L, "IP:%s", buf);
    } else {
      continue;
    }
    lua_rawseti(L, -2, ++k);
  }
  GENERAL_NAMES_free(names);
}

/* stream:peer_certificate() -> {subject, issuer, san, fingerprint, serial,
 * not_before, not_after, pem}, or nil (a plain stream, or no certificate) */
static int s_peer_certificate(lua_State *L) {
  cfu_tls *t = check_tls(L, "stream:peer_certificate");
  X509 *x = t ? SSL_get0_peer_certificate(t->ssl) : NULL;
  if (!x) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 8);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  push_sans(L, x);
  lua_setfield(L, -2, "san");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mdlen; i++)
      snprintf(hex + 2 * i, 3, "%02x", md[i]);
    lua_pushlstring(L, hex, 2 * mdlen);
    lua_setfield(L, -2, "fingerprint");
  }
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *serial = bn ? BN_bn2hex(bn) : NULL;
  set_str(L, "serial", serial);
  OPENSSL_free(serial);
  BN_free(bn);
  push_time(L, X509_get0_notBefore(x));
  lua_setfield(L, -2, "not_before");
  push_time(L, X509_get0_notAfter(x));
  lua_setfield(L, -2, "not_after");
  BIO *b = BIO_new(BIO_s_mem());
  if (b) {
    PEM_write_bio_X509(b, x);
    push_bio(L, b);
    lua_setfield(L, -2, "pem");
  }
  ERR_clear_error();
  return 1;
}

/* ---- module ----------------------------------------------------------------------- */

static const luaL_Reg internal[] = {{"context", l_context},
                                    {"attach", l_attach},
                                    {"listen", l_listen},
                                    {"is_server", l_is_server},
                                    {"check_stream", l_check_stream},
                                    {NULL, NULL}};
static const luaL_Reg context_methods[] = {{NULL, NULL}};
static const luaL_Reg context_meta[] = {
    {"__gc", gc_context}, {"__tostring", context_tostring}, {NULL, NULL}};
static const luaL_Reg stream_methods[] = {
    {"tls_info", s_tls_info}, {"peer_certificate", s_peer_certificate}, {NULL, NULL}};

/* Module table on top (after the stream and net subsystems): cf.tls (which
 * tls.lua fills), cf._tls (its C helpers) and the stream methods. */
static void open_tls(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_new_class(L, rt, CONTEXT_MT, context_methods, context_meta);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_setfield(L, -2, "tls");
  lua_newtable(L);
  cfl_setfuncs(L, rt, internal);
  lua_setfield(L, -2, "_tls");
  lua_getfield(L, -1, "Stream");
  cfl_setfuncs(L, rt, stream_methods);
  lua_pop(L, 1);
}

const cfl_module cfl_tls_module = {.name = "tls", .open = open_tls};
