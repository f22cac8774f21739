-- cf.step(): one non-blocking turn, for hosts that own the main loop.
local cf = require "cfuture"
local support = require "support"

describe("step", function()
  it("returns false when no task is alive", function()
    assert.is_false(cf.step())
  end)

  it("never blocks, and drives tasks to completion across calls", function()
    local done = false
    cf.spawn(function() cf.sleep(50):await(); done = true end)
    local t0 = cf.now()
    assert.is_true(cf.step()) -- the task started and armed its timer
    assert.is_true(cf.now() - t0 < 20 * support.slow)
    local steps = 1
    while cf.step() do
      steps = steps + 1
      assert.is_true(cf.now() - t0 < 2000 * support.slow, "step loop did not finish")
    end
    assert.is_true(done)
    assert.is_true(cf.now() - t0 >= 50)
    assert.is_true(steps > 1)
  end)

  it("runs at most a budget of polls per call, so a busy task cannot starve the host", function()
    local n = 0
    local h = cf.spawn(function() while true do n = n + 1; cf.yield_now():await() end end)
    cf.step()
    assert.is_true(n >= 1 and n <= 2048, n)
    h:abort()
    cf.step()
    assert.is_false(cf.step())
  end)

  it("takes a budget of task polls and leaves the rest ready for the next step", function()
    local order = {}
    for i = 1, 10 do
      cf.spawn(function() order[#order + 1] = i end)
    end
    assert.is_true(cf.step(3))
    assert.are.same({ 1, 2, 3 }, order)
    assert.are.equal(0, cf.backend_timeout()) -- tasks are still ready
    assert.is_true(cf.step(4))
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7 }, order)
    assert.is_false(cf.step(3)) -- the last three: nothing is left
    assert.are.equal(10, #order)
    assert.are.equal(-1, cf.backend_timeout())
  end)

  it("counts every poll of a task that yields against the budget", function()
    local n = 0
    local h = cf.spawn(function() while true do n = n + 1; cf.yield_now():await() end end)
    cf.step(5)
    assert.are.equal(5, n)
    cf.step(1)
    assert.are.equal(6, n)
    h:abort()
    assert.is_false(cf.step(1)) -- the cancellation is a poll too
  end)

  it("polls I/O even when the budget is spent by a busy task", function()
    local fired = false
    cf.spawn(function() cf.sleep(10):await(); fired = true end)
    local h = cf.spawn(function() while true do cf.yield_now():await() end end)
    local t0 = cf.now()
    while not fired and cf.now() - t0 < 2000 * support.slow do cf.step(1) end
    assert.is_true(fired)
    h:abort()
    cf.step()
    assert.is_false(cf.step())
  end)

  it("rejects a budget that is not a positive integer", function()
    for _, bad in ipairs({ 0, -1, 1.5, "x", true }) do
      local ok, err = pcall(cf.step, bad)
      assert.is_false(ok)
      assert.matches("step: argument #1 must be a positive integer budget of task polls", err)
    end
  end)
end)

describe("cf.backend_fd / cf.backend_timeout", function()
  it("tell a host loop what to wait on: -1 idle, 0 when ready, else the next timer", function()
    local cf = require "cfuture"
    assert.is_true(math.type(cf.backend_fd()) == "integer" and cf.backend_fd() >= 0)
    while cf.step() do end
    assert.are.equal(-1, cf.backend_timeout())
    local done = false
    cf.spawn(function() cf.sleep(100):await(); done = true end)
    assert.are.equal(0, cf.backend_timeout()) -- the new task is ready
    cf.step()
    local t = cf.backend_timeout()
    assert.is_true(t >= 50 and t <= 101, t)
    while not done do cf.step() end
    assert.are.equal(-1, cf.backend_timeout())
  end)
end)

describe("a host polling cf.backend_fd", function()
  local ok_luv, uv = pcall(require, "luv")
  -- Whether the backend fd turns readable within ms, polled by luv's loop.
  local function readable_within(ms)
    require("cfuture").backend_timeout() -- what a host asks before it waits
    local fired = false
    local p = uv.new_poll(require("cfuture").backend_fd())
    local t = uv.new_timer()
    p:start("r", function() fired = true; p:stop(); t:stop() end)
    t:start(ms, 0, function() p:stop() end)
    uv.run("once")
    p:close(); t:close()
    uv.run("nowait")
    return fired
  end

  it("is woken when a task is spawned or an error is queued outside a step", function()
    if not ok_luv then return pending("luv is not installed") end
    local cf = require "cfuture"
    while cf.step() do end
    assert.is_false(readable_within(50)) -- idle: nothing to do
    local ran = false
    cf.backend_timeout() -- the host looks, then waits
    cf.spawn(function() ran = true end)
    assert.is_true(readable_within(5000)) -- no step ran, the fd says "step now"
    cf.step()
    assert.is_true(ran)
    while cf.step() do end
    assert.is_false(readable_within(50))
    -- an error report queued by a finaliser, outside any step
    local got = {}
    local prev = cf.on_error(function(err) got[#got + 1] = err end)
    local h = cf.spawn(function() error("nobody awaited this", 0) end)
    cf.step()
    while cf.step() do end
    readable_within(0) -- drain
    h = nil -- luacheck: ignore
    collectgarbage(); collectgarbage()
    assert.are.equal(0, #got)
    assert.is_true(readable_within(5000))
    cf.step()
    cf.on_error(prev)
    assert.are.equal(1, #got)
    assert.matches("^nobody awaited this", got[1])
  end)

  it("wakes a host in a fresh process, before any step ran", function()
    if not ok_luv then return pending("luv is not installed") end
    local support = require "support"
    local out, status, _, err = support.run_lua([[
      local cf = require "cfuture"
      local uv = require "luv"
      local fired = false
      local p = uv.new_poll(cf.backend_fd())
      p:start("r", function() fired = true; p:stop() end)
      cf.backend_timeout()
      cf.spawn(function() end) -- the first work this runtime ever had
      local t = uv.new_timer()
      t:start(5000, 0, function() p:stop() end)
      uv.run("once")
      print(fired, cf.step())
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("true\tfalse\n", out)
  end)

  it("does not wake a host that has not asked (a plain script pays nothing)", function()
    if not ok_luv then return pending("luv is not installed") end
    local cf = require "cfuture"
    while cf.step() do end
    readable_within(0)
    cf.step() -- a drive: the host is awake again
    cf.spawn(function() end)
    local fired = false
    local p = uv.new_poll(cf.backend_fd())
    p:start("r", function() fired = true; p:stop() end)
    local t = uv.new_timer()
    t:start(50, 0, function() p:stop() end)
    uv.run("once")
    p:close(); t:close(); uv.run("nowait")
    assert.is_false(fired)
    assert.are.equal(0, cf.backend_timeout()) -- it says "step now" when asked
    cf.step()
  end)
end)
