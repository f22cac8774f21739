/*
 * cfuture.h — public C API of cfuture, an async runtime for Lua on libuv.
 *
 * The core model is Rust's: a future is polled with a context that carries a
 * waker; poll returns CF_READY or CF_PENDING; a pending future keeps the waker
 * and wakes it when it can make progress; the executor polls a task again only
 * after its waker fired.
 *
 * This header needs neither lua.h nor uv.h: the core types are plain C, and
 * the embedding entry points take the host's lua_State / uv_loop_t by pointer.
 */
#ifndef CFUTURE_H
#define CFUTURE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CFUTURE_VERSION "0.1.0"

/* ---- poll ------------------------------------------------------------- */

typedef enum cf_poll { CF_PENDING = 0, CF_READY = 1 } cf_poll;

/* ---- waker ------------------------------------------------------------ */

/* A waker is a (vtable, data) pair, like Rust's RawWaker. Every cf_waker
 * value that is stored owns one reference on its data; a waker passed in a
 * context is borrowed for the duration of the poll only. */
typedef struct cf_waker_vtable {
  void (*clone)(void *data);       /* take one more reference */
  void (*wake_by_ref)(void *data); /* schedule the owner; keep the reference */
  void (*drop)(void *data);        /* release one reference */
} cf_waker_vtable;

typedef struct cf_waker {
  const cf_waker_vtable *vt; /* NULL: empty */
  void *data;
} cf_waker;

static inline cf_waker cf_waker_clone(const cf_waker *w) {
  w->vt->clone(w->data);
  return *w;
}
static inline void cf_waker_wake_by_ref(const cf_waker *w) {
  if (w->vt) w->vt->wake_by_ref(w->data);
}
static inline void cf_waker_drop(cf_waker *w) {
  if (w->vt) {
    const cf_waker_vtable *vt = w->vt;
    w->vt = NULL;
    vt->drop(w->data);
  }
}
/* Wake and release the stored reference. */
static inline void cf_waker_wake(cf_waker *w) {
  if (w->vt) {
    cf_waker tmp = *w;
    w->vt = NULL;
    tmp.vt->wake_by_ref(tmp.data);
    tmp.vt->drop(tmp.data);
  }
}
static inline int cf_waker_will_wake(const cf_waker *a, const cf_waker *b) {
  return a->vt == b->vt && a->data == b->data;
}
/* Store a clone of `from` in `slot`, unless it already wakes the same owner. */
static inline void cf_waker_set(cf_waker *slot, const cf_waker *from) {
  if (cf_waker_will_wake(slot, from)) return;
  cf_waker_drop(slot);
  *slot = cf_waker_clone(from);
}

/* ---- intrusive list ---------------------------------------------------- */

typedef struct cf_link {
  struct cf_link *prev, *next; /* next == NULL: not on a list */
} cf_link;

/* ---- waiters ----------------------------------------------------------- */

/* A waiter is the registration node of one poll site (a task, a coroutine
 * awaiting something, one branch of a join). A future that many poll sites
 * may wait on at once (a join handle, a channel) links the caller's waiter
 * into its wait list instead of keeping a single waker. The poll site owns
 * the node and calls cf_waiter_cancel when it stops polling that future. */
struct cf_waitlist;

typedef struct cf_waiter {
  cf_link link;
  cf_waker waker;
  struct cf_waitlist *notified_by; /* holds a notification from this list */
} cf_waiter;

/* A FIFO of waiters. `notified` counts notifications handed out by
 * cf_waitlist_notify_one and not yet consumed: a resource owner (a channel
 * with one message, a semaphore with one permit) notifies one waiter per
 * unit, and lets newcomers take only what is not promised to a notified
 * waiter, so waiters are served in arrival order. */
typedef struct cf_waitlist {
  cf_link head;
  size_t notified;
} cf_waitlist;

void cf_waiter_init(cf_waiter *w);
/* The poll site stops waiting: unlink, drop the waker, and pass a
 * notification it has not consumed on to the next waiter (so a cancelled
 * receiver never strands a message another receiver could take). */
void cf_waiter_cancel(cf_waiter *w);
int cf_waiter_linked(const cf_waiter *w);
/* The waiter used its notification (it took the message or permit). */
void cf_waiter_consume(cf_waiter *w);

void cf_waitlist_init(cf_waitlist *l);
int cf_waitlist_empty(const cf_waitlist *l);
/* Link the context's waiter at the back of the list (or keep its place if it
 * is already there) and make it hold the context's waker. */
struct cf_context;
void cf_waitlist_register(cf_waitlist *l, const struct cf_context *cx);
/* Wake every waiter / the first waiter (plain wakes, nothing promised). */
size_t cf_waitlist_wake_all(cf_waitlist *l);
int cf_waitlist_wake_one(cf_waitlist *l);
/* Wake the first waiter and promise it one unit (see cf_waitlist). */
int cf_waitlist_notify_one(cf_waitlist *l);

/* ---- future ------------------------------------------------------------ */

typedef struct cf_context {
  const cf_waker *waker; /* borrowed: clone it to keep it */
  cf_waiter *waiter;     /* the poll site's node (see cf_waiter) */
} cf_context;

