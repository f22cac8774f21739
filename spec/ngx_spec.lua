-- cfuture.ngx: OpenResty's cosocket API and the ngx helpers, against
-- cfuture's own servers and hostile peers (silent, slow, one byte at a
-- time, resetting), with OpenResty's exact results and error strings.
local cf = require "cfuture"
local support = require "support"
local refused_port = support.unused_port
local ticker = support.ticker
local ngx = require "cfuture.ngx"
local S = ngx.cfuture.settings
local slow = support.slow

-- A listener whose connections run handler(conn, n) in tasks of their own
-- (n counts connections). Returns port, stats {accepted, closed}, stop().
local function server(handler)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local stats = { accepted = 0, conns = {} }
  cf.spawn(function()
    for c in l:incoming() do
      stats.accepted = stats.accepted + 1
      stats.conns[#stats.conns + 1] = c
      local n = stats.accepted
      cf.spawn(function()
        -- stop() closes what is left: a handler's failing read is expected then
        pcall(handler, c, n)
        if not c:is_closed() then c:close() end
      end)
    end
  end)
  return port, stats, function()
    l:close()
    for _, c in ipairs(stats.conns) do
      if not c:is_closed() then c:close() end
    end
  end
end

-- Echo lines back ("PING" -> "+PONG"), as a tiny request/response server.
local function line_server(c)
  for line in c:lines() do
    if line == "QUIT" then break end
    c:write(line == "PING" and "+PONG\r\n" or (line .. "\r\n")):await()
  end
  c:close()
end

local function run(fn) return cf.block_on(fn) end

after_each(function()
  ngx.cfuture.close_pools()
end)

describe("ngx.socket.tcp connect", function()
  it("connects (1), refuses with OpenResty's strings, checks ports", function()
    run(function()
      local port, _, stop = server(line_server)
      local sock = ngx.socket.tcp()
      assert.are.equal(1, sock:connect("127.0.0.1", port))
      assert.are.equal(0, sock:getreusedtimes())
      assert.are.equal(1, sock:close())
      assert.are.same({ nil, "closed" }, { sock:close() })
      -- the port as a numeric string, as lua_tointeger takes it
      assert.are.equal(1, sock:connect("127.0.0.1", tostring(port)))
      sock:close()
      assert.are.same({ nil, "connection refused" }, { sock:connect("127.0.0.1", refused_port()) })
      assert.are.same({ nil, "missing the port number" }, { sock:connect("127.0.0.1") })
      assert.are.same({ nil, "bad port number: 70000" }, { sock:connect("127.0.0.1", 70000) })
      local ok, err = sock:connect("unix:/tmp/some.sock")
      assert.is_nil(ok)
      assert.matches("unix domain sockets are not supported by cfuture", err, 1, true)
      stop()
    end)
  end)

  it("closes the open connection first when connecting again", function()
    run(function()
      local closed = 0
      local port, stats, stop = server(function(c)
        while c:read():await() do end
        closed = closed + 1
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert(sock:connect("127.0.0.1", port))
      cf.sleep(50):await()
      assert.are.equal(2, stats.accepted)
      assert.are.equal(1, closed)
      sock:close()
      stop()
    end)
  end)

  it("ngx.socket.connect makes and connects a socket", function()
    run(function()
      local port, _, stop = server(line_server)
      local sock = assert(ngx.socket.connect("127.0.0.1", port))
      assert.are.equal(5, sock:send("PING\n"))
      assert.are.equal("+PONG", sock:receive())
      sock:close()
      assert.are.same({ nil, "connection refused" }, { ngx.socket.connect("127.0.0.1", refused_port()) })
      stop()
    end)
  end)
end)

describe("send", function()
  it("sends strings, numbers and nested arrays, returning the bytes sent", function()
    run(function()
      local got = {}
      local port, _, stop = server(function(c)
        got[#got + 1] = c:read_all():await()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal(5, sock:send("hello"))
      assert.are.equal(0, sock:send(""))
      assert.are.equal(0, sock:send({}))
      assert.are.equal(14, sock:send({ "*", 2, "\r\n", { "$", 3, { "\r\n", "GET" } }, 1.5 }))
      assert.are.equal(2, sock:send(42))
      sock:close()
      cf.sleep(50):await()
      assert.are.equal("hello*2\r\n$3\r\nGET1.542", got[1])
      assert.are.same({ nil, "closed" }, { sock:send("x") })
      stop()
    end)
  end)

  it("raises on what it cannot send, naming the function", function()
    run(function()
      local sock = ngx.socket.tcp()
      assert.has_error(function() sock:send(print) end,
        "tcpsock:send: argument #2 must be a string, number, boolean, nil or array table (got function)")
      assert.has_error(function() sock:send({ a = 1 }) end,
        "tcpsock:send: argument #2 must be an array table (non-array table found)")
      assert.has_error(function() sock:send({ "a", true }) end,
        "tcpsock:send: argument #2 must hold strings, numbers and arrays (bad data type boolean found)")
      local t = { "a" }
      t[2] = t
      assert.has_error(function() sock:send(t) end, "tcpsock:send: argument #2 must not contain itself")
    end)
  end)
end)

describe("receive", function()
  it("reads lines (CRs ignored), sizes, and ends with nil, 'closed', partial", function()
    run(function()
      local port, _, stop = server(function(c)
        c:write("first\r\nse\rcond\nABCDEFGHIJ"):await()
        c:write("tail"):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal("first", sock:receive())
      assert.are.equal("second", sock:receive("*l"))
      assert.are.equal("ABC", sock:receive(3))
      assert.are.equal("DEFG", sock:receive("4")) -- a numeric string is a size
      assert.are.equal("", sock:receive(0))
      assert.are.same({ nil, "closed", "HIJtail" }, { sock:receive(100) })
      -- a fatal error closes the socket
      assert.are.same({ nil, "closed" }, { sock:receive() })
      assert.are.same({ nil, "closed" }, { sock:getreusedtimes() })
      stop()
    end)
  end)

  it("gives the partial line at the end of the stream", function()
    run(function()
      local port, _, stop = server(function(c)
        c:write("no newline\r"):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.are.same({ nil, "closed", "no newline" }, { sock:receive() })
      stop()
    end)
  end)

  it("'*a' reads to the end; a line longer than 1 MiB and a 3 MB size work", function()
    run(function()
      local big = ("x"):rep(3 * 1000 * 1000)
      local port, _, stop = server(function(c, n)
        if n == 1 then
          c:write(("L"):rep(1500000) .. "\nrest"):await()
        else
          c:write(big):await()
          c:write(big):await()
        end
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local line = sock:receive()
      assert.are.equal(1500000, #line)
      assert.are.equal(("L"):rep(1500000), line)
      assert.are.equal("rest", sock:receive("*a"))
      -- after '*a' the read side is done
      assert.are.same({ nil, "closed" }, { sock:receive() })
      sock:close()
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal(big, sock:receive(#big))
      local all = sock:receive("*a")
      assert.are.equal(#big, #all)
      assert.are.same({ nil, "closed" }, { sock:receive("*a") })
      sock:close()
      stop()
    end)
  end)

  it("raises on bad patterns, naming the function", function()
    run(function()
      local sock = ngx.socket.tcp()
      assert.has_error(function() sock:receive("*x") end,
        'tcpsock:receive: argument #2 must be a byte count, "*l" or "*a" (got "*x")')
      assert.has_error(function() sock.receive() end,
        "tcpsock:receive: argument #1 must be a socket from ngx.socket.tcp() (call it with a colon; got nil)")
      -- an unconnected socket
      assert.are.same({ nil, "closed" }, { sock:receive() })
      local port, _, stop = server(line_server)
      assert(sock:connect("127.0.0.1", port))
      assert.has_error(function() sock:receive(-1) end,
        'tcpsock:receive: argument #2 must be a byte count, "*l" or "*a" (got -1)')
      assert.has_error(function() sock:receive({}) end,
        'tcpsock:receive: argument #2 must be a byte count, "*l" or "*a" (got table)')
      assert.has_error(function() sock:receive(1.5) end,
        'tcpsock:receive: argument #2 must be a byte count, "*l" or "*a" (got 1.5)')
      -- the socket is still usable after a raised argument error
      assert.are.equal(5, sock:send("PING\n"))
      assert.are.equal("+PONG", sock:receive())
      sock:close()
      stop()
    end)
  end)

  it("receiveany returns what is there, at most max", function()
    run(function()
      local port, _, stop = server(function(c)
        c:write("0123456789"):await()
        cf.sleep(30):await()
        c:write("abc"):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal("0123", sock:receiveany(4))
      assert.are.equal("456789", sock:receiveany(100))
      assert.are.equal("abc", sock:receiveany("1024"))
      assert.are.same({ nil, "closed" }, { sock:receiveany(10) })
      assert.has_error(function() sock:receiveany(0) end,
        "tcpsock:receiveany: argument #2 must be a positive byte count (got 0)")
      assert.has_error(function() sock:receiveany() end,
        "tcpsock:receiveany: argument #2 must be a positive byte count (got nil)")
      stop()
    end)
  end)

  it("a second reader of the same socket gets 'socket busy reading'", function()
    run(function()
      local port, _, stop = server(function(c)
        cf.sleep(100 * slow):await()
        c:write("late\n"):await()
        cf.sleep(100):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local first = cf.spawn(function() return sock:receive() end)
      while not sock._reading do cf.sleep(1):await() end -- it waits in receive now
      assert.are.same({ nil, "socket busy reading" }, { sock:receive() })
      assert.are.equal("late", first:await())
      -- a reader aborted mid-read does not leave the socket busy
      local stuck = cf.spawn(function() return sock:receive() end)
      cf.sleep(10):await()
      stuck:abort()
      cf.sleep(10):await()
      assert.are.same({ nil, "closed", "" }, { sock:receive() })
      stop()
    end)
  end)
end)

describe("receiveuntil", function()
  it("finds a pattern split across packets, inclusive or not", function()
    run(function()
      local port, _, stop = server(function(c)
        for _, piece in ipairs({ "hello, wor", "ld\r\n--bou", "n", "dary rest\r\n--", "boundary", "!" }) do
          c:write(piece):await()
          cf.sleep(15):await()
        end
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local reader = sock:receiveuntil("\r\n--boundary")
      assert.are.equal("hello, world", reader())
      local inc = sock:receiveuntil("\r\n--boundary", { inclusive = true })
      assert.are.equal(" rest\r\n--boundary", inc())
      -- the end of the stream before the pattern
      assert.are.same({ nil, "closed", "!" }, { reader() })
      stop()
    end)
  end)

  it("with a size, iterates as OpenResty's documentation shows", function()
    run(function()
      local port, _, stop = server(function(c)
        c:write("hello, world! -agentzh\r\n--abcedhb blah blah"):await()
        cf.sleep(200):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local reader = sock:receiveuntil("\r\n--abcedhb")
      local chunks = {}
      while true do
        local data, err = reader(4)
        if not data then
          assert.is_nil(err)
          break
        end
        chunks[#chunks + 1] = data
      end
      assert.are.same({ "hell", "o, w", "orld", "! -a", "gent", "zh" }, chunks)
      assert.are.equal(" blah", sock:receive(5))
      sock:close()
      stop()
    end)
  end)

  it("a timeout gives the safe partial; the next call finds the pattern; no byte lost", function()
    run(function()
      local go = cf.notify()
      local port, _, stop = server(function(c)
        c:write("abcdef--E"):await()
        go:wait():await()
        c:write("ND--xyz"):await()
        cf.sleep(100):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:settimeout(100)
      local reader = sock:receiveuntil("--END--")
      local data, err, partial = reader()
      assert.is_nil(data)
      assert.are.equal("timeout", err)
      -- the last #pattern - 1 bytes could begin the pattern: they stay
      assert.are.equal("abc", partial)
      go:notify_one()
      assert.are.equal("def", reader())
      assert.are.equal("xyz", sock:receive(3))
      sock:close()
      stop()
    end)
  end)

  it("checks its arguments", function()
    local sock = ngx.socket.tcp()
    assert.are.same({ nil, "pattern is empty" }, { sock:receiveuntil("") })
    assert.has_error(function() sock:receiveuntil(nil) end,
      "tcpsock:receiveuntil: argument #2 must be a pattern string (got nil)")
    assert.has_error(function() sock:receiveuntil("x", { inclusive = 1 }) end,
      'tcpsock:receiveuntil: bad "inclusive" option value type: number')
    local reader = sock:receiveuntil("x")
    assert.has_error(function() reader("many") end,
      'receiveuntil iterator: argument #1 must be a byte count (got "many")')
  end)
end)

describe("timeouts", function()
  it("a silent peer: nil, 'timeout' in time, other tasks ran, the socket stays usable", function()
    run(function()
      local go = cf.notify()
      local port, _, stop = server(function(c)
        c:write("hel"):await()
        go:wait():await()
        c:write("lo\r\n"):await()
        for line in c:lines() do c:write(line .. "\n"):await() end
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:settimeout(200)
      local t = ticker(10)
      local t0 = cf.now()
      local data, err, partial = sock:receive()
      local ms = cf.now() - t0
      t.stop = true
      assert.is_nil(data)
      assert.are.equal("timeout", err)
      assert.are.equal("hel", partial)
      assert.is_true(ms >= 199, "the timeout came early: " .. ms)
      assert.is_true(ms < 200 + 800 * slow, "the timeout came late: " .. ms)
      assert.is_true(t.n >= 5, "other tasks did not run meanwhile: " .. t.n)
      -- a read timeout is not fatal and the rest of the line comes next
      go:notify_one()
      assert.are.equal("lo", sock:receive())
      assert.are.equal(5, sock:send("ping\n"))
      assert.are.equal("ping", sock:receive())
      -- a size read: the partial is what came, the rest follows
      sock:settimeouts(1000, 1000, 100)
      assert.are.same({ nil, "timeout", "" }, { sock:receive(10) })
      assert.are.same({ nil, "timeout" }, { sock:receiveany(10) })
      assert.are.same({ nil, "timeout", "" }, { sock:receive("*a") })
      sock:close()
      stop()
    end)
  end)

  it("counts from the last bytes that came: a slow but steady peer is not cut off", function()
    run(function()
      local port, _, stop = server(function(c)
        for ch in ("one byte at a time\r\nsecond--END--tail"):gmatch(".") do
          c:write(ch):await()
          cf.sleep(15):await()
        end
        cf.sleep(50):await()
        c:close()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:settimeout(150 * slow) -- each gap is 15 ms; the whole line takes ~300 ms
      local t0 = cf.now()
      assert.are.equal("one byte at a time", sock:receive())
      assert.is_true(cf.now() - t0 >= 250)
      assert.are.equal("second", sock:receiveuntil("--END--")())
      assert.are.equal("tail", sock:receive(4))
      assert.are.same({ nil, "closed" }, { sock:receiveany(1) })
      stop()
    end)
  end)

  it("a send to a peer that never reads times out and closes the socket", function()
    run(function()
      local port, _, stop = server(function(c) cf.sleep(3000 * slow):await() end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:settimeouts(1000, 150, 1000)
      local t0 = cf.now()
      local bytes, err = sock:send(("z"):rep(64 * 1024 * 1024))
      local ms = cf.now() - t0
      assert.is_nil(bytes)
      assert.are.equal("timeout", err)
      assert.is_true(ms >= 149 and ms < 150 + 2000 * slow, "took " .. ms)
      assert.are.same({ nil, "closed" }, { sock:send("x") })
      stop()
    end)
  end)

  it("checks its arguments (0 means the default, as in OpenResty)", function()
    local sock = ngx.socket.tcp()
    assert.has_error(function() sock:settimeout(-1) end,
      "tcpsock:settimeout: argument #2 must be a non-negative number of milliseconds below 2^31 (got -1)")
    assert.has_error(function() sock:settimeouts(1, "x", 1) end,
      'tcpsock:settimeouts: argument #3 must be a non-negative number of milliseconds below 2^31 (got "x")')
    sock:settimeout(0)
    assert.are.equal(S.read_timeout, sock._rt)
    sock:settimeouts(5, 6, 7)
    assert.are.same({ 5, 6, 7 }, { sock._ct, sock._st, sock._rt })
  end)
end)

describe("hostile peers", function()
  it("a reset mid-send: OpenResty's error string, then 'closed', no SIGPIPE", function()
    run(function()
      local port, _, stop = server(function(c)
        c:read(10):await()
        c:reset()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local bytes, err
      for _ = 1, 50 do
        bytes, err = sock:send(("r"):rep(4 * 1024 * 1024))
        if not bytes then break end
        cf.sleep(10):await()
      end
      assert.is_nil(bytes)
      assert.is_truthy(err == "connection reset by peer" or err == "broken pipe", err)
      assert.are.same({ nil, "closed" }, { sock:send("x") })
      assert.are.same({ nil, "closed" }, { sock:receive() })
      stop()
    end)
  end)

  it("a reset while reading: 'connection reset by peer'", function()
    run(function()
      local port, _, stop = server(function(c)
        c:write("partial"):await()
        cf.sleep(30):await()
        c:reset()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local data, err = sock:receive()
      assert.is_nil(data)
      assert.is_truthy(err == "connection reset by peer" or err == "closed", err)
      assert.are.same({ nil, "closed" }, { sock:receive() })
      stop()
    end)
  end)
end)

describe("the connection pool", function()
  it("reuses a kept connection: getreusedtimes counts, the server saw one connection", function()
    run(function()
      local port, stats, stop = server(line_server)
      for i = 0, 3 do
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", port))
        assert.are.equal(i, sock:getreusedtimes())
        assert.are.equal(5, sock:send("PING\n"))
        assert.are.equal("+PONG", sock:receive())
        assert.are.equal(1, sock:setkeepalive(10000, 5))
        -- the object is closed now
        assert.are.same({ nil, "closed" }, { sock:send("x") })
        assert.are.same({ nil, "closed" }, { sock:setkeepalive() })
      end
      assert.are.equal(1, stats.accepted)
      local info = ngx.cfuture.pool_info("127.0.0.1:" .. port)
      assert.are.same({ size = 5, idle = 1, connections = 1, waiting = 0 }, info)
      -- another pool name: another connection
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port, { pool = "other" }))
      assert.are.equal(0, sock:getreusedtimes())
      sock:close()
      assert.are.equal(2, stats.accepted)
      stop()
    end)
  end)

  it("idle connections expire: the peer sees them closed", function()
    run(function()
      local ended = {}
      local port, _, stop = server(function(c, n)
        for line in c:lines() do c:write(line .. "\n"):await() end
        ended[n] = cf.now()
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:send("hi\n")
      assert.are.equal("hi", sock:receive())
      local t0 = cf.now()
      assert.are.equal(1, sock:setkeepalive(150))
      cf.sleep(150 + 500 * slow):await()
      assert.is_truthy(ended[1], "the idle connection was not closed")
      assert.is_true(ended[1] - t0 >= 149, "expired early")
      assert.are.equal(0, ngx.cfuture.pool_info("127.0.0.1:" .. port).idle)
      stop()
    end)
  end)

  it("pool_size bounds the idle connections (the least recently kept goes)", function()
    run(function()
      local ended = {}
      local port, stats, stop = server(function(c, n)
        for line in c:lines() do c:write(line .. "\n"):await() end
        ended[#ended + 1] = n
      end)
      local socks = {}
      for i = 1, 3 do
        socks[i] = ngx.socket.tcp()
        assert(socks[i]:connect("127.0.0.1", port, { pool_size = 2 }))
        socks[i]:send("x\n")
        assert.are.equal("x", socks[i]:receive())
      end
      for i = 1, 3 do assert.are.equal(1, socks[i]:setkeepalive(0)) end
      cf.sleep(50):await()
      assert.are.same({ 1 }, ended)
      assert.are.equal(3, stats.accepted)
      local info = ngx.cfuture.pool_info("127.0.0.1:" .. port)
      assert.are.equal(2, info.idle)
      assert.are.equal(2, info.connections)
      -- the most recently kept comes out first
      local s = ngx.socket.tcp()
      assert(s:connect("127.0.0.1", port))
      assert.are.equal(1, s:getreusedtimes())
      s:send("who\n")
      assert.are.equal("who", s:receive())
      s:close()
      cf.sleep(50):await()
      assert.are.same({ 1, 3 }, ended)
      stop()
    end)
  end)

  it("refuses a socket with unread data, which stays usable", function()
    run(function()
      local port, stats, stop = server(function(c)
        for line in c:lines() do c:write("a\nb\n"):await() end
      end)
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock:send("go\n")
      assert.are.equal("a", sock:receive())
      assert.are.same({ nil, "unread data in buffer" }, { sock:setkeepalive() })
      assert.are.equal("b", sock:receive())
      assert.are.equal(1, sock:setkeepalive())
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal(1, sock:getreusedtimes())
      sock:close()
      assert.are.equal(1, stats.accepted)
      stop()
    end)
  end)

  it("does not hand out a connection the peer closed, or one with stray data", function()
    run(function()
      local port, stats, stop = server(function(c, n)
        local line = c:read_line():await()
        c:write(line .. "\n"):await()
        if n == 1 then
          c:close() -- right after the answer
        else
          cf.sleep(30):await()
          c:write("stray\n"):await() -- unasked-for bytes on an idle connection
          cf.sleep(1000):await()
        end
      end)
      for n = 1, 2 do
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", port))
        assert.are.equal(0, sock:getreusedtimes())
        sock:send("q\n")
        assert.are.equal("q", sock:receive())
        assert.are.equal(1, sock:setkeepalive())
        cf.sleep(100):await()
        assert.are.equal(0, ngx.cfuture.pool_info("127.0.0.1:" .. port).idle)
        assert.are.equal(n, stats.accepted)
      end
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.are.equal(0, sock:getreusedtimes())
      assert.are.equal(3, stats.accepted)
      sock:close()
      stop()
    end)
  end)

  it("backlog: at most pool_size connections, connects wait, then time out or fail", function()
    run(function()
      local port, stats, stop = server(line_server)
      local opts = { pool = "limited", pool_size = 1, backlog = 1 }
      local a = ngx.socket.tcp()
      assert(a:connect("127.0.0.1", port, opts))
      local waited = cf.spawn(function()
        local b = ngx.socket.tcp()
        local t0 = cf.now()
        assert(b:connect("127.0.0.1", port, opts))
        local r = { b:getreusedtimes(), cf.now() - t0 }
        b:close()
        return r
      end)
      cf.sleep(20):await()
      assert.are.equal(1, ngx.cfuture.pool_info("limited").waiting)
      local c = ngx.socket.tcp()
      assert.are.same({ nil, "too many waiting connect operations" }, { c:connect("127.0.0.1", port, opts) })
      cf.sleep(80):await()
      assert.are.equal(1, a:setkeepalive())
      local r = waited:await()
      assert.are.equal(1, r[1])
      assert.is_true(r[2] >= 99)
      assert.are.equal(1, stats.accepted)
      -- the slot is free again after b:close(): connects go through
      assert(c:connect("127.0.0.1", port, opts))
      -- a queued connect gives up after the connect timeout
      local d = ngx.socket.tcp()
      d:settimeouts(100, 1000, 1000)
      local t0 = cf.now()
      assert.are.same({ nil, "timeout" }, { d:connect("127.0.0.1", port, opts) })
      assert.is_true(cf.now() - t0 >= 99)
      c:close()
      stop()
    end)
  end)

  it("a socket collected without close gives its pool slot back", function()
    run(function()
      local port, _, stop = server(line_server)
      local opts = { pool = "collected", pool_size = 1, backlog = 2 }
      local function leak()
        local a = ngx.socket.tcp()
        assert(a:connect("127.0.0.1", port, opts))
      end
      leak()
      assert.are.equal(1, ngx.cfuture.pool_info("collected").connections)
      support.full_gc()
      assert.are.equal(0, ngx.cfuture.pool_info("collected").connections)
      local b = ngx.socket.tcp()
      b:settimeouts(200, 1000, 1000)
      assert.are.equal(1, b:connect("127.0.0.1", port, opts))
      b:close()
      stop()
    end)
  end)

  it("checks its arguments", function()
    run(function()
      local sock = ngx.socket.tcp()
      assert.has_error(function() sock:connect("127.0.0.1", 1, { pool_size = 0 }) end,
        'tcpsock:connect: bad "pool_size" option value: 0')
      assert.has_error(function() sock:connect("127.0.0.1", 1, { backlog = -1 }) end,
        'tcpsock:connect: bad "backlog" option value: -1')
      assert.has_error(function() sock:connect("127.0.0.1", 1, { pool = {} }) end,
        'tcpsock:connect: bad "pool" option type: table')
      assert.has_error(function() sock:connect(nil, 1) end,
        "tcpsock:connect: argument #2 must be a host name or address (got nil)")
      assert.has_error(function() sock:setkeepalive(-5) end,
        "tcpsock:setkeepalive: argument #2 must be a non-negative number of milliseconds (got -5)")
      assert.are.same({ nil, "closed" }, { sock:setkeepalive() })
      assert.are.same({ nil, "closed" }, { sock:getreusedtimes() })
    end)
  end)
end)

describe("setoption", function()
  it("sets keepalive and tcp-nodelay, says what cfuture cannot set", function()
    run(function()
      local port, _, stop = server(line_server)
      local sock = ngx.socket.tcp()
      assert.are.same({ nil, "closed" }, { sock:setoption("keepalive", true) })
      assert(sock:connect("127.0.0.1", port))
      assert.is_true(sock:setoption("keepalive", true))
      assert.is_true(sock:setoption("tcp-nodelay", 1))
      local ok, err = sock:setoption("sndbuf", 4096)
      assert.is_nil(ok)
      assert.matches("unsupported option sndbuf", err, 1, true)
      assert.has_error(function() sock:setoption("bogus", 1) end,
        'tcpsock:setoption: argument #2 must be one of "keepalive", "tcp-nodelay", "reuseaddr", ' ..
        '"sndbuf", "rcvbuf" (got "bogus")')
      sock:close()
      stop()
    end)
  end)
end)

describe("sslhandshake", function()
  local certs = require "tls_certs"
  setup(function() certs.dir() end)
  teardown(function() certs.cleanup() end)

  it("upgrades the connection on cf.tls, verifying with the configured CA", function()
    run(function()
      local l = assert(cf.tls.listen("127.0.0.1", 0, { certfile = certs.path("server.pem"),
        keyfile = certs.path("server.key") }))
      local _, port = l:local_address()
      cf.spawn(function()
        for c in l:incoming() do
          cf.spawn(function()
            -- the client that refuses the certificate makes this one fail
            pcall(function()
              for line in c:lines() do c:write("tls:" .. line .. "\n"):await() end
            end)
          end)
        end
      end)
      local saved = S.ssl
      S.ssl = { cafile = certs.path("ca.pem") }
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      local session = assert(sock:sslhandshake(nil, "localhost", true))
      assert.are.equal("ssl session", tostring(session))
      assert.are.equal(4, sock:send("hi\n\n"))
      assert.are.equal("tls:hi", sock:receive())
      -- already done: at once
      assert.is_true(sock:sslhandshake(false, "localhost", true))
      sock:close()
      -- an untrusted server
      S.ssl = {}
      local s2 = ngx.socket.tcp()
      assert(s2:connect("127.0.0.1", port))
      local ok, err = s2:sslhandshake(false, "localhost", true)
      assert.is_nil(ok)
      assert.matches("certificate verify failed", err, 1, true)
      assert.are.same({ nil, "closed" }, { s2:send("x") })
      -- verification off (OpenResty's default)
      local s3 = ngx.socket.tcp()
      assert(s3:connect("127.0.0.1", port))
      assert.is_true(s3:sslhandshake(false))
      s3:send("x\n")
      assert.are.equal("tls:x", s3:receive())
      s3:close()
      S.ssl = saved
      l:close()
    end)
  end)
end)

describe("outside a task", function()
  it("socket methods that wait raise a clear error", function()
    local sock = ngx.socket.tcp()
    local ok, err = pcall(sock.connect, sock, "127.0.0.1", 1)
    assert.is_false(ok)
    assert.matches("tcpsock:connect: cosockets work only inside a cfuture task", err, 1, true)
    ok, err = pcall(sock.receive, sock)
    assert.is_false(ok)
    assert.matches("tcpsock:receive: cosockets work only inside a cfuture task", err, 1, true)
    ok, err = pcall(ngx.sleep, 0.01)
    assert.is_false(ok)
    assert.matches("ngx.sleep: works only inside a cfuture task", err, 1, true)
    -- what does not wait works anywhere
    sock:settimeout(10)
    assert.are.same({ nil, "closed" }, { sock:close() })
  end)
end)

describe("file descriptors", function()
  it("none leak through connects, errors, the pool and its expiry", function()
    local function workload()
      local port, _, stop = server(line_server)
      for round = 1, 3 do
        local socks = {}
        for i = 1, 10 do
          socks[i] = ngx.socket.tcp()
          assert(socks[i]:connect("127.0.0.1", port, { pool_size = 4 }))
          socks[i]:send("PING\n")
          assert.are.equal("+PONG", socks[i]:receive())
        end
        for i = 1, 10 do
          if i % 3 == 0 then socks[i]:close() else socks[i]:setkeepalive(round == 3 and 20 or 0) end
        end
        local bad = ngx.socket.tcp()
        assert.is_nil(bad:connect("127.0.0.1", refused_port()))
      end
      cf.sleep(100):await() -- the last round's idle connections expire
      ngx.cfuture.close_pools()
      stop()
      cf.sleep(20):await()
    end
    run(workload) -- once first: what the runtime opens for itself stays open
    support.full_gc()
    local before = support.fd_count()
    run(workload)
    support.full_gc()
    assert.are.equal(before, support.fd_count())
  end)
end)

describe("ngx helpers", function()
  it("ngx.null is one unique value printed 'null'", function()
    assert.are.equal(ngx.null, ngx.null)
    assert.are_not.equal(ngx.null, nil)
    assert.are_not.equal(ngx.null, false)
    assert.are.equal("null", tostring(ngx.null))
    assert.has_error(function() ngx.null.x = 1 end)
  end)

  it("ngx.sleep suspends only its task", function()
    run(function()
      local t = ticker(10)
      local t0 = cf.now()
      ngx.sleep(0.2)
      local ms = cf.now() - t0
      t.stop = true
      assert.is_true(ms >= 199 and ms < 200 + 500 * slow, "slept " .. ms)
      assert.is_true(t.n >= 5)
      ngx.sleep(0)
      assert.has_error(function() ngx.sleep(-1) end,
        "ngx.sleep: argument #1 must be a non-negative number of seconds (got -1)")
    end)
  end)

  it("ngx.now / ngx.time follow the wall clock in seconds, now with milliseconds", function()
    run(function()
      local a = ngx.now()
      assert.is_true(math.abs(a - os.time()) <= 1.5)
      local t0 = ngx.time()
      assert.is_true(math.abs(os.time() - t0) <= 1) -- a second may tick in between
      assert.are.equal("integer", math.type(t0))
      -- differences are the monotonic clock's: no jump when os.time() ticks
      for _ = 1, 12 do
        local b = ngx.now()
        ngx.sleep(0.1)
        ngx.update_time()
        local d = ngx.now() - b
        assert.is_true(d >= 0.099 and d < 0.1 + 0.5 * slow, "moved " .. d)
      end
      local t = ngx.now() -- milliseconds: no finer part
      assert.are.equal(t, math.floor(t * 1000 + 0.5) / 1000)
    end)
  end)

  it("ngx.log formats its arguments and honours the level", function()
    local got = {}
    local saved_h, saved_l = S.log_handler, S.log_level
    S.log_handler = function(level, msg) got[#got + 1] = { level, msg } end
    ngx.log(ngx.ERR, "a", 1, nil, true, ngx.null)
    ngx.log(ngx.INFO, "dropped at the default level")
    S.log_level = ngx.DEBUG
    ngx.log(ngx.DEBUG, "now seen")
    S.log_handler, S.log_level = saved_h, saved_l
    assert.are.same({ { 4, "a1niltruenull" }, { 8, "now seen" } }, got)
    assert.are.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8 },
      { ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG })
    assert.has_error(function() ngx.log(9, "x") end,
      "ngx.log: argument #1 must be a log level from ngx.STDERR (0) to ngx.DEBUG (8) (got 9)")
    assert.has_error(function() ngx.log(ngx.ERR, {}) end,
      "ngx.log: argument #2 must be a string, number, boolean, nil or a value with __tostring (got table)")
  end)

  it("escape_uri / unescape_uri as OpenResty", function()
    assert.are.equal("a%20b%2Fc%3F%26~-._!'()*%E4", ngx.escape_uri("a b/c?&~-._!'()*\228"))
    assert.are.equal("a%20b/c%3F&%25", ngx.escape_uri("a b/c?&%", 0))
    assert.are.equal("b r56 7", ngx.unescape_uri("b%20r56+7"))
    assert.are.equal("%zz%4", ngx.unescape_uri("%zz%4"))
    assert.are.equal("", ngx.escape_uri(nil))
    assert.has_error(function() ngx.escape_uri({}) end, "ngx.escape_uri: argument #1 must be a string (got table)")
  end)

  it("base64 and digests", function()
    assert.are.equal("aGVsbG8=", ngx.encode_base64("hello"))
    assert.are.equal("aGVsbG8", ngx.encode_base64("hello", true))
    assert.are.equal("hello", ngx.decode_base64("aGVsbG8="))
    assert.is_nil(ngx.decode_base64("!!"))
    assert.are.equal("5d41402abc4b2a76b9719d911017c592", ngx.md5("hello"))
    assert.are.equal(16, #ngx.md5_bin("hello"))
    assert.are.equal("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
      (ngx.sha1_bin("hello"):gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
  end)

  it("ngx.thread spawn / wait / kill on tasks", function()
    run(function()
      local order = {}
      local slow_t = ngx.thread.spawn(function(x)
        ngx.sleep(0.2)
        order[#order + 1] = "slow"
        return x, "slow done"
      end, 1)
      local fast_t = ngx.thread.spawn(function(a, b)
        ngx.sleep(0.05)
        order[#order + 1] = "fast"
        return a + b, "fast done"
      end, 2, 3)
      assert.are.same({ true, 5, "fast done" }, { ngx.thread.wait(slow_t, fast_t) })
      assert.are.same({ true, 1, "slow done" }, { ngx.thread.wait(slow_t) })
      assert.are.same({ "fast", "slow" }, order)
      assert.are.same({ nil, "already waited or killed" }, { ngx.thread.wait(slow_t) })
      local bad = ngx.thread.spawn(function() error("boom") end)
      local ok, err = ngx.thread.wait(bad)
      assert.is_false(ok)
      assert.matches("boom$", err)
      local victim_ran = false
      local victim = ngx.thread.spawn(function()
        ngx.sleep(0.1)
        victim_ran = true
      end)
      assert.is_true(ngx.thread.kill(victim))
      assert.are.same({ nil, "already waited or killed" }, { ngx.thread.kill(victim) })
      ngx.sleep(0.15)
      assert.is_false(victim_ran)
      local done = ngx.thread.spawn(function() return 1 end)
      ngx.sleep(0.01)
      assert.are.same({ nil, "already terminated" }, { ngx.thread.kill(done) })
      assert.has_error(function() ngx.thread.wait({}) end,
        "ngx.thread.wait: argument #1 must be a thread from ngx.thread.spawn (got table)")
    end)
  end)

  it("ngx.worker, table.new and table.clear", function()
    assert.is_false(ngx.worker.exiting())
    local new_tab = require "table.new"
    local t = new_tab(10, 2)
    assert.are.same({}, t)
    local clear_tab = require "table.clear"
    local u = { 1, 2, a = 3 }
    clear_tab(u)
    assert.is_nil(next(u))
  end)

  it("install() sets the global ngx and package.loaded.ngx", function()
    local saved = rawget(_G, "ngx")
    assert.are.equal(ngx, ngx.install())
    assert.are.equal(ngx, rawget(_G, "ngx"))
    assert.are.equal(ngx, require "ngx")
    assert.is_function(rawget(_G, "unpack"))
    _G.ngx = saved
    package.loaded.ngx = nil
  end)
end)

describe("ngx.socket.tcp pool counts under cancellation", function()
  it("gives back the slot of a connect cancelled mid-handshake and the place of a cancelled waiter", function()
    run(function()
      -- a listener that nobody accepts from, its queue full: connects hang
      local l = assert(cf.net.listen("127.0.0.1", 0, { backlog = 0 }))
      local _, port = l:local_address()
      local held = {}
      for _ = 1, 4 do held[#held + 1] = cf.timeout(100, cf.net.connect("127.0.0.1", port)):await() end
      local opts = { pool = "cancelled-connects", pool_size = 1, backlog = 5 }
      local function connecting()
        return cf.spawn(function()
          local s = ngx.socket.tcp()
          s:settimeout(5000)
          return s:connect("127.0.0.1", port, opts)
        end)
      end
      local info = function() return ngx.cfuture.pool_info("cancelled-connects") end
      local a = connecting()
      cf.sleep(30):await()
      assert.is_false(a:is_finished())
      assert.are.equal(1, info().connections)
      local b = connecting() -- waits for a's slot
      cf.sleep(30):await()
      assert.are.same({ 1, 1 }, { info().connections, info().waiting })
      b:abort()
      cf.sleep(5):await()
      assert.are.equal(0, info().waiting)
      a:abort()
      cf.sleep(5):await()
      assert.are.same({ 0, 0 }, { info().connections, info().waiting })
      for _, s in ipairs(held) do s:close() end
      l:close()
    end)
  end)
end)
