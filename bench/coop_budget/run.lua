-- The cooperative budget at work: one task drains N messages that are all
-- queued already (every await is ready at once) while a 5 ms interval
-- ticker runs. Without a budget the drain never yields and the ticker
-- waits for all of it; with one, the drainer yields every 128 ready awaits.
--   lua5.4 bench/coop_budget/run.lua [N]      (default 1,200,000)
local _, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")
local N = tonumber(arg[1]) or 1200000

local ch = cf.channel()
for i = 1, N do ch:send(i) end
ch:close()
local done, maxgap, last, ticks = false, 0, nil, 0
cf.block_on(function()
  local iv = cf.interval(5)
  local ticker = cf.spawn(function()
    while not done do
      iv:tick():await()
      local t = cf.now()
      if last then maxgap = math.max(maxgap, t - last) end
      last, ticks = t, ticks + 1
    end
  end)
  cf.yield_now():await()
  local t0, drained = cf.now(), 0
  cf.spawn(function() for _ in ch:iter() do drained = drained + 1 end end):await()
  local dt = cf.now() - t0
  done = true
  ticker:abort()
  assert(drained == N, "drained " .. drained)
  print(("coop_budget: drained %d messages in %.0f ms; %d ticks; longest gap between ticks %.1f ms")
    :format(drained, dt, ticks, maxgap))
end)
