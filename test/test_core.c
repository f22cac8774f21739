/*
 * test_core.c — unit tests of src/core: task states and the ready queue,
 * waker reference counts, cancellation, combinator groups, the deadline heap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/core.h"

#include "check.h"

/* A future the test controls: pending until `ready` is set, keeping the
 * waker of its last poll like a leaf future would. */
typedef struct manual {
  cf_future base;
  int ready, polls, drops;
  cf_waker waker;
  char tag;
  char *trace; /* appends tag on every poll */
} manual;

static cf_poll manual_poll(cf_future *f, cf_context *cx) {
  manual *m = (manual *)f;
  m->polls++;
  if (m->trace) strncat(m->trace, &m->tag, 1);
  if (m->ready) return CF_READY;
  cf_waker_set(&m->waker, cx->waker);
  return CF_PENDING;
}
static void manual_drop(cf_future *f) {
  manual *m = (manual *)f;
  m->drops++;
  cf_waker_drop(&m->waker);
}
static const cf_future_vtable manual_vt = {manual_poll, manual_drop};

static void manual_init(manual *m, char tag, char *trace) {
  memset(m, 0, sizeof *m);
  m->base.vt = &manual_vt;
  m->tag = tag;
  m->trace = trace;
}

typedef struct test_task {
  cf_task base;
  int completed, cancelled, freed;
} test_task;

static void tt_complete(cf_task *t, int cancelled) {
  ((test_task *)t)->completed++;
  ((test_task *)t)->cancelled = cancelled;
}
static void tt_free(cf_task *t) { ((test_task *)t)->freed = 1; }
static const cf_task_hooks tt_hooks = {tt_complete, tt_free};

static void test_fifo_and_wake_once(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  char trace[64] = "";
  manual a, b;
  manual_init(&a, 'a', trace);
  manual_init(&b, 'b', trace);
  test_task ta = {0}, tb = {0};
  cf_task_spawn(&ta.base, &ex, &tt_hooks, &a.base);
  cf_task_spawn(&tb.base, &ex, &tt_hooks, &b.base);
  CHECK(ex.nready == 2);
  CHECK(cf_executor_run(&ex, 100) == 2);
  CHECK(strcmp(trace, "ab") == 0);
  CHECK(ta.base.state == CF_TASK_IDLE && tb.base.state == CF_TASK_IDLE);
  /* no wake, no poll */
  CHECK(cf_executor_run(&ex, 100) == 0);
  /* several wakes queue the task once; FIFO order follows wake order */
  cf_waker_wake_by_ref(&b.waker);
  cf_waker_wake_by_ref(&b.waker);
  cf_waker_wake_by_ref(&a.waker);
  CHECK(ex.nready == 2);
  cf_executor_run(&ex, 100);
  CHECK(strcmp(trace, "abba") == 0);
  /* completion drops the task list's reference; wakers still hold theirs */
  a.ready = b.ready = 1;
  cf_waker_wake_by_ref(&a.waker);
  cf_waker_wake_by_ref(&b.waker);
  cf_executor_run(&ex, 100);
  CHECK(ta.completed == 1 && tb.completed == 1 && !ta.cancelled);
  CHECK(ex.ntasks == 0);
  CHECK(!ta.freed && ta.base.refcount == 1);
  cf_waker_wake_by_ref(&a.waker); /* waking a complete task is a no-op */
  CHECK(ex.nready == 0);
  cf_waker_drop(&a.waker);
  cf_waker_drop(&b.waker);
  CHECK(ta.freed && tb.freed);
}

/* A future that wakes itself while being polled (like yield_now). */
typedef struct selfwake {
  cf_future base;
  int polls;
} selfwake;
static cf_poll selfwake_poll(cf_future *f, cf_context *cx) {
  selfwake *s = (selfwake *)f;
  if (++s->polls == 3) return CF_READY;
  cf_waker_wake_by_ref(cx->waker);
  return CF_PENDING;
}
static const cf_future_vtable selfwake_vt = {selfwake_poll, NULL};

static void test_notified_while_running_and_budget(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  selfwake s = {{&selfwake_vt}, 0};
  test_task t = {0};
  cf_task_spawn(&t.base, &ex, &tt_hooks, &s.base);
  /* the budget bounds one run even though the task keeps waking itself */
  CHECK(cf_executor_run(&ex, 1) == 1);
  CHECK(t.base.state == CF_TASK_SCHEDULED && s.polls == 1);
  CHECK(cf_executor_run(&ex, 10) == 2);
  CHECK(t.completed == 1 && s.polls == 3);
  CHECK(t.freed);
}

