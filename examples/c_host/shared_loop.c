/*
 * shared_loop.c — a host that owns its libuv loop and lets cfuture share
 * it: the host's own timer ticks while Lua tasks sleep and compute on the
 * same loop; the host only ever calls uv_run.
 *
 *   build/c_host_shared_loop
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "cfuture.h"

static int ticks;

static void on_tick(uv_timer_t *t) {
  lua_State *L = t->data;
  ticks++;
  lua_getglobal(L, "finished");
  int done = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (done) uv_timer_stop(t); /* the host's part ends with the Lua side */
}

int main(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (cf_runtime_open(L, &loop) != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_pop(L, 1);
  if (luaL_dostring(L, "local cf = require 'cfuture.core'\n"
                       "finished = false\n"
                       "cf.spawn(function()\n"
                       "  local t0 = cf.now()\n"
                       "  local a, b = cf.join(\n"
                       "    function() cf.sleep(100):await(); return 'slept' end,\n"
                       "    cf.blocking(function(n) local s = 0 for i = 1, n do s = s + i end "
                       "return s end, 1e6)):await()\n"
                       "  print(('tasks: %s, %d, after %.0f ms'):format(a, b, cf.now() - t0))\n"
                       "  finished = true\n"
                       "end)\n") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  tick.data = L;
  uv_timer_start(&tick, on_tick, 10, 10);
  uv_run(&loop, UV_RUN_DEFAULT); /* runs the host's timer and cfuture's tasks */
  printf("host timer ticked %d times meanwhile\n", ticks);
  lua_close(L);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_NOWAIT); /* cfuture's handles finish closing */
  int rc = uv_loop_close(&loop);
  printf("loop closed: %s\n", rc == 0 ? "clean" : uv_strerror(rc));
  return rc == 0 && ticks >= 5 ? 0 : 1;
}
