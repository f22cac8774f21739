-- Tracing: cf.on_event, cf.warn_slow_polls and CFUTURE_TRACE (Chrome trace events).
local cf = require "cfuture"
local support = require "support"

local function busy(ms)
  local t = os.clock()
  while (os.clock() - t) * 1000 < ms do end
end

describe("cf.on_event", function()
  after_each(function() cf.on_event(nil) end)

  it("reports a task's life in order: spawn, polls, wakes, completion", function()
    local log = {}
    cf.on_event(function(ev, id, name, t, dur)
      if name == "sleeper" then
        log[#log + 1] = ev
        assert.is_number(t)
        if ev == "poll_end" then assert.is_true(dur >= 0) end
      end
    end)
    cf.block_on(function()
      cf.spawn({ function()
        cf.sleep(5):await()
        cf.sleep(5):await()
      end, name = "sleeper" }):await()
    end)
    assert.are.same({ "spawn", "poll", "poll_end", "wake", "poll", "poll_end", "wake", "poll",
      "poll_end", "complete" }, log)
  end)

  it("reports cancellation, and stops when set to nil", function()
    local log = {}
    cf.on_event(function(ev, id) log[#log + 1] = ev end)
    cf.block_on(function()
      local h = cf.spawn(function() cf.sleep(10000):await() end)
      cf.sleep(1):await()
      h:abort()
      cf.yield_now():await()
    end)
    local seen = false
    for _, ev in ipairs(log) do seen = seen or ev == "cancel" end
    assert.is_true(seen)
    cf.on_event(nil)
    local n = #log
    cf.block_on(function() end)
    assert.are.equal(n, #log)
  end)

  it("removes a handler that fails, and the program goes on", function()
    cf.on_event(function() error("handler bug") end)
    assert.are.equal(7, cf.block_on(function() return 7 end))
    assert.are.equal(8, cf.block_on(function() return 8 end))
    assert.has_error(function() cf.on_event(42) end,
      "on_event: argument #1 must be a function or nil (got number)")
  end)
end)

describe("cf.warn_slow_polls", function()
  after_each(function() cf.warn_slow_polls(nil) end)

  it("reports a task that ran too long without yielding, with where it waits", function()
    local reports = {}
    cf.warn_slow_polls(40, function(r) reports[#reports + 1] = r end)
    cf.block_on(function()
      local h = cf.spawn({ function()
        busy(60)
        cf.sleep(20):await() -- suspended here when the report is made
      end, name = "cruncher" })
      cf.spawn(function() busy(1) end):await() -- quick: not reported
      h:await()
    end)
    assert.are.equal(1, #reports)
    assert.matches("^slow poll: task %d+ %(cruncher%) ran %d+ ms without yielding", reports[1])
    assert.matches("stack traceback:", reports[1])
    assert.matches("trace_spec.lua", reports[1])
  end)

  it("is off by default and refuses bad arguments", function()
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      cf.block_on(function() local t = os.clock() while os.clock() - t < 0.05 do end end)
      print("ok")
    ]])
    assert.are.equal(0, code)
    assert.are.equal("ok\n", out)
    assert.are.equal("", err)
    assert.has_error(function() cf.warn_slow_polls(-5) end,
      "warn_slow_polls: argument #1 must be a non-negative, finite number of milliseconds (got -5)")
  end)
end)

describe("CFUTURE_TRACE", function()
  it("writes a Chrome trace-event file that parses and nests", function()
    local path = os.tmpname()
    local _, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      cf.block_on(function()
        local a = cf.spawn({ function() cf.sleep(5):await() return 1 end, name = 'fetch "one"' })
        local b = cf.spawn(function() cf.sleep(1000):await() end)
        cf.sleep(10):await()
        b:abort()
        a:await()
      end)
    ]], "CFUTURE_TRACE=" .. support.shell_quote(path) .. " ")
    assert.are.equal(0, code, err)
    local f = assert(io.open(path))
    local events = support.json_decode(f:read("a"))
    f:close()
    os.remove(path)
    local depth, last, names, kinds = {}, {}, {}, {}
    for _, e in ipairs(events) do
      kinds[e.ph .. ":" .. e.name] = true
      if e.ph == "M" and e.name == "thread_name" then names[e.tid] = e.args.name end
      if e.ph == "B" or e.ph == "E" or e.ph == "i" then
        assert.is_true(e.ts >= (last[e.tid] or 0))
        last[e.tid] = e.ts
        depth[e.tid] = (depth[e.tid] or 0) + (e.ph == "B" and 1 or e.ph == "E" and -1 or 0)
        assert.is_true(depth[e.tid] == 0 or depth[e.tid] == 1)
      end
    end
    for _, d in pairs(depth) do assert.are.equal(0, d) end
    for _, k in ipairs({ "i:spawn", "B:poll", "E:poll", "i:wake", "i:complete", "i:cancel" }) do
      assert.is_true(kinds[k], k)
    end
    local named = false
    for _, n in pairs(names) do named = named or n == 'fetch "one"' end
    assert.is_true(named)
  end)
end)
