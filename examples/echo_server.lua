-- echo_server: a TCP echo server, a task per connection.
--
--   lua5.4 examples/echo_server.lua [port] [host]     (default 7000 on 127.0.0.1)
--   then: nc 127.0.0.1 7000
--
-- Prints "listening on HOST:PORT" once ready; Ctrl-C stops it cleanly.
local cf = require "cfuture"

local port = tonumber(arg and arg[1]) or 7000
local host = arg and arg[2] or "127.0.0.1"

local function serve(conn)
  local peer, pport = conn:peer_address()
  io.stderr:write(("connection from %s:%d\n"):format(peer, pport))
  -- chunks() raises a read error; a failed write is raised by assert
  local ok, err = pcall(function()
    for data in conn:chunks() do
      assert(conn:write(data):await())
    end
  end)
  if not ok then io.stderr:write(err, "\n") end
  conn:close()
end

cf.block_on(function()
  local listener = assert(cf.net.listen(host, port))
  local h, p = listener:local_address()
  print(("listening on %s:%d"):format(h, p))
  io.stdout:flush()
  local server = cf.spawn(function()
    for conn in listener:incoming() do cf.spawn(serve, conn) end
  end)
  cf.signal.wait("SIGINT"):await()
  listener:close()
  server:abort()
  print("bye")
end)