static void test_abort(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  manual m;
  manual_init(&m, 'm', NULL);
  test_task t = {0};
  cf_task_spawn(&t.base, &ex, &tt_hooks, &m.base);
  cf_executor_run(&ex, 10);
  CHECK(m.polls == 1 && m.waker.vt != NULL);
  cf_task_ref(&t.base); /* a join handle */
  cf_task_abort(&t.base);
  CHECK(t.base.state == CF_TASK_SCHEDULED);
  cf_executor_run(&ex, 10);
  CHECK(m.polls == 1);       /* cancelled work is not polled again */
  CHECK(m.drops == 1);       /* ...it is dropped */
  CHECK(m.waker.vt == NULL); /* ...and let go of its waker */
  CHECK(t.completed == 1 && t.cancelled && t.base.cancelled);
  CHECK(!t.freed);
  cf_task_abort(&t.base); /* no-op once complete */
  CHECK(ex.nready == 0);
  cf_task_unref(&t.base);
  CHECK(t.freed);
}

static void test_cancel_all(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  manual m[3];
  test_task t[3];
  memset(t, 0, sizeof t);
  for (int i = 0; i < 3; i++) {
    manual_init(&m[i], 'x', NULL);
    cf_task_spawn(&t[i].base, &ex, &tt_hooks, &m[i].base);
  }
  cf_executor_run(&ex, 2); /* one task is still queued */
  cf_executor_cancel_all(&ex);
  CHECK(ex.ntasks == 0 && ex.nready == 0);
  for (int i = 0; i < 3; i++) {
    CHECK(t[i].cancelled && m[i].drops == 1 && t[i].freed);
  }
}

static void test_joiners(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  manual m;
  manual_init(&m, 'm', NULL);
  test_task t = {0};
  cf_task_spawn(&t.base, &ex, &tt_hooks, &m.base);
  /* two poll sites wait for the task through its wait list */
  manual wa, wb;
  manual_init(&wa, 'a', NULL);
  manual_init(&wb, 'b', NULL);
  test_task ja = {0}, jb = {0};
  cf_task_spawn(&ja.base, &ex, &tt_hooks, &wa.base);
  cf_task_spawn(&jb.base, &ex, &tt_hooks, &wb.base);
  cf_executor_run(&ex, 10);
  cf_waker w1 = cf_task_waker(&ja.base), w2 = cf_task_waker(&jb.base);
  cf_context c1 = {&w1, &ja.base.waiter}, c2 = {&w2, &jb.base.waiter};
  cf_waitlist_register(&t.base.joiners, &c1);
  cf_waitlist_register(&t.base.joiners, &c1); /* registering twice keeps one node */
  cf_waitlist_register(&t.base.joiners, &c2);
  CHECK(ja.base.refcount == 3);      /* list + manual's waker + joiner node */
  cf_waiter_cancel(&jb.base.waiter); /* b stops waiting */
  CHECK(jb.base.refcount == 2);
  m.ready = 1;
  cf_waker_wake_by_ref(&m.waker);
  cf_executor_run(&ex, 1);
  CHECK(t.completed == 1);
  CHECK(ja.base.state == CF_TASK_SCHEDULED);
  CHECK(jb.base.state == CF_TASK_IDLE);
  CHECK(cf_waitlist_empty(&t.base.joiners));
  wa.ready = wb.ready = 1;
  cf_executor_run(&ex, 10);
  cf_waker_wake_by_ref(&wb.waker);
  cf_executor_run(&ex, 10);
  cf_waker_drop(&m.waker);
  cf_waker_drop(&wa.waker);
  cf_waker_drop(&wb.waker);
  CHECK(t.freed && ja.freed && jb.freed);
}

/* counts wakes of the combinator's own waker */
static int parent_wakes, parent_refs;
static void pw_clone(void *d) { (void)d, parent_refs++; }
static void pw_wake(void *d) { (void)d, parent_wakes++; }
static void pw_drop(void *d) { (void)d, parent_refs--; }
static const cf_waker_vtable pw_vt = {pw_clone, pw_wake, pw_drop};

