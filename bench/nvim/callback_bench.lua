-- Round trip of a callback API awaited through cfuture.nvim against the
-- same callback used plainly, N times in sequence each:
--   schedule  plain: vim.schedule(cb), cb schedules the next
--             awaited: cfn.await_callback(function(done) vim.schedule(done) end):await()
--   fast      plain: a 0 ms vim.loop timer whose callback hops with vim.schedule
--             awaited: the same timer calling done() in the fast event
--   sync      awaited: a callback called at once inside start (the future's own cost)
-- Prints "name us_per_round_trip" lines to $CF_BENCH_OUT (or stdout).
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local uv = vim.loop
local N = tonumber(os.getenv("CF_BENCH_N") or "") or 20000
local out = {}
local function rec(name, t0, n) out[#out + 1] = ("%s %.2f"):format(name, (uv.hrtime() - t0) / 1e3 / n) end

local function plain_schedule(k)
  local t0, i = uv.hrtime(), 0
  local function cb()
    i = i + 1
    if i < N then vim.schedule(cb) else rec("schedule_plain", t0, N); k() end
  end
  vim.schedule(cb)
end

local function plain_fast(k)
  local t0, i = uv.hrtime(), 0
  local t = uv.new_timer()
  local function cb()
    i = i + 1
    if i < N then t:start(0, 0, function() vim.schedule(cb) end) else t:close(); rec("fast_plain", t0, N); k() end
  end
  t:start(0, 0, function() vim.schedule(cb) end)
end

local function awaited(k)
  cfn.spawn(function()
    local t0 = uv.hrtime()
    for _ = 1, N do cfn.await_callback(function(done) vim.schedule(done) end):await() end
    rec("schedule_awaited", t0, N)
    local t = uv.new_timer()
    t0 = uv.hrtime()
    for _ = 1, N do cfn.await_callback(function(done) t:start(0, 0, done) end):await() end
    t:close()
    rec("fast_awaited", t0, N)
    t0 = uv.hrtime()
    for _ = 1, N do cfn.await_callback(function(done) done() end):await() end
    rec("sync_awaited", t0, N)
    local w = cfn.wrap(function(x, cb) vim.schedule(function() cb(x) end) end, 2)
    t0 = uv.hrtime()
    for i = 1, N do assert(w(i):await() == i) end
    rec("wrap_schedule_awaited", t0, N)
    k()
  end)
end

plain_schedule(function()
  plain_fast(function()
    awaited(function()
      local s = table.concat(out, "\n") .. "\n"
      local path = os.getenv("CF_BENCH_OUT")
      if path then local f = assert(io.open(path, "w")); f:write(s); f:close() else io.stdout:write(s) end
      vim.schedule(function() vim.cmd("qa!") end)
    end)
  end)
end)
