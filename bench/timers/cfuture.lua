-- W3 timers on cfuture: N tasks, each sleeping its deterministic delay
-- (benchlib.delay_ms, 0-100 ms) with cf.sleep, then ending.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 100000)
local delay, sleep = B.delay_ms, cf.sleep
local done = 0
local function task(i) sleep(delay(i)):await(); done = done + 1 end

local rss0 = B.rss_kb()
local c0 = B.cpu()
local t0 = B.now()
for i = 1, N do cf.spawn(task, i) end
cf.run()
local dt = B.now() - t0
local cpu = B.cpu() - c0

B.check(done == N, "done")
B.report("timers", "cfuture", N, dt, ("cpu=%.3f peak_rss_kb=%d peak_delta_kb=%d"):format(cpu, B.peak_rss_kb(), B.peak_rss_kb() - rss0))
