-- Randomised stress (fixed seed): producers, consumers and lockers with
-- random selects, timeouts and aborts. Nothing may be lost, duplicated or
-- left locked, and nothing may hang.
local cf = require "cfuture"

describe("sync under random cancellation", function()
  it("loses and duplicates no message and leaks no permit #lua54", function()
    math.randomseed(12345)
    local chans = { cf.channel(), cf.channel(3), cf.channel(1) }
    local sem, mutex = cf.semaphore(2), cf.mutex()
    local sent, received = {}, {}
    local PRODUCERS, PER = 6, 300
    local lockers_done = 0
    cf.block_on(function()
      local producers, others = {}, {}
      for p = 1, PRODUCERS do
        producers[p] = cf.spawn(function()
          for i = 1, PER do
            local id = p * 100000 + i
            local ch = chans[math.random(#chans)]
            -- a send that may be withdrawn: only count it if it went through
            local which = cf.select(ch:send(id), cf.sleep(math.random(0, 2))):await()
            if which == 1 then sent[id] = true end
            if math.random() < 0.2 then cf.yield_now():await() end
          end
        end)
      end
      local stop = false
      for c = 1, 8 do
        others[#others + 1] = cf.spawn(function()
          while not stop do
            local ch = chans[math.random(#chans)]
            local r = math.random()
            if r < 0.4 then
              local which, v, ok = cf.select(ch:recv(), cf.yield_now()):await()
              if which == 1 and ok then
                assert(not received[v], "duplicate " .. tostring(v))
                received[v] = true
              end
            elseif r < 0.7 then
              local v, ok = cf.timeout(math.random(0, 3), ch:recv()):await()
              if ok == true then
                assert(not received[v], "duplicate " .. tostring(v))
                received[v] = true
              end
            else
              local ok, v = ch:try_recv()
              if ok then
                assert(not received[v], "duplicate " .. tostring(v))
                received[v] = true
              end
            end
          end
        end)
      end
      -- lockers, some of them aborted while waiting or holding
      local lockers = {}
      for l = 1, 40 do
        lockers[l] = cf.spawn(function()
          for _ = 1, 10 do
            local g <close> = mutex:lock():await()
            local p <close> = sem:acquire(math.random(1, 2)):await()
            cf.sleep(math.random(0, 1)):await()
          end
          lockers_done = lockers_done + 1
        end)
      end
      for _ = 1, 10 do
        cf.sleep(3):await()
        lockers[math.random(#lockers)]:abort()
      end
      for p = 1, PRODUCERS do producers[p]:await() end
      for l = 1, #lockers do pcall(lockers[l].await, lockers[l]) end
      -- drain what is left, then stop the consumers
      cf.sleep(20):await()
      stop = true
      for i = 1, #others do others[i]:await() end
      for _, ch in ipairs(chans) do
        while true do
          local ok, v = ch:try_recv()
          if not ok then break end
          assert(not received[v], "duplicate " .. tostring(v))
          received[v] = true
        end
      end
    end)
    local nsent, nrecv = 0, 0
    for id in pairs(sent) do
      nsent = nsent + 1
      assert(received[id], "lost " .. id)
    end
    for id in pairs(received) do
      nrecv = nrecv + 1
      assert(sent[id], "received a withdrawn message " .. id)
    end
    assert.are.equal(nsent, nrecv)
    assert.is_true(nsent > PRODUCERS * PER / 2)
    assert.is_false(mutex:is_locked())
    assert.are.equal(2, sem:available())
    assert.is_true(lockers_done > 0)
    assert.are.equal(0, #cf.tasks())
  end)
end)
