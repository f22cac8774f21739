-- The network examples, run as real servers and driven by real clients:
-- cfuture's own, nc / socat, curl and redis-cli where installed.
local cf = require "cfuture"
local support = require "support"

local function have(prog)
  return os.execute("command -v " .. prog .. " >/dev/null 2>&1") == true
end

-- Start `lua examples/<name>.lua 0` (under the suite's wrapper); returns the
-- process (killed when it goes out of a <close> scope, so a failing test
-- leaves no server behind) and the port it printed.
local Killer = { __close = function(self)
  if not self.p:status() then self.p:kill("SIGKILL") end
end }

local function start(name, ...)
  local argv = {}
  for word in (os.getenv("CFUTURE_LUA_WRAPPER") or ""):gmatch("%S+") do argv[#argv + 1] = word end
  for _, a in ipairs { support.lua, "examples/" .. name .. ".lua", "0", ... } do argv[#argv + 1] = a end
  argv.stdout = "pipe"
  argv.env = { LUA_PATH = package.path, LUA_CPATH = package.cpath, LUA_PATH_5_4 = package.path,
    LUA_CPATH_5_4 = package.cpath }
  local p = assert(cf.process.spawn(argv))
  local line = cf.timeout(30000 * support.slow, p.stdout:read_line()):await()
  local port = tonumber(tostring(line):match(":(%d+)"))
  assert(port, "no port in: " .. tostring(line))
  return p, port, setmetatable({ p = p }, Killer)
end

-- Stop with Ctrl-C; the server must exit 0 (and clean under the wrapper).
local function stop(p)
  p:kill("SIGINT")
  local code = cf.timeout(30000 * support.slow, p:wait()):await()
  assert.are.equal(0, code)
end

-- Run a shell command line (outside the sanitizer: tools like curl must not
-- inherit the suite's LD_PRELOAD).
local function sh(cmd, input)
  return cf.process.run("sh", { "-c", cmd }, { input = input, env = { LD_PRELOAD = false } }):await()
end

describe("examples/echo_server.lua", function()
  it("echoes for cfuture clients, nc and socat, many at once", function()
    cf.block_on(function()
      local p, port, _k <close> = start("echo_server")
      local clients = {}
      for i = 1, 20 do
        clients[i] = cf.spawn(function()
          local c = assert(cf.net.connect("127.0.0.1", port):await())
          c:write(("client %d\n"):format(i)):await()
          local r = c:read_line():await()
          c:close()
          return r
        end)
      end
      for i = 1, 20 do assert.are.equal(("client %d"):format(i), clients[i]:await()) end
      if have("nc") then
        local code, out = sh("nc -N 127.0.0.1 " .. port, "via nc\n")
        assert.are.same({ 0, "via nc\n" }, { code, out })
      end
      if have("socat") then
        local code, out = sh("socat - TCP:127.0.0.1:" .. port, "via socat\n")
        assert.are.same({ 0, "via socat\n" }, { code, out })
      end
      stop(p)
    end)
  end)
end)

describe("examples/chat.lua", function()
  it("relays lines between clients, renames, drops idle and overlong clients, stops on SIGINT", function()
    cf.block_on(function()
      local idle_s = 1.5 * support.slow
      local p, port, _k <close> = start("chat", tostring(idle_s))
      local function client()
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        local function line() return cf.timeout(10000 * support.slow, c:read_line()):await() end
        return c, line
      end
      local a, a_line = client()
      assert.are.equal("welcome, guest1! here: guest1. /nick NAME, /who, /quit", a_line())
      local b, b_line = client()
      assert.are.equal("welcome, guest2! here: guest1, guest2. /nick NAME, /who, /quit", b_line())
      assert.are.equal("guest2 joined", a_line())
      a:write("/nick ann\nhello, all\n"):await()
      assert.are.equal("guest1 is now ann", b_line())
      assert.are.equal("ann: hello, all", b_line())
      local t0 = cf.now() -- b's last words: its idle time starts after this
      b:write("/who\n/nick bad name\n"):await()
      assert.are.equal("here: ann, guest2", b_line())
      assert.are.equal("unknown command or bad name: /nick bad name", b_line())
      -- a line over the limit ends that client; the others hear it left
      a:write(("x"):rep(2000) .. "\n"):await()
      assert.are.equal("line too long, bye", a_line())
      assert.is_nil(a_line())
      assert.are.equal("ann left", b_line())
      a:close()
      -- b says nothing more: dropped once idle, not before
      assert.are.equal("idle too long, bye", b_line())
      assert.is_true(cf.now() - t0 >= idle_s * 1000 - 2, cf.now() - t0)
      assert.is_nil(b_line())
      b:close()
      -- Ctrl-C closes the connections that remain and exits 0
      local c, c_line = client()
      assert.matches("^welcome, guest3!", c_line())
      stop(p)
      assert.is_nil(c_line())
      c:close()
    end)
  end)
end)

describe("examples/http_server.lua", function()
  it("answers curl, keeps connections alive, and serves slow requests concurrently", function()
    cf.block_on(function()
      local p, port, _k <close> = start("http_server")
      local base = "http://127.0.0.1:" .. port
      if have("curl") then
        local code, out = sh("curl -s " .. base .. "/")
        assert.are.same({ 0, "hello\n" }, { code, out })
        local _, echoed = sh("curl -s --data-binary @- " .. base .. "/echo", "posted body")
        assert.are.equal("posted body", echoed)
        local _, _, verbose = sh("curl -sv " .. base .. "/ " .. base .. "/ -o /dev/null -o /dev/null")
        assert.matches("Re%-using existing connection", verbose)
        local _, missing = sh("curl -s -o /dev/null -w '%{http_code}' " .. base .. "/nope")
        assert.are.equal("404", missing)
      end
      -- 10 requests that each take 300 ms finish together
      local t0 = cf.now()
      local reqs = {}
      for i = 1, 10 do
        reqs[i] = cf.spawn(function()
          local c = assert(cf.net.connect("127.0.0.1", port):await())
          c:write("GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):await()
          local all = c:read_all():await()
          c:close()
          return all
        end)
      end
      for i = 1, 10 do assert.matches("HTTP/1.1 200 OK.*slept 300 ms\n$", reqs[i]:await()) end
      local ms = cf.now() - t0
      assert.is_true(ms >= 300 and ms < 1500 * support.slow, ms)
      -- a bad request line gets 400 and a closed connection
      local c = assert(cf.net.connect("127.0.0.1", port):await())
      c:write("NONSENSE\r\n\r\n"):await()
      assert.matches("^HTTP/1.1 400", c:read_all():await())
      stop(p)
    end)
  end)

  it("is fetched by examples/http_get.lua", function()
    cf.block_on(function()
      local p, port, _k <close> = start("http_server")
      local wrapper = os.getenv("CFUTURE_LUA_WRAPPER") or ""
      local paths = ("LUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s"):format(
        support.shell_quote(package.path), support.shell_quote(package.cpath),
        support.shell_quote(package.path), support.shell_quote(package.cpath))
      local code, out, err = sh(("%s %s %s examples/http_get.lua http://127.0.0.1:%d/sleep?ms=5")
        :format(paths, wrapper, support.lua, port))
      assert.are.equal(0, code, err)
      assert.are.equal("slept 5 ms\n", out)
      assert.matches("HTTP/1.1 200 OK", err)
      local code2, _, err2 = sh(("%s %s %s examples/http_get.lua http://127.0.0.1:1/")
        :format(paths, wrapper, support.lua))
      assert.are.equal(1, code2)
      assert.matches("connection refused", err2)
      stop(p)
    end)
  end)
end)

describe("examples/tls_echo_server.lua", function()
  local certs = require "tls_certs"
  teardown(function() certs.cleanup() end)

  it("echoes over TLS for cfuture clients, openssl s_client and socat", function()
    cf.block_on(function()
      local p, port, _k <close> = start("tls_echo_server", certs.path("server.pem"), certs.path("server.key"))
      local ctx = assert(cf.tls.context({ cafile = certs.path("ca.pem") }))
      local clients = {}
      for i = 1, 20 do
        clients[i] = cf.spawn(function()
          local c = assert(cf.tls.connect("localhost", port, { context = ctx }):await())
          c:write(("client %d\n"):format(i)):await()
          local r = c:read_line():await()
          c:shutdown()
          assert.is_nil(c:read_line():await()) -- the server's close_notify
          c:close()
          return r
        end)
      end
      for i = 1, 20 do assert.are.equal(("client %d"):format(i), clients[i]:await()) end
      local code, out = sh(("(echo via s_client; sleep 1) | openssl s_client -connect 127.0.0.1:%d " ..
        "-CAfile %s -verify_return_error -quiet -no_ign_eof 2>/dev/null"):format(port, certs.path("ca.pem")))
      assert.are.same({ 0, "via s_client\n" }, { code, out })
      if have("socat") then
        code, out = sh(("socat - OPENSSL:127.0.0.1:%d,cafile=%s"):format(port, certs.path("ca.pem")),
          "via socat\n")
        assert.are.same({ 0, "via socat\n" }, { code, out })
      end
      -- a client that is not TLS at all: the server logs it and goes on
      local raw = assert(cf.net.connect("127.0.0.1", port):await())
      raw:write("GET / HTTP/1.0\r\n\r\n"):await()
      assert.is_nil((raw:read_all():await()):find("GET", 1, true))
      raw:close()
      local c = assert(cf.tls.connect("localhost", port, { context = ctx }):await())
      c:write("still here\n"):await()
      assert.are.equal("still here", c:read_line():await())
      c:close()
      stop(p)
    end)
  end)
end)

describe("examples/http_get.lua over HTTPS", function()
  local certs = require "tls_certs"
  teardown(function() certs.cleanup() end)

  it("fetches an https:// URL from a Python HTTPS server, verifying it with SSL_CERT_FILE", function()
    local server = [[
import http.server, ssl, sys, os
os.chdir(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print("PORT", httpd.server_address[1], flush=True)
httpd.serve_forever()
]]
    cf.block_on(function()
      local dir = certs.dir()
      local f = assert(io.open(dir .. "/hello.txt", "w"))
      f:write(("hello over https\n"):rep(1000))
      f:close()
      local p = assert(cf.process.spawn({ "python3", "-c", server, certs.path("server.pem"), certs.path("server.key"),
        dir, stdout = "pipe", stderr = "null", env = { LD_PRELOAD = false } }))
      local _k <close> = setmetatable({ p = p }, Killer)
      local port = tonumber(p.stdout:read_line():await():match("PORT (%d+)"))
      local wrapper = os.getenv("CFUTURE_LUA_WRAPPER") or ""
      local paths = ("LUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s"):format(
        support.shell_quote(package.path), support.shell_quote(package.cpath),
        support.shell_quote(package.path), support.shell_quote(package.cpath))
      local code, out, err = sh(("SSL_CERT_FILE=%s %s %s %s examples/http_get.lua https://localhost:%d/hello.txt")
        :format(certs.path("ca.pem"), paths, wrapper, support.lua, port))
      assert.are.equal(0, code, err)
      assert.are.equal(("hello over https\n"):rep(1000), out)
      assert.matches("HTTP/1.0 200 OK", err)
      -- without the CA it refuses the server
      local code2, _, err2 = sh(("SSL_CERT_FILE=/dev/null %s %s %s examples/http_get.lua https://localhost:%d/hello.txt")
        :format(paths, wrapper, support.lua, port))
      assert.are.equal(1, code2)
      assert.matches("ECERTUNTRUSTED", err2)
      p:kill()
      p:wait():await()
    end)
  end)
end)

describe("examples/mini_redis.lua", function()
  it("speaks RESP to redis-cli and to a pipelining client", function()
    cf.block_on(function()
      local p, port, _k <close> = start("mini_redis")
      if have("redis-cli") then
        local function cli(args) return select(2, sh(("redis-cli -p %d %s"):format(port, args))) end
        assert.are.equal("PONG\n", cli("ping"))
        assert.are.equal("OK\n", cli("set greeting hello"))
        assert.are.equal("hello\n", cli("get greeting"))
        assert.are.equal("1\n", cli("incr n"))
        assert.are.equal("11\n", cli("incrby n 10"))
        -- long enough to survive the server running under valgrind
        assert.are.equal("OK\n", cli("set temp x px 1000"))
        assert.are.equal("1\n", cli("exists temp"))
        cf.sleep(1100):await()
        assert.are.equal("\n", cli("get temp")) -- expired: nil prints empty
        assert.are.equal("2\n", cli("del greeting n"))
        assert.matches("unknown command 'foo'", cli("foo"))
      end
      -- pipelined commands, answered in order
      local c = assert(cf.net.connect("127.0.0.1", port):await())
      local batch = {}
      for i = 1, 100 do batch[i] = ("*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$%d\r\n%d\r\n"):format(i % 10, #tostring(i), i) end
      batch[#batch + 1] = "*2\r\n$3\r\nGET\r\n$2\r\nk0\r\nPING\r\n"
      c:write(table.concat(batch)):await()
      for _ = 1, 100 do assert.are.equal("+OK", c:read_line():await()) end
      assert.are.equal("$3", c:read_line():await())
      assert.are.equal("100", c:read_line():await())
      assert.are.equal("+PONG", c:read_line():await())
      c:write("*1\r\n$abc\r\n"):await()
      assert.matches("^%-ERR Protocol error", c:read_line():await())
      c:close()
      stop(p)
    end)
  end)
end)

describe("examples/redis_cache.lua", function()
  local cs = require "compat_support"
  local server
  setup(function()
    cs.libs()
    server = cs.redis()
  end)
  teardown(function() server.stop() end)

  -- one request through curl: status, X-Cache header, body, milliseconds
  local function get(port, path, method)
    local code, out = sh(("curl -s -i -X %s http://127.0.0.1:%d%s -w '\\n%%{time_total}'"):format(
      method or "GET", port, path))
    assert.are.equal(0, code)
    local status = tonumber(out:match("^HTTP/1%.1 (%d+)"))
    local cache = out:match("\r\nX%-Cache: (%a+)\r\n")
    local body, t = out:match("\r\n\r\n(.*)\n([%d.]+)$")
    return status, cache, body, tonumber(t) * 1000
  end

  it("caches the slow backend in Redis: a miss waits, hits do not, stats and DELETE work", function()
    cf.block_on(function()
      local p, port, _k <close> = start("redis_cache", tostring(server.port))
      local status, cache, body, ms = get(port, "/quote/ACME")
      assert.are.same({ 200, "miss" }, { status, cache })
      assert.matches("^ACME %d+%.%d%d\n$", body)
      assert.is_true(ms >= 190, ms)
      local s2, c2, b2, ms2 = get(port, "/quote/ACME")
      assert.are.same({ 200, "hit", body }, { s2, c2, b2 })
      assert.is_true(ms2 < 190, ms2)
      -- the value really is in Redis, with its TTL
      assert.are.equal(body, server.cli("get quote:ACME") )
      local ttl = tonumber(server.cli("ttl quote:ACME"))
      assert.is_true(ttl > 0 and ttl <= 10, ttl)
      local ds, _, db = get(port, "/quote/ACME", "DELETE")
      assert.are.same({ 200, "deleted 1\n" }, { ds, db })
      ds, _, db = get(port, "/quote/NONE", "DELETE")
      assert.are.same({ 200, "deleted 0\n" }, { ds, db })
      assert.are.equal("miss", select(2, get(port, "/quote/ACME")))
      local ss, _, sb = get(port, "/stats")
      assert.are.same({ 200, "hits 1 misses 2\n" }, { ss, sb })
      assert.are.equal(404, (get(port, "/nothing")))
      stop(p)
    end)
  end)

  it("serves 20 concurrent misses in about one backend delay on a few pooled connections", function()
    cf.block_on(function()
      local p, port, _k <close> = start("redis_cache", tostring(server.port))
      local function wave(expect)
        local clients = {}
        for i = 1, 20 do
          clients[i] = cf.spawn(function()
            local c = assert(cf.net.connect("127.0.0.1", port):await())
            c:write(("GET /quote/W%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):format(i)):await()
            local reply = c:read_all():await()
            c:close()
            return reply
          end)
        end
        for i = 1, 20 do
          local reply = clients[i]:await()
          assert.matches("^HTTP/1%.1 200 OK\r\n", reply)
          assert.matches("\r\nX%-Cache: " .. expect .. "\r\n", reply)
          assert.matches("\r\n\r\nW" .. i .. " %d+%.%d%d\n$", reply)
        end
      end
      local function accepted()
        return tonumber(server.cli("info stats"):match("total_connections_received:(%d+)"))
      end
      local t0 = cf.now()
      wave("miss")
      local dt = cf.now() - t0
      assert.is_true(dt >= 200 and dt < 200 + 2000 * support.slow, dt)
      -- the connections went back to the pool: a second wave opens none
      -- (the count moves by one: redis-cli's own connection)
      local before = accepted()
      wave("hit")
      assert.are.equal(before + 1, accepted())
      stop(p)
    end)
  end)

  it("answers 503 while Redis is down, and recovers", function()
    cf.block_on(function()
      local p, port, _k <close> = start("redis_cache", tostring(cs.free_port()))
      local status, _, body = get(port, "/quote/ACME")
      assert.are.equal(503, status)
      assert.matches("^redis: connection refused", body)
      stop(p)
    end)
  end)
end)
