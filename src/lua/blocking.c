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
#include "copy.h"

/* ---- the job ------------------------------------------------------------------ */

typedef struct blocking_job {
  cfu_job job;
  cfl_buf code; /* the function (encoded) */
  cfl_buf args; /* encoded arguments, then the encoded results */
  int nargs;
  int nres;
  int failed; /* the results buffer holds an error message */
} blocking_job;

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
  cfl_hookable_state(L);
  lua_sethook(L, cancel_hook, LUA_MASKCOUNT, 10000);
  size_t pos = 0;
  int st = cfl_decode(L, j->code.p, j->code.len, &pos) ? LUA_ERRRUN : LUA_OK;
  if (st != LUA_OK) lua_pushliteral(L, "blocking: cannot load the function");
  pos = 0;
  for (int i = 0; st == LUA_OK && i < j->nargs; i++)
    if (cfl_decode(L, j->args.p, j->args.len, &pos)) {
      lua_pushliteral(L, "blocking: corrupt arguments");
      st = LUA_ERRRUN;
    }
  if (st == LUA_OK) st = lua_pcall(L, j->nargs, LUA_MULTRET, 0);
  cfl_buf_discard(&j->args); /* the arguments were decoded (or are dropped) */
  if (st == LUA_OK) {
    j->nres = lua_gettop(L);
    char err[160];
    for (int i = 1; i <= j->nres; i++)
      if (cfl_encode(L, i, &j->args, err)) {
        cfl_buf_discard(&j->args);
        lua_pushfstring(L, "blocking: result #%d: %s", i, err);
        st = LUA_ERRRUN;
        break;
      }
  }
  if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "blocking: error object is not a string";
    j->failed = 1;
    cfl_buf_put(&j->args, msg, strlen(msg));
  }
  lua_close(L);
}

static void blocking_free(cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  cfl_buf_discard(&j->code);
  if (j->failed) j->args.len = 0; /* a message, not values */
  cfl_buf_discard(&j->args);
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
    if (cfl_decode(L, j->args.p, j->args.len, &pos)) {
      lua_pushliteral(L, "blocking: corrupt results");
      return -1;
    }
  j->args.len = 0; /* decoded: the channels it held belong to Lua now */
  return j->nres;
}

static const cfl_job_kind blocking_kind = {"blocking", blocking_push, NULL, NULL};

/* cf.blocking(fn, ...) -> future of fn's results, computed on a pool thread */
static int l_blocking(lua_State *L) {
  if (lua_type(L, 1) != LUA_TFUNCTION || lua_iscfunction(L, 1))
    return luaL_error(L, "blocking: argument #1 must be a Lua function (got %s)",
                      lua_iscfunction(L, 1) ? "a C function" : luaL_typename(L, 1));
  int nargs = lua_gettop(L) - 1;
  blocking_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "blocking: out of memory");
  cfu_job_init(&j->job, &blocking_vt);
  j->nargs = nargs;
  char err[160];
  int bad = 0;
  if (cfl_encode(L, 1, &j->code, err))
    bad = 1;
  else
    for (int i = 2; !bad && i <= nargs + 1; i++)
      if (cfl_encode(L, i, &j->args, err)) bad = i;
  if (bad) {
    blocking_free(&j->job);
    if (bad == 1 && strstr(err, "captures"))
      return luaL_error(L,
                        "blocking: argument #1 must not capture local variables (%s: "
                        "pass values as arguments",
                        strchr(err, '(') + 1);
    return luaL_error(L, "blocking: argument #%d: %s", bad, err);
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
