-- pipeline: run several shell commands at once and stream their output
-- line by line, each line prefixed with its command's number. Ctrl-C (or
-- SIGTERM) stops every command and exits cleanly.
--
--   lua5.4 examples/pipeline.lua "ping -c 3 127.0.0.1" "ls -l /" "sleep 1; echo done"
local cf = require "cfuture"

local commands = { table.unpack(arg or {}) }
if #commands == 0 then
  io.stderr:write('usage: pipeline.lua "command" ["command" ...]\n')
  os.exit(2)
end

local function relay(prefix, stream)
  for line in stream:lines() do io.write(prefix, line, "\n") end
end

-- Run one command to completion; if the task is cancelled, kill the child.
local function run(i, command)
  -- group = true: the shell and everything it starts form one process group,
  -- which kill() signals as a whole
  local p = assert(cf.process.spawn { "sh", "-c", command, stdout = "pipe", stderr = "pipe",
    group = true })
  local _ <close> = setmetatable({}, { __close = function()
    if not p:status() then p:kill("SIGKILL") end
  end })
  cf.join(function() relay(("[%d] "):format(i), p.stdout) end,
          function() relay(("[%d!] "):format(i), p.stderr) end):await()
  local code, signal = p:wait():await()
  io.write(("[%d] exited with %d%s\n"):format(i, code, signal and " (" .. signal .. ")" or ""))
  return code
end

local status = cf.block_on(function()
  local all = cf.spawn(cf.scope(function(s)
    local handles = {}
    for i, command in ipairs(commands) do handles[i] = s:spawn(run, i, command) end
    local worst = 0
    for _, h in ipairs(handles) do worst = math.max(worst, h:await()) end
    return worst
  end))
  local which, result = cf.select(all, cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  if which == 1 then return result end
  io.write(result, ": stopping every command\n")
  all:abort()
  pcall(all.await, all) -- returns once every child was killed and reaped
  return 130
end)
io.stdout:flush()
os.exit(status)
