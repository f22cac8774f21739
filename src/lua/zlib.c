/*
 * zlib.c — cf._zlib: a streaming inflater for HTTP's gzip and deflate
 * Content-Encoding, on zlib. Internal (the HTTP client uses it).
 *
 *   local z = cf._zlib.inflater(format)  -- "gzip" | "deflate" | "zlib" | "raw"
 *   local out, more = z:push(data [, max = 65536])
 *   z:finish() -> true | nil, message, "EPROTO"
 *
 * Ground rules
 * - Output is bounded per call: push returns at most `max` bytes, so a small
 *   compressed body that inflates to gigabytes (a "zip bomb") costs only as
 *   much memory as the caller asks for at a time. Input that could not be
 *   used yet is copied into the object (C memory, freed by close or the
 *   finaliser); `more` is true while output may be pending without new input:
 *   call push("") again until it is false before feeding the next piece (or
 *   feed it: it is queued behind what is held).
 * - "deflate" is what HTTP calls the zlib format (RFC 9110), but servers have
 *   long sent raw deflate under that name: the first two bytes tell which
 *   (a zlib header's check bits), as browsers and curl do.
 * - "gzip" accepts several members one after another (as gzip(1) does) and
 *   ignores zero bytes after the last; other bytes after the end of the
 *   stream are an error, as in every format: they are not what was sent.
 * - Corrupt or truncated input is `nil, "zlib: <what>", "EPROTO"`, never a
 *   raise and never a crash; the object then keeps answering that error.
 *   Misuse (a wrong argument, a closed object) raises, naming the method.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cfl.h"

#define INFLATER_MT "cfuture.Inflater"
#define DEFAULT_MAX (64 * 1024)
#define LIMIT_MAX (64 * 1024 * 1024)
#define LIMIT_IN ((size_t)1 << 30)

enum { FMT_GZIP, FMT_DEFLATE, FMT_ZLIB, FMT_RAW };
static const char *const formats[] = {"gzip", "deflate", "zlib", "raw", NULL};

typedef struct inflater {
  z_stream zs;
  unsigned char *held; /* input not consumed yet */
  size_t held_len, held_cap, held_off;
  unsigned char *out; /* the output buffer, reused (Lua 5.1 has no luaL_buffinitsize) */
  size_t out_cap;
  int format;
  int started;   /* inflateInit2 done */
  int ended;     /* the stream (the last gzip member) ended */
  int closed;    /* close() or the finaliser ran */
  int failed;    /* an error was returned; err holds it */
  char err[128]; /* the message of that error */
} inflater;

static void inflater_free(inflater *z) {
  if (z->started) inflateEnd(&z->zs);
  z->started = 0;
  free(z->held);
  z->held = NULL;
  free(z->out);
  z->out = NULL;
  z->out_cap = 0;
  z->held_len = z->held_cap = z->held_off = 0;
}

static inflater *check_inflater(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  inflater *z = luaL_testudata(L, 1, INFLATER_MT);
  if (!z) cfl_raise_self(L, 1, fname, "a cfuture.Inflater");
  if (z->closed) luaL_error(L, "%s: the inflater is closed", fname);
  return z;
}

