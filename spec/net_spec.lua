-- cf.net: real sockets on 127.0.0.1 and ::1.
local cf = require "cfuture"
local support = require "support"
local net = cf.net

-- An echo server on an ephemeral port; returns the listener and its port.
local function echo_server(s)
  local l = assert(net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  s:spawn(function()
    while true do
      local c = l:accept():await()
      if not c then return end
      cf.spawn(function()
        for d in c:chunks() do c:write(d):await() end
        c:close()
      end)
    end
  end)
  return l, port
end

describe("cf.net TCP", function()
  it("connects, echoes, and reports both ends' addresses", function()
    cf.block_on(cf.scope(function(s)
      local l, port = echo_server(s)
      assert.is_true(port > 0)
      local c = assert(net.connect("127.0.0.1", port):await())
      assert.are.same({ "127.0.0.1", port }, { c:peer_address() })
      local host, lport = c:local_address()
      assert.are.equal("127.0.0.1", host)
      assert.is_true(lport > 0 and lport ~= port)
      assert.is_true(c:write("one\ntwo\r\nthree|four"):await())
      assert.are.equal("one", c:read_line():await())
      assert.are.equal("two", c:read_line():await())
      assert.are.equal("three|", c:read_until("|"):await())
      assert.are.equal("four", c:read_exact(4):await())
      c:write("no bar here"):await()
      assert.are.same({ nil, "stream:read_until: no delimiter within 8 bytes", "ENOBUFS" },
        { c:read_until("|", 8):await() })
      assert.are.equal("no bar here", c:read_exact(11):await()) -- nothing was taken
      c:close()
      l:close()
    end))
  end)

  it("works over IPv6 and resolves names", function()
    cf.block_on(cf.scope(function(s)
      local l = net.listen("::1", 0)
      if not l then return end -- no IPv6 on this machine
      local _, port = l:local_address()
      s:spawn(function()
        local c = assert(l:accept():await())
        c:write(select(1, c:peer_address())):await()
        c:close()
      end)
      local c = assert(net.connect("::1", port):await())
      assert.are.equal("::1", c:read_all():await())
      l:close()
      local addrs = assert(net.lookup("localhost"):await())
      assert.is_true(#addrs >= 1)
      assert.are.same({ "127.0.0.1" }, net.lookup("127.0.0.1", "inet"):await())
    end))
  end)

  it("returns nil, message, code promptly for refused and unknown hosts", function()
    cf.block_on(function()
      local t0 = cf.now()
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      l:close()
      cf.sleep(10):await()
      local c, msg, code = net.connect("127.0.0.1", port):await()
      assert.is_nil(c)
      assert.are.equal("ECONNREFUSED", code)
      assert.are.equal(("connect 127.0.0.1:%d: connection refused"):format(port), msg)
      local _, m2, c2 = net.connect("no-such-host.invalid", 80):await()
      assert.matches("^EAI_", c2)
      assert.matches("^connect no%-such%-host%.invalid:80: ", m2)
      local _, _, c3 = net.lookup("no-such-host.invalid"):await()
      assert.matches("^EAI_", c3)
      assert.is_true(cf.now() - t0 < 5000 * support.slow)
      local _, _, inuse = net.listen("127.0.0.1", select(2, assert(net.listen("127.0.0.1", 0)):local_address()))
      assert.are.equal("EADDRINUSE", inuse)
    end)
  end)

  it("reports an unreachable address promptly, or is cancelled by a timeout without leaks", function()
    cf.block_on(function()
      support.full_gc()
      local before = support.fd_count()
      local t0 = cf.now()
      -- 2001:db8::/32 is reserved for documentation: nothing answers there
      local c, msg, code = cf.timeout(3000, net.connect("2001:db8::1", 80)):await()
      assert.is_nil(c)
      if msg ~= "timeout" then
        assert.is_true(code == "EHOSTUNREACH" or code == "ENETUNREACH" or code == "EADDRNOTAVAIL", code)
        assert.matches("^connect 2001:db8::1:80: ", msg)
      end
      assert.is_true(cf.now() - t0 < 3500 * support.slow)
      cf.sleep(20):await()
      assert.are.equal(before, support.fd_count())
    end)
  end)

  it("keeps a stream usable after a read is cancelled, losing nothing", function()
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      s:spawn(function()
        local c = assert(l:accept():await())
        cf.sleep(150 * support.slow):await() -- well after the reader gives up
        c:write("late line\n"):await()
        assert.are.equal("ping", c:read_exact(4):await())
        c:write("pong"):await()
        c:close()
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      assert.are.same({ nil, "timeout" }, { cf.timeout(50, c:read_line()):await() })
      assert.are.equal("late line", c:read_line():await())
      c:write("ping"):await()
      assert.are.equal("pong", c:read_all():await())
      l:close()
    end))
  end)

  it("gives each of several concurrent readers its own bytes, in poll order", function()
    cf.block_on(cf.scope(function(s)
      local l, port = echo_server(s)
      local c = assert(net.connect("127.0.0.1", port):await())
      -- the reads are polled (and wait) first; then everything arrives in
      -- one segment: a read that became ready keeps its bytes until the
      -- join takes them, whatever the readers polled after it do
      local reads = cf.spawn(cf.join(c:read_line(), c:read_line(), c:read_exact(3)))
      cf.sleep(10):await()
      c:write("first\nsecond\nxyz"):await()
      assert.are.same({ "first", "second", "xyz" }, { reads:await() })
      l:close()
    end))
  end)

  it("gives a half-closed peer end of stream while its side still writes", function()
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      s:spawn(function()
        local c = assert(l:accept():await())
        local got = c:read_all():await() -- ends when the client shuts down
        c:write("got " .. #got):await()
        c:close()
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      c:write(("x"):rep(100000)):await()
      assert.is_true(c:shutdown())
      assert.are.equal("got 100000", c:read_all():await())
      assert.are.equal("EPIPE", select(3, c:write("more"):await()))
      l:close()
    end))
  end)

  it("reports a peer reset as ECONNRESET", function()
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local server_saw = cf.oneshot and nil
      local done = s:spawn(function()
        local c = assert(l:accept():await())
        return { c:read():await() }
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      cf.sleep(20):await()
      assert.is_true(c:reset())
      local r = done:await()
      assert.is_nil(r[1])
      assert.are.equal("ECONNRESET", r[3])
      assert.is_nil(server_saw)
      l:close()
    end))
  end)

  it("reads a line sent one byte at a time, and refuses a line over the limit", function()
    cf.block_on(cf.scope(function(s)
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      s:spawn(function()
        local c = assert(l:accept():await())
        for ch in ("slow line\n"):gmatch(".") do
          c:write(ch):await()
          cf.sleep(2):await()
        end
        c:write(("y"):rep(5000) .. "\n"):await()
        c:close()
      end)
      local c = assert(net.connect("127.0.0.1", port):await())
      assert.are.equal("slow line", c:read_line():await())
      cf.sleep(50):await()
      local line, msg, code = c:read_line(1000):await()
      assert.is_nil(line)
      assert.are.equal("ENOBUFS", code)
      assert.are.equal("stream:read_line: no delimiter within 1000 bytes", msg)
      assert.are.equal(1000, #c:read_exact(1000):await()) -- the bytes are still there
      assert.are.equal(4000, #c:read_line():await())
      l:close()
    end))
  end)

  it("serves 1000 concurrent connections", function()
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      local N = 1000
      cf.block_on(cf.scope(function(s)
        local l = assert(cf.net.listen("127.0.0.1", 0, { backlog = 1024 }))
        local _, port = l:local_address()
        local served = 0
        s:spawn(function()
          for _ = 1, N do
            local c = assert(l:accept():await())
            cf.spawn(function()
              local line = c:read_line():await()
              c:write(line:upper() .. "\n"):await()
              c:close()
              served = served + 1
            end)
          end
          l:close()
        end)
        local clients = {}
        for i = 1, N do
          clients[i] = cf.spawn(function()
            local c = assert(cf.net.connect("127.0.0.1", port):await())
            cf.sleep(math.random(1, 50)):await() -- all connected at once
            c:write("hello " .. i .. "\n"):await()
            local r = c:read_line():await()
            c:close()
            return r
          end)
        end
        for i = 1, N do assert(clients[i]:await() == "HELLO " .. i) end
        print("ok", served)
      end))
    ]], "ulimit -n 4096 2>/dev/null; ")
    assert.are.equal(0, code, err)
    assert.matches("ok\t1000", out)
  end)

  it("leaks no file descriptors over many connect/close cycles, even mid-write", function()
    local cycles = support.slow > 1 and 300 or 10000
    cf.block_on(cf.scope(function(s)
      support.full_gc() -- what earlier tests left for the collector goes first
      cf.sleep(50):await()
      local l, port = echo_server(s)
      local before = support.fd_count()
      for i = 1, cycles do
        local c = assert(net.connect("127.0.0.1", port):await())
        if i % 2 == 0 then
          c:write("x"):await()
          assert.are.equal("x", c:read():await())
        end
        c:close()
      end
      -- dropped mid-write: a peer that never reads, 8 MiB queued, then collected
      local sink = assert(net.listen("127.0.0.1", 0))
      local _, sport = sink:local_address()
      local held
      s:spawn(function() held = sink:accept():await() end)
      do
        local c = assert(net.connect("127.0.0.1", sport):await())
        cf.select(c:write(("z"):rep(8 * 2 ^ 20)), cf.sleep(50)):await()
      end
      support.full_gc()
      cf.sleep(50):await()
      held:close()
      sink:close()
      support.full_gc()
      cf.sleep(50):await()
      assert.are.equal(before, support.fd_count())
      l:close()
    end))
  end)

  it("leaves nothing behind when the program ends with reads and writes in flight", function()
    -- a peer that never reads: each 8 MiB write stays pending in the task,
    -- async function or combinator that polls it until the state closes;
    -- reads wait for a line, gather a read_all, or sit ready in a join
    local out, code, _, err = support.run_lua([[
      local cf = require "cfuture"
      local big = ("w"):rep(8 * 2 ^ 20)
      cf.block_on(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local held = {}
        cf.spawn(function() while true do held[#held + 1] = l:accept():await() end end)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        cf.spawn(function() c:write(big):await() end)
        local via = cf.async(function() return c:write(big):await() end)
        cf.spawn(function() via():await() end)
        cf.spawn(cf.join(c:write(big), cf.sleep(1e6)))
        local _never_polled = c:write(big)
        local r = assert(cf.net.connect("127.0.0.1", port):await())
        cf.sleep(20):await()
        held[2]:write("partial"):await()
        cf.spawn(function() r:read_line():await() end)
        local r2 = assert(cf.net.connect("127.0.0.1", port):await())
        cf.sleep(20):await()
        held[3]:write("some"):await()
        cf.spawn(function() r2:read_all():await() end)
        local r3 = assert(cf.net.connect("127.0.0.1", port):await())
        cf.sleep(20):await()
        held[4]:write("ready"):await()
        cf.spawn(cf.join(r3:read_exact(5), cf.sleep(1e6)))
        local _until = r3:read_until("--")
        cf.sleep(100):await()
        print("leaving", c:buffered(), r:buffered(), r2:buffered(), r3:buffered())
      end)
    ]])
    assert.are.equal(0, code, err)
    assert.matches("leaving\t0\t7\t0\t0", out)
  end)

  it("stops accepting when the listener is closed", function()
    cf.block_on(function()
      local l = assert(net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local waiting = cf.spawn(function() return { l:accept():await() } end)
      cf.sleep(10):await()
      l:close()
      local r = waiting:await()
      assert.is_nil(r[1])
      assert.are.equal("ECANCELED", r[3])
      assert.has_error(function() l:accept() end, "listener:accept: the listener is closed")
      assert.are.equal("ECONNREFUSED", select(3, net.connect("127.0.0.1", port):await()))
    end)
  end)

  it("raises on misuse, naming the function and argument", function()
    assert.has_error(function() net.connect(nil, 80) end,
      "net.connect: argument #1 must be a host name or address string (got nil)")
    assert.has_error(function() net.connect("localhost", 70000) end,
      "net.connect: argument #2 (port) must be an integer from 0 to 65535 (got 70000)")
    assert.has_error(function() net.listen("127.0.0.1", "x") end,
      "net.listen: argument #2 (port) must be an integer from 0 to 65535 (got string)")
    assert.are.same({ nil, "net.listen: 'example.com' is not a numeric IPv4 or IPv6 address", "EINVAL" },
      { net.listen("example.com", 0) })
  end)
end)

describe("stream iterators", function()
  -- A server that plays `script` (a list of strings to send, or numbers of
  -- milliseconds to wait) to its first client, then closes or resets.
  local function player(s, script, ending)
    local l = assert(net.listen("127.0.0.1", 0))
    local _, port = l:local_address()
    s:spawn(function()
      local c = assert(l:accept():await())
      for _, step in ipairs(script) do
        if type(step) == "number" then cf.sleep(step):await() else c:write(step):await() end
      end
      if ending == "reset" then c:reset() else c:close() end
      l:close()
    end)
    return assert(net.connect("127.0.0.1", port):await())
  end

  it("chunks gives the bytes in order as they arrive, at most max each", function()
    cf.block_on(cf.scope(function(s)
      local c = player(s, { "abc", 20, ("x"):rep(10000), 20, "end" })
      local got, sizes = {}, {}
      for chunk in c:chunks(4096) do
        got[#got + 1] = chunk
        sizes[#sizes + 1] = #chunk
      end
      assert.are.equal("abc" .. ("x"):rep(10000) .. "end", table.concat(got))
      assert.are.equal("abc", got[1]) -- arrived alone, before the rest was sent
      for _, n in ipairs(sizes) do assert.is_true(n >= 1 and n <= 4096) end
      assert.is_nil(c:read():await()) -- the loop ended at the end of the stream
    end))
  end)

  it("lines gives each line without its newline, the last one without one too", function()
    cf.block_on(cf.scope(function(s)
      local script = { "one\ntwo\r\n", 10, "thr", 10, "ee\n\nlast" }
      local c = player(s, script)
      local lines = {}
      for line in c:lines() do lines[#lines + 1] = line end
      assert.are.same({ "one", "two", "three", "", "last" }, lines)
    end))
  end)

  it("makes no future per item: a long loop allocates only the strings", function()
    cf.block_on(cf.scope(function(s)
      local n = 20000
      local c = player(s, { ("line\n"):rep(n) })
      local it = c:lines()
      assert.are.equal("line", it())
      local count = 0
      collectgarbage("stop")
      local before = collectgarbage("count")
      for _ in it do count = count + 1 end
      local grew = (collectgarbage("count") - before) * 1024 / n
      collectgarbage("restart")
      assert.are.equal(n - 1, count)
      -- a future per line would be ~150 bytes; "line" is an interned string
      assert.is_true(grew < 16, ("%.1f bytes per line"):format(grew))
    end))
  end)

  it("raises a read error, and a line over max", function()
    cf.block_on(cf.scope(function(s)
      local c = player(s, { "ok\n", 20 }, "reset")
      local lines = {}
      local ok, err = pcall(function()
        for line in c:lines() do lines[#lines + 1] = line end
      end)
      assert.is_false(ok)
      assert.matches("^stream:read: .*reset", err)
      assert.are.same({ "ok" }, lines)

      local c2 = player(s, { "short\n", ("y"):rep(300) .. "\n" })
      local got = {}
      ok, err = pcall(function()
        for line in c2:lines(100) do got[#got + 1] = line end
      end)
      assert.is_false(ok)
      assert.are.equal("stream:read_line: no delimiter within 100 bytes", err)
      assert.are.same({ "short" }, got)
      assert.are.equal(100, #c2:read_exact(100):await()) -- nothing was taken
    end))
  end)

  it("survives a cancelled wait with no byte lost, and refuses a second waiter", function()
    cf.block_on(cf.scope(function(s)
      local c = player(s, { 100 * support.slow, "late\n", "next\n" })
      local it = c:lines()
      assert.are.same({ nil, "timeout" }, { cf.timeout(30, function() return it() end):await() })
      local waiting = cf.spawn(function() return it() end)
      cf.sleep(10):await() -- it is waiting
      local ok, err = pcall(it)
      assert.is_false(ok)
      assert.matches("stream:lines: the iterator is already waiting in another task", err, 1, true)
      assert.are.equal("late", waiting:await())
      assert.are.equal("next", it())
      assert.is_nil(it())
    end))
  end)

  it("raises on misuse and on a closed stream", function()
    cf.block_on(cf.scope(function(s)
      local c = player(s, { "a\n" })
      assert.has_error(function() c:chunks(0) end,
        "stream:chunks: argument #2 must be a positive byte count (got 0)")
      assert.has_error(function() c:lines("x") end,
        "stream:lines: argument #2 must be a positive byte count (got x)")
      assert.has_error(function() c.chunks() end,
        "stream:chunks: argument #1 must be a stream (call it with a colon; got no value)")
      local it = c:chunks()
      c:close()
      assert.has_error(function() it() end, "stream:chunks: the stream is closed")
      assert.has_error(function() c:lines() end, "stream:lines: the stream is closed")
    end))
    local l = assert(net.listen("127.0.0.1", 0))
    local it = cf.block_on(function()
      local _, port = l:local_address()
      local c = assert(net.connect("127.0.0.1", port):await())
      return c:lines()
    end)
    local ok, err = pcall(it)
    assert.is_false(ok)
    assert.matches("not inside a task", err)
    l:close()
  end)
end)

describe("cf.net UDP and DNS", function()
  it("sends and receives datagrams with their source", function()
    cf.block_on(function()
      local a = assert(net.udp("127.0.0.1", 0))
      local b = assert(net.udp("127.0.0.1"))
      local _, pa = a:local_address()
      local _, pb = b:local_address()
      local recv = cf.spawn(function()
        local got = {}
        for i = 1, 3 do got[i] = { a:recv_from():await() } end
        return got
      end)
      for i = 1, 3 do assert.is_true(b:send_to("d" .. i, "127.0.0.1", pa):await()) end
      local got = recv:await()
      for i = 1, 3 do assert.are.same({ "d" .. i, "127.0.0.1", pb }, got[i]) end
      assert.are.same({ nil, "timeout" }, { cf.timeout(30, a:recv_from()):await() })
      assert.is_true(a:set_broadcast(true))
      assert.is_true(a:set_ttl(32))
      assert.is_true(a:set_multicast_loop(true))
      assert.is_true(a:send_to("", "127.0.0.1", pb):await())
      assert.are.same({ "", "127.0.0.1", pa }, { b:recv_from():await() })
      a:close()
      assert.has_error(function() a:recv_from() end, "udp:recv_from: the socket is closed")
      b:close()
    end)
  end)

  it("looks names up and back", function()
    cf.block_on(function()
      assert.are.equal("localhost", net.reverse("127.0.0.1"):await())
      assert.are.same({ "::1" }, net.lookup("::1", "inet6"):await())
      assert.are.same({ nil, "net.reverse: 'nonsense' is not a numeric IPv4 or IPv6 address", "EINVAL" },
        { net.reverse("nonsense") })
    end)
  end)
end)

describe("fileno", function()
  local function is_socket(fd)
    local p = io.popen("readlink /proc/" .. cf.process.pid() .. "/fd/" .. fd .. " 2>/dev/null")
    local target = p:read("*a")
    p:close()
    return target:match("^socket:%[%d+%]") ~= nil
  end

  it("gives the descriptors of streams, listeners and UDP sockets, until they close", function()
    cf.block_on(function()
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local c = assert(cf.net.connect("127.0.0.1", port):await())
      local s = assert(l:accept():await())
      local u = assert(cf.net.udp("127.0.0.1", 0))
      local fds = { l:fileno(), c:fileno(), s:fileno(), u:fileno() }
      for i, fd in ipairs(fds) do
        assert.are.equal("integer", math.type(fd))
        assert.is_true(is_socket(fd), "fd " .. i)
        for j = 1, i - 1 do assert.are_not.equal(fds[j], fd) end
      end
      c:close()
      assert.are.same({ nil, "stream:fileno: bad file descriptor", "EBADF" }, { c:fileno() })
      s:close()
      l:close()
      u:close()
      assert.has_error(function() l:fileno() end)
      assert.has_error(function() u:fileno() end)
    end)
  end)
end)

describe("an empty write", function()
  it("waits for the writes queued before it (a flush), and is done at once when none is", function()
    cf.block_on(function()
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local go = cf.notify()
      local reader = cf.spawn(function()
        local s = l:accept():await()
        go:wait():await() -- reads nothing until told
        return #s:read_all():await()
      end)
      local c = assert(cf.net.connect("127.0.0.1", port):await())
      assert.is_true(c:write(""):await()) -- nothing queued
      local data = string.rep("x", 16 * 1024 * 1024)
      assert.are.same({ nil, "timeout" }, { cf.timeout(20, c:write(data)):await() })
      local flush = cf.spawn(function() return c:write(""):await() end)
      cf.sleep(50):await()
      assert.is_false(flush:is_finished()) -- the queue is still waiting for the reader
      go:notify_one()
      assert.is_true(flush:await())
      c:close()
      assert.are.equal(#data, reader:await())
      l:close()
    end)
  end)
end)
