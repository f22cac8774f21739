-- cf.signal under bad input, closed listeners, the closed runtime, and the
-- loop's liveness (an idle listener must not hide a deadlock).
local cf = require "cfuture"
local support = require "support"

-- A Lua program in a subprocess with a time limit (a regression must not
-- hang the suite); returns stdout, exit status, stderr.
local function run_limited(code, seconds)
  local out, status, _, err = support.run_lua(code,
    ("timeout -s KILL %d env "):format(math.ceil((seconds or 20) * support.slow)))
  return out, status, err
end

local DEADLOCK = "block_on: deadlock: the future is still pending but nothing can wake it"

describe("cf.signal arguments", function()
  it("refuses out-of-range, fractional, NaN and infinite signal numbers (no wrap at 2^32)", function()
    for _, v in ipairs { 2 ^ 32 + 15, 2 ^ 63, -2 ^ 63, -1, 0, 65, 15.5, 0 / 0, math.huge } do
      assert.has_error(function() cf.signal.name(v) end,
        ("signal.name: argument #1 must be a signal number from 1 to 64 (got %s)"):format(tostring(v)))
    end
    for _, fname in ipairs { "wait", "listen", "number" } do
      for _, v in ipairs { 2 ^ 32 + 15, -1, 65, 15.5, 0 / 0, -math.huge } do
        assert.has_error(function() cf.signal[fname](v) end,
          ("signal.%s: argument #1 must be a signal number from 0 to 64 (got %s)"):format(fname, tostring(v)))
      end
    end
    assert.has_error(function() cf.signal.name() end,
      "signal.name: argument #1 must be a signal number from 1 to 64 (got no value)")
    assert.has_error(function() cf.signal.name("15") end,
      "signal.name: argument #1 must be a signal number from 1 to 64 (got 15)")
    assert.has_error(function() cf.signal.number() end,
      "signal.number: argument #1 must be a signal name such as \"SIGTERM\" or a number (got no value)")
    assert.has_error(function() cf.signal.number({}) end,
      "signal.number: argument #1 must be a signal name such as \"SIGTERM\" or a number (got table)")
    assert.has_error(function() cf.signal.number("SIGTERM\0x") end,
      "signal.number: argument #1 must not contain a NUL byte")
    assert.has_error(function() cf.signal.listen("TERM\0") end,
      "signal.listen: argument #1 must not contain a NUL byte")
    assert.are.equal("SIGTERM", cf.signal.name(15))
    assert.are.equal("SIGTERM", cf.signal.name(15.0))
    assert.are.equal(15, cf.signal.number(15.0))
    assert.is_nil(cf.signal.name(40)) -- a real-time signal has no name
  end)

  it("refuses signals a watcher cannot or must not catch", function()
    assert.has_error(function() cf.signal.wait(0) end,
      "signal.wait: signal 0 cannot be watched (it is not a signal)")
    assert.has_error(function() cf.signal.listen("KILL") end,
      "signal.listen: SIGKILL cannot be watched (it cannot be caught)")
    assert.has_error(function() cf.signal.wait("SIGSTOP") end,
      "signal.wait: SIGSTOP cannot be watched (it cannot be caught)")
    for _, name in ipairs { "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL" } do
      assert.has_error(function() cf.signal.listen(name) end,
        "signal.listen: " .. name .. " cannot be watched (it reports a fault that a handler cannot recover from)")
    end
  end)

  it("names a real-time signal by its number when it arrives", function()
    cf.block_on(function()
      local pid = cf.process.pid()
      local l = cf.signal.listen(40)
      assert.are.equal("cfuture.SignalListener(40)", tostring(l))
      assert.are.equal(0, cf.process.spawn { "kill", "-40", pid }:wait():await())
      assert.are.same({ 40, 1 }, { l:recv():await() })
      l:close()
    end)
  end)
end)

describe("signal listeners", function()
  it("check the self of every method and metamethod", function()
    local l = cf.signal.listen("USR2")
    local mt = getmetatable(l)
    for _, m in ipairs { "recv", "close" } do
      assert.has_error(function() l[m]() end, "listener:" .. m ..
        ": argument #1 must be a signal listener " .. (m == "recv" and "(call it with a colon; " or "(") .. "got no value)")
      assert.has_error(function() l[m](io.stdout) end, "listener:" .. m ..
        ": argument #1 must be a signal listener " .. (m == "recv" and "(call it with a colon; " or "(") .. "got userdata)")
    end
    assert.has_error(function() mt.__close({}) end,
      "listener:__close: argument #1 must be a signal listener (got table)")
    assert.has_error(function() mt.__tostring(io.stdout) end,
      "listener:__tostring: argument #1 must be a signal listener (got userdata)")
    mt.__gc(io.stdout) -- a foreign value is left alone
    mt.__gc({})
    mt.__gc()
    assert.are.equal("cfuture.SignalListener(SIGUSR2)", tostring(l))
    mt.__gc(l)
    assert.are.equal("cfuture.SignalListener(closed)", tostring(l))
    assert.has_error(function() l:recv() end, "listener:recv: the listener is closed")
  end)

  it("close() ends a pending recv with ECANCELED; later calls raise; close twice is fine", function()
    cf.block_on(function()
      local l = cf.signal.listen("USR2")
      local waiter = cf.spawn(function() return l:recv():await() end)
      cf.sleep(20):await()
      l:close()
      -- bounded: before the fix the receive held the watcher open and waited on
      assert.are.same({ nil, "SIGUSR2: operation canceled", "ECANCELED" },
        { cf.timeout(2000 * support.slow, waiter):await() })
      l:close()
      assert.has_error(function() l:recv() end, "listener:recv: the listener is closed")
      -- a receive made before the close and first awaited after it
      local l2 = cf.signal.listen("USR2")
      local r = l2:recv()
      l2:close()
      assert.are.same({ nil, "SIGUSR2: operation canceled", "ECANCELED" },
        { cf.timeout(2000 * support.slow, r):await() })
    end)
  end)

  it("listen, close, listen again: SIGPIPE stays ignored after a SIGPIPE listener closes", function()
    -- libuv puts a signal's default action back when its last watcher stops;
    -- for SIGPIPE the default would kill the writer below (exit 141)
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local l = cf.signal.listen("SIGPIPE")
      l:close()
      cf.block_on(cf.timeout(10, cf.signal.wait("SIGPIPE")))
      cf.block_on(function()
        local p = assert(cf.process.spawn { "true", stdin = "pipe" })
        p:wait():await()
        print(p.stdin:write("x"):await())
      end)
      print("alive")
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("nil\tstream:write: broken pipe\tEPIPE\nalive\n", out)
  end)
end)