/* cf._zlib.inflater(format) */
static int l_inflater(lua_State *L) {
  const char *fname = "zlib.inflater";
  cfl_rt_named(L, fname);
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_error(L, "%s: argument #1 must be \"gzip\", \"deflate\", \"zlib\" or \"raw\" (got %s)",
               fname, luaL_typename(L, 1));
  const char *name = lua_tostring(L, 1);
  int format = -1;
  for (int i = 0; formats[i]; i++)
    if (strcmp(name, formats[i]) == 0) format = i;
  if (format < 0)
    luaL_error(L, "%s: argument #1 must be \"gzip\", \"deflate\", \"zlib\" or \"raw\" (got \"%s\")",
               fname, name);
  inflater *z = lua_newuserdatauv(L, sizeof *z, 0);
  memset(z, 0, sizeof *z);
  z->format = format;
  luaL_getmetatable(L, INFLATER_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* Fail the object with message msg: pushes nil, "zlib: msg", "EPROTO". */
static int fail(lua_State *L, inflater *z, const char *msg) {
  if (!z->failed) {
    z->failed = 1;
    snprintf(z->err, sizeof z->err, "zlib: %s", msg);
    inflater_free(z);
  }
  lua_pushnil(L);
  lua_pushstring(L, z->err);
  lua_pushliteral(L, "EPROTO");
  return 3;
}

/* Start the zlib stream once the first bytes tell the format; returns 0 when
 * more bytes are needed, 1 when started, -1 on failure (message in *why). */
static int start(inflater *z, const unsigned char *in, size_t n, const char **why) {
  int bits;
  switch (z->format) {
  case FMT_GZIP: bits = 16 + MAX_WBITS; break;
  case FMT_ZLIB: bits = MAX_WBITS; break;
  case FMT_RAW: bits = -MAX_WBITS; break;
  default: /* deflate: a zlib header (CM = 8, check bits) or raw deflate */
    if (n < 2) return 0;
    bits = ((in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 && ((in[0] << 8) | in[1]) % 31 == 0)
               ? MAX_WBITS
               : -MAX_WBITS;
  }
  memset(&z->zs, 0, sizeof z->zs);
  int r = inflateInit2(&z->zs, bits);
  if (r != Z_OK) {
    *why = r == Z_MEM_ERROR ? "not enough memory" : "cannot start inflating";
    return -1;
  }
  z->started = 1;
  return 1;
}

/* Keep in[0..n) for the next call, behind what is held already. */
static int hold(inflater *z, const unsigned char *in, size_t n) {
  if (n == 0) return 1;
  if (z->held_off > 0 && z->held_off == z->held_len) z->held_off = z->held_len = 0;
  if (z->held_len + n > z->held_cap) {
    if (z->held_off > 0) { /* move what is left to the front first */
      memmove(z->held, z->held + z->held_off, z->held_len - z->held_off);
      z->held_len -= z->held_off;
      z->held_off = 0;
    }
    if (z->held_len + n > z->held_cap) {
      size_t cap = z->held_cap ? z->held_cap : 256;
      while (cap < z->held_len + n)
        cap *= 2;
      unsigned char *p = realloc(z->held, cap);
      if (!p) return 0;
      z->held = p;
      z->held_cap = cap;
    }
  }
  memcpy(z->held + z->held_len, in, n);
  z->held_len += n;
  return 1;
}

/* Whether in[0..n) is only zero bytes. */
static int all_zero(const unsigned char *in, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (in[i]) return 0;
  return 1;
}

/* z:push(data [, max]) -> out, more | nil, message, "EPROTO" */
static int z_push(lua_State *L) {
  const char *fname = "inflater:push";
  inflater *z = check_inflater(L, fname);
  size_t dlen;
  if (lua_type(L, 2) != LUA_TSTRING)
    luaL_error(L, "%s: argument #2 must be a string (got %s)", fname, luaL_typename(L, 2));
  const unsigned char *data = (const unsigned char *)lua_tolstring(L, 2, &dlen);
  if (dlen > LIMIT_IN) luaL_error(L, "%s: argument #2 must be at most 1 GiB long", fname);
  size_t max = DEFAULT_MAX;
  if (!lua_isnoneornil(L, 3))
    max = (size_t)cfl_check_int_range(L, 3, fname, "argument #3", 1, LIMIT_MAX);
  if (z->failed) return fail(L, z, NULL);

  /* The input: what is held, then data (appended to the held bytes only
   * when something is held, the rare case of a caller that did not drain). */
  const unsigned char *in = data;
  size_t n = dlen;
  if (z->held_len > z->held_off) {
    if (!hold(z, data, dlen)) return fail(L, z, "not enough memory");
    in = z->held + z->held_off;
    n = z->held_len - z->held_off;
  }
  if (z->ended && z->format == FMT_GZIP && n > 0 && in[0] == 0x1f)
    z->ended = 0; /* the next gzip member: started again below */
  if (z->ended) {
    if (n == 0) {
      lua_pushliteral(L, "");
      lua_pushboolean(L, 0);
      return 2;
    }
    if (!all_zero(in, n) || z->format != FMT_GZIP)
      return fail(L, z, "data after the end of the compressed stream");
    z->held_off = z->held_len = 0;
    lua_pushliteral(L, "");
    lua_pushboolean(L, 0);
    return 2;
  }
  if (!z->started) {
    const char *why = NULL;
    int r = start(z, in, n, &why);
    if (r < 0) return fail(L, z, why);
    if (r == 0) { /* one byte of a deflate body: keep it */
      if (in == data && !hold(z, data, dlen)) return fail(L, z, "not enough memory");
      lua_pushliteral(L, "");
      lua_pushboolean(L, 0);
      return 2;
    }
  }

  if (z->out_cap < max) {
    unsigned char *p = realloc(z->out, max);
    if (!p) return fail(L, z, "not enough memory");
    z->out = p;
    z->out_cap = max;
  }
  unsigned char *out = z->out;
  z->zs.next_out = out;
  z->zs.avail_out = (uInt)max;
  z->zs.next_in = (Bytef *)in;
  z->zs.avail_in = (uInt)n;
  int full = 0;
  while (1) {
    int r = inflate(&z->zs, Z_NO_FLUSH);
    if (r == Z_STREAM_END) {
      /* gzip: another member may follow; zero padding is ignored */
      if (z->format == FMT_GZIP && z->zs.avail_in >= 1 && z->zs.next_in[0] == 0x1f) {
        if (inflateReset(&z->zs) != Z_OK) return fail(L, z, "cannot start the next gzip member");
        if (z->zs.avail_out == 0) {
          full = 1;
          break;
        }
        continue;
      }
      if (z->zs.avail_in > 0 && (z->format != FMT_GZIP || !all_zero(z->zs.next_in, z->zs.avail_in)))
        return fail(L, z, "data after the end of the compressed stream");
      z->zs.avail_in = 0;
      z->ended = 1;
      break;
    }
    if (r == Z_OK) {
      if (z->zs.avail_out == 0) {
        full = 1;
        break;
      }
      if (z->zs.avail_in == 0) break;
      continue;
    }
    if (r == Z_BUF_ERROR) break; /* no progress: needs input (or room, handled above) */
    if (r == Z_MEM_ERROR) return fail(L, z, "not enough memory");
    /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
    return fail(L, z,
                r == Z_NEED_DICT ? "a preset dictionary is needed"
                : z->zs.msg      ? z->zs.msg
                                 : "invalid compressed data");
  }
  size_t left = z->zs.avail_in;
  const unsigned char *rest = z->zs.next_in;
  size_t produced = max - z->zs.avail_out;
  if (in == data) {
    if (left > 0 && !hold(z, rest, left)) return fail(L, z, "not enough memory");
  } else { /* consumed from the held buffer */
    z->held_off = z->held_len - left;
    if (left == 0) z->held_off = z->held_len = 0;
  }
  if (z->ended) { /* free zlib's window now; nothing is held */
    inflateEnd(&z->zs);
    z->started = 0;
  }
  lua_pushlstring(L, (const char *)out, produced);
  lua_pushboolean(L, !z->ended && (full || left > 0));
  return 2;
}

/* z:finish() -> true once the stream ended, else nil, message, "EPROTO" */
static int z_finish(lua_State *L) {
  inflater *z = check_inflater(L, "inflater:finish");
  if (z->failed) return fail(L, z, NULL);
  if (z->ended) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return fail(L, z,
              z->started || z->held_len > 0 ? "the compressed stream is truncated"
                                            : "the compressed stream is empty");
}

/* z:ended() -> whether the compressed stream ended */
static int z_ended(lua_State *L) {
  inflater *z = check_inflater(L, "inflater:ended");
  lua_pushboolean(L, z->ended);
  return 1;
}

/* z:close(): free zlib's state now (also the finaliser's and __close's work) */
static int z_close(lua_State *L) {
  cfl_rt_named(L, "inflater:close");
  inflater *z = luaL_testudata(L, 1, INFLATER_MT);
  if (!z) cfl_raise_self(L, 1, "inflater:close", "a cfuture.Inflater");
  inflater_free(z);
  z->closed = 1;
  return 0;
}

/* __gc: never raises; a foreign value is left alone */
static int z_gc(lua_State *L) {
  inflater *z = luaL_testudata(L, 1, INFLATER_MT);
  if (z) {
    inflater_free(z);
    z->closed = 1;
  }
  return 0;
}

static int z_tostring(lua_State *L) {
  inflater *z = luaL_testudata(L, 1, INFLATER_MT);
  if (!z)
    return luaL_error(L, "inflater:__tostring: argument #1 must be a cfuture.Inflater (got %s)",
                      luaL_typename(L, 1));
  lua_pushfstring(L, "cfuture.Inflater(%s%s): %p", formats[z->format],
                  z->closed   ? ", closed"
                  : z->failed ? ", failed"
                  : z->ended  ? ", ended"
                              : "",
                  (void *)z);
  return 1;
}

static const luaL_Reg funcs[] = {{"inflater", l_inflater}, {NULL, NULL}};
static const luaL_Reg methods[] = {
    {"push", z_push}, {"finish", z_finish}, {"ended", z_ended}, {"close", z_close}, {NULL, NULL}};
static const luaL_Reg meta[] = {
    {"__gc", z_gc}, {"__close", z_gc}, {"__tostring", z_tostring}, {NULL, NULL}};

static void open_zlib(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_pushstring(L, zlibVersion());
  lua_setfield(L, -2, "version");
  lua_setfield(L, -2, "_zlib");
  cfl_new_class(L, rt, INFLATER_MT, methods, meta);
  lua_pop(L, 1);
}

const cfl_module cfl_zlib_module = {.name = "zlib", .open = open_zlib};
