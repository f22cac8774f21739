-- Run by leave.sh: a plugin task with a job and a cf.defer cleanup is
-- running when Neovim quits; VimLeavePre must cancel it (the cleanup
-- writes its file) and Neovim must exit at once, whether the quit comes
-- from a timer or from inside another task (CF_NVIM_QUIT_IN_TASK=1).
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local dir = os.getenv("CF_NVIM_TMP")
cfn.spawn(function()
  local job = assert(cfn.job({ "sleep", "30" }))
  local f = assert(io.open(dir .. "/pid", "w"))
  f:write(job.pid)
  f:close()
  cf.defer(function()
    local g = assert(io.open(dir .. "/cleaned", "w"))
    g:write("cleanup ran")
    g:close()
  end)
  cf.sleep(60000):await()
end)
local function mark(name, text)
  local g = assert(io.open(dir .. "/" .. name, "w"))
  g:write(text)
  g:close()
end
-- a task that awaits a scope: the scope's child is cancelled too, and its
-- cleanup, which runs Neovim's loop, raises an error that is reported
cf.on_error(function(err) mark("reported", tostring(err)) end)
cfn.spawn(function()
  cf.scope(function(s)
    s:spawn(function()
      cf.defer(function()
        mark("child", "child cleanup ran")
        vim.wait(20, function() return false end) -- no step may run in here
        error("child cleanup failed", 0)
      end)
      cf.sleep(60000):await()
    end)
    cf.sleep(60000):await()
  end):await()
end)
if os.getenv("CF_NVIM_QUIT_IN_TASK") == "1" then
  -- a task quits Neovim: VimLeavePre comes while that task is running
  cfn.spawn(function()
    cf.sleep(200):await()
    vim.cmd("qa!")
  end)
else
  vim.defer_fn(function() vim.cmd("qa!") end, 200)
end
