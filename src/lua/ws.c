/*
 * ws.c — cf._ws: WebSocket framing (RFC 6455) for lua/cfuture/websocket.lua:
 * encoding a frame (masked or not), and an incremental decoder that is fed
 * byte slices as a stream delivers them and gives back complete frames,
 * unmasked, after checking every rule of the protocol.
 *
 * Why not wslay (libwslay-dev): its event API owns the connection's I/O
 * through recv/send callbacks that must answer "would block", keeps its own
 * queues of messages and drives itself from readiness events. cfuture's
 * streams are futures that a task awaits; pushing their bytes through
 * wslay's callbacks would mean a second buffer layer and a copy of every
 * message into wslay's queue, with its callbacks run from inside a Lua
 * call. Its frame API is lower level but still callback-driven, and it
 * leaves the rules that matter here to the caller anyway (masking per side,
 * fragmentation order, the message limit across fragments, UTF-8 of text
 * and close reasons, close codes). Those checks are the bulk of the work;
 * the framing itself is a few dozen lines. So the framing is here, fed
 * straight from stream reads, with the same tests wslay would have had.
 *
 * Ground rules
 * - The decoder owns a malloc'd buffer of unread bytes (feed appends, a
 *   decoded frame is consumed). A frame's header is checked as soon as it
 *   is complete, before its payload is buffered: a peer announcing a frame
 *   over the message limit is refused without the memory being taken.
 * - A frame is unmasked in place in the buffer and pushed as one string:
 *   one copy in (feed), one copy out (the payload string).
 * - Text is validated incrementally across fragments (a sequence may be
 *   split between frames); a message whose last fragment ends inside a
 *   sequence is invalid.
 * - Errors are values: nil, message, close code (1002 protocol error, 1007
 *   invalid data, 1009 too big). After one the decoder is dead and repeats
 *   it. Misuse (a wrong argument) raises.
 */
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

#define DECODER_MT "cfuture.ws.Decoder"
#define DEFAULT_MAX (16 * 1024 * 1024)
#define MAX_LIMIT ((uint64_t)1 << 53) /* the largest exact Lua number */
#define KEEP_CAP (256 * 1024)         /* an idle buffer larger than this is freed */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };
enum { CLOSE_PROTOCOL = 1002, CLOSE_INVALID = 1007, CLOSE_TOO_BIG = 1009 };

/* ---- UTF-8 --------------------------------------------------------------------- */

/* Where a validation stands between slices: how many continuation bytes are
 * still due, and the range the next one must be in (narrower after E0, ED,
 * F0 and F4: no overlong forms, no surrogates, nothing past U+10FFFF). */
typedef struct utf8_state {
  uint8_t need, lo, hi;
} utf8_state;

static int utf8_feed(utf8_state *s, const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (s->need) {
      if (c < s->lo || c > s->hi) return 0;
      s->lo = 0x80;
      s->hi = 0xBF;
      s->need--;
      i++;
      continue;
    }
    if (c < 0x80) {
      i++;
      while (i + 8 <= n) { /* runs of ASCII, a word at a time */
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) break;
        i += 8;
      }
      continue;
    }
    if (c < 0xC2) return 0; /* a stray continuation byte, or an overlong 2-byte form */
    s->lo = 0x80;
    s->hi = 0xBF;
    if (c < 0xE0) {
      s->need = 1;
    } else if (c < 0xF0) {
      s->need = 2;
      if (c == 0xE0) s->lo = 0xA0; /* overlong */
      if (c == 0xED) s->hi = 0x9F; /* surrogates */
    } else if (c < 0xF5) {
      s->need = 3;
      if (c == 0xF0) s->lo = 0x90; /* overlong */
      if (c == 0xF4) s->hi = 0x8F; /* past U+10FFFF */
    } else {
      return 0;
    }
    i++;
  }
  return 1;
}

static int utf8_valid(const unsigned char *p, size_t n) {
  utf8_state s = {0, 0x80, 0xBF};
  return utf8_feed(&s, p, n) && s.need == 0;
}

