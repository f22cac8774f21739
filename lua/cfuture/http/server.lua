-- cfuture.http.server: an HTTP/1.1 server on cf.net / cf.tls and cf._http.
--
-- Ground rules
-- - Each connection is one task (conn_loop). It reads into one buffer and
--   parses every request in it (pipelining) before reading again; the
--   handler runs in that task, one request at a time, so responses go out
--   in request order. A small response (the handler's return values, or
--   res:finish(data) before any write) is one write of head and body.
-- - Timeouts cost nothing per request: each connection keeps a deadline
--   and a state (idle, head, body, busy); one sweeper task per server
--   wakes a few times per timeout and closes the connections past their
--   deadline (a head that did not arrive whole within header_timeout gets
--   408 first). While the handler runs (busy) there is no deadline.
-- - Faults in the request get their status from the parser's code:
--   EPROTO 400, EMSGSIZE 431 in the head and 413 in the body; a handler
--   error is reported (cf.on_error or stderr) and answered 500, unless the
--   handler met a body framing error or limit, which is answered as such.
--   Any fault closes the connection after the answer.
-- - res:upgrade hands the stream over: the connection leaves the server's
--   books (limits, graceful close) and the server never touches it again.
local cf = require "cfuture"
local headers_mod = require "cfuture.http.headers"
local body = require "cfuture.http.body"

local H = cf._http
local new_parser, report = H.parser, H.report
local type, tostring, tonumber, error, pairs, setmetatable, getmetatable, pcall =
  type, tostring, tonumber, error, pairs, setmetatable, getmetatable, pcall
local concat, huge = table.concat, math.huge
local find, sub, format, char, gsub = string.find, string.sub, string.format, string.char,
  string.gsub
local now, spawn, sleep, async, timeout = cf.now, cf.spawn, cf.sleep, cf.async, cf.timeout
local wrap_headers, new_headers, append_wire = headers_mod.wrap, headers_mod.new,
  headers_mod.append_wire
local Headers = headers_mod.Headers
local next_piece, chunk_of, last_chunk = body.next_piece, body.chunk_of, body.last_chunk

