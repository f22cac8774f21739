-- Shared set-up of cfuture's bench programs: find ../shared/bench/lib (the
-- peers' benchlib) and this checkout's cfuture (lua/ and build/), unless
-- LUA_PATH_5_4 / LUA_CPATH_5_4 already point at an installed one. Returns
-- benchlib, cfuture and best(n, fn).
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = dir .. "/../.."
package.path = root .. "/../shared/bench/lib/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
  .. package.path:gsub("%./%?[^;]*;?", "")
package.cpath = root .. "/build/?.so;" .. package.cpath
local B = require "benchlib"

-- The best (lowest) wall time of n runs of fn, in seconds.
local function best(n, fn)
  local t = math.huge
  for _ = 1, n do
    local t0 = B.now()
    fn()
    t = math.min(t, B.now() - t0)
  end
  return t
end

return B, require "cfuture", best
