/*
 * http_parser.c — cf._http: HTTP/1.x message parsing on libhttp-parser
 * (Node's parser before llhttp), for the Lua parts in lua/cfuture/http/.
 *
 * Ground rules
 * - A parser object (cfuture.http.Parser) owns one http_parser and the
 *   bytes of the head being read (start line pieces, header names and
 *   values) in a C buffer of its own, so a head may arrive split across any
 *   number of execute calls. The limits bound that buffer: the head (start
 *   line and headers, CRLFs included) is fed at most max_header_size bytes
 *   in all, so a huge header line is refused after max_header_size bytes,
 *   not after it arrived whole; a header past max_headers is refused at
 *   its name.
 * - execute returns one event per call. The parser is paused in
 *   on_headers_complete and on_message_complete, so a call stops right
 *   after a head or a message. libhttp-parser pauses at the head's last LF
 *   without consuming it; that one byte is fed at once, so the position
 *   returned is the first byte after the head (what an upgrade hands on).
 *   Body bytes are the pieces on_body saw in this call (pointers into the
 *   caller's string, valid during the call), joined into one string; a
 *   message that ended in the same call is announced by the next call
 *   ("done" at once, pending_done).
 * - Callbacks never run Lua: they only copy bytes into C memory (or note
 *   body pieces) and may fail with a limit or out of memory, which stops
 *   the parser (dead until reset).
 */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

#define PARSER_MT "cfuture.http.Parser"

#define DEFAULT_MAX_HEADER_SIZE 8192
#define DEFAULT_MAX_HEADERS 100
/* libhttp-parser's own ceiling on a head (HTTP_MAX_HEADER_SIZE, 80 KiB in
 * Debian's build); a larger limit could never be reached */
#define MAX_HEADER_SIZE_LIMIT (80 * 1024)
#define MAX_HEADERS_LIMIT 10000

enum phase { IDLE, HEAD, BODY };
enum event { EV_NONE, EV_HEAD, EV_DONE };
enum fail { FAIL_NONE, FAIL_HEADER_SIZE, FAIL_HEADERS, FAIL_NAME, FAIL_NOMEM };

typedef struct span {
  size_t off, len;
} span;

typedef struct piece {
  const char *p;
  size_t len;
} piece;

typedef struct parser {
  http_parser hp;
  enum http_parser_type type;
  unsigned max_header_size, max_headers;
  enum phase phase;
  enum event ev;
  enum fail fail;
  int dead, pending_done, no_body, in_trailers;
  int last_field; /* the last header callback was a name (a value follows) */
  size_t head_bytes;
  /* head text: url or reason, then name/value pairs */
  char *buf;
  size_t buflen, bufcap;
  span start;           /* url (requests) or reason (responses) */
  span *hdrs;           /* 2 per header: name, value */
  unsigned nhdrs, hcap; /* spans in use, allocated */
  unsigned count;       /* headers (or trailers) seen in this message */
  /* body pieces of the current execute call */
  piece *pieces;
  size_t npieces, pcap;
  char errmsg[160];
  const char *errcode;
} parser;

/* ---- the head buffer -------------------------------------------------------- */

static int buf_append(parser *p, span *s, const char *at, size_t len) {
  if (len == 0) return 0;
  if (p->buflen + len > p->bufcap) {
    size_t cap = p->bufcap ? p->bufcap : 256;
    while (cap < p->buflen + len)
      cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b) {
      p->fail = FAIL_NOMEM;
      return -1;
    }
    p->buf = b;
    p->bufcap = cap;
  }
  if (s->len == 0) s->off = p->buflen;
  /* a piece continues the span only if it was the last thing appended */
  memcpy(p->buf + p->buflen, at, len);
  p->buflen += len;
  s->len += len;
  return 0;
}

static void head_reset(parser *p) {
  p->buflen = 0;
  p->start.off = p->start.len = 0;
  p->nhdrs = 0;
  p->last_field = 0;
}

/* ---- callbacks ------------------------------------------------------------------ */

static int on_message_begin(http_parser *hp) {
  parser *p = hp->data;
  p->phase = HEAD;
  p->in_trailers = 0;
  p->count = 0;
  head_reset(p);
  return 0;
}

static int on_start(http_parser *hp, const char *at, size_t len) {
  parser *p = hp->data;
  return buf_append(p, &p->start, at, len);
}

static int too_many(parser *p) {
  if (p->count <= p->max_headers) return 0;
  p->fail = FAIL_HEADERS;
  return 1;
}

