-- The main demo: the classic first programs of an async runtime.
-- Run: lua5.4 examples/demo.lua   (after building; see README)
local cf = require "cfuture"

local t0 = cf.now()
local function stamp() return ("[%5.2f s]"):format((cf.now() - t0) / 1000) end

-- 1. print_for_five: two loops that each print five lines, one a second.
-- Run one after the other they take 10 s; as two tasks, 5 s.
local print_for_five = cf.async(function(name)
  for i = 1, 5 do
    print(stamp(), name, i)
    cf.sleep(1000):await()
  end
end)

cf.block_on(function()
  cf.join(print_for_five("apple"), print_for_five("orange")):await()
end)
print(stamp(), "all 10 lines printed")

-- 2. fetch(): an async function returning a value after some "I/O".
local fetch = cf.async(function()
  cf.sleep(100):await()
  return 42
end)
print(stamp(), "fetch() ->", cf.block_on(fetch()))

-- 3. spawn a task, keep its JoinHandle, await it later.
print(stamp(), "spawned task returned", cf.block_on(function()
  local handle = cf.spawn(function()
    cf.sleep(200):await()
    return "hello from a task"
  end)
  print(stamp(), "main goes on while the task sleeps")
  return handle:await()
end))

-- 4. join, select, timeout.
cf.block_on(function()
  local slow = cf.async(function(ms, v) cf.sleep(ms):await(); return v end)
  print(stamp(), "join   ->", cf.join(slow(300, "a"), slow(100, "b")):await())
  print(stamp(), "select ->", cf.select(slow(300, "slow"), slow(100, "fast")):await())
  print(stamp(), "timeout->", cf.timeout(50, slow(1000, "too late")):await())
end)