static void test_group(void) {
  parent_wakes = parent_refs = 0;
  cf_waker parent = {&pw_vt, NULL};
  cf_group *g = cf_group_new(3);
  CHECK(g->nqueued == 3);
  cf_group_set_parent(g, &parent);
  CHECK(parent_refs == 1);
  cf_group_set_parent(g, &parent); /* same owner: no new clone */
  CHECK(parent_refs == 1);
  long order[3];
  for (int i = 0; i < 3; i++)
    order[i] = cf_group_next_ready(g);
  CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2);
  CHECK(cf_group_next_ready(g) == -1);
  /* children keep wakers, as leaf futures would */
  cf_waker w[3], kept[3];
  for (int i = 0; i < 3; i++) {
    cf_context cx = cf_group_context(g, (size_t)i, &w[i]);
    kept[i] = cf_waker_clone(cx.waker);
  }
  CHECK(g->refcount == 4);
  cf_waker_wake_by_ref(&kept[2]);
  cf_waker_wake_by_ref(&kept[2]); /* queued once */
  cf_waker_wake_by_ref(&kept[0]);
  CHECK(parent_wakes == 2);
  CHECK(cf_group_next_ready(g) == 2);
  CHECK(cf_group_next_ready(g) == 0);
  CHECK(cf_group_next_ready(g) == -1);
  /* released while wakers are still out: memory stays until they drop */
  cf_group_release(g);
  CHECK(parent_refs == 0);
  cf_waker_wake_by_ref(&kept[1]); /* harmless after release */
  CHECK(parent_wakes == 2);
  for (int i = 0; i < 3; i++)
    cf_waker_drop(&kept[i]); /* last drop frees (asan checks) */
}

static void test_heap(void) {
  cf_heap h;
  cf_heap_init(&h);
  enum { N = 1000 };
  cf_heap_node *nodes = calloc(N, sizeof *nodes);
  unsigned x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    nodes[i].deadline = x % 5000;
    nodes[i].index = CF_HEAP_NONE;
    CHECK(cf_heap_push(&h, &nodes[i]) == 0);
  }
  /* remove every third node (cancelled sleeps) */
  for (int i = 0; i < N; i += 3)
    cf_heap_remove(&h, &nodes[i]);
  for (int i = 0; i < N; i += 3)
    CHECK(!cf_heap_contains(&nodes[i]));
  uint64_t last = 0;
  size_t popped = 0;
  cf_heap_node *n;
  while ((n = cf_heap_min(&h))) {
    CHECK(n->deadline >= last);
    last = n->deadline;
    cf_heap_remove(&h, n);
    popped++;
  }
  CHECK(popped == N - (N + 2) / 3);
  cf_heap_free(&h);
  free(nodes);
}

/* Equal deadlines leave the heap in the order they were pushed (a node
 * pushed again, like a re-armed sleep, goes behind the ones already there),
 * also after removals reshaped the heap. */
static void test_heap_fifo_ties(void) {
  cf_heap h;
  cf_heap_init(&h);
  enum { N = 2000 };
  cf_heap_node *nodes = calloc(N, sizeof *nodes);
  size_t *order = calloc(N, sizeof *order); /* push rank of each node */
  /* all equal: first in, first out */
  for (int i = 0; i < 8; i++) {
    nodes[i].deadline = 10;
    nodes[i].index = CF_HEAP_NONE;
    CHECK(cf_heap_push(&h, &nodes[i]) == 0);
  }
  for (int i = 0; i < 8; i++) {
    CHECK(cf_heap_min(&h) == &nodes[i]);
    cf_heap_remove(&h, cf_heap_min(&h));
  }
  CHECK(h.len == 0);
  /* mixed: few distinct deadlines, many ties, removals and pushes again */
  unsigned x = 777;
  size_t rank = 0;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    nodes[i].deadline = (x >> 8) % 7;
    nodes[i].index = CF_HEAP_NONE;
    order[i] = rank++;
    CHECK(cf_heap_push(&h, &nodes[i]) == 0);
  }
  for (int i = 0; i < N; i += 5)
    cf_heap_remove(&h, &nodes[i]);
  for (int i = 0; i < N; i += 10) { /* half of them come back, behind the rest */
    order[i] = rank++;
    CHECK(cf_heap_push(&h, &nodes[i]) == 0);
  }
  cf_heap_node *n, *prev = NULL;
  size_t popped = 0, bad = 0;
  while ((n = cf_heap_min(&h))) {
    if (prev && (n->deadline < prev->deadline ||
                 (n->deadline == prev->deadline && order[n - nodes] < order[prev - nodes])))
      bad++;
    prev = n;
    cf_heap_remove(&h, n);
    popped++;
  }
  CHECK(bad == 0);
  CHECK(popped == N - N / 5 + N / 10);
  cf_heap_free(&h);
  free(order);
  free(nodes);
}

