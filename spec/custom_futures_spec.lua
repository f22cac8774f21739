-- Futures written in Lua: a poll function that receives a waker.
local cf = require "cfuture"

-- A one-shot "flag" future: pending until set() from anywhere.
local function flag()
  local value, waker, polls = nil, nil, 0
  local f = cf.future(function(w)
    polls = polls + 1
    if value ~= nil then return value, "extra" end
    waker = w
    return cf.PENDING
  end)
  return f, function(v) value = v; if waker then waker:wake() end end, function() return polls end
end

describe("custom futures", function()
  it("are polled again only after their waker fired", function()
    local f, set, polls = flag()
    local got
    cf.block_on(function()
      local h = cf.spawn(function() got = { f:await() } end)
      for _ = 1, 5 do cf.yield_now():await() end
      assert.are.equal(1, polls()) -- no busy polling
      set("hello")
      h:await()
    end)
    assert.are.same({ "hello", "extra" }, got)
    assert.are.equal(2, polls())
  end)

  it("compose with select and have their cancel function called when dropped", function()
    local cancelled = 0
    local f = cf.future(function() return cf.PENDING end, function() cancelled = cancelled + 1 end)
    local i = cf.block_on(cf.select(f, cf.sleep(5)))
    assert.are.equal(2, i)
    assert.are.equal(1, cancelled)
  end)

  it("fail with the poll function's error and a traceback", function()
    local f = cf.future(function() error("poll exploded") end)
    local ok, err = pcall(cf.block_on, f)
    assert.is_false(ok)
    assert.matches("poll exploded", err)
    assert.matches("stack traceback", err)
  end)

  it("can be woken from a timer task and are safe to wake after completion", function()
    local f, set = flag()
    cf.block_on(function()
      cf.spawn(function() cf.sleep(10):await(); set(1) end)
      assert.are.equal(1, (f:await()))
    end)
    set(2) -- waking a completed future does nothing
    assert.are.equal(0, #cf.tasks())
  end)

  it("cannot await inside poll", function()
    local f = cf.future(function() cf.sleep(1):await() end)
    local ok, err = pcall(cf.block_on, f)
    assert.is_false(ok)
    assert.matches("await: not inside a task", err)
  end)

  it("need a function", function()
    assert.has_error(function() cf.future(5) end)
  end)
end)
