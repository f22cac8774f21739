/*
 * tpool.c — spawned threads and thread pools (see tpool.h).
 *
 * Threads: the loop thread, and each worker (its own OS thread). A worker
 * touches only its job (while running it), its pool under the pool's mutex,
 * and mail. Lock order: a pool's mutex, then an inbox's or a parker's.
 */
#include <stdlib.h>

#include "tpool.h"

/* ---- the hub ------------------------------------------------------------------------ */

int cfu_threads_init(cfu_threads *h, uv_loop_t *loop) {
  cf__list_init(&h->threads);
  h->closed = 0;
  return cfu_inbox_init(&h->inbox, loop);
}

void cfu_threads_hold(cfu_threads *h) {
  if (!h->closed) cfu_inbox_hold(&h->inbox);
}

void cfu_threads_release(cfu_threads *h) {
  if (!h->closed) cfu_inbox_release(&h->inbox);
}

static void worker_free(cfu_worker *t) {
  if (cf__link_linked(&t->link)) cf__list_remove(&t->link);
  cfu_parker_destroy(&t->parker);
  if (t->vt->release) t->vt->release(t->data);
  free(t);
}

void cfu_threads_stop(cfu_threads *h) {
  cf_link *l;
  for (l = h->threads.next; l != &h->threads; l = l->next)
    cfu_parker_cancel(&cf__container_of(l, cfu_worker, link)->parker);
  /* every worker stops at its next check: wait for each */
  for (l = h->threads.next; l != &h->threads; l = l->next)
    uv_thread_join(&cf__container_of(l, cfu_worker, link)->tid);
  /* nothing posts any more; mail not delivered (in the threads too) is dropped */
  h->closed = 1;
  cfu_inbox_close(&h->inbox);
  while ((l = cf__list_pop_front(&h->threads))) {
    cfu_worker *t = cf__container_of(l, cfu_worker, link);
    if (t->job) t->job->thread = NULL;
    if (t->pool) t->pool->alive--;
    worker_free(t);
  }
}

/* ---- workers ---------------------------------------------------------------------------- */

cfu_worker *cfu_worker_new(cfu_threads *h, const cfu_worker_vt *vt, void *data) {
  cfu_worker *t = calloc(1, sizeof *t);
  if (!t || cfu_parker_init(&t->parker) != 0) {
    free(t);
    return NULL;
  }
  t->vt = vt;
  t->data = data;
  cf__list_push_back(&h->threads, &t->link);
  return t;
}

/* ---- jobs ------------------------------------------------------------------------------- */

/* loop thread: a run is over */
static void on_done(cfu_mail *m) {
  cfu_tjob *j = cf__container_of(m, cfu_tjob, done);
  if (!j->pool && j->thread) {
    uv_thread_join(&j->thread->tid); /* it posted this as its last act */
    worker_free(j->thread);
    j->thread = NULL;
  }
  j->vt->done(j);
}

void cfu_tjob_init(cfu_tjob *j, cfu_threads *h, const cfu_tjob_vt *vt) {
  j->vt = vt;
  j->hub = h;
  j->pool = NULL;
  j->thread = NULL;
  j->qlink.next = j->qlink.prev = NULL;
  j->queued = 0;
  j->swoken = 0;
  j->swait.next = j->swait.prev = NULL;
  j->swaker.vt = NULL;
  j->swaker.data = NULL;
  cfu_mail_init(&j->done, &h->inbox, on_done);
}

void cfu_tjob_fini(cfu_tjob *j) {
  cf_waker_drop(&j->swaker);
  if (cf__link_linked(&j->swait)) cf__list_remove(&j->swait);
}

static void spawn_main(void *arg) {
  cfu_worker *t = arg;
  void *state = t->vt->enter(&t->parker, t->data);
  t->job->vt->run(t->job, state);
  t->vt->leave(state);
  cfu_mail_post(&t->job->done);
}

int cfu_tjob_spawn(cfu_tjob *j, cfu_worker *t) {
  t->job = j;
  j->thread = t;
  int r = uv_thread_create(&t->tid, spawn_main, t);
  if (r != 0) {
    j->thread = NULL;
    worker_free(t);
  }
  return r;
}

int cfu_tjob_stop(cfu_tjob *j) {
  if (!j->pool) {
    if (j->thread) cfu_parker_cancel(&j->thread->parker);
    return 0;
  }
  cfu_tpool *p = j->pool;
  int unqueued = 0;
  uv_mutex_lock(&p->mu);
  if (j->queued) {
    cf__list_remove(&j->qlink);
    j->queued = 0;
    p->queued--;
    unqueued = 1;
  } else if (j->thread)
    cfu_parker_cancel(&j->thread->parker);
  uv_mutex_unlock(&p->mu);
  return unqueued;
}

/* loop thread: wake as many waiters for room as there is room (FIFO). If
 * some stay, the next take posts again. */
