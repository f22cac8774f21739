/*
 * handle.c — closing and freeing libuv handles exactly once, in order.
 */
#include "handle.h"

#include <assert.h>

static void untrack(cfu_handle *h) {
  if (cf__link_linked(&h->link)) cf__list_remove(&h->link);
}

static void handle_free(cfu_handle *h) {
  assert(h->refs == 0 && h->closed);
  untrack(h);
  h->vt->free(h);
}

static void on_close(uv_handle_t *uv) {
  cfu_handle *h = uv->data;
  assert(h->closing && !h->closed);
  h->closed = 1;
  if (h->refs == 0) handle_free(h);
}

void cfu_handle_init(cfu_handle *h, const cfu_handle_vt *vt) {
  h->link.next = h->link.prev = NULL;
  h->vt = vt;
  h->uv = NULL;
  h->refs = 1;
  h->waiting = 0;
  h->closing = h->closed = 0;
}

void cfu_handle_opened(cfu_handle *h, uv_handle_t *uv) {
  assert(!h->uv && !h->closing);
  h->uv = uv;
  uv->data = h;
}

void cfu_handle_track(cf_link *list, cfu_handle *h) {
  if (!h->closing && !cf__link_linked(&h->link)) cf__list_push_back(list, &h->link);
}

void cfu_handle_ref(cfu_handle *h) {
  assert(h->refs > 0); /* a reference on a handle nobody holds: it may be gone */
  h->refs++;
}

void cfu_handle_wait_begin(cfu_handle *h) {
  if (h->waiting++ == 0 && !h->closing) uv_ref(h->uv);
}

void cfu_handle_wait_end(cfu_handle *h) {
  assert(h->waiting > 0);
  if (--h->waiting == 0 && !h->closing) uv_unref(h->uv);
}

void cfu_handle_started(cfu_handle *h) {
  assert(!h->closing);
  if (h->waiting == 0) uv_unref(h->uv);
}

/* Closing has begun (uv_close or a reset was issued). */
static void closing(cfu_handle *h) {
  untrack(h);
  h->closing = 1;
  if (h->vt->closing) h->vt->closing(h);
}

void cfu_handle_close(cfu_handle *h) {
  if (h->closing) return;
  if (h->uv)
    uv_close(h->uv, on_close);
  else
    h->closed = 1;
  closing(h);
}

int cfu_handle_close_reset(cfu_handle *h) {
  if (h->closing || !h->uv || h->uv->type != UV_TCP) return UV_EINVAL;
  int r = uv_tcp_close_reset((uv_tcp_t *)h->uv, on_close);
  if (r == 0) closing(h);
  return r;
}

void cfu_handle_unref(cfu_handle *h) {
  assert(h->refs > 0);
  if (--h->refs > 0) return;
  if (!h->closing && !h->vt->linger) cfu_handle_close(h);
  if (h->closed) handle_free(h);
}

void cfu_handle_close_all(cf_link *list) {
  cf_link *l;
  while ((l = cf__list_pop_front(list))) {
    cfu_handle *h = cf__container_of(l, cfu_handle, link);
    assert(!h->closing); /* closing takes a handle off the list */
    cfu_handle_close(h);
  }
}
