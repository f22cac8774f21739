-- Futures, await, block_on, spawn: laziness, ordering and results.
local cf = require "cfuture"

describe("async functions", function()
  it("are lazy: nothing of the body runs before the first poll", function()
    local ran = 0
    local f = cf.async(function() ran = ran + 1; return "done" end)
    local fut = f()
    assert.are.equal(0, ran)
    assert.is_true(cf.is_future(fut))
    assert.are.equal("fresh", fut:state())
    assert.are.equal("done", cf.block_on(fut))
    assert.are.equal(1, ran)
  end)

  it("pass arguments and return every result, nil included", function()
    local f = cf.async(function(a, b, c) return c, nil, a + b end)
    local r = table.pack(cf.block_on(f(1, 2, "x")))
    assert.are.same({ n = 3, "x", nil, 3 }, r)
  end)

  it("can be awaited as a method or with cf.await", function()
    local double = cf.async(function(x) cf.sleep(1):await(); return 2 * x end)
    assert.are.same({ 4, 6 }, { cf.block_on(function()
      return double(2):await(), cf.await(double(3))
    end) })
  end)

  it("deliver results once: awaiting a taken future raises", function()
    local f = cf.async(function() return 1 end)()
    local ok, err = pcall(cf.block_on, function()
      f:await()
      return f:await()
    end)
    assert.is_false(ok)
    assert.matches("await: argument #1: the future already completed and its results were taken", err)
  end)

  it("cannot be awaited by two tasks at once", function()
    local f = cf.sleep(50)
    local ok, err = pcall(cf.block_on, function()
      local h = cf.spawn(function() f:await() end)
      cf.yield_now():await()
      f:await()
    end)
    assert.is_false(ok)
    assert.matches("already being awaited elsewhere", err)
  end)

  it("a plain function is accepted wherever a future is", function()
    assert.are.equal(7, cf.block_on(function() return cf.await(function() return 7 end) end))
    assert.are.same({ 1, 2 }, { cf.block_on(cf.join(function() return 1 end, function() return 2 end)) })
  end)

  it("run their body where a function is taken: spawn(afn, ...) is spawn(afn(...))", function()
    local runs = 0
    local add = cf.async(function(a, b)
      runs = runs + 1
      cf.yield_now():await()
      return a + b
    end)
    assert.are.equal(5, cf.block_on(add, 2, 3))
    local sum, from_table, in_scope, ok, err = cf.block_on(function()
      local h = cf.spawn(add, 10, 20)
      local named = cf.spawn { add, 1, 1, name = "adder" }
      local s = cf.scope(function(sc, x) return sc:spawn(add, x, x):await() end, 4)
      return h:await(), named:await(), s:await(), pcall(cf.await, add)
    end)
    assert.are.same({ 30, 2, 8 }, { sum, from_table, in_scope })
    -- awaited bare, the body runs without arguments: its error, not a future as a result
    assert.is_false(ok)
    assert.matches("arithmetic on .*nil value", err)
    assert.are.equal(5, runs)
  end)
end)