/* A close code a peer may send (RFC 6455 7.4 and IANA's registry): not
 * 1004-1006 or 1015 (reserved, never on the wire), nothing below 1000,
 * 1016-2999 unassigned, 3000-4999 for libraries and applications. */
static int close_code_valid(lua_Integer c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* ---- masking ------------------------------------------------------------------- */

/* XOR n bytes at p with the 4-byte key, starting at key phase 0. */
static void mask_bytes(unsigned char *p, size_t n, const unsigned char key[4]) {
  uint64_t k8;
  unsigned char kk[8];
  memcpy(kk, key, 4);
  memcpy(kk + 4, key, 4);
  memcpy(&k8, kk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= k8;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++)
    p[i] ^= key[i & 3];
}

static void copy_masked(unsigned char *dst, const unsigned char *src, size_t n,
                        const unsigned char key[4]) {
  memcpy(dst, src, n);
  mask_bytes(dst, n, key);
}

/* Mask keys come from OpenSSL's generator (RFC 6455 10.3: unpredictable),
 * drawn a few hundred at a time; per thread, as each thread may run a Lua
 * state of its own. */
static _Thread_local unsigned char keys[1024];
static _Thread_local size_t keys_left;

static int next_key(unsigned char key[4]) {
  if (keys_left < 4) {
    if (RAND_bytes(keys, (int)sizeof keys) != 1) return 0;
    keys_left = sizeof keys;
  }
  keys_left -= 4;
  memcpy(key, keys + keys_left, 4);
  return 1;
}

/* ---- encoding ------------------------------------------------------------------ */

static int check_bool(lua_State *L, int idx, const char *fname, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TBOOLEAN)
    luaL_error(L, "%s: argument #%d must be a boolean or nil (got %s)", fname, idx,
               luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* cf._ws.frame(opcode, payload [, fin = true [, mask [, rsv = 0]]]) -> the frame's bytes.
 * mask: nil/false (a server's frame), true (a fresh random key), or a
 * 4-byte key string (tests). rsv: the three reserved bits as 0-7 (tests of
 * peers that must refuse them). */
static int l_frame(lua_State *L) {
  const char *fname = "websocket.frame";
  cfl_rt_named(L, fname);
  int op = (int)cfl_check_int_range(L, 1, fname, "argument #1", 0, 15);
  size_t n = 0;
  const unsigned char *data = (const unsigned char *)"";
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TSTRING)
      luaL_error(L, "%s: argument #2 must be a string (got %s)", fname, luaL_typename(L, 2));
    data = (const unsigned char *)lua_tolstring(L, 2, &n);
  }
  int fin = check_bool(L, 3, fname, 1);
  unsigned char key[4];
  int masked = 0;
  if (lua_type(L, 4) == LUA_TSTRING) {
    size_t kl;
    const char *k = lua_tolstring(L, 4, &kl);
    if (kl != 4) luaL_error(L, "%s: argument #4 must be a 4-byte mask key", fname);
    memcpy(key, k, 4);
    masked = 1;
  } else if (check_bool(L, 4, fname, 0)) {
    if (!next_key(key)) luaL_error(L, "%s: OpenSSL's random generator failed", fname);
    masked = 1;
  }
  int rsv = lua_isnoneornil(L, 5) ? 0 : (int)cfl_check_int_range(L, 5, fname, "argument #5", 0, 7);

  unsigned char hdr[14];
  size_t h = 0;
  hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (rsv << 4) | op);
  unsigned char mbit = masked ? 0x80 : 0;
  if (n < 126) {
    hdr[h++] = (unsigned char)(mbit | n);
  } else if (n <= 0xFFFF) {
    hdr[h++] = mbit | 126;
    hdr[h++] = (unsigned char)(n >> 8);
    hdr[h++] = (unsigned char)n;
  } else {
    hdr[h++] = mbit | 127;
    for (int i = 7; i >= 0; i--)
      hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
  }
  if (masked) {
    memcpy(hdr + h, key, 4);
    h += 4;
  }
#if CFL_LUA54
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, h + n);
#else
  unsigned char *out = lua_newuserdatauv(L, h + n, 0);
