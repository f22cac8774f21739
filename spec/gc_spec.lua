-- Garbage collection while work is pending is safe and leaks nothing.
local cf = require "cfuture"
local support = require "support"

local function heap_kb()
  support.full_gc()
  return collectgarbage("count")
end

describe("garbage collection", function()
  it("of 20,000 never-polled sleeps is safe", function()
    for _ = 1, 20000 do cf.sleep(1000) end
    support.full_gc()
    local t0 = cf.now()
    cf.block_on(cf.sleep(1))
    assert.is_true(cf.now() - t0 < 500 * support.slow)
  end)

  it("of polled-then-dropped futures disarms their timers", function()
    cf.block_on(function()
      for _ = 1, 2000 do
        cf.select(cf.sleep(10000), cf.sleep(0)):await()
      end
    end)
    support.full_gc()
    -- nothing left to wait for: run() returns at once instead of sleeping 10 s
    local t0 = cf.now()
    cf.run()
    assert.is_true(cf.now() - t0 < 100 * support.slow)
  end)

  it("of thousands of detached task handles lets the tasks finish", function()
    local done = 0
    cf.block_on(function()
      for i = 1, 5000 do cf.spawn(function() cf.sleep(i % 10):await(); done = done + 1 end) end
      support.full_gc()
    end)
    cf.run()
    support.full_gc()
    assert.are.equal(5000, done)
    assert.are.equal(0, #cf.tasks())
  end)

  it("of an unspawned, suspended future runs its <close> handlers #lua54", function()
    local closed = 0
    local f = cf.async(function()
      local c <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
      cf.sleep(10000):await()
    end)
    cf.block_on(function()
      local fut = f()
      cf.select(fut, cf.sleep(1)):await() -- fut loses: dropped, closed at once
    end)
    assert.are.equal(1, closed)
  end)

  it("does not grow the heap over repeated spawn/join/select rounds", function()
    local function round()
      cf.block_on(function()
        local hs = {}
        for i = 1, 500 do hs[i] = cf.spawn(function() cf.sleep(i % 3):await(); return i end) end
        for i = 1, 500 do hs[i]:await() end
        cf.join_all({ cf.sleep(1), cf.sleep(2) }):await()
        cf.timeout(1, cf.sleep(100)):await()
      end)
    end
    round()
    local before = heap_kb()
    for _ = 1, 10 do round() end
    local after = heap_kb()
    assert.is_true(after - before < 200, ("heap grew by %.1f KiB"):format(after - before))
  end)

  it("of handles while their tasks run, at interpreter exit, is safe #lua54", function()
    local out, code = support.run_lua([[
      local cf = require "cfuture"
      for i = 1, 1000 do cf.spawn(function() cf.sleep(100000):await() end) end
      for i = 1, 1000 do cf.async(function() cf.sleep(100000):await() end)() end
      cf.block_on(function() cf.sleep(1):await() end)
      local f = cf.async(function()
        local c <close> = setmetatable({}, { __close = function() io.write("closed at exit\n") end })
        cf.sleep(100000):await()
      end)
      cf.spawn(f())
      cf.block_on(cf.yield_now())
      print("exiting")
    ]])
    assert.are.equal(0, code)
    assert.are.equal("exiting\nclosed at exit\n", out)
  end)
end)
