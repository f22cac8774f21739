/*
 * runtime.c — the runtime object: module open and close, block_on, run,
 * step, and the reporting of errors nobody awaited.
 *
 * Ground rules
 * - One runtime per Lua state, created by the first require and closed by
 *   the finaliser of a guard object anchored in the registry. The guard is
 *   created before any future, so lua_close finalises it after them.
 * - Loop driving (block_on, run, step) is not re-entrant: it refuses to run
 *   from inside a task or from inside another drive.
 * - Lua errors never cross uv_run: callbacks only store and wake.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../uv/fs.h"
#include "cfl.h"

static const char RT_KEY = 'r';     /* registry[&RT_KEY] = runtime guard */
static const char MODULE_KEY = 'm'; /* registry[&MODULE_KEY] = module table */

lua_State *cfl_from(cf_runtime *rt) { return rt->current ? rt->current->co : rt->driver; }

/* ---- error reports ----------------------------------------------------- */

void cfl_report(cf_runtime *rt, lua_State *from, cfl_task *t) {
  lua_State *S = rt->S;
  lua_xmove(from, S, 1);
  lua_rawgeti(S, LUA_REGISTRYINDEX, rt->reports);
  lua_createtable(S, 0, 3);
  lua_pushvalue(S, -3);
  lua_setfield(S, -2, "error");
  if (t) {
    lua_pushinteger(S, (lua_Integer)t->base.id);
    lua_setfield(S, -2, "id");
    if (cfl_task_name(t)) {
      lua_pushstring(S, cfl_task_name(t));
      lua_setfield(S, -2, "name");
    }
  }
  lua_rawseti(S, -2, ++rt->nreports);
  lua_pop(S, 2);
}

/* The error as text for stderr: its __tostring may raise or return a
 * non-string, so it runs protected and a failure is described instead. */
static int tostring_p(lua_State *S) {
  luaL_tolstring(S, 1, NULL);
  return 1;
}

static const char *report_text(lua_State *S, int idx) {
  idx = lua_absindex(S, idx);
  lua_pushcfunction(S, tostring_p);
  lua_pushvalue(S, idx);
  if (lua_pcall(S, 1, 1, 0) == LUA_OK) return lua_tostring(S, -1);
  const char *why = lua_type(S, -1) == LUA_TSTRING ? lua_tostring(S, -1) : "(not a string)";
  return lua_pushfstring(S, "(a %s value whose __tostring raised: %s)", luaL_typename(S, idx), why);
}

static void print_report(lua_State *S, int entry) {
  lua_getfield(S, entry, "id");
  lua_getfield(S, entry, "name");
  lua_getfield(S, entry, "error");
  const char *err = report_text(S, -1);
  if (lua_isnil(S, -4))
    fprintf(stderr, "cfuture: error in a future nobody awaited:\n%s\n", err);
  else if (lua_isnil(S, -3))
    fprintf(stderr, "cfuture: task %lld failed and nobody awaited it:\n%s\n",
            (long long)lua_tointeger(S, -4), err);
  else
    fprintf(stderr, "cfuture: task %lld (%s) failed and nobody awaited it:\n%s\n",
            (long long)lua_tointeger(S, -4), lua_tostring(S, -3), err);
  fflush(stderr);
  lua_settop(S, entry);
}

void cfl_flush_reports(cf_runtime *rt) {
  lua_State *S = rt->S;
  while (rt->nreports > 0) {
    lua_rawgeti(S, LUA_REGISTRYINDEX, rt->reports);
    int n = rt->nreports;
    /* swap in a fresh list first: a handler may cause new reports */
    lua_newtable(S);
    lua_rawseti(S, LUA_REGISTRYINDEX, rt->reports);
    rt->nreports = 0;
    int list = lua_gettop(S);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(S, list, i);
      int entry = lua_gettop(S);
      if (rt->handler != LUA_NOREF) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, rt->handler);
        lua_getfield(S, entry, "error");
        lua_pushvalue(S, entry);
        if (lua_pcall(S, 2, 0, 0) != LUA_OK) {
          fprintf(stderr, "cfuture: error in the on_error handler: %s\n", report_text(S, -1));
          lua_settop(S, entry);
          print_report(S, entry);
        }
      } else {
        print_report(S, entry);
      }
      lua_settop(S, list);
    }
    lua_settop(S, list - 1);
  }
}

