-- cf.tasks() and cf.dump().
local cf = require "cfuture"

describe("introspection", function()
  it("lists live tasks with id, name, state, poll count and what each awaits", function()
    cf.block_on(function()
      local a = cf.spawn { function() cf.sleep(200):await() end, name = "sleeper" }
      local b = cf.spawn(function() a:await() end)
      cf.yield_now():await()
      local list = cf.tasks()
      local by_id = {}
      for _, t in ipairs(list) do by_id[t.id] = t end
      local ta, tb = by_id[a:id()], by_id[b:id()]
      assert.are.equal("sleeper", ta.name)
      assert.are.equal("waiting", ta.state)
      assert.are.equal(1, ta.polls)
      assert.matches("^sleep %(%d+ ms left%)$", ta.awaiting)
      assert.matches("JoinHandle of task %d+ %(sleeper%)", tb.awaiting)
      local me = select(1, cf.current())
      assert.are.equal("running", by_id[me].state)
      a:abort(); b:abort()
    end)
  end)

  it("dumps each suspended task with its traceback", function()
    cf.block_on(function()
      local h = cf.spawn { function()
        local function deep() cf.sleep(500):await() end
        deep()
      end, name = "deep one" }
      cf.yield_now():await()
      local d = cf.dump()
      assert.matches("task %d+ %(deep one%) %[waiting%] polls=1 woken %d+ ms ago awaiting sleep", d)
      assert.matches("in %a+ 'deep'", d)
      assert.matches("introspect_spec.lua", d)
      h:abort()
    end)
  end)

  it("dumps a tree: each task under the task that spawned it, tracebacks indented", function()
    cf.block_on(function()
      local parent = cf.spawn { function()
        local kid = cf.spawn { function() cf.sleep(500):await() end, name = "kid" }
        kid:await()
      end, name = "parent" }
      cf.sleep(5):await()
      local me = cf.current()
      local d = cf.dump()
      local lines = {}
      for line in d:gmatch("[^\n]+") do lines[#lines + 1] = line end
      local function find(pat)
        for i, l in ipairs(lines) do if l:match(pat) then return i, l end end
      end
      local i_me = find("^task " .. me .. " %[running%]")
      local i_parent, l_parent = find("^  task %d+ %(parent%) %[waiting%]")
      local i_kid, l_kid = find("^    task %d+ %(kid%) %[waiting%]")
      assert.is_truthy(i_me and i_parent and i_kid, d)
      assert.is_true(i_me < i_parent and i_parent < i_kid)
      assert.matches("awaiting JoinHandle of task %d+ %(kid%)", l_parent)
      assert.matches("woken %d+ ms ago awaiting sleep", l_kid)
      assert.matches("^        stack traceback:", lines[i_kid + 1])
      local by_name = {}
      for _, t in ipairs(cf.tasks()) do if t.name then by_name[t.name] = t end end
      assert.are.equal(me, by_name.parent.parent)
      assert.are.equal(parent:id(), by_name.kid.parent)
      assert.is_true(by_name.kid.since_wake >= 0)
      parent:abort()
    end)
  end)

  it("writes the dump to stderr on a signal, without keeping the program alive #subprocess", function()
    local support = require "support"
    local out, code, ms, err = support.run_lua([[
      local cf = require "cfuture"
      cf.dump_on_signal("SIGUSR1")
      cf.block_on(function()
        local h = cf.spawn { function() cf.sleep(60000):await() end, name = "stuck" }
        cf.sleep(10):await()
        local pid = io.open("/proc/self/stat"):read("a"):match("^%d+")
        os.execute("kill -USR1 " .. pid)
        cf.sleep(50):await()
        h:abort()
      end)
      print("exited")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("exited\n", out)
    assert.matches("cfuture: dump on signal\n", err)
    assert.matches("task %d+ %(stuck%) %[waiting%] polls=1 woken %d+ ms ago awaiting sleep", err)
    assert.has_error(function() cf.dump_on_signal("SIGNOPE") end)
  end)

  it("tells how long each task has waited since its last wake", function()
    cf.block_on(function()
      local h = cf.spawn { function() cf.sleep(1000):await() end, name = "napper" }
      cf.sleep(60):await()
      local napper
      for _, t in ipairs(cf.tasks()) do if t.name == "napper" then napper = t end end
      assert.is_true(napper.since_wake >= 50, napper.since_wake)
      local me
      for _, t in ipairs(cf.tasks()) do if t.id == cf.current() then me = t end end
      assert.is_true(me.since_wake < 50, me.since_wake) -- just woken by its sleep
      h:abort()
    end)
  end)

  it("reports not-started tasks and current()", function()
    assert.is_nil(cf.current())
    local h = cf.spawn(function() return cf.current() end)
    local list = cf.tasks()
    assert.are.equal("not started", list[#list].awaiting)
    assert.are.equal("ready", list[#list].state)
    assert.are.equal(h:id(), cf.block_on(h))
  end)
end)

describe("introspection of synchronisation waits", function()
  it("says what each waiting task waits for", function()
    cf.block_on(function()
      local ch, m, n = cf.channel(1), cf.mutex(), cf.notify()
      ch:send(1)
      local g = m:lock():await()
      local hs = {
        cf.spawn { function() ch:send(2):await() end, name = "sender" },
        cf.spawn { function() cf.channel():recv():await() end, name = "receiver" },
        cf.spawn { function() m:lock():await() end, name = "locker" },
        cf.spawn { function() n:wait():await() end, name = "waiter" },
      }
      cf.yield_now():await()
      local by_name = {}
      for _, t in ipairs(cf.tasks()) do if t.name then by_name[t.name] = t.awaiting end end
      assert.are.equal("channel send (waiting for room)", by_name.sender)
      assert.are.equal("channel recv (0 queued)", by_name.receiver)
      assert.are.equal("lock (1 permit(s), 0 free)", by_name.locker)
      assert.are.equal("notify wait", by_name.waiter)
      for _, h in ipairs(hs) do h:abort() end
      g:unlock()
    end)
  end)
end)
