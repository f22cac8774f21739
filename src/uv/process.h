/*
 * process.h — child processes and signal watchers on libuv.
 */
#ifndef CF_UV_PROCESS_H
#define CF_UV_PROCESS_H

#include "handle.h"

/* A child process. The handle stays open until the child exits (so libuv
 * reaps it: no zombies), even when the Lua object is gone. */
typedef struct cfu_process {
  cfu_handle base; /* refs: the Lua object and wait futures; lingers while the child runs */
  uv_process_t h;
  uint8_t exited;  /* exit status known */
  int64_t status;  /* exit status */
  int term_signal; /* signal that ended it, or 0 */
  int pid;
  uint8_t group; /* leads its own process group: kill signals the group */
  cf_waitlist waiters;
} cfu_process;

cfu_process *cfu_process_new(void);
/* Start the child (a UV_PROCESS_DETACHED one leads its own process group);
 * on failure the handle is closed and the error returned
 * (p is then freed with its last reference as usual). */
int cfu_process_spawn(uv_loop_t *loop, cfu_process *p, uv_process_options_t *opts);

/* A signal watcher: counts deliveries until they are taken. */
typedef struct cfu_signal {
  cfu_handle base; /* refs: a listener or a wait, and receives */
  uv_signal_t h;
  int signum;
  unsigned pending; /* deliveries not yet taken */
  cf_waitlist waiters;
} cfu_signal;

cfu_signal *cfu_signal_new(void);
int cfu_signal_start(uv_loop_t *loop, cfu_signal *s, int signum);
/* The deliveries since the last take (0: none). */
static inline unsigned cfu_signal_take(cfu_signal *s) {
  unsigned n = s->pending;
  s->pending = 0;
  return n;
}

#endif
