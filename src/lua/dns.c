/*
 * dns.c — cf.net.lookup and cf.net.reverse: name resolution as futures
 * (getaddrinfo and getnameinfo on libuv's thread pool); failures are nil,
 * message, code.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

typedef struct cfl_lookup {
  cfl_future hdr;
  cfu_lookup *l;
  char *host;
  int family;
} cfl_lookup;

static cf_poll lookup_poll(cf_future *base, cf_context *cx) {
  cfl_lookup *f = (cfl_lookup *)base;
  if (cfl_polled_out(&f->hdr)) return CF_READY;
  if (f->hdr.state == CFL_ST_FRESH) {
    f->hdr.state = CFL_ST_PENDING;
    /* a failed start leaves it done with the error */
    cfu_lookup_start(f->hdr.rt->loop, f->l, f->host, NULL, SOCK_STREAM, f->family, cx->waker);
    if (!cfu_req_done(&f->l->base)) return CF_PENDING;
  } else if (!cfu_req_poll(&f->l->base, cx->waker)) {
    return CF_PENDING;
  }
  return cfl_ready(&f->hdr);
}

static void lookup_release(cfl_future *base) {
  cfl_lookup *f = (cfl_lookup *)base;
  if (f->l) {
    cfu_lookup *l = f->l;
    f->l = NULL;
    cfu_lookup_orphan(l); /* freed now unless busy */
  }
  free(f->host);
  f->host = NULL;
}

static int lookup_take(lua_State *L, cfl_future *base) {
  cfl_lookup *f = (cfl_lookup *)base;
  int n = 1;
  int err = cfu_req_err(&f->l->base);
  if (err) {
    n = cfl_push_ioerrf(L, err, "lookup %s", f->host);
  } else {
    lua_newtable(L);
    int i = 0;
    for (struct addrinfo *ai = f->l->res; ai; ai = ai->ai_next) {
      char host[64];
      int port;
      if (cfu_addr_name(ai->ai_addr, host, sizeof host, &port) != 0) continue;
      lua_pushstring(L, host); /* skip duplicates (one per socket type) */
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) != LUA_TNIL) {
        lua_pop(L, 2);
        continue;
      }
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++i);
      lua_pushboolean(L, 1);
      lua_rawset(L, -3);
    }
    for (int k = 1; k <= i; k++) { /* drop the membership keys */
      lua_rawgeti(L, -1, k);
      lua_pushnil(L);
      lua_rawset(L, -3);
    }
  }
  f->hdr.state = CFL_ST_TAKEN;
  lookup_release(&f->hdr);
  return n;
}

static void lookup_describe(lua_State *L, cfl_future *base) {
  lua_pushfstring(L, "lookup %s", ((cfl_lookup *)base)->host);
}

static const cfl_class lookup_class = {
    .vt = {.poll = lookup_poll, .drop = cfl_drop_released},
    .release = lookup_release,
    .name = "lookup",
    .take = lookup_take,
    .describe = lookup_describe,
};

/* cf.net.lookup(name [, family]) -> future of a list of addresses ("inet", "inet6") */
static int l_lookup(lua_State *L) {
  static const char *const fams[] = {"any", "inet", "inet6"};
  static const int famv[] = {AF_UNSPEC, AF_INET, AF_INET6};
  cf_runtime *rt = cfl_rt(L);
  const char *host = cfl_check_host(L, 1, "net.lookup");
  int fam = 0;
  if (!lua_isnoneornil(L, 2)) {
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    for (fam = 0; name && fam < 3 && strcmp(name, fams[fam]) != 0; fam++) {
    }
    if (!name || fam == 3)
      return luaL_error(L,
                        "net.lookup: argument #2 must be \"any\", \"inet\" or \"inet6\" (got %s)",
                        name ? name : luaL_typename(L, 2));
  }
  cfl_lookup *f = (cfl_lookup *)cfl_new_future(L, rt, &lookup_class, sizeof *f);
  f->l = cfu_lookup_new();
  f->host = strdup(host);
  f->family = famv[fam];
  if (!f->l || !f->host) return luaL_error(L, "net.lookup: out of memory");
  return 1;
}

/* reverse lookup: getnameinfo on the thread pool */
typedef struct reverse_job {
  cfu_job job;
  struct sockaddr_storage addr;
  char host[NI_MAXHOST];
  char what[64];
} reverse_job;

static void reverse_run(cfu_job *job) {
  reverse_job *j = (reverse_job *)job;
  socklen_t len =
      j->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int r =
      getnameinfo((struct sockaddr *)&j->addr, len, j->host, sizeof j->host, NULL, 0, NI_NAMEREQD);
  if (r != 0) job->err = r == EAI_NONAME ? UV_EAI_NONAME : UV_EAI_FAIL;
}
static void reverse_free(cfu_job *job) { free(job); }
static const cfu_job_vt reverse_vt = {reverse_run, NULL, reverse_free};

static int reverse_push(lua_State *L, cfu_job *job) {
  reverse_job *j = (reverse_job *)job;
  if (job->err) {
    return cfl_push_ioerrf(L, job->err, "reverse %s", j->what);
  }
  lua_pushstring(L, j->host);
  return 1;
}
static const cfl_job_kind reverse_kind = {"reverse lookup", reverse_push, NULL, NULL};

/* cf.net.reverse(address) -> future of a host name */
static int l_reverse(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *host = cfl_check_host(L, 1, "net.reverse");
  reverse_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "net.reverse: out of memory");
  if (cfl_parse_addr(host, 0, &j->addr) != 0 || !*host || !strcmp(host, "*")) {
    free(j);
    return cfl_bad_addr(L, "net.reverse", host);
  }
  cfu_job_init(&j->job, &reverse_vt);
  strncpy(j->what, host, sizeof j->what - 1);
  cfl_new_job(L, rt, &reverse_kind, &j->job);
  return 1;
}

/* ---- module ------------------------------------------------------------------------------- */

static const luaL_Reg funcs[] = {{"lookup", l_lookup}, {"reverse", l_reverse}, {NULL, NULL}};

/* Module table on top (after the net subsystem): adds cf.net.lookup and
 * cf.net.reverse. */
static void open_dns(lua_State *L) {
  lua_getfield(L, -1, "net");
  cfl_setfuncs(L, cf_runtime_of(L), funcs);
  lua_pop(L, 1);
}

const cfl_module cfl_dns_module = {.name = "dns", .open = open_dns};
