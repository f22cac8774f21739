-- Timers at their limits: delays too long to ever end (on the real clock and
-- the virtual one), the clock moved to its end, and bad arguments.
local cf = require "cfuture"
local support = require "support"

-- The runtime's clock stops advancing by hand at 2^63 - 1 ns (some 292
-- years); a deadline past 64 bits of nanoseconds is never in practice.
local CLOCK_END = 9223372036854 + 775807 / 1e6 -- ms, as cf.now() shows it

-- Whether f (a future) is still pending after `ms` of real time; the select
-- is dropped after, cancelling f.
local function pending_after(f, ms)
  local t0 = cf.now()
  local i = cf.block_on(cf.select(f, cf.sleep(ms)))
  return i == 2 and cf.now() - t0 >= ms
end

describe("a huge delay on the real clock", function()
  it("stays pending (sleep, sleep_until, timeout, interval)", function()
    for _, ms in ipairs({ 1.9e13, 2e13, 1e14, 1e15 }) do
      assert.is_true(pending_after(cf.sleep(ms), 30), ms)
      assert.is_true(pending_after(cf.sleep_until(math.min(cf.now() + ms, 1e15)), 30), ms)
      assert.is_true(pending_after(cf.timeout(ms, cf.sleep(1e9)), 30), ms)
    end
    assert.is_true(pending_after(cf.sleep_until(1e15), 30))
    assert.is_true(pending_after(cf.sleep(1e12), 30)) -- long, and representable
    local iv = cf.interval(2e13)
    local t0 = cf.now()
    cf.block_on(iv:tick()) -- the first tick is at once
    assert.is_true(cf.now() - t0 < 1000 * support.slow)
    assert.is_true(pending_after(iv:tick(), 30))
  end)

  it("of a timeout lets the future's results through", function()
    assert.are.same({ 42, "x" }, { cf.block_on(cf.timeout(2e13, function()
      cf.sleep(10):await()
      return 42, "x"
    end)) })
  end)

  it("does not hold back nearer sleeps, and is described with its time left", function()
    cf.block_on(function()
      local far = cf.spawn(function() cf.sleep(2e13):await() end)
      cf.yield_now():await() -- far arms the timer for its deadline
      local left
      for _, t in ipairs(cf.tasks()) do
        local n = t.awaiting and t.awaiting:match("^sleep %((%d+) ms left%)$")
        if n then left = tonumber(n) end
      end
      assert.is_true(left and left > 1e13, tostring(left))
      local t0 = cf.now()
      cf.sleep(20):await()
      local dt = cf.now() - t0
      assert.is_true(dt >= 20 and dt < 20 + 500 * support.slow, dt)
      assert.is_false(far:is_finished())
      far:abort()
    end)
  end)
end)

