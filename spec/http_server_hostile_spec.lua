-- cfuture.http's server against hostile clients: malformed request lines,
-- a 1 MiB header line, 10,000 headers, bad chunk sizes, a body longer than
-- its Content-Length, a client sending a byte at a time (slowloris), a
-- client that resets mid-response, more connections than allowed. Each
-- gets a defined answer, the server serves on afterwards, and no file
-- descriptor is left behind.
local cf = require "cfuture"
local http = require "cfuture.http"
local support = require "support"

local slow = support.slow

local function raw(port, data, keep)
  local c = assert(cf.net.connect("127.0.0.1", port):await())
  if data then c:write(data):await() end -- the server may have closed already
  if keep then return c end
  local all = cf.timeout(10000 * slow, c:read_all()):await()
  c:close()
  return all or ""
end

local function handler(req)
  if req.path == "/echo" then
    local b = assert(req:read_all():await())
    return 200, "echo:" .. b
  end
  return 200, "fine " .. req.path
end

-- A server for the whole file; every test ends by checking it still serves.
local srv, port
local function still_serves()
  assert.matches("\r\n\r\nfine /after$", raw(port, "GET /after HTTP/1.1\r\nConnection: close\r\n\r\n"))
end

local function status_of(all) return tonumber(all:match("^HTTP/1%.1 (%d%d%d) ")) end

