-- cfuture.websocket: WebSocket (RFC 6455) clients and servers on cfuture
-- streams. The framing is C (src/lua/ws.c, cf._ws): frames are encoded in
-- one string and decoded incrementally from whatever the stream delivers,
-- with every protocol rule checked there. This file does the handshakes,
-- message reassembly, the control frames and the close handshake.
--
-- Ground rules
-- - No background task: the connection is driven by whoever awaits it.
--   receive() reads, answers pings and a peer's close; close() sends a
--   close frame and waits for the peer's, reading itself unless a receive
--   is under way (then it waits for that receive to see the close).
-- - One receive at a time (a second raises); sends may come from any task,
--   each frame is one stream write, so frames never interleave.
-- - A frame written is one string: header and (masked) payload together
--   (a fragmented message: all its frames in one string).
-- - Reads go through one stream:chunks iterator per WebSocket: the same read
--   future every time. Its failures are raised; the stream keeps them, so a
--   read after one gives the failure with its code.
-- - Failures are nil, message, code: "ECLOSED" (closed by a close
--   handshake), "EPROTO" (a protocol error or a bad handshake), "EILSEQ"
--   (invalid UTF-8), "EMSGSIZE" (over the message limit), "EOF" (the
--   connection ended without a close frame) and the stream's own codes.
--   After the first failure every receive repeats it.
local cf = require "cfuture"
local C = cf._ws
local new_parser = cf._http.parser

local frame, new_decoder, valid_utf8, valid_close_code = C.frame, C.decoder, C.valid_utf8,
  C.valid_close_code
local async, defer, timeout, now = cf.async, cf.defer, cf.timeout, cf.now
local type, tostring, error, pairs, ipairs, setmetatable, getmetatable, rawget, select, pcall =
  type, tostring, error, pairs, ipairs, setmetatable, getmetatable, rawget, select, pcall
local concat, schar, floor = table.concat, string.char, math.floor

local M = {}

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local DEFAULT_TIMEOUT = 30000 -- ms for connect's whole handshake
local DEFAULT_CLOSE_TIMEOUT = 5000 -- ms to wait for the peer's close frame, then its TCP close
local DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
local MAX_HEAD = 16384 -- bytes of a handshake response head

-- close code of a protocol failure -> the failure's code
local FAIL_CODE = { [1002] = "EPROTO", [1007] = "EILSEQ", [1009] = "EMSGSIZE" }

local WS = { __name = "cfuture.WebSocket" }
WS.__index = WS
local objects = setmetatable({}, { __mode = "k" }) -- the WebSockets this file made

local function what_is(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

local function check_self(self, fname)
  if not objects[self] then
    error(("%s: argument #1 must be a WebSocket (call it with a colon; got %s)"):format(fname,
      what_is(self)), 3)
  end
end

-- A future ready with the given values (a refused send, a close already done).
local unpack = table.unpack or unpack
local function ready(...)
  local n, v = select("#", ...), { ... }
  return cf.future(function() return unpack(v, 1, n) end)
end

local function close_payload(code, reason)
  if not code then return "" end
  return schar(floor(code / 256), code % 256) .. (reason or "")
end

-- ---- options -----------------------------------------------------------------

local COMMON = { max_message = true, close_timeout = true, on_ping = true, on_pong = true }
local CONNECT = { headers = true, protocols = true, timeout = true, tls = true, origin = true }
local ACCEPT = { headers = true, protocols = true }
local WRAP = { side = true, leftover = true, protocol = true }

local function check_opts(opts, fname, argn, extra)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: argument #%d must be an options table (got %s)"):format(fname, argn, what_is(opts)), 3)
  end
  for k in pairs(opts) do
    if not COMMON[k] and not extra[k] then
      error(("%s: unknown option %s"):format(fname, tostring(k)), 3)
    end
  end
  local function num(name, lo, hi)
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v < lo or v > hi) then
      error(("%s: option %s must be a number from %s to %s (got %s)"):format(fname, name,
        tostring(lo), tostring(hi), tostring(v)), 4)
    end
  end
  num("max_message", 0, 2 ^ 53)
  if opts.max_message and opts.max_message % 1 ~= 0 then
    error(("%s: option max_message must be an integer (got %s)"):format(fname,
      tostring(opts.max_message)), 3)
  end
  num("close_timeout", 0, 1e15)
  num("timeout", 0, 1e15)
  for _, name in ipairs({ "on_ping", "on_pong" }) do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      error(("%s: option %s must be a function (got %s)"):format(fname, name, what_is(opts[name])), 3)
    end
  end
  return opts
