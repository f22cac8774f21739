/*
 * thread.h — what crosses OS threads: parkers (a worker blocks), the inbox
 * (other threads post mail that runs on the loop thread) and cross-thread
 * channels of byte messages.
 *
 * Ground rules
 * - Wakers, tasks and Lua states never cross threads. A worker reaches the
 *   loop thread only by posting mail; the mail's fire hook then runs on the
 *   loop thread and may wake wakers.
 * - Lock order: a channel's mutex, then an inbox's or a parker's mutex.
 *   Nothing takes a channel's mutex while holding one of those. (A thread
 *   pool's mutex, tpool.h, comes before all of them.)
 */
#ifndef CF_UV_THREAD_H
#define CF_UV_THREAD_H

#include <stdatomic.h>
#include <uv.h>

#include "../core/list.h"

/* ---- parkers: an OS thread sleeps until unparked or cancelled ---------------- */

typedef struct cfu_parker {
  uv_mutex_t mu;
  uv_cond_t cond;
  int token;         /* an unpark not consumed yet */
  atomic_int cancel; /* the work on this thread should stop */
} cfu_parker;

enum { CFU_PARK_WOKEN, CFU_PARK_TIMEOUT, CFU_PARK_CANCELLED };

int cfu_parker_init(cfu_parker *p);
void cfu_parker_destroy(cfu_parker *p);
/* Block until unparked, cancelled or timeout_ns passed (0: no timeout). */
int cfu_park(cfu_parker *p, uint64_t timeout_ns);
void cfu_unpark(cfu_parker *p);
/* Set the cancel flag and wake the thread if it is parked. Any thread. */
void cfu_parker_cancel(cfu_parker *p);
static inline int cfu_parker_cancelled(cfu_parker *p) { return atomic_load(&p->cancel); }
/* The cancel flag itself, for a check that only knows a flag (an instruction hook). */
static inline const atomic_int *cfu_parker_flag(const cfu_parker *p) { return &p->cancel; }

/* ---- the inbox: mail from any thread, delivered on the loop thread ------------ */

typedef struct cfu_inbox cfu_inbox;
typedef struct cfu_mail cfu_mail;

struct cfu_mail {
  cf_link link; /* in the inbox's queue while posted and not delivered */
  cfu_inbox *inbox;
  void (*fire)(cfu_mail *m); /* loop thread */
};

struct cfu_inbox {
  uv_async_t *async; /* C memory, freed in its close callback */
  uv_mutex_t mu;
  cf_link queue;
  int closed;
  int holds; /* outstanding remote work: the async keeps the loop alive */
};

int cfu_inbox_init(cfu_inbox *in, uv_loop_t *loop);
/* Loop thread, once nothing can post any more. */
void cfu_inbox_close(cfu_inbox *in);
/* Loop thread: remote work started / ended (a thread runs, a wait is armed). */
void cfu_inbox_hold(cfu_inbox *in);
void cfu_inbox_release(cfu_inbox *in);

void cfu_mail_init(cfu_mail *m, cfu_inbox *in, void (*fire)(cfu_mail *m));
/* Any thread: deliver m on the loop thread (once, however often posted). */
void cfu_mail_post(cfu_mail *m);
/* Loop thread: take m back if it was posted and not delivered yet. */
void cfu_mail_cancel(cfu_mail *m);

/* ---- cross-thread channels -------------------------------------------------------- */

typedef struct cfu_xmsg {
  cf_link link;
  size_t len;
  char data[];
} cfu_xmsg;

/* One side waiting: a parked worker or a future (woken by mail). */
typedef struct cfu_xwait {
  cf_link link;
  cfu_parker *parker;
  cfu_mail *mail;
} cfu_xwait;

typedef struct cfu_xchan {
  atomic_int refs; /* handles in every Lua state, and messages that carry it */
  uv_mutex_t mu;
  cf_link items;
  size_t n, cap; /* cap 0: unbounded */
  int closed;
  cf_link receivers, senders;   /* cfu_xwait */
  void (*discard)(cfu_xmsg *m); /* frees a message never received */
} cfu_xchan;

enum { CFU_X_OK, CFU_X_WAIT, CFU_X_CLOSED };

cfu_xchan *cfu_xchan_new(size_t cap, void (*discard)(cfu_xmsg *m));
void cfu_xchan_ref(cfu_xchan *ch);
void cfu_xchan_unref(cfu_xchan *ch);
/* Queue m (taking it) or, if full, register w (if given) and return WAIT. */
int cfu_xchan_send(cfu_xchan *ch, cfu_xmsg *m, cfu_xwait *w);
/* Take the oldest message into *out or, if none, register w and return WAIT;
 * CLOSED once closed and drained. */
int cfu_xchan_recv(cfu_xchan *ch, cfu_xmsg **out, cfu_xwait *w);
/* Withdraw w if it is still registered. */
void cfu_xchan_unwait(cfu_xchan *ch, cfu_xwait *w);
void cfu_xchan_close(cfu_xchan *ch);
/* Any thread: closed yet? / how many messages it holds now. */
int cfu_xchan_is_closed(cfu_xchan *ch);
size_t cfu_xchan_len(cfu_xchan *ch);

#endif
