-- cf.net against hostile and vanishing peers, a program that only listens,
-- and bad arguments. Cases that could kill or hang the process (SIGPIPE,
-- a loop kept alive forever) run in a child interpreter, so that a
-- regression is a failed assertion and not a dead or stuck busted.
local cf = require "cfuture"
local support = require "support"
local net = cf.net

local function q(s) return support.shell_quote(s) end

-- Run `code` in a fresh interpreter started by cf.process (libuv gives the
-- child every signal's default action back, SIGPIPE included, whatever
-- this process ignores), at most `ms` milliseconds. Returns exit code,
-- stdout, stderr, signal (nil, "timeout" if it had to be stopped).
local function child(code, ms)
  local src = os.tmpname()
  local f = assert(io.open(src, "w"))
  f:write(code)
  f:close()
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s %s %s %s"):format(
    q(package.path), q(package.cpath), q(package.path), q(package.cpath),
    os.getenv("CFUTURE_LUA_WRAPPER") or "", support.lua, src)
  local r = { cf.block_on(cf.timeout((ms or 20000) * support.slow,
    cf.process.run("sh", { "-c", cmd }))) }
  os.remove(src)
  if r[1] == nil and r[2] == "timeout" then return nil, "", "the child was stopped: it ran too long" end
  return table.unpack(r, 1, 4)
end

-- What a child program starts with: the interpreter command line (for a
-- helper process of its own) and a check that SIGPIPE is not ignored
-- before cfuture is loaded and ignored after (so the spec tests the module,
-- not an inherited disposition).
local prelude = [[
local function sigpipe_ignored()
  local f = assert(io.open("/proc/self/status"))
  local mask = f:read("a"):match("SigIgn:%s*(%x+)")
  f:close()
  return math.floor(tonumber(mask:sub(-4), 16) / 4096) % 2 == 1 -- bit 13 - 1
end
local ignored_before = sigpipe_ignored()
local cf = require "cfuture"
print("sigpipe", ignored_before, sigpipe_ignored())
local function is_gone(code) return code == "EPIPE" or code == "ECONNRESET" end
]]

