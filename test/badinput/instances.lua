-- instances.lua: one live object of each annotated class.
--
-- ctor[class](env) runs inside a task and returns a fresh instance (and
-- optionally a cleanup function); close[class](obj) closes it (abort,
-- drop...) for the "closed object" cases. A class that has methods but no
-- entry here is reported "not covered" in the summary: add a constructor.
local M = {}

local function await(f) return f:await() end

M.ctor = {
  ["cfuture.Future"] = function(env) return env.cf.sleep(0) end,
  ["cfuture.JoinHandle"] = function(env)
    local cf = env.cf
    return cf.spawn(function() cf.sleep(5):await() return 1 end)
  end,
  ["cfuture.Scope"] = function(env)
    local cf, got = env.cf, nil
    local h = cf.spawn(function()
      return cf.scope(function(s) got = s; cf.sleep(60000):await() end):await()
    end)
    env.long[#env.long + 1] = h
    for _ = 1, 10 do
      if got then break end
      cf.yield_now():await()
    end
    return assert(got, "no scope"), function() h:abort() end
  end,
  ["cfuture.Channel"] = function(env) return env.cf.channel(2) end,
  ["cfuture.OneshotSender"] = function(env) return (env.cf.oneshot()) end,
  ["cfuture.OneshotReceiver"] = function(env) return select(2, env.cf.oneshot()) end,
  ["cfuture.Semaphore"] = function(env) return env.cf.semaphore(2) end,
  ["cfuture.Permit"] = function(env) return env.cf.semaphore(2):try_acquire(1) end,
  ["cfuture.Mutex"] = function(env) return env.cf.mutex() end,
  ["cfuture.RwLock"] = function(env) return env.cf.rwlock() end,
  ["cfuture.Notify"] = function(env) return env.cf.notify() end,
  ["cfuture.Watch"] = function(env) return env.cf.watch(1) end,
  ["cfuture.WatchReceiver"] = function(env) return env.cf.watch(1):subscribe() end,
  ["cfuture.Broadcast"] = function(env) return env.cf.broadcast(2) end,
  ["cfuture.BroadcastReceiver"] = function(env) return env.cf.broadcast(2):subscribe() end,
  ["cfuture.Barrier"] = function(env) return env.cf.barrier(2) end,
  ["cfuture.Interval"] = function(env) return env.cf.interval(10) end,
  ["cfuture.Waker"] = function(env)
    local got
    env.cf.future(function(w) got = w; return true end):await()
    return got
  end,
  ["cfuture.Stream"] = function(env)
    local s = assert(env.cf.net.connect("127.0.0.1", env.port):await())
    return s, function() s:close() end
  end,
  ["cfuture.File"] = function(env)
    local f = assert(env.cf.fs.open(env.file(), "r+"):await())
    return f, function() if not f:is_closed() then f:close():await() end end
  end,
  ["cfuture.Process"] = function(env)
    local p = assert(env.cf.process.spawn { "sleep", "1", stdin = "pipe", stdout = "pipe" })
    return p, function()
      if not p:status() then p:kill("SIGKILL") end
      env.cf.timeout(2000, p:wait()):await()
      p.stdin:close(); p.stdout:close()
    end
  end,
  ["cfuture.SignalListener"] = function(env)
    local l = env.cf.signal.listen("SIGUSR2")
    return l, function() l:close() end
  end,
  ["cfuture.Listener"] = function(env)
    local l = assert(env.cf.net.listen("127.0.0.1", 0))
    return l, function() l:close() end
  end,
  ["cfuture.Udp"] = function(env)
    local u = assert(env.cf.net.udp("127.0.0.1", 0))
    return u, function() u:close() end
  end,
  ["cfuture.Hasher"] = function(env)
    local h = env.cf.crypto.hasher("sha256")
    return h, function() pcall(h.digest, h) end
  end,
  ["cfuture.ThreadHandle"] = function(env)
    local h = env.cf.thread.spawn(function() return 1 end)
    return h, function() h:abort() end
  end,
  ["cfuture.ThreadPool"] = function(env)
    local p = env.cf.thread.pool(1)
    return p, function() p:close() end
  end,
  ["cfuture.ThreadChannel"] = function(env)
    local c = env.cf.thread.channel(2)
    return c, function() c:close() end
  end,
}

-- How to make an instance "closed" (after close / abort / drop / taken).
M.close = {
  ["cfuture.Future"] = function(f) await(f) end, -- taken
  ["cfuture.JoinHandle"] = function(h) h:abort() end,
  ["cfuture.Channel"] = function(c) c:close() end,
  ["cfuture.OneshotSender"] = function(s) s:send(1) end,
  ["cfuture.Permit"] = function(p) p:release() end,
  ["cfuture.Watch"] = function(w) w:close() end,
  ["cfuture.Broadcast"] = function(b) b:close() end,
  ["cfuture.Stream"] = function(s) s:close() end,
  ["cfuture.File"] = function(f) await(f:close()) end,
  ["cfuture.Process"] = function(p) p:kill("SIGKILL"); await(p:wait()) end,
  ["cfuture.SignalListener"] = function(l) l:close() end,
  ["cfuture.Listener"] = function(l) l:close() end,
  ["cfuture.Udp"] = function(u) u:close() end,
  ["cfuture.Hasher"] = function(h) h:digest() end,
  ["cfuture.ThreadHandle"] = function(h) h:abort() end,
  ["cfuture.ThreadPool"] = function(p) p:close() end,
  ["cfuture.ThreadChannel"] = function(c) c:close() end,
}

-- The shared environment of one child: a temp dir, a listener whose
-- acceptor keeps the server ends open (and writes a few lines to each).
function M.env(cf, scale)
  -- long: tasks that outlive a case (stopped around cf.run, which waits
  -- for every task)
  local env = { cf = cf, scale = scale, held = {}, long = {} }
  local p = io.popen("mktemp -d /tmp/cf-badinput-XXXXXX")
  env.dir = p:read("l")
  p:close()
  local n = 0
  function env.fresh_path()
    n = n + 1
    return ("%s/f%d"):format(env.dir, n)
  end
  function env.file()
    local path = env.fresh_path()
    local f = assert(io.open(path, "w"))
    f:write("line one\nline two\n")
    f:close()
    return path
  end
  local l = assert(cf.net.listen("127.0.0.1", 0))
  env.listener = l
  env.port = select(2, l:local_address())
  function env.start_long()
    env.acceptor = cf.spawn(function()
      while true do
        local c = l:accept():await()
        if not c then return end
        c:write("hello\nworld\n")
        env.held[#env.held + 1] = c
        if #env.held > 64 then table.remove(env.held, 1):close() end
      end
    end)
    env.long = { env.acceptor }
  end
  function env.stop_long()
    for _, h in ipairs(env.long) do h:abort() end
    env.long = {}
  end
  env.start_long()
  function env.cleanup()
    env.stop_long()
    l:close()
    for _, c in ipairs(env.held) do c:close() end
    os.execute("rm -rf '" .. env.dir .. "'")
  end
  return env
end

return M
