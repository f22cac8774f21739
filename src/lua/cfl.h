/*
 * cfl.h — internals shared by the Lua bindings.
 *
 * Ground rules
 * - Every Lua-visible future is a full userdata that starts with a
 *   cfl_future; its class (the extended vtable) says how to poll, cancel,
 *   take results and describe it; each class has its own metatable (built on
 *   first use: its __name, and every future's methods beside its own).
 * - A future has one owner ("poll site") for its whole life: the first
 *   await, combinator or task that takes it. Join handles are the exception:
 *   any number of tasks may await them and each gets the results.
 * - READY means the results are available to take; take() moves them onto
 *   a Lua stack once (handles copy them).
 * - Lua runs only inside an executor run (task polls, complete hooks, error
 *   reports) or in a call from Lua; never in a libuv callback, except the
 *   host loop's kick (runtime.c), which is itself a protected executor run.
 * - Memory libuv points at is C memory (see src/uv); Lua objects that own
 *   such resources release them in drop/__gc.
 */
#ifndef CF_LUA_CFL_H
#define CF_LUA_CFL_H

#include <uv.h>

#include "../core/core.h"
#include "../uv/driver.h"
#include "../uv/stream.h"
#include "../uv/tls.h"
#include "cfuture.h"
#include "compat.h"

/* Task polls per executor run in block_on, run and a host loop's kick
 * before I/O (timers included) is polled again; with the per-poll await
 * budget (128 ready awaits, coro.c) it bounds how long busy tasks can keep
 * a due timer waiting, as tokio's event_interval does. */
#define CFL_BUDGET 128
#define CFL_STEP_BUDGET 1024   /* cf.step's default: task polls per step */
#define CFL_CORO_CACHE_MAX 512 /* idle coroutines kept for reuse */

/* In this order: a poll guard tests "past PENDING" (cfl_polled_out). */
typedef enum cfl_state {
  CFL_ST_FRESH,     /* never polled */
  CFL_ST_PENDING,   /* polled, not ready */
  CFL_ST_READY,     /* results available */
  CFL_ST_FAILED,    /* error value available */
  CFL_ST_TAKEN,     /* results delivered */
  CFL_ST_CANCELLED, /* dropped before its results were delivered */
  CFL_ST_MOVED      /* handed to a task by spawn */
} cfl_state;

typedef struct cfl_future cfl_future;

/* A subsystem of the module (timers, sync, fs, threads, ...): module.c
 * lists them, opens each into the module table and calls its hooks. */
typedef struct cfl_module {
  const char *name;
  void (*open)(lua_State *L); /* module table on top: add functions and classes */
  /* After each executor run, on the caller's thread, while some subsystem
   * asked for it (rt->after_run_wanted): deliver what the run buffered. */
  void (*after_run)(cf_runtime *rt);
  /* Runtime close, every task cancelled: stop what could feed the loop. */
  void (*close)(cf_runtime *rt);
  /* After the loop's last callbacks: free what they still used. */
  void (*release)(cf_runtime *rt);
} cfl_module;
typedef struct cfl_coro cfl_coro;
typedef struct cfl_task cfl_task;

