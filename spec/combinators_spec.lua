-- join, join_all, try_join, select, timeout.
local cf = require "cfuture"
local support = require "support"

local function after(ms, ...)
  local n, vals = select("#", ...), { ... }
  return cf.async(function() cf.sleep(ms):await(); return table.unpack(vals, 1, n) end)()
end

-- a future whose completion and cleanup the test can observe
local function tracked(ms, log, name)
  return cf.async(function()
    local guard <close> = setmetatable({}, { __close = function() log[#log + 1] = name .. ":closed" end })
    cf.sleep(ms):await()
    log[#log + 1] = name .. ":done"
    return name
  end)()
end

describe("join", function()
  it("runs futures concurrently and returns results in argument order", function()
    local t0 = cf.now()
    local a, b, c = cf.block_on(cf.join(after(90, "a"), after(10, "b"), after(50, "c")))
    local dt = cf.now() - t0
    assert.are.same({ "a", "b", "c" }, { a, b, c })
    assert.is_true(dt >= 90 and dt < 90 + 150 * support.slow, dt)
  end)

  it("keeps the first result of each future", function()
    assert.are.same({ 1, nil, 3 }, { cf.block_on(cf.join(after(1, 1, "x"), after(1), after(1, 3))) })
    assert.are.same({}, { cf.block_on(cf.join()) })
  end)

  it("is lazy", function()
    local ran = false
    local j = cf.join(function() ran = true end)
    cf.block_on(cf.sleep(1))
    assert.is_false(ran)
    cf.block_on(j)
    assert.is_true(ran)
  end)

  it("waits for all, then raises the first error in argument order #lua54", function()
    local log, reported = {}, {}
    local prev = cf.on_error(function(e) reported[#reported + 1] = e end)
    local ok, err = pcall(cf.block_on, cf.join(
      tracked(30, log, "slow"),
      cf.async(function() cf.sleep(20):await(); error("second") end)(),
      cf.async(function() error("third") end)()))
    assert.is_false(ok)
    assert.matches("second", err)
    assert.are.same({ "slow:done", "slow:closed" }, log)
    cf.block_on(cf.sleep(1)) -- reports are delivered by the loop
    cf.on_error(prev)
    assert.are.equal(1, #reported) -- the other error is not lost
    assert.matches("third", reported[1])
  end)

  it("join_all takes a list and returns a list with n", function()
    local list = {}
    for i = 1, 1000 do list[i] = after(i % 7, i) end
    local r = cf.block_on(cf.join_all(list))
    assert.are.equal(1000, r.n)
    for i = 1, 1000 do assert.are.equal(i, r[i]) end
    assert.are.same({ n = 0 }, cf.block_on(cf.join_all({})))
  end)
end)

describe("try_join", function()
  it("returns all results when nothing fails", function()
    assert.are.same({ 1, 2 }, { cf.block_on(cf.try_join(after(5, 1), after(1, 2))) })
  end)

  it("cancels the rest at the first error and re-raises it #lua54", function()
    local log = {}
    local t0 = cf.now()
    local ok, err = pcall(cf.block_on, cf.try_join(
      tracked(500, log, "a"),
      cf.async(function() cf.sleep(10):await(); error({ code = 7 }) end)(),
      tracked(500, log, "b")))
    assert.is_false(ok)
    assert.are.same({ code = 7 }, err)
    assert.is_true(cf.now() - t0 < 400 * support.slow)
    table.sort(log)
    assert.are.same({ "a:closed", "b:closed" }, log) -- closed, never done
  end)
end)

describe("select", function()
  it("returns the index and results of the first to finish, cancelling the others #lua54", function()
    local log = {}
    local t0 = cf.now()
    local r = { cf.block_on(cf.select(tracked(300, log, "slow"), after(10, "x", "y"), tracked(200, log, "mid"))) }
    assert.are.same({ 2, "x", "y" }, r)
    assert.is_true(cf.now() - t0 < 150 * support.slow)
    table.sort(log)
    assert.are.same({ "mid:closed", "slow:closed" }, log)
    cf.block_on(cf.sleep(320)) -- losers never complete later
    table.sort(log)
    assert.are.same({ "mid:closed", "slow:closed" }, log)
  end)

  it("raises the winner's error", function()
    local ok, err = pcall(cf.block_on, cf.select(cf.sleep(100), function() error("fast failure") end))
    assert.is_false(ok)
    assert.matches("fast failure", err)
  end)

  it("detaches a losing JoinHandle without aborting its task", function()
    local finished = false
    cf.block_on(function()
      local h = cf.spawn(function() cf.sleep(30):await(); finished = true end)
      assert.are.equal(1, (cf.select(cf.sleep(5), h):await()))
      h:await()
    end)
    assert.is_true(finished)
  end)

  it("composes: select over join and timeout", function()
    local i, v = cf.block_on(cf.select(cf.join(after(20, 1), after(30, 2)), cf.timeout(10, cf.sleep(100))))
    assert.are.equal(2, i)
    assert.is_nil(v)
  end)

  it("needs at least one future", function()
    assert.has_error(function() cf.select() end, "select: needs at least 1 future(s)")
  end)
end)

describe("timeout", function()
  it("returns the results when in time", function()
    assert.are.same({ "ok", 2 }, { cf.block_on(cf.timeout(200, after(10, "ok", 2))) })
  end)

  it("returns nil, 'timeout' and cancels the future #lua54", function()
    local log = {}
    local t0 = cf.now()
    assert.are.same({ nil, "timeout" }, { cf.block_on(cf.timeout(20, tracked(1000, log, "f"))) })
    local dt = cf.now() - t0
    assert.is_true(dt >= 20 and dt < 20 + 150 * support.slow, dt)
    assert.are.same({ "f:closed" }, log)
  end)
end)

describe("combinator arguments", function()
  it("name the function and argument that is wrong", function()
    assert.has_error(function() cf.join(cf.sleep(1), 42) end,
      "join: argument #2 must be a future or a function (got number)")
    assert.has_error(function() cf.join_all({ cf.sleep(1), "x" }) end,
      "join_all: element #2 must be a future or a function (got string)")
    assert.has_error(function() cf.timeout(5, nil) end,
      "timeout: argument #2 must be a future or a function (got nil)")
    local f = cf.sleep(1)
    assert.has_error(function() cf.join(f, f) end, "join: argument #2 is the same future as an earlier one")
  end)

  it("leave the futures untouched when the call fails", function()
    local f = after(1, "still mine")
    assert.has_error(function() cf.select(f, 1) end)
    assert.are.equal("still mine", cf.block_on(f))
  end)

  it("refuse a future another combinator owns", function()
    local f = cf.sleep(1)
    cf.join(f)
    assert.has_error(function() cf.select(f) end)
  end)
end)
