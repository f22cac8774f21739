-- redis_cache: a small web service that caches a slow backend in Redis,
-- through lua-resty-redis (the OpenResty client) on cfuture's cosockets.
-- Each request is a task; Redis connections come from the cosocket pool
-- (setkeepalive), so a busy server reuses a handful of them.
--
--   LUA_PATH="/path/to/lua-resty-redis/lib/?.lua;;" \
--     lua5.4 examples/redis_cache.lua [port [redis_port]]   (defaults 8080, 6379)
--   curl http://127.0.0.1:8080/quote/ACME   -> first time after ~200 ms (X-Cache: miss),
--                                              then at once (X-Cache: hit) for 10 s
--   curl -X DELETE http://127.0.0.1:8080/quote/ACME   -> drops the cached value
--   curl http://127.0.0.1:8080/stats        -> hits and misses, counted in Redis
local cf = require "cfuture"
require("cfuture.ngx").install() -- before lua-resty-redis is loaded
local redis = require "resty.redis"

local port = tonumber(arg and arg[1]) or 8080
local redis_port = tonumber(arg and arg[2]) or 6379
local TTL = 10 -- seconds a cached quote lives

-- The slow backend: a price that takes 200 ms to compute.
local function fetch_quote(symbol)
  cf.sleep(200):await()
  local h = 0
  for i = 1, #symbol do h = (h * 31 + symbol:byte(i)) % 100000 end
  return ("%s %d.%02d"):format(symbol, h // 100, h % 100)
end

-- Run fn(red) on a pooled Redis connection; the connection goes back to
-- the pool unless the work failed half-way.
local function with_redis(fn)
  local red = redis:new()
  red:set_timeouts(1000, 1000, 1000)
  local ok, err = red:connect("127.0.0.1", redis_port)
  if not ok then return nil, "redis: " .. err end
  local res, ferr = fn(red)
  if res == nil and ferr then
    red:close()
    return nil, "redis: " .. ferr
  end
  red:set_keepalive(10000, 32)
  return res
end

local routes = {}

routes.GET = function(path)
  local symbol = path:match("^/quote/(%w+)$")
  if symbol then
    local key = "quote:" .. symbol
    local cached, err = with_redis(function(red)
      local v, gerr = red:get(key)
      if v == nil then return nil, gerr end
      if v == ngx.null then
        red:incr("stats:misses")
        return false
      end
      red:incr("stats:hits")
      return v
    end)
    if cached == nil then return 503, err .. "\n" end
    if cached then return 200, cached .. "\n", "hit" end
    local quote = fetch_quote(symbol)
    local _, serr = with_redis(function(red) return red:set(key, quote, "EX", TTL) end)
    if serr then return 503, serr .. "\n" end
    return 200, quote .. "\n", "miss"
  elseif path == "/stats" then
    local res, err = with_redis(function(red)
      red:init_pipeline()
      red:get("stats:hits")
      red:get("stats:misses")
      return red:commit_pipeline()
    end)
    if not res then return 503, err .. "\n" end
    local function n(v) return v == ngx.null and 0 or tonumber(v) end
    return 200, ("hits %d misses %d\n"):format(n(res[1]), n(res[2]))
  end
  return 404, "not found\n"
end

routes.DELETE = function(path)
  local symbol = path:match("^/quote/(%w+)$")
  if not symbol then return 404, "not found\n" end
  local n, err = with_redis(function(red) return red:del("quote:" .. symbol) end)
  if not n then return 503, err .. "\n" end
  return 200, ("deleted %d\n"):format(n)
end

local reasons = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found",
                  [405] = "Method Not Allowed", [503] = "Service Unavailable" }

-- One connection, one request at a time, until the client closes or asks to.
local function serve(conn)
  local _ <close> = conn
  while true do
    local head = conn:read_until("\r\n\r\n", 16384):await()
    if not head or not head:find("\r\n\r\n", 1, true) then return end
    local method, path = head:match("^(%u+) (%S+) HTTP/1%.[01]\r\n")
    local status, body, cache
    if not method then
      status, body = 400, "bad request\n"
    elseif routes[method] then
      status, body, cache = routes[method](path)
    else
      status, body = 405, "GET or DELETE\n"
    end
    local close = status == 400 or head:lower():find("\r\nconnection: *close") ~= nil
    local ok = conn:write(table.concat {
      "HTTP/1.1 ", status, " ", reasons[status], "\r\n",
      "Content-Type: text/plain\r\nContent-Length: ", #body, "\r\n",
      cache and ("X-Cache: " .. cache .. "\r\n") or "",
      close and "Connection: close\r\n" or "", "\r\n", body,
    }):await()
    if not ok or close then return end
  end
end

cf.block_on(function()
  local listener = assert(cf.net.listen("127.0.0.1", port, { backlog = 1024 }))
  print(("listening on http://127.0.0.1:%d/ (redis on port %d)"):format(
    select(2, listener:local_address()), redis_port))
  io.stdout:flush()
  local server = cf.spawn(function()
    for conn in listener:incoming() do cf.spawn(serve, conn) end
  end)
  cf.select(cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  listener:close()
  server:abort()
end)
