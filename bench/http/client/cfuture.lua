-- bench/http/client: N small GETs over keep-alive with cfuture's client,
-- C at a time (C tasks, each sending its share in turn, on one pool of C
-- connections). Prints "cfuture <C> <requests/s>".
--   lua5.4 cfuture.lua URL [N = 10000] [C = 1]
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = dir .. "/../../.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local cf = require "cfuture"
local http = require "cfuture.http"

local url, n, c = arg[1], tonumber(arg[2]) or 10000, tonumber(arg[3]) or 1
local pool = http.pool({ max_per_host = c })

local worker = cf.async(function(count)
  for _ = 1, count do
    local res = assert(http.get(url, { pool = pool }):await())
    assert(res:read_all():await())
    assert(res.status == 200)
  end
end)

cf.block_on(function()
  worker(10):await() -- warm up: connect, load the code paths
  local t0 = cf.now()
  local ws = {}
  for i = 1, c do ws[i] = worker(math.floor(n / c) + (i <= n % c and 1 or 0)) end
  cf.join_all(ws):await()
  local s = (cf.now() - t0) / 1000
  print(("cfuture %d %.0f"):format(c, n / s))
end)