describe("http server under hostile input", function()
  local fds_before
  setup(function()
    -- libuv keeps a spare descriptor (/dev/null, for running out of them
    -- in accept) from the first listener on: open it before counting
    cf.block_on(function()
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local c = cf.net.connect("127.0.0.1", select(2, l:local_address())):await()
      l:accept():await():close()
      c:close()
      l:close()
    end)
    support.full_gc()
    fds_before = support.fd_count()
    srv = assert(http.listen("127.0.0.1", 0, handler, {
      header_timeout = 300 * slow, idle_timeout = 400 * slow, max_connections = 8,
      max_body = 65536,
    }))
    port = select(2, srv:address())
  end)
  teardown(function()
    cf.block_on(function() srv:close(100):await() end)
    support.full_gc()
    assert.are.equal(fds_before, support.fd_count())
  end)

  local function run(fn) cf.block_on(fn) end

  it("answers malformed request lines with 400 and closes", function()
    run(function()
      for _, line in ipairs { "NONSENSE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9\r\n\r\n",
        "GET /\0 HTTP/1.1\r\n\r\n", "\1\2\3\4\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", "G\r\n" } do
        local all = raw(port, line)
        assert.are.equal(400, status_of(all), ("%q -> %q"):format(line, all))
        assert.matches("\r\nConnection: close\r\n", all)
      end
      still_serves()
    end)
  end)

  it("answers a 1 MiB header line with 431", function()
    run(function()
      local all = raw(port, "GET / HTTP/1.1\r\nX-Big: " .. ("a"):rep(1024 * 1024) .. "\r\n\r\n")
      assert.are.equal(431, status_of(all))
      assert.matches("header too large", all)
      still_serves()
    end)
  end)

  it("answers 10,000 headers with 431", function()
    run(function()
      local all = raw(port, "GET / HTTP/1.1\r\n" .. ("A: b\r\n"):rep(10000) .. "\r\n")
      assert.are.equal(431, status_of(all))
      still_serves()
    end)
  end)

  it("answers bad chunk sizes met while the handler reads the body with 400, not 500", function()
    run(function()
      local reported = 0
      local old = cf.on_error(function() reported = reported + 1 end)
      for _, size in ipairs { "zz", "-5", "ffffffffffffffffffff", "5x" } do
        local all = raw(port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" .. size ..
          "\r\nhello\r\n0\r\n\r\n")
        assert.are.equal(400, status_of(all), all)
      end
      -- cut off inside a chunk: the client's end is met mid-body
      local all = raw(port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", true)
      all:shutdown()
      local got = cf.timeout(5000 * slow, all:read_all()):await()
      all:close()
      assert.are.equal(400, status_of(got))
      cf.on_error(old)
      assert.are.equal(0, reported) -- a client's fault is not a server error
      still_serves()
    end)
  end)

  it("takes bytes past Content-Length as the next request (400 if it is not one)", function()
    run(function()
      local c = raw(port, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloEXTRA GARBAGE\r\n\r\n", true)
      local all = cf.timeout(5000 * slow, c:read_all()):await()
      c:close()
      assert.matches("^HTTP/1.1 200 OK\r\n.-\r\n\r\necho:hello", all)
      assert.matches("HTTP/1.1 400 Bad Request\r\n", all)
      still_serves()
    end)
  end)

  it("drops a client sending one byte at a time with 408 within header_timeout", function()
    run(function()
      local c = raw(port, nil, true)
      local t0 = cf.now()
      local req = "GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Padding: " .. ("p"):rep(100) .. "\r\n\r\n"
      local writer = cf.spawn(function()
        for i = 1, #req do
          if not c:write(req:sub(i, i)):await() then return i end
          cf.sleep(20 * slow):await()
        end
        return #req
      end)
      local all = cf.timeout(10000 * slow, c:read_all()):await()
      local ms = cf.now() - t0
      writer:abort()
      c:close()
      assert.are.equal(408, status_of(all), all)
      assert.is_true(ms >= 300 * slow - 5 and ms < 300 * slow + 1500 * slow, ms)
      still_serves()
    end)
  end)

  it("closes a connection that sends nothing after idle_timeout, silently", function()
    run(function()
      local c = raw(port, nil, true)
      local t0 = cf.now()
      local all = cf.timeout(10000 * slow, c:read_all()):await()
      c:close()
      assert.are.equal("", all)
      assert.is_true(cf.now() - t0 >= 400 * slow - 5)
    end)
  end)

  it("serves on after a client resets in the middle of a large response", function()
    run(function()
      local failed = cf.notify()
      local result
      local srv2 = assert(http.listen("127.0.0.1", 0, function(req, res)
        if req.path == "/big" then
          local chunk = ("x"):rep(65536)
          for _ = 1, 1000 do -- 64 MiB: far more than socket buffers hold
            local ok, msg, code = res:write(chunk)
            if not ok then
              result = { msg, code }
              failed:notify_one()
              return
            end
          end
        end
        return 200, "fine " .. req.path
      end))
      local port2 = select(2, srv2:address())
      local c = raw(port2, "GET /big HTTP/1.1\r\n\r\n", true)
      assert.matches("^HTTP/1.1 200 OK", c:read(1000):await())
      c:reset()
      cf.timeout(5000 * slow, failed:wait()):await()
      assert.is_truthy(result)
      assert.is_truthy(result[2] == "ECONNRESET" or result[2] == "EPIPE", result[2])
      assert.matches("\r\n\r\nfine /after$",
        raw(port2, "GET /after HTTP/1.1\r\nConnection: close\r\n\r\n"))
      srv2:close(100):await()
      still_serves()
    end)
  end)

  it("gives the handler the reset of a client that goes in the middle of its body", function()
    run(function()
      local got = cf.notify()
      local result
      local srv2 = assert(http.listen("127.0.0.1", 0, function(req)
        local first = req:read():await()
        local b, msg, code = req:read_all():await()
        result = { first, b, msg, code }
        got:notify_one()
        return 200, "x"
      end))
      local c = raw(select(2, srv2:address()), "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", true)
      cf.sleep(20):await()
      c:reset()
      cf.timeout(5000 * slow, got:wait()):await()
      srv2:close(100):await()
      assert.is_table(result)
      assert.are.equal("abc", result[1])
      assert.is_nil(result[2])
      assert.matches("reset", result[3])
      assert.are.equal("ECONNRESET", result[4])
      still_serves()
    end)
  end)

  it("answers 503 beyond max_connections and serves again once they go", function()
    run(function()
      local held = {}
      for i = 1, 8 do
        held[i] = raw(port, "GET /hold HTTP/1.1\r\n\r\n", true)
        local line = held[i]:read_line():await()
        assert.are.equal("HTTP/1.1 200 OK", line) -- each connection is accepted and kept
      end
      local all = raw(port, "GET / HTTP/1.1\r\n\r\n")
      assert.are.equal(503, status_of(all))
      assert.matches("\r\nRetry%-After: 1\r\n", all)
      for i = 1, 8 do held[i]:close() end
      -- the server sees the closes soon
      local deadline = cf.now() + 5000 * slow
      while srv:connections() > 0 and cf.now() < deadline do cf.sleep(5):await() end
      assert.are.equal(0, srv:connections())
      still_serves()
    end)
  end)

  it("survives a burst of random garbage connections", function()
    run(function()
      math.randomseed(7)
      local tasks = {}
      for i = 1, math.floor(40 / math.min(slow, 4)) do
        tasks[i] = cf.spawn(function()
          local bytes = {}
          for j = 1, math.random(1, 300) do bytes[j] = string.char(math.random(0, 255)) end
          local s = table.concat(bytes)
          if i % 2 == 0 then s = "GET / HTTP/1.1\r\n" .. s end
          local all = raw(port, s)
          local st = status_of(all)
          assert(all == "" or st == 400 or st == 431 or st == 408 or st == 200, all)
        end)
      end
      for _, t in ipairs(tasks) do t:await() end
      still_serves()
    end)
  end)
end)
