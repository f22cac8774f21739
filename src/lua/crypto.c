/*
 * crypto.c — cf.crypto: digests, HMAC, PBKDF2, random bytes, hex and
 * base64, on OpenSSL's libcrypto.
 */
#include "cfl.h"

static void open_crypto(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, -2, "crypto");
}

const cfl_module cfl_crypto_module = {.name = "crypto", .open = open_crypto};