/* RFC 9110 tchar: libhttp-parser as Debian builds it (not strict) lets a
 * space into a header name, which a proxy in front may read otherwise */
static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int on_header_field(http_parser *hp, const char *at, size_t len) {
  parser *p = hp->data;
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)at[i])) {
      p->fail = FAIL_NAME;
      return -1;
    }
  if (!p->last_field) { /* a new header */
    /* the limit is checked once a name is whole, so that the first header
     * at fault decides the error however the bytes were split */
    if (too_many(p)) return -1;
    p->count++;
    if (p->nhdrs + 2 > p->hcap) {
      unsigned cap = p->hcap ? p->hcap * 2 : 32;
      span *h = realloc(p->hdrs, cap * sizeof *h);
      if (!h) {
        p->fail = FAIL_NOMEM;
        return -1;
      }
      p->hdrs = h;
      p->hcap = cap;
    }
    p->hdrs[p->nhdrs].off = p->hdrs[p->nhdrs].len = 0;
    p->hdrs[p->nhdrs + 1].off = p->hdrs[p->nhdrs + 1].len = 0;
    p->nhdrs += 2;
    p->last_field = 1;
  }
  return buf_append(p, &p->hdrs[p->nhdrs - 2], at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len) {
  parser *p = hp->data;
  if (p->last_field && too_many(p)) return -1;
  p->last_field = 0;
  return buf_append(p, &p->hdrs[p->nhdrs - 1], at, len);
}

static int on_headers_complete(http_parser *hp) {
  parser *p = hp->data;
  if (too_many(p)) return -1;
  if (p->in_trailers) return 0;
  p->ev = EV_HEAD;
  http_parser_pause(hp, 1);
  if (p->no_body) {
    p->no_body = 0;
    return 1; /* skip the body: the answer to HEAD */
  }
  /* 1xx, 204 and 304 end at their head whatever Content-Length says (RFC
   * 9112 6.3); libhttp-parser only knows that when there is no length */
  unsigned st = hp->status_code;
  if (p->type == HTTP_RESPONSE && !hp->upgrade && (st / 100 == 1 || st == 204 || st == 304))
    return 1;
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len) {
  parser *p = hp->data;
  if (len == 0) return 0;
  if (p->npieces == p->pcap) {
    size_t cap = p->pcap ? p->pcap * 2 : 16;
    piece *n = realloc(p->pieces, cap * sizeof *n);
    if (!n) {
      p->fail = FAIL_NOMEM;
      return -1;
    }
    p->pieces = n;
    p->pcap = cap;
  }
  p->pieces[p->npieces].p = at;
  p->pieces[p->npieces].len = len;
  p->npieces++;
  return 0;
}

static int on_message_complete(http_parser *hp) {
  parser *p = hp->data;
  if (too_many(p)) return -1; /* trailers */
  p->ev = EV_DONE;
  p->phase = IDLE;
  p->head_bytes = 0;
  http_parser_pause(hp, 1);
  return 0;
}

static int on_chunk_header(http_parser *hp) {
  parser *p = hp->data;
  /* the last chunk: what follows are trailers, counted afresh */
  if (hp->content_length == 0) {
    p->in_trailers = 1;
    p->count = 0;
    head_reset(p);
  }
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_start,
    .on_status = on_start,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- the Lua side ------------------------------------------------------------------ */

static parser *check_parser(lua_State *L, const char *fname) {
  cfl_rt_named(L, fname);
  parser *p = luaL_testudata(L, 1, PARSER_MT);
  if (!p) cfl_raise_self(L, 1, fname, "a cfuture.http.Parser");
  return p;
}

static enum http_parser_type check_kind(lua_State *L, int idx, const char *fname) {
  const char *k = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  if (k && strcmp(k, "request") == 0) return HTTP_REQUEST;
  if (k && strcmp(k, "response") == 0) return HTTP_RESPONSE;
  luaL_error(L, "%s: argument #%d must be \"request\" or \"response\" (got %s)", fname, idx,
             k ? lua_pushfstring(L, "\"%s\"", k) : luaL_typename(L, idx));
  return HTTP_REQUEST;
}

static void parser_init(parser *p, enum http_parser_type type) {
  http_parser_init(&p->hp, type);
  p->hp.data = p;
  p->type = type;
  p->phase = IDLE;
  p->ev = EV_NONE;
  p->fail = FAIL_NONE;
  p->dead = p->pending_done = p->no_body = p->in_trailers = 0;
  p->head_bytes = 0;
  p->count = 0;
  p->npieces = 0;
  head_reset(p);
}

static unsigned opt_limit(lua_State *L, int idx, const char *fname, const char *name, unsigned dflt,
                          unsigned hi) {
  lua_getfield(L, idx, name);
  unsigned v = dflt;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: limit %s must be an integer from 1 to %d (got %s)", fname, name, (int)hi,
                 luaL_typename(L, -1));
    int at = lua_gettop(L);
    const char *what = lua_pushfstring(L, "limit %s", name);
    v = (unsigned)cfl_check_int_range(L, at, fname, what, 1, hi);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return v;
}

