-- cfuture.http.client: the HTTP/1.1 client (http.request, http.get,
-- http.post, http.pool).
--
-- Ground rules
-- - http.request checks every argument at the call (misuse raises, naming
--   the function and the argument) and returns a lazy future; I/O failure
--   is `nil, message, code` from that future or from the body reads.
-- - A connection belongs to its pool while idle and to one request while
--   checked out: the request task until it returns a Response, then that
--   Response until its body was read to the end (the body reader's on_done
--   hands it back with its permit) or it fails or is closed (then the
--   connection is closed). Only a connection whose response was read to the
--   end, with nothing after it, and which both sides keep alive, is reused.
--   A Response dropped unread keeps its connection and its permit until it
--   is collected (the stream's and the permit's finalisers close and
--   release them): close what you do not read.
-- - Per host (scheme, host, port, proxy, TLS options) a semaphore holds the
--   per-host limit; its permit travels with the checked-out connection. A
--   request cancelled anywhere (cf.timeout, select, abort) closes the
--   connection it held and releases its permit (cf.defer: LuaJIT has no
--   <close>); a cancelled wait for a permit takes none.
-- - The fast path (a reused connection, a small response) costs the request
--   task, one write and one read future, and the body read's future.
local cf = require "cfuture"
local url_mod = require "cfuture.http.url"
local headers_mod = require "cfuture.http.headers"
local body_mod = require "cfuture.http.body"

local type, tostring, tonumber, pairs, ipairs, error, setmetatable, getmetatable, select =
  type, tostring, tonumber, pairs, ipairs, error, setmetatable, getmetatable, select
local concat = table.concat
local find, sub, format, lower = string.find, string.sub, string.format, string.lower
local async, now, cf_timeout = cf.async, cf.now, cf.timeout
local next_piece = body_mod.next_piece
local next_async = async(next_piece)

local M = {}

local VERSION = "0.1.0"
M.user_agent = "cfuture/" .. VERSION

local DEFAULTS = {
  max_per_host = 64,
  idle_timeout = 30000,
  -- none by default: the system's own limit applies (some 2 minutes on
  -- Linux), and a default timer would fire at once under a paused clock
  connect_timeout = false,
  redirects = 5,
  max_header_size = 65536,
  max_headers = 256,
  expect_timeout = 1000,
}
local DECODE_CHUNK = 65536
local DRAIN_MAX = 65536 -- a redirect's body up to this is read to keep its connection

-- ---------------------------------------------------------------------------
-- argument checks

local function raise(fname, fmt, ...) error(fname .. ": " .. format(fmt, ...), 3) end

