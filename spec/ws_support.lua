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
  local f = io.popen("env -u LD_PRELOAD " .. PY .. " -c 'import websockets' 2>/dev/null && echo yes")
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

-- A WebSocket server on cf.http on a free port: handler(ws, req) runs in
-- the request's task. opts go to websocket.accept; opts.tls makes it
-- https; opts.on_refused(err, code, status) hears of refused upgrades.
-- Returns the port and a stop function.
function M.server(handler, opts)
  local http = require "cfuture.http"
  opts = opts or {}
  local aopts = {}
  for k, v in pairs(opts) do if k ~= "tls" and k ~= "on_refused" then aopts[k] = v end end
  local srv = assert(http.listen("127.0.0.1", 0, function(req, res)
    local ws, err, code = websocket.accept(req, res, aopts):await()
    if not ws then
      if opts.on_refused then opts.on_refused(err, code, res:status_code()) end
      return
    end
    handler(ws, req)
  end, { tls = opts.tls }))
  local _, port = srv:address()
  return port, function() srv:close(0):await() end
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
