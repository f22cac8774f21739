-- Run by test/nvim/run.sh inside `nvim --headless`: the plugin drives 1000
-- tasks that sleep and read files and write their results into a buffer
-- through vim.api, while a key fed with nvim_input must be handled within
-- 50 ms; then the editor must sit idle without CPU use or steps.
local out_path, dir = os.getenv("CF_NVIM_OUT"), os.getenv("CF_NVIM_DIR")
local uv = vim.loop
local report = {}
local function finish(code)
  local f = assert(io.open(out_path, "w"))
  for k, v in pairs(report) do f:write(k, "=", tostring(v), "\n") end
  f:close()
  vim.cmd(code == 0 and "qa!" or ("cquit " .. code))
end
vim.defer_fn(function() report.error = "watchdog: not finished after 30 s"; finish(3) end, 30000)

-- borrowing Neovim's own loop is refused with a pointer to the plugin
local ok, err = pcall(require, "cfuture.luv")
report.luv_refused = not ok and tostring(err):find('inside Neovim use require "cfuture.nvim"', 1, true) ~= nil

vim.cmd("runtime plugin/cfuture.lua")
local cfn = require "cfuture.nvim"
local cf = cfn.cf

for i = 1, 10 do
  local f = assert(io.open(("%s/%d.txt"):format(dir, i), "w"))
  f:write("file ", i)
  f:close()
end

local N = 1000
local buf = vim.api.nvim_create_buf(false, true)
local fed_at, key_ms
vim.keymap.set("n", "<F2>", function() key_ms = (uv.hrtime() - fed_at) / 1e6 end)

local t0 = uv.hrtime()
cfn.spawn(function()
  local ok, err = pcall(function()
    cf.scope(function(s)
      for i = 1, N do
        s:spawn(function()
          cf.sleep((i % 50) * 4):await() -- 0 to 196 ms
          local data = assert(cf.fs.read_file(("%s/%d.txt"):format(dir, i % 10 + 1)):await())
          -- vim.api from a task: the step runs in a scheduled callback
          vim.api.nvim_buf_set_lines(buf, -1, -1, false, { ("%d %s"):format(i, data) })
        end)
      end
    end):await()
  end)
  report.tasks_ms = math.floor((uv.hrtime() - t0) / 1e6)
  if not ok then report.error = tostring(err):gsub("\n", " ") return finish(1) end
  local lines = vim.api.nvim_buf_get_lines(buf, 1, -1, false)
  report.lines = #lines
  local good = 0
  for _, l in ipairs(lines) do
    local i, n = l:match("^(%d+) file (%d+)$")
    if i and tonumber(n) == tonumber(i) % 10 + 1 then good = good + 1 end
  end
  report.good_lines = good
  report.key_ms = key_ms or -1
  -- idle: no steps and (almost) no CPU for a second
  local steps0, ru0 = cfn.steps(), uv.getrusage()
  vim.defer_fn(function()
    local ru1 = uv.getrusage()
    local function ms(ru) return (ru.utime.sec + ru.stime.sec) * 1e3 + (ru.utime.usec + ru.stime.usec) / 1e3 end
    report.idle_cpu_ms = math.floor(ms(ru1) - ms(ru0))
    report.idle_steps = cfn.steps() - steps0
    report.tasks_left = #cf.tasks()
    finish(0)
  end, 1000)
end)

-- the key arrives while the tasks are sleeping and reading
vim.defer_fn(function()
  fed_at = uv.hrtime()
  vim.api.nvim_input("<F2>")
end, 60)
