-- Graceful shutdown: workers run inside a scope until Ctrl-C (SIGINT) or
-- SIGTERM arrives; then the scope is cancelled, every worker's <close>
-- cleanup runs, and the program exits 0.
--
--   lua5.4 examples/shutdown.lua            (press Ctrl-C to stop)
--   lua5.4 examples/shutdown.lua --self-interrupt   (sends itself SIGINT)
local cf = require "cfuture"

local function worker(id)
  local _ <close> = setmetatable({}, { __close = function()
    print(("worker %d cleaned up"):format(id))
  end })
  local ticker = cf.interval(100 * id)
  for n = 1, math.huge do
    ticker:tick():await()
    print(("worker %d: tick %d"):format(id, n))
  end
end

cf.block_on(function()
  if arg and arg[1] == "--self-interrupt" then
    cf.spawn(function()
      cf.sleep(250):await()
      cf.process.spawn { "kill", "-INT", tostring(cf.process.pid()) }
    end)
  end
  local main = cf.spawn(cf.scope(function(s)
    s:spawn(worker, 1)
    s:spawn(worker, 2)
  end))
  local which, name = cf.select(main, cf.signal.wait("SIGINT"), cf.signal.wait("SIGTERM")):await()
  if which ~= 1 then
    print(name .. " received: shutting down")
    main:abort() -- cancels the scope, and with it every worker
    local ok, err = pcall(main.await, main) -- returns once their cleanup has run
    assert(not ok and cf.is_cancelled(err), err)
  end
  print("shut down cleanly")
end)
os.exit(0)
