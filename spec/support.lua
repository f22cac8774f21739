-- Shared helpers for the specs.
local M = {}

-- Upper bounds of timing windows stretch under valgrind and sanitizers;
-- lower bounds (a sleep never ends early) never do.
M.slow = tonumber(os.getenv("CFUTURE_TIME_SCALE") or "1")

M.lua = os.getenv("CFUTURE_LUA_BIN") or "lua5.4"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
M.shell_quote = shell_quote

-- Run a Lua program in a fresh interpreter with this package.path/cpath.
-- Returns stdout, exit code, wall milliseconds, stderr.
function M.run_lua(code, shell_prefix)
  local src = os.tmpname()
  local errf = os.tmpname()
  local f = assert(io.open(src, "w"))
  f:write(code)
  f:close()
  local cmd = ("%sLUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s %s %s 2>%s"):format(
    shell_prefix or "",
    shell_quote(package.path), shell_quote(package.cpath), shell_quote(package.path),
    shell_quote(package.cpath), os.getenv("CFUTURE_LUA_WRAPPER") or "", M.lua .. " " .. src, errf)
  local cf = require "cfuture"
  local t0 = cf.now()
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code_ = p:close()
  local ms = cf.now() - t0
  local ef = assert(io.open(errf))
  local err = ef:read("a")
  ef:close()
  os.remove(src)
  os.remove(errf)
  return out, code_, ms, err
end

-- Call fn(path, name) for every function in table t and the tables under
-- it (each table once; keys starting with "_" skipped): for cfuture,
-- fn("cf.fs", "read_file"), fn("cf", "spawn"), ...
function M.each_function(t, path, fn)
  local seen = { [t] = true }
  local function walk(tbl, p)
    for k, v in pairs(tbl) do
      if type(k) == "string" and not k:match("^_") then
        if type(v) == "function" then
          fn(p, k)
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          walk(v, p .. "." .. k)
        end
      end
    end
  end
  walk(t, path)
end

-- Run fn(dir) in a task with a fresh temporary directory, removed after
-- (also when fn raises, whose error is then raised again).
function M.in_tempdir(fn)
  local cf = require "cfuture"
  return cf.block_on(function()
    local dir = assert(cf.fs.mkdtemp("/tmp/cfuture-spec-"):await())
    local ok, err = pcall(fn, dir)
    assert(cf.fs.rmdir(dir, { recursive = true }):await())
    if not ok then error(err, 0) end
  end)
end

-- The whole contents of a file.
function M.read_file(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

-- Count this process's open file descriptors.
-- The number of open file descriptors of this process, not counting the
-- pipe io.popen makes for the count itself: the parent may or may not have
-- closed its copy of the write end when ls runs, so counting that pipe made
-- counts off by one at random.
function M.fd_count()
  local p = io.popen(('me=$(readlink /proc/$$/fd/1); ls -l /proc/%d/fd | grep -c -v -F -e "$me" -e total')
    :format(M.pid()))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

function M.pid()
  local f = io.open("/proc/self/stat")
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

function M.full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

-- Decode JSON text (strict enough to reject what is not JSON); raises on error.
function M.json_decode(text)
  local pos = 1
  local function fail(what) error(("json: %s at byte %d"):format(what, pos), 0) end
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if map[e] then
          out[#out + 1] = map[e]
          pos = pos + 2
        elseif e == "u" and text:sub(pos + 2, pos + 5):match("^%x%x%x%x$") then
          out[#out + 1] = utf8.char(tonumber(text:sub(pos + 2, pos + 5), 16))
          pos = pos + 6
        else
          fail("bad escape")
        end
      elseif c:byte() < 32 then
        fail("control character in string")
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        ws()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    else
      local lit = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if lit and #lit > 0 then
        pos = pos + #lit
        return tonumber(lit)
      end
      for word, v in pairs({ ["true"] = true, ["false"] = false, null = M.null }) do
        if text:sub(pos, pos + #word - 1) == word then
          pos = pos + #word
          return v
        end
      end
      fail("unexpected character")
    end
  end
  local v = value()
  ws()
  if pos <= #text then fail("trailing text") end
  return v
end
M.null = setmetatable({}, { __tostring = function() return "null" end })

-- A TCP port that nothing listens on now (a listener's, closed again).
function M.unused_port()
  local cf = require "cfuture"
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  l:close()
  return port
end

-- A task that counts ticks of `ms` (default 10) milliseconds, as proof that
-- other tasks ran while the test waited: t.n ticks so far; t.stop = true
-- (or t.h:abort()) ends it.
function M.ticker(ms)
  local cf = require "cfuture"
  local t = { n = 0, stop = false }
  t.h = cf.spawn(function()
    while not t.stop do
      cf.sleep(ms or 10):await()
      t.n = t.n + 1
    end
  end)
  return t
end

-- Milliseconds fn() took, then its results.
function M.elapsed(fn)
  local cf = require "cfuture"
  local t0 = cf.now()
  local r = table.pack(fn())
  return cf.now() - t0, table.unpack(r, 1, r.n)
end

return M
