-- cfuture.socket: LuaSocket's API on cfuture, against cfuture's own servers
-- and hostile peers.
local cf = require "cfuture"
local socket = require "cfuture.socket"
local support = require "support"

local slow = support.slow
local unpack = table.unpack or unpack

-- A TCP server on a free port: handler(conn) runs in a task per connection.
local function server(handler)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local tasks = {}
  local acceptor = cf.spawn(function()
    for conn in l:incoming() do
      tasks[#tasks + 1] = cf.spawn(function()
        handler(conn)
        if not conn:is_closed() then conn:close() end
      end)
    end
  end)
  return port, function()
    l:close()
    acceptor:abort()
    for _, t in ipairs(tasks) do t:abort() end
  end
end

local function echo_lines(conn)
  while true do
    local line = conn:read_line():await()
    if not line then return end
    conn:write(line .. "\n"):await()
  end
end

local function free_port()
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, p = l:local_address()
  l:close()
  return p
end

-- a task that counts 10 ms ticks: proof that other tasks ran meanwhile
local function ticker()
  local t = { n = 0 }
  t.h = cf.spawn(function()
    while true do
      cf.sleep(10):await()
      t.n = t.n + 1
    end
  end)
  return t
end

local function elapsed(fn)
  local t0 = cf.now()
  local function pack(...) return { n = select("#", ...), ... } end
  local r = pack(fn())
  return cf.now() - t0, unpack(r, 1, r.n)
end

local function connected(port)
  local c = socket.tcp()
  assert.equal(1, c:connect("127.0.0.1", port))
  return c
end

