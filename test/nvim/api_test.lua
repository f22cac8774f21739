-- cfuture.nvim's API under nvim --headless (run by run_test.sh through the
-- test helper): callbacks as futures, the wrappers, error reporting, task
-- ownership. Each test asserts what could go wrong: a callback honoured
-- twice, a cancelled job left running, vim.api refused after an await.
local T = require "cfuture.nvim.test"
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local uv = vim.loop
local tmp = os.getenv("CF_NVIM_TMP")
local root = os.getenv("CF_NVIM_ROOT")

-- run fn() from a vim.loop timer: a fast event, where vim.api is refused
local function in_fast_event(ms, fn)
  local t = uv.new_timer()
  t:start(ms, 0, function()
    t:close()
    fn()
  end)
end

-- capture cf.on_error reports while fn runs (fn may await)
local function reports_during(fn)
  local got = {}
  local prev = cf.on_error(function(err) got[#got + 1] = tostring(err) end)
  local ok, err = pcall(fn)
  cf.on_error(prev)
  if not ok then error(err, 0) end
  return got
end

local function read_pid(path)
  local ok = T.wait_for(function()
    local f = io.open(path)
    if not f then return false end
    local s = f:read("*a")
    f:close()
    return s:match("%d+") ~= nil
  end, 3000):await()
  T.ok(ok, "no pid in " .. path)
  local f = io.open(path)
  local pid = tonumber(f:read("*a"):match("%d+"))
  f:close()
  return pid
end

local tests = {}
local function test(name, fn) tests[#tests + 1] = { name, fn } end

test("a callback fired in a fast event resumes the task where vim.api works", function()
  local fast_in_cb
  local v = cfn.await_callback(function(done)
    in_fast_event(20, function()
      fast_in_cb = vim.in_fast_event()
      -- vim.api is refused here ...
      fast_in_cb = fast_in_cb and not pcall(vim.api.nvim_get_current_buf)
      done("from timer", 42)
    end)
  end)
  local a, b = v:await()
  T.eq({ a, b }, { "from timer", 42 })
  T.eq(fast_in_cb, true, "the callback ran in a fast event")
  -- ... and allowed after the await
  T.eq(vim.in_fast_event(), false)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "written after the await" })
  T.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { "written after the await" })
  T.eq(vim.fn.bufexists(buf), 1) -- a vimscript function too
end)

