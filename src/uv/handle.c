/*
 * handle.c — closing and freeing libuv handles exactly once, in order.
 */
#include "handle.h"

static void untrack(cfu_handle *h) {
  if (cf__link_linked(&h->link)) cf__list_remove(&h->link);
}

static void handle_free(cfu_handle *h) {
  untrack(h);
  h->vt->free(h);
}

static void on_close(uv_handle_t *uv) {
  cfu_handle *h = uv->data;
  h->closed = 1;
  if (h->refs == 0) handle_free(h);
}

void cfu_handle_init(cfu_handle *h, const cfu_handle_vt *vt) {
  h->link.next = h->link.prev = NULL;
  h->vt = vt;
  h->uv = NULL;
  h->refs = 1;
  h->closing = h->closed = 0;
}

void cfu_handle_opened(cfu_handle *h, uv_handle_t *uv) {
  h->uv = uv;
  uv->data = h;
}

void cfu_handle_track(cf_link *list, cfu_handle *h) {
  if (!h->closing && !cf__link_linked(&h->link)) cf__list_push_back(list, &h->link);
}

void cfu_handle_ref(cfu_handle *h) { h->refs++; }

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
  if (--h->refs > 0) return;
  if (!h->closing && !h->vt->linger) cfu_handle_close(h);
  if (h->closed) handle_free(h);
}

void cfu_handle_close_all(cf_link *list) {
  cf_link *l;
  while ((l = cf__list_pop_front(list)))
    cfu_handle_close(cf__container_of(l, cfu_handle, link));
}
