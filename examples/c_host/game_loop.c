/*
 * game_loop.c — a 60 Hz game loop in C that embeds Lua and cfuture. Each
 * frame it "updates and renders" (here: a little busy work), then steps
 * cfuture once, then sleeps until the next frame. Lua tasks animate with
 * cf.sleep and load a file in the background meanwhile; the loop reports
 * how steady its frames stayed.
 *
 *   build/c_host_game_loop [seconds] [script.lua]    (default 2 s, game.lua)
 *
 * Exit status 0 if the tasks finished within the frames run; the frame
 * report is for reading (this is a test too, and CI machines are loaded).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cfuture.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_until(double t_ms) {
  double d = t_ms - now_ms();
  if (d <= 0) return;
  struct timespec ts = {(time_t)(d / 1e3), (long)((d - (double)(time_t)(d / 1e3) * 1e3) * 1e6)};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  const char *script = argc > 2 ? argv[2] : "game.lua";
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "cfuture.core", luaopen_cfuture_core, 0);
  lua_pop(L, 1);
  if (luaL_dofile(L, script) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  cf_runtime *rt = cf_runtime_of(L);

  const double frame = 1000.0 / 60;
  int frames = (int)(seconds * 60), late = 0;
  double worst = 0, sum_step = 0, max_step = 0;
  double next = now_ms() + frame, prev = now_ms();
  for (int i = 0; i < frames; i++) {
    volatile double x = 0; /* update + render */
    for (int k = 0; k < 20000; k++)
      x += k * 0.5;
    double t0 = now_ms();
    cf_runtime_step(rt); /* never blocks: ready tasks, timers and I/O due now */
    double st = now_ms() - t0;
    sum_step += st;
    if (st > max_step) max_step = st;
    sleep_until(next);
    double t = now_ms(), jitter = t - prev - frame;
    if (i > 0 && (jitter > 4 || jitter < -4)) late++;
    if (i > 0 && (jitter > worst || -jitter > worst)) worst = jitter < 0 ? -jitter : jitter;
    prev = t;
    next += frame;
  }

  lua_getglobal(L, "report");
  int ok = lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  printf("frames %d, late (>4 ms off) %d, worst jitter %.2f ms, step mean %.3f ms max %.3f ms\n",
         frames, late, worst, sum_step / frames, max_step);
  lua_close(L);
  return ok ? 0 : 1;
}
