-- Test async plugin code under `nvim --headless`:
--
--   nvim --headless -u NONE -i NONE --cmd "set rtp^=." -c "luafile t.lua"
--
--   -- t.lua
--   local T = require "cfuture.nvim.test"
--   T.run({
--     { "greets", function()
--         local text = my_plugin.fetch():await()
--         T.eq(text, "hello")
--     end },
--   }, { timeout = 5000 })
--
-- Each test is a cfuture task awaited with a timeout (a test that hangs
-- fails with "timed out after N ms" and is cancelled). Results are written
-- to stdout one line per test ("ok 1 - name" / "not ok 2 - name: error",
-- TAP), and Neovim exits: status 0 when all passed, 1 otherwise. Errors
-- shown through vim.notify while a test runs are collected in
-- T.notifications() instead of being displayed.
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local uv = vim.uv or vim.loop

local T = {}

local notes = {}

local function out(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

--- Messages cfuture.nvim reported while tests ran (task errors, callbacks
-- called twice), oldest first; T.notifications(true) also clears the list.
function T.notifications(clear)
  local r = {}
  for i, v in ipairs(notes) do r[i] = v end
  if clear then notes = {} end
  return r
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then return vim.inspect(v) end
  return tostring(v)
end

--- Raise unless a == b (deep comparison for tables).
function T.eq(a, b, msg)
  if not vim.deep_equal(a, b) then
    error(("%sexpected %s, got %s"):format(msg and (msg .. ": ") or "", show(b), show(a)), 2)
  end
end

--- Raise unless v is truthy.
function T.ok(v, msg)
  if not v then error(msg or "expected a true value", 2) end
  return v
end

--- Raise unless fn raises an error whose text contains `pattern` (plain).
function T.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error("expected an error" .. (pattern and (" containing " .. show(pattern)) or ""), 2) end
  if pattern and not tostring(err):find(pattern, 1, true) then
    error(("expected an error containing %s, got %s"):format(show(pattern), show(tostring(err))), 2)
  end
  return err
end

--- A future: true once pred() is true (checked every `interval` ms,
-- default 10), false after `ms` milliseconds (default 2000).
function T.wait_for(pred, ms, interval)
  ms, interval = ms or 2000, interval or 10
  return cf.async(function()
    local deadline = cf.now() + ms
    while true do
      if pred() then return true end
      if cf.now() >= deadline then return false end
      cf.sleep(interval):await()
    end
  end)()
end

--- Whether process `pid` is still alive (kill -0).
function T.alive(pid)
  local ok = uv.kill(pid, 0)
  return ok == 0 or ok == true
end

--- Feed keys as typed (nvim_input); a future of the next vim.schedule turn.
function T.feed(keys)
  vim.api.nvim_input(keys)
  return cfn.schedule()
end

local function exit(code)
  cfn.leave()
  vim.schedule(function()
    if code == 0 then vim.cmd("qa!") else vim.cmd("cquit " .. code) end
  end)
end

--- Run `tests` (a function, or a list of {name, fn}) one after the other,
-- each as a task with opts.timeout ms (default 10000), then exit Neovim.
-- opts.exit = false keeps Neovim running; opts.on_done(failed, total) is
-- called at the end.
function T.run(tests, opts)
  opts = opts or {}
  if type(tests) == "function" then tests = { { "test", tests } } end
  local limit = opts.timeout or 10000
  cfn.setup({ notify = function(msg) notes[#notes + 1] = msg end })
  local total = #tests
  out("1.." .. total)
  local finished = false
  cfn.spawn({ function()
    local failed = 0
    for i, t in ipairs(tests) do
      local name, fn = t[1], t[2]
      local h = cfn.spawn({ fn, name = name, notify = false })
      local ok, err = pcall(function()
        -- select, not cf.timeout: a test may itself return nil, "timeout"
        local which = cf.select(h, cf.sleep(limit)):await()
        if which == 2 then error(("timed out after %d ms"):format(limit), 0) end
      end)
      if not h:is_finished() then h:abort() end
      if ok then
        out(("ok %d - %s"):format(i, name))
      else
        failed = failed + 1
        out(("not ok %d - %s: %s"):format(i, name, tostring(err):gsub("\n", "\n# ")))
      end
    end
    out(("# %d of %d passed"):format(total - failed, total))
    finished = true
    if opts.on_done then opts.on_done(failed, total) end
    if opts.exit ~= false then exit(failed == 0 and 0 or 1) end
  end, name = "cfuture.nvim.test", notify = false })
  -- a task stuck in Lua cannot be timed out from inside: the shell's
  -- timeout(1) is the last resort; this catches a stuck runner
  vim.defer_fn(function()
    if finished then return end
    out("not ok - the runner did not finish in " .. (limit * total + 5000) .. " ms")
    if opts.exit ~= false then vim.cmd("cquit 2") end
  end, limit * total + 5000)
end

return T
