/*
 * tls.c — cf.tls: TLS streams (client, server, STARTTLS) on OpenSSL.
 */
#include "cfl.h"

static void open_tls(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, -2, "tls");
}

const cfl_module cfl_tls_module = {.name = "tls", .open = open_tls};
