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

/* thread.c: the Lua side of cross-thread channels */
cfu_xchan *cfl_toxchan(lua_State *L, int idx);    /* NULL if not a channel */
void cfl_push_xchan(lua_State *L, cfu_xchan *ch); /* takes a reference */

#endif
