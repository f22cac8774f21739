-- driver.lua: the bad-input harness of cfuture.
--
-- Ground rules
-- * Every exported function and method is found, not listed: the module
--   table (recursively), every live object's methods and metamethods, and
--   the LuaLS annotations (enum.lua). instances.lua has one constructor per
--   class; a class with methods and no constructor is "NOT COVERED".
-- * Each call runs in pcall, in the context it belongs in (or the wrong one,
--   on purpose), and is classified by classify.lua. Acceptable outcomes:
--   ok-error, ok-result. Failures: CRASH, HANG, UNCLEAR, ACCEPTED-INVALID.
-- * A crash kills the interpreter, so the cases run in child processes
--   (--chunk K --of N); a child writes each case to its log BEFORE the call,
--   so the parent knows which call a crash or a hang (no progress for
--   --hang seconds: the child is killed) belongs to, then resumes after it.
-- * One more child checks calls after the runtime closed: a table with __gc
--   made BEFORE require "cfuture" calls every function and method at
--   lua_close; each must raise "... the cfuture runtime is closed".
-- * Deterministic: the case list is sorted, and sampling (of the huge
--   number, NUL and long string cases; --full runs all) hashes (seed, id).
--
-- Usage (from the source tree):
--   lua5.4 test/badinput/driver.lua [--module-dir build/san] [--seed S]
--       [--full] [--of N] [--jobs J] [--case ID] [--report FILE] [--alone N] [--hang S]
-- The children: driver.lua --chunk K --of N --seed S --log FILE [--from I]
-- (or --rtclosed). BADINPUT_PRELOAD (the ASan runtime) is preloaded into
-- the children only; ASAN/LSAN/UBSAN_OPTIONS come from the environment.
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD") or io.popen("pwd"):read("l")
  return pwd .. "/" .. p
end
here = abspath(here):gsub("/%./", "/"):gsub("/%.$", "")
local root = here:gsub("/test/badinput$", "")
package.path = here .. "/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path

local opts = { seed = "1", of = 12, jobs = 2, rate = 30, window = 40, hang = 10, from = 0, alone = 8 }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local key = a:match("^%-%-([%w_-]+)$")
    if not key then error("driver.lua: unknown argument " .. a) end
    key = key:gsub("-", "_")
    if key == "full" or key == "rtclosed" or key == "bisect" then
      opts[key] = true
    else
      i = i + 1
      opts[key] = arg[i]
    end
    i = i + 1
  end
  for _, k in ipairs { "of", "jobs", "rate", "window", "hang", "from", "alone" } do opts[k] = tonumber(opts[k]) end
  if opts.chunk then opts.chunk = tonumber(opts.chunk) end
end
if opts.module_dir then
  package.cpath = abspath(opts.module_dir) .. "/?.so;" .. package.cpath
end
local scale = tonumber(os.getenv("CFUTURE_TIME_SCALE") or "1")

local function oneline(s)
  s = tostring(s):gsub("[%c]", " ")
  if #s > 240 then s = s:sub(1, 240) .. "..." end
  return s
end

