/*
 * introspect.c — cf.tasks() and cf.dump(): what is alive and what each task
 * is waiting for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

static const char *task_state(const cfl_task *t) {
  switch (t->base.state) {
  case CF_TASK_IDLE: return "waiting";
  case CF_TASK_SCHEDULED: return "ready";
  case CF_TASK_RUNNING:
  case CF_TASK_NOTIFIED: return "running";
  default: return "complete";
  }
}

static void push_awaiting(lua_State *L, cfl_task *t) {
  cfl_coro *c = &t->root;
  if (c->hdr.state == CFL_ST_FRESH)
    lua_pushliteral(L, "not started");
  else if (c->awaiting)
    cfl_push_describe(L, c->awaiting);
  else
    lua_pushnil(L);
}

/* cf.tasks() -> list of {id, name, state, polls, awaiting} */
static int l_tasks(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  lua_createtable(L, (int)rt->ex.ntasks, 0);
  int i = 0;
  for (cf_link *l = rt->ex.tasks.next; l != &rt->ex.tasks; l = l->next) {
    cfl_task *t = (cfl_task *)cf__container_of(l, cf_task, all);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)t->base.id);
    lua_setfield(L, -2, "id");
    if (cfl_task_name(t)) {
      lua_pushstring(L, cfl_task_name(t));
      lua_setfield(L, -2, "name");
    }
    lua_pushstring(L, task_state(t));
    lua_setfield(L, -2, "state");
    lua_pushinteger(L, (lua_Integer)t->base.polls);
    lua_setfield(L, -2, "polls");
    push_awaiting(L, t);
    lua_setfield(L, -2, "awaiting");
    if (t->parent) {
      lua_pushinteger(L, (lua_Integer)t->parent);
      lua_setfield(L, -2, "parent");
    }
    uint64_t now = uv_now(rt->loop);
    lua_pushinteger(L, (lua_Integer)(now > t->base.woken_at ? now - t->base.woken_at : 0));
    lua_setfield(L, -2, "since_wake");
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* One task's line (indented by depth) and, if suspended, its traceback. */
static void dump_task(lua_State *L, luaL_Buffer *b, cf_runtime *rt, cfl_task *t, int depth) {
  lua_State *co = t->root.co;
  uint64_t now = uv_now(rt->loop);
  for (int i = 0; i < depth * 2; i++)
    luaL_addchar(b, ' ');
  push_awaiting(L, t);
  lua_pushfstring(L, "task %d%s%s%s [%s] polls=%d woken %d ms ago%s%s\n", (int)t->base.id,
                  cfl_task_name(t) ? " (" : "", cfl_task_name(t) ? cfl_task_name(t) : "",
                  cfl_task_name(t) ? ")" : "", task_state(t), (int)t->base.polls,
                  (int)(now > t->base.woken_at ? now - t->base.woken_at : 0),
                  lua_isnil(L, -1) ? "" : " awaiting ",
                  lua_isnil(L, -1) ? "" : lua_tostring(L, -1));
  lua_remove(L, -2);
  luaL_addvalue(b);
  if (co && lua_status(co) == LUA_YIELD && co != L) {
    /* the traceback indented under its task, made into one value before it
     * goes into the buffer (a buffer may use the stack top as it grows) */
    char ind[2 * 66 + 6];
    int n = depth * 2 + 4;
    memset(ind, ' ', (size_t)n + 1);
    ind[0] = '\n';
    ind[n + 1] = '\0';
    luaL_traceback(L, co, NULL, 0);
    lua_pushlstring(L, ind + 1, (size_t)n);
    luaL_gsub(L, lua_tostring(L, -2), "\n", ind);
    lua_pushliteral(L, "\n");
    lua_concat(L, 3);
    lua_remove(L, -2);
    luaL_addvalue(b);
  }
}

static int is_live(cf_runtime *rt, uint64_t id) {
  for (cf_link *l = rt->ex.tasks.next; l != &rt->ex.tasks; l = l->next)
    if (cf__container_of(l, cf_task, all)->id == id) return 1;
  return 0;
}

