/*
 * task.c — tasks and the executor's ready queue.
 *
 * Ground rules (see core.h): state changes happen only in the named
 * transition functions below; a task is on the ready queue at most once; a
 * complete task is never polled again.
 *
 * The transitions (each asserts where it starts from):
 *   spawned  -> SCHEDULED   to_scheduled (spawn)
 *   IDLE     -> SCHEDULED   to_scheduled (wake)
 *   SCHEDULED-> RUNNING     to_running (popped from the ready queue)
 *   RUNNING  -> NOTIFIED    to_notified (woken during its poll)
 *   NOTIFIED -> SCHEDULED   to_scheduled (the poll returned pending)
 *   RUNNING  -> IDLE        to_idle (the poll returned pending, no wake)
 *   any but COMPLETE -> COMPLETE   to_complete (ready, or cancelled)
 * plus the cut-short poll (cf_executor_interrupted): RUNNING or NOTIFIED
 * -> IDLE, then woken.
 */
#include <assert.h>
#include <stdlib.h>

#include "core.h"

static void task_waker_clone(void *data) { cf_task_ref((cf_task *)data); }
static void task_waker_wake(void *data) { cf_task_wake((cf_task *)data); }
static void task_waker_drop(void *data) { cf_task_unref((cf_task *)data); }

const cf_waker_vtable cf__task_waker_vt = {task_waker_clone, task_waker_wake, task_waker_drop};

void cf_executor_init(cf_executor *ex, void *user) {
  cf__list_init(&ex->ready);
  cf__list_init(&ex->tasks);
  ex->nready = ex->ntasks = 0;
  ex->next_id = 1;
  ex->current = NULL;
  ex->completing = NULL;
  ex->user = user;
  ex->on_ready = NULL;
  ex->clock = NULL;
  ex->on_event = NULL;
}

#define EVENT(ex, t, ev)                                                                           \
  do {                                                                                             \
    if ((ex)->on_event) (ex)->on_event((ex), (t), (ev));                                           \
  } while (0)

void cf_task_ref(cf_task *t) {
  assert(t->refcount > 0); /* a reference on a freed task */
  t->refcount++;
}

void cf_task_unref(cf_task *t) {
  assert(t->refcount > 0);
  if (--t->refcount == 0) t->hooks->free(t);
}

/* Spawned, or woken while idle, or notified during its poll: on the ready
 * queue (once). */
static void to_scheduled(cf_task *t) {
  cf_executor *ex = t->ex;
  assert(t->state == CF_TASK_IDLE || t->state == CF_TASK_NOTIFIED);
  assert(!cf__link_linked(&t->queue));
  if (ex->clock) t->woken_at = ex->clock(ex);
  t->state = CF_TASK_SCHEDULED;
  cf__list_push_back(&ex->ready, &t->queue);
  if (ex->nready++ == 0 && ex->on_ready) ex->on_ready(ex);
}

void cf_task_spawn(cf_task *t, cf_executor *ex, const cf_task_hooks *hooks, cf_future *root) {
  t->queue.next = t->queue.prev = NULL;
  t->hooks = hooks;
  t->ex = ex;
  t->future = root;
  cf_waitlist_init(&t->joiners);
  cf_waiter_init(&t->waiter);
  t->id = ex->next_id++;
  t->woken_at = 0;
  t->refcount = 1; /* the executor's task list */
  t->polls = 0;
  t->cancel_requested = 0;
  t->cancelled = 0;
  t->dropping = 0;
  t->state = CF_TASK_IDLE; /* until scheduled, just below */
  cf__list_push_back(&ex->tasks, &t->all);
  ex->ntasks++;
  EVENT(ex, t, CF_EV_SPAWN);
  to_scheduled(t);
}

/* Popped from the ready queue, to be polled. */
static void to_running(cf_task *t) {
  assert(t->state == CF_TASK_SCHEDULED && !t->cancel_requested);
  t->state = CF_TASK_RUNNING;
  t->polls++;
}

/* Woken during its own poll: it runs once more afterwards. */
static void to_notified(cf_task *t) {
  assert(t->state == CF_TASK_RUNNING);
  t->state = CF_TASK_NOTIFIED;
}

/* Its poll returned pending and nothing woke it meanwhile: waits for a
 * waker. */
static void to_idle(cf_task *t) {
  assert(t->state == CF_TASK_RUNNING);
  t->state = CF_TASK_IDLE;
}

void cf_task_wake(cf_task *t) {
  if (t->dropping) return; /* completing: nothing left to poll */
  switch (t->state) {
  case CF_TASK_IDLE:
    EVENT(t->ex, t, CF_EV_WAKE);
    to_scheduled(t);
    break;
  case CF_TASK_RUNNING: to_notified(t); break;
  default: break; /* already queued, notified or complete */
  }
}