#endif
  memcpy(out, hdr, h);
  if (masked)
    copy_masked(out + h, data, n, key);
  else if (n)
    memcpy(out + h, data, n);
#if CFL_LUA54
  luaL_pushresultsize(&b, h + n);
#else
  lua_pushlstring(L, (const char *)out, h + n);
#endif
  return 1;
}

/* cf._ws.mask(data, key) -> data XOR the 4-byte key (tests) */
static int l_mask(lua_State *L) {
  const char *fname = "websocket.mask";
  cfl_rt_named(L, fname);
  size_t n, kl;
  const char *d = luaL_checklstring(L, 1, &n);
  const char *k = luaL_checklstring(L, 2, &kl);
  if (kl != 4) luaL_error(L, "%s: argument #2 must be a 4-byte mask key", fname);
  unsigned char *out = lua_newuserdatauv(L, n ? n : 1, 0);
  copy_masked(out, (const unsigned char *)d, n, (const unsigned char *)k);
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

/* cf._ws.valid_utf8(s) -> boolean */
static int l_valid_utf8(lua_State *L) {
  cfl_rt_named(L, "websocket.valid_utf8");
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, utf8_valid((const unsigned char *)s, n));
  return 1;
}

/* cf._ws.valid_close_code(n) -> whether a peer may send it */
static int l_valid_close_code(lua_State *L) {
  cfl_rt_named(L, "websocket.valid_close_code");
  int isint = 0;
  lua_Integer c = lua_type(L, 1) == LUA_TNUMBER ? lua_tointegerx(L, 1, &isint) : 0;
  lua_pushboolean(L, isint && close_code_valid(c));
  return 1;
}

/* ---- decoding ------------------------------------------------------------------ */

typedef struct decoder {
  unsigned char *buf;
  size_t pos, len, cap; /* unread bytes are buf[pos, len) */
  uint64_t max;         /* message limit, bytes across fragments */
  uint64_t msg_len;     /* bytes of the fragmented message so far */
  uint8_t server;       /* this side is the server: frames must be masked */
  uint8_t in_msg;       /* 0, or the opcode of the fragmented message under way */
  uint8_t dead;
  uint16_t err_code;
  utf8_state utf8; /* of the text message under way */
  char err[128];
} decoder;

static decoder *check_decoder(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  decoder *d = luaL_testudata(L, 1, DECODER_MT);
  if (!d) cfl_raise_self(L, 1, fname, "a WebSocket decoder");
  return d;
}

/* cf._ws.decoder(side [, max_message]) -> decoder; side "server" (frames
 * come from clients, masked) or "client" */
static int l_decoder(lua_State *L) {
  const char *fname = "websocket.decoder";
  cfl_rt_named(L, fname);
  const char *side = luaL_checkstring(L, 1);
  int server = !strcmp(side, "server");
  if (!server && strcmp(side, "client"))
    luaL_error(L, "%s: argument #1 must be \"server\" or \"client\" (got \"%s\")", fname, side);
  uint64_t max = DEFAULT_MAX;
  if (!lua_isnoneornil(L, 2))
    max = (uint64_t)cfl_check_int_range(L, 2, fname, "argument #2", 0, (lua_Integer)MAX_LIMIT);
  decoder *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  d->server = (uint8_t)server;
  d->max = max;
  luaL_getmetatable(L, DECODER_MT);
  lua_setmetatable(L, -2);
  return 1;
}

static int fail(lua_State *L, decoder *d, int code, const char *msg) {
  d->dead = 1;
  d->err_code = (uint16_t)code;
  snprintf(d->err, sizeof d->err, "%s", msg);
  lua_pushnil(L);
  lua_pushstring(L, d->err);
  lua_pushinteger(L, code);
  return 3;
}

