-- cfuture.ngx: the part of OpenResty's `ngx` API that client libraries
-- written for OpenResty (lua-resty-redis, lua-resty-memcached, ...) use,
-- on cfuture tasks: cosockets (ngx.socket.tcp) with a real connection pool,
-- ngx.null, ngx.sleep, time, logging, URI escaping, light threads.
--
--   local ngx = require "cfuture.ngx"         -- the table, for explicit use
--   require("cfuture.ngx").install()          -- or: the global `ngx`, for
--   local redis = require "resty.redis"       -- libraries loaded afterwards
--
-- Every wait suspends only the calling task; a socket method that waits
-- raises when called outside a task (cosockets exist only inside request
-- handlers in OpenResty). What OpenResty has and cfuture does not provide
-- (Unix domain sockets, bind, getfd, ngx.re, ngx.var, ngx.timer, ...) is
-- left out: see the "OpenResty libraries" guide.
local cf = require "cfuture"

local type, tostring, tonumber, select, error, pcall, setmetatable, pairs, next, rawget =
  type, tostring, tonumber, select, error, pcall, setmetatable, pairs, next, rawget
local concat, floor, huge = table.concat, math.floor, math.huge
local sub, find, byte, char, format, gsub, lower = string.sub, string.find, string.byte,
  string.char, string.format, string.gsub, string.lower
local unpack = table.unpack or unpack -- LuaJIT: the 5.1 name
local math_type = math.type

local ngx = {}

-- Settings (the nginx directives of the same meaning) -------------------------
-- ngx.cfuture holds what is cfuture's own: settings, close_pools, pool_info.
local settings = {
  connect_timeout = 60000, -- lua_socket_connect_timeout (ms)
  send_timeout = 60000, -- lua_socket_send_timeout
  read_timeout = 60000, -- lua_socket_read_timeout
  keepalive_timeout = 60000, -- lua_socket_keepalive_timeout
  pool_size = 30, -- lua_socket_pool_size
  log_level = 4, -- error_log's level (ngx.ERR): less severe messages are dropped
  log_handler = nil, -- function(level, message); nil: stderr
  ssl = {}, -- extra cf.tls options for sslhandshake (cafile = ..., the
  -- lua_ssl_trusted_certificate directive)
}
local ext = { settings = settings }
ngx.cfuture = ext

-- Constants -----------------------------------------------------------------
ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED = 0, -1, -2, -4, -5
ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR = 0, 1, 2, 3, 4
ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG = 5, 6, 7, 8

-- ngx.null: one unique value, equal only to itself, printed "null" -----------
-- (OpenResty's is a NULL light userdata; pure Lua 5.4 cannot make a userdata,
-- so there it is a frozen empty table; on LuaJIT a newproxy userdata.)
do
  local mt = {
    __tostring = function() return "null" end,
    __newindex = function() error("ngx.null is read-only", 2) end,
    __metatable = "ngx.null",
  }
  local np = rawget(_G, "newproxy")
  if np then
    local p = np(true)
    local m = getmetatable(p)
    for k, v in pairs(mt) do m[k] = v end
    ngx.null = p
  else
    ngx.null = setmetatable({}, mt)
  end
end

-- Argument checks -------------------------------------------------------------
local function typename(v)
  return type(v)
end

local function argerr(fname, n, what, v, level)
  error(format("%s: argument #%d must be %s (got %s)", fname, n, what,
    type(v) == "string" and format("%q", v) or type(v) == "number" and tostring(v) or typename(v)),
    (level or 2) + 1)
end

local function in_task(fname)
  if not cf.current() then
    error(fname .. ": cosockets work only inside a cfuture task (in OpenResty, inside a " ..
      "request handler); run the code with cf.spawn or cf.block_on", 3)
  end
end

-- n (number or numeric string) as an integer, or nil
local function as_int(v)
  local n = tonumber(v)
  if n == nil or n ~= n or n == huge or n == -huge or floor(n) ~= n then return nil end
  return n
end

-- Time ------------------------------------------------------------------------
-- ngx.now() is the wall clock (cf.time.wall), in milliseconds as
-- nginx keeps it; it follows the system clock when that is set.
local wall = cf.time.wall
local cached_now
function ngx.update_time()
  cached_now = floor(wall() * 1000) / 1000
end
function ngx.now()
  ngx.update_time()
  return cached_now
end
function ngx.time()
  return os.time()
end

function ngx.sleep(seconds)
  local s = tonumber(seconds)
  if s == nil or s ~= s or s < 0 or s == huge then
    argerr("ngx.sleep", 1, "a non-negative number of seconds", seconds)
  end
  if not cf.current() then
    error("ngx.sleep: works only inside a cfuture task (cf.spawn, cf.block_on)", 2)
  end
  if s == 0 then
    cf.yield_now():await()
  else
    cf.sleep(s * 1000):await()
  end
end

-- Logging ---------------------------------------------------------------------
local level_names = { [0] = "stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info",
  "debug" }

