-- http_server: a small HTTP/1.1 server on cfuture.http (keep-alive,
-- pipelining, chunked bodies, limits and timeouts come with the module);
-- each connection is a task, so slow requests do not hold up the others.
--
--   lua5.4 examples/http_server.lua [port]        (default 8080, 127.0.0.1)
--   curl http://127.0.0.1:8080/            -> hello
--   curl http://127.0.0.1:8080/sleep?ms=200 -> answers after 200 ms
--   curl -d 'some data' http://127.0.0.1:8080/echo
local cf = require "cfuture"
local http = require "cfuture.http"

local port = tonumber(arg and arg[1]) or 8080

-- A handler returns status, body [, headers] (or writes through res).
local function handle(req)
  if req.path == "/" then
    return 200, "hello\n"
  elseif req.path == "/echo" then
    if req.method ~= "POST" then return 405, "POST only\n", { Allow = "POST" } end
    local body, err = req:read_all():await()
    if not body then return 400, err .. "\n" end
    return 200, body
  elseif req.path == "/sleep" then
    local ms = tonumber(req.query.ms) or 100
    cf.sleep(ms):await()
    return 200, ("slept %d ms\n"):format(ms)
  end
  return 404, "not found\n"
end

cf.block_on(function()
  local server = assert(http.listen("127.0.0.1", port, handle, { max_body = 1048576, backlog = 1024 }))
  print(("listening on http://127.0.0.1:%d/"):format(select(2, server:address())))
  io.stdout:flush()
  cf.select(cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  server:close(1000):await() -- requests in progress get a second to finish
end)
