/*
 * host.c — futures written in C by a host, awaited from Lua.
 *
 * cf_push_future wraps a host's cf_future in a Lua future: the Lua side
 * owns the wrapper, polls the host's future with the awaiting task's
 * context, and hands the host's future back (release) exactly once — after
 * its results were pushed, or after it was dropped.
 */
#include "cfl.h"

typedef struct cfl_hostf {
  cfl_future hdr;
  cf_future *f; /* NULL once released */
  int (*push)(lua_State *L, cf_future *f);
  void (*release)(cf_future *f);
  uint8_t ready; /* f returned CF_READY: nothing left to cancel */
} cfl_hostf;

static void release(cfl_hostf *h) {
  cf_future *f = h->f;
  if (!f) return;
  h->f = NULL;
  if (h->release) h->release(f);
}

static cf_poll hostf_poll(cf_future *base, cf_context *cx) {
  cfl_hostf *h = (cfl_hostf *)base;
  if (cfl_polled_out(&h->hdr)) return CF_READY;
  h->hdr.state = CFL_ST_PENDING;
  if (cf_future_poll(h->f, cx) == CF_PENDING) return CF_PENDING;
  h->ready = 1;
  return cfl_ready(&h->hdr);
}

static void hostf_drop(cf_future *base) {
  cfl_hostf *h = (cfl_hostf *)base;
  if (h->f && !h->ready) cf_future_drop(h->f);
  release(h);
  cfl_mark_dropped(&h->hdr);
}

static int hostf_take(lua_State *L, cfl_future *base) {
  cfl_hostf *h = (cfl_hostf *)base;
  h->hdr.state = CFL_ST_TAKEN;
  int n = h->push(L, h->f); /* -1: an error value to raise */
  release(h);
  return n;
}

static void hostf_describe(lua_State *L, cfl_future *base) {
  (void)base;
  lua_pushliteral(L, "C future");
}

static const cfl_class hostf_class = {
    .vt = {.poll = hostf_poll, .drop = hostf_drop},
    .name = "C future",
    .take = hostf_take,
    .describe = hostf_describe,
};

int cf_push_future(lua_State *L, cf_future *f, int (*push)(lua_State *L, cf_future *f),
                   void (*release_fn)(cf_future *f)) {
  cf_runtime *rt = cf_runtime_of(L);
  if (!rt || !f || !push) return -1;
  cfl_hostf *h = (cfl_hostf *)cfl_new_future(L, rt, &hostf_class, sizeof(cfl_hostf));
  h->f = f;
  h->push = push;
  h->release = release_fn;
  return 0;
}