/* cf._http.parser(kind [, limits]) -> parser */
static int l_parser(lua_State *L) {
  const char *fname = "http.parser";
  cfl_rt_named(L, fname);
  enum http_parser_type type = check_kind(L, 1, fname);
  unsigned mhs = DEFAULT_MAX_HEADER_SIZE, mh = DEFAULT_MAX_HEADERS;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2))
      return luaL_error(L, "%s: argument #2 must be a table of limits or nil (got %s)", fname,
                        luaL_typename(L, 2));
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (!k || (strcmp(k, "max_header_size") != 0 && strcmp(k, "max_headers") != 0))
        return luaL_error(L, "%s: unknown limit %s", fname, k ? k : luaL_typename(L, -2));
      lua_pop(L, 1);
    }
    mhs = opt_limit(L, 2, fname, "max_header_size", mhs, MAX_HEADER_SIZE_LIMIT);
    mh = opt_limit(L, 2, fname, "max_headers", mh, MAX_HEADERS_LIMIT);
  }
  parser *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  parser_init(p, type);
  p->max_header_size = mhs;
  p->max_headers = mh;
  luaL_setmetatable(L, PARSER_MT);
  return 1;
}

/* Mark the parser dead with message and code; push nil, message, code. */
static int fail_push(lua_State *L, parser *p) {
  lua_pushnil(L);
  lua_pushstring(L, p->errmsg);
  lua_pushstring(L, p->errcode);
  return 3;
}

static int die(lua_State *L, parser *p) {
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  p->dead = 1;
  p->errcode = "EPROTO";
  switch (p->fail) {
  case FAIL_HEADER_SIZE:
    snprintf(p->errmsg, sizeof p->errmsg, "http: header too large (more than %u bytes)",
             p->max_header_size);
    p->errcode = "EMSGSIZE";
    break;
  case FAIL_HEADERS:
    snprintf(p->errmsg, sizeof p->errmsg, "http: too many headers (more than %u)", p->max_headers);
    p->errcode = "EMSGSIZE";
    break;
  case FAIL_NAME:
    snprintf(p->errmsg, sizeof p->errmsg, "http: invalid character in a header name");
    break;
  case FAIL_NOMEM: p->fail = FAIL_NONE; return luaL_error(L, "http.parser: not enough memory");
  case FAIL_NONE:
    if (e == HPE_HEADER_OVERFLOW) {
      snprintf(p->errmsg, sizeof p->errmsg, "http: header too large");
      p->errcode = "EMSGSIZE";
    } else if (e == HPE_INVALID_CHUNK_SIZE) {
      snprintf(p->errmsg, sizeof p->errmsg, "http: invalid chunk size");
    } else if (e == HPE_INVALID_EOF_STATE) {
      snprintf(p->errmsg, sizeof p->errmsg, "http: the message was cut short");
    } else {
      snprintf(p->errmsg, sizeof p->errmsg, "http: %s (%s)", http_errno_description(e),
               http_errno_name(e));
    }
    break;
  }
  p->npieces = 0;
  return fail_push(L, p);
}

static void push_span(lua_State *L, parser *p, span s) {
  lua_pushlstring(L, p->buf + s.off, s.len);
}

