/*
 * test_host.c — a C host that embeds Lua and cfuture: opens the module into
 * its own lua_State, exposes C work on the thread pool with
 * cf_push_blocking and a C future of its own (an event the host fires)
 * with cf_push_future, drives the runtime with cf_runtime_step, runs it on
 * a uv_loop_t the host owns, and closes the state with work still pending.
 * Prints "N passed, N failed".
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <uv.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

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

/* ---- a C future: an event the host fires from its own code ---------------------- */

/* host_event() -> a future of the value the host fires next. The future keeps
 * the waker of whoever polls it; the host's fire_event stores the value and
 * wakes it. */
typedef struct host_event {
  cf_future base;
  cf_waker waker;
  int fired;
  lua_Integer value;
} host_event;

static host_event *waiting_event; /* the one the host will fire */
static int events_released, events_cancelled;

static cf_poll event_poll(cf_future *f, cf_context *cx) {
  host_event *e = (host_event *)f;
  if (e->fired) return CF_READY;
  cf_waker_set(&e->waker, cx->waker);
  return CF_PENDING;
}

static void event_drop(cf_future *f) { /* cancelled: the host stops firing it */
  host_event *e = (host_event *)f;
  cf_waker_drop(&e->waker);
  events_cancelled++;
}

static const cf_future_vtable event_vt = {event_poll, event_drop};

static int event_push(lua_State *L, cf_future *f) {
  lua_pushinteger(L, ((host_event *)f)->value);
  return 1;
}

static void event_release(cf_future *f) {
  host_event *e = (host_event *)f;
  if (waiting_event == e) waiting_event = NULL;
  cf_waker_drop(&e->waker);
  events_released++;
  free(e);
}

static int l_host_event(lua_State *L) {
  host_event *e = calloc(1, sizeof *e);
  e->base.vt = &event_vt;
  waiting_event = e;
  if (cf_push_future(L, &e->base, event_push, event_release) != 0) {
    free(e);
    return luaL_error(L, "host_event: no cfuture runtime");
  }
  return 1;
}

/* The host's side: complete the event and wake whoever awaits it. */
static int fire_event(lua_Integer value) {
  host_event *e = waiting_event;
  if (!e) return 0;
  waiting_event = NULL;
  e->fired = 1;
  e->value = value;
  cf_waker_wake(&e->waker);
  return 1;
}

/* Each test starts from zero: no job released, no event waiting. */
static void reset_counters(void) {
  released = 0;
  waiting_event = NULL;
  events_released = events_cancelled = 0;
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "cfuture.core", luaopen_cfuture_core, 0);
  lua_pop(L, 1);
  lua_register(L, "csum", l_csum);
  lua_register(L, "host_event", l_host_event);
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

static int global_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  int v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A C future awaited from Lua: completed by the host, cancelled by select,
 * released when the runtime closes with it pending. */
static void test_host_future(void) {
  reset_counters();
  lua_State *L = new_state();
  cf_runtime *rt = cf_runtime_of(L);
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "got = 0\n"
               "cf.spawn(function() got = host_event():await() + 1 end)\n") == 0);
  CHECK(cf_runtime_step(rt) == 1);
  CHECK(waiting_event != NULL);
  CHECK(cf_runtime_backend_timeout(rt) == -1); /* only the host can wake it */
  CHECK(cf_runtime_step(rt) == 1);             /* no busy polling: still waiting */
  CHECK(global_int(L, "got") == 0);
  CHECK(fire_event(41) == 1);
  CHECK(cf_runtime_backend_timeout(rt) == 0); /* the task is ready */
  CHECK(cf_runtime_step(rt) == 0);
  CHECK(global_int(L, "got") == 42);
  CHECK(events_released == 1 && events_cancelled == 0);

  /* the losing branch of a select is cancelled and released at once */
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "local i = cf.block_on(cf.select(host_event(), cf.sleep(5)))\n"
               "assert(i == 2)\n") == 0);
  CHECK(events_cancelled == 1 && events_released == 2 && waiting_event == NULL);

  /* the runtime closes with one pending: cancelled and released */
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "cf.spawn(function() host_event():await() end)\n"
               "cf.step()\n") == 0);
  CHECK(waiting_event != NULL);
  lua_close(L);
  CHECK(events_cancelled == 2 && events_released == 3 && waiting_event == NULL);
}

