/*
 * net.h — what the cf.net bindings share (net.c: TCP; udp.c; dns.c):
 * addresses and their argument checks.
 */
#ifndef CF_LUA_NET_H
#define CF_LUA_NET_H

#include "../uv/net.h"
#include "cfl.h"

/* A port, 0 to 65535, at idx; raises naming fname. */
int cfl_check_port(lua_State *L, int idx, const char *fname);
/* A host string at idx (no embedded NUL); raises naming fname. */
const char *cfl_check_host(lua_State *L, int idx, const char *fname);
/* A numeric address ("127.0.0.1", "::1"; "localhost"; "*" or "" for any)
 * into ss: 0, or UV_EINVAL. */
int cfl_parse_addr(const char *host, int port, struct sockaddr_storage *ss);
/* Push host, port of sa (2), or the error triple (3). */
int cfl_push_addr(lua_State *L, const struct sockaddr *sa);
/* Push nil, "<fname>: '<host>' is not a numeric ... address", "EINVAL". */
int cfl_bad_addr(lua_State *L, const char *fname, const char *host);

/* The open listener at idx; raises naming fname. */
cfu_listener *cfl_check_listener(lua_State *L, int idx, const char *fname);

#endif
