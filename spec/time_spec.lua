-- The virtual clock: cf.time.pause / advance / resume and cf.test.run.
local cf = require "cfuture"
local support = require "support"

-- Two loops that log (virtual) time stamps: a every 20 ms, b every 35 ms
-- (times `scale`: in real time the loops drift by their own run time, which
-- is long under valgrind).
local function two_loops(log, scale)
  scale = scale or 1
  local start = cf.now()
  local function loop(name, step)
    for i = 1, 5 do
      log[#log + 1] = { name .. i, cf.now() - start }
      cf.sleep(step * scale):await()
    end
  end
  cf.join(cf.spawn(loop, "a", 20), cf.spawn(loop, "b", 35)):await()
end

describe("cf.test.run", function()
  it("runs an hour of sleeps in milliseconds", function()
    local wall0, cpu0 = os.time(), os.clock()
    local slept = cf.test.run(function()
      local t0 = cf.now()
      cf.sleep(3600 * 1000):await()
      return cf.now() - t0
    end)
    assert.are.equal(3600 * 1000, slept) -- exactly: nothing else moved the clock
    assert.is_true(os.time() - wall0 <= 1)
    assert.is_true(os.clock() - cpu0 < 1)
  end)

  it("keeps the order of real time, at exact virtual time stamps", function()
    local real, virtual = {}, {}
    local scale = support.slow
    cf.block_on(two_loops, real, scale)
    cf.test.run(two_loops, virtual)
    local order_real, order_virtual = {}, {}
    for i = 1, #real do order_real[i] = real[i][1] end
    for i = 1, #virtual do order_virtual[i] = virtual[i][1] end
    assert.are.same(order_real, order_virtual)
    assert.are.same({ "a1", "b1", "a2", "b2", "a3", "a4", "b3", "a5", "b4", "b5" }, order_virtual)
    local stamps = {}
    for i = 1, #virtual do stamps[i] = virtual[i][2] end
    assert.are.same({ 0, 0, 20, 35, 40, 60, 70, 80, 105, 140 }, stamps)
    -- in real time every stamp is at least its virtual one (a sleep never ends early)
    for i = 1, #real do assert.is_true(real[i][2] >= virtual[i][2] * scale - 0.001) end
  end)

  it("fires timeouts and intervals in virtual time", function()
    local ticks = cf.test.run(function()
      assert.are.same({ nil, "timeout" }, { cf.timeout(1000, cf.sleep(5000)):await() })
      local iv = cf.interval(250)
      local t0 = cf.now()
      local at = {}
      for i = 1, 4 do
        iv:tick():await()
        at[i] = cf.now() - t0
      end
      return at
    end)
    assert.are.same({ 0, 250, 500, 750 }, ticks)
  end)

  it("re-raises an error and lets the clock run on afterwards", function()
    local before = cf.now()
    local ok, err = pcall(cf.test.run, function()
      cf.sleep(10000):await()
      error("inside", 0)
    end)
    assert.is_false(ok)
    assert.matches("^inside", err)
    assert.is_false(cf.time.is_paused())
    assert.is_true(cf.now() >= before + 10000) -- the clock never goes back
    local t0 = cf.now()
    cf.block_on(cf.sleep(20))
    assert.is_true(cf.now() - t0 >= 20)
  end)

  it("still reports a deadlock when nothing is armed", function()
    assert.has_error(function()
      cf.test.run(function() cf.channel():recv():await() end)
    end)
    assert.is_false(cf.time.is_paused())
  end)
end)

describe("cf.time", function()
  it("moves a paused clock only when told to", function()
    cf.time.pause()
    local done = false
    local h = cf.spawn(function()
      cf.sleep(100):await()
      done = true
    end)
    cf.step()
    local t0 = cf.now()
    cf.time.advance(60)
    cf.step()
    assert.is_false(done)
    assert.are.equal(60, cf.now() - t0)
    cf.time.advance(40)
    cf.step()
    assert.is_true(done)
    assert.is_true(h:is_finished())
    cf.time.resume()
  end)

  it("refuses to advance a running clock", function()
    assert.has_error(function() cf.time.advance(10) end, "time.advance: the clock is not paused")
    cf.time.pause()
    assert.has_error(function() cf.time.advance(-1) end,
      "time.advance: argument #1 must be a non-negative, finite number of milliseconds (got -1)")
    cf.time.resume()
  end)
end)

-- The example in docs/API.md, as written there.
describe("retry with backoff", function()
  it("waits 1 s, then 2 s, between attempts", function()
    local attempts = {}
    cf.test.run(function()
      local t0 = cf.now()
      for i = 1, 3 do
        attempts[i] = cf.now() - t0
        cf.sleep(1000 * 2 ^ (i - 1)):await()
      end
    end)
    assert.are.same({ 0, 1000, 3000 }, attempts)
  end)
end)

-- Equal deadlines fire in the order they were armed (libuv orders its timers
-- by (timeout, start_id) the same way), on the virtual clock and the real one.
describe("sleeps with equal deadlines", function()
  -- Spawn one task per delay (each arms its sleep when first polled, in spawn
  -- order); returns the indices in the order they woke.
  local function wake_order(delays, sleep_of)
    local order = {}
    local hs = {}
    for i = 1, #delays do
      hs[i] = cf.spawn(function()
        sleep_of(delays[i]):await()
        order[#order + 1] = i
      end)
    end
    for i = 1, #delays do hs[i]:await() end
    return order
  end

  -- The indices of delays sorted by delay, equal delays in index order.
  local function stable_order(delays)
    local idx = {}
    for i = 1, #delays do idx[i] = i end
    table.sort(idx, function(a, b)
      if delays[a] ~= delays[b] then return delays[a] < delays[b] end
      return a < b
    end)
    return idx
  end

  local function seq(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end

  local function mixed(n)
    local d, x = {}, 7
    for i = 1, n do
      x = (x * 75 + 74) % 65537
      d[i] = math.floor(x / 16) % 4 * 10 -- 0, 10, 20 or 30: many ties
    end
    return d
  end

  local function const(n, v)
    local d = {}
    for i = 1, n do d[i] = v end
    return d
  end

  it("wake in the order they were armed in virtual time", function()
    assert.are.same(seq(8), cf.test.run(wake_order, const(8, 10), cf.sleep))
    assert.are.same(seq(500), cf.test.run(wake_order, const(500, 10), cf.sleep))
    local d = mixed(300)
    assert.are.same(stable_order(d), cf.test.run(wake_order, d, cf.sleep))
  end)

  it("wake in the order they were armed with the clock advanced by hand", function()
    cf.time.pause()
    local order = {}
    for i = 1, 64 do
      cf.spawn(function()
        cf.sleep(5):await()
        order[#order + 1] = i
      end)
    end
    cf.step()
    cf.time.advance(5)
    cf.run()
    cf.time.resume()
    assert.are.same(seq(64), order)
  end)

  it("wake in the order they were armed in real time (one sleep_until time)", function()
    -- relative sleeps armed one after another get distinct real deadlines;
    -- sleep_until gives them one and the same (far enough ahead that every
    -- task arms its sleep before it is due)
    local t, late = 0, 0
    local until_t = function(d)
      if cf.now() >= t then late = late + 1 end
      return cf.sleep_until(t + d)
    end
    t = cf.now() + 50 * support.slow
    assert.are.same(seq(200), cf.block_on(wake_order, const(200, 0), until_t))
    t = cf.now() + 50 * support.slow
    local d = mixed(200)
    assert.are.same(stable_order(d), cf.block_on(wake_order, d, until_t))
    assert.are.equal(0, late)
  end)

  it("time out in the order they were armed", function()
    local order = cf.test.run(function()
      local out = {}
      local hs = {}
      for i = 1, 16 do
        hs[i] = cf.spawn(function()
          assert.are.same({ nil, "timeout" }, { cf.timeout(100, cf.sleep(1000)):await() })
          out[#out + 1] = i
        end)
      end
      for i = 1, 16 do hs[i]:await() end
      return out
    end)
    assert.are.same(seq(16), order)
  end)
end)