/* cf.on_error(handler|nil) -> previous handler */
static int l_on_error(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (rt->handler != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->handler);
  else
    lua_pushnil(L);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->handler);
  rt->handler = LUA_NOREF;
  if (!lua_isnil(L, 1)) {
    lua_pushvalue(L, 1);
    rt->handler = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

/* ---- cancellation errors ----------------------------------------------- */

void cfl_push_cancelled(lua_State *L, cf_runtime *rt, const char *what) {
  lua_createtable(L, 0, 2);
  lua_pushfstring(L, "cancelled: %s", what);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "cancelled");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->cancelled_mt);
  lua_setmetatable(L, -2);
}

static int cancelled_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

/* cf.is_cancelled(err) -> boolean */
static int l_is_cancelled(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int r = 0;
  if (lua_getmetatable(L, 1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->cancelled_mt);
    r = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, r);
  return 1;
}

/* ---- driving the loop ---------------------------------------------------- */

static size_t run_ready(cf_runtime *rt, size_t budget);

/* A driver (block_on, run, step, the kick below) runs tasks from thread L.
 * Leaving, it hands tasks still ready to the kick: a driver may stop with
 * some left (its future finished, or its poll budget ran out), and on a
 * host's loop nothing else would run them until another wake. */
static lua_State *drive_enter(cf_runtime *rt, lua_State *L) {
  lua_State *prev = rt->driver;
  rt->in_run = 1;
  rt->driver = L;
  return prev;
}

static void on_kick(uv_idle_t *h);

static void drive_leave(cf_runtime *rt, lua_State *prev) {
  rt->in_run = 0;
  rt->driver = prev;
  if (rt->kick && !rt->closing && cf_executor_has_ready(&rt->ex))
    uv_idle_start(rt->kick, on_kick); /* no-op if already active */
}

/* On a host's loop, the host runs uv_run: an idle handle, active only while
 * tasks are ready, runs them from there (an idle handle, not a 0 ms timer:
 * libuv < 1.48 reruns a timer re-armed from its callback in the same pass
 * and starves the loop). Inside cfuture's own block_on/run/step the driver
 * runs them instead. Each resume is protected: no Lua error reaches uv_run. */
static void on_kick(uv_idle_t *h) {
  cf_runtime *rt = h->data;
  uv_idle_stop(h);
  if (rt->in_run || rt->current || rt->closing) return; /* that driver runs them */
  lua_State *prev = drive_enter(rt, rt->L);
  run_ready(rt, CFL_BUDGET);
  drive_leave(rt, prev); /* restarts the kick if the budget left some */
}

static void check_can_drive(lua_State *L, cf_runtime *rt, const char *fname) {
  if (rt->current) luaL_error(L, "%s: called inside a task; await the future instead", fname);
  if (rt->in_run)
    luaL_error(L, "%s: the runtime is already running (called from inside block_on, run or step)",
               fname);
  if (rt->closing) luaL_error(L, "%s: the runtime is closed", fname);
}

/* Poll at most `budget` ready tasks; returns how many polls ran. */
typedef struct run_args {
  cf_runtime *rt;
  size_t budget, n;
} run_args;

static int run_ready_p(lua_State *L) {
  run_args *a = lua_touserdata(L, 1);
  cf_runtime *rt = a->rt;
  a->n = cf_executor_run(&rt->ex, a->budget);
  if (rt->trace) cfl_trace_flush(rt);
  if (rt->dump_requested) cfl_dump_to_stderr(rt);
  if (rt->nreports) cfl_flush_reports(rt);
  return 0;
}

