-- cf.coroutine: await through coroutines that a program or a library made.
local cf = require "cfuture"
local support = require "support"
local C = cf.coroutine

-- a TCP server that writes `lines` and closes; returns the port
local function line_server(lines)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  cf.spawn(function()
    local s = l:accept():await()
    for _, line in ipairs(lines) do
      s:write(line .. "\n"):await()
      cf.sleep(5):await()
    end
    s:close()
    l:close()
  end)
  return port
end

describe("cf.coroutine", function()
  it("lets a coroutine.wrap iterator await: the task waits, other tasks run", function()
    local log = {}
    cf.block_on(function()
      local it = C.wrap(function()
        for i = 1, 3 do
          cf.sleep(20):await()
          log[#log + 1] = "item" .. i
          C.yield(i)
        end
      end)
      local ticker = cf.spawn(function()
        for i = 1, 3 do
          cf.sleep(10):await()
          log[#log + 1] = "tick" .. i
        end
      end)
      local got = {}
      local t0 = cf.now()
      for v in it do got[#got + 1] = v end
      local dt = cf.now() - t0
      ticker:await()
      assert.are.same({ 1, 2, 3 }, got)
      assert.is_true(dt >= 60 and dt < 60 + 300 * support.slow, dt)
    end)
    -- the ticker ran while the iterator's awaits waited
    assert.are.equal("tick1", log[1])
    assert.are.equal(6, #log)
  end)

  it("passes values both ways through a resume loop around awaits", function()
    local seen = cf.block_on(function()
      local c = C.create(function(a)
        cf.sleep(1):await()
        local b = C.yield(a + 1)
        local x = cf.async(function(v) cf.sleep(5):await(); return v * 10 end)(b):await()
        local d = C.yield(x)
        return "end", d
      end)
      local out = {}
      local _, r1 = C.resume(c, 1)
      out[#out + 1] = r1
      local _, r2 = C.resume(c, 7)
      out[#out + 1] = r2
      out[#out + 1] = { C.resume(c, "last") }
      out[#out + 1] = C.status(c)
      return out
    end)
    assert.are.same({ 2, 70, { true, "end", "last" }, "dead" }, seen)
  end)

  it("awaits through several levels of nesting", function()
    local r = cf.block_on(function()
      local function level(n)
        if n == 0 then return cf.async(function() cf.sleep(2):await(); return "leaf" end)():await() end
        return C.wrap(function() C.yield(level(n - 1) .. n) end)()
      end
      return level(4)
    end)
    assert.are.equal("leaf1234", r)
  end)

  it("raises a future's error at the await inside the coroutine", function()
    local a, b, c, d = cf.block_on(function()
      local co = C.create(function()
        local ok, err = pcall(cf.await, cf.async(function() cf.sleep(1):await(); error("inner boom", 0) end)())
        C.yield(ok, err)
        cf.async(function() cf.sleep(1):await(); error({ code = 7 }) end)():await()
      end)
      local _, ok, err = C.resume(co)
      local ok2, e2 = C.resume(co)
      return ok, err, ok2, e2
    end)
    assert.is_false(a)
    assert.are.equal("inner boom", (b:match("^[^\n]*")))
    assert.is_false(c)
    assert.are.same({ code = 7 }, d)
  end)

  it("wrap raises the coroutine's error at the caller, as coroutine.wrap does", function()
    local ok, err = cf.block_on(function()
      local f = C.wrap(function() cf.sleep(1):await(); error("wrapped") end)
      return pcall(f)
    end)
    assert.is_false(ok)
    assert.is_truthy(err:find("wrapped", 1, true), err)
    local dead = cf.block_on(function()
      local f = C.wrap(function() return 1 end)
      f()
      return select(2, pcall(f))
    end)
    assert.is_truthy(dead:find("cannot resume dead coroutine", 1, true), dead)
  end)

  it("keeps the coroutine functions' answers inside the coroutine", function()
    local r = cf.block_on(function()
      local task_co = C.running()
      local out = {}
      local c
      c = C.create(function()
        out.running = C.running() == c
        out.yieldable = C.isyieldable()
        out.status = C.status(c)
        out.task_status = C.status(task_co)
        cf.sleep(1):await()
        out.after = C.running() == c
      end)
      assert(C.resume(c))
      out.dead = C.status(c)
      return out
    end)
    assert.are.same({ running = true, yieldable = true, status = "running", task_status = "normal",
      after = true, dead = "dead" }, r)
  end)

  it("counts a coroutine whose await waits as normal: it cannot be resumed from elsewhere", function()
    local res = cf.block_on(function()
      local c = C.create(function()
        cf.sleep(40):await()
        return "done"
      end)
      local owner = cf.spawn(function() return C.resume(c) end)
      cf.sleep(5):await()
      local out = { C.status(c), { C.resume(c) } }
      if C.close then out[3] = { pcall(C.close, c) } end
      out[4] = { owner:await() }
      return out
    end)
    assert.are.equal("normal", res[1])
    assert.are.same({ false, "cannot resume non-suspended coroutine" }, res[2])
    if res[3] then
      assert.is_false(res[3][1])
      assert.is_truthy(res[3][2]:find("cannot close a normal coroutine", 1, true), res[3][2])
    end
    assert.are.same({ true, "done" }, res[4])
  end)

  it("reads a stream's lines inside a wrap iterator (iterators that await themselves)", function()
    local got = cf.block_on(function()
      local port = line_server({ "alpha", "beta", "gamma" })
      local s = assert(cf.net.connect("127.0.0.1", port):await())
      local upper = C.wrap(function()
        for line in s:lines() do C.yield(line:upper()) end
      end)
      local out = {}
      for v in upper do out[#out + 1] = v end
      s:close()
      return out
    end)
    assert.are.same({ "ALPHA", "BETA", "GAMMA" }, got)
  end)

  it("forwards yield_now and budget suspensions, so many ready awaits finish", function()
    local n = cf.block_on(function()
      return C.wrap(function()
        local k = 0
        for _ = 1, 1000 do
          cf.sleep(0):await()
          k = k + 1
        end
        cf.yield_now():await()
        return k
      end)()
    end)
    assert.are.equal(1000, n)
  end)

  it("leaves plain coroutine.resume as it was: an await there is refused", function()
    local ok, err = cf.block_on(function()
      return coroutine.resume(coroutine.create(function() cf.sleep(1):await() end))
    end)
    assert.is_false(ok)
    assert.is_truthy(err:find("await: not inside a task", 1, true), err)
  end)

  it("outside a task, an await inside cf.coroutine.resume is refused clearly", function()
    local ok, err = C.resume(C.create(function() return cf.sleep(1):await() end))
    assert.is_false(ok)
    assert.is_truthy(err:find("await: not inside a task", 1, true), err)
  end)

  it("cancelling the task stops the coroutine's await (the sleep's timer too)", function()
    local log = {}
    local t0 = cf.now()
    local a, b = cf.block_on(cf.timeout(30, function()
      C.wrap(function()
        cf.sleep(5000):await()
        log[#log + 1] = "not reached"
      end)()
    end))
    assert.is_nil(a)
    assert.are.equal("timeout", b)
    assert.is_true(cf.now() - t0 < 1000 * support.slow)
    cf.block_on(cf.sleep(20))
    assert.are.same({}, log)
  end)

  it("runs the coroutine's <close> variables when the task is cancelled #lua54", function()
    local log = {}
    cf.block_on(cf.timeout(20, function()
      C.wrap(function()
        local g <close> = setmetatable({}, { __close = function() log[#log + 1] = "closed" end })
        cf.sleep(5000):await()
      end)()
    end))
    assert.are.same({ "closed" }, log)
  end)

  it("reports an error of the coroutine's <close> variables on cancellation #lua54", function()
    local seen = {}
    local prev = cf.on_error(function(e) seen[#seen + 1] = tostring(e):match("^[^\n]*") end)
    cf.block_on(cf.timeout(20, function()
      C.wrap(function()
        local g <close> = setmetatable({}, { __close = function() error("close boom", 0) end })
        cf.sleep(5000):await()
      end)()
    end))
    cf.on_error(prev)
    assert.are.same({ "close boom" }, seen)
  end)

  it("install() gives libraries loaded afterwards the replacements; uninstall() undoes it", function()
    local orig_wrap, orig_resume = coroutine.wrap, coroutine.resume
    C.install()
    -- a library that captures coroutine.wrap when it is loaded
    local lib = assert(load([[
      local wrap = coroutine.wrap
      local M = {}
      function M.numbers(get, n)
        return wrap(function() for i = 1, n do coroutine.yield(get(i)) end end)
      end
      return M
    ]]))()
    C.uninstall()
    assert.are.equal(orig_wrap, coroutine.wrap)
    assert.are.equal(orig_resume, coroutine.resume)
    local got = cf.block_on(function()
      local out = {}
      local slow = cf.async(function(i) cf.sleep(2):await(); return i * i end)
      for v in lib.numbers(function(i) return slow(i):await() end, 4) do out[#out + 1] = v end
      return out
    end)
    assert.are.same({ 1, 4, 9, 16 }, got)
  end)

  it("keeps no coroutine alive after it is finished or dropped", function()
    cf.block_on(function()
      for _ = 1, 200 do
        local it = C.wrap(function() for i = 1, 3 do cf.sleep(0):await(); C.yield(i) end end)
        it() -- dropped half-way
      end
    end)
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    cf.block_on(function()
      for _ = 1, 2000 do
        local it = C.wrap(function() for i = 1, 3 do cf.sleep(0):await(); C.yield(i) end end)
        it()
      end
    end)
    collectgarbage()
    collectgarbage()
    assert.is_true(collectgarbage("count") - before < 200, collectgarbage("count") - before)
  end)

  it("raises clear errors for bad arguments", function()
    assert.has_error(function() C.wrap(42) end, "coroutine.wrap: argument #1 must be a function (got number)")
    assert.has_error(function() C.resume(42) end, "coroutine.resume: argument #1 must be a coroutine (got number)")
    assert.has_error(function() C.status({}) end, "coroutine.status: argument #1 must be a coroutine (got table)")
    assert.has_error(function() C.create("x") end, "coroutine.create: argument #1 must be a function (got string)")
  end)
end)