static int append(decoder *d, const char *p, size_t n) {
  if (!n) return 1;
  if (d->pos == d->len) d->pos = d->len = 0;
  if (d->cap - d->len < n) {
    if (d->pos) { /* move the unread bytes down first */
      memmove(d->buf, d->buf + d->pos, d->len - d->pos);
      d->len -= d->pos;
      d->pos = 0;
    }
    if (d->cap - d->len < n) {
      size_t cap = d->cap ? d->cap : 4096;
      while (cap - d->len < n)
        cap *= 2;
      unsigned char *nb = realloc(d->buf, cap);
      if (!nb) return 0;
      d->buf = nb;
      d->cap = cap;
    }
  }
  memcpy(d->buf + d->len, p, n);
  d->len += n;
  return 1;
}

/* After a frame is consumed: a large buffer left empty is let go. */
static void settle(decoder *d) {
  if (d->pos == d->len) {
    d->pos = d->len = 0;
    if (d->cap > KEEP_CAP) {
      free(d->buf);
      d->buf = NULL;
      d->cap = 0;
    }
  }
}

/* d:next([data]) -> opcode, fin, payload [, close code, reason]
 *                 | nil (feed more) | nil, message, close code
 * data, if given, is appended first. A close frame also gives its code
 * (nil if it had no payload) and reason. */
static int d_next(lua_State *L) {
  decoder *d = check_decoder(L, "decoder:next");
  if (!lua_isnoneornil(L, 2)) {
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    if (!d->dead && !append(d, p, n)) return luaL_error(L, "decoder:next: not enough memory");
  }
  if (d->dead) {
    lua_pushnil(L);
    lua_pushstring(L, d->err);
    lua_pushinteger(L, d->err_code);
    return 3;
  }
  size_t avail = d->len - d->pos;
  if (avail < 2) return 0;
  unsigned char *f = d->buf + d->pos;
  int fin = f[0] & 0x80, rsv = f[0] & 0x70, op = f[0] & 0x0F;
  int masked = f[1] & 0x80;
  uint64_t plen = f[1] & 0x7F;
  char msg[100];

  /* what the first two bytes alone break */
  if (rsv) return fail(L, d, CLOSE_PROTOCOL, "websocket: reserved bits set (no extension agreed)");
  if ((op > OP_BINARY && op < OP_CLOSE) || op > OP_PONG) {
    snprintf(msg, sizeof msg, "websocket: unknown opcode %d", op);
    return fail(L, d, CLOSE_PROTOCOL, msg);
  }
  if (op >= OP_CLOSE) {
    if (!fin) return fail(L, d, CLOSE_PROTOCOL, "websocket: fragmented control frame");
    if (plen > 125) return fail(L, d, CLOSE_PROTOCOL, "websocket: control frame over 125 bytes");
  } else if (op == OP_CONT && !d->in_msg) {
    return fail(L, d, CLOSE_PROTOCOL, "websocket: continuation frame outside a message");
  } else if (op != OP_CONT && d->in_msg) {
    return fail(L, d, CLOSE_PROTOCOL, "websocket: new message inside a fragmented one");
  }
  if (d->server && !masked)
    return fail(L, d, CLOSE_PROTOCOL, "websocket: unmasked frame from the client");
  if (!d->server && masked)
    return fail(L, d, CLOSE_PROTOCOL, "websocket: masked frame from the server");

  size_t h = 2;
  if (plen == 126) {
    if (avail < 4) return 0;
    plen = ((uint64_t)f[2] << 8) | f[3];
    h = 4;
  } else if (plen == 127) {
    if (avail < 10) return 0;
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = (plen << 8) | f[2 + i];
    h = 10;
    if (plen >> 63) return fail(L, d, CLOSE_PROTOCOL, "websocket: frame length over 2^63");
  }
  if (op < OP_CLOSE && (plen > d->max || d->msg_len + plen > d->max)) {
    snprintf(msg, sizeof msg, "websocket: message over the limit of %llu bytes",
             (unsigned long long)d->max);
    return fail(L, d, CLOSE_TOO_BIG, msg);
  }
  size_t kpos = h;
  if (masked) h += 4;
  if (avail < h || avail - h < plen) return 0; /* the payload is not all here yet */

  unsigned char *p = f + h;
  size_t n = (size_t)plen;
  if (masked) mask_bytes(p, n, f + kpos);

  int text = op == OP_TEXT || (op == OP_CONT && d->in_msg == OP_TEXT);
  if (op < OP_CLOSE) {
    if (text) {
      if (op == OP_TEXT) d->utf8 = (utf8_state){0, 0x80, 0xBF};
      if (!utf8_feed(&d->utf8, p, n) || (fin && d->utf8.need))
        return fail(L, d, CLOSE_INVALID, "websocket: invalid UTF-8 in a text message");
    }
    if (fin) {
      d->in_msg = 0;
      d->msg_len = 0;
    } else {
      if (op != OP_CONT) d->in_msg = (uint8_t)op;
      d->msg_len += plen;
    }
  }
  int nres = 3;
  lua_pushinteger(L, op);
  lua_pushboolean(L, fin != 0);
  lua_pushlstring(L, (const char *)p, n);
  if (op == OP_CLOSE) {
    if (n == 1) return fail(L, d, CLOSE_PROTOCOL, "websocket: close frame of 1 byte");
    if (n >= 2) {
      int code = (p[0] << 8) | p[1];
      if (!close_code_valid(code)) {
        snprintf(msg, sizeof msg, "websocket: invalid close code %d", code);
        return fail(L, d, CLOSE_PROTOCOL, msg);
      }
      if (!utf8_valid(p + 2, n - 2))
        return fail(L, d, CLOSE_INVALID, "websocket: invalid UTF-8 in a close reason");
      lua_pushinteger(L, code);
      lua_pushlstring(L, (const char *)p + 2, n - 2);
    } else {
      lua_pushnil(L);
      lua_pushliteral(L, "");
    }
    nres = 5;
  }
  d->pos += h + n;
  settle(d);
  return nres;
}

