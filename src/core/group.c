/*
 * group.c — per-child wakers for combinators. A child's wake queues that
 * child and wakes the combinator's own waker; the combinator then re-polls
 * only the queued children. The group memory lives until the combinator has
 * released it and every stored child waker was dropped.
 */
#include <assert.h>
#include <stdlib.h>

#include "core.h"

static void group_unref(cf_group *g) {
  assert(g->refcount > 0);
  if (--g->refcount == 0) free(g);
}

static void child_clone(void *data) {
  cf_group *g = ((cf_group_child *)data)->group;
  assert(g->refcount > 0); /* a waker of a freed group */
  g->refcount++;
}
static void child_drop(void *data) { group_unref(((cf_group_child *)data)->group); }
static void child_wake(void *data) {
  cf_group_child *c = data;
  cf_group *g = c->group;
  if (g->released || c->queued) return;
  c->queued = 1;
  cf__list_push_back(&g->ready, &c->ready_link);
  g->nqueued++;
  cf_waker_wake_by_ref(&g->parent);
}

static const cf_waker_vtable child_waker_vt = {child_clone, child_wake, child_drop};

cf_group *cf_group_new(size_t n) {
  cf_group *g = malloc(sizeof(cf_group) + n * sizeof(cf_group_child));
  if (!g) return NULL;
  g->refcount = 1;
  g->released = 0;
  g->parent.vt = NULL;
  g->parent.data = NULL;
  g->n = n;
  g->nqueued = n;
  cf__list_init(&g->ready);
  for (size_t i = 0; i < n; i++) {
    cf_group_child *c = &g->child[i];
    c->group = g;
    cf_waiter_init(&c->waiter);
    c->queued = 1;
    cf__list_push_back(&g->ready, &c->ready_link);
  }
  return g;
}

void cf_group_set_parent(cf_group *g, const cf_waker *w) { cf_waker_set(&g->parent, w); }

long cf_group_next_ready(cf_group *g) {
  cf_link *l = cf__list_pop_front(&g->ready);
  if (!l) return -1;
  cf_group_child *c = cf__container_of(l, cf_group_child, ready_link);
  c->queued = 0;
  g->nqueued--;
  return (long)(c - g->child);
}

cf_context cf_group_context(cf_group *g, size_t i, cf_waker *w) {
  w->vt = &child_waker_vt;
  w->data = &g->child[i];
  cf_context cx = {w, &g->child[i].waiter};
  return cx;
}

void cf_group_requeue(cf_group *g, size_t i) {
  cf_group_child *c = &g->child[i];
  if (c->queued) return;
  c->queued = 1;
  cf__list_push_back(&g->ready, &c->ready_link);
  g->nqueued++;
}

void cf_group_release(cf_group *g) {
  g->released = 1;
  for (size_t i = 0; i < g->n; i++)
    cf_waiter_cancel(&g->child[i].waiter);
  cf_waker_drop(&g->parent);
  group_unref(g);
}
