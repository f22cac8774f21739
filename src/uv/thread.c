/*
 * thread.c — parkers, the inbox and cross-thread channels (see thread.h).
 */
#include <stdlib.h>

#include "thread.h"

/* ---- parkers ------------------------------------------------------------------------ */

int cfu_parker_init(cfu_parker *p) {
  if (uv_mutex_init(&p->mu) != 0) return UV_ENOMEM;
  if (uv_cond_init(&p->cond) != 0) {
    uv_mutex_destroy(&p->mu);
    return UV_ENOMEM;
  }
  p->token = 0;
  atomic_init(&p->cancel, 0);
  return 0;
}

void cfu_parker_destroy(cfu_parker *p) {
  uv_cond_destroy(&p->cond);
  uv_mutex_destroy(&p->mu);
}

int cfu_park(cfu_parker *p, uint64_t timeout_ns) {
  uint64_t deadline = timeout_ns ? uv_hrtime() + timeout_ns : 0;
  int r = CFU_PARK_WOKEN;
  uv_mutex_lock(&p->mu);
  for (;;) {
    if (atomic_load(&p->cancel)) {
      r = CFU_PARK_CANCELLED;
      break;
    }
    if (p->token) break;
    if (!deadline) {
      uv_cond_wait(&p->cond, &p->mu);
      continue;
    }
    uint64_t now = uv_hrtime();
    if (now >= deadline) {
      r = CFU_PARK_TIMEOUT;
      break;
    }
    uv_cond_timedwait(&p->cond, &p->mu, deadline - now);
  }
  p->token = 0;
  uv_mutex_unlock(&p->mu);
  return r;
}

void cfu_unpark(cfu_parker *p) {
  uv_mutex_lock(&p->mu);
  p->token = 1;
  uv_cond_signal(&p->cond);
  uv_mutex_unlock(&p->mu);
}

void cfu_parker_cancel(cfu_parker *p) {
  atomic_store(&p->cancel, 1);
  uv_mutex_lock(&p->mu); /* a thread between its check and its wait holds mu */
  uv_cond_signal(&p->cond);
  uv_mutex_unlock(&p->mu);
}

/* ---- the inbox --------------------------------------------------------------------------- */

static void on_async(uv_async_t *a) {
  cfu_inbox *in = a->data;
  for (;;) {
    uv_mutex_lock(&in->mu);
    cf_link *l = cf__list_pop_front(&in->queue);
    uv_mutex_unlock(&in->mu);
    if (!l) break;
    cfu_mail *m = cf__container_of(l, cfu_mail, link);
    m->fire(m);
  }
}

int cfu_inbox_init(cfu_inbox *in, uv_loop_t *loop) {
  in->async = malloc(sizeof *in->async);
  if (!in->async) return UV_ENOMEM;
  if (uv_mutex_init(&in->mu) != 0) {
    free(in->async);
    return UV_ENOMEM;
  }
  int r = uv_async_init(loop, in->async, on_async);
  if (r != 0) {
    uv_mutex_destroy(&in->mu);
    free(in->async);
    return r;
  }
  in->async->data = in;
  uv_unref((uv_handle_t *)in->async); /* an idle inbox keeps no loop alive */
  cf__list_init(&in->queue);
  in->closed = 0;
  in->holds = 0;
  return 0;
}

static void free_handle(uv_handle_t *h) { free(h); }

void cfu_inbox_close(cfu_inbox *in) {
  uv_mutex_lock(&in->mu);
  in->closed = 1;
  while (cf__list_pop_front(&in->queue)) {
  }
  uv_mutex_unlock(&in->mu);
  uv_close((uv_handle_t *)in->async, free_handle);
  in->async = NULL;
  uv_mutex_destroy(&in->mu);
}

void cfu_inbox_hold(cfu_inbox *in) {
  if (in->holds++ == 0) uv_ref((uv_handle_t *)in->async);
}

void cfu_inbox_release(cfu_inbox *in) {
  if (--in->holds == 0) uv_unref((uv_handle_t *)in->async);
}

void cfu_mail_init(cfu_mail *m, cfu_inbox *in, void (*fire)(cfu_mail *m)) {
  m->link.next = m->link.prev = NULL;
  m->inbox = in;
  m->fire = fire;
}

