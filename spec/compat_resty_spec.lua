-- OpenResty client libraries on cfuture.ngx, unchanged: Debian's
-- lua-nginx-redis (lua-resty-redis) and lua-nginx-memcached
-- (lua-resty-memcached), downloaded (never installed) by compat_support,
-- against a real redis-server and memcached started for the spec.
local cf = require "cfuture"
local support = require "support"
local cs = require "compat_support"
local slow = support.slow

local ngx = require("cfuture.ngx").install() -- before the libraries load
cs.libs()
local redis = require "resty.redis"
local memcached = require "resty.memcached"

local function run(fn) return cf.block_on(fn) end

local function refused_port()
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  l:close()
  return port
end

-- The client connections redis-server has now, not counting redis-cli's own.
-- (total_connections_received counts every redis-cli call.)
local function server_clients(srv)
  local n = 0
  for line in srv.cli("client list"):gmatch("[^\n]+") do
    if line:match("^id=") and not line:match("cmd=client") then n = n + 1 end
  end
  return n
end

local function total_connections(srv)
  return tonumber(srv.cli("info stats"):match("total_connections_received:(%d+)"))
end

describe("lua-resty-redis", function()
  local srv
  setup(function() srv = cs.redis() end)
  teardown(function()
    ngx.cfuture.close_pools()
    srv.stop()
  end)

  local function client(timeout)
    local r = assert(redis:new())
    r:set_timeout(timeout or 5000)
    assert(r:connect("127.0.0.1", srv.port))
    return r
  end

  it("SET / GET / INCR from many tasks at once, with exact final counts", function()
    run(function()
      local hs = {}
      for t = 1, 40 do
        hs[t] = cf.spawn(function()
          for i = 1, 25 do
            local r = client()
            assert.are.equal("OK", r:set("k" .. t, "v" .. t .. ":" .. i))
            assert.are.equal("v" .. t .. ":" .. i, r:get("k" .. t))
            assert(r:incr("counter"))
            assert.are.equal(1, r:set_keepalive(10000, 50))
          end
          return true
        end)
      end
      for t = 1, 40 do assert.is_true(hs[t]:await()) end
      local r = client()
      assert.are.equal("1000", r:get("counter"))
      assert.are.equal("v17:25", r:get("k17"))
      assert.are.equal(ngx.null, r:get("no such key"))
      r:close()
    end)
    assert.are.equal("1000", srv.cli("get counter"):match("%d+"))
  end)

  it("pipelines: init_pipeline / commit_pipeline", function()
    run(function()
      local r = client()
      r:init_pipeline()
      for i = 1, 100 do r:set("p" .. i, i) end
      r:get("p7")
      r:incr("p9")
      r:get("nothing here")
      r:lpush("plist", "a", "b")
      local res = assert(r:commit_pipeline())
      assert.are.equal(104, #res)
      assert.are.equal("OK", res[1])
      assert.are.equal("OK", res[100])
      assert.are.equal("7", res[101])
      assert.are.equal(10, res[102])
      assert.are.equal(ngx.null, res[103])
      assert.are.equal(2, res[104])
      -- an error reply inside a pipeline is kept in place
      r:init_pipeline()
      r:get("p1")
      r:incr("plist") -- WRONGTYPE
      local res2 = assert(r:commit_pipeline())
      assert.are.equal("1", res2[1])
      assert.is_false(res2[2][1])
      assert.matches("WRONGTYPE", res2[2][2])
      assert.are.same({ nil, "no pipeline" }, { r:commit_pipeline() })
      r:close()
    end)
  end)

  it("pub/sub: subscribe, then read_reply while another task publishes", function()
    run(function()
      local sub = client()
      local res = assert(sub:subscribe("news"))
      assert.are.same({ "subscribe", "news", 1 }, res)
      local pub = cf.spawn(function()
        local p = client()
        for i = 1, 3 do
          cf.sleep(20):await()
          assert.are.equal(1, p:publish("news", "item " .. i))
        end
        p:close()
      end)
      for i = 1, 3 do
        assert.are.same({ "message", "news", "item " .. i }, assert(sub:read_reply()))
      end
      pub:await()
      -- no message: read_reply's timeout does not close a subscribed connection
      sub:set_timeout(100)
      assert.are.same({ nil, "timeout" }, { sub:read_reply() })
      assert.are.same({ "unsubscribe", "news", 0 }, assert(sub:unsubscribe("news")))
      assert.are.equal("PONG", sub:ping())
      sub:close()
    end)
  end)

  it("20 tasks blocked in BLPOP key 0.5 on different keys finish together", function()
    run(function()
      local hs = {}
      local t0 = cf.now()
      for i = 1, 20 do
        hs[i] = cf.spawn(function()
          local r = client()
          local res, err = r:blpop("empty:" .. i, 0.5)
          r:close()
          return { res, err, cf.now() - t0 }
        end)
      end
      -- meanwhile another connection is served at once
      local r = client()
      assert.are.equal("PONG", r:ping())
      local pinged = cf.now() - t0
      r:close()
      local latest, earliest = 0, math.huge
      for i = 1, 20 do
        local res = hs[i]:await()
        assert.are.equal(ngx.null, res[1])
        assert.is_true(res[3] >= 450, "a BLPOP ended early: " .. res[3])
        if res[3] > latest then latest = res[3] end
        if res[3] < earliest then earliest = res[3] end
      end
      assert.is_true(pinged < earliest, "the ping waited for the BLPOPs")
      assert.is_true(latest < 3000 * slow, "the BLPOPs took " .. latest .. " ms: not concurrent")
    end)
  end)

  it("setkeepalive reuses connections: getreusedtimes and the server's own count", function()
    run(function()
      ngx.cfuture.close_pools()
      cf.sleep(50):await()
      local base = server_clients(srv)
      local total0 = total_connections(srv)
      local reused = {}
      for i = 1, 10 do
        local r = client()
        reused[i] = r:get_reused_times()
        assert.are.equal("PONG", r:ping())
        assert.are.equal(1, r:set_keepalive(10000, 10))
      end
      assert.are.equal(0, reused[1])
      assert.are.equal(9, reused[10])
      -- (each redis-cli call is a connection of its own too)
      assert.are.equal(1, total_connections(srv) - total0 - 1)
      assert.are.equal(1, server_clients(srv) - base)
      total0 = total_connections(srv)
      -- 10 tasks at once, 5 rounds each: at most 10 connections in all
      local hs = {}
      for t = 1, 10 do
        hs[t] = cf.spawn(function()
          local max = 0
          for _ = 1, 5 do
            local r = client()
            assert(r:incr("reuse"))
            local n = r:get_reused_times()
            if n > max then max = n end
            assert.are.equal(1, r:set_keepalive(10000, 10))
            cf.sleep(5):await()
          end
          return max
        end)
      end
      local any = 0
      for t = 1, 10 do any = math.max(any, hs[t]:await()) end
      assert.is_true(any > 0)
      local opened = total_connections(srv) - total0 - 1
      assert.is_true(opened <= 9, "opened " .. opened .. " connections")
      assert.are.equal("50", srv.cli("get reuse"):match("%d+"))
      -- closing the pools closes them at the server too
      ngx.cfuture.close_pools()
      cf.sleep(100):await()
      assert.are.equal(base, server_clients(srv))
    end)
  end)

  it("a read timeout gives nil, 'timeout' in time while other tasks go on", function()
    run(function()
      local pings = 0
      local stop = false
      local other = cf.spawn(function()
        local r = client()
        while not stop do
          assert.are.equal("PONG", r:ping())
          pings = pings + 1
          cf.sleep(10):await()
        end
        r:close()
      end)
      local r = client(200)
      local t0 = cf.now()
      local res, err = r:blpop("never filled", 0) -- blocks for ever at the server
      local ms = cf.now() - t0
      stop = true
      other:await()
      assert.is_nil(res)
      assert.are.equal("timeout", err)
      assert.is_true(ms >= 199 and ms < 200 + 1000 * slow, "timed out after " .. ms)
      assert.is_true(pings >= 5, "the other task pinged only " .. pings .. " times")
      -- lua-resty-redis closes the socket after a timeout
      assert.are.same({ nil, "closed" }, { r:ping() })
    end)
  end)

  it("a refused connection gives the library's usual error", function()
    run(function()
      local r = redis:new()
      assert.are.same({ nil, "connection refused" }, { r:connect("127.0.0.1", refused_port()) })
    end)
  end)

  it("hmset with a table (the library calls the 5.1 global unpack)", function()
    run(function()
      local r = client()
      assert.are.equal("OK", r:hmset("h", { a = "1", b = "2" }))
      assert.are.same({ "1", "2" }, r:hmget("h", "a", "b"))
      r:close()
    end)
  end)
end)

describe("lua-resty-memcached", function()
  local mc
  setup(function() mc = cs.memcached() end)
  teardown(function()
    ngx.cfuture.close_pools()
    mc.stop()
  end)

  local function client()
    local m = assert(memcached:new())
    m:set_timeout(5000)
    assert(m:connect("127.0.0.1", mc.port))
    return m
  end

  it("set / get / incr from many tasks at once, with exact values", function()
    run(function()
      local m = client()
      assert.are.equal(1, m:set("mc counter", "0"))
      assert.are.equal(1, m:set_keepalive(10000, 30))
      local hs = {}
      for t = 1, 30 do
        hs[t] = cf.spawn(function()
          for i = 1, 10 do
            local c = client()
            assert.are.equal(1, c:set("key/" .. t, "value " .. t .. " " .. i, 0, t))
            local v, flags = c:get("key/" .. t)
            assert.are.equal("value " .. t .. " " .. i, v)
            assert.are.equal(tostring(t), tostring(flags))
            assert(c:incr("mc counter", 2))
            assert.are.equal(1, c:set_keepalive(10000, 30))
          end
          return true
        end)
      end
      for t = 1, 30 do assert.is_true(hs[t]:await()) end
      m = client()
      assert.are.equal("600", m:get("mc counter"))
      assert.are.equal("value 12 10", m:get("key/12"))
      local v, flags, err = m:get("absent")
      assert.is_nil(v)
      assert.is_nil(flags)
      assert.is_nil(err)
      assert.is_true(m:get_reused_times() > 0)
      m:close()
    end)
  end)

  it("a refused connection gives the library's usual error", function()
    run(function()
      local m = memcached:new()
      assert.are.same({ nil, "connection refused" }, { m:connect("127.0.0.1", refused_port()) })
    end)
  end)
end)
