-- bench/websocket on cfuture.
--   lua5.4 cfuture.lua server [PORT]          an echo server on 127.0.0.1 (cf.http +
--                                             websocket.accept); prints the port
--   lua5.4 cfuture.lua client PORT N SIZE C   C connections share N round trips of
--                                             SIZE-byte binary messages (each
--                                             connection: send, await the echo,
--                                             repeat); prints "<msgs/s> <seconds>
--                                             <client CPU microseconds per round trip>"
-- this checkout's lua/ and build/ first
local root = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local cf = require "cfuture"
local websocket = require "cfuture.websocket"

local mode = arg[1]
if mode == "server" then
  local http = require "cfuture.http"
  local srv = assert(http.listen("127.0.0.1", tonumber(arg[2]) or 0, function(req, res)
    local ws = websocket.accept(req, res, { max_message = 64 * 1024 * 1024 }):await()
    if not ws then return end
    for data, kind in ws:messages() do
      if not ws:send(data, kind):await() then break end
    end
  end))
  local _, port = srv:address()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  cf.run()
elseif mode == "client" then
  local port, n, size, c = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]) or 1
  local msg = ("x"):rep(size)
  cf.block_on(function()
    local conns = {}
    for i = 1, c do
      conns[i] = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/", { max_message = 64 * 1024 * 1024 }):await())
    end
    local t0, c0 = cf.now(), os.clock()
    local per = math.floor(n / c)
    local tasks = {}
    for i = 1, c do
      local ws = conns[i]
      tasks[i] = cf.spawn(function()
        for _ = 1, per do
          assert(ws:send(msg, "binary"):await())
          local got = ws:receive():await()
          assert(got and #got == size)
        end
      end)
    end
    for i = 1, c do tasks[i]:await() end
    local secs, cpu = (cf.now() - t0) / 1000, os.clock() - c0
    for i = 1, c do conns[i]:close():await() end
    io.stdout:write(("%.0f %.3f %.1f\n"):format(per * c / secs, secs, cpu * 1e6 / (per * c)))
  end)
else
  io.stderr:write("usage: cfuture.lua server [PORT] | client PORT N SIZE C\n")
  os.exit(2)
end
