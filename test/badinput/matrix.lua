-- matrix.lua: the deterministic list of cases.
--
-- targets(): every function and method (enum.lua) with its parameters and
-- the context it belongs in; cases(): target x argument position x value,
-- plus foreign selves, closed objects, wrong contexts and metamethods, in a
-- fixed order with stable ids ("cf.fs.open(#1=NUL)"). Cases marked core run
-- always; the others (huge numbers, NUL, empty and long strings) are
-- sampled by a hash of (seed, id) unless --full.
local enum = require "enum"
local values = require "values"
local inst = require "instances"

local M = {}

-- Functions that belong outside tasks (the rest run inside one).
local OUTSIDE = { ["cf.block_on"] = true, ["cf.run"] = true, ["cf.step"] = true,
  ["cf.test.run"] = true }
local CONTEXTS = { "main", "task", "step", "gc", "gc_task" }

local function context_of(path, doc)
  if OUTSIDE[path] or (doc or ""):match("^Outside tasks") then return "main" end
  return "task"
end

local function fnv(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return h
end

-- The live sample instances (one per class with a constructor), made in a
-- task. Returns samples (class -> obj), failures (class -> message).
function M.samples(cf, env, classes)
  local samples, cleanups, failed = {}, {}, {}
  local names = {}
  for name in pairs(inst.ctor) do names[#names + 1] = name end
  table.sort(names)
  cf.block_on(function()
    for _, name in ipairs(names) do
      local ok, obj, cleanup = pcall(inst.ctor[name], env)
      if ok and obj ~= nil then
        samples[name] = obj
        cleanups[#cleanups + 1] = cleanup
      else
        failed[name] = tostring(obj)
      end
    end
  end)
  return samples, failed, cleanups
end

-- Build the target list. Returns targets, notes (a list of strings for the
-- summary: uncovered classes, annotation drift).
function M.targets(cf, classes, samples)
  local notes, targets = {}, {}
  local index_tables, index_class = {}, {}
  local class_names = {}
  for name in pairs(samples) do class_names[#class_names + 1] = name end
  table.sort(class_names)
  for _, name in ipairs(class_names) do
    local mt = getmetatable(samples[name])
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      index_tables[mt.__index] = true
      index_class[name] = mt.__index
    end
  end
  -- functions of the module
  -- a module table is a method table when it is some object's __index, or
  -- when some object's methods are all its functions (an __index function)
  local function is_method_table(tbl)
    if index_tables[tbl] then return true end
    for _, name in ipairs(class_names) do
      local obj, all, any = samples[name], true, false
      for k, f in pairs(tbl) do
        if type(f) == "function" then
          local ok, g = pcall(function() return obj[k] end)
          if ok and g == f then any = true else all = false end
        end
      end
      if any and all then
        index_tables[tbl] = true
        index_class[name] = index_class[name] or tbl
        return true
      end
    end
    return false
  end
  local fns, method_tables = enum.walk(cf, is_method_table)
  local seen_fn = {}
  for _, f in ipairs(fns) do
    local ns = enum.namespace_class(f.path:match("^(.*)%.[^.]+$"))
    local ann = classes[ns] and classes[ns].methods[f.name]
    if not ann then notes[#notes + 1] = "unannotated function " .. f.path .. " (guessed parameters)" end
    seen_fn[ns .. "." .. f.name] = true
    targets[#targets + 1] = { kind = "fn", path = f.path, name = f.name, fn = f.fn,
      params = ann and ann.params or { { name = "arg1", type = "any" }, { name = "arg2", type = "any" } },
      ctx = context_of(f.path, ann and ann.doc), doc = ann and ann.doc or "" }
  end
  -- annotated namespaces whose functions are missing; object classes
  local all = {}
  for name in pairs(classes) do all[#all + 1] = name end
  table.sort(all)
  local owner_of = {} -- method name -> annotated classes declaring it
  for _, name in ipairs(all) do
    for m in pairs(classes[name].methods) do
      owner_of[m] = owner_of[m] or {}
      owner_of[m][name] = true
    end
  end
  for _, name in ipairs(all) do
    local c = classes[name]
    local ns = cf
    for part in (name .. "."):gmatch("([^.]+)%.") do
      if part ~= "cfuture" then ns = type(ns) == "table" and rawget(ns, part) or nil end
    end
    local is_namespace = name == "cfuture" or (type(ns) == "table" and not index_tables[ns]
      and name:match("^cfuture%.%l"))
    if name:match("^cfuture%.%l") and ns == nil then
      notes[#notes + 1] = ("submodule %s is not loaded by require \"cfuture\" (needs its host): not covered"):format(name)
    elseif is_namespace then
      for _, m in ipairs(c.order) do
        if not seen_fn[name .. "." .. m] then
          notes[#notes + 1] = ("annotated %s.%s is not in the module (not covered)"):format(name, m)
        end
      end
    elseif next(c.methods) then
      local obj = samples[name]
      if not obj then
        notes[#notes + 1] = "class " .. name .. " has no constructor in instances.lua: NOT COVERED"
      else
        -- annotated methods of the class and its ancestors, then the
        -- unannotated ones its __index holds
        local ms, have = {}, {}
        -- (an inherited method is tested on the ancestor when it has a
        -- constructor, else here)
        local k = name
        while k and classes[k] do
          for _, m in ipairs(classes[k].order) do
            if not have[m] then
              have[m] = true
              if k == name or not samples[k] then ms[#ms + 1] = { name = m, ann = classes[k].methods[m] } end
            end
          end
          k = classes[k].parent
        end
        local idx = index_class[name] or {}
        local extra = {}
        for m, f in pairs(idx) do
          if type(m) == "string" and type(f) == "function" and not m:match("^_") and not have[m]
              and not owner_of[m] then
            extra[#extra + 1] = m
          end
        end
        table.sort(extra)
        for _, m in ipairs(extra) do
          notes[#notes + 1] = ("unannotated method %s:%s (guessed parameters)"):format(name, m)
          ms[#ms + 1] = { name = m }
        end
        for _, m in ipairs(ms) do
          local f = obj[m.name]
          if type(f) ~= "function" then
            notes[#notes + 1] = ("annotated %s:%s is not on the object (not covered)"):format(name, m.name)
          else
            targets[#targets + 1] = { kind = "method", class = name, name = m.name, fn = f,
              path = name .. ":" .. m.name,
              params = m.ann and m.ann.params or { { name = "arg1", type = "any" } },
              ctx = context_of(name .. ":" .. m.name, m.ann and m.ann.doc), doc = m.ann and m.ann.doc or "" }
          end
        end
      end
    end
  end
  -- metamethods, once per function
  local seen_mm = {}
  for _, name in ipairs(class_names) do
    local mt = getmetatable(samples[name])
    if type(mt) == "table" then
      local keys = {}
      for key, f in pairs(mt) do
        if type(key) == "string" and key:match("^__") and type(f) == "function" then keys[#keys + 1] = key end
      end
      table.sort(keys)
      for _, key in ipairs(keys) do
        local f = mt[key]
        if not seen_mm[f] then
          seen_mm[f] = true
          targets[#targets + 1] = { kind = "mm", class = name, name = key, mm = key, fn = f,
            path = name .. "." .. key, params = {}, ctx = "main", doc = "" }
        end
      end
    end
  end
  for m, _ in pairs(method_tables) do local _ = m end
  return targets, notes
end

-- The case list. Each case: { id, t = target index, kind, pos, value,
-- bad, param, self_class, foreign, closed, ctx, core }.
function M.cases(targets, classes, samples, seed, full, rate)
  local out = {}
  local sclasses = {}
  for name in pairs(samples) do sclasses[#sclasses + 1] = name end
  table.sort(sclasses)
  local function add(c)
    c.core = c.core or false
    if c.core or full or fnv(seed .. "|" .. c.id) % 100 < rate then out[#out + 1] = c end
  end
  local plain_selves = { "missing", "nil", "boolean", "number", "string", "table", "function",
    "io.stdout", "coroutine" }
  for ti, t in ipairs(targets) do
    local label = t.kind == "method" and (t.class .. ":" .. t.name) or t.path
    local base = { t = ti, path = t.path, name = t.name, class = t.class, mm = t.mm,
      nparams = #t.params }
    local function case(extra)
      local c = {}
      for k, v in pairs(base) do c[k] = v end
      for k, v in pairs(extra) do c[k] = v end
      add(c)
    end
    if t.kind == "mm" then
      for _, k in ipairs(plain_selves) do
        case { id = label .. "(self=" .. k .. ")", kind = "mm", self_kind = k, value = k,
          foreign = false, core = true, ctx = "main" }
      end
      for _, other in ipairs(sclasses) do
        local own = other == t.class or getmetatable(samples[other]) == getmetatable(samples[t.class])
        case { id = label .. "(self=" .. other .. ")", kind = "mm", self_class = other,
          value = other, core = true, ctx = "main", own = own }
      end
    else
      local nparams = #t.params
      local positions = math.max(nparams, 1)
      local exported = false
      for _, u in ipairs(targets) do
        if u.kind == "fn" and u.fn == t.fn then exported = true end
      end
      if t.kind == "method" then
        for _, k in ipairs(plain_selves) do
          case { id = label .. "(self=" .. k .. ")", kind = "self", self_kind = k, value = k,
            foreign = not exported, core = true, ctx = t.ctx }
        end
        -- not foreign: a related class, an object whose own method of that
        -- name is this very function (JoinHandle and ThreadHandle share
        -- abort), or a method that is also a module function (Future.await
        -- is cf.await, which takes what cf.await takes)
        for _, other in ipairs(exported and {} or sclasses) do
          local ok, same = pcall(function() return samples[other][t.name] == t.fn end)
          if not (ok and same) and not enum.is_a(classes, other, t.class)
              and not enum.is_a(classes, t.class, other) then
            case { id = label .. "(self=" .. other .. ")", kind = "self", self_class = other,
              value = other, foreign = true, core = true, ctx = t.ctx }
          end
        end
        if inst.close[t.class] then
          case { id = label .. "(closed)", kind = "closed", value = "closed", core = true, ctx = t.ctx }
        end
      end
      for pos = 1, positions do
        local param = t.params[pos] or { name = "extra", type = "any", optional = true }
        for _, v in ipairs(values.bad) do
          case { id = ("%s(#%d=%s)"):format(label, pos, v.kind), kind = "arg", pos = pos,
            value = v.kind, bad = v, param = param, core = v.core, ctx = t.ctx }
        end
      end
      for _, ctx in ipairs(CONTEXTS) do
        case { id = ("%s(ctx=%s)"):format(label, ctx), kind = "ctx", value = "valid", core = true,
          ctx = ctx }
      end
    end
  end
  return out
end

return M
