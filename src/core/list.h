/*
 * list.h — intrusive circular doubly linked list (libuv's queue.h idea).
 * A head is a cf_link whose prev/next point at itself when empty; a member
 * link has next == NULL while it is on no list.
 */
#ifndef CF_CORE_LIST_H
#define CF_CORE_LIST_H

#include <stddef.h>

#include "cfuture.h"

#define cf__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void cf__list_init(cf_link *head) { head->prev = head->next = head; }
static inline int cf__list_empty(const cf_link *head) { return head->next == head; }
static inline int cf__link_linked(const cf_link *l) { return l->next != NULL; }

static inline void cf__list_push_back(cf_link *head, cf_link *l) {
  l->next = head;
  l->prev = head->prev;
  head->prev->next = l;
  head->prev = l;
}

static inline void cf__list_push_front(cf_link *head, cf_link *l) {
  cf__list_push_back(head->next, l);
}

static inline void cf__list_remove(cf_link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->next = l->prev = NULL;
}

static inline cf_link *cf__list_pop_front(cf_link *head) {
  cf_link *l = head->next;
  if (l == head) return NULL;
  cf__list_remove(l);
  return l;
}

#endif
