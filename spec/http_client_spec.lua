-- The HTTP client against real servers: nginx (files, chunked and gzip
-- bodies, keep-alive, redirects, WebDAV PUT, TLS with the test CA) and
-- Python's http.server (an echo of the request, Expect: 100-continue,
-- HTTP/1.0), plus raw cfuture servers where the test needs control.
local cf = require "cfuture"
local support = require "support"
local peers = require "http_peers"
local certs = require "tls_certs"
local http = require "cfuture.http.client"

local slow = support.slow

local nginx, python, base, pybase, files

setup(function()
  cf.block_on(function()
    nginx = peers.nginx({ tls = { cert = certs.path("server.pem"), key = certs.path("server.key") } })
    python = peers.python()
  end)
  base = "http://127.0.0.1:" .. nginx.port
  pybase = "http://127.0.0.1:" .. python.port
  files = peers.files()
end)

teardown(function()
  cf.block_on(function()
    if nginx then nginx:stop() end
    if python then python:stop() end
  end)
  certs.cleanup()
end)

local function run(fn) return cf.block_on(fn) end

local function get_body(u, opts)
  local res = assert(http.get(u, opts):await())
  local body = assert(res:read_all():await())
  return res, body
end

local function echo(res)
  local body = assert(res:read_all():await())
  local t = support.json_decode(body)
  t.header = {}
  for _, kv in ipairs(t.headers) do t.header[kv[1]:lower()] = kv[2] end
  return t
end

