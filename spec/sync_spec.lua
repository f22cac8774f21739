-- Channels, semaphores, mutexes, rwlocks, notify, oneshot, watch, broadcast,
-- barrier: every wait is a future, cancellation loses nothing.
local cf = require "cfuture"
local support = require "support"

describe("channel", function()
  it("delivers messages in order, nil included, and closes after draining", function()
    local ch = cf.channel()
    local got = {}
    cf.block_on(function()
      cf.spawn(function()
        for _, v in ipairs { 1, 2, 3 } do ch:send(v) end
        ch:send(nil)
        ch:close()
      end)
      for i, v in ch:iter() do got[i] = v == nil and "nil" or v end
      assert.are.same({ nil, false }, { ch:recv():await() })
    end)
    assert.are.same({ 1, 2, 3, "nil" }, got)
  end)

  it("keeps order, nil included, when the queue wraps around and then grows", function()
    local ch = cf.channel()
    local expect, n = {}, 0
    local function send(v) ch:send(v); n = n + 1; expect[n] = v == nil and "nil" or v end
    for i = 1, 6 do send(i) end
    for _ = 1, 5 do assert.is_true((ch:try_recv())) end -- head moves on: the next sends wrap
    for i = 7, 300 do send(i % 10 == 0 and nil or i) end -- grows while wrapped
    local got = {}
    while true do
      local ok, v = ch:try_recv()
      if not ok then break end
      got[#got + 1] = v == nil and "nil" or v
    end
    assert.are.same({ table.unpack(expect, 6, n) }, got)
  end)

  it("an unbounded channel grows past 524,288 messages and keeps them in order", function()
    -- the ring once lived in a thread's stack slots: "send: out of memory" at
    -- 524,288 messages on 5.4 (LUAI_MAXSTACK), at 65,536 on LuaJIT
    local ch, N = cf.channel(), 600000
    for i = 1, N do
      if i % 1000 == 0 then ch:send(nil) else ch:send(i) end
    end
    assert.are.equal(N, ch:len())
    assert.is_true(ch:try_send("more"))
    local bad
    for i = 1, N do
      local ok, v = ch:try_recv()
      local want = i % 1000 ~= 0 and i or nil
      if not bad and (not ok or v ~= want) then bad = ("message %d: %s, %s"):format(i, tostring(ok), tostring(v)) end
    end
    assert.is_nil(bad)
    assert.are.same({ true, "more" }, { ch:try_recv() })
    assert.are.same({ false, "empty" }, { ch:try_recv() })
    ch:send("again") -- the emptied big ring was let go; a new one starts
    assert.are.same({ true, "again" }, { ch:try_recv() })
  end)

  it("a bounded channel holds its capacity past 524,288 messages, then is full", function()
    local ch, N = cf.channel(600000), 600000
    for i = 1, N do assert(ch:try_send(i)) end
    assert.are.same({ false, "full" }, { ch:try_send(0) })
    assert.are.same({ true, 1 }, { ch:try_recv() })
    assert.is_true(ch:try_send(N + 1)) -- wraps around in the ring
    for i = 2, N + 1 do
      local ok, v = ch:try_recv()
      if v ~= i then assert.are.same({ true, i }, { ok, v }) end
    end
    assert.are.equal(0, ch:len())
  end)

  it("a huge capacity allocates nothing up front", function()
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    local chans = {}
    for i = 1, 10 do chans[i] = cf.channel(2 ^ 27) end
    chans[1]:send("x")
    assert.is_true(collectgarbage("count") - before < 200, collectgarbage("count") - before) -- KiB
    assert.are.equal(2 ^ 27, chans[1]:capacity())
    assert.are.same({ true, "x" }, { chans[1]:try_recv() })
  end)

  it("try_send / try_recv never wait", function()
    local ch = cf.channel(1)
    assert.are.same({ false, "empty" }, { ch:try_recv() })
    assert.is_true(ch:try_send("x"))
    assert.are.same({ false, "full" }, { ch:try_send("y") })
    assert.are.same({ true, "x" }, { ch:try_recv() })
    ch:close()
    assert.are.same({ false, "closed" }, { ch:try_send("z") })
    assert.are.same({ false, "closed" }, { ch:try_recv() })
  end)

  it("receives exactly once, in order, when recv keeps losing selects", function()
    local N = 100000
    local ch = cf.channel()
    local got, bad = 0, nil
    cf.block_on(function()
      cf.spawn(function()
        for i = 1, N do
          ch:send(i)
          if i % 7 == 0 then cf.yield_now():await() end
        end
      end)
      local spin = 0
      while got < N do
        spin = spin + 1
        local loser = spin % 97 == 0 and cf.sleep(1) or cf.yield_now()
        local which, v, ok = cf.select(ch:recv(), loser):await()
        if which == 1 then
          assert(ok)
          if v ~= got + 1 and not bad then bad = ("expected %d, got %s"):format(got + 1, tostring(v)) end
          got = got + 1
        end
      end
    end)
    assert.is_nil(bad)
    assert.are.equal(N, got)
    assert.are.equal(0, cf.channel():len())
  end)

  it("hands a message promised to a cancelled receiver to the next one", function()
    local ch = cf.channel()
    cf.block_on(function()
      local first = cf.spawn(function() return ch:recv():await() end)
      local second = cf.spawn(function() return ch:recv():await() end)
      cf.yield_now():await() -- both wait, first in line
      ch:send("only")        -- promised to first...
      first:abort()          -- ...which is cancelled before it runs
      assert.are.equal("only", second:await())
    end)
  end)

  it("applies backpressure: a bounded channel never holds more than its capacity", function()
    local ch = cf.channel(10)
    local max, received = 0, 0
    cf.block_on(function()
      local producer = cf.spawn(function()
        for i = 1, 500 do
          ch:send(i):await()
          if ch:len() > max then max = ch:len() end
        end
        ch:close()
      end)
      for _, v in ch:iter() do
        received = received + 1
        if received % 50 == 0 then cf.sleep(1):await() end
        assert.are.equal(received, v)
      end
      producer:await()
    end)
    assert.are.equal(500, received)
    assert.is_true(max <= 10, max)
  end)

  it("serves waiting receivers in arrival order, 1000 of them", function()
    local ch = cf.channel()
    local order = {}
    cf.block_on(function()
      local hs = {}
      for i = 1, 1000 do
        hs[i] = cf.spawn(function() local v = ch:recv():await(); order[#order + 1] = i; return v end)
      end
      cf.yield_now():await()
      for i = 1, 1000 do ch:send(i) end
      for i = 1, 1000 do assert.are.equal(i, hs[i]:await()) end
    end)
    for i = 1, 1000 do assert.are.equal(i, order[i]) end
  end)

  it("serves waiting senders in arrival order and withdraws a cancelled send", function()
    local ch = cf.channel(1)
    cf.block_on(function()
      ch:send("first")
      local a = cf.spawn(function() ch:send("a"):await() end)
      local b = cf.spawn(function() ch:send("b"):await() end)
      local c = cf.spawn(function() ch:send("c"):await() end)
      cf.yield_now():await()
      b:abort()
      local got = {}
      for _ = 1, 3 do got[#got + 1] = ch:recv():await() end
      assert.are.same({ "first", "a", "c" }, got)
      a:await(); c:await()
      assert.are.equal(0, ch:len())
    end)
  end)

  it("close wakes every waiter with the documented result", function()
    local ch = cf.channel(1)
    cf.block_on(function()
      local receivers = {}
      for i = 1, 100 do receivers[i] = cf.spawn(function() return ch:recv():await() end) end
      cf.yield_now():await()
      ch:close()
      for i = 1, 100 do assert.are.same({ nil, false }, { receivers[i]:await() }) end
      local full = cf.channel(1)
      full:send(1)
      local sender = cf.spawn(function() return full:send(2):await() end)
      cf.yield_now():await()
      full:close()
      local ok, err = pcall(sender.await, sender)
      assert.is_false(ok)
      assert.matches("send: the channel was closed before the message could be sent", err)
      assert.are.same({ 1, true }, { full:recv():await() }) -- queued messages still drain
    end)
    assert.has_error(function() ch:send(1) end, "send: the channel is closed")
  end)

  it("rejects a bad capacity and non-channels", function()
    local function refused(cap, got)
      local ok, err = pcall(cf.channel, cap)
      assert.is_false(ok)
      assert.are.equal("channel: argument #1 must be an integer from 1 to 134217728 (got " .. got .. ")", err)
    end
    refused(0, "0")
    refused(-1, "-1")
    refused(2.5, "2.5")
    refused("x", "string")
    refused(true, "boolean")
    refused(134217729, "134217729")
    refused(math.huge, tostring(math.huge))
    refused(2 ^ 53 + 2, tostring(2 ^ 53 + 2))
    local ok, err = pcall(cf.channel, 0 / 0)
    assert.is_false(ok)
    assert.matches("^channel: argument #1 must be an integer from 1 to 134217728 %(got %-?nan%)$", err)
    assert.are.equal(1e6, cf.channel(1e6):capacity())
    assert.is_nil(cf.channel(nil):capacity())
    -- a sleep has no channel methods; a channel's method given one refuses it
    assert.is_nil(cf.sleep(1).send)
    local send = cf.channel().send
    assert.has_error(function() send(cf.sleep(1), 1) end, "send: argument #1 must be a channel (got sleep)")
  end)
end)

describe("semaphore", function()
  it("limits concurrency and releases permits with <close> #lua54", function()
    local sem = cf.semaphore(3)
    local running, max = 0, 0
    cf.block_on(function()
      local hs = {}
      for i = 1, 20 do
        hs[i] = cf.spawn(function()
          local p <close> = sem:acquire():await()
          running = running + 1
          if running > max then max = running end
          cf.sleep(2):await()
          running = running - 1
        end)
      end
      for i = 1, 20 do hs[i]:await() end
    end)
    assert.are.equal(3, max)
    assert.are.equal(3, sem:available())
  end)

  it("a cancelled acquire takes no permit, even one already assigned to it", function()
    local sem = cf.semaphore(1)
    cf.block_on(function()
      local held = sem:acquire():await()
      assert.are.same({ nil, "timeout" }, { cf.timeout(5, sem:acquire()):await() })
      local waiter = cf.spawn(function() return sem:acquire():await() end)
      cf.yield_now():await()
      held:release() -- assigned to the waiter...
      waiter:abort() -- ...which is cancelled before taking it
      pcall(waiter.await, waiter)
      assert.are.equal(1, sem:available())
    end)
  end)

  it("serves acquirers in order: a big request is not starved by small ones #lua54", function()
    local sem = cf.semaphore(2)
    local order = {}
    cf.block_on(function()
      local p = sem:acquire(2):await()
      local big = cf.spawn(function() local q <close> = sem:acquire(2):await(); order[#order + 1] = "big" end)
      cf.yield_now():await()
      local small = cf.spawn(function() local q <close> = sem:acquire(1):await(); order[#order + 1] = "small" end)
      cf.yield_now():await()
      p:release(1) -- one free permit: small would fit, but big is first in line
      cf.yield_now():await()
      assert.are.same({}, order)
      p:release()
      big:await(); small:await()
    end)
    assert.are.same({ "big", "small" }, order)
  end)

  it("rejects releasing more than held, releasing twice and bad counts", function()
    local sem = cf.semaphore(2)
    local p = sem:try_acquire(2)
    assert.has_error(function() p:release(3) end, "release: cannot release 3 permit(s): only 2 held")
    p:release(1)
    assert.are.equal(1, p:count())
    p:release()
    assert.has_error(function() p:release() end, "release: the permit was already released")
    assert.has_error(function() cf.semaphore(-1) end)
    assert.has_error(function() sem:acquire(1.5) end)
    assert.is_nil(cf.semaphore(0):try_acquire())
  end)
end)

describe("mutex and rwlock", function()
  it("a task aborted while holding the guard releases it #lua54", function()
    local m = cf.mutex()
    cf.block_on(function()
      local h = cf.spawn(function()
        local g <close> = m:lock():await()
        cf.sleep(10000):await()
      end)
      cf.yield_now():await()
      assert.is_true(m:is_locked())
      h:abort()
      local guard = cf.timeout(100, m:lock()):await()
      assert.is_not_nil(guard) -- locked, not timed out
      guard:unlock()
    end)
  end)

  it("serializes 1000 contending tasks in arrival order #lua54", function()
    local m = cf.mutex()
    local order, inside = {}, 0
    cf.block_on(function()
      local hs = {}
      for i = 1, 1000 do
        hs[i] = cf.spawn(function()
          local g <close> = m:lock():await()
          inside = inside + 1
          assert(inside == 1)
          order[#order + 1] = i
          cf.yield_now():await()
          inside = inside - 1
        end)
      end
      for i = 1, 1000 do hs[i]:await() end
    end)
    for i = 1, 1000 do assert.are.equal(i, order[i]) end
  end)

  it("unlocking twice raises", function()
    local m = cf.mutex()
    local g = m:try_lock()
    g:unlock()
    assert.has_error(function() g:unlock() end, "unlock: the guard was already unlocked")
  end)

  it("rwlock: readers share, a writer excludes and holds back later readers #lua54", function()
    local rw = cf.rwlock()
    local log = {}
    cf.block_on(function()
      local r1 = rw:read():await()
      local r2 = rw:read():await()
      local w = cf.spawn(function() local g <close> = rw:write():await(); log[#log + 1] = "write" end)
      cf.yield_now():await()
      local r3 = cf.spawn(function() local g <close> = rw:read():await(); log[#log + 1] = "read3" end)
      cf.yield_now():await()
      assert.are.same({}, log)
      r1:unlock(); r2:unlock()
      w:await(); r3:await()
    end)
    assert.are.same({ "write", "read3" }, log)
  end)
end)

describe("notify", function()
  it("notify_one wakes one waiter, or the next wait when none waits", function()
    local n = cf.notify()
    cf.block_on(function()
      n:notify_one()
      n:wait():await() -- stored permit: at once
      local woken = 0
      local hs = {}
      for i = 1, 3 do hs[i] = cf.spawn(function() n:wait():await(); woken = woken + 1 end) end
      cf.yield_now():await()
      n:notify_one()
      cf.yield_now():await()
      assert.are.equal(1, woken)
      assert.are.equal(2, n:notify_all())
      for i = 1, 3 do hs[i]:await() end
      assert.are.equal(3, woken)
    end)
  end)

  it("a notification taken by a wait whose combinator then fails is kept", function()
    local n = cf.notify()
    cf.block_on(function()
      n:notify_one() -- stored permit
      local failing = cf.async(function() cf.yield_now():await(); error("sibling failed", 0) end)
      -- the wait completes (taking the permit), then try_join drops it untaken
      local ok, err = pcall(function() cf.try_join(n:wait(), failing()):await() end)
      assert.is_false(ok)
      assert.matches("^sibling failed", err)
      assert.are.equal(0, select("#", cf.timeout(100, n:wait()):await())) -- woke, no timeout
    end)
  end)

  it("a notify_one reaching a cancelled wait is kept", function()
    local n = cf.notify()
    cf.block_on(function()
      local h = cf.spawn(function() n:wait():await() end)
      cf.yield_now():await()
      n:notify_one()
      h:abort()
      assert.are.equal(0, select("#", cf.timeout(100, n:wait()):await())) -- woke, no timeout
    end)
  end)
end)

describe("oneshot, watch, broadcast, barrier", function()
  it("oneshot sends once; a dropped sender fails the receiver #lua54", function()
    local tx, rx = cf.oneshot()
    cf.block_on(function()
      cf.spawn(function() tx:send("v") end)
      assert.are.equal("v", rx:recv():await())
    end)
    assert.has_error(function() tx:send("again") end, "send: a oneshot sends only once")
    local rx2 = select(2, cf.oneshot())
    support.full_gc()
    local ok, err = pcall(cf.block_on, rx2:recv())
    assert.is_false(ok)
    assert.matches("oneshot sender was dropped", err)
  end)

  it("watch gives every subscriber the newest value", function()
    local w = cf.watch("a")
    local r1, r2 = w:subscribe(), w:subscribe()
    cf.block_on(function()
      w:send("b"); w:send("c")
      assert.are.same({ "c", true }, { r1:changed():await() })
      assert.are.same({ "c", true }, { r2:changed():await() })
      cf.spawn(function() cf.sleep(2):await(); w:close() end)
      assert.are.same({ nil, false }, { r1:changed():await() })
    end)
  end)

  it("broadcast delivers to all subscribers and reports lag", function()
    local b = cf.broadcast(2)
    local s1, s2 = b:subscribe(), b:subscribe()
    cf.block_on(function()
      b:send(1)
      assert.are.same({ 1, true }, { s1:recv():await() })
      b:send(2); b:send(3)
      assert.are.same({ 2, true }, { s1:recv():await() })
      assert.are.same({ nil, "lagged", 1 }, { s2:recv():await() })
      assert.are.same({ 2, true }, { s2:recv():await() })
      b:close()
      assert.are.same({ 3, true }, { s1:recv():await() })
      assert.are.same({ nil, "closed" }, { s1:recv():await() })
    end)
    assert.has_error(function() cf.broadcast(0) end, "broadcast: argument #1 must be an integer from 1 to 9007199254740992 (got 0)")
  end)

  it("barrier releases all at the n-th arrival, one leader; a cancelled wait is withdrawn", function()
    local bar = cf.barrier(3)
    local leaders, passed = 0, 0
    cf.block_on(function()
      local quitter = cf.spawn(function() bar:wait():await() end)
      cf.yield_now():await()
      quitter:abort()
      cf.yield_now():await()
      local hs = {}
      for i = 1, 2 do hs[i] = cf.spawn(function() if bar:wait():await() then leaders = leaders + 1 end; passed = passed + 1 end) end
      cf.yield_now():await()
      assert.are.equal(0, passed) -- the quitter does not count
      if bar:wait():await() then leaders = leaders + 1 end
      for i = 1, 2 do hs[i]:await() end
    end)
    assert.are.equal(1, leaders)
    assert.are.equal(2, passed)
    assert.has_error(function() cf.barrier(0) end, "barrier: argument #1 must be an integer from 1 to 9007199254740992 (got 0)")
  end)
end)
