/*
 * blocking.c — work on libuv's thread pool, from Lua and from C hosts.
 *
 * cf.blocking(fn, ...) runs a self-contained Lua function in a fresh Lua
 * state on a pool thread: the function travels as bytecode (so it may not
 * capture upvalues), its arguments and results are copied (nil, booleans,
 * numbers, strings and tables of them). A blocking call that is cancelled
 * stops at its next instruction-count hook, freeing the pool thread.
 *
 * cf_push_blocking is the same mechanism for C: a host's function runs on
 * the pool and Lua awaits it like any future.
 */
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "cfl.h"

/* ---- copying values between states ------------------------------------------ */

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static int put(buf *b, const void *data, size_t n) {
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

/* Append the value at idx; on failure return a static message. */
static const char *encode(lua_State *L, int idx, buf *b, int depth) {
  idx = lua_absindex(L, idx);
  char tag;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: tag = 'n'; return put(b, &tag, 1) ? "out of memory" : NULL;
  case LUA_TBOOLEAN:
    tag = lua_toboolean(L, idx) ? 't' : 'f';
    return put(b, &tag, 1) ? "out of memory" : NULL;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      tag = 'i';
      return put(b, &tag, 1) || put(b, &i, sizeof i) ? "out of memory" : NULL;
    } else {
      lua_Number d = lua_tonumber(L, idx);
      tag = 'd';
      return put(b, &tag, 1) || put(b, &d, sizeof d) ? "out of memory" : NULL;
    }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    tag = 's';
    return put(b, &tag, 1) || put(b, &n, sizeof n) || put(b, s, n) ? "out of memory" : NULL;
  }
  case LUA_TTABLE: {
    if (depth >= MAX_DEPTH) return "tables nested too deeply (or a cycle)";
    if (!lua_checkstack(L, 3)) return "stack overflow";
    tag = '{';
    if (put(b, &tag, 1)) return "out of memory";
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      const char *e = encode(L, -2, b, depth + 1);
      if (!e) e = encode(L, -1, b, depth + 1);
      if (e) {
        lua_pop(L, 2);
        return e;
      }
      lua_pop(L, 1);
    }
    tag = '}';
    return put(b, &tag, 1) ? "out of memory" : NULL;
  }
  default: return NULL; /* the caller names the type */
  }
}

static int copyable(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING ||
         t == LUA_TTABLE;
}

/* Check a table's contents are copyable; return the bad type or NULL. */
static const char *bad_type(lua_State *L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  if (!copyable(L, idx)) return luaL_typename(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || depth >= MAX_DEPTH || !lua_checkstack(L, 3)) return NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *t = bad_type(L, -2, depth + 1);
    if (!t) t = bad_type(L, -1, depth + 1);
    if (t) {
      lua_pop(L, 2);
      return t;
    }
    lua_pop(L, 1);
  }
  return NULL;
}

/* Push the value at *pos; 0 on success. */
static int decode(lua_State *L, const char *p, size_t len, size_t *pos) {
  if (*pos >= len || !lua_checkstack(L, 3)) return -1;
  char tag = p[(*pos)++];
  switch (tag) {
  case 'n': lua_pushnil(L); return 0;
  case 't': lua_pushboolean(L, 1); return 0;
  case 'f': lua_pushboolean(L, 0); return 0;
  case 'i': {
    lua_Integer i;
    memcpy(&i, p + *pos, sizeof i);
    *pos += sizeof i;
    lua_pushinteger(L, i);
    return 0;
  }
  case 'd': {
    lua_Number d;
    memcpy(&d, p + *pos, sizeof d);
    *pos += sizeof d;
    lua_pushnumber(L, d);
    return 0;
  }
  case 's': {
    size_t n;
    memcpy(&n, p + *pos, sizeof n);
    *pos += sizeof n;
    lua_pushlstring(L, p + *pos, n);
    *pos += n;
    return 0;
  }
  case '{':
    lua_newtable(L);
    while (*pos < len && p[*pos] != '}') {
      if (decode(L, p, len, pos) || decode(L, p, len, pos)) return -1;
      lua_rawset(L, -3);
    }
    (*pos)++;
    return 0;
  default: return -1;
  }
}

/* ---- the job ------------------------------------------------------------------ */

typedef struct blocking_job {
  cfu_job job;
  buf code; /* the function's bytecode */
  buf args; /* encoded arguments, then the encoded results */
  int nargs;
  int nres;
  int failed; /* the results buffer holds an error message */
} blocking_job;

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return put(ud, p, n);
}

static void cancel_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  blocking_job *j;
  lua_getfield(L, LUA_REGISTRYINDEX, "cfuture.job");
  j = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (j && atomic_load(&j->job.cancel)) luaL_error(L, "cancelled");
}