describe("cfuture.socket", function()
  it("has LuaSocket's shape", function()
    assert.matches("^LuaSocket 3", socket._VERSION)
    for _, name in ipairs({ "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "connect", "connect4",
      "connect6", "bind", "select", "gettime", "sleep", "protect", "newtry", "try", "skip",
      "choose", "sink", "source" }) do
      assert.equal("function", type(socket[name]), name)
    end
    for _, name in ipairs({ "toip", "tohostname", "gethostname", "getaddrinfo" }) do
      assert.equal("function", type(socket.dns[name]), name)
    end
    local t = socket.tcp()
    assert.matches("^tcp{master}: 0x%x+$", tostring(t))
    assert.equal("inet4", t:getfamily())
    assert.equal("inet6", socket.tcp6():getfamily())
    assert.matches("^udp{unconnected}: 0x%x+$", tostring(socket.udp()))
  end)

  it("connects, sends and receives lines, counts and everything, with LuaSocket's results",
    function()
      local port, stop = server(function(conn)
        local line = conn:read_line():await()
        assert.equal("go", line)
        conn:write("one\r\ntw\ro\nthree\nabcdefghij" .. "rest of it"):await()
        conn:shutdown()
      end)
      cf.block_on(function()
        local c = socket.tcp()
        assert.matches("^tcp{master}", tostring(c))
        assert.equal(1, c:connect("127.0.0.1", port))
        assert.matches("^tcp{client}", tostring(c))
        assert.same({ 3, nil, nil }, { c:send("go\n") })
        assert.equal("one", c:receive())
        assert.equal("two", c:receive("*l")) -- every CR is dropped, as LuaSocket does
        assert.equal(">three", c:receive("l", ">")) -- 5.3-style names too; prefix kept
        assert.equal("abc", c:receive(3))
        assert.equal("abcdefg", c:receive(7, "abc")) -- the prefix counts toward n
        assert.equal("hi", c:receive("2"))           -- sizes as numeric strings
        assert.equal("", c:receive(0))
        assert.equal("pp", c:receive(1, "pp"))       -- n <= #prefix: the prefix alone
        assert.equal("jrest of it", c:receive("*a"))
        assert.same({ nil, "closed", "" }, { c:receive("*a") })
        assert.same({ nil, "closed", "" }, { c:receive() })
        assert.equal(1, c:close())
      end)
      stop()
    end)

  it("sends the i..j slice LuaSocket sends and returns the last index", function()
    local got = {}
    local port, stop = server(function(conn)
      got[#got + 1] = conn:read_all():await()
    end)
    cf.block_on(function()
      local c = connected(port)
      assert.equal(5, c:send("hello"))
      assert.equal(4, c:send("abcdef", 2, 4))       -- bcd
      assert.equal(6, c:send("abcdef", -2))         -- ef
      assert.equal(3, c:send("abcdef", "2", "3"))   -- numeric strings: bc
      assert.equal(6, c:send("abcdef", 0, 100))     -- clamped: abcdef
      assert.equal(4, c:send("abcdef", 5, 4))       -- empty slice: i - 1
      assert.equal(2, c:send(42))                   -- numbers are strings
      c:close()
      while #got == 0 do cf.sleep(5):await() end
    end)
    assert.equal("hellobcdefbcabcdef42", got[1])
    stop()
  end)

  it("accepts ports as numeric strings and service names", function()
    local port, stop = server(echo_lines)
    cf.block_on(function()
      local c = socket.tcp()
      assert.equal(1, c:connect("127.0.0.1", tostring(port)))
      c:send("x\n")
      assert.equal("x", c:receive())
      c:close()
      local d = socket.tcp()
      assert.same({ nil, "service not supported for socket type" }, { d:connect("127.0.0.1", "no-such-svc") })
      assert.same({ nil, "service not supported for socket type" }, { d:connect("127.0.0.1", 70000) })
      assert.same({ nil, "service not supported for socket type" }, { d:connect("127.0.0.1", 80.5) })
    end)
    stop()
  end)

  it("refuses, fails to resolve, and says so in LuaSocket's words", function()
    local port = free_port()
    cf.block_on(function()
      local c = socket.tcp()
      assert.same({ nil, "connection refused" }, { c:connect("127.0.0.1", port) })
      assert.same({ nil, "connection refused" }, { socket.connect("127.0.0.1", port) })
      assert.same({ nil, "host or service not provided, or not known" },
        { socket.connect("nonexistent.invalid", 80) })
      assert.same({ nil, "host not found" }, { socket.dns.toip("nonexistent.invalid") })
      assert.same({ nil, "ai_family not supported" }, { socket.tcp4():connect("::1", port) })
    end)
  end)

  it("times out a connect the server never completes, and keeps no descriptor of it", function()
    -- a listener with a full backlog that never accepts: later SYNs go unanswered
    local l = assert(cf.net.listen("127.0.0.1", 0, { backlog = 0 }))
    local _, port = l:local_address()
    cf.block_on(function()
      local keep, results = {}, {}
      for i = 1, 4 do
        local c = socket.tcp()
        c:settimeout(0.2)
        results[i] = { elapsed(function() return c:connect("127.0.0.1", port) end) }
        keep[i] = c
      end
      local last = results[4]
      assert.same({ nil, "timeout" }, { last[2], last[3] })
      assert.is_true(last[1] >= 195 and last[1] < 200 + 800 * slow, "took " .. last[1])
      for _, c in ipairs(keep) do c:close() end
    end)
    support.full_gc()
    local before = support.fd_count()
    cf.block_on(function()
      for _ = 1, 5 do
        local c = socket.tcp()
        c:settimeout(0.05)
        assert.same({ nil, "timeout" }, { c:connect("127.0.0.1", port) })
      end
      cf.sleep(20):await()
    end)
    support.full_gc()
    assert.equal(before, support.fd_count())
    l:close()
  end)

  it("times out a silent peer in time while other tasks run, and loses no byte", function()
    local feed = cf.channel()
    local port, stop = server(function(conn)
      while true do
        local data = feed:recv():await()
        if not data then return end
        conn:write(data):await()
      end
    end)
    cf.block_on(function()
      local c = connected(port)
      assert.equal(1, c:settimeout(0.2))
      local t = ticker()
      local ms, a, b, p = elapsed(function() return c:receive() end)
      assert.same({ nil, "timeout", "" }, { a, b, p })
      assert.is_true(ms >= 195 and ms < 200 + 800 * slow, "took " .. ms)
      assert.is_true(t.n >= 2, "ticks " .. t.n)
      -- a partial line comes back as partial; the rest follows in the next receive
      feed:send("abc"):await()
      cf.sleep(30):await()
      assert.same({ nil, "timeout", "abc" }, { c:receive() })
      feed:send("def\nxyz"):await()
      assert.equal("abcdef", c:receive("*l", "abc"))
      assert.same({ nil, "timeout", "xyz" }, { c:receive(5) })
      feed:send("12"):await()
      assert.equal("xyz12", c:receive(5, "xyz"))
      -- "*a" keeps what came too
      feed:send("tail"):await()
      assert.same({ nil, "timeout", "tail" }, { c:receive("*a") })
      -- timeout 0: what is there now, never a wait
      feed:send("now\n"):await()
      cf.sleep(30):await()
      c:settimeout(0)
      assert.equal("now", c:receive())
      ms, a, b = elapsed(function() return c:receive() end)
      assert.same({ nil, "timeout" }, { a, b })
      assert.is_true(ms < 50 * slow, "took " .. ms)
      t.h:abort()
      feed:close()
      c:close()
    end)
    stop()
  end)

  it("polls with timeout 0 as a non-blocking LuaSocket loop does", function()
    local port, stop = server(function(conn)
      cf.sleep(50):await()
      conn:write("late line\n"):await()
      cf.sleep(50):await()
      conn:write("x"):await()
      cf.sleep(5000):await()
    end)
    cf.block_on(function()
      local c = connected(port)
      c:settimeout(0)
      local tries, line, err = 0, nil, nil
      repeat
        tries = tries + 1
        line, err = c:receive()
        if not line then
          assert.equal("timeout", err)
          socket.sleep(0.005)
        end
      until line or tries > 2000
      assert.equal("late line", line)
      assert.is_true(tries > 1)
      local got, partial
      repeat
        got, err, partial = c:receive(1)
        if not got then socket.sleep(0.005) end
      until got
      assert.equal("x", got)
      c:close()
      -- a server polled the same way
      local s = assert(socket.bind("127.0.0.1", 0))
      s:settimeout(0)
      local _, sp = s:getsockname()
      cf.spawn(function()
        cf.sleep(30):await()
        cf.net.connect("127.0.0.1", sp):await()
      end)
      local cl
      repeat
        cl, err = s:accept()
        if not cl then
          assert.equal("timeout", err)
          socket.sleep(0.005)
        end
      until cl
      cl:close()
      s:close()
    end)
    stop()
  end)

  it("'b' bounds each wait, 't' the whole call", function()
    local port, stop = server(function(conn)
      for i = 1, 8 do
        cf.sleep(60):await()
        if not conn:write(tostring(i)):await() then return end
      end
      conn:write("\n"):await()
      cf.sleep(5000):await()
    end)
    cf.block_on(function()
      -- 8 bytes 60 ms apart: no wait is over 200 ms, the whole is ~500 ms
      local c = connected(port)
      c:settimeout(0.2 * slow)
      local ms, line = elapsed(function() return c:receive() end)
      assert.equal("12345678", line)
      assert.is_true(ms >= 400, "took " .. ms)
      c:close()
      local d = connected(port)
      d:settimeout(0.25, "t")
      local ms2, a, b, p = elapsed(function() return d:receive() end)
      assert.equal(nil, a)
      assert.equal("timeout", b)
      assert.is_true(#p <= 4 and ("1234"):sub(1, #p) == p, "partial " .. tostring(p))
      assert.is_true(ms2 >= 245 and ms2 < 250 + 800 * slow, "took " .. ms2)
      assert.same({ -1, 0.25 }, { d:gettimeout() })
      d:close()
    end)
    stop()
  end)

  it("reads a line sent one byte at a time, and lines longer than the stream holds", function()
    local big = string.rep("x", 3 * 1024 * 1024 + 17)
    local port, stop = server(function(conn)
      for ch in ("hello world\r\n"):gmatch(".") do
        conn:write(ch):await()
        cf.sleep(2):await()
      end
      conn:write(big .. "\r\n" .. big .. "\nend\n"):await()
      cf.sleep(5000):await()
    end)
    cf.block_on(function()
      local c = connected(port)
      assert.equal("hello world", c:receive())
      local line = c:receive()
      assert.equal(#big, #line)
      assert.is_true(line == big)
      c:settimeout(5 * slow) -- the per-wait path reads in chunks
      line = c:receive()
      assert.equal(#big, #line)
      assert.equal("end", c:receive())
      c:close()
    end)
    stop()
  end)

  it("receives counts larger than the stream buffers, with and without limits", function()
    local big = string.rep("0123456789", 600000) -- 6 MB
    local port, stop = server(function(conn)
      conn:write(big .. big):await()
      conn:write("end"):await()
    end)
    cf.block_on(function()
      local c = connected(port)
      local d = c:receive(#big)
      assert.equal(#big, #d)
      assert.is_true(d == big)
      c:settimeout(10 * slow)
      d = c:receive(tostring(#big))
      assert.is_true(d == big)
      c:settimeout(nil)
      assert.same({ nil, "closed", "end" }, { c:receive(10) })
      c:close()
    end)
    stop()
  end)

  it("gives 'closed' with the partial data when the peer closes", function()
    local port, stop = server(function(conn)
      conn:write("no newline"):await()
    end)
    cf.block_on(function()
      local c = connected(port)
      assert.same({ nil, "closed", "no newline" }, { c:receive() })
      assert.same({ nil, "closed", "" }, { c:receive(3) })
      assert.same({ nil, "closed", "" }, { c:receive() })
      c:close()
    end)
    stop()
  end)

  it("returns 'closed' when the peer resets mid-write (no SIGPIPE)", function()
    local port, stop = server(function(conn)
      conn:read_exact(1000):await()
      conn:reset()
    end)
    cf.block_on(function()
      local c = connected(port)
      local chunk = string.rep("z", 1024 * 1024)
      local r
      for _ = 1, 200 do
        r = { c:send(chunk) }
        if not r[1] then break end
      end
      assert.equal(nil, r[1])
      assert.equal("closed", r[2])
      assert.equal("number", type(r[3]))
      assert.is_true(r[3] >= 0 and r[3] < #chunk)
      assert.same({ nil, "closed", "" }, { c:receive() })
      assert.same({ nil, "closed", 0 }, { c:send("x") })
      c:close()
    end)
    stop()
  end)

  it("gives 'closed' and what came when the peer resets mid-line", function()
    local port, stop = server(function(conn)
      conn:write("par"):await()
      cf.sleep(50):await()
      conn:reset()
    end)
    cf.block_on(function()
      local c = connected(port)
      local a, b, p = c:receive()
      assert.equal(nil, a)
      assert.equal("closed", b)
      assert.is_true(p == "par" or p == "", "partial " .. tostring(p))
      assert.same({ nil, "closed", "" }, { c:receive(1) })
      c:close()
    end)
    stop()
  end)

  it("speaks IPv6", function()
    local l = cf.net.listen("::1", 0)
    if not l then
      pending("no IPv6 loopback")
      return
    end
    l:close()
    cf.block_on(function()
      local s = assert(socket.bind("::1", 0))
      local ip, port, fam = s:getsockname()
      assert.same({ "::1", "inet6" }, { ip, fam })
      assert.equal("inet6", s:getfamily())
      local h = cf.spawn(function()
        local c = assert(s:accept())
        local line = c:receive()
        c:send(line .. "!\n")
        c:close()
      end)
      local c = assert(socket.connect6("::1", port))
      assert.same({ "::1", port, "inet6" }, { c:getpeername() })
      c:send("six\n")
      assert.equal("six!", c:receive())
      h:await()
      c:close()
      s:close()
      assert.same({ nil, "ai_family not supported" }, { socket.tcp6():connect("127.0.0.1", port) })
      local u = socket.udp6()
      assert.equal(1, u:setsockname("::1", 0))
      local _, up, ufam = u:getsockname()
      assert.equal("inet6", ufam)
      local v = socket.udp6()
      assert.equal(2, v:sendto("v6", "::1", up))
      u:settimeout(1 * slow)
      assert.equal("v6", u:receive())
      u:close()
      v:close()
    end)
  end)

  it("finds the descriptors of servers and datagram sockets", function()
    cf.block_on(function()
      local s = assert(socket.bind("127.0.0.1", 0))
      local u = socket.udp()
      assert.equal(-1, u:getfd()) -- not bound yet
      u:setsockname("127.0.0.1", 0)
      local sfd, ufd = s:getfd(), u:getfd()
      assert.is_true(sfd > 2 and ufd > 2 and sfd ~= ufd, sfd .. " " .. ufd)
      assert.equal(-1, socket.tcp():getfd())
      s:close()
      u:close()
      assert.same({ -1, -1 }, { s:getfd(), u:getfd() })
    end)
  end)

  it("gives 'timeout' to a send the peer never reads, with every byte handed over", function()
    local port, stop = server(function() cf.sleep(10000):await() end)
    cf.block_on(function()
      local c = connected(port)
      c:settimeout(0.1)
      local chunk = string.rep("q", 4 * 1024 * 1024)
      local r
      local t = ticker()
      for _ = 1, 40 do
        r = { c:send(chunk) }
        if not r[1] then break end
      end
      assert.same({ nil, "timeout", #chunk }, r)
      assert.is_true(t.n >= 2, "ticks " .. t.n)
      t.h:abort()
      c:close()
    end)
    stop()
  end)

  it("serves: bind, listen, accept, with timeouts and LuaSocket's errors", function()
    cf.block_on(function()
      local s = assert(socket.bind("127.0.0.1", 0))
      assert.matches("^tcp{server}", tostring(s))
      local ip, port, fam = s:getsockname()
      assert.same({ "127.0.0.1", "inet" }, { ip, fam })
      assert.is_true(port > 0)
      s:settimeout(0.15)
      local ms, a, b = elapsed(function() return s:accept() end)
      assert.same({ nil, "timeout" }, { a, b })
      assert.is_true(ms >= 145 and ms < 150 + 800 * slow, "took " .. ms)
      assert.same({ nil, "address already in use" }, { socket.bind("127.0.0.1", port) })
      local m = socket.tcp()
      assert.same({ nil, "address already in use" }, { m:bind("127.0.0.1", tostring(port)) })
      m:close()
      -- a client through cf.net, the server side through the module
      local peer = cf.spawn(function()
        local st = assert(cf.net.connect("127.0.0.1", port):await())
        st:write("ping\n"):await()
        local r = st:read_line():await()
        st:close()
        return r
      end)
      s:settimeout(5 * slow)
      local c = assert(s:accept())
      assert.matches("^tcp{client}", tostring(c))
      local pip, pport = c:getpeername()
      assert.equal("127.0.0.1", pip)
      assert.is_true(pport > 0)
      assert.equal(port, select(2, c:getsockname()))
      assert.equal("ping", c:receive())
      c:send("pong\n")
      assert.equal("pong", peer:await())
      c:close()
      -- master -> server by hand, and accept with timeout 0 takes a waiting connection
      local m2 = socket.tcp()
      assert.equal(1, m2:setoption("reuseaddr", true))
      assert.equal(1, m2:bind("*", 0))
      assert.equal(1, m2:listen(8))
      local _, p2 = m2:getsockname()
      local cl = assert(socket.connect("127.0.0.1", p2))
      cf.sleep(20):await()
      m2:settimeout(0)
      local got = m2:accept()
      assert.matches("^tcp{client}", tostring(got))
      got:close()
      cl:close()
      m2:close()
      s:close()
      assert.same({ nil, "closed" }, { s:accept() })
    end)
  end)

  it("sets and gets options, and linger 0 closes with a reset", function()
    local results = {}
    local port, stop = server(function(conn)
      results[#results + 1] = { conn:read():await() }
    end)
    cf.block_on(function()
      local c = socket.tcp()
      assert.equal(1, c:setoption("keepalive", true)) -- before connect: applied on connect
      assert.equal(1, c:connect("127.0.0.1", port))
      assert.is_true(c:getoption("keepalive"))
      assert.is_true(c:getoption("tcp-nodelay")) -- cfuture's connections start with it on
      assert.equal(1, c:setoption("tcp-nodelay", false))
      assert.is_false(c:getoption("tcp-nodelay"))
      assert.equal(1, c:setoption("reuseaddr", true))
      assert.is_true(c:getoption("reuseaddr"))
      assert.same({ on = false, timeout = 0 }, c:getoption("linger"))
      assert.equal(1, c:setoption("linger", { on = true, timeout = 0 }))
      assert.same({ on = true, timeout = 0 }, c:getoption("linger"))
      c:close()
      while #results == 0 do cf.sleep(5):await() end
    end)
    assert.same({ nil, "stream:read: connection reset by peer", "ECONNRESET" }, results[1])
    stop()
  end)

  it("tells dirty, stats, peer and local names", function()
    local port, stop = server(function(conn)
      conn:write("a\nb\n"):await()
      conn:read_all():await()
    end)
    cf.block_on(function()
      local c = connected(port)
      assert.is_false(c:dirty())
      assert.equal("a", c:receive())
      cf.sleep(20):await()
      assert.is_true(c:dirty()) -- "b\n" is buffered
      assert.equal("b", c:receive())
      assert.is_false(c:dirty())
      c:send("12345")
      local r, s, age = c:getstats()
      assert.same({ 4, 5 }, { r, s })
      assert.is_true(age >= 0 and age < 10 * slow)
      assert.equal(1, c:setstats(10, "20", 100))
      r, s, age = c:getstats()
      assert.same({ 10, 20 }, { r, s })
      assert.is_true(age >= 100 and age < 110 * slow)
      assert.same({ "127.0.0.1", port, "inet" }, { c:getpeername() })
      local lip, lport, lfam = c:getsockname()
      assert.same({ "127.0.0.1", "inet" }, { lip, lfam })
      assert.is_true(lport > 0 and lport ~= port)
      local fd = c:getfd()
      assert.equal("number", type(fd))
      assert.is_true(fd > 2)
      c:close()
      assert.equal(-1, c:getfd())
    end)
    stop()
  end)

  it("shuts down each direction", function()
    local got
    local port, stop = server(function(conn)
      got = conn:read_all():await()
      conn:write("late\n"):await()
    end)
    cf.block_on(function()
      local c = connected(port)
      c:send("bye")
      assert.equal(1, c:shutdown("send"))
      while not got do cf.sleep(5):await() end
      assert.equal("bye", got)
      assert.equal("late", c:receive())
      assert.equal(1, c:shutdown("receive"))
      assert.same({ nil, "closed", "" }, { c:receive() })
      assert.equal(1, c:shutdown())
      c:close()
    end)
    stop()
  end)

  it("answers closed sockets with 'closed' and raises on bad arguments naming the function",
    function()
      local port, stop = server(echo_lines)
      cf.block_on(function()
        local c = connected(port)
        local function raises(pat, f, ...)
          local ok, err = pcall(f, ...)
          assert.is_false(ok)
          assert.matches(pat, tostring(err))
        end
        raises("tcp:receive: argument #2 must be a pattern", c.receive, c, {})
        raises("tcp:receive: argument #2 must be a pattern %('%*l', '%*a'%) or a non%-negative number of bytes %(got '%*x'%)",
          c.receive, c, "*x")
        raises("tcp:receive: argument #2 .* %(got %-1%)", c.receive, c, -1)
        raises("tcp:receive: argument #3 must be a string", c.receive, c, 1, {})
        raises("tcp:send: argument #2 must be a string %(got nil%)", c.send, c)
        raises("tcp:send: argument #3 must be a number", c.send, c, "x", "one")
        raises("tcp:settimeout: argument #2 must be a number of seconds or nil %(got string%)",
          c.settimeout, c, "soon")
        raises("tcp:settimeout: argument #3 must be 'b' or 't' %(got 'x'%)", c.settimeout, c, 1, "x")
        raises("tcp:setoption: argument #2 must be a supported option %(got 'bogus'%)",
          c.setoption, c, "bogus", true)
        raises("tcp:setoption: argument #3 must be a boolean %(got number%)", c.setoption, c,
          "keepalive", 1)
        raises("tcp:setoption: argument #3 must be a table", c.setoption, c, "linger", true)
        raises("tcp:shutdown: argument #2 must be 'both', 'send' or 'receive' %(got 'sideways'%)",
          c.shutdown, c, "sideways")
        raises("tcp:accept: argument #1 must be a tcp{server} object %(call it with a colon; got tcp{client}%)",
          c.accept, c)
        raises("tcp:receive: argument #1 must be a socket %(call it with a colon; got string%)",
          c.receive, "x")
        raises("tcp:connect: argument #2 must be a host name or address string %(got nil%)",
          socket.tcp().connect, socket.tcp())
        raises("tcp:connect: argument #3 must be a port number %(got table%)",
          socket.tcp().connect, socket.tcp(), "127.0.0.1", {})
        raises("tcp:connect: argument #2 must not contain NUL bytes", socket.tcp().connect,
          socket.tcp(), "a\0b", 1)
        raises("tcp:receive: argument #1 must be a tcp{client} object %(got tcp{master}%)",
          socket.tcp().receive, socket.tcp())
        raises("socket.sleep: argument #1 must be a number of seconds %(got nil%)", socket.sleep)
        raises("socket.select: argument #1 must be a table of cfuture.socket objects",
          socket.select, { {} }, nil, 0)
        raises("socket.protect: argument #1 must be a function", socket.protect, 1)
        raises("socket.dns.toip: argument #1 must be a host name", socket.dns.toip)
        raises("udp:sendto: argument #4 must be a port number", socket.udp().sendto,
          socket.udp(), "x", "127.0.0.1", nil)
        raises("udp:send: argument #1 must be a udp{connected} object", socket.udp().send,
          socket.udp(), "x")
        -- raised at the caller's line, however deep inside the module it is found
        for _, f in ipairs({
          function() c:receive("*x") end,
          function() socket.tcp():connect({}, 1) end,
          function() socket.udp():receive({}) end,
          function() c:settimeout(1, "z") end,
          function() socket.select({}, {}) end,
        }) do
          local ok, err = pcall(f)
          assert.is_false(ok)
          assert.matches("^spec/socket_spec%.lua:%d+: ", err)
        end
        -- the socket still works after all that
        c:send("still\n")
        assert.equal("still", c:receive())
        assert.equal(1, c:close())
        assert.equal(1, c:close())
        assert.same({ nil, "closed", "" }, { c:receive() })
        assert.same({ nil, "closed", "pre" }, { c:receive(5, "pre") })
        assert.same({ nil, "closed", 0 }, { c:send("x") })
        assert.same({ nil, "Bad file descriptor" }, { c:getpeername() })
        assert.same({ nil, "Bad file descriptor" }, { c:getsockname() })
        assert.same({ nil, "closed" }, { c:connect("127.0.0.1", port) })
        assert.same({ nil, "setsockopt failed" }, { c:setoption("keepalive", true) })
        assert.same({ nil, "getsockopt failed" }, { c:getoption("keepalive") })
        local m = socket.tcp()
        m:close()
        assert.same({ nil, "closed" }, { m:connect("127.0.0.1", port) })
        local again = connected(port)
        assert.equal(1, again:connect("127.0.0.1", port)) -- EISCONN is success, as in LuaSocket
        again:close()
      end)
      stop()
    end)

  it("leaks no descriptor", function()
    local port0, stop0 = server(echo_lines)
    cf.block_on(function()
      local c0 = connected(port0) -- warm up lazily made handles
      c0:send("w\n")
      c0:receive()
      c0:close()
      cf.sleep(20):await()
    end)
    stop0()
    cf.block_on(function() cf.sleep(20):await() end)
    support.full_gc()
    local before = support.fd_count()
    local port, stop = server(echo_lines)
    cf.block_on(function()
      local hs = {}
      for i = 1, 40 do
        hs[i] = cf.spawn(function()
          local c = connected(port)
          c:settimeout(5 * slow)
          c:send("n" .. i .. "\n")
          local r = c:receive()
          c:close()
          return r
        end)
      end
      for i = 1, 40 do assert.equal("n" .. i, hs[i]:await()) end
      local r = socket.tcp()
      r:connect("127.0.0.1", free_port()) -- refused
      r:close()
      local s = assert(socket.bind("127.0.0.1", 0))
      s:close()
      local u = socket.udp()
      u:setsockname("127.0.0.1", 0)
      u:close()
      cf.sleep(50):await()
    end)
    stop()
    cf.block_on(function() cf.sleep(50):await() end)
    support.full_gc()
    assert.equal(before, support.fd_count())
  end)

  it("keeps time and sleeps only the task", function()
    local t = socket.gettime()
    assert.is_true(math.abs(t - os.time()) <= 1.01, "gettime " .. t .. " os.time " .. os.time())
    cf.block_on(function()
      local tk = ticker()
      local t0 = socket.gettime()
      local ms = elapsed(function() socket.sleep(0.1) end)
      local dt = socket.gettime() - t0
      assert.is_true(ms >= 99 and ms < 100 + 500 * slow, "took " .. ms)
      assert.is_true(dt >= 0.098 and dt < 0.1 + 0.5 * slow, "gettime moved " .. dt)
      assert.is_true(tk.n >= 2, "ticks " .. tk.n)
      tk.h:abort()
      assert.is_nil(socket.sleep(-1)) -- negative: no wait
      socket.sleep("0.01")            -- numeric strings
    end)
    local ms = elapsed(function() socket.sleep(0.05) end) -- outside a task: blocks
    assert.is_true(ms >= 49, "took " .. ms)
  end)

  it("resolves names", function()
    cf.block_on(function()
      local ip, info = socket.dns.toip("localhost")
      assert.equal("127.0.0.1", ip)
      assert.equal("localhost", info.name)
      assert.equal("127.0.0.1", info.ip[1])
      assert.same({}, info.alias)
      assert.same({ "10.1.2.3", { name = "10.1.2.3", alias = {}, ip = { "10.1.2.3" } } },
        { socket.dns.toip("10.1.2.3") })
      local name = socket.dns.tohostname("127.0.0.1")
      assert.equal("string", type(name))
      assert.is_true(#name > 0)
      local f = io.open("/proc/sys/kernel/hostname")
      local hn = f:read("*l")
      f:close()
      assert.equal(hn, socket.dns.gethostname())
      local list = socket.dns.getaddrinfo("127.0.0.1")
      assert.same({ { family = "inet", addr = "127.0.0.1" } }, list)
      assert.same({ nil, "host or service not provided, or not known" },
        { socket.dns.getaddrinfo("nonexistent.invalid") })
    end)
    -- outside a task too
    assert.equal("127.0.0.1", (socket.dns.toip("localhost")))
  end)

  it("sends and receives datagrams", function()
    cf.block_on(function()
      local a, b = socket.udp(), socket.udp()
      assert.equal(1, a:setsockname("127.0.0.1", 0))
      assert.equal(1, b:setsockname("127.0.0.1", "0"))
      local aip, aport, afam = a:getsockname()
      local _, bport = b:getsockname()
      assert.same({ "127.0.0.1", "inet" }, { aip, afam })
      assert.equal(5, b:sendto("hello", "127.0.0.1", aport))
      assert.same({ "hello", "127.0.0.1", bport }, { a:receivefrom() })
      assert.equal(10, b:sendto("0123456789", "127.0.0.1", tostring(aport)))
      assert.equal("0123", a:receive(4)) -- the rest of the datagram is dropped
      a:settimeout(0.1)
      local tk = ticker()
      local ms, r1, r2 = elapsed(function() return a:receive() end)
      assert.same({ nil, "timeout" }, { r1, r2 })
      assert.is_true(ms >= 95 and ms < 100 + 800 * slow, "took " .. ms)
      assert.is_true(tk.n >= 2)
      tk.h:abort()
      -- connected: send/receive, and only the peer is heard
      assert.equal(1, a:setpeername("127.0.0.1", bport))
      assert.matches("^udp{connected}", tostring(a))
      assert.same({ "127.0.0.1", bport, "inet" }, { a:getpeername() })
      assert.equal(3, a:send("abc"))
      b:settimeout(1 * slow)
      assert.same({ "abc", "127.0.0.1", aport }, { b:receivefrom() })
      local c = socket.udp() -- unbound: bound on first use
      assert.equal(5, c:sendto("noise", "127.0.0.1", aport))
      b:sendto("from b", "127.0.0.1", aport)
      a:settimeout(1 * slow)
      assert.equal("from b", a:receive())
      assert.equal(1, a:setpeername("*"))
      assert.matches("^udp{unconnected}", tostring(a))
      assert.equal(1, a:close())
      assert.same({ nil, "closed" }, { a:receive() })
      b:close()
      c:close()
    end)
  end)

  it("selects readable sockets without losing their data", function()
    local feed = {}
    local port, stop = server(function(conn)
      local q = cf.channel()
      feed[#feed + 1] = q
      while true do
        local d = q:recv():await()
        if not d then return end
        conn:write(d):await()
      end
    end)
    cf.block_on(function()
      local a, b = connected(port), connected(port)
      while #feed < 2 do cf.sleep(5):await() end
      local tk = ticker()
      local ms, r, w, e = elapsed(function() return socket.select({ a, b }, nil, 0.15) end)
      assert.same({ {}, {}, "timeout" }, { r, w, e })
      assert.is_true(ms >= 145 and ms < 150 + 800 * slow, "took " .. ms)
      assert.is_true(tk.n >= 2)
      tk.h:abort()
      cf.spawn(function()
        cf.sleep(50):await()
        feed[2]:send("for b\n"):await()
      end)
      r, w = socket.select({ a, b }, {}, 5 * slow)
      assert.equal(1, #r)
      assert.equal(b, r[1])
      assert.equal(1, r[b])
      assert.same({}, w)
      assert.is_true(b:dirty())
      assert.equal("for b", b:receive())
      -- writable at once; readable when buffered
      feed[1]:send("x\ny\n"):await()
      cf.sleep(20):await()
      assert.equal("x", a:receive())
      r, w = socket.select({ a, b }, { b }, 1)
      assert.same({ a, [a] = 1 }, r)
      assert.same({ b, [b] = 1 }, w)
      assert.equal("y", a:receive())
      -- a server socket is readable when a connection waits
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, sp = s:getsockname()
      cf.spawn(function() cf.net.connect("127.0.0.1", sp):await() end)
      r = socket.select({ s }, nil, 5 * slow)
      assert.equal(s, r[1])
      assert.matches("^tcp{client}", tostring(s:accept()))
      s:close()
      for _, q in ipairs(feed) do q:close() end
      a:close()
      b:close()
    end)
    stop()
  end)

  it("protect, newtry, try and skip work like LuaSocket's and can be yielded through", function()
    cf.block_on(function()
      local finalized = 0
      local try = socket.newtry(function() finalized = finalized + 1 end)
      local f = socket.protect(function(x)
        cf.sleep(10):await() -- a wait inside protect suspends the task (LuaJIT too)
        local a, b = try(x, "second")
        if x == "boom" then error("raised", 0) end
        return a, b
      end)
      assert.same({ 1, "second" }, { f(1) })
      assert.same({ nil, "second" }, { f(false) })
      assert.equal(1, finalized)
      local ok, err = pcall(f, "boom")
      assert.is_false(ok)
      assert.equal("raised", err)
      assert.same({ nil, "msg" }, { socket.protect(function() socket.try(nil, "msg") end)() })
      assert.same({ nil, nil }, { socket.protect(function() socket.try(false) end)() })
      assert.same({ "b", "c" }, { socket.skip(1, "a", "b", "c") })
      assert.same({ "c" }, { socket.skip("2", "a", "b", "c") })
      assert.same({ 1, 2 }, { socket.try(1, 2) })
    end)
  end)

  it("works outside a task by running the loop", function()
    local port, stop = server(echo_lines)
    local c = socket.tcp()
    assert.equal(1, c:connect("127.0.0.1", port))
    local bg = 0
    local h = cf.spawn(function()
      for _ = 1, 5 do
        cf.sleep(5):await()
        bg = bg + 1
      end
    end)
    c:send("outside\n")
    c:settimeout(0.2)
    assert.equal("outside", c:receive())
    assert.same({ nil, "timeout", "" }, { c:receive() })
    assert.equal(5, bg) -- the spawned task ran while the receive waited
    c:close()
    cf.block_on(h)
    stop()
  end)

  it("install() answers require 'socket' and uninstall() undoes it", function()
    local before = package.loaded.socket
    assert.equal(socket, socket.install())
    assert.equal(socket, require "socket")
    assert.equal(socket, require "socket.core")
    socket.uninstall()
    assert.equal(before, package.loaded.socket)
  end)
end)
