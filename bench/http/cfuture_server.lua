-- The cfuture.http server answering every request with a small response,
-- for bench/http/run.sh:  lua5.4 bench/http/cfuture_server.lua PORT
local cf = require "cfuture"
local http = require "cfuture.http"
local port = tonumber(arg[1]) or 8080
local hdrs = { ["Content-Type"] = "text/plain" }
cf.block_on(function()
  local srv = assert(http.listen("127.0.0.1", port, function(req, res)
    return 200, "hello world\n", hdrs
  end, { max_connections = 10000, backlog = 4096 }))
  print(("listening on http://127.0.0.1:%d/"):format(select(2, srv:address())))
  io.stdout:flush()
  cf.select(cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  srv:close(1000):await()
end)