describe("a huge delay on the virtual clock", function()
  it("is out of auto-advance's reach: a task waiting only for it is a deadlock", function()
    for _, mk in ipairs({
      function() return cf.sleep(2e13) end,
      function() return cf.sleep(1e15) end,
      function() return cf.sleep_until(1e15) end,
      function() return cf.timeout(2e13, cf.channel():recv()) end,
    }) do
      local t0 = cf.now()
      local ok, err = pcall(cf.test.run, function() mk():await() end)
      assert.is_false(ok)
      assert.matches("deadlock", err)
      assert.is_true(cf.now() - t0 < 1000 * support.slow) -- the clock did not jump
    end
    assert.is_false(cf.time.is_paused())
  end)

  it("does not fire before what is nearer, which the clock reaches exactly", function()
    local moved, res = cf.test.run(function()
      local t0 = cf.now()
      local r = { cf.timeout(2e13, cf.sleep(1e12)):await() }
      return cf.now() - t0, r
    end)
    assert.are.equal(1e12, moved)
    assert.are.same({}, res) -- the sleep's (no) results, not nil, "timeout"
    local ticks = cf.test.run(function()
      local iv = cf.interval(2e13)
      local t0 = cf.now()
      iv:tick():await()
      local i = cf.select(iv:tick(), cf.sleep(50)):await()
      return { i, cf.now() - t0 }
    end)
    assert.are.same({ 2, 50 }, ticks)
  end)

  it("cf.time.advance moves the clock by a long span exactly, firing what is due", function()
    cf.time.pause()
    local fired, hs = {}, {}
    for _, ms in ipairs({ 2e13, 1e12, 1e12 + 1 }) do
      hs[#hs + 1] = cf.spawn(function()
        cf.sleep(ms):await()
        fired[#fired + 1] = ms
      end)
    end
    cf.step()
    local t0 = cf.now()
    cf.time.advance(1e12)
    cf.step()
    assert.are.equal(1e12, cf.now() - t0)
    assert.are.same({ 1e12 }, fired)
    cf.time.advance(1)
    cf.step()
    assert.are.same({ 1e12, 1e12 + 1 }, fired)
    cf.time.resume()
    assert.is_false(hs[1]:is_finished())
    hs[1]:abort()
    cf.run()
  end)

  it("cf.time.advance(2e13) moves the clock to its end; sleeps work on after", function()
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      cf.time.pause()
      local fired = {}
      for _, ms in ipairs({ 5e12, 2e13, 1e15, 1e12 }) do
        cf.spawn(function() cf.sleep(ms):await(); fired[#fired + 1] = ms end)
      end
      cf.spawn(function() cf.sleep_until(1e15):await(); fired[#fired + 1] = "until" end)
      cf.step()
      cf.time.advance(2e13)
      cf.step()
      print(("%.3f"):format(cf.now()), table.concat(fired, " "))
      cf.time.advance(2e13) -- at the end: stays
      cf.time.advance(0)
      print(("%.3f"):format(cf.now()))
      cf.time.resume()
      local t0 = cf.now()
      cf.block_on(cf.sleep(20))
      local dt = cf.now() - t0
      print(dt >= 20 and dt < 60000, cf.now() >= t0)
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local expect_end = ("%.3f"):format(CLOCK_END)
    assert.are.equal(expect_end .. "\t" .. ("%s %s"):format(1e12, 5e12) .. "\n"
      .. expect_end .. "\ntrue\ttrue\n", out)
  end)
end)

describe("timer arguments", function()
  local function msg(fname, what, got)
    if what == "type" then
      return ("%s: argument #1 must be a number of milliseconds (got %s)"):format(fname, got)
    elseif what == "range" then
      return ("%s: argument #1 must be a non-negative, finite number of milliseconds (got %s)")
        :format(fname, got)
    end
    return ("%s: argument #1 must be at most 1e15 milliseconds (got %s)"):format(fname, got)
  end

  -- Every bad value, the kind of error and what the message shows of it.
  local bad = {
    { nil, "type", "nil" }, { "soon", "type", "string" }, { {}, "type", "table" },
    { true, "type", "boolean" }, { -1, "range", "-1" }, { -1e-300, "range", "-1e-300" },
    { math.huge, "range", "inf" }, { -math.huge, "range", "-inf" },
    { 1e15 + 1, "max", "1000000000000001" }, { 1e16, "max", "1e+16" }, { "1e20", "max", "1e20" },
  }

  local function check_all(fname, call0, missing)
    local function call(...)
      local ok, err = pcall(call0, ...)
      return ok, not ok and tostring(err):gsub("^[^:]*:%d+: ", "") or nil
    end
    for _, b in ipairs(bad) do
      local ok, err = call(b[1])
      assert.is_false(ok, fname .. " " .. tostring(b[1]))
      assert.are.equal(msg(fname, b[2], b[3]), err)
    end
    local ok, err = call(0 / 0)
    assert.is_false(ok)
    assert.are.equal(msg(fname, "range", "nan"), err)
    ok, err = call() -- missing
    assert.is_false(ok)
    assert.are.equal(msg(fname, "type", missing or "no value"), err)
  end

  it("are checked by sleep, sleep_until, timeout and time.advance", function()
    check_all("sleep", function(...) return (cf.sleep(...)) end)
    check_all("sleep_until", function(...) return (cf.sleep_until(...)) end)
    check_all("timeout", function(...) return (cf.timeout(..., cf.sleep(1))) end, "nil")
    cf.time.pause()
    check_all("time.advance", function(...) return (cf.time.advance(...)) end)
    cf.time.resume()
    for _, v in ipairs({ 0 / 0, -1, -0.0, math.huge, "x", {} }) do
      assert.has_error(function() cf.interval(v) end)
    end
  end)

  it("accept -0 as 0 and the largest value", function()
    local t0 = cf.now()
    cf.block_on(cf.sleep(-0.0))
    cf.block_on(cf.sleep_until(-0.0))
    assert.are.same({ nil, "timeout" }, { cf.block_on(cf.timeout(-0.0, cf.sleep(1e9))) })
    assert.is_true(cf.now() - t0 < 1000 * support.slow)
    cf.time.pause()
    local p = cf.now()
    cf.time.advance(-0.0)
    assert.are.equal(p, cf.now())
    cf.time.resume()
    assert.is_true(pending_after(cf.sleep(1e15), 10))
    assert.is_true(pending_after(cf.sleep("1e15"), 10))
  end)

  it("raise 'the cfuture runtime is closed' once it closed #lua54", function()
    -- A finaliser set before require "cfuture" runs after the runtime's own.
    -- (LuaJIT unloads C modules before such finalisers run: 5.4 only.)
    local out, code, _, err = support.run_lua([[
      local cf
      HOOK = setmetatable({}, { __gc = function()
        local function try(f)
          local ok, e = pcall(f)
          print(ok, (tostring(e):gsub("^[^:]*:%d+: ", "")))
        end
        try(function() local x = cf.sleep(1) return x end)
        try(function() local x = cf.sleep("bad") return x end)
        try(function() local x = cf.sleep_until(1) return x end)
        try(function() local x = cf.now() return x end)
        try(function() local x = cf.yield_now() return x end)
        try(function() local x = cf.time.pause() return x end)
        try(function() local x = cf.time.resume() return x end)
        try(function() local x = cf.time.advance(1) return x end)
        try(function() local x = cf.time.is_paused() return x end)
        try(function() local x = cf.timeout(1, function() end) return x end)
      end })
      cf = require "cfuture"
      cf.block_on(cf.sleep(1))
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local expect = {}
    for _, name in ipairs({ "sleep", "sleep", "sleep_until", "now", "yield_now", "pause",
      "resume", "advance", "is_paused", "timeout" }) do
      expect[#expect + 1] = "false\t" .. name .. ": the cfuture runtime is closed\n"
    end
    assert.are.equal(table.concat(expect), out)
  end)
end)

describe("an interval", function()
  it("refuses a period over 1e15 ms and names itself", function()
    local ok, err = pcall(cf.interval, 1e16)
    assert.is_false(ok)
    assert.matches("interval: argument #1 must be at most 1e15 milliseconds", err)
  end)

  it("with the longest period stays pending after its first tick", function()
    local iv = cf.interval(1e15)
    local first, second = cf.block_on(function()
      local t = iv:tick():await()
      return t, select(2, cf.timeout(20, iv:tick()):await())
    end)
    assert.is_number(first)
    assert.are.equal("timeout", second)
  end)

  it("with the tiniest period ticks on without overflowing its schedule", function()
    local iv = cf.interval(5e-324)
    local a, b = cf.block_on(function() return iv:tick():await(), iv:tick():await() end)
    assert.is_true(b >= a and b < math.huge)
  end)
end)
