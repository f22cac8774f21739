/*
 * trace.c — what the executor does, as events: a Chrome trace-event file
 * (CFUTURE_TRACE=path), a Lua handler (cf.on_event) and the slow-poll
 * warning (cf.warn_slow_polls).
 *
 * The executor reports events through ex.on_event, sometimes from inside a
 * libuv callback (a wake), where Lua must not run: the file is written in
 * C at once, while events for Lua are buffered and handed over after each
 * executor run (cfl_trace_flush).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfl.h"

static const char *const event_names[] = {"spawn", "poll",     "poll_end",
                                          "wake",  "complete", "cancel"};

typedef struct tevent {
  cfl_task *task; /* referenced until delivered */
  uint64_t ts;    /* uv_hrtime ns */
  uint64_t dur;   /* poll_end: how long the poll ran */
  uint8_t ev;
  uint8_t slow; /* a slow-poll report, not an event for the handler */
} tevent;

typedef struct cfl_trace {
  FILE *file; /* CFUTURE_TRACE, or NULL */
  int pid;
  uint64_t t0;      /* ns at which the trace starts */
  uint64_t poll_t0; /* start of the poll under way */
  int handler;      /* registry ref: cf.on_event's function, or LUA_NOREF */
  int slow_fn;      /* registry ref: cf.warn_slow_polls' function, or LUA_NOREF */
  uint64_t slow_ns; /* 0: no slow-poll warning */
  tevent *buf;
  size_t n, cap;
  int flushing;
} cfl_trace;

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void write_event(cfl_trace *tr, cfl_task *t, int ev, uint64_t now) {
  FILE *f = tr->file;
  double us = (double)(now - tr->t0) / 1e3;
  unsigned long long id = (unsigned long long)t->base.id;
  switch (ev) {
  case CF_EV_POLL:
  case CF_EV_POLL_END:
    fprintf(
        f,
        ",\n{\"name\":\"poll\",\"cat\":\"task\",\"ph\":\"%c\",\"ts\":%.3f,\"pid\":%d,\"tid\":%llu}",
        ev == CF_EV_POLL ? 'B' : 'E', us, tr->pid, id);
    break;
  default:
    fprintf(f,
            ",\n{\"name\":\"%s\",\"cat\":\"task\",\"ph\":\"i\",\"s\":\"t\",\"ts\":%.3f,\"pid\":%d,"
            "\"tid\":%llu}",
            event_names[ev], us, tr->pid, id);
  }
  if (ev == CF_EV_COMPLETE || ev == CF_EV_CANCEL) {
    /* name the task's row once its name is surely known */
    char label[64];
    const char *name = cfl_task_name(t);
    if (!name) {
      snprintf(label, sizeof label, "task %llu", id);
      name = label;
    }
    fprintf(f,
            ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%llu,\"args\":{\"name\":",
            tr->pid, id);
    json_string(f, name);
    fputs("}}", f);
  }
}

static void push(cfl_trace *tr, cfl_task *t, int ev, uint64_t ts, uint64_t dur, int slow) {
  if (tr->n == tr->cap) {
    size_t cap = tr->cap ? tr->cap * 2 : 64;
    tevent *nb = realloc(tr->buf, cap * sizeof *nb);
    if (!nb) return; /* out of memory: the event is lost, never the program */
    tr->buf = nb;
    tr->cap = cap;
  }
  cf_task_ref(&t->base);
  tr->buf[tr->n++] = (tevent){t, ts, dur, (uint8_t)ev, (uint8_t)slow};
}

static void trace_event(cf_executor *ex, cf_task *bt, int ev) {
  cf_runtime *rt = ex->user;
  cfl_trace *tr = rt->trace;
  cfl_task *t = (cfl_task *)bt;
  uint64_t now = uv_hrtime(), dur = 0;
  if (ev == CF_EV_POLL) tr->poll_t0 = now;
  if (ev == CF_EV_POLL_END) dur = now - tr->poll_t0;
  if (tr->file) write_event(tr, t, ev, now);
  if (tr->handler != LUA_NOREF) push(tr, t, ev, now, dur, 0);
  if (ev == CF_EV_POLL_END && tr->slow_ns && dur >= tr->slow_ns) push(tr, t, ev, now, dur, 1);
}

static cfl_trace *trace_of(lua_State *L, cf_runtime *rt) {
  if (rt->trace) return rt->trace;
  cfl_trace *tr = calloc(1, sizeof *tr);
  if (!tr) luaL_error(L, "cfuture: out of memory");
  tr->handler = tr->slow_fn = LUA_NOREF;
  tr->pid = (int)getpid();
  tr->t0 = uv_hrtime();
  rt->trace = tr;
  rt->after_run_wanted++; /* trace_after_run delivers what each run recorded */
  rt->ex.on_event = trace_event;
  return tr;
}

static void push_label(lua_State *L, cfl_task *t) {
  const char *name = cfl_task_name(t);
  if (name)
    lua_pushfstring(L, "task %d (%s)", (int)t->base.id, name);
  else
    lua_pushfstring(L, "task %d", (int)t->base.id);
}

