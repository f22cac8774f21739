-- Bad input to the synchronisation primitives: wrong or foreign selves,
-- counts out of range, closed objects, metamethods called by hand, a closed
-- runtime. Every refusal names the function and the argument.
local cf = require "cfuture"
local support = require "support"

local MAX = "9007199254740992" -- 2^53: the most permits, capacities, barrier sizes

-- The message of the error fn(...) raises (position info cut off).
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("semaphore counts", function()
  it("refuse a total of permits beyond 2^53 instead of wrapping", function()
    local s = cf.semaphore(0)
    s:add_permits(2 ^ 52)
    s:add_permits(2 ^ 52)
    assert.are.equal(2 ^ 53, s:available())
    assert.are.equal("add_permits: cannot add 1 permit(s): the semaphore has " .. MAX
      .. " (free and held) and may have at most " .. MAX, err_of(s.add_permits, s, 1))
    assert.are.equal(2 ^ 53, s:available())
    -- permits handed out count too: releasing them can never overflow
    local t = cf.semaphore(2 ^ 53)
    local p = t:try_acquire(2 ^ 53)
    assert.are.equal(0, t:available())
    assert.matches("^add_permits: cannot add 5 permit%(s%)", err_of(t.add_permits, t, 5))
    p:release()
    assert.are.equal(2 ^ 53, t:available())
  end)

  it("range-check every count: huge, negative, fractional, NaN, wrong type", function()
    local s = cf.semaphore(1)
    local function range(fname, arg, got)
      return ("%s: argument #%d must be an integer from 0 to %s (got %s)"):format(fname, arg, MAX, got)
    end
    assert.are.equal(range("add_permits", 2, tostring(2 ^ 62)), err_of(s.add_permits, s, 2 ^ 62))
    assert.are.equal(1, s:available())
    assert.are.equal(range("acquire", 2, tostring(2 ^ 60)), err_of(s.acquire, s, 2 ^ 60))
    assert.are.equal(range("try_acquire", 2, "-1"), err_of(s.try_acquire, s, -1))
    assert.are.equal(range("acquire", 2, "1.5"), err_of(s.acquire, s, 1.5))
    assert.are.equal(range("acquire", 2, "table"), err_of(s.acquire, s, {}))
    assert.matches("^acquire: argument #2 must be an integer from 0 to " .. MAX .. " %(got %-?nan%)$",
      err_of(s.acquire, s, 0 / 0))
    assert.are.equal(range("semaphore", 1, "no value"), err_of(cf.semaphore))
    assert.are.equal(range("semaphore", 1, tostring(2 ^ 53 + 2)), err_of(cf.semaphore, 2 ^ 53 + 2))
    assert.are.equal(range("semaphore", 1, tostring(math.huge)), err_of(cf.semaphore, math.huge))
    assert.are.equal(2 ^ 53, cf.semaphore(2 ^ 53):available())
    local p = s:try_acquire(1)
    assert.are.equal(range("release", 2, "-3"), err_of(p.release, p, -3))
    assert.are.equal("release: cannot release " .. MAX .. " permit(s): only 1 held",
      err_of(p.release, p, 2 ^ 53))
    assert.are.equal(1, p:count())
  end)

  it("a permit of zero permits releases once", function()
    local s = cf.semaphore(0)
    local p = s:try_acquire(0)
    assert.are.equal(0, p:count())
    p:release()
    assert.are.equal("release: the permit was already released", err_of(p.release, p))
    assert.are.equal(0, s:available())
  end)
end)

describe("acquire takes no hidden argument", function()
  it("an extra argument changes nothing: the result is a plain permit", function()
    local s = cf.semaphore(3)
    local p = s:try_acquire(1, 200) -- once an unchecked index into a 4-entry array
    assert.are.equal(1, p:count())
    p:release()
    assert.are.equal("release: the permit was already released", err_of(p.release, p))
    cf.block_on(function()
      local q = s:acquire(2, 3):await() -- once made a write guard
      q:release()
      assert.are.equal("release: the permit was already released", err_of(q.release, q))
    end)
    assert.are.equal(3, s:available())
  end)

  it("mutex and rwlock guards still unlock; their semaphore takes no permits", function()
    assert.is_nil(cf._sync)
    local m, rw = cf.mutex(), cf.rwlock()
    local g = m:try_lock()
    g:unlock()
    assert.are.equal("unlock: the guard was already unlocked", err_of(g.unlock, g))
    cf.block_on(function()
      local w = rw:write():await()
      assert.is_nil(cf.timeout(1, rw:read()):await())
      w:unlock()
      rw:read():await():unlock()
    end)
    assert.are.equal("add_permits: argument #1 is the semaphore of a mutex or rwlock, which takes no permits",
      err_of(m.sem.add_permits, m.sem, 1))
    assert.is_false(m:is_locked())
  end)
end)

