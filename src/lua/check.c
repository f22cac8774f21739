/*
 * check.c — the bindings' shared vocabulary: argument checks (a method's
 * self, strings, integers, milliseconds, signals) and the I/O error triple.
 * Every message names the function and the argument, and says what was
 * expected and what came.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfl.h"

/* Push the dotted path under the table at tbl (depth levels down) of the
 * function at fn and return 1, or return 0. An error's cold path only: it
 * leaves what it walked on the stack, which the error then unwinds. */
static int find_name(lua_State *L, int fn, int tbl, int depth) {
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (lua_rawequal(L, -1, fn)) {
        lua_pushvalue(L, -2);
        return 1;
      }
      int key = lua_gettop(L) - 1;
      if (depth > 0 && lua_istable(L, -1) && find_name(L, fn, key + 1, depth - 1)) {
        lua_pushfstring(L, "%s.%s", lua_tostring(L, key), lua_tostring(L, -1));
        return 1;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

int cfl_raise_closed(lua_State *L) {
  lua_Debug ar;
  const char *name = NULL;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "nf", &ar)) {
    name = ar.name;
    int fn = lua_gettop(L);
    /* called through pcall, say: no name from the call; find it in the module */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (!name && lua_istable(L, -1)) {
      lua_getfield(L, -1, "cfuture.core");
      if (lua_istable(L, -1) && find_name(L, fn, lua_gettop(L), 2)) name = lua_tostring(L, -1);
    }
  }
  if (!name) return luaL_error(L, "the cfuture runtime is closed");
  return luaL_error(L, "%s: the cfuture runtime is closed", name);
}

const char *cfl_check_cstring(lua_State *L, int idx, const char *fname, const char *what,
                              size_t *len) {
  size_t n;
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a string (got %s)", fname, what, luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &n);
  if (strlen(s) != n) luaL_error(L, "%s: %s must not contain a NUL byte", fname, what);
  if (len) *len = n;
  return s;
}

lua_Integer cfl_check_int_range(lua_State *L, int idx, const char *fname, const char *what,
                                lua_Integer lo, lua_Integer hi) {
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint || v < lo || v > hi) {
    char range[64]; /* lua_pushfstring has no 64-bit format on 5.1 */
    snprintf(range, sizeof range, "from %lld to %lld", (long long)lo, (long long)hi);
    const char *got =
        lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL) : luaL_typename(L, idx);
    luaL_error(L, "%s: %s must be an integer %s (got %s)", fname, what, range, got);
  }
  return v;
}

/* ---- a method's self ---------------------------------------------------- */

/* What the value at idx is, for messages: its metatable's __name, or its
 * type (the metatable keeps the name alive). */
const char *cfl_what_is(lua_State *L, int idx) {
  const char *kind = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name")) {
    if (lua_type(L, -1) == LUA_TSTRING) kind = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return kind;
}

int cfl_raise_self(lua_State *L, int idx, const char *fname, const char *what) {
  return luaL_error(L, "%s: argument #%d must be %s (call it with a colon; got %s)", fname, idx,
                    what, luaL_typename(L, idx));
}

/* ---- I/O errors ---------------------------------------------------------- */

int cfl_push_ioerr(lua_State *L, int err, const char *what) {
  lua_pushnil(L);
  if (what)
    lua_pushfstring(L, "%s: %s", what, cfu_strerror(err));
  else
    lua_pushstring(L, cfu_strerror(err));
  lua_pushstring(L, cfu_err_name(err));
  return 3;
}

int cfl_push_ioerrf(lua_State *L, int err, const char *fmt, ...) {
  lua_pushnil(L);
  va_list ap;
  va_start(ap, fmt);
  const char *what = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s: %s", what, cfu_strerror(err));
  lua_remove(L, -2);
  lua_pushstring(L, cfu_err_name(err));
  return 3;
}

/* ---- milliseconds -------------------------------------------------------- */

/* What a message shows of the number or numeric string at idx: the string
 * as given; a number as Lua writes it, or with all its digits if that form
 * is not exact (1e15 + 1 is not "1e+15"); NaN without its sign. */
