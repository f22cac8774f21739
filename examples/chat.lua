-- chat: a line-based chat server. Every line a client sends reaches every
-- other client; `/nick NAME` renames, `/who` lists who is here, `/quit`
-- leaves. Idle clients are dropped after a while; Ctrl-C closes every
-- connection and exits 0. docs/TUTORIAL.md builds it step by step.
--
--   lua5.4 examples/chat.lua [port] [idle_seconds]   (default 7000, 300)
--   then, in two terminals: nc 127.0.0.1 7000
local cf = require "cfuture"

local PORT = tonumber(arg and arg[1]) or 7000
local IDLE_MS = (tonumber(arg and arg[2]) or 300) * 1000
local MAX_LINE = 1024

local room = cf.broadcast(64) -- every message to every client: { from = id, text = ... }
local names = {}              -- id -> name of everyone connected

local function who()
  local list = {}
  for _, name in pairs(names) do list[#list + 1] = name end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Copy the room's messages to one client until the room closes or the
-- client goes away.
local function forward(conn, rx, id)
  while true do
    local msg, why, n = rx:recv():await()
    if msg == nil and why == "closed" then return end
    local text = msg and msg.from ~= id and msg.text
      or why == "lagged" and ("(%d messages skipped)"):format(n)
    if text and not conn:write(text .. "\n"):await() then return end
  end
end

local function serve(conn, id)
  local _ <close> = conn -- closed however this task ends, cancellation included
  names[id] = "guest" .. id
  local rx = room:subscribe()
  room:send { from = id, text = names[id] .. " joined" }
  local writer <close> = setmetatable({ h = cf.spawn(forward, conn, rx, id) },
    { __close = function(self) self.h:abort() end })
  conn:write(("welcome, %s! here: %s. /nick NAME, /who, /quit\n"):format(names[id], who())):await()

  while true do
    local line, err, code = cf.timeout(IDLE_MS, conn:read_line(MAX_LINE)):await()
    if line == nil then
      if err == "timeout" then conn:write("idle too long, bye\n"):await() end
      if code == "ENOBUFS" then conn:write("line too long, bye\n"):await() end
      break
    end
    local cmd, rest = line:match("^/(%a+)%s*(.*)$")
    if cmd == "quit" then
      break
    elseif cmd == "who" then
      conn:write("here: " .. who() .. "\n"):await()
    elseif cmd == "nick" and rest:match("^[%w_-]+$") then
      room:send { from = id, text = names[id] .. " is now " .. rest }
      names[id] = rest
    elseif cmd then
      conn:write("unknown command or bad name: " .. line .. "\n"):await()
    elseif line ~= "" then
      room:send { from = id, text = names[id] .. ": " .. line }
    end
  end
  room:send { from = id, text = names[id] .. " left" }
  names[id] = nil
end

cf.block_on(function()
  local listener = assert(cf.net.listen("127.0.0.1", PORT))
  print(("chat on %s:%d"):format(listener:local_address()))
  io.stdout:flush()
  local server = cf.scope(function(s)
    local id = 0
    for conn in listener:incoming() do
      id = id + 1
      s:spawn { serve, conn, id, name = "client " .. id }
    end
  end)
  -- the first to finish wins; select cancels the server scope, and with it
  -- every client task (their <close> variables close the connections)
  local _, sig = cf.select(server, cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  listener:close()
  print(("%s: closed every connection"):format(sig))
end)