describe("C methods and metamethods with a foreign self", function()
  it("name the function, the argument and what came", function()
    local s, n, ch = cf.semaphore(1), cf.notify(), cf.channel()
    local p = s:try_acquire()
    local sem_m, n_m, p_m = getmetatable(s).__index, getmetatable(n).__index, getmetatable(p).__index
    assert.are.equal("acquire: argument #1 must be a semaphore (got cfuture.Notify)", err_of(sem_m.acquire, n))
    assert.are.equal("available: argument #1 must be a semaphore (got no value)", err_of(sem_m.available))
    assert.are.equal("add_permits: argument #1 must be a semaphore (got cfuture.Permit)",
      err_of(sem_m.add_permits, p, 1))
    assert.are.equal("wait: argument #1 must be a notify (got cfuture.Semaphore)", err_of(n_m.wait, s))
    assert.are.equal("notify_all: argument #1 must be a notify (got number)", err_of(n_m.notify_all, 42))
    assert.are.equal("release: argument #1 must be a permit (got cfuture.Semaphore)", err_of(p_m.release, s))
    assert.are.equal("unlock: argument #1 must be a permit (got string)", err_of(p_m.unlock, "x"))
    assert.are.equal("count: argument #1 must be a permit (got no value)", err_of(p_m.count))
    assert.are.equal("send: argument #1 must be a channel (got cfuture.Semaphore)", err_of(ch.send, s, 1))
    assert.are.equal("try_recv: argument #1 must be a channel (got table)", err_of(ch.try_recv, {}))
    assert.are.equal(1, p:count())
  end)

  it("__gc and __close of a permit do nothing for anything but a permit", function()
    local s = cf.semaphore(1)
    local p = s:try_acquire()
    local mt = getmetatable(p)
    for _, v in ipairs { 42, "x", {}, io.stdout, s, cf.notify(), cf.channel() } do
      mt.__gc(v)
      mt.__close(v, nil)
    end
    mt.__gc()
    mt.__close()
    assert.are.equal(0, s:available())
    mt.__close(p, nil) -- the permit itself: released, then quietly nothing
    mt.__gc(p)
    assert.are.equal(1, s:available())
    assert.are.equal("release: the permit was already released", err_of(p.release, p))
  end)

  it("iter refuses what is not a channel", function()
    assert.are.equal("iter: argument #1 must be a channel (got sleep)", err_of(cf.channel().iter, cf.sleep(1)))
    local iter = cf.channel().iter
    assert.are.equal("iter: argument #1 must be a channel (got number)", err_of(iter, 42))
    assert.are.equal("iter: argument #1 must be a channel (got nil)", err_of(iter))
  end)
end)

