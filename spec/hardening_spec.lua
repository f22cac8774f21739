-- What no Lua program can do to the runtime: kill it with SIGPIPE, wedge
-- its scheduler with an error raised while it reports or runs things, or
-- reach freed memory after the runtime closed.
local cf = require "cfuture"
local support = require "support"

-- The child starts with SIGPIPE's default action whatever this process
-- inherited (a runner may ignore it, and an ignored signal is inherited).
local function run(code)
  local out, status, _, err = support.run_lua(code, "env --default-signal=PIPE ")
  return out, status, err
end

describe("SIGPIPE", function()
  it("does not kill a program whose child stops reading its input", function()
    -- head exits after one line; the rest of the 2 MB written to its stdin
    -- meets a closed pipe (EPIPE, not death by SIGPIPE: status 141)
    local out, status, err = run [[
      local cf = require "cfuture"
      local code, stdout = cf.block_on(cf.process.run("head", { "-1" },
        { input = ("x"):rep(99) .. "\n" .. ("y"):rep(2 * 2 ^ 20) }))
      io.write("exit ", code, " out ", stdout)
    ]]
    assert.are.equal(0, status, err)
    assert.are.equal("exit 0 out " .. ("x"):rep(99) .. "\n", out)
  end)

  it("returns EPIPE from a write to a pipe whose reader has gone", function()
    local out, status, err = run [[
      local cf = require "cfuture"
      cf.block_on(function()
        local p = assert(cf.process.spawn { "true", stdin = "pipe" })
        assert(p:wait():await() == 0)
        local ok, code
        for _ = 1, 20 do -- the first writes may still land in the pipe's buffer
          local _, msg
          ok, msg, code = p.stdin:write(("z"):rep(65536)):await()
          if not ok then break end
        end
        io.write(tostring(ok), " ", tostring(code))
      end)
    ]]
    assert.are.equal(0, status, err)
    assert.are.equal("nil EPIPE", out)
  end)
end)

describe("the scheduler", function()
  it("survives an unobserved error whose __tostring raises, and stays usable", function()
    local out, status, err = run [[
      local cf = require "cfuture"
      local bad = setmetatable({}, { __tostring = function() error("tostring boom") end })
      cf.spawn(function() cf.sleep(1):await(); error(bad) end)
      collectgarbage(); collectgarbage() -- nobody holds the handle
      print(pcall(cf.block_on, function() cf.sleep(20):await(); return "first" end))
      print(pcall(cf.block_on, function() return "second" end))
      cf.spawn(function() cf.sleep(1) end)
      print(pcall(cf.run))
    ]]
    assert.are.equal(0, status, err)
    assert.are.equal("true\tfirst\ntrue\tsecond\ntrue\n", out)
    assert.matches("a table value whose __tostring raised: [^\n]*tostring boom", err)
  end)

  it("survives an on_error handler that raises an error whose __tostring raises", function()
    local out, status, err = run [[
      local cf = require "cfuture"
      cf.on_error(function()
        error(setmetatable({}, { __tostring = function() error("again") end }))
      end)
      local h = cf.spawn(function() error("task failed") end)
      h = nil
      collectgarbage(); collectgarbage()
      print(pcall(cf.block_on, function() cf.sleep(10):await(); return "after" end))
    ]]
    assert.are.equal(0, status, err)
    assert.are.equal("true\tafter\n", out)
    assert.matches("error in the on_error handler", err)
    assert.matches("task failed", err)
  end)
end)

