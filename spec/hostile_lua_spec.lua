-- Hostile use of the core: a task's coroutine closed or resumed from
-- outside, a JoinHandle resurrected after its finaliser, the future
-- metatable's metamethods called with anything, bad arguments, a task that
-- never has to wait (the cooperative budget), calls after the runtime closed.
local cf = require "cfuture"
local support = require "support"

-- The error a function raises (asserting that it raises), as a string.
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("a task's coroutine used from outside", function()
  it("closed while the task awaits fails the task, and the runtime goes on #lua54", function()
    local co
    local h = cf.spawn(function()
      co = coroutine.running()
      cf.sleep(30):await()
      return "not reached"
    end)
    local msg = cf.block_on(function()
      cf.sleep(5):await()
      assert.are.equal("suspended", coroutine.status(co))
      assert.is_true(coroutine.close(co))
      -- the future it awaited is no longer on any coroutine's stack
      support.full_gc()
      support.full_gc()
      local ok, err = pcall(h.await, h)
      assert.is_false(ok)
      return err
    end)
    assert.matches("the task's coroutine was closed from outside", msg, 1, true)
    -- nothing is left pointing into the closed coroutine
    support.full_gc()
    assert.are.equal(3, cf.block_on(function() return cf.spawn(function() return 3 end):await() end))
  end)

  it("closed while it awaits a channel drops the receive #lua54", function()
    local ch = cf.channel()
    local co
    local h = cf.spawn(function()
      co = coroutine.running()
      return ch:recv():await()
    end)
    cf.block_on(function()
      cf.yield_now():await()
      coroutine.close(co)
      support.full_gc()
      ch:send("hello")
      assert.matches("closed from outside", err_of(h.await, h), 1, true)
      -- the message was not lost to the dead receiver
      assert.are.equal("hello", (ch:recv():await()))
    end)
  end)

  it("closed inside an async function fails that future only #lua54", function()
    local co
    local inner = cf.async(function()
      co = coroutine.running()
      cf.sleep(20):await()
      return "inner"
    end)
    local r = cf.block_on(function()
      local h = cf.spawn(function()
        local ok, err = pcall(cf.await, inner())
        return ok, tostring(err)
      end)
      cf.sleep(5):await()
      coroutine.close(co)
      support.full_gc()
      return { h:await() }
    end)
    assert.is_false(r[1])
    assert.matches("closed from outside", r[2], 1, true)
  end)

  it("resumed from outside while it awaits: the await raises there, the task fails cleanly", function()
    local co, seen
    local h = cf.spawn(function()
      co = coroutine.running()
      local ok, err = pcall(function() return cf.sleep(30):await() end)
      seen = tostring(err)
      return ok
    end)
    local resumed = cf.block_on(function()
      cf.sleep(5):await()
      local r = { coroutine.resume(co) }
      support.full_gc()
      support.full_gc()
      local ok, err = pcall(h.await, h)
      assert.is_false(ok)
      r.err = tostring(err)
      return r
    end)
    assert.matches("resumed from outside the scheduler", seen, 1, true)
    assert.are.same({ true, false }, { resumed[1], resumed[2] }) -- ran to its end there
    assert.matches("the task's coroutine was closed from outside", resumed.err, 1, true)
  end)

  it("resumed from outside and killed by the error fails the task with a clear message", function()
    local co
    local h = cf.spawn(function()
      co = coroutine.running()
      cf.sleep(20):await()
    end)
    local r = cf.block_on(function()
      cf.sleep(5):await()
      local ok, err = coroutine.resume(co)
      support.full_gc()
      return { ok, tostring(err), err_of(h.await, h) }
    end)
    assert.is_false(r[1])
    assert.matches("resumed from outside the scheduler", r[2], 1, true)
    assert.matches("resumed from outside the scheduler and died", r[3], 1, true)
  end)
end)

describe("a JoinHandle resurrected after its finaliser", function()
  it("answers every method with a clear error or its id, never a crash #lua54", function()
    local h = cf.spawn(function() return 42 end)
    local id = h:id()
    do
      -- a finaliser of an object the handle is reachable from brings it back
      setmetatable({ h = h }, { __gc = function(o) _G.RESURRECTED = o.h end })
    end
    h = nil
    support.full_gc()
    support.full_gc()
    local r = assert(_G.RESURRECTED)
    _G.RESURRECTED = nil
    assert.are.equal(id, r:id())
    for _, m in ipairs { "name", "abort", "is_finished" } do
      assert.matches(m .. ": the JoinHandle was finalised", err_of(r[m], r), 1, true)
    end
    assert.matches("JoinHandle (finalised)", tostring(r), 1, true)
    assert.matches("the JoinHandle was finalised", err_of(cf.block_on, r), 1, true)
    assert.matches("the JoinHandle was finalised",
      err_of(cf.block_on, function() return r:await() end), 1, true)
    assert.matches("the JoinHandle was finalised",
      err_of(cf.block_on, function() return cf.join(r):await() end), 1, true)
    -- and its __gc again is harmless
    getmetatable(r).__gc(r)
    cf.run()
  end)
end)

