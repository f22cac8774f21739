-- cfuture.http's server against real peers: curl (keep-alive, chunked
-- upload, HTTP/1.0, HEAD, 100-continue, TLS), Python's http.client, and raw
-- cfuture TCP clients (pipelining, streaming, upgrade); the request and
-- response objects, limits, timeouts, graceful close, argument checks.
local cf = require "cfuture"
local http = require "cfuture.http"
local support = require "support"

local slow = support.slow

local function have(prog)
  return os.execute("command -v " .. prog .. " >/dev/null 2>&1") == true
end

-- Run a program outside the sanitizer (curl, python must not inherit the
-- suite's LD_PRELOAD): code, stdout, stderr.
local function run(cmd, args, input)
  return cf.process.run(cmd, args, { input = input, env = { LD_PRELOAD = false } }):await()
end

-- Listen on a free port with handler and opts, run fn(base_url, server,
-- port) in a task, then close the server (whatever fn did).
local function with_server(handler, opts, fn)
  cf.block_on(function()
    local srv = assert(http.listen("127.0.0.1", 0, handler, opts))
    local _, port = srv:address()
    local ok, err = pcall(fn, "http://127.0.0.1:" .. port, srv, port)
    srv:close(100):await()
    if not ok then error(err, 0) end
  end)
end

-- A raw client: connect, write, read everything until the server closes.
local function raw(port, data, keep)
  local c = assert(cf.net.connect("127.0.0.1", port):await())
  if data then assert(c:write(data):await()) end
  if keep then return c end
  local all = cf.timeout(10000 * slow, c:read_all()):await()
  c:close()
  return all
end

-- Read one response from a raw stream: status, headers (lower-case names),
-- body; understands Content-Length and chunked.
local function read_response(c)
  local line = c:read_line():await()
  if not line then return nil end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local h = {}
  while true do
    local l = assert(c:read_line():await())
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    h[k:lower()] = v
  end
  local body = ""
  if h["content-length"] then
    body = c:read_exact(tonumber(h["content-length"])):await()
  elseif h["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(c:read_line():await()):match("^%x+"), 16)
      if size == 0 then
        assert.are.equal("", c:read_line():await())
        break
      end
      parts[#parts + 1] = c:read_exact(size):await()
      assert.are.equal("", c:read_line():await())
    end
    body = table.concat(parts)
  end
  return status, h, body, line
end

local function echo_info(req)
  return 200, ("%s %s %s %s"):format(req.method, req.path, req.version, select(2, req:peer_address()))
end

describe("http server with curl", function()
  if not have("curl") then
    pending("curl is not installed")
    return
  end

  it("keeps the connection alive for two URLs in one curl run", function()
    with_server(echo_info, nil, function(base)
      local code, out, err = run("curl", { "-sv", base .. "/a", base .. "/b" })
      assert.are.equal(0, code)
      local port1, port2 = out:match("^GET /a 1%.1 (%d+)GET /b 1%.1 (%d+)$")
      assert.is_truthy(port1, out)
      assert.are.equal(port1, port2) -- the same client port: one connection
      assert.matches("Re%-using existing connection", err)
    end)
  end)

  it("takes a chunked upload", function()
    local got
    with_server(function(req)
      got = { chunked = req.headers:has_token("Transfer-Encoding", "chunked"),
        body = req:read_all():await() }
      return 201, ("%d bytes"):format(#got.body)
    end, nil, function(base)
      local data = ("0123456789abcdef\n"):rep(5000)
      local code, out = run("curl", { "-s", "-H", "Transfer-Encoding: chunked",
        "--data-binary", "@-", base .. "/up" }, data)
      assert.are.equal(0, code)
      assert.are.equal(("%d bytes"):format(#data), out)
      assert.is_true(got.chunked)
      assert.are.equal(data, got.body)
    end)
  end)

  it("answers HTTP/1.0 with Connection: close and a body ended by the close", function()
    with_server(function(req, res)
      if req.path == "/stream" then
        res:write("one ")
        res:write("two")
        return
      end
      return echo_info(req)
    end, nil, function(base)
      local code, out = run("curl", { "-s", "-i", "--http1.0", base .. "/stream" })
      assert.are.equal(0, code)
      assert.matches("^HTTP/1.1 200 OK\r\n", out)
      assert.matches("\r\nConnection: close\r\n", out)
      assert.is_nil(out:find("Transfer%-Encoding"))
      assert.matches("\r\n\r\none two$", out)
      local _, out2 = run("curl", { "-s", "--http1.0", base .. "/x" })
      assert.matches("^GET /x 1%.0 %d+$", out2)
    end)
  end)

  it("answers HEAD (-I) with the headers and no body", function()
    with_server(function(req) return 200, "hello\n", { ["X-Method"] = req.method } end, nil,
      function(base)
        local code, out = run("curl", { "-s", "-I", base .. "/" })
        assert.are.equal(0, code)
        assert.matches("^HTTP/1.1 200 OK\r\n", out)
        assert.matches("\r\nContent%-Length: 6\r\n", out)
        assert.matches("\r\nX%-Method: HEAD\r\n", out)
        assert.matches("\r\n\r\n$", out) -- nothing after the head
      end)
  end)

  it("sends 100 Continue when the handler reads the body of -T", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    local data = ("upload line\n"):rep(1000)
    f:write(data)
    f:close()
    local got
    with_server(function(req)
      got = req:read_all():await()
      return 200, "stored " .. #got
    end, nil, function(base)
      local code, out, err = run("curl", { "-sv", "-H", "Expect: 100-continue", "-T", path,
        base .. "/file" })
      assert.are.equal(0, code)
      assert.are.equal("stored " .. #data, out)
      assert.matches("HTTP/1.1 100 Continue", err)
      assert.are.equal(data, got)
    end)
    os.remove(path)
  end)

  it("does not send 100 Continue to a request it answers without reading", function()
    with_server(function() return 403, "no\n" end, nil, function(base, _, port)
      local c = raw(port, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" ..
        "Expect: 100-continue\r\n\r\n", true)
      local status, h, body = read_response(c)
      assert.are.same({ 403, "no\n", "close" }, { status, body, h.connection })
      assert.is_nil(c:read():await()) -- closed: the unsent body cannot be told from a request
      c:close()
    end)
  end)

  it("serves https through opts.tls", function()
    local certs = require "tls_certs"
    with_server(echo_info, { tls = { certfile = certs.path("server.pem"),
      keyfile = certs.path("server.key") } }, function(base)
      local url = base:gsub("^http:", "https:")
      local code, out = run("curl", { "-s", "--cacert", certs.path("ca.pem"), url .. "/s", url .. "/t" })
      assert.are.equal(0, code)
      local p1, p2 = out:match("^GET /s 1%.1 (%d+)GET /t 1%.1 (%d+)$")
      assert.is_truthy(p1, out)
      assert.are.equal(p1, p2)
    end)
  end)
end)

describe("http server with Python's http.client", function()
  if not have("/usr/bin/python3") then
    pending("/usr/bin/python3 is not installed")
    return
  end

  it("answers several requests on one kept-alive connection", function()
    local script = [[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
out = []
for path in ["/a?x=1", "/b"]:
    c.request("GET", path)
    r = c.getresponse()
    out.append("%d %s" % (r.status, r.read().decode()))
c.request("POST", "/echo", body=b"posted", headers={"Content-Type": "text/plain"})
r = c.getresponse()
out.append("%d %s %s" % (r.status, r.getheader("X-Len"), r.read().decode()))
c.request("GET", "/chunks")
r = c.getresponse()
out.append("%d %s %s" % (r.status, r.getheader("Transfer-Encoding"), r.read().decode()))
print("|".join(out))
]]
    local ports = {}
    with_server(function(req, res)
      ports[#ports + 1] = select(2, req:peer_address())
      if req.path == "/echo" then
        local b = req:read_all():await()
        return 200, b, { ["X-Len"] = #b }
      elseif req.path == "/chunks" then
        for i = 1, 3 do res:write("c" .. i) end
        res:finish()
        return
      end
      return 200, req.path .. (req.query.x or "")
    end, nil, function(_, _, port)
      local code, out, err = run("/usr/bin/python3", { "-c", script, tostring(port) })
      assert.are.equal(0, code, err)
      assert.are.equal("200 /a1|200 /b|200 6 posted|200 chunked c1c2c3\n", out)
    end)
    assert.are.equal(4, #ports)
    for i = 2, 4 do assert.are.equal(ports[1], ports[i]) end
  end)
end)

describe("http server with raw clients", function()
  it("answers pipelined requests in order, a slow one first", function()
    with_server(function(req)
      if req.path == "/slow" then cf.sleep(50):await() end
      return 200, req.path
    end, nil, function(_, _, port)
      local c = raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "POST /post HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /last HTTP/1.1\r\n\r\n", true)
      local bodies = {}
      for i = 1, 4 do
        local status, _, body = read_response(c)
        assert.are.equal(200, status)
        bodies[i] = body
      end
      assert.are.same({ "/slow", "/fast", "/post", "/last" }, bodies)
      c:close()
    end)
  end)

  it("gives the request's fields and decoded query", function()
    local seen
    with_server(function(req)
      seen = { method = req.method, target = req.target, path = req.path, query = req.query,
        version = req.version, host = req.headers:get("host"), accept = req.headers:get_all("ACCEPT"),
        keep_alive = req.keep_alive }
      return 204
    end, nil, function(_, _, port)
      local c = raw(port, "GET /p/q?a=1&b=x%20y&a=2&c=%41+B&flag HTTP/1.1\r\nHost: h.example\r\n" ..
        "Accept: a\r\naccept: b\r\n\r\n", true)
      local status, h, body = read_response(c)
      assert.are.same({ 204, "" }, { status, body })
      assert.is_nil(h["content-length"])
      c:close()
    end)
    assert.are.same({ method = "GET", target = "/p/q?a=1&b=x%20y&a=2&c=%41+B&flag", path = "/p/q",
      query = { a = { "1", "2" }, b = "x y", c = "A B", flag = "" }, version = "1.1",
      host = "h.example", accept = { "a", "b" }, keep_alive = true }, seen)
  end)

  it("streams a chunked response, with trailers", function()
    with_server(function(req, res)
      res:set_status(202)
      res.headers:set("Content-Type", "text/plain")
      assert(res:write("first,"))
      assert(res:write(""))
      assert(res:write("second"))
      assert(res:finish(",last", { ["X-Sum"] = "3" }))
    end, nil, function(_, _, port)
      local all = raw(port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
      assert.matches("^HTTP/1.1 202 Accepted\r\n", all)
      assert.matches("\r\nTransfer%-Encoding: chunked\r\n", all)
      assert.matches("\r\nConnection: close\r\n", all)
      assert.matches("\r\n\r\n6\r\nfirst,\r\n6\r\nsecond\r\n5\r\n,last\r\n0\r\nX%-Sum: 3\r\n\r\n$", all)
    end)
  end)

  it("uses a Content-Length the handler set, and refuses a body that does not match", function()
    local err
    with_server(function(req, res)
      res.headers:set("Content-Length", "10")
      if req.path == "/ok" then
        res:write("01234")
        res:finish("56789")
      else
        res:write("0123")
        local ok, e = pcall(res.finish, res, "x")
        err = e
      end
    end, nil, function(_, _, port)
      local all = raw(port, "GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n")
      assert.matches("\r\nContent%-Length: 10\r\n.*\r\n\r\n0123456789$", all)
      assert.is_nil(all:find("chunked"))
      local short = raw(port, "GET /short HTTP/1.1\r\n\r\n")
      assert.matches("\r\n\r\n0123$", short) -- and the connection closed
    end)
    assert.matches("res:finish: the body ended 5 bytes short of Content%-Length", err)
  end)

  it("returns status, body and headers from the handler (lists repeat a header)", function()
    with_server(function()
      return 201, "made", { ["Set-Cookie"] = { "a=1", "b=2" }, ["Content-Type"] = "text/x" }
    end, nil, function(_, _, port)
      local all = raw(port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
      assert.matches("^HTTP/1.1 201 Created\r\n", all)
      assert.matches("\r\nSet%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n", all)
      assert.matches("\r\nContent%-Type: text/x\r\n", all)
      assert.matches("\r\nContent%-Length: 4\r\n", all)
      assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", all)
      assert.matches("\r\n\r\nmade$", all)
    end)
  end)

  it("answers 500 for a handler error and reports it through cf.on_error", function()
    local reported = {}
    local old = cf.on_error(function(err) reported[#reported + 1] = err end)
    with_server(function(req)
      if req.path == "/boom" then error({ code = "custom" }) end
      return 200, "fine"
    end, nil, function(_, _, port)
      local all = raw(port, "GET /boom HTTP/1.1\r\n\r\n")
      assert.matches("^HTTP/1.1 500 Internal Server Error\r\n", all)
      assert.matches("\r\nConnection: close\r\n", all)
      assert.matches("\r\n\r\nfine$", raw(port, "GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n"))
    end)
    cf.on_error(old)
    assert.are.equal(1, #reported)
    assert.are.same({ code = "custom" }, reported[1]) -- the value itself
  end)

  it("keeps HTTP/1.0 keep-alive clients alive when they ask", function()
    with_server(function() return 200, "x" end, nil, function(_, _, port)
      local c = raw(port, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true)
      local status, h = read_response(c)
      assert.are.same({ 200, "keep-alive" }, { status, h.connection })
      c:write("GET / HTTP/1.0\r\n\r\n"):await()
      local status2, h2 = read_response(c)
      assert.are.same({ 200, "close" }, { status2, h2.connection })
      assert.is_nil(c:read():await())
      c:close()
    end)
  end)

  it("closes an idle kept-alive connection after idle_timeout", function()
    with_server(function() return 200, "x" end, { idle_timeout = 100 * slow }, function(_, _, port)
      local c = raw(port, "GET / HTTP/1.1\r\n\r\n", true)
      assert.are.equal(200, (read_response(c)))
      local t0 = cf.now()
      assert.is_nil(cf.timeout(5000 * slow, c:read()):await())
      local ms = cf.now() - t0
      assert.is_true(ms >= 100 * slow - 5 and ms < 2000 * slow, ms)
      c:close()
    end)
  end)

  it("answers 413 to a body over max_body, by Content-Length or as it arrives", function()
    with_server(function(req)
      local b, msg = req:read_all():await()
      assert(b, msg)
      return 200, "got " .. #b
    end, { max_body = 100 }, function(_, _, port)
      local all = raw(port, "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n" .. ("x"):rep(101))
      assert.matches("^HTTP/1.1 413 Content Too Large\r\n", all)
      local chunked = raw(port, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "40\r\n" .. ("y"):rep(64) .. "\r\n40\r\n" .. ("y"):rep(64) .. "\r\n0\r\n\r\n")
      assert.matches("^HTTP/1.1 413 Content Too Large\r\n", chunked)
      assert.matches("body too large", chunked)
      assert.matches("got 100$", raw(port, "POST / HTTP/1.1\r\nContent-Length: 100\r\n" ..
        "Connection: close\r\n\r\n" .. ("z"):rep(100)))
    end)
  end)

  it("drains a body the handler did not read, and serves the next request", function()
    with_server(function(req) return 200, req.path end, nil, function(_, _, port)
      local c = raw(port, "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" ..
        "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" ..
        "GET /c HTTP/1.1\r\n\r\n", true)
      local got = {}
      for i = 1, 3 do got[i] = select(3, read_response(c)) end
      assert.are.same({ "/a", "/b", "/c" }, got)
      c:close()
    end)
  end)

  it("hands the stream over on res:upgrade, with the bytes read past the head", function()
    local done = cf.notify()
    with_server(function(req, res)
      assert.is_true(req.keep_alive ~= nil)
      local s, left = res:upgrade({ Upgrade = "echo" })
      cf.spawn(function()
        s:write("left:" .. left .. ";"):await()
        for data in s:chunks() do s:write(data:upper()):await() end
        s:close()
        done:notify_one()
      end)
    end, nil, function(_, srv, port)
      local c = raw(port, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly", true)
      local status, h = read_response(c)
      assert.are.same({ 101, "Upgrade", "echo" }, { status, h.connection, h.upgrade })
      assert.are.equal("left:early;", c:read_exact(11):await())
      c:write("more"):await()
      assert.are.equal("MORE", c:read_exact(4):await())
      assert.are.equal(0, srv:connections()) -- no longer the server's
      c:close()
      done:wait():await()
    end)
  end)

  it("serves a stream given to server:serve", function()
    cf.block_on(function()
      local srv = http.server(function(req) return 200, "served " .. req.path end)
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local _, port = l:local_address()
      local client = cf.spawn(function()
        return raw(port, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
      end)
      local s = l:accept():await()
      srv:serve(s):await()
      assert.matches("\r\n\r\nserved /x$", client:await())
      l:close()
      srv:close():await()
    end)
  end)
end)

describe("http server graceful close", function()
  it("finishes requests in progress, closes idle connections, refuses new ones", function()
    cf.block_on(function()
      local started = cf.notify()
      local srv = assert(http.listen("127.0.0.1", 0, function(req)
        if req.path == "/slow" then
          started:notify_one()
          cf.sleep(100):await()
        end
        return 200, "done " .. req.path
      end))
      local _, port = srv:address()
      local idle = raw(port, "GET /i HTTP/1.1\r\n\r\n", true)
      assert.are.equal(200, (read_response(idle)))
      local busy = cf.spawn(function() return raw(port, "GET /slow HTTP/1.1\r\n\r\n") end)
      started:wait():await()
      local t0 = cf.now()
      local closing = cf.spawn(function() return srv:close(5000 * slow):await() end)
      cf.sleep(10):await()
      assert.is_nil(idle:read():await()) -- the idle connection was closed at once
      idle:close()
      local all = busy:await()
      assert.matches("^HTTP/1.1 200 OK\r\n", all)
      assert.matches("\r\nConnection: close\r\n", all)
      assert.matches("done /slow$", all)
      assert.is_true(closing:await())
      assert.is_true(cf.now() - t0 < 2000 * slow)
      local c, _, code = cf.net.connect("127.0.0.1", port):await()
      assert.is_nil(c)
      assert.are.equal("ECONNREFUSED", code)
      assert.is_true(srv:wait():await())
      assert.matches("closed", tostring(srv))
    end)
  end)

  it("cuts requests that outlast the grace period", function()
    cf.block_on(function()
      local started = cf.notify()
      local srv = assert(http.listen("127.0.0.1", 0, function()
        started:notify_one()
        cf.sleep(60000):await()
        return 200, "never"
      end))
      local _, port = srv:address()
      local busy = cf.spawn(function() return raw(port, "GET / HTTP/1.1\r\n\r\n") end)
      started:wait():await()
      local t0 = cf.now()
      srv:close(50):await()
      local ms = cf.now() - t0
      assert.is_true(ms >= 45 and ms < 2000 * slow, ms)
      assert.are.equal("", busy:await())
      assert.are.equal(0, srv:connections())
    end)
  end)
end)

describe("http server argument checks", function()
  it("raises on bad arguments and options", function()
    local h = function() end
    assert.has_error(function() http.listen("127.0.0.1", 0, 5) end,
      "http.listen: argument #3 must be a function (got number)")
    assert.has_error(function() http.listen("127.0.0.1", 0, h, { max_bodyy = 1 }) end,
      "http.listen: unknown option max_bodyy")
    assert.has_error(function() http.listen("127.0.0.1", 0, h, { header_timeout = -1 }) end,
      "http.listen: option header_timeout must be a positive number of milliseconds (got -1)")
    assert.has_error(function() http.listen("127.0.0.1", 0, h, { max_connections = 1.5 }) end,
      "http.listen: option max_connections must be a positive integer (got 1.5)")
    assert.has_error(function() http.listen("127.0.0.1", 0, h, { max_header_size = 100000 }) end,
      "http.listen: option max_header_size must be at most 81920 (got 100000)")
    assert.has_error(function() http.listen("127.0.0.1", 0, h, "x") end,
      "http.listen: argument #4 must be a table of options or nil (got string)")
    local srv, msg, code = http.listen("256.0.0.1", 0, h)
    assert.is_nil(srv)
    assert.matches("^http.listen: ", msg)
    assert.is_string(code)
  end)

  it("checks the methods' self and arguments", function()
    local errors = {}
    with_server(function(req, res)
      local function try(f, ...)
        local ok, e = pcall(f, ...)
        errors[#errors + 1] = not ok and e or "no error"
      end
      try(res.write, {}, "x")
      try(res.write, res, {})
      try(res.set_status, res, 99)
      try(res.set_status, res, 200, "a\r\nb")
      try(res.set_header, res, "Bad Name", "x")
      try(req.read, {})
      try(res.upgrade, 5)
      res:finish("ok")
      try(res.finish, res)
      try(res.write, res, "late")
    end, nil, function(_, _, port)
      assert.matches("\r\n\r\nok$", raw(port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
    end)
    assert.matches("res:write: argument #1 must be a cfuture.http.ServerResponse", errors[1])
    assert.matches("res:write: argument #2 must be a string %(got table%)", errors[2])
    assert.matches("res:set_status: argument #2 must be a status code from 100 to 999 %(got 99%)",
      errors[3])
    assert.matches("header injection", errors[4])
    assert.matches("headers:set: argument #2 must be a header name", errors[5])
    assert.matches("req:read: argument #1 must be a cfuture.http.Request", errors[6])
    assert.matches("res:upgrade: argument #1 must be a cfuture.http.ServerResponse", errors[7])
    assert.matches("res:finish: the response is finished", errors[8])
    assert.matches("res:write: the response is finished", errors[9])
  end)
end)

describe("http.headers", function()
  it("keeps order and case, looks up without case, refuses injection", function()
    local h = http.headers { "Content-Type", "text/plain", "set-cookie", "a", "Set-Cookie", "b" }
    assert.are.equal("text/plain", h:get("content-type"))
    assert.are.same({ "a", "b" }, h:get_all("SET-COOKIE"))
    assert.is_true(h:has("Set-Cookie"))
    h:add("Connection", "keep-alive, Upgrade")
    assert.is_true(h:has_token("connection", "upgrade"))
    assert.is_false(h:has_token("connection", "close"))
    h:set("set-cookie", "c")
    assert.are.same({ "Content-Type", "text/plain", "Connection", "keep-alive, Upgrade",
      "set-cookie", "c" }, h:list())
    h:remove("CONNECTION")
    local seen = {}
    for k, v in h:each() do seen[#seen + 1] = k .. "=" .. v end
    assert.are.same({ "Content-Type=text/plain", "set-cookie=c" }, seen)
    assert.are.equal(2, h:count())
    assert.are.same({ ["content-type"] = "text/plain", ["set-cookie"] = "c" }, h:to_table())
    assert.has_error(function() h:set("X", "a\r\nInjected: 1") end,
      "headers:set: argument #3 must not contain CR, LF or NUL (header injection)")
    assert.has_error(function() h:add("X", "a\0b") end)
    assert.has_error(function() h:add("X Y", "a") end)
    assert.has_error(function() http.headers { X = { "ok", "bad\n" } } end)
    assert.has_error(function() h.get({}, "x") end,
      "headers:get: argument #1 must be a cfuture.http.Headers (call it with a colon; got table)")
    local m = http.headers { ["X-A"] = "1", ["X-B"] = { "2", "3" }, ["X-N"] = 4 }
    assert.are.same({ "2", "3" }, m:get_all("x-b"))
    assert.are.equal("4", m:get("X-N"))
    assert.matches("^cfuture.http.Headers{", tostring(m))
  end)
end)

describe("library/cfuture/http.lua", function()
  it("declares every function of cfuture.http and every method of its objects, and only those", function()
    local text = support.read_file("library/cfuture/http.lua")
    local declared = {}
    for var, name in text:gmatch("\nfunction (%w+)[%.:]([%w_]+)%(") do
      declared[var .. "." .. name] = true
    end
    local server = require "cfuture.http.server"
    local headers = require "cfuture.http.headers"
    local want = {}
    for k, v in pairs(http) do
      if type(v) == "function" and not k:match("^_") and not package.loaded["cfuture.http.client"] then
        want["http." .. k] = true
      end
    end
    local function methods(var, t)
      for k, v in pairs(t) do
        if type(v) == "function" and not k:match("^_") then want[var .. "." .. k] = true end
      end
    end
    methods("Server", getmetatable(http.server(function() end)).__index)
    methods("Headers", headers.Headers)
    local req_methods = getmetatable(setmetatable({}, server.Request)).__index
    assert.is_function(req_methods) -- a function: methods and lazy fields
    for _, m in ipairs { "read", "read_all", "lines", "chunks", "peer_address" } do
      want["Request." .. m] = true
      assert.is_function(server.Request.__index({}, m))
    end
    for _, m in ipairs { "set_status", "status_code", "set_header", "write", "finish",
      "is_head_sent", "upgrade" } do
      want["Response." .. m] = true
      assert.is_function(server.ServerResponse.__index({}, m))
    end
    for k in pairs(want) do assert.is_true(declared[k] ~= nil, "not declared: " .. k) end
    if not package.loaded["cfuture.http.client"] then
      for k in pairs(declared) do assert.is_true(want[k] ~= nil, "declared, not in the module: " .. k) end
    end
  end)
end)
