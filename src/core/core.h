/*
 * core.h — the executor side of the core: tasks, the ready queue, combinator
 * groups and the deadline heap. No lua.h, no uv.h: bindings and drivers sit
 * on top of this.
 *
 * Ground rules
 * - A task is polled only by cf_executor_run, only after it was woken (or
 *   when first spawned). wake() puts it on the ready queue at most once; a
 *   wake that arrives while the task runs makes it run once more afterwards.
 * - The executor's list of live tasks holds one reference on each task until
 *   it completes; every stored waker holds one more. The owner's free hook
 *   runs when the count drops to zero, possibly from a libuv callback, so it
 *   must not touch Lua.
 * - Completion (ready or cancelled) happens inside cf_executor_run, where the
 *   binding may run Lua: the complete hook is the place to release Lua refs.
 */
#ifndef CF_CORE_CORE_H
#define CF_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "cfuture.h"
#include "list.h"

/* Thread-local storage of this library: the initial-exec model, 136 bytes
 * in the static TLS glibc keeps for modules loaded later.
 * Lua loads cfuture with dlopen, where the default model allocates each
 * thread's block on its first access (dynamic TLS), which GCC 12's
 * LeakSanitizer misreads on glibc 2.36 and crashes in at exit, while
 * libuv's pool threads still run; static TLS is also cheaper to reach. */
#define CF_THREAD_LOCAL _Thread_local __attribute__((tls_model("initial-exec")))

/* ---- tasks ------------------------------------------------------------- */

typedef enum cf_task_state {
  CF_TASK_IDLE,      /* waiting for a waker */
  CF_TASK_SCHEDULED, /* on the ready queue */
  CF_TASK_RUNNING,   /* being polled */
  CF_TASK_NOTIFIED,  /* woken while running: poll again */
  CF_TASK_COMPLETE   /* root future ready, or cancelled */
} cf_task_state;

typedef struct cf_task cf_task;
typedef struct cf_executor cf_executor;

typedef struct cf_task_hooks {
  /* The task completed (cancelled says how); the root future was already
   * dropped if it was cancelled. Runs inside cf_executor_run. */
  void (*complete)(cf_task *t, int cancelled);
  /* The last reference went away: free the memory. No Lua here. */
  void (*free)(cf_task *t);
} cf_task_hooks;

struct cf_task {
  cf_link queue; /* ready queue */
  cf_link all;   /* executor's live tasks */
  const cf_task_hooks *hooks;
  cf_executor *ex;
  /* The root future, polled by the executor. Its poll may replace it with
   * one that stands for it from then on (a task's entry hands over to the
   * future it started). */
  cf_future *future;
  cf_waitlist joiners; /* poll sites waiting for completion */
  cf_waiter waiter;    /* the task's own poll-site node for its root */
  uint64_t id;
  uint64_t woken_at; /* ex->clock at its spawn or last wake (0 without a clock) */
  uint32_t refcount;
  uint32_t polls;
  uint8_t state;            /* cf_task_state */
  uint8_t cancel_requested; /* abort(): drop the root at the next run */
  uint8_t cancelled;        /* completed by cancellation */
  uint8_t dropping;         /* its root is being dropped: it completes once that returns */
};

struct cf_executor {
  cf_link ready; /* FIFO of scheduled tasks */
  cf_link tasks; /* every task not yet complete */
  size_t nready;
  size_t ntasks;
  uint64_t next_id;
  cf_task *current;    /* task being polled, or NULL */
  cf_task *completing; /* task whose complete hook runs, or NULL */
  void *user;          /* the binding's runtime */
  /* Called when the ready queue goes from empty to not empty, so a driver
   * blocked (or about to block) waiting for I/O knows to come back. */
  void (*on_ready)(cf_executor *ex);
  /* Optional: the driver's clock, read when a task is spawned or woken
   * (cf_task.woken_at: how long a task has waited, for dumps). */
  uint64_t (*clock)(cf_executor *ex);
  /* Optional: told of every task event (cf_task_event), for tracing. It
   * may run in a driver's callback (wake), so it must not run Lua. */
  void (*on_event)(cf_executor *ex, cf_task *t, int event);
};

typedef enum cf_task_event {
  CF_EV_SPAWN,
  CF_EV_POLL,     /* a poll starts */
  CF_EV_POLL_END, /* the poll returned */
  CF_EV_WAKE,     /* an idle task was scheduled again */
  CF_EV_COMPLETE,
  CF_EV_CANCEL /* completed by cancellation */
} cf_task_event;

void cf_executor_init(cf_executor *ex, void *user);
/* Poll ready tasks in FIFO order, at most `budget` polls. Tasks woken during
 * the run are polled in the same run if the budget allows. Returns the
 * number of polls made. */
