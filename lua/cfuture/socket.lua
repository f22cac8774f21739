-- cfuture.socket: LuaSocket's API on cfuture's streams.
--
-- `require "cfuture.socket"` returns a table shaped like LuaSocket's
-- `require "socket"` (the C core plus what socket.lua adds): socket.tcp(),
-- socket.udp(), socket.connect, socket.bind, socket.select, socket.dns,
-- socket.gettime, socket.sleep, protect/newtry/try/skip, sources and sinks.
-- `require("cfuture.socket").install()` makes `require "socket"` (and
-- "socket.core") return it, so LuaSocket's own Lua modules (socket.http,
-- socket.smtp, socket.ftp, socket.tp) loaded afterwards run on cfuture.
--
-- Inside a task every wait (connect, send, receive, accept, sleep, DNS,
-- select) suspends only that task: each is a cfuture future, and
-- settimeout's limits are cf.timeout around it. Outside a task the same
-- call runs the loop until it is done (cf.block_on), as LuaSocket blocks;
-- tasks spawned earlier run meanwhile.
--
-- Results and error strings are LuaSocket's: `1` for success, `nil, "timeout"`,
-- `nil, "closed"`, `nil, "connection refused"`, receive's `nil, err, partial`
-- and send's `nil, err, last`. A receive cut short by a timeout returns the
-- bytes that arrived as `partial`; none is lost.
local cf = require "cfuture"

local now, current, block_on = cf.now, cf.current, cf.block_on
local timeout, sleep, cfselect = cf.timeout, cf.sleep, cf.select
local net = cf.net
local type, tostring, tonumber, error, pcall, select, setmetatable, getmetatable, rawget, pairs,
  ipairs = type, tostring, tonumber, error, pcall, select, setmetatable, getmetatable, rawget,
  pairs, ipairs
local floor, ceil, huge, min = math.floor, math.ceil, math.huge, math.min
local find, sub, gsub, format, match, byte = string.find, string.sub, string.gsub,
  string.format, string.match, string.byte
local concat = table.concat
local unpack = table.unpack or unpack

local M = {}
M._VERSION = "LuaSocket 3.1.0 (cfuture)"
M._DEBUG = false
M.BLOCKSIZE = 2048

-- What a read asks the stream for when it fills the socket's own buffer.
local CHUNK = 65536
-- The longest line the stream's read_until holds before it gives up; a
-- longer line is taken in pieces of this size (LuaSocket has no limit).
local LINE_PIECE = 1048576

-- Helpers ------------------------------------------------------------------

