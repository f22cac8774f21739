/*
 * step.c — the cost of cf_runtime_step for a host that steps cfuture once
 * per frame, next to the floor: a bare uv_run(UV_RUN_NOWAIT) in the same
 * process (what ../shared/bench/floor/uv_nowait.c measures).
 *
 *   idle     no task at all: what every frame pays when nothing is going on
 *   timer    one task asleep for an hour: the step must poll (epoll_wait(0))
 *   ready    1000 tasks that yield and are ready again at once: a step
 *            runs its budget of polls (prints how many)
 *
 * Run: build/bench_step [M]   (M idle/timer steps, default 2,000,000)
 * Prints one line per case with ns per step and the ratio to the floor.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "cfuture.h"

static double ns_since(uint64_t t0, long n) { return (double)(uv_hrtime() - t0) / (double)n; }

static void never(uv_timer_t *t) { (void)t; } /* due in an hour */

static double floor_ns(int with_timer, long m) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_t t;
  if (with_timer) {
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, never, 3600 * 1000, 0);
  }
  uint64_t t0 = uv_hrtime();
  for (long i = 0; i < m; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  double ns = ns_since(t0, m);
  if (with_timer) uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return ns;
}

static void lua_do(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    exit(1);
  }
}

static double best(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv) {
  long m = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "cfuture.core", luaopen_cfuture_core, 0);
  lua_pop(L, 1);
  cf_runtime *rt = cf_runtime_of(L);
  double idle = 1e9, timer = 1e9, ready = 1e9, f_empty = 1e9, f_timer = 1e9, polls_per_step = 0;

  for (int round = 0; round < 3; round++) {
    f_empty = best(f_empty, floor_ns(0, m));
    f_timer = best(f_timer, floor_ns(1, m));

    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < m; i++)
      cf_runtime_step(rt);
    idle = best(idle, ns_since(t0, m));

    lua_do(L, "local cf = require 'cfuture.core'\n"
              "sleeper = cf.spawn(function() cf.sleep(3600 * 1000):await() end)\n"
              "cf.step()\n");
    t0 = uv_hrtime();
    for (long i = 0; i < m; i++)
      cf_runtime_step(rt);
    timer = best(timer, ns_since(t0, m));
    lua_do(L, "sleeper:abort() sleeper = nil require('cfuture.core').step()\n");

    lua_do(L, "local cf = require 'cfuture.core'\n"
              "stop, polls = false, 0\n"
              "for i = 1, 1000 do\n"
              "  cf.spawn(function()\n"
              "    while not stop do polls = polls + 1; cf.yield_now():await() end\n"
              "  end)\n"
              "end\n"
              "cf.step()\n");
    long steps = m / 2000 + 1;
    lua_do(L, "polls = 0");
    t0 = uv_hrtime();
    for (long i = 0; i < steps; i++)
      cf_runtime_step(rt);
    ready = best(ready, ns_since(t0, steps));
    lua_getglobal(L, "polls");
    polls_per_step = (double)lua_tointeger(L, -1) / (double)steps;
    lua_pop(L, 1);
    lua_do(L, "stop = true require('cfuture.core').run()\n");
  }
  printf("step idle   %8.1f ns/step   floor (uv_run NOWAIT, no handle) %6.1f ns   ratio %.2f\n",
         idle, f_empty, idle / f_empty);
  printf("step timer  %8.1f ns/step   floor (uv_run NOWAIT, a timer)   %6.1f ns   ratio %.2f\n",
         timer, f_timer, timer / f_timer);
  printf("step ready  %8.1f ns/step   (1000 ready tasks; %.0f polls per step, %.1f ns per poll)\n",
         ready, polls_per_step, ready / polls_per_step);
  lua_close(L);
  return 0;
}
