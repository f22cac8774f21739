-- Shared set-up of the redis client benchmarks (redis_lua.lua, resty_cfuture.lua):
-- this checkout's cfuture (lua/ and build/, or build/jit/ on LuaJIT; CFUTURE_BUILD
-- names another build folder), Debian's redis-lua and LuaSocket Lua files, and the
-- downloaded lua-resty-redis (CFUTURE_COMPAT_LIBS, default /tmp/cfuture-compat-libs).
-- Returns the helpers: wall() seconds, cpu() seconds of this process (user + sys),
-- srv_cpu() seconds of redis-server (REDIS_PID) or nil, lua_name, fail(msg).
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = dir .. "/../.."
local jit = rawget(_G, "jit") ~= nil
local build = os.getenv("CFUTURE_BUILD") or (root .. (jit and "/build/jit" or "/build"))
local libs = os.getenv("CFUTURE_COMPAT_LIBS") or "/tmp/cfuture-compat-libs"
package.path = table.concat({
  dir .. "/?.lua", root .. "/lua/?.lua", root .. "/lua/?/init.lua", libs .. "/?.lua",
  (package.path:gsub("%./%?[^;]*;?", "")), "/usr/share/lua/5.1/?.lua",
}, ";")
package.cpath = build .. "/?.so;" .. package.cpath

local M = {}
M.lua_name = jit and "luajit" or _VERSION:gsub("Lua ", "lua")

-- Wall clock: LuaSocket's C gettime (microseconds), loaded before any
-- install() replaces the "socket" module.
M.wall = require("socket.core").gettime
M.cpu = os.clock -- clock(): CPU time of the process, user + sys

local pid = os.getenv("REDIS_PID")
local proc_cpu = require("workload").proc_cpu
function M.srv_cpu() return proc_cpu(pid) end

function M.fail(msg)
  io.stderr:write(arg[0], ": CHECK FAILED: ", msg, "\n")
  os.exit(1)
end

return M