/* ---- cfuture on a loop the host owns ------------------------------------------- */

typedef struct host {
  lua_State *L;
  uv_timer_t frame;
  int ticks;
  int fired_at;
} host;

/* The host's own timer: fires the event at the third tick and stops once
 * the Lua side says it is done. */
static void on_frame(uv_timer_t *t) {
  host *h = t->data;
  h->ticks++;
  if (h->ticks == 3 && fire_event(7)) h->fired_at = h->ticks;
  lua_getglobal(h->L, "done");
  int done = lua_toboolean(h->L, -1);
  lua_pop(h->L, 1);
  if (done || h->ticks > 2000) uv_timer_stop(t);
}

static void test_host_loop(void) {
  reset_counters();
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  host h = {0};
  h.L = luaL_newstate();
  luaL_openlibs(h.L);
  CHECK(cf_runtime_open(h.L, &loop) == 0);
  lua_pop(h.L, 1);
  lua_register(h.L, "csum", l_csum);
  lua_register(h.L, "host_event", l_host_event);
  cf_runtime *rt = cf_runtime_of(h.L);
  CHECK(rt != NULL && cf_runtime_loop(rt) == &loop);
  /* a second open in the same state is refused, with a message */
  CHECK(cf_runtime_open(h.L, &loop) == -1);
  CHECK(strstr(lua_tostring(h.L, -1), "already open") != NULL);
  lua_pop(h.L, 1);

  /* tasks sleep, compute on the pool and await the host's event while the
   * host's loop runs its own timer; a task's error is reported, not thrown */
  CHECK(run(h.L,
            "local cf = require 'cfuture.core'\n"
            "done, slept, event, errors = false, 0, nil, 0\n"
            "cf.on_error(function() errors = errors + 1 end)\n"
            "cf.spawn(function() error('boom') end)\n"
            "cf.spawn(function()\n"
            "  local tasks = {}\n"
            "  for i = 1, 100 do\n"
            "    tasks[i] = cf.spawn(function() cf.sleep(i % 20):await(); slept = slept + 1 end)\n"
            "  end\n"
            "  local sum, ev = cf.join(csum(1000), host_event()):await()\n"
            "  for i = 1, 100 do tasks[i]:await() end\n"
            "  event = ev + sum\n"
            "  done = true\n"
            "end)\n") == 0);
  uv_timer_init(&loop, &h.frame);
  h.frame.data = &h;
  uv_timer_start(&h.frame, on_frame, 2, 2);
  uv_run(&loop, UV_RUN_DEFAULT); /* the host's loop; returns when nothing is left */
  CHECK(global_int(h.L, "slept") == 100);
  CHECK(global_int(h.L, "event") == 7 + 500500);
  CHECK(global_int(h.L, "errors") == 1);
  CHECK(h.fired_at == 3);
  CHECK(h.ticks >= 3 && h.ticks < 2000);
  /* block_on on a shared loop may return with tasks still ready (it stops
   * once its own future is done; 2000 ready tasks exceed one run's budget of
   * polls, so its task is polled before theirs are over): the host's uv_run
   * must run them */
  CHECK(run(h.L, "local cf = require 'cfuture.core'\n"
                 "yields = 0\n"
                 "for i = 1, 2000 do\n"
                 "  cf.spawn(function()\n"
                 "    for _ = 1, 5 do cf.yield_now():await(); yields = yields + 1 end\n"
                 "  end)\n"
                 "end\n"
                 "cf.block_on(function() return 1 end)\n") == 0);
  CHECK(global_int(h.L, "yields") < 10000);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(global_int(h.L, "yields") == 10000);
  /* step and the backend still work on a shared loop */
  CHECK(cf_runtime_step(rt) == 0);
  CHECK(cf_runtime_backend_timeout(rt) == -1);

  /* closing with a task asleep: the host's loop finishes the close */
  CHECK(run(h.L, "local cf = require 'cfuture.core'\n"
                 "cf.spawn(function() cf.sleep(60000):await() end)\n"
                 "cf.step()\n") == 0);
  lua_close(h.L);
  uv_close((uv_handle_t *)&h.frame, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(uv_loop_close(&loop) == 0); /* no handle of cfuture's left behind */
}

/* Memory errors inside the scheduler: an allocator that fails every n-th
 * allocation while tasks fail, report and await. Whatever raises, the
 * runtime must stay usable once memory is back (no "already running", no
 * task stuck half-polled) and close cleanly. */
static long alloc_countdown = -1; /* < 0: never fail */
static long alloc_every;
static int alloc_burst; /* Lua retries a failed allocation after a full GC */

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (alloc_burst > 0) {
    alloc_burst--;
    return NULL;
  }
  if (alloc_countdown >= 0 && nsize > osize && --alloc_countdown < 0) {
    alloc_countdown = alloc_every;
    alloc_burst = 1;
    return NULL;
  }
  return realloc(ptr, nsize);
}

