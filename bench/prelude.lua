-- Shared set-up of cfuture's bench programs: find ../shared/bench/lib (the
-- peers' benchlib) and this checkout's cfuture (lua/ and build/), unless
-- LUA_PATH_5_4 / LUA_CPATH_5_4 already point at an installed one.
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = dir .. "/../.."
package.path = root .. "/../shared/bench/lib/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
  .. package.path:gsub("%./%?[^;]*;?", "")
package.cpath = root .. "/build/?.so;" .. package.cpath
return require "benchlib", require "cfuture"
