/*
 * timer.c — cf.sleep, cf.sleep_until, cf.yield_now and cf.now.
 *
 * A sleep takes its deadline when first polled (a future is lazy) and arms
 * the runtime's timer heap then; dropping it disarms it at once, so a
 * cancelled sleep neither fires nor keeps the loop alive.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfl.h"

typedef struct cfl_sleep {
  cfl_future hdr;
  cfu_sleep s;
  uint64_t deadline; /* ns on the runtime's clock; 0 until first poll if relative */
  double ms;         /* relative duration, or < 0 for an absolute deadline */
  uint8_t oom;
} cfl_sleep;

static cf_poll sleep_poll(cf_future *base, cf_context *cx) {
  cfl_sleep *s = (cfl_sleep *)base;
  switch (s->hdr.state) {
  case CFL_ST_FRESH: {
    uint64_t now = cfu_timers_now(&s->hdr.rt->timers);
    if (s->ms >= 0) s->deadline = cfu_time_after(now, cfu_ms_to_ns(s->ms));
    if (s->deadline <= now) {
      return cfl_ready(&s->hdr);
    }
    s->hdr.state = CFL_ST_PENDING;
    if (cfu_timers_add(&s->hdr.rt->timers, &s->s, s->deadline, cx->waker) != 0) {
      s->oom = 1;
      return cfl_failed(&s->hdr);
    }
    return CF_PENDING;
  }
  case CFL_ST_PENDING:
    if (cfu_sleep_fired(&s->s)) {
      return cfl_ready(&s->hdr);
    }
    cfu_sleep_set_waker(&s->s, cx->waker);
    return CF_PENDING;
  default: return CF_READY;
  }
}

static void sleep_drop(cf_future *base) {
  cfl_sleep *s = (cfl_sleep *)base;
  cfu_timers_remove(&s->hdr.rt->timers, &s->s);
  cfl_mark_dropped(&s->hdr);
}

static int sleep_take(lua_State *L, cfl_future *f) {
  cfl_sleep *s = (cfl_sleep *)f;
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st == CFL_ST_READY) return 0;
  if (s->oom) {
    lua_pushliteral(L, "sleep: out of memory arming the timer");
    return -1;
  }
  cfl_push_cancelled(L, f->rt, "the sleep was cancelled");
  return -1;
}

static void sleep_describe(lua_State *L, cfl_future *f) {
  cfl_sleep *s = (cfl_sleep *)f;
  if (f->state == CFL_ST_PENDING) {
    uint64_t now = cfu_timers_now(&s->hdr.rt->timers);
    double left = s->deadline > now ? (double)(s->deadline - now) / 1e6 : 0;
    char buf[32]; /* up to 1.8e13 ms: more than an int holds */
    snprintf(buf, sizeof buf, "%.0f", ceil(left));
    lua_pushfstring(L, "sleep (%s ms left)", buf);
  } else if (s->ms >= 0) {
    lua_pushfstring(L, "sleep %f ms", s->ms);
  } else {
    lua_pushliteral(L, "sleep_until");
  }
}

static const cfl_class sleep_class = {
    .vt = {.poll = sleep_poll, .drop = sleep_drop},
    .name = "sleep",
    .take = sleep_take,
    .describe = sleep_describe,
};

cfl_future *cfl_new_sleep(lua_State *L, cf_runtime *rt, double ms) {
  cfl_sleep *s = (cfl_sleep *)cfl_new_future(L, rt, &sleep_class, sizeof(cfl_sleep));
  cfu_sleep_init(&s->s);
  s->ms = ms;
  return &s->hdr;
}

/* cf.sleep(ms) -> future ready after ms milliseconds */
static int l_sleep(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_new_sleep(L, rt, cfl_check_ms(L, 1, "sleep"));
  return 1;
}

/* A cf.now() time in nanoseconds, rounded up, CFU_NEVER past 64 bits. t*1e6
 * is not exact past 2^53 ns (104 days of uptime): the whole milliseconds are
 * converted apart, so that the sleep never ends while cf.now() < t. */
static uint64_t time_to_ns(double t) {
  if (t >= 18446744073709.0) return cfu_ms_to_ns(t);
  double whole = floor(t);
  return (uint64_t)whole * 1000000 + (uint64_t)ceil((t - whole) * 1e6);
}

/* cf.sleep_until(t) -> future ready when cf.now() >= t */
static int l_sleep_until(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  double t = cfl_check_ms(L, 1, "sleep_until");
  cfl_sleep *s = (cfl_sleep *)cfl_new_sleep(L, rt, -1);
  s->deadline = time_to_ns(t);
  if (s->deadline == 0) s->deadline = 1;
  return 1;
}

/* Nanoseconds on the runtime's clock as cf.now() milliseconds: whole
 * milliseconds stay exact (a double holds 2^53 of them; it holds only 2^53
 * nanoseconds, some 104 days of them). */
