-- Loaded by busted (--helper) when the suite runs on LuaJIT: the Lua 5.2-5.4
-- library functions the specs use, with their 5.4 results, and spec files
-- that parse. Specs of what LuaJIT cannot do are tagged #lua54 and excluded
-- from that run; the `<close>` attributes left in the files are stripped
-- here only so that the files load. The #lua54 specs:
-- - <close> variables: cancel (6), combinators (4), errors (the
--   deadlock's cleanup), gc (2, one in a 5.4 subprocess), process (a
--   <close> kill guard; examples/shutdown.lua), sync (permit and guard
--   release through <close>: 5), sync_stress;
-- - the collector: sync's dropped oneshot sender (LuaJIT's stack slot keeps
--   it reachable).
if not jit then return end

table.unpack = table.unpack or unpack
table.pack = table.pack or function(...) return { n = select("#", ...), ... } end
math.type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return x == math.floor(x) and x > -math.huge and x < math.huge and "integer" or "float"
end
utf8 = utf8 or {
  char = function(c)
    if c < 0x80 then return string.char(c) end
    if c < 0x800 then return string.char(0xC0 + math.floor(c / 64), 0x80 + c % 64) end
    return string.char(0xE0 + math.floor(c / 4096), 0x80 + math.floor(c / 64) % 64, 0x80 + c % 64)
  end,
}

-- os.execute and a popen'ed file's close report (ok, "exit"|"signal", n)
local function status(st)
  if st % 256 == 0 then
    local code = math.floor(st / 256)
    return code == 0 or nil, "exit", code
  end
  return nil, "signal", st % 128
end
local execute = os.execute
os.execute = function(cmd)
  if cmd == nil then return execute() ~= 0 end
  return status(execute(cmd))
end

local MARK = "\30cfuture-exit:"
local popen = io.popen
io.popen = function(cmd, mode)
  if mode == "w" then return popen(cmd, mode) end
  local f, err = popen(("%s\nprintf '%s%%d' $?"):format(cmd, MARK), mode)
  if not f then return f, err end
  local buf, code
  local function fill()
    if buf then return end
    local all = f:read("*a")
    local at = all:find(MARK, 1, true)
    code = at and tonumber(all:sub(at + #MARK)) or 0
    buf = at and all:sub(1, at - 1) or all
  end
  local proxy = {}
  function proxy:read(fmt)
    fill()
    fmt = tostring(fmt or "l"):gsub("^%*", "")
    if fmt == "a" then
      local s = buf
      buf = ""
      return s
    end
    if buf == "" then return nil end
    local line, rest = buf:match("^([^\n]*)\n?(.*)$")
    buf = rest
    return fmt == "L" and line .. "\n" or line
  end
  function proxy:lines() return function() return proxy:read("l") end end
  function proxy:close()
    fill()
    f:close()
    if code == 0 then return true, "exit", 0 end
    return nil, "exit", code
  end
  return proxy
end

-- load the spec files with their <close>/<const> attributes removed
local loadfile_ = loadfile
loadfile = function(path, ...)
  local fh = io.open(path)
  if not fh or not path:match("_spec%.lua$") then
    if fh then fh:close() end
    return loadfile_(path, ...)
  end
  local src = fh:read("*a")
  fh:close()
  src = src:gsub("<close>", ""):gsub("<const>", "")
  return loadstring(src, "@" .. path)
end
