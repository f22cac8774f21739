/*
 * heap.c — binary min-heap of deadlines with O(log n) removal. Each node
 * records its index so a cancelled sleep leaves the heap at once instead of
 * lingering until it would have fired. Nodes are ordered by (deadline, seq):
 * equal deadlines come out first in, first out.
 */
#include <stdlib.h>

#include "core.h"

void cf_heap_init(cf_heap *h) {
  h->items = NULL;
  h->len = h->cap = 0;
  h->seq = 0;
}

void cf_heap_free(cf_heap *h) {
  for (size_t i = 0; i < h->len; i++)
    h->items[i]->index = CF_HEAP_NONE;
  free(h->items);
  cf_heap_init(h);
}

/* a comes out before b */
static inline int before(const cf_heap_node *a, const cf_heap_node *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(cf_heap *h, size_t i, cf_heap_node *n) {
  h->items[i] = n;
  n->index = i;
}

static void sift_up(cf_heap *h, size_t i) {
  cf_heap_node *n = h->items[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(n, h->items[p])) break;
    place(h, i, h->items[p]);
    i = p;
  }
  place(h, i, n);
}

static void sift_down(cf_heap *h, size_t i) {
  cf_heap_node *n = h->items[i];
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    cf_heap_node *best = n;
    if (l < h->len && before(h->items[l], best)) m = l, best = h->items[l];
    if (l + 1 < h->len && before(h->items[l + 1], best)) m = l + 1;
    if (m == i) break;
    place(h, i, h->items[m]);
    i = m;
  }
  place(h, i, n);
}

int cf_heap_push(cf_heap *h, cf_heap_node *n) {
  if (h->len == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    cf_heap_node **items = realloc(h->items, cap * sizeof *items);
    if (!items) return -1;
    h->items = items;
    h->cap = cap;
  }
  n->seq = h->seq++;
  place(h, h->len++, n);
  sift_up(h, h->len - 1);
  return 0;
}

void cf_heap_remove(cf_heap *h, cf_heap_node *n) {
  size_t i = n->index;
  if (i == CF_HEAP_NONE) return;
  n->index = CF_HEAP_NONE;
  cf_heap_node *last = h->items[--h->len];
  if (i == h->len) return;
  place(h, i, last);
  if (i > 0 && before(last, h->items[(i - 1) / 2]))
    sift_up(h, i);
  else
    sift_down(h, i);
}