/* Lua code runs only protected (resumes, handlers), but the C code around
 * it can still raise: a memory error, an error object's __tostring. Such an
 * error must not leave the scheduler half-way (a task stuck "running", the
 * drive flags set, every later block_on refusing): the run is protected, a
 * poll it cut short is handed back cancelled, and the error is reported
 * like one nobody awaited. The driver's thread is the one running now, so
 * lua_pcall on it is allowed. */
static size_t run_ready(cf_runtime *rt, size_t budget) {
  if (!cf_executor_has_ready(&rt->ex) && !rt->nreports && !rt->trace && !rt->dump_requested)
    return 0; /* nothing to run: an idle step costs no protected call */
  lua_State *L = rt->driver;
  run_args a = {rt, budget, budget};
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->run_fn); /* run_ready_p, allocated once */
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    cf_executor_interrupted(&rt->ex);
    rt->current = NULL;
    rt->current_cx = NULL;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object)";
    fprintf(stderr, "cfuture: error inside the scheduler (a task was cancelled): %s\n", msg);
    fflush(stderr);
    lua_pop(L, 1);
  }
  return a.n;
}

/* Poll I/O once: without blocking while tasks are ready (or if `block` is
 * off), else until something happens. Returns 0 if nothing can make
 * progress any more: no task is ready and libuv has nothing left that could
 * wake one. */
static int poll_io(cf_runtime *rt, int block) {
  if (!cf_executor_has_ready(&rt->ex) && !uv_loop_alive(rt->loop)) return 0;
  int mode = block && !cf_executor_has_ready(&rt->ex) ? UV_RUN_ONCE : UV_RUN_NOWAIT;
  rt->polling = 1;
  uv_run(rt->loop, mode);
  rt->polling = 0;
  return 1;
}

/* A task became ready from a libuv callback. UV_RUN_ONCE runs due timers
 * before it polls, and would then block until the next timer even though a
 * task is ready: uv_stop makes that poll return at once. */
static void on_ready(cf_executor *ex) {
  cf_runtime *rt = ex->user;
  if (rt->polling)
    uv_stop(rt->loop);
  else if (rt->kick && !rt->in_run && !rt->closing)
    uv_idle_start(rt->kick, on_kick); /* inside a driver, drive_leave does it */
}

/* A paused clock moves by itself when nothing else can happen: poll I/O
 * without blocking and, if no task became ready, jump to the next deadline
 * (tokio's auto-advance). 1 if that may have woken something. */
static int auto_advance(cf_runtime *rt) {
  if (!cf_executor_has_ready(&rt->ex)) poll_io(rt, 0);
  if (cf_executor_has_ready(&rt->ex)) return 1;
  uint64_t next = cfu_timers_next(&rt->timers), now = cfu_timers_now(&rt->timers);
  if (!next) return 0;
  cfu_timers_advance(&rt->timers, next > now ? next - now : 0);
  return 1;
}

/* The executor stamps spawns and wakes with the loop's (cached) time. */
static uint64_t loop_clock(cf_executor *ex) { return uv_now(((cf_runtime *)ex->user)->loop); }

static int finished(cf_runtime *rt, cfl_task *t) {
  return t ? cf_task_is_complete(&t->base) : rt->ex.ntasks == 0;
}

/* Drive the loop until t completes (every task, if t is NULL). Returns 0,
 * or -1 with an error message pushed on L when nothing can make progress
 * (t is then cancelled). Never raises: the caller cleans up first. */
