/*
 * driver.h — the libuv side, for the bindings: timers (timer.h) and jobs
 * on the thread pool (work.h). Drivers store results and wake; they never
 * run Lua. Handles (handle.h) and requests (req.h) are the two lifetimes
 * every driver builds on.
 */
#ifndef CF_UV_DRIVER_H
#define CF_UV_DRIVER_H

#include "timer.h"
#include "work.h"

#endif
