-- Cancellation: abort, scopes; cancelled work really stops and cleans up.
local cf = require "cfuture"
local support = require "support"

local function closer(log, name)
  return setmetatable({}, { __close = function(_, err) log[#log + 1] = name .. (err and ":error" or ":closed") end })
end

describe("abort", function()
  it("stops a sleeping task: its code after the sleep never runs, <close> does #lua54", function()
    local log = {}
    local ok, err = pcall(cf.block_on, function()
      local h = cf.spawn(function()
        local c <close> = closer(log, "task")
        cf.sleep(50):await()
        log[#log + 1] = "after sleep"
      end)
      cf.sleep(5):await()
      h:abort()
      return h:await()
    end)
    assert.is_false(ok)
    assert.is_true(cf.is_cancelled(err))
    assert.matches("^cancelled: task %d+ was aborted", tostring(err))
    cf.block_on(cf.sleep(80))
    assert.are.same({ "task:closed" }, log)
  end)

  it("of a task that never started means its body never runs", function()
    local ran = false
    cf.block_on(function()
      local h = cf.spawn(function() ran = true end)
      h:abort()
      assert.is_false(pcall(h.await, h))
      assert.is_true(h:is_finished())
    end)
    assert.is_false(ran)
  end)

  it("can be requested by the task itself and takes effect at its next await #lua54", function()
    local log = {}
    cf.block_on(function()
      local h
      h = cf.spawn(function()
        local c <close> = closer(log, "self")
        h:abort()
        log[#log + 1] = "still running until the next await"
        cf.yield_now():await()
        log[#log + 1] = "never"
      end)
      pcall(h.await, h)
    end)
    assert.are.same({ "still running until the next await", "self:closed" }, log)
  end)

  it("cancels what the task awaits, down the chain #lua54", function()
    local log = {}
    local inner = cf.async(function()
      local c <close> = closer(log, "inner")
      cf.sleep(1000):await()
    end)
    cf.block_on(function()
      local h = cf.spawn(function()
        local c <close> = closer(log, "outer")
        inner():await()
      end)
      cf.sleep(5):await()
      h:abort()
      pcall(h.await, h)
    end)
    assert.are.same({ "inner:closed", "outer:closed" }, log)
    assert.are.equal(0, #cf.tasks())
  end)

  it("is a no-op once the task is finished", function()
    cf.block_on(function()
      local h = cf.spawn(function() return 1 end)
      assert.are.equal(1, h:await())
      h:abort()
      assert.are.equal(1, h:await())
    end)
  end)

  it("is only for JoinHandles", function()
    assert.is_nil(cf.sleep(1).abort) -- a sleep has no handle methods
    local h = cf.spawn(function() end)
    assert.has_error(function() h.abort(cf.sleep(1)) end, "abort: argument #1 must be a JoinHandle (got sleep)")
    cf.block_on(h)
  end)
end)

describe("scope", function()
  it("waits for every child and returns the body's results", function()
    local done = {}
    local t0 = cf.now()
    local r = { cf.block_on(cf.scope(function(s, x)
      for i = 1, 3 do s:spawn(function() cf.sleep(20 * i):await(); done[#done + 1] = i end) end
      return x, "body"
    end, 42)) }
    assert.are.same({ 42, "body" }, r)
    assert.are.same({ 1, 2, 3 }, done)
    assert.is_true(cf.now() - t0 >= 60)
  end)

  it("cancels the siblings and the body when a child fails, then re-raises #lua54", function()
    local log = {}
    local t0 = cf.now()
    local ok, err = pcall(cf.block_on, cf.scope(function(s)
      local c <close> = closer(log, "body")
      s:spawn(function() cf.sleep(10):await(); error("child failed") end)
      s:spawn(function()
        local c2 <close> = closer(log, "sibling")
        cf.sleep(1000):await()
      end)
      cf.sleep(1000):await()
      log[#log + 1] = "body finished"
    end))
    assert.is_false(ok)
    assert.matches("child failed", err)
    assert.is_true(cf.now() - t0 < 500 * support.slow)
    table.sort(log)
    assert.are.same({ "body:closed", "sibling:closed" }, log)
  end)

  it("cancels the children when the body fails #lua54", function()
    local log = {}
    local ok, err = pcall(cf.block_on, cf.scope(function(s)
      s:spawn(function()
        local c <close> = closer(log, "child")
        cf.sleep(1000):await()
      end)
      cf.sleep(5):await()
      error("body failed")
    end))
    assert.is_false(ok)
    assert.matches("body failed", err)
    assert.are.same({ "child:closed" }, log)
  end)

  it("cancelled from outside, cancels its children #lua54", function()
    local log = {}
    local r = { cf.block_on(cf.timeout(20, cf.scope(function(s)
      s:spawn(function()
        local c <close> = closer(log, "child")
        cf.sleep(1000):await()
      end)
      cf.sleep(1000):await()
    end))) }
    assert.are.same({ nil, "timeout" }, r)
    cf.block_on(cf.yield_now())
    assert.are.same({ "child:closed" }, log)
    assert.are.equal(0, #cf.tasks())
  end)

  it("refuses s:spawn once finished", function()
    local saved
    cf.block_on(cf.scope(function(s) saved = s end))
    assert.has_error(function() saved:spawn(function() end) end, "spawn: the scope has already finished")
  end)

  it("children's handles can be awaited inside the scope", function()
    assert.are.equal(3, cf.block_on(cf.scope(function(s)
      local a = s:spawn(function() return 1 end)
      local b = s:spawn(function() cf.sleep(5):await(); return 2 end)
      return a:await() + b:await()
    end)))
  end)
end)

describe("cf.defer", function()
  it("runs when the body returns, raises or is cancelled, last deferred first", function()
    local log = {}
    local function body(tag, how)
      return function()
        cf.defer(function() log[#log + 1] = tag .. ":first" end)
        cf.defer(function() log[#log + 1] = tag .. ":second" end)
        if how == "error" then error("boom") end
        if how == "sleep" then cf.sleep(10000):await() end
        log[#log + 1] = tag .. ":body"
        return tag
      end
    end
    local a, ok, err, r = cf.block_on(function()
      local a_ = cf.spawn(body("ret")):await()
      local ok_, err_ = pcall(function() return cf.spawn(body("err", "error")):await() end)
      local r_ = cf.timeout(20, body("cancel", "sleep")):await()
      return a_, ok_, err_, r_
    end)
    assert.are.equal("ret", a)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.is_nil(r)
    assert.are.same({ "ret:body", "ret:second", "ret:first", "err:second", "err:first",
      "cancel:second", "cancel:first" }, log)
  end)

  it("runs for an aborted task and for one its scope cancels; the code after the await never runs", function()
    local log = {}
    cf.block_on(function()
      local h = cf.spawn(function()
        cf.defer(function() log[#log + 1] = "aborted" end)
        cf.sleep(10000):await()
        log[#log + 1] = "never"
      end)
      cf.sleep(5):await()
      h:abort()
      pcall(function()
        cf.scope(function(s)
          s:spawn(function()
            cf.defer(function() log[#log + 1] = "scoped" end)
            cf.sleep(10000):await()
            log[#log + 1] = "never"
          end)
          cf.sleep(5):await()
          error("scope body fails")
        end):await()
      end)
    end)
    assert.are.same({ "aborted", "scoped" }, log)
  end)

  it("reports an error in a deferred function without changing the result", function()
    local got = {}
    local prev = cf.on_error(function(err) got[#got + 1] = tostring(err) end)
    local r = cf.block_on(function()
      cf.defer(function() error("cleanup failed") end)
      return 42
    end)
    cf.on_error(prev)
    assert.are.equal(42, r)
    assert.are.equal(1, #got)
    assert.matches("cleanup failed", got[1])
  end)

  it("refuses callers outside a task and values that cannot be called", function()
    assert.has_error(function() cf.defer(function() end) end,
      "defer: not inside a task (defer belongs to the async function that calls it)")
    local ok, err = pcall(cf.block_on, function() cf.defer(42) end)
    assert.is_false(ok)
    assert.matches("defer: argument #1 must be a function %(got number%)", err)
  end)
end)
