-- Real servers and real client libraries for the compatibility specs.
--
--   M.libs()              package.path entries for Debian's redis-lua, LuaSocket's
--                         Lua half (socket.http, ltn12, ...), and lua-resty-redis /
--                         lua-resty-memcached (downloaded, never installed: see
--                         test/compat/fetch_libs.sh), for this interpreter
--   M.free_port()         a TCP port nobody listens on now
--   M.redis()             start redis-server on a free port: {port =, stop = fn, cli = fn}
--   M.memcached()         start memcached on a free port: {port =, stop = fn}
--
-- Servers run as children of the spec, without the sanitizer's LD_PRELOAD, and
-- are stopped (SIGTERM, then SIGKILL) by stop() or at exit of the interpreter.
local support = require "support"
local M = {}
local q = support.shell_quote

local jit = rawget(_G, "jit") ~= nil

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_cmd(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

-- The folder the lua-nginx-* files are unpacked into, shared by the specs.
M.libdir = os.getenv("CFUTURE_COMPAT_LIBS") or "/tmp/cfuture-compat-libs"

local added = false
function M.libs()
  if not added then
    added = true
    assert(sh("sh test/compat/fetch_libs.sh " .. q(M.libdir)),
      "could not get lua-resty-redis / lua-resty-memcached (apt-get download)")
    -- redis-lua's and LuaSocket's Lua files: the 5.1 folder holds them for
    -- every version (redis-lua has no 5.4 copy; its 5.3 file is the same)
    package.path = table.concat({
      M.libdir .. "/?.lua",
      package.path,
      "/usr/share/lua/5.1/?.lua",
    }, ";")
  end
  return M.libdir
end

function M.free_port()
  local out = read_cmd([[python3 -c 'import socket; s = socket.socket(); ]] ..
    [[s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']])
  return assert(tonumber(out:match("%d+")), "free_port: " .. out)
end

local function wait_port(port)
  return sh(("for i in $(seq 200); do nc -z 127.0.0.1 %d 2>/dev/null && exit 0; sleep 0.05; done; exit 1")
    :format(port))
end

local running = {}

local function stopper(pidfile)
  local stopped = false
  return function()
    if stopped then return end
    stopped = true
    running[pidfile] = nil
    sh(("pid=$(cat %s 2>/dev/null) && [ -n \"$pid\" ] && { kill $pid 2>/dev/null; " ..
      "for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.02; done; " ..
      "kill -9 $pid 2>/dev/null; }; rm -f %s; true"):format(q(pidfile), q(pidfile)))
  end
end

-- Start `cmd` (a daemonising server writing pidfile) and wait for its port.
local function start(name, cmd, port, pidfile)
  assert(sh("env -u LD_PRELOAD " .. cmd), name .. " did not start: " .. cmd)
  local stop = stopper(pidfile)
  running[pidfile] = stop
  if not wait_port(port) then
    stop()
    error(name .. " did not listen on port " .. port)
  end
  return stop
end

function M.redis(extra)
  local port = M.free_port()
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p " .. q(dir)))
  local pidfile = dir .. "/redis.pid"
  local stop = start("redis-server", ("redis-server --port %d --bind 127.0.0.1 --daemonize yes " ..
    "--pidfile %s --dir %s --save '' --appendonly no --logfile %s %s"):format(port, q(pidfile),
    q(dir), q(dir .. "/redis.log"), extra or ""), port, pidfile)
  local r = { port = port, dir = dir }
  function r.cli(args) -- redis-cli's output, for checks from outside the runtime
    return read_cmd(("env -u LD_PRELOAD redis-cli -p %d %s"):format(port, args))
  end
  function r.stop()
    stop()
    sh("rm -rf " .. q(dir))
  end
  return r
end

function M.memcached()
  local port = M.free_port()
  local pidfile = os.tmpname()
  local stop = start("memcached", ("memcached -d -u root -l 127.0.0.1 -p %d -U 0 -P %s")
    :format(port, q(pidfile)), port, pidfile)
  return { port = port, stop = stop }
end

-- a server left running by a failed spec is stopped at exit
M._guard = setmetatable({}, { __gc = function()
  for _, stop in pairs(running) do stop() end
end })

return M
