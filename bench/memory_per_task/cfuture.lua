-- W6 memory_per_task on cfuture: N tasks, each awaiting the JoinHandle of one
-- shared task that never finishes. Same report as the peers: (RSS after -
-- RSS before) / N and the collectgarbage("count") delta / N, after full
-- collections.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 100000)
local never = cf.spawn(function() cf.future(function() return cf.PENDING end):await() end)
local started = 0
local function task(i)
  started = started + 1
  never:await() -- never finishes
  return i
end
cf.step()

collectgarbage("collect")
collectgarbage("collect")
local rss0, gc0 = B.rss_kb(), collectgarbage("count")
local t0 = B.now()
local tasks = {}
cf.block_on(function()
  for i = 1, N do tasks[i] = cf.spawn(task, i) end
  cf.yield_now():await() -- back of the queue: every task has reached its await
end)
local dt = B.now() - t0
collectgarbage("collect")
collectgarbage("collect")
local rss1, gc1 = B.rss_kb(), collectgarbage("count")

B.check(started == N, "all waiting")
B.report("memory_per_task", "cfuture", N, dt, ("rss_per_task=%.0f gc_per_task=%.0f"):format(
  (rss1 - rss0) * 1024 / N, (gc1 - gc0) * 1024 / N))