typedef struct cfl_class {
  cf_future_vtable vt; /* poll; drop = cancel (idempotent) */
  const char *name;    /* what it is, in descriptions and errors: "sleep" */
  /* Its Lua type: __name, tostring and the LuaLS class ("cfuture.Channel");
   * NULL for a plain "cfuture.Future". */
  const char *type;
  /* Its own methods, beside those of every future (await, state; abort and
   * is_finished come with `abort`); NULL if none. Each class has its own
   * metatable, so a sleep has no `send`. */
  const luaL_Reg *methods;
  /* Push the results and return their count, or push the error value and
   * return -1. Called once per READY/FAILED (shared classes: per await). */
  int (*take)(lua_State *L, cfl_future *f);
  /* Push a one-line description of what f is (for cf.tasks and dumps). */
  void (*describe)(lua_State *L, cfl_future *f);
  /* Let go of what it holds (idempotent; also called by its take). With
   * .vt.drop = cfl_drop_released, that is all its drop does beside marking
   * it dropped. NULL for a class with a drop of its own. */
  void (*release)(cfl_future *f);
  /* __gc in place of drop (the userdata is at index 1 of L), or NULL. */
  void (*gc)(lua_State *L, cfl_future *f);
  uint8_t shared; /* many poll sites may await it (join handles) */
  uint8_t nuv;    /* uservalues its userdata needs */
  /* For shared classes that a combinator cannot share (yield_now, a
   * channel's receive): replace the value at idx with a future of its own. */
  cfl_future *(*own)(lua_State *L, int idx);
  /* Handles of work that runs on its own (tasks, threads): h:abort() and
   * h:is_finished(). NULL for other futures. */
  void (*abort)(cfl_future *f);
  int (*is_finished)(cfl_future *f);
} cfl_class;

struct cfl_future {
  cf_future base; /* base.vt is the class */
  cf_runtime *rt;
  void *owner;   /* poll site that took it, NULL while free */
  uint8_t state; /* cfl_state */
};

#define cfl_class_of(f) ((const cfl_class *)(f)->base.vt)

/* The future harness: what every class's poll does the same way.
 * A poll that finds its future completed already (a combinator's loser
 * polled once more, a handle awaited again) answers READY and does nothing
 * else: `if (cfl_polled_out(&x->hdr)) return CF_READY;` opens every poll. */
static inline int cfl_polled_out(const cfl_future *f) { return f->state > CFL_ST_PENDING; }
/* Complete f with results to take (cfl_ready) or an error value to raise
 * (cfl_failed): `return cfl_ready(&x->hdr);`. */
static inline cf_poll cfl_ready(cfl_future *f) {
  f->state = CFL_ST_READY;
  return CF_READY;
}
static inline cf_poll cfl_failed(cfl_future *f) {
  f->state = CFL_ST_FAILED;
  return CF_READY;
}

/* A Lua coroutine as a future. */
struct cfl_coro {
  cfl_future hdr;
  lua_State *co;
  int ref;  /* anchor in the runtime's anchor table (task roots) */
  int nres; /* results on co's stack when READY */
  uint8_t
      raise; /* bit 0: resume the await with an error to raise; bit 1: release the anchor slot */
  uint8_t running;  /* its resume is on the C stack */
  uint8_t woke;     /* suspended by yield_now, which woke it already */
  uint8_t root;     /* embedded in a cfl_task as its root */
  uint8_t staged;   /* a task root not started yet: ref and nres locate its
                       function and arguments in the stage table */
  uint8_t in_await; /* suspended by await (5.1: resume with a status token) */
  int defers;       /* registry ref of its cf.defer functions, or LUA_NOREF */
  int await_ref;    /* anchor of `awaiting` (not only co's stack), or LUA_NOREF */
  cfl_future
      *awaiting;     /* what it is suspended on (anchored in the awaited table, slot await_ref) */
  cf_waiter *waiter; /* its poll-site node for `awaiting` */
};

typedef struct cfl_scope cfl_scope;

/* What only some tasks have: a name, a scope. */
typedef struct cfl_task_ext {
  cfl_task *task;
  char *name;
  cfl_scope *scope; /* structured parent, or NULL */
  cf_link scope_link;
  /* Called when the task completes, before its results are settled (the
   * scope's bookkeeping); NULL if none. */
  void (*on_done)(cfl_task *t);
} cfl_task_ext;

struct cfl_task {
  cf_task base;    /* base.waiter serves as root.waiter */
  cf_future entry; /* a staged task's first poll: starts root, hands over */
  cfl_coro root;   /* root.ref anchors the coroutine, then the results */
  cfl_task_ext *ext;
  uint64_t parent;  /* id of the task that spawned it, 0 if none */
  int nholders;     /* JoinHandles, block_on, a scope re-raising its error */
  uint8_t observed; /* its error reached someone */
  uint8_t unref;    /* h:unref(): cf.run and cf.step do not wait for it */
};

