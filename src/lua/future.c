/*
 * future.c — what every Lua-visible future shares: the metatable, type
 * checks that name the function and argument, and single ownership.
 */
#include <string.h>

#include "cfl.h"
#include "copy.h"

static const char *const state_names[] = {"fresh", "pending",   "ready", "failed",
                                          "taken", "cancelled", "moved"};

const char *cfl_state_name(int state) { return state_names[state]; }

static const char *type_of(const cfl_class *cls) {
  return cls->type ? cls->type : "cfuture.Future";
}

static int f_gc(lua_State *L);
static int f_tostring(lua_State *L);

/* Record the metatable on top as one of the future metatables. */
static void add_future_mt(lua_State *L, cf_runtime *rt, int light) {
  const void *mt = lua_topointer(L, -1);
  unsigned i = cfl__mt_slot(mt), n = 0;
  while (rt->future_mts[i])
    i = (i + 1) & (CFL_MT_SLOTS - 1), n++;
  if (n >= CFL_MT_SLOTS / 2) luaL_error(L, "cfuture: too many future classes");
  rt->future_mts[i] = (uintptr_t)mt | (light ? 1u : 0u);
}

static const char ABORT_KEY = 'a'; /* registry: abort and is_finished */

/* Copy the fields of the table on top into the one below it; pop it. */
static void copy_fields(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -5);
  }
  lua_pop(L, 1);
}

/* Push the metatable of cls (light: without __gc), made on first use: its
 * __index holds every future's methods and the class's own. */
static void push_class_mt(lua_State *L, cf_runtime *rt, const cfl_class *cls, int light) {
  /* the class's slot in rt->class_mts (open addressing by its address) */
  unsigned i = cfl__mt_slot(cls) & (CFL_CLASS_SLOTS - 1), n = 0;
  while (rt->class_mts[i].cls && rt->class_mts[i].cls != cls) {
    i = (i + 1) & (CFL_CLASS_SLOTS - 1);
    if (++n == CFL_CLASS_SLOTS) luaL_error(L, "cfuture: too many future classes");
  }
  struct cfl_class_mt *e = &rt->class_mts[i];
  if (e->ref[light]) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref[light]);
    return;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, type_of(cls));
  lua_setfield(L, -2, "__name");
  luaL_Reg meta[] = {{"__tostring", f_tostring}, {light ? NULL : "__gc", f_gc}, {NULL, NULL}};
  cfl_setfuncs(L, rt, meta);
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.methods); /* every future's methods */
  copy_fields(L);
  /* the same functions in every class that has them (h.abort == th.abort) */
  if (cls->abort) lua_rawgetp(L, LUA_REGISTRYINDEX, &ABORT_KEY), copy_fields(L);
  if (cls->methods) cfl_setfuncs(L, rt, cls->methods);
  lua_setfield(L, -2, "__index");
  add_future_mt(L, rt, light);
  lua_pushvalue(L, -1);
  e->ref[light] = luaL_ref(L, LUA_REGISTRYINDEX);
  e->cls = cls;
}

static cfl_future *new_future(lua_State *L, cf_runtime *rt, const cfl_class *cls, size_t size,
                              int light) {
  cfl_future *f = lua_newuserdatauv(L, size, cls->nuv);
  memset(f, 0, size);
  f->base.vt = &cls->vt;
  f->rt = rt;
  f->owner = NULL;
  f->state = CFL_ST_FRESH;
  push_class_mt(L, rt, cls, light);
  lua_setmetatable(L, -2);
  return f;
}

cfl_future *cfl_new_future(lua_State *L, cf_runtime *rt, const cfl_class *cls, size_t size) {
  return new_future(L, rt, cls, size, 0);
}

cfl_future *cfl_new_light_future(lua_State *L, cf_runtime *rt, const cfl_class *cls, size_t size) {
  return new_future(L, rt, cls, size, 1);
}

cfl_future *cfl_tofuture(lua_State *L, int idx) {
  return cfl_tofuture_p(L, idx, cfl_rt(L), lua_touserdata(L, idx));
}

cfl_future *cfl_checkawaitable(lua_State *L, int idx, const char *fname) {
  cfl_future *f = cfl_tofuture(L, idx);
  if (f) return f;
  if (lua_type(L, idx) == LUA_TFUNCTION) {
    idx = lua_absindex(L, idx);
    cfl_coro *c = cfl_new_coro(L, cfl_rt(L), idx, 0);
    lua_replace(L, idx);
    return &c->hdr;
  }
  luaL_error(L, "%s: argument #%d must be a future or a function (got %s)", fname, idx,
             luaL_typename(L, idx));
  return NULL;
}

void cfl_claim(lua_State *L, cfl_future *f, void *owner, const char *fname, int arg) {
  cfl_check_claimable(L, f, owner, fname, arg);
  if (!cfl_class_of(f)->shared) f->owner = owner;
}