static void push_fields(lua_State *L, parser *p) {
  lua_createtable(L, (int)p->nhdrs, 0);
  for (unsigned i = 0; i < p->nhdrs; i++) {
    push_span(L, p, p->hdrs[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void push_head(lua_State *L, parser *p) {
  http_parser *hp = &p->hp;
  lua_createtable(L, 0, 9);
  if (p->type == HTTP_REQUEST) {
    lua_pushstring(L, http_method_str((enum http_method)hp->method));
    lua_setfield(L, -2, "method");
    push_span(L, p, p->start);
    lua_setfield(L, -2, "target");
  } else {
    lua_pushinteger(L, hp->status_code);
    lua_setfield(L, -2, "status");
    push_span(L, p, p->start);
    lua_setfield(L, -2, "reason");
  }
  if (hp->http_major == 1 && hp->http_minor == 1)
    lua_pushliteral(L, "1.1");
  else if (hp->http_major == 1 && hp->http_minor == 0)
    lua_pushliteral(L, "1.0");
  else
    lua_pushfstring(L, "%d.%d", (int)hp->http_major, (int)hp->http_minor);
  lua_setfield(L, -2, "version");
  push_fields(L, p);
  lua_setfield(L, -2, "headers");
  lua_pushboolean(L, http_should_keep_alive(hp));
  lua_setfield(L, -2, "keep_alive");
  lua_pushboolean(L, hp->upgrade);
  lua_setfield(L, -2, "upgrade");
  int chunked = (hp->flags & F_CHUNKED) != 0;
  if (!chunked && (hp->flags & F_CONTENTLENGTH) && hp->content_length != UINT64_MAX) {
    if (hp->content_length <= ((uint64_t)1 << 53))
      lua_pushinteger(L, (lua_Integer)hp->content_length);
    else /* beyond exact doubles: still a number, for a limit check */
      lua_pushnumber(L, (lua_Number)hp->content_length);
    lua_setfield(L, -2, "content_length");
  }
  lua_pushboolean(L, chunked);
  lua_setfield(L, -2, "chunked");
}

/* Push the body pieces of this call as one string. */
static void push_body(lua_State *L, parser *p) {
  if (p->npieces == 1) {
    lua_pushlstring(L, p->pieces[0].p, p->pieces[0].len);
  } else {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < p->npieces; i++)
      luaL_addlstring(&b, p->pieces[i].p, p->pieces[i].len);
    luaL_pushresult(&b);
  }
  p->npieces = 0;
}

/* p:execute(data [, init]) -> event, value, pos | nil, message, code */
static int p_execute(lua_State *L) {
  const char *fname = "parser:execute";
  parser *p = check_parser(L, fname);
  size_t len;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "%s: argument #2 must be a string (got %s)", fname, luaL_typename(L, 2));
  const char *data = lua_tolstring(L, 2, &len);
  size_t pos = 0;
  if (!lua_isnoneornil(L, 3))
    pos = (size_t)cfl_check_int_range(L, 3, fname, "argument #3", 1, (lua_Integer)len + 1) - 1;
  if (p->dead) return fail_push(L, p);
  if (p->pending_done) {
    p->pending_done = 0;
    lua_pushliteral(L, "done");
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)pos + 1);
    return 3;
  }
  p->npieces = 0;
  while (pos < len) {
    size_t slice = len - pos;
    int in_head = p->phase != BODY;
    if (in_head && slice > p->max_header_size - p->head_bytes)
      slice = p->max_header_size - p->head_bytes;
    p->ev = EV_NONE;
    size_t n = slice ? http_parser_execute(&p->hp, &settings, data + pos, slice) : 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    pos += n;
    if (in_head) p->head_bytes += n;
    if (e == HPE_PAUSED) {
      http_parser_pause(&p->hp, 0);
      if (p->ev == EV_HEAD) {
        push_head(L, p);
        /* the trailers of a chunked body are kept apart from the head */
        head_reset(p);
        p->count = 0;
        p->phase = BODY;
        /* the head's last LF, which the pause left unread */
        p->ev = EV_NONE;
        size_t m = pos < len ? http_parser_execute(&p->hp, &settings, data + pos, 1) : 0;
        e = HTTP_PARSER_ERRNO(&p->hp);
        if (e == HPE_PAUSED) {
          http_parser_pause(&p->hp, 0);
          p->pending_done = 1; /* no body: the message ended with its head */
        } else if (e != HPE_OK) {
          lua_pop(L, 1);
          return die(L, p);
        }
        p->npieces = 0; /* no body can come from one LF */
        pos += m;
        lua_pushliteral(L, "head");
        lua_insert(L, -2);
        lua_pushinteger(L, (lua_Integer)pos + 1);
        return 3;
      }
      /* EV_DONE */
      if (p->npieces) {
        p->pending_done = 1;
        lua_pushliteral(L, "body");
        push_body(L, p);
      } else {
        lua_pushliteral(L, "done");
        lua_pushnil(L);
      }
      lua_pushinteger(L, (lua_Integer)pos + 1);
      return 3;
    }
    if (e != HPE_OK) return die(L, p);
    if (in_head && p->phase != BODY && p->head_bytes >= p->max_header_size) {
      p->fail = FAIL_HEADER_SIZE;
      return die(L, p);
    }
  }
  if (p->npieces) {
    lua_pushliteral(L, "body");
    push_body(L, p);
  } else {
    lua_pushliteral(L, "more");
    lua_pushnil(L);
  }
  lua_pushinteger(L, (lua_Integer)len + 1);
  return 3;
}