local function what(v)
  if type(v) == "string" then return format("%q", #v > 40 and sub(v, 1, 40) .. "..." or v) end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  return type(v)
end

local function check_ms(fname, name, v, allow_false)
  if v == nil or (allow_false and v == false) then return v end
  if type(v) ~= "number" or v ~= v or v < 0 or v > 1e15 then
    raise(fname, "option %s must be a number of milliseconds from 0 to 1e15%s (got %s)", name,
      allow_false and " or false" or "", what(v))
  end
  return v
end

local function check_int(fname, name, v, lo, hi)
  if v == nil then return v end
  if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
    raise(fname, "option %s must be an integer from %d to %d (got %s)", name, lo, hi, what(v))
  end
  return v
end

-- ---------------------------------------------------------------------------
-- pools

local Pool = {}
Pool.__index = Pool
Pool.__name = "cfuture.http.Pool"
M.Pool = Pool

local POOL_OPTIONS = { max_per_host = true, idle_timeout = true, max_idle_per_host = true }

--- http.pool([opts]) -> Pool
function M.pool(opts)
  local fname = "http.pool"
  if opts ~= nil and type(opts) ~= "table" then
    raise(fname, "argument #1 must be a table of options or nil (got %s)", what(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not POOL_OPTIONS[k] then raise(fname, "unknown option %s", tostring(k)) end
  end
  local max = check_int(fname, "max_per_host", opts.max_per_host, 1, 2 ^ 31) or DEFAULTS.max_per_host
  return setmetatable({
    hosts = {},
    max_per_host = max,
    max_idle = check_int(fname, "max_idle_per_host", opts.max_idle_per_host, 0, 2 ^ 31) or max,
    idle_timeout = check_ms(fname, "idle_timeout", opts.idle_timeout) or DEFAULTS.idle_timeout,
    closed = false,
    opened = 0, -- connections made
    reused = 0, -- requests sent on a kept-alive connection
    sweeper = nil,
  }, Pool)
end

local function check_pool(self, fname)
  if getmetatable(self) ~= Pool then
    error(format("%s: argument #1 must be a cfuture.http.Pool (call it with a colon; got %s)", fname,
      what(self)), 3)
  end
end

local function close_stream(s)
  if s and not s:is_closed() then s:close() end
end

local function close_idle(pool)
  for _, h in pairs(pool.hosts) do
    for i = h.nidle, 1, -1 do
      close_stream(h.idle[i].stream)
      h.idle[i] = nil
    end
    h.nidle = 0
  end
end

--- pool:close_idle(): close the idle connections now; the pool stays open.
function Pool:close_idle()
  check_pool(self, "pool:close_idle")
  close_idle(self)
end

--- pool:close(): close the idle connections; connections in use close when
-- their response ends; requests through a closed pool raise.
function Pool:close()
  check_pool(self, "pool:close")
  self.closed = true
  close_idle(self)
  if self.sweeper then
    self.sweeper:abort()
    self.sweeper = nil
  end
end

--- pool:stats() -> { idle = n, active = n, opened = n, reused = n, hosts = { [key] = { idle, active } } }
function Pool:stats()
  check_pool(self, "pool:stats")
  local out = { idle = 0, active = 0, opened = self.opened, reused = self.reused, hosts = {} }
  for key, h in pairs(self.hosts) do
    out.hosts[key] = { idle = h.nidle, active = h.active }
    out.idle = out.idle + h.nidle
    out.active = out.active + h.active
  end
  return out
end

function Pool:__tostring()
  if getmetatable(self) ~= Pool then return "cfuture.http.Pool" end
  local s = self:stats()
  return format("cfuture.http.Pool(%d idle, %d active%s)", s.idle, s.active,
    self.closed and ", closed" or "")
end

local default_pool
--- http.default_pool() -> the Pool requests use unless given one
function M.default_pool()
  if not default_pool then default_pool = M.pool() end
  return default_pool
end

local function host_of(pool, key)
  local h = pool.hosts[key]
  if not h then
    h = { key = key, sem = cf.semaphore(pool.max_per_host), idle = {}, nidle = 0, active = 0 }
    pool.hosts[key] = h
  end
  return h
end

-- Close idle connections past the pool's idle_timeout; runs while any are idle.
local function sweep(pool)
  while not pool.closed do
    cf.sleep(math.max(pool.idle_timeout / 2, 10)):await()
    local t, any = now(), false
    for _, h in pairs(pool.hosts) do
      local j = 0
      local idle = h.idle
      for i = 1, h.nidle do
        local c = idle[i]
        idle[i] = nil
        if t - c.idle_since >= pool.idle_timeout or c.stream:is_closed() then
          close_stream(c.stream)
        else
          j = j + 1
          idle[j] = c
        end
      end
      h.nidle = j
      if j > 0 then any = true end
    end
    if not any then break end
  end
  pool.sweeper = nil
end

-- Hand a connection back (keep: it may be reused) or close it; releases its
-- permit. Idempotent.
local function release(c, keep)
  if c.released then return end
  c.released = true
  local h, pool = c.host, c.pool
  if h then h.active = h.active - 1 end
  if keep and pool and not pool.closed and h.nidle < pool.max_idle and not c.stream:is_closed() then
    c.idle_since = now()
    local permit = c.permit
    c.permit = nil
    local n = h.nidle + 1
    h.idle[n] = c
    h.nidle = n
    if not pool.sweeper then
      pool.sweeper = cf.spawn { sweep, pool, name = "http.pool sweeper" }
      pool.sweeper:unref()
    end
    permit:release()
    return
  end
  close_stream(c.stream)
  if c.permit then
    c.permit:release()
    c.permit = nil
  end
end

-- Take a connection record for key: an idle connection, or one to connect
-- (stream nil). Awaits a permit when the host is at its limit.
local function checkout(pool, key, deadline, fname)
  local h = host_of(pool, key)
  local permit = h.sem:try_acquire()
  if not permit then
    local f = h.sem:acquire()
    if deadline then
      local left = deadline - now()
      permit = left > 0 and cf_timeout(left, f):await() or nil
      if not permit then
        return nil, fname .. ": timed out waiting for a free connection to " .. key, "ETIMEDOUT"
      end
    else
      permit = f:await()
    end
  end
  h.active = h.active + 1
  local idle, t = h.idle, now()
  while h.nidle > 0 do
    local n = h.nidle
    local c = idle[n]
    idle[n] = nil
    h.nidle = n - 1
    local s = c.stream
    if not s:is_closed() and t - c.idle_since < pool.idle_timeout and s:buffered() == 0 then
      c.permit = permit
      c.released = false
      c.uses = c.uses + 1
      pool.reused = pool.reused + 1
      return c
    end
    close_stream(s)
  end
  return { pool = pool, host = h, permit = permit, uses = 0, key = key }
end

-- ---------------------------------------------------------------------------
-- timeouts: await f within the deadline (nil: none); a timeout is
-- nil, TIMEOUT (never a stream's own error, which names its function)

local TIMEOUT = {}
local function await_by(f, deadline)
  if not deadline then return f:await() end
  local left = deadline - now()
  if left <= 0 then
    f = nil
    return nil, TIMEOUT
  end
  local r, m, c = cf_timeout(left, f):await()
  if r == nil and m == "timeout" and c == nil then return nil, TIMEOUT end
  return r, m, c
end

-- ---------------------------------------------------------------------------
-- connecting

local default_tls = { alpn = { "http/1.1" } }
local tls_keys = setmetatable({}, { __mode = "k" }) -- derived options -> pool key part
local context_ids, context_count = setmetatable({}, { __mode = "k" }), 0

local function is_context(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "cfuture.TlsContext"
end

-- The options' values as text, so that two tables saying the same share
-- connections and two saying different things never do (a table's address
-- is no key: a collected table's address comes back for another one).
local function key_of(o)
  local keys = {}
  for k in pairs(o) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = o[k]
    if is_context(v) then
      local id = context_ids[v]
      if not id then
        context_count = context_count + 1
        id = context_count
        context_ids[v] = id
      end
      v = "context#" .. id
    elseif type(v) == "table" then
      local l = {}
      for j = 1, #v do l[j] = tostring(v[j]) end
      v = "{" .. concat(l, ",") .. "}"
    end
    parts[i] = k .. "=" .. tostring(v)
  end
  return concat(parts, ";")
end

-- The cf.tls options for a request: a copy of the user's (read at each
-- request, so a changed table is never stale), or a context; ALPN http/1.1
-- is added when they make their own context.
local function tls_options(t)
  if t == nil then return default_tls end
  local o
  if is_context(t) then
    o = { context = t }
  else
    o = {}
    for k, v in pairs(t) do o[k] = v end
    if o.alpn == nil and o.context == nil then o.alpn = { "http/1.1" } end
  end
  tls_keys[o] = key_of(o)
  return o
end

local function with_servername(o, host)
  if o.servername or o.verify == false then return o end
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  c.servername = host
  return c
end

local function basic(user, password)
  return "Basic " .. cf.crypto.base64((user or "") .. ":" .. (password or ""))
end

-- Open c.stream for the request (a direct connection, or through the proxy;
-- TLS when https). Returns true or nil, message, code.
local connect = function(c, req, deadline)
  local fname, u, proxy = req.fname, req.u, req.proxy
  local ctimeout = req.connect_timeout
  local cdl = ctimeout and now() + ctimeout
  if deadline and (not cdl or deadline < cdl) then cdl = deadline end
  local host, port = u.host, u.port
  if proxy then host, port = proxy.host, proxy.port end
  local s, msg, code
  if u.scheme == "https" and not proxy then
    s, msg, code = await_by(cf.tls.connect(host, port, req.tls), cdl)
  else
    s, msg, code = await_by(cf.net.connect(host, port), cdl)
  end
  if not s then
    if msg == TIMEOUT then
      return nil, format("%s: connecting to %s:%d timed out", fname, host, port), "ETIMEDOUT"
    end
    return nil, format("%s: %s", fname, msg), code
  end
  c.stream = s
  c.pool.opened = c.pool.opened + 1
  if u.scheme == "https" and proxy then
    -- a tunnel through the proxy, then TLS inside it
    local target = url_mod.authority({ scheme = "https", host = u.host, port = u.port, default_port = false })
    local head = { "CONNECT ", target, " HTTP/1.1\r\nHost: ", target, "\r\n" }
    if proxy.user then head[#head + 1] = "Proxy-Authorization: " .. basic(proxy.user, proxy.password) .. "\r\n" end
    head[#head + 1] = "\r\n"
    local ok, m2, c2 = await_by(s:write(concat(head)), cdl)
    if not ok then
      return nil, m2 == TIMEOUT and format("%s: the proxy's CONNECT timed out", fname)
        or format("%s: %s", fname, m2), m2 == TIMEOUT and "ETIMEDOUT" or c2
    end
    local p = cf._http.parser("response")
    p:no_body()
    local buf, pos = "", 1
    while true do
      if pos <= #buf then
        local ev, v, np = p:execute(buf, pos)
        if ev == "head" then
          if v.status < 200 or v.status > 299 then
            return nil, format("%s: the proxy refused the tunnel to %s: %d %s", fname, target, v.status,
              v.reason), "EPROTO"
          end
          if np <= #buf then
            return nil, format("%s: the proxy sent bytes after its CONNECT answer", fname), "EPROTO"
          end
          break
        elseif ev == nil then
          return nil, format("%s: the proxy's answer: %s", fname, v), np
        end
        pos = #buf + 1
      else
        local data, m3, c3 = await_by(s:read(), cdl)
        if not data then
          if m3 == TIMEOUT then return nil, format("%s: the proxy's CONNECT timed out", fname), "ETIMEDOUT" end
          return nil, format("%s: %s", fname, m3 or "the proxy closed the connection"), c3 or "ECONNRESET"
        end
        buf, pos = data, 1
      end
    end
    local t, m4, c4 = await_by(cf.tls.wrap(s, with_servername(req.tls, u.host)), cdl)
    if not t then
      if m4 == TIMEOUT then return nil, format("%s: the TLS handshake timed out", fname), "ETIMEDOUT" end
      return nil, format("%s: %s", fname, m4), c4
    end
  end
  return true
end

-- ---------------------------------------------------------------------------
-- the request head and body

local function kind_of_body(b)
  if b == nil then return nil end
  local t = type(b)
  if t == "string" then return "string" end
  if t == "function" then return "iterator" end
  local mt = getmetatable(b)
  local name = type(mt) == "table" and mt.__name
  if name == "cfuture.File" then return "file" end
  if (t == "userdata" or t == "table") and type(b.read) == "function" then return "stream" end
  return false
end

-- Write the body after the head (already written or queued in `first`).
-- Returns sent bytes, or nil, message, code.
local function send_body(req, s, first, deadline)
  local fname, kind, b, chunked = req.fname, req.body_kind, req.body, req.chunked
  local sent = 0
  local function put(data)
    if #data > 65536 then -- a large piece goes as it is, not copied into another string
      local pre = chunked and format("%x\r\n", #data) or ""
      if first then pre = first .. pre end
      first = nil
      if pre ~= "" then
        local ok, m, c = await_by(s:write(pre), deadline)
        if not ok then return ok, m, c end
      end
      local ok, m, c = await_by(s:write(data), deadline)
      if not ok or not chunked then return ok, m, c end
      return await_by(s:write("\r\n"), deadline)
    end
    if chunked then data = format("%x\r\n", #data) .. data .. "\r\n" end
    if first then
      data = first .. data
      first = nil
    end
    return await_by(s:write(data), deadline)
  end
  local function failed(m, c)
    if m == TIMEOUT then return nil, fname .. ": sending the request body timed out", "ETIMEDOUT" end
    return nil, format("%s: %s", fname, m), c
  end
  if kind == "string" then
    local ok, m, c = put(b)
    if not ok then return failed(m, c) end
    sent = #b
  elseif kind then
    local read
    if kind == "file" then
      read = function() return b:read(65536):await() end
    elseif kind == "stream" then
      read = function() return b:read(65536):await() end
    else
      read = b
    end
    while true do
      local data, m, c = read()
      if data == nil then
        if m then return nil, format("%s: reading the request body: %s", fname, m), c end
        break
      end
      if type(data) ~= "string" then
        error(format("%s: the body iterator must return strings (got %s)", fname, what(data)), 0)
      end
      if data ~= "" then
        sent = sent + #data
        if req.length and sent > req.length then
          return nil, format("%s: the body is longer than its Content-Length (%d bytes)", fname, req.length),
            "EINVAL"
        end
        local ok, m2, c2 = put(data)
        if not ok then return failed(m2, c2) end
      end
    end
  end
  if req.length and sent ~= req.length then
    return nil, format("%s: the body is %d bytes, its Content-Length said %d", fname, sent, req.length), "EINVAL"
  end
  if chunked then
    local last = "0\r\n\r\n"
    if first then last = first .. last end
    local ok, m, c = await_by(s:write(last), deadline)
    if not ok then return failed(m, c) end
  elseif first then
    local ok, m, c = await_by(s:write(first), deadline)
    if not ok then return failed(m, c) end
  end
  return sent
end

-- The head as a string. Request headers the caller gave win over defaults.
local function build_head(req)
  local u, h = req.u, req.headers
  local target = req.proxy and u.scheme == "http" and url_mod.build({ scheme = u.scheme, host = u.host,
    port = u.port, default_port = u.default_port, path = u.path, query = u.query }) or url_mod.target(u)
  local buf = { req.method, " ", target, " HTTP/1.1\r\n" }
  local k = 5
  local function add(name, value)
    buf[k], buf[k + 1], buf[k + 2], buf[k + 3] = name, ": ", value, "\r\n"
    k = k + 4
  end
  if not (h and h:has("Host")) then add("Host", url_mod.authority(u)) end
  if h then k = headers_mod.append_wire(h, buf, k) end
  if not (h and h:has("User-Agent")) then add("User-Agent", M.user_agent) end
  if not (h and h:has("Accept")) then add("Accept", "*/*") end
  if req.decode then add("Accept-Encoding", "gzip, deflate") end
  if req.auth and not (h and h:has("Authorization")) then add("Authorization", req.auth) end
  if req.proxy and req.proxy.user and u.scheme == "http" and not (h and h:has("Proxy-Authorization")) then
    add("Proxy-Authorization", basic(req.proxy.user, req.proxy.password))
  end
  if req.body_kind and not req.user_framing then
    if req.chunked then add("Transfer-Encoding", "chunked") else add("Content-Length", tostring(req.length)) end
  elseif not req.body_kind and (req.method == "POST" or req.method == "PUT" or req.method == "PATCH")
    and not (h and h:has("Content-Length")) then
    add("Content-Length", "0")
  end
  if req.expect then add("Expect", "100-continue") end
  if not req.keep_alive then add("Connection", "close") end
  buf[k] = "\r\n"
  return concat(buf, "", 1, k)
end

-- ---------------------------------------------------------------------------
-- responses

-- The body of a message that has none.
local empty_read = async(function(_, all) if all then return "" end end)
local EMPTY = {
  read = function() return empty_read(nil, false) end,
  read_all = function() return empty_read(nil, true) end,
  lines = function() return function() end end,
  chunks = function() return function() end end,
  done = function() return true end,
}

local Response = {}
Response.__index = Response
Response.__name = "cfuture.http.Response"
M.Response = Response

local function check_res(self, fname)
  if getmetatable(self) ~= Response then
    error(format("%s: argument #1 must be a cfuture.http.Response (call it with a colon; got %s)", fname,
      what(self)), 3)
  end
end

-- The next piece of the body through the decoder and the deadline, for the
-- slow path (decoding, a whole-request timeout, a closed response).
local function raw_piece(res)
  local r = res._r
  if r == EMPTY then return nil end
  if not res._deadline then return next_piece(r) end
  local p, m, c = await_by(next_async(r), res._deadline)
  if p == nil and m == TIMEOUT then
    if not r:done() then release(res._c, false) end
    res._failed = { res._fname .. ": the request timed out", "ETIMEDOUT" }
    return nil, res._failed[1], res._failed[2]
  end
  return p, m, c
end

local function piece(res)
  if res._failed then return nil, res._failed[1], res._failed[2] end
  if res._closed then return nil, res._fname .. ": the response is closed", "ECANCELED" end
  local z = res._z
  if not z then return raw_piece(res) end
  if res._zmore then
    local out, more = z:push("", DECODE_CHUNK)
    if not out then
      if not res._r:done() then release(res._c, false) end
      res._failed = { res._fname .. ": " .. more, "EPROTO" }
      return nil, res._failed[1], res._failed[2]
    end
    res._zmore = more
    if out ~= "" then return out end
  end
  while true do
    local p, m, c = raw_piece(res)
    if not p then
      if m then return nil, m, c end
      if res._zin == 0 then return nil end -- an empty body is an empty body, whatever its encoding
      local ok, zm = z:finish()
      if not ok then
        res._failed = { res._fname .. ": " .. zm, "EPROTO" }
        return nil, res._failed[1], res._failed[2]
      end
      return nil
    end
    res._zin = res._zin + #p
    local out, more = z:push(p, DECODE_CHUNK)
    if not out then
      if not res._r:done() then release(res._c, false) end
      res._failed = { res._fname .. ": " .. more, "EPROTO" }
      return nil, res._failed[1], res._failed[2]
    end
    res._zmore = more
    if out ~= "" then return out end
  end
end

local slow_read = async(function(res, max)
  local p, m, c = piece(res)
  if not p then return nil, m, c end
  if max and #p > max then
    res._pending = sub(p, max + 1)
    p = sub(p, 1, max)
  end
  return p
end)

local function slow_piece(res)
  local p = res._pending
  if p then
    res._pending = nil
    return p
  end
  return piece(res)
end

local slow_read_all = async(function(res, max)
  local parts, n, total = {}, 0, 0
  while true do
    local p, m, c = slow_piece(res)
    if not p then
      if m then return nil, m, c end
      return concat(parts, "", 1, n)
    end
    total = total + #p
    if max and total > max then
      if not res._r:done() then release(res._c, false) end
      res._failed = { format("%s: body too large (more than %d bytes)", res._fname, max), "EMSGSIZE" }
      return nil, res._failed[1], res._failed[2]
    end
    n = n + 1
    parts[n] = p
  end
end)

local function slow_path(res) return res._z or res._deadline or res._closed or res._failed end

--- res:read([max]) -> future of the next body bytes (nil at the end)
function Response:read(max)
  check_res(self, "response:read")
  body_mod.check_max(max, "response:read", 2)
  if not slow_path(self) then return self._r:read(max) end
  local p = self._pending
  if p then
    if max and #p > max then
      self._pending = sub(p, max + 1)
      p = sub(p, 1, max)
    else
      self._pending = nil
    end
    return cf.async(function() return p end)()
  end
  return slow_read(self, max)
end

--- res:read_all([max_bytes]) -> future of the whole (rest of the) body
function Response:read_all(max)
  check_res(self, "response:read_all")
  body_mod.check_max(max, "response:read_all", 2)
  if not slow_path(self) then return self._r:read_all(max) end
  return slow_read_all(self, max)
end

--- for data in res:chunks([max]) do ... end (raises on error)
function Response:chunks(max)
  check_res(self, "response:chunks")
  body_mod.check_max(max, "response:chunks", 2)
  if not slow_path(self) then return self._r:chunks(max) end
  return function()
    local p, m = slow_piece(self)
    if not p then
      if m then error(m, 2) end
      return nil
    end
    if max and #p > max then
      self._pending = sub(p, max + 1)
      p = sub(p, 1, max)
    end
    return p
  end
end

--- for line in res:lines([max]) do ... end (raises on error)
function Response:lines(max)
  check_res(self, "response:lines")
  body_mod.check_max(max, "response:lines", 2)
  if not slow_path(self) then return self._r:lines(max) end
  return body_mod.line_iterator(function() return slow_piece(self) end, max or 1048576,
    "response:lines")
end

--- res:close(): stop reading. A body not read to the end closes the
-- connection (it cannot be reused); reads then return nil, msg, "ECANCELED".
function Response:close()
  check_res(self, "response:close")
  if self._closed then return end
  self._closed = true
  if self._z then self._z:close() end
  if not self._r:done() then release(self._c, false) end
end
Response.__close = function(self) if getmetatable(self) == Response then self:close() end end

--- res:done() -> whether the whole body was read
function Response:done()
  check_res(self, "response:done")
  return self._r:done() and self._pending == nil and not self._zmore
end

function Response:__tostring()
  if getmetatable(self) ~= Response then return "cfuture.http.Response" end
  return format("cfuture.http.Response(%d %s, %s)", self.status, self.reason or "", self.url)
end

-- ---------------------------------------------------------------------------
-- one exchange on one connection

-- Read a response head: head, leftover | nil, message, code, got_any_byte.
-- Interim (1xx) responses are skipped, except 100 when `stop_at_100`.
local function read_head(req, c, deadline, stop_at_100)
  local p, s, fname = c.parser, c.stream, req.fname
  local buf, pos = c.leftover or "", 1
  c.leftover = nil
  local got = #buf > 0
  if req.method == "HEAD" then p:no_body() end
  while true do
    if pos <= #buf then
      local ev, v, np = p:execute(buf, pos)
      if ev == "head" then
        local st = v.status
        if st >= 200 or st == 101 then return v, sub(buf, np) end
        -- an interim response: its "done" is pending in the parser
        local ev2, _, np2 = p:execute(buf, np)
        if ev2 ~= "done" then return nil, fname .. ": a 1xx response with a body", "EPROTO", true end
        pos = np2
        if req.method == "HEAD" then p:no_body() end
        if st == 100 and stop_at_100 then
          c.leftover = sub(buf, pos)
          return v
        end
      elseif ev == "more" then
        pos = #buf + 1
      elseif ev == nil then
        return nil, format("%s: %s", fname, v), np, true
      else
        return nil, fname .. ": unexpected " .. tostring(ev) .. " before the response head", "EPROTO", true
      end
    else
      local data, m, code = await_by(s:read(), deadline)
      if not data then
        if m == TIMEOUT then return nil, fname .. ": timed out waiting for the response", "ETIMEDOUT", got end
        if m then return nil, format("%s: %s", fname, m), code, got end
        if got then
          return nil, fname .. ": the connection closed inside the response head", "EPROTO", got
        end
        return nil, fname .. ": the server closed the connection without answering", "ECONNRESET", got
      end
      got = true
      buf, pos = data, 1
    end
  end
end

-- Send the request on c and read the response head. Returns head, leftover
-- | nil, message, code, retryable.
local function exchange(req, c, deadline)
  local s = c.stream
  local hdl = deadline
  if req.header_timeout then
    local h = now() + req.header_timeout
    if not hdl or h < hdl then hdl = h end
  end
  if req.body_kind_reset then req.body_kind_reset() end
  local head = build_head(req)
  local reused = c.uses > 0
  if req.expect and req.body_kind then
    local ok, m, code = await_by(s:write(head), deadline)
    if not ok then
      if m == TIMEOUT then return nil, req.fname .. ": sending the request timed out", "ETIMEDOUT" end
      return nil, format("%s: %s", req.fname, m), code, reused
    end
    local edl = now() + req.expect
    if hdl and hdl < edl then edl = hdl end
    local v, left, m2, got = read_head(req, c, edl, true)
    if v and v.status ~= 100 then
      -- a final answer before the body: the body is not sent, and the
      -- connection cannot carry another request
      c.no_reuse = true
      return v, left
    end
    if not v and m2 ~= "ETIMEDOUT" then return nil, left, m2, reused and not got end
    local sent, m3, c3 = send_body(req, s, nil, deadline)
    if not sent then return nil, m3, c3 end
    local v2, left2, m4, got2 = read_head(req, c, hdl)
    if not v2 then return nil, left2, m4 end
    return v2, left2
  end
  if req.body_kind == "string" and #req.body <= 65536 and not req.chunked then
    local ok, m, code = await_by(s:write(head .. req.body), deadline)
    if not ok then
      if m == TIMEOUT then return nil, req.fname .. ": sending the request timed out", "ETIMEDOUT" end
      return nil, format("%s: %s", req.fname, m), code, reused
    end
  elseif req.body_kind then
    local sent, m, code = send_body(req, s, head, deadline)
    if not sent then
      -- the server may have answered and closed (413): read its answer
      if code ~= "EINVAL" and code ~= "ETIMEDOUT" then
        local v, left = read_head(req, c, now() + 1000)
        if v then
          c.no_reuse = true
          return v, left
        end
      end
      return nil, m, code, reused and code ~= "EINVAL"
    end
  else
    local ok, m, code = await_by(s:write(head), deadline)
    if not ok then
      if m == TIMEOUT then return nil, req.fname .. ": sending the request timed out", "ETIMEDOUT" end
      return nil, format("%s: %s", req.fname, m), code, reused
    end
  end
  local v, left, m, got = read_head(req, c, hdl)
  if not v then
    local idem = req.method == "GET" or req.method == "HEAD" or req.method == "OPTIONS" or req.method == "PUT"
      or req.method == "DELETE" or req.method == "TRACE"
    return nil, left, m, reused and not got and (idem or m == "ECONNRESET")
  end
  return v, left
end

local ENCODINGS = { gzip = "gzip", ["x-gzip"] = "gzip", deflate = "deflate" }

-- Make the Response for head on connection c.
local function respond(req, c, head, leftover, final_url, deadline)
  local keep = head.keep_alive and req.keep_alive and not c.no_reuse
  local res = setmetatable({
    status = head.status, reason = head.reason, version = head.version,
    headers = headers_mod.wrap(head.headers), url = final_url, method = req.method,
    _c = c, _fname = req.fname, _deadline = deadline,
  }, Response)
  local r = body_mod.reader(c.stream, c.parser, leftover, {
    name = req.fname, max = req.max_body,
    on_done = function(left)
      c.leftover = nil
      if head.chunked then res.trailers = headers_mod.wrap(c.parser:trailers()) end
      release(c, keep and left == "")
    end,
    on_error = function() release(c, false) end,
  })
  res._r = r
  local st = head.status
  if (st == 204 or st == 304) and req.method ~= "HEAD" and (head.chunked or (head.content_length or 0) > 0) then
    -- no body, whatever the head says (RFC 9112 6.3); the parser waits for
    -- the one its headers announce, so the message ends here instead
    c.parser:reset("response")
    res._r = EMPTY
    release(c, keep and leftover == "")
  elseif req.method == "HEAD" or st == 204 or st == 304 or head.content_length == 0 then
    next_piece(r) -- no body: hand the connection back now
  elseif req.decode then
    local enc = res.headers:get("Content-Encoding")
    local fmt = enc and ENCODINGS[lower(enc)]
    if fmt then
      res._z = cf._zlib.inflater(fmt)
      res._zin = 0
      res.headers:remove("Content-Encoding")
      res.headers:remove("Content-Length")
      res.decoded = fmt
    end
  end
  return res
end

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local function same_origin(a, b) return a.scheme == b.scheme and a.host == b.host and a.port == b.port end

-- Read and drop a redirect's body (keeps the connection) or close it.
local function discard_body(res)
  local n = tonumber(res.headers:get("Content-Length"))
  if (n and n <= DRAIN_MAX) or (not n and res.headers:has_token("Transfer-Encoding", "chunked")) then
    local ok = res:read_all(DRAIN_MAX):await()
    if ok then return end
  end
  res:close()
end

local function pool_key(req)
  local u, proxy = req.u, req.proxy
  local key = u.scheme .. "://" .. url_mod.authority({ scheme = u.scheme, host = u.host, port = u.port })
  if proxy then
    if u.scheme == "http" then
      key = "http-proxy://" .. proxy.host .. ":" .. proxy.port
    else
      key = key .. " via " .. proxy.host .. ":" .. proxy.port
    end
  end
  if u.scheme == "https" and req.tls ~= default_tls then key = key .. " tls " .. tls_keys[req.tls] end
  return key
end

-- The request task.
local run = async(function(req)
  local deadline = req.timeout and now() + req.timeout
  local current, current_res -- the connection or response this task holds, if any
  cf.defer(function()
    if current then release(current, false) end
    if current_res then current_res:close() end
  end)
  local pool, fname = req.pool, req.fname
  local hops, attempts = 0, 0
  while true do
    local key = pool_key(req)
    local c, m, code = checkout(pool, key, deadline, fname)
    if not c then return nil, m, code end
    current = c
    if not c.stream then
      local ok, m2, c2 = connect(c, req, deadline)
      if not ok then
        current = nil
        release(c, false)
        return nil, m2, c2
      end
      c.parser = cf._http.parser("response", req.limits)
    elseif req.limits ~= c.limits then
      c.parser = cf._http.parser("response", req.limits)
    end
    c.limits = req.limits
    local head, left, m3, retry = exchange(req, c, deadline)
    if not head then
      current = nil
      release(c, false)
      attempts = attempts + 1
      -- a kept-alive connection the server had closed: the others of that
      -- host were likely closed too (a restart); try a fresh one
      if not (retry and attempts <= 2 and req.replayable) then return nil, left, m3 end
      local h = c.host
      for i = h.nidle, 1, -1 do
        close_stream(h.idle[i].stream)
        h.idle[i] = nil
      end
      h.nidle = 0
    else
      local res = respond(req, c, head, left, req.built or url_mod.build(req.u), deadline)
      current = nil
      current_res = res
      local st = res.status
      local loc = REDIRECT[st] and req.redirects > 0 and res.headers:get("Location")
      if not loc then
        current_res = nil
        return res
      end
      if hops >= req.redirects then
        res:close()
        return nil, format("%s: too many redirects (more than %d)", fname, req.redirects), "ELOOP"
      end
      local to_method, keep_body = req.method, true
      if st == 303 and req.method ~= "HEAD" then
        to_method, keep_body = "GET", false
      elseif (st == 301 or st == 302) and req.method == "POST" then
        to_method, keep_body = "GET", false
      end
      if keep_body and req.body_kind and not req.replayable then
        current_res = nil
        return res -- the body cannot be sent again: the redirect is the answer
      end
      local target = url_mod.resolve(req.u, loc)
      local nu = target and url_mod.parse(target)
      if not nu or (nu.scheme ~= "http" and nu.scheme ~= "https") then
        res:close()
        return nil, format("%s: cannot follow the redirect to %s", fname, tostring(loc)), "EPROTO"
      end
      discard_body(res)
      current_res = nil
      hops = hops + 1
      attempts = 0
      if not same_origin(nu, req.u) then
        -- credentials stay with the origin they were given for
        if nu.user then
          req.auth = basic(nu.user, nu.password)
        elseif not req.auth_from_opts or nu.host ~= req.u.host then
          req.auth = nil
        end
        if req.headers then
          req.headers:remove("Authorization")
          req.headers:remove("Cookie")
          req.headers:remove("Host")
        end
        if nu.scheme == "https" and not req.tls_set then req.tls = default_tls end
      end
      nu.user, nu.password = nil, nil
      req.u, req.built = nu, nil
      if not keep_body then
        req.method = to_method
        req.body, req.body_kind, req.chunked, req.length = nil, nil, false, nil
        req.expect = false
        if req.headers then
          req.headers:remove("Content-Type")
          req.headers:remove("Content-Length")
          req.headers:remove("Transfer-Encoding")
        end
      end
    end
  end
end)

-- ---------------------------------------------------------------------------
-- http.request and friends

local REQUEST_OPTIONS = {
  headers = true, body = true, length = true, query = true, timeout = true, connect_timeout = true,
  header_timeout = true, redirects = true, decompress = true, auth = true, proxy = true, pool = true,
  tls = true, expect_continue = true, max_header_size = true, max_headers = true, max_body = true,
  keep_alive = true,
}

local function check_method(fname, m)
  if type(m) ~= "string" or not find(m, "^[%w!#$%%&'*+%-.^_`|~]+$") then
    raise(fname, "argument #1 must be a method name such as \"GET\" (got %s)", what(m))
  end
  return m
end

local limits_cache = {}
local function limits_of(mhs, mh)
  local k = mhs .. ":" .. mh
  local l = limits_cache[k]
  if not l then
    l = { max_header_size = mhs, max_headers = mh }
    limits_cache[k] = l
  end
  return l
end

local function parse_proxy(fname, p)
  if p == nil or p == false then return nil end
  if type(p) ~= "string" then raise(fname, "option proxy must be an http:// URL or false (got %s)", what(p)) end
  local u, err = url_mod.parse(p)
  if not u or u.scheme ~= "http" then
    raise(fname, "option proxy must be an http:// URL (%s)", err or "got " .. p)
  end
  return u
end

-- Parsed URLs by their text (a program fetches the same few URLs again
-- and again): { u = parsed, built = its text without userinfo }; emptied
-- when it grows past 256 entries.
local url_cache, url_cached = {}, 0
local function parse_url(fname, target, argn)
  local e = url_cache[target]
  if not e then
    local u, err = url_mod.parse(target)
    if not u then raise(fname, "argument #%d must be an http:// or https:// URL (%s)", argn, err) end
    if u.scheme ~= "http" and u.scheme ~= "https" then
      raise(fname, "argument #%d must be an http:// or https:// URL (got %s)", argn, what(target))
    end
    if url_cached >= 256 then url_cache, url_cached = {}, 0 end
    e = { u = u, built = url_mod.build(u) }
    url_cache[target] = e
    url_cached = url_cached + 1
  end
  local c = {}
  for k, v in pairs(e.u) do c[k] = v end
  return c, e.built
end

-- Check the arguments and make the request record.
local function prepare(fname, method, target, opts, argn)
  method = check_method(fname, method)
  if type(target) ~= "string" then
    raise(fname, "argument #%d must be an http:// or https:// URL (got %s)", argn, what(target))
  end
  local u, built = parse_url(fname, target, argn)
  if opts ~= nil and type(opts) ~= "table" then
    raise(fname, "argument #%d must be a table of options or nil (got %s)", argn + 1, what(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not REQUEST_OPTIONS[k] then raise(fname, "unknown option %s", tostring(k)) end
  end
  local req = { fname = fname, method = method, u = u, built = built }
  -- headers: a Headers object or a table, copied (redirects edit the copy)
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then
      raise(fname, "option headers must be a table or a cfuture.http.Headers (got %s)", what(opts.headers))
    end
    local ok, h = pcall(headers_mod.new, opts.headers, fname)
    if not ok then error(h, 2) end
    req.headers = h
  end
  local h = req.headers
  if opts.query ~= nil then
    if type(opts.query) ~= "table" then raise(fname, "option query must be a table (got %s)", what(opts.query)) end
    local q = url_mod.encode_query(opts.query)
    if q ~= "" then
      u.query = u.query and u.query ~= "" and (u.query .. "&" .. q) or q
      req.built = nil
    end
  end
  -- the body
  local b = opts.body
  local kind = kind_of_body(b)
  if kind == false then
    raise(fname, "option body must be a string, a cfuture file, a stream or an iterator function (got %s)", what(b))
  end
  req.body, req.body_kind = b, kind
  req.length = check_int(fname, "length", opts.length, 0, 2 ^ 53)
  if kind == "string" then
    if req.length and req.length ~= #b then
      raise(fname, "option length is %d but the body is %d bytes", req.length, #b)
    end
    req.length = #b
  end
  local user_cl = h and h:get("Content-Length")
  local user_te = h and h:get("Transfer-Encoding")
  if user_te then
    if not h:has_token("Transfer-Encoding", "chunked") then
      raise(fname, "option headers: only the chunked Transfer-Encoding is supported (got %q)", user_te)
    end
    if user_cl then raise(fname, "option headers: Content-Length and Transfer-Encoding together") end
    if not kind then raise(fname, "option headers: Transfer-Encoding without a body") end
    req.chunked, req.user_framing = true, true
  elseif user_cl then
    local n = tonumber(user_cl)
    if not n or n % 1 ~= 0 or n < 0 or not find(user_cl, "^%s*%d+%s*$") then
      raise(fname, "option headers: Content-Length must be a number of bytes (got %q)", user_cl)
    end
    if req.length and req.length ~= n then
      raise(fname, "option headers: Content-Length is %d but the body is %d bytes", n, req.length)
    end
    if kind then req.length, req.user_framing = n, true end
  end
  if kind and not req.length and not req.chunked then req.chunked = true end
  if kind == "file" then
    req.replayable = true
  elseif kind == "string" or kind == nil then
    req.replayable = true
  end
  -- timeouts (ms)
  req.timeout = check_ms(fname, "timeout", opts.timeout, true) or nil
  local ct = check_ms(fname, "connect_timeout", opts.connect_timeout, true)
  if ct == nil then ct = DEFAULTS.connect_timeout end
  req.connect_timeout = ct or nil
  req.header_timeout = check_ms(fname, "header_timeout", opts.header_timeout, true) or nil
  local redirects = opts.redirects
  if redirects == false then redirects = 0 end
  req.redirects = check_int(fname, "redirects", redirects, 0, 1000) or DEFAULTS.redirects
  if opts.decompress ~= nil and type(opts.decompress) ~= "boolean" then
    raise(fname, "option decompress must be a boolean (got %s)", what(opts.decompress))
  end
  req.decode = opts.decompress ~= false and not (h and h:has("Accept-Encoding"))
  if opts.keep_alive ~= nil and type(opts.keep_alive) ~= "boolean" then
    raise(fname, "option keep_alive must be a boolean (got %s)", what(opts.keep_alive))
  end
  req.keep_alive = opts.keep_alive ~= false and not (h and h:has_token("Connection", "close"))
  -- credentials: opts.auth, else the URL's userinfo
  local auth = opts.auth
  if auth ~= nil then
    local user, pw
    if type(auth) == "string" then
      user, pw = auth:match("^([^:]*):(.*)$")
      if not user then user, pw = auth, "" end
    elseif type(auth) == "table" and type(auth[1]) == "string" and (auth[2] == nil or type(auth[2]) == "string") then
      user, pw = auth[1], auth[2]
    else
      raise(fname, "option auth must be \"user:password\" or { user, password } (got %s)", what(auth))
    end
    req.auth, req.auth_from_opts = basic(user, pw), true
  elseif u.user then
    req.auth = basic(u.user, u.password)
  end
  u.user, u.password = nil, nil
  req.proxy = parse_proxy(fname, opts.proxy)
  -- the pool
  local pool = opts.pool
  if pool == nil then
    pool = M.default_pool()
  elseif pool == false then
    pool = M.pool({ max_idle_per_host = 0 })
  elseif getmetatable(pool) ~= Pool then
    raise(fname, "option pool must be a cfuture.http.Pool or false (got %s)", what(pool))
  end
  if pool.closed then raise(fname, "option pool: the pool is closed") end
  req.pool = pool
  if opts.tls ~= nil then
    if type(opts.tls) ~= "table" and not is_context(opts.tls) then
      raise(fname, "option tls must be a table of cf.tls options or a cf.tls context (got %s)", what(opts.tls))
    end
    req.tls_set = true
  end
  req.tls = tls_options(opts.tls)
  local ec = opts.expect_continue
  if ec == true then ec = DEFAULTS.expect_timeout end
  req.expect = kind and check_ms(fname, "expect_continue", ec, true) or false
  if ec ~= nil and type(ec) ~= "number" and ec ~= false then
    raise(fname, "option expect_continue must be true, false or a number of milliseconds (got %s)", what(ec))
  end
  req.limits = limits_of(check_int(fname, "max_header_size", opts.max_header_size, 1, 81920) or DEFAULTS.max_header_size,
    check_int(fname, "max_headers", opts.max_headers, 1, 10000) or DEFAULTS.max_headers)
  req.max_body = check_int(fname, "max_body", opts.max_body, 0, 2 ^ 53)
  if kind == "file" then
    -- a file is sent from where it stands; a redirect sends it again from there
    local start
    req.body_kind_reset = function()
      if start == nil then
        start = b:seek("cur", 0):await()
        local st = b:stat():await()
        if not req.length and st and st.size then
          req.length = st.size - start
          req.chunked = false
        end
      else
        b:seek("set", start):await()
      end
    end
  end
  return req
end

--- http.request(method, url [, opts]) -> future of a Response | nil, message, code
function M.request(method, target, opts)
  return run(prepare("http.request", method, target, opts, 2))
end

--- http.get(url [, opts])
function M.get(target, opts)
  return run(prepare("http.get", "GET", target, opts, 1))
end

--- http.post(url, body [, opts])
function M.post(target, b, opts)
  if opts ~= nil and type(opts) ~= "table" then
    raise("http.post", "argument #3 must be a table of options or nil (got %s)", what(opts))
  end
  if opts and opts.body ~= nil then raise("http.post", "the body is argument #2, not option body") end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  o.body = b
  local req = prepare("http.post", "POST", target, o, 1)
  return run(req)
end

return M