describe("a closed runtime", function()
  -- A finaliser of an object made before require "cfuture" runs at
  -- lua_close after the runtime's own: every function and method it calls
  -- must raise "the cfuture runtime is closed" and touch no freed memory
  -- (the ASan and valgrind runs of this spec check the second part).
  local program = [[
    local captured = {}
    local function finaliser()
      local bad, n = {}, 0
      for _, c in ipairs(captured) do
        n = n + 1
        local ok, err = pcall(c.fn, (table.unpack or unpack)(c.args))
        -- a finaliser may do nothing once the runtime closed
        if c.name:match(":__gc$") and ok and err == nil then ok, err = false, "the cfuture runtime is closed" end
        if ok or not tostring(err):find("the cfuture runtime is closed", 1, true) then
          bad[#bad + 1] = c.name .. " -> " .. tostring(ok) .. " " .. tostring(err)
        end
      end
      io.stdout:write("checked ", n, "\n", table.concat(bad, "\n"))
      io.stdout:flush()
    end
    local sentinel
    if newproxy then -- LuaJIT: tables have no __gc
      sentinel = newproxy(true)
      getmetatable(sentinel).__gc = finaliser
    else
      sentinel = setmetatable({}, { __gc = finaliser })
    end
    _G.sentinel = sentinel

    local cf = require "cfuture"
    local seen = {}
    local function walk(t, path)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        if type(k) == "string" and not k:match("^_") then
          if type(v) == "function" then
            captured[#captured + 1] = { name = path .. "." .. k, fn = v, args = { 1, 2, 3 } }
          elseif type(v) == "table" then
            walk(v, path .. "." .. k)
          end
        end
      end
    end
    walk(cf, "cf")
    -- objects of every kind, and their methods called on them
    local objects = cf.block_on(function()
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local c = assert(cf.net.connect("127.0.0.1", port):await())
      local s = assert(l:accept():await())
      local path = os.tmpname()
      local f = assert(cf.fs.open(path, "w"):await())
      os.remove(path)
      local p = assert(cf.process.spawn { "sleep", "5" })
      local h = cf.spawn(function() return 1 end)
      h:await()
      return {
        listener = l, client = c, server = s, file = f, process = p, handle = h,
        channel = cf.channel(4), sleep = cf.sleep(10), interval = cf.interval(10),
        semaphore = cf.semaphore(1), mutex = cf.mutex(), notify = cf.notify(),
        oneshot = cf.oneshot(), udp = assert(cf.net.udp()),
      }
    end)
    for kind, obj in pairs(objects) do
      local mt = getmetatable(obj)
      local index = type(mt) == "table" and mt.__index
      if type(index) == "table" then
        for name, fn in pairs(index) do
          if type(fn) == "function" then
            captured[#captured + 1] = { name = kind .. ":" .. name, fn = fn, args = { obj, 1 } }
          end
        end
      end
    end
    _G.objects = objects
  ]]

  it("raises the same clear error from every function and method", function()
    local out, status, err = run(program)
    assert.are.equal(0, status, err)
    local n, bad = out:match("^checked (%d+)\n(.*)$")
    assert.truthy(n, out .. err)
    assert.is_true(tonumber(n) > 150, out)
    assert.are.equal("", bad)
    assert.not_matches("AddressSanitizer", err)
  end)
end)

describe("functions written in Lua", function()
  it("name themselves and the argument when self or an argument is wrong", function()
    local iv = cf.interval(10)
    local cases = {
      { iv.tick, { "x" }, "interval:tick: argument #1 must be an interval %(call it with a colon; got string%)" },
      { iv.reset, {}, "interval:reset: argument #1 must be an interval %(call it with a colon; got nil%)" },
      { cf.fs.File.lines, { io.stdout }, "file:lines: argument #1 must be a file %(call it with a colon; got userdata%)" },
      { cf.net.Listener.incoming, { iv }, "listener:incoming: argument #1 must be a listener %(call it with a colon; got table%)" },
      { cf.test.run, { 42 }, "test.run: argument #1 must be a future or a function %(got number%)" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1], (table.unpack or unpack)(c[2]))
      assert.is_false(ok)
      assert.matches(c[3], err)
    end
    local ok, err = pcall(cf.block_on, function() return cf.test.run(function() end) end)
    assert.is_false(ok)
    assert.matches("test.run: called inside a task", err)
  end)
end)

describe("cf.dump_on_signal", function()
  it("refuses signals a watcher cannot catch, keeping the watcher it had", function()
    for _, sig in ipairs({ 0, "SIGKILL", "SIGSEGV" }) do
      local ok, err = pcall(cf.dump_on_signal, sig)
      assert.is_false(ok)
      assert.matches("dump_on_signal: .* cannot be watched", err)
    end
    cf.dump_on_signal("SIGUSR2")
    assert.is_false(pcall(cf.dump_on_signal, "SIGKILL"))
    cf.dump_on_signal(nil)
  end)
end)
