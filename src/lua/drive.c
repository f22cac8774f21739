/*
 * drive.c — driving the runtime: block_on, run, step, a host loop's kick
 * and the protected executor run.
 *
 * Ground rules
 * - Loop driving (block_on, run, step) is not re-entrant: it refuses to run
 *   from inside a task or from inside another drive.
 * - Lua errors never cross uv_run: callbacks only store and wake.
 * - After each executor run, the subsystems' after_run hooks deliver what
 *   the run buffered (trace events, a requested dump), then error reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

/* ---- driving the loop ---------------------------------------------------- */

static size_t run_ready(cf_runtime *rt, size_t budget);

/* A drive (block_on, run, step, the kick below) runs tasks from thread L.
 * Leaving, it hands tasks still ready to the kick: a drive may stop with
 * some left (its future finished, or its poll budget ran out), and on a
 * host's loop nothing else would run them until another wake. */
static lua_State *drive_enter(cf_runtime *rt, lua_State *L) {
  lua_State *prev = rt->caller;
  rt->in_run = 1;
  rt->host_waiting = 0; /* awake: it looks again before it next waits */
  rt->caller = L;
  return prev;
}

static void on_kick(uv_idle_t *h);

static void drive_leave(cf_runtime *rt, lua_State *prev) {
  rt->in_run = 0;
  rt->caller = prev;
  if (rt->kick && !rt->closing && cf_executor_has_ready(&rt->ex))
    uv_idle_start(rt->kick, on_kick); /* no-op if already active */
}

/* On a host's loop, the host runs uv_run: an idle handle, active only while
 * tasks are ready, runs them from there (an idle handle, not a 0 ms timer:
 * libuv < 1.48 reruns a timer re-armed from its callback in the same pass
 * and starves the loop). Inside cfuture's own block_on/run/step the drive
 * runs them instead. Each resume is protected: no Lua error reaches uv_run. */
static void on_kick(uv_idle_t *h) {
  cf_runtime *rt = h->data;
  uv_idle_stop(h);
  if (rt->in_run || rt->current || rt->closing) return; /* that drive runs them */
  lua_State *prev = drive_enter(rt, rt->L);
  run_ready(rt, CFL_BUDGET);
  drive_leave(rt, prev); /* restarts the kick if the budget left some */
}

void cfl_wake_host(cf_runtime *rt) {
  if (rt->in_run || rt->closing) return; /* that drive runs it, or nothing will */
  if (rt->kick)
    uv_idle_start(rt->kick, on_kick); /* no-op if already active */
  else if (rt->host_waiting) {        /* one wake until the host has stepped and looks again */
    rt->host_waiting = 0;
    uv_ref((uv_handle_t *)&rt->wakeup); /* alive until it is handled, so uv_run drains it */
    uv_async_send(&rt->wakeup);
  }
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
  if (rt->after_run_wanted)
    for (const cfl_module *const *m = rt->modules; *m; m++)
      if ((*m)->after_run) (*m)->after_run(rt);
  if (rt->reports.n) cfl_flush_reports(rt);
  return 0;
}

/* Lua code runs only protected (resumes, handlers), but the C code around
 * it can still raise: a memory error, an error object's __tostring. Such an
 * error must not leave the scheduler half-way (a task stuck "running", the
 * drive flags set, every later block_on refusing): the run is protected, a
 * poll it cut short is handed back cancelled, and the error is reported
 * like one nobody awaited. The caller's thread is the one running now, so
 * lua_pcall on it is allowed. */
static size_t run_ready(cf_runtime *rt, size_t budget) {
  if (!cf_executor_has_ready(&rt->ex) && !rt->reports.n && !rt->after_run_wanted)
    return 0; /* nothing to run: an idle step costs no protected call */
  lua_State *L = rt->caller;
  run_args a = {rt, budget, budget};
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.run_fn); /* run_ready_p, allocated once */
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
  else
    cfl_wake_host(rt); /* inside a drive, drive_leave does it */
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
  return t ? cf_task_is_complete(&t->base) : rt->ex.ntasks == rt->nunref;
}

/* Drive the loop until t completes (every task, if t is NULL). Returns 0,
 * or -1 with an error message pushed on L when nothing can make progress
 * (t is then cancelled). Never raises: the caller cleans up first. */
static int run_until(cf_runtime *rt, lua_State *L, cfl_task *t, const char *fname) {
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
                    fname, (int)(rt->ex.ntasks - rt->nunref));
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
  if (run_until(rt, L, t, "block_on") != 0) {
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
  if (run_until(rt, L, NULL, "run") != 0) {
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
  return rt->ex.ntasks > rt->nunref;
}

int cf_runtime_step_budget(cf_runtime *rt, size_t budget) {
  if (rt->current || rt->in_run || rt->closing || budget == 0) return -1;
  return step(rt, rt->L, budget);
}

int cf_runtime_step(cf_runtime *rt) { return cf_runtime_step_budget(rt, CFL_STEP_BUDGET); }

int cf_runtime_backend_fd(cf_runtime *rt) { return uv_backend_fd(rt->loop); }

/* A host asks before it waits on the fd: from now until its next drive,
 * work that arrives outside a drive wakes it through the fd. libuv puts the
 * wakeup's eventfd into the epoll set only when it polls: the first time,
 * poll once so that a wake before any drive is seen too. */
static void host_waits(cf_runtime *rt) {
  if (!rt->has_wakeup || rt->in_run || rt->closing) return;
  if (!rt->wakeup_primed && !rt->polling) {
    rt->wakeup_primed = 1;
    uv_ref((uv_handle_t *)&rt->wakeup);
    rt->polling = 1;
    uv_run(rt->loop, UV_RUN_NOWAIT);
    rt->polling = 0;
    uv_unref((uv_handle_t *)&rt->wakeup);
  }
  rt->host_waiting = 1;
}

int cf_runtime_backend_timeout(cf_runtime *rt) {
  host_waits(rt);
  if (cf_executor_has_ready(&rt->ex) || rt->reports.n > 0) return 0;
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

static const luaL_Reg funcs[] = {{"backend_fd", l_backend_fd},
                                 {"backend_timeout", l_backend_timeout},
                                 {"block_on", l_block_on},
                                 {"run", l_run},
                                 {"step", l_step},
                                 {NULL, NULL}};

static void open_drive(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  rt->ex.on_ready = on_ready;
  rt->ex.clock = loop_clock;
  lua_pushcfunction(L, run_ready_p);
  rt->ref.run_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  cfl_setfuncs(L, rt, funcs);
#if !CFL_LUA54
  cfl_wrap_raising(L, -1, "block_on");
  cfl_wrap_raising(L, -1, "run");
#endif
}

const cfl_module cfl_drive_module = {.name = "drive", .open = open_drive};
