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
end)
