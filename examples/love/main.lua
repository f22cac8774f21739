-- Comets: a small LÖVE 11 game driven by cfuture.
--
-- love.update steps the runtime once per frame (cf.step never blocks).
-- Every comet is a task that moves and then sleeps with cf.sleep; a spark
-- task is spawned every 250 ms and fades out over half a second; the level
-- is read asynchronously, and a large file given on the command line is
-- streamed in with a progress bar while everything keeps moving.
--
--   love examples/love                 # the comets of level.txt
--   love examples/love /path/to/big    # ... and load a big file meanwhile
--
-- LÖVE runs LuaJIT: it needs the LuaJIT build of cfuture on its paths, e.g.
-- from a build tree:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/jit/?.so;;" love examples/love
-- (or install the rock for LuaJIT: luarocks --lua-version=5.1 make ...).
local cf = require "cfuture"

local FPS = 60 -- frames per second this game aims for
local W, H = 640, 360

local comets, sparks = {}, {}
local load = { name = nil, size = 0, got = 0, ms = nil, err = nil }
local level_error
local stats = { frames = 0, step_us = 0, step_us_max = 0, sparks = 0 }

-- Tasks ----------------------------------------------------------------------

-- A comet moves by `speed` degrees, then sleeps `period` ms; the timer's
-- resolution is the frame, so a 8 ms period moves once per 16.7 ms frame.
local function fly(c)
  while true do
    c.angle = (c.angle + c.speed) % 360
    c.moves = c.moves + 1
    cf.sleep(c.period):await()
  end
end

-- A spark: appears at a random spot and fades out over 500 ms.
local function spark()
  local s = { x = math.random(20, W - 20), y = math.random(20, H - 20), life = 1 }
  sparks[s] = true
  cf.defer(function() sparks[s] = nil end) -- also when the task is cancelled
  for i = 1, 10 do
    s.life = 1 - i / 10
    cf.sleep(50):await()
  end
end

