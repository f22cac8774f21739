/*
 * test_host.c — a C host that embeds Lua and cfuture: opens the module into
 * its own lua_State, exposes C work on the thread pool with
 * cf_push_blocking, drives the runtime with cf_runtime_step, and closes
 * the state with work still pending. Prints "N passed, N failed".
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cfuture.h"

#include "check.h"

/* ---- a C job: sum 1..n on the pool ------------------------------------------ */

typedef struct sum_job {
  long long n, result;
} sum_job;

static int released;

static void sum_run(void *arg) {
  sum_job *j = arg;
  long long s = 0;
  for (long long i = 1; i <= j->n; i++)
    s += i;
  j->result = s;
}

static int sum_push(lua_State *L, void *arg) {
  sum_job *j = arg;
  if (j->n < 0) {
    lua_pushliteral(L, "csum: negative count");
    return -1;
  }
  lua_pushinteger(L, j->result);
  return 1;
}

static void sum_release(void *arg) {
  released++;
  free(arg);
}

/* csum(n) -> future of 1 + 2 + ... + n, computed on libuv's thread pool */
static int l_csum(lua_State *L) {
  sum_job *j = malloc(sizeof *j);
  j->n = luaL_checkinteger(L, 1);
  j->result = 0;
  if (cf_push_blocking(L, sum_run, sum_push, sum_release, j) != 0) {
    free(j);
    return luaL_error(L, "csum: no cfuture runtime");
  }
  return 1;
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "cfuture.core", luaopen_cfuture_core, 0);
  lua_pop(L, 1);
  lua_register(L, "csum", l_csum);
  return L;
}

static int run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int main(void) {
  /* awaiting C work from Lua, with block_on */
  lua_State *L = new_state();
  CHECK(cf_runtime_of(L) != NULL);
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "local a, b = cf.block_on(function()\n"
               "  return cf.join(csum(1000), csum(100000)):await()\n"
               "end)\n"
               "assert(a == 500500 and b == 5000050000, tostring(a) .. ' ' .. tostring(b))\n"
               "local ok, err = pcall(cf.block_on, csum(-1))\n"
               "assert(not ok and err:find('csum: negative count'), err)\n") == 0);
  CHECK(released == 3);

  /* the host's own loop: step until the task is done, never blocking */
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "result = nil\n"
               "cf.spawn(function() cf.sleep(20):await(); result = csum(10):await() end)\n") == 0);
  cf_runtime *rt = cf_runtime_of(L);
  int steps = 0;
  while (cf_runtime_step(rt) && steps < 1000000)
    steps++;
  lua_getglobal(L, "result");
  CHECK(lua_tointeger(L, -1) == 55);
  lua_pop(L, 1);
  CHECK(released == 4);

  /* folding into the host's own poll(): sleep on the backend fd with the
   * backend timeout; a 50 ms sleep takes a handful of steps, not a spin */
  CHECK(cf_runtime_backend_fd(rt) >= 0);
  CHECK(cf_runtime_backend_timeout(rt) == -1); /* nothing to wait for */
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "done = false\n"
               "cf.spawn(function() cf.sleep(50):await(); done = true end)\n") == 0);
  CHECK(cf_runtime_backend_timeout(rt) == 0); /* the new task is ready */
  cf_runtime_step(rt);
  int t = cf_runtime_backend_timeout(rt);
  CHECK(t >= 40 && t <= 51);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int polls = 0;
  for (;;) {
    lua_getglobal(L, "done");
    int finished = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (finished || polls > 100) break;
    struct pollfd pfd = {cf_runtime_backend_fd(rt), POLLIN, 0};
    poll(&pfd, 1, cf_runtime_backend_timeout(rt));
    cf_runtime_step(rt);
    polls++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  CHECK(polls >= 1 && polls <= 10);
  CHECK(ms >= 40 && ms < 1000);
  CHECK(cf_runtime_backend_timeout(rt) == -1);

  /* dropped work: a cancelled job is released once it has run */
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "local r = cf.block_on(cf.select(cf.yield_now(), csum(50000000)))\n"
               "assert(r == 1)\n") == 0);
  lua_close(L); /* waits for the running job, then releases it */
  CHECK(released == 5);

  /* closing the host state with a job pending, never awaited */
  L = new_state();
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "cf.spawn(function() csum(1000000):await() end)\n"
               "cf.step()\n") == 0);
  lua_close(L);
  CHECK(released == 6);

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
