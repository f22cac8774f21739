-- mini_redis: a Redis-compatible server (RESP2) with PING, ECHO, GET, SET
-- (EX/PX/NX/XX), DEL, EXISTS, INCR/INCRBY/DECR, EXPIRE/PEXPIRE, TTL/PTTL,
-- DBSIZE, FLUSHALL. A task per client; pipelined commands are answered in
-- order, replies batched into one write per read.
--
--   lua5.4 examples/mini_redis.lua [port]         (default 6380, 127.0.0.1)
--   redis-cli -p 6380 set greeting hello
local cf = require "cfuture"

local port = tonumber(arg and arg[1]) or 6380
local now = cf.now

local data, expires = {}, {} -- key -> value; key -> deadline (cf.now() ms)

local function alive(key)
  local t = expires[key]
  if t and t <= now() then
    data[key], expires[key] = nil, nil
  end
  return data[key]
end

local function bulk(s) return s and ("$%d\r\n%s\r\n"):format(#s, s) or "$-1\r\n" end
local function int(n) return (":%d\r\n"):format(n) end
local function err(msg) return "-ERR " .. msg .. "\r\n" end
local OK = "+OK\r\n"

local function incr(key, by)
  local v = alive(key) or "0"
  local n = math.tointeger(tonumber(v))
  if not n or not v:match("^%-?%d+$") then return err("value is not an integer or out of range") end
  n = n + by
  data[key] = tostring(n)
  return int(n)
end

local commands = {}
function commands.PING(a) return a[2] and bulk(a[2]) or "+PONG\r\n" end
function commands.ECHO(a) return a[2] and bulk(a[2]) or err("wrong number of arguments for 'echo'") end
function commands.GET(a) return bulk(alive(a[2])) end
function commands.SET(a)
  local key, value = a[2], a[3]
  if not value then return err("wrong number of arguments for 'set'") end
  local ttl, nx, xx
  local i = 4
  while a[i] do
    local opt = a[i]:upper()
    if (opt == "EX" or opt == "PX") and tonumber(a[i + 1]) then
      ttl = tonumber(a[i + 1]) * (opt == "EX" and 1000 or 1)
      i = i + 2
    elseif opt == "NX" then nx, i = true, i + 1
    elseif opt == "XX" then xx, i = true, i + 1
    else return err("syntax error") end
  end
  local exists = alive(key) ~= nil
  if (nx and exists) or (xx and not exists) then return "$-1\r\n" end
  data[key] = value
  expires[key] = ttl and now() + ttl or nil
  return OK
end
function commands.DEL(a)
  local n = 0
  for i = 2, #a do
    if alive(a[i]) then n = n + 1 end
    data[a[i]], expires[a[i]] = nil, nil
  end
  return int(n)
end
function commands.EXISTS(a)
  local n = 0
  for i = 2, #a do if alive(a[i]) then n = n + 1 end end
  return int(n)
end
function commands.INCR(a) return incr(a[2], 1) end
function commands.DECR(a) return incr(a[2], -1) end
function commands.INCRBY(a)
  local by = math.tointeger(tonumber(a[3]))
  return by and incr(a[2], by) or err("value is not an integer or out of range")
end
local function expire(a, scale)
  local ms = tonumber(a[3])
  if not ms then return err("value is not an integer or out of range") end
  if not alive(a[2]) then return int(0) end
  expires[a[2]] = now() + ms * scale
  return int(1)
end
function commands.EXPIRE(a) return expire(a, 1000) end
function commands.PEXPIRE(a) return expire(a, 1) end
local function ttl(a, scale)
  if not alive(a[2]) then return int(-2) end
  local t = expires[a[2]]
  return int(t and math.ceil((t - now()) / scale) or -1)
end
function commands.TTL(a) return ttl(a, 1000) end
function commands.PTTL(a) return ttl(a, 1) end
function commands.DBSIZE()
  local n = 0
  for k in pairs(data) do if alive(k) then n = n + 1 end end
  return int(n)
end
function commands.FLUSHALL() data, expires = {}, {}; return OK end
function commands.CONFIG() return "*0\r\n" end -- redis-benchmark asks; nothing to tell
function commands.COMMAND() return "*0\r\n" end

-- Read one command: a RESP array of bulk strings, or an inline command.
local function read_command(conn)
  local line = conn:read_line(65536):await()
  if not line then return nil end
  if line:sub(1, 1) ~= "*" then -- inline: PING, or "SET a b" typed by hand
    local args = {}
    for word in line:gmatch("%S+") do args[#args + 1] = word end
    return args
  end
  local n = tonumber(line:sub(2))
  if not n then return false end
  local args = {}
  for i = 1, n do
    local len = tonumber((conn:read_line(65536):await() or ""):match("^%$(%d+)$"))
    if not len or len > 512 * 1048576 then return false end
    local arg_ = conn:read_exact(len + 2):await()
    if not arg_ or #arg_ < len + 2 then return nil end
    args[i] = arg_:sub(1, len)
  end
  return args
end

local function serve(conn)
  local _ <close> = conn
  local out = {}
  while true do
    local args = read_command(conn)
    if args == nil then break end
    if args == false then
      conn:write(err("Protocol error")):await()
      break
    end
    if #args > 0 then
      local fn = commands[args[1]:upper()]
      out[#out + 1] = fn and fn(args) or err(("unknown command '%s'"):format(args[1]))
    end
    if conn:buffered() == 0 then -- nothing more pipelined: send what we have
      if not conn:write(table.concat(out)):await() then break end
      out = {}
    end
  end
end

cf.block_on(function()
  local listener = assert(cf.net.listen("127.0.0.1", port, { backlog = 1024 }))
  print(("mini_redis listening on 127.0.0.1:%d"):format(select(2, listener:local_address())))
  io.stdout:flush()
  local server = cf.spawn(function()
    for conn in listener:incoming() do cf.spawn(serve, conn) end
  end)
  cf.select(cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  listener:close()
  server:abort()
end)
