-- enum.lua: what there is to call.
--
-- Two sources, merged so that nothing new escapes the harness:
-- * the LuaLS annotations (library/cfuture.lua, library/cfuture/*.lua): the
--   classes, their parents, and each function's or method's parameters
--   (name, type, optional) and its doc comment ("Inside a task", ...);
-- * the live module: every function reachable from require "cfuture"
--   (recursively), and every method and metamethod of every live instance.
-- A function or method found in only one of the two is still called (with
-- guessed parameters when it has no annotation) and listed in the summary.
local M = {}

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Parse one annotation file into `classes` (name -> class record).
local function parse(text, classes)
  local var_class = {}
  local doc, params, pending = {}, {}, nil
  local function class_of(name)
    local c = classes[name]
    if not c then
      c = { name = name, methods = {}, fields = {}, order = {} }
      classes[name] = c
    end
    return c
  end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local cname, parent = line:match("^%-%-%-@class ([%w%._]+)%s*:?%s*([%w%._]*)")
    if cname then
      local c = class_of(cname)
      if parent ~= "" then c.parent = parent end
      pending = c
    end
    local fname, ftype = line:match("^%-%-%-@field ([%w_]+) (%S+)")
    if fname and pending then pending.fields[fname] = ftype end
    local pname, ptype = line:match("^%-%-%-@param ([%w_%.]+%??) (.+)$")
    if pname then
      local opt = pname:sub(-1) == "?"
      pname = pname:gsub("%?$", "")
      -- the type is the first word, or a {...} table literal
      local t = ptype:match("^(%b{}%??)") or ptype:match("^(%S+)")
      if t:sub(-1) == "?" then opt, t = true, t:sub(1, -2) end
      if t:match("|nil$") then opt = true end
      params[#params + 1] = { name = pname, type = t, optional = opt }
    elseif line:match("^%-%-%-[^@]") then
      doc[#doc + 1] = line:sub(4)
    end
    local var = line:match("^local ([%w_]+) = {}")
    if var and pending then var_class[var], pending = pending.name, nil end
    local v, sep, name = line:match("^function ([%w_]+)([%.:])([%w_]+)%(")
    if v and var_class[v] then
      local c = class_of(var_class[v])
      if not c.methods[name] then c.order[#c.order + 1] = name end
      c.methods[name] = { name = name, params = params, doc = table.concat(doc, " "),
        method = sep == ":" }
    end
    if not line:match("^%-%-%-") then doc, params = {}, {} end
  end
end

function M.annotations(root)
  local classes = {}
  parse(assert(read(root .. "/library/cfuture.lua"), "library/cfuture.lua"), classes)
  local p = io.popen("ls " .. root .. "/library/cfuture/*.lua 2>/dev/null")
  for f in p:lines() do parse(read(f) or "", classes) end
  p:close()
  return classes
end

-- Is class a equal to or derived from b?
function M.is_a(classes, a, b)
  while a do
    if a == b then return true end
    a = classes[a] and classes[a].parent
  end
  return false
end

-- Every function under the module table, as { path = "cf.fs.open", fn =,
-- owner = the table holding it }, sorted by path. Tables that are some
-- live instance's __index (method tables such as cf.Stream) are returned
-- separately in `method_tables` (path -> table).
function M.walk(cf, is_method_table)
  local out, method_tables, seen = {}, {}, {}
  local function walk(t, path)
    if seen[t] then return end
    seen[t] = true
    local keys = {}
    for k in pairs(t) do
      if type(k) == "string" and not k:match("^_") then keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v, p = t[k], path .. "." .. k
      if type(v) == "function" then
        out[#out + 1] = { path = p, name = k, fn = v, owner = t }
      elseif type(v) == "table" then
        if is_method_table(v) then
          method_tables[p] = v
        else
          walk(v, p)
        end
      end
    end
  end
  walk(cf, "cf")
  return out, method_tables
end

-- The annotation class that documents a module table path: cf -> cfuture,
-- cf.fs -> cfuture.fs.
function M.namespace_class(path)
  return (path:gsub("^cf", "cfuture"))
end

return M
