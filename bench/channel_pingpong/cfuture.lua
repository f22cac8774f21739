-- W4 channel_pingpong on cfuture: two tasks pass a counter back and forth
-- through two unbounded cfuture channels. N passes in total.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 1000000)
local last = 0
local function player(cin, cout)
  while true do
    local v = cin:recv():await()
    if v >= N then last = v; cout:send(v); return end
    cout:send(v + 1)
  end
end

local t0 = B.now()
local a, b = cf.channel(), cf.channel()
cf.spawn(player, a, b)
cf.spawn(player, b, a)
a:send(0)
cf.run()
local dt = B.now() - t0

B.check(last == N, "count " .. tostring(last))
B.report("channel_pingpong", "cfuture", N, dt, ("ns_per_pass=%.1f"):format(dt / N * 1e9))
