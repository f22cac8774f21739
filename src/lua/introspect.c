/*
 * introspect.c — cf.tasks() and cf.dump(): what is alive and what each task
 * is waiting for.
 */
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
  if (c->hdr.state == CFL_FRESH)
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
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* cf.dump() -> string: every live task, and where each suspended one is */
static int l_dump(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%d live task(s)\n", (int)rt->ex.ntasks);
  luaL_addvalue(&b);
  for (cf_link *l = rt->ex.tasks.next; l != &rt->ex.tasks; l = l->next) {
    cfl_task *t = (cfl_task *)cf__container_of(l, cf_task, all);
    lua_State *co = t->root.co;
    push_awaiting(L, t);
    lua_pushfstring(L, "task %d%s%s%s [%s] polls=%d%s%s\n", (int)t->base.id,
                    cfl_task_name(t) ? " (" : "", cfl_task_name(t) ? cfl_task_name(t) : "",
                    cfl_task_name(t) ? ")" : "", task_state(t), (int)t->base.polls,
                    lua_isnil(L, -1) ? "" : " awaiting ",
                    lua_isnil(L, -1) ? "" : lua_tostring(L, -1));
    lua_remove(L, -2);
    luaL_addvalue(&b);
    if (co && lua_status(co) == LUA_YIELD && co != L) {
      luaL_traceback(L, co, NULL, 0);
      luaL_addvalue(&b);
      luaL_addchar(&b, '\n');
    }
  }
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg funcs[] = {{"tasks", l_tasks}, {"dump", l_dump}, {NULL, NULL}};

void cfl_open_introspect(lua_State *L) { cfl_setfuncs(L, cf_runtime_of(L), funcs); }