int cfl_run_until(cf_runtime *rt, lua_State *L, cfl_task *t, const char *fname) {
  lua_State *prev = drive_enter(rt, L);
  int stuck = 0;
  for (;;) {
    run_ready(rt, CFL_BUDGET);
    if (finished(rt, t)) break;
    if (rt->timers.paused && auto_advance(rt)) continue;
    if (!poll_io(rt, 1)) {
      stuck = 1;
      break;
    }
  }
  if (stuck && t) {
    /* cancel it so its cleanup runs, then say why */
    cf_task_abort(&t->base);
    run_ready(rt, CFL_BUDGET);
  }
  drive_leave(rt, prev);
  if (!stuck) return 0;
  if (t)
    lua_pushfstring(L,
                    "%s: deadlock: the future is still pending but nothing can wake it "
                    "(no ready task, timer or I/O is left)",
                    fname);
  else
    lua_pushfstring(L,
                    "%s: deadlock: %d task(s) are still pending but nothing can wake them "
                    "(no ready task, timer or I/O is left)",
                    fname, (int)rt->ex.ntasks);
  return -1;
}

/* Raise cfl_run_until's message, placed at the caller's line (on 5.1 the
 * caller is the Lua half of cfl_wrap_raising: no place is added). */
static int raise_stuck(lua_State *L) {
  if (CFL_LUA54) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return cfl_raise(L);
}

/* cf.block_on(f_or_fn, ...) -> results */
static int l_block_on(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  check_can_drive(L, rt, "block_on");
  cfl_task *t = cfl_spawn(L, rt, 1, "block_on");
  cfl_task_hold(t);
  lua_settop(L, 0);
  if (cfl_run_until(rt, L, t, "block_on") != 0) {
    cfl_task_unhold(t);
    return raise_stuck(L);
  }
  int n = cfl_task_take(L, t);
  t->observed = 1;
  cfl_task_unhold(t);
  return n < 0 ? cfl_raise(L) : cfl_results(L, n);
}

/* cf.run() -> runs the loop until every task has finished */
static int l_run(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  check_can_drive(L, rt, "run");
  if (cfl_run_until(rt, L, NULL, "run") != 0) {
    return raise_stuck(L);
  }
  return cfl_results(L, 0);
}

/* One non-blocking step driven from thread L: ready tasks, I/O polled once
 * without waiting, the tasks that woke; at most `budget` task polls in all.
 * I/O is polled even when the budget ran out, so a busy task cannot starve
 * timers and sockets; tasks left ready wait for the next step. */
static int step(cf_runtime *rt, lua_State *L, size_t budget) {
  lua_State *prev = drive_enter(rt, L);
  size_t n = run_ready(rt, budget);
  poll_io(rt, 0);
  if (n < budget) run_ready(rt, budget - n);
  drive_leave(rt, prev);
  return rt->ex.ntasks > 0;
}

int cf_runtime_step_budget(cf_runtime *rt, size_t budget) {
  if (rt->current || rt->in_run || rt->closing || budget == 0) return -1;
  return step(rt, rt->L, budget);
}

int cf_runtime_step(cf_runtime *rt) { return cf_runtime_step_budget(rt, CFL_STEP_BUDGET); }

int cf_runtime_backend_fd(cf_runtime *rt) { return uv_backend_fd(rt->loop); }

int cf_runtime_backend_timeout(cf_runtime *rt) {
  if (cf_executor_has_ready(&rt->ex) || rt->nreports > 0) return 0;
  if (!uv_loop_alive(rt->loop)) return -1; /* no timer armed, no I/O pending */
  uv_update_time(rt->loop);                /* the loop's cached clock may be a frame old */
  return uv_backend_timeout(rt->loop);
}

/* cf.backend_fd() -> the fd to watch for readability (epoll on Linux) */
static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, cf_runtime_backend_fd(cfl_rt(L)));
  return 1;
}

/* cf.backend_timeout() -> ms until the next step has work without I/O
 * (0: step now; -1: only I/O or nothing can wake it) */
static int l_backend_timeout(lua_State *L) {
  lua_pushinteger(L, cf_runtime_backend_timeout(cfl_rt(L)));
  return 1;
}

