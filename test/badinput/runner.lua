-- runner.lua: run one case in this (child) interpreter.
--
-- Every call is made in pcall. A returned future is awaited (inside a task,
-- under a short window: still pending then is a result, "pending"); a
-- returned iterator is called once. Contexts: "task" (a task under
-- block_on), "main" (outside tasks), "step" (a task run by cf.step),
-- "gc" / "gc_task" (in a __gc finaliser, outside / inside a task).
local values = require "values"
local inst = require "instances"

local M = {}
local pack = table.pack
local unpack = table.unpack

local PLAIN = {
  ["nil"] = function() return nil end, boolean = function() return true end,
  number = function() return 42 end, string = function() return "x" end,
  table = function() return {} end, ["function"] = function() return function() end end,
  ["io.stdout"] = function() return io.stdout end,
  coroutine = function() return coroutine.create(function() end) end,
}

-- The arguments of a case (without self): args, n, the raw bad value.
local function arguments(case, t, env)
  env.target_path = t.path
  local args, n = {}, #t.params
  for i, p in ipairs(t.params) do args[i] = values.valid(p, env) end
  local raw
  if case.kind == "arg" then
    if case.bad.kind == "missing" then
      n = case.pos - 1
    else
      raw = case.bad.gen(env)
      args[case.pos] = raw
      if case.pos > n then n = case.pos end
    end
  end
  return args, n, raw
end

-- A readable Lua line for the case.
function M.repro(case, t, env)
  local args, n = arguments(case, t, env)
  local parts = {}
  for i = 1, n do
    if case.kind == "arg" and i == case.pos then
      parts[i] = values.source[case.value]
    else
      parts[i] = values.valid_source(t.params[i], args[i])
    end
  end
  local argstr = table.concat(parts, ", ")
  local cls = t.class and ("<" .. t.class:gsub("^cfuture%.", "") .. ">")
  local call
  if t.kind == "fn" then
    call = ("%s(%s)"):format(t.path, argstr)
  elseif t.kind == "mm" then
    local self = case.self_class and ("<" .. case.self_class:gsub("^cfuture%.", "") .. ">")
      or values.source[case.self_kind]
    call = ("getmetatable(%s).%s(%s)"):format(cls, t.mm, self)
  elseif case.kind == "self" then
    local self = case.self_class and ("<" .. case.self_class:gsub("^cfuture%.", "") .. ">")
      or values.source[case.self_kind]
    local sep = (self ~= "" and n > 0) and ", " or ""
    call = ("%s.%s(%s%s%s)"):format(cls, t.name, self, sep, argstr)
  else
    call = ("%s%s:%s(%s)"):format(cls, case.kind == "closed" and "(closed)" or "", t.name, argstr)
  end
  local where = ({ main = "outside tasks", task = "in a task", step = "in a task run by cf.step()",
    gc = "in a __gc finaliser", gc_task = "in a __gc finaliser inside a task" })[case.ctx] or case.ctx
  return call .. "  -- " .. where
end

-- Call fn(...) and describe what happened; await a returned future (only
-- where awaiting is possible), call a returned iterator once.
local function invoke(cf, t, fn, nargs, args, can_await, o)
  local r = pack(pcall(fn, unpack(args, 1, nargs)))
  if not r[1] then
    o.raised, o.err = true, r[2]
    return
  end
  o.res = pack(unpack(r, 2, r.n))
  if not can_await then return end
  local first = o.res[1]
  if o.res.n >= 1 and cf.is_future(first) then
    o.pending = true -- until the await returns
    local a = pack(pcall(cf.await, first))
    o.pending, o.awaited = false, true
    if not a[1] then
      o.raised, o.err = true, a[2]
    else
      o.res = pack(unpack(a, 2, a.n))
    end
  elseif type(first) == "function" and (t.doc:match("iterator") or t.name == "iter") then
    o.pending = true
    local a = pack(pcall(first))
    o.pending = false
    if not a[1] then o.raised, o.err = true, a[2] else o.res = pack(unpack(a, 2, a.n)) end
  end
end

