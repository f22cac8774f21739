/*
 * handle.h — the lifetime of a libuv handle owned by cfuture: streams,
 * listeners, UDP sockets, child processes, signal watchers.
 *
 * Ground rules
 * - The owner struct is C memory that starts with a cfu_handle, and the
 *   libuv handle's data points at it.
 * - References count the Lua object and the futures or requests that use
 *   the handle. The memory is freed only when the close callback has run
 *   and no reference is left, whichever comes last.
 * - While open, the handle is on the runtime's list, so closing the
 *   runtime closes it properly (with its callbacks) before the loop goes.
 * - Once closing, a handle is never used again for I/O (reads, accepts,
 *   receives, writes): only its references are counted down.
 * - All of it runs on the loop thread.
 */
#ifndef CF_UV_HANDLE_H
#define CF_UV_HANDLE_H

#include <uv.h>

#include "../core/core.h"

typedef struct cfu_handle cfu_handle;

typedef struct cfu_handle_vt {
  void (*closing)(cfu_handle *h); /* closing began: wake whoever waits (optional) */
  void (*free)(cfu_handle *h);    /* release the owner's memory */
  uint8_t linger;                 /* stays open without references (a running child) */
} cfu_handle_vt;

struct cfu_handle {
  cf_link link; /* on the runtime's list while open */
  const cfu_handle_vt *vt;
  uv_handle_t *uv; /* once initialised; NULL: nothing to close */
  int refs;
  unsigned waiting; /* futures pending on it (cfu_handle_wait_begin) */
  uint8_t closing;  /* uv_close was called */
  uint8_t closed;   /* its close callback ran */
};

/* One reference (the creator's), nothing initialised, on no list. */
void cfu_handle_init(cfu_handle *h, const cfu_handle_vt *vt);
/* The libuv handle was initialised: it must be closed from now on. */
void cfu_handle_opened(cfu_handle *h, uv_handle_t *uv);
/* Put h on the runtime's list of open handles. */
void cfu_handle_track(cf_link *list, cfu_handle *h);
void cfu_handle_ref(cfu_handle *h);
/* Drop a reference; the last one closes the handle (unless it lingers). */
void cfu_handle_unref(cfu_handle *h);
/* A future is pending on h (begin) or no longer is (end). Only while some
 * future is does an active handle keep the loop alive: a handle that
 * watches for nobody cannot wake anyone, so it must not hide a deadlock
 * (nor end a program later or sooner depending on when the collector finds
 * it). */
void cfu_handle_wait_begin(cfu_handle *h);
void cfu_handle_wait_end(cfu_handle *h);
/* A future's part in it: begin or end as `on` says, once, the future's own
 * flag *waiting remembering which (h may be NULL: its object is gone and
 * what it counts is moot). */
static inline void cfu_handle_wait(cfu_handle *h, uint8_t *waiting, int on) {
  if (*waiting == on) return;
  *waiting = (uint8_t)on;
  if (!h) return;
  if (on)
    cfu_handle_wait_begin(h);
  else
    cfu_handle_wait_end(h);
}
/* h was just started (reading, listening, receiving, watching): it keeps
 * the loop alive only while a future is pending on it. */
void cfu_handle_started(cfu_handle *h);
/* Close now (idempotent). */
void cfu_handle_close(cfu_handle *h);
/* Its owner (a Lua object) lets go: close it and drop the owner's reference. */
static inline void cfu_handle_let_go(cfu_handle *h) {
  cfu_handle_close(h);
  cfu_handle_unref(h);
}
/* Close a TCP handle with a reset (RST) instead of an orderly end. */
int cfu_handle_close_reset(cfu_handle *h);
/* Close every handle still on the list (the runtime is closing). */
void cfu_handle_close_all(cf_link *list);

#endif