void cfu_mail_post(cfu_mail *m) {
  cfu_inbox *in = m->inbox;
  uv_mutex_lock(&in->mu);
  if (!in->closed && !cf__link_linked(&m->link)) {
    cf__list_push_back(&in->queue, &m->link);
    uv_async_send(in->async); /* under mu: the handle cannot be closed meanwhile */
  }
  uv_mutex_unlock(&in->mu);
}

void cfu_mail_cancel(cfu_mail *m) {
  cfu_inbox *in = m->inbox;
  if (in->closed) return;
  uv_mutex_lock(&in->mu);
  if (cf__link_linked(&m->link)) cf__list_remove(&m->link);
  uv_mutex_unlock(&in->mu);
}

/* ---- cross-thread channels ------------------------------------------------------------- */

cfu_xchan *cfu_xchan_new(size_t cap, void (*discard)(cfu_xmsg *m)) {
  cfu_xchan *ch = calloc(1, sizeof *ch);
  if (!ch) return NULL;
  if (uv_mutex_init(&ch->mu) != 0) {
    free(ch);
    return NULL;
  }
  atomic_init(&ch->refs, 1);
  cf__list_init(&ch->items);
  cf__list_init(&ch->receivers);
  cf__list_init(&ch->senders);
  ch->cap = cap;
  ch->discard = discard;
  return ch;
}

void cfu_xchan_ref(cfu_xchan *ch) { atomic_fetch_add(&ch->refs, 1); }

void cfu_xchan_unref(cfu_xchan *ch) {
  if (atomic_fetch_sub(&ch->refs, 1) != 1) return;
  cf_link *l;
  while ((l = cf__list_pop_front(&ch->items)))
    ch->discard(cf__container_of(l, cfu_xmsg, link));
  uv_mutex_destroy(&ch->mu);
  free(ch);
}

/* Wake every waiter of one side (under ch->mu). Each re-checks and
 * re-registers, so a waiter that went away never swallows a wake. */
static void wake_all(cf_link *side) {
  cf_link *l;
  while ((l = cf__list_pop_front(side))) {
    cfu_xwait *w = cf__container_of(l, cfu_xwait, link);
    if (w->parker)
      cfu_unpark(w->parker);
    else
      cfu_mail_post(w->mail);
  }
}

static void enlist(cf_link *side, cfu_xwait *w) {
  if (w && !cf__link_linked(&w->link)) cf__list_push_back(side, &w->link);
}

int cfu_xchan_send(cfu_xchan *ch, cfu_xmsg *m, cfu_xwait *w) {
  int r = CFU_X_OK;
  uv_mutex_lock(&ch->mu);
  if (ch->closed)
    r = CFU_X_CLOSED;
  else if (ch->cap && ch->n >= ch->cap) {
    r = CFU_X_WAIT;
    enlist(&ch->senders, w);
  } else {
    cf__list_push_back(&ch->items, &m->link);
    ch->n++;
    wake_all(&ch->receivers);
  }
  uv_mutex_unlock(&ch->mu);
  return r;
}

int cfu_xchan_recv(cfu_xchan *ch, cfu_xmsg **out, cfu_xwait *w) {
  int r = CFU_X_OK;
  uv_mutex_lock(&ch->mu);
  cf_link *l = cf__list_pop_front(&ch->items);
  if (l) {
    *out = cf__container_of(l, cfu_xmsg, link);
    ch->n--;
    wake_all(&ch->senders);
  } else if (ch->closed) {
    r = CFU_X_CLOSED;
  } else {
    r = CFU_X_WAIT;
    enlist(&ch->receivers, w);
  }
  uv_mutex_unlock(&ch->mu);
  return r;
}

void cfu_xchan_unwait(cfu_xchan *ch, cfu_xwait *w) {
  uv_mutex_lock(&ch->mu);
  if (cf__link_linked(&w->link)) cf__list_remove(&w->link);
  uv_mutex_unlock(&ch->mu);
}

void cfu_xchan_close(cfu_xchan *ch) {
  uv_mutex_lock(&ch->mu);
  ch->closed = 1;
  wake_all(&ch->receivers);
  wake_all(&ch->senders);
  uv_mutex_unlock(&ch->mu);
}

int cfu_xchan_is_closed(cfu_xchan *ch) {
  uv_mutex_lock(&ch->mu);
  int closed = ch->closed;
  uv_mutex_unlock(&ch->mu);
  return closed;
}

size_t cfu_xchan_len(cfu_xchan *ch) {
  uv_mutex_lock(&ch->mu);
  size_t n = ch->n;
  uv_mutex_unlock(&ch->mu);
  return n;
}