static lua_Number ns_to_ms(uint64_t ns) {
  return (lua_Number)(ns / 1000000) + (lua_Number)(ns % 1000000) / 1e6;
}

/* cf.now() -> monotonic milliseconds (fractional) */
static int l_now(lua_State *L) {
  lua_pushnumber(L, ns_to_ms(cfu_timers_now(&cfl_rt(L)->timers)));
  return 1;
}

/* cf.time.pause(): freeze the runtime's clock. While it is paused, time
 * moves only by cf.time.advance, or by itself to the next deadline when
 * block_on/run have nothing else to do. */
static int l_pause(lua_State *L) {
  cfu_timers_pause(&cfl_rt(L)->timers);
  return 0;
}

/* cf.time.resume(): let the clock run on from where it stands */
static int l_resume(lua_State *L) {
  cfu_timers_resume(&cfl_rt(L)->timers);
  return 0;
}

/* cf.time.advance(ms): move a paused clock forward, waking the sleeps due */
static int l_advance(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  double ms = cfl_check_ms(L, 1, "time.advance");
  if (!cfu_timers_paused(&rt->timers))
    return luaL_error(L, "time.advance: the clock is not paused");
  cfu_timers_advance(&rt->timers, cfu_ms_to_ns(ms));
  return 0;
}

/* cf.time.wall() -> seconds since the Unix epoch (microseconds in the
 * fraction): the wall clock, which can jump when the system clock is set;
 * never paused. Durations and deadlines use cf.now(). */
static int l_wall(lua_State *L) {
  cfl_rt(L);
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return luaL_error(L, "time.wall: the system clock cannot be read");
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

static int l_is_paused(lua_State *L) {
  lua_pushboolean(L, cfu_timers_paused(&cfl_rt(L)->timers));
  return 1;
}

/* yield_now: pending once (waking itself), ready on the next poll */
static cf_poll yield_poll(cf_future *base, cf_context *cx) {
  cfl_future *f = (cfl_future *)base;
  if (f->state == CFL_ST_FRESH) {
    f->state = CFL_ST_PENDING;
    cf_waker_wake_by_ref(cx->waker);
    return CF_PENDING;
  }
  if (f->state == CFL_ST_PENDING) f->state = CFL_ST_READY;
  return CF_READY;
}

static void yield_drop(cf_future *base) {
  cfl_future *f = (cfl_future *)base;
  cfl_mark_dropped(f);
}

static int yield_take(lua_State *L, cfl_future *f) {
  int st = f->state;
  f->state = CFL_ST_TAKEN;
  if (st == CFL_ST_READY) return 0;
  cfl_push_cancelled(L, f->rt, "yield_now was cancelled");
  return -1;
}

static const cfl_class yield_class = {
    .vt = {.poll = yield_poll, .drop = yield_drop}, .name = "yield_now", .take = yield_take};

/* The future cf.yield_now() returns. It has no state of its own, so one
 * shared object serves every call: await suspends the task once for it
 * (costing no allocation), and a combinator that takes it gets a fresh
 * yield future of its own (cfl_own_yield). */
static cf_poll token_poll(cf_future *base, cf_context *cx) {
  (void)base;
  (void)cx;
  return CF_READY; /* only reached through spawn/block_on's await */
}
static void token_drop(cf_future *base) { (void)base; }
static int token_take(lua_State *L, cfl_future *f) {
  (void)L;
  (void)f;
  return 0;
}
static cfl_future *own_yield(lua_State *L, int idx);
const cfl_class cfl_yield_token_class = {
    .vt = {.poll = token_poll, .drop = token_drop},
    .name = "yield_now",
    .take = token_take,
    .shared = 1,
    .own = own_yield,
};

static cfl_future *own_yield(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  cfl_future *f = cfl_new_future(L, cfl_rt(L), &yield_class, sizeof(cfl_future));
  lua_replace(L, idx);
  return f;
}

/* cf.yield_now() -> future: let the other ready tasks run once */
static int l_yield_now(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, cfl_rt(L)->ref.yield_token);
  return 1;
}

static const luaL_Reg funcs[] = {{"sleep", l_sleep},
                                 {"sleep_until", l_sleep_until},
                                 {"now", l_now},
                                 {"yield_now", l_yield_now},
                                 {NULL, NULL}};

static const luaL_Reg time_funcs[] = {{"pause", l_pause},     {"resume", l_resume},
                                      {"advance", l_advance}, {"is_paused", l_is_paused},
                                      {"wall", l_wall},       {NULL, NULL}};

static void open_timer(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  lua_newtable(L);
  cfl_setfuncs(L, rt, time_funcs);
  lua_setfield(L, -2, "time");
  rt->yield_token_ptr = cfl_new_future(L, rt, &cfl_yield_token_class, sizeof(cfl_future));
  rt->ref.yield_token = luaL_ref(L, LUA_REGISTRYINDEX);
}

const cfl_module cfl_timer_module = {.name = "timer", .open = open_timer};