/* The task a coroutine future is the root of, or NULL. */
static inline cfl_task *cfl_coro_task(cfl_coro *c) {
  return c->root ? (cfl_task *)((char *)c - offsetof(cfl_task, root)) : NULL;
}

static inline const char *cfl_task_name(const cfl_task *t) { return t->ext ? t->ext->name : NULL; }
static inline cfl_scope *cfl_task_scope(const cfl_task *t) { return t->ext ? t->ext->scope : NULL; }

#define CFL_MT_SLOTS 128   /* room for every class twice, half full at most */
#define CFL_CLASS_SLOTS 64 /* the same, once per class */

struct cf_runtime {
  /* ---- the scheduler */
  cf_executor ex;
  cfl_coro *current; /* coroutine whose body runs now */
  const cf_context *current_cx;
  unsigned coop; /* ready awaits left before the running task must yield */

  /* ---- the loop */
  uv_loop_t *loop;
  uv_loop_t own_loop;
  uv_idle_t *kick;   /* on a host's loop: runs ready tasks from its uv_run */
  uv_async_t wakeup; /* on its own loop (unreferenced): makes the backend fd readable when
                        work arrives outside a drive, so a host polling that fd steps */
  int has_wakeup;
  int wakeup_primed; /* its eventfd is in the epoll set (libuv adds it at a poll) */
  int host_waiting;  /* a host asked backend_timeout and no drive ran since: it waits on the fd */
  cfu_timers timers;
  cf_link io;  /* open streams, processes, signal watchers (cfu_handle) */
  int polling; /* inside uv_run */

  /* ---- Lua threads (which code may use which: docs/INTERNALS.md) */
  lua_State *L;      /* main thread */
  lua_State *S;      /* scratch thread for C-side Lua work during polls */
  lua_State *caller; /* the thread that called block_on, run or step (the main one otherwise) */

  /* ---- life: every entry point checks closed (cfl_rt) */
  int opened;         /* open_module finished initialising it */
  int in_run;         /* a drive (block_on, run, step, the kick) is running */
  int cancelling_now; /* inside h:abort_now(): dropped scopes cancel their tasks at once */
  size_t nunref;      /* live tasks that cf.run and cf.step do not wait for */
  int closing;        /* close has begun: no new work */
  int closed;         /* closed for good: every entry point raises */

  /* ---- what Lua keeps for the runtime, by registry reference */
  int anchors; /* table for luaL_ref anchors (task roots, their results) */
  struct {
    int ref, top, n; /* table of the function and arguments of tasks not started yet */
  } stage;
  struct {
    int ref, n; /* table of idle coroutines, kept for reuse (coro.c) */
  } coro_cache;
  struct {
    int ref, n;  /* table of pending error reports (report.c) */
    int handler; /* cf.on_error's handler, or LUA_NOREF */
  } reports;
  struct {
    int methods;      /* the methods of every future (await, state) */
    int await_fn;     /* the await C closure */
    int yield_token;  /* the future cf.yield_now() returns */
    int sent;         /* the future a send that went through returns */
    int run_fn;       /* the protected executor run (runtime.c) */
    int cancelled_mt; /* metatable of cancellation errors */
  } ref;
  void *yield_token_ptr;
  /* Identities of the future metatables, one per class and kind (with __gc,
   * light), built on first use: an open-addressed set of their addresses,
   * bit 0 set for a light one (cfl_tofuture). */
  uintptr_t future_mts[CFL_MT_SLOTS];
  /* Each class's two metatables (ref[1]: light), by registry reference, in
   * slots found by the class's address; 0 until made. */
  struct cfl_class_mt {
    const cfl_class *cls;
    int ref[2];
  } class_mts[CFL_CLASS_SLOTS];
  const void *stream_mt; /* identity of the stream metatable (cfl_testudata) */

