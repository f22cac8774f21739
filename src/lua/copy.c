/*
 * copy.c — the byte format values travel in between Lua states.
 *
 * Each value is a tag byte and its payload; a table is '{', key/value
 * pairs, '}'. A channel travels as its pointer and holds a reference until
 * it is decoded (or the buffer is discarded). Functions travel as bytecode,
 * with debug information kept so tracebacks in a worker name lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"

#include "cfl.h"
#include "copy.h"

int cfl_buf_put(cfl_buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) return -1;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

#define MAX_DEPTH 64

static int put_tag(cfl_buf *b, char tag) { return cfl_buf_put(b, &tag, 1); }

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return cfl_buf_put(ud, p, n);
}

static int encode_function(lua_State *L, int idx, cfl_buf *b, char *err) {
  if (lua_iscfunction(L, idx)) {
    snprintf(err, 160, "cannot copy a C function");
    return -1;
  }
  const char *up;
  for (int i = 1; (up = lua_getupvalue(L, idx, i)); i++) {
    lua_pop(L, 1);
    if (strcmp(up, "_ENV") != 0) {
      snprintf(err, 160, "cannot copy a function that captures local variables (it uses '%.60s')",
               up);
      return -1;
    }
  }
  size_t at = b->len, n = 0;
  if (put_tag(b, 'F') || cfl_buf_put(b, &n, sizeof n)) goto oom;
  lua_pushvalue(L, idx);
  int bad = lua_dump(L, writer, b, 0);
  lua_pop(L, 1);
  if (bad) goto oom;
  n = b->len - at - 1 - sizeof n;
  memcpy(b->p + at + 1, &n, sizeof n);
  return 0;
oom:
  snprintf(err, 160, "out of memory");
  return -1;
}

static int encode(lua_State *L, int idx, cfl_buf *b, char *err, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    if (put_tag(b, 'n')) goto oom;
    return 0;
  case LUA_TBOOLEAN:
    if (put_tag(b, lua_toboolean(L, idx) ? 't' : 'f')) goto oom;
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      if (put_tag(b, 'i') || cfl_buf_put(b, &i, sizeof i)) goto oom;
    } else {
      lua_Number d = lua_tonumber(L, idx);
      if (put_tag(b, 'd') || cfl_buf_put(b, &d, sizeof d)) goto oom;
    }
    return 0;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (put_tag(b, 's') || cfl_buf_put(b, &n, sizeof n) || cfl_buf_put(b, s, n)) goto oom;
    return 0;
  }
  case LUA_TFUNCTION: return encode_function(L, idx, b, err);
  case LUA_TTABLE:
    if (depth >= MAX_DEPTH) {
      snprintf(err, 160, "tables nested too deeply (or a cycle)");
      return -1;
    }
    if (!lua_checkstack(L, 3)) {
      snprintf(err, 160, "stack overflow");
      return -1;
    }
    if (put_tag(b, '{')) goto oom;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (encode(L, -2, b, err, depth + 1) || encode(L, -1, b, err, depth + 1)) {
        lua_pop(L, 2);
        return -1;
      }
      lua_pop(L, 1);
    }
    if (put_tag(b, '}')) goto oom;
    return 0;
  case LUA_TUSERDATA: {
    cfu_xchan *ch = cfl_toxchan(L, idx);
    if (!ch) break;
    if (put_tag(b, 'c') || cfl_buf_put(b, &ch, sizeof ch)) goto oom;
    cfu_xchan_ref(ch);
    return 0;
  }
  default: break;
  }
  snprintf(err, 160, "cannot copy a %s to another Lua state", luaL_typename(L, idx));
  return -1;
oom:
  snprintf(err, 160, "out of memory");
  return -1;
}

int cfl_encode(lua_State *L, int idx, cfl_buf *b, char err[160]) {
  size_t at = b->len;
  if (encode(L, idx, b, err, 0) == 0) return 0;
  /* release what the partial value holds */
  cfl_copy_release(b->p + at, b->len - at);
  b->len = at;
  return -1;
}

/* Read n bytes at *pos into out; -1 if p ends before. */
static int take(const char *p, size_t len, size_t *pos, void *out, size_t n) {
  if (len - *pos < n) return -1;
  memcpy(out, p + *pos, n);
  *pos += n;
  return 0;
}

int cfl_decode(lua_State *L, const char *p, size_t len, size_t *pos) {
  if (*pos >= len || !lua_checkstack(L, 3)) return -1;
  char tag = p[(*pos)++];
  switch (tag) {
  case 'n': lua_pushnil(L); return 0;
  case 't': lua_pushboolean(L, 1); return 0;
  case 'f': lua_pushboolean(L, 0); return 0;
  case 'i': {
    lua_Integer i;
    if (take(p, len, pos, &i, sizeof i)) return -1;
    lua_pushinteger(L, i);
    return 0;
  }
  case 'd': {
    lua_Number d;
    if (take(p, len, pos, &d, sizeof d)) return -1;
    lua_pushnumber(L, d);
    return 0;
  }
  case 's': {
    size_t n;
    if (take(p, len, pos, &n, sizeof n) || len - *pos < n) return -1;
    lua_pushlstring(L, p + *pos, n);
    *pos += n;
    return 0;
  }
  case 'F': {
    size_t n;
    if (take(p, len, pos, &n, sizeof n) || len - *pos < n) return -1;
    int st = luaL_loadbufferx(L, p + *pos, n, "=copied function", "b");
    *pos += n;
    if (st == LUA_OK) return 0;
    lua_pop(L, 1);
    return -1;
  }
  case 'c': {
    cfu_xchan *ch;
    if (take(p, len, pos, &ch, sizeof ch)) return -1;
    cfl_push_xchan(L, ch); /* takes the buffer's reference */
    return 0;
  }
  case '{':
    lua_newtable(L);
    while (*pos < len && p[*pos] != '}') {
      if (cfl_decode(L, p, len, pos)) {
        lua_pop(L, 1);
        return -1;
      }
      if (cfl_decode(L, p, len, pos)) {
        lua_pop(L, 2);
        return -1;
      }
      if (lua_isnil(L, -2) || lua_tonumber(L, -2) != lua_tonumber(L, -2)) { /* nil or NaN */
        lua_pop(L, 3);
        return -1;
      }
      lua_rawset(L, -3);
    }
    if (*pos >= len) {
      lua_pop(L, 1);
      return -1;
    }
    (*pos)++;
    return 0;
  default: return -1;
  }
}

