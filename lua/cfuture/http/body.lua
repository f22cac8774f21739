-- cfuture.http.body: reading a message body through cf._http's parser, and
-- writing chunked bodies. Shared by the server (a request's body) and the
-- client (a response's body).
--
-- A reader holds the bytes already read from the stream (`buf`, from
-- `pos`), feeds them to the parser and hands out only body bytes (chunked
-- framing removed). It reads from the stream only when the parser needs
-- more, so bytes past the message's end stay in `buf` for the next message
-- on a kept-alive connection (reader:leftover()). The first failure
-- (framing, a limit, I/O) sticks: every later read returns it again.
local cf = require "cfuture"

local type, error, setmetatable, getmetatable, concat, tostring =
  type, error, setmetatable, getmetatable, table.concat, tostring
local find, sub, format = string.find, string.sub, string.format
local async = cf.async

local M = {}

local Reader = {}
Reader.__index = Reader
Reader.__name = "cfuture.http.BodyReader"
M.Reader = Reader

--- body.reader(stream, parser, leftover [, opts]) -> reader.
-- leftover: bytes already read past the head ("" if none). opts.max: body
-- bytes allowed (more: nil, msg, "EMSGSIZE"); opts.before_read: a function
-- called once, in the reading task, before the first read (the server
-- sends "100 Continue" there); opts.name: the function name that starts
-- messages ("http.request", ...); opts.read: a function called in the
-- reading task in place of stream:read():await(), returning the same
-- (bytes | nil at the end | nil, message, code).
function M.reader(stream, parser, leftover, opts)
  local r = setmetatable({
    stream = stream, parser = parser, buf = leftover or "", pos = 1,
    done_ = false, err = nil, total = 0, pending = nil,
    max = opts and opts.max, before = opts and opts.before_read,
    name = opts and opts.name or "http",
    on_done = opts and opts.on_done, on_error = opts and opts.on_error,
    read_fn = opts and opts.read,
  }, Reader)
  return r
end

local function check(self, fname)
  if getmetatable(self) ~= Reader then
    error(("%s: argument #1 must be a body reader (call it with a colon; got %s)"):format(fname,
      type(self)), 3)
  end
end

local function fail(self, msg, code)
  self.err, self.code = msg, code
  self.buf, self.pos, self.pending = "", 1, nil
  local hook = self.on_error
  if hook then
    self.on_error = nil
    hook(msg, code)
  end
  return nil, msg, code
end

local function finished(self)
  self.done_ = true
  local hook = self.on_done
  if hook then
    self.on_done = nil
    hook(self:leftover())
  end
  return nil
end

-- The next piece of body bytes (awaits reads as needed), nil at the end, or
-- nil, message, code. Runs inside a task.
local function next_piece(self)
  local p = self.pending
  if p then
    self.pending = nil
    return p
  end
  if self.err then return nil, self.err, self.code end
  if self.done_ then return nil end
  local before = self.before
  if before then
    self.before = nil
    before()
  end
  local parser = self.parser
  while true do
    local buf, pos = self.buf, self.pos
    -- execute even with nothing left to feed: a message that ended with its
    -- head (no body, or no_body) says "done" at once
    if pos <= #buf + 1 then
      local ev, v, np = parser:execute(buf, pos)
      if ev == "body" then
        self.pos = np
        local total = self.total + #v
        self.total = total
        if self.max and total > self.max then
          return fail(self, format("%s: body too large (more than %d bytes)", self.name, self.max),
            "EMSGSIZE")
        end
        return v
      elseif ev == "done" then
        self.pos = np
        return finished(self)
      elseif ev == "more" then
        self.buf, self.pos = "", 2 -- nothing left: read from the stream
      elseif ev == nil then
        return fail(self, v, np)
      else -- a head inside a body cannot happen; treat as a protocol fault
        return fail(self, "http: unexpected message head inside a body", "EPROTO")
      end
    else
      local data, msg, code
      local read_fn = self.read_fn
      if read_fn then
        data, msg, code = read_fn()
      else
        data, msg, code = self.stream:read():await()
      end
      if not data then
        if msg then return fail(self, msg, code) end
        -- the end of the stream: ends a body read until close, else cut short
        local r, m, c = parser:finish()
        if r == "done" then return finished(self) end
        return fail(self, m or "http: the connection closed before the body ended", c or "EPROTO")
      end
      self.buf, self.pos = data, 1
    end
  end
end
M.next_piece = next_piece

--- r:read([max]) -> future of bytes (at most max), nil at the end
local read = async(function(self, max)
  local p, msg, code = next_piece(self)
  if not p then return nil, msg, code end
  if max and #p > max then
    self.pending = sub(p, max + 1)
    p = sub(p, 1, max)
  end
  return p
end)

local function check_max(v, fname, argn)
  if v ~= nil and (type(v) ~= "number" or v < 1 or v ~= v or v % 1 ~= 0) then
    error(("%s: argument #%d must be a positive integer or nil (got %s)"):format(fname, argn,
      tostring(v)), 3)
  end
  return v
end
M.check_max = check_max

function Reader:read(max)
  check(self, "body:read")
  return read(self, check_max(max, "body:read", 2))
end

local function read_all(self, max)
  local parts, n, total = {}, 0, 0
  while true do
    local p, msg, code = next_piece(self)
    if not p then
      if msg then return nil, msg, code end
      return concat(parts, "", 1, n)
    end
    total = total + #p
    if max and total > max then
      return fail(self, format("%s: body too large (more than %d bytes)", self.name, max),
        "EMSGSIZE")
    end
    n = n + 1
    parts[n] = p
  end
end
M.read_all_sync = read_all

--- r:read_all([max_bytes]) -> future of the whole body ("" if none)
local read_all_f = async(read_all)
function Reader:read_all(max)
  check(self, "body:read_all")
  return read_all_f(self, check_max(max, "body:read_all", 2))
end

--- for chunk in r:chunks([max]) do ... end (inside a task; raises on error)
function Reader:chunks(max)
  check(self, "body:chunks")
  check_max(max, "body:chunks", 2)
  return function()
    local p, msg = next_piece(self)
    if not p then
      if msg then error(msg, 2) end
      return nil
    end
    if max and #p > max then
      self.pending = sub(p, max + 1)
      p = sub(p, 1, max)
    end
    return p
  end
end

--- for line in r:lines([max = 1 MiB]) do ... end (inside a task; lines
-- without \n or \r\n; the last may lack one; raises on error)
function Reader:lines(max)
  check(self, "body:lines")
  max = check_max(max, "body:lines", 2) or 1048576
  return M.line_iterator(function() return next_piece(self) end, max, "body:lines")
end

--- M.line_iterator(pull, max, fname) -> the lines of the pieces pull()
-- gives (a string, or nil at the end, or nil, message on failure), without
-- \n or \r\n; the last may lack one; a failure or a line over max raises.
function M.line_iterator(pull, max, fname)
  local acc = ""
  local ended = false
  return function()
    while true do
      local i = find(acc, "\n", 1, true)
      if i then
        local line = sub(acc, 1, i - 1)
        acc = sub(acc, i + 1)
        if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
        return line
      end
      if #acc > max then error(format("%s: no newline within %d bytes", fname, max), 2) end
      if ended then
        if acc == "" then return nil end
        local line = acc
        acc = ""
        return line
      end
      local p, msg = pull()
      if not p then
        if msg then error(msg, 2) end
        ended = true
      else
        acc = acc .. p
      end
    end
  end
end

--- r:done() -> whether the whole body was read (the message is complete)
function Reader:done() return self.done_ and self.pending == nil end

--- r:leftover() -> the bytes read past the message's end ("" if none)
function Reader:leftover()
  if self.pos > #self.buf then return "" end
  return sub(self.buf, self.pos)
end

--- r:error() -> message, code of the failure that stopped the body, or nil
function Reader:error() return self.err, self.code end

-- Chunked writes ----------------------------------------------------------------

local function chunk_of(data)
  return format("%x\r\n", #data) .. data .. "\r\n"
end
M.chunk_of = chunk_of

--- body.write_chunk(stream, data) -> future of true | nil, msg, code. An
-- empty string writes nothing (a zero-length chunk would end the body).
function M.write_chunk(stream, data)
  if type(data) ~= "string" then
    error(("body.write_chunk: argument #2 must be a string (got %s)"):format(type(data)), 2)
  end
  if data == "" then return stream:write("") end
  return stream:write(chunk_of(data))
end

-- "0\r\n" + trailers + "\r\n"
function M.last_chunk(trailers)
  if trailers == nil then return "0\r\n\r\n" end
  local headers = require "cfuture.http.headers"
  if getmetatable(trailers) ~= headers.Headers then
    trailers = headers.new(trailers, "body.finish_chunks")
  end
  local buf = { "0\r\n" }
  local k = headers.append_wire(trailers, buf, 2)
  buf[k] = "\r\n"
  return concat(buf)
end

--- body.finish_chunks(stream [, trailers]) -> future: the last chunk and
-- the trailers (a Headers or a table as http.headers takes)
function M.finish_chunks(stream, trailers)
  return stream:write(M.last_chunk(trailers))
end

return M
