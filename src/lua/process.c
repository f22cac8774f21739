/*
 * process.c — cf.process.spawn: child processes with piped stdio.
 *
 * Spawning is immediate (fork + exec happen at the call, like luv and
 * Node), so a missing program is reported at once as nil, message, ENOENT.
 * The process object gives the pid, the piped streams and :wait(), a
 * future of the exit code and the name of the signal that ended it.
 * Dropping the object does not kill the child; libuv still reaps it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../uv/process.h"
#include "cfl.h"

#define PROCESS_MT "cfuture.Process"

extern char **environ;

typedef struct cfl_process {
  cfu_process *p;
} cfl_process;

/* ---- wait futures ------------------------------------------------------------ */

typedef struct cfl_pwait {
  cfl_future hdr;
  cfu_process *p; /* referenced until dropped */
} cfl_pwait;

static cf_poll pwait_poll(cf_future *base, cf_context *cx) {
  cfl_pwait *w = (cfl_pwait *)base;
  if (cfl_polled_out(&w->hdr)) return CF_READY;
  if (!w->p->exited) {
    w->hdr.state = CFL_ST_PENDING;
    cf_waitlist_register(&w->p->waiters, cx);
    return CF_PENDING;
  }
  return cfl_ready(&w->hdr);
}

static void pwait_release(cfl_future *base) {
  cfl_pwait *w = (cfl_pwait *)base;
  if (w->p) {
    cfu_process *p = w->p;
    w->p = NULL;
    cfu_handle_unref(&p->base);
  }
}

/* code, signal: a child ended by a signal has code 128 + signal number */
static int push_status(lua_State *L, const cfu_process *p) {
  if (p->term_signal) {
    lua_pushinteger(L, 128 + p->term_signal);
    const char *name = cfl_signame(p->term_signal);
    if (name)
      lua_pushstring(L, name);
    else
      lua_pushinteger(L, p->term_signal);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)p->status);
  return 1;
}

static int pwait_take(lua_State *L, cfl_future *base) {
  cfl_pwait *w = (cfl_pwait *)base;
  w->hdr.state = CFL_ST_TAKEN;
  int n = push_status(L, w->p);
  pwait_release(&w->hdr);
  return n;
}

static void pwait_describe(lua_State *L, cfl_future *base) {
  cfl_pwait *w = (cfl_pwait *)base;
  lua_pushfstring(L, "process:wait (pid %d)", w->p ? w->p->pid : 0);
}

static const cfl_class pwait_class = {
    .vt = {.poll = pwait_poll, .drop = cfl_drop_released},
    .release = pwait_release,
    .name = "process:wait",
    .take = pwait_take,
    .describe = pwait_describe,
    .nuv = 1,
};

/* ---- spawn ---------------------------------------------------------------------- */

/* The process at index 1 (a method called with a colon), or NULL. */
static cfl_process *to_process(lua_State *L) { return luaL_testudata(L, 1, PROCESS_MT); }

static cfl_process *check_process(lua_State *L, const char *fname) {
  (void)cfl_rt(L); /* raises once the runtime closed */
  cfl_process *o = to_process(L);
  if (!o || !o->p) cfl_raise_self(L, 1, fname, "a process");
  return o;
}