/* cf.step([budget]) -> true if tasks are still alive */
static int l_step(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  check_can_drive(L, rt, "step");
  lua_Integer budget = CFL_STEP_BUDGET;
  if (!lua_isnoneornil(L, 1)) {
    int isint = 0;
    budget = lua_tointegerx(L, 1, &isint);
    if (!isint || budget < 1)
      return luaL_error(
          L, "step: argument #1 must be a positive integer budget of task polls (got %s)",
          luaL_tolstring(L, 1, NULL));
  }
  lua_pushboolean(L, step(rt, L, (size_t)budget));
  return 1;
}

/* ---- open and close -------------------------------------------------------- */

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
  cfl_trace_close(rt);
  cfl_dump_signal_close(rt);
  rt->closing = 1;
  cfl_close_threads(rt);
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
  cfu_fs_close();
  rt->closed = 1;
  return 0;
}

cf_runtime *cf_runtime_of(lua_State *L) {
  cf_runtime *rt = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &RT_KEY);
  if (lua_isuserdata(L, -1)) rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

uv_loop_t *cf_runtime_loop(cf_runtime *rt) { return rt->loop; }

static int new_ref_table(lua_State *L) {
  lua_newtable(L);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static const luaL_Reg runtime_funcs[] = {{"backend_fd", l_backend_fd},
                                         {"backend_timeout", l_backend_timeout},
                                         {"block_on", l_block_on},
                                         {"run", l_run},
                                         {"step", l_step},
                                         {"on_error", l_on_error},
                                         {"is_cancelled", l_is_cancelled},
                                         {NULL, NULL}};

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
  lua_rawsetp(L, LUA_REGISTRYINDEX, &RT_KEY);

  cf_executor_init(&rt->ex, rt);
  rt->ex.on_ready = on_ready;
  rt->ex.clock = loop_clock;
  rt->loop = host_loop ? host_loop : &rt->own_loop;
  cf__list_init(&rt->io);
  if (!host_loop && uv_loop_init(rt->loop) != 0)
    return luaL_error(L, "cfuture: cannot initialise the libuv loop");
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
  rt->driver = rt->L;
  rt->S = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  rt->anchors = new_ref_table(L);
  rt->pool = new_ref_table(L);
  rt->reports = new_ref_table(L);
  rt->handler = LUA_NOREF;
  lua_pushcfunction(L, run_ready_p);
  rt->run_fn = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "cfuture.Cancelled");
  lua_setfield(L, -2, "__name");
  rt->cancelled_mt = luaL_ref(L, LUA_REGISTRYINDEX);

  /* module table; every function gets upvalues (runtime, future metatable) */
  lua_newtable(L);
  int module = lua_gettop(L);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  rt->mt = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  lua_pushvalue(L, module);
  cfl_open_future(L);
  cfl_open_coro(L);
  cfl_open_task(L);
  cfl_open_combinators(L);
  cfl_open_timer(L);
  cfl_open_custom(L);
  cfl_open_scope(L);
  cfl_open_introspect(L);
  cfl_open_sync(L);
  cfl_open_fs(L);
  cfl_open_stream(L);
  cfl_open_net(L);
  cfl_open_process(L);
  cfl_open_signal(L);
  cfl_open_blocking(L);
  cfl_open_thread(L);
  cfl_open_trace(L);
  cfl_setfuncs(L, rt, runtime_funcs);
#if !CFL_LUA54
  cfl_wrap_raising(L, -1, "block_on");
  cfl_wrap_raising(L, -1, "run");
#endif
  lua_pushliteral(L, CFUTURE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_settop(L, module);
  lua_pushvalue(L, module);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MODULE_KEY);
  rt->opened = 1;
  return 1;
}

void cfl_setfuncs(lua_State *L, cf_runtime *rt, const luaL_Reg *fns) {
  lua_pushlightuserdata(L, rt);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->mt);
  luaL_setfuncs(L, fns, 2);
}