-- ---------------------------------------------------------------- child --
local function child()
  -- the log exists before the sentinel (finalised after it)
  local log = assert(io.open(opts.log, "a"))
  local function emit(line)
    log:write(line, "\n")
    log:flush()
  end
  local calls = {} -- rtclosed: filled below, run by the sentinel
  local cf_ref
  if opts.rtclosed then
    local sentinel = setmetatable({}, { __gc = function()
      local classify = require "classify"
      for i, c in ipairs(calls) do
        if i > opts.from then
          emit(("B %d\t%s\t%s"):format(i, c.case.id, c.repro))
          local r = table.pack(pcall(c.fn, table.unpack(c.args, 1, c.n)))
          local o = r[1] and { res = table.pack(table.unpack(r, 2, r.n)) } or { raised = true, err = r[2] }
          local class, detail = classify.classify(c.case, o, nil)
          emit(("R %d\t%s\t%s"):format(i, class, oneline(detail)))
        end
      end
      emit("DONE")
    end })
    _G.__badinput_sentinel = sentinel
  end
  local cf = require "cfuture"
  cf_ref = cf
  local enum, matrix, runner, classify = require "enum", require "matrix", require "runner", require "classify"
  local inst = require "instances"
  local classes = enum.annotations(root)
  local env = inst.env(cf, scale)
  local samples, failed, cleanups = matrix.samples(cf, env, classes)
  local targets, notes = matrix.targets(cf, classes, samples)
  for name, msg in pairs(failed) do notes[#notes + 1] = "constructor of " .. name .. " failed: " .. oneline(msg) end
  local window = opts.window * scale

  if opts.rtclosed then
    -- every function and method with valid arguments, own objects as self
    local values = require "values"
    for _, t in ipairs(targets) do
      local case = { id = t.path .. "(rtclosed)", name = t.name, class = t.class, mm = t.mm,
        rtclosed = true, kind = "rt", ctx = "gc", is_c = debug.getinfo(t.fn, "S").what == "C" }
      env.target_path = t.path
      local args, n = {}, 0
      if t.kind ~= "fn" then args[1], n = samples[t.class], 1 end
      for _, p in ipairs(t.params) do n = n + 1; args[n] = values.valid(p, env) end
      local repro = ("%s(%s...)  -- at lua_close, after the runtime closed"):format(
        t.kind == "fn" and t.path or t.path:gsub(":", "."), t.kind == "fn" and "" or "<self>, ")
      calls[#calls + 1] = { case = case, fn = t.fn, args = args, n = n, repro = repro }
    end
    emit("TOTAL " .. #calls)
    for _, n in ipairs(notes) do emit("NOTE " .. n) end
    return -- lua_close runs the sentinel
  end

  local cases = matrix.cases(targets, classes, samples, opts.seed, opts.full, opts.rate)
  emit("TOTAL " .. #cases)
  if opts.chunk == 0 then for _, n in ipairs(notes) do emit("NOTE " .. n) end end
  local only = opts.case
  for idx, case in ipairs(cases) do
    local mine
    if only then mine = case.id == only else mine = (idx - 1) % opts.of == opts.chunk and idx > opts.from end
    if opts.upto and idx > tonumber(opts.upto) then mine = false end
    if mine then
      local t = targets[case.t]
      emit(("B %d\t%s\t%s"):format(idx, case.id, runner.repro(case, t, env)))
      local ok, o = pcall(runner.run, cf, case, t, env, samples, window)
      local class, detail
      if not ok then
        class, detail = "UNCLEAR", "harness: " .. tostring(o)
      else
        class, detail = classify.classify(case, o, cf)
      end
      emit(("R %d\t%s\t%s"):format(idx, class, oneline(detail)))
      runner.reset(cf)
      if idx % 16 == 0 then collectgarbage() end
    end
  end
  cf.block_on(function()
    for _, c in ipairs(cleanups) do pcall(c) end
    env.cleanup()
  end)
  emit("DONE")
end

-- --------------------------------------------------------------- parent --
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local function slurp(p) local f = io.open(p) if not f then return "" end local s = f:read("a") f:close() return s end

local function parent()
  local lua = os.getenv("BADINPUT_LUA") or "lua5.4"
  local preload = os.getenv("BADINPUT_PRELOAD")
  local out = opts.out or io.popen("mktemp -d /tmp/cf-badinput-run-XXXXXX"):read("l")
  os.execute("mkdir -p " .. sh_quote(out))
  local work = out .. "/cwd"
  os.execute("mkdir -p " .. sh_quote(work))
  local seq = 0
  local function launch(job)
    seq = seq + 1
    local base = ("%s/%s.%d"):format(out, job.name, seq)
    job.log, job.err, job.pid, job.rc = base .. ".log", base .. ".err", base .. ".pid", base .. ".rc"
    local a = { sh_quote(here .. "/driver.lua"), "--log", sh_quote(job.log), "--seed", sh_quote(opts.seed),
      "--of", opts.of, "--window", opts.window, "--rate", opts.rate, "--from", job.from or 0 }
    if opts.module_dir then a[#a + 1] = "--module-dir " .. sh_quote(abspath(opts.module_dir)) end
    if opts.full then a[#a + 1] = "--full" end
    if job.rtclosed then a[#a + 1] = "--rtclosed" end
    if job.chunk then a[#a + 1] = "--chunk " .. job.chunk end
    if job.case then a[#a + 1] = "--case " .. sh_quote(job.case) end
    if job.upto then a[#a + 1] = "--upto " .. job.upto end
    local cmd = ("cd %s && { %s %s %s 2>%s & echo $! >%s; wait $!; echo $? >%s; }"):format(
      sh_quote(work), preload and ("LD_PRELOAD=" .. sh_quote(preload)) or "", lua,
      table.concat(a, " "), sh_quote(job.err), sh_quote(job.pid), sh_quote(job.rc))
    os.execute("( " .. cmd .. " ) </dev/null >/dev/null 2>&1 &")
    job.size, job.changed = -1, os.time()
  end
  -- run jobs, at most opts.jobs at once; on_done(job) may queue more
  local queue, running = {}, {}
  local function run_all(on_done)
    while #queue > 0 or #running > 0 do
      while #running < opts.jobs and #queue > 0 do
        local j = table.remove(queue, 1)
        launch(j)
        running[#running + 1] = j
      end
      os.execute("sleep 0.2")
      for i = #running, 1, -1 do
        local j = running[i]
        if exists(j.rc) and slurp(j.rc):match("%d") then
          table.remove(running, i)
          j.status = tonumber(slurp(j.rc):match("%d+"))
          on_done(j)
        else
          local size = #slurp(j.log)
          if size ~= j.size then
            j.size, j.changed = size, os.time()
          elseif os.time() - j.changed > opts.hang * scale and not j.killed then
            j.killed = true
            os.execute("kill -KILL " .. (slurp(j.pid):match("%d+") or "0") .. " 2>/dev/null")
          end
        end
      end
    end
  end

  local results, order, notes, total = {}, {}, {}, 0
  local failures = {}
  local function sanitizer_excerpt(err)
    local lines = {}
    for l in err:gmatch("[^\n]+") do
      if l:match("ERROR: %w+Sanitizer") or l:match("runtime error") or l:match("SUMMARY") or
          (l:match("#%d+ ") and l:match("src/") and #lines < 8) or l:match("^lua5.4: ") then
        lines[#lines + 1] = oneline(l:gsub("^%s+", ""))
      end
    end
    return table.concat(lines, " | ")
  end
  local function parse(j)
    local begun, last = {}, nil
    local done = false
    for line in slurp(j.log):gmatch("[^\n]+") do
      local idx, id, repro = line:match("^B (%d+)\t([^\t]*)\t(.*)$")
      if idx then
        begun[tonumber(idx)] = { id = id, repro = repro }
        last = tonumber(idx)
      end
      local ridx, class, detail = line:match("^R (%d+)\t([^\t]*)\t(.*)$")
      if ridx then
        local b = begun[tonumber(ridx)]
        local key = (j.rtclosed and "rt:" or "") .. ridx
        if not results[key] then order[#order + 1] = key end
        results[key] = { id = b.id, repro = b.repro, class = class, detail = detail, file = j.name }
        if tonumber(ridx) == last then last = nil end
      end
      local n = line:match("^TOTAL (%d+)")
      if n and not j.rtclosed then total = tonumber(n) end
      local note = line:match("^NOTE (.*)")
      if note then notes[note] = true end
      if line == "DONE" then done = true end
    end
    return last, begun, done
  end
  local function on_done(j)
    local last, begun, done = parse(j)
    if j.status == 0 and done then return end
    local err = slurp(j.err)
    local why = j.killed and "HANG" or "CRASH"
    local detail = j.killed and ("no progress for %ds: killed"):format(opts.hang * scale)
      or ("exit %d: %s"):format(j.status, sanitizer_excerpt(err))
    if last then
      local key = (j.rtclosed and "rt:" or "") .. last
      if not results[key] then order[#order + 1] = key end
      results[key] = { id = begun[last].id, repro = begun[last].repro, class = why, detail = detail, file = j.name }
      if not j.case then -- go on after the failing call
        queue[#queue + 1] = { name = j.name, chunk = j.chunk, rtclosed = j.rtclosed, from = last }
        -- rerun the first few alone, to tell a call that crashes by itself
        -- from one that meets damage done earlier (--alone N)
        if not j.rtclosed and opts.alone > 0 then
          opts.alone = opts.alone - 1
          queue[#queue + 1] = { name = "alone", case = begun[last].id, alone_of = key }
        end
      end
    elseif j.alone_of then
      -- handled below
    else
      local key = "exit:" .. j.name .. ":" .. (j.from or 0)
      order[#order + 1] = key
      results[key] = { id = ("(the end of child %s, after its last call)"):format(j.name),
        repro = ("lua5.4 test/badinput/driver.lua --chunk %s --of %d --seed %s --log /tmp/l%s"):format(
          tostring(j.chunk), opts.of, opts.seed, opts.full and " --full" or ""),
        class = why, detail = detail, file = j.name }
    end
    if j.alone_of and results[j.alone_of] then
      results[j.alone_of].alone = (j.status ~= 0 or j.killed) and "reproduces alone" or "does not reproduce alone"
    end
  end

  if opts.case then
    queue[1] = { name = "case", case = opts.case }
    run_all(function(j)
      on_done(j)
      io.write(slurp(j.log), slurp(j.err))
    end)
  else
    for k = 0, opts.of - 1 do queue[#queue + 1] = { name = "chunk" .. k, chunk = k } end
    queue[#queue + 1] = { name = "rtclosed", rtclosed = true }
    local t0 = os.time()
    run_all(on_done)
    io.write(("badinput: %d children in %ds, logs in %s\n"):format(seq, os.time() - t0, out))
  end

  -- summary
  local counts, passed, failed = {}, 0, 0
  local classify = require "classify"
  local bad = {}
  for _, key in ipairs(order) do
    local r = results[key]
    counts[r.class] = (counts[r.class] or 0) + 1
    if classify.acceptable(r.class) then passed = passed + 1 else failed = failed + 1; bad[#bad + 1] = r end
  end
  local rep = {}
  local function p(s) rep[#rep + 1] = s end
  local nl = {}
  for n in pairs(notes) do nl[#nl + 1] = n end
  table.sort(nl)
  for _, n in ipairs(nl) do p("note: " .. n) end
  table.sort(bad, function(a, b)
    if a.class ~= b.class then return a.class < b.class end
    return a.id < b.id
  end)
  for _, r in ipairs(bad) do
    p(("%-16s %s\n    %s\n    repro: %s%s"):format(r.class, r.id, r.detail, r.repro,
      r.alone and ("\n    (" .. r.alone .. ")") or ""))
  end
  p(("cases in the matrix: %d (seed %s, %s), plus %d after the runtime closed"):format(
    total, opts.seed, opts.full and "full" or ("sampled at " .. opts.rate .. "%"),
    (function() local n = 0 for k in pairs(results) do if k:match("^rt:") then n = n + 1 end end return n end)()))
  p("outcome            calls")
  local cl = {}
  for c in pairs(counts) do cl[#cl + 1] = c end
  table.sort(cl)
  for _, c in ipairs(cl) do p(("%-18s %6d"):format(c, counts[c])) end
  p(("%d passed, %d failed"):format(passed, failed))
  local text = table.concat(rep, "\n") .. "\n"
  io.write(text)
  if opts.report then
    local f = assert(io.open(opts.report, "w"))
    f:write(text)
    f:close()
  end
  os.exit(failed == 0 and 0 or 1)
end

if opts.chunk or opts.rtclosed or (opts.case and opts.log) then child() else parent() end
