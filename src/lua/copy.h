/*
 * copy.h — values copied between Lua states (worker threads, the thread
 * pool): nil, booleans, numbers, strings, tables of them, functions without
 * upvalues (as bytecode) and cross-thread channels (by reference).
 */
#ifndef CFL_COPY_H
#define CFL_COPY_H

#include <lua.h>
#include <stddef.h>

#include "../uv/thread.h"

typedef struct cfl_buf {
  char *p;
  size_t len, cap;
} cfl_buf;

int cfl_buf_put(cfl_buf *b, const void *data, size_t n);
/* Free b, releasing the channel references its values hold. */
void cfl_buf_discard(cfl_buf *b);

/* Append the value at idx. On failure fill err (what cannot be copied and
 * why, e.g. "cannot copy a userdata") and return -1; b may hold a partial
 * value then (discard it). */
int cfl_encode(lua_State *L, int idx, cfl_buf *b, char err[160]);
/* Push the value at *pos of p; 0, or -1 if corrupt or out of stack. */
int cfl_decode(lua_State *L, const char *p, size_t len, size_t *pos);
/* Release the channel references held by the values in p[0..len). */
void cfl_copy_release(const char *p, size_t len);
/* The values in b before pos were decoded (the channel references they held
 * belong to Lua values now): release what follows pos and empty b. */
void cfl_buf_consumed(cfl_buf *b, size_t pos);
/* Append a string value. 0, or -1 when out of memory. */
int cfl_encode_lstring(cfl_buf *b, const char *s, size_t n);

/* Errors of calls on workers (cf.blocking, cf.thread.spawn, pool:run) travel
 * the same way: the error value copied like a result, then the traceback of
 * where it was raised (nil for a string, which carries it itself or not).
 * A value that cannot travel arrives as a string naming it. */
/* Message handlers for the worker's pcall: a string error gets the traceback
 * appended (_tb) or stays as it is; any other value stays as it is and its
 * traceback is kept for cfl_encode_error. */
int cfl_error_handler_tb(lua_State *L);
int cfl_error_handler(lua_State *L);
/* Replace b with the error at idx of W, which failed under one of the
 * handlers above; fname prefixes the string that replaces a value that
 * cannot travel. */
void cfl_encode_error(lua_State *W, int idx, cfl_buf *b, const char *fname);
/* Replace b with the error message msg (a string). */
void cfl_error_msg(cfl_buf *b, const char *msg);
/* Push the error in b (encoded by the two above) and empty b. A table,
 * function or channel keeps its worker's traceback for cfl_push_traceback. */
void cfl_push_error(lua_State *L, cfl_buf *b, const char *fname);
/* Push the worker traceback of the error value at idx, or nil. */
int cfl_push_traceback(lua_State *L, int idx);

/* thread_channel.c: the Lua side of cross-thread channels */
cfu_xchan *cfl_toxchan(lua_State *L, int idx);    /* NULL if not a channel */
void cfl_push_xchan(lua_State *L, cfu_xchan *ch); /* takes a reference */

#endif
