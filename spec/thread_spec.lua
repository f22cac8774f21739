-- cf.thread: Lua on other OS threads (spawn, pools, channels between threads).
local cf = require "cfuture"
local support = require "support"
local slow = support.slow

local function thread_count()
  local p = io.popen("ls /proc/" .. support.pid() .. "/task | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

describe("cf.thread.spawn", function()
  it("runs a function on another OS thread with copied arguments and results", function()
    local t = { list = { 1, 2, 3 }, name = "x", nested = { ok = true } }
    local a, b, c = cf.block_on(cf.thread.spawn(function(tbl, n)
      tbl.list[#tbl.list + 1] = n -- a copy: the caller's table is untouched
      return #tbl.list, tbl.nested.ok and tbl.name, 2.5
    end, t, 4))
    assert.are.same({ 4, "x", 2.5 }, { a, b, c })
    assert.are.equal(3, #t.list)
  end)

  it("knows a worker thread from the loop thread", function()
    assert.is_false(cf.thread.is_worker())
    assert.is_false(cf.thread.cancelled())
    cf.thread.check() -- not a worker, nothing requested: returns
    assert.is_true(cf.block_on(cf.thread.spawn(function()
      local thread = require "cfuture.thread"
      thread.check()
      return thread.is_worker() and not thread.cancelled()
    end)))
  end)

  it("takes source text as well as a function", function()
    assert.are.equal(42, cf.block_on(cf.thread.spawn("local a, b = ... return a * b", 6, 7)))
  end)

  it("runs two loops on two OS threads side by side (the seeds' thread example)", function()
    -- each thread sleeps 5 x 100 ms; run one after the other they take 1 s
    local loop = function(name)
      local thread = require "cfuture.thread"
      local lines = {}
      for i = 1, 5 do
        thread.sleep(100)
        lines[#lines + 1] = name .. " " .. i
      end
      return lines
    end
    local t0 = cf.now()
    local a, b = cf.block_on(function()
      return cf.join(cf.thread.spawn(loop, "hi"), cf.thread.spawn(loop, "bye")):await()
    end)
    local ms = cf.now() - t0
    assert.are.same({ "hi 1", "hi 2", "hi 3", "hi 4", "hi 5" }, a)
    assert.are.same({ "bye 1", "bye 2", "bye 3", "bye 4", "bye 5" }, b)
    assert.is_true(ms >= 500, ms)
    assert.is_true(ms < 900 * slow, ms) -- in parallel, not 1000 ms in a row
  end)

  it("keeps the runtime responsive while workers compute", function()
    if (os.getenv("CFUTURE_LUA_WRAPPER") or ""):match("valgrind") then
      pending("valgrind runs one thread at a time")
      return
    end
    local ticks, late = 0, 0
    cf.block_on(function()
      local work = cf.join(cf.thread.spawn(function()
        local x = 0
        for i = 1, 3e7 do x = x + i % 7 end
        return x
      end), cf.thread.spawn(function()
        local x = 0
        for i = 1, 3e7 do x = x + i % 5 end
        return x
      end))
      local ticker = cf.spawn(function()
        while true do
          local t0 = cf.now()
          cf.sleep(10):await()
          ticks = ticks + 1
          if cf.now() - t0 > 100 * slow then late = late + 1 end
        end
      end)
      work:await()
      ticker:abort()
    end)
    assert.is_true(ticks >= 5, ticks)
    assert.are.equal(0, late)
  end)

  it("raises a worker's error at the await with its message and traceback", function()
    local ok, err = pcall(cf.block_on, cf.thread.spawn(function()
      local function inner() error("worker failed") end
      inner()
    end))
    assert.is_false(ok)
    assert.matches("thread_spec.lua:%d+: worker failed", err)
    assert.matches("stack traceback:", err)
    assert.matches("in %a+ 'inner'", err) -- "local 'inner'" (5.4), "function 'inner'" (LuaJIT)
  end)

  it("refuses what cannot travel, naming the argument", function()
    local up = 1
    assert.has_error(function() cf.thread.spawn(function() return up end) end,
      "thread.spawn: argument #1: cannot copy a function that captures local variables (it uses 'up')")
    assert.has_error(function() cf.thread.spawn(print) end,
      "thread.spawn: argument #1: must be a Lua function or its source: got a C function")
    assert.has_error(function() cf.thread.spawn(42) end,
      "thread.spawn: argument #1: must be a Lua function or its source: got number")
    assert.has_error(function() cf.thread.spawn(function() end, 1, coroutine.create(print)) end,
      "thread.spawn: argument #3: cannot copy a thread to another Lua state")
    assert.has_error(function() cf.thread.spawn(function() end, io.stdout) end,
      "thread.spawn: argument #2: cannot copy a userdata to another Lua state")
    assert.has_error(function() cf.thread.spawn(function() end, { f = function() return up end }) end,
      "thread.spawn: argument #2: cannot copy a function that captures local variables (it uses 'up')")
    local ok, err = pcall(cf.block_on, cf.thread.spawn(function() return coroutine.create(print) end))
    assert.is_false(ok)
    assert.matches("thread: result #1: cannot copy a thread", err)
    -- a source that does not compile is refused at the call, not on the worker
    assert.has_error(function() cf.thread.spawn("return +") end,
      "thread.spawn: argument #1: the source does not compile: thread:1: unexpected symbol near '+'")
  end)

  it("stops an aborted worker at its next check, in Lua code and in blocking calls", function()
    cf.block_on(function()
      for _, body in ipairs({
        function() while true do end end,
        function() require("cfuture.thread").sleep(60000) end,
        function(ch) ch:recv_blocking() end,
      }) do
        local ch = cf.thread.channel()
        local h = cf.thread.spawn(body, ch)
        cf.sleep(30):await()
        assert.is_false(h:is_finished())
        local t0 = cf.now()
        h:abort()
        local ok, err = pcall(h.await, h)
        assert.is_false(ok)
        assert.is_true(cf.is_cancelled(err))
        assert.matches("the thread was aborted", tostring(err))
        assert.is_true(cf.now() - t0 < 1000 * slow)
        assert.is_true(h:is_finished())
      end
    end)
  end)

  it("lets a worker see that it was asked to stop", function()
    local ch = cf.thread.channel()
    cf.block_on(function()
      local h = cf.thread.spawn(function(out)
        local thread = require "cfuture.thread"
        local ok, err = pcall(thread.sleep, 60000) -- the stop interrupts the sleep
        assert(not pcall(thread.check), "check raises once a stop was requested")
        out:send_blocking(tostring(thread.cancelled()) .. " " .. tostring(err))
        return "tidied up"
      end, ch)
      cf.sleep(20):await()
      h:abort()
      -- it handled the stop and returned: its results are delivered
      assert.are.equal("tidied up", h:await())
    end)
    assert.matches("^true .*cancelled", ch:try_recv())
  end)

  it("detaches a dropped handle: the thread still runs to the end", function()
    local ch = cf.thread.channel()
    cf.block_on(function()
      cf.thread.spawn(function(out)
        require("cfuture.thread").sleep(50)
        out:send_blocking("finished")
      end, ch)
      support.full_gc() -- the handle is garbage now
      assert.are.equal("finished", cf.timeout(2000 * slow, ch:recv()):await())
    end)
  end)

  it("joins every thread it started: none is left behind", function()
    local before = thread_count()
    cf.block_on(function()
      local hs = {}
      for i = 1, 50 do hs[i] = cf.thread.spawn(function(n) return n * n end, i) end
      for i = 1, 50 do assert.are.equal(i * i, hs[i]:await()) end
    end)
    assert.are.equal(before, thread_count())
  end)

  it("stops a worker that never ends when the runtime closes, and the process exits #subprocess", function()
    local out, code, ms = support.run_lua([[
      local cf = require "cfuture"
      cf.thread.spawn(function() while true do end end)
      cf.thread.spawn(function() require("cfuture.thread").sleep(60000) end)
      local pool = cf.thread.pool(2)
      cf.spawn(pool:run(function() while true do end end))
      cf.block_on(cf.sleep(50))
      print("leaving")
    ]])
    assert.are.equal("leaving\n", out)
    assert.are.equal(0, code)
    assert.is_true(ms < 10000 * slow, ms)
  end)
end)

describe("cf.thread.pool", function()
  it("runs jobs on reused worker states and returns their results in order", function()
    local pool = cf.thread.pool(2)
    assert.are.equal(2, pool:size())
    local res = cf.block_on(function()
      local fs = {}
      for i = 1, 100 do
        fs[i] = pool:run(function(n)
          -- globals persist between the jobs a worker runs
          JOBS = (JOBS or 0) + 1
          return n * 2, JOBS
        end, i)
      end
      local out = {}
      for i = 1, 100 do
        local v, jobs = fs[i]:await()
        out[i] = v
        assert.is_true(jobs >= 1)
      end
      return out
    end)
    for i = 1, 100 do assert.are.equal(i * 2, res[i]) end
    pool:close()
  end)

  it("bounds its queue: run waits for room", function()
    local pool = cf.thread.pool(1, { queue = 2 })
    local max_queued = 0
    cf.block_on(function()
      local hs = {}
      for i = 1, 10 do
        hs[i] = cf.spawn(pool:run(function(n)
          require("cfuture.thread").sleep(5)
          return n
        end, i))
      end
      local watcher = cf.spawn(function()
        while true do
          max_queued = math.max(max_queued, pool:queued())
          cf.sleep(1):await()
        end
      end)
      for i = 1, 10 do assert.are.equal(i, hs[i]:await()) end
      watcher:abort()
    end)
    assert.is_true(max_queued <= 2, max_queued)
    assert.is_true(max_queued >= 1, max_queued)
  end)

  it("drops a queued job whose future is cancelled: it never runs", function()
    local pool = cf.thread.pool(1)
    local ran = cf.thread.channel()
    cf.block_on(function()
      local first = cf.spawn(pool:run(function() require("cfuture.thread").sleep(100) end))
      cf.sleep(10):await()
      local r = cf.timeout(10, pool:run(function(ch) ch:send_blocking("ran") end, ran)):await()
      assert.is_nil(r)
      assert.are.equal(0, pool:queued())
      first:await()
      -- and a job that runs is stopped when its future is dropped
      local t0 = cf.now()
      assert.is_nil(cf.timeout(50, pool:run(function() while true do end end)):await())
      assert.are.equal("free", pool:run(function() return "free" end):await())
      assert.is_true(cf.now() - t0 < 2000 * slow)
    end)
    assert.are.same({ nil, "empty" }, { ran:try_recv() })
  end)

  it("refuses bad arguments and jobs after close", function()
    assert.has_error(function() cf.thread.pool(0) end,
      "thread.pool: argument #1 (thread count) must be an integer from 1 to 1024 (got 0)")
    assert.has_error(function() cf.thread.pool(2, { queue = -1 }) end,
      "thread.pool: option 'queue' must be an integer from 1 to 2147483647 (got -1)")
    local pool = cf.thread.pool(1)
    local up = 1
    assert.has_error(function() pool:run(function() return up end) end,
      "pool:run: argument #2: cannot copy a function that captures local variables (it uses 'up')")
    pool:close()
    assert.has_error(function() pool:run(function() end) end, "pool:run: the pool is closed")
  end)

  it("runs a job that sends functions on to threads of its own", function()
    -- the worker state both loads job functions and encodes functions to send
    local pool = cf.thread.pool(1)
    local job = function(n)
      local wcf = require "cfuture"
      return wcf.block_on(function()
        local double = function(x) return 2 * x end
        return wcf.thread.spawn(double, n):await() + wcf.thread.spawn(double, 1):await()
      end)
    end
    cf.block_on(function()
      for i = 1, 3 do assert.are.equal(2 * i + 2, pool:run(job, i):await()) end
    end)
    pool:close()
  end)

  it("raises a job's error at the await", function()
    local pool = cf.thread.pool(1)
    local ok, err = pcall(cf.block_on, pool:run(function() error("job failed") end))
    assert.is_false(ok)
    assert.matches("thread_spec.lua:%d+: job failed\nstack traceback:", err)
    assert.are.equal("still works", cf.block_on(pool:run(function() return "still works" end)))
  end)
end)

describe("cf.thread.channel", function()
  it("carries values between the runtime and workers both ways", function()
    local to, from = cf.thread.channel(), cf.thread.channel(1)
    local got = cf.block_on(function()
      local h = cf.thread.spawn(function(inbox, outbox)
        while true do
          local v = inbox:recv_blocking()
          if v == nil then break end
          outbox:send_blocking({ n = v.n * 10, tag = v.tag })
        end
        outbox:close()
        return "drained"
      end, to, from)
      for i = 1, 20 do assert.is_true(to:send({ n = i, tag = "t" .. i }):await()) end
      to:close()
      local out = {}
      while true do
        local v = from:recv():await()
        if v == nil then break end
        out[#out + 1] = v.n
      end
      assert.are.equal("drained", h:await())
      return out
    end)
    assert.are.equal(20, #got)
    for i = 1, 20 do assert.are.equal(i * 10, got[i]) end
  end)

  it("makes a send wait while a bounded channel is full", function()
    local ch = cf.thread.channel(1)
    cf.block_on(function()
      assert.is_true(ch:send(1):await())
      assert.is_nil(cf.timeout(30, ch:send(2)):await()) -- full: still waiting
      assert.are.equal(1, ch:len())
      local h = cf.thread.spawn(function(c)
        require("cfuture.thread").sleep(30)
        return c:recv_blocking(), c:recv_blocking()
      end, ch)
      assert.is_true(ch:send(3):await()) -- room once the worker takes one
      assert.are.same({ 1, 3 }, { h:await() })
    end)
  end)

  it("sends channels inside messages", function()
    local requests = cf.thread.channel()
    local answers = cf.block_on(function()
      local server = cf.thread.spawn(function(req)
        for _ = 1, 3 do
          local r = req:recv_blocking()
          r.reply:send_blocking(r.x + 1)
        end
      end, requests)
      local out = {}
      for i = 1, 3 do
        local reply = cf.thread.channel(1)
        requests:send({ x = i, reply = reply }):await()
        out[i] = reply:recv():await()
      end
      server:await()
      return out
    end)
    assert.are.same({ 2, 3, 4 }, answers)
  end)

  it("lets a worker run its own runtime and await channel receives there", function()
    local ch = cf.thread.channel()
    local r = cf.block_on(function()
      local h = cf.thread.spawn(function(c)
        local wcf = require "cfuture"
        return wcf.block_on(function()
          local a = wcf.select(c:recv(), wcf.sleep(5000)):await()
          local v = c:recv():await()
          wcf.sleep(10):await()
          return a, v
        end)
      end, ch)
      cf.sleep(20):await()
      ch:send("one"):await()
      ch:send("two"):await()
      return { h:await() }
    end)
    assert.are.same({ 1, "two" }, r)
  end)

  it("refuses misuse with clear errors", function()
    local ch = cf.thread.channel()
    assert.has_error(function() ch:send(nil) end,
      "channel:send: argument #2 must not be nil (nil marks a closed channel)")
    assert.has_error(function() ch:recv_blocking() end,
      "channel:recv_blocking: would block the event loop (only worker threads may block: "
        .. "inside tasks use the awaitable form)")
    assert.has_error(function() cf.thread.sleep(10) end,
      "thread.sleep: would block the event loop (only worker threads may block: "
        .. "inside tasks use the awaitable form)")
    assert.has_error(function() cf.thread.channel(0) end,
      "thread.channel: argument #1 (capacity) must be an integer from 1 to 2147483647 (got 0)")
    assert.has_error(function() ch:send(function() return ch end) end,
      "channel:send: argument #2: cannot copy a function that captures local variables (it uses 'ch')")
    ch:close()
    assert.are.same({ nil, "closed" }, { cf.block_on(ch:send(1)) })
    assert.is_nil(cf.block_on(ch:recv()))
    assert.are.same({ nil, "closed" }, { ch:try_recv() })
  end)

  it("times out a blocking receive and reports a closed channel to a blocking send", function()
    local ch = cf.thread.channel(1)
    local r = { cf.block_on(cf.thread.spawn(function(c)
      local got, why = c:recv_blocking(30)
      c:close()
      local ok, closed = c:send_blocking("late")
      return tostring(got) .. " " .. why, tostring(ok) .. " " .. closed, c:is_closed()
    end, ch)) }
    assert.are.same({ "nil timeout", "nil closed", true }, r)
    assert.is_true(ch:is_closed())
  end)

  it("cancels a pending receive without losing later messages", function()
    local ch = cf.thread.channel()
    cf.block_on(function()
      assert.is_nil(cf.timeout(20, ch:recv()):await())
      cf.thread.spawn(function(c) c:send_blocking("late") end, ch):await()
      assert.are.equal("late", ch:recv():await())
    end)
  end)
end)

describe("errors raised on workers (spawn, pool:run, cf.blocking)", function()
  local pool
  before_each(function() pool = cf.thread.pool(1) end)
  after_each(function() pool:close() end)
  local function runners()
    return {
      { "thread.spawn", function(...) return cf.thread.spawn(...) end, "thread" },
      { "pool:run", function(...) return pool:run(...) end, "thread" },
      { "cf.blocking", function(...) return cf.blocking(...) end, "blocking" },
    }
  end

  it("arrive as copied tables with their fields, the worker's traceback beside them", function()
    local ch = cf.thread.channel()
    for _, r in ipairs(runners()) do
      local name, run = r[1], r[2]
      local ok, err = pcall(cf.block_on, run(function(reply)
        local function raise()
          error({ code = 42, msg = "bad input", list = { 1, "two", { deep = true } }, reply = reply })
        end
        raise()
      end, ch))
      assert.is_false(ok, name)
      assert.are.equal("table", type(err), name)
      assert.are.equal(42, err.code, name)
      assert.are.equal("bad input", err.msg, name)
      assert.are.same({ 1, "two", { deep = true } }, err.list, name)
      -- a channel inside travels by reference: the same channel
      assert.is_true(cf.block_on(err.reply:send(name)), name)
      assert.are.equal(name, ch:try_recv(), name)
      local tb = cf.thread.traceback(err)
      assert.are.equal("string", type(tb), name)
      assert.matches("^stack traceback:", tb, name)
      assert.matches("in %a+ 'raise'", tb, name) -- "local 'raise'" (5.4), "function 'raise'" (LuaJIT)
      assert.is_nil(cf.thread.traceback({ code = 42 }), name) -- only what came from a worker
    end
  end)

  it("keep strings the same strings and other values the same values", function()
    for _, r in ipairs(runners()) do
      local name, run, prefix = r[1], r[2], r[3]
      local ok, err = pcall(cf.block_on, run(function() error("plain message", 0) end))
      assert.is_false(ok, name)
      if prefix == "blocking" then
        -- as raised (the await adds where it was awaited, as for any task's error)
        assert.are.equal("plain message", err:match("^[^\n]*"), name)
        assert.is_nil(err:find("thread_spec.lua", 1, true), name)
      else
        assert.matches("^plain message\nstack traceback:\n", err, name) -- the traceback appended
      end
      assert.is_nil(cf.thread.traceback(err), name)
      ok, err = pcall(cf.block_on, run(function() error(42, 0) end))
      assert.is_false(ok, name)
      assert.are.equal(42, err, name)
      ok, err = pcall(cf.block_on, run(function() error(false) end))
      assert.is_false(ok, name)
      assert.are.equal(false, err, name)
    end
  end)

  it("turn a value that cannot travel into a string naming it", function()
    for _, r in ipairs(runners()) do
      local name, run, prefix = r[1], r[2], r[3]
      local ok, err = pcall(cf.block_on, run(function()
        local function raise() error(io.stdout) end
        raise()
      end))
      assert.is_false(ok, name)
      assert.are.equal("string", type(err), name)
      assert.are.equal(prefix .. ": error object is a userdata value that cannot travel "
        .. "(cannot copy a userdata to another Lua state)", err:match("^[^\n]*"), name)
      assert.matches("\nstack traceback:\n.*in %a+ 'raise'", err, name)
      ok, err = pcall(cf.block_on, run(function() error({ fn = print }) end))
      assert.is_false(ok, name)
      assert.are.equal(prefix .. ": error object is a table value that cannot travel "
        .. "(cannot copy a C function)", err:match("^[^\n]*"), name)
    end
  end)
end)

describe("cf.thread objects given what they are not", function()
  it("check the self of every metamethod and method, and never touch a foreign one", function()
    local pool, ch = cf.thread.pool(1), cf.thread.channel()
    local listener = assert(cf.net.listen("127.0.0.1", 0))
    local pmt, cmt = getmetatable(pool), getmetatable(ch)
    local foreign = { listener, io.stdout, cf.sleep(1), 42, "x", {}, true }
    for _, f in ipairs(foreign) do
      assert.has_no_error(function() pmt.__gc(f) end)
      assert.has_no_error(function() cmt.__gc(f) end)
      assert.has_error(function() pmt.__tostring(f) end,
        "pool:__tostring: argument #1 must be a thread pool (call it with a colon; got " .. type(f) .. ")")
      assert.has_error(function() cmt.__tostring(f) end,
        "channel:__tostring: argument #1 must be a thread channel (call it with a colon; got " .. type(f) .. ")")
      for k, fn in pairs(pmt.__index) do
        assert.has_error(function() fn(f) end,
          "pool:" .. k .. ": argument #1 must be a thread pool (call it with a colon; got " .. type(f) .. ")")
      end
      for k, fn in pairs(cmt.__index) do
        assert.has_error(function() fn(f) end,
          "channel:" .. k .. ": argument #1 must be a thread channel (call it with a colon; got " .. type(f) .. ")")
      end
    end
    assert.has_no_error(function() pmt.__gc(ch) end)
    assert.has_no_error(function() cmt.__gc(pool) end)
    assert.has_no_error(function() pmt.__gc() end)
    assert.has_no_error(function() cmt.__gc() end)
    assert.has_error(function() pmt.__tostring() end,
      "pool:__tostring: argument #1 must be a thread pool (call it with a colon; got no value)")
    -- the real objects were not touched
    assert.are.equal(1, pool:size())
    assert.are.equal(7, cf.block_on(pool:run(function() return 7 end)))
    assert.is_true(cf.block_on(ch:send("still here")))
    assert.are.equal("still here", ch:try_recv())
    assert.matches("^cfuture.ThreadPool%(1 threads%)", tostring(pool))
    listener:close()
    pool:close()
  end)

  it("refuse to use a pool or channel finalised by hand, and finalise it once", function()
    local pool, ch = cf.thread.pool(1), cf.thread.channel()
    local fresh = pool:run(function() return 1 end) -- not queued yet (futures are lazy)
    getmetatable(pool).__gc(pool)
    getmetatable(pool).__gc(pool)
    getmetatable(ch).__gc(ch)
    getmetatable(ch).__gc(ch)
    cf.block_on(cf.sleep(50 * slow)) -- its worker leaves and is joined meanwhile
    local ok, err = pcall(cf.block_on, fresh)
    assert.is_false(ok)
    assert.are.equal("pool:run: the pool is closed", err:match("^[^\n]*"))
    assert.has_error(function() pool:size() end, "pool:size: the pool is closed")
    assert.has_error(function() pool:run(function() end) end, "pool:run: the pool is closed")
    assert.matches("^cfuture.ThreadPool%(closed%)", tostring(pool))
    assert.has_error(function() ch:len() end, "channel:len: the channel was finalised (its __gc was called)")
    assert.matches("^cfuture.ThreadChannel%(finalised%)", tostring(ch))
    assert.has_error(function() ch:send(1) end, "channel:send: the channel was finalised (its __gc was called)")
    assert.has_error(function() cf.thread.spawn(function() end, ch) end,
      "thread.spawn: argument #2: cannot copy a userdata to another Lua state")
    support.full_gc()
  end)

  it("refuse bad sizes, capacities and delays, naming the function and the argument", function()
    local function err_of(f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      return e
    end
    local cap = "^thread%.channel: argument #1 %(capacity%) must be an integer from 1 to 2147483647 %(got "
    assert.matches(cap .. "[%d.e+]+%)$", err_of(cf.thread.channel, 2 ^ 40))
    assert.matches(cap .. "%-?nan%)$", err_of(cf.thread.channel, 0 / 0))
    assert.matches(cap .. "1%.5%)$", err_of(cf.thread.channel, 1.5))
    assert.matches(cap .. "%-1%)$", err_of(cf.thread.channel, -1))
    assert.matches(cap .. "string%)$", err_of(cf.thread.channel, "x"))
    assert.matches(cap .. "boolean%)$", err_of(cf.thread.channel, true))
    local n = "^thread%.pool: argument #1 %(thread count%) must be an integer from 1 to 1024 %(got "
    assert.matches(n .. "%-?nan%)$", err_of(cf.thread.pool, 0 / 0))
    assert.matches(n .. "no value%)$", err_of(cf.thread.pool))
    assert.matches(n .. "1025%)$", err_of(cf.thread.pool, 1025))
    assert.matches(n .. "[%d.e+]+%)$", err_of(cf.thread.pool, 2 ^ 40))
    local q = "^thread%.pool: option 'queue' must be an integer from 1 to 2147483647 %(got "
    assert.matches(q .. "[%d.e+]+%)$", err_of(cf.thread.pool, 1, { queue = 2 ^ 40 }))
    assert.matches(q .. "%-?nan%)$", err_of(cf.thread.pool, 1, { queue = 0 / 0 }))
    assert.matches(q .. "table%)$", err_of(cf.thread.pool, 1, { queue = {} }))
    assert.are.equal("thread.pool: argument #2 must be an options table (got string)",
      err_of(cf.thread.pool, 1, "big"))
    assert.matches("^thread%.sleep: argument #1 must be a non%-negative, finite number of milliseconds",
      err_of(cf.thread.sleep, 0 / 0))
    local ch = cf.thread.channel(2 ^ 31 - 1)
    assert.are.equal(0, ch:len())
    -- a very long wait on a worker is a long wait (not a wrapped-around one), and stops
    cf.block_on(function()
      for _, body in ipairs({
        function() require("cfuture.thread").sleep(1e15) end,
        function(c) c:recv_blocking(1e15) end,
      }) do
        local h = cf.thread.spawn(body, ch)
        cf.sleep(50):await()
        assert.is_false(h:is_finished())
        h:abort()
        local ok, err = pcall(h.await, h)
        assert.is_false(ok)
        assert.is_true(cf.is_cancelled(err))
      end
    end)
  end)

  it("raise once the runtime has closed, and touch nothing freed #lua54 #subprocess", function()
    local out, code, _, err = support.run_lua([[
      -- made before require "cfuture": finalised after the runtime closed
      local probe = setmetatable({}, { __gc = function(t)
        local function try(name, f)
          local ok, e = pcall(f)
          print(name, ok, (tostring(e):gsub("^[^:]*:%d+: ", ""))) -- without the position
        end
        local cf, pool, ch = t.cf, t.pool, t.ch
        try("spawn", function() return cf.thread.spawn(function() end) end)
        try("pool", function() return cf.thread.pool(1) end)
        try("run", function() return pool:run(function() end) end)
        try("size", function() return pool:size() end)
        try("queued", function() return pool:queued() end)
        try("close", function() return pool:close() end)
        try("blocking", function() return cf.blocking(function() end) end)
        try("traceback", function() return cf.thread.traceback({}) end)
        try("recv", function() return ch:recv() end)
        try("tostring", function() return (tostring(pool):gsub(": .*", "")) end)
      end })
      local cf = require "cfuture"
      probe.cf, probe.pool, probe.ch = cf, cf.thread.pool(1), cf.thread.channel()
      print("end")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat({
      "end",
      "spawn\tfalse\tspawn: the cfuture runtime is closed",
      "pool\tfalse\tpool: the cfuture runtime is closed",
      "run\tfalse\trun: the cfuture runtime is closed",
      "size\tfalse\tsize: the cfuture runtime is closed",
      "queued\tfalse\tqueued: the cfuture runtime is closed",
      "close\tfalse\tclose: the cfuture runtime is closed",
      "blocking\tfalse\tblocking: the cfuture runtime is closed",
      "traceback\tfalse\ttraceback: the cfuture runtime is closed",
      "recv\tfalse\trecv: the cfuture runtime is closed",
      "tostring\ttrue\tcfuture.ThreadPool(closed)",
      "" }, "\n"), out)
  end)
end)