void cfl_check_claimable(lua_State *L, cfl_future *f, void *owner, const char *fname, int arg) {
  if (cfl_class_of(f)->shared) return;
  switch (f->state) {
  case CFL_ST_TAKEN:
    luaL_error(L, "%s: argument #%d: the future already completed and its results were taken",
               fname, arg);
    break;
  case CFL_ST_CANCELLED:
    luaL_error(L,
               "%s: argument #%d: the future was cancelled (dropped by select, timeout or abort)",
               fname, arg);
    break;
  case CFL_ST_MOVED:
    luaL_error(L, "%s: argument #%d: the future was spawned as a task; await its JoinHandle", fname,
               arg);
    break;
  default: break;
  }
  if (f->owner && f->owner != owner)
    luaL_error(L,
               "%s: argument #%d: the future is already being awaited elsewhere "
               "(a future has one owner; spawn it and share the JoinHandle)",
               fname, arg);
}

int cfl_take(lua_State *L, cfl_future *f) { return cfl_class_of(f)->take(L, f); }

void cfl_drop_released(cf_future *base) {
  cfl_future *f = (cfl_future *)base;
  cfl_class_of(f)->release(f);
  cfl_mark_dropped(f);
}

static const char SELVES_KEY = 's'; /* registry: weak table pointer -> userdata */

void cfl_register_self(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SELVES_KEY);
  lua_pushvalue(L, idx);
  lua_rawsetp(L, -2, lua_touserdata(L, idx));
  lua_pop(L, 1);
}

void cfl_push_self(lua_State *L, const void *p) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SELVES_KEY);
  lua_rawgetp(L, -1, p);
  lua_remove(L, -2);
}

void cfl_push_describe(lua_State *L, cfl_future *f) {
  const cfl_class *cls = cfl_class_of(f);
  /* descriptions nest (an async function awaiting a timeout of ...) */
  luaL_checkstack(L, 4, "future descriptions nest too deep");
  if (cls->describe)
    cls->describe(L, f);
  else
    lua_pushstring(L, cls->name);
}

/* __gc of the future metatable (futures with a finaliser). Reached with
 * anything else (getmetatable(f).__gc(x), a table given this metatable, a
 * light future), it does nothing; after the runtime closed (a finaliser that
 * runs after the runtime's own), the runtime already released everything. */
static int f_gc(lua_State *L) {
  cf_runtime *rt = (cf_runtime *)lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  void *p = lua_touserdata(L, 1);
  if (rt->closed || !p || !lua_getmetatable(L, 1)) return 0;
  int kind = cfl_future_mt_kind(rt, lua_topointer(L, -1));
  lua_pop(L, 1);
  if (kind != CFL_MT_FULL) return 0;
  cfl_future *f = p;
  const cfl_class *cls = cfl_class_of(f);
  if (cls->gc)
    cls->gc(L, f);
  else
    cls->vt.drop(&f->base);
  return 0;
}

static int f_tostring(lua_State *L) {
  cf_runtime *rt = (cf_runtime *)lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  cfl_future *f = cfl_tofuture_p(L, 1, rt, lua_touserdata(L, 1));
  if (!f)
    return luaL_error(L, "__tostring: argument #1 must be a cfuture.Future (got %s)",
                      luaL_typename(L, 1));
  const char *type = type_of(cfl_class_of(f));
  if (rt->closed) {
    lua_pushfstring(L, "%s (the runtime is closed): %p", type, (void *)f);
    return 1;
  }
  cfl_push_describe(L, f);
  lua_pushfstring(L, "%s(%s, %s): %p", type, lua_tostring(L, -1), cfl_state_name(f->state),
                  (void *)f);
  return 1;
}

/* f:state() -> "fresh" | "pending" | "ready" | "failed" | "taken" | "cancelled" | "moved" */
static int f_state(lua_State *L) {
  cfl_future *f = cfl_tofuture(L, 1);
  if (!f) return luaL_error(L, "state: argument #1 must be a future (got %s)", luaL_typename(L, 1));
  lua_pushstring(L, cfl_state_name(f->state));
  return 1;
}

/* cf.is_future(v) -> boolean */
static int l_is_future(lua_State *L) {
  lua_pushboolean(L, cfl_tofuture(L, 1) != NULL);
  return 1;
}

static const luaL_Reg methods[] = {{"state", f_state}, {NULL, NULL}};
static const luaL_Reg funcs[] = {{"is_future", l_is_future}, {NULL, NULL}};

/* Add methods every future has (before any class's metatable is made). */
static void add_methods(lua_State *L, cf_runtime *rt, const luaL_Reg *fns) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref.methods);
  cfl_setfuncs(L, rt, fns);
  lua_pop(L, 1);
}

void cfl_new_class(lua_State *L, cf_runtime *rt, const char *name, const luaL_Reg *fns,
                   const luaL_Reg *meta) {
  luaL_newmetatable(L, name);
  if (meta) cfl_setfuncs(L, rt, meta);
  lua_newtable(L);
  cfl_setfuncs(L, rt, fns);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_remove(L, -2);
}

/* Module table on top. Fills the table of every future's methods. */
static void open_future(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  add_methods(L, rt, methods);
  lua_newtable(L);
  cfl_setfuncs(L, rt, cfl_abort_methods);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ABORT_KEY);
  cfl_registry_table(L, &SELVES_KEY, "v");
  lua_pop(L, 1);
}

const cfl_module cfl_future_module = {.name = "future", .open = open_future};