  /* ---- subsystems (module.c) and what they keep here */
  const cfl_module *const *modules; /* NULL-terminated */
  int after_run_wanted;             /* subsystems with work for their after_run hook */
  struct cfl_threads *threads;      /* worker threads and pools, created on first use */
  struct cfl_trace *trace;          /* event tracing, when something asked for it */
  uv_signal_t *dump_signal;         /* cf.dump_on_signal's watcher, or NULL */
  int dump_requested;               /* the signal came: dump at the next chance */
};

/* upvalues of every module function */
#define CFL_UP_RT 1
#define CFL_UP_MT 2
/* Raise "<function>: the cfuture runtime is closed" (never returns). */
int cfl_raise_closed(lua_State *L);
/* The runtime of the running module function; raises once it has closed
 * (a finaliser that runs after the runtime's own, at lua_close, may still
 * call in: the runtime's memory lives as long as the state, so the check
 * itself is safe). Every entry point calls it before touching anything. */
static inline cf_runtime *cfl_rt(lua_State *L) {
  cf_runtime *rt = (cf_runtime *)lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  if (rt->closed) cfl_raise_closed(L);
  return rt;
}

/* The runtime, as cfl_rt, but a closed runtime's error names fname (cfl_rt
 * finds no name for a function called through pcall). */
static inline cf_runtime *cfl_rt_named(lua_State *L, const char *fname) {
  cf_runtime *rt = (cf_runtime *)lua_touserdata(L, lua_upvalueindex(CFL_UP_RT));
  if (rt->closed) luaL_error(L, "%s: the cfuture runtime is closed", fname);
  return rt;
}

/* The userdata at idx if its metatable is the one whose identity is mt, else
 * NULL: luaL_testudata without the registry lookup by name, for methods on
 * the hot path of every read and write. */
static inline void *cfl_testudata(lua_State *L, int idx, const void *mt) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  int ok = lua_topointer(L, -1) == mt;
  lua_pop(L, 1);
  return ok ? p : NULL;
}

/* check.c: the bindings' vocabulary. Errors name the function and the
 * argument; `what` names the value: "argument #2", "option cwd", "args[3]". */
/* Raise "<fname>: argument #<idx> must be <what> (call it with a colon; got
 * <type>)": a method called with a dot, or given a foreign self. */
int cfl_raise_self(lua_State *L, int idx, const char *fname, const char *what);
/* What the value at idx is, for messages: its metatable's __name, or its
 * type. */
const char *cfl_what_is(lua_State *L, int idx);
/* Push nil, "<what>: <message>", "<ECODE>" for a negative libuv error
 * (what may be NULL); cfl_push_ioerrf formats what (lua_pushfstring's
 * formats). Both return 3. */
int cfl_push_ioerr(lua_State *L, int err, const char *what);
int cfl_push_ioerrf(lua_State *L, int err, const char *fmt, ...);
/* A span in milliseconds: a number from 0 to 1e15 at idx. */
double cfl_check_ms(lua_State *L, int idx, const char *fname);
/* What came instead of a number or a name, for messages: the value as
 * text, or its type. */
const char *cfl_got(lua_State *L, int idx);
/* A signal's name ("SIGTERM"), or NULL for a number without one. */
const char *cfl_signame(int num);
/* The signal at idx (a name such as "SIGTERM" or "TERM", or a number);
 * def (if not 0) when absent. Raises naming fname and the argument. */
int cfl_checksignal(lua_State *L, int idx, const char *fname, int def);
/* The same for a signal a watcher may catch (not 0, SIGKILL, SIGSTOP or a
 * fault signal); raises naming fname otherwise. */
int cfl_check_watchable(lua_State *L, int idx, const char *fname);
/* The string at idx (a number is converted in place), refusing embedded NUL
 * bytes (a C API would silently cut the string there). The pointer is valid
 * while the value stays at idx. len may be NULL. */
const char *cfl_check_cstring(lua_State *L, int idx, const char *fname, const char *what,
                              size_t *len);