static void report_slow(lua_State *L, cfl_trace *tr, const tevent *e) {
  push_label(L, e->task);
  lua_pushfstring(L, "slow poll: %s ran %d ms without yielding", lua_tostring(L, -1),
                  (int)(e->dur / 1000000));
  lua_remove(L, -2);
  lua_State *co = e->task->root.co;
  if (!cf_task_is_complete(&e->task->base) && co && co != L) {
    /* where it suspended after the long stretch */
    luaL_traceback(L, co, lua_tostring(L, -1), 0);
    lua_remove(L, -2);
  }
  if (tr->slow_fn != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, tr->slow_fn);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "cfuture: the slow-poll handler failed: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else {
    fprintf(stderr, "cfuture: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

static void trace_flush(cf_runtime *rt) {
  cfl_trace *tr = rt->trace;
  if (!tr || tr->n == 0 || tr->flushing) return;
  lua_State *L = cfl_from(rt);
  tr->flushing = 1;
  /* events raised by the handlers themselves are delivered next time */
  size_t n = tr->n;
  tevent *batch = tr->buf;
  tr->buf = NULL;
  tr->n = tr->cap = 0;
  for (size_t i = 0; i < n; i++) {
    tevent *e = &batch[i];
    if (e->slow) {
      report_slow(L, tr, e);
    } else if (tr->handler != LUA_NOREF) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, tr->handler);
      lua_pushstring(L, event_names[e->ev]);
      lua_pushinteger(L, (lua_Integer)e->task->base.id);
      const char *name = cfl_task_name(e->task);
      if (name)
        lua_pushstring(L, name);
      else
        lua_pushnil(L);
      lua_pushnumber(L, (double)cfu_timers_now(&rt->timers) / 1e6 -
                            (double)(uv_hrtime() - e->ts) / 1e6);
      int nargs = 4;
      if (e->ev == CF_EV_POLL_END) {
        lua_pushnumber(L, (double)e->dur / 1e6);
        nargs = 5;
      }
      if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
        fprintf(stderr, "cfuture: the cf.on_event handler failed and was removed: %s\n",
                lua_tostring(L, -1));
        lua_pop(L, 1);
        luaL_unref(L, LUA_REGISTRYINDEX, tr->handler);
        tr->handler = LUA_NOREF;
      }
    }
  }
  for (size_t i = 0; i < n; i++)
    cf_task_unref(&batch[i].task->base);
  free(batch);
  tr->flushing = 0;
}

static void trace_close(cf_runtime *rt) {
  cfl_trace *tr = rt->trace;
  if (!tr) return;
  rt->trace = NULL;
  rt->after_run_wanted--;
  rt->ex.on_event = NULL;
  for (size_t i = 0; i < tr->n; i++)
    cf_task_unref(&tr->buf[i].task->base);
  free(tr->buf);
  if (tr->file) {
    fputs("\n]\n", tr->file);
    fclose(tr->file);
  }
  free(tr);
}

/* At start-up: CFUTURE_TRACE=path writes a Chrome trace-event file. */
void cfl_trace_open(lua_State *L, cf_runtime *rt) {
  const char *path = getenv("CFUTURE_TRACE");
  if (!path || !*path) return;
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "cfuture: CFUTURE_TRACE: cannot write %s\n", path);
    return;
  }
  cfl_trace *tr = trace_of(L, rt);
  tr->file = f;
  fprintf(f,
          "[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"cfuture\"}}",
          tr->pid);
}

static void set_ref(lua_State *L, int *ref, int idx) {
  if (*ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
  if (!lua_isnoneornil(L, idx)) {
    lua_pushvalue(L, idx);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

/* cf.on_event(fn | nil): fn(event, task_id, name, time_ms [, poll_ms]) for
 * spawn, poll, poll_end, wake, complete and cancel, after each executor run */
static int l_on_event(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  if (!lua_isnoneornil(L, 1) && lua_type(L, 1) != LUA_TFUNCTION)
    return luaL_error(L, "on_event: argument #1 must be a function or nil (got %s)",
                      luaL_typename(L, 1));
  cfl_trace *tr = trace_of(L, rt);
  set_ref(L, &tr->handler, 1);
  return 0;
}

/* cf.warn_slow_polls(ms | nil [, fn]): report polls that ran ms or longer
 * (to fn(report), or stderr), with the task's traceback */
static int l_warn_slow_polls(lua_State *L) {
  cfl_trace *tr = trace_of(L, cfl_rt(L));
  if (lua_isnoneornil(L, 1)) {
    tr->slow_ns = 0;
    set_ref(L, &tr->slow_fn, 2);
    return 0;
  }
  double ms = cfl_check_ms(L, 1, "warn_slow_polls");
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
    return luaL_error(L, "warn_slow_polls: argument #2 must be a function or nil (got %s)",
                      luaL_typename(L, 2));
  tr->slow_ns = ms > 0 ? cfu_ms_to_ns(ms) : 1; /* saturates: no UB cast for 1e15 */
  set_ref(L, &tr->slow_fn, 2);
  return 0;
}

static const luaL_Reg funcs[] = {
    {"on_event", l_on_event}, {"warn_slow_polls", l_warn_slow_polls}, {NULL, NULL}};

static void trace_after_run(cf_runtime *rt) {
  if (rt->trace) trace_flush(rt);
}

static void open_trace(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfl_setfuncs(L, rt, funcs);
  cfl_trace_open(L, rt);
}

const cfl_module cfl_trace_module = {
    .name = "trace", .open = open_trace, .after_run = trace_after_run, .close = trace_close};
