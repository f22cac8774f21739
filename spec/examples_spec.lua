-- The examples are real programs: run them and check what they print.
local support = require "support"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("examples/demo.lua", function()
  it("prints all 10 lines within 5 s instead of 10, then fetch, spawn, join/select/timeout", function()
    local out, code, ms, err = support.run_lua(read("examples/demo.lua"))
    assert.are.equal(0, code, err)
    local lines = 0
    for _ in out:gmatch("%]\t(%a+)\t%d\n") do lines = lines + 1 end
    assert.are.equal(10, lines)
    local t = tonumber(out:match("%[%s*([%d.]+) s%]%s+all 10 lines printed"))
    assert.is_true(t >= 4.0 and t < 5.0 + 1.0 * support.slow, t)
    assert.matches("fetch%(%) %->\t42", out)
    assert.matches("main goes on while the task sleeps", out)
    assert.matches("spawned task returned\thello from a task", out)
    assert.matches("join   %->\ta\tb", out)
    assert.matches("select %->\t2\tfast", out)
    assert.matches("timeout%->\tnil\ttimeout", out)
    assert.is_true(ms < 8000 * support.slow, ms)
  end)
end)