/* The integer at idx (an integral float is accepted) within [lo, hi]. */
lua_Integer cfl_check_int_range(lua_State *L, int idx, const char *fname, const char *what,
                                lua_Integer lo, lua_Integer hi);

/* runtime.c: what every binding asks of the runtime */
extern const char cfl_runtime_key; /* registry[&cfl_runtime_key]: the runtime */
/* Register fns into the table on top, with the module's two upvalues. */
void cfl_setfuncs(lua_State *L, cf_runtime *rt, const luaL_Reg *fns);
/* The Lua thread to work on: the running coroutine, or the caller's. */
lua_State *cfl_from(cf_runtime *rt);
/* Push the registry table at key, creating it on first use (with __mode
 * `mode`, e.g. "k", or none when NULL); in any state, workers' included. */
void cfl_registry_table(lua_State *L, const void *key, const char *mode);

/* report.c */
void cfl_report(cf_runtime *rt, lua_State *from, cfl_task *t); /* error on from's top, popped */
/* Work arrived outside a drive (a task woken or an error queued by code a
 * host ran): start the kick on a host's loop, or make the own loop's backend
 * fd readable, so the host's next iteration steps. No-op inside a drive. */
void cfl_wake_host(cf_runtime *rt);
void cfl_flush_reports(cf_runtime *rt);
void cfl_push_cancelled(lua_State *L, cf_runtime *rt, const char *what);

/* future.c */
cfl_future *cfl_new_future(lua_State *L, cf_runtime *rt, const cfl_class *cls, size_t size);
/* The same without a finaliser (a metatable without __gc: finalising costs
 * the collector more than the object), for a class that holds nothing to
 * release while fresh, taken or cancelled: what it holds while pending or
 * ready is released by its poller, which always drops or takes what it
 * polls (before the collector frees either). */
cfl_future *cfl_new_light_future(lua_State *L, cf_runtime *rt, const cfl_class *cls, size_t size);
cfl_future *cfl_tofuture(lua_State *L, int idx);
/* What the table at address mt is: 0 not a future metatable, else
 * CFL_MT_FULL (with __gc) or CFL_MT_LIGHT. */
enum { CFL_MT_FULL = 1, CFL_MT_LIGHT = 2 };
static inline unsigned cfl__mt_slot(const void *mt) {
  return (unsigned)(((uintptr_t)mt >> 4) * 2654435761u) & (CFL_MT_SLOTS - 1);
}
static inline int cfl_future_mt_kind(const cf_runtime *rt, const void *mt) {
  for (unsigned i = cfl__mt_slot(mt);; i = (i + 1) & (CFL_MT_SLOTS - 1)) {
    uintptr_t e = rt->future_mts[i];
    if (!e) return 0;
    if ((e & ~(uintptr_t)1) == (uintptr_t)mt) return e & 1 ? CFL_MT_LIGHT : CFL_MT_FULL;
  }
}
/* The same for a userdata p already fetched from idx. */
static inline cfl_future *cfl_tofuture_p(lua_State *L, int idx, cf_runtime *rt, void *p) {
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return cfl_future_mt_kind(rt, mt) ? p : NULL;
}
/* The future at idx, or a coroutine future made from a function at idx
 * (replacing it on the stack); raises naming fname and the argument. */
cfl_future *cfl_checkawaitable(lua_State *L, int idx, const char *fname);
/* Take ownership of f for poll site `owner`; raises if it cannot. */
void cfl_claim(lua_State *L, cfl_future *f, void *owner, const char *fname, int arg);
/* Raise (as cfl_claim would) unless f could be claimed now. */
void cfl_check_claimable(lua_State *L, cfl_future *f, void *owner, const char *fname, int arg);
static inline int cfl_done(const cfl_future *f) {
  return f->state == CFL_ST_READY || f->state == CFL_ST_FAILED;
}
static inline void cfl_drop(cfl_future *f) { cf_future_drop(&f->base); }
/* In a class's drop: a future dropped before its results were taken is
 * cancelled (taken, moved, failed or already cancelled stay as they are). */
