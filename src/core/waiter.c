/*
 * waiter.c — wait lists of poll-site nodes. A node is on at most one list;
 * while linked it holds a waker reference, dropped when the node is woken or
 * cancelled.
 */
#include <assert.h>

#include "core.h"

void cf_waiter_init(cf_waiter *w) {
  w->link.next = w->link.prev = NULL;
  w->waker.vt = NULL;
  w->waker.data = NULL;
  w->notified_by = NULL;
}

int cf_waiter_linked(const cf_waiter *w) { return cf__link_linked(&w->link); }

void cf_waiter_consume(cf_waiter *w) {
  if (w->notified_by) {
    assert(w->notified_by->notified > 0);
    w->notified_by->notified--;
    w->notified_by = NULL;
  }
}

void cf_waiter_cancel(cf_waiter *w) {
  if (cf__link_linked(&w->link)) cf__list_remove(&w->link);
  cf_waker_drop(&w->waker);
  cf_waitlist *l = w->notified_by;
  if (l) {
    cf_waiter_consume(w);
    cf_waitlist_notify_one(l); /* pass it on */
  }
}

void cf_waitlist_init(cf_waitlist *l) {
  cf__list_init(&l->head);
  l->notified = 0;
}

int cf_waitlist_empty(const cf_waitlist *l) { return cf__list_empty(&l->head); }

void cf_waitlist_register(cf_waitlist *l, const cf_context *cx) {
  cf_waiter *w = cx->waiter;
  cf_waiter_consume(w); /* waiting again: a promise it held is void */
  cf_waker_set(&w->waker, cx->waker);
  if (!cf__link_linked(&w->link)) cf__list_push_back(&l->head, &w->link);
}

static cf_waiter *pop(cf_waitlist *l) {
  cf_link *link = cf__list_pop_front(&l->head);
  return link ? cf__container_of(link, cf_waiter, link) : NULL;
}

int cf_waitlist_wake_one(cf_waitlist *l) {
  cf_waiter *w = pop(l);
  if (!w) return 0;
  cf_waker_wake(&w->waker);
  return 1;
}

int cf_waitlist_notify_one(cf_waitlist *l) {
  cf_waiter *w = pop(l);
  if (!w) return 0;
  assert(!w->notified_by); /* a waiter holds one notification at most */
  w->notified_by = l;
  l->notified++;
  cf_waker_wake(&w->waker);
  return 1;
}

size_t cf_waitlist_wake_all(cf_waitlist *l) {
  size_t n = 0;
  while (cf_waitlist_wake_one(l))
    n++;
  return n;
}