describe("Lua-side methods with a wrong self", function()
  -- one object of each class, its class name and its methods (with the
  -- name their messages use)
  local function objects()
    local tx, rx = cf.oneshot()
    local w, b = cf.watch(1), cf.broadcast(2)
    return {
      { cf.mutex(), "cfuture.Mutex", "mutex", { "lock", "try_lock", "is_locked" } },
      { cf.rwlock(), "cfuture.RwLock", "rwlock", { "read", "write" } },
      { tx, "cfuture.OneshotSender", "oneshot", { "send" } },
      { rx, "cfuture.OneshotReceiver", "oneshot", { "recv" } },
      { w, "cfuture.Watch", "watch", { "send", "get", "close", "subscribe" } },
      { w:subscribe(), "cfuture.WatchReceiver", "watch_receiver", { "changed", "get" } },
      { b, "cfuture.Broadcast", "broadcast", { "send", "close", "subscribe" } },
      { b:subscribe(), "cfuture.BroadcastReceiver", "broadcast_receiver", { "recv" } },
      { cf.barrier(2), "cfuture.Barrier", "barrier", { "wait" } },
    }
  end

  it("every method names itself, the argument and what came", function()
    local objs = objects()
    local checked = 0
    for i, o in ipairs(objs) do
      local obj, cls, prefix, methods = o[1], o[2], o[3], o[4]
      local other = objs[i % #objs + 1]
      local forged = setmetatable({}, getmetatable(obj))
      for _, m in ipairs(methods) do
        local fn = obj[m]
        local want = ("%s:%s: argument #1 must be a %s (got %%s)"):format(prefix, m, cls)
        assert.are.equal(want:format("nil"), err_of(fn))
        assert.are.equal(want:format("number"), err_of(fn, 42))
        assert.are.equal(want:format("string"), err_of(fn, "x"))
        assert.are.equal(want:format(other[2]), err_of(fn, other[1]))
        assert.are.equal(want:format("cfuture.Semaphore"), err_of(fn, cf.semaphore(1)))
        assert.are.equal(want:format("table with the metatable of a " .. cls), err_of(fn, forged))
        checked = checked + 1
      end
    end
    assert.are.equal(18, checked)
  end)

  it("the message points at the caller", function()
    local m = cf.mutex()
    local ok, err = pcall(function() local g = m.lock(); return g end)
    assert.is_false(ok)
    assert.matches("sync_input_spec%.lua:%d+: mutex:lock: argument #1 must be a cfuture%.Mutex %(got nil%)$", err)
  end)

  it("a oneshot sender's finaliser ignores a foreign self", function()
    local tx, rx = cf.oneshot()
    local gc = getmetatable(tx).__gc
    gc({})
    gc(42)
    gc(setmetatable({}, getmetatable(tx)))
    tx:send("v")
    assert.are.equal("v", cf.block_on(rx:recv()))
  end)

  it("constructors range-check their counts", function()
    for _, name in ipairs { "broadcast", "barrier" } do
      local want = name .. ": argument #1 must be an integer from 1 to " .. MAX .. " (got %s)"
      assert.are.equal(want:format("0"), err_of(cf[name], 0))
      assert.are.equal(want:format("1.5"), err_of(cf[name], 1.5))
      assert.are.equal(want:format(tostring(2 ^ 53 + 2)), err_of(cf[name], 2 ^ 53 + 2))
      assert.are.equal(want:format(tostring(math.huge)), err_of(cf[name], math.huge))
      assert.are.equal(want:format("string"), err_of(cf[name], "3"))
      assert.are.equal(want:format("nil"), err_of(cf[name]))
      assert.matches("%(got %-?nan%)$", err_of(cf[name], 0 / 0))
    end
  end)

  it("a oneshot received twice says so", function()
    local tx, rx = cf.oneshot()
    tx:send(7)
    cf.block_on(function()
      assert.are.equal(7, rx:recv():await())
      local ok, err = pcall(function() return rx:recv():await() end)
      assert.is_false(ok)
      assert.matches("recv: the oneshot value was already received", err)
    end)
  end)
end)

describe("after the runtime closed", function()
  it("every entry point raises naming itself, and finalisers do nothing", function()
    -- a finaliser set before require "cfuture" runs after the runtime's own
    local out, code, _, err = support.run_lua([[
      local objs, lines = {}, {}
      local function finaliser()
        local function try(name, fn, ...)
          local ok, e = pcall(fn, ...)
          lines[#lines + 1] = name .. " " .. tostring(ok) .. " " .. tostring(e)
        end
        local o = objs
        try("lock", o.m.lock, o.m)
        try("try_lock", o.m.try_lock, o.m)
        try("read", o.rw.read, o.rw)
        try("oneshot_send", o.tx.send, o.tx, 1)
        try("watch_get", o.w.get, o.w)
        try("watch_send", o.w.send, o.w, 2)
        try("changed", o.wrx.changed, o.wrx)
        try("bsend", o.b.send, o.b, 1)
        try("bwait", o.bar.wait, o.bar)
        try("mutex", o.cf.mutex)
        try("iter", o.ch.iter, o.ch)
        try("chan_send", o.ch.send, o.ch, 1)
        try("channel", o.cf.channel, 3)
        try("acquire", o.s.acquire, o.s)
        try("add_permits", o.s.add_permits, o.s, 1)
        try("release", o.p.release, o.p)
        try("notify_one", o.n.notify_one, o.n)
        getmetatable(o.p).__gc(o.p) -- quietly nothing
        getmetatable(o.tx).__gc(o.tx)
        io.stdout:write(table.concat(lines, "\n"), "\n")
      end
      if newproxy then -- LuaJIT: tables have no __gc
        keep = newproxy(true)
        getmetatable(keep).__gc = finaliser
      else
        keep = setmetatable({}, { __gc = finaliser })
      end
      local cf = require "cfuture"
      objs.cf = cf
      objs.m, objs.rw = cf.mutex(), cf.rwlock()
      objs.tx = cf.oneshot()
      objs.w = cf.watch(1)
      objs.wrx = objs.w:subscribe()
      objs.b, objs.bar = cf.broadcast(2), cf.barrier(2)
      objs.ch, objs.s, objs.n = cf.channel(), cf.semaphore(2), cf.notify()
      objs.p = objs.s:try_acquire()
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local want = {
      "lock false mutex:lock: the cfuture runtime is closed",
      "try_lock false mutex:try_lock: the cfuture runtime is closed",
      "read false rwlock:read: the cfuture runtime is closed",
      "oneshot_send false oneshot:send: the cfuture runtime is closed",
      "watch_get false watch:get: the cfuture runtime is closed",
      "watch_send false watch:send: the cfuture runtime is closed",
      "changed false watch_receiver:changed: the cfuture runtime is closed",
      "bsend false broadcast:send: the cfuture runtime is closed",
      "bwait false barrier:wait: the cfuture runtime is closed",
      "mutex false mutex: the cfuture runtime is closed",
      "iter false iter: the cfuture runtime is closed",
      "chan_send false send: the cfuture runtime is closed",
      "channel false channel: the cfuture runtime is closed",
      "acquire false acquire: the cfuture runtime is closed",
      "add_permits false add_permits: the cfuture runtime is closed",
      "release false release: the cfuture runtime is closed",
      "notify_one false notify_one: the cfuture runtime is closed",
    }
    local got = {}
    for line in out:gmatch("[^\n]+") do got[#got + 1] = (line:gsub(" [^ ]*:%d+: ", " ", 1)) end
    assert.are.same(want, got)
  end)
end)