-- Run a case; returns the outcome table { raised, err, res, pending, awaited, value }.
function M.run(cf, case, t, env, samples, window)
  local o = {}
  local args, nargs, raw = arguments(case, t, env)
  o.value = raw
  local needs_own = (t.kind == "method" and case.kind ~= "self") or (t.kind == "mm" and case.own)
  local own, cleanup
  local function make_own()
    if not needs_own then return end
    local class = t.kind == "mm" and case.self_class or t.class
    own, cleanup = inst.ctor[class](env)
    if case.kind == "closed" then inst.close[class](own) end
  end
  local function call_args()
    -- the self, then the arguments
    if t.kind == "fn" then return args, nargs end
    local self, has_self = nil, true
    if case.kind == "self" or (t.kind == "mm" and not case.own) then
      if case.self_kind == "missing" then has_self = false
      elseif case.self_kind then self = PLAIN[case.self_kind]()
      else self = samples[case.self_class] end
    else
      self = own
    end
    if not has_self then return {}, 0 end
    local a = { self }
    for i = 1, nargs do a[i + 1] = args[i] end
    return a, nargs + 1
  end
  local ctx = case.ctx
  local waits_all = t.doc:match("until every task")
  if waits_all then
    cf.block_on(function() env.stop_long(); cf.sleep(1):await() end)
  end
  if ctx == "task" then
    cf.block_on(function()
      make_own()
      local a, n = call_args()
      local h = cf.spawn(function() invoke(cf, t, t.fn, n, a, true, o) end)
      local idx = cf.select(h, cf.sleep(window)):await()
      if idx ~= 1 then h:abort(); o.pending = true end
      if cleanup then pcall(cleanup) end
    end)
  elseif ctx == "main" then
    if needs_own then cf.block_on(make_own) end
    local a, n = call_args()
    invoke(cf, t, t.fn, n, a, false, o)
    if not o.raised and o.res and o.res.n >= 1 and cf.is_future(o.res[1]) then
      local fut = o.res[1]
      local ok, idx = pcall(cf.block_on, function()
        local r = pack(cf.select(fut, cf.sleep(window)):await())
        return r[1], r
      end)
      o.awaited = true
      if not ok then o.raised, o.err = true, idx
      elseif idx ~= 1 then o.pending = true end
    end
    if cleanup then cf.block_on(function() pcall(cleanup) end) end
  elseif ctx == "step" then
    if needs_own then cf.block_on(make_own) end
    local a, n = call_args()
    local h = cf.spawn(function() invoke(cf, t, t.fn, n, a, true, o) end)
    local deadline = cf.now() + window
    while not h:is_finished() and cf.now() < deadline do cf.step() end
    if not h:is_finished() then
      h:abort(); o.pending = true
      for _ = 1, 10 do cf.step() end
    end
    if cleanup then cf.block_on(function() pcall(cleanup) end) end
  elseif ctx == "gc" or ctx == "gc_task" then
    local function arm()
      local a, n = call_args()
      setmetatable({}, { __gc = function() invoke(cf, t, t.fn, n, a, false, o) end })
    end
    local function in_gc()
      arm() -- in its own frame: no register keeps the table alive
      collectgarbage()
      collectgarbage()
    end
    if ctx == "gc" then
      if needs_own then cf.block_on(make_own) end
      in_gc()
      if cleanup then cf.block_on(function() pcall(cleanup) end) end
    else
      cf.block_on(function()
        make_own()
        in_gc()
        if cleanup then pcall(cleanup) end
      end)
    end
    if not o.res and not o.raised then o.raised, o.err = true, "finaliser did not run" end
  end
  if waits_all then
    cf.block_on(function()
      env.start_long()
      samples["cfuture.Scope"] = inst.ctor["cfuture.Scope"](env)
    end)
  end
  return o
end

-- Undo global settings a call may have changed.
function M.reset(cf)
  pcall(function() if cf.time.is_paused() then cf.time.resume() end end)
  pcall(cf.on_event, nil)
  pcall(cf.warn_slow_polls, nil)
  pcall(cf.dump_on_signal, nil)
end

return M