static void blocking_run(cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  lua_State *L = luaL_newstate();
  if (!L) {
    job->err = UV_ENOMEM;
    return;
  }
  luaL_openlibs(L);
  lua_pushlightuserdata(L, j);
  lua_setfield(L, LUA_REGISTRYINDEX, "cfuture.job");
  lua_sethook(L, cancel_hook, LUA_MASKCOUNT, 10000);
  int st = luaL_loadbufferx(L, j->code.p, j->code.len, "=blocking", "b");
  size_t pos = 0;
  for (int i = 0; st == LUA_OK && i < j->nargs; i++)
    if (decode(L, j->args.p, j->args.len, &pos)) {
      lua_pushliteral(L, "blocking: corrupt arguments");
      st = LUA_ERRRUN;
    }
  if (st == LUA_OK) st = lua_pcall(L, j->nargs, LUA_MULTRET, 0);
  j->args.len = 0;
  if (st == LUA_OK) {
    j->nres = lua_gettop(L);
    for (int i = 1; i <= j->nres; i++) {
      const char *bad = bad_type(L, i, 0);
      const char *e = bad ? "" : encode(L, i, &j->args, 0);
      if (bad || e) {
        j->args.len = 0;
        lua_pushfstring(L, "blocking: result #%d: %s%s", i, bad ? "cannot copy a " : e,
                        bad ? bad : "");
        st = LUA_ERRRUN;
        break;
      }
    }
  }
  if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "blocking: error object is not a string";
    j->failed = 1;
    put(&j->args, msg, strlen(msg));
  }
  lua_close(L);
}

static void blocking_free(cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  free(j->code.p);
  free(j->args.p);
  free(j);
}

static const cfu_job_vt blocking_vt = {blocking_run, NULL, blocking_free};

static int blocking_push(lua_State *L, cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  if (job->err) return cfl_push_ioerr(L, job->err, "blocking");
  if (j->failed) {
    lua_pushlstring(L, j->args.p, j->args.len);
    return -1;
  }
  size_t pos = 0;
  luaL_checkstack(L, j->nres, "too many results");
  for (int i = 0; i < j->nres; i++)
    if (decode(L, j->args.p, j->args.len, &pos)) {
      lua_pushliteral(L, "blocking: corrupt results");
      return -1;
    }
  return j->nres;
}

static const cfl_job_kind blocking_kind = {"blocking", blocking_push, NULL, NULL};

/* cf.blocking(fn, ...) -> future of fn's results, computed on a pool thread */
static int l_blocking(lua_State *L) {
  if (lua_type(L, 1) != LUA_TFUNCTION || lua_iscfunction(L, 1))
    return luaL_error(L, "blocking: argument #1 must be a Lua function (got %s)",
                      lua_iscfunction(L, 1) ? "a C function" : luaL_typename(L, 1));
  const char *up;
  for (int i = 1; (up = lua_getupvalue(L, 1, i)); i++) {
    lua_pop(L, 1);
    if (strcmp(up, "_ENV") != 0)
      return luaL_error(L,
                        "blocking: argument #1 must not capture local variables (it uses '%s'): "
                        "pass values as arguments",
                        up);
  }
  int nargs = lua_gettop(L) - 1;
  for (int i = 2; i <= nargs + 1; i++) {
    const char *bad = bad_type(L, i, 0);
    if (bad)
      return luaL_error(L, "blocking: argument #%d: cannot copy a %s to another Lua state", i, bad);
  }
  blocking_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "blocking: out of memory");
  cfu_job_init(&j->job, &blocking_vt);
  j->nargs = nargs;
  lua_pushvalue(L, 1);
  int bad = lua_dump(L, writer, &j->code, 0);
  lua_pop(L, 1);
  const char *e = bad ? "out of memory" : NULL;
  for (int i = 2; !e && i <= nargs + 1; i++)
    e = encode(L, i, &j->args, 0);
  if (e) {
    blocking_free(&j->job);
    return luaL_error(L, "blocking: %s", e);
  }
  cfl_new_job(L, cfl_rt(L), &blocking_kind, &j->job);
  return 1;
}

/* ---- the C host API ------------------------------------------------------------- */

typedef struct host_job {
  cfu_job job;
  void (*run)(void *arg);
  int (*push)(struct lua_State *L, void *arg);
  void (*release)(void *arg);
  void *arg;
} host_job;

static void host_run(cfu_job *job) {
  host_job *j = (host_job *)job;
  j->run(j->arg);
}

static void host_free(cfu_job *job) {
  host_job *j = (host_job *)job;
  if (j->release) j->release(j->arg);
  free(j);
}

static const cfu_job_vt host_vt = {host_run, NULL, host_free};

static int host_push(lua_State *L, cfu_job *job) {
  host_job *j = (host_job *)job;
  if (job->err) return cfl_push_ioerr(L, job->err, "blocking");
  return j->push(L, j->arg);
}

static const cfl_job_kind host_kind = {"blocking (C)", host_push, NULL, NULL};

int cf_push_blocking(lua_State *L, void (*run)(void *arg), int (*push)(lua_State *L, void *arg),
                     void (*release)(void *arg), void *arg) {
  cf_runtime *rt = cf_runtime_of(L);
  if (!rt) return -1;
  host_job *j = calloc(1, sizeof *j);
  if (!j) return -1;
  cfu_job_init(&j->job, &host_vt);
  j->run = run;
  j->push = push;
  j->release = release;
  j->arg = arg;
  cfl_new_job(L, rt, &host_kind, &j->job);
  return 0;
}

static const luaL_Reg funcs[] = {{"blocking", l_blocking}, {NULL, NULL}};

void cfl_open_blocking(lua_State *L) { cfl_setfuncs(L, cf_runtime_of(L), funcs); }