describe("writes to a peer that has gone", function()
  it("return nil, message, EPIPE/ECONNRESET and never kill the process", function()
    local code, out, err, sig = child(prelude .. [[
      local big = ("b"):rep(64 * 2 ^ 20)
      -- write until the write fails (the first ones may still be taken
      -- by the kernel before the peer's reset comes back)
      local function write_until_gone(c, chunk)
        for _ = 1, 400 do
          local ok, msg, code = c:write(chunk):await()
          if not ok then return msg, code end
          cf.sleep(5):await()
        end
        return "still writing"
      end
      cf.block_on(cf.scope(function(s)
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local function pair(server)
          local got = cf.spawn(function() return l:accept():await() end)
          local c = assert(cf.net.connect("127.0.0.1", port):await())
          local peer = assert(got:await())
          server(peer)
          return c
        end
        -- the peer closed (orderly): the second write meets its reset
        local c = pair(function(p) p:close() end)
        local msg, code = write_until_gone(c, "x")
        print("closed", is_gone(code), msg)
        c:close()
        -- the peer reset (SO_LINGER 0)
        c = pair(function(p) assert(p:reset()) end)
        msg, code = write_until_gone(c, "x")
        print("reset", is_gone(code), msg)
        c:close()
        -- the reader left with our bytes unread (its close resets)
        c = pair(function(p) s:spawn(function() cf.sleep(30):await() p:close() end) end)
        assert(c:write("unread"):await())
        msg, code = write_until_gone(c, "more")
        print("reader left", is_gone(code), msg)
        c:close()
        -- a large write (queued: the kernel takes only part) while the
        -- peer reads a little and resets
        c = pair(function(p)
          s:spawn(function()
            p:read_exact(1000):await()
            assert(p:reset())
          end)
        end)
        local ok, msg2, code2 = c:write(big):await()
        print("large", ok, is_gone(code2), msg2)
        -- and the stream is still safe to use: writes fail the same way
        ok, msg2, code2 = c:write("after"):await()
        print("after", ok, is_gone(code2))
        c:close()
        l:close()
      end))
      print("alive")
    ]])
    assert.are.equal(0, code, ("exit %s signal %s: %s"):format(tostring(code), tostring(sig), err))
    assert.is_nil(sig)
    assert.matches("sigpipe\tfalse\ttrue\n", out)
    assert.matches("closed\ttrue\tstream:write: [%w ]+\n", out)
    assert.matches("reset\ttrue\tstream:write: [%w ]+\n", out)
    assert.matches("reader left\ttrue\tstream:write: [%w ]+\n", out)
    assert.matches("large\tnil\ttrue\tstream:write: [%w ]+\n", out)
    assert.matches("after\tnil\ttrue\n", out)
    assert.matches("alive\n$", out)
  end)

  it("survive a peer that shut down its read side and closed", function()
    local py = io.popen("command -v python3 2>/dev/null"):read("a")
    if py == "" then return pending("no python3 for a SHUT_RD peer") end
    local code, out, err, sig = child(prelude .. [[
      local lua = ...
      cf.block_on(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local script = ("import socket; s = socket.create_connection(('127.0.0.1', %d)); "
          .. "s.shutdown(socket.SHUT_RD); s.close()"):format(port)
        local peer = cf.process.spawn({ "python3", "-c", script })
        local c = assert(l:accept():await())
        peer:wait():await()
        local res
        for _ = 1, 400 do
          local ok, msg, code = c:write("to nobody"):await()
          if not ok then res = { msg, code } break end
          cf.sleep(5):await()
        end
        print("shut_rd", res and is_gone(res[2]), res and res[1])
        c:close()
        l:close()
      end)
      print("alive")
    ]])
    assert.are.equal(0, code, ("exit %s signal %s: %s"):format(tostring(code), tostring(sig), err))
    assert.matches("sigpipe\tfalse\ttrue\n", out)
    assert.matches("shut_rd\ttrue\tstream:write: [%w ]+\n", out)
    assert.matches("alive\n$", out)
  end)
end)

describe("hostile peers", function()
  -- open sockets of this process (other descriptors come and go with the
  -- suite's helper processes)
  local function sockets()
    local p = io.popen("ls -l /proc/" .. support.pid() .. "/fd")
    local n = select(2, p:read("a"):gsub("socket:", ""))
    p:close()
    return n
  end

  -- a connected pair on 127.0.0.1: client, server side
  local function pair()
    local l = assert(net.listen("127.0.0.1", 0))
    local _, port = l:local_address()
    local got = cf.spawn(function() return l:accept():await() end)
    local c = assert(net.connect("127.0.0.1", port):await())
    local p = assert(got:await())
    l:close()
    return c, p
  end

  it("that never reads: writes stay pending until a timeout releases them", function()
    cf.block_on(function()
      support.full_gc()
      cf.sleep(20):await()
      local before = sockets()
      local c, p = pair()
      local big = ("n"):rep(16 * 2 ^ 20)
      local writers = {}
      for i = 1, 3 do
        writers[i] = cf.spawn(function() return { cf.timeout(100, c:write(big)):await() } end)
      end
      local t0 = cf.now()
      for i = 1, 3 do assert.are.same({ nil, "timeout" }, writers[i]:await()) end
      assert.is_true(cf.now() - t0 < 5000 * support.slow)
      assert.are.equal(0, #cf.tasks() - 1) -- only this one is left
      -- the peer was never stuck: it can still read what was sent
      assert.are.equal(10, #p:read_exact(10):await())
      c:close()
      p:close()
      support.full_gc()
      cf.sleep(50):await()
      assert.are.equal(before, sockets())
    end)
  end)

  it("that sends one byte at a time: lines and delimiters still come whole", function()
    cf.block_on(cf.scope(function(s)
      local c, p = pair()
      local text = "GET / HTTP/1.1\r\nHost: x\r\n\r\nline one\nline two\r\n"
      s:spawn(function()
        for i = 1, #text do
          assert(p:write(text:sub(i, i)):await())
          if i % 7 == 0 then cf.sleep(1):await() else cf.yield_now():await() end
        end
        p:close()
      end)
      assert.are.equal("GET / HTTP/1.1\r\nHost: x\r\n\r\n", c:read_until("\r\n\r\n"):await())
      local lines = {}
      for line in c:lines() do lines[#lines + 1] = line end
      assert.are.same({ "line one", "line two" }, lines)
      c:close()
    end))
  end)

  it("that sends a line longer than the limit: ENOBUFS, nothing lost", function()
    cf.block_on(cf.scope(function(s)
      local c, p = pair()
      local huge = ("h"):rep(2 ^ 20 + 10)
      s:spawn(function()
        assert(p:write(huge):await())
        assert(p:write("\nshort\n"):await())
        p:close()
      end)
      assert.are.same({ nil, "stream:read_line: no delimiter within 1048576 bytes", "ENOBUFS" },
        { c:read_line():await() })
      assert.are.same({ nil, "stream:read_line: no delimiter within 100 bytes", "ENOBUFS" },
        { c:read_line(100):await() })
      local ok, err = pcall(function() for _ in c:lines() do end end)
      assert.is_false(ok)
      assert.matches("no delimiter within 1048576 bytes", err)
      assert.are.equal(#huge, #c:read_line(2 ^ 21):await()) -- the bytes were all kept
      assert.are.equal("short", c:read_line():await())
      assert.is_nil(c:read_line():await())
      c:close()
    end))
  end)
end)

describe("listener:incoming()", function()
  it("ends when the listener is closed while the loop's body awaits", function()
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local served, ended = {}, false
      s:spawn(function()
        for conn in l:incoming() do
          s:spawn(function()
            cf.sleep(50):await() -- still serving after the listener is gone
            conn:write("bye\n"):await()
            conn:close()
            served[#served + 1] = true
          end)
          cf.sleep(40):await() -- the listener closes meanwhile
        end
        ended = true
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      cf.sleep(10):await()
      l:close()
      assert.are.equal("bye", c:read_line():await()) -- the connection was not cancelled
      cf.sleep(50):await()
      assert.is_true(ended)
      assert.are.equal(1, #served)
    end))
  end)

  it("ends when the listener is closed while it waits to accept", function()
    cf.block_on(function()
      local l = assert(net.listen("127.0.0.1", 0))
      local n = cf.spawn(function()
        local k = 0
        for _ in l:incoming() do k = k + 1 end
        return k
      end)
      cf.sleep(10):await()
      l:close()
      assert.are.equal(0, n:await())
    end)
  end)

  it("ends at once when the listener was closed before the first step", function()
    cf.block_on(function()
      local l = assert(net.listen("127.0.0.1", 0))
      local it = l:incoming()
      l:close()
      assert.is_nil(it())
      local k = 0
      for _ in l:incoming() do k = k + 1 end
      assert.are.equal(0, k)
    end)
    assert.has_error(function() net.Listener.incoming({}) end,
      "listener:incoming: argument #1 must be a listener (call it with a colon; got table)")
  end)
end)

-- A program whose only task waits on a channel nobody can send to.
local deadlock_tail = [[
local ch = cf.channel()
local ok, err = pcall(cf.block_on, function() return ch:recv():await() end)
print(ok, err)
]]

describe("deadlock detection with sockets", function()
  local programs = {
    ["an idle listener"] = "local keep = assert(cf.net.listen('127.0.0.1', 0))\n",
    ["an unreachable listener not yet collected"] =
      "do local l = assert(cf.net.listen('127.0.0.1', 0)) end\ncollectgarbage('stop')\n",
    ["a UDP socket that received once"] = [[
      local u = assert(cf.net.udp("127.0.0.1", 0))
      local _, port = u:local_address()
      cf.block_on(function()
        u:send_to("x", "127.0.0.1", port):await()
        assert(u:recv_from():await() == "x")
      end)
    ]],
    ["connections read once, reading ahead for nobody"] = [[
      local keep
      cf.block_on(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local got = cf.spawn(function() return l:accept():await() end)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        local p = assert(got:await())
        assert(c:write("a"):await())
        assert(p:read():await() == "a")
        keep = { l, c, p }
      end)
    ]],
  }
  for what, setup in pairs(programs) do
    it("is not defeated by " .. what, function()
      local code, out, err = child(prelude .. setup .. deadlock_tail, 10000)
      assert.are.equal(0, code, err)
      assert.matches("false\tblock_on: deadlock: the future is still pending", out)
    end)
  end

  -- The other half: what a task awaits keeps the program alive, with
  -- nothing else (no timer, no child) to do it. The peer is a process of
  -- its own, started in the background by a shell that is gone at once.
  local function background(lua_code)
    return [[
      local function background(code)
        local name = os.tmpname()
        local f = assert(io.open(name, "w"))
        f:write(code)
        f:close()
        os.execute(("(sleep 0.3; %s %s; rm -f %s) >/dev/null 2>&1 &"):format(arg[-1], name, name))
      end
    ]] .. lua_code
  end

  it("does not end a server whose task awaits accept or recv", function()
    local code, out, err = child(prelude .. background([[
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local u = assert(cf.net.udp("127.0.0.1", 0))
      local _, uport = u:local_address()
      background(([=[
        local cf = require "cfuture"
        cf.block_on(function()
          local c = assert(cf.net.connect("127.0.0.1", %d):await())
          c:write("hello\n"):await()
          c:close()
        end)
      ]=]):format(port))
      print("accepted", cf.block_on(function()
        local c = assert(l:accept():await())
        return c:read_line():await()
      end))
      background(([=[
        local cf = require "cfuture"
        local u = assert(cf.net.udp("127.0.0.1", 0))
        cf.block_on(u:send_to("datagram", "127.0.0.1", %d))
      ]=]):format(uport))
      print("received", cf.block_on(u:recv_from()))
    ]]), 20000)
    assert.are.equal(0, code, err)
    assert.matches("accepted\thello\n", out)
    assert.matches("received\tdatagram\t127.0.0.1\t%d+\n", out)
  end)
end)

describe("cf.net argument checks", function()
  local nul = "127.0.0.1\0evil.example"

  it("refuses NUL bytes in hosts, addresses and interfaces", function()
    local function refuses(fn, msg) assert.has_error(fn, msg) end
    refuses(function() net.connect(nul, 80) end,
      "net.connect: argument #1 (host) must not contain a NUL byte")
    refuses(function() net.listen(nul, 0) end,
      "net.listen: argument #1 (host) must not contain a NUL byte")
    refuses(function() net.lookup(nul) end,
      "net.lookup: argument #1 (host) must not contain a NUL byte")
    refuses(function() net.reverse(nul) end,
      "net.reverse: argument #1 (host) must not contain a NUL byte")
    refuses(function() net.udp(nul, 0) end,
      "net.udp: argument #1 (host) must not contain a NUL byte")
    local u = assert(net.udp("127.0.0.1", 0))
    refuses(function() u:send_to("x", nul, 9) end,
      "udp:send_to: argument #3 (host) must not contain a NUL byte")
    refuses(function() u:join_group("239.1.2.3\0x") end,
      "udp:join_group: argument #2 (host) must not contain a NUL byte")
    refuses(function() u:join_group("239.1.2.3", "127.0.0.1\0x") end,
      "udp:join_group: argument #3 (interface) must not contain a NUL byte")
    refuses(function() u:leave_group("239.1.2.3", "127.0.0.1\0x") end,
      "udp:leave_group: argument #3 (interface) must not contain a NUL byte")
    u:close()
  end)

  it("range-checks integers instead of wrapping them at 2^32", function()
    local u = assert(net.udp("127.0.0.1", 0))
    assert.has_error(function() u:set_ttl(4294967360) end,
      "udp:set_ttl: argument #2 (ttl) must be an integer from 1 to 255 (got 4294967360)")
    assert.has_error(function() u:set_ttl(0) end,
      "udp:set_ttl: argument #2 (ttl) must be an integer from 1 to 255 (got 0)")
    assert.has_error(function() u:set_multicast_ttl(4294967297) end,
      "udp:set_multicast_ttl: argument #2 (ttl) must be an integer from 0 to 255 (got 4294967297)")
    assert.has_error(function() u:set_ttl(0 / 0) end)
    local ok, err = pcall(u.set_ttl, u, 0 / 0)
    assert.is_false(ok)
    assert.matches("udp:set_ttl: argument #2 %(ttl%) must be an integer from 1 to 255 %(got %-?nan%)", err)
    assert.has_error(function() u:set_ttl({}) end,
      "udp:set_ttl: argument #2 (ttl) must be an integer from 1 to 255 (got table)")
    assert.is_true(u:set_ttl(64))
    assert.is_true(u:set_multicast_ttl(0))
    assert.has_error(function() u:send_to("x", "127.0.0.1", 4294967305) end,
      "udp:send_to: argument #4 (port) must be an integer from 0 to 65535 (got 4294967305)")
    u:close()
    assert.has_error(function() net.listen("127.0.0.1", 0, { backlog = 4294967301 }) end,
      "net.listen: option backlog must be an integer from 0 to 2147483647 (got 4294967301)")
    assert.has_error(function() net.listen("127.0.0.1", 0, { backlog = -1 }) end,
      "net.listen: option backlog must be an integer from 0 to 2147483647 (got -1)")
    assert.has_error(function() net.listen("127.0.0.1", 0, { backlog = "many" }) end,
      "net.listen: option backlog must be an integer from 0 to 2147483647 (got string)")
    assert.has_error(function() net.connect("127.0.0.1", 4294967376) end,
      "net.connect: argument #2 (port) must be an integer from 0 to 65535 (got 4294967376)")
    assert.has_error(function() net.udp("127.0.0.1", -1) end,
      "net.udp: argument #2 (port) must be an integer from 0 to 65535 (got -1)")
    assert.has_error(function() net.lookup("localhost", "ipx") end,
      'net.lookup: argument #2 must be "any", "inet" or "inet6" (got ipx)')
    cf.block_on(function()
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local c = assert(net.connect("127.0.0.1", port):await())
      assert.has_error(function() c:set_keepalive(true, 4294967297) end,
        "stream:set_keepalive: argument #3 (delay in seconds) must be an integer from 1 to 32767 (got 4294967297)")
      assert.has_error(function() c:set_keepalive(true, 0) end,
        "stream:set_keepalive: argument #3 (delay in seconds) must be an integer from 1 to 32767 (got 0)")
      assert.is_true(c:set_keepalive(true, 30))
      assert.is_true(c:set_keepalive(false))
      c:close()
      l:close()
    end)
  end)

  it("treats a nil limit as the default (never a NULL buffer)", function()
    -- first reads on a fresh stream: nothing is buffered yet (no buffer at
    -- all), which the sanitized build checks
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      s:spawn(function()
        local p = assert(l:accept():await())
        cf.sleep(20):await()
        p:write("a||b\nc\n"):await()
        p:close()
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      assert.are.equal("a||", c:read_until("||", nil):await()) -- memmem
      local got = {}
      for line in c:lines(nil) do got[#got + 1] = line end
      assert.are.same({ "b", "c" }, got)
      c:close()
      l:close()
    end))
  end)

  it("refuses foreign selves, closed objects and a closed runtime, and no metamethod crashes", function()
    local l = assert(net.listen("127.0.0.1", 0))
    local u = assert(net.udp("127.0.0.1", 0))
    local c = cf.block_on(function()
      local _, port = l:local_address()
      return assert(net.connect("127.0.0.1", port):await())
    end)
    for _, obj in ipairs({ l, u, c }) do
      local mt = getmetatable(obj)
      for _, foreign in ipairs({ {}, io.stdout, 5 }) do
        mt.__gc(foreign) -- ignored
        assert.is_false(pcall(mt.__close, foreign))
        assert.is_false(pcall(mt.__tostring, foreign))
      end
      mt.__gc() -- no self at all: ignored too
      assert.is_false(pcall(mt.__close))
      for name, fn in pairs(mt.__index) do
        if type(fn) == "function" then
          local ok, err = pcall(fn, io.stdout)
          assert.is_false(ok, name)
          assert.matches("argument #1 must be a", err, nil, false, name)
        end
      end
    end
    assert.has_error(function() l.accept(c) end,
      "listener:accept: argument #1 must be a listener (call it with a colon; got userdata)")
    assert.has_error(function() u.recv_from(l) end,
      "udp:recv_from: argument #1 must be a UDP socket (call it with a colon; got userdata)")
    assert.has_error(function() c.read(u) end,
      "stream:read: argument #1 must be a stream (call it with a colon; got userdata)")
    assert.matches("^cfuture%.Listener%(open%): ", tostring(l))
    assert.matches("^cfuture%.Udp%(open%): ", tostring(u))
    -- closed objects: methods raise, closing again and collecting are no-ops
    l:close()
    u:close()
    c:close()
    assert.matches("^cfuture%.Listener%(closed%): ", tostring(l))
    assert.has_error(function() l:local_address() end, "listener:local_address: the listener is closed")
    assert.has_error(function() u:set_ttl(5) end, "udp:set_ttl: the socket is closed")
    assert.has_error(function() c:set_nodelay(true) end, "stream:set_nodelay: the stream is closed")
    for _, obj in ipairs({ l, u, c }) do
      obj:close()
      getmetatable(obj).__gc(obj)
      getmetatable(obj).__gc(obj)
    end
    assert.is_true(c:is_closed())
    assert.are.equal(0, c:buffered())
  end)

  it("raises once the runtime is closed, from methods and iterators kept past it #lua54", function()
    local code, out, err = child([[
      -- made before the runtime's guard, so finalised after it at lua_close
      local keep = {}
      local probe = setmetatable({}, { __gc = function()
        local res = {}
        for _, k in ipairs({ "l", "u", "c" }) do
          res[#res + 1] = select(2, pcall(keep[k].close, keep[k]))
          res[#res + 1] = tostring(keep[k]):match("^cfuture%.%a+%(%a+%)")
          getmetatable(keep[k]).__gc(keep[k]) -- a no-op, no crash
        end
        res[#res + 1] = select(2, pcall(keep.lines))
        res[#res + 1] = select(2, pcall(keep.incoming))
        res[#res + 1] = select(2, pcall(keep.connect, "127.0.0.1", 1))
        io.stdout:write(table.concat(res, "\n"), "\n")
      end })
      local cf = require "cfuture"
      cf.block_on(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        keep.l, keep.u, keep.c = l, assert(cf.net.udp("127.0.0.1", 0)), c
        keep.lines, keep.incoming, keep.connect = c:lines(), l:incoming(), cf.net.connect
      end)
    ]], 20000)
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat({
      -- through pcall the call has no name: the module's path for it is used
      -- (iterators are not in the module: no name)
      "net.Listener.close: the cfuture runtime is closed", "cfuture.Listener(closed)",
      "net.Udp.close: the cfuture runtime is closed", "cfuture.Udp(closed)",
      "Stream.close: the cfuture runtime is closed", "cfuture.Stream(closed)",
      "the cfuture runtime is closed", "the cfuture runtime is closed",
      "net.connect: the cfuture runtime is closed", "" }, "\n"), out)
  end)
end)
