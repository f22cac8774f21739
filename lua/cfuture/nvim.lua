-- cfuture inside Neovim: drives the runtime from Neovim's own event loop,
-- turns Neovim's callback APIs into futures, and wraps the ones plugins use
-- (jobs, LSP requests, vim.ui, autocommands).
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
--
-- A callback that completes a future (await_callback, wrap and every
-- wrapper below) only stores the results and wakes the driver: the task
-- that awaited it resumes in the next step, on the main loop, even when the
-- callback fired in a fast event (a vim.loop timer or vim.system's on_exit).
--
-- Only vim.loop is touched when this file loads (the annotation spec loads
-- it outside Neovim); everything else is looked up when used.
local cf = require "cfuture"
local uv = vim.uv or vim.loop
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

local M = { cf = cf }

local poll, timer
local attached, scheduled, in_step = false, false, false
local steps = 0

local schedule_step

local function rearm()
  if scheduled or not attached then return end
  local ms = cf.backend_timeout()
  if ms == 0 then return schedule_step() end
  poll:start("r", schedule_step)
  if ms > 0 then timer:start(ms, 0, schedule_step) else timer:stop() end
end

local function step()
  scheduled = false
  -- a task that runs Neovim's loop (vim.wait, a blocking input()) may let
  -- a scheduled step through while cf.step is running: the outer step
  -- re-arms when it returns
  if not attached or in_step then return end
  steps = steps + 1
  in_step = true
  local ok, err = pcall(cf.step)
  in_step = false
  rearm()
  if not ok then error(err, 0) end
end

schedule_step = function()
  if scheduled or not attached then return end
  scheduled = true
  poll:stop()
  timer:stop()
  vim.schedule(step)
end

local function argerr(fname, n, what, v)
  error(("cfuture.nvim.%s: argument #%d must be %s (got %s)"):format(fname, n, what, type(v)), 3)
end

--- Start driving cfuture from Neovim's loop (idempotent). The plugin's
-- VimLeavePre autocommand cancels the tasks started through this module and
-- detaches before Neovim exits.
local detached -- detach() was called: only attach() drives again

local leave_hooked = false

-- VimLeavePre runs M.leave, whether or not plugin/ is on 'runtimepath'.
local function hook_leave()
  if leave_hooked then return end
  leave_hooked = true
  local function create()
    local group = vim.api.nvim_create_augroup("cfuture.nvim", { clear = true })
    vim.api.nvim_create_autocmd("VimLeavePre", { group = group, callback = function() M.leave() end })
  end
  if vim.in_fast_event() then vim.schedule(create) else create() end
end

function M.attach()
  detached = false
  if attached then return M end
  poll = uv.new_poll(cf.backend_fd())
  timer = uv.new_timer()
  attached = true
  hook_leave()
  M.setup()
  schedule_step()
  return M
end

--- Stop driving cfuture: tasks stay where they are until attach() again.
function M.detach()
  detached = true
  if not attached then return end
  attached = false
  poll:stop()
  poll:close()
  timer:stop()
  timer:close()
  poll, timer = nil, nil
end

function M.is_attached() return attached end

--- Abort the task h from Neovim code (a keymap, an autocommand): the
-- driver is woken, so its cancellation and cf.defer cleanups run at once
-- (h:abort() alone only marks it).
function M.abort(h)
  local ok, f = pcall(function() return h.abort end)
  if not ok or type(f) ~= "function" then argerr("abort", 1, "a JoinHandle", h) end
  if not h:is_finished() then h:abort() end
  M.wake()
end

--- Steps run so far (for tests and :CfutureStatus).
function M.steps() return steps end

--- Wake the driver: call after starting work from outside a task (spawn
-- does it), so ready tasks run at the next scheduled step.
function M.wake()
  if in_step then return end -- the running step re-arms when it returns
  if attached then
    schedule_step()
  elseif not detached then
    M.attach() -- the first use attaches (and schedules a step)
  end
end

-- ---- errors ---------------------------------------------------------------

local config = { notify = true, level = nil }
local notified, notified_n = {}, 0 -- task id -> the error already shown (its handle's report is skipped)
local installed_handler

local function notify(msg)
  local n = config.notify
  if n == false then return end
  local level = config.level or (vim.log and vim.log.levels.ERROR) or 4
  -- the report may come from a finaliser or a fast event: show it later
  vim.schedule(function()
    if type(n) == "function" then n(msg, level) else vim.notify(msg, level) end
  end)
end

local function describe(err, info)
  info = info or {}
  local who = info.id and ("task " .. tostring(info.id) .. (info.name and (" (" .. info.name .. ")") or "")) or "a future"
  return ("cfuture: %s failed: %s"):format(who, tostring(err))
end

local function error_handler(err, info)
  local id = type(info) == "table" and info.id
  if id and notified[id] ~= nil and rawequal(notified[id], err) then
    notified[id] = nil -- shown when the task failed
    return
  end
  if cf.is_cancelled(err) then return end
  notify(describe(err, info))
end

--- Report an error the way cfuture reports errors nobody awaited: to the
-- handler set with cf.on_error (the one setup() installs shows it through
-- vim.notify), else to stderr.
local function report(err, info)
  local h = cf.on_error(nil)
  cf.on_error(h)
  if h then
    local ok, e = pcall(h, err, info or {})
    if ok then return end
    io.stderr:write("cfuture: error in the on_error handler: ", tostring(e), "\n")
  end
  io.stderr:write("cfuture: ", tostring(err), "\n")
end

--- Configure error reporting (attach calls it with no options):
--   notify = true (vim.notify, default) | false | function(msg, level)
--   level  = the vim.log.levels value (default ERROR)
-- Installs the handler as cf.on_error unless another handler was set
-- before; returns the module.
function M.setup(opts)
  if opts ~= nil and type(opts) ~= "table" then argerr("setup", 1, "a table or nil", opts) end
  opts = opts or {}
  if opts.notify ~= nil then
    if type(opts.notify) ~= "boolean" and type(opts.notify) ~= "function" then
      error("cfuture.nvim.setup: option notify must be a boolean or a function (got " .. type(opts.notify) .. ")", 2)
    end
    config.notify = opts.notify
  end
  if opts.level ~= nil then config.level = opts.level end
  local prev = cf.on_error(nil)
  if prev == nil or prev == installed_handler then
    installed_handler = error_handler
    cf.on_error(error_handler)
  else
    cf.on_error(prev)
  end
  return M
end

-- ---- tasks ----------------------------------------------------------------

local live = {} -- JoinHandle -> true: tasks started through M.spawn, cancelled on VimLeavePre

local function spawn_args(name, ...)
  local first = ...
  if type(first) == "table" and not cf.is_future(first) then
    local t = first
    local fn = t[1]
    if type(fn) ~= "function" and not cf.is_future(fn) then argerr(name, 1, "a function or a future, or a table holding one", fn) end
    return fn, t.name, t.notify ~= false, unpack(t, 2, t.n or #t)
  end
  if type(first) ~= "function" and not cf.is_future(first) then argerr(name, 1, "a function or a future", first) end
  return first, nil, true, select(2, ...)
end

local function start(fn, tname, show, ...)
  if type(fn) ~= "function" then
    local f = fn -- a future: awaited by the task, so its errors are shown too
    fn = function() return f:await() end
  end
  local slot = {}
  local args = pack(...)
  local body = function()
    -- however the task ends (cancelled too), it leaves the live set
    cf.defer(function()
      slot.done = true
      if slot.h then live[slot.h] = nil end
    end)
    local where -- the traceback of an error that is not a string (kept beside it)
    local r = pack(xpcall(function() return fn(unpack(args, 1, args.n)) end, function(e)
      if type(e) == "string" then
        if not e:find("\nstack traceback:", 1, true) then return debug.traceback(e, 2) end
      elseif not cf.is_cancelled(e) then
        where = debug.traceback("", 2)
      end
      return e
    end))
    if r[1] then return unpack(r, 2, r.n) end
    local e = r[2]
    if show and not cf.is_cancelled(e) then
      local id, nm = cf.current()
      -- remembered until its handle's report comes, matched by task id and
      -- error (forgotten in bulk: a handle that is awaited never reports)
      notified_n = notified_n + 1
      if notified_n > 256 then notified, notified_n = {}, 1 end
      notified[id] = e
      local msg = describe(e, { id = id, name = nm })
      if where then msg = msg .. where end
      notify(msg)
    end
    error(e, 0)
  end
  local h = cf.spawn { body, name = tname }
  if not slot.done then
    slot.h = h
    live[h] = true
  end
  M.wake()
  return h
end

--- cf.spawn from Neovim code: the task starts at the next step. An error
-- that ends the task is shown at once (with its traceback) through the
-- notifier setup() configures, and still raised to whoever awaits the
-- handle. `spawn{fn, args..., name = "x", notify = false}` names the task
-- or keeps its errors quiet. The task is cancelled on VimLeavePre.
function M.spawn(...)
  return start(spawn_args("spawn", ...))
end

--- Like spawn, and the task is cancelled when buffer `buf` is wiped
-- (BufWipeout; 0 is the current buffer).
function M.spawn_for_buf(buf, ...)
  if type(buf) ~= "number" then argerr("spawn_for_buf", 1, "a buffer number", buf) end
  if buf == 0 then buf = vim.api.nvim_get_current_buf() end
  if not vim.api.nvim_buf_is_valid(buf) then
    error("cfuture.nvim.spawn_for_buf: argument #1: buffer " .. buf .. " does not exist", 2)
  end
  local h = start(spawn_args("spawn_for_buf", ...))
  local au
  au = vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      if not h:is_finished() then h:abort(); M.wake() end
    end,
  })
  -- forget the autocommand once the task is done
  cf.spawn(function()
    pcall(function() h:await() end)
    pcall(vim.api.nvim_del_autocmd, au)
  end)
  return h
end

--- Abort every task started through spawn / spawn_for_buf that is still
-- running; their cf.defer cleanups (killing jobs, deleting autocommands)
-- run before this returns, even when it is called from inside a task (a
-- task that quits Neovim: VimLeavePre comes while that task runs). The
-- calling task itself, if it is one of them, is only marked: it ends at
-- its next await. In a fast event (where cleanups could not use vim.api)
-- they run at the next step instead. Returns how many were aborted.
function M.cancel_all()
  local hs = {}
  for h in pairs(live) do
    if not h:is_finished() then hs[#hs + 1] = h end
    live[h] = nil
  end
  local fast = vim.in_fast_event()
  -- a cleanup that runs Neovim's loop (vim.wait) must not let a step in
  local was = in_step
  in_step = true
  for _, h in ipairs(hs) do
    if fast then h:abort() else pcall(h.abort_now, h) end
  end
  in_step = was
  if #hs > 0 then M.wake() end
  return #hs
end

--- Live tasks started through spawn (handles).
function M.tasks()
  local out = {}
  for h in pairs(live) do
    if not h:is_finished() then out[#out + 1] = h end
  end
  table.sort(out, function(a, b) return a:id() < b:id() end)
  return out
end

--- The plugin's VimLeavePre: cancel, then detach.
function M.leave()
  M.cancel_all()
  M.detach()
end

--- :CfutureStatus: the driver's state and cf.dump() in a scratch buffer,
-- opened in a split. Returns the buffer.
function M.status()
  local lines = {
    ("cfuture: %s, %d step(s), %d task(s) started from Neovim"):format(
      attached and "attached" or "detached", steps, #M.tasks()),
    "",
  }
  for l in (cf.dump() .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].modifiable = false
  pcall(vim.api.nvim_buf_set_name, buf, "cfuture://status/" .. buf)
  vim.cmd("split")
  vim.api.nvim_win_set_buf(0, buf)
  return buf
end

-- ---- callbacks as futures -------------------------------------------------

-- The future behind await_callback: start(done) runs at the first poll (in
-- a step, where vim.api is allowed); done(...) completes it once, from any
-- context; a second call is ignored and reported; if the future is dropped
-- first, cancel(what start returned) runs.
local function callback_future(name, start_fn, cancel)
  local state = "fresh" -- started, done, cancelled
  local results, waker, handle
  local calls = 0
  local function done(...)
    calls = calls + 1
    if calls > 1 then
      if state ~= "cancelled" then
        local msg = ("%s: the callback was called %d times; only the first call counts"):format(name, calls)
        -- the handler may use vim.api: never from a fast event
        if vim.in_fast_event() then vim.schedule(function() report(msg) end) else report(msg) end
      end
      return
    end
    if state == "cancelled" then return end -- too late: nobody waits
    results = pack(...)
    state = "done"
    if waker then
      waker:wake()
      M.wake()
    end
  end
  return cf.future(function(w)
    waker = w
    if state == "fresh" then
      state = "started"
      handle = start_fn(done)
    end
    if state == "done" then
      state = "taken"
      return unpack(results, 1, results.n)
    end
    return cf.PENDING
  end, function()
    if state ~= "started" then return end
    state = "cancelled"
    if cancel then
      cancel(handle)
    elseif type(handle) == "function" then
      handle()
    elseif (type(handle) == "table" or type(handle) == "userdata") then
      local close = handle.close or handle.kill or handle.cancel
      if type(close) == "function" then close(handle) end
    end
  end)
end

--- A future of what `start`'s callback receives. `start(callback)` is
-- called when the future is first awaited; the first call of `callback`
-- completes the future (later calls are ignored and reported through
-- cf.on_error). If the future is dropped before (select, timeout, abort),
-- `cancel(h)` runs with what `start` returned; without `cancel`, a
-- function `start` returned is called, or its `close`/`kill`/`cancel`
-- method.
function M.await_callback(start_fn, cancel)
  if type(start_fn) ~= "function" then argerr("await_callback", 1, "a function", start_fn) end
  if cancel ~= nil and type(cancel) ~= "function" then argerr("await_callback", 2, "a function or nil", cancel) end
  return callback_future("cfuture.nvim.await_callback", start_fn, cancel)
end

--- Turn a callback-style function into one that returns a future: the
-- callback is argument number `argc` (the last one), the future completes
-- with what it is called with. `cancel(h)` as in await_callback.
--   local input = cfn.wrap(vim.ui.input, 2)
--   local text = input({ prompt = "> " }):await()
function M.wrap(fn, argc, cancel)
  if type(fn) ~= "function" and not (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call) then
    argerr("wrap", 1, "a function", fn)
  end
  if type(argc) ~= "number" or argc < 1 or argc % 1 ~= 0 then
    argerr("wrap", 2, "the position of the callback (an integer >= 1)", argc)
  end
  if cancel ~= nil and type(cancel) ~= "function" then argerr("wrap", 3, "a function or nil", cancel) end
  return function(...)
    local args = pack(...)
    return callback_future("cfuture.nvim.wrap", function(done)
      args[argc] = done
      return fn(unpack(args, 1, argc))
    end, cancel)
  end
end

--- A future that completes in a later vim.schedule callback: await it in a
-- long loop to let Neovim handle input and redraw.
function M.schedule()
  return callback_future("cfuture.nvim.schedule", function(done) vim.schedule(done) end)
end

-- ---- vim.ui -----------------------------------------------------------------

M.ui = {}

--- vim.ui.select as a future of `item, index` (nil when dismissed).
function M.ui.select(items, opts)
  if type(items) ~= "table" then argerr("ui.select", 1, "a table", items) end
  if opts ~= nil and type(opts) ~= "table" then argerr("ui.select", 2, "a table or nil", opts) end
  return callback_future("cfuture.nvim.ui.select", function(done)
    -- Neovim's own prompt blocks in inputlist(): run it after the step, so
    -- the other tasks and a timeout are not held up by it
    vim.schedule(function() vim.ui.select(items, opts or {}, done) end)
  end)
end

--- vim.ui.input as a future of the text (nil when dismissed).
function M.ui.input(opts)
  if opts ~= nil and type(opts) ~= "table" then argerr("ui.input", 1, "a table or nil", opts) end
  return callback_future("cfuture.nvim.ui.input", function(done)
    vim.schedule(function() vim.ui.input(opts or {}, done) end) -- as for select
  end)
end

-- ---- autocommands -----------------------------------------------------------

local function autocmd_opts(fname, event, opts)
  if type(event) ~= "string" and type(event) ~= "table" then argerr(fname, 1, "an event name or a list of them", event) end
  if opts ~= nil and type(opts) ~= "table" then argerr(fname, 2, "a table or nil", opts) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.callback or o.command then error("cfuture.nvim." .. fname .. ": option callback/command is set by " .. fname, 3) end
  return o
end

--- A future of the next `event` (nvim_create_autocmd's options: pattern,
-- buffer, group): the callback's argument table ({event, match, buf, file,
-- data, ...}). Dropping the future deletes the autocommand.
function M.autocmd(event, opts)
  local o = autocmd_opts("autocmd", event, opts)
  return callback_future("cfuture.nvim.autocmd", function(done)
    o.once = true
    o.callback = function(args) done(args) end
    return vim.api.nvim_create_autocmd(event, o)
  end, function(id) pcall(vim.api.nvim_del_autocmd, id) end)
end

-- A future of what the receive future rx gives: the value, or nil once
-- the channel is closed.
local value_or_nil = cf.async(function(rx)
  local v, ok = rx:await()
  if ok then return v end
  return nil
end)

local Events = {}
Events.__index = Events

--- The next event, or nil once closed (a future).
function Events:next()
  local rx = self.ch:recv()
  return value_or_nil(rx)
end

--- for args in events:iter() do ... end (inside a task).
function Events:iter()
  local ch = self.ch
  return function()
    local v, ok = ch:recv():await()
    if ok then return v end
    return nil
  end
end

--- Delete the autocommand; queued events can still be read.
function Events:close()
  if self.id then pcall(vim.api.nvim_del_autocmd, self.id) end
  self.id = nil
  self.ch:close()
  M.wake()
end
Events.__close = Events.close

--- A stream of `event`s: every occurrence from now on is queued (at most
-- opts.capacity, default unbounded; the oldest are dropped beyond). Called
-- inside a task, the autocommand is deleted when that function ends.
function M.autocmds(event, opts)
  local o = autocmd_opts("autocmds", event, opts)
  local cap = o.capacity
  o.capacity = nil
  local self = setmetatable({ ch = cf.channel(), dropped = 0 }, Events)
  local ch = self.ch
  o.callback = function(args)
    if cap and ch:len() >= cap then
      ch:try_recv()
      self.dropped = self.dropped + 1
    end
    ch:try_send(args)
    M.wake()
  end
  self.id = vim.api.nvim_create_autocmd(event, o)
  if cf.current() then cf.defer(function() self:close() end) end
  return self
end

-- ---- jobs -------------------------------------------------------------------

local Job = {}
Job.__index = Job

local function job_feed(job, which, data)
  local ch = job[which]
  if not ch then return end
  local partial = job.partial[which]
  local n = #data
  if n == 1 and data[1] == "" then return end -- EOF
  data[1] = partial .. data[1]
  for i = 1, n - 1 do
    local l = data[i]
    if job.strip_cr and l:sub(-1) == "\r" then l = l:sub(1, -2) end
    ch:try_send(l)
  end
  job.partial[which] = data[n]
  job.lines_in = job.lines_in + n - 1
  M.wake()
end

--- Start `cmd` (a list: program and arguments, no shell; a string runs
-- through 'shell') with vim.fn.jobstart. Options: cwd, env, clear_env,
-- stdin ("null" default, or "pipe" for job:write), stdout / stderr
-- (true: read as lines, default; false: discard), detach (the job outlives
-- the function that started it). Called inside a task without detach, the
-- job is stopped when the function that started it ends (returns, raises
-- or is cancelled). Returns a job, or nil and a message.
function M.job(cmd, opts)
  if type(cmd) ~= "table" and type(cmd) ~= "string" then argerr("job", 1, "a list of strings or a string", cmd) end
  if opts ~= nil and type(opts) ~= "table" then argerr("job", 2, "a table or nil", opts) end
  opts = opts or {}
  local job = setmetatable({
    cmd = cmd,
    partial = { stdout = "", stderr = "" },
    stdout = opts.stdout ~= false and cf.channel() or nil,
    stderr = opts.stderr ~= false and cf.channel() or nil,
    lines_in = 0,
    strip_cr = true,
    waiters = {},
  }, Job)
  local jopts = {
    cwd = opts.cwd,
    env = opts.env,
    clear_env = opts.clear_env,
    stdin = opts.stdin or "null",
    on_stdout = function(_, data) job_feed(job, "stdout", data) end,
    on_stderr = function(_, data) job_feed(job, "stderr", data) end,
    on_exit = function(_, code, kind)
      for _, which in ipairs({ "stdout", "stderr" }) do
        local ch = job[which]
        if ch then
          local last = job.partial[which]
        if job.strip_cr and last:sub(-1) == "\r" then last = last:sub(1, -2) end
        if job.partial[which] ~= "" then ch:try_send(last) end
          ch:close()
        end
      end
      -- code is 128 + n for a child ended by signal n
      job.code = code
      if code > 128 and job.killed then job.signal = code - 128 end
      local ws = job.waiters
      job.waiters = {}
      for _, w in ipairs(ws) do w:wake() end
      M.wake()
    end,
  }
  local ok, id = pcall(vim.fn.jobstart, cmd, jopts)
  local prog = type(cmd) == "table" and cmd[1] or cmd
  if (not ok and tostring(id):find("is not executable", 1, true)) or id == -1 then
    return nil, "cfuture.nvim.job: " .. tostring(prog) .. " is not executable"
  end
  if not ok then return nil, "cfuture.nvim.job: " .. tostring(id):gsub("^Vim:", "") end
  if id == 0 then return nil, "cfuture.nvim.job: invalid arguments" end
  job.id = id
  job.pid = vim.fn.jobpid(id)
  if cf.current() and not opts.detach then cf.defer(function() job:kill() end) end
  return job
end

--- An iterator over the job's output lines, for use inside a task:
-- `for line in job:lines() do ... end` ("stderr" for the other stream).
-- Cancel-safe: lines not read stay queued.
function Job:lines(which)
  local ch = self[which or "stdout"]
  if not ch then error("job:lines: the job's " .. tostring(which or "stdout") .. " is not read", 2) end
  return function()
    local v, ok = ch:recv():await()
    if ok then return v end
    return nil
  end
end

--- The next output line (a future; nil at the end).
function Job:read_line(which)
  local ch = self[which or "stdout"]
  if not ch then error("job:read_line: the job's " .. tostring(which or "stdout") .. " is not read", 2) end
  local rx = ch:recv()
  return value_or_nil(rx)
end

--- A future of the exit code (and the signal number for a job stopped by
-- job:kill). Dropping the future while the job runs stops the job.
function Job:wait()
  local job = self
  return cf.future(function(w)
    if job.code then return job.code, job.signal end
    job.waiters[#job.waiters + 1] = w
    return cf.PENDING
  end, function()
    job:kill()
  end)
end

--- Stop the job (jobstop: SIGTERM, then SIGKILL if it lingers); with
-- `sig` ("SIGKILL", 9, ...), send that signal to the process instead.
-- true if it was running.
function Job:kill(sig)
  if self.code then return false end
  self.killed = true
  if sig then
    uv.kill(self.pid, type(sig) == "string" and sig:lower() or sig)
  else
    vim.fn.jobstop(self.id)
  end
  return true
end

--- Send data to the job's stdin (stdin = "pipe").
function Job:write(data)
  return vim.fn.chansend(self.id, data) > 0
end

--- Close the job's stdin.
function Job:close_stdin()
  return vim.fn.chanclose(self.id, "stdin") == 1
end

function Job:is_running() return self.code == nil end
Job.__close = function(self) self:kill() end

M.Job = Job

--- A future of {code, signal, stdout, stderr} for `cmd` (a list), as
-- vim.system gives it: through vim.system where Neovim has it (0.10+),
-- else through jobstart. Options: cwd, env, stdin (a string to write),
-- text (unused, for vim.system compatibility), timeout (ms). The process
-- starts when the future is first awaited and is killed if the future is
-- dropped first.
-- The bytes of a jobstart output list: its items are the pieces between
-- newlines, and a NUL byte inside an item is given as "\n".
local function job_bytes(data)
  local t = {}
  for k, item in ipairs(data) do t[k] = (item:gsub("\n", "\0")) end
  return table.concat(t, "\n")
end

function M.system(cmd, opts)
  if type(cmd) ~= "table" then argerr("system", 1, "a list of strings", cmd) end
  if opts ~= nil and type(opts) ~= "table" then argerr("system", 2, "a table or nil", opts) end
  opts = opts or {}
  if vim.system and not opts._jobstart then
    return callback_future("cfuture.nvim.system", function(done)
      local o = { cwd = opts.cwd, env = opts.env, stdin = opts.stdin, text = true, timeout = opts.timeout }
      return vim.system(cmd, o, function(r)
        done({ code = r.code, signal = r.signal, stdout = r.stdout or "", stderr = r.stderr or "" })
      end)
    end, function(obj) if obj then pcall(obj.kill, obj, 15) end end)
  end
  return callback_future("cfuture.nvim.system", function(done)
    local out, err = {}, {}
    local killed, t = false, nil
    local id = vim.fn.jobstart(cmd, {
      cwd = opts.cwd,
      env = opts.env,
      stdin = opts.stdin and "pipe" or "null",
      on_stdout = function(_, data) out[#out + 1] = job_bytes(data) end,
      on_stderr = function(_, data) err[#err + 1] = job_bytes(data) end,
      on_exit = function(_, code)
        if t then t:stop(); t:close() end
        local sig = 0
        -- as vim.system reports a timeout: code 124, the signal that ended it
        if killed then sig, code = code > 128 and code - 128 or 15, 124 end
        done({ code = code, signal = sig, stdout = table.concat(out), stderr = table.concat(err) })
      end,
    })
    if id <= 0 then
      done({ code = -1, signal = 0, stdout = "", stderr = "cfuture.nvim.system: cannot run " .. tostring(cmd[1]) })
      return
    end
    if opts.stdin then
      vim.fn.chansend(id, opts.stdin)
      vim.fn.chanclose(id, "stdin")
    end
    if opts.timeout then
      t = uv.new_timer()
      t:start(opts.timeout, 0, function() killed = true; vim.schedule(function() vim.fn.jobstop(id) end) end)
    end
    return id
  end, function(id)
    if id then pcall(vim.fn.jobstop, id) end
  end)
end

-- ---- LSP --------------------------------------------------------------------

M.lsp = {}

local is_new_api -- vim.fn is refused in fast events: asked once, in a step
local function new_api()
  if is_new_api == nil then is_new_api = vim.fn.has("nvim-0.11") == 1 end
  return is_new_api
end

local STOP_POLL_MS = 200

local function client_stopped(client)
  local ok, stopped
  if new_api() then ok, stopped = pcall(client.is_stopped, client)
  else ok, stopped = pcall(client.is_stopped) end
  return ok and stopped == true
end

local function get_client(fname, c)
  if type(c) == "number" then
    local client = vim.lsp.get_client_by_id(c)
    if not client then error(("cfuture.nvim.%s: argument #1: no LSP client with id %d"):format(fname, c), 3) end
    return client
  end
  if type(c) ~= "table" then argerr(fname, 1, "an LSP client or its id", c) end
  return c
end

--- A future of `result` (or nil and the error table {code, message}) for
-- an LSP request to one client (a client object or its id). Dropping the
-- future cancels the request ($/cancelRequest).
function M.lsp.request(client, method, params, bufnr)
  client = get_client("lsp.request", client)
  if type(method) ~= "string" then argerr("lsp.request", 2, "a method name", method) end
  return callback_future("cfuture.nvim.lsp.request", function(done)
    local watch -- a stopped client never calls the handler: look every STOP_POLL_MS
    local over = false
    local function finish(...)
      if watch then watch:stop(); watch:close(); watch = nil end
      if over then return end -- the handler after the stop was seen, or the other way round
      over = true
      done(...)
    end
    local handler = function(err, result) if err then finish(nil, err) else finish(result) end end
    local ok, rid
    if new_api() then ok, rid = client:request(method, params, handler, bufnr)
    else ok, rid = client.request(method, params, handler, bufnr) end
    if not ok then
      finish(nil, { code = -32803, message = "the client refused the request (is it stopped?)" })
      return nil
    end
    if over then return nil end -- answered from inside request: nothing to watch
    watch = uv.new_timer()
    watch:start(STOP_POLL_MS, STOP_POLL_MS, function()
      if client_stopped(client) then
        finish(nil, { code = -32803, message = "the LSP client stopped before it answered" })
      end
    end)
    return { rid = rid, stop = function() if watch then watch:stop(); watch:close(); watch = nil end end }
  end, function(req)
    if not req then return end
    req.stop()
    if client_stopped(client) then return end
    if new_api() then client:cancel_request(req.rid) else client.cancel_request(req.rid) end
  end)
end

local function buf_clients(bufnr)
  if vim.lsp.get_clients then return vim.lsp.get_clients({ bufnr = bufnr }) end
  if vim.fn.has("nvim-0.8") == 1 then return vim.lsp.get_active_clients({ bufnr = bufnr }) end
  local out = {}
  for _, c in pairs(vim.lsp.buf_get_clients(bufnr)) do out[#out + 1] = c end
  return out
end

--- A future of { [client_id] = {result = ..., error = ...} } for a request
-- to every client attached to buffer `bufnr` (0: current) that supports
-- `method`. Dropping it cancels the requests still running.
function M.lsp.request_all(bufnr, method, params)
  if type(bufnr) ~= "number" then argerr("lsp.request_all", 1, "a buffer number", bufnr) end
  if type(method) ~= "string" then argerr("lsp.request_all", 2, "a method name", method) end
  if bufnr == 0 then bufnr = vim.api.nvim_get_current_buf() end
  return cf.async(function()
    local clients, futs = {}, {}
    for _, c in ipairs(buf_clients(bufnr)) do
      local supports
      if new_api() then supports = c:supports_method(method, bufnr) else supports = c.supports_method(method) end
      if supports then
        clients[#clients + 1] = c
        futs[#futs + 1] = cf.async(function()
          local r, e = M.lsp.request(c, method, params, bufnr):await()
          return { result = r, error = e }
        end)
      end
    end
    local out = {}
    if #futs == 0 then return out end
    local rs = cf.join_all(futs):await()
    for i, c in ipairs(clients) do out[c.id] = rs[i] end
    return out
  end)()
end

return M
