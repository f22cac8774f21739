-- The workload of workload.lua with lua-resty-redis, for any `ngx` that has
-- cosockets and ngx.thread: cfuture's (resty_cfuture.lua) or OpenResty's own
-- (nginx + ngx_http_lua_module, a location of run.sh's nginx.conf). The same
-- code in both: C light threads (ngx.thread.spawn), each with its own
-- connection; P > 1 sends blocks of P commands with init_pipeline /
-- commit_pipeline. run(o) returns the result line, or nil and the failed check.
--   o = { peer =, port =, n =, c =, p =, wall = fn, cpu = fn, srv_cpu = fn }
local W = require "workload"
local redis = require "resty.redis"

local M = {}

function M.run(o)
  local N, C, P = o.n, o.c, o.p
  local keys, vals, per = W.keys(N, C)
  local failed
  local function fail(msg)
    failed = failed or msg
    error(msg)
  end

  local work = {}
  function work.set(red, k, v)
    if P == 1 then
      for j = 1, per do
        if red:set(k[j], v[j]) ~= "OK" then fail("SET " .. k[j]) end
      end
      return
    end
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      red:init_pipeline(j1 - j0 + 1)
      for j = j0, j1 do red:set(k[j], v[j]) end
      local res, err = red:commit_pipeline()
      if not res then fail("commit_pipeline: " .. tostring(err)) end
      for j = j0, j1 do
        if res[j - j0 + 1] ~= "OK" then fail("pipelined SET " .. k[j]) end
      end
    end
  end
  function work.get(red, k, v)
    if P == 1 then
      for j = 1, per do
        if red:get(k[j]) ~= v[j] then fail("GET " .. k[j]) end
      end
      return
    end
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      red:init_pipeline(j1 - j0 + 1)
      for j = j0, j1 do red:get(k[j]) end
      local res, err = red:commit_pipeline()
      if not res then fail("commit_pipeline: " .. tostring(err)) end
      for j = j0, j1 do
        if res[j - j0 + 1] ~= v[j] then fail("pipelined GET " .. k[j]) end
      end
    end
  end
  function work.incr(red)
    if P == 1 then
      for _ = 1, per do
        if type(red:incr("bench:counter")) ~= "number" then fail("INCR") end
      end
      return
    end
    for j0 = 1, per, P do
      local j1 = math.min(j0 + P - 1, per)
      red:init_pipeline(j1 - j0 + 1)
      for _ = j0, j1 do red:incr("bench:counter") end
      local res, err = red:commit_pipeline()
      if not res then fail("commit_pipeline: " .. tostring(err)) end
      for j = 1, j1 - j0 + 1 do
        if type(res[j]) ~= "number" then fail("pipelined INCR") end
      end
    end
  end

  local reds = {}
  for i = 1, C do
    local red = redis:new()
    red:set_timeout(30000)
    local ok, err = red:connect("127.0.0.1", o.port)
    if not ok then return nil, "connect: " .. tostring(err) end
    reds[i] = red
  end
  if reds[1]:flushall() ~= "OK" then return nil, "FLUSHALL" end

  local r = {}
  for _, ph in ipairs(W.phases) do
    collectgarbage()
    local body = work[ph]
    local s0, c0, t0 = o.srv_cpu(), o.cpu(), o.wall()
    local th = {}
    for i = 1, C do th[i] = ngx.thread.spawn(body, reds[i], keys[i], vals[i]) end
    for i = 1, C do
      local ok, err = ngx.thread.wait(th[i])
      if not ok then return nil, failed or tostring(err) end
    end
    local t1, c1, s1 = o.wall(), o.cpu(), o.srv_cpu()
    r[ph] = { wall = t1 - t0, cpu = c1 - c0, srv = s0 and s1 - s0 }
  end

  local dbsize = reds[1]:dbsize()
  if dbsize ~= N + 1 then return nil, ("DBSIZE %s, expected %d"):format(tostring(dbsize), N + 1) end
  if reds[C]:get(keys[C][per]) ~= vals[C][per] then return nil, "the last key's value" end
  local count = reds[1]:get("bench:counter")
  if tonumber(count) ~= N then return nil, ("INCR count %s, expected %d"):format(tostring(count), N) end
  for i = 1, C do reds[i]:close() end
  return W.fmt(o.peer, ("c%d%s"):format(C, P > 1 and ("-P" .. P) or ""), N, C, P, r)
end

return M
