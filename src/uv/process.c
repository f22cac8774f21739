/*
 * process.c — child processes and OS signals: callbacks store and wake.
 */
#include "process.h"

#include <signal.h>
#include <stdlib.h>

/* ---- processes -------------------------------------------------------------- */

static void proc_free(cfu_handle *h) { free(h); }

/* the handle lingers without references until the child exits, so libuv
 * reaps it (no zombies) */
static const cfu_handle_vt proc_vt = {NULL, proc_free, 1};

static void on_child_exit(uv_process_t *h, int64_t status, int term_signal) {
  cfu_process *p = (cfu_process *)h->data;
  p->exited = 1;
  p->status = status;
  p->term_signal = term_signal;
  cf_waitlist_wake_all(&p->waiters);
  cfu_handle_close(&p->base); /* reaped: nothing left to watch */
}

cfu_process *cfu_process_new(void) {
  cfu_process *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  cfu_handle_init(&p->base, &proc_vt);
  cf_waitlist_init(&p->waiters);
  return p;
}

int cfu_process_spawn(uv_loop_t *loop, cfu_process *p, uv_process_options_t *opts) {
  opts->exit_cb = on_child_exit;
  p->group = (opts->flags & UV_PROCESS_DETACHED) != 0;
  cfu_handle_opened(&p->base, (uv_handle_t *)&p->h);
  int r = uv_spawn(loop, &p->h, opts);
  if (r != 0) {
    p->exited = 1; /* the handle was initialised: it is closed like any other */
    cfu_handle_close(&p->base);
    return r;
  }
  p->pid = p->h.pid;
  return 0;
}

/* ---- signals ---------------------------------------------------------------- */

/* libuv puts the default action back when the last watcher of a signal
 * stops. For SIGPIPE that would undo what the runtime did at open (ignore
 * it, so a write to a reader that has gone returns EPIPE instead of killing
 * the process): ignore it again, unless another watcher (any loop) or
 * someone else installed a handler meanwhile. */
static void restore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) return;
  if (sa.sa_flags & SA_SIGINFO) return;
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGPIPE, &sa, NULL);
}

static void sig_closing(cfu_handle *h) {
  cfu_signal *s = (cfu_signal *)h;
  if (s->signum == SIGPIPE && h->uv) restore_sigpipe(); /* uv_close stopped it */
  cf_waitlist_wake_all(&s->waiters);
}

static void sig_free(cfu_handle *h) { free(h); }

static const cfu_handle_vt sig_vt = {sig_closing, sig_free, 0};

static void on_signal(uv_signal_t *h, int signum) {
  cfu_signal *s = (cfu_signal *)h->data;
  (void)signum;
  s->pending++;
  cf_waitlist_wake_all(&s->waiters);
}

cfu_signal *cfu_signal_new(void) {
  cfu_signal *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  cfu_handle_init(&s->base, &sig_vt);
  cf_waitlist_init(&s->waiters);
  return s;
}

int cfu_signal_start(uv_loop_t *loop, cfu_signal *s, int signum) {
  uv_signal_init(loop, &s->h);
  cfu_handle_opened(&s->base, (uv_handle_t *)&s->h);
  s->signum = signum;
  int r = uv_signal_start(&s->h, on_signal, signum);
  if (r != 0) cfu_handle_close(&s->base);
  return r;
}
