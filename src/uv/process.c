/*
 * process.c — child processes and OS signals: callbacks store and wake.
 */
#include "process.h"

#include <stdlib.h>

/* ---- processes -------------------------------------------------------------- */

static void proc_free(cfu_process *p) {
  cfu_res_remove(&p->res);
  free(p);
}

static void proc_on_close(uv_handle_t *h) {
  cfu_process *p = h->data;
  p->closed = 1;
  if (p->refs == 0) proc_free(p);
}

static void proc_close(cfu_process *p) {
  cfu_res_remove(&p->res);
  if (p->closing) return;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->h, proc_on_close);
}

static void on_child_exit(uv_process_t *h, int64_t status, int term_signal) {
  cfu_process *p = h->data;
  p->exited = 1;
  p->status = status;
  p->term_signal = term_signal;
  cf_waitlist_wake_all(&p->waiters);
  proc_close(p); /* reaped: nothing left to watch */
}

static void proc_shutdown(cfu_res *r) { proc_close(cf__container_of(r, cfu_process, res)); }

cfu_process *cfu_process_new(void) {
  cfu_process *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->refs = 1;
  p->res.shutdown = proc_shutdown;
  cf_waitlist_init(&p->waiters);
  return p;
}

int cfu_process_spawn(uv_loop_t *loop, cfu_process *p, uv_process_options_t *opts) {
  opts->exit_cb = on_child_exit;
  p->h.data = p;
  int r = uv_spawn(loop, &p->h, opts);
  if (r != 0) {
    p->exited = 1;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->h, proc_on_close);
    return r;
  }
  p->pid = p->h.pid;
  return 0;
}

void cfu_process_unref(cfu_process *p) {
  if (--p->refs > 0) return;
  if (p->closed) proc_free(p);
  /* else a running child keeps its handle until it exits (or the runtime
   * closes); the close callback frees it */
}

/* ---- signals ---------------------------------------------------------------- */

static void sig_free(cfu_signal *s) {
  cfu_res_remove(&s->res);
  free(s);
}

static void sig_on_close(uv_handle_t *h) {
  cfu_signal *s = h->data;
  s->closed = 1;
  if (s->refs == 0) sig_free(s);
}

static void sig_close(cfu_signal *s) {
  cfu_res_remove(&s->res);
  if (s->closing) return;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->h, sig_on_close);
  cf_waitlist_wake_all(&s->waiters);
}

static void sig_shutdown(cfu_res *r) { sig_close(cf__container_of(r, cfu_signal, res)); }

static void on_signal(uv_signal_t *h, int signum) {
  cfu_signal *s = h->data;
  (void)signum;
  s->pending++;
  cf_waitlist_wake_all(&s->waiters);
}

cfu_signal *cfu_signal_new(void) {
  cfu_signal *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->refs = 1;
  s->res.shutdown = sig_shutdown;
  s->h.data = s;
  cf_waitlist_init(&s->waiters);
  return s;
}

int cfu_signal_start(uv_loop_t *loop, cfu_signal *s, int signum) {
  uv_signal_init(loop, &s->h);
  s->signum = signum;
  int r = uv_signal_start(&s->h, on_signal, signum);
  if (r != 0) sig_close(s);
  return r;
}

void cfu_signal_unref(cfu_signal *s) {
  if (--s->refs > 0) return;
  if (!s->closing) sig_close(s);
  if (s->closed) sig_free(s);
}
