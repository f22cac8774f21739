/*
 * timer.c — sleeps on a deadline heap behind a single libuv timer.
 *
 * Ground rules
 * - The callback only marks sleeps fired and wakes their wakers.
 * - Never arm a 0 ms libuv timer: on libuv < 1.48 a 0 ms timer re-armed from
 *   a timer callback runs again in the same pass and starves the loop. What
 *   is left of a deadline is rounded up to whole milliseconds, at least 1.
 * - libuv's loop time is cached and coarse: refresh it before arming, and
 *   trust only uv_hrtime() to decide that a deadline has passed.
 * - While the clock is paused nothing is armed: time moves only when
 *   cfu_timers_advance says so (the virtual clock of tests).
 */
#include <stdlib.h>

#include "timer.h"

static void on_close(uv_handle_t *h) { free(h); }

static void rearm(cfu_timers *t, uint64_t now);

static void fire_due(cfu_timers *t, uint64_t now) {
  cf_heap_node *n;
  while ((n = cf_heap_min(&t->heap)) && n->deadline <= now) {
    cf_heap_remove(&t->heap, n);
    cfu_sleep *s = cf__container_of(n, cfu_sleep, node);
    s->fired = 1;
    cf_waker_wake(&s->waker);
  }
}

static void on_timer(uv_timer_t *h) {
  cfu_timers *t = h->data;
  uint64_t now = cfu_timers_now(t);
  t->armed = 0;
  fire_due(t, now);
  rearm(t, now);
}

static void rearm(cfu_timers *t, uint64_t now) {
  cf_heap_node *n = cf_heap_min(&t->heap);
  if (!n || t->paused) {
    if (t->armed) uv_timer_stop(t->handle);
    t->armed = 0;
    return;
  }
  if (t->armed == n->deadline) return;
  uint64_t left = n->deadline > now ? n->deadline - now : 0;
  uint64_t ms = left / 1000000 + (left % 1000000 != 0); /* left + 999999 may wrap */
  if (ms == 0) ms = 1;
  uv_update_time(t->handle->loop);
  uv_timer_start(t->handle, on_timer, ms, 0);
  t->armed = n->deadline;
}

int cfu_timers_init(cfu_timers *t, uv_loop_t *loop) {
  cf_heap_init(&t->heap);
  t->armed = 0;
  t->offset = 0;
  t->paused_at = 0;
  t->paused = 0;
  t->handle = malloc(sizeof *t->handle);
  if (!t->handle) return UV_ENOMEM;
  uv_timer_init(loop, t->handle);
  t->handle->data = t;
  return 0;
}

void cfu_timers_close(cfu_timers *t) {
  /* Sleeps still in the heap belong to futures that are being dropped. */
  cf_heap_free(&t->heap);
  if (t->handle) {
    t->handle->data = NULL;
    uv_close((uv_handle_t *)t->handle, on_close);
    t->handle = NULL;
  }
}

void cfu_sleep_init(cfu_sleep *s) {
  s->node.index = CF_HEAP_NONE;
  s->node.deadline = 0;
  s->waker.vt = NULL;
  s->waker.data = NULL;
  s->fired = 0;
}

int cfu_timers_add(cfu_timers *t, cfu_sleep *s, uint64_t deadline, const cf_waker *w) {
  s->node.deadline = deadline;
  if (cf_heap_push(&t->heap, &s->node) != 0) return UV_ENOMEM;
  cf_waker_set(&s->waker, w);
  if (cf_heap_min(&t->heap) == &s->node) rearm(t, cfu_timers_now(t));
  return 0;
}

void cfu_timers_remove(cfu_timers *t, cfu_sleep *s) {
  if (cf_heap_contains(&s->node)) {
    int was_min = cf_heap_min(&t->heap) == &s->node;
    cf_heap_remove(&t->heap, &s->node);
    if (was_min && t->handle) rearm(t, cfu_timers_now(t));
  }
  cf_waker_drop(&s->waker);
}

void cfu_timers_pause(cfu_timers *t) {
  if (t->paused) return;
  /* Round up to a whole millisecond (the clock jumps forward by less than
   * 1 ms, never back): virtual times are then exact in cf.now()'s
   * milliseconds, so t0 + 250 - t0 is 250, not 250.000001. */
  t->paused_at = (cfu_timers_now(t) + 999999) / 1000000 * 1000000;
  t->paused = 1;
  rearm(t, t->paused_at); /* disarms */
}

void cfu_timers_resume(cfu_timers *t) {
  if (!t->paused) return;
  t->offset = t->paused_at - uv_hrtime(); /* modulo 2^64 */
  t->paused = 0;
  rearm(t, cfu_timers_now(t));
}

void cfu_timers_advance(cfu_timers *t, uint64_t ns) {
  if (!t->paused) return;
  uint64_t at = t->paused_at, end = at > CFU_CLOCK_MAX ? at : CFU_CLOCK_MAX;
  t->paused_at = ns < end - at ? at + ns : end;
  fire_due(t, t->paused_at);
}

uint64_t cfu_timers_next(const cfu_timers *t) {
  cf_heap_node *n = cf_heap_min(&t->heap);
  uint64_t end = t->paused_at > CFU_CLOCK_MAX ? t->paused_at : CFU_CLOCK_MAX;
  return n && n->deadline <= end ? n->deadline : 0;
}
