/*
 * job.c — a future over a thread-pool job (src/uv/work.c).
 *
 * The future submits its job on first poll (futures are lazy), is ready
 * when the job is done, and hands the job's results to Lua once. Dropping
 * it while the job runs orphans the job: the pool finishes it and the
 * job's free hook releases whatever it produced (closing an opened file,
 * say), so a cancelled operation leaves nothing behind.
 */
#include <string.h>

#include "cfl.h"

static cf_poll job_poll(cf_future *base, cf_context *cx) {
  cfl_job *f = (cfl_job *)base;
  cfu_job *j = f->job;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  f->hdr.state = CFL_ST_PENDING;
  switch (cfu_req_state(&j->base)) {
  case CFU_REQ_NEW:
    if (f->kind->start && !f->kind->start(j, cx)) return CF_PENDING;
    if (cfu_job_submit(f->hdr.rt->loop, j, cx->waker) == 0) return CF_PENDING;
    break; /* done with the error */
  case CFU_REQ_BUSY: cfu_req_set_waker(&j->base, cx->waker); return CF_PENDING;
  default: break;
  }
  return cfl_ready(&f->hdr);
}

static void job_drop(cf_future *base) {
  cfl_job *f = (cfl_job *)base;
  if (f->job) {
    cfu_job *j = f->job;
    f->job = NULL;
    cfu_job_orphan(j);
  }
  cfl_mark_dropped(&f->hdr);
}

static int job_take(lua_State *L, cfl_future *base) {
  cfl_job *f = (cfl_job *)base;
  cfu_job *j = f->job;
  f->hdr.state = CFL_ST_TAKEN;
  int n = f->kind->push(L, j); /* -1: an error value to raise */
  f->job = NULL;
  cfu_job_orphan(j); /* done: freed now */
  return n;
}

static void job_describe(lua_State *L, cfl_future *base) {
  cfl_job *f = (cfl_job *)base;
  if (f->job && f->kind->describe)
    f->kind->describe(L, f->job);
  else
    lua_pushstring(L, f->kind->name);
}

static const cfl_class job_class = {
    .vt = {.poll = job_poll, .drop = job_drop},
    .name = "job",
    .take = job_take,
    .describe = job_describe,
    .nuv = 1,
};

/* j may be NULL: a caller that makes the future first (so that making it
 * cannot leak the job) sets f->job before the future escapes; until then
 * its drop and describe have nothing to do. */
cfl_job *cfl_new_job(lua_State *L, cf_runtime *rt, const cfl_job_kind *kind, cfu_job *j) {
  cfl_job *f = (cfl_job *)cfl_new_future(L, rt, &job_class, sizeof(cfl_job));
  f->job = j;
  f->kind = kind;
  return f;
}
