-- cfuture: an async runtime for Lua on libuv.
-- The C module (cfuture.core) holds the runtime; this file adds the parts
-- that are clearest in Lua. require "cfuture" and require "cfuture.core"
-- return the same table.
local cf = require "cfuture.core"

local async, now, sleep_until = cf.async, cf.now, cf.sleep_until
local floor, type, setmetatable, error = math.floor, type, setmetatable, error

-- Interval timers -----------------------------------------------------------

local Interval = {}
Interval.__index = Interval
Interval.__name = "cfuture.Interval"

--- cf.interval(ms) -> interval whose :tick() future completes every ms
-- milliseconds. The first tick completes at once. Ticks missed because the
-- task was busy are skipped, keeping to the original schedule. A tick that
-- is cancelled (select, timeout) does not consume its deadline.
function cf.interval(ms)
  if type(ms) ~= "number" or not (ms > 0) or ms == math.huge then
    error(("interval: argument #1 must be a positive number of milliseconds (got %s)"):format(
      tostring(ms)), 2)
  end
  return setmetatable({ period = ms, due = nil, ticks = 0 }, Interval)
end

local tick = async(function(self)
  local t = now()
  local due = self.due or t
  if due > t then sleep_until(due):await() end
  t = now()
  local period = self.period
  local nxt = due + period
  if nxt <= t then nxt = nxt + floor((t - nxt) / period + 1) * period end
  self.due = nxt
  self.ticks = self.ticks + 1
  return due
end)

--- interval:tick() -> future of the tick's scheduled time (cf.now() units)
function Interval:tick()
  return tick(self)
end

--- interval:reset() -> the next tick completes one period from now
function Interval:reset()
  self.due = now() + self.period
end

-- Files ---------------------------------------------------------------------

local File = cf.fs.File

--- file:lines() -> iterator of the file's lines (without newlines), for use
-- inside a task: `for line in f:lines() do ... end`. A read error is raised.
function File:lines()
  return function()
    local line, err = self:read_line():await()
    if line == nil and err then error(err, 2) end
    return line
  end
end

require "cfuture.sync"(cf)

return cf