size_t cf_executor_run(cf_executor *ex, size_t budget);
static inline int cf_executor_has_ready(const cf_executor *ex) { return ex->nready > 0; }
/* Cancel every live task now (runtime shutdown): drop roots, complete. */
void cf_executor_cancel_all(cf_executor *ex);
/* A poll or a completion was cut short by a non-local exit (a Lua error
 * raised by C code around a resume, or in a complete hook): the task never
 * came back to cf_executor_run. A polled task is handed back, cancelled, so
 * that its drop runs at the next run; a completing one finishes completing
 * (joiners woken, the list's reference released). No-op outside such a cut. */
void cf_executor_interrupted(cf_executor *ex);

/* Initialise t (refcount 1, owned by the executor's task list) around its
 * root future and schedule it. */
void cf_task_spawn(cf_task *t, cf_executor *ex, const cf_task_hooks *hooks, cf_future *root);
void cf_task_ref(cf_task *t);
void cf_task_unref(cf_task *t);
void cf_task_wake(cf_task *t);
/* Request cancellation: the root future is dropped the next time the
 * executor gets to the task (at once if it is idle). No-op once complete. */
void cf_task_abort(cf_task *t);
/* Cancel t now, outside the executor's run (a host shutting down from
 * inside a task): its root future is dropped and it completes before this
 * returns. A task whose poll is on the stack (RUNNING or NOTIFIED: the
 * caller's own) is only marked, as cf_task_abort does. Returns 1 if t
 * completed here. If a non-local exit cuts its completion short, the caller
 * hands the saved `completing` back to cf_executor_completion_cut. */
int cf_task_cancel_now(cf_task *t);
/* After a cut-short cf_task_cancel_now: the completing task finishes
 * completing and `prev` (ex->completing before the call) is restored. */
void cf_executor_completion_cut(cf_executor *ex, cf_task *prev);
static inline int cf_task_is_complete(const cf_task *t) { return t->state == CF_TASK_COMPLETE; }
/* A waker for t (borrowed: clone it to keep it). */
extern const cf_waker_vtable cf__task_waker_vt;
static inline cf_waker cf_task_waker(cf_task *t) {
  cf_waker w = {&cf__task_waker_vt, t};
  return w;
}

/* ---- groups: per-child wakers for combinators -------------------------- */

/* A group gives each child of a combinator (join, select, scope) a waker of
 * its own, so a wake-up re-polls only that child, not all of them (the idea
 * of futures-rs FuturesUnordered). The combinator owns one reference; each
 * stored child waker holds one more, so the memory outlives a dropped
 * combinator until the last timer or waitlist lets go of its waker. */
typedef struct cf_group cf_group;

typedef struct cf_group_child {
  cf_link ready_link;
  cf_group *group;
  cf_waiter waiter;
  uint8_t queued;
} cf_group_child;

struct cf_group {
  uint32_t refcount;
  uint8_t released;
  cf_waker parent;
  cf_link ready; /* children whose waker fired */
  size_t nqueued;
  size_t n;
  cf_group_child child[];
};

/* A group of n children, all initially ready (so the first poll polls each). */
cf_group *cf_group_new(size_t n);
/* Remember the waker of the combinator's current poll. */
void cf_group_set_parent(cf_group *g, const cf_waker *w);
/* Pop the index of a child whose waker fired, or -1. */
long cf_group_next_ready(cf_group *g);
/* Context for polling child i: `w` is storage for the child's waker. */
cf_context cf_group_context(cf_group *g, size_t i, cf_waker *w);
/* Mark child i ready again (a combinator that must re-poll it). */
void cf_group_requeue(cf_group *g, size_t i);
/* The combinator is done with the group: cancel child waiters, release. */
void cf_group_release(cf_group *g);

/* ---- deadline heap ----------------------------------------------------- */

/* A binary min-heap of deadlines; nodes are embedded in their owners.
 * Equal deadlines leave in the order they were pushed (libuv orders its
 * timers by (timeout, start_id) the same way): a push stamps the node with
 * the heap's next sequence number, the tie-breaker. */
typedef struct cf_heap_node {
  uint64_t deadline;
  uint64_t seq; /* set by cf_heap_push */
  size_t index; /* position in the heap, CF_HEAP_NONE when not in it */
} cf_heap_node;

#define CF_HEAP_NONE ((size_t)-1)

typedef struct cf_heap {
  cf_heap_node **items;
  size_t len, cap;
  uint64_t seq; /* stamp of the next push */
} cf_heap;

void cf_heap_init(cf_heap *h);
void cf_heap_free(cf_heap *h);
int cf_heap_push(cf_heap *h, cf_heap_node *n); /* 0, or -1 when out of memory */
void cf_heap_remove(cf_heap *h, cf_heap_node *n);
static inline cf_heap_node *cf_heap_min(const cf_heap *h) { return h->len ? h->items[0] : NULL; }
static inline int cf_heap_contains(const cf_heap_node *n) { return n->index != CF_HEAP_NONE; }

#endif