function ngx.log(level, ...)
  local lv = as_int(level)
  if lv == nil or lv < 0 or lv > 8 then
    argerr("ngx.log", 1, "a log level from ngx.STDERR (0) to ngx.DEBUG (8)", level)
  end
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    local t = type(v)
    if t == "string" then
      parts[i] = v
    elseif t == "number" or t == "nil" or t == "boolean" or v == ngx.null then
      parts[i] = tostring(v)
    elseif (t == "table" or t == "userdata") and getmetatable(v) and
        type(getmetatable(v)) == "table" and getmetatable(v).__tostring then
      parts[i] = tostring(v)
    else
      argerr("ngx.log", i + 1, "a string, number, boolean, nil or a value with __tostring", v)
    end
  end
  if lv > settings.log_level and lv ~= 0 then return end
  local msg = concat(parts)
  local h = settings.log_handler
  if h then
    h(lv, msg)
  else
    io.stderr:write(os.date("%Y/%m/%d %H:%M:%S"), " [", level_names[lv], "] ", msg, "\n")
  end
end

-- URI escaping, base64, digests -------------------------------------------------
local function escaper(keep)
  local t = {}
  for c = 0, 255 do
    local ch = char(c)
    t[ch] = find(ch, keep) and ch or format("%%%02X", c)
  end
  return t
end
local esc_component = escaper("^[%w%-%._~!'%(%)%*]$")
local esc_uri = {}
for c = 0, 255 do
  local ch = char(c)
  esc_uri[ch] = (c <= 0x20 or c >= 0x7F or ch == "#" or ch == "%" or ch == "?")
    and format("%%%02X", c) or ch
end

function ngx.escape_uri(s, kind)
  if type(s) == "number" then s = tostring(s) end
  if s == nil then return "" end
  if type(s) ~= "string" then argerr("ngx.escape_uri", 1, "a string", s) end
  if kind ~= nil and kind ~= 0 and kind ~= 2 then
    argerr("ngx.escape_uri", 2, "0 (a full URI) or 2 (a URI component)", kind)
  end
  local map = kind == 0 and esc_uri or esc_component
  return (gsub(s, ".", map))
end

function ngx.unescape_uri(s)
  if type(s) == "number" then s = tostring(s) end
  if s == nil then return "" end
  if type(s) ~= "string" then argerr("ngx.unescape_uri", 1, "a string", s) end
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

function ngx.encode_base64(s, no_padding)
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then argerr("ngx.encode_base64", 1, "a string", s) end
  local r = cf.crypto.base64(s)
  if no_padding then r = gsub(r, "=+$", "") end
  return r
end

function ngx.decode_base64(s)
  if type(s) ~= "string" then argerr("ngx.decode_base64", 1, "a string", s) end
  return (cf.crypto.unbase64(s))
end

local function digest(alg, fname)
  return function(s)
    if type(s) == "number" then s = tostring(s) end
    if type(s) ~= "string" then argerr(fname, 1, "a string", s) end
    return cf.crypto.hasher(alg):update(s):digest()
  end
end
ngx.md5_bin = digest("md5", "ngx.md5_bin")
ngx.sha1_bin = digest("sha1", "ngx.sha1_bin")
function ngx.md5(s)
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then argerr("ngx.md5", 1, "a string", s) end
  return cf.crypto.hex(ngx.md5_bin(s))
end
function ngx.hmac_sha1(key, s)
  if type(key) ~= "string" then argerr("ngx.hmac_sha1", 1, "a string", key) end
  if type(s) ~= "string" then argerr("ngx.hmac_sha1", 2, "a string", s) end
  return cf.crypto.hasher("sha1", key):update(s):digest()
end

-- Light threads: ngx.thread on cfuture tasks ------------------------------------
local thread_mt = { __name = "ngx.thread" }
thread_mt.__index = thread_mt
thread_mt.__tostring = function(t) return "thread: ngx.thread (task " .. tostring(t._h:id()) .. ")" end

local function strip_trace(e)
  if type(e) == "string" then
    local m = e:match("^(.-)\nstack traceback:")
    if m then return m end
  end
  return e
end

local function is_thread(t) return type(t) == "table" and getmetatable(t) == thread_mt end

ngx.thread = {}
function ngx.thread.spawn(fn, ...)
  if type(fn) ~= "function" then argerr("ngx.thread.spawn", 1, "a function", fn) end
  local args, n = { ... }, select("#", ...)
  local t = setmetatable({}, thread_mt)
  t._h = cf.spawn(function() return fn(unpack(args, 1, n)) end)
  return t
end

