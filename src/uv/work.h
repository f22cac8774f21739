/*
 * work.h — blocking work on libuv's thread pool.
 */
#ifndef CF_UV_WORK_H
#define CF_UV_WORK_H

#include <stdatomic.h>
#include <uv.h>

#include "req.h"

/* Jobs: blocking work run on libuv's thread pool. A job is a request
 * (req.h): C memory owned by the future that submitted it until that future
 * lets go of it (cfu_job_orphan); a job orphaned while it runs frees itself
 * when it is done, so the thread pool never writes into memory that is
 * gone. */
typedef struct cfu_job cfu_job;

typedef struct cfu_job_vt {
  void (*run)(cfu_job *j);   /* thread pool: no Lua, no loop access */
  void (*after)(cfu_job *j); /* loop thread, when run is over (or cancelled); optional */
  void (*free)(cfu_job *j);  /* release the job and what it holds */
} cfu_job_vt;

struct cfu_job {
  cfu_req base; /* loop thread only; base.err is `err` once done */
  uv_work_t req;
  const cfu_job_vt *vt;
  int err;           /* the job's outcome as run() and after() report it: 0 or a libuv error */
  atomic_int cancel; /* set when orphaned while running: run() may stop early */
};

void cfu_job_init(cfu_job *j, const cfu_job_vt *vt);
/* Queue j on the thread pool; `w` (cloned) is woken when it is done. On
 * failure (a libuv error) j is done with that error, after() has run. */
int cfu_job_submit(uv_loop_t *loop, cfu_job *j, const cf_waker *w);
/* The owner lets go (dropped, or its results taken): free j now if it is
 * not running, else when it is done. */
void cfu_job_orphan(cfu_job *j);
static inline int cfu_job_orphaned(const cfu_job *j) { return cfu_req_orphaned(&j->base); }

#endif