static const char *shown_ms(lua_State *L, int idx, double ms, char *buf, size_t size) {
  if (lua_type(L, idx) != LUA_TNUMBER) return lua_tostring(L, idx);
  if (ms != ms) return "nan";
  const char *s = lua_tostring(L, idx);
  if (strtod(s, NULL) == ms) return s;
  snprintf(buf, size, "%.17g", ms);
  return buf;
}

double cfl_check_ms(lua_State *L, int idx, const char *fname) {
  int isnum;
  double ms = lua_tonumberx(L, idx, &isnum);
  if (!isnum)
    luaL_error(L, "%s: argument #%d must be a number of milliseconds (got %s)", fname, idx,
               luaL_typename(L, idx));
  if (!(ms >= 0 && ms <= 1e15)) {
    char buf[32];
    const char *got = shown_ms(L, idx, ms, buf, sizeof buf);
    if (ms > 1e15 && ms < HUGE_VAL)
      luaL_error(L, "%s: argument #%d must be at most 1e15 milliseconds (got %s)", fname, idx, got);
    luaL_error(L, "%s: argument #%d must be a non-negative, finite number of milliseconds (got %s)",
               fname, idx, got);
  }
  return ms;
}

/* ---- signals ------------------------------------------------------------- */

static const struct {
  const char *name;
  int num;
} signals[] = {{"SIGHUP", SIGHUP},       {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
               {"SIGILL", SIGILL},       {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
               {"SIGBUS", SIGBUS},       {"SIGFPE", SIGFPE},   {"SIGKILL", SIGKILL},
               {"SIGUSR1", SIGUSR1},     {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
               {"SIGPIPE", SIGPIPE},     {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
               {"SIGCHLD", SIGCHLD},     {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
               {"SIGTSTP", SIGTSTP},     {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
               {"SIGURG", SIGURG},       {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
               {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
               {"SIGIO", SIGIO},         {"SIGSYS", SIGSYS},   {NULL, 0}};

const char *cfl_signame(int num) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].num == num) return signals[i].name;
  return NULL;
}

/* What came instead of a signal, for error messages. */
const char *cfl_got(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNUMBER || t == LUA_TSTRING ? luaL_tolstring(L, idx, NULL)
                                              : luaL_typename(L, idx);
}

/* Numbers are checked for range before any conversion to int, so 2^32 + 15
 * is refused instead of wrapping to 15; 0 (no signal: kill's existence
 * check) is accepted here and refused by the watchers. */
int cfl_checksignal(lua_State *L, int idx, const char *fname, int def) {
  if (def && lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, idx, &isint);
    if (!isint || n < 0 || n >= NSIG)
      luaL_error(L, "%s: argument #%d must be a signal number from 0 to %d (got %s)", fname, idx,
                 NSIG - 1, cfl_got(L, idx));
    return (int)n;
  }
  if (lua_type(L, idx) == LUA_TSTRING) {
    char what[32];
    snprintf(what, sizeof what, "argument #%d", idx);
    const char *s = cfl_check_cstring(L, idx, fname, what, NULL);
    for (int i = 0; signals[i].name; i++)
      if (!strcmp(s, signals[i].name) || !strcmp(s, signals[i].name + 3)) return signals[i].num;
  }
  return luaL_error(
      L, "%s: argument #%d must be a signal name such as \"SIGTERM\" or a number (got %s)", fname,
      idx, cfl_got(L, idx));
}

/* A signal a watcher may catch: not 0, not one that cannot be caught, and
 * not one raised by a fault (a handler that returns re-runs the faulting
 * instruction: the program would spin instead of crashing), as tokio. */
int cfl_check_watchable(lua_State *L, int idx, const char *fname) {
  int num = cfl_checksignal(L, idx, fname, 0);
  const char *why = NULL;
  if (num == 0)
    why = "it is not a signal";
  else if (num == SIGKILL || num == SIGSTOP)
    why = "it cannot be caught";
  else if (num == SIGSEGV || num == SIGBUS || num == SIGFPE || num == SIGILL)
    why = "it reports a fault that a handler cannot recover from";
  if (why) {
    const char *name = cfl_signame(num);
    if (name)
      luaL_error(L, "%s: %s cannot be watched (%s)", fname, name, why);
    else
      luaL_error(L, "%s: signal %d cannot be watched (%s)", fname, num, why);
  }
  return num;
}
