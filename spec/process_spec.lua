-- cf.process and cf.signal: real children, real pipes, real signals.
local cf = require "cfuture"
local support = require "support"
local process = cf.process

-- Running (a zombie whose parent died first waits for init: it is gone).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("%) (%S)") ~= "Z"
end

-- Count the processes whose /proc/<pid>/stat satisfies pred(state, ppid,
-- pgrp). Awaits: call it inside a task.
local function count_procs(pred)
  local n = 0
  for name in cf.fs.readdir("/proc"):await() do
    local stat = name:match("^%d+$") and cf.fs.read_file("/proc/" .. name .. "/stat"):await()
    if stat then
      local state, ppid, pgrp = stat:match("%) (%S) (%d+) (%d+)")
      if state and pred(state, tonumber(ppid), tonumber(pgrp)) then n = n + 1 end
    end
  end
  return n
end

-- Live processes in process group pgid (inside a task).
local function group_members(pgid)
  return count_procs(function(state, _, pgrp) return pgrp == pgid and state ~= "Z" end)
end

-- Children of this process that exited and were never reaped.
local function zombies()
  local me = cf.process.pid()
  return cf.block_on(function()
    return count_procs(function(state, ppid) return ppid == me and state == "Z" end)
  end)
end

-- Run a Lua program in a subprocess with a time limit (a regression must not
-- kill or hang the suite); returns stdout, exit status, stderr.
local function run_limited(code, seconds)
  local out, status, _, err = support.run_lua(code,
    ("timeout -s KILL %d env "):format(math.ceil((seconds or 20) * support.slow)))
  return out, status, err
end