local M = {}

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created",
  [202] = "Accepted", [204] = "No Content", [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other", [304] = "Not Modified",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [413] = "Content Too Large",
  [414] = "URI Too Long", [415] = "Unsupported Media Type", [417] = "Expectation Failed",
  [426] = "Upgrade Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.reasons = REASONS

local DEFAULTS = {
  max_header_size = 8192, max_headers = 100, max_body = 1048576, header_timeout = 10000,
  idle_timeout = 5000, max_connections = 1000, backlog = 511,
}
M.defaults = DEFAULTS

-- The Date header, made once a second.
local date_sec, date_line = -1, ""
local function date_header()
  local t = os.time()
  if t ~= date_sec then
    date_sec = t
    date_line = os.date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n", t)
  end
  return date_line
end

-- Query strings ------------------------------------------------------------------

local function unescape(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end
M.unescape = unescape

--- decode_query("a=1&b=x%20y&a=2") -> { a = {"1", "2"}, b = "x y" }
local function decode_query(q)
  local out = {}
  for pair in q:gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = unescape(k), unescape(v)
    local old = out[k]
    if old == nil then
      out[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      out[k] = { old, v }
    end
  end
  return out
end
M.decode_query = decode_query

-- The request --------------------------------------------------------------------

local Request = {}
Request.__name = "cfuture.http.Request"
local RequestMethods = {}
M.Request = Request

Request.__index = function(self, k)
  local m = RequestMethods[k]
  if m then return m end
  if k == "headers" then
    local h = wrap_headers(self._hl)
    self.headers = h
    return h
  end
  if k == "query" then
    local q = self.raw_query
    local t = q and decode_query(q) or {}
    self.query = t
    return t
  end
  return nil
end

local function check_req(self, fname)
  if getmetatable(self) ~= Request then
    error(("%s: argument #1 must be a cfuture.http.Request (call it with a colon; got %s)")
      :format(fname, type(self)), 3)
  end
end

-- The body reader, made at the first read. Reads go through the
-- connection, which keeps its deadline (idle_timeout between reads).
local function reader_of(self)
  local r = self._reader
  if r then return r end
  local conn = self._conn
  local before
  if self._expect_continue then
    before = function()
      self._continued = true
      if not conn.head_sent then conn.stream:write("HTTP/1.1 100 Continue\r\n\r\n"):await() end
    end
  end
  r = body.reader(conn.stream, conn.parser, "", { max = conn.srv.opts.max_body,
    before_read = before, name = "http.server", read = conn.read_fn })
  -- the connection's buffer holds what follows the head: the reader works on it
  r.buf, r.pos = conn.buf, conn.pos
  if self._no_body then r.done_ = true end
  self._reader = r
  return r
end
M.reader_of = reader_of

function RequestMethods:read(max)
  check_req(self, "req:read")
  return reader_of(self):read(max)
end
function RequestMethods:read_all(max)
  check_req(self, "req:read_all")
  return reader_of(self):read_all(max)
end
function RequestMethods:lines(max)
  check_req(self, "req:lines")
  return reader_of(self):lines(max)
end
function RequestMethods:chunks(max)
  check_req(self, "req:chunks")
  return reader_of(self):chunks(max)
end
--- req:peer_address() -> host, port of the client
function RequestMethods:peer_address()
  check_req(self, "req:peer_address")
  return self._conn.stream:peer_address()
end

-- The response -------------------------------------------------------------------

local Response = {}
Response.__name = "cfuture.http.ServerResponse"
local ResponseMethods = {}
M.ServerResponse = Response
-- res.headers is made at first use: a handler that returns its response
-- never needs one
Response.__index = function(self, k)
  local m = ResponseMethods[k]
  if m then return m end
  if k == "headers" then
    local h = new_headers()
    self.headers = h
    return h
  end
  return nil
end

local function check_res(self, fname)
  if getmetatable(self) ~= Response then
    error(("%s: argument #1 must be a cfuture.http.ServerResponse (call it with a colon; got %s)")
      :format(fname, type(self)), 3)
  end
end

local function check_status(fname, status, argn)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 999 then
    error(("%s: argument #%d must be a status code from 100 to 999 (got %s)"):format(fname, argn,
      tostring(status)), 3)
  end
end

--- res:set_status(code [, reason]) -> res
function ResponseMethods:set_status(status, reason)
  check_res(self, "res:set_status")
  check_status("res:set_status", status, 2)
  if reason ~= nil then headers_mod.check_value(reason, "res:set_status", "argument #3") end
  if self.head_sent then error("res:set_status: the head was already sent", 2) end
  self.status, self.reason = status, reason
  return self
end

--- res:status_code() -> the status set so far
function ResponseMethods:status_code()
  check_res(self, "res:status_code")
  return self.status
end

--- res:set_header(name, value) -> res (res.headers:set)
function ResponseMethods:set_header(name, value)
  check_res(self, "res:set_header")
  if self.head_sent then error("res:set_header: the head was already sent", 2) end
  self.headers:set(name, value)
  return self
end

-- No body may follow these statuses (RFC 9110 6.4.1).
local function bodiless(status) return status < 200 or status == 204 or status == 304 end

-- The head as a list of strings (to concat with the body). length: the
-- Content-Length to send (false: chunked, nil: none).
local function head_parts(self, length)
  local conn, status = self.conn, self.status
  local t = { "HTTP/1.1 ", status, " ", self.reason or REASONS[status] or "Unknown", "\r\n",
    date_header() }
  local k = append_wire(self.headers, t, 7)
  if length then
    t[k], t[k + 1], t[k + 2] = "Content-Length: ", length, "\r\n"
    k = k + 3
  elseif length == false then
    t[k] = "Transfer-Encoding: chunked\r\n"
    k = k + 1
  end
  if not self.keep_alive then
    t[k] = "Connection: close\r\n"
    k = k + 1
  elseif conn.http10 then
    t[k] = "Connection: keep-alive\r\n"
    k = k + 1
  end
  t[k] = "\r\n"
  return t, k
end

-- Decide keep-alive for this response, as the head goes out.
local function settle_keep_alive(self)
  local conn, req = self.conn, self.req
  if conn.srv.closing then self.keep_alive = false end
  -- a client that waits for 100 Continue, which never came: its body
  -- cannot be told from the next request, so the connection ends here
  if req._expect_continue and not req._continued then self.keep_alive = false end
  local h = self.headers
  if h:has("Connection") then -- the server writes Connection itself
    if h:has_token("Connection", "close") then self.keep_alive = false end
    h:remove("Connection")
  end
  -- and the framing: chunked unless a Content-Length was set
  if h:has("Transfer-Encoding") then h:remove("Transfer-Encoding") end
end

local function write_all(self, s)
  local ok, msg, code = self.conn.stream:write(s):await()
  if not ok then
    self.failed = true
    self.keep_alive = false
    return nil, msg, code
  end
  return true
end

local function check_data(fname, data)
  if type(data) ~= "string" then
    if type(data) == "number" then return tostring(data) end
    error(("%s: argument #2 must be a string (got %s)"):format(fname, type(data)), 3)
  end
  return data
end

local function user_length(self)
  local cl = self.headers:get("Content-Length")
  if cl then
    self.headers:remove("Content-Length")
    local n = tonumber(cl)
    if not n or n < 0 or n % 1 ~= 0 then
      error(("res: Content-Length must be a non-negative integer (got %q)"):format(cl), 4)
    end
    return n
  end
end

--- res:write(data) -> true | nil, msg, code (waits until the bytes are
-- handed to the kernel; call it in a task). The first write sends the
-- head: with the Content-Length set in res.headers, or chunked (HTTP/1.0:
-- the body ends when the connection closes).
function ResponseMethods:write(data)
  check_res(self, "res:write")
  data = check_data("res:write", data)
  if self.finished then error("res:write: the response is finished", 2) end
  if self.failed then return nil, "http.server: the connection failed", "EPIPE" end
  local conn = self.conn
  if not self.head_sent then
    settle_keep_alive(self)
    local length = user_length(self)
    local status = self.status
    if self.head or bodiless(status) then
      self.framing = "none"
    elseif length then
      self.framing, self.remaining = "length", length
    elseif conn.http10 then
      self.framing, self.keep_alive = "close", false
    else
      self.framing = "chunked"
    end
    local framing_length = length
    if self.framing == "chunked" then framing_length = false end
    local t, k = head_parts(self, framing_length)
    self.head_sent, conn.head_sent = true, true
    if self.framing == "chunked" and data ~= "" then
      t[k + 1] = chunk_of(data)
    elseif self.framing == "length" or self.framing == "close" then
      t[k + 1] = data
    end
    if self.framing == "length" then
      if #data > self.remaining then
        error(("res:write: %d bytes more than Content-Length"):format(#data - self.remaining), 2)
      end
      self.remaining = self.remaining - #data
    end
    return write_all(self, concat(t))
  end
  local f = self.framing
  if data == "" then return write_all(self, "") end
  if f == "chunked" then
    return write_all(self, chunk_of(data))
  elseif f == "length" then
    if #data > self.remaining then
      error(("res:write: %d bytes more than Content-Length"):format(#data - self.remaining), 2)
    end
    self.remaining = self.remaining - #data
    return write_all(self, data)
  elseif f == "close" then
    return write_all(self, data)
  end
  return true -- HEAD, 204, 304: no body goes out
end

--- res:finish([data [, trailers]]) -> true | nil, msg, code: the last bytes
-- of the body (with the head, if not sent: Content-Length is then #data).
-- trailers: for a chunked body, a table of trailer fields.
function ResponseMethods:finish(data, trailers)
  check_res(self, "res:finish")
  if data ~= nil then data = check_data("res:finish", data) end
  if self.finished then error("res:finish: the response is finished", 2) end
  self.finished = true
  if self.failed then return nil, "http.server: the connection failed", "EPIPE" end
  local conn = self.conn
  if not self.head_sent then
    settle_keep_alive(self)
    data = data or ""
    local length = user_length(self)
    local status = self.status
    local t, k
    if bodiless(status) then
      t, k = head_parts(self, nil)
    else
      if length and length ~= #data and not self.head then
        error(("res:finish: the body is %d bytes but Content-Length says %d"):format(#data,
          length), 2)
      end
      t, k = head_parts(self, length or #data)
      if not self.head then t[k + 1] = data end
    end
    self.head_sent, conn.head_sent = true, true
    return write_all(self, concat(t))
  end
  local f = self.framing
  if f == "chunked" then
    local last = last_chunk(trailers)
    if data and data ~= "" then last = chunk_of(data) .. last end
    return write_all(self, last)
  elseif f == "length" then
    local n = data and #data or 0
    if n ~= self.remaining then
      self.keep_alive = false
      self.failed = true
      error(("res:finish: the body ended %d bytes short of Content-Length"):format(
        self.remaining - n), 2)
    end
    self.remaining = 0
    if data and data ~= "" then return write_all(self, data) end
    return true
  elseif f == "close" then
    if data and data ~= "" then return write_all(self, data) end
    return true
  end
  return true
end

--- res:head_sent() -> whether the head went out
function ResponseMethods:is_head_sent()
  check_res(self, "res:is_head_sent")
  return self.head_sent == true
end

--- res:upgrade([headers]) -> stream, leftover: answer 101 Switching
-- Protocols (Connection: Upgrade and the given headers) and hand the raw
-- stream over with the bytes already read past the request head.
function ResponseMethods:upgrade(hdrs)
  check_res(self, "res:upgrade")
  if self.head_sent then error("res:upgrade: the head was already sent", 2) end
  if hdrs ~= nil and getmetatable(hdrs) ~= Headers then hdrs = new_headers(hdrs, "res:upgrade") end
  local conn = self.conn
  local t = { "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" }
  local k = 2
  if hdrs then k = append_wire(hdrs, t, k) end
  t[k] = "\r\n"
  self.head_sent, self.finished, conn.head_sent = true, true, true
  conn.upgraded = true
  M.forget(conn.srv, conn)
  local stream = conn.stream
  local ok, msg, code = stream:write(concat(t)):await()
  if not ok then return nil, msg, code end
  local buf, pos = conn.buf, conn.pos
  local leftover = pos <= #buf and sub(buf, pos) or ""
  conn.buf, conn.pos = "", 1
  return stream, leftover
end

-- Connections --------------------------------------------------------------------

-- The connection leaves the server's books (it ended, or was upgraded).
local function forget(srv, conn)
  if srv.conns[conn] then
    srv.conns[conn] = nil
    srv.nconns = srv.nconns - 1
    if srv.closing and srv.nconns == 0 then srv.drained:notify_one() end
  end
end
M.forget = forget

local function simple(status, msg, extra)
  local b = msg or (REASONS[status] or "") .. "\n"
  return concat {
    "HTTP/1.1 ", status, " ", REASONS[status] or "Error", "\r\n", date_header(),
    "Content-Type: text/plain\r\nContent-Length: ", #b, "\r\nConnection: close\r\n", extra or "",
    "\r\n", b,
  }
end
M.simple_response = simple

-- Close gently: end our side, then read and drop what the client still
-- sends (up to 2 s), so that closing with unread bytes does not reset the
-- connection before the client read our answer.
local function linger(stream)
  if stream:is_closed() then return end
  if not stream:shutdown() then return end
  local deadline = now() + 2000
  while not stream:is_closed() do
    local left = deadline - now()
    if left <= 0 then return end
    local data = timeout(left, stream:read()):await()
    if not data then return end
  end
end

-- Answer a fault in the request (when no head went out) and end the
-- connection.
local function refuse(conn, status, msg)
  conn.state = "closing"
  conn.deadline = huge
  local stream = conn.stream
  if stream:is_closed() then return end
  if not conn.head_sent then
    conn.head_sent = true
    if not stream:write(simple(status, msg)):await() then return end
  end
  linger(stream)
end

local function status_of(code, in_body)
  if code == "EMSGSIZE" then return in_body and 413 or 431 end
  if code == "ETIMEDOUT" then return 408 end
  return 400
end

-- After the handler: read what is left of the request body (it must not
-- be taken for the next request), within the body limit; false if the
-- connection cannot go on.
local function drain(req)
  if req._no_body then return true end
  local r = reader_of(req)
  if r:done() then return true end
  if req._expect_continue and not req._continued then return false end
  r.before = nil
  while true do
    local p, msg = next_piece(r)
    if not p then return msg == nil end
  end
end

local function make_request(conn, head)
  local target = head.target
  local q = find(target, "?", 1, true)
  local req = setmetatable({
    method = head.method, target = target, version = head.version,
    path = q and sub(target, 1, q - 1) or target, raw_query = q and sub(target, q + 1) or nil,
    _hl = head.headers, keep_alive = head.keep_alive,
    content_length = head.content_length, _conn = conn,
    -- every field the server reads is present: a missing one would go
    -- through __index, a function call
    _reader = false, _no_body = false, _expect_continue = false, _continued = false,
  }, Request)
  return req
end

-- What the server must know of a header name the handler returns: 1 an
-- ordinary field, 2 Content-Length, 3 Connection, 4 Transfer-Encoding.
local name_kind, nkinds = {}, 0
local SPECIAL = { ["content-length"] = 2, connection = 3, ["transfer-encoding"] = 4 }
local function kind_of(name)
  local k = name_kind[name]
  if k then return k end
  headers_mod.check_name(name, "http.server: the handler's headers", 3)
  k = SPECIAL[name:lower()] or 1
  nkinds = nkinds + 1
  if nkinds > 512 then name_kind, nkinds = {}, 0 end
  name_kind[name] = k
  return k
end

-- The handler returned status, body, headers (a plain table of strings)
-- and touched nothing of res: the head is built straight from them, with
-- no Headers object. Returns false to take the general path instead.
local check_value = headers_mod.check_value
local EMPTY = setmetatable({}, { __newindex = function() error("read-only", 2) end })
local function quick_finish(res, status, b, hdrs)
  local t = { "HTTP/1.1 ", status, " ", REASONS[status] or "Unknown", "\r\n", date_header() }
  local k = 7
  local length
  for name, v in pairs(hdrs) do
    local kind = type(name) == "string" and kind_of(name) or 0
    if kind == 1 and type(v) ~= "table" then
      t[k], t[k + 1], t[k + 2], t[k + 3] = name, ": ",
        check_value(v, "http.server: the handler's headers", nil, name), "\r\n"
      k = k + 4
    elseif kind == 2 and type(v) ~= "table" then
      length = tonumber(v)
      if not length then return false end
    else
      return false -- Connection, Transfer-Encoding, lists: the general path
    end
  end
  local req, conn = res.req, res.conn
  if conn.srv.closing or (req._expect_continue and not req._continued) then
    res.keep_alive = false
  end
  local n = b and #b or 0
  if bodiless(status) then
    b = nil
  else
    if length and length ~= n and not res.head then return false end
    t[k], t[k + 1], t[k + 2] = "Content-Length: ", length or n, "\r\n"
    k = k + 3
    if res.head then b = nil end
  end
  if not res.keep_alive then
    t[k] = "Connection: close\r\n"
    k = k + 1
  elseif conn.http10 then
    t[k] = "Connection: keep-alive\r\n"
    k = k + 1
  end
  t[k] = "\r\n"
  if b then t[k + 1] = b end
  res.head_sent, res.finished, conn.head_sent = true, true, true
  return write_all(res, concat(t))
end

-- The handler's return values: status, body [, headers].
local function respond_with(res, status, b, hdrs)
  check_status("http.server: the handler's result", status, 1)
  res.status = status
  if b ~= nil and type(b) ~= "string" then
    if type(b) == "number" then
      b = tostring(b)
    else
      error(("http.server: the handler's second result must be a string body (got %s)")
        :format(type(b)), 0)
    end
  end
  if not res.head_sent and rawget(res, "headers") == nil and
    (hdrs == nil or (type(hdrs) == "table" and getmetatable(hdrs) == nil)) then
    local done = quick_finish(res, status, b, hdrs or EMPTY)
    if done ~= false then return done end
  end
  if hdrs ~= nil then
    if type(hdrs) ~= "table" then
      error(("http.server: the handler's third result must be a table of headers (got %s)")
        :format(type(hdrs)), 0)
    end
    local h = res.headers
    if getmetatable(hdrs) == Headers then
      for name, v in hdrs:each() do h:add(name, v) end
    else
      for name, v in pairs(hdrs) do h:set(name, v) end
    end
  end
  if b ~= nil and type(b) ~= "string" then
    if type(b) == "number" then
      b = tostring(b)
    else
      error(("http.server: the handler's second result must be a string body (got %s)")
        :format(type(b)), 0)
    end
  end
  return res:finish(b)
end

-- One request, its head already parsed. Returns whether the connection
-- goes on.
local function serve_request(conn, head)
  local srv = conn.srv
  local opts = srv.opts
  local req = make_request(conn, head)
  local has_body = head.chunked or (head.content_length or 0) > 0
  local http10 = head.version == "1.0"
  conn.http10 = http10
  conn.head_sent = false
  if not has_body then
    -- the parser says "done" at once: consume it
    local ev, v, np = conn.parser:execute(conn.buf, conn.pos)
    if ev ~= "done" then
      refuse(conn, status_of(np), v)
      return false
    end
    conn.pos = np
    req._no_body = true
  else
    local cl = head.content_length
    if cl and cl > opts.max_body then
      refuse(conn, 413)
      return false
    end
    local headers = req.headers
    if headers:has_token("Expect", "100-continue") and not http10 then
      req._expect_continue = true
    end
  end
  local res = setmetatable({
    status = 200, conn = conn, req = req,
    head = head.method == "HEAD", keep_alive = head.keep_alive and not head.upgrade,
    head_sent = false, finished = false, failed = false, reason = false,
  }, Response)
  conn.state = "busy"
  conn.deadline = huge
  local ok, a, b, c = pcall(srv.handler, req, res)
  if conn.upgraded then return false end
  if ok and type(a) == "number" and not res.finished then
    ok, a = pcall(respond_with, res, a, b, c)
  end
  local r = req._reader
  local rerr, rcode
  if r then rerr, rcode = r:error() end
  if not ok then
    if rerr then -- the handler met a framing fault or a limit in the body
      refuse(conn, status_of(rcode, true), format("%s\n", rerr))
      return false
    end
    report(a)
    if not res.head_sent then
      refuse(conn, 500)
    end
    return false
  end
  if rerr and not res.head_sent then
    refuse(conn, status_of(rcode, true), format("%s\n", rerr))
    return false
  end
  if not res.finished then
    local fok, ferr = pcall(res.finish, res)
    if not fok then
      report(ferr)
      return false
    end
  end
  if res.failed or not res.keep_alive then return false end
  -- the rest of the body, so the next request starts where it should
  if not drain(req) then return false end
  r = req._reader
  if r then
    if r.pos > #r.buf then
      conn.buf, conn.pos = "", 1
    else
      conn.buf, conn.pos = r.buf, r.pos
    end
  end
  return true
end

-- Every read of a connection goes through one stream:chunks iterator:
-- it awaits the same read future each time (no future per read). A read
-- error (or a stream closed by a timeout) comes back as nil, message.
local function read_more(conn)
  local ok, data = pcall(conn.next_chunk)
  if ok then return data end
  -- the iterator raised: ask the stream again for the triple (its
  -- failure sticks), unless a timeout or a close took the stream away
  local stream = conn.stream
  if not stream:is_closed() then
    local rok, d, msg, code = pcall(function() return stream:read():await() end)
    if rok and d == nil and msg then return nil, msg, code end
  end
  return nil, "http.server: the connection was closed", "ECANCELED"
end

-- How the body reader reads: from the connection, whose deadline moves
-- with each read (idle_timeout).
local function body_read_fn(conn)
  return function()
    conn.state = "body"
    conn.deadline = now() + conn.srv.opts.idle_timeout
    return read_more(conn)
  end
end

local function conn_loop(conn)
  local srv, stream, parser = conn.srv, conn.stream, conn.parser
  local opts = srv.opts
  local header_timeout, idle_timeout = opts.header_timeout, opts.idle_timeout
  while true do
    -- the next request's head
    local ev, head, np
    local buf, pos = conn.buf, conn.pos
    conn.head_sent = false
    if pos > #buf then
      conn.state = "idle"
      conn.deadline = now() + idle_timeout
    else
      conn.state = "head"
      conn.deadline = now() + header_timeout
    end
    while true do
      ev, head, np = parser:execute(buf, pos)
      if ev ~= "more" then break end
      if srv.closing and conn.state == "idle" then return end
      local data = read_more(conn)
      if not data then return end -- the client went, or a timeout closed the stream
      if conn.state == "idle" then
        conn.state = "head"
        conn.deadline = now() + header_timeout
      end
      buf, pos = data, 1
    end
    if ev ~= "head" then
      conn.buf, conn.pos = "", 1
      if ev == nil then refuse(conn, status_of(np), format("%s\n", head)) end
      return
    end
    conn.buf, conn.pos = buf, np
    if not serve_request(conn, head) then return end
    if srv.closing then return end
    parser = conn.parser
  end
end

local Conn = {}
Conn.__index = Conn

local function start_conn(srv, stream)
  local conn = setmetatable({
    srv = srv, stream = stream, buf = "", pos = 1, state = "idle", head_sent = false,
    upgraded = false, timed_out = false, http10 = false,
    deadline = now() + srv.opts.header_timeout,
    parser = new_parser("request", srv.limits),
  }, Conn)
  conn.read_fn = body_read_fn(conn)
  conn.next_chunk = stream:chunks()
  srv.conns[conn] = true
  srv.nconns = srv.nconns + 1
  conn.task = spawn(function()
    cf.defer(function()
      forget(srv, conn)
      if not conn.upgraded and not stream:is_closed() then stream:close() end
    end)
    conn_loop(conn)
  end)
  return conn.task
end

-- The server ---------------------------------------------------------------------

local Server = {}
Server.__name = "cfuture.http.Server"
local ServerMethods = {}
Server.__index = ServerMethods
M.Server = Server

local function check_srv(self, fname)
  if getmetatable(self) ~= Server then
    error(("%s: argument #1 must be a cfuture.http.Server (call it with a colon; got %s)")
      :format(fname, type(self)), 3)
  end
end



--- server:address() -> host, port
function ServerMethods:address()
  check_srv(self, "server:address")
  return self.host, self.port
end

--- server:connections() -> the number of open connections
function ServerMethods:connections()
  check_srv(self, "server:connections")
  return self.nconns
end

--- server:serve(stream) -> JoinHandle: serve one accepted stream
function ServerMethods:serve(stream)
  check_srv(self, "server:serve")
  if type(stream) ~= "userdata" and type(stream) ~= "table" then
    error(("server:serve: argument #2 must be a stream (got %s)"):format(type(stream)), 2)
  end
  if self.closing then error("server:serve: the server is closed", 2) end
  return start_conn(self, stream)
end

local function refuse_busy(stream)
  spawn(function()
    cf.defer(function() if not stream:is_closed() then stream:close() end end)
    if stream:write(simple(503, nil, "Retry-After: 1\r\n")):await() then linger(stream) end
  end)
end

local close_server = async(function(self, grace)
  if not self.closing then
    self.closing = true
    if self.listener then self.listener:close() end
    for conn in pairs(self.conns) do
      if conn.state == "idle" then conn.stream:close() end
    end
  end
  if self.nconns > 0 then
    local deadline = now() + grace
    while self.nconns > 0 and now() < deadline do
      cf.timeout(deadline - now(), self.drained:wait()):await()
    end
  end
  for conn in pairs(self.conns) do
    conn.task:abort()
    if not conn.stream:is_closed() then conn.stream:close() end
    forget(self, conn)
  end
  if self.sweeper then self.sweeper:abort() end
  self.closed = true
  self.done:notify_all()
  return true
end)

--- server:close([grace_ms = 5000]) -> future of true: stop accepting,
-- close idle connections, let requests in progress finish for up to
-- grace_ms, then close the rest.
function ServerMethods:close(grace)
  check_srv(self, "server:close")
  if grace ~= nil and (type(grace) ~= "number" or not (grace >= 0) or grace == huge) then
    error(("server:close: argument #2 must be a non-negative number of milliseconds (got %s)")
      :format(tostring(grace)), 2)
  end
  return close_server(self, grace or 5000)
end

local wait_closed = async(function(self)
  while not self.closed do self.done:wait():await() end
  return true
end)

--- server:wait() -> future of true once the server is closed
function ServerMethods:wait()
  check_srv(self, "server:wait")
  return wait_closed(self)
end

Server.__tostring = function(self)
  if getmetatable(self) ~= Server then return "cfuture.http.Server" end
  return format("cfuture.http.Server(%s:%s, %d connection(s)%s)", tostring(self.host),
    tostring(self.port), self.nconns, self.closing and ", closed" or "")
end

local function sweep(srv)
  local period = math.min(srv.opts.header_timeout, srv.opts.idle_timeout) / 4
  if period < 10 then period = 10 elseif period > 1000 then period = 1000 end
  while true do
    sleep(period):await()
    local t = now()
    for conn in pairs(srv.conns) do
      if conn.deadline < t and not conn.timed_out then
        conn.timed_out = true
        local state = conn.state
        if state == "head" or state == "body" then
          spawn(function()
            if not conn.head_sent then
              conn.head_sent = true
              cf.timeout(1000, conn.stream:write(simple(408))):await()
            end
            if not conn.stream:is_closed() then conn.stream:close() end
          end)
        else
          conn.stream:close()
        end
      end
    end
  end
end

local OPTION_KINDS = {
  max_header_size = "limit", max_headers = "limit", max_body = "count", header_timeout = "ms",
  idle_timeout = "ms", max_connections = "limit", backlog = "count", tls = "table",
  ipv6only = "boolean",
}

local function check_opts(opts, fname)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  if opts == nil then return o end
  if type(opts) ~= "table" then
    error(("%s: argument #4 must be a table of options or nil (got %s)"):format(fname,
      type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local kind = OPTION_KINDS[k]
    if not kind then error(("%s: unknown option %s"):format(fname, tostring(k)), 3) end
    local ok
    if kind == "limit" then
      ok = type(v) == "number" and v >= 1 and v % 1 == 0
    elseif kind == "count" then
      ok = type(v) == "number" and v >= 0 and v % 1 == 0
    elseif kind == "ms" then
      ok = type(v) == "number" and v > 0 and v < 1e15
    elseif kind == "table" then
      ok = type(v) == "table"
    else
      ok = type(v) == "boolean"
    end
    if not ok then
      local want = ({ limit = "a positive integer", count = "a non-negative integer",
        ms = "a positive number of milliseconds", table = "a table of cf.tls options",
        boolean = "a boolean" })[kind]
      error(("%s: option %s must be %s (got %s)"):format(fname, k, want,
        type(v) == "number" and tostring(v) or type(v)), 3)
    end
    o[k] = v
  end
  if o.max_header_size > 81920 then
    error(("%s: option max_header_size must be at most 81920 (got %d)"):format(fname,
      o.max_header_size), 3)
  end
  if o.max_headers > 10000 then
    error(("%s: option max_headers must be at most 10000 (got %d)"):format(fname,
      o.max_headers), 3)
  end
  return o
end

local function new_server(handler, opts, fname)
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    error(("%s: the handler must be a function (got %s)"):format(fname, type(handler)), 3)
  end
  local srv = setmetatable({
    handler = handler, opts = opts, conns = {}, nconns = 0, closing = false,
    limits = { max_header_size = opts.max_header_size, max_headers = opts.max_headers },
    drained = cf.notify(), done = cf.notify(),
  }, Server)
  srv.sweeper = spawn(sweep, srv):unref()
  return srv
end

--- http.listen(host, port, handler [, opts]) -> Server | nil, msg, code
function M.listen(host, port, handler, opts)
  local fname = "http.listen"
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    error(("%s: argument #3 must be a function (got %s)"):format(fname, type(handler)), 2)
  end
  opts = check_opts(opts, fname)
  local l, msg, code
  local lopts = { backlog = opts.backlog, ipv6only = opts.ipv6only }
  if opts.tls then
    local t = {}
    for k, v in pairs(opts.tls) do t[k] = v end
    t.backlog, t.ipv6only = lopts.backlog, lopts.ipv6only
    l, msg, code = cf.tls.listen(host, port, t)
  else
    l, msg, code = cf.net.listen(host, port, lopts)
  end
  if not l then return nil, "http.listen: " .. tostring(msg), code end
  local srv = new_server(handler, opts, fname)
  srv.listener = l
  srv.host, srv.port = l:local_address()
  local max = opts.max_connections
  srv.acceptor = spawn(function()
    for stream in l:incoming() do
      if srv.nconns >= max then
        refuse_busy(stream)
      else
        start_conn(srv, stream)
      end
    end
  end)
  return srv
end

--- http.server(handler [, opts]) -> Server without a listener, for
-- server:serve(stream)
function M.server(handler, opts)
  return new_server(handler, check_opts(opts, "http.server"), "http.server")
end

return M
