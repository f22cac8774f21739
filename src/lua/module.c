/*
 * module.c — the module: which subsystems make it up, opening them into one
 * runtime, and closing the runtime.
 *
 * Ground rules
 * - One runtime per Lua state, created by the first require and closed by
 *   the finaliser of a guard object anchored in the registry. The guard is
 *   created before any future, so lua_close finalises it after them.
 * - A subsystem is a module record (cfl_module): it opens into the module
 *   table and may have hooks after each executor run and at close. This
 *   file lists them; nothing else names a subsystem.
 * - Close order: every task is cancelled (while Lua can still run), the
 *   subsystems close in reverse order, the loop runs its last callbacks,
 *   then the subsystems release what those callbacks used.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

static const char MODULE_KEY = 'm'; /* registry[&MODULE_KEY] = module table */

/* In open order; each closes in the reverse. */
extern const cfl_module cfl_drive_module, cfl_report_module, cfl_future_module, cfl_coro_module,
    cfl_task_module, cfl_combinators_module, cfl_timer_module, cfl_custom_module, cfl_scope_module,
    cfl_introspect_module, cfl_sync_module, cfl_channel_module, cfl_fs_module, cfl_stream_module,
    cfl_net_module, cfl_udp_module, cfl_dns_module, cfl_process_module, cfl_signal_module,
    cfl_blocking_module, cfl_thread_module, cfl_trace_module, cfl_tls_module, cfl_crypto_module,
    cfl_taskset_module, cfl_http_module, cfl_zlib_module, cfl_ws_module;

static const cfl_module *const modules[] = {&cfl_drive_module,
                                            &cfl_report_module,
                                            &cfl_future_module,
                                            &cfl_coro_module,
                                            &cfl_task_module,
                                            &cfl_combinators_module,
                                            &cfl_timer_module,
                                            &cfl_custom_module,
                                            &cfl_scope_module,
                                            &cfl_taskset_module,
                                            &cfl_introspect_module,
                                            &cfl_sync_module,
                                            &cfl_channel_module,
                                            &cfl_fs_module,
                                            &cfl_stream_module,
                                            &cfl_net_module,
                                            &cfl_udp_module,
                                            &cfl_dns_module,
                                            &cfl_process_module,
                                            &cfl_signal_module,
                                            &cfl_blocking_module,
                                            &cfl_thread_module,
                                            &cfl_trace_module,
                                            &cfl_tls_module,
                                            &cfl_crypto_module,
                                            &cfl_http_module,
                                            &cfl_zlib_module,
                                            &cfl_ws_module,
                                            NULL};

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void free_handle(uv_handle_t *h) { free(h); }

/* The runtime lives in its guard's userdata: Lua frees it only after every
 * finaliser of lua_close has run, so a finaliser that runs after this one
 * (an object made before require "cfuture") still finds rt->closed set and
 * gets an error instead of freed memory. */
static int guard_gc(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, 1);
  if (!rt->opened || rt->closed) return 0;
  /* cancel first, while Lua can still run: <close> handlers of every task
   * run and errors are reported; only then refuse new work */
  rt->in_run = 1;
  cf_executor_cancel_all(&rt->ex);
  cfl_flush_reports(rt);
  rt->closing = 1;
  size_t n = 0;
  while (modules[n])
    n++;
  for (size_t i = n; i-- > 0;)
    if (modules[i]->close) modules[i]->close(rt);
  cfu_timers_close(&rt->timers);
  cfu_handle_close_all(&rt->io);
  if (rt->kick) uv_close((uv_handle_t *)rt->kick, free_handle);
  if (rt->loop == &rt->own_loop) {
    uv_run(rt->loop, UV_RUN_NOWAIT);
    uv_walk(rt->loop, close_walk, NULL);
    uv_run(rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(rt->loop);
  }
  /* on a host's loop, the host's next iteration runs the close callbacks;
   * they free only their own memory, never the runtime */
  for (size_t i = n; i-- > 0;)
    if (modules[i]->release) modules[i]->release(rt);
  rt->closed = 1;
  return 0;
}