describe("cf.process.spawn", function()
  it("reports exit codes and keeps stdout and stderr apart", function()
    cf.block_on(function()
      local p = assert(process.spawn { "sh", "-c", "echo out; echo err >&2; exit 3",
        stdout = "pipe", stderr = "pipe" })
      assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
      assert.is_nil(p.stdin)
      local out, err = cf.join(p.stdout:read_all(), p.stderr:read_all()):await()
      assert.are.equal("out\n", out)
      assert.are.equal("err\n", err)
      assert.are.same({ 3 }, { p:wait():await() })
      assert.are.same({ 3 }, { p:status() })
      assert.are.same({ 0 }, { process.spawn { "true" }:wait():await() })
    end)
  end)

  it("reports a missing program as nil, message, ENOENT", function()
    local p, msg, code = process.spawn { "cfuture-no-such-program", "x" }
    assert.is_nil(p)
    assert.are.equal("ENOENT", code)
    assert.are.equal("process.spawn cfuture-no-such-program: no such file or directory", msg)
    assert.are.same({ nil, "process.spawn cfuture-no-such-program: no such file or directory", "ENOENT" },
      { cf.block_on(process.run("cfuture-no-such-program")) })
  end)

  it("reports signals by name with code 128 + signal", function()
    cf.block_on(function()
      local p = assert(process.spawn { "sleep", "10" })
      assert.is_nil(p:status())
      assert.is_true(p:kill())
      assert.are.same({ 143, "SIGTERM" }, { p:wait():await() })
      assert.are.same({ nil, "process:kill: no such process", "ESRCH" }, { p:kill() })
      local q = assert(process.spawn { "sleep", "10" })
      assert.is_true(q:kill("KILL"))
      assert.are.same({ 137, "SIGKILL" }, { q:wait():await() })
      local r = assert(process.spawn { "sh", "-c", "kill -USR2 $$" })
      assert.are.same({ 128 + cf.signal.number("SIGUSR2"), "SIGUSR2" }, { r:wait():await() })
    end)
  end)

  it("round-trips 10 MiB through cat without deadlock", function()
    local data = {}
    for i = 1, 10 * 1024 do data[i] = ("%07d"):format(i):rep(128):sub(1, 1024) end
    data = table.concat(data)
    cf.block_on(function()
      local p = assert(process.spawn { "cat", stdin = "pipe", stdout = "pipe" })
      local writer = cf.spawn(function()
        assert.is_true(p.stdin:write(data):await())
        p.stdin:close()
      end)
      local got = p.stdout:read_all():await()
      writer:await()
      assert.are.equal(#data, #got)
      assert.is_true(got == data)
      assert.are.equal(0, p:wait():await())
    end)
  end)

  it("kills the child of a run that times out #lua54", function()
    cf.block_on(function()
      local t0 = cf.now()
      local pidfile = os.tmpname()
      local run = process.run("sh", { "-c", "sleep 10 & echo $$ $! > " .. pidfile .. "; wait" })
      assert.are.same({ nil, "timeout" }, { cf.timeout(300, run):await() })
      assert.is_true(cf.now() - t0 < 2000 * support.slow)
      local shell, sleeper = cf.fs.read_file(pidfile):await():match("(%d+) (%d+)")
      os.remove(pidfile)
      cf.sleep(100):await()
      assert.is_false(alive(shell))
      assert.is_false(alive(sleeper)) -- the whole group was killed
      assert.are.equal(0, group_members(tonumber(shell)))
      -- the same with a spawned child and <close>
      local pid
      local task = cf.spawn(function()
        local p = assert(process.spawn { "sleep", "10" })
        pid = p.pid
        local _ <close> = setmetatable({}, { __close = function() p:kill("SIGKILL") end })
        p:wait():await()
      end)
      cf.sleep(50):await()
      assert.is_true(alive(pid))
      task:abort()
      cf.sleep(200):await()
      assert.is_false(alive(pid))
    end)
  end)

  it("passes args verbatim, env (merged or cleared) and cwd", function()
    cf.block_on(function()
      local code, out = process.run("sh", { "-c", 'printf "%s|" "$@"', "sh", "a b", "$HOME", "" }):await()
      assert.are.equal(0, code)
      assert.are.equal("a b|$HOME||", out)
      _, out = process.run("sh", { "-c", 'echo "$CF_X-$HOME"' }, { env = { CF_X = "1" } }):await()
      assert.are.equal("1-" .. os.getenv("HOME") .. "\n", out)
      _, out = process.run("/bin/sh", { "-c", 'echo "$CF_X-${HOME-unset}"' },
        { env = { CF_X = 2 }, clear_env = true }):await()
      assert.are.equal("2-unset\n", out)
      _, out = process.run("sh", { "-c", 'echo "${HOME-gone}"' }, { env = { HOME = false } }):await()
      assert.are.equal("gone\n", out)
      _, out = process.run("pwd", nil, { cwd = "/usr/share" }):await()
      assert.are.equal("/usr/share\n", out)
      local c, o = process.run("cat", {}, { input = "fed\n" }):await()
      assert.are.same({ 0, "fed\n" }, { c, o })
      assert.are.same({ 0, "", "" }, { process.run("cat"):await() }) -- stdin is /dev/null
    end)
  end)

  it("reaps 200 concurrent children with no zombies left", function()
    cf.block_on(function()
      local waits = {}
      for i = 1, 200 do
        local p = assert(process.spawn { "sh", "-c", "exit " .. (i % 7) })
        waits[i] = p:wait()
      end
      local codes = cf.join_all(waits):await()
      for i = 1, 200 do assert.are.equal(i % 7, codes[i]) end
      -- children nobody waits for are reaped too
      for _ = 1, 20 do process.spawn { "true" } end
      support.full_gc()
      cf.sleep(300):await()
    end)
    assert.are.equal(0, zombies())
  end)

  it("streams lines, exact counts and chunks; a cancelled read loses nothing", function()
    cf.block_on(function()
      local p = assert(process.spawn { "sh", "-c", "printf 'one\\ntwo\\r\\n'; sleep 0.2; printf 'three\\nABCDEFG'",
        stdout = "pipe" })
      local out = p.stdout
      assert.are.equal("one", out:read_line():await())
      -- 'three' arrives 200 ms later: the select gives up first, and takes nothing
      assert.are.equal("two", out:read_line():await())
      local idx = cf.select(cf.sleep(50), out:read_line()):await()
      assert.are.equal(1, idx)
      assert.are.equal("three", out:read_line():await())
      assert.are.equal("ABC", out:read_exact(3):await())
      assert.are.equal("DE", out:read(2):await())
      assert.are.equal("FG", out:read_exact(10):await()) -- fewer only at the end
      assert.is_nil(out:read():await())
      assert.is_nil(out:read_line():await())
      assert.are.equal("", out:read_all():await())
      p:wait():await()
    end)
  end)

  it("ends a pending read with ECANCELED when the stream is closed, and raises after", function()
    cf.block_on(function()
      local p = assert(process.spawn { "sleep", "5", stdout = "pipe" })
      local out = p.stdout
      local reader = cf.spawn(function() return out:read_line():await() end)
      cf.sleep(20):await()
      out:close()
      assert.are.same({ nil, "stream:read: operation canceled", "ECANCELED" }, { reader:await() })
      assert.has_error(function() out:read() end, "stream:read: the stream is closed")
      assert.is_true(out:is_closed())
      p:kill()
      p:wait():await()
    end)
  end)

  it("raises on misuse, naming the function and argument", function()
    assert.has_error(function() process.spawn("ls") end,
      "process.spawn: argument #1 must be a table {cmd, args...} (got string)")
    assert.has_error(function() process.spawn {} end,
      "process.spawn: argument #1 must start with the program to run")
    assert.has_error(function() process.spawn { "ls", stdout = "file" } end,
      "process.spawn: option 'stdout' must be \"pipe\", \"inherit\" or \"null\" (got file)")
    assert.has_error(function() process.spawn { "ls", {} } end,
      "process.spawn: argument #1: element 2 must be a string (got table)")
    assert.has_error(function() process.spawn { "ls", env = { X = {} } } end,
      "process.spawn: option 'env' must map names to strings (or false to remove)")
    local p = assert(process.spawn { "true" })
    assert.has_error(function() p:kill("SIGNOPE") end,
      "process:kill: argument #2 must be a signal name such as \"SIGTERM\" or a number (got SIGNOPE)")
    assert.has_error(function() p.wait(1) end,
      "process:wait: argument #1 must be a process (call it with a colon; got number)")
    cf.block_on(p:wait())
  end)
end)

describe("cf.signal", function()
  it("wakes a task when the process receives a real signal", function()
    cf.block_on(function()
      local pid = cf.process.pid()
      local name, count = cf.join(cf.signal.wait("SIGUSR1"), function()
        cf.sleep(30):await()
        assert.are.equal(0, process.spawn { "kill", "-USR1", pid }:wait():await())
      end):await()
      assert.are.equal("SIGUSR1", name)
      assert.is_nil(count) -- join keeps the first result only
    end)
  end)

  it("counts repeated deliveries on a listener, losing none between receives", function()
    cf.block_on(function()
      local pid = cf.process.pid()
      local l <close> = cf.signal.listen("USR1")
      local got = 0
      for _ = 1, 3 do
        process.spawn { "kill", "-USR1", pid }:wait():await()
        cf.sleep(20):await()
      end
      while got < 3 do
        local name, n = l:recv():await()
        assert.are.equal("SIGUSR1", name)
        got = got + n
      end
      assert.are.equal(3, got)
      assert.are.same({ nil, "timeout" }, { cf.timeout(50, l:recv()):await() })
    end)
  end)

  it("maps names and numbers and refuses unknown signals", function()
    assert.are.equal(15, cf.signal.number("SIGTERM"))
    assert.are.equal(15, cf.signal.number("TERM"))
    assert.are.equal("SIGINT", cf.signal.name(2))
    assert.has_error(function() cf.signal.wait("SIGFOO") end,
      "signal.wait: argument #1 must be a signal name such as \"SIGTERM\" or a number (got SIGFOO)")
  end)

  it("shuts a program down gracefully on SIGINT (examples/shutdown.lua) #lua54", function()
    local out, code = support.run_lua([[
      package.path = "examples/?.lua;" .. package.path
      arg = { [0] = "examples/shutdown.lua", "--self-interrupt" }
      dofile "examples/shutdown.lua"
    ]])
    assert.are.equal(0, code)
    assert.matches("worker 1 cleaned up", out)
    assert.matches("worker 2 cleaned up", out)
    assert.matches("shut down cleanly", out)
  end)
end)

describe("process groups", function()
  it("kill on a group leader stops the children its shell started", function()
    cf.block_on(function()
      local p = assert(process.spawn { "sh", "-c", "sleep 30 & echo $!; wait", group = true, stdout = "pipe" })
      local child = assert(tonumber(p.stdout:read_line():await()))
      assert.is_true(alive(child))
      assert.is_true(p:kill())
      assert.are.same({ 143, "SIGTERM" }, { p:wait():await() })
      cf.sleep(100):await()
      assert.is_false(alive(child))
    end)
  end)
end)

describe("process hardening", function()
  it("passes numbers in argv and env as their string form, alive until exec", function()
    -- In a small program whose collector runs all the time, a converted
    -- string that nothing anchors is freed (and its memory reused by the
    -- environment's strings) before the child is started. The expected text
    -- is one string: a string equal to an argument's form must not stay
    -- alive (the converted copy would be that same interned string).
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local unpack = table.unpack or unpack
      local env = {}
      for i = 1, 500 do env["CF_PAD" .. i] = ("v"):rep(30) end
      env.CF_NUM = 42
      local args, want = {}, "42"
      for i = 1, 50 do
        args[i] = 1000 + i
        want = want .. " " .. (1000 + i)
      end
      args[51], want = 2.5, want .. " 2.5\n"
      collectgarbage("collect")
      collectgarbage("setpause", 0)
      collectgarbage("setstepmul", 1000)
      cf.block_on(function()
        for _ = 1, 5 do
          local code, out = cf.process.run("sh", { "-c", 'echo "$CF_NUM" "$@"', "sh", unpack(args) },
            { env = env }):await()
          assert(code == 0 and out == want, out)
        end
      end)
      print("ok")
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("ok\n", out)
  end)

  it("leaves the caller's table as it was (numbers stay numbers)", function()
    local spec = { "true", 1, 2.5 }
    local p = assert(process.spawn(spec))
    assert.are.equal("number", type(spec[2]))
    assert.are.equal("number", type(spec[3]))
    cf.block_on(p:wait())
  end)

  it("refuses NUL bytes in arguments, env and cwd instead of cutting the string", function()
    assert.has_error(function() process.spawn { "echo", "a\0b" } end,
      "process.spawn: argument #1: element 2 must not contain a NUL byte")
    assert.has_error(function() process.spawn { "echo\0x" } end,
      "process.spawn: argument #1: element 1 must not contain a NUL byte")
    assert.has_error(function() process.spawn { "echo", env = { ["A\0B"] = "1" } } end,
      "process.spawn: option 'env' name must not contain a NUL byte")
    assert.has_error(function() process.spawn { "echo", env = { A = "1\0 2" } } end,
      "process.spawn: option 'env' value must not contain a NUL byte")
    assert.has_error(function() process.spawn { "echo", env = { ["A=B"] = "1" } } end,
      "process.spawn: option 'env': name 'A=B' must be non-empty and without '='")
    assert.has_error(function() process.spawn { "echo", env = { [""] = "1" } } end,
      "process.spawn: option 'env': name '' must be non-empty and without '='")
    assert.has_error(function() process.spawn { "pwd", cwd = "/tmp\0/nowhere" } end,
      "process.spawn: option 'cwd' must not contain a NUL byte")
    assert.has_error(function() process.spawn { "pwd", cwd = 1 } end,
      "process.spawn: option 'cwd' must be a path string (got number)")
    assert.has_error(function() process.spawn { "cat", stdin = "pipe\0x" } end,
      "process.spawn: option 'stdin' must be \"pipe\", \"inherit\" or \"null\" (got pipe)")
    assert.has_error(function() process.spawn { "cat", stdout = 1 } end,
      "process.spawn: option 'stdout' must be \"pipe\", \"inherit\" or \"null\" (got number)")
    local ok, err = pcall(cf.block_on, process.run("echo", { "a\0b" }))
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("process.spawn: argument #1: element 2 must not contain a NUL byte", 1,
      true), err)
    assert.are.equal(0, zombies()) -- nothing was started
  end)

  it("checks the self of every metamethod", function()
    local p = assert(process.spawn { "true" })
    local mt = getmetatable(p)
    assert.has_error(function() mt.__index(io.stdout, "pid") end,
      "process: __index: argument #1 must be a process (got userdata)")
    assert.has_error(function() mt.__index({}, "pid") end,
      "process: __index: argument #1 must be a process (got table)")
    assert.has_error(function() mt.__index() end,
      "process: __index: argument #1 must be a process (got no value)")
    assert.has_error(function() mt.__tostring(io.stdout) end,
      "process: __tostring: argument #1 must be a process (got userdata)")
    assert.has_error(function() mt.__tostring() end,
      "process: __tostring: argument #1 must be a process (got no value)")
    mt.__gc({}) -- a foreign value is left alone
    mt.__gc(io.stdout)
    mt.__gc()
    assert.is_truthy(io.stdout:write(""))
    assert.matches("^cfuture%.Process%(pid %d+, %a+%)$", tostring(p))
    assert.are.same({ 0 }, { cf.block_on(p:wait()) })
    mt.__gc(p) -- finalised early: the object is unusable, never freed memory
    assert.has_error(function() p:wait() end,
      "process:wait: argument #1 must be a process (call it with a colon; got userdata)")
    assert.are.equal("cfuture.Process(?)", tostring(p))
    mt.__gc(p)
  end)

  it("raises on wrong arguments to every method and on huge or NaN signals", function()
    local p = assert(process.spawn { "sleep", "10" })
    for _, m in ipairs { "wait", "kill", "status" } do
      local msg = "process:" .. m .. ": argument #1 must be a process (call it with a colon; got "
      assert.has_error(function() p[m]() end, msg .. "no value)")
      assert.has_error(function() p[m]({}) end, msg .. "table)")
      assert.has_error(function() p[m](io.stdout) end, msg .. "userdata)")
    end
    for _, v in ipairs { 2 ^ 32 + 15, -1, 65, 1.5, 0 / 0, math.huge, -math.huge } do
      assert.has_error(function() p:kill(v) end,
        ("process:kill: argument #2 must be a signal number from 0 to 64 (got %s)"):format(tostring(v)))
    end
    assert.has_error(function() p:kill({}) end,
      "process:kill: argument #2 must be a signal name such as \"SIGTERM\" or a number (got table)")
    assert.has_error(function() p:kill("TERM\0KILL") end,
      "process:kill: argument #2 must not contain a NUL byte")
    assert.is_nil(p:status())
    assert.is_true(p:kill(0)) -- 0: is it there?
    assert.is_true(p:kill(15.0))
    assert.are.same({ 143, "SIGTERM" }, { cf.block_on(p:wait()) })
    assert.has_error(function() process.spawn() end,
      "process.spawn: argument #1 must be a table {cmd, args...} (got no value)")
    assert.has_error(function() process.spawn { 1 } end,
      "process.spawn: argument #1 must start with the program to run")
    assert.has_error(function() process.spawn { "echo", env = 1 } end,
      "process.spawn: option 'env' must be a table of names to values (got number)")
    -- an argument list the kernel refuses is an error result, not a crash
    -- (under valgrind, whose execve differs, the child may start and fail)
    local q, msg, code = process.spawn { "true", ("x"):rep(4 * 1024 * 1024) }
    if q then
      cf.block_on(q:wait())
    else
      assert.are.equal("E2BIG", code)
      assert.matches("^process.spawn true: ", msg)
    end
  end)

  -- On a build without the SIGPIPE change these programs die of SIGPIPE
  -- (exit status 141): each runs in a subprocess so the suite survives.
  it("returns EPIPE from writes to the stdin of a child that exited", function()
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      cf.block_on(function()
        local p = assert(cf.process.spawn { "true", stdin = "pipe" })
        assert(p:wait():await() == 0)
        print(p.stdin:write("hello"):await())
        print(p.stdin:write(("x"):rep(1024 * 1024)):await())
        -- a write in flight (queued beyond the pipe's buffer) when the child goes
        local q = assert(cf.process.spawn { "sh", "-c", "head -c 10 >/dev/null", stdin = "pipe" })
        print(q.stdin:write(("y"):rep(4 * 1024 * 1024)):await())
        print(q:wait():await())
      end)
      print("alive")
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal(table.concat({
      "nil\tstream:write: broken pipe\tEPIPE",
      "nil\tstream:write: broken pipe\tEPIPE",
      "nil\tstream:write: broken pipe\tEPIPE",
      "0",
      "alive", "" }, "\n"), out)
  end)

  it("run() feeds input to a child that stops reading, and returns its result", function()
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local input = ("line\n"):rep(400000) -- 2 MB
      print(cf.block_on(cf.process.run("head", { "-1" }, { input = input })))
      print(cf.block_on(cf.process.run("sh", { "-c", "exit 3" }, { input = input })))
      print("alive")
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("0\tline\n\t\tnil\n3\t\t\tnil\nalive\n", out)
  end)
end)

describe("process handles and deadlock detection", function()
  it("a process whose child exited does not hide a deadlock", function()
    local out, status, err = run_limited([[
      local cf = require "cfuture"
      local p = assert(cf.process.spawn { "true" })
      assert(cf.block_on(p:wait()) == 0)
      local ch = cf.channel()
      print(pcall(cf.block_on, function() return ch:recv():await() end))
      print(p:status())
    ]])
    assert.are.equal(0, status, err)
    assert.matches("^false\t[^\n]*block_on: deadlock: the future is still pending", out)
    assert.matches("\n0\n$", out)
  end)
end)
