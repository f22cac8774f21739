-- CPU-bound work split across worker threads while the event loop stays
-- responsive: count the primes below N on one worker, then on a pool of
-- workers, with a task ticking every 50 ms the whole time.
-- Run: lua5.4 examples/primes.lua [N] [workers]   (default 2000000, 2)
local cf = require "cfuture"

local N = tonumber(arg and arg[1]) or 2000000
local workers = tonumber(arg and arg[2]) or 2

-- Runs on a worker: a plain Lua function without upvalues (it travels as bytecode).
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

local function timed(label, fn)
  local ticks, worst = 0, 0
  local result, ms = cf.block_on(function()
    local ticker = cf.spawn(function()
      while true do
        local t = cf.now()
        cf.sleep(50):await()
        ticks = ticks + 1
        worst = math.max(worst, cf.now() - t - 50)
      end
    end)
    local t0 = cf.now()
    local r = fn()
    local elapsed = cf.now() - t0
    ticker:abort()
    return r, elapsed
  end)
  print(("%-10s %d primes below %d in %6.0f ms; ticker ticked %d times, at most %.0f ms late")
    :format(label, result, N, ms, ticks, worst))
  return ms
end

local one = timed("1 worker", function() return cf.thread.spawn(count_primes, 0, N):await() end)

local pool = cf.thread.pool(workers)
local many = timed(workers .. " workers", function()
  -- interleaved chunks give every worker a fair share of the larger numbers
  local chunks, size = {}, 50000
  for lo = 0, N - 1, size do
    chunks[#chunks + 1] = pool:run(count_primes, lo, math.min(lo + size, N))
  end
  local total = 0
  for _, f in ipairs({ cf.join(table.unpack(chunks)):await() }) do total = total + f end
  return total
end)
pool:close()
print(("speed-up with %d workers: %.2fx"):format(workers, one / many))
