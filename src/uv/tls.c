/*
 * tls.c — TLS on a stream: OpenSSL through memory BIOs.
 */
#include "stream.h"