describe("spawn", function()
  it("is eager: the task runs without being awaited", function()
    local ran = false
    cf.block_on(function()
      cf.spawn(function() ran = true end)
      cf.yield_now():await()
    end)
    assert.is_true(ran)
  end)

  it("returns a JoinHandle that any number of tasks can await", function()
    local results = {}
    cf.block_on(function()
      local h = cf.spawn(function() cf.sleep(20):await(); return "v", 2 end)
      local a = cf.spawn(function() local r = table.pack(h:await()); results[#results + 1] = r end)
      local b = cf.spawn(function() local r = table.pack(h:await()); results[#results + 1] = r end)
      a:await(); b:await()
      assert.is_true(h:is_finished())
      results[#results + 1] = table.pack(h:await())
    end)
    assert.are.equal(3, #results)
    for _, r in ipairs(results) do assert.are.same({ n = 2, "v", 2 }, r) end
  end)

  it("runs a lazy future as a task, taking it over", function()
    local f = cf.async(function(x) return x + 1 end)(41)
    local h
    assert.are.equal(42, cf.block_on(function()
      h = cf.spawn(f)
      return h:await()
    end))
    local ok, err = pcall(cf.block_on, f)
    assert.is_false(ok)
    assert.matches("spawned as a task; await its JoinHandle", err)
  end)

  it("spawns any future, and names tasks", function()
    cf.block_on(function()
      local h = cf.spawn { cf.sleep(5), name = "sleeper" }
      assert.are.equal("sleeper", h:name())
      assert.is_number(h:id())
      local g = cf.spawn { function(a, b) return a .. b end, "x", "y", name = "cat" }
      assert.are.equal("xy", g:await())
      assert.are.same({}, { h:await() })
    end)
  end)

  it("queues tasks spawned outside the loop until it runs", function()
    local ran = false
    local h = cf.spawn(function() ran = true; return 5 end)
    assert.is_false(ran)
    assert.is_false(h:is_finished())
    cf.run()
    assert.is_true(ran)
    assert.are.equal(5, cf.block_on(h))
  end)
end)

describe("await", function()
  it("suspends the task, not the thread: 50 tasks sleeping 200 ms take ~200 ms", function()
    local t0 = cf.now()
    local done = 0
    cf.block_on(function()
      local hs = {}
      for i = 1, 50 do hs[i] = cf.spawn(function() cf.sleep(200):await(); done = done + 1 end) end
      for i = 1, 50 do hs[i]:await() end
    end)
    local dt = cf.now() - t0
    assert.are.equal(50, done)
    assert.is_true(dt >= 200, dt)
    assert.is_true(dt < 200 + 250 * require("support").slow, dt)
  end)

  it("returns at once for a ready future without suspending", function()
    cf.block_on(function()
      local h = cf.spawn(function() return 1 end)
      cf.yield_now():await()
      local other = false
      cf.spawn(function() other = true end)
      assert.are.equal(1, h:await()) -- finished: no suspension, so the new task has not run
      assert.is_false(other)
    end)
  end)

  it("works inside pcall in a task and sees the awaited error", function()
    local ok, err = cf.block_on(function()
      return pcall(function()
        cf.spawn(function() error("inner", 0) end):await()
      end)
    end)
    assert.is_false(ok)
    assert.matches("^inner", err)
  end)

  it("interleaves yield_now fairly", function()
    local trace = {}
    cf.block_on(function()
      local a = cf.spawn(function() for _ = 1, 3 do trace[#trace + 1] = "a"; cf.yield_now():await() end end)
      local b = cf.spawn(function() for _ = 1, 3 do trace[#trace + 1] = "b"; cf.yield_now():await() end end)
      a:await(); b:await()
    end)
    assert.are.equal("ababab", table.concat(trace))
  end)

  it("treats a bare coroutine.yield in a task like yield_now", function()
    local trace = {}
    cf.block_on(function()
      local a = cf.spawn(function() for _ = 1, 2 do trace[#trace + 1] = "a"; coroutine.yield() end end)
      local b = cf.spawn(function() for _ = 1, 2 do trace[#trace + 1] = "b"; coroutine.yield() end end)
      a:await(); b:await()
    end)
    assert.are.equal("abab", table.concat(trace))
  end)

  it("supports deep chains of async calls", function()
    local depth
    depth = cf.async(function(n) if n == 0 then return 0 end return 1 + depth(n - 1):await() end)
    assert.are.equal(60, cf.block_on(depth(60)))
  end)
end)

describe("block_on", function()
  it("returns results and leaves spawned tasks for later runs", function()
    local later = false
    local h
    assert.are.equal(3, cf.block_on(function()
      h = cf.spawn(function() cf.sleep(30):await(); later = true end)
      return 3
    end))
    assert.is_false(later)
    cf.run()
    assert.is_true(later)
  end)

  it("runs 100,000 concurrent sleeping tasks well under 5 s", function()
    local t0 = cf.now()
    local done = 0
    cf.block_on(function()
      for i = 1, 100000 do cf.spawn(function() cf.sleep(i % 50):await(); done = done + 1 end) end
    end)
    cf.run()
    assert.are.equal(100000, done)
    assert.is_true(cf.now() - t0 < 5000 * require("support").slow)
  end)
end)

describe("yield_now", function()
  it("composes like any future: in select, join and spawn", function()
    cf.block_on(function()
      local trace = {}
      local h = cf.spawn(function() trace[#trace + 1] = "other" end)
      local i = cf.select(cf.yield_now(), cf.sleep(1000)):await()
      assert.are.equal(1, i)
      assert.are.same({ "other" }, trace)
      cf.join(cf.yield_now(), cf.yield_now()):await()
      cf.spawn(cf.yield_now()):await()
      h:await()
    end)
  end)
end)

describe("task results and coroutine reuse", function()
  it("keep every shape of result: none, a single nil, several with holes, a nil error", function()
    cf.block_on(function()
      local none = cf.spawn(function() end)
      local one_nil = cf.spawn(function() return nil end)
      local holes = cf.spawn(function() return nil, nil, 3 end)
      local tbl = { 1 }
      local table_one = cf.spawn(function() return tbl end)
      local nil_err = cf.spawn(function() error(nil) end)
      cf.yield_now():await()
      assert.are.equal(0, select("#", none:await()))
      assert.are.equal(1, select("#", one_nil:await()))
      assert.are.same({ n = 3, nil, nil, 3 }, table.pack(holes:await()))
      assert.are.equal(tbl, table_one:await())
      assert.are.same({ n = 2, false, nil }, table.pack(pcall(nil_err.await, nil_err)))
    end)
  end)

  it("spawned tasks take no coroutine until they run", function()
    collectgarbage("collect")
    local before = collectgarbage("count")
    local hs = {}
    for i = 1, 10000 do hs[i] = cf.spawn(function() return i end) end
    collectgarbage("collect")
    local per_task = (collectgarbage("count") - before) * 1024 / 10000
    assert.is_true(per_task < 400, per_task) -- a coroutine alone is ~1 KB
    cf.run()
    assert.are.equal(10000, cf.block_on(hs[10000]))
  end)

  it("finished tasks hand their coroutine to the next task", function()
    local seen = {}
    cf.block_on(function()
      for _ = 1, 3 do
        cf.spawn(function() seen[#seen + 1] = coroutine.running() end):await()
      end
    end)
    assert.are.equal(seen[1], seen[2])
    assert.are.equal(seen[2], seen[3])
  end)
end)

describe("await inside Lua constructs", function()
  it("suspends across pcall, metamethods and iterators, and refuses table.sort comparators by name", function()
    local v, meta, seq, ok, err = cf.block_on(function()
      local _, r = pcall(function() cf.sleep(5):await(); return "pcall" end)
      local t = setmetatable({}, { __index = function(_, k) cf.sleep(1):await(); return k end })
      local acc = {}
      local function iter(_, i)
        if i < 3 then cf.yield_now():await(); return i + 1, i * 10 end
      end
      for _, x in iter, nil, 0 do acc[#acc + 1] = x end
      return r, t.meta, table.concat(acc, ","),
        pcall(table.sort, { 3, 2, 1 }, function(a, b) cf.yield_now():await(); return a < b end)
    end)
    assert.are.same({ "pcall", "meta", "0,10,20", false }, { v, meta, seq, ok })
    assert.matches("await: cannot suspend here: the call goes through a C function that cannot yield", err)
  end)
end)

describe("JoinHandle:unref", function()
  local support = require "support"
  it("lets cf.run return while the task runs on, and cf.step report no work", function()
    local ticks = 0
    local bg = cf.spawn(function()
      while true do
        cf.sleep(10):await()
        ticks = ticks + 1
      end
    end)
    assert.are.equal(bg, bg:unref())
    bg:unref() -- twice is once
    cf.spawn(function() cf.sleep(60):await() end)
    local t0 = cf.now()
    cf.run()
    local dt = cf.now() - t0
    assert.is_true(dt >= 60 and dt < 60 + 500 * support.slow, dt)
    assert.is_true(ticks >= 2, ticks) -- it ran while the other task waited
    assert.is_false(bg:is_finished())
    assert.is_false(cf.step()) -- nothing the program waits for
    local before = ticks
    cf.block_on(cf.sleep(40))
    assert.is_true(ticks > before, ticks) -- and runs on whenever the loop runs
    bg:abort()
    cf.block_on(cf.sleep(1))
    assert.is_true(bg:is_finished())
    cf.run() -- nothing left at all
  end)

  it("counts only referenced tasks in a deadlock, and a finished task is unaffected", function()
    local h = cf.spawn(function() return 1 end)
    assert.are.equal(1, cf.block_on(h))
    h:unref()
    local rx = cf.channel()
    local stuck = cf.spawn(function() rx:recv():await() end)
    local bg = cf.spawn(function() rx:recv():await() end):unref()
    local ok, err = pcall(cf.run)
    assert.is_false(ok)
    assert.matches("deadlock: 1 task%(s%) are still pending", err)
    stuck:abort()
    bg:abort()
    cf.block_on(cf.sleep(1))
  end)
end)

describe("JoinHandle:abort_now", function()
  it("cancels a suspended task before it returns, outside any drive", function()
    local log = {}
    local rx = cf.channel()
    local h = cf.spawn(function()
      cf.defer(function() log[#log + 1] = "defer" end)
      cf.defer(function() log[#log + 1] = "last defer" end)
      rx:recv():await()
      log[#log + 1] = "not reached"
    end)
    cf.step() -- it waits on the channel
    assert.is_false(h:is_finished())
    assert.is_true(h:abort_now())
    log[#log + 1] = "returned"
    assert.are.same({ "last defer", "defer", "returned" }, log)
    assert.is_true(h:is_finished())
    local ok, err = pcall(cf.block_on, h)
    assert.is_false(ok)
    assert.is_true(cf.is_cancelled(err))
    assert.is_false(h:abort_now()) -- finished already
    assert.is_true(rx:try_send(1)) -- its receive was dropped: nobody waits
    assert.is_false(cf.step())
  end)

  it("cancels a task that never started: its body does not run", function()
    local ran = false
    local h = cf.spawn(function() ran = true end)
    assert.is_true(h:abort_now())
    assert.is_false(cf.step())
    assert.is_false(ran)
  end)

  it("runs another task's cleanups at once from inside a task; its own task is only marked", function()
    local log = {}
    local victim = cf.spawn(function()
      cf.defer(function() log[#log + 1] = "victim cleanup" end)
      cf.sleep(60000):await()
    end)
    local self_h
    self_h = cf.spawn(function()
      cf.yield_now():await() -- the victim is waiting by now
      log[#log + 1] = "before"
      assert.is_true(victim:abort_now())
      log[#log + 1] = "after"
      assert.is_false(self_h:abort_now()) -- running: marked, it ends at its next await
      log[#log + 1] = "still running"
      cf.yield_now():await()
      log[#log + 1] = "not reached"
    end)
    cf.run()
    assert.are.same({ "before", "victim cleanup", "after", "still running" }, log)
    assert.is_true(victim:is_finished() and self_h:is_finished())
  end)

  it("is safe from the task's own cleanup, and a cleanup may abort another task now", function()
    local log = {}
    local other = cf.spawn(function()
      cf.defer(function() log[#log + 1] = "other cleanup" end)
      cf.sleep(60000):await()
    end)
    local h
    h = cf.spawn(function()
      cf.defer(function()
        log[#log + 1] = "h cleanup"
        local own = h:abort_now() -- its own cancellation is under way
        log[#log + 1] = tostring(own)
        local o = other:abort_now() -- (called before indexing log: its cleanup appends)
        log[#log + 1] = tostring(o)
      end)
      cf.sleep(60000):await()
    end)
    cf.step()
    assert.is_true(h:abort_now())
    assert.are.same({ "h cleanup", "false", "other cleanup", "true" }, log)
    assert.is_false(cf.step())
  end)

  it("reports an error raised by a cleanup and wakes the tasks that await it", function()
    local got = {}
    local prev = cf.on_error(function(err) got[#got + 1] = err end)
    local h = cf.spawn(function()
      cf.defer(function() error("cleanup broke", 0) end)
      cf.sleep(60000):await()
    end)
    local waiter = cf.spawn(function() return pcall(cf.await, h) end)
    cf.step()
    assert.is_true(h:abort_now())
    local ok, err = cf.block_on(waiter)
    assert.is_false(ok)
    assert.is_true(cf.is_cancelled(err))
    cf.on_error(prev)
    assert.are.equal(1, #got)
    assert.matches("cleanup broke", tostring(got[1]))
  end)

  it("outside a drive: cleanups cannot drive the loop, and their errors are reported before it returns", function()
    local got, log = {}, {}
    local prev = cf.on_error(function(err) got[#got + 1] = tostring(err) end)
    local h = cf.spawn(function()
      cf.defer(function()
        local ok, err = pcall(cf.block_on, function() return 1 end)
        log[#log + 1] = ok and "drove the loop" or err
        local ok2, err2 = pcall(cf.step)
        log[#log + 1] = ok2 and "stepped" or err2
        error("cleanup failed", 0)
      end)
      while true do cf.yield_now():await() end -- left ready on the queue
    end)
    cf.step()
    assert.is_true(h:abort_now())
    assert.matches("block_on: the runtime is already running", log[1])
    assert.matches("step: the runtime is already running", log[2])
    assert.are.same({ "cleanup failed" }, got) -- reported already
    cf.on_error(prev)
    assert.is_false(cf.step())
  end)

  it("cancels the tasks of a scope the task awaits before it returns", function()
    local log = {}
    local h = cf.spawn(function()
      cf.scope(function(s)
        for i = 1, 2 do
          s:spawn(function()
            cf.defer(function() log[#log + 1] = "child " .. i end)
            cf.sleep(60000):await()
          end)
        end
        cf.sleep(60000):await()
      end):await()
    end)
    cf.step()
    cf.step()
    assert.is_true(h:abort_now())
    table.sort(log)
    assert.are.same({ "child 1", "child 2" }, log)
    assert.is_false(cf.step())
  end)

  it("refuses what is not a JoinHandle", function()
    local h = cf.spawn(function() end)
    local abort_now = h.abort_now
    assert.has_error(function() abort_now(42) end, "abort_now: argument #1 must be a JoinHandle (got number)")
    assert.has_error(function() abort_now(cf.sleep(1)) end, "abort_now: argument #1 must be a JoinHandle (got sleep)")
    cf.run()
  end)
end)
