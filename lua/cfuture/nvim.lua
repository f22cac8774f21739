-- cfuture inside Neovim: drives the runtime from Neovim's own event loop.
--
--   local cfn = require "cfuture.nvim"   -- attaches on first use
--   cfn.spawn(function() ... cf.sleep(100):await() ... vim.api... end)
--
-- cfuture keeps its own libuv loop. Neovim's loop (vim.loop) watches that
-- loop's backend fd and a timer for its next deadline; when either fires, a
-- step is bounced through vim.schedule, so task code runs where vim.api is
-- allowed (not in a "fast event"). While a step is scheduled the watchers
-- are stopped: the fd is level-triggered and would spin the loop. Nothing
-- runs when nothing is due: an idle editor uses no CPU.
local cf = require "cfuture"
local uv = vim.loop

local M = { cf = cf }

local poll, timer
local attached, scheduled = false, false
local steps = 0

local schedule_step

local function rearm()
  local ms = cf.backend_timeout()
  if ms == 0 then return schedule_step() end
  poll:start("r", schedule_step)
  if ms > 0 then timer:start(ms, 0, schedule_step) else timer:stop() end
end

local function step()
  scheduled = false
  if not attached then return end
  steps = steps + 1
  cf.step()
  rearm()
end

schedule_step = function()
  if scheduled or not attached then return end
  scheduled = true
  poll:stop()
  timer:stop()
  vim.schedule(step)
end

--- Start driving cfuture from Neovim's loop (idempotent). The plugin's
-- VimLeavePre autocommand detaches before Neovim exits.
function M.attach()
  if attached then return M end
  poll = uv.new_poll(cf.backend_fd())
  timer = uv.new_timer()
  attached = true
  schedule_step()
  return M
end

--- Stop driving cfuture: tasks stay where they are until attach() again.
function M.detach()
  if not attached then return end
  attached = false
  poll:stop()
  poll:close()
  timer:stop()
  timer:close()
  poll, timer = nil, nil
end

function M.is_attached() return attached end

--- Steps run so far (for tests and :CfutureStatus).
function M.steps() return steps end

--- Wake the driver: call after starting work from outside a task (spawn
-- does it), so ready tasks run at the next scheduled step.
function M.wake()
  if attached then schedule_step() else M.attach() end -- attach schedules a step
end

--- cf.spawn from Neovim code: the task starts at the next step.
function M.spawn(fn, ...)
  local h = cf.spawn(fn, ...)
  M.wake()
  return h
end

return M