static int new_ref_table(lua_State *L) {
  lua_newtable(L);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int open_module(lua_State *L, uv_loop_t *host_loop);

int luaopen_cfuture_core(lua_State *L) { return open_module(L, NULL); }

static int open_on_loop(lua_State *L) {
  uv_loop_t *loop = lua_touserdata(L, 1);
  lua_settop(L, 0);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, 1, "cfuture.core");
  if (lua_toboolean(L, -1) || lua_rawgetp(L, LUA_REGISTRYINDEX, &MODULE_KEY) != LUA_TNIL)
    return luaL_error(L, "cf_runtime_open: cfuture is already open in this Lua state");
  lua_settop(L, 1);
  open_module(L, loop);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "cfuture.core");
  return 1;
}

int cf_runtime_open(lua_State *L, uv_loop_t *loop) {
  lua_pushcfunction(L, open_on_loop);
  lua_pushlightuserdata(L, loop);
  return lua_pcall(L, 1, 1, 0) == LUA_OK ? 0 : -1;
}

/* Code of this library can run after the Lua state unloaded it: LuaJIT
 * unloads C modules before other finalisers run, so a finaliser of an object
 * made before require "cfuture" that calls a cfuture function (which must
 * then raise "the runtime is closed") would jump into unmapped code; on a
 * host's loop, cfuture's close callbacks run from the host's next uv_run
 * (luv's loop finaliser, for one). Keep it mapped for the process's life;
 * for a host that links cfuture in, this is a no-op. */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)luaopen_cfuture_core, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* SIGPIPE: libuv writes with write(2), so a write to a reader that has gone
 * (a reset peer, an exited child's stdin) raises SIGPIPE, whose default
 * action kills the process before the write can return EPIPE. Like Node and
 * luvit, ignore it, so that every such write returns nil, message, "EPIPE";
 * but only if it still has its default action: a host that installed a
 * handler (or ignores it already) keeps what it chose. Children started by
 * cf.process get the default back (libuv resets signals in the child). */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) return;
  if (sa.sa_flags & SA_SIGINFO) return; /* a sa_sigaction handler */
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGPIPE, &sa, NULL);
}

/* The wake was seen (the step that follows runs the work): the handle no
 * longer keeps the loop alive. */
static void on_wakeup(uv_async_t *a) { uv_unref((uv_handle_t *)a); }

static int open_module(lua_State *L, uv_loop_t *host_loop) {
  /* A second require in the same state returns the same module. */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MODULE_KEY);
  if (lua_istable(L, -1)) return 1;
  lua_pop(L, 1);

  ignore_sigpipe();
  cf_runtime *rt = lua_newuserdatauv(L, sizeof *rt, 0);
  memset(rt, 0, sizeof *rt);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, guard_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "cfuture.Runtime");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cfl_runtime_key);

  cf_executor_init(&rt->ex, rt);
  rt->loop = host_loop ? host_loop : &rt->own_loop;
  cf__list_init(&rt->io);
  if (!host_loop && uv_loop_init(rt->loop) != 0)
    return luaL_error(L, "cfuture: cannot initialise the libuv loop");
  if (!host_loop && uv_async_init(rt->loop, &rt->wakeup, on_wakeup) == 0) {
    uv_unref((uv_handle_t *)&rt->wakeup); /* never keeps the loop alive by itself */
    rt->has_wakeup = 1;
  }
  pin_library();
  if (host_loop) {
    rt->kick = malloc(sizeof *rt->kick);
    if (!rt->kick) return luaL_error(L, "cfuture: out of memory");
    uv_idle_init(rt->loop, rt->kick);
    rt->kick->data = rt;
  }
  if (cfu_timers_init(&rt->timers, rt->loop) != 0) return luaL_error(L, "cfuture: out of memory");
  cfl_push_mainthread(L);
  rt->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  rt->caller = rt->L;
  rt->S = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  rt->anchors = new_ref_table(L);
  rt->coro_cache.ref = new_ref_table(L);
  rt->modules = modules;

  /* module table; every function gets upvalues (runtime, future methods) */
  lua_newtable(L);
  int module = lua_gettop(L);
  lua_newtable(L);
  rt->ref.methods = luaL_ref(L, LUA_REGISTRYINDEX);
  for (size_t i = 0; modules[i]; i++) {
    lua_settop(L, module);
    modules[i]->open(L);
  }
  lua_settop(L, module);
  lua_pushliteral(L, CFUTURE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_settop(L, module);
  lua_pushvalue(L, module);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MODULE_KEY);
  rt->opened = 1;
  return 1;
}