test("a callback called twice counts once; the second call is reported", function()
  local fire
  local got = reports_during(function()
    local f = cfn.wrap(function(x, cb)
      fire = cb
      vim.defer_fn(function() cb(x .. "!") end, 10)
    end, 2)
    T.eq(f("first"):await(), "first!")
    fire("again") -- a picker that reuses on_choice
    cf.sleep(20):await()
  end)
  T.eq(#got, 1, "one report")
  T.ok(got[1]:find("cfuture.nvim.wrap: the callback was called 2 times", 1, true), got[1])
end)

test("a callback that never comes: timeout and select cancel it", function()
  local cancelled = 0
  local never = function()
    return cfn.await_callback(function() return "handle" end, function(h)
      T.eq(h, "handle")
      cancelled = cancelled + 1
    end)
  end
  local t0 = cf.now()
  local r, why = cf.timeout(50, never()):await()
  T.eq({ r, why }, { nil, "timeout" })
  T.ok(cf.now() - t0 >= 45 and cf.now() - t0 < 1000, "timed out after " .. (cf.now() - t0) .. " ms")
  local i = cf.select(never(), cf.sleep(10)):await()
  T.eq(i, 2)
  T.eq(cancelled, 2)
  -- an aborted task cancels what it awaited; a returned function is the canceller
  local closed = false
  local h = cfn.spawn(function()
    cfn.await_callback(function() return function() closed = true end end):await()
  end)
  cf.sleep(10):await()
  h:abort()
  local ok, err = pcall(h.await, h)
  T.ok(not ok and cf.is_cancelled(err), "the task was cancelled")
  T.eq(closed, true)
  -- a late callback after the cancellation is dropped, not reported
  local late
  local got = reports_during(function()
    local r2 = cf.timeout(10, cfn.await_callback(function(done) late = done end)):await()
    T.eq(r2, nil)
    late("too late")
    cf.sleep(10):await()
  end)
  T.eq(got, {})
end)

test("a callback called synchronously inside start completes at once", function()
  local n = 0
  local a = cfn.await_callback(function(done) n = n + 1; done("now") end):await()
  T.eq({ a, n }, { "now", 1 })
  -- and an error in start fails the future
  local ok, err = pcall(function()
    cfn.await_callback(function() error("start failed") end):await()
  end)
  T.ok(not ok and tostring(err):find("start failed", 1, true), tostring(err))
end)

test("bad arguments name the function and the argument", function()
  T.raises(function() cfn.wrap(print, "2") end,
    "cfuture.nvim.wrap: argument #2 must be the position of the callback (an integer >= 1) (got string)")
  T.raises(function() cfn.wrap(nil, 2) end, "cfuture.nvim.wrap: argument #1 must be a function (got nil)")
  T.raises(function() cfn.await_callback(1) end, "cfuture.nvim.await_callback: argument #1 must be a function (got number)")
  T.raises(function() cfn.job(42) end, "cfuture.nvim.job: argument #1 must be a list of strings or a string (got number)")
  T.raises(function() cfn.ui.select("x") end, "cfuture.nvim.ui.select: argument #1 must be a table (got string)")
  T.raises(function() cfn.autocmd(1) end, "cfuture.nvim.autocmd: argument #1 must be an event name or a list of them (got number)")
  T.raises(function() cfn.spawn(1) end, "cfuture.nvim.spawn: argument #1 must be a function or a future (got number)")
  T.raises(function() cfn.setup({ notify = 1 }) end, "cfuture.nvim.setup: option notify must be a boolean or a function (got number)")
end)

test("ui.select / ui.input: results, dismissal, a picker that answers twice", function()
  local orig_select, orig_input = vim.ui.select, vim.ui.input
  local ok, err = pcall(function()
    -- a picker answering from a fast event, then again (gitsigns #1582)
    vim.ui.select = function(items, opts, on_choice)
      T.eq(opts.prompt, "pick")
      in_fast_event(5, function() on_choice(items[2], 2) end)
      in_fast_event(30, function() on_choice(items[1], 1) end)
    end
    local got = reports_during(function()
      local item, idx = cfn.ui.select({ "a", "b" }, { prompt = "pick" }):await()
      T.eq({ item, idx }, { "b", 2 })
      vim.api.nvim_buf_set_lines(0, 0, -1, false, { item }) -- not a fast event
      cf.sleep(50):await()
    end)
    T.eq(#got, 1)
    T.ok(got[1]:find("cfuture.nvim.ui.select: the callback was called 2 times", 1, true), got[1])
    -- dismissed
    vim.ui.select = function(_, _, on_choice) vim.schedule(function() on_choice(nil, nil) end) end
    T.eq(cfn.ui.select({ "a" }):await(), nil)
    -- a picker that never answers (snacks.nvim #1115): a timeout gets out
    vim.ui.select = function() end
    T.eq({ cf.timeout(30, cfn.ui.select({ "a" })):await() }, { nil, "timeout" })
    -- Neovim's own vim.ui.input (input()) with the answer in typeahead
    vim.ui.input = orig_input
    vim.api.nvim_feedkeys("typed text\r", "t", false)
    T.eq(cfn.ui.input({ prompt = "> " }):await(), "typed text")
    vim.api.nvim_feedkeys("\r", "t", false)
    T.eq(cfn.ui.input({ prompt = "> " }):await(), nil) -- empty: dismissed
    io.stdout:write("\n") -- after input()'s echo of the prompt, for the TAP line
  end)
  vim.ui.select, vim.ui.input = orig_select, orig_input
  if not ok then error(err, 0) end
end)

test("autocmd: the next event, a stream of them, deleted when dropped", function()
  local function count()
    return #vim.api.nvim_get_autocmds({ event = "User", pattern = "CfTest" })
  end
  vim.defer_fn(function() vim.cmd("doautocmd User CfTest") end, 10)
  local args = cfn.autocmd("User", { pattern = "CfTest" }):await()
  T.eq(args.match, "CfTest")
  T.eq(count(), 0)
  -- dropped by a timeout: the autocommand goes away
  T.eq(cf.timeout(20, cfn.autocmd("User", { pattern = "CfTest" })):await(), nil)
  T.eq(count(), 0)
  -- a stream keeps every event, in order, until closed
  local seen = {}
  cf.async(function()
    local evs = cfn.autocmds({ "BufWritePost", "User" }, { pattern = { "CfTest", "*.txt" } })
    vim.defer_fn(function()
      vim.cmd("doautocmd User CfTest")
      vim.cmd("silent write! " .. tmp .. "/w.txt")
      vim.cmd("doautocmd User CfTest")
    end, 10)
    for ev in evs:iter() do
      seen[#seen + 1] = ev.event
      if #seen == 3 then break end
    end
    T.eq(count(), 1) -- still there until the function ends
  end)():await()
  T.eq(seen, { "User", "BufWritePost", "User" })
  T.eq(count(), 0, "the stream's autocommand is deleted when its function ends")
end)

test("job: streamed lines, exit code, missing program", function()
  local job = assert(cfn.job({ "sh", "-c", "echo one; echo err >&2; printf 'two\\r\\nthree\\r'; exit 3" }))
  T.ok(job.pid > 0)
  local out, errs = {}, {}
  for l in job:lines() do out[#out + 1] = l end
  for l in job:lines("stderr") do errs[#errs + 1] = l end
  T.eq(out, { "one", "two", "three" })
  T.eq(errs, { "err" })
  T.eq(job:wait():await(), 3)
  local j2, msg = cfn.job({ "/nonexistent/prog" })
  T.eq(j2, nil)
  T.ok(msg:find("/nonexistent/prog is not executable", 1, true), msg)
  -- 20000 lines arrive whole and in order
  local big = assert(cfn.job({ "seq", "1", "20000" }))
  local n, good = 0, true
  for l in big:lines() do
    n = n + 1
    if tonumber(l) ~= n then good = false end
  end
  T.eq({ n, good }, { 20000, true })
end)

test("job: a cancelled task's process is really gone", function()
  local pid
  local h = cfn.spawn(function()
    local job = assert(cfn.job({ "sleep", "30" }))
    pid = job.pid
    job:wait():await()
  end)
  T.ok(T.wait_for(function() return pid ~= nil end):await())
  T.ok(T.alive(pid), "the job runs")
  h:abort()
  T.ok(T.wait_for(function() return not T.alive(pid) end, 3000):await(), "pid " .. pid .. " still alive after abort")
  -- a dropped wait() stops the job too
  local job = assert(cfn.job({ "sleep", "30" }, { detach = true }))
  T.eq({ cf.timeout(30, job:wait()):await() }, { nil, "timeout" })
  T.ok(T.wait_for(function() return not T.alive(job.pid) end, 3000):await(), "still alive after a timeout")
  T.eq(job:wait():await(), 143) -- 128 + SIGTERM
  -- a signal of one's choice
  local j3 = assert(cfn.job({ "sleep", "30" }, { detach = true }))
  T.eq(j3:kill("SIGKILL"), true)
  T.eq({ j3:wait():await() }, { 137, 9 })
  T.eq(j3:kill(), false, "kill after exit")
  T.eq(j3:is_running(), false)
  -- stdin through job:write
  local cat = assert(cfn.job({ "cat" }, { stdin = "pipe" }))
  T.ok(cat:write("to cat\n"))
  T.ok(cat:close_stdin())
  T.eq(cat:read_line():await(), "to cat")
  T.eq(cat:read_line():await(), nil)
  T.eq(cat:wait():await(), 0)
  -- the function that started a job returns: the job is stopped
  local pid2
  cf.async(function()
    pid2 = assert(cfn.job({ "sleep", "30" })).pid
  end)():await()
  T.ok(T.wait_for(function() return not T.alive(pid2) end, 3000):await(), "the job outlived its function")
end)

test("system: output and code; a dropped run kills the process", function()
  local r = cfn.system({ "sh", "-c", "echo hi; echo oops >&2; exit 2" }):await()
  T.eq({ r.code, r.stdout, r.stderr }, { 2, "hi\n", "oops\n" })
  local r2 = cfn.system({ "cat" }, { stdin = "a\nb" }):await()
  T.eq(r2.stdout, "a\nb")
  local pidfile = tmp .. "/system.pid"
  local res = { cf.timeout(200, cfn.system({ "sh", "-c", "echo $$ > " .. pidfile .. "; exec sleep 30" })):await() }
  T.eq(res, { nil, "timeout" })
  local pid = read_pid(pidfile)
  T.ok(T.wait_for(function() return not T.alive(pid) end, 3000):await(), "the process outlived its run")
  T.raises(function() cfn.system({ "/nonexistent/prog" }):await() end, "is not executable")
  -- opts.timeout: killed, reported as vim.system does (code 124, SIGTERM)
  local r5 = cfn.system({ "sleep", "30" }, { timeout = 100, _jobstart = true }):await()
  T.eq({ r5.code, r5.signal }, { 124, 15 })
  if vim.system then -- the jobstart path, forced
    local r3 = cfn.system({ "sh", "-c", "printf x" }, { _jobstart = true }):await()
    T.eq(r3.stdout, "x")
  end
end)

test("spawn: an error is shown once, with its traceback", function()
  T.notifications(true)
  local h = cfn.spawn({ function() error("boom in a plugin task") end, name = "plugin-task" })
  local ok, err = pcall(h.await, h)
  T.ok(not ok and tostring(err):find("boom in a plugin task", 1, true), "the awaiter gets the error")
  h = nil
  cfn.spawn(function() local t = nil; return t.field end) -- nobody awaits
  cf.sleep(30):await()
  collectgarbage()
  collectgarbage()
  cf.sleep(30):await()
  local notes = T.notifications(true)
  T.eq(#notes, 2, vim.inspect(notes))
  T.ok(notes[1]:find("plugin-task", 1, true) and notes[1]:find("boom in a plugin task", 1, true), notes[1])
  T.ok(notes[1]:find("stack traceback:", 1, true), "traceback: " .. notes[1])
  T.ok(notes[2]:find("attempt to index", 1, true), notes[2])
  -- notify = false keeps it quiet
  local q = cfn.spawn({ function() error("quiet") end, notify = false })
  pcall(q.await, q)
  cf.sleep(10):await()
  T.eq(T.notifications(true), {})
  -- an error that is a table is shown with a traceback too; two tasks that
  -- fail with the same message are shown once each (nobody awaits either)
  cfn.spawn(function()
    error(setmetatable({}, { __tostring = function() return "a table error" end }))
  end)
  for _ = 1, 2 do cfn.spawn(function() error("same message", 0) end) end
  cf.sleep(30):await()
  collectgarbage()
  collectgarbage()
  cf.sleep(30):await()
  notes = T.notifications(true)
  T.eq(#notes, 3, vim.inspect(notes))
  T.ok(notes[1]:find("a table error", 1, true) and notes[1]:find("stack traceback:", 1, true), notes[1])
  T.ok(notes[2]:find("same message", 1, true) and notes[3]:find("same message", 1, true), vim.inspect(notes))
end)

test("spawn_for_buf: wiping the buffer cancels the task (and its job)", function()
  local buf = vim.api.nvim_create_buf(true, false)
  local pid
  local h = cfn.spawn_for_buf(buf, function()
    pid = assert(cfn.job({ "sleep", "30" })).pid
    cf.sleep(30000):await()
  end)
  T.ok(T.wait_for(function() return pid ~= nil end):await())
  vim.cmd("bwipeout! " .. buf)
  local ok, err = pcall(h.await, h)
  T.ok(not ok and cf.is_cancelled(err), "cancelled")
  T.ok(T.wait_for(function() return not T.alive(pid) end, 3000):await(), "job left running")
  T.raises(function() cfn.spawn_for_buf(buf, function() end) end,
    "cfuture.nvim.spawn_for_buf: argument #1: buffer " .. buf .. " does not exist")
end)

test("tasks leave cfn.tasks() however they end; a future can be spawned", function()
  local before = #cfn.tasks()
  local hs = {
    cfn.spawn(function() cf.sleep(5):await() end),
    cfn.spawn({ function() error("x") end, notify = false }),
    cfn.spawn(function() cf.sleep(10000):await() end),
    cfn.spawn(cf.sleep(5)),
  }
  T.eq(#cfn.tasks(), before + 4)
  hs[3]:abort()
  for _, h in ipairs(hs) do pcall(h.await, h) end
  T.eq(#cfn.tasks(), before)
  -- a spawned future that fails is shown like a function's error
  T.notifications(true)
  local f = cfn.spawn(cf.async(function() error("future failed") end)())
  pcall(f.await, f)
  cf.sleep(10):await()
  local notes = T.notifications(true)
  T.eq(#notes, 1)
  T.ok(notes[1]:find("future failed", 1, true), notes[1])
end)

test("a task that runs Neovim's loop (vim.wait) does not break the driver", function()
  local woke = false
  local other = cfn.spawn(function() cf.sleep(10):await(); woke = true end)
  vim.wait(60, function() return false end)
  T.eq(cf.timeout(1000, other):await(), nil)
  T.eq(woke, true)
end)

test(":CfutureStatus shows the task tree", function()
  local h = cfn.spawn({ function() cf.sleep(5000):await() end, name = "status-sleeper" })
  cf.sleep(10):await()
  vim.cmd("CfutureStatus")
  local lines = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  T.ok(lines:find("cfuture: attached", 1, true), lines)
  T.ok(lines:find("status-sleeper", 1, true) and lines:find("sleep", 1, true), lines)
  vim.cmd("close")
  h:abort()
end)

test("lsp: a request, request_all, and a dropped request is cancelled on the server", function()
  local server = root .. "/test/nvim/fake_lsp.py"
  local id = vim.lsp.start_client({ name = "fake", cmd = { "python3", server }, root_dir = tmp })
  T.ok(id, "client started")
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(buf, tmp .. "/x.txt")
  vim.lsp.buf_attach_client(buf, id)
  local client = vim.lsp.get_client_by_id(id)
  T.ok(T.wait_for(function() return client.initialized or (client.server_capabilities ~= nil and next(client.server_capabilities) ~= nil) end, 5000):await(), "initialized")
  local r, e = cfn.lsp.request(id, "test/echo", { x = 1 }, buf):await()
  T.eq({ r, e }, { { x = 1 }, nil })
  local r2, e2 = cfn.lsp.request(client, "no/such", {}, buf):await()
  T.eq(r2, nil)
  T.eq(e2.code, -32601)
  -- dropped while the server works on it: $/cancelRequest reaches the server
  T.eq({ cf.timeout(50, cfn.lsp.request(client, "test/slow", {}, buf)):await() }, { nil, "timeout" })
  local ids = cfn.lsp.request(client, "test/cancelled", {}, buf):await()
  T.eq(#ids, 1, "one request cancelled on the server")
  local all = cfn.lsp.request_all(buf, "textDocument/hover",
    { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 0, character = 0 } }):await()
  T.eq(all[id] and all[id].result, { contents = "fake hover" })
  -- the server dies while a request waits: the future completes with an error
  local t0 = uv.hrtime()
  local dying = cfn.spawn(function() return cfn.lsp.request(client, "test/slow", {}, buf):await() end)
  cf.sleep(50):await()
  vim.lsp.stop_client(id, true)
  local r3, e3 = cf.timeout(5000, dying):await()
  T.eq(r3, nil)
  T.eq(e3 and e3.message, "the LSP client stopped before it answered")
  T.ok((uv.hrtime() - t0) / 1e6 < 3000, "noticed within 3 s")
  -- a request to the stopped client is refused at once
  local r4, e4 = cf.timeout(2000, cfn.lsp.request(client, "test/echo", {}, buf)):await()
  T.eq(r4, nil)
  T.ok(e4 and e4.code == -32803, "refused")
end)

test("cfn.abort from a keymap or autocommand runs the task's cleanups at once", function()
  local pid, cleaned
  local h = cfn.spawn(function()
    local p = assert(cf.process.spawn { "sleep", "30", stdin = "null", stdout = "pipe", stderr = "null" })
    pid = p.pid
    cf.defer(function() p:kill("SIGKILL"); cleaned = true end)
    for _ in p.stdout:lines() do end -- output that never comes
  end)
  T.ok(T.wait_for(function() return pid ~= nil end):await())
  vim.defer_fn(function() cfn.abort(h) end, 20) -- outside any task, as a keymap runs
  T.ok(T.wait_for(function() return cleaned == true end, 1000):await(), "the cleanup did not run")
  T.ok(T.wait_for(function() return not T.alive(pid) end, 1000):await(), "pid " .. pid .. " still alive")
  T.raises(function() cfn.abort(42) end, "cfuture.nvim.abort: argument #1")
end)

test("ui.input through Neovim's own prompt holds up no other task, and a timeout cuts it", function()
  local ticks = 0
  local ticker = cfn.spawn(function()
    while true do
      cf.sleep(20):await()
      ticks = ticks + 1
    end
  end)
  local t0 = uv.hrtime()
  T.eq({ cf.timeout(150, cfn.ui.input({ prompt = "name: " })):await() }, { nil, "timeout" })
  local ms = (uv.hrtime() - t0) / 1e6
  T.ok(ms < 1000, ("the timeout came after %.0f ms"):format(ms))
  T.ok(ticks >= 2, "the ticker advanced " .. ticks .. " times")
  vim.api.nvim_input("<Esc>") -- leave the prompt the built-in opened
  cfn.abort(ticker)
  cf.sleep(50):await()
end)

test("work handed to a task from a timer runs at once without cfn.wake()", function()
  local tx, rx = cf.oneshot()
  local t0 = uv.hrtime()
  vim.defer_fn(function() tx:send("handed over") end, 30) -- no cfn.wake(): the runtime wakes the driver
  T.eq(rx:recv():await(), "handed over")
  local ms = (uv.hrtime() - t0) / 1e6
  T.ok(ms < 1000, ("the task ran %.0f ms later"):format(ms))
end)

test("an error queued by a finaliser outside a step is delivered while Neovim is idle", function()
  local ch = cf.channel(8)
  local prev = cf.on_error(function(err) ch:try_send(tostring(err)) end)
  local h = cf.spawn(function() error("failed, nobody awaited", 0) end)
  while not h:is_finished() do cf.yield_now():await() end
  vim.defer_fn(function()
    h = nil -- luacheck: ignore (the last reference: the report comes when it is collected)
    collectgarbage()
    collectgarbage()
  end, 30)
  local t0 = uv.hrtime()
  local got = cf.timeout(5000, ch:recv()):await()
  local ms = (uv.hrtime() - t0) / 1e6
  cf.on_error(prev)
  T.ok(type(got) == "string" and got:find("^failed, nobody awaited") ~= nil, tostring(got))
  T.ok(ms < 1000, ("delivered %.0f ms later"):format(ms))
end)

test("system's jobstart fallback keeps NUL bytes", function()
  local r = cfn.system({ "printf", "a\\0b\\n" }, { _jobstart = true }):await()
  T.eq(r.stdout, "a\0b\n")
end)

T.run(tests, { timeout = 15000 })