typedef struct cf_future cf_future;

typedef struct cf_future_vtable {
  cf_poll (*poll)(cf_future *f, cf_context *cx);
  /* The poll site stops polling f: cancel pending work and release what f
   * holds (timers, wakers). The memory of f belongs to whoever allocated it. */
  void (*drop)(cf_future *f);
} cf_future_vtable;

struct cf_future {
  const cf_future_vtable *vt;
};

static inline cf_poll cf_future_poll(cf_future *f, cf_context *cx) { return f->vt->poll(f, cx); }
static inline void cf_future_drop(cf_future *f) {
  if (f->vt->drop) f->vt->drop(f);
}

/* ---- embedding --------------------------------------------------------- */

struct lua_State;
struct uv_loop_s;

typedef struct cf_runtime cf_runtime;

/* Open the module into L (as `require "cfuture.core"` would) and leave the
 * module table on the stack. The runtime gets a private libuv loop. Raises
 * on failure (call it through lua_pcall or luaL_requiref). */
int luaopen_cfuture_core(struct lua_State *L);

/* Open the module into L with its runtime on `loop`, a libuv loop the host
 * owns and runs (NULL: a private loop, as luaopen_cfuture_core). Sets
 * package.loaded["cfuture.core"], so `require "cfuture"` finds this
 * runtime, and leaves the module table on the stack. Returns 0, or -1 with
 * an error message on the stack (nothing is raised).
 *
 * On a host loop, tasks run from the host's own uv_run: a task woken by a
 * libuv callback (or by a host's cf_waker) runs in the same loop iteration,
 * through an idle handle that is active only while tasks are ready. A
 * sleeping task keeps the loop alive like any armed timer. block_on, run
 * and step still work (they run the host's loop too, non re-entrantly).
 * Shutdown: lua_close(L) cancels every task and closes cfuture's handles;
 * run the loop once more (uv_run(loop, UV_RUN_NOWAIT)) before
 * uv_loop_close so their close callbacks free them. A child process that
 * is still running is left running: its handle is closed with the rest. */
int cf_runtime_open(struct lua_State *L, struct uv_loop_s *loop);

/* The runtime of the cfuture module loaded in L, or NULL. */
cf_runtime *cf_runtime_of(struct lua_State *L);

/* The libuv loop the runtime runs on. */
struct uv_loop_s *cf_runtime_loop(cf_runtime *rt);

/* One non-blocking step: run ready tasks, poll I/O once without blocking,
 * run the tasks that woke; at most 1024 task polls in all. Returns 1 if
 * tasks are still alive (ready, sleeping or waiting for I/O), 0 if none
 * are, -1 if called from inside a task or a running block_on/run/step, or
 * after the runtime closed. */
int cf_runtime_step(cf_runtime *rt);

/* cf_runtime_step with at most `budget` task polls (>= 1; 0 returns -1).
 * I/O is polled even when the budget is spent; tasks left ready run at the
 * next step (backend_timeout is then 0). A poll runs a task until its next
 * await that is pending, so a budget bounds task switches, not time. */
int cf_runtime_step_budget(cf_runtime *rt, size_t budget);

/* To fold the runtime into another event loop: wait until backend_fd is
 * readable or backend_timeout milliseconds have passed (-1: no timeout;
 * 0: step at once, tasks are ready), then call cf_runtime_step. */
int cf_runtime_backend_fd(cf_runtime *rt);
int cf_runtime_backend_timeout(cf_runtime *rt);

/* Push onto L a Lua future over a host's C future f (Lua awaits, joins and
 * selects it like any future). Polls call f->vt->poll(f, cx) with the
 * task's context: a pending f keeps a clone of cx->waker and wakes it when
 * it can make progress (from a libuv callback or from the host's own code
 * on the loop thread). Once f is ready, push(L, f) pushes its results and
 * returns their count (or pushes an error value and returns -1 to raise
 * it). If the Lua future is dropped before f was ready (select, timeout,
 * abort, collection), f->vt->drop(f) cancels it. release(f), if not NULL,
 * is called exactly once when Lua is done with f: after push, or after the
 * drop, or when the runtime closes. Returns 0, or -1 if L has no cfuture
 * runtime. */
int cf_push_future(struct lua_State *L, cf_future *f,
                   int (*push)(struct lua_State *L, cf_future *f), void (*release)(cf_future *f));

/* Push onto L a future that runs run(arg) on libuv's thread pool (when it
 * is first polled). When it is awaited after run returned, push(L, arg)
 * pushes the results on the loop thread and returns their count (or pushes
 * an error value and returns -1 to raise it). release(arg), if not NULL, is
 * called exactly once: after push, or, if the future is dropped, once run
 * has returned (or never started). run must not touch Lua or the loop.
 * Returns 0, or -1 if L has no cfuture runtime or memory ran out. */
int cf_push_blocking(struct lua_State *L, void (*run)(void *arg),
                     int (*push)(struct lua_State *L, void *arg), void (*release)(void *arg),
                     void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CFUTURE_H */
