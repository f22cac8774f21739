/*
 * timer.h — sleeps on the runtime's clock, and the clock itself.
 */
#ifndef CF_UV_TIMER_H
#define CF_UV_TIMER_H

#include <math.h>
#include <uv.h>

#include "../core/core.h"

/* Timers: one uv_timer_t armed for the earliest deadline of a heap of
 * sleeps, instead of one libuv handle per sleep. Deadlines are in uv_hrtime
 * nanoseconds; a sleep never completes before its deadline (the callback
 * checks the precise clock and re-arms for what is left, since libuv's own
 * loop clock is coarse and cached). */
typedef struct cfu_timers {
  cf_heap heap;
  uv_timer_t *handle; /* C memory, freed in its close callback */
  uint64_t armed;     /* deadline the handle is armed for, 0 if stopped */
  /* The runtime's clock: uv_hrtime() + offset (modulo 2^64: the offset may
   * stand for a negative one) while running; frozen at `paused_at` while
   * paused (tests move it with cfu_timers_advance). */
  uint64_t offset;
  uint64_t paused_at;
  uint8_t paused;
} cfu_timers;

typedef struct cfu_sleep {
  cf_heap_node node;
  cf_waker waker;
  uint8_t fired;
} cfu_sleep;

int cfu_timers_init(cfu_timers *t, uv_loop_t *loop);
void cfu_timers_close(cfu_timers *t);
void cfu_sleep_init(cfu_sleep *s);
/* Arm s for `deadline`, waking `w` (cloned) then. 0, or UV_ENOMEM. */
int cfu_timers_add(cfu_timers *t, cfu_sleep *s, uint64_t deadline, const cf_waker *w);
/* Disarm s (cancellation) and drop its waker. */
void cfu_timers_remove(cfu_timers *t, cfu_sleep *s);
/* Its deadline passed (it was armed, and fired). */
static inline int cfu_sleep_fired(const cfu_sleep *s) { return s->fired; }
/* An armed s is polled again: wake `w` (cloned) instead. */
static inline void cfu_sleep_set_waker(cfu_sleep *s, const cf_waker *w) {
  cf_waker_set(&s->waker, w);
}

/* Time on the runtime's clock is nanoseconds in 64 bits; it starts near
 * uv_hrtime() (the uptime). cf.time.advance moves a paused clock up to
 * CFU_CLOCK_MAX (2^63 - 1 ns, some 292 years), so the running clock, even
 * after a resume from there, has another 292 years before it could wrap. A
 * deadline past the range is CFU_NEVER: at least 292 years off, never in
 * practice, and out of cf.time.advance's reach. */
#define CFU_CLOCK_MAX ((uint64_t)INT64_MAX)
#define CFU_NEVER UINT64_MAX

/* The deadline `ns` after `t`, saturating at CFU_NEVER. */
static inline uint64_t cfu_time_after(uint64_t t, uint64_t ns) {
  return ns < CFU_NEVER - t ? t + ns : CFU_NEVER;
}

/* A span of ms milliseconds (not negative, not NaN) in whole nanoseconds,
 * rounded up; CFU_NEVER past 64 bits (above some 1.8e13 ms). */
static inline uint64_t cfu_ms_to_ns(double ms) {
  double ns = ceil(ms * 1e6);
  return ns < 18446744073709551616.0 ? (uint64_t)ns : CFU_NEVER;
}

/* The runtime's clock in nanoseconds: deadlines and cf.now() use it. */
static inline uint64_t cfu_timers_now(const cfu_timers *t) {
  return t->paused ? t->paused_at : uv_hrtime() + t->offset;
}
/* Freeze the clock (no timer fires by itself) / let it run on from where it
 * stands. */
void cfu_timers_pause(cfu_timers *t);
static inline int cfu_timers_paused(const cfu_timers *t) { return t->paused; }
void cfu_timers_resume(cfu_timers *t);
/* Paused clock: move it forward by ns (to CFU_CLOCK_MAX at most, or not at
 * all from past it), firing every sleep now due. */
void cfu_timers_advance(cfu_timers *t, uint64_t ns);
/* Paused clock: the earliest deadline, or 0 if no sleep is armed or the
 * earliest is out of cfu_timers_advance's reach (then no sleep can fire). */
uint64_t cfu_timers_next(const cfu_timers *t);

#endif
