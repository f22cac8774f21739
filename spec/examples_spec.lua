-- The examples are real programs: run them and check what they print.
local support = require "support"
local read = support.read_file

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

-- Run an example with arguments; returns stdout, exit code.
local function run_example(path, args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = ("%q"):format(a) end
  return support.run_lua(("arg = { [0] = %q, %s }\ndofile %q"):format(path,
    table.concat(quoted, ", "), path))
end

describe("examples/cgrep.lua", function()
  it("finds every matching line in a tree, reading files concurrently", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -p %s/a/b %s/c && printf 'x\\nneedle one\\n' > %s/a/f1 && " ..
      "printf 'needle two\\nno\\nneedle three' > %s/a/b/f2 && printf 'none' > %s/c/f3")
      :format(dir, dir, dir, dir, dir)))
    local out, code = run_example("examples/cgrep.lua", { "needle", dir, "--jobs", "2" })
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l:sub(#dir + 2) end
    table.sort(lines)
    assert.are.same({ "a/b/f2:1:needle two", "a/b/f2:3:needle three", "a/f1:2:needle one" }, lines)
    assert.are.equal(0, code)
    assert.are.equal(1, select(2, run_example("examples/cgrep.lua", { "absent", dir })))
    assert.are.equal(2, select(2, run_example("examples/cgrep.lua", { "x", dir .. "/missing" })))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("examples/pipeline.lua", function()
  it("streams every command's lines with prefixes and exits with the worst code", function()
    local out, code = run_example("examples/pipeline.lua",
      { "echo a; sleep 0.1; echo b >&2", "exit 3", "printf 'x\\ny'" })
    assert.matches("%[1%] a\n", out)
    assert.matches("%[1!%] b\n", out)
    assert.matches("%[2%] exited with 3\n", out)
    -- one command's lines keep their order; other commands may come between
    local x, y = out:find("%[3%] x\n"), out:find("%[3%] y\n")
    assert.is_truthy(x and y and x < y, out)
    assert.are.equal(3, code)
  end)

  it("stops every command, grandchildren included, on SIGINT", function()
    local marker = "cfuture-pipeline-" .. math.random(1e9)
    -- a duration no other test uses, so only this run's sleeps are counted
    -- (the same spec may run at once under another variant)
    local dur = ("30.%06d"):format(math.random(1e6 - 1))
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(('arg = { [0] = "examples/pipeline.lua", "sleep %s; echo %s", "echo started; sleep %s" }\n')
      :format(dur, marker, dur), 'dofile "examples/pipeline.lua"\n')
    f:close()
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s %s %s %s & p=$!; " ..
      "sleep %d; kill -INT $p; wait $p; echo \"exit=$?\"; sleep 0.3; ps -eo args | grep -c '^sleep %s$'")
      :format(support.shell_quote(package.path), support.shell_quote(package.cpath),
        support.shell_quote(package.path), support.shell_quote(package.cpath),
        os.getenv("CFUTURE_LUA_WRAPPER") or "", support.lua, script, math.min(support.slow, 8), dur)
    local p = io.popen("env -u LD_PRELOAD sh -c " .. support.shell_quote(cmd))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("%[2%] started", out)
    assert.matches("SIGINT: stopping every command", out)
    assert.matches("exit=130", out)
    assert.matches("\n0\n$", out) -- no sleep survived
  end)
end)

describe("examples/threads.lua", function()
  it("runs the two loops on two OS threads, then as two tasks, each in half the serial time", function()
    local out, code, _, err = run_example("examples/threads.lua", { "100" })
    assert.are.equal(0, code, err)
    for _, who in ipairs({ "thread hi ", "thread bye", "task hi   ", "task bye  " }) do
      local n = 0
      for _ in out:gmatch(who:gsub("%s", "%%s") .. " %d") do n = n + 1 end
      assert.are.equal(5, n, who)
    end
    -- five 100 ms steps in parallel: ~0.5 s per version, not 1 s
    local t1 = tonumber(out:match("%[%s*([%d.]+) s%]\tthread hi  done"))
    local t2 = tonumber(out:match("%[%s*([%d.]+) s%]\ttask hi    done"))
    assert.is_true(t1 >= 0.5 and t1 < 0.9 * support.slow, t1)
    assert.is_true(t2 - t1 >= 0.5 and t2 - t1 < 0.9 * support.slow, t2 - t1)
    assert.matches("both versions finished", out)
  end)
end)

describe("examples/primes.lua", function()
  it("gets the same count on one worker and on a pool while the ticker keeps ticking", function()
    local out, code, _, err = run_example("examples/primes.lua", { "200000", "2" })
    assert.are.equal(0, code, err)
    local counts = {}
    for n in out:gmatch("(%d+) primes below 200000") do counts[#counts + 1] = n end
    assert.are.same({ "17984", "17984" }, counts)
    assert.matches("speed%-up with 2 workers: [%d.]+x", out)
  end)
end)