static void dump_tree(lua_State *L, luaL_Buffer *b, cf_runtime *rt, cfl_task *t, int depth) {
  dump_task(L, b, rt, t, depth);
  if (depth > 64) return;
  for (cf_link *l = rt->ex.tasks.next; l != &rt->ex.tasks; l = l->next) {
    cfl_task *c = (cfl_task *)cf__container_of(l, cf_task, all);
    if (c->parent == t->base.id) dump_tree(L, b, rt, c, depth + 1);
  }
}

static void push_dump(lua_State *L, cf_runtime *rt) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%d live task(s)\n", (int)rt->ex.ntasks);
  luaL_addvalue(&b);
  /* roots: tasks whose spawner is gone (or was not a task); children below */
  for (cf_link *l = rt->ex.tasks.next; l != &rt->ex.tasks; l = l->next) {
    cfl_task *t = (cfl_task *)cf__container_of(l, cf_task, all);
    if (!t->parent || !is_live(rt, t->parent)) dump_tree(L, &b, rt, t, 0);
  }
  luaL_pushresult(&b);
}

/* cf.dump() -> string: the live tasks as a tree (spawner above what it
 * spawned), each with its state, polls, time since its last wake, what it
 * awaits and where it is suspended */
static int l_dump(lua_State *L) {
  push_dump(L, cfl_rt(L));
  return 1;
}

static int dump_report(lua_State *L) {
  cf_runtime *rt = lua_touserdata(L, 1);
  push_dump(L, rt);
  fprintf(stderr, "cfuture: dump on signal\n%s", lua_tostring(L, -1));
  fflush(stderr);
  return 0;
}

static void dump_after_run(cf_runtime *rt) {
  if (!rt->dump_requested) return;
  rt->dump_requested = 0;
  rt->after_run_wanted--;
  lua_State *L = cfl_from(rt);
  lua_pushcfunction(L, dump_report);
  lua_pushlightuserdata(L, rt);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static void on_dump_signal(uv_signal_t *h, int signum) {
  (void)signum;
  cf_runtime *rt = h->data;
  if (!rt->dump_requested) rt->after_run_wanted++;
  rt->dump_requested = 1; /* no Lua here: the next scheduler run dumps */
  uv_stop(rt->loop);
}

static void free_handle(uv_handle_t *h) { free(h); }

static void dump_signal_close(cf_runtime *rt) {
  if (!rt->dump_signal) return;
  uv_close((uv_handle_t *)rt->dump_signal, free_handle);
  rt->dump_signal = NULL;
}

/* cf.dump_on_signal(sig | nil): write cf.dump() to stderr when sig comes
 * (e.g. "SIGUSR1"), to look inside a program that seems stuck */
static int l_dump_on_signal(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  int signum = lua_isnoneornil(L, 1) ? 0 : cfl_check_watchable(L, 1, "dump_on_signal");
  dump_signal_close(rt);
  if (!signum) return 0;
  uv_signal_t *h = malloc(sizeof *h);
  if (!h) return luaL_error(L, "dump_on_signal: out of memory");
  uv_signal_init(rt->loop, h);
  h->data = rt;
  int r = uv_signal_start(h, on_dump_signal, signum);
  if (r != 0) {
    uv_close((uv_handle_t *)h, free_handle);
    return luaL_error(L, "dump_on_signal: %s", uv_strerror(r));
  }
  uv_unref((uv_handle_t *)h); /* it keeps no program alive */
  rt->dump_signal = h;
  return 0;
}

static const luaL_Reg funcs[] = {
    {"tasks", l_tasks}, {"dump", l_dump}, {"dump_on_signal", l_dump_on_signal}, {NULL, NULL}};

static void open_introspect(lua_State *L) { cfl_setfuncs(L, cf_runtime_of(L), funcs); }

const cfl_module cfl_introspect_module = {.name = "introspect",
                                          .open = open_introspect,
                                          .after_run = dump_after_run,
                                          .close = dump_signal_close};
