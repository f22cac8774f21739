-- http_server: a small HTTP/1.1 server with keep-alive; every connection is
-- a task, so slow requests do not hold up the others.
--
--   lua5.4 examples/http_server.lua [port]        (default 8080, 127.0.0.1)
--   curl http://127.0.0.1:8080/            -> hello
--   curl http://127.0.0.1:8080/sleep?ms=200 -> answers after 200 ms
--   curl -d 'some data' http://127.0.0.1:8080/echo
local cf = require "cfuture"

local port = tonumber(arg and arg[1]) or 8080
local MAX_HEADER = 8192

local reasons = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found",
                  [405] = "Method Not Allowed", [413] = "Payload Too Large" }

local function respond(conn, status, body, keep_alive, ctype)
  return conn:write(table.concat {
    "HTTP/1.1 ", status, " ", reasons[status] or "", "\r\n",
    "Content-Type: ", ctype or "text/plain", "\r\n",
    "Content-Length: ", #body, "\r\n",
    keep_alive and "" or "Connection: close\r\n",
    "\r\n", body,
  }):await()
end

local function handle(method, path, body)
  local route, query = path:match("^([^?]*)%??(.*)$")
  if route == "/" then
    return 200, "hello\n"
  elseif route == "/echo" then
    if method ~= "POST" then return 405, "POST only\n" end
    return 200, body
  elseif route == "/sleep" then
    local ms = tonumber(query:match("ms=(%d+)")) or 100
    cf.sleep(ms):await()
    return 200, ("slept %d ms\n"):format(ms)
  end
  return 404, "not found\n"
end

-- One connection: requests one after another until the client closes or
-- asks to (Connection: close, or HTTP/1.0 without keep-alive).
local function serve(conn)
  local _ <close> = conn
  while true do
    local request_line = conn:read_line(MAX_HEADER):await()
    if not request_line then return end
    local method, path, version = request_line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
    if not method then
      respond(conn, 400, "bad request line\n", false)
      return
    end
    local headers = {}
    while true do
      local line = conn:read_line(MAX_HEADER):await()
      if not line then return end
      if line == "" then break end
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
    local body = ""
    local length = tonumber(headers["content-length"] or "0")
    if not length or length > 1048576 then
      respond(conn, 413, "body too large\n", false)
      return
    end
    if length > 0 then
      body = conn:read_exact(length):await()
      if not body or #body < length then return end
    end
    local connection = (headers["connection"] or ""):lower()
    local keep_alive = connection ~= "close" and (version == "1.1" or connection == "keep-alive")
    local status, reply = handle(method, path, body)
    if not respond(conn, status, reply, keep_alive) or not keep_alive then return end
  end
end

cf.block_on(function()
  local listener = assert(cf.net.listen("127.0.0.1", port, { backlog = 1024 }))
  print(("listening on http://127.0.0.1:%d/"):format(select(2, listener:local_address())))
  io.stdout:flush()
  local server = cf.spawn(function()
    for conn in listener:incoming() do cf.spawn(serve, conn) end
  end)
  cf.select(cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  listener:close()
  server:abort()
end)