local function tname(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__cfsocket") then return mt.__cfsocket end
  return type(v)
end

-- Raise msg at the caller's line: the first frame outside this file.
local MY_SOURCE = debug.getinfo(1, "S").source
local getinfo = debug.getinfo
local function raise(msg)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if not info or info.source ~= MY_SOURCE then break end
    level = level + 1
  end
  error(msg, level)
end

local function argerr(fname, n, what, v)
  raise(format("%s: argument #%d must be %s (got %s)", fname, n, what, tname(v)))
end

-- LuaSocket truncates numbers with a C cast.
local function trunc(x)
  if x >= 0 then return floor(x) end
  return ceil(x)
end

-- A number, or a string Lua reads as one (as luaL_checknumber accepts).
local function tonum(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) end
  return nil
end

-- Run fn(...) in the current task, or in a loop of its own outside tasks.
local function run(fn, ...)
  if current() then return fn(...) end
  return block_on(fn, ...)
end

-- The error strings of LuaSocket's socket_strerror / gai_strerror /
-- hoststrerror for the codes cfuture reports (libuv's names).
local ERRORS = {
  EADDRINUSE = "address already in use",
  EISCONN = "already connected",
  EACCES = "permission denied",
  EPERM = "Operation not permitted",
  ECONNREFUSED = "connection refused",
  ECONNABORTED = "closed",
  ECONNRESET = "closed",
  EPIPE = "closed",
  EOF = "closed",
  ECANCELED = "closed",
  ETIMEDOUT = "timeout",
  EAI_AGAIN = "temporary failure in name resolution",
  EAI_BADFLAGS = "invalid value for ai_flags",
  EAI_BADHINTS = "invalid value for hints",
  EAI_FAIL = "non-recoverable failure in name resolution",
  EAI_FAMILY = "ai_family not supported",
  EAI_MEMORY = "memory allocation failure",
  EAI_NONAME = "host or service not provided, or not known",
  EAI_OVERFLOW = "argument buffer overflow",
  EAI_PROTOCOL = "resolved protocol is unknown",
  EAI_SERVICE = "service not supported for socket type",
  EAI_SOCKTYPE = "ai_socktype not supported",
  EAI_ADDRFAMILY = "Address family for hostname not supported",
  EAI_NODATA = "No address associated with hostname",
  -- strerror(3) for the rest LuaSocket passes through
  ENETUNREACH = "Network is unreachable",
  ENETDOWN = "Network is down",
  EHOSTUNREACH = "No route to host",
  EHOSTDOWN = "Host is down",
  EADDRNOTAVAIL = "Cannot assign requested address",
  EAFNOSUPPORT = "Address family not supported by protocol",
  EINVAL = "Invalid argument",
  ENOTCONN = "Transport endpoint is not connected",
  EMFILE = "Too many open files",
  ENFILE = "Too many open files in system",
  ENOBUFS = "No buffer space available",
  ENOMEM = "Cannot allocate memory",
  EMSGSIZE = "Message too long",
  EBADF = "Bad file descriptor",
  EALREADY = "Operation already in progress",
  ENOTSUP = "Operation not supported",
  EPROTO = "Protocol error",
  EIO = "Input/output error",
}
M._errors = ERRORS

-- LuaSocket's message for cfuture's failure (message, code)
local function errstr(msg, code)
  local e = code and ERRORS[code]
  if e then return e end
  if type(msg) == "string" then return (gsub(msg, "^[^:]*: ", "")) end
  return "unknown error"
end

-- toip / tohostname speak gethostbyname's language (hstrerror)
local function hosterr(msg, code)
  if code == "EAI_NONAME" or code == "EAI_NODATA" or code == "EAI_ADDRFAMILY" then
    return "host not found"
  elseif code == "EAI_AGAIN" then
    return "Host name lookup failure"
  elseif code == "EAI_FAIL" then
    return "Unknown server error"
  end
  return errstr(msg, code)
end

-- Milliseconds in cfuture's range (1e15 at most).
local function to_ms(seconds)
  local ms = seconds * 1000
  if ms > 1e15 then ms = 1e15 end
  if ms < 0 or ms ~= ms then ms = 0 end
  return ms
end

-- Await fut with a limit of ms milliseconds (nil: none). A timeout gives
-- the single marker TIMEOUT instead of fut's results.
local TIMEOUT = setmetatable({}, { __tostring = function() return "timeout" end })
local function await_for(fut, ms)
  if not ms then return fut:await() end
  -- a zero limit still lets the loop turn once: a connection waiting in
  -- the backlog or bytes in the kernel are then taken, as a non-blocking
  -- LuaSocket call would take them
  local a, b, c, d = timeout(ms > 1 and ms or 1, fut):await()
  if a == nil and b == "timeout" and c == nil then return TIMEOUT end
  return a, b, c, d
end

-- Ports: numbers and numeric strings in 0..65535, or service names from
-- /etc/services. Returns the number, or nil, LuaSocket's message.
local services
local function service_port(name, proto)
  if not services then
    services = { tcp = {}, udp = {} }
    local f = io.open("/etc/services")
    if f then
      for line in f:lines() do
        local line_ = gsub(line, "#.*", "")
        local svc, port, pr, aliases = match(line_, "^(%S+)%s+(%d+)/(%a+)(.*)$")
        if svc and services[pr] then
          local t = services[pr]
          t[svc] = t[svc] or tonumber(port)
          for a in aliases:gmatch("%S+") do t[a] = t[a] or tonumber(port) end
        end
      end
      f:close()
    end
  end
  return services[proto][name]
end

local function check_port(fname, n, v, proto)
  local num = tonum(v)
  if num == nil then
    if type(v) == "string" then
      local p = service_port(v, proto)
      if p then return p end
      return nil, ERRORS.EAI_SERVICE
    end
    argerr(fname, n, "a port number", v)
  end
  if num ~= floor(num) or num < 0 or num > 65535 then return nil, ERRORS.EAI_SERVICE end
  return num
end

local function check_host(fname, n, v)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then argerr(fname, n, "a host name or address string", v) end
  if find(v, "\0", 1, true) then
    raise(format("%s: argument #%d must not contain NUL bytes", fname, n))
  end
  return v
end

local function is_ipv4(h) return match(h, "^%d+%.%d+%.%d+%.%d+$") ~= nil end
local function is_ipv6(h) return find(h, ":", 1, true) ~= nil and match(h, "^[%x:%.]+$") ~= nil end
local function family_of(addr) return find(addr, ":", 1, true) and "inet6" or "inet" end

-- Resolve host for family ("inet", "inet6" or nil for any): list or nil, msg
local function resolve(host, family)
  if family ~= "inet6" and is_ipv4(host) then return { host } end
  if family ~= "inet" and is_ipv6(host) then return { host } end
  if is_ipv4(host) or is_ipv6(host) then return nil, ERRORS.EAI_FAMILY end
  local list, msg, code = net.lookup(host, family or "any"):await()
  if not list then return nil, errstr(msg, code) end
  if #list == 0 then return nil, ERRORS.EAI_NONAME end
  return list
end

-- Sockets ------------------------------------------------------------------

local methods = {}
local classes = {}
local function class(name)
  local mt = { __index = methods, __cfsocket = name }
  mt.__tostring = function(self) return name .. ": " .. self._addr end
  classes[name] = mt
  return mt
end
local TCP_MASTER, TCP_CLIENT, TCP_SERVER = class("tcp{master}"), class("tcp{client}"),
  class("tcp{server}")
local UDP_UNCONNECTED, UDP_CONNECTED = class("udp{unconnected}"), class("udp{connected}")

local function new(mt, fields)
  local self = fields or {}
  self._addr = match(tostring(self), "0x%x+") or tostring(self)
  self.block, self.total = -1, -1
  self.rbuf, self.rpos = "", 1
  self.nsent, self.nrecv, self.birthday = 0, 0, now()
  self.opts = self.opts or {}
  return setmetatable(self, mt)
end

-- self must be one of ours and of one of the given kinds
local KIND = {
  any = { [TCP_MASTER] = true, [TCP_CLIENT] = true, [TCP_SERVER] = true,
    [UDP_UNCONNECTED] = true, [UDP_CONNECTED] = true },
  tcp = { [TCP_MASTER] = true, [TCP_CLIENT] = true, [TCP_SERVER] = true },
  master = { [TCP_MASTER] = true },
  client = { [TCP_CLIENT] = true },
  server = { [TCP_SERVER] = true },
  mc = { [TCP_MASTER] = true, [TCP_CLIENT] = true },
  udp = { [UDP_UNCONNECTED] = true, [UDP_CONNECTED] = true },
  uconnected = { [UDP_CONNECTED] = true },
  uunconnected = { [UDP_UNCONNECTED] = true },
}
local KIND_NAME = {
  any = "a socket", tcp = "a tcp object", master = "a tcp{master} object",
  client = "a tcp{client} object", server = "a tcp{server} object",
  mc = "a tcp{master} or tcp{client} object", udp = "a udp object",
  uconnected = "a udp{connected} object", uunconnected = "a udp{unconnected} object",
}
local function check(self, kind, fname)
  local mt = getmetatable(self)
  if not KIND[kind][mt] then
    raise(format("%s: argument #1 must be %s (call it with a colon; got %s)", fname,
      KIND_NAME[kind], tname(self)))
  end
  return self
end

local function is_udp(self)
  local mt = getmetatable(self)
  return mt == UDP_UNCONNECTED or mt == UDP_CONNECTED
end

-- The milliseconds the current wait may take, given the operation's start t0
-- (LuaSocket's timeout_getretry): nil when there is no limit.
local function wait_ms(self, t0)
  local b, t = self.block, self.total
  if b < 0 and t < 0 then return nil end
  if t < 0 then return to_ms(b) end
  local left = to_ms(t) - (now() - t0)
  if left < 0 then left = 0 end
  if b >= 0 then left = min(left, to_ms(b)) end
  return left
end

-- Read up to n bytes from the stream (after the socket's own buffer is
-- empty): data, or nil and "timeout" / "closed" / another message.
local function stream_read(self, n, t0)
  local s = self.stream
  if not s or self.rshut then return nil, "closed" end
  if self.eof then return nil, "closed" end
  if self.rerr then return nil, self.rerr end
  local ms = wait_ms(self, t0)
  -- nothing left of the limit: what is buffered, or what one turn of the
  -- loop brings (the stream reads from the kernel only while asked to)
  if ms == 0 and s:buffered() > 0 then ms = nil end
  local d, msg, code = await_for(s:read(n), ms)
  if d == TIMEOUT then return nil, "timeout" end
  if d then return d end
  if msg == nil then
    self.eof = true
    return nil, "closed"
  end
  return nil, errstr(msg, code)
end

-- Bytes from the socket's own buffer (what a line read or select took
-- beyond what was asked): up to n, or all of it with n == nil.
local function take_buffered(self, n)
  local buf, pos = self.rbuf, self.rpos
  local avail = #buf - pos + 1
  if avail <= 0 then return nil end
  if not n or n >= avail then
    self.rbuf, self.rpos = "", 1
    if pos == 1 then return buf end
    return sub(buf, pos)
  end
  self.rpos = pos + n
  return sub(buf, pos, pos + n - 1)
end

local function push_back(self, data)
  if data == "" then return end
  local rest = take_buffered(self) or ""
  self.rbuf, self.rpos = data .. rest, 1
end

local function strip_cr(s)
  if find(s, "\r", 1, true) then return (gsub(s, "\r", "")) end
  return s
end

-- receive(n): n bytes
local function recv_count(self, parts, need, t0)
  while need > 0 do
    local d = take_buffered(self, need)
    local err
    if not d then d, err = stream_read(self, need, t0) end
    if not d then return nil, err end
    parts[#parts + 1] = d
    self.nrecv = self.nrecv + #d
    need = need - #d
  end
  return true
end

-- receive("*a"): until the peer closes
local function recv_all(self, parts, t0)
  local total = 0
  while true do
    local d = take_buffered(self)
    local err
    if not d then d, err = stream_read(self, CHUNK, t0) end
    if not d then
      if err == "closed" and total > 0 then return true end
      return nil, err
    end
    parts[#parts + 1] = d
    self.nrecv = self.nrecv + #d
    total = total + #d
  end
end

-- receive("*l"): a line, LF or CRLF ended; every CR is dropped, as LuaSocket does.
local function recv_line(self, parts, t0)
  -- what the socket's own buffer holds first
  local buf, pos = self.rbuf, self.rpos
  if pos <= #buf then
    local i = find(buf, "\n", pos, true)
    if i then
      parts[#parts + 1] = strip_cr(sub(buf, pos, i - 1))
      self.nrecv = self.nrecv + (i - pos + 1)
      self.rpos = i + 1
      if self.rpos > #buf then self.rbuf, self.rpos = "", 1 end
      return true
    end
    local d = take_buffered(self)
    parts[#parts + 1] = strip_cr(d)
    self.nrecv = self.nrecv + #d
  end
  local s = self.stream
  if self.block < 0 and s and not self.rshut and not self.eof and not self.rerr and
      wait_ms(self, t0) ~= 0 then
    -- no per-wait limit: the stream finds the line (one future per line)
    while true do
      local ms = wait_ms(self, t0)
      local d, msg, code = TIMEOUT, nil, nil
      if ms ~= 0 then d, msg, code = await_for(s:read_until("\n", LINE_PIECE), ms) end
      if d == TIMEOUT then
        -- what arrived is the partial result: take it
        local n = s:buffered()
        if n > 0 then
          local p = s:read(n):await()
          if p then
            parts[#parts + 1] = strip_cr(p)
            self.nrecv = self.nrecv + #p
          end
        end
        return nil, "timeout"
      elseif d then
        self.nrecv = self.nrecv + #d
        local len = #d
        if byte(d, len) == 10 then
          if len > 1 and byte(d, len - 1) == 13 then len = len - 1 end
          local line = sub(d, 1, len - 1)
          if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
          parts[#parts + 1] = line
          return true
        end
        -- the end of the stream came before a newline
        parts[#parts + 1] = strip_cr(d)
        self.eof = true
        return nil, "closed"
      elseif msg == nil then
        self.eof = true
        return nil, "closed"
      elseif code == "ENOBUFS" then
        -- a line longer than the stream holds: take a piece and go on
        local p = s:read(LINE_PIECE):await()
        if p then
          parts[#parts + 1] = strip_cr(p)
          self.nrecv = self.nrecv + #p
        end
      else
        return nil, errstr(msg, code)
      end
    end
  end
  -- a limit per wait ("b" mode): chunks, the rest kept in the socket's buffer
  while true do
    local d, err = stream_read(self, CHUNK, t0)
    if not d then return nil, err end
    local i = find(d, "\n", 1, true)
    if i then
      parts[#parts + 1] = strip_cr(sub(d, 1, i - 1))
      self.nrecv = self.nrecv + i
      if i < #d then self.rbuf, self.rpos = d, i + 1 end
      return true
    end
    parts[#parts + 1] = strip_cr(d)
    self.nrecv = self.nrecv + #d
  end
end

local function receive_impl(self, kind, n, prefix)
  local t0 = now()
  local parts = { prefix }
  local ok, err
  if kind == "n" then
    ok, err = recv_count(self, parts, n - #prefix, t0)
  elseif kind == "l" then
    ok, err = recv_line(self, parts, t0)
  else
    ok, err = recv_all(self, parts, t0)
  end
  if ok then
    if parts[3] == nil and parts[1] == "" then return parts[2] or "", nil, nil end
    return concat(parts), nil, nil
  end
  return nil, err, concat(parts)
end

local PATTERNS = { ["*l"] = "l", ["*a"] = "a", l = "l", a = "a" }

-- The common case without limits, nothing of ours buffered, no prefix, in
-- a task: one stream future per call (what redis-lua and socket.http do).
local function receive_fast(self, s, pattern)
  if pattern == "*l" or pattern == nil then
    local d, msg, code = s:read_until("\n", LINE_PIECE):await()
    if code == "ENOBUFS" then return nil end -- a longer line: the bytes stay, in pieces below
    if not d then return false, d, msg, code end
    local len = #d
    if byte(d, len) ~= 10 then return false, d end
    self.nrecv = self.nrecv + len
    if len > 1 and byte(d, len - 1) == 13 then len = len - 1 end
    local line = sub(d, 1, len - 1)
    if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
    return true, line
  end
  -- a count
  if pattern < 1 or pattern ~= floor(pattern) or pattern == huge then return nil end
  local d, msg, code = s:read_exact(pattern):await()
  if d and #d == pattern then
    self.nrecv = self.nrecv + pattern
    return true, d
  end
  return false, d, msg, code
end

function methods:receive(pattern, prefix)
  local mt = getmetatable(self)
  if mt == TCP_CLIENT and prefix == nil and self.block < 0 and self.total < 0 and
      self.rpos > #self.rbuf and not (self.closed or self.eof or self.rshut or self.rerr) and
      (pattern == nil or pattern == "*l" or type(pattern) == "number") and current() then
    local ok, d, msg, code = receive_fast(self, self.stream, pattern)
    if ok then return d, nil, nil end
    if ok == false then
      -- the end of the stream, or a failure: what came is the partial result
      if d == nil and msg == nil then
        self.eof = true
        return nil, "closed", ""
      elseif d then
        self.eof = true
        self.nrecv = self.nrecv + #d
        if pattern == nil or pattern == "*l" then d = strip_cr(d) end
        return nil, "closed", d
      end
      return nil, errstr(msg, code), ""
    end
  end
  check(self, "any", "tcp:receive")
  if is_udp(self) then return self:_udp_receive(pattern, "udp:receive") end
  if getmetatable(self) ~= TCP_CLIENT then
    raise(format("tcp:receive: argument #1 must be a tcp{client} object (got %s)", tname(self)))
  end
  if prefix == nil then
    prefix = ""
  elseif type(prefix) == "number" then
    prefix = tostring(prefix)
  elseif type(prefix) ~= "string" then
    argerr("tcp:receive", 3, "a string (the prefix) or nil", prefix)
  end
  local kind, n = PATTERNS[pattern or "*l"], nil
  local num = not kind and tonum(pattern)
  if kind then
    -- the common patterns
  elseif num then
    if num < 0 or num ~= num then
      raise(format("tcp:receive: argument #2 must be a pattern ('*l', '*a') or a non-negative " ..
        "number of bytes (got %s)", tostring(pattern)))
    end
    kind, n = "n", (num == huge) and huge or floor(num)
    if #prefix > 0 and n <= #prefix then return prefix, nil, nil end
  elseif type(pattern) == "string" then
    local p = match(pattern, "^%*?(.)")
    if p == "l" then
      kind = "l"
    elseif p == "a" then
      kind = "a"
    end
  end
  if not kind then
    raise(format("tcp:receive: argument #2 must be a pattern ('*l', '*a') or a non-negative " ..
      "number of bytes (got %s)", type(pattern) == "string" and ("'" .. pattern .. "'") or
      tname(pattern)))
  end
  if n == huge then kind = "a" end
  if self.closed then return nil, "closed", prefix end
  return run(receive_impl, self, kind, n, prefix)
end

local function send_impl(self, data, i, j)
  local t0 = now()
  local piece = (i == 1 and j == #data) and data or sub(data, i, j)
  local ms = wait_ms(self, t0)
  local ok, msg, code = await_for(self.stream:write(piece), ms)
  if ok == TIMEOUT then
    -- the write stays queued and goes out in order: every byte was handed over
    self.nsent = self.nsent + #piece
    return nil, "timeout", j
  end
  if ok then
    self.nsent = self.nsent + #piece
    return j, nil, nil
  end
  return nil, errstr(msg, code), i - 1
end

function methods:send(data, i, j)
  if i == nil and j == nil and type(data) == "string" and getmetatable(self) == TCP_CLIENT and
      self.block < 0 and self.total < 0 and not (self.closed or self.wshut) and current() then
    -- the common case: the whole string, no limit, in a task
    local ok, msg, code = self.stream:write(data):await()
    if ok then
      self.nsent = self.nsent + #data
      return #data, nil, nil
    end
    return nil, errstr(msg, code), 0
  end
  check(self, "any", "tcp:send")
  if is_udp(self) then return self:_udp_send(data, i) end
  if getmetatable(self) ~= TCP_CLIENT then
    raise(format("tcp:send: argument #1 must be a tcp{client} object (got %s)", tname(self)))
  end
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then argerr("tcp:send", 2, "a string", data) end
  local size = #data
  local start, stop = 1, -1
  if i ~= nil then
    start = tonum(i)
    if not start then argerr("tcp:send", 3, "a number (the first byte) or nil", i) end
    start = trunc(start)
  end
  if j ~= nil then
    stop = tonum(j)
    if not stop then argerr("tcp:send", 4, "a number (the last byte) or nil", j) end
    stop = trunc(stop)
  end
  if start < 0 then start = size + start + 1 end
  if stop < 0 then stop = size + stop + 1 end
  if start < 1 then start = 1 end
  if stop > size then stop = size end
  if self.closed or not self.stream or self.wshut then return nil, "closed", start - 1 end
  if start > stop then return start - 1, nil, nil end
  return run(send_impl, self, data, start, stop)
end

-- Options --------------------------------------------------------------------

local BOOL_OPTS = {
  ["tcp-nodelay"] = true, keepalive = true, reuseaddr = true, reuseport = true,
  broadcast = true, dontroute = true, ["ipv6-v6only"] = true, ["ip-multicast-loop"] = true,
  ["ipv6-multicast-loop"] = true, ["tcp-keepidle"] = false, ["tcp-keepcnt"] = false,
  ["tcp-keepintvl"] = false,
}

local KNOWN_OPTS = { linger = true, ["ip-multicast-ttl"] = true, ["ipv6-unicast-hops"] = true,
  ["ipv6-multicast-hops"] = true, ["ip-add-membership"] = true, ["ip-drop-membership"] = true,
  ["ip-multicast-if"] = true }

-- apply what setoption recorded to the live stream
local function apply_opt(self, name, value)
  local s = self.stream
  if s then
    if name == "tcp-nodelay" then
      s:set_nodelay(value)
    elseif name == "keepalive" then
      s:set_keepalive(value, self.opts["tcp-keepidle"])
    elseif name == "tcp-keepidle" then
      if self.opts.keepalive then s:set_keepalive(true, value) end
    end
  end
  local u = self.udp
  if u then
    if name == "broadcast" then
      u:set_broadcast(value)
    elseif name == "ip-multicast-ttl" then
      u:set_multicast_ttl(value)
    elseif name == "ip-multicast-loop" then
      u:set_multicast_loop(value)
    elseif name == "ip-add-membership" then
      u:join_group(value.multiaddr, value.interface ~= "0.0.0.0" and value.interface or nil)
    elseif name == "ip-drop-membership" then
      u:leave_group(value.multiaddr, value.interface ~= "0.0.0.0" and value.interface or nil)
    end
  end
end

function methods:setoption(name, value)
  check(self, "any", "tcp:setoption")
  local fname = is_udp(self) and "udp:setoption" or "tcp:setoption"
  if type(name) ~= "string" then argerr(fname, 2, "an option name", name) end
  if BOOL_OPTS[name] then
    if type(value) ~= "boolean" then argerr(fname, 3, "a boolean", value) end
  elseif BOOL_OPTS[name] == false or name == "ip-multicast-ttl" or name == "ipv6-unicast-hops"
      or name == "ipv6-multicast-hops" then
    local v = tonum(value)
    if not v then argerr(fname, 3, "a number", value) end
    value = trunc(v)
    if name == "tcp-keepidle" and (value < 1 or value > 32767) then
      raise(format("%s: argument #3 must be 1 to 32767 seconds (got %s)", fname, tostring(value)))
    end
  elseif name == "linger" then
    if type(value) ~= "table" or type(value.on) ~= "boolean" or tonum(value.timeout) == nil then
      argerr(fname, 3, "a table {on = boolean, timeout = seconds}", value)
    end
    value = { on = value.on, timeout = trunc(tonum(value.timeout)) }
  elseif name == "ip-add-membership" or name == "ip-drop-membership" then
    if type(value) ~= "table" or type(value.multiaddr) ~= "string" or
        type(value.interface) ~= "string" then
      argerr(fname, 3, "a table {multiaddr = address, interface = address}", value)
    end
  else
    raise(format("%s: argument #2 must be a supported option (got '%s')", fname, name))
  end
  if self.closed then return nil, "setsockopt failed" end
  self.opts[name] = value
  local ok, err = pcall(apply_opt, self, name, value)
  if not ok then return nil, errstr(err) end
  return 1
end

function methods:getoption(name)
  check(self, "any", "tcp:getoption")
  local fname = is_udp(self) and "udp:getoption" or "tcp:getoption"
  if type(name) ~= "string" then argerr(fname, 2, "an option name", name) end
  if self.closed then return nil, "getsockopt failed" end
  local v = self.opts[name]
  if v == nil then
    if name == "tcp-nodelay" then
      v = self.stream ~= nil -- cfuture's connections start with TCP_NODELAY on
    elseif name == "reuseaddr" then
      v = self.listener ~= nil -- libuv binds listeners with SO_REUSEADDR
    elseif BOOL_OPTS[name] then
      v = false
    elseif name == "linger" then
      v = { on = false, timeout = 0 }
    elseif name == "tcp-keepidle" then
      v = 60
    elseif BOOL_OPTS[name] == nil and not KNOWN_OPTS[name] then
      raise(format("%s: argument #2 must be a supported option (got '%s')", fname, name))
    end
  end
  if type(v) == "table" then
    local c = {}
    for k, x in pairs(v) do c[k] = x end
    v = c
  end
  return v
end

-- Timeouts, stats ----------------------------------------------------------------

function methods:settimeout(t, mode)
  check(self, "any", "tcp:settimeout")
  local fname = is_udp(self) and "udp:settimeout" or "tcp:settimeout"
  local v = -1
  if t ~= nil then
    v = tonum(t)
    if not v or v ~= v then argerr(fname, 2, "a number of seconds or nil", t) end
  end
  if mode == nil or mode == "b" then
    self.block = v
  elseif mode == "t" or mode == "r" then
    self.total = v
  else
    raise(format("%s: argument #3 must be 'b' or 't' (got %s)", fname,
      type(mode) == "string" and ("'" .. mode .. "'") or tname(mode)))
  end
  return 1
end

function methods:gettimeout()
  check(self, "any", "tcp:gettimeout")
  return self.block, self.total
end

function methods:getstats()
  check(self, "any", "tcp:getstats")
  return self.nrecv, self.nsent, (now() - self.birthday) / 1000
end

function methods:setstats(received, sent, age)
  check(self, "any", "tcp:setstats")
  if received ~= nil then
    local v = tonum(received)
    if not v then argerr("tcp:setstats", 2, "a number of bytes or nil", received) end
    self.nrecv = trunc(v)
  end
  if sent ~= nil then
    local v = tonum(sent)
    if not v then argerr("tcp:setstats", 3, "a number of bytes or nil", sent) end
    self.nsent = trunc(v)
  end
  if age ~= nil then
    local v = tonum(age)
    if not v then argerr("tcp:setstats", 4, "a number of seconds or nil", age) end
    self.birthday = now() - v * 1000
  end
  return 1
end

function methods:dirty()
  check(self, "any", "tcp:dirty")
  if self.rpos <= #self.rbuf then return true end
  if self.dgrams and #self.dgrams > 0 then return true end
  local s = self.stream
  if s and not self.closed then return s:buffered() > 0 end
  return false
end

-- The descriptor under a stream, listener or UDP socket, found through
-- /proc (Linux): the socket's inode in /proc/net/{tcp,tcp6,udp,udp6} by its
-- addresses, then the fd that links to it. Done once per socket.
local function hexaddr(ip, port)
  local h
  if is_ipv4(ip) then
    local a, b, c, d = match(ip, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    h = format("%02X%02X%02X%02X", tonumber(d), tonumber(c), tonumber(b), tonumber(a))
  else
    return nil -- IPv6 rows are matched by port only
  end
  return h .. format(":%04X", port)
end

-- sl, local, remote, st, queues, tr, retrnsmt, uid, timeout, inode
local PROC_ROW = "^%s*%d+:%s+(%S+)%s+(%S+)" .. string.rep("%s+%S+", 6) .. "%s+(%d+)"

local function proc_inode(tables, lip, lport, rip, rport)
  local lhex = hexaddr(lip, lport)
  local rhex = rip and hexaddr(rip, rport)
  local lpsuffix = format(":%04X", lport)
  local rpsuffix = rport and format(":%04X", rport)
  for _, path in ipairs(tables) do
    local f = io.open(path)
    if f then
      f:read("*l")
      for line in f:lines() do
        local la, ra, inode = match(line, PROC_ROW)
        if la then
          local lok = lhex and la == lhex or (not lhex and sub(la, -5) == lpsuffix)
          local rok = true
          if rport then rok = rhex and ra == rhex or (not rhex and sub(ra, -5) == rpsuffix) end
          if lok and rok and inode ~= "0" then
            f:close()
            return inode
          end
        end
      end
      f:close()
    end
  end
end

local function proc_fd(inode)
  local f = io.open("/proc/self/stat")
  local pid = f and match(f:read("*a"), "^(%d+)")
  if f then f:close() end
  if not pid then return nil end
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  if not p then return nil end
  local fd
  for line in p:lines() do
    local n, ino = match(line, "(%d+) %-> socket:%[(%d+)%]")
    if n and ino == inode then fd = tonumber(n) end
  end
  p:close()
  return fd
end

local function find_fd(self)
  local inode
  if self.stream then
    local lip, lport = self.stream:local_address()
    local rip, rport = self.stream:peer_address()
    if not lip or not rip then return nil end
    inode = proc_inode({ "/proc/net/tcp", "/proc/net/tcp6" }, lip, lport, rip, rport)
  elseif self.listener then
    local lip, lport = self.listener:local_address()
    if not lip then return nil end
    inode = proc_inode({ "/proc/net/tcp", "/proc/net/tcp6" }, lip, lport, "0.0.0.0", 0)
  elseif self.udp then
    local lip, lport = self.udp:local_address()
    if not lip then return nil end
    inode = proc_inode({ "/proc/net/udp", "/proc/net/udp6" }, lip, lport)
  end
  return inode and proc_fd(inode)
end

function methods:getfd()
  check(self, "any", "tcp:getfd")
  if self.closed then return -1 end
  local h = self.stream or self.listener or self.udp
  if not h then return -1 end
  if h.fileno then return h:fileno() or -1 end
  if not self.fd then self.fd = find_fd(self) or -1 end
  return self.fd
end

function methods:setfd(fd)
  check(self, "any", "tcp:setfd")
  raise("tcp:setfd: not supported by cfuture.socket (sockets are cfuture streams, not raw fds)")
end

function methods:getfamily()
  check(self, "any", "tcp:getfamily")
  if self.family == "inet6" then return "inet6" end
  return "inet4"
end

-- Addresses ------------------------------------------------------------------

function methods:getpeername()
  check(self, "any", "tcp:getpeername")
  if self.closed then return nil, ERRORS.EBADF end
  if self.stream then
    local h, p, code = self.stream:peer_address()
    if not h then return nil, errstr(p, code) end
    return h, p, family_of(h)
  end
  if self.peer then return self.peer[1], self.peer[2], family_of(self.peer[1]) end
  return nil, ERRORS.ENOTCONN
end

function methods:getsockname()
  check(self, "any", "tcp:getsockname")
  if self.closed then return nil, ERRORS.EBADF end
  local h = self.stream or self.listener or self.udp
  if h then
    local host, port, code = h:local_address()
    if not host then return nil, errstr(port, code) end
    return host, port, family_of(host)
  end
  if self.family == "inet6" then return "::", 0, "inet6" end
  return "0.0.0.0", 0, "inet"
end

-- Connect, close, shutdown -------------------------------------------------------

local function adopt_stream(self, stream)
  self.stream = stream
  setmetatable(self, TCP_CLIENT)
  for name, value in pairs(self.opts) do pcall(apply_opt, self, name, value) end
end

local function connect_impl(self, host, port)
  local t0 = now()
  local addrs, err = resolve(host, self.family)
  if not addrs then return nil, err end
  for k = 1, #addrs do
    local ms = wait_ms(self, t0)
    if ms == 0 then ms = 1 end
    local s, msg, code = await_for(net.connect(addrs[k], port), ms)
    if s == TIMEOUT then
      err = "timeout"
      break
    end
    if s then
      if self.closed then
        s:close()
        return nil, "closed"
      end
      adopt_stream(self, s)
      self.family = family_of(addrs[k])
      return 1
    end
    err = errstr(msg, code)
  end
  return nil, err
end

function methods:connect(host, port)
  check(self, "any", "tcp:connect")
  if is_udp(self) then return self:setpeername(host, port) end
  host = check_host("tcp:connect", 2, host)
  local p, perr = check_port("tcp:connect", 3, port, "tcp")
  local mt = getmetatable(self)
  if mt == TCP_CLIENT then
    if self.closed then return nil, "closed" end
    return 1 -- LuaSocket's connect takes EISCONN for success
  end
  if mt ~= TCP_MASTER then
    raise(format("tcp:connect: argument #1 must be a tcp{master} object (got %s)", tname(self)))
  end
  if self.closed then return nil, "closed" end
  if not p then return nil, perr end
  if self.bound then return nil, "connect after bind is not supported by cfuture.socket" end
  return run(connect_impl, self, host, p)
end

function methods:close()
  check(self, "any", "tcp:close")
  if not self.closed then
    self.closed = true
    local lg = self.opts.linger
    if self.stream then
      if lg and lg.on and lg.timeout == 0 then
        self.stream:reset() -- SO_LINGER with a zero timeout: close with a reset
      else
        self.stream:close()
      end
    end
    if self.listener then self.listener:close() end
    if self.udp then self.udp:close() end
    self.rbuf, self.rpos = "", 1
    if self.pending then
      for _, c in ipairs(self.pending) do c:close() end
      self.pending = nil
    end
  end
  return 1
end

local SHUT = { receive = true, send = true, both = true }
function methods:shutdown(how)
  check(self, "client", "tcp:shutdown")
  if how == nil then how = "both" end
  if not SHUT[how] then
    raise(format("tcp:shutdown: argument #2 must be 'both', 'send' or 'receive' (got %s)",
      type(how) == "string" and ("'" .. how .. "'") or tname(how)))
  end
  if self.closed or not self.stream then return 1 end
  if how ~= "send" then self.rshut = true end
  if how ~= "receive" and not self.wshut then
    self.wshut = true
    pcall(self.stream.shutdown, self.stream)
  end
  return 1
end

-- Servers --------------------------------------------------------------------

local function listen_now(self, backlog)
  local host = self.bhost
  if host == "*" then host = self.family == "inet6" and "::" or "0.0.0.0" end
  local l, msg, code = net.listen(host, self.bport, { backlog = backlog })
  if not l then return nil, errstr(msg, code) end
  self.listener = l
  return 1
end

function methods:bind(host, port)
  check(self, "any", "tcp:bind")
  if is_udp(self) then return self:setsockname(host, port) end
  check(self, "master", "tcp:bind")
  host = check_host("tcp:bind", 2, host)
  local p, perr = check_port("tcp:bind", 3, port, "tcp")
  if self.closed then return nil, "closed" end
  if not p then return nil, perr end
  if self.bound then return nil, "Invalid argument" end
  if host ~= "*" and not is_ipv4(host) and not is_ipv6(host) then
    local addrs, err = run(resolve, host, self.family)
    if not addrs then return nil, err end
    host = addrs[1]
  end
  if host ~= "*" then
    if self.family and self.family ~= family_of(host) then return nil, ERRORS.EAI_FAMILY end
    self.family = family_of(host)
  end
  self.bhost, self.bport = host, p
  -- libuv binds and listens in one step: the socket listens from here on
  local ok, err = listen_now(self, 511)
  if not ok then return nil, err end
  self.bound = true
  return 1
end

function methods:listen(backlog)
  check(self, "master", "tcp:listen")
  if backlog ~= nil and not tonum(backlog) then
    argerr("tcp:listen", 2, "a number (the backlog) or nil", backlog)
  end
  if self.closed then return nil, "closed" end
  if not self.bound then
    -- LuaSocket's listen without bind gets an ephemeral port on all interfaces
    self.bhost, self.bport = "*", 0
    local ok, err = listen_now(self, 511)
    if not ok then return nil, err end
    self.bound = true
  end
  setmetatable(self, TCP_SERVER)
  return 1
end

local function accept_impl(self)
  local t0 = now()
  if self.pending and #self.pending > 0 then
    return table.remove(self.pending, 1)
  end
  local ms = wait_ms(self, t0)
  local c, msg, code = await_for(self.listener:accept(), ms)
  if c == TIMEOUT then return nil, "timeout" end
  if not c then return nil, errstr(msg, code) end
  return c
end

local function wrap_client(server, stream)
  local c = new(TCP_CLIENT, { family = server.family })
  adopt_stream(c, stream)
  return c
end

function methods:accept()
  check(self, "server", "tcp:accept")
  if self.closed then return nil, "closed" end
  local s, err = run(accept_impl, self)
  if not s then return nil, err end
  return wrap_client(self, s)
end

-- UDP ------------------------------------------------------------------------

local UDP_MAX = 65535
local UDP_DEFAULT = 8192

local function udp_handle(self)
  if self.udp then return self.udp end
  local host = self.family == "inet6" and "::" or "0.0.0.0"
  local u, msg, code = net.udp(host, 0)
  if not u then return nil, errstr(msg, code) end
  self.udp = u
  for name, value in pairs(self.opts) do pcall(apply_opt, self, name, value) end
  return u
end

function methods:setsockname(host, port)
  check(self, "uunconnected", "udp:setsockname")
  host = check_host("udp:setsockname", 2, host)
  local p, perr = check_port("udp:setsockname", 3, port, "udp")
  if self.closed then return nil, "closed" end
  if not p then return nil, perr end
  if self.udp then return nil, "Invalid argument" end
  if host == "*" then
    host = self.family == "inet6" and "::" or "0.0.0.0"
  elseif not is_ipv4(host) and not is_ipv6(host) then
    local addrs, err = run(resolve, host, self.family)
    if not addrs then return nil, err end
    host = addrs[1]
  end
  local u, msg, code = net.udp(host, p)
  if not u then return nil, errstr(msg, code) end
  self.udp = u
  self.family = family_of(host)
  for name, value in pairs(self.opts) do pcall(apply_opt, self, name, value) end
  return 1
end

function methods:setpeername(host, port)
  check(self, "udp", "udp:setpeername")
  host = check_host("udp:setpeername", 2, host)
  if self.closed then return nil, "closed" end
  if host == "*" and getmetatable(self) == UDP_CONNECTED then
    self.peer = nil
    setmetatable(self, UDP_UNCONNECTED)
    return 1
  end
  local p, perr = check_port("udp:setpeername", 3, port, "udp")
  if not p then return nil, perr end
  local addrs, err = run(resolve, host, self.family)
  if not addrs then return nil, err end
  self.peer = { addrs[1], p }
  self.family = self.family or family_of(addrs[1])
  setmetatable(self, UDP_CONNECTED)
  return 1
end

local function udp_size(fname, size)
  if size == nil then return UDP_DEFAULT end
  local n = tonum(size)
  if not n or n < 0 then argerr(fname, 2, "a non-negative number of bytes or nil", size) end
  n = floor(n)
  if n > UDP_MAX then n = UDP_MAX end
  return n
end

local function udp_recv_impl(self, size, from)
  local t0 = now()
  local u, err = udp_handle(self)
  if not u then return nil, err end
  local peer = self.peer
  while true do
    local d, host, port
    local q = self.dgrams
    if q and #q > 0 then
      local g = table.remove(q, 1)
      d, host, port = g[1], g[2], g[3]
    else
      local ms = wait_ms(self, t0)
      d, host, port = await_for(u:recv_from(), ms)
      if d == TIMEOUT then return nil, "timeout" end
      if not d then return nil, errstr(host, port) end
    end
    -- a connected socket hears only its peer, as the kernel filters
    if not peer or (host == peer[1] and port == peer[2]) then
      if #d > size then d = sub(d, 1, size) end
      self.nrecv = self.nrecv + #d
      if from then return d, host, port end
      return d
    end
  end
end

function methods:_udp_receive(size, fname)
  local n = udp_size(fname, size)
  if self.closed then return nil, "closed" end
  return run(udp_recv_impl, self, n, false)
end

function methods:receivefrom(size)
  check(self, "uunconnected", "udp:receivefrom")
  local n = udp_size("udp:receivefrom", size)
  if self.closed then return nil, "closed" end
  return run(udp_recv_impl, self, n, true)
end

local function udp_send_impl(self, data, host, port)
  local t0 = now()
  local u, err = udp_handle(self)
  if not u then return nil, err end
  local addrs
  addrs, err = resolve(host, self.family)
  if not addrs then return nil, err end
  local ms = wait_ms(self, t0)
  local ok, msg, code = await_for(u:send_to(data, addrs[1], port), ms)
  if ok == TIMEOUT then return nil, "timeout" end
  if not ok then return nil, errstr(msg, code) end
  self.nsent = self.nsent + #data
  return #data
end

function methods:_udp_send(data)
  if getmetatable(self) ~= UDP_CONNECTED then
    raise(format("udp:send: argument #1 must be a udp{connected} object (use sendto; got %s)",
      tname(self)))
  end
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then argerr("udp:send", 2, "a string", data) end
  if self.closed then return nil, "closed" end
  return run(udp_send_impl, self, data, self.peer[1], self.peer[2])
end

function methods:sendto(data, host, port)
  check(self, "uunconnected", "udp:sendto")
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then argerr("udp:sendto", 2, "a string", data) end
  host = check_host("udp:sendto", 3, host)
  local p, perr = check_port("udp:sendto", 4, port, "udp")
  if self.closed then return nil, "closed" end
  if not p then return nil, perr end
  return run(udp_send_impl, self, data, host, p)
end

-- Constructors -------------------------------------------------------------------

local function tcp_of(family)
  return function() return new(TCP_MASTER, { family = family }) end
end
M.tcp = tcp_of(nil)
M.tcp4 = tcp_of("inet")
M.tcp6 = tcp_of("inet6")

local function udp_of(family)
  return function() return new(UDP_UNCONNECTED, { family = family }) end
end
M.udp = udp_of(nil)
M.udp4 = udp_of("inet")
M.udp6 = udp_of("inet6")

-- socket.connect(address, port [, laddress [, lport [, family]]])
function M.connect(address, port, laddress, lport, family)
  address = check_host("socket.connect", 1, address)
  local p, perr = check_port("socket.connect", 2, port, "tcp")
  if family ~= nil and family ~= "inet" and family ~= "inet6" and family ~= "unspec" then
    raise(format("socket.connect: argument #5 must be 'inet', 'inet6' or 'unspec' (got %s)",
      tostring(family)))
  end
  if laddress ~= nil or lport ~= nil then
    return nil, "a local address is not supported by cfuture.socket"
  end
  if not p then return nil, perr end
  local sock = new(TCP_MASTER, { family = family ~= "unspec" and family or nil })
  local ok, err = run(connect_impl, sock, address, p)
  if not ok then return nil, err end
  return sock
end

function M.connect4(address, port, laddress, lport)
  return M.connect(address, port, laddress, lport, "inet")
end

function M.connect6(address, port, laddress, lport)
  return M.connect(address, port, laddress, lport, "inet6")
end

-- socket.bind(host, port [, backlog]): a tcp{server}
function M.bind(host, port, backlog)
  host = check_host("socket.bind", 1, host)
  check_port("socket.bind", 2, port, "tcp")
  if backlog ~= nil and not tonum(backlog) then
    argerr("socket.bind", 3, "a number (the backlog) or nil", backlog)
  end
  local family
  if is_ipv6(host) then family = "inet6" end
  local sock = new(TCP_MASTER, { family = family })
  sock:setoption("reuseaddr", true)
  local ok, err = sock:bind(host, port)
  if not ok then
    sock:close()
    return nil, err
  end
  ok, err = sock:listen(backlog)
  if not ok then
    sock:close()
    return nil, err
  end
  return sock
end

-- Time ---------------------------------------------------------------------------

-- Wall-clock seconds with sub-second steps: the clock is read once (date(1),
-- at the first call) and then advanced by cfuture's monotonic clock, so that
-- differences are exact and the time never steps back.
local wall_base
function M.gettime()
  if not wall_base then
    local p = io.popen("date +%s.%N 2>/dev/null")
    local t = p and tonumber(p:read("*l") or "")
    if p then p:close() end
    wall_base = (t or os.time()) - now() / 1000
  end
  return wall_base + now() / 1000
end

function M.sleep(seconds)
  local n = tonum(seconds)
  if not n or n ~= n then argerr("socket.sleep", 1, "a number of seconds", seconds) end
  if n <= 0 then n = 0 end
  run(function() sleep(to_ms(n)):await() end)
end

-- DNS --------------------------------------------------------------------------

local dns = {}
M.dns = dns

local function resolved(name, ips) return { name = name, alias = {}, ip = ips } end

function dns.toip(address)
  address = check_host("socket.dns.toip", 1, address)
  if is_ipv4(address) then return address, resolved(address, { address }) end
  return run(function()
    local list, msg, code = net.lookup(address, "inet"):await()
    if not list or #list == 0 then return nil, hosterr(msg, code or "EAI_NONAME") end
    return list[1], resolved(address, list)
  end)
end

function dns.tohostname(address)
  address = check_host("socket.dns.tohostname", 1, address)
  return run(function()
    local ips
    if is_ipv4(address) or is_ipv6(address) then
      ips = { address }
    else
      local list, msg, code = net.lookup(address, "inet"):await()
      if not list or #list == 0 then return nil, hosterr(msg, code or "EAI_NONAME") end
      ips = list
    end
    local name, msg, code = net.reverse(ips[1]):await()
    if not name then return nil, hosterr(msg, code) end
    return name, resolved(name, ips)
  end)
end

function dns.gethostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("*l")
  if f then f:close() end
  if not name or name == "" then
    local p = io.popen("hostname 2>/dev/null")
    name = p and p:read("*l")
    if p then p:close() end
  end
  if not name then return nil, "unknown error" end
  return name
end

function dns.getaddrinfo(host)
  host = check_host("socket.dns.getaddrinfo", 1, host)
  return run(function()
    local list, msg, code = net.lookup(host, "any"):await()
    if not list then return nil, errstr(msg, code) end
    local out = {}
    for k, a in ipairs(list) do out[k] = { family = family_of(a), addr = a } end
    return out
  end)
end

function dns.getnameinfo(host, serv)
  if host == nil and serv == nil then
    raise("socket.dns.getnameinfo: host and serv cannot be both nil")
  end
  if host ~= nil then host = check_host("socket.dns.getnameinfo", 1, host) end
  return run(function()
    local names
    if host then
      local ips = { host }
      if not is_ipv4(host) and not is_ipv6(host) then
        local list, msg, code = net.lookup(host, "any"):await()
        if not list then return nil, errstr(msg, code) end
        ips = list
      end
      names = {}
      for k, ip in ipairs(ips) do
        local n = net.reverse(ip):await()
        names[k] = n or ip
      end
    end
    if serv ~= nil then
      local p = tonum(serv) or service_port(tostring(serv), "tcp")
      if not p then return nil, ERRORS.EAI_SERVICE end
      local sname = tostring(floor(p))
      return names, sname
    end
    return names
  end)
end

-- select -------------------------------------------------------------------------

-- What can be waited on for reading, and how its result is kept for the
-- next receive/accept.
local function read_future(sock)
  if sock.stream then
    return sock.stream:read(CHUNK), function(d, msg, code)
      if d then
        push_back(sock, d)
      elseif msg == nil then
        sock.eof = true
      else
        sock.rerr = errstr(msg, code)
      end
    end
  elseif sock.listener then
    return sock.listener:accept(), function(c)
      if c then
        sock.pending = sock.pending or {}
        sock.pending[#sock.pending + 1] = c
      end
    end
  elseif sock.udp then
    return sock.udp:recv_from(), function(d, host, port)
      if d then
        sock.dgrams = sock.dgrams or {}
        sock.dgrams[#sock.dgrams + 1] = { d, host, port }
      end
    end
  end
end

local function ready_now(sock)
  if sock.closed then return true end
  if sock.eof or sock.rerr or sock.rshut then return true end
  if sock.pending and #sock.pending > 0 then return true end
  return sock:dirty()
end

local function collect(fname, n, t)
  local list = {}
  if t == nil then return list end
  if type(t) ~= "table" then argerr(fname, n, "a table of sockets or nil", t) end
  local seen = {}
  for _, s in ipairs(t) do
    if not KIND.any[getmetatable(s)] then
      argerr(fname, n, "a table of cfuture.socket objects", s)
    end
    if not seen[s] then
      seen[s] = true
      list[#list + 1] = s
    end
  end
  return list
end

local function assoc(list)
  local t = {}
  for k, s in ipairs(list) do
    t[k] = s
    t[s] = k
  end
  return t
end

local function select_impl(recvt, sendt, ms)
  local r, w = {}, {}
  for _, s in ipairs(recvt) do if ready_now(s) then r[#r + 1] = s end end
  -- cfuture queues writes: a connected socket can always be written to
  for _, s in ipairs(sendt) do
    if s.stream or getmetatable(s) == UDP_UNCONNECTED or getmetatable(s) == UDP_CONNECTED or
        s.closed then
      w[#w + 1] = s
    end
  end
  if #r > 0 or #w > 0 then return assoc(r), assoc(w) end
  local futs, keep, socks = {}, {}, {}
  for _, s in ipairs(recvt) do
    if getmetatable(s) == UDP_UNCONNECTED or getmetatable(s) == UDP_CONNECTED then
      udp_handle(s)
    end
    local f, k = read_future(s)
    if f then
      futs[#futs + 1] = f
      keep[#keep + 1] = k
      socks[#socks + 1] = s
    end
  end
  if #futs == 0 then
    if ms then sleep(ms):await() end
    if not ms then raise("socket.select: nothing to wait for and no timeout") end
    return {}, {}, "timeout"
  end
  local all = cfselect(unpack(futs))
  local res = { await_for(all, ms) }
  if res[1] == TIMEOUT then return {}, {}, "timeout" end
  local i = res[1]
  keep[i](res[2], res[3], res[4])
  return assoc({ socks[i] }), {}
end

-- socket.select(recvt, sendt [, timeout]) over cfuture.socket objects only.
function M.select(recvt, sendt, t)
  local rl = collect("socket.select", 1, recvt)
  local wl = collect("socket.select", 2, sendt)
  local ms
  if t ~= nil then
    local v = tonum(t)
    if not v then argerr("socket.select", 3, "a number of seconds or nil", t) end
    if v >= 0 then ms = to_ms(v) end
  end
  if not ms and #rl == 0 and #wl == 0 then
    raise("socket.select: nothing to wait for and no timeout")
  end
  return run(select_impl, rl, wl, ms)
end

-- protect / newtry / try / skip, in Lua so that they can be yielded through
-- (LuaSocket's C protect cannot on LuaJIT) --------------------------------------------

local ESCAPE = { __tostring = function(e) return tostring(e[1]) end }

function M.newtry(finalizer)
  if finalizer ~= nil and type(finalizer) ~= "function" then
    argerr("socket.newtry", 1, "a function or nil", finalizer)
  end
  return function(...)
    if (...) then return ... end
    if finalizer then finalizer() end
    error(setmetatable({ (select(2, ...)) }, ESCAPE), 0)
  end
end

local function unwrap(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "table" and getmetatable(e) == ESCAPE then return nil, e[1] end
  error(e, 0)
end

function M.protect(f)
  if type(f) ~= "function" then argerr("socket.protect", 1, "a function", f) end
  return function(...) return unwrap(pcall(f, ...)) end
end

M.try = M.newtry()

function M.skip(d, ...)
  local n = tonum(d)
  if not n then argerr("socket.skip", 1, "a number", d) end
  return select(floor(n) + 1, ...)
end

-- What socket.lua adds to LuaSocket's core: choose, sources and sinks ---------------

function M.choose(tbl)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then
      name, opt1, opt2 = "default", name, opt1
    end
    local f = tbl[name or "nil"]
    if not f then
      error("unknown key (" .. tostring(name) .. ")", 3)
    else
      return f(opt1, opt2)
    end
  end
end

local sourcet, sinkt = {}, {}
M.sourcet, M.sinkt = sourcet, sinkt

local function fdtable(sock)
  return {
    getfd = function() return sock:getfd() end,
    dirty = function() return sock:dirty() end,
  }
end

sinkt["close-when-done"] = function(sock)
  return setmetatable(fdtable(sock), {
    __call = function(_, chunk)
      if not chunk then
        sock:close()
        return 1
      else
        return sock:send(chunk)
      end
    end,
  })
end

sinkt["keep-open"] = function(sock)
  return setmetatable(fdtable(sock), {
    __call = function(_, chunk)
      if chunk then return sock:send(chunk) else return 1 end
    end,
  })
end

sinkt["default"] = sinkt["keep-open"]
M.sink = M.choose(sinkt)

sourcet["by-length"] = function(sock, length)
  return setmetatable(fdtable(sock), {
    __call = function()
      if length <= 0 then return nil end
      local size = min(M.BLOCKSIZE, length)
      local chunk, err = sock:receive(size)
      if err then return nil, err end
      length = length - #chunk
      return chunk
    end,
  })
end

sourcet["until-closed"] = function(sock)
  local done
  return setmetatable(fdtable(sock), {
    __call = function()
      if done then return nil end
      local chunk, err, partial = sock:receive(M.BLOCKSIZE)
      if not err then
        return chunk
      elseif err == "closed" then
        sock:close()
        done = 1
        return partial
      else
        return nil, err
      end
    end,
  })
end

sourcet["default"] = sourcet["until-closed"]
M.source = M.choose(sourcet)

-- install / uninstall ------------------------------------------------------------

-- LuaSocket's Lua modules capture `require "socket"` when loaded: those
-- already loaded are dropped so that the next require loads them on this
-- module.
local DEPENDENTS = { "socket.http", "socket.tp", "socket.smtp", "socket.ftp", "socket.url",
  "socket.headers", "ltn12", "mime" }
local saved

function M.install()
  if package.loaded.socket == M then return M end
  saved = { socket = package.loaded.socket, core = package.loaded["socket.core"] }
  for _, name in ipairs(DEPENDENTS) do
    if name ~= "ltn12" and name ~= "mime" then package.loaded[name] = nil end
  end
  package.loaded.socket = M
  package.loaded["socket.core"] = M
  return M
end

function M.uninstall()
  if package.loaded.socket ~= M then return end
  package.loaded.socket = saved and saved.socket
  package.loaded["socket.core"] = saved and saved.core
  for _, name in ipairs(DEPENDENTS) do
    if name ~= "ltn12" and name ~= "mime" then package.loaded[name] = nil end
  end
  M.http, M.url, M.tp, M.smtp, M.ftp, M.headers = nil, nil, nil, nil, nil, nil
  saved = nil
end

M._methods = methods
M._classes = classes

return M
