-- Timers: sleeps never end early, cost no CPU, and let go when cancelled.
local cf = require "cfuture"
local support = require "support"

local function busy(ms)
  local t = cf.now()
  while cf.now() - t < ms do end
end

describe("sleep", function()
  it("never ends early, across many concurrent delays", function()
    local early = {}
    cf.block_on(function()
      local hs = {}
      for i = 1, 200 do
        local ms = (i * 7) % 31 + 1
        hs[i] = cf.spawn(function()
          local t0 = cf.now()
          cf.sleep(ms):await()
          local dt = cf.now() - t0
          if dt < ms then early[#early + 1] = ("%d ms sleep took %.3f"):format(ms, dt) end
        end)
      end
      for i = 1, 200 do hs[i]:await() end
    end)
    assert.are.same({}, early)
  end)

  it("is not early after a long stretch of Lua work (loop time is refreshed)", function()
    cf.block_on(function()
      cf.sleep(5):await()
      busy(60)
      local t0 = cf.now()
      cf.sleep(20):await()
      local dt = cf.now() - t0
      assert.is_true(dt >= 20, dt)
      assert.is_true(dt < 20 + 100 * support.slow, dt)
    end)
  end)

  it("that is already due when the loop polls wakes its task without waiting for later timers", function()
    local t0 = cf.now()
    cf.block_on(function()
      local far = cf.spawn(function() cf.sleep(10000):await() end)
      cf.yield_now():await()
      local near = cf.spawn(function() cf.sleep(1):await() end)
      cf.spawn(function() busy(20) end) -- runs after near arms its 1 ms sleep
      near:await()
      far:abort()
    end)
    assert.is_true(cf.now() - t0 < 1000 * support.slow)
  end)

  it("arms its timer on first poll, not at creation", function()
    local s = cf.sleep(100)
    cf.block_on(cf.sleep(100))
    local t0 = cf.now()
    cf.block_on(s)
    assert.is_true(cf.now() - t0 >= 100)
  end)

  it("uses almost no CPU while waiting", function()
    local c0, t0 = os.clock(), cf.now()
    cf.block_on(cf.sleep(300))
    local cpu, wall = os.clock() - c0, cf.now() - t0
    assert.is_true(wall >= 300, wall)
    assert.is_true(cpu < 0.03 * support.slow, cpu)
  end)

  it("of 0 ms is ready at once; fractions of a millisecond are honoured", function()
    local t0 = cf.now()
    cf.block_on(cf.sleep(0))
    cf.block_on(cf.sleep(0.5))
    assert.is_true(cf.now() - t0 >= 0.5)
  end)

  it("rejects bad delays with a clear error, and the runtime stays usable", function()
    assert.has_error(function() cf.sleep(-1) end,
      "sleep: argument #1 must be a non-negative, finite number of milliseconds (got -1)")
    assert.has_error(function() cf.sleep("soon") end,
      "sleep: argument #1 must be a number of milliseconds (got string)")
    assert.has_error(function() cf.sleep(0 / 0) end)
    assert.has_error(function() cf.sleep(math.huge) end)
    assert.has_error(function() cf.timeout(-5, cf.sleep(1)) end)
    cf.block_on(cf.sleep(1))
  end)

  it("sleep_until waits for an absolute cf.now() time", function()
    local target = cf.now() + 30
    cf.block_on(cf.sleep_until(target))
    assert.is_true(cf.now() >= target)
    cf.block_on(cf.sleep_until(0)) -- in the past: ready at once
  end)

  it("cancelled, does not keep the process alive", function()
    local out, code, ms = support.run_lua([[
      local cf = require "cfuture"
      print(cf.block_on(cf.timeout(10, cf.sleep(60000))))
      local h = cf.spawn(function() cf.sleep(60000):await() end)
      cf.block_on(function() cf.sleep(5):await(); h:abort() end)
      cf.run()
      print("done")
    ]])
    assert.are.equal(0, code)
    assert.are.equal("nil\ttimeout\ndone\n", out)
    -- far below the 60 s the cancelled sleeps asked for (valgrind starts slowly)
    assert.is_true(ms < math.min(2000 * support.slow, 30000), ms)
  end)
end)

describe("now", function()
  it("is monotonic and in milliseconds", function()
    local a = cf.now()
    cf.block_on(cf.sleep(20))
    local b = cf.now()
    assert.is_true(b - a >= 20 and b - a < 20 + 200 * support.slow)
  end)
end)

describe("interval", function()
  it("ticks on a fixed schedule, the first at once", function()
    local iv = cf.interval(25)
    local t0 = cf.now()
    local times = {}
    cf.block_on(function()
      for i = 1, 4 do
        iv:tick():await()
        times[i] = cf.now() - t0
      end
    end)
    assert.is_true(times[1] < 10 * support.slow)
    for i = 2, 4 do assert.is_true(times[i] >= 25 * (i - 1), times[i]) end
    assert.is_true(times[4] < 75 + 100 * support.slow)
  end)

  it("skips ticks missed while the task was busy", function()
    local iv = cf.interval(20)
    cf.block_on(function()
      local first = iv:tick():await()
      busy(70) -- misses the ticks at 20, 40 and 60
      local t = cf.now()
      local second = iv:tick():await() -- late tick at 20 is delivered at once
      assert.is_true(cf.now() - t < 10 * support.slow)
      assert.are.equal(first + 20, second)
      local third = iv:tick():await() -- then the schedule resumes at 80
      assert.are.equal(first + 80, third)
    end)
  end)

  it("a cancelled tick does not consume its deadline", function()
    local iv = cf.interval(50)
    cf.block_on(function()
      local first = iv:tick():await()
      assert.are.same({ nil, "timeout" }, { cf.timeout(5, iv:tick()):await() })
      assert.are.equal(first + 50, iv:tick():await())
    end)
  end)

  it("rejects a bad period", function()
    assert.has_error(function() cf.interval(0) end,
      "interval: argument #1 must be a positive number of milliseconds (got 0)")
  end)
end)