/* d:buffered() -> bytes fed and not yet decoded */
static int d_buffered(lua_State *L) {
  decoder *d = check_decoder(L, "decoder:buffered");
  lua_pushinteger(L, (lua_Integer)(d->len - d->pos));
  return 1;
}

/* d:set_limit(max_message) */
static int d_set_limit(lua_State *L) {
  decoder *d = check_decoder(L, "decoder:set_limit");
  d->max = (uint64_t)cfl_check_int_range(L, 2, "decoder:set_limit", "argument #1", 0,
                                         (lua_Integer)MAX_LIMIT);
  return 0;
}

static int d_gc(lua_State *L) {
  decoder *d = luaL_testudata(L, 1, DECODER_MT);
  if (d) {
    free(d->buf);
    d->buf = NULL;
    d->pos = d->len = d->cap = 0;
  }
  return 0;
}

static int d_tostring(lua_State *L) {
  decoder *d = luaL_testudata(L, 1, DECODER_MT);
  if (!d)
    return luaL_error(L, "decoder:__tostring: argument #1 must be a WebSocket decoder (got %s)",
                      luaL_typename(L, 1));
  lua_pushfstring(L, DECODER_MT "(%s%s): %p", d->server ? "server" : "client",
                  d->dead ? ", failed" : "", (void *)d);
  return 1;
}

/* ---- the module ---------------------------------------------------------------- */

static const luaL_Reg funcs[] = {{"frame", l_frame},
                                 {"mask", l_mask},
                                 {"decoder", l_decoder},
                                 {"valid_utf8", l_valid_utf8},
                                 {"valid_close_code", l_valid_close_code},
                                 {NULL, NULL}};
static const luaL_Reg decoder_methods[] = {
    {"next", d_next}, {"buffered", d_buffered}, {"set_limit", d_set_limit}, {NULL, NULL}};
static const luaL_Reg decoder_meta[] = {{"__gc", d_gc}, {"__tostring", d_tostring}, {NULL, NULL}};

static void open_ws(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_setfield(L, -2, "_ws");
  cfl_new_class(L, rt, DECODER_MT, decoder_methods, decoder_meta);
  lua_pop(L, 1);
}

const cfl_module cfl_ws_module = {.name = "ws", .open = open_ws};
