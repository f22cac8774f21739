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

#include "call.h"
#include "cfl.h"

/* ---- the job ------------------------------------------------------------------ */

typedef struct blocking_job {
  cfu_job job;
  cfl_call call;   /* the function, its arguments, then its results or error */
  cf_link running; /* in running_jobs while its run() runs */
} blocking_job;

/* A fresh state per call; a stop raises at every check (nothing to tidy up
 * for: the state goes with the call). */
static const cfl_call_kind blocking_call = {
    .name = "blocking",
    .hook_every = 10000,
    .sources = 0,
    .traceback = 0,
    .cache = 0,
    .stop_once = 0,
};

/* ---- the jobs running now, stopped when the process exits ----------------------
 * exit() (os.exit without closing the state) runs libuv's destructor, which
 * joins every pool thread: a job that never ends would hold the process
 * forever. This module's destructor runs before libuv's (it depends on
 * libuv): it asks every running job to stop, and any job that starts
 * later stops at once. */

static uv_once_t running_once = UV_ONCE_INIT;
static uv_mutex_t running_mu;
static cf_link running_jobs;
static atomic_int running_ready;
static int exiting; /* running_mu */

static void running_init(void) {
  if (uv_mutex_init(&running_mu) != 0) return;
  cf__list_init(&running_jobs);
  atomic_store(&running_ready, 1);
}

static int running_add(blocking_job *j) {
  uv_once(&running_once, running_init);
  if (!atomic_load(&running_ready)) return 0;
  uv_mutex_lock(&running_mu);
  cf__list_push_back(&running_jobs, &j->running);
  if (exiting) atomic_store(&j->job.cancel, 1);
  uv_mutex_unlock(&running_mu);
  return 1;
}

static void running_remove(blocking_job *j) {
  uv_mutex_lock(&running_mu);
  cf__list_remove(&j->running);
  uv_mutex_unlock(&running_mu);
}

__attribute__((destructor)) static void stop_jobs_at_exit(void) {
  if (!atomic_load(&running_ready)) return;
  uv_mutex_lock(&running_mu);
  exiting = 1;
  for (cf_link *l = running_jobs.next; l != &running_jobs; l = l->next)
    atomic_store(&cf__container_of(l, blocking_job, running)->job.cancel, 1);
  uv_mutex_unlock(&running_mu);
}

static void blocking_run(cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  int listed = running_add(j);
  lua_State *L = cfl_call_state(&blocking_call);
  if (L) {
    cfl_call_watch(&blocking_call, &j->job.cancel);
    cfl_call_run(L, &j->call, &blocking_call);
    lua_close(L);
    cfl_call_watch(NULL, NULL);
  } else
    job->err = UV_ENOMEM;
  if (listed) running_remove(j); /* before its after hook can free it */
}

static void blocking_free(cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  cfl_call_discard(&j->call);
  free(j);
}

static const cfu_job_vt blocking_vt = {blocking_run, NULL, blocking_free};

static int blocking_push(lua_State *L, cfu_job *job) {
  blocking_job *j = (blocking_job *)job;
  if (job->err) return cfl_push_ioerr(L, job->err, "blocking");
  return cfl_call_push(L, &j->call, &blocking_call);
}

static const cfl_job_kind blocking_kind = {"blocking", blocking_push, NULL, NULL};

/* cf.blocking(fn, ...) -> future of fn's results, computed on a pool thread */
static int l_blocking(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *what = cfl_call_badfn(L, 1, &blocking_call);
  if (what) return luaL_error(L, "blocking: argument #1 must be a Lua function (got %s)", what);
  blocking_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "blocking: out of memory");
  cfu_job_init(&j->job, &blocking_vt);
  char err[160];
  int bad = cfl_call_encode(L, &j->call, &blocking_call, 1, 2, lua_gettop(L), err);
  if (bad) {
    blocking_free(&j->job);
    if (bad == 1 && strstr(err, "captures"))
      return luaL_error(L,
                        "blocking: argument #1 must not capture local variables (%s: "
                        "pass values as arguments",
                        strchr(err, '(') + 1);
    return luaL_error(L, "blocking: argument #%d: %s", bad, err);
  }
  cfl_new_job(L, rt, &blocking_kind, &j->job);
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
  if (!rt || rt->closed) return -1;
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

static void open_blocking(lua_State *L) { cfl_setfuncs(L, cf_runtime_of(L), funcs); }

const cfl_module cfl_blocking_module = {.name = "blocking", .open = open_blocking};