void cfl_copy_release(const char *p, size_t len) {
  size_t pos = 0, n;
  while (pos < len) {
    switch (p[pos++]) {
    case 'i':
    case 'd': pos += 8; break;
    case 's':
    case 'F':
      if (len - pos < sizeof n) return;
      memcpy(&n, p + pos, sizeof n);
      pos += sizeof n;
      if (len - pos < n) return;
      pos += n;
      break;
    case 'c': {
      cfu_xchan *ch;
      if (len - pos < sizeof ch) return;
      memcpy(&ch, p + pos, sizeof ch);
      pos += sizeof ch;
      cfu_xchan_unref(ch);
      break;
    }
    default: break; /* n t f { } */
    }
  }
}

void cfl_buf_discard(cfl_buf *b) {
  if (b->p) cfl_copy_release(b->p, b->len);
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void cfl_buf_consumed(cfl_buf *b, size_t pos) {
  if (pos < b->len) cfl_copy_release(b->p + pos, b->len - pos);
  b->len = 0;
}

int cfl_encode_lstring(cfl_buf *b, const char *s, size_t n) {
  if (put_tag(b, 's') || cfl_buf_put(b, &n, sizeof n) || cfl_buf_put(b, s, n)) return -1;
  return 0;
}

/* ---- errors of calls on workers ---------------------------------------------------- */

static const char TRACE_KEY = 't';  /* worker: traceback of the error being handled */
static const char TRACES_KEY = 'T'; /* receiver: error value -> worker traceback (weak keys) */

static int error_handler(lua_State *L, int trace_strings) {
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) {
    if (trace_strings) luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
  }
  luaL_traceback(L, L, NULL, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TRACE_KEY);
  return 1;
}

int cfl_error_handler_tb(lua_State *L) { return error_handler(L, 1); }
int cfl_error_handler(lua_State *L) { return error_handler(L, 0); }

void cfl_error_msg(cfl_buf *b, const char *msg) {
  cfl_buf_discard(b);
  if (cfl_encode_lstring(b, msg, strlen(msg)) || put_tag(b, 'n')) cfl_buf_discard(b);
}

void cfl_encode_error(lua_State *W, int idx, cfl_buf *b, const char *fname) {
  idx = lua_absindex(W, idx);
  cfl_buf_discard(b);
  int traced = lua_type(W, idx) != LUA_TSTRING;
  if (traced)
    lua_rawgetp(W, LUA_REGISTRYINDEX, &TRACE_KEY); /* its traceback (the handler kept it) */
  else
    lua_pushnil(W);
  lua_pushnil(W);
  lua_rawsetp(W, LUA_REGISTRYINDEX, &TRACE_KEY);
  int tb = lua_gettop(W);
  char err[160];
  if (cfl_encode(W, idx, b, err) == 0) {
    if (lua_type(W, tb) != LUA_TSTRING || cfl_encode(W, tb, b, err) != 0)
      if (put_tag(b, 'n')) goto oom;
    lua_settop(W, tb - 1);
    return;
  }
  /* it cannot travel: a string naming it, with the traceback */
  cfl_buf_discard(b);
  lua_pushfstring(W, "%s: error object is a %s value that cannot travel (%s)", fname,
                  luaL_typename(W, idx), err);
  if (lua_type(W, tb) == LUA_TSTRING) {
    lua_pushliteral(W, "\n");
    lua_pushvalue(W, tb);
    lua_concat(W, 3);
  }
  size_t n;
  const char *s = lua_tolstring(W, -1, &n);
  if (cfl_encode_lstring(b, s, n) || put_tag(b, 'n')) goto oom;
  lua_settop(W, tb - 1);
  return;
oom:
  lua_settop(W, tb - 1);
  cfl_error_msg(b, "out of memory (encoding an error)");
}

void cfl_push_error(lua_State *L, cfl_buf *b, const char *fname) {
  size_t pos = 0;
  int top = lua_gettop(L);
  if (cfl_decode(L, b->p, b->len, &pos) || cfl_decode(L, b->p, b->len, &pos)) {
    lua_settop(L, top);
    cfl_buf_consumed(b, pos);
    lua_pushfstring(L, "%s: corrupt error value", fname);
    return;
  }
  cfl_buf_consumed(b, pos);
  int t = lua_type(L, -2);
  if (lua_type(L, -1) == LUA_TSTRING &&
      (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA)) {
    cfl_registry_table(L, &TRACES_KEY, "k");
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

int cfl_push_traceback(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TRACES_KEY) != LUA_TTABLE || lua_isnoneornil(L, idx)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return 1;
}
