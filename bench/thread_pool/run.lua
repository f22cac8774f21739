-- Worker threads: (1) 10k small jobs through cf.thread.pool against running
-- them inline and against luv's uv.new_work (libuv's thread pool, a Lua
-- state per pool thread); (2) a CPU-bound job (counting primes, in chunks)
-- on 1 and on 2 workers, cfuture and luv, and the parallel speed-up.
--   UV_THREADPOOL_SIZE=2 lua5.4 bench/thread_pool/run.lua [jobs] [N]
-- Each time is the best of 3.
local B, cf, best3 = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")
local ok_luv, uv = pcall(require, "luv")

local JOBS = B.arg_int(1, 10000)
local N = B.arg_int(2, 3000000)
local CHUNK = 50000

local function small(n) -- a few microseconds of Lua
  local s = 0
  for i = 1, 200 do s = s + i % (n % 7 + 1) end
  return s
end

local function count_primes(lo, hi)
  local n = 0
  for k = math.max(lo, 2), hi - 1 do
    local prime = true
    for d = 2, math.floor(math.sqrt(k)) do
      if k % d == 0 then
        prime = false
        break
      end
    end
    if prime then n = n + 1 end
  end
  return n
end

local function best(fn) return best3(3, fn) * 1000 end -- ms

local expect_small = 0
for i = 1, JOBS do expect_small = expect_small + small(i) end

local function cf_pool_small(workers)
  local pool = cf.thread.pool(workers, { queue = 1024 })
  local t = best(function()
    local total = cf.block_on(function()
      local fs = {}
      for i = 1, JOBS do fs[i] = pool:run(small, i) end
      local sum = 0
      for _, v in ipairs({ cf.join(table.unpack(fs)):await() }) do sum = sum + v end
      return sum
    end)
    B.check(total == expect_small, "sum")
  end)
  pool:close()
  return t
end

local function luv_small()
  return best(function()
    local sum, done = 0, 0
    local work = uv.new_work(small, function(v)
      sum = sum + v
      done = done + 1
    end)
    for i = 1, JOBS do work:queue(i) end
    uv.run()
    B.check(done == JOBS and sum == expect_small, "luv sum")
  end)
end

local function cf_primes(workers)
  local pool = cf.thread.pool(workers)
  local total
  local t = best(function()
    total = cf.block_on(function()
      local fs = {}
      for lo = 0, N - 1, CHUNK do fs[#fs + 1] = pool:run(count_primes, lo, math.min(lo + CHUNK, N)) end
      local s = 0
      for _, v in ipairs({ cf.join(table.unpack(fs)):await() }) do s = s + v end
      return s
    end)
  end)
  pool:close()
  return t, total
end

local function luv_primes()
  local total
  local t = best(function()
    total = 0
    local work = uv.new_work(count_primes, function(v) total = total + v end)
    for lo = 0, N - 1, CHUNK do work:queue(lo, math.min(lo + CHUNK, N)) end
    uv.run()
  end)
  return t, total
end

local t_inline = best(function()
  local s = 0
  for i = 1, JOBS do s = s + small(i) end
  B.check(s == expect_small, "inline sum")
end)
local t_pool1 = cf_pool_small(1)
local t_pool2 = cf_pool_small(2)
local t_luv = ok_luv and luv_small() or nil

print(("%d small jobs (best of 3)"):format(JOBS))
print(("  %-28s %8.1f ms  %6.2f us/job"):format("inline", t_inline, t_inline * 1000 / JOBS))
print(("  %-28s %8.1f ms  %6.2f us/job"):format("cf.thread.pool(1)", t_pool1, t_pool1 * 1000 / JOBS))
print(("  %-28s %8.1f ms  %6.2f us/job"):format("cf.thread.pool(2)", t_pool2, t_pool2 * 1000 / JOBS))
if t_luv then
  print(("  %-28s %8.1f ms  %6.2f us/job   luv/cfuture(2) = %.2f"):format(
    "luv uv.new_work", t_luv, t_luv * 1000 / JOBS, t_luv / t_pool2))
end

local c1, n1 = cf_primes(1)
local c2, n2 = cf_primes(2)
B.check(n1 == n2, "prime counts")
print(("primes below %d in %d chunks (best of 3)"):format(N, math.ceil(N / CHUNK)))
print(("  %-28s %8.1f ms"):format("cf.thread.pool(1)", c1))
print(("  %-28s %8.1f ms   speed-up %.2fx"):format("cf.thread.pool(2)", c2, c1 / c2))
if ok_luv then
  local l, nl = luv_primes()
  B.check(nl == n1, "luv prime count")
  print(("  %-28s %8.1f ms   luv/cfuture(2) = %.2f"):format(
    "luv uv.new_work (pool " .. (os.getenv("UV_THREADPOOL_SIZE") or "4") .. ")", l, l / c2))
end