static void test_notify_pass_on(void) {
  parent_wakes = parent_refs = 0;
  cf_waker parent = {&pw_vt, NULL};
  cf_waitlist l;
  cf_waitlist_init(&l);
  cf_waiter a, b, c;
  cf_waiter_init(&a);
  cf_waiter_init(&b);
  cf_waiter_init(&c);
  cf_context ca = {&parent, &a}, cb = {&parent, &b}, cc = {&parent, &c};
  cf_waitlist_register(&l, &ca);
  cf_waitlist_register(&l, &cb);
  cf_waitlist_register(&l, &cc);
  /* one unit: the first waiter is promised it */
  CHECK(cf_waitlist_notify_one(&l) == 1);
  CHECK(l.notified == 1 && a.notified_by == &l && !cf_waiter_linked(&a));
  /* a is cancelled before it used the unit: b gets the promise */
  cf_waiter_cancel(&a);
  CHECK(a.notified_by == NULL && l.notified == 1);
  CHECK(b.notified_by == &l && !cf_waiter_linked(&b));
  CHECK(cf_waiter_linked(&c) && c.notified_by == NULL);
  /* b uses it */
  cf_waiter_consume(&b);
  CHECK(l.notified == 0 && b.notified_by == NULL);
  cf_waiter_cancel(&b); /* nothing to pass on */
  CHECK(cf_waiter_linked(&c) && l.notified == 0);
  /* a notified waiter that waits again gives its promise back */
  cf_waitlist_notify_one(&l);
  CHECK(c.notified_by == &l && l.notified == 1);
  cf_waitlist_register(&l, &cc);
  CHECK(c.notified_by == NULL && l.notified == 0 && cf_waiter_linked(&c));
  /* the last waiter cancelled with a promise and nobody to pass it to */
  cf_waitlist_notify_one(&l);
  cf_waiter_cancel(&c);
  CHECK(l.notified == 0 && cf_waitlist_empty(&l));
  CHECK(parent_refs == 0);
}

/* The executor stamps spawns and wakes with its clock, and reports events. */
static uint64_t fake_now;
static uint64_t fake_clock(cf_executor *ex) {
  (void)ex;
  return fake_now;
}
static char events[32];
static void record_event(cf_executor *ex, cf_task *t, int ev) {
  (void)ex;
  (void)t;
  char c[2] = {"sPpwcx"[ev], 0}; /* spawn, Poll, poll end, wake, complete, cancel */
  strncat(events, c, sizeof events - strlen(events) - 1);
}

static void test_clock_and_events(void) {
  cf_executor ex;
  cf_executor_init(&ex, NULL);
  ex.clock = fake_clock;
  ex.on_event = record_event;
  events[0] = 0;
  manual m;
  manual_init(&m, 'm', NULL);
  test_task t = {0};
  fake_now = 100;
  cf_task_spawn(&t.base, &ex, &tt_hooks, &m.base);
  CHECK(t.base.woken_at == 100);
  fake_now = 150;
  cf_executor_run(&ex, 10);
  CHECK(t.base.woken_at == 100); /* a poll is not a wake */
  fake_now = 170;
  cf_waker_wake_by_ref(&m.waker);
  CHECK(t.base.woken_at == 170);
  m.ready = 1;
  cf_executor_run(&ex, 10);
  cf_waker_drop(&m.waker);
  /* spawn, poll, poll end, wake, poll, poll end, complete */
  CHECK(strcmp(events, "sPpwPpc") == 0);
  CHECK(t.freed);
}

static const cf_test tests[] = {
    TEST(fifo_and_wake_once),
    TEST(clock_and_events),
    TEST(notified_while_running_and_budget),
    TEST(abort),
    TEST(cancel_all),
    TEST(joiners),
    TEST(group),
    TEST(heap),
    TEST(heap_fifo_ties),
    TEST(notify_pass_on),
};

int main(int argc, char **argv) { return RUN_TESTS(argc, argv, tests); }