/* p:finish() -> "done" | nil, message, "EPROTO" | nil (idle) */
static int p_finish(lua_State *L) {
  parser *p = check_parser(L, "parser:finish");
  if (p->dead) return fail_push(L, p);
  if (p->pending_done) {
    p->pending_done = 0;
    lua_pushliteral(L, "done");
    return 1;
  }
  if (p->phase == IDLE) {
    lua_pushnil(L);
    return 1;
  }
  p->ev = EV_NONE;
  p->npieces = 0;
  http_parser_execute(&p->hp, &settings, NULL, 0);
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (e == HPE_PAUSED) http_parser_pause(&p->hp, 0);
  if (p->ev == EV_DONE) {
    lua_pushliteral(L, "done");
    return 1;
  }
  /* ended inside a message: whatever libhttp-parser said, it was cut short */
  if (e == HPE_OK || e == HPE_PAUSED) p->hp.http_errno = HPE_INVALID_EOF_STATE;
  return die(L, p);
}

/* p:reset([kind]) -> p */
static int p_reset(lua_State *L) {
  parser *p = check_parser(L, "parser:reset");
  enum http_parser_type type = lua_isnoneornil(L, 2) ? p->type : check_kind(L, 2, "parser:reset");
  parser_init(p, type);
  lua_settop(L, 1);
  return 1;
}

/* p:no_body() -> p: the next response has no body (it answers HEAD) */
static int p_no_body(lua_State *L) {
  parser *p = check_parser(L, "parser:no_body");
  if (p->type != HTTP_RESPONSE)
    return luaL_error(L, "parser:no_body: only a response parser skips bodies");
  p->no_body = 1;
  lua_settop(L, 1);
  return 1;
}

/* p:trailers() -> flat list of the trailers of the last chunked message
 * (empty if none), valid after its "done" */
static int p_trailers(lua_State *L) {
  parser *p = check_parser(L, "parser:trailers");
  if (!p->in_trailers || p->phase != IDLE) {
    lua_createtable(L, 0, 0);
    return 1;
  }
  push_fields(L, p);
  return 1;
}

static int p_gc(lua_State *L) {
  parser *p = luaL_testudata(L, 1, PARSER_MT);
  if (p) {
    free(p->buf);
    free(p->hdrs);
    free(p->pieces);
    p->buf = NULL;
    p->hdrs = NULL;
    p->pieces = NULL;
    p->bufcap = p->hcap = 0;
    p->pcap = 0;
    p->dead = 1;
    p->errcode = "EPROTO";
    snprintf(p->errmsg, sizeof p->errmsg, "http: the parser was finalised");
  }
  return 0;
}

static int p_tostring(lua_State *L) {
  parser *p = luaL_testudata(L, 1, PARSER_MT);
  if (!p)
    return luaL_error(L, "parser:__tostring: argument #1 must be a cfuture.http.Parser (got %s)",
                      luaL_typename(L, 1));
  static const char *const phases[] = {"idle", "head", "body"};
  lua_pushfstring(L, PARSER_MT "(%s, %s): %p", p->type == HTTP_REQUEST ? "request" : "response",
                  p->dead ? "failed" : phases[p->phase], (void *)p);
  return 1;
}

/* cf._http.report(err): report err as an error nobody awaited (to
 * cf.on_error's handler or stderr), naming the running task */
static int l_report(lua_State *L) {
  cf_runtime *rt = cfl_rt_named(L, "http.report");
  lua_settop(L, 1);
  cfl_task *t = rt->ex.current && rt->current ? (cfl_task *)rt->ex.current : NULL;
  cfl_report(rt, L, t);
  return 0;
}

static const luaL_Reg funcs[] = {{"parser", l_parser}, {"report", l_report}, {NULL, NULL}};
static const luaL_Reg methods[] = {{"execute", p_execute},   {"finish", p_finish},
                                   {"reset", p_reset},       {"no_body", p_no_body},
                                   {"trailers", p_trailers}, {NULL, NULL}};
static const luaL_Reg meta[] = {{"__gc", p_gc}, {"__tostring", p_tostring}, {NULL, NULL}};

static void open_http(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  lua_setfield(L, -2, "_http");
  cfl_new_class(L, rt, PARSER_MT, methods, meta);
  lua_pop(L, 1);
}

const cfl_module cfl_http_module = {.name = "http", .open = open_http};
