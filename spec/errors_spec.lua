-- Errors reach whoever awaits, with a traceback; unawaited errors are reported;
-- misuse raises clear errors and the runtime stays usable.
local cf = require "cfuture"
local support = require "support"

describe("errors", function()
  it("reach the awaiter with the original message and a traceback of where they were raised", function()
    local ok, err = pcall(cf.block_on, function()
      local h = cf.spawn(function()
        cf.sleep(1):await()
        local t = nil
        return t.field -- line to find in the traceback
      end)
      return h:await()
    end)
    assert.is_false(ok)
    assert.matches("attempt to index .*nil value", err) -- LuaJIT names the local
    assert.matches("stack traceback:", err)
    -- LuaJIT's traceback of a dead coroutine has no line numbers
    assert.matches(jit and "errors_spec.lua: in function" or "errors_spec.lua:%d+: in function", err)
  end)

  it("carry one traceback even when re-raised through several awaits", function()
    local inner = cf.async(function() error("deep") end)
    local middle = cf.async(function() return inner():await() end)
    local ok, err = pcall(cf.block_on, function() return middle():await() end)
    assert.is_false(ok)
    local _, n = err:gsub("stack traceback:", "")
    assert.are.equal(1, n)
  end)

  it("preserve error tables", function()
    local e = { code = 42 }
    local ok, err = pcall(cf.block_on, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
  end)

  it("in a task nobody awaits are reported to the handler once its handle is gone", function()
    local got = {}
    local prev = cf.on_error(function(err, info) got[#got + 1] = { err = err, info = info } end)
    cf.block_on(function()
      cf.spawn { function() error("lost?") end, name = "orphan" }
      cf.sleep(5):await()
      support.full_gc() -- the discarded JoinHandle is collected: nobody can await it now
      cf.yield_now():await()
    end)
    cf.on_error(prev)
    assert.are.equal(1, #got)
    assert.matches("lost%?", got[1].err)
    assert.are.equal("orphan", got[1].info.name)
    assert.is_number(got[1].info.id)
  end)

  it("held by a JoinHandle that is collected without being awaited are reported", function()
    local got = {}
    local prev = cf.on_error(function(err) got[#got + 1] = err end)
    cf.block_on(function()
      local h = cf.spawn(function() error("kept but never awaited") end)
      cf.yield_now():await()
      assert.is_true(h:is_finished())
      h = nil
      support.full_gc()
      cf.yield_now():await()
    end)
    cf.on_error(prev)
    assert.are.equal(1, #got)
    assert.matches("kept but never awaited", got[1])
  end)

  it("are printed to stderr by default and never end the process", function()
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      cf.spawn(function() error("nobody awaits me") end)
      cf.run()
      print("still alive") -- reported when the handle is collected, here at exit
    ]])
    assert.are.equal(0, code)
    assert.are.equal("still alive\n", out)
    assert.matches("cfuture: task 1 failed and nobody awaited it:", err)
    assert.matches("nobody awaits me", err)
  end)

  it("in the handler itself do not break the runtime", function()
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      cf.on_error(function() error("handler broke") end)
      cf.spawn(function() error("original") end)
      cf.run()
      print(cf.block_on(function() return "usable" end))
    ]])
    assert.are.equal(0, code)
    assert.are.equal("usable\n", out)
    assert.matches("handler broke", err)
    assert.matches("original", err)
  end)
end)

describe("misuse", function()
  it("await outside a task says so", function()
    assert.has_error(function() cf.sleep(1):await() end,
      "await: not inside a task (the main chunk is not a task: run the code with cf.block_on or cf.spawn)")
    local co = coroutine.wrap(function() return pcall(cf.await, cf.sleep(1)) end)
    local ok, err = co()
    assert.is_false(ok)
    assert.matches("await: not inside a task %(this coroutine was not started by cfuture", err)
  end)

  it("await in a plain coroutine inside a task is refused", function()
    local ok, err = cf.block_on(function()
      local co = coroutine.wrap(function() return pcall(cf.await, cf.sleep(1)) end)
      return co()
    end)
    assert.is_false(ok)
    assert.matches("await: not inside a task", err)
  end)

  it("await where a C function blocks the yield is refused", function()
    local ok, err = cf.block_on(function()
      return pcall(table.sort, { 3, 1, 2 }, function(a, b) cf.sleep(1):await(); return a < b end)
    end)
    assert.is_false(ok)
    assert.matches("await: cannot suspend here", err)
  end)

  it("block_on, run and step inside a task are refused", function()
    for _, name in ipairs { "block_on", "run", "step" } do
      local ok, err = cf.block_on(function() return pcall(cf[name], cf.sleep(1)) end)
      assert.is_false(ok)
      assert.matches(name .. ": called inside a task; await the future instead", err)
    end
  end)

  it("non-futures and non-functions are refused by name", function()
    assert.has_error(function() cf.spawn(42) end, "spawn: argument #1 must be a function or a future (got number)")
    assert.has_error(function() cf.block_on("x") end, "block_on: argument #1 must be a function or a future (got string)")
    assert.has_error(function() cf.spawn() end, "spawn: argument #1 must be a function or a future (got no value)")
    assert.has_error(function() cf.async(1) end)
    assert.has_error(function() cf.spawn { name = "x" } end, "spawn: a table argument needs the function or future at [1]")
    assert.has_error(function() cf.spawn { function() end, name = 5 } end, "spawn: the task name must be a string (got number)")
    local ok, err = cf.block_on(function() return pcall(cf.await, 5) end)
    assert.is_false(ok)
    assert.matches("await: argument #1 must be a future or a function %(got number%)", err)
  end)

  it("a deadlock is reported instead of hanging, and the stuck task is cleaned up #lua54", function()
    local closed = false
    local ok, err = pcall(cf.block_on, function()
      local c <close> = setmetatable({}, { __close = function() closed = true end })
      cf.future(function() return cf.PENDING end):await()
    end)
    assert.is_false(ok)
    assert.matches("block_on: deadlock: the future is still pending but nothing can wake it", err)
    assert.is_true(closed)
    assert.are.equal(1, cf.block_on(function() return 1 end))
  end)

  it("cf.run with stuck tasks reports them instead of hanging", function()
    local h = cf.spawn(function() cf.future(function() return cf.PENDING end):await() end)
    local ok, err = pcall(cf.run)
    assert.is_false(ok)
    assert.matches("run: deadlock: 1 task%(s%) are still pending", err)
    h:abort()
    cf.run()
  end)
end)
