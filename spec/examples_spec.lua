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

describe("examples/worker_pool.lua", function()
  it("gathers every result in job order, with the workers running concurrently", function()
    local out, code, ms, err = support.run_lua(read("examples/worker_pool.lua"))
    assert.are.equal(0, code, err)
    local expect = {}
    for job = 1, 20 do expect[#expect + 1] = ("%d:%d"):format(job, job * job) end
    assert.matches(table.concat(expect, " "), out, 1, true)
    assert.matches("20 jobs on 4 workers, results in order", out)
    -- sequentially the jobs sleep ~390 ms in all; four workers take about a quarter
    assert.is_true(ms < 380 + 1000 * (support.slow - 1) + 300, ms)
  end)
end)

describe("examples/pubsub.lua", function()
  it("delivers every message to the fast subscriber and reports what the slow one missed", function()
    local out, code, _, err = support.run_lua(read("examples/pubsub.lua"))
    assert.are.equal(0, code, err)
    local fast, slow = out:match("fast saw (%d+), slow saw (%d+) of 12")
    assert.are.equal("12", fast)
    assert.is_true(tonumber(slow) < 12)
    assert.matches("slow   missed %d+ message%(s%)", out)
    local missed = 0
    for n in out:gmatch("slow   missed (%d+)") do missed = missed + tonumber(n) end
    assert.are.equal(12, tonumber(slow) + missed)
  end)
end)