static inline void cfl_mark_dropped(cfl_future *f) {
  if (f->state <= CFL_ST_PENDING || f->state == CFL_ST_READY) f->state = CFL_ST_CANCELLED;
}
/* The drop of a class with `release`: release, then mark dropped. */
void cfl_drop_released(cf_future *base);
int cfl_take(lua_State *L, cfl_future *f);
/* Let C code that holds only a pointer push the userdata at idx back onto a
 * stack (a weak table; not usable from the object's own finaliser). */
void cfl_register_self(lua_State *L, int idx);
void cfl_push_self(lua_State *L, const void *p);
const char *cfl_state_name(int state);
/* Register the metatable `name` of a handle class: its metamethods (meta,
 * may be NULL) and an __index table of methods, which is left on the stack;
 * both get the module's upvalues. */
void cfl_new_class(lua_State *L, cf_runtime *rt, const char *name, const luaL_Reg *methods,
                   const luaL_Reg *meta);

/* coro.c */
extern const cfl_class cfl_coro_class;
void cfl_coro_init(cfl_coro *c, cf_runtime *rt, lua_State *co, int ref, cf_waiter *waiter);
/* The coroutine runs fn(args); an async function runs its body (so
 * spawn(afn, ...) is spawn(afn(...)), not a task returning a future). */
cfl_coro *cfl_new_coro(lua_State *L, cf_runtime *rt, int fn, int nargs);
/* If the value at idx is an async function (cf.async), replace it with the
 * function it wraps. */
void cfl_unwrap_async(lua_State *L, int idx);
lua_State *cfl_coroutine_new(lua_State *L, cf_runtime *rt);
int cfl_await(lua_State *L);
/* Await f, the only value on L's stack, as cfl_await does, for a caller
 * that made f and never let it out (no checks of what f is or who owns it). */
int cfl_await_own(lua_State *L, cfl_future *f);

/* task.c */
/* h:abort() and h:is_finished(): the methods of a class with `abort`. */
extern const luaL_Reg cfl_abort_methods[];
cfl_task *cfl_spawn(lua_State *L, cf_runtime *rt, int idx, const char *fname);
void cfl_push_join_handle(lua_State *L, cf_runtime *rt, cfl_task *t);
int cfl_task_take(lua_State *L, cfl_task *t);
void cfl_task_hold(cfl_task *t);
void cfl_task_unhold(cfl_task *t);
/* The task's ext, allocated on first use; NULL when out of memory. */
cfl_task_ext *cfl_task_ext_of(cfl_task *t);

/* timer.c */
extern const cfl_class cfl_yield_token_class;

cfl_future *cfl_new_sleep(lua_State *L, cf_runtime *rt, double ms);

/* job.c: a future over a thread-pool job */
typedef struct cfl_job_kind {
  const char *name;
  /* Push the results (or nil, message, code); called once, on the loop. */
  int (*push)(lua_State *L, cfu_job *j);
  /* May the job be submitted now? If not, arrange a wake and return 0. */
  int (*start)(cfu_job *j, cf_context *cx);
  void (*describe)(lua_State *L, cfu_job *j); /* optional */
} cfl_job_kind;

typedef struct cfl_job {
  cfl_future hdr;
  cfu_job *job; /* owned until taken or dropped */
  const cfl_job_kind *kind;
} cfl_job;

/* Push a future over j (whose uservalue may anchor what j works on). j may
 * be NULL until the caller sets f->job, before the future escapes. */
cfl_job *cfl_new_job(lua_State *L, cf_runtime *rt, const cfl_job_kind *kind, cfu_job *j);

/* stream.c: push a Lua stream object owning one reference on s */
void cfl_push_stream(lua_State *L, cfu_stream *s);
/* The open stream at idx; raises naming fname otherwise. */
cfu_stream *cfl_check_stream(lua_State *L, int idx, const char *fname);
void cfl_push_describe(lua_State *L, cfl_future *f);

#endif