end

-- A header value or name: a string without CR, LF or NUL (header injection).
local function check_header_text(s, fname, what)
  if type(s) ~= "string" then
    error(("%s: %s must be a string (got %s)"):format(fname, what, what_is(s)), 4)
  end
  if s:find("[\r\n%z]") then
    error(("%s: %s contains CR, LF or NUL"):format(fname, what), 4)
  end
  return s
end

-- opts.headers as a list of name, value: a table name -> value (or a list
-- of values), or anything with an each() iterator (cfuture.http.Headers).
local function header_list(h, fname)
  local out = {}
  if h == nil then return out end
  if type(h) ~= "table" and not (getmetatable(h) and h.each) then
    error(("%s: option headers must be a table (got %s)"):format(fname, what_is(h)), 3)
  end
  if type(h.each) == "function" then
    for name, value in h:each() do
      out[#out + 1] = check_header_text(name, fname, "a header name")
      out[#out + 1] = check_header_text(value, fname, "header " .. name)
    end
    return out
  end
  for name, value in pairs(h) do
    check_header_text(name, fname, "a header name")
    if type(value) == "table" then
      for _, v in ipairs(value) do
        out[#out + 1] = name
        out[#out + 1] = check_header_text(v, fname, "header " .. name)
      end
    else
      out[#out + 1] = name
      out[#out + 1] = check_header_text(value, fname, "header " .. name)
    end
  end
  return out
end

local function check_protocols(p, fname)
  if p == nil then return nil end
  if type(p) == "string" then p = { p } end
  if type(p) ~= "table" then
    error(("%s: option protocols must be a list of strings (got %s)"):format(fname, what_is(p)), 3)
  end
  for i, v in ipairs(p) do
    if type(v) ~= "string" or not v:match("^[!#$%%&'*+%-.^_`|~%w]+$") then
      error(("%s: option protocols[%d] must be a token (got %s)"):format(fname, i, tostring(v)), 3)
    end
  end
  return p
end

-- ---- the connection object ---------------------------------------------------

-- state: "open"; "closing" (our close frame is sent, the peer's awaited);
-- "closed" (the close handshake is over or the connection failed).
local function new(stream, side, leftover, opts)
  local self = setmetatable({
    side = side,
    protocol = opts.protocol,
    state = "open",
    close_code = nil, -- the peer's close code, once it came (1005: none given)
    close_reason = nil,
    _stream = stream,
    _dec = new_decoder(side, opts.max_message or DEFAULT_MAX_MESSAGE),
    _mask = side == "client",
    _input = leftover ~= "" and leftover or nil, -- bytes read before the framing started
    _next_chunk = stream:chunks(), -- every read awaits this one iterator's future
    _frags = nil, -- the fragments of the message under way
    _frag_kind = nil,
    _receiving = false,
    _err = nil, -- the sticky failure: { message, code }
    _closed = nil, -- a notify, made when close() waits for a receive to finish
    _close_timeout = opts.close_timeout or DEFAULT_CLOSE_TIMEOUT,
    _on_ping = opts.on_ping,
    _on_pong = opts.on_pong,
  }, WS)
  objects[self] = true
  return self
end

local function closed_result(self)
  local e = self._err
  if e then return nil, e[1], e[2], self.close_code, self.close_reason end
  return nil, "websocket: the connection is closed", "ECLOSED", self.close_code, self.close_reason
end

-- The end of the TCP connection once the close handshake is over (or
-- failed). The server closes first (RFC 6455 7.1.1); a client waits for
-- that, up to the close timeout, so the server gets the TIME_WAIT. Reading
-- until the end also avoids a reset that would throw away our last frame.
local function finish(self, wait)
  local s = self._stream
  if s:is_closed() then return end
  if wait then
    pcall(function()
      s:shutdown()
      local deadline = now() + self._close_timeout
      while true do
        local left = deadline - now()
        if left <= 0 then break end
        local data = timeout(left, s:read()):await()
        if not data then break end
      end
    end)
  end
  if not s:is_closed() then s:close() end
  if self._closed then self._closed:notify_all() end
end

-- Fail the connection: send a close frame with the code (if we have not
-- sent one), then end the TCP connection. Returns the failure.
local function fail(self, message, close_code, code)
  if not self._err then
    self._err = { message, code or FAIL_CODE[close_code] or "EPROTO" }
    local was = self.state
    self.state = "closed"
    if close_code and was == "open" and not self._stream:is_closed() then
      pcall(function()
        self._stream:write(frame(OP_CLOSE, close_payload(close_code, message:sub(1, 120)), true,
          self._mask)):await()
      end)
    end
    finish(self, close_code ~= nil)
  end
  return closed_result(self)
end

-- The peer's close frame came: answer it (echoing its code and reason) unless ours
-- went first, then end the connection.
local function peer_closed(self, code, reason)
  self.close_code = code or 1005
  self.close_reason = reason
  local was = self.state
  self.state = "closed"
  if was == "open" then
    pcall(function()
      self._stream:write(frame(OP_CLOSE, close_payload(code, reason), true, self._mask)):await()
    end)
  end
  finish(self, self.side == "client")
end

-- Read until a complete data message (returned as data, kind) or the end
-- (nil, message, code). Control frames are handled on the way.
local function pump(self)
  local dec, stream = self._dec, self._stream
  local input = self._input
  self._input = nil
  while true do
    if self.state == "closed" then return closed_result(self) end
    local op, fin, payload, code, reason = dec:next(input)
    input = nil
    if op == nil then
      if fin then return fail(self, fin, payload) end
      local ok, data = pcall(self._next_chunk)
      local err, ecode
      if not ok then
        if self.state == "closed" then return closed_result(self) end
        if stream:is_closed() then
          err, ecode = tostring(data), "ECANCELED"
        else -- a read failure is sticky on the stream: a read gives it with its code
          local again, e, c = stream:read():await()
          err, ecode = e or tostring(data), c or "EIO"
          if again then input = again end -- not a read failure after all: go on
        end
        data = nil
        if input then goto continue end
      end
      if not data then
        if self.state == "closed" then return closed_result(self) end
        if err then
          self.close_code = 1006
          return fail(self, "websocket: " .. tostring(err), nil, ecode)
        end
        self.close_code = 1006
        return fail(self, "websocket: the connection ended without a close frame", nil, "EOF")
      end
      input = data
      ::continue::
    elseif op == OP_TEXT or op == OP_BINARY then
      if fin then return payload, op == OP_TEXT and "text" or "binary" end
      self._frags, self._frag_kind = { payload }, op == OP_TEXT and "text" or "binary"
    elseif op == OP_CONT then
      local frags = self._frags
      frags[#frags + 1] = payload
      if fin then
        self._frags = nil
        return concat(frags), self._frag_kind
      end
    elseif op == OP_PING then
      if self.state == "open" then
        pcall(function() stream:write(frame(OP_PONG, payload, true, self._mask)):await() end)
      end
      if self._on_ping then self._on_ping(payload) end
    elseif op == OP_PONG then
      if self._on_pong then self._on_pong(payload) end
    else -- OP_CLOSE
      peer_closed(self, code, reason)
      return closed_result(self)
    end
  end
end

local receive = async(function(self)
  if self._receiving then
    error("websocket:receive: another task is already receiving on this WebSocket", 0)
  end
  self._receiving = true
  defer(function()
    self._receiving = false
    if self.state == "closed" then
      -- cancelled while answering a close or lingering for the end: close now
      if not self._stream:is_closed() then self._stream:close() end
      if self._closed then self._closed:notify_all() end
    end
  end)
  return pump(self)
end)

--- ws:receive() -> future of data, "text" | "binary", or nil, message, code
function WS:receive()
  check_self(self, "websocket:receive")
  return receive(self)
end

--- for data, kind in ws:messages() do ... end (inside a task): ends after a
--- close handshake; any other failure is raised.
function WS:messages()
  check_self(self, "websocket:messages")
  return function()
    local data, kind, code = receive(self):await()
    if data then return data, kind end
    if code == "ECLOSED" then return nil end
    error(kind, 0)
  end
end

local function check_data(data, fname)
  if type(data) ~= "string" then
    error(("%s: argument #1 must be a string (got %s)"):format(fname, what_is(data)), 3)
  end
end

-- A message given as a list of fragments: its frames, in one string.
local function fragments(self, list, op)
  local n = #list
  if n == 0 then error("websocket:send: argument #1 must be a string or a non-empty list of strings", 3) end
  local out = {}
  for i = 1, n do
    local piece = list[i]
    if type(piece) ~= "string" then
      error(("websocket:send: argument #1[%d] must be a string (got %s)"):format(i, what_is(piece)), 3)
    end
    out[i] = frame(i == 1 and op or OP_CONT, piece, i == n, self._mask)
  end
  if op == OP_TEXT and not valid_utf8(concat(list)) then
    error("websocket:send: argument #1 is not valid UTF-8 (send it as \"binary\")", 3)
  end
  return concat(out)
end

--- ws:send(data [, "text" | "binary"]) -> future of true, or nil, message, code
--- data: a string, or a list of strings sent as the fragments of one message
function WS:send(data, kind)
  check_self(self, "websocket:send")
  local list = type(data) == "table" and getmetatable(data) == nil
  if not list then check_data(data, "websocket:send") end
  local op
  if kind == nil or kind == "text" then
    op = OP_TEXT
    if not list and not valid_utf8(data) then
      error("websocket:send: argument #1 is not valid UTF-8 (send it as \"binary\")", 2)
    end
  elseif kind == "binary" then
    op = OP_BINARY
  else
    error(("websocket:send: argument #2 must be \"text\" or \"binary\" (got %s)"):format(
      type(kind) == "string" and '"' .. kind .. '"' or what_is(kind)), 2)
  end
  local bytes = list and fragments(self, data, op) or frame(op, data, true, self._mask)
  if self.state ~= "open" then return ready(closed_result(self)) end
  return self._stream:write(bytes)
end

local function control(self, op, data, fname)
  check_self(self, fname)
  if data == nil then data = "" end
  check_data(data, fname)
  if #data > 125 then error(fname .. ": argument #1 must be at most 125 bytes", 3) end
  if self.state ~= "open" then return ready(closed_result(self)) end
  return self._stream:write(frame(op, data, true, self._mask))
end

--- ws:ping([data]) -> future of true once sent; the pong goes to on_pong
function WS:ping(data) return control(self, OP_PING, data, "websocket:ping") end

--- ws:pong([data]) -> future of true (an unsolicited pong, a heartbeat)
function WS:pong(data) return control(self, OP_PONG, data, "websocket:pong") end

local close = async(function(self, code, reason)
  defer(function() -- also when cancelled: a closed WebSocket holds no descriptor
    if self.state == "closed" and not self._stream:is_closed() then self._stream:close() end
  end)
  if self.state == "open" then
    self.state = "closing"
    local ok, err, ecode = self._stream:write(frame(OP_CLOSE, close_payload(code, reason), true,
      self._mask)):await()
    if not ok then
      self.close_code = 1006
      return fail(self, "websocket: " .. tostring(err), nil, ecode)
    end
  end
  if self.state == "closing" then
    local ok
    if self._receiving then -- that receive sees the peer's close
      self._closed = self._closed or cf.notify()
      ok = cf.select(self._closed:wait(), cf.sleep(self._close_timeout)):await() == 1
    else
      ok = timeout(self._close_timeout, async(function()
        self._receiving = true
        defer(function() self._receiving = false end)
        while self.state ~= "closed" do pump(self) end -- messages after our close are dropped
        return true
      end)()):await()
    end
    if not ok then
      self.state = "closed"
      self.close_code = 1006
      self._err = { ("websocket:close: no close frame from the peer within %d ms"):format(
        floor(self._close_timeout)), "ETIMEDOUT" }
      finish(self, false)
      return nil, self._err[1], "ETIMEDOUT"
    end
  end
  if self._err then return nil, self._err[1], self._err[2] end
  return true
end)

--- ws:close([code = 1000 [, reason]]) -> future of true once the close
--- handshake is done and the connection closed, or nil, message, code
--- (ETIMEDOUT: the peer did not answer within close_timeout; closed anyway)
function WS:close(code, reason)
  check_self(self, "websocket:close")
  if code == nil then
    code = 1000
  elseif type(code) ~= "number" or code % 1 ~= 0 or not valid_close_code(code)
    or (code >= 1004 and code <= 1006) or code == 1015 then
    error(("websocket:close: argument #1 must be a close code (1000-1003, 1007-1014, 3000-4999; got %s)")
      :format(tostring(code)), 2)
  end
  if reason == nil then
    reason = ""
  elseif type(reason) ~= "string" then
    error(("websocket:close: argument #2 must be a string (got %s)"):format(what_is(reason)), 2)
  elseif #reason > 123 then
    error("websocket:close: argument #2 must be at most 123 bytes", 2)
  elseif not valid_utf8(reason) then
    error("websocket:close: argument #2 must be valid UTF-8", 2)
  end
  return close(self, code, reason)
end

--- ws:is_closed() -> whether the connection is closed (or closing)
function WS:is_closed()
  check_self(self, "websocket:is_closed")
  return self.state ~= "open"
end

--- ws:stream() -> the underlying stream (for its addresses, tls_info, ...)
function WS:stream()
  check_self(self, "websocket:stream")
  return self._stream
end

function WS:__tostring()
  return ("cfuture.WebSocket(%s, %s): %s"):format(rawget(self, "side") or "?",
    rawget(self, "state") or "?", tostring(rawget(self, "_dec")):match("0x%x+") or "?")
end

-- ---- wrap --------------------------------------------------------------------

--- websocket.wrap(stream, { side = "client" | "server", leftover = "" , ...})
--- -> a WebSocket over a stream whose handshake was done elsewhere
function M.wrap(stream, opts)
  local fname = "websocket.wrap"
  if type(stream) ~= "userdata" or type(stream.read) ~= "function" then
    error(("%s: argument #1 must be a stream (got %s)"):format(fname, what_is(stream)), 2)
  end
  opts = check_opts(opts, fname, 2, WRAP)
  local side = opts.side
  if side ~= "client" and side ~= "server" then
    error(('%s: option side must be "client" or "server" (got %s)'):format(fname, tostring(side)), 2)
  end
  local leftover = opts.leftover or ""
  if type(leftover) ~= "string" then
    error(("%s: option leftover must be a string (got %s)"):format(fname, what_is(leftover)), 2)
  end
  return new(stream, side, leftover, opts)
end

-- ---- the handshakes ----------------------------------------------------------

local function accept_key(key)
  return cf.crypto.base64(cf.crypto.digest("sha1", key .. GUID):await())
end
M._accept_key = accept_key

-- The value of a header in a flat name, value list (case-insensitive),
-- repeated ones joined with ", ".
local function header(list, name)
  name = name:lower()
  local v
  for i = 1, #list, 2 do
    if list[i]:lower() == name then v = v and v .. ", " .. list[i + 1] or list[i + 1] end
  end
  return v
end

-- Whether a comma-separated header value holds the token (any case).
local function has_token(value, token)
  if not value then return false end
  token = token:lower()
  for t in value:gmatch("[^,]+") do
    if t:match("^%s*(.-)%s*$"):lower() == token then return true end
  end
  return false
end

-- The response head through cf._http's parser: the head table, and the
-- bytes read past it (the server's first frames may come in the same
-- segment); or nil, message, code.
local function read_response_head(stream)
  local p = new_parser("response", { max_header_size = MAX_HEAD })
  while true do
    local data, err, code = stream:read():await()
    if not data then
      if err then return nil, tostring(err), code end
      return nil, "the connection closed before the response head", "EPROTO"
    end
    local ev, head, pos = p:execute(data)
    if ev == "head" then return head, data:sub(pos) end
    if ev ~= "more" then
      if ev == nil then return nil, "bad response: " .. tostring(head), pos end
      return nil, "bad response (no head)", "EPROTO"
    end
  end
end

local function parse_url(url, fname)
  if type(url) ~= "string" then
    error(("%s: argument #1 must be a URL string (got %s)"):format(fname, what_is(url)), 3)
  end
  local scheme, authority, target = url:match("^([wW][sS][sS]?)://([^/?#]*)([^#]*)")
  if not scheme then
    error(("%s: argument #1 must be a ws:// or wss:// URL (got %q)"):format(fname, url), 3)
  end
  scheme = scheme:lower()
  if authority:find("@") then
    error(("%s: argument #1: user information in the URL is not supported"):format(fname), 3)
  end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  local v6 = host ~= nil
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then
    error(("%s: argument #1 has no host (got %q)"):format(fname, url), 3)
  end
  local default = scheme == "wss" and 443 or 80
  port = port ~= "" and tonumber(port) or default
  if port < 1 or port > 65535 then
    error(("%s: argument #1 has a bad port (got %q)"):format(fname, url), 3)
  end
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  if target:find("[%s%z]") then
    error(("%s: argument #1: the path contains whitespace or NUL"):format(fname), 3)
  end
  local host_header = v6 and "[" .. host .. "]" or host
  if port ~= default then host_header = host_header .. ":" .. port end
  return scheme, host, port, target, host_header
end

local function handshake_fail(msg, code)
  return nil, "websocket.connect: " .. msg, code or "EPROTO"
end

local connect = async(function(url, opts, scheme, host, port, target, host_header, extra, protocols)
  local stream
  local done = false
  defer(function() if stream and not done and not stream:is_closed() then stream:close() end end)
  local work = async(function()
    local err, code
    if scheme == "wss" then
      local topts = {}
      for k, v in pairs(opts.tls or {}) do topts[k] = v end
      stream, err, code = cf.tls.connect(host, port, topts):await()
    else
      stream, err, code = cf.net.connect(host, port):await()
    end
    if not stream then return nil, "websocket.connect: " .. tostring(err), code end
    local key = cf.crypto.base64(cf.crypto.random(16))
    local req = { "GET ", target, " HTTP/1.1\r\nHost: ", host_header,
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
      "\r\nSec-WebSocket-Version: 13\r\n" }
    if protocols then req[#req + 1] = "Sec-WebSocket-Protocol: " .. concat(protocols, ", ") .. "\r\n" end
    if opts.origin then req[#req + 1] = "Origin: " .. opts.origin .. "\r\n" end
    for i = 1, #extra, 2 do req[#req + 1] = extra[i] .. ": " .. extra[i + 1] .. "\r\n" end
    req[#req + 1] = "\r\n"
    local ok
    ok, err, code = stream:write(concat(req)):await()
    if not ok then return handshake_fail(tostring(err), code) end
    local head, leftover, hcode = read_response_head(stream)
    if not head then return handshake_fail(leftover, hcode) end
    local h = head.headers
    if head.status ~= 101 then
      return handshake_fail(("the server answered %d %s, not 101"):format(head.status,
        head.reason or ""), "EPROTO")
    end
    if not has_token(header(h, "upgrade"), "websocket") then
      return handshake_fail("the 101 response lacks Upgrade: websocket")
    end
    if not has_token(header(h, "connection"), "upgrade") then
      return handshake_fail("the 101 response lacks Connection: Upgrade")
    end
    if header(h, "sec-websocket-accept") ~= accept_key(key) then
      return handshake_fail("wrong Sec-WebSocket-Accept from the server")
    end
    if header(h, "sec-websocket-extensions") then
      return handshake_fail("the server chose an extension that was not offered")
    end
    local proto = header(h, "sec-websocket-protocol")
    if proto then
      local offered = false
      for _, p in ipairs(protocols or {}) do if p == proto then offered = true end end
      if not offered then
        return handshake_fail(("the server chose subprotocol %q, which was not offered"):format(proto))
      end
    end
    done = true
    local ws = new(stream, "client", leftover, opts)
    ws.protocol = proto
    return ws
  end)
  local limit = opts.timeout or DEFAULT_TIMEOUT
  local ws, err, code = timeout(limit, work()):await()
  if ws == nil and err == "timeout" and code == nil then
    return nil, ("websocket.connect: no handshake within %d ms"):format(floor(limit)), "ETIMEDOUT"
  end
  return ws, err, code
end)

--- websocket.connect(url [, opts]) -> future of a WebSocket, or nil, message, code
function M.connect(url, opts)
  local fname = "websocket.connect"
  local scheme, host, port, target, host_header = parse_url(url, fname)
  opts = check_opts(opts, fname, 2, CONNECT)
  local extra = header_list(opts.headers, fname)
  local protocols = check_protocols(opts.protocols, fname)
  if opts.origin ~= nil then check_header_text(opts.origin, fname, "option origin") end
  if opts.tls ~= nil and type(opts.tls) ~= "table" then
    error(("%s: option tls must be a table of cf.tls options (got %s)"):format(fname,
      what_is(opts.tls)), 2)
  end
  return connect(url, opts, scheme, host, port, target, host_header, extra, protocols)
end

-- The request header's value through whatever the request offers.
local function req_header(req, name)
  local h = req.headers
  if type(h) == "table" or type(h) == "userdata" then
    if type(h.get_all) == "function" then
      local all = h:get_all(name)
      if all and #all > 0 then return concat(all, ", ") end
      return nil
    end
    if type(h.get) == "function" then return h:get(name) end
    return header(h, name)
  end
  return nil
end

-- Refuse an upgrade with an HTTP answer.
local function refuse(res, status, msg, extra)
  pcall(function()
    res:set_status(status)
    for name, value in pairs(extra or {}) do res:set_header(name, value) end
    res:set_header("Content-Type", "text/plain")
    local r = res:finish(msg .. "\n")
    if cf.is_future(r) then r:await() end
  end)
  return nil, "websocket.accept: " .. msg, "EPROTO"
end

local accept = async(function(req, res, opts, protocols, extra)
  if req.method ~= "GET" then return refuse(res, 405, "a WebSocket upgrade must be a GET") end
  if not has_token(req_header(req, "upgrade"), "websocket") then
    return refuse(res, 400, "not a WebSocket upgrade (no Upgrade: websocket)")
  end
  if not has_token(req_header(req, "connection"), "upgrade") then
    return refuse(res, 400, "not a WebSocket upgrade (no Connection: Upgrade)")
  end
  if req_header(req, "sec-websocket-version") ~= "13" then
    return refuse(res, 426, "unsupported WebSocket version (13 is supported)",
      { ["Sec-WebSocket-Version"] = "13" })
  end
  local key = req_header(req, "sec-websocket-key")
  local raw = key and cf.crypto.unbase64(key)
  if not raw or #raw ~= 16 then return refuse(res, 400, "bad Sec-WebSocket-Key") end
  local chosen
  if protocols then
    local offered = {}
    for p in (req_header(req, "sec-websocket-protocol") or ""):gmatch("[^,%s]+") do offered[p] = true end
    for _, p in ipairs(protocols) do
      if offered[p] then chosen = p break end
    end
  end
  local headers = { ["Upgrade"] = "websocket", ["Sec-WebSocket-Accept"] = accept_key(key) }
  if chosen then headers["Sec-WebSocket-Protocol"] = chosen end
  for i = 1, #extra, 2 do headers[extra[i]] = extra[i + 1] end
  local stream, leftover, code = res:upgrade(headers)
  if cf.is_future(stream) then stream, leftover, code = stream:await() end
  if not stream then return nil, "websocket.accept: " .. tostring(leftover), code end
  local ws = new(stream, "server", leftover or "", opts)
  ws.protocol = chosen
  return ws
end)

--- websocket.accept(req, res [, opts]) -> future of a WebSocket (inside an
--- HTTP handler), or nil, message, code after answering the request 4xx
function M.accept(req, res, opts)
  local fname = "websocket.accept"
  if type(req) ~= "table" and type(req) ~= "userdata" then
    error(("%s: argument #1 must be a request (got %s)"):format(fname, what_is(req)), 2)
  end
  if (type(res) ~= "table" and type(res) ~= "userdata") or res.upgrade == nil then
    error(("%s: argument #2 must be a response with upgrade (got %s)"):format(fname, what_is(res)), 2)
  end
  opts = check_opts(opts, fname, 3, ACCEPT)
  local protocols = check_protocols(opts.protocols, fname)
  local extra = header_list(opts.headers, fname)
  return accept(req, res, opts, protocols, extra)
end

-- Internals for tests.
M._parse_url = parse_url

return M