static void wake_for_space(cfu_tpool *p) {
  uv_mutex_lock(&p->mu);
  size_t room = p->queued < p->cap ? p->cap - p->queued : 0;
  cf_link *l;
  while (room > 0 && (l = cf__list_pop_front(&p->space_waiters))) {
    cfu_tjob *j = cf__container_of(l, cfu_tjob, swait);
    j->swoken = 1;
    cf_waker_wake(&j->swaker);
    room--;
  }
  if (!cf__list_empty(&p->space_waiters)) p->want_space = 1;
  uv_mutex_unlock(&p->mu);
}

void cfu_tjob_pass_room(cfu_tjob *j) {
  if (j->swoken && j->pool) {
    j->swoken = 0;
    wake_for_space(j->pool);
  }
}

void cfu_tjob_unwait(cfu_tjob *j) {
  j->swoken = 0;
  if (cf__link_linked(&j->swait)) cf__list_remove(&j->swait);
}

/* ---- pools -------------------------------------------------------------------------------- */

/* loop thread: a worker took a job from a full queue */
static void on_space(cfu_mail *m) { wake_for_space(cf__container_of(m, cfu_tpool, space)); }

int cfu_tpool_init(cfu_tpool *p, cfu_threads *h, size_t cap, void (*on_exit)(cfu_tpool *p)) {
  if (uv_mutex_init(&p->mu) != 0) return UV_ENOMEM;
  if (uv_cond_init(&p->cond) != 0) {
    uv_mutex_destroy(&p->mu);
    return UV_ENOMEM;
  }
  cf__list_init(&p->queue);
  cf__list_init(&p->space_waiters);
  cfu_mail_init(&p->space, &h->inbox, on_space);
  p->queued = 0;
  p->cap = cap;
  p->closing = p->want_space = 0;
  p->nthreads = p->alive = 0;
  p->on_exit = on_exit;
  p->hub = h;
  return 0;
}

void cfu_tpool_destroy(cfu_tpool *p) {
  uv_cond_destroy(&p->cond);
  uv_mutex_destroy(&p->mu);
}

static void pool_main(void *arg) {
  cfu_worker *t = arg;
  cfu_tpool *p = t->pool;
  void *state = t->vt->enter(&t->parker, t->data);
  uv_mutex_lock(&p->mu);
  for (;;) {
    while (cf__list_empty(&p->queue) && !p->closing)
      uv_cond_wait(&p->cond, &p->mu);
    cf_link *l = cf__list_pop_front(&p->queue);
    if (!l) break; /* closing, nothing left */
    cfu_tjob *j = cf__container_of(l, cfu_tjob, qlink);
    j->queued = 0;
    p->queued--;
    j->thread = t;
    atomic_store(&t->parker.cancel, 0);
    if (p->want_space) {
      p->want_space = 0;
      cfu_mail_post(&p->space);
    }
    uv_mutex_unlock(&p->mu);
    j->vt->run(j, state);
    uv_mutex_lock(&p->mu);
    j->thread = NULL;
    cfu_mail_post(&j->done);
  }
  uv_mutex_unlock(&p->mu);
  t->vt->leave(state);
  cfu_mail_post(&t->exited);
}

/* loop thread: a worker left (its pool closed) */
static void on_exited(cfu_mail *m) {
  cfu_worker *t = cf__container_of(m, cfu_worker, exited);
  cfu_tpool *p = t->pool;
  uv_thread_join(&t->tid);
  worker_free(t);
  p->alive--;
  p->on_exit(p);
}

int cfu_tpool_start(cfu_tpool *p, cfu_worker *t) {
  t->pool = p;
  cfu_mail_init(&t->exited, &p->hub->inbox, on_exited);
  int r = uv_thread_create(&t->tid, pool_main, t);
  if (r != 0) {
    worker_free(t);
    return r;
  }
  p->nthreads++;
  p->alive++;
  return 0;
}

void cfu_tpool_close(cfu_tpool *p) {
  uv_mutex_lock(&p->mu);
  p->closing = 1;
  uv_cond_broadcast(&p->cond);
  uv_mutex_unlock(&p->mu);
}

int cfu_tpool_submit(cfu_tjob *j, const cf_waker *w) {
  cfu_tpool *p = j->pool;
  int r = CFU_TPOOL_QUEUED;
  uv_mutex_lock(&p->mu);
  if (p->closing) {
    r = CFU_TPOOL_CLOSED;
  } else if (p->queued >= p->cap) {
    p->want_space = 1;
    cf_waker_set(&j->swaker, w);
    if (!cf__link_linked(&j->swait)) cf__list_push_back(&p->space_waiters, &j->swait);
    r = CFU_TPOOL_FULL;
  } else {
    cf__list_push_back(&p->queue, &j->qlink);
    j->queued = 1;
    p->queued++;
    uv_cond_signal(&p->cond);
  }
  uv_mutex_unlock(&p->mu);
  j->swoken = 0;
  if (r != CFU_TPOOL_FULL && cf__link_linked(&j->swait)) cf__list_remove(&j->swait);
  return r;
}

size_t cfu_tpool_queued(cfu_tpool *p) {
  uv_mutex_lock(&p->mu);
  size_t n = p->queued;
  uv_mutex_unlock(&p->mu);
  return n;
}
