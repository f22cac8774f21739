/*
 * driver.h — the libuv side: timers now, and the loop step. Drivers store
 * results and wake; they never run Lua.
 */
#ifndef CF_UV_DRIVER_H
#define CF_UV_DRIVER_H

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

static inline uint64_t cfu_now_ns(void) { return uv_hrtime(); }

#endif