-- Read level.txt without blocking the frame, and start a task per comet.
local function load_level(dir)
  local text, err = cf.fs.read_file(dir .. "/level.txt"):await()
  if not text then level_error = err; return end
  for line in text:gmatch("[^\n]+") do
    local r, period, speed, size, red, green, blue =
      line:match("^comet%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
    if r then
      local c = { radius = tonumber(r), period = tonumber(period), speed = tonumber(speed),
                  size = tonumber(size), color = { tonumber(red), tonumber(green), tonumber(blue) },
                  angle = #comets * 60, moves = 0 }
      comets[#comets + 1] = c
      cf.spawn { fly, c, name = "comet " .. #comets }
    end
  end
end

-- Stream a file in 64 KiB reads on libuv's thread pool: each read completes
-- a frame or so later, and the frame never waits for the disk. (Chunks stay
-- under 128 KiB: LuaJIT maps every larger string with its own mmap, and the
-- page faults of filling it would land in the frame.)
local function load_file(path)
  local t0 = cf.now()
  local f, err = cf.fs.open(path):await()
  if not f then load.err = err; return end
  cf.defer(function() f:close() end)
  local st = f:stat():await()
  load.size = st and st.size or 0
  while true do
    local chunk, rerr = f:read(64 * 1024):await()
    if not chunk then load.err = rerr; break end
    load.got = load.got + #chunk
  end
  load.ms = cf.now() - t0
end

-- LÖVE callbacks ---------------------------------------------------------------

function love.load(arg)
  local dir = love.filesystem.getSource()
  cf.spawn { load_level, dir, name = "level" }
  if arg[1] then
    load.name = arg[1]
    cf.spawn { load_file, arg[1], name = "load " .. arg[1] }
  end
  cf.spawn { function()
    local every = cf.interval(250)
    while true do
      every:tick():await()
      stats.sparks = stats.sparks + 1
      cf.spawn(spark)
    end
  end, name = "sparks" }
end

function love.update()
  local t0 = love.timer.getTime()
  cf.step() -- ready tasks, timers and I/O that are due: never waits
  local us = (love.timer.getTime() - t0) * 1e6
  stats.frames = stats.frames + 1
  stats.step_us = stats.step_us + us
  if us > stats.step_us_max then stats.step_us_max = us end
end

function love.draw()
  local g = love.graphics
  for s in pairs(sparks) do
    g.setColor(1, 1, 0.6, s.life)
    g.circle("fill", s.x, s.y, 2 + 6 * (1 - s.life))
  end
  for _, c in ipairs(comets) do
    local a = math.rad(c.angle)
    g.setColor(c.color)
    g.circle("fill", W / 2 + c.radius * math.cos(a), H / 2 + c.radius * math.sin(a), c.size)
  end
  g.setColor(1, 1, 1)
  g.print(("%d fps   %d tasks   step %.0f us"):format(love.timer.getFPS(), #cf.tasks(),
    stats.step_us / math.max(stats.frames, 1)), 8, 8)
  if level_error then g.print("level: " .. level_error, 8, 28) end
  if load.name then
    local frac = load.size > 0 and load.got / load.size or 0
    g.rectangle("line", 8, H - 24, W - 16, 14)
    g.rectangle("fill", 8, H - 24, (W - 16) * frac, 14)
    g.print(load.err or ("%s: %.1f / %.1f MiB"):format(load.name, load.got / 2 ^ 20, load.size / 2 ^ 20),
      8, H - 42)
  end
end

-- A fixed-rate frame loop: LÖVE's default love.run with the frame paced at
-- FPS (vsync alone does not pace a virtual display or a disabled vsync).
function love.run()
  love.load(love.arg.parseGameArguments(arg), arg)
  love.timer.step()
  local next_frame = love.timer.getTime()
  return function()
    love.event.pump()
    for name, a, b, c, d, e, f in love.event.poll() do
      if name == "quit" and not (love.quit and love.quit()) then return a or 0 end
      love.handlers[name](a, b, c, d, e, f)
    end
    love.update(love.timer.step())
    if love.graphics.isActive() then
      love.graphics.origin()
      love.graphics.clear(0.05, 0.05, 0.1)
      love.draw()
      love.graphics.present()
    end
    next_frame = next_frame + 1 / FPS
    local now = love.timer.getTime()
    if next_frame > now then love.timer.sleep(next_frame - now) else next_frame = now end
  end
end

-- Measuring (the test runs the game with CFUTURE_LOVE_REPORT=file): play
-- for CFUTURE_LOVE_SECONDS, record every frame's length, write a report
-- and quit.
local report_path = os.getenv("CFUTURE_LOVE_REPORT")
if report_path then
  local seconds = tonumber(os.getenv("CFUTURE_LOVE_SECONDS") or "3")
  local update, last, start = love.update, nil, nil
  local worst, late = 0, 0
  function love.update(dt)
    local now = love.timer.getTime()
    start = start or now
    if last then
      local ms = (now - last) * 1e3
      if ms > worst then worst = ms end
      if ms > 2e3 / FPS then late = late + 1 end
    end
    last = now
    update(dt)
    if now - start >= seconds then
      local moves = 0
      for _, c in ipairs(comets) do moves = moves + c.moves end
      local f = assert(io.open(report_path, "w"))
      local function put(k, v) f:write(k, "=", tostring(v), "\n") end
      put("frames", stats.frames)
      put("seconds", ("%.3f"):format(now - start))
      put("mean_frame_ms", ("%.2f"):format((now - start) * 1e3 / (stats.frames - 1)))
      put("worst_frame_ms", ("%.2f"):format(worst))
      put("late_frames", late)
      put("comets", #comets)
      put("comet_moves", moves)
      put("fast_comet_moves", comets[1] and comets[1].moves or 0)
      put("sparks", stats.sparks)
      put("loaded", load.got)
      put("load_size", load.size)
      put("load_ms", load.ms or -1)
      put("load_error", load.err or level_error or "none")
      put("step_us_mean", ("%.1f"):format(stats.step_us / stats.frames))
      put("step_us_max", ("%.1f"):format(stats.step_us_max))
      f:close()
      love.event.quit(0)
    end
  end
end
