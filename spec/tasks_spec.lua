-- Task sets, bounded concurrency, cancellation tokens, timeouts that say
-- which way they ended, shield, and the interval's missed-tick choices.
local cf = require "cfuture"
local support = require "support"

describe("cf.task_set", function()
  it("gives results in the order the tasks finish, then nothing", function()
    local out = cf.block_on(function()
      local set = cf.task_set()
      local hs = {}
      for i, ms in ipairs({ 30, 10, 20 }) do
        hs[i] = set:spawn(function() cf.sleep(ms):await(); return ms, "x" .. i end)
      end
      assert.are.equal(3, #set)
      local got = {}
      while true do
        local h, ok, ms, tag = set:join_next():await()
        if not h then break end
        assert.is_true(ok)
        got[#got + 1] = { ms, tag, h == hs[1] and 1 or h == hs[2] and 2 or h == hs[3] and 3 }
      end
      assert.is_true(set:is_empty())
      assert.are.equal(0, #set)
      return got
    end)
    assert.are.same({ { 10, "x2", 2 }, { 20, "x3", 3 }, { 30, "x1", 1 } }, out)
  end)

  it("hands out an error as h, false, err (the error value unchanged)", function()
    local e = {}
    cf.block_on(function()
      local set = cf.task_set()
      set:spawn(function() error(e) end)
      local h, ok, err = set:join_next():await()
      assert.is_true(cf.is_future(h))
      assert.is_false(ok)
      assert.are.equal(e, err)
      assert.is_nil(set:join_next():await())
    end)
  end)

  it("abort_all cancels the running tasks: each is joined as cancelled, cleanups ran", function()
    local cleaned = 0
    cf.block_on(function()
      local set = cf.task_set()
      for _ = 1, 5 do
        set:spawn(function()
          cf.defer(function() cleaned = cleaned + 1 end)
          cf.sleep(60000):await()
        end)
      end
      set:spawn(function() return "quick" end)
      local h, ok, v = set:join_next():await()
      assert.are.same({ true, "quick" }, { ok, v })
      assert.truthy(h)
      assert.are.equal(5, set:abort_all())
      local n = 0
      while true do
        local h2, ok2, err = set:join_next():await()
        if not h2 then break end
        n = n + 1
        assert.is_false(ok2)
        assert.is_true(cf.is_cancelled(err))
      end
      assert.are.equal(5, n)
    end)
    assert.are.equal(5, cleaned)
  end)

  it("closing the set (close, <close>, collection) cancels what still runs", function()
    local cleaned = 0
    local function member() cf.defer(function() cleaned = cleaned + 1 end); cf.sleep(60000):await() end
    cf.block_on(function()
      local set = cf.task_set()
      set:spawn(member)
      set:spawn(member)
      cf.yield_now():await()
      set:close()
      assert.is_true(set:is_closed())
      assert.has_error(function() set:spawn(member) end, "task_set:spawn: the task set is closed")
      assert.is_nil(set:join_next():await()) -- a closed set is empty
    end)
    assert.are.equal(2, cleaned)
    cf.block_on(function()
      local set = cf.task_set()
      set:spawn(member)
      cf.yield_now():await()
      set = nil -- luacheck: ignore
      collectgarbage(); collectgarbage()
      cf.yield_now():await()
    end)
    assert.are.equal(3, cleaned)
    assert.is_false(cf.step()) -- nothing left behind
  end)

  it("a join_next waiting in another task is woken, and one cut short loses no result", function()
    cf.block_on(function()
      local set = cf.task_set()
      set:spawn(function() cf.sleep(20):await(); return "late" end)
      -- a join_next cut short by a timeout takes nothing
      assert.are.same({ nil, "timeout" }, { cf.timeout(1, set:join_next()):await() })
      local waiter = cf.spawn(function() return select(3, set:join_next():await()) end)
      assert.are.equal("late", waiter:await())
      assert.is_true(set:is_empty())
    end)
  end)

  it("reports an error nobody joined when the set goes", function()
    local got = {}
    local prev = cf.on_error(function(err) got[#got + 1] = tostring(err) end)
    cf.block_on(function()
      local set = cf.task_set()
      set:spawn(function() error("unjoined failure", 0) end)
      cf.yield_now():await()
      cf.yield_now():await()
      set:close()
    end)
    collectgarbage(); collectgarbage()
    cf.block_on(cf.sleep(0))
    cf.on_error(prev)
    assert.are.equal(1, #got)
    assert.matches("unjoined failure", got[1])
  end)

  it("refuses foreign selves and bad arguments", function()
    local set = cf.task_set()
    assert.has_error(function() set.spawn({}, function() end) end,
      "task_set:spawn: argument #1 must be a task set (call it with a colon; got table)")
    assert.has_error(function() set.join_next(42) end,
      "task_set:join_next: argument #1 must be a task set (call it with a colon; got number)")
    assert.has_error(function() set:spawn(42) end)
    assert.matches("^cfuture.TaskSet%(0 running, 0 finished%)", tostring(set))
    set:close()
  end)
end)

describe("cf.map_concurrent / cf.as_completed", function()
  it("runs at most limit at once and keeps the items' order", function()
    local running, peak = 0, 0
    local items = {}
    for i = 1, 20 do items[i] = i end
    local out = cf.block_on(cf.map_concurrent(3, items, function(x, i)
      running = running + 1
      peak = math.max(peak, running)
      cf.sleep((21 - i) % 4):await()
      running = running - 1
      return x * x
    end))
    assert.are.equal(3, peak)
    assert.are.equal(20, out.n)
    for i = 1, 20 do assert.are.equal(i * i, out[i]) end
  end)

  it("raises the first error and cancels the calls still running", function()
    local cancelled = 0
    local ok, err = pcall(cf.block_on, cf.map_concurrent(4, { 1, 2, 3, 4, 5, 6 }, function(x)
      if x == 2 then cf.sleep(5):await(); error("item 2 failed", 0) end
      cf.defer(function() cancelled = cancelled + 1 end)
      cf.sleep(60000):await()
    end))
    assert.is_false(ok)
    assert.matches("^item 2 failed", err)
    assert.are.equal(3, cancelled) -- the three others that had started
    assert.is_false(cf.step())
  end)

  it("as_completed gives i, ok, result in completion order", function()
    local order = cf.block_on(function()
      local seen = {}
      for i, ok, v in cf.as_completed(2, { 30, 5, 10 }, function(ms) cf.sleep(ms):await(); return ms end) do
        assert.is_true(ok)
        seen[#seen + 1] = i .. ":" .. v
      end
      return seen
    end)
    -- 30 and 5 start; 5 ends, 10 starts (ends at 15); then 30
    assert.are.same({ "2:5", "3:10", "1:30" }, order)
  end)

  it("checks its arguments", function()
    assert.has_error(function() cf.map_concurrent(0, {}, print) end,
      "map_concurrent: argument #1 must be a positive integer limit (got 0)")
    assert.has_error(function() cf.as_completed(2, "x", print) end,
      "as_completed: argument #2 must be a list (got string)")
    assert.has_error(function() cf.map_concurrent(2, {}, 3) end,
      "map_concurrent: argument #3 must be a function (got number)")
  end)
end)

describe("cf.cancel_token", function()
  it("wakes every waiter with the reason; children follow their parent", function()
    local tok = cf.cancel_token()
    local child = tok:child()
    local grandchild = child:child()
    local log = {}
    cf.block_on(function()
      local a = cf.spawn(function() local r = tok:cancelled():await(); log[#log + 1] = "a " .. r end)
      local b = cf.spawn(function() local r = grandchild:cancelled():await(); log[#log + 1] = "b " .. r end)
      cf.sleep(5):await()
      assert.are.same({}, log)
      assert.is_false((child:is_cancelled()))
      assert.is_true(tok:cancel("shutdown"))
      assert.is_false(tok:cancel("again"))
      a:await(); b:await()
    end)
    table.sort(log)
    assert.are.same({ "a shutdown", "b shutdown" }, log)
    assert.are.same({ true, "shutdown" }, { grandchild:is_cancelled() })
    -- a child made after the cancel is cancelled at once
    assert.is_true((tok:child():is_cancelled()))
    -- cancelling a child leaves its parent alone
    local p = cf.cancel_token()
    p:child():cancel()
    assert.is_false((p:is_cancelled()))
  end)

  it("run(f) cancels f when the token is cancelled, from outside any task", function()
    local tok = cf.cancel_token()
    local stopped = false
    local h = cf.spawn(function()
      return tok:run(function()
        cf.defer(function() stopped = true end)
        cf.sleep(60000):await()
      end):await()
    end)
    cf.step()
    tok:cancel("user quit") -- not inside a task
    assert.are.same({ nil, "cancelled", "user quit" }, { cf.block_on(h) })
    assert.is_true(stopped)
    local tok2 = cf.cancel_token()
    assert.are.same({ 1, 2 }, { cf.block_on(tok2:run(function() return 1, 2 end)) })
  end)

  it("a dropped cancelled() leaves no waker behind", function()
    local tok = cf.cancel_token()
    for _ = 1, 10 do
      assert.are.same({ nil, "timeout" }, { cf.block_on(cf.timeout(0, tok:cancelled())) })
    end
    assert.is_nil(next(tok.wakers))
  end)

  it("refuses foreign selves", function()
    local tok = cf.cancel_token()
    assert.has_error(function() tok.cancel({}) end,
      "token:cancel: argument #1 must be a cancel token (call it with a colon; got table)")
    assert.matches("^cfuture.CancelToken%(live%)", tostring(tok))
  end)
end)

describe("cf.within / cf.within_at / cf.timeout_at", function()
  it("tell an elapsed timeout from a future that returns nil, \"timeout\"", function()
    local liar = cf.async(function() return nil, "timeout" end)
    assert.are.same({ true, nil, "timeout" }, { cf.block_on(cf.within(1000, liar())) })
    assert.are.same({ false }, { cf.block_on(cf.within(5, cf.sleep(60000))) })
    assert.are.same({ true }, { cf.block_on(cf.within(1000, function() end)) })
    local t0 = cf.now()
    assert.are.same({ false }, { cf.block_on(cf.within_at(t0 + 20, cf.sleep(60000))) })
    local dt = cf.now() - t0
    assert.is_true(dt >= 20 and dt < 20 + 500 * support.slow, dt)
    assert.are.same({ nil, "timeout" }, { cf.block_on(cf.timeout_at(cf.now() + 5, cf.sleep(60000))) })
    assert.are.same({ 7 }, { cf.block_on(cf.timeout_at(cf.now() + 1000, function() return 7 end)) })
  end)

  it("cancel the work when the time is up", function()
    local stopped = false
    assert.is_false(cf.block_on(cf.within(5, function()
      cf.defer(function() stopped = true end)
      cf.sleep(60000):await()
    end)))
    assert.is_true(stopped)
  end)

  it("check their arguments at the call", function()
    assert.has_error(function() cf.within(-1, cf.sleep(1)) end,
      "within: argument #1 must be a number of milliseconds from 0 to 1e15 (got -1)")
    assert.has_error(function() cf.within(1, 42) end,
      "within: argument #2 must be a future or a function (got number)")
    assert.has_error(function() cf.timeout_at("soon", cf.sleep(1)) end,
      "timeout_at: argument #1 must be a time (cf.now() milliseconds) from 0 to 1e15 (got string)")
  end)
end)

describe("cf.shield", function()
  it("lets the shielded work finish when its awaiter is cancelled", function()
    local saved = false
    local awaiter = cf.spawn(function()
      cf.shield(function() cf.sleep(20):await(); saved = true end):await()
    end)
    cf.block_on(cf.sleep(5))
    awaiter:abort()
    cf.run()
    assert.is_true(saved)
    assert.are.equal(42, cf.block_on(cf.shield(function() return 42 end)))
  end)
end)

describe("cf.interval's missed ticks", function()
  -- Ticks of an interval of 100 ms whose task is busy for 350 ms after the
  -- first tick (virtual time): the scheduled times the ticks report, and
  -- when they completed.
  local function ticks(missed)
    return cf.test.run(function()
      local iv = cf.interval(100, missed and { missed = missed } or nil)
      local t0 = cf.now()
      local out = {}
      iv:tick():await()
      cf.time.advance(350) -- busy
      for _ = 1, 4 do
        local due = iv:tick():await()
        out[#out + 1] = ("%d@%d"):format(due - t0, cf.now() - t0)
      end
      return out
    end)
  end

  it("skip (default) keeps to the schedule", function()
    assert.are.same({ "100@350", "400@400", "500@500", "600@600" }, ticks(nil))
    assert.are.same(ticks(nil), ticks("skip"))
  end)

  it("burst delivers the missed ticks at once", function()
    assert.are.same({ "100@350", "200@350", "300@350", "400@400" }, ticks("burst"))
  end)

  it("delay restarts the schedule from the late tick", function()
    assert.are.same({ "100@350", "450@450", "550@550", "650@650" }, ticks("delay"))
  end)

  it("refuses an unknown choice", function()
    assert.has_error(function() cf.interval(10, { missed = "later" }) end,
      'interval: option missed must be "skip", "burst" or "delay" (got later)')
  end)
end)
