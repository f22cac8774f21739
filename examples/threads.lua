-- OS threads next to async tasks: the same two loops of five one-second
-- steps, first as two worker threads (each blocks its own OS thread), then
-- as two tasks on the one event-loop thread. Both take ~5 s, not 10.
-- Run: lua5.4 examples/threads.lua [step_ms]   (default 1000)
local cf = require "cfuture"

local step = tonumber(arg and arg[1]) or 1000
local t0 = cf.now()
local function stamp() return ("[%5.2f s]"):format((cf.now() - t0) / 1000) end

-- 1. thread::spawn: a function that blocks, run on two OS threads. It runs in
-- a fresh Lua state, so it receives what it needs as arguments and reports
-- through a channel (print from two threads would interleave mid-line).
local lines = cf.thread.channel()
local function count(name, step_ms, out)
  local thread = require "cfuture.thread"
  for i = 1, 5 do
    out:send_blocking(("%s %d"):format(name, i))
    thread.sleep(step_ms) -- blocks this worker only
  end
  return name .. " done"
end

cf.block_on(function()
  local a = cf.thread.spawn(count, "thread hi ", step, lines)
  local b = cf.thread.spawn(count, "thread bye", step, lines)
  local printer = cf.spawn(function()
    for _ = 1, 10 do
      local line = lines:recv():await()
      print(stamp(), line)
    end
  end)
  local ra, rb = a:await(), b:await()
  printer:await()
  print(stamp(), ra, "/", rb)
end)

-- 2. The async version: two tasks, one thread, cf.sleep suspends the task.
local count_async = cf.async(function(name)
  for i = 1, 5 do
    print(stamp(), ("%s %d"):format(name, i))
    cf.sleep(step):await()
  end
  return name .. " done"
end)

cf.block_on(function()
  local ra, rb = cf.join(count_async("task hi   "), count_async("task bye  ")):await()
  print(stamp(), ra, "/", rb)
end)
print(stamp(), "both versions finished")
