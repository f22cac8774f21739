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

-- Count this process's open file descriptors.
function M.fd_count()
  local p = io.popen("ls /proc/" .. M.pid() .. "/fd | wc -l")
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

return M
