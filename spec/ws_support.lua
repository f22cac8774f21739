-- Shared helpers of the WebSocket specs: running tests in a task with a
-- limit, the Python peer (spec/ws_peer.py on Debian's python3-websockets),
-- a minimal HTTP front for websocket.accept over a raw listener, and
-- connected stream pairs for frame-level tests.
local cf = require "cfuture"
local support = require "support"
local websocket = require "cfuture.websocket"

local M = {}
local slow = support.slow
M.slow = slow
M.C = cf._ws
local unpack = table.unpack or unpack

-- Run fn in a task; fail the test (not hang) after ms (scaled).
function M.run(fn, ms)
  return cf.block_on(function()
    local r = { cf.timeout((ms or 20000) * slow, cf.async(fn)()):await() }
    if r[1] == nil and r[2] == "timeout" and #r == 2 then error("the test timed out", 0) end
    return unpack(r)
  end)
end

local PY = "/usr/bin/python3"
function M.have_python()
  local f = io.popen(PY .. " -c 'import websockets' 2>/dev/null && echo yes")
  local ok = f:read("a"):match("yes")
  f:close()
  return ok ~= nil
end

-- Start spec/ws_peer.py with args (inside a task); returns the process.
-- Its stdout is piped: M.line(p) reads the next line.
function M.python(args)
  local spec = { PY, "spec/ws_peer.py", stdout = "pipe", stderr = "inherit",
    env = { LD_PRELOAD = false, PYTHONDONTWRITEBYTECODE = "1" } }
  for _, a in ipairs(args) do spec[#spec + 1] = a end
  return assert(cf.process.spawn(spec))
end

function M.line(p)
  local line = cf.timeout(15000 * slow, p.stdout:read_line()):await()
  return line
end

-- The Python echo server: returns the process and its port.
function M.python_server(tls_files)
  local p = M.python({ "server", unpack(tls_files or {}) })
  local line = M.line(p)
  local port = tonumber(line and line:match("^PORT (%d+)"))
  assert(port, "the Python server did not start: " .. tostring(line))
  return p, port
end

function M.stop(p)
  if p:status() == nil then p:kill() end
  p:wait():await()
end

-- What the core's HTTP server gives a handler, reduced to what
-- websocket.accept uses: req.method, req.target, req.headers:get(name),
-- res:upgrade(headers), and status/finish for a refusal. The request
-- head is read with read_until (the bytes after it stay in the stream).
local function fake_exchange(stream)
  local head = stream:read_until("\r\n\r\n", 16384):await()
  if not head then return nil end
  local method, target = head:match("^(%u+) (%S+) HTTP/1%.1\r\n")
  local list = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    list[#list + 1] = { name:lower(), value }
  end
  local req = { method = method, target = target, headers = {
    get = function(_, name)
      for _, h in ipairs(list) do if h[1] == name:lower() then return h[2] end end
    end,
  } }
  local res = { _status = 200, refused = nil }
  function res:status(n) self._status = n end
  function res:finish(body)
    self.refused = self._status
    return stream:write(("HTTP/1.1 %d Refused\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
      :format(self._status, #body, body))
  end
  function res:upgrade(headers)
    local out = { "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" }
    for k, v in pairs(headers) do out[#out + 1] = k .. ": " .. v .. "\r\n" end
    out[#out + 1] = "\r\n"
    local ok, err, code = stream:write(table.concat(out)):await()
    if not ok then return nil, err, code end
    return stream, ""
  end
  return req, res
end

-- A WebSocket server on a free port: handler(ws, req) runs in a task per
-- connection (the HTTP front is fake_exchange unless cf.http serves it).
-- opts go to websocket.accept; opts.tls makes it a cf.tls listener.
-- Returns the port and a stop function.
function M.server(handler, opts)
  opts = opts or {}
  local tls = opts.tls
  local aopts = {}
  for k, v in pairs(opts) do if k ~= "tls" and k ~= "on_refused" then aopts[k] = v end end
  local l = assert(tls and cf.tls.listen("127.0.0.1", 0, tls) or cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local task = cf.spawn(function()
    for conn in l:incoming() do
      cf.spawn(function()
        local req, res = fake_exchange(conn)
        if not req then conn:close() return end
        local ws, err, code = websocket.accept(req, res, aopts):await()
        if not ws then
          if not conn:is_closed() then conn:close() end
          if opts.on_refused then opts.on_refused(err, code, res.refused) end
          return
        end
        handler(ws, req)
      end)
    end
  end)
  return port, function() l:close() task:abort() end
end

-- An echo handler: every message back, same kind, until the end.
function M.echo(ws)
  for data, kind in ws:messages() do
    if not ws:send(data, kind):await() then break end
  end
end

-- A connected pair of TCP streams (inside a task): a, b.
function M.pair()
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local a, b = cf.join(cf.net.connect("127.0.0.1", port), l:accept()):await()
  l:close()
  return assert(a), assert(b)
end

-- Read frames from a raw stream with a decoder until one of opcode op
-- arrives (or the end): returns op, fin, payload, code, reason.
function M.read_frame(stream, side, want)
  local dec = M.C.decoder(side, 64 * 1024 * 1024)
  local input
  while true do
    local op, fin, payload, code, reason = dec:next(input)
    input = nil
    if op then
      if want == nil or op == want then return op, fin, payload, code, reason end
    elseif fin then
      error("read_frame: " .. fin)
    else
      input = stream:read():await()
      if not input then return nil end
    end
  end
end

return M
