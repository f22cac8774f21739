-- The HTTP client against hostile servers (raw cfuture TCP servers): each
-- fault gives its documented nil, message, code, and the pool stays sound.
local cf = require "cfuture"
local support = require "support"
local peers = require "http_peers"
local http = require "cfuture.http.client"

local slow = support.slow

-- Serve each connection with fn(conn, n) after reading the request head.
local function server(fn)
  return peers.raw(function(conn, n)
    local head = peers.read_head(conn)
    if head then fn(conn, n, head) end
  end)
end

local function url(srv, path) return "http://127.0.0.1:" .. srv.port .. (path or "/") end

local function with(fn)
  return cf.block_on(function()
    local pool = http.pool()
    fn(pool)
    assert.are.equal(0, pool:stats().active)
    pool:close()
  end)
end

describe("http client against hostile servers", function()
  it("refuses a bad chunk size in the body", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"):await()
        conn:read():await()
      end)
      local res = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.same({ nil, "http: invalid chunk size", "EPROTO" }, { res:read_all():await() })
      assert.are.same({ 0, 0 }, { pool:stats().idle, pool:stats().active })
      srv.stop()
    end)
  end)

  it("gives the trailers of a chunked body once it was read", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" ..
          "5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Other: a\r\n\r\n"):await()
        conn:read():await()
      end)
      local res = assert(http.get(url(srv), { pool = pool }):await())
      assert.is_nil(res.trailers)
      assert.are.equal("hello", res:read_all():await())
      assert.are.equal("42", res.trailers:get("x-sum"))
      assert.are.equal(2, res.trailers:count())
      assert.are.equal(1, pool:stats().idle)
      srv.stop()
    end)
  end)

  it("takes Content-Length bytes of a longer body and does not reuse that connection", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES"):await()
        local head = peers.read_head(conn)
        if head then conn:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"):await() end
        conn:read():await()
      end)
      local res = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.equal("hello", res:read_all():await())
      assert.are.equal(0, pool:stats().idle)
      local r2 = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.equal("helloEXTRA BYTES", r2:read_all():await() .. "EXTRA BYTES")
      assert.are.equal(2, srv.count)
      srv.stop()
    end)
  end)

  it("reports a reset in the middle of the body", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" .. ("x"):rep(5000)):await()
        cf.sleep(20):await()
        conn:reset()
      end)
      local res = assert(http.get(url(srv), { pool = pool }):await())
      local body, msg, code = res:read_all():await()
      assert.is_nil(body)
      assert.are.equal("ECONNRESET", code)
      assert.is_string(msg)
      srv.stop()
    end)
  end)

  it("reports a body cut short by the end of the connection", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"):await()
        conn:close()
      end)
      local res = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.same({ nil, "http: the message was cut short", "EPROTO" }, { res:read_all():await() })
      srv.stop()
    end)
  end)

  it("times out a server sending one byte per second", function()
    with(function(pool)
      local srv = server(function(conn)
        for c in ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):gmatch(".") do
          if not conn:write(c):await() then return end
          cf.sleep(1000):await()
        end
      end)
      local t0 = cf.now()
      assert.are.same({ nil, "http.get: timed out waiting for the response", "ETIMEDOUT" },
        { http.get(url(srv), { pool = pool, header_timeout = 1500 }):await() })
      local ms = cf.now() - t0
      assert.is_true(ms >= 1499 and ms < 5000 * slow, ms)
      srv.stop()
    end)
  end)

  it("refuses a 1 MiB header line and 10,000 headers", function()
    with(function(pool)
      local srv = server(function(conn, n)
        if n == 1 then
          conn:write("HTTP/1.1 200 OK\r\nX-Big: " .. ("b"):rep(1024 * 1024) .. "\r\n\r\n"):await()
        else
          local h = {}
          for i = 1, 10000 do h[i] = "X-H" .. i .. ": v\r\n" end
          conn:write("HTTP/1.1 200 OK\r\n" .. table.concat(h) .. "\r\n"):await()
        end
        conn:read():await()
      end)
      local r, msg, code = http.get(url(srv), { pool = pool }):await()
      assert.are.same({ nil, "EMSGSIZE" }, { r, code })
      assert.matches("^http.get: http: header too large", msg)
      r, msg, code = http.get(url(srv), { pool = pool }):await()
      assert.are.same({ nil, "EMSGSIZE" }, { r, code })
      assert.matches("^http.get: http: too many headers", msg)
      srv.stop()
    end)
  end)

  it("reports a server that hangs up without answering, and one that answers nonsense", function()
    with(function(pool)
      local srv = server(function(conn, n)
        if n == 2 then conn:write("HELLO THERE\r\n\r\n"):await() end
        conn:close()
      end)
      assert.are.same({ nil, "http.get: the server closed the connection without answering", "ECONNRESET" },
        { http.get(url(srv), { pool = pool }):await() })
      local r, msg, code = http.get(url(srv), { pool = pool }):await()
      assert.are.same({ nil, "EPROTO" }, { r, code })
      assert.matches("^http.get: http: ", msg)
      srv.stop()
    end)
  end)

  it("retries once on a fresh connection when the server closed a kept-alive one", function()
    with(function(pool)
      local srv = server(function(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"):await()
        conn:close() -- without saying so
      end)
      local r1 = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.equal("one", r1:read_all():await())
      assert.are.equal(1, pool:stats().idle)
      cf.sleep(50):await() -- the close has arrived
      local r2 = assert(http.get(url(srv), { pool = pool }):await())
      assert.are.equal("one", r2:read_all():await())
      assert.are.equal(2, srv.count)
      srv.stop()
    end)
  end)

  it("speaks to an IPv6 literal, sending [::1]:port as Host", function()
    cf.block_on(function()
      local l = cf.net.listen("::1", 0)
      if not l then return end -- no IPv6 here
      local _, port = l:local_address()
      local host
      local t = cf.spawn(function()
        local conn = assert(l:accept():await())
        for _, line in ipairs(peers.read_head(conn)) do host = host or line:match("^Host: (.*)$") end
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6"):await()
        conn:close()
      end)
      local res = assert(http.get(("http://[::1]:%d/x"):format(port), { keep_alive = false }):await())
      assert.are.equal("v6", res:read_all():await())
      t:await()
      assert.are.equal(("[::1]:%d"):format(port), host)
      assert.are.equal(("http://[::1]:%d/x"):format(port), res.url)
      l:close()
    end)
  end)

  it("reports corrupt and truncated gzip bodies", function()
    local packed = cf.block_on(function()
      local _, out = cf.process.run("/usr/bin/python3", { "-c",
        "import gzip,sys; sys.stdout.buffer.write(gzip.compress(b'x' * 100000))" },
        { env = { LD_PRELOAD = false } }):await()
      return out
    end)
    with(function(pool)
      local bodies = { "not gzip at all", packed:sub(1, #packed - 12), packed }
      local srv = server(function(conn, n)
        local b = bodies[n]
        conn:write("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " .. #b .. "\r\n\r\n" .. b):await()
        conn:read():await()
      end)
      local opts = { pool = pool, keep_alive = false }
      local res = assert(http.get(url(srv), opts):await())
      assert.are.same({ nil, "http.get: zlib: incorrect header check", "EPROTO" }, { res:read_all():await() })
      res = assert(http.get(url(srv), opts):await())
      assert.are.same({ nil, "http.get: zlib: the compressed stream is truncated", "EPROTO" }, { res:read_all():await() })
      res = assert(http.get(url(srv), opts):await())
      assert.are.equal(("x"):rep(100000), res:read_all():await())
      srv.stop()
    end)
  end)

  it("survives random and mutated responses: a response or nil, message, code; never a raise", function()
    local good = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    local chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    local rounds = math.max(20, math.floor(300 / slow))
    local cases = {}
    math.randomseed(24)
    for i = 1, rounds do
      local src = i % 2 == 0 and good or chunked
      local b = { src:byte(1, -1) }
      for _ = 1, math.random(1, 4) do b[math.random(1, #b)] = math.random(0, 255) end
      local s = string.char(table.unpack(b))
      if i % 3 == 0 then s = s:sub(1, math.random(1, #s)) end
      if i % 7 == 0 then
        local r = {}
        for j = 1, math.random(1, 200) do r[j] = string.char(math.random(0, 255)) end
        s = table.concat(r)
      end
      cases[i] = s
    end
    with(function(pool)
      local srv = server(function(conn, n)
        conn:write(cases[n]):await()
        conn:shutdown()
        conn:read():await()
      end)
      for i = 1, rounds do
        local ok, res, msg, code = pcall(function() return http.get(url(srv), { pool = pool, timeout = 5000 * slow }):await() end)
        assert.is_true(ok, res)
        if res then
          local ok2, body, m2, c2 = pcall(function() return res:read_all():await() end)
          assert.is_true(ok2, body)
          if not body then
            assert.is_string(m2)
            assert.is_string(c2)
          end
          res:close()
        else
          assert.is_string(msg, cases[i])
          assert.is_string(code)
        end
      end
      srv.stop()
    end)
  end)
end)
