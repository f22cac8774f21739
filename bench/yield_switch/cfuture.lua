-- W2 yield_switch on cfuture: T tasks (argv[2], default 1000) each await
-- cf.yield_now() Y = N/T times; the executor round-robins them (FIFO).
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 1000000)
local T = B.arg_int(2, 1000)
local Y = N // T
local yield_now = cf.yield_now
local count, started, first_done_at = 0, 0, nil
local function task()
  started = started + 1
  for _ = 1, Y do count = count + 1; yield_now():await() end
  first_done_at = first_done_at or started
end

local t0 = B.now()
for _ = 1, T do cf.spawn(task) end
cf.run()
local dt = B.now() - t0

B.check(count == Y * T, "count")
B.check(first_done_at == T, "tasks interleave: all started before the first finished")
B.report("yield_switch", "cfuture", Y * T, dt, ("tasks=%d ns_per_switch=%.1f"):format(T, dt / (Y * T) * 1e9))