describe("the future metatable's metamethods", function()
  it("do nothing or raise when reached with something else as self", function()
    local f = cf.sleep(1)
    local mt = debug.getmetatable(f)
    mt.__gc(io.stdout)
    mt.__gc({})
    mt.__gc()
    mt.__gc("x")
    assert.matches("__tostring: argument #1 must be a cfuture.Future %(got table%)",
      err_of(mt.__tostring, {}))
    assert.matches("__tostring: argument #1 must be a cfuture.Future %(got no value%)",
      err_of(mt.__tostring))
    assert.matches("__tostring: argument #1 must be a cfuture.Future %(got userdata%)",
      err_of(mt.__tostring, io.stdout))
    assert.matches("state: argument #1 must be a future %(got table%)", err_of(mt.__index.state, {}))
    -- the future itself is untouched
    assert.are.equal("fresh", f:state())
    cf.block_on(f)
  end)

  it("give a table that borrowed the metatable no power over memory #lua54", function()
    local mt = getmetatable(cf.sleep(1))
    do setmetatable({}, mt) end
    support.full_gc() -- its __gc runs with a table: nothing happens
    local t = setmetatable({}, mt)
    assert.matches("must be a future", err_of(t.state, t))
    assert.matches("__tostring: argument #1 must be a cfuture.Future", err_of(tostring, t))
  end)

  it("describe deeply nested awaits without overflowing the Lua stack", function()
    local depth = 150
    local function nest(n)
      if n == 0 then return cf.sleep(20) end
      return cf.async(function() return nest(n - 1):await() end)()
    end
    cf.block_on(function()
      local h = cf.spawn(nest(depth))
      cf.sleep(5):await()
      local found
      for _, t in ipairs(cf.tasks()) do
        if t.id == h:id() then found = t.awaiting end
      end
      assert.is_string(found)
      assert.truthy(#found > depth)
      assert.truthy(#cf.dump() > 0)
      h:await()
    end)
  end)
end)

describe("bad arguments", function()
  it("to spawn name the function and the argument", function()
    assert.matches("spawn: argument #1 must be a function or a future %(got no value%)",
      err_of(cf.spawn))
    assert.matches("spawn: argument #1 must be a function or a future %(got number%)",
      err_of(cf.spawn, 0 / 0))
    assert.matches("spawn: argument #1: %[1%] must be a function or a future %(got string%)",
      err_of(cf.spawn, { "x" }))
    assert.matches("spawn: a table argument needs the function or future at %[1%]",
      err_of(cf.spawn, {}))
    assert.matches("spawn: the task name must be a string %(got number%)",
      err_of(cf.spawn, { function() end, name = 1 }))
    assert.matches("spawn: the task name must be a string %(got table%)",
      err_of(cf.spawn, { function() end, name = {} }))
    assert.matches("spawn: the task name must not contain a NUL byte",
      err_of(cf.spawn, { function() end, name = "a\0b" }))
    -- nothing was spawned by the refusals
    cf.run()
    local h = cf.spawn { function(a, b) return a + b end, 2, 3, name = "adder" }
    assert.are.equal("adder", h:name())
    assert.are.equal(5, cf.block_on(h))
  end)

  it("to the combinators, timeout, scope, async and defer name the function", function()
    assert.matches("select: needs at least 1 future", err_of(cf.select))
    assert.matches("join: argument #2 must be a future or a function %(got boolean%)",
      err_of(cf.join, cf.sleep(0), true))
    assert.matches("join_all: argument #1 must be a table", err_of(cf.join_all, "x"))
    assert.matches("join_all: element #2 must be a future or a function %(got number%)",
      err_of(cf.join_all, { cf.sleep(0), 3 }))
    assert.matches("timeout: argument #1 must be a non%-negative, finite number",
      err_of(cf.timeout, 0 / 0, cf.sleep(0)))
    assert.matches("timeout: argument #1 must be a non%-negative, finite number",
      err_of(cf.timeout, math.huge, cf.sleep(0)))
    assert.matches("timeout: argument #2 must be a future or a function %(got nil%)",
      err_of(cf.timeout, 10))
    local s = cf.sleep(0)
    assert.matches("join: argument #2 is the same future as an earlier one", err_of(cf.join, s, s))
    assert.matches("scope: argument #1 must be a function %(got number%)", err_of(cf.scope, 1))
    assert.matches("async: argument #1 must be a function %(got nil%)", err_of(cf.async, nil))
    assert.matches("future: argument #1 must be a poll function %(got string%)",
      err_of(cf.future, "x"))
    assert.matches("defer: argument #1 must be a function %(got number%)", err_of(cf.defer, 1))
    assert.matches("defer: not inside a task", err_of(cf.defer, function() end))
    -- the futures the refused calls saw are still usable
    cf.block_on(cf.join(s))
  end)

  it("from a custom future's poll fail that future with the error", function()
    local big = cf.future(function() return table.unpack({}, 1, 5000) end)
    local n = select("#", cf.block_on(big))
    assert.are.equal(5000, n)
    local bad = cf.future(function() coroutine.yield() end)
    assert.matches("yield", err_of(cf.block_on, bad))
    local awaits = cf.future(function() return cf.sleep(1):await() end)
    assert.matches("await: not inside a task", err_of(cf.block_on, awaits))
  end)
end)

describe("the cooperative budget", function()
  it("makes a task whose awaits are always ready let a ticker run", function()
    local ticks_during, started, done = 0, false, false
    local N = 500000
    cf.block_on(function()
      local ticker = cf.spawn(function()
        while not done do
          cf.sleep(1):await()
          if started and not done then ticks_during = ticks_during + 1 end
        end
      end)
      local finished = cf.spawn(function() return 7 end)
      finished:await()
      local busy = cf.spawn(function()
        started = true
        local sum = 0
        -- a finished task's handle is ready at once: this task never waits
        for _ = 1, N do sum = sum + finished:await() end
        done = true
        return sum
      end)
      assert.are.equal(7 * N, busy:await())
      ticker:await()
    end)
    -- without the budget the ticker cannot run at all until the loop ends;
    -- with it, every executor run ends with I/O and timers polled, and the
    -- ticker runs after each (at most 1024 polls of 128 ready awaits apart)
    assert.truthy(ticks_during >= 2, "ticker ran " .. ticks_during .. " times")
  end)

  it("keeps the order and the values of ready awaits across its yields", function()
    local ch = cf.channel()
    local N = 4000 -- LuaJIT: a channel cannot grow past 4096 messages (sync.c)
    for i = 1, N do ch:send(i) end
    local other = 0
    local got = cf.block_on(function()
      local h = cf.spawn(function() while true do other = other + 1; cf.yield_now():await() end end)
      local expect = 1
      for _ = 1, N do
        local v, ok = ch:recv():await()
        if v ~= expect or ok ~= true then return "out of order at " .. expect end
        expect = expect + 1
      end
      h:abort()
      return expect - 1
    end)
    assert.are.equal(N, got)
    -- the other task ran between budget yields
    assert.truthy(other >= math.floor(N / 128) - 2, "the other task ran " .. other .. " times")
  end)

  it("raises the errors of ready failing futures across its yields", function()
    local fails = cf.async(function(i) error("boom " .. i, 0) end)
    local msgs = cf.block_on(function()
      local out = {}
      for i = 1, 400 do
        local ok, err = pcall(cf.await, fails(i))
        out[#out + 1] = not ok and err or "no error"
      end
      return out
    end)
    for i = 1, 400 do assert.matches("^boom " .. i .. "%f[%D]", msgs[i]) end
    -- and a finished task's handle gives its results again and again
    local h = cf.spawn(function() return 1, nil, 3 end)
    cf.block_on(function()
      for _ = 1, 500 do
        local a, b, c = h:await()
        assert(a == 1 and b == nil and c == 3)
      end
    end)
  end)
end)

describe("calls after the runtime closed", function()
  it("raise naming the function, and metamethods stay harmless #lua54", function()
    local out, code, _, err = support.run_lua([[
      -- made before cfuture: finalised after the runtime, at lua_close
      local probe = setmetatable({}, { __gc = function(o)
        local cf, f, h = o.cf, o.f, o.h
        local function try(name, fn, ...)
          local ok, e = pcall(fn, ...)
          print(name, ok, e)
        end
        try("spawn", cf.spawn, function() end)
        try("join", cf.join)
        try("state", f.state, f)
        try("id", h.id, h)
        try("future", cf.future, function() end)
        try("scope", cf.scope, function() end)
        try("tasks", cf.tasks)
        try("async", cf.async, function() end)
        print("tostring", tostring(f):match("runtime is closed") ~= nil)
        getmetatable(f).__gc(f)
        print("end")
      end })
      local cf = require "cfuture"
      probe.cf = cf
      probe.f = cf.sleep(10)
      probe.h = cf.spawn(function() cf.sleep(1000):await() end)
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    for _, name in ipairs { "spawn", "join", "state", "id", "future", "scope", "tasks", "async" } do
      assert.matches(name .. "\tfalse\t[^\n]*the cfuture runtime is closed", out)
    end
    assert.matches("tostring\ttrue", out)
    assert.matches("\nend\n", out)
  end)
end)