static int l_fail_memory(lua_State *L) {
  (void)L;
  alloc_countdown = alloc_every;
  return 0;
}

static void test_memory_errors(void) {
  static const char *const load =
      "local cf = require 'cfuture.core'\n"
      "cf.on_error(function(e) reported = (reported or 0) + 1 end)\n"
      "for i = 1, 50 do\n"
      "  cf.spawn(function() cf.sleep(i % 3):await(); error('task ' .. i) end)\n"
      "  cf.spawn(function() for _ = 1, 5 do cf.yield_now():await() end return i end)\n"
      "end\n"
      "collectgarbage()\n"
      "fail_memory()\n"
      "cf.block_on(function() cf.sleep(5):await() end)\n";
  static const char *const after =
      "local cf = require 'cfuture.core'\n"
      "cf.on_error(function() end)\n"
      "value = cf.block_on(function()\n"
      "  cf.sleep(1):await()\n"
      "  return cf.join(function() return 40 end, function() return 2 end):await()\n"
      "end)\n"
      "cf.run()\n";
#ifdef __SANITIZE_ADDRESS__
  __lsan_disable(); /* memory errors leak what C code had allocated; UAF is still checked */
#endif
  for (long every = 7; every < 400; every = every * 3 / 2) {
    alloc_countdown = -1;
    alloc_burst = 0;
    lua_State *L = lua_newstate(failing_alloc, NULL);
    luaL_openlibs(L);
    luaL_requiref(L, "cfuture.core", luaopen_cfuture_core, 0);
    lua_pop(L, 1);
    lua_register(L, "fail_memory", l_fail_memory);
    alloc_every = every;
    if (luaL_dostring(L, load) != LUA_OK) {
      if (getenv("CF_DEBUG_OOM")) fprintf(stderr, "load(%ld): %s\n", every, lua_tostring(L, -1));
      lua_pop(L, 1); /* "not enough memory" is fine */
    }
    alloc_countdown = -1;
    alloc_burst = 0;
    lua_pushnil(L);
    lua_setglobal(L, "value");
    int ok = luaL_dostring(L, after) == LUA_OK;
    /* a task whose completion the memory error cut short is lost: cf.run
     * says so (deadlock), it does not hang; nothing else may fail */
    if (!ok && !strstr(lua_tostring(L, -1), "run: deadlock: "))
      fprintf(stderr, "memory_error_tests(%ld): %s\n", every, lua_tostring(L, -1));
    CHECK(ok || strstr(lua_tostring(L, -1), "run: deadlock: "));
    lua_getglobal(L, "value");
    CHECK(lua_tointeger(L, -1) == 40);
    lua_settop(L, 0);
    lua_close(L);
  }
  alloc_countdown = -1;
  alloc_every = 0;
  alloc_burst = 0;
#ifdef __SANITIZE_ADDRESS__
  __lsan_enable();
#endif
}