/* stdio option of the spec table at index 1 */
static int stdio_mode(lua_State *L, const char *key) {
  static const char *const modes[] = {"inherit", "pipe", "null", NULL};
  lua_getfield(L, 1, key);
  int m = 0;
  if (!lua_isnil(L, -1)) {
    size_t len = 0;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    for (m = 0; modes[m] && !(s && len == strlen(modes[m]) && !memcmp(s, modes[m], len)); m++) {
    }
    if (!modes[m])
      luaL_error(L, "process.spawn: option '%s' must be \"pipe\", \"inherit\" or \"null\" (got %s)",
                 key, s ? s : luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return m;
}

/* A NULL-terminated array in a userdata on the stack (freed by the GC). */
static const char **new_strv(lua_State *L, size_t n) {
  const char **v = lua_newuserdatauv(L, (n + 1) * sizeof *v, 0);
  memset(v, 0, (n + 1) * sizeof *v);
  return v;
}

/* env: the inherited environment with the table's entries on top (false
 * removes a variable); clear_env = true starts from nothing. Strings are
 * anchored in a table at the top of the stack. */
static const char **build_env(lua_State *L, int clear) {
  lua_newtable(L); /* name -> "name=value" */
  int merged = lua_gettop(L);
  if (!clear) {
    for (char **e = environ; *e; e++) {
      const char *eq = strchr(*e, '=');
      if (!eq) continue;
      lua_pushlstring(L, *e, (size_t)(eq - *e));
      lua_pushstring(L, *e);
      lua_rawset(L, merged);
    }
  }
  lua_getfield(L, 1, "env");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1))
      luaL_error(L, "process.spawn: option 'env' must be a table of names to values (got %s)",
                 luaL_typename(L, -1));
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      /* the key stays a string (lua_next needs it unconverted) */
      if (lua_type(L, -2) != LUA_TSTRING ||
          !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ||
            (lua_isboolean(L, -1) && !lua_toboolean(L, -1))))
        luaL_error(L, "process.spawn: option 'env' must map names to strings (or false to remove)");
      const char *name = cfl_check_cstring(L, -2, "process.spawn", "option 'env' name", NULL);
      if (!*name || strchr(name, '='))
        luaL_error(L, "process.spawn: option 'env': name '%s' must be non-empty and without '='",
                   name);
      lua_pushvalue(L, -2);
      if (lua_toboolean(L, -2)) {
        lua_pushvalue(L, -2); /* convert a copy of a number, never the table's value */
        const char *value = cfl_check_cstring(L, -1, "process.spawn", "option 'env' value", NULL);
        lua_pushfstring(L, "%s=%s", name, value);
        lua_remove(L, -2);
      } else {
        lua_pushnil(L);
      }
      lua_rawset(L, merged);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, merged))
    n++, lua_pop(L, 1);
  const char **env = new_strv(L, n);
  lua_setfield(L, merged, "\1strv"); /* anchor the array with its strings */
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, merged)) {
    if (lua_type(L, -1) == LUA_TSTRING) env[n++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return env;
}

/* cf.process.spawn{cmd, args..., env=, clear_env=, cwd=, group=, stdin=, stdout=, stderr=}
 * -> process, or nil, message, code */
static int l_spawn(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (!lua_istable(L, 1))
    return luaL_error(L, "process.spawn: argument #1 must be a table {cmd, args...} (got %s)",
                      luaL_typename(L, 1));
  size_t argc = lua_rawlen(L, 1);
  if (argc == 0 || lua_rawgeti(L, 1, 1) != LUA_TSTRING)
    return luaL_error(L, "process.spawn: argument #1 must start with the program to run");
  lua_pop(L, 1);
  if (argc > INT_MAX - 1) return luaL_error(L, "process.spawn: too many arguments");
  /* The strings live in `strs` (a number's string form is made there: a
   * converted copy popped off the stack could be collected before exec). */
  lua_createtable(L, (int)argc, 0);
  int strs = lua_gettop(L);
  const char **argv = new_strv(L, argc);
  lua_rawseti(L, strs, 0); /* anchored with the strings */
  for (size_t i = 0; i < argc; i++) {
    char what[48];
    snprintf(what, sizeof what, "argument #1: element %d", (int)i + 1);
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    argv[i] = cfl_check_cstring(L, -1, "process.spawn", what, NULL);
    lua_rawseti(L, strs, (lua_Integer)i + 1);
  }
  int modes[3] = {stdio_mode(L, "stdin"), stdio_mode(L, "stdout"), stdio_mode(L, "stderr")};
  const char *cwd = NULL;
  if (lua_getfield(L, 1, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "process.spawn: option 'cwd' must be a path string (got %s)",
                        luaL_typename(L, -1));
    cwd = cfl_check_cstring(L, -1, "process.spawn", "option 'cwd'", NULL);
  }
  lua_rawseti(L, strs, -1); /* keeps cwd alive */
  lua_getfield(L, 1, "group");
  int group = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "clear_env");
  int clear = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "env");
  int has_env = !lua_isnil(L, -1) || clear;
  lua_pop(L, 1);
  const char **env = has_env ? build_env(L, clear) : NULL;

  /* the process object and its streams */
  cfl_process *o = lua_newuserdatauv(L, sizeof *o, 1);
  o->p = NULL;
  luaL_setmetatable(L, PROCESS_MT);
  int obj = lua_gettop(L);
  lua_createtable(L, 0, 3);
  int fields = lua_gettop(L);
  cfu_process *p = cfu_process_new();
  if (!p) return luaL_error(L, "process.spawn: out of memory");
  o->p = p; /* released by the object's __gc, also if a raise comes first */

  static const char *const names[] = {"stdin", "stdout", "stderr"};
  uv_stdio_container_t stdio[3];
  cfu_stream *pipes[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++) {
    if (modes[i] == 1) {
      cfu_stream *s = cfu_stream_new_pipe(rt->loop);
      if (!s) {
        cfu_handle_close(&p->base); /* never started: nothing lingers */
        return luaL_error(L, "process.spawn: out of memory");
      }
      cfu_handle_track(&rt->io, &s->base);
      cfl_push_stream(L, s); /* owns s from here */
      lua_setfield(L, fields, names[i]);
      pipes[i] = s;
      stdio[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = &s->h.stream;
    } else if (modes[i] == 2) {
      stdio[i].flags = UV_IGNORE;
    } else {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    }
  }
  uv_process_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.file = argv[0];
  opts.args = (char **)argv;
  opts.env = (char **)env;
  opts.cwd = cwd;
  opts.stdio = stdio;
  opts.stdio_count = 3;
  if (group) opts.flags |= UV_PROCESS_DETACHED; /* setsid: a new process group */
  int r = cfu_process_spawn(rt->loop, p, &opts);
  if (r != 0) {
    for (int i = 0; i < 3; i++)
      if (pipes[i]) cfu_handle_close(&pipes[i]->base);
    return cfl_push_ioerrf(L, r, "process.spawn %s", argv[0]);
  }
  cfu_handle_track(&rt->io, &p->base);
  lua_pushinteger(L, p->pid);
  lua_setfield(L, fields, "pid");
  lua_pushvalue(L, fields);
  lua_setiuservalue(L, obj, 1);
  lua_pushvalue(L, obj);
  return 1;
}

