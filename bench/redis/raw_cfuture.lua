-- bench/redis/raw_cfuture.lua PORT N CONNS PIPE — no client library: the
-- workload of workload.lua spoken in RESP straight on cfuture streams
-- (cf.net.connect, write, read_line, read_exact), CONNS tasks with a connection
-- each. What cfuture itself costs for this traffic; the redis-lua and
-- lua-resty-redis rows add their library and the compatibility layer to it.
-- TIMEOUT_MS (5th argument) wraps every read in cf.timeout(TIMEOUT_MS, ...),
-- as the compatibility layers do for settimeout: the cost of that alone.
-- Prints one result line; exits 1 if a check fails.
local H = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local W = require "workload"
local port = tonumber(arg[1])
local N, C, P = tonumber(arg[2] or 20000), tonumber(arg[3] or 50), tonumber(arg[4] or 1)
assert(port and N and C and P and N % C == 0, "usage: raw_cfuture.lua PORT N CONNS PIPE (N a multiple of CONNS)")
local TMO = tonumber(arg[5])
local cf = require "cfuture"
local fail = H.fail
local timeout = cf.timeout
local function await(f)
  if TMO then return timeout(TMO, f):await() end
  return f:await()
end

local keys, vals, per = W.keys(N, C)

local function cmd(...)
  local t = { "*" .. select("#", ...) .. "\r\n" }
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    t[#t + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(t)
end

-- one reply: status/integer/bulk (what the workload gets)
local function reply(s)
  local line = await(s:read_line())
  if not line then fail("connection lost") end
  local c = line:sub(1, 1)
  if c == "+" then return line:sub(2) end
  if c == ":" then return tonumber(line:sub(2)) end
  if c == "$" then
    local n = tonumber(line:sub(2))
    if n < 0 then return nil end
    local data = await(s:read_exact(n + 2))
    return data:sub(1, n)
  end
  fail("reply " .. line)
end

local function batch(s, build, check)
  for j0 = 1, per, P do
    local j1 = math.min(j0 + P - 1, per)
    if P == 1 then
      s:write(build(j0)):await()
    else
      local t = {}
      for j = j0, j1 do t[#t + 1] = build(j) end
      s:write(table.concat(t)):await()
    end
    for j = j0, j1 do check(j, reply(s)) end
  end
end

local work = {}
function work.set(i, s)
  local k, v = keys[i], vals[i]
  batch(s, function(j) return cmd("SET", k[j], v[j]) end,
    function(j, r) if r ~= "OK" then fail("SET " .. k[j]) end end)
end
function work.get(i, s)
  local k, v = keys[i], vals[i]
  batch(s, function(j) return cmd("GET", k[j]) end,
    function(j, r) if r ~= v[j] then fail("GET " .. k[j]) end end)
end
local INCR = cmd("INCR", "bench:counter")
function work.incr(_, s)
  batch(s, function() return INCR end,
    function(_, r) if type(r) ~= "number" then fail("INCR") end end)
end

cf.block_on(function()
  local conns = {}
  for i = 1, C do
    conns[i] = assert(cf.net.connect("127.0.0.1", port):await())
    conns[i]:set_nodelay(true)
  end
  local s1 = conns[1]
  s1:write(cmd("FLUSHALL")):await()
  if reply(s1) ~= "OK" then fail("FLUSHALL") end
  local r = {}
  for _, ph in ipairs(W.phases) do
    collectgarbage()
    local body = work[ph]
    local v0, c0, t0 = H.srv_cpu(), H.cpu(), H.wall()
    local hs = {}
    for i = 1, C do hs[i] = cf.spawn(body, i, conns[i]) end
    for i = 1, C do hs[i]:await() end
    local t1, c1, v1 = H.wall(), H.cpu(), H.srv_cpu()
    r[ph] = { wall = t1 - t0, cpu = c1 - c0, srv = v0 and v1 - v0 }
  end
  s1:write(cmd("DBSIZE")):await()
  local dbsize = reply(s1)
  if dbsize ~= N + 1 then fail(("DBSIZE %s, expected %d"):format(tostring(dbsize), N + 1)) end
  conns[C]:write(cmd("GET", keys[C][per])):await()
  if reply(conns[C]) ~= vals[C][per] then fail("the last key's value") end
  s1:write(cmd("GET", "bench:counter")):await()
  local count = reply(s1)
  if tonumber(count) ~= N then fail(("INCR count %s, expected %d"):format(tostring(count), N)) end
  for i = 1, C do conns[i]:close() end
  print(W.fmt((TMO and "raw+timeout" or "raw") .. "/cfuture/" .. H.lua_name, ("c%d%s"):format(C, P > 1 and ("-P" .. P) or ""), N, C, P, r))
end)
