-- require "cfuture.luv": cfuture's runtime on luv's loop, in one process
-- per case (a Lua state has one runtime, bound to its loop when it opens).
local support = require "support"

-- Run a program that must exit 0; returns what it printed and its time.
local function run(code)
  local out, status, ms, err = support.run_lua(code)
  assert.are.equal(0, status, err)
  return out, ms
end

describe("cfuture.luv", function()
  it("shares luv's loop: luv's uv.run() runs tasks, timers, TCP and luv callbacks in order", function()
    assert.are.equal("cf 50,luv 100,cf 150,stat directory,echo HELLO\ttrue\n", run([[
      local uv = require "luv"
      local cf = require "cfuture.luv"
      assert(require "cfuture" == cf)
      local SLOW = tonumber(os.getenv("CFUTURE_TIME_SCALE") or "1")
      local log = {}
      local function say(s) log[#log + 1] = s end
      -- a luv TCP server that answers in upper case, a cfuture client
      local server = uv.new_tcp()
      assert(server:bind("127.0.0.1", 0))
      local port = server:getsockname().port
      server:listen(16, function()
        local c = uv.new_tcp()
        server:accept(c)
        c:read_start(function(_, data)
          if data then c:write(data:upper()) else c:close(); server:close() end
        end)
      end)
      cf.spawn(function()
        -- a luv timer between two cfuture sleeps (armed after the first, and
        -- the second's gap stretched by the suite's time scale, so a slow
        -- run cannot swap them)
        cf.sleep(50):await(); say("cf 50")
        local t = uv.new_timer()
        t:start(50, 0, function() say("luv 100"); t:close() end)
        cf.sleep(50 + 150 * SLOW):await(); say("cf 150")
        -- a luv callback completes a future
        local tx, rx = cf.oneshot()
        uv.fs_stat("/", function(_, st) tx:send(st and st.type) end)
        say("stat " .. rx:recv():await())
        local s = assert(cf.net.connect("127.0.0.1", port):await())
        assert(s:write("hello\n"):await())
        say("echo " .. assert(s:read_line():await()))
        s:close()
      end)
      local t0 = uv.hrtime()
      uv.run()
      local ms = (uv.hrtime() - t0) / 1e6
      print(table.concat(log, ","), ms >= 150)
    ]]))
  end)

  it("wakes a task from a luv callback within the same loop turn", function()
    assert.are.equal("true\n", run([[
      local uv = require "luv"
      local cf = require "cfuture.luv"
      local worst = 0
      local t = uv.new_timer()
      local tx, rx
      local sent_at
      cf.spawn(function()
        for _ = 1, 20 do
          tx, rx = cf.oneshot()
          rx:recv():await()
          worst = math.max(worst, (uv.hrtime() - sent_at) / 1e6)
        end
        t:close()
      end)
      t:start(5, 5, function()
        if tx then sent_at = uv.hrtime(); local s = tx; tx = nil; s:send(true) end
      end)
      uv.run()
      print(worst < 4 * tonumber(os.getenv("CFUTURE_TIME_SCALE") or "1"))
    ]]))
  end)

  it("lets cf.run and cf.block_on drive luv's loop, luv's callbacks included", function()
    assert.are.equal("42\ttrue\n", run([[
      local uv = require "luv"
      local cf = require "cfuture.luv"
      local ticks = 0
      local t = uv.new_timer()
      t:start(5, 5, function() ticks = ticks + 1 end)
      local v = cf.block_on(function() cf.sleep(60):await(); return 42 end)
      t:stop()
      t:close()
      cf.spawn(function() cf.sleep(10):await() end)
      cf.run()
      print(v, ticks >= 3)
    ]]))
  end)

  it("closes cleanly when the program ends with tasks, luv handles, sockets and a child open", function()
    local out, ms = run([[
      local uv = require "luv"
      local cf = require "cfuture.luv"
      local t = uv.new_timer()
      t:start(60000, 0, function() end)
      local l = assert(cf.net.listen("127.0.0.1", 0))
      local child = assert(cf.process.spawn { "sleep", "10", stdout = "null", stderr = "null" })
      cf.spawn(function()
        cf.defer(function() io.stdout:write("deferred\n") end)
        cf.sleep(60000):await()
      end)
      cf.spawn(function() local c = l:accept():await() end)
      cf.step()
      io.stdout:write("end ", child.pid, "\n")
    ]])
    local pid = out:match("^end (%d+)\ndeferred\n$")
    assert.is_truthy(pid, out)
    -- luv's finaliser did not wait for the child: it was left running
    assert.is_true(ms < 8000, ms)
    os.execute("kill " .. pid .. " 2>/dev/null")
  end)

  it("must come before require 'cfuture', and says so", function()
    local out = run([[
      require "cfuture"
      local ok, e = pcall(require, "cfuture.luv")
      print(ok, e)
    ]])
    assert.matches("^false\t.*cfuture.luv: cfuture is already open in this Lua state on its own loop "
      .. "%(require \"cfuture.luv\" before anything requires \"cfuture\"%)\n$", out)
  end)
end)