function ngx.thread.wait(...)
  local n = select("#", ...)
  if n == 0 then error("ngx.thread.wait: at least one thread should be specified", 2) end
  local live = {}
  for i = 1, n do
    local t = select(i, ...)
    if not is_thread(t) then argerr("ngx.thread.wait", i, "a thread from ngx.thread.spawn", t) end
    if not t._done then live[#live + 1] = t end
  end
  if #live == 0 then return nil, "already waited or killed" end
  if not cf.current() then error("ngx.thread.wait: works only inside a cfuture task", 2) end
  local fs = {}
  for i = 1, #live do
    local h = live[i]._h
    fs[i] = function() return pcall(h.await, h) end
  end
  local r = { cf.select(unpack(fs)):await() }
  live[r[1]]._done = true
  if r[2] == false then return false, strip_trace(r[3]) end
  return unpack(r, 2, #r > 2 and #r or 2)
end

function ngx.thread.kill(t)
  if not is_thread(t) then argerr("ngx.thread.kill", 1, "a thread from ngx.thread.spawn", t) end
  if t._done then return nil, "already waited or killed" end
  if t._h:is_finished() then return nil, "already terminated" end
  t._done = true
  t._h:abort()
  return true
end

-- ngx.worker: one worker -----------------------------------------------------------
ngx.worker = {
  exiting = function() return false end,
  id = function() return 0 end,
  count = function() return 1 end,
}

-- Cosockets -----------------------------------------------------------------------
local LINE_CHUNK = 1048576 -- read_until's window for lines and patterns

local errno_text = {
  ECONNREFUSED = "connection refused",
  ECONNRESET = "connection reset by peer",
  EPIPE = "broken pipe",
  ETIMEDOUT = "connection timed out",
  EHOSTUNREACH = "no route to host",
  ENETUNREACH = "network is unreachable",
  EADDRNOTAVAIL = "cannot assign requested address",
  ECONNABORTED = "software caused connection abort",
  ENOTCONN = "transport endpoint is not connected",
  ECANCELED = "closed", -- the stream was closed under the operation
}

local function err_text(msg, code)
  return errno_text[code] or msg or "error"
end

-- Pools: pools[name] = {size, backlog, idle = {entries, oldest first},
-- connections = live connections counted for the pool, waiting, notify}
local pools = {}

local function new_pool(name, size, backlog)
  local p = { name = name, size = size, backlog = backlog, idle = {}, connections = 0,
    waiting = 0, notify = cf.notify() }
  pools[name] = p
  return p
end

local function release_slot(pool)
  pool.connections = pool.connections - 1
  if pool.connections < 0 then pool.connections = 0 end
  pool.notify:notify_all()
end

local function remove_idle(pool, entry)
  local idle = pool.idle
  for i = 1, #idle do
    if idle[i] == entry then
      table.remove(idle, i)
      return true
    end
  end
  return false
end

-- An idle connection is watched: data or the end from the peer, an error,
-- or the idle timeout close it (and take it out of the pool).
local function watch(pool, entry, timeout)
  local s = entry.s
  pcall(function()
    if timeout > 0 then
      cf.select(s:read(1), cf.sleep(timeout)):await()
    else
      s:read(1):await()
    end
  end)
  if remove_idle(pool, entry) then
    pcall(s.close, s)
    release_slot(pool)
  end
end

-- The most recently kept connection that is still good, or nil.
local function checkout(pool)
  local idle = pool.idle
  while #idle > 0 do
    local e = table.remove(idle)
    e.watcher:abort()
    pcall(e.watcher.await, e.watcher) -- its read is withdrawn: nothing taken
    if not e.s:is_closed() and e.s:buffered() == 0 then return e end
    pcall(e.s.close, e.s)
    release_slot(pool)
  end
  return nil
end

-- Close every idle connection of every pool (or of the pool `name`); returns
-- how many were closed.
function ext.close_pools(name)
  local n = 0
  for key, pool in pairs(pools) do
    if name == nil or key == name then
      while #pool.idle > 0 do
        local e = table.remove(pool.idle)
        e.watcher:abort()
        pcall(e.s.close, e.s)
        release_slot(pool)
        n = n + 1
      end
    end
  end
  return n
end

-- {size, idle, connections, waiting, backlog} of the pool `name`, or nil.
function ext.pool_info(name)
  local p = pools[name]
  if not p then return nil end
  return { size = p.size, idle = #p.idle, connections = p.connections, waiting = p.waiting,
    backlog = p.backlog }
end

-- A finaliser for a socket that counts in its pool: a collected socket
-- gives its slot back, as OpenResty's does.
local newproxy = rawget(_G, "newproxy")
local function gc_guard(fn)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

-- A connection's place in its pool: live while a socket object holds it.
local function new_slot(pool)
  local slot = { pool = pool, live = true }
  slot.guard = gc_guard(function()
    if slot.live then
      slot.live = false
      pcall(release_slot, slot.pool)
    end
  end)
  return slot
end

local tcp = {}
local tcp_mt = { __index = tcp, __name = "ngx.socket.tcp" }
tcp_mt.__tostring = function(self)
  return "ngx.socket.tcp(" .. (self._s and "connected to " .. tostring(self._key) or "closed") .. ")"
end

local function check_sock(self, fname)
  if getmetatable(self) ~= tcp_mt then
    error(format("%s: argument #1 must be a socket from ngx.socket.tcp() (call it with a colon; got %s)",
      fname, type(self)), 3)
  end
end

-- Is the task recorded in a busy flag still alive?
local function task_alive(id)
  for _, t in ipairs(cf.tasks()) do
    if t.id == id then return true end
  end
  return false
end

local function busy(self, field)
  local id = self[field]
  if id == nil then return false end
  if id ~= cf.current() and task_alive(id) then return true end
  self[field] = nil -- left by a task that was cancelled mid-operation
  return false
end

-- Forget the connection; give its pool slot back.
local function drop(self)
  local s = self._s
  self._s = nil
  self._read_closed = nil
  local slot = self._slot
  if slot then
    self._slot = nil
    slot.live = false
    release_slot(slot.pool)
  end
  return s
end

local function fail(self)
  local s = drop(self)
  if s then pcall(s.close, s) end
end

-- Await f (made by mk()) within the read timeout; the timeout counts from
-- the last bytes that arrived (as nginx's read timer is re-armed on every
-- read), so a slow but steady peer is not cut off.
local function timed_read(self, s, mk)
  local t = self._rt
  while true do
    local before = s:buffered()
    local a, b, c = cf.timeout(t, mk()):await()
    if a ~= nil or b ~= "timeout" or c ~= nil or s:is_closed() or s:buffered() <= before then
      return a, b, c
    end
  end
end

-- Take the bytes buffered now (no wait).
local function take_buffered(s)
  local n = s:buffered()
  if n == 0 then return "" end
  return s:read(n):await() or ""
end

local function strip_cr(line)
  if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
  return line
end

local function begin_read(self, fname)
  check_sock(self, fname)
  in_task(fname)
  local s = self._s
  if not s or self._read_closed then return nil, "closed" end
  if busy(self, "_connecting") then return nil, "socket busy connecting" end
  if busy(self, "_reading") then return nil, "socket busy reading" end
  self._reading = cf.current()
  return s
end

-- A read failed for good (the end of the stream too soon when err is nil):
-- the connection is closed; the partial result is what arrived.
local function lost(self, err, code, partial)
  fail(self)
  return nil, err and err_text(err, code) or "closed", partial
end

local function read_line(self, s)
  local parts
  while true do
    local data, err, code = timed_read(self, s, function() return s:read_until("\n", LINE_CHUNK) end)
    if data ~= nil then
      if byte(data, -1) == 10 then
        data = sub(data, 1, -2)
        if parts then
          parts[#parts + 1] = data
          data = concat(parts)
        end
        return strip_cr(data)
      end
      -- the end of the stream before a newline
      local partial = parts and concat(parts) .. data or data
      return lost(self, nil, nil, strip_cr(partial))
    elseif err == nil then
      return lost(self, nil, nil, parts and strip_cr(concat(parts)) or "")
    elseif err == "timeout" and code == nil then
      local partial = (parts and concat(parts) or "") .. take_buffered(s)
      return nil, "timeout", strip_cr(partial)
    elseif code == "ENOBUFS" then
      parts = parts or {}
      parts[#parts + 1] = s:read(LINE_CHUNK):await()
    else
      return lost(self, err, code, parts and strip_cr(concat(parts)) or "")
    end
  end
end

local function read_bytes(self, s, n)
  local data, err, code = timed_read(self, s, function() return s:read_exact(n) end)
  if data ~= nil then
    if #data == n then return data end
    return lost(self, nil, nil, data)
  elseif err == nil then
    return lost(self, nil, nil, "")
  elseif err == "timeout" and code == nil then
    return nil, "timeout", take_buffered(s)
  end
  return lost(self, err, code, "")
end

local function read_all(self, s)
  local parts = {}
  while true do
    local data, err, code = cf.timeout(self._rt, s:read(65536)):await()
    if data ~= nil then
      parts[#parts + 1] = data
    elseif err == nil then
      self._read_closed = true
      return concat(parts)
    elseif err == "timeout" and code == nil then
      return nil, "timeout", concat(parts)
    else
      return lost(self, err, code, concat(parts))
    end
  end
end

function tcp:receive(pat)
  check_sock(self, "tcpsock:receive")
  local n
  if pat ~= nil and pat ~= "*l" and pat ~= "*a" then
    n = as_int(pat)
    if n == nil or n < 0 then argerr("tcpsock:receive", 2, 'a byte count, "*l" or "*a"', pat) end
  end
  local s, e = begin_read(self, "tcpsock:receive")
  if not s then return nil, e end
  local ok, a, b, c = pcall(function()
    if n == nil then
      if pat == "*a" then return read_all(self, s) end
      return read_line(self, s)
    end
    if n == 0 then return "" end
    return read_bytes(self, s, n)
  end)
  self._reading = nil
  if not ok then error(a, 0) end
  return a, b, c
end

function tcp:receiveany(max)
  check_sock(self, "tcpsock:receiveany")
  local n = as_int(max)
  if n == nil or n <= 0 then argerr("tcpsock:receiveany", 2, "a positive byte count", max) end
  local s, e = begin_read(self, "tcpsock:receiveany")
  if not s then return nil, e end
  local ok, data, err, code = pcall(function() return cf.timeout(self._rt, s:read(n)):await() end)
  self._reading = nil
  if not ok then error(data, 0) end
  if data ~= nil then return data end
  if err == "timeout" and code == nil then return nil, "timeout" end
  fail(self)
  if err == nil then return nil, "closed" end
  return nil, err_text(err, code)
end

-- The safe part of what is buffered when a pattern read times out: all but
-- the last #pat - 1 bytes, which could begin the pattern (they stay buffered
-- for the next read).
local function take_safe(s, pat)
  local n = s:buffered() - #pat + 1
  if n <= 0 then return "" end
  return s:read_exact(n):await() or ""
end

local function read_until(self, s, pat, inclusive, size)
  local plen = #pat
  if size then
    local data, err, code = timed_read(self, s, function() return s:read_until(pat, size + plen) end)
    if data ~= nil then
      if sub(data, -plen) == pat then
        return inclusive and data or sub(data, 1, -plen - 1), true
      end
      return lost(self, nil, nil, data)
    elseif err == nil then
      return lost(self, nil, nil, "")
    elseif err == "timeout" and code == nil then
      return nil, "timeout", take_safe(s, pat)
    elseif code == "ENOBUFS" then
      return s:read_exact(size):await()
    end
    return lost(self, err, code, "")
  end
  local window = LINE_CHUNK
  if window < 2 * plen then window = 2 * plen end
  local parts = {}
  while true do
    local data, err, code = timed_read(self, s, function() return s:read_until(pat, window) end)
    if data ~= nil then
      if sub(data, -plen) == pat then
        parts[#parts + 1] = inclusive and data or sub(data, 1, -plen - 1)
        return concat(parts)
      end
      parts[#parts + 1] = data
      return lost(self, nil, nil, concat(parts))
    elseif err == nil then
      return lost(self, nil, nil, concat(parts))
    elseif err == "timeout" and code == nil then
      parts[#parts + 1] = take_safe(s, pat)
      return nil, "timeout", concat(parts)
    elseif code == "ENOBUFS" then
      parts[#parts + 1] = s:read_exact(window - plen + 1):await()
    else
      return lost(self, err, code, concat(parts))
    end
  end
end

function tcp:receiveuntil(pat, opts)
  check_sock(self, "tcpsock:receiveuntil")
  if type(pat) == "number" then pat = tostring(pat) end
  if type(pat) ~= "string" then argerr("tcpsock:receiveuntil", 2, "a pattern string", pat) end
  if pat == "" then return nil, "pattern is empty" end
  local inclusive = false
  if opts ~= nil then
    if type(opts) ~= "table" then argerr("tcpsock:receiveuntil", 3, "an options table", opts) end
    local inc = opts.inclusive
    if inc ~= nil and type(inc) ~= "boolean" then
      error(format('tcpsock:receiveuntil: bad "inclusive" option value type: %s', type(inc)), 2)
    end
    inclusive = inc == true
  end
  local done = false -- a sized read saw the pattern: the next call returns nil
  -- the data before the pattern that a sized read found but has not
  -- returned yet (the stream had more than `size` of it buffered)
  local pending
  return function(size)
    local n
    if size ~= nil then
      n = as_int(size)
      if n == nil then argerr("receiveuntil iterator", 1, "a byte count", size) end
      if n <= 0 then n = nil end
    end
    if done then
      done = false
      return nil, nil, nil
    end
    if pending then
      local p = pending
      if n and #p > n then
        pending = sub(p, n + 1)
        return sub(p, 1, n)
      end
      pending = nil
      if n then done = true end
      return p
    end
    local s, e = begin_read(self, "receiveuntil iterator")
    if not s then return nil, e end
    if n and n > LINE_CHUNK then n = LINE_CHUNK end
    local ok, a, b, c = pcall(read_until, self, s, pat, inclusive, n)
    self._reading = nil
    if not ok then error(a, 0) end
    if n and a ~= nil and b == true then
      if #a > n then
        pending = sub(a, n + 1)
        return sub(a, 1, n)
      end
      done = true
      return a
    end
    return a, b, c
  end
end

-- send: a string, number, boolean, nil, or a (nested) array of strings and
-- numbers, as OpenResty takes them.
local function num_str(v)
  if math_type and math_type(v) == "integer" then return tostring(v) end
  return format("%.14g", v)
end

local function flatten(t, out, seen)
  if seen[t] then error("tcpsock:send: argument #2 must not contain itself", 4) end
  seen[t] = true
  local max = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then
      error("tcpsock:send: argument #2 must be an array table (non-array table found)", 4)
    end
    if k > max then max = k end
  end
  for i = 1, max do
    local v = t[i]
    local tv = type(v)
    if tv == "string" then
      out[#out + 1] = v
    elseif tv == "number" then
      out[#out + 1] = num_str(v)
    elseif tv == "table" then
      flatten(v, out, seen)
    else
      error(format("tcpsock:send: argument #2 must hold strings, numbers and arrays (bad data type %s found)",
        tv), 4)
    end
  end
  seen[t] = nil
end

function tcp:send(data)
  check_sock(self, "tcpsock:send")
  local td = type(data)
  local str
  if td == "string" then
    str = data
  elseif td == "number" then
    str = num_str(data)
  elseif td == "table" then
    -- the usual case, a flat array of strings and numbers (a command of
    -- lua-resty-redis): concat it as it is; anything else is checked and
    -- flattened
    local n = #data
    local flat = n > 0 and next(data, n) == nil
    for i = 1, flat and n or 0 do
      local v = data[i]
      local tv = type(v)
      -- (a float is written as num_str writes it, not as concat would on 5.4)
      if tv ~= "string" and (tv ~= "number" or (math_type and math_type(v) ~= "integer")) then
        flat = false
        break
      end
    end
    if flat then
      str = concat(data)
    else
      local out = {}
      flatten(data, out, {})
      str = concat(out)
    end
  elseif td == "nil" or td == "boolean" then
    str = tostring(data)
  else
    argerr("tcpsock:send", 2, "a string, number, boolean, nil or array table", data)
  end
  in_task("tcpsock:send")
  local s = self._s
  if not s then return nil, "closed" end
  if busy(self, "_connecting") then return nil, "socket busy connecting" end
  if busy(self, "_writing") then return nil, "socket busy writing" end
  if #str == 0 then return 0 end
  self._writing = cf.current()
  local ok, r, err, code = pcall(function() return cf.timeout(self._st, s:write(str)):await() end)
  self._writing = nil
  if not ok then error(r, 0) end
  if r then return #str end
  -- a write cut short leaves the stream in an unknown state: close it
  fail(self)
  if err == "timeout" and code == nil then return nil, "timeout" end
  return nil, err_text(err, code)
end

local function timeout_arg(fname, n, v)
  if v == nil then return 0 end
  local t = tonumber(v)
  if t == nil or t ~= t or t < 0 or t >= 2147483648 then
    argerr(fname, n, "a non-negative number of milliseconds below 2^31", v, 3)
  end
  return floor(t)
end

function tcp:settimeout(ms)
  check_sock(self, "tcpsock:settimeout")
  local t = timeout_arg("tcpsock:settimeout", 2, ms)
  -- 0: the default (the settings), as in OpenResty
  self._ct = t > 0 and t or settings.connect_timeout
  self._st = t > 0 and t or settings.send_timeout
  self._rt = t > 0 and t or settings.read_timeout
end

function tcp:settimeouts(c, s, r)
  check_sock(self, "tcpsock:settimeouts")
  local ct = timeout_arg("tcpsock:settimeouts", 2, c)
  local st = timeout_arg("tcpsock:settimeouts", 3, s)
  local rt = timeout_arg("tcpsock:settimeouts", 4, r)
  self._ct = ct > 0 and ct or settings.connect_timeout
  self._st = st > 0 and st or settings.send_timeout
  self._rt = rt > 0 and rt or settings.read_timeout
end

local function connect_error(host, msg, code)
  if code == "EAI_NONAME" or code == "EAI_AGAIN" or code == "EAI_FAIL" or code == "EAI_NODATA" then
    return host .. " could not be resolved (3: Host not found)"
  end
  return err_text(msg, code)
end

-- Wait up to `left` ms for a slot of the pool, counted among its waiting
-- connects; the count drops however the wait ends (a cancelled connect too).
local wait_slot = cf.async(function(pool, left)
  pool.waiting = pool.waiting + 1
  cf.defer(function() pool.waiting = pool.waiting - 1 end)
  return cf.timeout(left, pool.notify:wait()):await()
end)

-- A new connection, counted in its pool (if any) from the start: its slot
-- is given back unless the connect succeeds, however it ends (a cancelled
-- connect too). Returns the stream (or nil, msg, code) and the slot.
local connect_in = cf.async(function(pool, host, port, left)
  local slot, done
  if pool then
    pool.connections = pool.connections + 1
    slot = new_slot(pool)
    cf.defer(function()
      if not done then
        slot.live = false
        release_slot(pool)
      end
    end)
  end
  local s, msg, code = cf.timeout(left, cf.net.connect(host, port)):await()
  done = s ~= nil
  return s, msg, code, slot
end)

function tcp:connect(host, port, opts)
  check_sock(self, "tcpsock:connect")
  if type(host) ~= "string" then argerr("tcpsock:connect", 2, "a host name or address", host) end
  if type(port) == "table" and opts == nil then port, opts = nil, port end
  local pool_name, pool_size, backlog
  if opts ~= nil then
    if type(opts) ~= "table" then argerr("tcpsock:connect", 4, "an options table", opts) end
    local p = opts.pool
    if p ~= nil then
      if type(p) ~= "string" and type(p) ~= "number" then
        error(format('tcpsock:connect: bad "pool" option type: %s', type(p)), 2)
      end
      pool_name = tostring(p)
    end
    if opts.pool_size ~= nil then
      pool_size = as_int(opts.pool_size)
      if type(opts.pool_size) ~= "number" then
        error(format('tcpsock:connect: bad "pool_size" option type: %s', type(opts.pool_size)), 2)
      end
      if pool_size == nil or pool_size <= 0 then
        error(format('tcpsock:connect: bad "pool_size" option value: %s', tostring(opts.pool_size)), 2)
      end
    end
    if opts.backlog ~= nil then
      backlog = as_int(opts.backlog)
      if type(opts.backlog) ~= "number" then
        error(format('tcpsock:connect: bad "backlog" option type: %s', type(opts.backlog)), 2)
      end
      if backlog == nil or backlog < 0 then
        error(format('tcpsock:connect: bad "backlog" option value: %s', tostring(opts.backlog)), 2)
      end
    end
  end
  in_task("tcpsock:connect")
  if lower(sub(host, 1, 5)) == "unix:" then
    return nil, "unix domain sockets are not supported by cfuture (connect to " .. host .. ")"
  end
  if port == nil then return nil, "missing the port number" end
  local pn = as_int(port)
  if pn == nil then argerr("tcpsock:connect", 3, "a port number", port) end
  if pn < 0 or pn > 65535 then return nil, "bad port number: " .. tostring(pn) end
  if busy(self, "_connecting") then return nil, "socket busy connecting" end
  -- an open connection is closed first
  if self._s then fail(self) end
  local key = pool_name or (host .. ":" .. pn)
  self._key, self._host = key, host
  local pool = pools[key]
  if not pool and (pool_size or backlog) then
    pool = new_pool(key, pool_size or settings.pool_size, backlog)
  end
  self._connecting = cf.current()
  local ok, a, b = pcall(function()
    local deadline = cf.now() + self._ct
    while true do
      if pool then
        local e = checkout(pool)
        if e then
          self._s = e.s
          self._reused = e.reused + 1
          self._slot = e.slot
          if e.slot then e.slot.live = true end
          return 1
        end
      end
      if not (pool and pool.backlog and pool.connections >= pool.size) then break end
      if pool.waiting >= pool.backlog then return nil, "too many waiting connect operations" end
      local left = deadline - cf.now()
      if left <= 0 then return nil, "timeout" end
      local r, why = wait_slot(pool, left):await()
      if r == nil and why == "timeout" then return nil, "timeout" end
    end
    local left = deadline - cf.now()
    if left < 1 then left = 1 end
    local s, msg, code, slot = connect_in(pool, host, pn, left):await()
    if not s then
      if msg == "timeout" and code == nil then return nil, "timeout" end
      return nil, connect_error(host, msg, code)
    end
    self._s = s
    self._reused = 0
    self._slot = slot
    return 1
  end)
  self._connecting = nil
  if not ok then error(a, 0) end
  return a, b
end

function tcp:setkeepalive(timeout, size)
  check_sock(self, "tcpsock:setkeepalive")
  local t
  if timeout == nil then
    t = settings.keepalive_timeout
  else
    t = as_int(timeout)
    if t == nil or t < 0 then
      argerr("tcpsock:setkeepalive", 2, "a non-negative number of milliseconds", timeout)
    end
  end
  local sz
  if size ~= nil then
    sz = as_int(size)
    if sz == nil then argerr("tcpsock:setkeepalive", 3, "a pool size", size) end
  end
  local s = self._s
  if not s or self._read_closed or s:is_closed() then
    fail(self)
    return nil, "closed"
  end
  if busy(self, "_connecting") then return nil, "socket busy connecting" end
  if busy(self, "_reading") then return nil, "socket busy reading" end
  if busy(self, "_writing") then return nil, "socket busy writing" end
  if s:buffered() > 0 then return nil, "unread data in buffer" end
  local key = self._key
  local pool = pools[key]
  if not pool then
    sz = sz or settings.pool_size
    if sz <= 0 then
      error(format('tcpsock:setkeepalive: bad "pool_size" option value: %d', sz), 2)
    end
    pool = new_pool(key, sz, nil)
  end
  local slot = self._slot
  self._s, self._slot = nil, nil
  if not slot then
    -- not counted yet (its pool was made after it connected)
    pool.connections = pool.connections + 1
    slot = new_slot(pool)
  end
  slot.live = false -- the pool owns the slot now
  if #pool.idle >= pool.size then
    -- full: the least recently kept connection makes room
    local old = table.remove(pool.idle, 1)
    old.watcher:abort()
    pcall(old.s.close, old.s)
    release_slot(pool)
  end
  local entry = { s = s, reused = self._reused or 0, slot = slot }
  pool.idle[#pool.idle + 1] = entry
  -- unref: an idle pool does not keep cf.run() going, as in nginx
  entry.watcher = cf.spawn(watch, pool, entry, t):unref()
  pool.notify:notify_all()
  return 1
end

function tcp:getreusedtimes()
  check_sock(self, "tcpsock:getreusedtimes")
  if not self._s then return nil, "closed" end
  return self._reused or 0
end

function tcp:close()
  check_sock(self, "tcpsock:close")
  local s = drop(self)
  if not s then return nil, "closed" end
  pcall(s.close, s)
  return 1
end

function tcp:setoption(opt, value)
  check_sock(self, "tcpsock:setoption")
  if type(opt) ~= "string" then argerr("tcpsock:setoption", 2, "an option name", opt) end
  local s = self._s
  if opt == "keepalive" or opt == "tcp-nodelay" then
    if not s then return nil, "closed" end
    local on = value
    if type(on) == "number" then on = on ~= 0 end
    if type(on) ~= "boolean" then
      argerr("tcpsock:setoption", 3, "a boolean (or 0 / 1)", value)
    end
    local ok, r, err = pcall(opt == "keepalive" and s.set_keepalive or s.set_nodelay, s, on)
    if not ok then return nil, tostring(r) end
    if not r then return nil, err end
    return true
  elseif opt == "reuseaddr" or opt == "sndbuf" or opt == "rcvbuf" then
    return nil, "unsupported option " .. opt .. " (cfuture sets no such socket option)"
  end
  argerr("tcpsock:setoption", 2, 'one of "keepalive", "tcp-nodelay", "reuseaddr", "sndbuf", "rcvbuf"', opt)
end

-- sslhandshake(reused_session, server_name, ssl_verify [, send_status_req])
-- on cf.tls. The session cf.tls keeps per server name resumes by itself:
-- the returned session is a token (or true if reused_session is false)
-- that may be passed back.
local session_mt = { __name = "ngx.ssl.session", __tostring = function() return "ssl session" end }

function tcp:sslhandshake(reused, server_name, verify, status_req)
  check_sock(self, "tcpsock:sslhandshake")
  if server_name ~= nil and type(server_name) ~= "string" then
    argerr("tcpsock:sslhandshake", 3, "a server name", server_name)
  end
  if status_req then
    error("tcpsock:sslhandshake: send_status_req (OCSP stapling) is not supported by cfuture", 2)
  end
  in_task("tcpsock:sslhandshake")
  local s = self._s
  if not s then return nil, "closed" end
  if busy(self, "_reading") then return nil, "socket busy reading" end
  if busy(self, "_writing") then return nil, "socket busy writing" end
  if not s:tls_info() then
    local o = {}
    for k, v in pairs(settings.ssl) do o[k] = v end
    o.verify = verify == true
    -- verifying needs a name to check: the host connected to, if none is given
    o.servername = server_name or (verify == true and self._host) or nil
    o.handshake_timeout = self._rt
    self._reading, self._writing = cf.current(), cf.current()
    local ok, r, msg, code = pcall(function() return cf.tls.wrap(s, o):await() end)
    self._reading, self._writing = nil, nil
    if not ok then error(r, 0) end
    if not r then
      fail(self)
      if code == "ETIMEDOUT" then return nil, "timeout" end
      msg = gsub(tostring(msg), "^tls%.wrap: ", "")
      if code == "ECERTUNTRUSTED" or code == "ECERTEXPIRED" or code == "EHOSTMISMATCH" or
          code == "ECERTINVALID" then
        return nil, msg
      end
      return nil, "handshake failed: " .. msg
    end
  end
  if reused == false then return true end
  return setmetatable({ info = s:tls_info() }, session_mt)
end

ngx.socket = {}
function ngx.socket.tcp(...)
  if select("#", ...) > 0 then error("ngx.socket.tcp: expecting zero arguments", 2) end
  return setmetatable({ _ct = settings.connect_timeout, _st = settings.send_timeout,
    _rt = settings.read_timeout }, tcp_mt)
end
ngx.socket.stream = ngx.socket.tcp

function ngx.socket.connect(host, port, opts)
  local sock = ngx.socket.tcp()
  local ok, err = sock:connect(host, port, opts)
  if not ok then return nil, err end
  return sock
end

-- table.new / table.clear on PUC Lua ---------------------------------------------
local function table_new() return {} end
local function table_clear(t)
  for k in next, t do t[k] = nil end
end
if not pcall(require, "table.new") then
  package.preload["table.new"] = function()
    if table.new == nil then table.new = function(narr, nrec) return table_new() end end
    return table.new
  end
end
if not pcall(require, "table.clear") then
  package.preload["table.clear"] = function()
    if table.clear == nil then table.clear = table_clear end
    return table.clear
  end
end

-- install(): the global `ngx` for libraries loaded afterwards -------------------
-- (and package.loaded.ngx; the 5.1 global `unpack` where it is missing, as
-- OpenResty libraries are written for LuaJIT).
function ngx.install()
  _G.ngx = ngx
  package.loaded.ngx = ngx
  if rawget(_G, "unpack") == nil then _G.unpack = table.unpack end
  return ngx
end

return ngx
