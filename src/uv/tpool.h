/*
 * tpool.h — OS threads that run jobs: spawned threads (one job each) and
 * pools (n threads taking jobs from a bounded queue), under a hub that
 * owns the runtime's inbox and joins every thread at the end.
 *
 * Ground rules
 * - No Lua here. What a worker holds across its jobs (a Lua state) comes
 *   from the worker vtable (enter/leave, on the worker thread); what a job
 *   does from the job vtable (run on the worker, done on the loop thread).
 * - A worker reaches the loop thread only by mail through the hub's inbox
 *   (a job's done mail, a pool's space mail, a pool worker's exit mail).
 *   Everything else here runs on the loop thread.
 * - Lock order: a pool's mutex, then a channel's, then an inbox's or a
 *   parker's (thread.h). Under a pool's mutex a worker posts mail and the
 *   loop thread cancels a parker or wakes wakers; nothing takes a pool's
 *   mutex while holding one of the others.
 */
#ifndef CF_UV_TPOOL_H
#define CF_UV_TPOOL_H

#include "../core/core.h"
#include "thread.h"

typedef struct cfu_worker cfu_worker;
typedef struct cfu_tjob cfu_tjob;
typedef struct cfu_tpool cfu_tpool;

/* ---- the hub: one per runtime ------------------------------------------------------ */

typedef struct cfu_threads {
  cfu_inbox inbox;
  cf_link threads; /* cfu_worker not joined yet */
  int closed;      /* stopped: no thread is left, the inbox is shut */
} cfu_threads;

int cfu_threads_init(cfu_threads *h, uv_loop_t *loop);
/* The inbox other mail of this runtime goes through (a channel future's wake). */
static inline cfu_inbox *cfu_threads_inbox(cfu_threads *h) { return &h->inbox; }
/* Remote work started / ended: the loop stays alive meanwhile (no-ops once stopped). */
void cfu_threads_hold(cfu_threads *h);
void cfu_threads_release(cfu_threads *h);
/* Cancel every thread's parker and join each (close the pools first, or
 * their workers drain the queue before they leave); then shut the inbox
 * (undelivered mail is dropped) and free the threads. A spawned job's
 * thread becomes NULL. */
void cfu_threads_stop(cfu_threads *h);

/* ---- workers ----------------------------------------------------------------------------- */

typedef struct cfu_worker_vt {
  /* worker thread, first: the state its jobs get (may be NULL) */
  void *(*enter)(cfu_parker *pk, void *data);
  void (*leave)(void *state);  /* worker thread, last */
  void (*release)(void *data); /* loop thread, when the worker is freed */
} cfu_worker_vt;

struct cfu_worker {
  cf_link link; /* cfu_threads.threads */
  uv_thread_t tid;
  cfu_parker parker;
  const cfu_worker_vt *vt;
  void *data;
  cfu_tjob *job;   /* spawned: the one job it runs */
  cfu_tpool *pool; /* pool worker */
  cfu_mail exited; /* pool worker: it has left (the loop thread joins it) */
};

/* A worker not started yet, or NULL when out of memory (data is not taken then). */
cfu_worker *cfu_worker_new(cfu_threads *h, const cfu_worker_vt *vt, void *data);

/* ---- jobs -------------------------------------------------------------------------------- */

typedef struct cfu_tjob_vt {
  void (*run)(cfu_tjob *j, void *state); /* worker thread, no lock held */
  void (*done)(cfu_tjob *j);             /* loop thread: the run is over */
} cfu_tjob_vt;

struct cfu_tjob {
  const cfu_tjob_vt *vt;
  cfu_threads *hub;
  cfu_tpool *pool;    /* NULL for a spawned job */
  cfu_worker *thread; /* spawned: its thread (loop thread); pool: the runner (pool mutex) */
  cf_link qlink;      /* the pool's queue (pool mutex) */
  uint8_t queued;     /* on the pool's queue (pool mutex) */
  uint8_t swoken;     /* loop thread: woken because the queue has room */
  cf_link swait;      /* loop thread: waiting for room on the pool's queue */
  cf_waker swaker;    /* loop thread */
  cfu_mail done;
};

void cfu_tjob_init(cfu_tjob *j, cfu_threads *h, const cfu_tjob_vt *vt);
/* Loop thread, before the job's memory goes. */
void cfu_tjob_fini(cfu_tjob *j);
/* Start t running j (once). 0, or the error; t is freed then. */
int cfu_tjob_spawn(cfu_tjob *j, cfu_worker *t);
/* Ask j to stop: 1 when it was taken off its pool's queue (it will not run
 * and no done mail comes), else its runner's parker is cancelled, if any. */
int cfu_tjob_stop(cfu_tjob *j);
/* j will not be submitted: pass on a wake for room it got and did not use. */
void cfu_tjob_pass_room(cfu_tjob *j);
/* Leave the waiters for room (nobody will submit j any more). */
void cfu_tjob_unwait(cfu_tjob *j);

/* ---- pools --------------------------------------------------------------------------------- */

struct cfu_tpool {
  uv_mutex_t mu;
  uv_cond_t cond; /* workers wait here for jobs */
  cf_link queue;
  size_t queued, cap;
  int closing;    /* no new jobs; workers leave once the queue is empty */
  int want_space; /* someone waits for room: post `space` on the next take */
  cfu_mail space;
  cf_link space_waiters;         /* loop thread: cfu_tjob.swait */
  int nthreads, alive;           /* alive: loop thread, workers not joined yet */
  void (*on_exit)(cfu_tpool *p); /* loop thread: a worker left (alive went down) */
  cfu_threads *hub;
};

enum { CFU_TPOOL_FULL, CFU_TPOOL_QUEUED, CFU_TPOOL_CLOSED };

/* 0, or UV_ENOMEM. */
int cfu_tpool_init(cfu_tpool *p, cfu_threads *h, size_t cap, void (*on_exit)(cfu_tpool *p));
/* Once no worker is alive. */
void cfu_tpool_destroy(cfu_tpool *p);
/* Start t as one more worker of p. 0, or the error; t is freed then. */
int cfu_tpool_start(cfu_tpool *p, cfu_worker *t);
/* Take no new jobs; the workers finish the queue and leave. */
void cfu_tpool_close(cfu_tpool *p);
/* Queue j (its pool set) or, if the queue is full, wake w once there is room. */
int cfu_tpool_submit(cfu_tjob *j, const cf_waker *w);
size_t cfu_tpool_queued(cfu_tpool *p);
/* Loop thread (the only writer of these). */
static inline int cfu_tpool_size(const cfu_tpool *p) { return p->nthreads; }
static inline int cfu_tpool_closing(const cfu_tpool *p) { return p->closing; }
static inline int cfu_tpool_idle(const cfu_tpool *p) { return p->alive == 0; }

#endif
