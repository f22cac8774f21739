/*
 * call.h — the copied call: a function and its arguments encoded in one
 * Lua state, run in another (a worker's, on another OS thread), and its
 * results or its error decoded back. cf.thread (spawn, pool:run) and
 * cf.blocking both use it; a cfl_call_kind holds what differs between them.
 *
 * Threads: encode and push run on the caller's thread (a runtime's loop
 * thread); state, watch and run on the worker. A cfl_call belongs to one
 * thread at a time: the hand-over is the job queue's or the mail's lock.
 */
#ifndef CFL_CALL_H
#define CFL_CALL_H

#include <stdatomic.h>
#include <stdint.h>

#include "copy.h"

typedef struct cfl_call_kind {
  const char *name;  /* "thread", "blocking": starts error texts, names source chunks */
  int hook_every;    /* instructions between stop checks */
  uint8_t sources;   /* a Lua source string may stand for the function */
  uint8_t traceback; /* a string error gets the worker's traceback appended */
  uint8_t cache;     /* reuse encodings (sender) and loaded functions (worker state) */
  uint8_t stop_once; /* a stop raises once (the code may tidy up), or at every check */
} cfl_call_kind;

typedef struct cfl_call {
  cfl_buf fn;   /* the function (or its source), encoded */
  cfl_buf vals; /* the arguments, then the results or the error */
  int nargs, nres;
  uint8_t failed; /* vals holds an error */
} cfl_call;

/* ---- the caller's side ---------------------------------------------------------------- */

/* NULL if the value at idx may be called (a Lua function, or a source when
 * k->sources), else what it is ("a C function", a type name). */
const char *cfl_call_badfn(lua_State *L, int idx, const cfl_call_kind *k);
/* Encode the function at fnidx (checked with cfl_call_badfn) and the
 * arguments first..last into c. 0, or the index of the value that cannot
 * travel with err saying why (a source that does not compile is refused
 * here, where the caller can see it). */
int cfl_call_encode(lua_State *L, cfl_call *c, const cfl_call_kind *k, int fnidx, int first,
                    int last, char err[160]);
/* Push the results (their count) or, if the call failed, its error (-1). */
int cfl_call_push(lua_State *L, cfl_call *c, const cfl_call_kind *k);
void cfl_call_discard(cfl_call *c);
/* The call failed with the message msg (whatever vals held is released). */
void cfl_call_fail(cfl_call *c, const char *msg);

/* ---- the worker's side ------------------------------------------------------------------ */

/* A fresh state with the standard libraries and the stop hook, or NULL. */
lua_State *cfl_call_state(const cfl_call_kind *k);
/* Calls on this OS thread stop once *stop is set (NULL: never). Also
 * re-arms a stop_once kind for the next stop request. */
void cfl_call_watch(const cfl_call_kind *k, const atomic_int *stop);
/* Raise "cancelled"; a stop_once kind's hook raises no more after it. */
int cfl_call_raise_cancelled(lua_State *L);
/* Run c in W (a state of cfl_call_state, maybe used before): vals gets the
 * results or the error. 0, or -1 if it failed. */
int cfl_call_run(lua_State *W, cfl_call *c, const cfl_call_kind *k);

#endif
