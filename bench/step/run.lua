-- The cost of cf.step() from Lua, for a host that steps cfuture once per
-- frame (LÖVE's love.update, a game loop), next to the floor in the same
-- run: luv's uv.run("nowait") (../shared/bench/floor/luv_nowait.lua).
--   lua5.4 bench/step/run.lua [M]      (M steps per case, default 1,000,000)
-- idle: no task; timer: one task asleep for an hour (the step polls);
-- ready: 1000 tasks that yield and are ready again at once. Best of 3.
local B, cf, best = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")
local ok_luv, uv = pcall(require, "luv")
local M = B.arg_int(1, 1000000)

-- ns per call of the best of n runs of `count` calls
local function best_of(n, count, fn) return best(n, fn) * 1e9 / count end

local step = cf.step
local idle = best_of(3, M, function() for _ = 1, M do step() end end)

local sleeper = cf.spawn(function() cf.sleep(3600 * 1000):await() end)
step()
local timer = best_of(3, M, function() for _ = 1, M do step() end end)
sleeper:abort()
step()

local stop, polls = false, 0
for _ = 1, 1000 do
  cf.spawn(function()
    while not stop do polls = polls + 1; cf.yield_now():await() end
  end)
end
step()
local steps = M // 2000 + 1
polls = 0
local ready = best_of(1, steps, function() for _ = 1, steps do step() end end)
local per_step = polls / steps
stop = true
cf.run()

local f_empty, f_timer
if ok_luv then
  local run = uv.run
  f_empty = best_of(3, M, function() for _ = 1, M do run("nowait") end end)
  local t = uv.new_timer()
  t:start(3600 * 1000, 0, function() end)
  f_timer = best_of(3, M, function() for _ = 1, M do run("nowait") end end)
  t:close()
  uv.run()
end

local function floor_col(ns, f)
  return f and ("   luv uv.run('nowait') %7.1f ns   ratio %.2f"):format(f, ns / f) or ""
end
print(("cf.step() idle  %9.1f ns/step%s"):format(idle, floor_col(idle, f_empty)))
print(("cf.step() timer %9.1f ns/step%s"):format(timer, floor_col(timer, f_timer)))
print(("cf.step() ready %9.1f ns/step   (1000 ready tasks; %.0f polls per step, %.1f ns per poll)")
  :format(ready, per_step, ready / per_step))
