-- bench/redis/luaprof.lua PROGRAM ARGS... — run a bench program under a
-- count hook (every 97 VM instructions) and print, to stderr, where Lua's
-- instructions go: the share of samples per function (file:line of its
-- definition) and per file. C functions do not count instructions, so this
-- shows the Lua side only; perf shows the rest. debug.sethook's function
-- belongs to one thread, so cf.spawn, cf.block_on and coroutine.create /
-- wrap are wrapped to set it in every task and coroutine.
local prog = assert(arg[1], "usage: luaprof.lua PROGRAM ARGS...")
local fn_count, file_count, total = {}, {}, 0
local getinfo = debug.getinfo
local function hook()
  local info = getinfo(2, "S")
  if not info then return end
  local key = info.short_src .. ":" .. info.linedefined
  fn_count[key] = (fn_count[key] or 0) + 1
  file_count[info.short_src] = (file_count[info.short_src] or 0) + 1
  total = total + 1
end
local function report()
  debug.sethook()
  local function top(t, n, title)
    local list = {}
    for k, v in pairs(t) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[2] > b[2] end)
    io.stderr:write(("%s (%d samples):\n"):format(title, total))
    for i = 1, math.min(n, #list) do
      io.stderr:write(("  %5.1f%%  %s\n"):format(100 * list[i][2] / total, list[i][1]))
    end
  end
  top(file_count, 12, "Lua instructions by file")
  top(fn_count, 25, "by function")
end
-- the program sees its own name and arguments
local args = { [0] = prog }
for i = 2, #arg do args[i - 1] = arg[i] end
arg = args
local EVERY = 97
local function hooked(fn)
  return function(...)
    debug.sethook(hook, "", EVERY)
    return fn(...)
  end
end
dofile((prog:match("^(.*)/[^/]*$") or ".") .. "/common.lua") -- the paths, to find cfuture
local cf = require "cfuture"
local spawn, block_on = cf.spawn, cf.block_on
cf.spawn = function(fn, ...) return spawn(hooked(fn), ...) end
cf.block_on = function(fn, ...)
  if type(fn) == "function" then fn = hooked(fn) end
  return block_on(fn, ...)
end
local create, wrap = coroutine.create, coroutine.wrap
coroutine.create = function(fn) return create(hooked(fn)) end
coroutine.wrap = function(fn) return wrap(hooked(fn)) end
debug.sethook(hook, "", EVERY)
local exit = os.exit
os.exit = function(...) report() exit(...) end
dofile(prog)
report()