/* SIGPIPE: ignored at open if it had its default action (a write to a gone
 * reader then returns EPIPE); a host's own handler is left alone. */
static void on_sigpipe(int sig) { (void)sig; }

static void test_sigpipe_policy(void) {
  struct sigaction sa, now, saved;
  sigaction(SIGPIPE, NULL, &saved);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigpipe;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
  lua_State *L = new_state();
  sigaction(SIGPIPE, NULL, &now);
  CHECK(now.sa_handler == on_sigpipe);
  lua_close(L);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &sa, NULL);
  L = new_state();
  sigaction(SIGPIPE, NULL, &now);
  CHECK(now.sa_handler == SIG_IGN);
  lua_close(L);
  sigaction(SIGPIPE, &saved, NULL); /* as the test found it */
}

/* ---- C work awaited from Lua, and the host's own step ------------------------- */

/* awaiting C work from Lua, with block_on */
static void test_block_on_c_work(void) {
  reset_counters();
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
  lua_close(L);
}

/* the host's own loop: step until the task is done, never blocking */
static void test_step_until_done(void) {
  reset_counters();
  lua_State *L = new_state();
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
  CHECK(released == 1);
  lua_close(L);
}

/* a budget of task polls per step: the rest stay ready for the next */
static void test_step_budget(void) {
  reset_counters();
  lua_State *L = new_state();
  cf_runtime *rt = cf_runtime_of(L);
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "polled = 0\n"
               "for _ = 1, 10 do cf.spawn(function() polled = polled + 1 end) end\n") == 0);
  CHECK(cf_runtime_step_budget(rt, 0) == -1);
  CHECK(global_int(L, "polled") == 0);
  CHECK(cf_runtime_step_budget(rt, 4) == 1);
  CHECK(global_int(L, "polled") == 4);
  CHECK(cf_runtime_backend_timeout(rt) == 0);
  CHECK(cf_runtime_step_budget(rt, 6) == 0);
  CHECK(global_int(L, "polled") == 10);
  lua_close(L);
}

/* folding into the host's own poll(): sleep on the backend fd with the
 * backend timeout; a 50 ms sleep takes a handful of steps, not a spin */
static void test_backend_poll(void) {
  reset_counters();
  lua_State *L = new_state();
  cf_runtime *rt = cf_runtime_of(L);
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
  lua_close(L);
}

/* dropped work: a cancelled job is released once it has run */
static void test_dropped_work(void) {
  reset_counters();
  lua_State *L = new_state();
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "local r = cf.block_on(cf.select(cf.yield_now(), csum(50000000)))\n"
               "assert(r == 1)\n") == 0);
  lua_close(L); /* waits for the running job, then releases it */
  CHECK(released == 1);
}

/* closing the host state with a job pending, never awaited */
static void test_close_with_pending_job(void) {
  reset_counters();
  lua_State *L = new_state();
  CHECK(run(L, "local cf = require 'cfuture.core'\n"
               "cf.spawn(function() csum(1000000):await() end)\n"
               "cf.step()\n") == 0);
  lua_close(L);
  CHECK(released == 1);
}

static const cf_test tests[] = {
    TEST(sigpipe_policy), TEST(memory_errors), TEST(block_on_c_work), TEST(step_until_done),
    TEST(step_budget),    TEST(backend_poll),  TEST(dropped_work),    TEST(close_with_pending_job),
    TEST(host_future),    TEST(host_loop),
};

int main(int argc, char **argv) { return RUN_TESTS(argc, argv, tests); }
