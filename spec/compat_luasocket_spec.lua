-- Real libraries written for LuaSocket, on cfuture.socket: redis-lua
-- (Debian's lua-redis) against a real redis-server, and LuaSocket's own
-- socket.http (Debian's lua-socket) against a slow cfuture HTTP server.
local cf = require "cfuture"
local csocket = require "cfuture.socket"
local support = require "support"
local cs = require "compat_support"

local slow = support.slow

cs.libs()

local function elapsed(fn)
  local t0 = cf.now()
  fn()
  return cf.now() - t0
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

local function free_port()
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, p = l:local_address()
  l:close()
  return p
end

describe("redis-lua on cfuture.socket", function()
  local r, redis

  setup(function()
    r = cs.redis()
    -- redis-lua's pubsub and transactions do their I/O in coroutines of their own
    if cf.coroutine then cf.coroutine.install() end
    csocket.install()
    package.loaded.redis = nil
    redis = require "redis"
  end)

  teardown(function()
    if r then r.stop() end
    csocket.uninstall()
    if cf.coroutine then cf.coroutine.uninstall() end
  end)

  local function client(params)
    params = params or {}
    params.host = params.host or "127.0.0.1"
    params.port = params.port or r.port
    return redis.connect(params)
  end

  it("runs many tasks at once doing SET, GET and INCR, with exact counts", function()
    cf.block_on(function()
      local c0 = client()
      assert.is_true(c0:ping())
      c0:del("counter")
      local hs = {}
      for i = 1, 20 do
        hs[i] = cf.spawn(function()
          local c = client()
          for k = 1, 50 do
            c:incr("counter")
            assert.is_true(c:set("key:" .. i, "value " .. i .. "/" .. k))
            assert.equal("value " .. i .. "/" .. k, c:get("key:" .. i))
            if k % 10 == 0 then cf.yield_now():await() end
          end
          c:quit()
          return i
        end)
      end
      for i = 1, 20 do assert.equal(i, hs[i]:await()) end
      assert.equal("1000", c0:get("counter"))
      for i = 1, 20 do assert.equal("value " .. i .. "/50", c0:get("key:" .. i)) end
      c0:quit()
    end)
    assert.equal("1000", (r.cli("GET counter"):gsub("%s+$", "")))
  end)

  it("pipelines", function()
    -- redis-lua 2.0.5's pipeline inserts into a sparse table with table.insert,
    -- which Lua 5.3+ refuses ("position out of bounds"); it takes table.insert
    -- at each call, so the 5.1 behaviour is lent to it here
    local insert = table.insert
    if not rawget(_G, "jit") then
      table.insert = function(t, pos, ...)
        if select("#", ...) == 0 then return insert(t, pos) end
        if pos > #t + 1 then
          t[pos] = ...
          return
        end
        return insert(t, pos, ...)
      end
    end
    finally(function() table.insert = insert end)
    cf.block_on(function()
      local hs = {}
      for i = 1, 5 do
        hs[i] = cf.spawn(function()
          local c = client()
          local replies = c:pipeline(function(p)
            p:del("pl:" .. i)
            for k = 1, 100 do p:rpush("pl:" .. i, k) end
            p:lrange("pl:" .. i, 0, -1)
            p:incrby("pl:n", 100)
          end)
          c:quit()
          return replies
        end)
      end
      for i = 1, 5 do
        local replies = hs[i]:await()
        assert.equal(103, #replies)
        assert.equal(100, replies[101])
        local list = replies[102]
        assert.equal(100, #list)
        assert.equal("1", list[1])
        assert.equal("100", list[100])
      end
      local c = client()
      assert.equal("500", c:get("pl:n"))
      c:quit()
    end)
  end)

  it("waits in 20 BLPOPs at once: they end together after 0.5 s, not 10 s", function()
    cf.block_on(function()
      local clients = {}
      for i = 1, 20 do clients[i] = client() end
      local hs = {}
      local ms = elapsed(function()
        for i = 1, 20 do
          hs[i] = cf.spawn(function() return clients[i]:blpop("blpop:empty:" .. i, 0.5) end)
        end
        for i = 1, 20 do assert.is_nil(hs[i]:await()) end
      end)
      assert.is_true(ms >= 450 and ms < 3000 * slow, "20 BLPOPs took " .. ms .. " ms")
      -- and one that gets its value from another task meanwhile
      local h = cf.spawn(function() return clients[1]:blpop("blpop:fed", 5) end)
      cf.sleep(50):await()
      clients[2]:rpush("blpop:fed", "hello")
      assert.same({ "blpop:fed", "hello" }, h:await())
      for i = 1, 20 do clients[i]:quit() end
    end)
  end)

  it("gives the library's timeout error in time while other tasks go on", function()
    cf.block_on(function()
      local c = client({ timeout = 0.3 })
      assert.is_true(c:ping())
      local t = ticker()
      local ok, err
      local ms = elapsed(function()
        ok, err = pcall(c.blpop, c, "never:filled", 0) -- redis waits forever
      end)
      assert.is_false(ok)
      assert.matches("connection error: timeout", err)
      assert.is_true(ms >= 290 and ms < 300 + 1500 * slow, "timed out after " .. ms .. " ms")
      assert.is_true(t.n >= 3, "ticks " .. t.n)
      t.h:abort()
    end)
  end)

  it("gives the library's error for a refused connection", function()
    local port = free_port()
    cf.block_on(function()
      local ok, err = pcall(redis.connect, { host = "127.0.0.1", port = port })
      assert.is_false(ok)
      assert.matches("could not connect to 127%.0%.0%.1:" .. port .. " %[connection refused%]", err)
    end)
  end)

  it("takes a socket made by the caller ({socket = ...})", function()
    cf.block_on(function()
      local s = csocket.tcp()
      assert.equal(1, s:connect("127.0.0.1", r.port))
      local c = redis.connect({ socket = s })
      assert.is_true(c:set("given", "yes"))
      assert.equal("yes", c:get("given"))
      c:quit()
    end)
  end)

  it("works outside a task (blocking, as with LuaSocket)", function()
    local c = client()
    assert.is_true(c:set("outside", "1"))
    assert.equal(2, c:incr("outside"))
    c:quit()
  end)

  if cf.coroutine then
    it("subscribes: pubsub's coroutine.wrap iterator waits inside the task", function()
      cf.block_on(function()
        local sub = client()
        local pub = client()
        local got = {}
        local h = cf.spawn(function()
          for msg, abort in sub:pubsub({ subscribe = { "news" } }) do
            if msg.kind == "message" then
              got[#got + 1] = msg.payload
              if #got == 3 then abort() end
            end
          end
          return #got
        end)
        local t = ticker()
        cf.sleep(100):await()
        for i = 1, 3 do
          pub:publish("news", "m" .. i)
          cf.sleep(20):await()
        end
        assert.equal(3, h:await())
        assert.same({ "m1", "m2", "m3" }, got)
        assert.is_true(t.n >= 3)
        t.h:abort()
        pub:quit()
      end)
    end)

    it("runs MULTI/EXEC transactions (redis-lua runs the block in a coroutine)", function()
      cf.block_on(function()
        local hs = {}
        for i = 1, 5 do
          hs[i] = cf.spawn(function()
            local c = client()
            local replies = c:transaction(function(t)
              t:set("tx:" .. i, "1")
              t:incr("tx:" .. i)
              t:get("tx:" .. i)
            end)
            c:quit()
            return replies
          end)
        end
        for i = 1, 5 do assert.same({ true, 2, "2" }, hs[i]:await()) end
      end)
    end)
  else
    pending("pub/sub (needs cf.coroutine: redis-lua's pubsub is a coroutine.wrap iterator)")
    pending("MULTI/EXEC transactions (need cf.coroutine: redis-lua runs the block in a coroutine)")
  end
end)

-- A slow HTTP/1.1 server: it answers after `delay` ms, chunked for /chunked,
-- echoing the method, path and body length.
local function http_server(delay)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local served = { n = 0 }
  local acceptor = cf.spawn(function()
    for conn in l:incoming() do
      cf.spawn(function()
        local reqline = conn:read_line():await()
        local len = 0
        while true do
          local h = conn:read_line():await()
          if not h or h == "" then break end
          local n = h:lower():match("^content%-length:%s*(%d+)")
          if n then len = tonumber(n) end
        end
        local body = len > 0 and conn:read_exact(len):await() or ""
        cf.sleep(delay):await()
        served.n = served.n + 1
        local method, path = reqline:match("^(%S+) (%S+)")
        local text = ("%s %s %d"):format(method, path, #body)
        if path == "/chunked" then
          conn:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
            ("%x\r\n%s\r\n"):format(#text, text) .. "5\r\n-more\r\n0\r\n\r\n"):await()
        else
          conn:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Test: yes\r\nConnection: close\r\n\r\n%s")
            :format(#text, text)):await()
        end
        conn:close()
      end)
    end
  end)
  return port, served, function()
    l:close()
    acceptor:abort()
  end
end

local function ten_requests(http, port, create)
  local results = {}
  local ms = elapsed(function()
    local hs = {}
    for i = 1, 10 do
      hs[i] = cf.spawn(function()
        local body, code, headers = http.request({
          url = ("http://127.0.0.1:%d/item/%d"):format(port, i),
          sink = nil,
          create = create,
        })
        return { body, code, headers }
      end)
    end
    for i = 1, 10 do results[i] = hs[i]:await() end
  end)
  return ms, results
end

describe("LuaSocket's socket.http on cfuture.socket", function()
  local saved_http

  before_each(function()
    csocket.uninstall()
    saved_http = package.loaded["socket.http"]
  end)

  after_each(function()
    csocket.uninstall()
    package.loaded["socket.http"] = saved_http
  end)

  it("runs 10 requests at once in about one delay, after install()", function()
    csocket.install()
    local http = require "socket.http"
    local ltn12 = require "ltn12"
    assert.equal(csocket, require "socket")
    assert.equal(csocket.http, http)
    local port, served, stop = http_server(300)
    cf.block_on(function()
      local t = ticker()
      local ms = elapsed(function()
        local hs = {}
        for i = 1, 10 do
          hs[i] = cf.spawn(function()
            return { http.request(("http://127.0.0.1:%d/item/%d"):format(port, i)) }
          end)
        end
        for i = 1, 10 do
          local res = hs[i]:await()
          assert.equal("GET /item/" .. i .. " 0", res[1])
          assert.equal(200, res[2])
          assert.equal("yes", res[3]["x-test"])
          assert.equal("HTTP/1.1 200 OK", res[4])
        end
      end)
      assert.is_true(ms >= 295 and ms < 300 + 1200 * slow, "10 requests took " .. ms .. " ms")
      assert.is_true(t.n >= 5, "ticks " .. t.n)
      t.h:abort()
      assert.equal(10, served.n)
      -- a body sent from an ltn12 source, a chunked answer into a table sink
      local out = {}
      local one, code = http.request({
        url = ("http://127.0.0.1:%d/chunked"):format(port),
        method = "POST",
        source = ltn12.source.string("twelve bytes"),
        headers = { ["content-length"] = "12" },
        sink = ltn12.sink.table(out),
      })
      assert.same({ 1, 200 }, { one, code })
      assert.equal("POST /chunked 12-more", table.concat(out))
      -- LuaSocket's errors, through socket.http's protect
      assert.same({ nil, "connection refused" },
        { http.request(("http://127.0.0.1:%d/"):format(free_port())) })
      http.TIMEOUT = 0.1
      local tms = elapsed(function()
        assert.same({ nil, "timeout" }, { http.request(("http://127.0.0.1:%d/"):format(port)) })
      end)
      http.TIMEOUT = 60
      assert.is_true(tms >= 95 and tms < 100 + 1000 * slow, "timed out after " .. tms)
    end)
    -- outside a task the request blocks, as LuaSocket's does, and the server task runs
    local body, code = http.request(("http://127.0.0.1:%d/outside"):format(port))
    assert.same({ "GET /outside 0", 200 }, { body, code })
    stop()
  end)

  it("runs 10 requests at once through the create hook, without install() #lua54", function()
    -- LuaSocket's own socket module (its C protect yields on Lua 5.4 only)
    package.loaded["socket.http"] = nil
    local http = require "socket.http"
    assert.is_not.equal(csocket, require "socket")
    local port, served, stop = http_server(300)
    cf.block_on(function()
      local ms, results = ten_requests(http, port, csocket.tcp)
      for i = 1, 10 do
        assert.equal(1, results[i][1])
        assert.equal(200, results[i][2])
      end
      assert.is_true(ms >= 295 and ms < 300 + 1200 * slow, "10 requests took " .. ms .. " ms")
      assert.equal(10, served.n)
      local out = {}
      local ltn12 = require "ltn12"
      local one, code = http.request({
        url = ("http://127.0.0.1:%d/x"):format(port),
        sink = ltn12.sink.table(out),
        create = csocket.tcp,
      })
      assert.same({ 1, 200 }, { one, code })
      assert.equal("GET /x 0", table.concat(out))
    end)
    stop()
    package.loaded["socket.http"] = nil
  end)

  it("runs 10 requests at once through the create hook after install() too", function()
    csocket.install()
    local http = require "socket.http"
    local port, served, stop = http_server(300)
    cf.block_on(function()
      local ms, results = ten_requests(http, port, csocket.tcp)
      for i = 1, 10 do assert.same({ 1, 200 }, { results[i][1], results[i][2] }) end
      assert.is_true(ms >= 295 and ms < 300 + 1200 * slow, "10 requests took " .. ms .. " ms")
      assert.equal(10, served.n)
    end)
    stop()
  end)
end)

-- A minimal SMTP server: each message is kept; the answer to the end of DATA
-- comes after `delay` ms.
local function smtp_server(delay)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local mails = {}
  local acceptor = cf.spawn(function()
    for conn in l:incoming() do
      cf.spawn(function()
        local mail = { rcpt = {} }
        conn:write("220 test ESMTP\r\n"):await()
        while true do
          local line = conn:read_line():await()
          if not line then return end
          local verb = line:match("^(%u+)")
          if verb == "EHLO" or verb == "HELO" then
            conn:write("250-test\r\n250 8BITMIME\r\n"):await()
          elseif verb == "MAIL" then
            mail.from = line:match("<(.-)>")
            conn:write("250 ok\r\n"):await()
          elseif verb == "RCPT" then
            mail.rcpt[#mail.rcpt + 1] = line:match("<(.-)>")
            conn:write("250 ok\r\n"):await()
          elseif verb == "DATA" then
            conn:write("354 go on\r\n"):await()
            local data = {}
            while true do
              local d = conn:read_line():await()
              if not d or d == "." then break end
              data[#data + 1] = d
            end
            mail.data = table.concat(data, "\n")
            cf.sleep(delay):await()
            mails[#mails + 1] = mail
            conn:write("250 queued\r\n"):await()
          elseif verb == "QUIT" then
            conn:write("221 bye\r\n"):await()
            return conn:close()
          else
            conn:write("500 what\r\n"):await()
          end
        end
      end)
    end
  end)
  return port, mails, function()
    l:close()
    acceptor:abort()
  end
end

describe("LuaSocket's socket.smtp on cfuture.socket", function()
  after_each(function() csocket.uninstall() end)

  it("sends 5 messages at once in about one delay", function()
    csocket.install()
    local smtp = require "socket.smtp"
    local port, mails, stop = smtp_server(200)
    cf.block_on(function()
      local ms = elapsed(function()
        local hs = {}
        for i = 1, 5 do
          hs[i] = cf.spawn(function()
            return { smtp.send({
              from = "<a@example.org>",
              rcpt = { "<b" .. i .. "@example.org>", "<c@example.org>" },
              server = "127.0.0.1",
              port = port,
              source = smtp.message({
                headers = { subject = "note " .. i, to = "b" .. i .. "@example.org" },
                body = "line one\r\nline two of " .. i,
              }),
            }) }
          end)
        end
        for i = 1, 5 do assert.same({ 1 }, hs[i]:await()) end
      end)
      assert.is_true(ms >= 195 and ms < 200 + 1000 * slow, "5 messages took " .. ms .. " ms")
      assert.equal(5, #mails)
      table.sort(mails, function(a, b) return a.rcpt[1] < b.rcpt[1] end)
      for i = 1, 5 do
        assert.equal("a@example.org", mails[i].from)
        assert.same({ "b" .. i .. "@example.org", "c@example.org" }, mails[i].rcpt)
        assert.matches("Subject: note " .. i .. "\n", mails[i].data)
        assert.matches("X%-Mailer: LuaSocket 3%.1%.0 %(cfuture%)", mails[i].data)
        assert.matches("line one\nline two of " .. i .. "$", mails[i].data)
      end
      assert.same({ nil, "connection refused" }, { smtp.send({
        from = "<a@example.org>", rcpt = "<b@example.org>", server = "127.0.0.1",
        port = free_port(), source = smtp.message({ body = "x" }),
      }) })
    end)
    stop()
  end)
end)