describe("http client against nginx", function()
  it("GETs files: status, reason, version, headers and the exact body", function()
    run(function()
      local pool = http.pool()
      local res, body = get_body(base .. "/hello.txt", { pool = pool })
      assert.are.same({ 200, "OK", "1.1" }, { res.status, res.reason, res.version })
      assert.are.equal("hello from nginx\n", body)
      assert.are.equal("17", res.headers:get("content-length"))
      assert.are.equal("text/plain", res.headers:get("CONTENT-TYPE"))
      assert.are.equal(base .. "/hello.txt", res.url)
      assert.matches("^cfuture.http.Response%(200 OK, http://", tostring(res))
      assert.is_true(res:done())
      -- a large body, read in chunks of at most 10000 bytes
      local big = assert(http.get(base .. "/big.bin", { pool = pool }):await())
      local parts, most = {}, 0
      for chunk in big:chunks(10000) do
        parts[#parts + 1] = chunk
        most = math.max(most, #chunk)
      end
      assert.is_true(most <= 10000)
      assert.is_true(table.concat(parts) == files["big.bin"])
      -- lines
      local text = assert(http.get(base .. "/text.txt", { pool = pool }):await())
      local n, last = 0, nil
      for line in text:lines() do
        n = n + 1
        last = line
      end
      assert.are.same({ 5000, "line 5000 of the text file for gzip" }, { n, last })
      assert.are.equal(1, pool:stats().opened)
      pool:close()
    end)
  end)

  it("reads chunked bodies", function()
    run(function()
      local res, body = get_body(base .. "/chunked/text.txt")
      assert.is_true(res.headers:has_token("Transfer-Encoding", "chunked"))
      assert.is_nil(res.headers:get("Content-Length"))
      assert.is_true(body == files["text.txt"])
    end)
  end)

  it("decodes gzip when it asked for it, and leaves it alone when told", function()
    run(function()
      local res, body = get_body(base .. "/gzip/text.txt")
      assert.are.equal("gzip", res.decoded)
      assert.is_nil(res.headers:get("Content-Encoding"))
      assert.is_true(body == files["text.txt"])
      -- read in small pieces through the decoder
      local r2 = assert(http.get(base .. "/gzip/text.txt"):await())
      local parts = {}
      while true do
        local p, err = r2:read(1000):await()
        assert.is_nil(err)
        if not p then break end
        assert.is_true(#p <= 1000)
        parts[#parts + 1] = p
      end
      assert.is_true(table.concat(parts) == files["text.txt"])
      -- decompress = false: no Accept-Encoding, so nginx sends it plain
      local r3, b3 = get_body(base .. "/gzip/text.txt", { decompress = false })
      assert.is_nil(r3.headers:get("Content-Encoding"))
      assert.is_true(b3 == files["text.txt"])
      -- an Accept-Encoding of the caller's own: the body comes as sent
      local r4, b4 = get_body(base .. "/gzip/text.txt", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.are.equal("gzip", r4.headers:get("Content-Encoding"))
      local z = cf._zlib.inflater("gzip")
      assert.is_true(z:push(b4, 1e7) == files["text.txt"])
    end)
  end)

  it("keeps connections alive and reuses only those read to the end", function()
    run(function()
      local pool = http.pool()
      local conns = {}
      for i = 1, 20 do
        local res = get_body(base .. "/hello.txt", { pool = pool })
        conns[i] = res.headers:get("X-Connection")
      end
      for i = 2, 20 do assert.are.equal(conns[1], conns[i]) end
      local st = pool:stats()
      assert.are.same({ 1, 19, 1, 0 }, { st.opened, st.reused, st.idle, st.active })
      -- a response closed before its end closes its connection
      local big = assert(http.get(base .. "/big.bin", { pool = pool }):await())
      assert.are.equal(conns[1], big.headers:get("X-Connection"))
      assert.is_string(big:read(100):await())
      assert.are.equal(1, pool:stats().active)
      big:close()
      assert.are.same({ nil, "http.get: the response is closed", "ECANCELED" }, { big:read():await() })
      assert.are.same({ 0, 0 }, { pool:stats().active, pool:stats().idle })
      local res = get_body(base .. "/hello.txt", { pool = pool })
      assert.are_not.equal(conns[1], res.headers:get("X-Connection"))
      assert.are.equal(2, pool:stats().opened)
      -- Connection: close from the server, and keep_alive = false here
      local c1 = get_body(base .. "/close", { pool = pool })
      assert.are.equal("close", c1.headers:get("Connection"))
      local after = get_body(base .. "/hello.txt", { pool = pool })
      assert.are_not.equal(res.headers:get("X-Connection"), after.headers:get("X-Connection"))
      get_body(base .. "/hello.txt", { pool = pool, keep_alive = false })
      assert.are.equal(0, pool:stats().idle) -- it took the idle connection and closed it
      assert.are.equal(3, pool:stats().opened)
      pool:close()
    end)
  end)

  it("runs 40 requests to one host at once with the default limit, and holds a lower one", function()
    run(function()
      local pool = http.pool()
      local hs = {}
      for i = 1, 40 do
        hs[i] = cf.spawn(function()
          local res = assert(http.get(base .. "/hello.txt?i=" .. i, { pool = pool }):await())
          return assert(res:read_all():await())
        end)
      end
      for i = 1, 40 do assert.are.equal("hello from nginx\n", hs[i]:await()) end
      assert.is_true(pool:stats().opened <= 40)
      pool:close()
      -- max_per_host = 3: never more than 3 connections, all 30 served
      local small = http.pool({ max_per_host = 3 })
      local most = 0
      for i = 1, 30 do
        hs[i] = cf.spawn(function()
          local res = assert(http.get(base .. "/hello.txt?j=" .. i, { pool = small }):await())
          most = math.max(most, small:stats().active)
          return res.headers:get("X-Connection"), assert(res:read_all():await())
        end)
      end
      local seen = {}
      for i = 1, 30 do seen[hs[i]:await()] = true end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.is_true(n <= 3 and most <= 3, n .. " connections, " .. most .. " at once")
      assert.are.equal(n, small:stats().opened)
      small:close()
    end)
  end)

  it("follows redirects as curl does, up to a limit", function()
    run(function()
      local res, body = get_body(base .. "/r301")
      assert.are.same({ 200, "GET /echo-target\n", base .. "/echo-target" }, { res.status, body, res.url })
      for _, c in ipairs { { "r301", "GET" }, { "r302", "GET" }, { "r303", "GET" }, { "r307", "POST" }, { "r308", "POST" } } do
        local r = assert(http.post(base .. "/" .. c[1], "data"):await())
        assert.are.equal(c[2] .. " /echo-target\n", r:read_all():await())
      end
      local h = assert(http.request("HEAD", base .. "/r303"):await())
      assert.are.equal(200, h.status)
      -- not followed
      local r0 = assert(http.get(base .. "/r302", { redirects = 0 }):await())
      assert.are.same({ 302, "/echo-target" }, { r0.status, r0.headers:get("Location") })
      r0:close()
      -- an absolute Location
      local ra = get_body(base .. "/abs")
      assert.are.equal(base .. "/hello.txt", ra.url)
      assert.are.same({ nil, "http.get: too many redirects (more than 5)", "ELOOP" },
        { http.get(base .. "/loop"):await() })
      assert.are.same({ nil, "http.get: too many redirects (more than 2)", "ELOOP" },
        { http.get(base .. "/loop", { redirects = 2 }):await() })
      -- a body that cannot be sent again stops at a 307
      local sent = false
      local r7 = assert(http.post(base .. "/r307", function()
        if sent then return nil end
        sent = true
        return "once"
      end):await())
      assert.are.equal(307, r7.status)
      r7:close()
    end)
  end)

  it("sends no body to HEAD and gets none, and reuses the connection after 204 and HEAD", function()
    run(function()
      local pool = http.pool()
      local h = assert(http.request("HEAD", base .. "/big.bin", { pool = pool }):await())
      assert.are.same({ 200, "1048576", true }, { h.status, h.headers:get("Content-Length"), h:done() })
      assert.are.equal("", h:read_all():await())
      local nc = assert(http.get(base .. "/nocontent", { pool = pool }):await())
      assert.are.equal(204, nc.status)
      assert.is_nil(nc:read():await())
      local res = get_body(base .. "/hello.txt", { pool = pool })
      assert.are.equal(h.headers:get("X-Connection"), res.headers:get("X-Connection"))
      assert.are.equal(1, pool:stats().opened)
      pool:close()
    end)
  end)

  it("PUTs bodies from a string, a file, an iterator (chunked) and a stream", function()
    run(function()
      local payload = files["big.bin"]:sub(1, 300000)
      local r1 = assert(http.request("PUT", base .. "/dav/a.bin", { body = payload }):await())
      assert.are.equal(201, r1.status)
      r1:close()
      local _, b1 = get_body(base .. "/dav/a.bin")
      assert.is_true(b1 == payload)
      -- a file, from where it stands
      local path = nginx.dir .. "/upload.bin"
      peers.write(path, "SKIP" .. payload)
      local f = assert(cf.fs.open(path):await())
      assert(f:read(4):await())
      local r2 = assert(http.request("PUT", base .. "/dav/b.bin", { body = f }):await())
      assert.are.equal(201, r2.status)
      f:close():await()
      local _, b2 = get_body(base .. "/dav/b.bin")
      assert.is_true(b2 == payload)
      -- an iterator: chunked
      local i = 0
      local r3 = assert(http.request("PUT", base .. "/dav/c.bin", { body = function()
        i = i + 1
        if i > 30 then return nil end
        cf.yield_now():await()
        return payload:sub((i - 1) * 10000 + 1, i * 10000)
      end }):await())
      assert.are.equal(201, r3.status)
      local _, b3 = get_body(base .. "/dav/c.bin")
      assert.is_true(b3 == payload)
      -- a stream: a child's stdout
      local p = assert(cf.process.spawn { "cat", path, stdout = "pipe", env = { LD_PRELOAD = false } })
      local r4 = assert(http.request("PUT", base .. "/dav/d.bin", { body = p.stdout }):await())
      assert.are.equal(201, r4.status)
      p:wait():await()
      local _, b4 = get_body(base .. "/dav/d.bin")
      assert.is_true(b4 == "SKIP" .. payload)
      local log = peers.access_log(nginx)
      assert.are.equal('PUT /dav/d.bin HTTP/1.1', log[#log - 1].request)
    end)
  end)

  it("speaks https with the test CA, verifies by default, and reuses TLS connections", function()
    run(function()
      local tbase = "https://localhost:" .. nginx.tls_port
      local pool = http.pool()
      local tls = { cafile = certs.path("ca.pem") }
      local a = get_body(tbase .. "/hello.txt", { tls = tls, pool = pool })
      local b, body = get_body(tbase .. "/hello.txt", { tls = tls, pool = pool })
      assert.are.equal("hello from nginx\n", body)
      assert.are.equal(a.headers:get("X-Connection"), b.headers:get("X-Connection"))
      assert.are.equal(1, pool:stats().opened)
      local _, gz = get_body(tbase .. "/gzip/text.txt", { tls = tls, pool = pool })
      assert.is_true(gz == files["text.txt"])
      -- the system's store does not know the test CA
      local r, msg, code = http.get(tbase .. "/hello.txt", { pool = pool }):await()
      assert.is_nil(r)
      assert.are.equal("ECERTUNTRUSTED", code)
      assert.matches("^http.get: ", msg)
      -- the name must match: 127.0.0.1 is in the certificate, other names are not
      local r2 = get_body("https://127.0.0.1:" .. nginx.tls_port .. "/hello.txt", { tls = tls, pool = pool })
      assert.are.equal(200, r2.status)
      assert.are.same({ nil, "EHOSTMISMATCH" }, { (function()
        local x, _, c = http.get(tbase .. "/hello.txt", { tls = { cafile = certs.path("ca.pem"), servername = "other.example" },
          pool = pool }):await()
        return x, c
      end)() })
      pool:close()
      -- options are compared by value: equal tables share connections, others never
      local p2 = http.pool()
      get_body(tbase .. "/hello.txt", { tls = { cafile = certs.path("ca.pem") }, pool = p2 })
      get_body(tbase .. "/hello.txt", { tls = { cafile = certs.path("ca.pem") }, pool = p2 })
      assert.are.equal(1, p2:stats().opened)
      get_body(tbase .. "/hello.txt", { tls = { verify = false }, pool = p2 })
      assert.are.equal(2, p2:stats().opened)
      p2:close()
    end)
  end)
end)

describe("http client against Python's http.server", function()
  it("sends method, target, Host, User-Agent, Content-Length and the body", function()
    run(function()
      local t = echo(assert(http.post(pybase .. "/submit?x=1", "a=1&b=2",
        { headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Two"] = { "a", "b" } } }):await()))
      assert.are.same({ "POST", "/submit?x=1", "HTTP/1.1", "a=1&b=2", false },
        { t.method, t.path, t.version, t.body, t.chunked })
      assert.are.equal("127.0.0.1:" .. python.port, t.header.host)
      assert.are.equal("7", t.header["content-length"])
      assert.are.equal(http.user_agent, t.header["user-agent"])
      assert.are.equal("gzip, deflate", t.header["accept-encoding"])
      -- query from a table, appended
      local q = echo(assert(http.get(pybase .. "/q?a=1", { query = { b = "x y", c = { 1, 2 } } }):await()))
      assert.are.equal("/q?a=1&b=x%20y&c=1&c=2", q.path)
      -- an iterator body goes chunked; the server decodes it
      local parts = { "one ", "two ", "three" }
      local i = 0
      local c = echo(assert(http.post(pybase .. "/c", function()
        i = i + 1
        return parts[i]
      end):await()))
      assert.are.same({ "one two three", true }, { c.body, c.chunked })
      assert.is_nil(c.header["content-length"])
      -- an iterator with a declared length goes with Content-Length
      i = 0
      local l = echo(assert(http.post(pybase .. "/l", function()
        i = i + 1
        return parts[i]
      end, { length = 13 }):await()))
      assert.are.same({ "one two three", false, "13" }, { l.body, l.chunked, l.header["content-length"] })
      -- and a wrong length fails the request
      i = 0
      assert.are.same({ nil, "http.post: the body is 13 bytes, its Content-Length said 20", "EINVAL" },
        { http.post(pybase .. "/l", function()
          i = i + 1
          return parts[i]
        end, { length = 20 }):await() })
    end)
  end)

  it("sends basic auth from the options or the URL", function()
    run(function()
      local a = echo(assert(http.get(pybase .. "/a", { auth = "alice:s3cret" }):await()))
      assert.are.equal("Basic " .. cf.crypto.base64("alice:s3cret"), a.header.authorization)
      local b = echo(assert(http.get("http://bob:p%40ss@127.0.0.1:" .. python.port .. "/b"):await()))
      assert.are.equal("Basic " .. cf.crypto.base64("bob:p@ss"), b.header.authorization)
      local c = echo(assert(http.get(pybase .. "/c", { auth = { "carol", "x" },
        headers = { Authorization = "Bearer token" } }):await()))
      assert.are.equal("Bearer token", c.header.authorization)
    end)
  end)

  it("keeps the method and body on 307/308 and drops credentials across origins", function()
    run(function()
      local to = pybase .. "/target"
      local r = echo(assert(http.post(pybase .. "/redirect?code=307&to=" .. to, "payload"):await()))
      assert.are.same({ "POST", "payload" }, { r.method, r.body })
      local r2 = echo(assert(http.request("PUT", pybase .. "/redirect?code=308&to=/t2", { body = "p2" }):await()))
      assert.are.same({ "PUT", "/t2", "p2" }, { r2.method, r2.path, r2.body })
      local r3 = echo(assert(http.post(pybase .. "/redirect?code=302&to=/t3", "gone"):await()))
      assert.are.same({ "GET", "" }, { r3.method, r3.body })
      assert.is_nil(r3.header["content-length"])
      -- same origin keeps auth; another origin (localhost is another host) does not
      local same = echo(assert(http.get(pybase .. "/redirect?to=/same", { auth = "u:p" }):await()))
      assert.is_string(same.header.authorization)
      local other = echo(assert(http.get(pybase .. "/redirect?to=http://localhost:" .. python.port .. "/o",
        { auth = "u:p" }):await()))
      assert.is_nil(other.header.authorization)
    end)
  end)

  it("waits for 100 Continue when asked, and sends no body to a server that refuses", function()
    run(function()
      local r = echo(assert(http.post(pybase .. "/expect", "the body", { expect_continue = true }):await()))
      assert.are.same({ "100-continue", "the body" }, { r.header.expect, r.body })
      local sent = 0
      local res = assert(http.post(pybase .. "/expect-refuse", function()
        sent = sent + 1
        return nil
      end, { expect_continue = 5000 * slow }):await())
      assert.are.same({ 417, 0 }, { res.status, sent })
      res:close()
    end)
  end)

  it("expects no body after 304 and 204 whatever Content-Length says, and keeps the connection", function()
    run(function()
      local pool = http.pool()
      for _, st in ipairs { 304, 204 } do
        local res = assert(cf.timeout(5000 * slow, http.get(pybase .. "/status/" .. st, { pool = pool, timeout = 5000 * slow })):await())
        assert.are.equal(st, res.status)
        assert.is_string(res.headers:get("Content-Length"))
        assert.are.equal("", res:read_all():await())
      end
      local t = echo(assert(http.get(pybase .. "/after", { pool = pool }):await()))
      assert.are.equal("/after", t.path)
      assert.are.equal(1, pool:stats().opened)
      pool:close()
    end)
  end)

  it("reads an HTTP/1.0 body that ends with the connection", function()
    run(function()
      local pool = http.pool()
      local res, body = get_body(pybase .. "/http10", { pool = pool })
      assert.are.same({ "1.0", "close-delimited body\n" }, { res.version, body })
      assert.are.same({ 0, 0 }, { pool:stats().idle, pool:stats().active })
      pool:close()
    end)
  end)

  it("goes through an HTTP proxy: absolute-form for http://, CONNECT for https://", function()
    run(function()
      -- a tiny proxy: forwards absolute-form requests and CONNECT tunnels
      local seen = {}
      local proxy = peers.raw(function(conn)
        local head = peers.read_head(conn)
        seen[#seen + 1] = head[1]
        for _, l in ipairs(head) do
          local v = l:match("^[Pp]roxy%-[Aa]uthorization: (.*)$")
          if v then seen[#seen + 1] = v end
        end
        local method, target = head[1]:match("^(%S+) (%S+)")
        local host, port
        if method == "CONNECT" then
          host, port = target:match("^(.*):(%d+)$")
        else
          host, port = target:match("^http://([^:/]+):(%d+)")
        end
        local up = assert(cf.net.connect(host == "localhost" and "127.0.0.1" or host, tonumber(port)):await())
        if method == "CONNECT" then
          conn:write("HTTP/1.1 200 Connection established\r\n\r\n"):await()
        else
          local path = target:match("^http://[^/]+(.*)$")
          up:write(method .. " " .. path .. " HTTP/1.1\r\n" .. table.concat(head, "\r\n", 2) .. "\r\n\r\n"):await()
        end
        local a = cf.spawn(function()
          pcall(function()
            for d in conn:chunks() do up:write(d):await() end
            up:shutdown()
          end)
        end)
        pcall(function()
          for d in up:chunks() do conn:write(d):await() end
          conn:shutdown()
        end)
        a:await()
      end)
      local purl = "http://pu:pp@127.0.0.1:" .. proxy.port
      local res, body = get_body(base .. "/hello.txt", { proxy = purl, pool = http.pool() })
      assert.are.equal("hello from nginx\n", body)
      assert.are.equal("GET " .. base .. "/hello.txt HTTP/1.1", seen[1])
      assert.are.equal("Basic " .. cf.crypto.base64("pu:pp"), seen[2])
      local tres, tbody = get_body("https://localhost:" .. nginx.tls_port .. "/hello.txt",
        { proxy = purl, tls = { cafile = certs.path("ca.pem") }, pool = http.pool() })
      assert.are.same({ 200, "hello from nginx\n" }, { tres.status, tbody })
      assert.are.equal("CONNECT localhost:" .. nginx.tls_port .. " HTTP/1.1", seen[3])
      assert.is_truthy(res)
      proxy.stop()
    end)
  end)
end)

describe("http client timeouts and cancellation", function()
  it("times out a silent server (headers, whole request) and closes the connection", function()
    run(function()
      local closed = cf.channel()
      local srv = peers.raw(function(conn)
        peers.read_head(conn)
        closed:send(conn:read():await() == nil) -- the client hangs up
      end)
      local u = "http://127.0.0.1:" .. srv.port .. "/"
      local pool = http.pool()
      local t0 = cf.now()
      assert.are.same({ nil, "http.get: timed out waiting for the response", "ETIMEDOUT" },
        { http.get(u, { header_timeout = 200, pool = pool }):await() })
      local ms = cf.now() - t0
      assert.is_true(ms >= 199 and ms < 3000 * slow, ms)
      assert.is_true(closed:recv():await())
      assert.are.same({ nil, "http.get: timed out waiting for the response", "ETIMEDOUT" },
        { http.get(u, { timeout = 150, pool = pool }):await() })
      assert.is_true(closed:recv():await())
      assert.are.same({ 0, 0 }, { pool:stats().active, pool:stats().idle })
      srv.stop()
      pool:close()
    end)
  end)

  it("closes the connection of a request cancelled by cf.timeout and gives its slot back", function()
    run(function()
      local closed = cf.channel()
      local srv = peers.raw(function(conn, n)
        peers.read_head(conn)
        if n == 1 then
          closed:send(conn:read():await() == nil)
          return
        end
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):await()
        conn:read():await()
      end)
      local u = "http://127.0.0.1:" .. srv.port .. "/"
      local pool = http.pool({ max_per_host = 1 })
      assert.are.same({ nil, "timeout" }, { cf.timeout(100, http.get(u, { pool = pool })):await() })
      assert.is_true(closed:recv():await())
      assert.are.same({ 0, 0 }, { pool:stats().active, pool:stats().idle })
      -- the one slot is free again
      local res = assert(cf.timeout(5000 * slow, http.get(u, { pool = pool })):await())
      assert.are.equal("ok", res:read_all():await())
      assert.are.same({ 0, 1 }, { pool:stats().active, pool:stats().idle })
      srv.stop()
      pool:close()
    end)
  end)

  it("a cancelled wait for a slot takes none, and a body read cut short keeps the response usable", function()
    run(function()
      local go = cf.notify()
      local srv = peers.raw(function(conn)
        peers.read_head(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"):await()
        go:wait():await()
        conn:write("world"):await()
        peers.read_head(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):await()
        conn:read():await()
      end)
      local u = "http://127.0.0.1:" .. srv.port .. "/"
      local pool = http.pool({ max_per_host = 1 })
      local res = assert(http.get(u, { pool = pool }):await())
      assert.are.equal("hello", res:read():await())
      -- the one slot is held by res: a second request waits, and is cancelled
      assert.are.same({ nil, "timeout" }, { cf.timeout(50, http.get(u, { pool = pool })):await() })
      -- a body read cut short loses nothing
      assert.are.same({ nil, "timeout" }, { cf.timeout(50, res:read()):await() })
      go:notify_one()
      assert.are.equal("world", res:read_all():await())
      -- the connection went back and serves the next request
      local r2 = assert(cf.timeout(5000 * slow, http.get(u, { pool = pool })):await())
      assert.are.equal("ok", r2:read_all():await())
      assert.are.equal(1, srv.count)
      srv.stop()
      pool:close()
    end)
  end)

  it("applies the whole-request timeout to the body, and connect_timeout to connecting", function()
    run(function()
      local srv = peers.raw(function(conn)
        peers.read_head(conn)
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart"):await()
        conn:read():await()
      end)
      local u = "http://127.0.0.1:" .. srv.port .. "/"
      local pool = http.pool()
      local res = assert(http.get(u, { timeout = 300, pool = pool }):await())
      assert.are.same({ nil, "http.get: the request timed out", "ETIMEDOUT" }, { res:read_all():await() })
      assert.are.same({ 0, 0 }, { pool:stats().active, pool:stats().idle })
      assert.are.same({ nil, ("http.get: connecting to 127.0.0.1:%d timed out"):format(srv.port), "ETIMEDOUT" },
        { http.get(u, { connect_timeout = 0, pool = pool }):await() })
      srv.stop()
      pool:close()
    end)
  end)
end)

describe("http client misuse", function()
  it("raises at the call, naming the function and the argument", function()
    local cases = {
      { function() http.request(42, "http://h/") end, 'http.request: argument #1 must be a method name such as "GET" (got number)' },
      { function() http.request("G E T", "http://h/") end, 'http.request: argument #1 must be a method name such as "GET" (got "G E T")' },
      { function() http.request("GET", nil) end, "http.request: argument #2 must be an http:// or https:// URL (got nil)" },
      { function() http.get("ftp://h/") end, 'http.get: argument #1 must be an http:// or https:// URL (got "ftp://h/")' },
      { function() http.get("http://h:99999/") end, "http.get: argument #1 must be an http:// or https:// URL (bad port 99999)" },
      { function() http.get("http://h/", 5) end, "http.get: argument #2 must be a table of options or nil (got number)" },
      { function() http.get("http://h/", { timout = 5 }) end, "http.get: unknown option timout" },
      { function() http.get("http://h/", { timeout = -1 }) end, "http.get: option timeout must be a number of milliseconds from 0 to 1e15 or false (got number)" },
      { function() http.get("http://h/", { redirects = 1.5 }) end, "http.get: option redirects must be an integer from 0 to 1000 (got number)" },
      { function() http.get("http://h/", { body = true }) end, "http.get: option body must be a string, a cfuture file, a stream or an iterator function (got boolean)" },
      { function() http.get("http://h/", { pool = {} }) end, "http.get: option pool must be a cfuture.http.Pool or false (got table)" },
      { function() http.get("http://h/", { proxy = "socks5://p" }) end, "http.get: option proxy must be an http:// URL (got socks5://p)" },
      { function() http.get("http://h/", { auth = 5 }) end, 'http.get: option auth must be "user:password" or { user, password } (got number)' },
      { function() http.post("http://h/", "x", { body = "y" }) end, "http.post: the body is argument #2, not option body" },
      { function() http.post("http://h/", "abc", { length = 2 }) end, "http.post: option length is 2 but the body is 3 bytes" },
      { function() http.pool({ max_per_host = 0 }) end, "http.pool: option max_per_host must be an integer from 1 to 2147483648 (got number)" },
      { function() http.pool({ size = 1 }) end, "http.pool: unknown option size" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.are.equal(c[2], (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
    assert.has_error(function() http.get("http://h/", { headers = { ["X-A"] = "a\r\nX-B: b" } }) end)
    assert.has_error(function() http.get("http://h/", { headers = { ["Bad Name"] = "a" } }) end)
    local p = http.pool()
    p:close()
    assert.has_error(function() http.get("http://h/", { pool = p }) end, "http.get: option pool: the pool is closed")
    assert.has_error(function() http.Response.read({}) end,
      "response:read: argument #1 must be a cfuture.http.Response (call it with a colon; got table)")
    assert.has_error(function() http.Pool.stats(5) end,
      "pool:stats: argument #1 must be a cfuture.http.Pool (call it with a colon; got number)")
  end)

  it("raises a body iterator's error at the await, closing the connection", function()
    run(function()
      local pool = http.pool()
      local ok, err = pcall(function()
        return http.post(pybase .. "/x", function() error("boom", 0) end, { pool = pool }):await()
      end)
      assert.is_false(ok)
      assert.matches("^boom", err)
      local ok2, err2 = pcall(function()
        return http.post(pybase .. "/x", function() return 42 end, { pool = pool }):await()
      end)
      assert.is_false(ok2)
      assert.matches("^http.post: the body iterator must return strings %(got number%)", err2)
      assert.are.same({ 0, 0 }, { pool:stats().active, pool:stats().idle })
      pool:close()
    end)
  end)

  it("leaves no descriptor open after requests, errors and closed pools", function()
    run(function()
      -- streams earlier tests dropped, and their kept connections, are closed
      -- now, not by a collection or the pool's sweeper during the count
      http.default_pool():close_idle()
      support.full_gc()
      local before = support.fd_count()
      for _ = 1, 3 do
        local pool = http.pool()
        get_body(base .. "/hello.txt", { pool = pool })
        local r = assert(http.get(base .. "/big.bin", { pool = pool }):await())
        r:close()
        http.get("http://127.0.0.1:" .. support.unused_port() .. "/", { pool = pool }):await()
        pool:close()
      end
      support.full_gc()
      assert.are.equal(before, support.fd_count())
    end)
  end)
end)

describe("http client pools", function()
  it("closes connections idle past idle_timeout, keeps at most max_idle_per_host", function()
    run(function()
      local pool = http.pool({ idle_timeout = 100, max_idle_per_host = 1 })
      local hs = {}
      for i = 1, 3 do
        hs[i] = cf.spawn(function()
          local res = assert(http.get(base .. "/hello.txt?p=" .. i, { pool = pool }):await())
          cf.sleep(20):await() -- all three are out at once
          return res:read_all():await()
        end)
      end
      for i = 1, 3 do assert.are.equal("hello from nginx\n", hs[i]:await()) end
      assert.are.same({ 3, 1 }, { pool:stats().opened, pool:stats().idle })
      local t0 = cf.now()
      while pool:stats().idle > 0 and cf.now() - t0 < 5000 * slow do cf.sleep(10):await() end
      assert.are.equal(0, pool:stats().idle)
      assert.is_true(cf.now() - t0 >= 70, cf.now() - t0) -- not before it was idle 100 ms
      get_body(base .. "/hello.txt", { pool = pool })
      assert.are.equal(4, pool:stats().opened)
      pool:close()
      assert.matches("^cfuture.http.Pool%(0 idle, 0 active, closed%)$", tostring(pool))
    end)
  end)

  it("gets the slot of a response dropped unread back when it is collected", function()
    run(function()
      local pool = http.pool({ max_per_host = 1 })
      do
        local res = assert(http.get(base .. "/big.bin", { pool = pool }):await())
        assert.are.equal(200, res.status)
      end
      assert.are.equal(1, pool:stats().active)
      support.full_gc()
      cf.sleep(10):await()
      support.full_gc()
      local res = assert(cf.timeout(5000 * slow, http.get(base .. "/hello.txt", { pool = pool })):await())
      assert.are.equal("hello from nginx\n", res:read_all():await())
      pool:close()
    end)
  end)

  it("decodes deflate bodies in the zlib format and raw", function()
    run(function()
      local plain = ("deflate me "):rep(1000)
      local function packed(wbits)
        local _, out = cf.process.run("/usr/bin/python3", { "-c", ("import zlib,sys; c = zlib.compressobj(6, 8, %d); "
          .. "sys.stdout.buffer.write(c.compress(sys.stdin.buffer.read()) + c.flush())"):format(wbits) },
          { input = plain, env = { LD_PRELOAD = false } }):await()
        return out
      end
      local bodies = { packed(15), packed(-15) }
      local srv = peers.raw(function(conn, n)
        peers.read_head(conn)
        local b = bodies[n]
        conn:write("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: " .. #b .. "\r\n\r\n" .. b):await()
        conn:read():await()
      end)
      for _ = 1, 2 do
        local res, body = get_body("http://127.0.0.1:" .. srv.port .. "/", { keep_alive = false })
        assert.are.equal("deflate", res.decoded)
        assert.is_true(body == plain)
      end
      srv.stop()
    end)
  end)

  it("is what cfuture.http exports", function()
    local mod = require "cfuture.http"
    for _, name in ipairs { "request", "get", "post", "pool", "default_pool" } do
      assert.are.equal(http[name], mod[name])
    end
  end)
end)

describe("http client against cfuture's own server", function()
  it("keeps one connection for many requests, uploads chunked, waits for 100 Continue", function()
    run(function()
      local mod = require "cfuture.http"
      local seen = {}
      local server = assert(mod.listen("127.0.0.1", 0, function(req, res)
        local body = assert(req:read_all():await())
        seen[#seen + 1] = { req.method, req.path, #body, req.headers:get("Transfer-Encoding"),
          req.headers:get("Expect") }
        res:set_header("Content-Type", "text/plain")
        res:finish(req.method .. " " .. #body .. "\n")
      end))
      local _, port = server:address()
      local u = "http://127.0.0.1:" .. port
      local pool = http.pool()
      for i = 1, 10 do
        local _, b = get_body(u .. "/n" .. i, { pool = pool })
        assert.are.equal("GET 0\n", b)
      end
      local i = 0
      local r = assert(http.post(u .. "/up", function()
        i = i + 1
        if i <= 100 then return ("z"):rep(1000) end
      end, { pool = pool }):await())
      assert.are.equal("POST 100000\n", r:read_all():await())
      local e = assert(http.request("PUT", u .. "/e", { body = "abc", expect_continue = 5000 * slow,
        pool = pool }):await())
      assert.are.equal("PUT 3\n", e:read_all():await())
      assert.are.equal(1, pool:stats().opened)
      assert.are.same({ "POST", "/up", 100000, "chunked" }, { seen[11][1], seen[11][2], seen[11][3], seen[11][4] })
      assert.are.equal("100-continue", seen[12][5])
      pool:close()
      server:close():await()
    end)
  end)
end)
