-- cf.blocking: self-contained Lua functions on libuv's thread pool.
local cf = require "cfuture"

describe("cf.blocking", function()
  it("runs a function in another Lua state with copied arguments and results", function()
    local sum, x, t, none, last = cf.block_on(cf.blocking(function(a, b, opts)
      local s = 0
      for i = a, b do s = s + i end
      return s, opts.x, { doubled = opts.x * 2, list = { 1, 2, "three" } }, nil, "end"
    end, 1, 1000000, { x = 21 }))
    assert.are.equal(500000500000, sum)
    assert.are.equal(21, x)
    assert.are.same({ doubled = 42, list = { 1, 2, "three" } }, t)
    assert.is_nil(none)
    assert.are.equal("end", last)
    assert.are.equal(math.type(1.5), math.type(cf.block_on(cf.blocking(function(v) return v end, 1.5))))
  end)

  it("does not block the loop: timers fire while pool threads compute", function()
    cf.block_on(function()
      local ticks = 0
      local ticker = cf.spawn(function()
        for _ = 1, 5 do cf.sleep(10):await(); ticks = ticks + 1 end
      end)
      local t0 = cf.now()
      cf.blocking(function() local t = os.clock() while os.clock() - t < 0.2 do end end):await()
      assert.is_true(cf.now() - t0 >= 150)
      ticker:await()
      assert.are.equal(5, ticks)
    end)
  end)

  it("raises the function's error at the await, naming where it was written", function()
    local ok, err = pcall(cf.block_on, cf.blocking(function() error("boom") end))
    assert.is_false(ok)
    assert.matches("blocking_spec.lua:34: boom", err) -- where the function was written
    ok, err = pcall(cf.block_on, cf.blocking(function() return print end))
    assert.is_false(ok)
    assert.matches("blocking: result #1: cannot copy a C function", err)
    -- functions without upvalues travel (as bytecode), both ways
    local double = cf.block_on(cf.blocking(function(f) return f end, function(x) return 2 * x end))
    assert.are.equal(14, double(7))
  end)

  it("stops a cancelled job, freeing its pool thread", function()
    cf.block_on(function()
      -- fill every pool thread with an endless loop, then cancel them all
      local jobs = {}
      for i = 1, 8 do jobs[i] = cf.spawn(cf.blocking(function() while true do end end)) end
      cf.sleep(50):await()
      for _, h in ipairs(jobs) do h:abort() end
      local t0 = cf.now()
      assert.are.equal("free", cf.timeout(5000, cf.blocking(function() return "free" end)):await())
      assert.is_true(cf.now() - t0 < 5000)
    end)
  end)

  it("refuses what cannot travel, naming the argument", function()
    local up = 1
    assert.has_error(function() cf.blocking(function() return up end) end,
      "blocking: argument #1 must not capture local variables (it uses 'up'): pass values as arguments")
    assert.has_error(function() cf.blocking(print) end,
      "blocking: argument #1 must be a Lua function (got a C function)")
    assert.has_error(function() cf.blocking(function() end, 1, coroutine.create(print)) end,
      "blocking: argument #3: cannot copy a thread to another Lua state")
    local cyc = {}
    cyc.self = cyc
    assert.has_error(function() cf.blocking(function() end, cyc) end,
      "blocking: argument #2: tables nested too deeply (or a cycle)")
  end)
end)

describe("cf.blocking and what it is given", function()
  local support = require "support"
  local slow = support.slow

  it("leaves the caller's thread channel its own after passing it to jobs", function()
    local ch = cf.thread.channel()
    for i = 1, 3 do
      assert.are.equal(i, cf.block_on(cf.blocking(function(c, n)
        c:send_blocking(n)
        return n
      end, ch, i)))
      support.full_gc() -- the job's copies are gone; the caller's channel stays
    end
    assert.are.equal(3, ch:len())
    -- a channel comes back as the same channel
    local back = cf.block_on(cf.blocking(function(c) return c end, ch))
    support.full_gc()
    assert.is_true(cf.block_on(back:send(4)))
    back = nil
    support.full_gc()
    for i = 1, 4 do assert.are.equal(i, ch:try_recv()) end
    assert.are.same({ nil, "empty" }, { ch:try_recv() })
    ch:close()
    assert.is_true(ch:is_closed())
  end)

  it("lets os.exit(n) end the process at once while jobs run and wait #subprocess", function()
    local out, code, ms, err = support.run_lua([[
      local cf = require "cfuture"
      -- more endless jobs than libuv has pool threads: some run, some wait
      for _ = 1, 6 do cf.spawn(cf.blocking(function() while true do end end)) end
      cf.block_on(cf.sleep(50))
      io.write("exiting\n")
      io.flush()
      os.exit(7) -- without closing the state
    ]], ("timeout -s KILL %d env "):format(math.floor(60 * slow)))
    assert.are.equal("exiting\n", out, err)
    assert.are.equal(7, code, err)
    assert.is_true(ms < 10000 * slow, ms)
  end)
end)
