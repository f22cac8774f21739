-- Publish/subscribe with a broadcast: every subscriber sees every message;
-- a slow subscriber that falls too far behind is told how many it missed.
-- Run: lua5.4 examples/pubsub.lua
local cf = require "cfuture"

local topic = cf.broadcast(8)

local function subscriber(name, delay_ms)
  local inbox = topic:subscribe()
  return cf.spawn { function()
    local seen = 0
    while true do
      local msg, status, lost = inbox:recv():await()
      if status == "closed" then break end
      if status == "lagged" then
        print(("%-6s missed %d message(s)"):format(name, lost))
      else
        seen = seen + 1
        print(("%-6s got %s"):format(name, msg))
        cf.sleep(delay_ms):await()
      end
    end
    return seen
  end, name = name }
end

cf.block_on(function()
  local fast = subscriber("fast", 0)
  local slow = subscriber("slow", 25)
  for i = 1, 12 do
    topic:send("news #" .. i)
    cf.sleep(2):await()
  end
  topic:close()
  print(("fast saw %d, slow saw %d of 12"):format(fast:await(), slow:await()))
end)
