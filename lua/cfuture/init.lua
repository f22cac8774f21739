-- cfuture: an async runtime for Lua on libuv.
-- The C module (cfuture.core) holds the runtime; this file adds the parts
-- that are clearest in Lua. require "cfuture" and require "cfuture.core"
-- return the same table.
local cf = require "cfuture.core"

local async, now, sleep_until = cf.async, cf.now, cf.sleep_until
local floor, type, setmetatable, getmetatable, error, ipairs =
  math.floor, type, setmetatable, getmetatable, error, ipairs
local unpack = table.unpack or unpack -- LuaJIT: the 5.1 names
local pack = table.pack or function(...) return { n = select("#", ...), ... } end

-- A method's self must be the object it belongs to: say so, as the C side
-- does, instead of failing later on a field of the wrong value. `methods`
-- is the class's method table (the __index of its metatable).
-- Functions written in Lua raise like the C ones once the runtime has
-- closed (a finaliser that runs after cfuture's own at lua_close).
local function check_open(fname)
  if not pcall(now) then error(fname .. ": the cfuture runtime is closed", 3) end
end

local function check_self(self, methods, fname, what)
  local mt = getmetatable(self)
  if type(mt) ~= "table" or mt.__index ~= methods then
    error(("%s: argument #1 must be %s (call it with a colon; got %s)"):format(fname, what,
      type(self)), 3)
  end
end

-- Interval timers -----------------------------------------------------------

local Interval = {}
Interval.__index = Interval
Interval.__name = "cfuture.Interval"

--- cf.interval(ms [, {missed = "skip" | "burst" | "delay"}]) -> interval
-- whose :tick() future completes every ms milliseconds. The first tick
-- completes at once. Ticks missed because the task was busy (tokio's
-- MissedTickBehavior): "skip" (default) drops them and keeps to the
-- original schedule; "burst" delivers each missed tick at once until caught
-- up; "delay" starts the schedule again one period after the late tick. A
-- tick that is cancelled (select, timeout) does not consume its deadline.
local MAX_MS = 1e15 -- cf.sleep's limit; past ~1.8e13 ms a deadline never comes

local MISSED = { skip = true, burst = true, delay = true }

function cf.interval(ms, opts)
  check_open("interval")
  if type(ms) ~= "number" or not (ms > 0) or ms == math.huge then
    error(("interval: argument #1 must be a positive number of milliseconds (got %s)"):format(
      tostring(ms)), 2)
  end
  if ms > MAX_MS then
    error(("interval: argument #1 must be at most 1e15 milliseconds (got %s)"):format(
      tostring(ms)), 2)
  end
  local missed = "skip"
  if opts ~= nil then
    if type(opts) ~= "table" then
      error(("interval: argument #2 must be an options table (got %s)"):format(type(opts)), 2)
    end
    missed = opts.missed
    if missed == nil then missed = "skip" end
    if not MISSED[missed] then
      error(('interval: option missed must be "skip", "burst" or "delay" (got %s)'):format(
        tostring(missed)), 2)
    end
  end
  return setmetatable({ period = ms, due = nil, ticks = 0, missed = missed }, Interval)
end

local tick = async(function(self)
  local t = now()
  local due = self.due or t
  if due > t then sleep_until(due < MAX_MS and due or MAX_MS):await() end
  t = now()
  local period = self.period
  local nxt = due + period
  if nxt <= t then
    local missed = self.missed
    if missed == "delay" then
      nxt = t + period
    elseif missed == "skip" then
      local k = floor((t - nxt) / period + 1) -- periods missed (huge for a tiny period)
      nxt = k < math.huge and nxt + k * period or t + period
    end -- "burst": the next tick is due already
  end
  self.due = nxt
  self.ticks = self.ticks + 1
  return due
end)

--- interval:tick() -> future of the tick's scheduled time (cf.now() units)
function Interval:tick()
  check_self(self, Interval, "interval:tick", "an interval")
  return tick(self)
end

--- interval:reset() -> the next tick completes one period from now
function Interval:reset()
  check_self(self, Interval, "interval:reset", "an interval")
  self.due = now() + self.period
end

-- Files, streams, processes --------------------------------------------------

--- file:lines() -> iterator of lines (without newlines), for use inside a
-- task: `for line in f:lines() do ... end`. A read error is raised.
-- (stream:lines and stream:chunks are in C: they reuse one read future.)
local File = cf.fs.File
function File.lines(self)
  check_open("file:lines")
  check_self(self, File, "file:lines", "a file")
  if self:is_closed() then error("file:lines: the file is closed", 2) end
  return function()
    local line, err = self:read_line():await()
    if line == nil and err then error(err, 2) end
    return line
  end
end

local spawn_process = cf.process.spawn

--- cf.process.run(cmd [, args [, opts]]) -> future of code, stdout, stderr
-- [, signal]: run a program to completion, collecting its output. opts may
-- hold env, clear_env, cwd and input (a string fed to its stdin). The child
-- leads its own process group; a run that is cancelled (timeout, select,
-- abort) kills that group, so a shell's children stop too.
cf.process.run = async(function(cmd, args, opts)
  if type(cmd) ~= "string" then
    error(("process.run: argument #1 must be a program name (got %s)"):format(type(cmd)), 0)
  end
  if args ~= nil and type(args) ~= "table" then
    error(("process.run: argument #2 must be a table of arguments (got %s)"):format(type(args)), 0)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("process.run: argument #3 must be an options table (got %s)"):format(type(opts)), 0)
  end
  opts = opts or {}
  local input = opts.input
  if input ~= nil and type(input) ~= "string" then
    error(("process.run: option 'input' must be a string (got %s)"):format(type(input)), 0)
  end
  local spec = { cmd, env = opts.env, clear_env = opts.clear_env, cwd = opts.cwd, group = true,
    stdin = input and "pipe" or "null", stdout = "pipe", stderr = "pipe" }
  for i, a in ipairs(args or {}) do spec[i + 1] = a end
  local p, err, code = spawn_process(spec)
  if not p then return nil, err, code end
  cf.defer(function() -- also when run is cancelled
    if not p:status() then p:kill("SIGKILL") end
  end)
  local feed = input and cf.spawn(function()
    p.stdin:write(input):await() -- EPIPE if the child does not read it all: fine
    p.stdin:close()
  end)
  local out, errout = cf.join(p.stdout:read_all(), p.stderr:read_all()):await()
  if feed then feed:await() end
  local status, signal = p:wait():await()
  return status, out, errout, signal
end)

-- Tests in virtual time ------------------------------------------------------

cf.test = {}

--- cf.test.run(f_or_fn, ...) -> results: block_on with the clock paused.
-- Sleeps, intervals and timeouts complete as soon as nothing else can run,
-- in the order and at the cf.now() they would have in real time; the clock
-- runs on afterwards (also when f raises).
function cf.test.run(f, ...)
  if type(f) ~= "function" and not cf.is_future(f) then
    error(("test.run: argument #1 must be a future or a function (got %s)"):format(type(f)), 2)
  end
  if cf.current() then
    error("test.run: called inside a task; await the future instead", 2)
  end
  local was_paused = cf.time.is_paused()
  cf.time.pause()
  local res = pack(pcall(cf.block_on, f, ...))
  if not was_paused then cf.time.resume() end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

require "cfuture.coroutine"(cf)
require "cfuture.sync"(cf)
require "cfuture.tls"(cf)
require "cfuture.tasks"(cf)

-- cf.http and cf.websocket load their modules on first use (require
-- "cfuture.http" / "cfuture.websocket" give the same tables).
local lazy = { http = "cfuture.http", websocket = "cfuture.websocket" }
setmetatable(cf, {
  __index = function(t, k)
    local name = lazy[k]
    if not name then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})

return cf
