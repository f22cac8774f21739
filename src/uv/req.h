/*
 * req.h — the lifetime of a libuv request made for a future: a name
 * lookup, a connect, a write, a datagram send, a thread-pool job. Each kind
 * embeds a cfu_req (as handles embed a cfu_handle).
 *
 * Ground rules
 * - A request is C memory. It is owned by the future that made it until
 *   that future lets go (cfu_req_orphan), and by libuv while it is busy:
 *   from its submission until its callback completed it. It is freed when
 *   both have let go, whichever comes last, by its free hook.
 * - The callback completes it exactly once (cfu_req_complete): an orphaned
 *   request is freed there; any other records its outcome and wakes the
 *   owner's waker. A request that could not be submitted is done at once
 *   with the error, waking nobody.
 * - The owner lets go exactly once: a request libuv is done with (never
 *   submitted, or complete) is freed then; a busy one is marked orphaned,
 *   its waker dropped, and the kind may try to cancel it (the callback
 *   still comes, and frees it).
 * - Everything here runs on the loop thread: callbacks and free hooks never
 *   touch Lua. (A job's run() on the pool thread writes only the job's own
 *   fields, never these.)
 */
#ifndef CF_UV_REQ_H
#define CF_UV_REQ_H

#include <assert.h>

#include "../core/core.h"

typedef struct cfu_req cfu_req;

enum {
  CFU_REQ_NEW,  /* not submitted */
  CFU_REQ_BUSY, /* submitted: libuv holds it, its callback is to come */
  CFU_REQ_DONE  /* completed (or failed to submit): err is its outcome */
};

struct cfu_req {
  cf_waker waker;           /* the owner's, while busy */
  void (*free)(cfu_req *r); /* release the request and what it holds */
  int err;                  /* once done: 0, or a negative libuv error */
  uint8_t state;            /* CFU_REQ_* */
  uint8_t orphaned;         /* the owner let go while it was busy */
};

/* The free hook, once nobody holds r. */
static inline void cfu__req_free(cfu_req *r) {
  cf_waker_drop(&r->waker);
  r->free(r);
}

/* A new request, freed by `free` in the end. */
static inline void cfu_req_init(cfu_req *r, void (*free)(cfu_req *r)) {
  r->waker.vt = NULL;
  r->waker.data = NULL;
  r->free = free;
  r->err = 0;
  r->state = CFU_REQ_NEW;
  r->orphaned = 0;
}

/* libuv's answer to submitting r, returned: 0, and r is busy until its
 * callback, which wakes `w` (cloned); or an error, and r is done with it
 * at once, waking nobody. */
static inline int cfu_req_submitted(cfu_req *r, int err, const cf_waker *w) {
  assert(r->state == CFU_REQ_NEW && !r->orphaned); /* submitted once */
  if (err != 0) {
    r->state = CFU_REQ_DONE;
    r->err = err;
    return err;
  }
  r->state = CFU_REQ_BUSY;
  cf_waker_set(&r->waker, w);
  return 0;
}

/* The owner polls a busy r again: wake `w` (cloned) instead. */
static inline void cfu_req_set_waker(cfu_req *r, const cf_waker *w) {
  assert(r->state == CFU_REQ_BUSY && !r->orphaned);
  cf_waker_set(&r->waker, w);
}

/* In the callback: free r if it is orphaned, else record err and wake. */
static inline void cfu_req_complete(cfu_req *r, int err) {
  assert(r->state == CFU_REQ_BUSY); /* completed once, and only once submitted */
  r->state = CFU_REQ_DONE;
  r->err = err;
  if (r->orphaned) {
    cfu__req_free(r);
    return;
  }
  cf_waker_wake(&r->waker);
}

/* The owner lets go: free r now if libuv is done with it (0), else when it
 * is (1: r is busy and orphaned; the caller may try to cancel it). */
static inline int cfu_req_orphan(cfu_req *r) {
  assert(!r->orphaned); /* the owner lets go once */
  cf_waker_drop(&r->waker);
  if (r->state != CFU_REQ_BUSY) {
    cfu__req_free(r);
    return 0;
  }
  r->orphaned = 1;
  return 1;
}

static inline int cfu_req_state(const cfu_req *r) { return r->state; }
/* Its future polls a submitted r: 1 once it is done; else 0, and r wakes w
 * (cloned) instead of the waker it had. */
static inline int cfu_req_poll(cfu_req *r, const cf_waker *w) {
  if (r->state == CFU_REQ_DONE) return 1;
  cfu_req_set_waker(r, w);
  return 0;
}
static inline int cfu_req_done(const cfu_req *r) { return r->state == CFU_REQ_DONE; }
static inline int cfu_req_orphaned(const cfu_req *r) { return r->orphaned; }
/* The outcome of a done request. */
static inline int cfu_req_err(const cfu_req *r) {
  assert(r->state == CFU_REQ_DONE);
  return r->err;
}

#endif
