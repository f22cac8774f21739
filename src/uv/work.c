/*
 * work.c — jobs on libuv's thread pool.
 *
 * Ground rules
 * - run() is the only code that leaves the loop thread; it touches nothing
 *   but the job's own memory (and file descriptors the job holds).
 * - The after-work callback only records, runs the job's after hook (C
 *   bookkeeping, never Lua) and wakes; an orphaned job is freed there.
 * - A job cancelled before it started (uv_cancel) still gets its
 *   after-work callback, with UV_ECANCELED.
 */
#include "driver.h"

static void on_work(uv_work_t *req) {
  cfu_job *j = req->data;
  j->vt->run(j);
}

static void on_after(uv_work_t *req, int status) {
  cfu_job *j = req->data;
  j->state = CFU_JOB_DONE;
  if (status == UV_ECANCELED && j->err == 0) j->err = UV_ECANCELED;
  if (j->vt->after) j->vt->after(j);
  if (j->orphaned) {
    j->vt->free(j);
    return;
  }
  cf_waker_wake(&j->waker);
}

void cfu_job_init(cfu_job *j, const cfu_job_vt *vt) {
  j->vt = vt;
  j->waker.vt = NULL;
  j->waker.data = NULL;
  j->err = 0;
  j->state = CFU_JOB_NEW;
  j->orphaned = 0;
  j->req.data = j;
  atomic_init(&j->cancel, 0);
}

int cfu_job_submit(uv_loop_t *loop, cfu_job *j, const cf_waker *w) {
  int r = uv_queue_work(loop, &j->req, on_work, on_after);
  if (r != 0) return r;
  j->state = CFU_JOB_QUEUED;
  cf_waker_set(&j->waker, w);
  return 0;
}

void cfu_job_orphan(cfu_job *j) {
  cf_waker_drop(&j->waker);
  if (j->state != CFU_JOB_QUEUED) {
    j->vt->free(j);
    return;
  }
  j->orphaned = 1;
  atomic_store(&j->cancel, 1);
  uv_cancel((uv_req_t *)&j->req); /* spares the pool if it has not started */
}