describe("signal watchers and deadlock detection", function()
  -- Each case runs in a subprocess that must end within the limit: before
  -- the fix the idle watcher kept the loop alive and block_on hung.
  local function expect_deadlock(setup)
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local ch = cf.channel()
      ]] .. setup .. [[

      print(pcall(cf.block_on, function() return ch:recv():await() end))
    ]])
    assert.are.equal(0, status, err)
    assert.is_truthy(out:find("false\t", 1, true) == 1, out)
    assert.is_truthy(out:find(DEADLOCK, 1, true), out)
  end

  it("an idle listener does not keep block_on waiting", function()
    expect_deadlock [[local l = cf.signal.listen("USR1")]]
  end)

  it("an unreachable listener not yet collected does not either (no GC timing)", function()
    expect_deadlock [[collectgarbage("stop"); cf.signal.listen("USR1"); cf.signal.listen("USR2")]]
  end)

  it("nor a listener whose receive timed out, nor a wait that was cancelled", function()
    expect_deadlock [[
      collectgarbage("stop")
      local l = cf.signal.listen("USR1")
      assert(select(2, cf.block_on(cf.timeout(10, l:recv()))) == "timeout")
      assert(select(2, cf.block_on(cf.timeout(10, cf.signal.wait("USR2")))) == "timeout")
      local r = l:recv()
      assert(cf.block_on(cf.select(r, cf.sleep(10))) == 2)
    ]]
  end)

  it("nor one whose signal came and was received", function()
    expect_deadlock [[
      local l = cf.signal.listen("USR1")
      assert(cf.block_on(function()
        local pid = cf.process.pid()
        cf.process.spawn { "kill", "-USR1", pid }:wait():await()
        return l:recv():await()
      end) == "SIGUSR1")
    ]]
  end)

  it("a pending receive keeps the loop alive until the signal comes", function()
    -- nothing but the listener can wake block_on: the signal comes from a
    -- grandchild whose parent exits at once
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local pid = cf.process.pid()
      local function later(sig)
        local p = assert(cf.process.spawn { "sh", "-c", "(sleep 0.3; kill -" .. sig .. " " .. pid .. ") &" })
        assert(cf.block_on(p:wait()) == 0)
      end
      local l = cf.signal.listen("USR1")
      later("USR1")
      print(cf.block_on(l:recv()))
      later("USR2")
      print(cf.block_on(cf.signal.wait("USR2")))
      later("USR1")
      print(cf.block_on(function() return cf.select(l:recv(), cf.channel():recv()):await() end))
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("SIGUSR1\t1\nSIGUSR2\t1\n1\tSIGUSR1\t1\n", out)
  end)
end)

describe("cf.signal and cf.process after the runtime closed", function()
  it("raise instead of touching freed memory #lua54", function()
    -- the table is made before require: its finaliser runs after the
    -- runtime's own, at lua_close
    local out, status, err = run_limited([[
      local keep = setmetatable({}, { __gc = function(t)
        local cf = t.cf
        local function try(f) local ok, e = pcall(f); print(ok, (tostring(e):gsub("^[^:]*:%d+: ", ""))) end
        try(function() return cf.process.spawn { "true" } end)
        try(function() return cf.process.pid() end)
        try(function() return t.p:wait() end)
        try(function() return t.p:kill() end)
        try(function() return t.p:status() end)
        try(function() return cf.signal.listen("USR1") end)
        try(function() return cf.signal.wait("USR1") end)
        try(function() return cf.signal.name(15) end)
        try(function() return cf.signal.number("TERM") end)
        try(function() return t.l:recv() end)
        try(function() return t.l:close() end)
        print(t.p.pid == t.pid, tostring(t.l))
        getmetatable(t.l).__close(t.l)
        getmetatable(t.p).__gc(t.p)
        print("done")
      end })
      local cf = require "cfuture"
      keep.cf = cf
      keep.p = assert(cf.process.spawn { "sleep", "5" })
      keep.pid = keep.p.pid
      keep.l = cf.signal.listen("USR1")
      keep.w = keep.l:recv()
      os.execute("kill " .. keep.pid)
    ]])
    assert.are.equal(0, status, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(13, #lines, out)
    for i = 1, 11 do
      assert.matches("^false\t.*the cfuture runtime is closed$", lines[i])
    end
    assert.are.equal("true\tcfuture.SignalListener(closed)", lines[12]) -- finalised already
    assert.are.equal("done", lines[13])
  end)
end)
