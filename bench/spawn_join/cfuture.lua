-- W1 spawn_join on cfuture: a main task spawns N tasks (each returns its
-- index without suspending), then awaits each JoinHandle in order and sums.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 200000)
local spawn = cf.spawn
local function task(i) return i end

local t0 = B.now()
local sum = cf.block_on(function()
  local hs = {}
  for i = 1, N do hs[i] = spawn(task, i) end
  local s = 0
  for i = 1, N do s = s + hs[i]:await() end
  return s
end)
local dt = B.now() - t0

B.check(sum == N * (N + 1) // 2, "sum")
B.report("spawn_join", "cfuture", N, dt, "sum=" .. sum)
