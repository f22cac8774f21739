-- bench/redis/resty_cfuture.lua PORT N CONNS PIPE — lua-resty-redis (Debian's
-- lua-nginx-redis, downloaded by test/compat/fetch_libs.sh) on cfuture's ngx
-- (require("cfuture.ngx").install()): the workload of resty_work.lua in one
-- task. Prints one result line; exits 1 if a check fails.
local H = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local port = tonumber(arg[1])
local N, C, P = tonumber(arg[2] or 20000), tonumber(arg[3] or 50), tonumber(arg[4] or 1)
assert(port and N and C and P and N % C == 0, "usage: resty_cfuture.lua PORT N CONNS PIPE (N a multiple of CONNS)")

local cf = require "cfuture"
require("cfuture.ngx").install()
local R = require "resty_work"

cf.block_on(function()
  local line, err = R.run {
    peer = "resty/cfuture/" .. H.lua_name, port = port, n = N, c = C, p = P,
    wall = H.wall, cpu = H.cpu, srv_cpu = H.srv_cpu,
  }
  if not line then H.fail(err) end
  print(line)
end)