/* ---- process methods ------------------------------------------------------------- */

/* process:wait() -> future of code [, signal name] */
static int p_wait(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_process *o = check_process(L, "process:wait");
  cfl_pwait *w = (cfl_pwait *)cfl_new_future(L, rt, &pwait_class, sizeof *w);
  w->p = o->p;
  cfu_handle_ref(&o->p->base);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* process:kill([sig]) -> true, or nil, message, code (ESRCH once it exited) */
static int p_kill(lua_State *L) {
  cfl_process *o = check_process(L, "process:kill");
  int sig = cfl_checksignal(L, 2, "process:kill", SIGTERM);
  if (o->p->exited) return cfl_push_ioerr(L, UV_ESRCH, "process:kill");
  /* a group leader's signal goes to the whole group, so a shell's own
   * children stop with it */
  int r = o->p->group ? uv_kill(-o->p->pid, sig) : uv_process_kill(&o->p->h, sig);
  if (r != 0) return cfl_push_ioerr(L, r, "process:kill");
  lua_pushboolean(L, 1);
  return 1;
}

/* process:status() -> nil while running, else code [, signal name] */
static int p_status(lua_State *L) {
  cfl_process *o = check_process(L, "process:status");
  if (!o->p->exited) return 0;
  return push_status(L, o->p);
}

/* __index: the object's fields (pid, stdin, ...), then the methods */
static int p_index(lua_State *L) {
  if (!to_process(L))
    return luaL_error(L, "process: __index: argument #1 must be a process (got %s)",
                      luaL_typename(L, 1));
  lua_getiuservalue(L, 1, 1);
  if (lua_istable(L, -1)) { /* not yet while spawn fills it in */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* __gc: a foreign value (getmetatable(p).__gc(x)) is left alone. Also
 * after the runtime closed: the handle was closed with the others, and its
 * memory lives while referenced. */
static int p_gc(lua_State *L) {
  cfl_process *o = to_process(L);
  if (o && o->p) {
    cfu_process *p = o->p;
    o->p = NULL;
    cfu_handle_unref(&p->base);
  }
  return 0;
}

static int p_tostring(lua_State *L) {
  cfl_process *o = to_process(L);
  if (!o)
    return luaL_error(L, "process: __tostring: argument #1 must be a process (got %s)",
                      luaL_typename(L, 1));
  if (o->p && o->p->pid)
    lua_pushfstring(L, "cfuture.Process(pid %d, %s)", o->p->pid,
                    o->p->exited ? "exited" : "running");
  else
    lua_pushliteral(L, "cfuture.Process(?)");
  return 1;
}

static const luaL_Reg methods[] = {
    {"wait", p_wait}, {"kill", p_kill}, {"status", p_status}, {NULL, NULL}};
/* cf.process.pid() -> the id of this process */
static int l_pid(lua_State *L) {
  (void)cfl_rt(L);
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {"pid", l_pid}, {NULL, NULL}};

static void open_process(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  static const luaL_Reg meta[] = {{"__gc", p_gc}, {"__tostring", p_tostring}, {NULL, NULL}};
  cfl_new_class(L, rt, PROCESS_MT, methods, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "Process");
  /* fields (pid, stdin, ...) first, then methods */
  luaL_getmetatable(L, PROCESS_MT);
  lua_insert(L, -2);
  lua_pushcclosure(L, p_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_setfield(L, -2, "process");
}

const cfl_module cfl_process_module = {.name = "process", .open = open_process};
