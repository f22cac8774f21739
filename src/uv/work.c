/*
 * work.c — jobs on libuv's thread pool.
 *
 * Ground rules
 * - run() is the only code that leaves the loop thread; it touches nothing
 *   but the job's own memory (and file descriptors the job holds): never
 *   its request base.
 * - The after-work callback only records, runs the job's after hook (C
 *   bookkeeping, never Lua) and completes the request: an orphaned job is
 *   freed there, any other wakes its owner.
 * - A job cancelled before it started (uv_cancel) still gets its
 *   after-work callback, with UV_ECANCELED.
 */
#include "work.h"

static void on_work(uv_work_t *req) {
  cfu_job *j = req->data;
  j->vt->run(j);
}

static void on_after(uv_work_t *req, int status) {
  cfu_job *j = req->data;
  if (status == UV_ECANCELED && j->err == 0) j->err = UV_ECANCELED;
  if (j->vt->after) j->vt->after(j);
  cfu_req_complete(&j->base, j->err);
}

static void job_free(cfu_req *r) {
  cfu_job *j = cf__container_of(r, cfu_job, base);
  j->vt->free(j);
}

void cfu_job_init(cfu_job *j, const cfu_job_vt *vt) {
  cfu_req_init(&j->base, job_free);
  j->vt = vt;
  j->err = 0;
  j->req.data = j;
  atomic_init(&j->cancel, 0);
}

int cfu_job_submit(uv_loop_t *loop, cfu_job *j, const cf_waker *w) {
  int r = uv_queue_work(loop, &j->req, on_work, on_after);
  if (cfu_req_submitted(&j->base, r, w) == 0) return 0;
  j->err = r;
  if (j->vt->after) j->vt->after(j);
  return r;
}

void cfu_job_orphan(cfu_job *j) {
  if (!cfu_req_orphan(&j->base)) return;
  atomic_store(&j->cancel, 1);
  uv_cancel((uv_req_t *)&j->req); /* spares the pool if it has not started */
}
