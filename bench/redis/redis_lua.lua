-- bench/redis/redis_lua.lua IO PORT N CONNS PIPE — Debian's redis-lua client
-- (/usr/share/lua/5.1/redis.lua) running the workload of workload.lua:
--   IO = luasocket  plain blocking LuaSocket, CONNS must be 1 (sequential)
--   IO = cfuture    require("cfuture.socket").install() first; CONNS tasks at
--                   once, each with its own connection
-- PIPE > 1: commands go in client:pipeline(function(p) ... end) blocks of PIPE.
-- Prints one result line (see workload.lua); exits 1 if a check fails.
local H = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local W = require "workload"
local IO, port = arg[1], tonumber(arg[2])
local N, C, P = tonumber(arg[3] or 20000), tonumber(arg[4] or 1), tonumber(arg[5] or 1)
assert(IO == "luasocket" or IO == "cfuture", "usage: redis_lua.lua luasocket|cfuture PORT N CONNS PIPE")
assert(port and N and C and P and N % C == 0, "bad arguments (N must be a multiple of CONNS)")
assert(IO == "cfuture" or C == 1, "blocking LuaSocket runs one connection")

-- redis-lua's pipeline() does table.insert(parsers, #requests, reply.parser)
-- with a nil parser (SET, GET, INCR have none): Lua 5.1 and LuaJIT store it,
-- Lua 5.3+ raise "position out of bounds". On those, table.insert gets
-- Lua 5.1's behaviour for a position past the end (the same for every I/O).
if not rawget(_G, "jit") and _VERSION ~= "Lua 5.1" then
  local tinsert = table.insert
  table.insert = function(t, ...)
    if select("#", ...) == 2 then
      local pos, v = ...
      if type(pos) == "number" and pos > #t + 1 then
        t[pos] = v
        return
      end
    end
    return tinsert(t, ...)
  end
end

local cf
if IO == "cfuture" then
  cf = require "cfuture"
  require("cfuture.socket").install()
end
local redis = require "redis"
if IO == "cfuture" then
  -- redis-lua asks require("socket").tcp at connect time: it must be cfuture's
  assert(require("socket")._VERSION:find("cfuture"), "socket is not cfuture.socket")
end

local keys, vals, per = W.keys(N, C)

-- body(i, client) for every connection: in tasks at once, or one by one
local function all(clients, body)
  if not cf then
    for i = 1, C do body(i, clients[i]) end
    return
  end
  local hs = {}
  for i = 1, C do hs[i] = cf.spawn(body, i, clients[i]) end
  for i = 1, C do hs[i]:await() end
end

local work = {}
function work.set(i, cl)
  local k, v = keys[i], vals[i]
  if P == 1 then
    for j = 1, per do
      if cl:set(k[j], v[j]) ~= true then H.fail("SET " .. k[j]) end
    end
  else
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      local replies = cl:pipeline(function(p)
        for j = j0, j1 do p:set(k[j], v[j]) end
      end)
      for j = j0, j1 do
        if replies[j - j0 + 1] ~= true then H.fail("pipelined SET " .. k[j]) end
      end
    end
  end
end
function work.get(i, cl)
  local k, v = keys[i], vals[i]
  if P == 1 then
    for j = 1, per do
      if cl:get(k[j]) ~= v[j] then H.fail("GET " .. k[j]) end
    end
  else
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      local replies = cl:pipeline(function(p)
        for j = j0, j1 do p:get(k[j]) end
      end)
      for j = j0, j1 do
        if replies[j - j0 + 1] ~= v[j] then H.fail("pipelined GET " .. k[j]) end
      end
    end
  end
end
function work.incr(_, cl)
  if P == 1 then
    for _ = 1, per do
      if type(cl:incr("bench:counter")) ~= "number" then H.fail("INCR") end
    end
  else
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      local replies = cl:pipeline(function(p)
        for _ = j0, j1 do p:incr("bench:counter") end
      end)
      for j = 1, j1 - j0 + 1 do
        if type(replies[j]) ~= "number" then H.fail("pipelined INCR") end
      end
    end
  end
end

local function main()
  local clients = {}
  for i = 1, C do clients[i] = redis.connect("127.0.0.1", port) end
  clients[1]:flushall()
  local r = {}
  for _, ph in ipairs(W.phases) do
    collectgarbage()
    local s0, c0, t0 = H.srv_cpu(), H.cpu(), H.wall()
    all(clients, work[ph])
    local t1, c1, s1 = H.wall(), H.cpu(), H.srv_cpu()
    r[ph] = { wall = t1 - t0, cpu = c1 - c0, srv = s0 and s1 - s0 }
  end
  -- the checks the phases cannot make on their own
  local dbsize = clients[1]:dbsize()
  if dbsize ~= N + 1 then H.fail(("DBSIZE %s, expected %d"):format(tostring(dbsize), N + 1)) end
  local last = clients[C]:get(keys[C][per])
  if last ~= vals[C][per] then H.fail("the last key's value") end
  local count = clients[1]:get("bench:counter")
  if tonumber(count) ~= N then H.fail(("INCR count %s, expected %d"):format(tostring(count), N)) end
  for i = 1, C do clients[i]:quit() end
  local peer = "redis-lua/" .. IO .. "/" .. H.lua_name
  print(W.fmt(peer, ("c%d%s"):format(C, P > 1 and ("-P" .. P) or ""), N, C, P, r))
end

if cf then cf.block_on(main) else main() end