void cf_task_abort(cf_task *t) {
  if (t->state == CF_TASK_COMPLETE) return;
  t->cancel_requested = 1;
  cf_task_wake(t);
}

/* The end of a completion: its joiners learn of it, the task list lets go. */
static void finish_complete(cf_task *t) {
  cf_waitlist_wake_all(&t->joiners);
  cf_task_unref(t); /* the task list's reference */
}

/* The root future is ready, or the task is cancelled: it completes, once. */
static void to_complete(cf_task *t, int cancelled) {
  cf_executor *ex = t->ex;
  assert(t->state != CF_TASK_COMPLETE);
  /* off the ready queue first: a run nested in the drop (a cleanup that
   * drives the loop) must not find it there */
  if (cf__link_linked(&t->queue)) {
    cf__list_remove(&t->queue);
    ex->nready--;
  }
  if (cancelled) {
    t->dropping = 1; /* the drop's code cannot wake it or complete it a second time */
    cf_future_drop(t->future);
  }
  cf_waiter_cancel(&t->waiter);
  t->state = CF_TASK_COMPLETE;
  t->cancelled = (uint8_t)cancelled;
  cf__list_remove(&t->all);
  ex->ntasks--;
  EVENT(ex, t, cancelled ? CF_EV_CANCEL : CF_EV_COMPLETE);
  cf_task *outer = ex->completing; /* set when cf_task_cancel_now runs from a hook */
  ex->completing = t;
  t->hooks->complete(t, cancelled);
  ex->completing = outer;
  finish_complete(t);
}

size_t cf_executor_run(cf_executor *ex, size_t budget) {
  size_t n = 0;
  while (n < budget) {
    cf_link *link = cf__list_pop_front(&ex->ready);
    if (!link) break;
    assert(ex->nready > 0);
    ex->nready--;
    cf_task *t = cf__container_of(link, cf_task, queue);
    assert(t->state == CF_TASK_SCHEDULED); /* the queue holds scheduled tasks only */
    n++;
    if (t->cancel_requested) {
      to_complete(t, 1);
      continue;
    }
    to_running(t);
    cf_task *prev = ex->current;
    ex->current = t;
    cf_waker w = cf_task_waker(t);
    cf_context cx = {&w, &t->waiter};
    EVENT(ex, t, CF_EV_POLL);
    cf_poll r = cf_future_poll(t->future, &cx);
    EVENT(ex, t, CF_EV_POLL_END);
    ex->current = prev;
    if (r == CF_READY)
      to_complete(t, 0);
    else if (t->cancel_requested)
      to_complete(t, 1);
    else if (t->state == CF_TASK_NOTIFIED)
      to_scheduled(t);
    else
      to_idle(t);
  }
  return n;
}

int cf_task_cancel_now(cf_task *t) {
  switch (t->state) {
  case CF_TASK_COMPLETE: return 0;
  case CF_TASK_RUNNING:
  case CF_TASK_NOTIFIED: /* its poll is on the stack: it ends when the poll returns */
    t->cancel_requested = 1;
    return 0;
  default:
    t->cancel_requested = 1;
    if (t->dropping) return 0; /* its cancellation is under way (asked from its own cleanup) */
    to_complete(t, 1);         /* off the ready queue if it was on it */
    return 1;
  }
}

void cf_executor_completion_cut(cf_executor *ex, cf_task *prev) {
  cf_task *t = ex->completing;
  ex->completing = prev;
  if (t && t != prev) finish_complete(t);
}

void cf_executor_cancel_all(cf_executor *ex) {
  while (!cf__list_empty(&ex->tasks)) {
    cf_task *t = cf__container_of(ex->tasks.next, cf_task, all);
    t->cancel_requested = 1;
    to_complete(t, 1);
  }
}

/* Its poll was cut short (RUNNING, or NOTIFIED if woken meanwhile): idle,
 * to be woken at once into its cancellation. */
static void to_interrupted(cf_task *t) {
  assert(t->state == CF_TASK_RUNNING || t->state == CF_TASK_NOTIFIED);
  t->state = CF_TASK_IDLE;
}

void cf_executor_interrupted(cf_executor *ex) {
  cf_task *t = ex->completing;
  if (t) { /* its hook was cut short: the rest of the completion still runs */
    ex->completing = NULL;
    ex->current = NULL;
    finish_complete(t);
    return;
  }
  t = ex->current;
  if (!t) return;
  ex->current = NULL; /* runs do not nest: a poll cannot drive the executor */
  t->cancel_requested = 1;
  to_interrupted(t);
  cf_task_wake(t);
}
